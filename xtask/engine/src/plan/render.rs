//! Rendering one platform's Dockerfile for this host, with QEMU copied in where needed.

use anyhow::{Context, Result};

use crate::config::template::{DockerfileContext, Template};
use crate::config::{Config, PlatformConfig, QemuCopy};
use crate::emulation::binfmt::{self, Emulation, Handler};

/// A platform's Dockerfile as rendered for this host.
pub(crate) struct Rendered {
    pub(crate) dockerfile: String,
    /// The QEMU binary's name in the context, when one is copied.
    pub(crate) qemu: Option<String>,
    pub(crate) emulation: Emulation,
}

/// Renders the Dockerfile for one platform, deciding from the host's binfmt handler and
/// `qemu.copy` whether QEMU is copied into the context.
pub(crate) fn render_platform(
    config: &Config,
    platform_config: &PlatformConfig,
    template: &Template,
    handlers: &[Handler],
) -> Result<Rendered> {
    let platform = platform_config.platform;
    let emulation = match platform_config.engine.context {
        Some(_) => Emulation::OtherEngine,
        None => binfmt::emulation(handlers, platform),
    };
    let copy = match (config.qemu.copy, &emulation) {
        (_, Emulation::Native)
        | (QemuCopy::Never, _)
        | (QemuCopy::Auto, Emulation::Missing | Emulation::OtherEngine) => false,
        (QemuCopy::Always, _) => true,
        (QemuCopy::Auto, Emulation::Handler { fix_binary, .. }) => !fix_binary,
    };
    let mut context = DockerfileContext::new(
        platform,
        &platform_config.target,
        &config.bins,
        &config.package.name,
        &config.package.version,
        &platform_config.vars,
    );
    if let Emulation::Handler { interpreter, .. } = &emulation {
        context.qemu_interpreter = interpreter.display().to_string();
    }
    context.qemu = copy.then(|| crate::emulation::qemu::binary_name(platform.qemu_arch));
    let dockerfile = template
        .render(&context)
        .with_context(|| format!("rendering the Dockerfile for {platform}"))?;
    Ok(Rendered {
        dockerfile,
        qemu: context.qemu,
        emulation,
    })
}
