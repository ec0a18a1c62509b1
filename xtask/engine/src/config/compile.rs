//! How binaries are compiled: the C toolchain of each platform, its target triple, and
//! cargo's feature, profile and lockfile options.

use serde::{Deserialize, Serialize};

/// Who supplies the C compiler, archiver and linker for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Toolchain {
    /// `cargo build`, with `cc`/`linker` from the config or cc-rs's default for the triple.
    #[default]
    Cargo,
    /// `cargo zigbuild`: zig compiles C and C++ and links for every target, musl included.
    Zig,
}

/// A Rust target triple and, for cargo-zigbuild, the glibc version it links against
/// (`aarch64-unknown-linux-gnu.2.28`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RustTarget {
    /// The plain triple: what rustup installs and what names cargo's output directory.
    pub(crate) triple: String,
    pub(crate) glibc: Option<String>,
}

impl RustTarget {
    /// Reads a triple as written in the config, refusing anything cargo could take for a flag.
    pub(crate) fn parse(text: &str) -> Result<RustTarget, String> {
        let well_formed = !text.is_empty()
            && text
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !well_formed || text.split('-').count() < 2 {
            return Err(format!("`{text}` is not a Rust target triple"));
        }
        let Some((triple, version)) = text.split_once('.') else {
            return Ok(RustTarget {
                triple: text.to_owned(),
                glibc: None,
            });
        };
        let numeric = version.split('.').count() == 2
            && version
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
        if !triple.contains("-gnu") || !numeric {
            return Err(format!(
                "`{text}` is not a Rust target triple (a glibc suffix such as `.2.28` follows a `-gnu` triple)"
            ));
        }
        Ok(RustTarget {
            triple: triple.to_owned(),
            glibc: Some(version.to_owned()),
        })
    }

    /// The spelling handed to cargo (with the glibc suffix for cargo-zigbuild).
    pub(crate) fn for_cargo(&self) -> String {
        match &self.glibc {
            Some(glibc) => format!("{}.{glibc}", self.triple),
            None => self.triple.clone(),
        }
    }
}

/// Cargo's options for every build of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CargoOptions {
    pub(crate) features: Vec<String>,
    pub(crate) no_default_features: bool,
    pub(crate) all_features: bool,
    pub(crate) profile: String,
    pub(crate) locked: bool,
    pub(crate) frozen: bool,
}

impl Default for CargoOptions {
    fn default() -> CargoOptions {
        CargoOptions {
            features: Vec::new(),
            no_default_features: false,
            all_features: false,
            profile: "release".into(),
            locked: false,
            frozen: false,
        }
    }
}

impl CargoOptions {
    /// The directory under `target/<triple>/` that the profile's binaries land in.
    pub(crate) fn profile_dir(&self) -> &str {
        match self.profile.as_str() {
            "dev" | "test" => "debug",
            "release" | "bench" => "release",
            custom => custom,
        }
    }

    /// The flags that carry these options; `=` keeps a value from being read as a flag.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = vec![format!("--profile={}", self.profile)];
        if !self.features.is_empty() {
            args.push(format!("--features={}", self.features.join(",")));
        }
        let flags = [
            (self.no_default_features, "--no-default-features"),
            (self.all_features, "--all-features"),
            (self.locked, "--locked"),
            (self.frozen, "--frozen"),
        ];
        args.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| f.to_string()),
        );
        args
    }
}

/// Whether `name` can be a cargo feature (`serde`, `dep:x`, `crate/feature`, `x?/y`).
pub(crate) fn is_feature_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_+./:?".contains(&b))
}

/// Whether `name` can be a cargo profile.
pub(crate) fn is_profile_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_with_and_without_a_glibc_version() {
        let plain = RustTarget::parse("aarch64-unknown-linux-musl").unwrap();
        assert_eq!(plain.triple, "aarch64-unknown-linux-musl");
        assert_eq!(plain.glibc, None);
        let versioned = RustTarget::parse("aarch64-unknown-linux-gnu.2.28").unwrap();
        assert_eq!(versioned.triple, "aarch64-unknown-linux-gnu");
        assert_eq!(versioned.glibc.as_deref(), Some("2.28"));
        assert_eq!(versioned.for_cargo(), "aarch64-unknown-linux-gnu.2.28");
        for bad in [
            "",
            "--help",
            "x86_64",
            "aarch64-unknown-linux-gnu\n",
            "aarch64 unknown",
            "aarch64-unknown-linux-musl.2.28",
            "aarch64-unknown-linux-gnu.2",
            "aarch64-unknown-linux-gnu.2.x",
        ] {
            assert!(RustTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn profiles_name_their_directory_and_options_become_flags() {
        let mut options = CargoOptions::default();
        assert_eq!(options.profile_dir(), "release");
        assert_eq!(options.args(), ["--profile=release"]);
        options.profile = "dev".into();
        assert_eq!(options.profile_dir(), "debug");
        options.profile = "small".into();
        options.features = vec!["loud".into(), "serde/std".into()];
        options.no_default_features = true;
        options.locked = true;
        assert_eq!(options.profile_dir(), "small");
        assert_eq!(
            options.args(),
            [
                "--profile=small",
                "--features=loud,serde/std",
                "--no-default-features",
                "--locked"
            ]
        );
    }

    #[test]
    fn feature_and_profile_names() {
        for ok in ["loud", "dep:zstd", "serde/std", "x?/y", "a-b_c+d"] {
            assert!(is_feature_name(ok), "{ok}");
        }
        for bad in ["", "-x", "--help", "a b", "a,b", "a\n"] {
            assert!(!is_feature_name(bad), "{bad:?}");
        }
        assert!(is_profile_name("small-release"));
        for bad in ["", "-p", "a/b", "1x"] {
            assert!(!is_profile_name(bad), "{bad:?}");
        }
    }
}
