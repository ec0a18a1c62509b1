//! Rust targets and linkers: each platform's must exist before anything is compiled.

use std::path::PathBuf;

use anyhow::Result;
use xshell::{cmd, Shell};

use crate::config::PlatformConfig;
use crate::diagnostic::Diagnostic;
use crate::preflight::{Finding, Status};

/// The installed Rust toolchain, as `rustc --print sysroot` locates it.
pub struct Toolchain {
    sysroot: PathBuf,
}

impl Toolchain {
    pub fn locate() -> Result<Toolchain> {
        let sh = Shell::new()?;
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = cmd!(sh, "{rustc} --print sysroot")
            .quiet()
            .read()
            .map_err(|err| {
                crate::diagnostic::diagnostic(
                    format!("cannot run `rustc --print sysroot`: {err}"),
                    "install Rust with rustup (https://rustup.rs)",
                )
            })?;
        Ok(Toolchain {
            sysroot: PathBuf::from(sysroot),
        })
    }

    /// Whether the standard library for `target` is installed.
    pub fn has_target(&self, target: &str) -> bool {
        self.sysroot
            .join("lib/rustlib")
            .join(target)
            .join("lib")
            .is_dir()
    }

    /// Whether `linker` can be found: on PATH, or among the toolchain's own tools (`rust-lld`).
    pub fn has_linker(&self, linker: &str) -> bool {
        if which::which(linker).is_ok() {
            return true;
        }
        let Ok(hosts) = std::fs::read_dir(self.sysroot.join("lib/rustlib")) else {
            return false;
        };
        hosts
            .flatten()
            .any(|host| host.path().join("bin").join(linker).is_file())
    }
}

/// The Rust target and linker findings of one platform.
pub fn findings(toolchain: &Result<Toolchain>, platform: &PlatformConfig) -> [Finding; 2] {
    let name = platform.platform;
    let target = &platform.target;
    let target_check = format!("rust target {name}");
    let linker_check = format!("linker {name}");
    let toolchain = match toolchain {
        Ok(toolchain) => toolchain,
        Err(err) => {
            let missing = Finding::failed(&target_check, Diagnostic::of(err));
            return [
                missing,
                Finding::new(linker_check, Status::Note, "not checked without rustc", ""),
            ];
        }
    };
    let target_finding = if toolchain.has_target(target) {
        Finding::ok(target_check, target)
    } else {
        Finding::new(
            target_check,
            Status::Missing,
            format!("{target} is not installed"),
            format!("rustup target add {target}"),
        )
        .with_cause(format!(
            "rust target `{target}` for {name} is not installed"
        ))
    };
    let linker_finding = match &platform.linker {
        None => Finding::new(linker_check, Status::Note, "cargo's default (none configured)", ""),
        Some(linker) if toolchain.has_linker(linker) => Finding::ok(linker_check, linker),
        Some(linker) => Finding::new(
            linker_check,
            Status::Missing,
            format!("`{linker}` is not on PATH"),
            format!("install it (Debian: the `gcc-<arch>-linux-gnu` packages), or change `linker` in [package.metadata.multiarch.platform.\"{name}\"]"),
        )
        .with_cause(format!("linker `{linker}` for {name} ({target}) is not on PATH")),
    };
    [target_finding, linker_finding]
}
