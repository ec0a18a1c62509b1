//! multiarch: the engine behind `cargo xtask`, which turns this workspace into
//! multi-architecture container images.
//!
//! Floors, each using only the ones below it: the ground (`diagnostic`, `process`,
//! `digest`, `http`, `retry`, `docker_config`); `config` (manifest, platforms, image refs,
//! templates); `emulation` (QEMU, binfmt); `registry` (the registry client); `plan` (typed
//! steps); `exec` (the runner and the programs it drives); `preflight` (checks as
//! findings); `commands` (one module per subcommand); `cli` and `main` on top.

pub mod backend;
pub mod commands;
pub mod config;
pub mod diagnostic;
pub mod digest;
pub mod docker_config;
pub mod emulation;
pub mod exec;
pub mod http;
pub mod layout;
pub mod plan;
pub mod preflight;
pub mod process;
pub mod registry;
pub mod retry;
pub mod supply;
pub mod tar;
pub mod time;

pub use diagnostic::format_error;

/// How a command ended when it did not fail: exit 0, or 1 for a report of problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command ran and found problems (doctor): exit code 1, nothing else printed.
    ProblemsFound,
}

/// Runs one command line (without the program name).
pub fn run(args: impl IntoIterator<Item = String>) -> anyhow::Result<Outcome> {
    process::end_children_on_interrupt();
    use commands::cli;
    match cli::parse(args)? {
        cli::Task::Image(args) => commands::image::run(&args).map(|_| Outcome::Success),
        cli::Task::Render(args) => commands::render::run(&args).map(|_| Outcome::Success),
        cli::Task::QemuFetch(args) => commands::qemu_fetch::run(&args).map(|_| Outcome::Success),
        cli::Task::Setup(args) => commands::setup::run(&args).map(|_| Outcome::Success),
        cli::Task::Doctor(args) => commands::doctor::run(&args),
        cli::Task::Init(args) => commands::init::run(&args).map(|_| Outcome::Success),
        cli::Task::Help => {
            println!("{}", cli::USAGE);
            Ok(Outcome::Success)
        }
    }
}

/// Compares `actual` with `tests/snapshots/<name>`; `UPDATE_SNAPSHOTS=1` rewrites the file.
#[cfg(test)]
pub(crate) fn assert_snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(expected == actual, "snapshot {} differs (UPDATE_SNAPSHOTS=1 rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}", path.display());
}
