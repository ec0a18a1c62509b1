//! The `cargo build` command for one platform: target, binaries, and the linker and flags
//! scoped to that one invocation with `--config`.

use crate::config::workspace::cargo_program;
use crate::plan::CargoBuild;
use crate::process::Command;

/// `cargo build --release --target <triple>` for the plan's binaries.
pub fn build_command(build: &CargoBuild) -> Command {
    let target = &build.target;
    let mut args: Vec<String> = [
        "build",
        "--release",
        "--package",
        &build.package,
        "--target",
        target,
    ]
    .map(String::from)
    .to_vec();
    for bin in &build.bins {
        args.extend(["--bin".to_owned(), bin.clone()]);
    }
    // `--config` scopes the linker and flags to this one invocation and this one target.
    // JSON strings and arrays of strings are valid TOML values.
    if let Some(linker) = &build.linker {
        args.extend([
            "--config".to_owned(),
            format!("target.{target}.linker={}", toml_value(linker)),
        ]);
    }
    if !build.rustflags.is_empty() {
        args.extend([
            "--config".to_owned(),
            format!("target.{target}.rustflags={}", toml_value(&build.rustflags)),
        ]);
    }
    Command::new(cargo_program(), args)
}

fn toml_value(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("strings serialise")
}
