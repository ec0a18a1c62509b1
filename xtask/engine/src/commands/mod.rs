//! One module per subcommand; each turns parsed arguments into a plan, checks or output.

pub mod cli;
pub mod doctor;
mod engine_origin;
pub mod image;
pub mod init;
pub mod publish;
pub mod qemu_fetch;
pub mod render;
pub mod setup;

/// How a command ended when it did not fail: exit 0, or 1 for a report of problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command ran and found problems (doctor): exit code 1, nothing else printed.
    ProblemsFound,
}

use std::path::Path;

use anyhow::Result;
use xshell::Shell;

use crate::commands::cli::Selection;
use crate::config::workspace::Workspace;
use crate::config::{CliLayer, Config};
use crate::emulation::binfmt;
use crate::plan::{Builder, Plan, PlanInputs};

/// Loads the workspace of the current directory and the config of the one package the
/// command works on, with the command line as its last layer.
pub(crate) fn load_config(selection: &Selection, cli: &CliLayer) -> Result<Config> {
    let sh = Shell::new()?;
    let workspace = Workspace::load(&sh, &sh.current_dir())?;
    Config::load(&workspace, &selection.packages, &selection.exclude, cli)
}

/// Like [`load_config`], for every package the selection names (or that has a table).
pub(crate) fn load_configs(selection: &Selection, cli: &CliLayer) -> Result<Vec<Config>> {
    let sh = Shell::new()?;
    let workspace = Workspace::load(&sh, &sh.current_dir())?;
    Config::load_all(&workspace, &selection.packages, &selection.exclude, cli)
}

/// What a run does with the images it builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushing {
    /// Nothing: they stay where they were built.
    No,
    /// Push each by digest, under no tag (`--push-by-digest`).
    ByDigest,
    /// Push each by digest, then publish them under the tags (`--push`).
    AndPublish,
}

/// The facts a plan needs beyond the config: git, and the host's binfmt handlers.
pub(crate) fn plan_inputs(
    config: &Config,
    pushing: Pushing,
    builder: Builder,
) -> Result<PlanInputs> {
    let sh = Shell::new()?;
    let root = &config.workspace_root;
    // The commit and its time, when the workspace is a git checkout with commits.
    let format = "--format=%H%n%cI%n%ct";
    let root_arg = root.display().to_string();
    let git = crate::process::Command::new("git", ["-C", root_arg.as_str(), "log", "-1", format])
        .run(&sh)
        .unwrap_or_default();
    let mut lines = git.lines().map(str::to_owned);
    // Tracked files that differ from the commit (untracked ones are not built from).
    let dirty = crate::process::Command::new(
        "git",
        [
            "-C",
            root_arg.as_str(),
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .run(&sh)
    .is_ok_and(|status| !status.trim().is_empty());
    Ok(PlanInputs {
        push: pushing != Pushing::No,
        publish: pushing == Pushing::AndPublish,
        builder,
        git_dirty: dirty,
        git_revision: lines.next(),
        git_time: lines.next(),
        git_epoch: lines.next().and_then(|epoch| epoch.parse().ok()),
        handlers: binfmt::read_handlers(Path::new(binfmt::BINFMT_DIR)),
    })
}

/// One plan per package, all from the same facts about the workspace and the engine.
pub(crate) fn plans(configs: &[Config], pushing: Pushing, builder: Builder) -> Result<Vec<Plan>> {
    let inputs = plan_inputs(&configs[0], pushing, builder)?;
    configs
        .iter()
        .map(|config| Plan::new(config, &inputs))
        .collect()
}
