//! `cargo multiarch setup`: registers QEMU binfmt handlers (with the F flag) for the configured
//! platforms, so foreign `RUN` steps and containers run on this host.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::Shell;

use crate::commands::cli::SetupArgs;
use crate::config::platform::Platform;
use crate::emulation::binfmt::{self, BINFMT_DIR};
use crate::emulation::qemu;

pub(crate) fn run(args: &SetupArgs) -> Result<()> {
    if cfg!(target_os = "macos") {
        eprintln!(
            "Docker Desktop registers QEMU handlers in its own VM; nothing to set up on macOS"
        );
        return Ok(());
    }
    if !cfg!(target_os = "linux") {
        return Err(crate::diagnostic::diagnostic(
            "`cargo multiarch setup` registers Linux binfmt_misc handlers and only runs on Linux",
            "use Docker Desktop, which ships QEMU handlers",
        ));
    }
    let sh = Shell::new()?;
    let config = super::load_config(&args.selection, &args.selection.cli_layer())?;
    let dir = Path::new(BINFMT_DIR);
    if !dir.join("register").exists() {
        let dir_arg = dir.display().to_string();
        crate::process::Command::new(
            "mount",
            ["-t", "binfmt_misc", "binfmt_misc", dir_arg.as_str()],
        )
        .run(&sh)
        .map_err(|err| {
            crate::diagnostic::diagnostic(
                format!("cannot mount binfmt_misc at /proc/sys/fs/binfmt_misc: {err}"),
                "run as root: sudo -E cargo multiarch setup",
            )
        })?;
    }
    for platform in foreign_platforms(&config.platforms) {
        let handlers = binfmt::read_handlers(dir);
        let existing = binfmt::handler_for(&handlers, platform);
        if let (Some(handler), false) = (existing, args.reset) {
            let flag = if handler.fix_binary() {
                "with"
            } else {
                "without"
            };
            eprintln!(
                "[{platform}] already registered: {} ({flag} F, {})",
                handler.name,
                handler.interpreter.display()
            );
            continue;
        }
        let name = format!("qemu-{}", platform.qemu_arch);
        if existing.is_none() && dir.join(&name).exists() && !args.reset {
            return Err(crate::diagnostic::diagnostic(
                format!("a disabled or different handler named {name} is in the way of {platform}"),
                "run `cargo multiarch setup --reset` to replace it",
            ));
        }
        // QEMU first: a failed fetch must not leave the platform without its old handler.
        let interpreter = qemu::locate(&config.qemu, platform.qemu_arch)
            .with_context(|| format!("cannot set up {platform}"))?;
        if let Some(handler) = existing {
            remove(&dir.join(&handler.name))?;
        }
        if dir.join(&name).exists() {
            remove(&dir.join(&name))?;
        }
        let line = binfmt::registration(platform, &interpreter, "F");
        std::fs::write(dir.join("register"), &line).map_err(|err| {
            crate::diagnostic::diagnostic(
                format!("cannot register {name} for {platform}: {err}"),
                "run as root: sudo -E cargo multiarch setup",
            )
        })?;
        eprintln!(
            "[{platform}] registered {name} with F: {}",
            interpreter.display()
        );
    }
    Ok(())
}

/// The configured platforms that are not the host's, one per QEMU binary.
pub(crate) fn foreign_platforms(platforms: &[&'static Platform]) -> Vec<&'static Platform> {
    let mut foreign: Vec<&'static Platform> = Vec::new();
    for &platform in platforms {
        let native = Platform::host().is_some_and(|host| host.elf_machine == platform.elf_machine);
        if !native && !foreign.iter().any(|p| p.qemu_arch == platform.qemu_arch) {
            foreign.push(platform);
        }
    }
    foreign
}

fn remove(handler: &Path) -> Result<()> {
    std::fs::write(handler, "-1").map_err(|err| {
        crate::diagnostic::diagnostic(
            format!(
                "cannot remove the binfmt handler {}: {err}",
                handler.display()
            ),
            "run as root: sudo -E cargo multiarch setup",
        )
    })
}
