//! The platform table: the one place that knows every spelling of an architecture.

use std::fmt;

use anyhow::Result;

/// One architecture as each tool in the chain names it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// The OCI `architecture` field, as in `linux/<arch>`.
    pub arch: &'static str,
    /// The OCI `variant` field that a manifest list entry carries.
    pub variant: Option<&'static str>,
    /// Docker Hub's per-architecture namespace (`arm64v8/alpine`).
    pub docker_arch: &'static str,
    /// QEMU's name, as in `qemu-<arch>-static`.
    pub qemu_arch: &'static str,
    /// What `uname -m` prints on this architecture.
    pub uname_m: &'static str,
    /// Debian's architecture name.
    pub debian_arch: &'static str,
    /// The Rust target used unless the config names another one.
    pub rust_target: &'static str,
    /// The ELF `e_machine` of this architecture's binaries.
    pub elf_machine: u16,
    /// Whether its binaries are ELFCLASS64.
    pub elf_64: bool,
    /// Whether its binaries are big-endian.
    pub big_endian: bool,
    /// Other spellings met in the wild that mean this platform.
    aliases: &'static [&'static str],
}

/// The OS every platform in the table runs; images for other systems are out of scope.
pub const OS: &str = "linux";

/// Operating systems that OCI platform strings name and this tool does not build for.
const OTHER_OSES: &[&str] = &[
    "windows", "darwin", "freebsd", "netbsd", "openbsd", "illumos", "solaris", "aix", "plan9",
    "js", "wasip1",
];

/// Every known platform; the first entry of each architecture is its default variant.
pub static PLATFORMS: &[Platform] = &[
    Platform {
        arch: "amd64",
        variant: None,
        docker_arch: "amd64",
        qemu_arch: "x86_64",
        uname_m: "x86_64",
        debian_arch: "amd64",
        rust_target: "x86_64-unknown-linux-musl",
        elf_machine: 62,
        elf_64: true,
        big_endian: false,
        aliases: &["x86-64", "x86_64", "amd64/v1"],
    },
    Platform {
        arch: "arm64",
        variant: Some("v8"),
        docker_arch: "arm64v8",
        qemu_arch: "aarch64",
        uname_m: "aarch64",
        debian_arch: "arm64",
        rust_target: "aarch64-unknown-linux-musl",
        elf_machine: 183,
        elf_64: true,
        big_endian: false,
        aliases: &["aarch64", "arm64/v8", "arm64/8", "aarch64/v8"],
    },
    Platform {
        arch: "arm",
        variant: Some("v7"),
        docker_arch: "arm32v7",
        qemu_arch: "arm",
        uname_m: "armv7l",
        debian_arch: "armhf",
        rust_target: "armv7-unknown-linux-musleabihf",
        elf_machine: 40,
        elf_64: false,
        big_endian: false,
        aliases: &["arm", "arm/7", "armv7", "armv7hf"],
    },
    Platform {
        arch: "arm",
        variant: Some("v6"),
        docker_arch: "arm32v6",
        qemu_arch: "arm",
        uname_m: "armv6l",
        debian_arch: "armel",
        rust_target: "arm-unknown-linux-musleabihf",
        elf_machine: 40,
        elf_64: false,
        big_endian: false,
        aliases: &["arm/6", "armv6"],
    },
    Platform {
        arch: "386",
        variant: None,
        docker_arch: "i386",
        qemu_arch: "i386",
        uname_m: "i686",
        debian_arch: "i386",
        rust_target: "i686-unknown-linux-musl",
        elf_machine: 3,
        elf_64: false,
        big_endian: false,
        aliases: &["x86", "i486", "i586"],
    },
    Platform {
        arch: "ppc64le",
        variant: None,
        docker_arch: "ppc64le",
        qemu_arch: "ppc64le",
        uname_m: "ppc64le",
        debian_arch: "ppc64el",
        rust_target: "powerpc64le-unknown-linux-musl",
        elf_machine: 21,
        elf_64: true,
        big_endian: false,
        aliases: &[],
    },
    Platform {
        arch: "s390x",
        variant: None,
        docker_arch: "s390x",
        qemu_arch: "s390x",
        uname_m: "s390x",
        debian_arch: "s390x",
        rust_target: "s390x-unknown-linux-gnu",
        elf_machine: 22,
        elf_64: true,
        big_endian: true,
        aliases: &[],
    },
    Platform {
        arch: "riscv64",
        variant: None,
        docker_arch: "riscv64",
        qemu_arch: "riscv64",
        uname_m: "riscv64",
        debian_arch: "riscv64",
        rust_target: "riscv64gc-unknown-linux-musl",
        elf_machine: 243,
        elf_64: true,
        big_endian: false,
        aliases: &[],
    },
];

impl Platform {
    /// Finds the platform for any spelling a user meets: `linux/arm64/v8`, `arm64v8`,
    /// `aarch64`, `armhf`, `arm32v7`... Matching ignores case and an `linux/` prefix,
    /// and normalises the way containerd does (`arm` alone is `arm/v7`).
    pub fn parse(input: &str) -> Result<&'static Platform> {
        let lowered = input.trim().to_ascii_lowercase();
        let spelling = match lowered.split_once('/') {
            Some((OS, rest)) => rest,
            Some((os, _)) if OTHER_OSES.contains(&os) => {
                return Err(crate::diagnostic::diagnostic(
                    format!("unsupported platform `{input}`: only `{OS}` images can be built"),
                    format!("use one of {}", known_list()),
                ))
            }
            _ => lowered.as_str(),
        };
        PLATFORMS
            .iter()
            .find(|p| p.spellings().any(|s| s == spelling))
            .ok_or_else(|| {
                crate::diagnostic::diagnostic(
                    format!("unknown platform `{input}`"),
                    format!("use one of {}", known_list()),
                )
            })
    }

    /// The platform of the machine this program runs on, if the table knows it.
    pub fn host() -> Option<&'static Platform> {
        let arch = match std::env::consts::ARCH {
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            arch => arch,
        };
        Platform::parse(arch).ok()
    }

    /// Every spelling of this platform, without the `linux/` prefix.
    fn spellings(&self) -> impl Iterator<Item = &'static str> + '_ {
        let canonical = self.name_without_os();
        [
            canonical,
            self.docker_arch,
            self.qemu_arch,
            self.uname_m,
            self.debian_arch,
        ]
        .into_iter()
        .chain(self.aliases.iter().copied())
        // `arm` is QEMU's name for both arm variants; containerd reads it as v7.
        .filter(move |s| *s != "arm" || self.variant == Some("v7"))
    }

    fn name_without_os(&self) -> &'static str {
        match (self.arch, self.variant) {
            ("arm", Some("v7")) => "arm/v7",
            ("arm", Some("v6")) => "arm/v6",
            _ => self.arch,
        }
    }

    /// The canonical OCI platform string: `linux/arm64`, `linux/arm/v7`.
    pub fn name(&self) -> String {
        format!("{OS}/{}", self.name_without_os())
    }

    /// The `platform` of a descriptor in an index: `architecture`, `os`, and `variant`
    /// when the platform has one.
    pub fn descriptor(&self) -> serde_json::Value {
        let mut value = serde_json::json!({ "architecture": self.arch, "os": OS });
        if let Some(variant) = self.variant {
            value["variant"] = serde_json::json!(variant);
        }
        value
    }

    /// The directory name for this platform: `linux-arm-v7`.
    pub fn slug(&self) -> String {
        self.name().replace('/', "-")
    }

    /// Whether an image or manifest entry with these fields runs on this platform: exact
    /// os, architecture and variant, except that `arm64` images may omit their `v8`.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        let variant_matches = match self.arch {
            "arm64" => matches!(variant, None | Some("v8")),
            _ => variant == self.variant,
        };
        os == OS && architecture == self.arch && variant_matches
    }

    /// Whether this is the platform of the machine this program runs on.
    pub fn is_host(&self) -> bool {
        Platform::host() == Some(self)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

fn known_list() -> String {
    PLATFORMS
        .iter()
        .map(|p| format!("{} ({})", p.name(), p.docker_arch))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The prefix of the GNU cross tools for a Linux Rust target, as cc-rs derives the C
/// compiler's name from it (`aarch64-linux-musl` for `aarch64-linux-musl-gcc`).
pub fn gnu_tool_prefix(rust_target: &str) -> Option<String> {
    let mut parts = rust_target.split('-');
    let (arch, _vendor, os, env) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if os != OS {
        return None;
    }
    let arch = match arch {
        "arm" | "armv5te" | "armv6" | "armv7" => "arm",
        "riscv64gc" => "riscv64",
        arch => arch,
    };
    Some(format!("{arch}-linux-{env}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(input: &str) -> String {
        Platform::parse(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .name()
    }

    #[test]
    fn every_spelling_of_every_platform_parses_to_it() {
        for platform in PLATFORMS {
            for spelling in platform.spellings() {
                for input in [
                    spelling.to_owned(),
                    format!("linux/{spelling}"),
                    spelling.to_uppercase(),
                ] {
                    assert_eq!(Platform::parse(&input).unwrap(), platform, "{input}");
                }
            }
        }
    }

    #[test]
    fn no_spelling_means_two_platforms() {
        for a in PLATFORMS {
            for b in PLATFORMS.iter().filter(|b| *b != a) {
                for spelling in a.spellings() {
                    assert!(
                        !b.spellings().any(|s| s == spelling),
                        "{spelling} in {a} and {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn canonical_names_match_oci_and_round_trip() {
        let names: Vec<String> = PLATFORMS.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "linux/amd64",
                "linux/arm64",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/386",
                "linux/ppc64le",
                "linux/s390x",
                "linux/riscv64"
            ]
        );
        for platform in PLATFORMS {
            assert_eq!(Platform::parse(&platform.name()).unwrap(), platform);
        }
    }

    #[test]
    fn normalises_like_containerd() {
        let cases = [
            ("aarch64", "linux/arm64"),
            ("arm64", "linux/arm64"),
            ("arm64v8", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/aarch64", "linux/arm64"),
            ("armhf", "linux/arm/v7"),
            ("arm32v7", "linux/arm/v7"),
            ("linux/arm/v7", "linux/arm/v7"),
            ("linux/arm", "linux/arm/v7"),
            ("arm", "linux/arm/v7"),
            ("armv7l", "linux/arm/v7"),
            ("arm/7", "linux/arm/v7"),
            ("armel", "linux/arm/v6"),
            ("arm32v6", "linux/arm/v6"),
            ("armv6l", "linux/arm/v6"),
            ("x86_64", "linux/amd64"),
            ("x86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("i386", "linux/386"),
            ("i686", "linux/386"),
            ("ppc64el", "linux/ppc64le"),
            ("riscv64", "linux/riscv64"),
            (" Linux/ARM64 ", "linux/arm64"),
        ];
        for (input, expected) in cases {
            assert_eq!(name_of(input), expected, "{input}");
        }
    }

    #[test]
    fn manifest_fields_are_exact() {
        let fields = |s: &str| {
            let p = Platform::parse(s).unwrap();
            (p.arch, p.variant)
        };
        assert_eq!(fields("arm64"), ("arm64", Some("v8")));
        assert_eq!(fields("arm/v7"), ("arm", Some("v7")));
        assert_eq!(fields("arm/v6"), ("arm", Some("v6")));
        assert_eq!(fields("amd64"), ("amd64", None));
        assert_eq!(fields("riscv64"), ("riscv64", None));
        for platform in PLATFORMS {
            assert_ne!(platform.variant, Some("armv8"));
        }
    }

    #[test]
    fn every_default_target_matches_its_arch() {
        for platform in PLATFORMS {
            let arch = platform.rust_target.split('-').next().unwrap();
            let expected = match platform.qemu_arch {
                "x86_64" | "aarch64" | "s390x" => platform.qemu_arch,
                "arm" => &platform.rust_target[..platform.rust_target.find('-').unwrap()],
                "i386" => "i686",
                "ppc64le" => "powerpc64le",
                "riscv64" => "riscv64gc",
                other => panic!("no rule for {other}"),
            };
            assert_eq!(arch, expected, "{platform}");
            assert!(platform.rust_target.contains("-linux-"), "{platform}");
        }
    }

    #[test]
    fn unknown_and_foreign_platforms_are_errors_listing_the_known_ones() {
        for input in ["sparc", "linux/arm/v9", "arm64v9", "", "linux/"] {
            let message = crate::diagnostic::format_error(&Platform::parse(input).unwrap_err())
                .replacen("error: ", "", 1);
            assert!(
                message.starts_with(&format!("unknown platform `{input}`")),
                "{message}"
            );
            assert!(
                message.contains("help: use one of linux/amd64 (amd64), linux/arm64 (arm64v8)"),
                "{message}"
            );
        }
        let message = Platform::parse("windows/amd64").unwrap_err().to_string();
        assert!(message.contains("only `linux` images"), "{message}");
    }

    #[test]
    fn image_fields_match_exactly() {
        let arm = Platform::parse("arm/v7").unwrap();
        assert!(arm.matches("linux", "arm", Some("v7")));
        assert!(!arm.matches("linux", "arm", Some("v6")) && !arm.matches("linux", "arm", None));
        assert!(!arm.matches("linux", "arm64", None));
        let arm64 = Platform::parse("arm64").unwrap();
        assert!(
            arm64.matches("linux", "arm64", None) && arm64.matches("linux", "arm64", Some("v8"))
        );
        let amd64 = Platform::parse("amd64").unwrap();
        assert!(amd64.matches("linux", "amd64", None) && !amd64.matches("windows", "amd64", None));
    }

    #[test]
    fn slugs_are_directory_names() {
        assert_eq!(Platform::parse("arm/v7").unwrap().slug(), "linux-arm-v7");
        assert_eq!(Platform::parse("arm64").unwrap().slug(), "linux-arm64");
    }

    #[test]
    fn host_is_known() {
        let host = Platform::host().expect("host platform in the table");
        assert!(host.is_host());
        assert_eq!(
            host.uname_m == std::env::consts::ARCH,
            cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
        );
    }

    #[test]
    fn every_default_target_has_the_gnu_tool_prefix_cc_rs_looks_for() {
        let expected = [
            ("linux/amd64", "x86_64-linux-musl"),
            ("linux/arm64", "aarch64-linux-musl"),
            ("linux/arm/v7", "arm-linux-musleabihf"),
            ("linux/arm/v6", "arm-linux-musleabihf"),
            ("linux/386", "i686-linux-musl"),
            ("linux/ppc64le", "powerpc64le-linux-musl"),
            ("linux/s390x", "s390x-linux-gnu"),
            ("linux/riscv64", "riscv64-linux-musl"),
        ];
        assert_eq!(expected.len(), PLATFORMS.len());
        for (name, prefix) in expected {
            let platform = Platform::parse(name).unwrap();
            assert_eq!(
                gnu_tool_prefix(platform.rust_target).as_deref(),
                Some(prefix),
                "{name}"
            );
        }
        assert_eq!(
            gnu_tool_prefix("armv7-unknown-linux-gnueabihf").as_deref(),
            Some("arm-linux-gnueabihf")
        );
        assert_eq!(
            gnu_tool_prefix("riscv64gc-unknown-linux-gnu").as_deref(),
            Some("riscv64-linux-gnu")
        );
        assert_eq!(gnu_tool_prefix("x86_64-pc-windows-msvc"), None);
    }
}
