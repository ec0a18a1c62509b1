//! `cargo xtask image`: plan the run, then build (and with `--push`, publish) every platform.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::binfmt;
use crate::cli::Args;
use crate::config::{check_repository, parse_platforms, BuildMode, Config};
use crate::docker::Docker;
use crate::plan::{Builder, Plan, PlanInputs};
use crate::report;
use crate::runner;
use crate::toolchain::Toolchain;
use crate::workspace::Workspace;

pub fn run(args: &Args) -> Result<()> {
    let sh = Shell::new()?;
    let config = load(&sh, args)?;
    let docker = Docker::find();
    let inputs = plan_inputs(&sh, &config, args.push, docker.builder);
    let plan = Plan::new(&config, &inputs)?;
    if args.dry_run {
        report::print_dry_run(&plan, args.json);
        return Ok(());
    }
    if config.build == BuildMode::Cross {
        let platforms: Vec<_> = config
            .platforms
            .iter()
            .map(|&p| config.platform(p))
            .collect();
        Toolchain::locate(&sh)?.check(&platforms)?;
    }
    docker.require_daemon()?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let report = runner::execute(&plan, jobs)?;
    report::print(&report, args.json);
    Ok(())
}

/// Loads the workspace and the package config, then applies the command line's overrides.
pub fn load(sh: &Shell, args: &Args) -> Result<Config> {
    let workspace = Workspace::load(sh, &sh.current_dir())?;
    let mut config = Config::load(&workspace, args.package.as_deref())?;
    if !args.platforms.is_empty() {
        config.platforms = parse_platforms(&args.platforms)
            .map_err(|(_, err)| err)
            .context("in --platform")?;
    }
    if !args.tags.is_empty() {
        config.tags = args.tags.clone();
        config.semver = false;
    }
    if let Some(image) = &args.image {
        check_repository(image).map_err(|problem| anyhow::anyhow!("invalid --image: {problem}\nhelp: pass a repository without a tag, such as `127.0.0.1:5000/hello`"))?;
        config.image = Some(image.clone());
    }
    Ok(config)
}

/// The facts a plan needs beyond the config: git, and the host's binfmt handlers.
pub fn plan_inputs(sh: &Shell, config: &Config, push: bool, builder: Builder) -> PlanInputs {
    let root = &config.workspace_root;
    // The commit and its time, when the workspace is a git checkout with commits.
    let format = "--format=%H%n%cI";
    let git = cmd!(sh, "git -C {root} log -1 {format}")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    let mut lines = git.lines().map(str::to_owned);
    PlanInputs {
        push,
        builder,
        git_revision: lines.next(),
        git_time: lines.next(),
        handlers: binfmt::read_handlers(Path::new(binfmt::BINFMT_DIR)),
    }
}
