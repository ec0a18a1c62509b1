//! `cargo xtask render`: writes each platform's Dockerfile and build context, builds nothing.

use anyhow::Result;
use xshell::Shell;

use crate::cli::ImageArgs;
use crate::plan::{Action, Builder, Plan, PlanInputs};

pub fn run(args: &ImageArgs) -> Result<()> {
    let sh = Shell::new()?;
    let (config, _) = crate::image::load(&sh, args)?;
    let inputs = PlanInputs {
        push: false,
        builder: Builder::Legacy,
        git_revision: None,
        git_time: None,
    };
    let plan = Plan::new(&config, &inputs)?;
    let only_contexts = Plan {
        builds: Vec::new(),
        ..plan.clone()
    };
    crate::runner::execute(&only_contexts, 1)?;
    for (platform, step) in &plan.contexts {
        if let Action::WriteContext { dir, .. } = &step.action {
            eprintln!("[{platform}] rendered");
            println!("{}", plan.root.join(dir).join("Dockerfile").display());
        }
    }
    Ok(())
}
