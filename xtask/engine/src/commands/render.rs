//! `cargo xtask render`: writes each platform's Dockerfile and build context, builds
//! nothing and needs no engine.

use anyhow::Result;

use crate::commands::cli::Selection;
use crate::plan::{Builder, ContextStep, Plan};

pub(crate) fn run(selection: &Selection) -> Result<()> {
    let configs = super::load_configs(selection, &selection.cli_layer())?;
    let plan = Plan::merge(super::plans(&configs, super::Pushing::No, Builder::Legacy)?)?;
    let _lock = crate::exec::files::lock_workspace(&configs[0].target_dir)?;
    crate::exec::runner::write_contexts(&plan)?;
    for platform_plan in &plan.platforms {
        for step in &platform_plan.context {
            if let ContextStep::Render { path, .. } = step {
                let scope = plan.scope(&platform_plan.package, platform_plan.platform);
                eprintln!("[{scope}] rendered");
                println!("{}", plan.root.join(path).display());
            }
        }
    }
    Ok(())
}
