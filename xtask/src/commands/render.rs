//! `cargo xtask render`: writes each platform's Dockerfile and build context, builds
//! nothing and needs no engine.

use anyhow::Result;

use crate::cli::Selection;
use crate::plan::{Builder, Plan, Step};

pub fn run(selection: &Selection) -> Result<()> {
    let config = super::load_config(selection.package.as_deref(), &selection.cli_layer())?;
    let plan = Plan::new(
        &config,
        &super::plan_inputs(&config, false, Builder::Legacy)?,
    )?;
    let _lock = crate::exec::files::lock_workspace(&config.target_dir)?;
    crate::exec::runner::write_contexts(&plan)?;
    for platform_plan in &plan.platforms {
        for step in &platform_plan.context {
            if let Step::Render { path, .. } = step {
                eprintln!("[{}] rendered", platform_plan.platform);
                println!("{}", plan.root.join(path).display());
            }
        }
    }
    Ok(())
}
