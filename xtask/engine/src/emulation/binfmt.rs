//! The kernel's binfmt_misc handlers: which foreign platforms run, and how.

use std::path::{Path, PathBuf};

use crate::config::platform::Platform;

/// Where Linux exposes binfmt_misc.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// One registered handler, as `/proc/sys/fs/binfmt_misc/<name>` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    pub enabled: bool,
    pub interpreter: PathBuf,
    pub flags: String,
    offset: usize,
    magic: Vec<u8>,
    mask: Vec<u8>,
}

impl Handler {
    /// Parses a handler file; extension-matching handlers (no magic) give `None`.
    pub fn parse(name: &str, text: &str) -> Option<Handler> {
        let mut handler = Handler {
            name: name.to_owned(),
            enabled: false,
            interpreter: PathBuf::new(),
            flags: String::new(),
            offset: 0,
            magic: Vec::new(),
            mask: Vec::new(),
        };
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("interpreter", path)) => handler.interpreter = PathBuf::from(path),
                Some(("flags:", flags)) => handler.flags = flags.trim().to_owned(),
                Some(("offset", offset)) => handler.offset = offset.trim().parse().ok()?,
                Some(("magic", hex)) => handler.magic = decode_hex(hex.trim())?,
                Some(("mask", hex)) => handler.mask = decode_hex(hex.trim())?,
                _ if line.trim() == "enabled" => handler.enabled = true,
                _ => {}
            }
        }
        (!handler.magic.is_empty()).then_some(handler)
    }

    /// Whether the F (fix-binary) flag is set: the kernel opened the interpreter when the
    /// handler was registered, so containers need no QEMU inside.
    pub fn fix_binary(&self) -> bool {
        self.flags.contains('F')
    }

    /// The `register` line that recreates this handler, to restore it after a change.
    pub fn registration_line(&self) -> String {
        format!(
            ":{}:M:{}:{}:{}:{}:{}",
            self.name,
            self.offset,
            escape_bytes(&self.magic),
            escape_bytes(&self.mask),
            self.interpreter.display(),
            self.flags
        )
    }

    /// Whether this handler runs a binary starting with `header`.
    pub fn matches(&self, header: &[u8]) -> bool {
        self.magic.iter().enumerate().all(|(i, &magic)| {
            let mask = self.mask.get(i).copied().unwrap_or(0xff);
            header
                .get(self.offset + i)
                .is_some_and(|&byte| byte & mask == magic & mask)
        })
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The first 20 bytes of an executable for `platform`: ident, type and machine.
pub fn elf_header(platform: &Platform) -> [u8; 20] {
    let mut header = [0u8; 20];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = if platform.elf_64 { 2 } else { 1 };
    header[5] = if platform.big_endian { 2 } else { 1 };
    header[6] = 1;
    let (kind, machine) = if platform.big_endian {
        (2u16.to_be_bytes(), platform.elf_machine.to_be_bytes())
    } else {
        (2u16.to_le_bytes(), platform.elf_machine.to_le_bytes())
    };
    header[16..18].copy_from_slice(&kind);
    header[18..20].copy_from_slice(&machine);
    header
}

/// The mask QEMU registers with: ignore the ABI version and padding, and accept both
/// ET_EXEC and ET_DYN.
pub fn elf_mask(platform: &Platform) -> [u8; 20] {
    let mut mask = [0xffu8; 20];
    mask[7] = 0;
    mask[if platform.big_endian { 17 } else { 16 }] = 0xfe;
    mask
}

/// Reads every magic-matching handler from `dir`; an unmounted or missing dir gives none.
pub fn read_handlers(dir: &Path) -> Vec<Handler> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut handlers: Vec<Handler> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                return None;
            }
            Handler::parse(&name, &std::fs::read_to_string(entry.path()).ok()?)
        })
        .collect();
    handlers.sort_by(|a, b| a.name.cmp(&b.name));
    handlers
}

/// The enabled handler that runs `platform`'s binaries, found by magic and mask, not name.
pub fn handler_for<'a>(handlers: &'a [Handler], platform: &Platform) -> Option<&'a Handler> {
    let header = elf_header(platform);
    handlers.iter().find(|h| h.enabled && h.matches(&header))
}

/// The line written to `register` for a QEMU handler of `platform`.
pub fn registration(platform: &Platform, interpreter: &Path, flags: &str) -> String {
    format!(
        ":qemu-{}:M::{}:{}:{}:{flags}",
        platform.qemu_arch,
        escape_bytes(&elf_header(platform)),
        escape_bytes(&elf_mask(platform)),
        interpreter.display()
    )
}

/// Bytes as `register` takes them: `\x7f\x45...`.
fn escape_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

/// How a platform's binaries run on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulation {
    /// The host's own architecture.
    Native,
    /// A registered handler, with or without the F flag.
    Handler {
        fix_binary: bool,
        interpreter: PathBuf,
    },
    /// Nothing runs them.
    Missing,
    /// Another engine (a Docker context) builds them; its own handlers apply, which this
    /// host cannot see.
    OtherEngine,
}

/// How `platform` runs here, given the registered handlers.
pub fn emulation(handlers: &[Handler], platform: &Platform) -> Emulation {
    if platform.is_host() {
        return Emulation::Native;
    }
    match handler_for(handlers, platform) {
        Some(handler) => Emulation::Handler {
            fix_binary: handler.fix_binary(),
            interpreter: handler.interpreter.clone(),
        },
        None => Emulation::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::platform::PLATFORMS;

    /// What Debian's qemu-user-static registers for aarch64 and arm.
    const DEBIAN_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
    const DEBIAN_ARM: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: PO\noffset 0\nmagic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn finds_handlers_by_magic_not_name() {
        let handlers = vec![
            Handler::parse("misnamed", DEBIAN_AARCH64).unwrap(),
            Handler::parse("qemu-arm", DEBIAN_ARM).unwrap(),
        ];
        let arm64 = Platform::parse("arm64").unwrap();
        let handler = handler_for(&handlers, arm64).unwrap();
        assert_eq!(handler.name, "misnamed");
        assert!(handler.fix_binary());
        let arm = Platform::parse("arm/v7").unwrap();
        assert!(!handler_for(&handlers, arm).unwrap().fix_binary());
        assert_eq!(
            handler_for(&handlers, Platform::parse("arm/v6").unwrap())
                .unwrap()
                .name,
            "qemu-arm"
        );
        assert_eq!(
            handler_for(&handlers, Platform::parse("riscv64").unwrap()),
            None
        );
        assert_eq!(
            handler_for(&handlers, Platform::parse("s390x").unwrap()),
            None
        );
    }

    #[test]
    fn disabled_handlers_do_not_count() {
        let disabled = DEBIAN_AARCH64.replace("enabled", "disabled");
        let handlers = vec![Handler::parse("qemu-aarch64", &disabled).unwrap()];
        assert_eq!(
            handler_for(&handlers, Platform::parse("arm64").unwrap()),
            None
        );
    }

    #[test]
    fn our_registration_matches_what_qemu_ships() {
        let arm64 = Platform::parse("arm64").unwrap();
        let ours = Handler::parse(
            "ours",
            &format!(
                "enabled\ninterpreter /x\nflags: F\noffset 0\nmagic {}\nmask {}\n",
                hex(&elf_header(arm64)),
                hex(&elf_mask(arm64))
            ),
        )
        .unwrap();
        let debian = Handler::parse("debian", DEBIAN_AARCH64).unwrap();
        assert_eq!((&ours.magic, &ours.mask), (&debian.magic, &debian.mask));
        assert_eq!(
            debian.registration_line(),
            format!(
                ":debian:M:0:{}:{}:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:POF",
                escape_bytes(&debian.magic),
                escape_bytes(&debian.mask)
            )
        );
        let line = registration(arm64, Path::new("/cache/qemu-aarch64-static"), "F");
        assert!(
            line.starts_with(":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00"),
            "{line}"
        );
        assert!(line.ends_with(":/cache/qemu-aarch64-static:F"), "{line}");
    }

    #[test]
    fn every_platform_matches_only_its_own_handler() {
        let handlers: Vec<Handler> = PLATFORMS
            .iter()
            .map(|p| {
                Handler::parse(
                    &p.name(),
                    &format!(
                        "enabled\ninterpreter /q\nflags: F\noffset 0\nmagic {}\nmask {}\n",
                        hex(&elf_header(p)),
                        hex(&elf_mask(p))
                    ),
                )
                .unwrap()
            })
            .collect();
        for platform in PLATFORMS {
            let found = handler_for(&handlers, platform).unwrap();
            let expected = Platform::parse(&found.name).unwrap();
            assert_eq!(expected.elf_machine, platform.elf_machine, "{platform}");
        }
    }

    #[test]
    fn emulation_of_the_host_is_native() {
        assert_eq!(emulation(&[], Platform::host().unwrap()), Emulation::Native);
        let foreign = crate::config::platform::PLATFORMS
            .iter()
            .find(|p| !p.is_host() && p.elf_machine != Platform::host().unwrap().elf_machine)
            .unwrap();
        assert_eq!(emulation(&[], foreign), Emulation::Missing);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
