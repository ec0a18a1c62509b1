//! The rustflags a user gives cargo (`CARGO_ENCODED_RUSTFLAGS`, `RUSTFLAGS`, and
//! `build.rustflags` and `target.<triple>.rustflags` in cargo's config), read once, so that
//! a platform's own flags compose with them instead of replacing them or being dropped.
//!
//! Cargo takes the first of these that is set: the two environment variables (for every
//! target), then every `target` table that applies, then `build.rustflags`. So flags the
//! tool passes as `target.<triple>.rustflags` vanish under `RUSTFLAGS`, and themselves
//! make cargo drop `build.rustflags`; [`UserRustflags::compose`] puts both together.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::diagnostic::diagnostic;

/// What the user set, as cargo would read it for the workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UserRustflags {
    /// `CARGO_ENCODED_RUSTFLAGS` or `RUSTFLAGS`: the variable and its flags.
    pub(crate) environment: Option<(&'static str, Vec<String>)>,
    /// `build.rustflags` of cargo's config files, then `CARGO_BUILD_RUSTFLAGS`.
    pub(crate) build: Vec<String>,
    /// `target.<triple or cfg(...)>.rustflags` of the config files, and
    /// `CARGO_TARGET_<TRIPLE>_RUSTFLAGS`: the key and its flags.
    pub(crate) targets: Vec<(String, Vec<String>)>,
}

/// How a platform's flags reach cargo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Channel {
    /// `--config target.<triple>.rustflags=[...]`, which cargo joins to the user's own
    /// `target` tables.
    Config,
    /// `CARGO_ENCODED_RUSTFLAGS` for that invocation: the user's variable with the
    /// platform's flags after it.
    Environment,
}

/// The flags one target is compiled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Composed {
    /// Everything rustc gets for the target: the user's flags, then the platform's.
    pub(crate) all: Vec<String>,
    /// What the tool passes, and how.
    pub(crate) passed: Vec<String>,
    pub(crate) channel: Channel,
}

impl UserRustflags {
    /// Reads the environment through `var` and cargo's config files from `root` upwards,
    /// then `cargo_home`, as cargo does.
    pub(crate) fn read(
        root: &Path,
        cargo_home: Option<&Path>,
        var: impl Fn(&str) -> Option<String>,
    ) -> UserRustflags {
        let environment = match (var("CARGO_ENCODED_RUSTFLAGS"), var("RUSTFLAGS")) {
            (Some(encoded), _) => Some((
                "CARGO_ENCODED_RUSTFLAGS",
                encoded
                    .split('\u{1f}')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            (None, Some(flags)) => Some(("RUSTFLAGS", words(&flags))),
            (None, None) => None,
        };
        let mut user = UserRustflags {
            environment,
            ..UserRustflags::default()
        };
        // Lowest precedence first: cargo joins arrays with the higher-precedence ones last.
        for file in config_files(root, cargo_home).into_iter().rev() {
            let Some(config) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| text.parse::<toml::Table>().ok())
            else {
                continue;
            };
            if let Some(flags) = config.get("build").and_then(|b| b.get("rustflags")) {
                user.build.extend(flag_list(flags));
            }
            for (key, table) in config
                .get("target")
                .and_then(|t| t.as_table())
                .into_iter()
                .flatten()
            {
                if let Some(flags) = table.get("rustflags") {
                    user.targets.push((key.clone(), flag_list(flags)));
                }
            }
        }
        if let Some(flags) = var("CARGO_BUILD_RUSTFLAGS") {
            user.build.extend(words(&flags));
        }
        user
    }

    /// The user's `CARGO_TARGET_<TRIPLE>_RUSTFLAGS`, which only the caller can look up
    /// (it knows the triples).
    pub(crate) fn with_target_variable(mut self, triple: &str, flags: Option<String>) -> Self {
        if let Some(flags) = flags {
            self.targets.push((triple.to_owned(), words(&flags)));
        }
        self
    }

    /// The user's flags for `triple`, as cargo would choose them, how the platform's must
    /// reach cargo to join them, and what named them.
    fn for_target(&self, triple: &str) -> (Vec<String>, Channel, String) {
        if let Some((variable, flags)) = &self.environment {
            return (flags.clone(), Channel::Environment, (*variable).into());
        }
        let targets: Vec<&(String, Vec<String>)> = self
            .targets
            .iter()
            .filter(|(condition, _)| applies_to(condition, triple))
            .collect();
        if targets.is_empty() {
            (
                self.build.clone(),
                Channel::Config,
                "build.rustflags".into(),
            )
        } else {
            let flags = targets.iter().flat_map(|(_, f)| f.clone()).collect();
            (flags, Channel::Config, format!("target.{triple}.rustflags"))
        }
    }

    /// Refuses flags of the user and of the platform (`ours`, set at `key`) that contradict
    /// each other on static linking, naming both.
    pub(crate) fn check(
        &self,
        triple: &str,
        ours: &[String],
        platform: &str,
        key: &str,
    ) -> Result<()> {
        let (user, _, source) = self.for_target(triple);
        if crt_static(&user) == Some(false) && crt_static(ours) == Some(true) {
            return Err(diagnostic(
                format!(
                    "{source} turns static linking off (`-crt-static`), and {platform} turns it on in `{key}`"
                ),
                format!("drop `-crt-static` from {source}, or the platform's `+crt-static` (its image then needs a base with the C library)"),
            ));
        }
        Ok(())
    }

    /// The flags of `triple` with the platform's `ours`: the user's first, as cargo would
    /// have chosen them, then ours.
    pub(crate) fn compose(&self, triple: &str, ours: &[String]) -> Composed {
        let (user, channel, _) = self.for_target(triple);
        let all: Vec<String> = user.iter().chain(ours).cloned().collect();
        let passed = match channel {
            Channel::Environment => all.clone(),
            // Cargo joins `--config` arrays to the user's own `target` tables; only a
            // `build.rustflags` it would drop for ours must be passed along with them.
            Channel::Config if self.targets.iter().any(|(c, _)| applies_to(c, triple)) => {
                ours.to_vec()
            }
            Channel::Config if ours.is_empty() => Vec::new(),
            Channel::Config => all.clone(),
        };
        Composed {
            all,
            passed,
            channel,
        }
    }
}

/// Whether `flags` turn `crt-static` on or off (the last word wins), if they say.
fn crt_static(flags: &[String]) -> Option<bool> {
    flags
        .iter()
        .flat_map(|f| f.split(','))
        .filter_map(|part| {
            let feature = part.rsplit('=').next().unwrap_or(part);
            match feature {
                "+crt-static" => Some(true),
                "-crt-static" => Some(false),
                _ => None,
            }
        })
        .next_back()
}

/// Whether a `target` condition (`cfg(...)` or a plain triple), of a cargo config table
/// or a dependency, holds for `target`; a `cfg` on a target cfg-expr does not know holds.
pub(crate) fn applies_to(condition: &str, target: &str) -> bool {
    if !condition.starts_with("cfg(") {
        return condition == target;
    }
    let Some(info) = cfg_expr::targets::get_builtin_target_by_triple(target) else {
        return true;
    };
    match cfg_expr::Expression::parse(condition) {
        Ok(expression) => expression.eval(|predicate| match predicate {
            cfg_expr::Predicate::Target(target_predicate) => target_predicate.matches(info),
            _ => false,
        }),
        Err(_) => true,
    }
}

/// Cargo's config files for a build in `root`, highest precedence first: `.cargo/config`
/// (which cargo prefers) or `.cargo/config.toml` in `root` and every directory above it,
/// then in `cargo_home` when it is not one of those.
fn config_files(root: &Path, cargo_home: Option<&Path>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = root.ancestors().map(|d| d.join(".cargo")).collect();
    if let Some(home) = cargo_home {
        if !dirs.iter().any(|d| d == home) {
            dirs.push(home.to_path_buf());
        }
    }
    for dir in dirs {
        let file = [dir.join("config"), dir.join("config.toml")]
            .into_iter()
            .find(|f| f.is_file());
        files.extend(file);
    }
    files
}

/// A rustflags value: an array of strings, or one string split on whitespace.
fn flag_list(value: &toml::Value) -> Vec<String> {
    match value {
        toml::Value::String(text) => words(text),
        toml::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(text: &str) -> Vec<String> {
        words(text)
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("multiarch-rustflags-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ws/.cargo")).unwrap();
        dir
    }

    const ARM: &str = "armv7-unknown-linux-gnueabihf";
    const KEY: &str = "[package.metadata.multiarch.platform.\"linux/arm/v7\"] rustflags";

    #[test]
    fn rustflags_in_the_environment_come_first_and_ours_still_apply() {
        let env = |name: &str| (name == "RUSTFLAGS").then(|| "-Dwarnings".to_owned());
        let user = UserRustflags::read(Path::new("/nonexistent"), None, env);
        let composed = user.compose(ARM, &flags("-C target-feature=+crt-static"));
        assert_eq!(composed.channel, Channel::Environment);
        assert_eq!(
            composed.all,
            flags("-Dwarnings -C target-feature=+crt-static")
        );
        assert_eq!(composed.passed, composed.all);
        // The encoded variable wins over RUSTFLAGS, as in cargo.
        let encoded = |name: &str| match name {
            "CARGO_ENCODED_RUSTFLAGS" => Some("--cfg\u{1f}a b".to_owned()),
            "RUSTFLAGS" => Some("-Dwarnings".to_owned()),
            _ => None,
        };
        let user = UserRustflags::read(Path::new("/nonexistent"), None, encoded);
        assert_eq!(
            user.environment,
            Some((
                "CARGO_ENCODED_RUSTFLAGS",
                vec!["--cfg".to_owned(), "a b".to_owned()]
            ))
        );
    }

    #[test]
    fn build_rustflags_are_kept_beside_the_platforms_target_flags() {
        let dir = scratch("build");
        std::fs::write(
            dir.join("ws/.cargo/config.toml"),
            "[build]\nrustflags = [\"--cfg\", \"mine\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("home")).unwrap();
        std::fs::write(
            dir.join("home/config.toml"),
            "[build]\nrustflags = \"-W unused\"\n",
        )
        .unwrap();
        let user = UserRustflags::read(&dir.join("ws"), Some(&dir.join("home")), |_| None);
        assert_eq!(user.build, flags("-W unused --cfg mine"));
        let composed = user.compose(ARM, &flags("-C target-feature=+crt-static"));
        assert_eq!(composed.channel, Channel::Config);
        assert_eq!(
            composed.passed,
            flags("-W unused --cfg mine -C target-feature=+crt-static")
        );
        // With no flags of ours, cargo reads the user's own as it always did.
        let plain = user.compose(ARM, &[]);
        assert_eq!(plain.passed, Vec::<String>::new());
        assert_eq!(plain.all, flags("-W unused --cfg mine"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_users_target_table_is_joined_by_cargo_itself() {
        let dir = scratch("target");
        std::fs::write(
            dir.join("ws/.cargo/config"),
            "[build]\nrustflags = [\"--cfg\", \"dropped\"]\n[target.'cfg(target_arch = \"arm\")']\nrustflags = [\"--cfg\", \"arm\"]\n",
        )
        .unwrap();
        let user = UserRustflags::read(&dir.join("ws"), None, |_| None);
        let composed = user.compose(ARM, &flags("-C target-feature=+crt-static"));
        assert_eq!(composed.passed, flags("-C target-feature=+crt-static"));
        assert_eq!(
            composed.all,
            flags("--cfg arm -C target-feature=+crt-static")
        );
        let x86 = user.compose("x86_64-unknown-linux-musl", &flags("-C strip=symbols"));
        assert_eq!(x86.passed, flags("--cfg dropped -C strip=symbols"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conditions_are_cfg_expressions_or_triples() {
        let target = "armv7-unknown-linux-musleabihf";
        assert!(applies_to("cfg(all(unix, target_arch = \"arm\"))", target));
        assert!(applies_to("cfg(target_pointer_width = \"32\")", target));
        assert!(!applies_to("cfg(target_os = \"macos\")", target));
        assert!(applies_to(target, target));
        assert!(!applies_to("x86_64-pc-windows-gnu", target));
    }

    #[test]
    fn static_linking_turned_off_by_the_user_and_on_by_the_platform_is_refused() {
        let env =
            |name: &str| (name == "RUSTFLAGS").then(|| "-C target-feature=-crt-static".to_owned());
        let user = UserRustflags::read(Path::new("/nonexistent"), None, env);
        let err = user
            .check(
                ARM,
                &flags("-C target-feature=+crt-static"),
                "linux/arm/v7",
                KEY,
            )
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("RUSTFLAGS turns static linking off"),
            "{message}"
        );
        assert!(message.contains("linux/arm/v7 turns it on"), "{message}");
        assert_eq!(
            crt_static(&flags("-Ctarget-feature=+neon,-crt-static")),
            Some(false)
        );
    }
}
