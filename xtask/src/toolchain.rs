//! Checks that each platform's Rust target and linker exist before anything is compiled.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::config::PlatformConfig;

/// The installed Rust toolchain, as `rustc --print sysroot` locates it.
pub struct Toolchain {
    sysroot: PathBuf,
}

impl Toolchain {
    pub fn locate(sh: &Shell) -> Result<Toolchain> {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = cmd!(sh, "{rustc} --print sysroot")
            .quiet()
            .read()
            .context("cannot run `rustc --print sysroot`\nhelp: install Rust with rustup (https://rustup.rs)")?;
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

    /// Fails on the first platform whose target or linker is missing, saying how to fix it.
    pub fn check(&self, platforms: &[PlatformConfig]) -> Result<()> {
        for platform in platforms {
            let target = &platform.target;
            if !self.has_target(target) {
                bail!(
                    "rust target `{target}` for {} is not installed\n\
                     help: rustup target add {target}",
                    platform.platform
                );
            }
            if let Some(linker) = &platform.linker {
                if !self.has_linker(linker) {
                    bail!(
                        "linker `{linker}` for {} ({target}) is not on PATH\n\
                         help: install it (Debian: the `gcc-<arch>-linux-gnu` packages), or change `linker` in [package.metadata.multiarch.platform.\"{}\"]",
                        platform.platform,
                        platform.platform
                    );
                }
            }
        }
        Ok(())
    }
}
