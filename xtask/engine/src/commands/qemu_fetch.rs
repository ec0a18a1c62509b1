//! `cargo xtask qemu fetch`: fills the QEMU cache for the configured foreign platforms.

use anyhow::{Context, Result};

use crate::commands::cli::Selection;
use crate::commands::setup::foreign_platforms;

pub(crate) fn run(selection: &Selection) -> Result<()> {
    let config = super::load_config(selection, &selection.cli_layer())?;
    let platforms = foreign_platforms(&config.platforms);
    if platforms.is_empty() {
        eprintln!("every configured platform is native here; no QEMU is needed");
    }
    for platform in platforms {
        let binary = crate::emulation::qemu::locate(&config.qemu, platform.qemu_arch)
            .with_context(|| format!("cannot fetch QEMU for {platform}"))?;
        eprintln!("[{platform}] {}", binary.display());
        println!("{}", binary.display());
    }
    Ok(())
}
