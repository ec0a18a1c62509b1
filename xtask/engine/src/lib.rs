//! multiarch: the engine that turns a Cargo workspace into multi-architecture container
//! images. Thin binaries call [`main`]: a workspace's `cargo xtask`, and `cargo-multiarch`
//! for `cargo install`; [`run`] is the same command line for a program of its own.
//!
//! Floors, each using only the ones below it: the ground (`diagnostic`, `process`,
//! `digest`, `http`, `retry`, `docker_config`); `config` (manifest, platforms, image refs,
//! templates); `emulation` (QEMU, binfmt); `registry` (the registry client); `plan` (typed
//! steps); `exec` (the runner and the programs it drives); `preflight` (checks as
//! findings); `commands` (one module per subcommand, and the command line); this file on top.

pub mod backend;
pub mod commands;
pub mod config;
pub mod diagnostic;
pub mod digest;
pub mod docker_config;
pub mod elf;
pub mod emulation;
pub mod exec;
pub mod http;
pub mod layout;
pub mod plan;
pub mod preflight;
pub mod process;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod retry;
pub mod rootfs;
pub mod supply;
pub mod tar;
pub mod time;

pub use commands::Outcome;
pub use diagnostic::format_error;

/// Runs the command line this process was started with and exits: 0 on success, 1 on a
/// failure (printed as `error:` and `help:` lines) or when `doctor` finds problems.
///
/// A leading `multiarch` argument is dropped, so the same binary serves as
/// `cargo-multiarch` (which cargo starts as `cargo-multiarch multiarch ARGS`), behind a
/// `cargo multiarch` alias, and as a workspace's `cargo xtask`.
/// The arguments as text; one that is not UTF-8 (which `std::env::args` would panic on)
/// is an error naming it.
fn utf8_args(args: impl Iterator<Item = std::ffi::OsString>) -> anyhow::Result<Vec<String>> {
    args.enumerate()
        .map(|(index, arg)| {
            arg.into_string().map_err(|arg| {
                diagnostic::diagnostic(
                    format!(
                        "argument {} is not UTF-8: `{}`",
                        index + 1,
                        arg.as_encoded_bytes().escape_ascii()
                    ),
                    "pass paths, names and tags as UTF-8 text",
                )
            })
        })
        .collect()
}

pub fn main() -> ! {
    restore_default_sigpipe();
    let code = match utf8_args(std::env::args_os().skip(1)).and_then(|mut args| {
        if args.first().map(String::as_str) == Some("multiarch") {
            args.remove(0);
        }
        run(args)
    }) {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::ProblemsFound) => 1,
        Err(err) => {
            eprintln!("{}", format_error(&err));
            1
        }
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Lets `cargo xtask doctor | head` end quietly, as Unix tools do, instead of panicking
/// on a closed stdout.
fn restore_default_sigpipe() {
    // SAFETY: resetting SIGPIPE to its default disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs one command line (without the program name).
pub fn run(args: impl IntoIterator<Item = String>) -> anyhow::Result<Outcome> {
    process::end_children_on_interrupt();
    use commands::cli;
    match cli::parse(args)? {
        cli::Task::Image(args) => commands::image::run(&args).map(|_| Outcome::Success),
        cli::Task::Publish(args) => commands::publish::run(&args).map(|_| Outcome::Success),
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
