//! Emulation: static QEMU binaries (cache, download, checksums) and the host's binfmt handlers.

pub mod binfmt;
pub mod qemu;
