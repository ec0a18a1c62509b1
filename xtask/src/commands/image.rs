//! `cargo xtask image`: plan the run, check everything it needs, then build (and with
//! `--push`, publish) every platform.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::ImageArgs;
use crate::exec::docker::{Docker, DockerExecutor};
use crate::exec::{report, runner};
use crate::plan::{Builder, Plan};
use crate::preflight::{self, PlatformChecks};

pub fn run(args: &ImageArgs) -> Result<()> {
    let config = super::load_config(args.selection.package.as_deref(), &args.cli_layer())?;
    if args.dry_run {
        // A dry run needs no engine: the builder is probed only when a client is there.
        let docker = Docker::find().ok();
        let builder = docker.as_ref().map_or(Builder::Legacy, Docker::builder);
        let plan = Plan::new(&config, &super::plan_inputs(&config, args.push, builder)?)?;
        let docker = docker.unwrap_or(Docker {
            program: PathBuf::from("docker"),
        });
        let executor = DockerExecutor {
            docker,
            root: plan.root.clone(),
        };
        report::print_dry_run(&plan, &executor, args.json);
        return Ok(());
    }
    let (engine, _) = preflight::engine();
    let plan = Plan::new(
        &config,
        &super::plan_inputs(&config, args.push, engine.builder)?,
    )?;
    let checks = PlatformChecks {
        config: &config,
        plan: &plan,
        engine: None,
    };
    preflight::first_failure(checks.host())?;
    let docker = engine.require_daemon()?;
    preflight::first_failure(preflight::attestations(&config, &engine, &docker))?;
    let checks = PlatformChecks {
        engine: Some(&docker),
        ..checks
    };
    preflight::first_failure(checks.base_images())?;

    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let executor = DockerExecutor {
        docker,
        root: plan.root.clone(),
    };
    let _lock = crate::exec::files::lock_workspace(&config.target_dir)?;
    let report = runner::execute(&plan, &executor, jobs)?;
    report::print(&report, args.json);
    Ok(())
}
