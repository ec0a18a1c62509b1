//! `cargo xtask render`: writes each platform's Dockerfile and build context, builds nothing.

use anyhow::Result;
use xshell::Shell;

use crate::cli::Args;
use crate::plan::{Action, Builder, Plan};

pub fn run(args: &Args) -> Result<()> {
    let sh = Shell::new()?;
    let config = crate::image::load(&sh, args)?;
    let inputs = crate::image::plan_inputs(&sh, &config, false, Builder::Legacy);
    let plan = Plan::new(&config, &inputs)?;
    let contexts_only = Plan {
        builds: Vec::new(),
        ..plan.clone()
    };
    crate::runner::execute(&contexts_only, 1)?;
    for (platform, steps) in &plan.contexts {
        for step in steps {
            if let Action::Write { path, .. } = &step.action {
                eprintln!("[{platform}] rendered");
                println!("{}", plan.root.join(path).display());
            }
        }
    }
    Ok(())
}
