//! `cargo xtask image`: plan the run for every selected package, check everything it
//! needs, then build (and with `--push`, publish) every platform of every package.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::ImageArgs;
use crate::config::{Backend, Config};
use crate::exec::docker::{Docker, DockerExecutor};
use crate::exec::oci::OciExecutor;
use crate::exec::{report, runner};
use crate::plan::{Builder, Plan};
use crate::preflight::{self, PlatformChecks};

pub fn run(args: &ImageArgs) -> Result<()> {
    if args.dry_run {
        return dry_run(args);
    }
    let configs = load(args)?;
    report::prepare_metadata_file(args.metadata_file.as_deref(), false)?;
    match backend(&configs)? {
        // No engine is asked anything: the OCI backend runs no `docker` process at all.
        Backend::Oci => build_oci(args, &configs),
        Backend::Docker if args.load => Err(crate::diagnostic::diagnostic(
            "--load is for backend = \"oci\"; the docker backend builds in the engine already",
            "drop --load, or pass --backend oci",
        )),
        Backend::Docker => build(args, &configs, preflight::engine().0),
    }
}

/// The one backend of the run's packages.
fn backend(configs: &[Config]) -> Result<Backend> {
    let first = configs[0].backend;
    match configs.iter().find(|c| c.backend != first) {
        None => Ok(first),
        Some(other) => Err(crate::diagnostic::diagnostic(
            format!(
                "packages `{}` and `{}` use different backends",
                configs[0].package.name, other.package.name
            ),
            "set one `backend` for the run (or pass --backend), or build them with `-p` one at a time",
        )),
    }
}

/// The OCI backend: host checks, then the same runner, with images assembled and pushed
/// by the tool itself.
fn build_oci(args: &ImageArgs, configs: &[Config]) -> Result<()> {
    let plans = super::plans(configs, args.push, Builder::Legacy)?;
    // What needs an engine stops here, before anything compiles.
    for plan in &plans {
        for platform_plan in &plan.platforms {
            for step in &platform_plan.context {
                if let crate::plan::Step::Render { path, contents } = step {
                    crate::exec::oci::spec::parse(contents, &path.display().to_string())?;
                }
            }
        }
    }
    host_checks(configs, &plans)?;
    let plan = Plan::merge(plans)?;
    let executor = OciExecutor::new(plan.root.clone());
    let _lock = crate::exec::files::lock_workspace(&configs[0].target_dir)?;
    report::prepare_metadata_file(args.metadata_file.as_deref(), true)?;
    let report = runner::execute(&plan, &executor, jobs(args))?;
    if args.load {
        load_into_engine(&executor, &report, &configs[0].target_dir)?;
    }
    report::print(&report, args.json);
    report::write_outputs(&report, args.metadata_file.as_deref())
}

/// What the host needs (targets, linkers, C compilers, emulation), for every package.
fn host_checks(configs: &[Config], plans: &[Plan]) -> Result<()> {
    let toolchain = preflight::RustToolchain::locate();
    for (config, plan) in configs.iter().zip(plans) {
        let checks = PlatformChecks {
            config,
            plan,
            engine: None,
        };
        preflight::first_failure(checks.host(&toolchain))?;
    }
    Ok(())
}

/// `--jobs`, or the number of cores.
fn jobs(args: &ImageArgs) -> usize {
    args.jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `--load`: the run's images into the local engine, through one `docker load`.
fn load_into_engine(
    executor: &OciExecutor,
    report: &report::Report,
    target_dir: &std::path::Path,
) -> Result<()> {
    let tags: Vec<(String, Vec<String>)> = report
        .platforms
        .iter()
        .map(|p| (p.image.clone(), p.tags.clone()))
        .collect();
    let archive = executor.load_archive(&tags)?;
    let path = target_dir.join("multiarch/load.tar");
    crate::exec::files::write_if_changed(&path, &archive)?;
    let docker = preflight::engine().0.require_daemon()?;
    eprintln!("[load] docker load ...");
    let sh = xshell::Shell::new()?;
    docker
        .command([
            "load".to_owned(),
            "--input".to_owned(),
            path.display().to_string(),
        ])
        .run(&sh)
        .context("loading the images into the local engine")?;
    eprintln!("[load] done");
    Ok(())
}

/// The configs of the packages the run builds.
fn load(args: &ImageArgs) -> Result<Vec<Config>> {
    let configs = super::load_configs(&args.selection, &args.cli_layer())?;
    if configs.len() > 1 && args.overrides.image.is_some() {
        return Err(crate::diagnostic::diagnostic(
            format!(
                "--image names one repository, and this run builds {} packages",
                configs.len()
            ),
            "pick one package with `-p PACKAGE`, or set `image` in each package's [package.metadata.multiarch]",
        ));
    }
    Ok(configs)
}

/// Prints the plan; needs no engine (the builder is probed only when a client is there).
fn dry_run(args: &ImageArgs) -> Result<()> {
    let configs = load(args)?;
    report::prepare_metadata_file(args.metadata_file.as_deref(), false)?;
    if backend(&configs)? == Backend::Oci {
        let plan = Plan::merge(super::plans(&configs, args.push, Builder::Legacy)?)?;
        let executor = OciExecutor::new(plan.root.clone());
        report::print_dry_run(&plan, &executor, args.json);
        return Ok(());
    }
    let docker = Docker::find().ok();
    let builder = docker.as_ref().map_or(Builder::Legacy, Docker::builder);
    let plan = Plan::merge(super::plans(&configs, args.push, builder)?)?;
    let docker = docker.unwrap_or(Docker {
        program: PathBuf::from("docker"),
        context: None,
    });
    let executor = DockerExecutor {
        docker,
        root: plan.root.clone(),
    };
    report::print_dry_run(&plan, &executor, args.json);
    Ok(())
}

/// Plans, checks everything the run needs, then builds, pushes and publishes.
fn build(args: &ImageArgs, configs: &[Config], engine: preflight::Engine) -> Result<()> {
    let plans = super::plans(configs, args.push, engine.builder)?;
    host_checks(configs, &plans)?;
    let docker = engine.require_daemon()?;
    for (config, plan) in configs.iter().zip(&plans) {
        preflight::first_failure(preflight::attestations(config, &engine, &docker))?;
        let checks = PlatformChecks {
            config,
            plan,
            engine: Some(&docker),
        };
        preflight::first_failure(checks.engines())?;
        preflight::first_failure(checks.base_images())?;
    }
    let plan = Plan::merge(plans)?;
    let executor = DockerExecutor {
        docker,
        root: plan.root.clone(),
    };
    let _lock = crate::exec::files::lock_workspace(&configs[0].target_dir)?;
    report::prepare_metadata_file(args.metadata_file.as_deref(), true)?;
    let report = runner::execute(&plan, &executor, jobs(args))?;
    report::print(&report, args.json);
    report::write_outputs(&report, args.metadata_file.as_deref())
}
