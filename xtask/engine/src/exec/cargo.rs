//! Compiling one platform's binaries: the `cargo build` (or `cargo zigbuild`) command with
//! its target, options, linker and C toolchain scoped to that one invocation; cargo's
//! progress shown as it happens; and a failure told as its cause, not as a log.

use anyhow::{Context, Result};
use xshell::Shell;

use crate::config::compile::Toolchain;
use crate::config::rustflags::Channel;
use crate::config::workspace::cargo_program;
use crate::diagnostic::diagnostic;
use crate::plan::{CargoBuild, CargoInvocation};
use crate::process::{Command, CommandFailed};

/// `cargo build --profile=<p> --target <triple>...` (or `cargo zigbuild`) for every target
/// of the invocation; each target's linker and flags are scoped to it with `--config` (the
/// flags in `CARGO_ENCODED_RUSTFLAGS` when the user's come from the environment), its C
/// toolchain with `CC_<triple>` and friends.
pub(crate) fn invocation_command(invocation: &CargoInvocation) -> Command {
    let first = &invocation.builds[0];
    let subcommand = match first.toolchain {
        Toolchain::Cargo => "build",
        Toolchain::Zig => "zigbuild",
    };
    // `cargo auditable` runs the subcommand with itself as rustc's wrapper for the
    // workspace's crates, which adds the dependency list to each binary.
    let mut args: Vec<String> = match first.auditable {
        true => vec!["auditable".into(), subcommand.into()],
        false => vec![subcommand.into()],
    };
    for package in &first.packages {
        args.extend(["--package".to_owned(), package.clone()]);
    }
    for build in &invocation.builds {
        args.extend(["--target".to_owned(), build.target.for_cargo()]);
    }
    args.extend(first.options.args());
    for bin in &first.bins {
        args.extend(["--bin".to_owned(), bin.clone()]);
    }
    // `--config` scopes the linker and flags to this one invocation and this one target.
    // JSON strings and arrays of strings are valid TOML values.
    for build in &invocation.builds {
        let target = &build.target.triple;
        if let Some(linker) = &build.linker {
            args.extend([
                "--config".to_owned(),
                format!("target.{target}.linker={}", toml_value(linker)),
            ]);
        }
        if !build.rustflags.is_empty() && build.rustflags_channel == Channel::Config {
            args.extend([
                "--config".to_owned(),
                format!("target.{target}.rustflags={}", toml_value(&build.rustflags)),
            ]);
        }
    }
    let mut command = Command::new(cargo_program(), args);
    command.env = invocation
        .builds
        .iter()
        .flat_map(|b| b.compilers.clone())
        .collect();
    // The user's `RUSTFLAGS` would replace every target's flags: the invocation gets the
    // user's and the platform's together (its builds share them; see `accepts`).
    if first.rustflags_channel == Channel::Environment {
        command.env.push((
            "CARGO_ENCODED_RUSTFLAGS".to_owned(),
            first.rustflags.join("\u{1f}"),
        ));
    }
    command
}

/// The command of one build alone.
pub(crate) fn build_command(build: &CargoBuild) -> Command {
    invocation_command(&CargoInvocation {
        builds: vec![build.clone()],
    })
}

/// Runs the invocation. When several targets fail together, each is built alone to tell
/// which one failed and why (what did compile is cached, so that costs little).
/// Failures name their platform (`cargo build failed for linux/arm64: ...`).
pub(crate) fn run_invocation(invocation: &CargoInvocation, sh: &Shell) -> Result<()> {
    let alone = |build: &CargoBuild| {
        run(build, sh).with_context(|| format!("cargo build failed for {}", build.platform))
    };
    if let [build] = invocation.builds.as_slice() {
        return alone(build);
    }
    let scope = invocation.platforms();
    let together = invocation_command(invocation).stream(sh, |line| {
        if is_status_line(line) {
            eprintln!("[{scope}] {}", line.trim_start());
        }
    });
    match together {
        Ok(()) => Ok(()),
        Err(err) => {
            let not_started = err
                .downcast_ref::<CommandFailed>()
                .is_some_and(|f| f.status == "not started");
            if !not_started {
                invocation.builds.iter().try_for_each(alone)?;
            }
            Err(err.context(format!("cargo build failed for {scope}")))
        }
    }
}

/// Runs the build, echoing cargo's status lines prefixed with the platform.
pub(crate) fn run(build: &CargoBuild, sh: &Shell) -> Result<()> {
    let platform = build.platform;
    build_command(build)
        .stream(sh, |line| {
            if is_status_line(line) {
                eprintln!("[{platform}] {}", line.trim_start());
            }
        })
        .map_err(|err| match err.downcast_ref::<CommandFailed>() {
            Some(failed) if failed.status != "not started" => explain(build, &failed.stderr),
            _ => err,
        })
}

fn toml_value(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("strings serialise")
}

/// Cargo's own progress: `Compiling x v1`, `Finished ...`, and the first line of an error.
fn is_status_line(line: &str) -> bool {
    const VERBS: &[&str] = &[
        "Compiling",
        "Downloading",
        "Downloaded",
        "Updating",
        "Locking",
        "Adding",
        "Blocking",
        "Finished",
        "Building",
    ];
    let first = line.split_whitespace().next().unwrap_or_default();
    VERBS.contains(&first) || line.starts_with("error")
}

/// What went wrong in a failed cargo run, as one cause (with cargo's error lines) and a fix.
pub(crate) fn explain(build: &CargoBuild, stderr: &str) -> anyhow::Error {
    let target = &build.target.triple;
    let platform = build.platform;
    let failing_crate = failing_crate(stderr);
    let in_crate = failing_crate
        .as_deref()
        .map_or(String::new(), |name| format!(" in `{name}`"));
    let (summary, help) = if let Some(tool) = missing_tool(stderr) {
        (
            format!("no C compiler for {target}: `{tool}` is not installed{in_crate}"),
            format!("set `toolchain = \"zig\"` in [package.metadata.multiarch] (or its platform.\"{platform}\" table) after `pip install ziglang cargo-zigbuild`; or install a C compiler for {target} and name it in platform.\"{platform}\".cc"),
        )
    } else if stderr.contains("can't find crate for `std`")
        || stderr.contains("target may not be installed")
    {
        (
            format!("the Rust target {target} is not installed"),
            format!("rustup target add {target}"),
        )
    } else if let Some(linker) = between(stderr, "linker `", "` not found") {
        (
            format!("the linker `{linker}` for {target} is not installed"),
            format!("install it (Debian: the `gcc-<arch>-linux-gnu` packages), set `linker` in platform.\"{platform}\", or use `toolchain = \"zig\"`"),
        )
    } else if stderr.contains("does not have the feature")
        || stderr.contains("does not contain this feature")
        || stderr.contains("none of the selected packages contains")
        || stderr.contains("does not have these features")
    {
        (
            "cargo does not know a requested feature".to_owned(),
            format!("check `features` in [package.metadata.multiarch] and `--features` against the [features] of `{}`", build.packages.join("`, `")),
        )
    } else if stderr.contains("profile `") && stderr.contains("is not defined") {
        (
            "cargo does not know the requested profile".to_owned(),
            "define it as `[profile.<name>]` with `inherits = \"release\"` in the workspace's Cargo.toml, or set `profile` to one that exists".to_owned(),
        )
    } else if stderr.contains("failed to run custom build command") {
        (
            format!("a build script failed{in_crate}"),
            "read its error above; a build script that compiles C often needs `toolchain = \"zig\"` or a C compiler for the target".to_owned(),
        )
    } else if let Some(package) = failing_crate
        .as_ref()
        .filter(|name| build.packages.contains(name))
    {
        (
            format!("a compile error in `{package}`"),
            format!("fix the error shown; `cargo build --target {target}` reproduces it"),
        )
    } else {
        (
            format!("cargo failed{in_crate}"),
            "read cargo's error above and run again; finished crates are cached".to_owned(),
        )
    };
    let excerpt = error_excerpt(stderr);
    let cause = if excerpt.is_empty() {
        summary
    } else {
        format!("{summary}:\n    {}", excerpt.join("\n    "))
    };
    diagnostic(cause, help)
}

/// The crate cargo names as failing: a build script's package or a crate that did not compile.
fn failing_crate(stderr: &str) -> Option<String> {
    between(stderr, "failed to run custom build command for `", "`")
        .or_else(|| between(stderr, "could not compile `", "`"))
        .map(|name| name.split(' ').next().unwrap_or(name).to_owned())
}

/// The tool cc-rs looked for and did not find.
fn missing_tool(stderr: &str) -> Option<&str> {
    between(stderr, "failed to find tool \"", "\"")
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// Cargo's error lines and what the failing build script wrote to stderr, without the
/// build script's `cargo:` directives and environment dump; at most 20 lines.
fn error_excerpt(stderr: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut in_error = false;
    let mut in_script_stdout = false;
    for line in stderr.lines() {
        let trimmed = line.trim();
        if line.starts_with("error") {
            in_error = true;
            in_script_stdout = false;
        } else if line.starts_with("warning") || line.starts_with("   Compiling") {
            in_error = false;
        }
        if trimmed == "--- stdout" {
            in_script_stdout = true;
            continue;
        }
        if trimmed == "--- stderr" {
            in_script_stdout = false;
            continue;
        }
        let noise = in_script_stdout
            || trimmed.starts_with("cargo:")
            || trimmed.is_empty()
            || trimmed.starts_with("note: run with `RUST_BACKTRACE");
        if in_error && !noise {
            lines.push(line.trim_end());
        }
    }
    lines.dedup();
    lines.truncate(20);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::{CargoOptions, RustTarget};
    use crate::config::platform::Platform;

    fn build(toolchain: Toolchain, target: &str) -> CargoBuild {
        CargoBuild {
            platform: Platform::parse("linux/arm64").unwrap(),
            auditable: false,
            packages: vec!["hello".into()],
            toolchain,
            target: RustTarget::parse(target).unwrap(),
            bins: vec!["hello".into()],
            linker: None,
            rustflags: Vec::new(),
            rustflags_channel: Channel::Config,
            compilers: Vec::new(),
            options: CargoOptions::default(),
        }
    }

    #[test]
    fn flags_composed_with_the_users_rustflags_go_in_the_environment_for_one_target() {
        let mut arm = build(Toolchain::Cargo, "armv7-unknown-linux-gnueabihf");
        arm.rustflags = vec![
            "-Dwarnings".into(),
            "-C".into(),
            "target-feature=+crt-static".into(),
        ];
        arm.rustflags_channel = Channel::Environment;
        let command = build_command(&arm);
        assert!(
            command.env.contains(&(
                "CARGO_ENCODED_RUSTFLAGS".into(),
                "-Dwarnings\u{1f}-C\u{1f}target-feature=+crt-static".into()
            )),
            "{:?}",
            command.env
        );
        assert!(
            !command.args.iter().any(|a| a.contains("rustflags")),
            "{:?}",
            command.args
        );
        assert!(
            command.to_string().starts_with(
                "CARGO_ENCODED_RUSTFLAGS=$'-Dwarnings\\u001f-C\\u001ftarget-feature=+crt-static' cargo build"
            ),
            "{command}"
        );
        // Targets with other flags are not compiled in one invocation with it.
        let mut musl = build(Toolchain::Cargo, "aarch64-unknown-linux-musl");
        musl.rustflags = vec!["-Dwarnings".into()];
        musl.rustflags_channel = Channel::Environment;
        let invocation = CargoInvocation {
            builds: vec![arm.clone()],
        };
        assert!(!invocation.accepts(&musl));
        musl.rustflags = arm.rustflags.clone();
        assert!(invocation.accepts(&musl));
    }

    #[test]
    fn zig_builds_use_zigbuild_with_the_glibc_suffix_and_no_linker() {
        let command = build_command(&build(Toolchain::Zig, "aarch64-unknown-linux-gnu.2.28"));
        assert_eq!(
            command.args,
            [
                "zigbuild",
                "--package",
                "hello",
                "--target",
                "aarch64-unknown-linux-gnu.2.28",
                "--profile=release",
                "--bin",
                "hello"
            ]
        );
    }

    #[test]
    fn compilers_and_linker_reach_only_this_invocation() {
        let mut gnu = build(Toolchain::Cargo, "aarch64-unknown-linux-gnu");
        gnu.linker = Some("aarch64-linux-gnu-gcc".into());
        gnu.compilers = vec![(
            "CC_aarch64_unknown_linux_gnu".into(),
            "aarch64-linux-gnu-gcc".into(),
        )];
        let command = build_command(&gnu);
        assert_eq!(command.args[0], "build");
        assert!(command
            .args
            .contains(&"target.aarch64-unknown-linux-gnu.linker=\"aarch64-linux-gnu-gcc\"".into()));
        assert!(command
            .to_string()
            .starts_with("CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc cargo build"));
    }

    const MISSING_CC: &str = r#"   Compiling cc v1.2.1
   Compiling ctest v0.1.0 (/ws/ctest)
error: failed to run custom build command for `ctest v0.1.0 (/ws/ctest)`

Caused by:
  process didn't exit successfully: `/ws/target/release/build/ctest-1/build-script-build` (exit status: 1)
  --- stdout
  cargo:rerun-if-changed=src/value.c
  OPT_LEVEL = Some(3)
  TARGET = Some(aarch64-unknown-linux-musl)
  CC_aarch64-unknown-linux-musl = None

  --- stderr


  error occurred in cc-rs: failed to find tool "aarch64-linux-musl-gcc": No such file or directory (os error 2)

"#;

    #[test]
    fn a_missing_c_compiler_names_the_tool_the_crate_and_zig() {
        let err = explain(
            &build(Toolchain::Cargo, "aarch64-unknown-linux-musl"),
            MISSING_CC,
        );
        let message = crate::diagnostic::format_error(&err);
        assert!(message.starts_with("error: no C compiler for aarch64-unknown-linux-musl: `aarch64-linux-musl-gcc` is not installed in `ctest`:\n"), "{message}");
        assert!(message.contains("error occurred in cc-rs"), "{message}");
        assert!(!message.contains("OPT_LEVEL"), "{message}");
        assert!(!message.contains("cargo:rerun"), "{message}");
        assert!(
            message.contains("help: set `toolchain = \"zig\"`"),
            "{message}"
        );
    }

    #[test]
    fn failures_are_classified() {
        let cases = [
            ("error[E0463]: can't find crate for `std`\n  = note: the `aarch64-unknown-linux-musl` target may not be installed\n", "the Rust target aarch64-unknown-linux-musl is not installed", "rustup target add"),
            ("error: linker `aarch64-linux-gnu-gcc` not found\n", "the linker `aarch64-linux-gnu-gcc`", "set `linker`"),
            ("error: the package 'hello' does not contain this feature: nope\n", "cargo does not know a requested feature", "check `features`"),
            ("error[E0308]: mismatched types\n --> src/main.rs:2:5\nerror: could not compile `hello` (bin \"hello\") due to 1 previous error\n", "a compile error in `hello`", "reproduces it"),
        ];
        for (stderr, cause, help) in cases {
            let diagnostic = crate::diagnostic::Diagnostic::of(&explain(
                &build(Toolchain::Cargo, "aarch64-unknown-linux-musl"),
                stderr,
            ));
            assert!(
                diagnostic.cause.starts_with(cause),
                "{stderr}: {diagnostic:?}"
            );
            assert!(diagnostic.help.contains(help), "{stderr}: {diagnostic:?}");
        }
    }

    #[test]
    fn status_lines_are_cargo_progress_and_errors() {
        assert!(is_status_line("   Compiling cc v1.2.1"));
        assert!(is_status_line(
            "    Finished `release` profile [optimized] target(s) in 3.1s"
        ));
        assert!(is_status_line("error: could not compile `hello`"));
        assert!(!is_status_line("  cargo:rerun-if-changed=src/value.c"));
        assert!(!is_status_line("warning: unused variable: `x`"));
    }
}
