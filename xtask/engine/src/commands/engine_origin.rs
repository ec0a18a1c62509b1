//! Where this engine was compiled from, so that `init` without an `--engine-*` flag pins
//! the same engine: a checkout by its path, a git dependency by its URL and commit, a
//! registry release by its version, a vendored copy by copying it again.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use crate::commands::cli::EngineSource;
use crate::diagnostic::diagnostic;

/// The engine package's directory when it was compiled.
const COMPILED_AT: &str = env!("CARGO_MANIFEST_DIR");

/// The source `init` pins by default: the one this engine came from.
pub(crate) fn this_engine() -> Result<EngineSource> {
    let dir = Path::new(COMPILED_AT);
    match classify(env!("CARGO_PKG_NAME"), dir) {
        Compiled::Vendored => Ok(EngineSource::Vendor),
        Compiled::Packaged => Ok(EngineSource::Version(env!("CARGO_PKG_VERSION").to_owned())),
        Compiled::Checkout => {
            if dir.join("Cargo.toml").is_file() {
                Ok(EngineSource::Path(dir.to_path_buf()))
            } else {
                Err(diagnostic(
                    format!(
                        "this engine was compiled from {}, which is gone",
                        dir.display()
                    ),
                    "pass `--engine-path CHECKOUT`, `--engine-git URL --rev REV` or `--vendor`",
                ))
            }
        }
        Compiled::GitCheckout { short_rev } => git_source(dir, &short_rev).ok_or_else(|| {
            diagnostic(
                format!(
                    "this engine was compiled from a git checkout ({}), and neither the running \
                     workspace's `cargo metadata` nor cargo's install records name its repository",
                    dir.display()
                ),
                "pass the repository as `--engine-git URL --rev REV`",
            )
        }),
    }
}

/// What kind of directory the engine was compiled in.
#[derive(Debug, PartialEq, Eq)]
enum Compiled {
    /// `init --vendor` copied the sources into a workspace's own package.
    Vendored,
    /// A packaged crate (`Cargo.toml.orig` beside the manifest): a registry release, or
    /// `cargo vendor`'s copy of one.
    Packaged,
    /// Cargo's checkout of a git dependency, `…/git/checkouts/NAME-HASH/SHORT_REV/…`.
    GitCheckout { short_rev: String },
    /// Anything else: a clone of the repository on disk.
    Checkout,
}

fn classify(package: &str, dir: &Path) -> Compiled {
    if package != "multiarch" {
        return Compiled::Vendored;
    }
    if dir.join("Cargo.toml.orig").is_file() {
        return Compiled::Packaged;
    }
    let parts: Vec<_> = dir.components().map(|c| c.as_os_str()).collect();
    let checkout = parts
        .windows(2)
        .position(|pair| pair[0] == "git" && pair[1] == "checkouts");
    match checkout.and_then(|at| parts.get(at + 3)) {
        Some(rev) => Compiled::GitCheckout {
            short_rev: rev.to_string_lossy().into_owned(),
        },
        None => Compiled::Checkout,
    }
}

/// The git URL and full commit of the engine, from the package ids cargo knows it by:
/// those of the workspace that `cargo run` started this process in, then those of
/// `cargo install`.
fn git_source(dir: &Path, short_rev: &str) -> Option<EngineSource> {
    let manifest = dir.join("Cargo.toml");
    let from_workspace = std::env::var_os("CARGO_MANIFEST_DIR")
        .and_then(|running| workspace_package_ids(&PathBuf::from(running), &manifest));
    let from_installs = || {
        let home = crate::config::workspace::cargo_home()?;
        let text = std::fs::read_to_string(home.join(".crates2.json")).ok()?;
        let installs: Installs = serde_json::from_str(&text).ok()?;
        Some(installs.installs.into_keys().collect::<Vec<_>>())
    };
    from_workspace
        .into_iter()
        .flatten()
        .chain(from_installs().into_iter().flatten())
        .filter_map(|id| parse_git_id(&id))
        .find(|(_, rev)| rev.starts_with(short_rev))
        .map(|(url, rev)| EngineSource::Git {
            url,
            rev: Some(rev),
        })
}

/// The ids of the packages named `multiarch` at `manifest` in the workspace of `running`.
fn workspace_package_ids(running: &Path, manifest: &Path) -> Option<Vec<String>> {
    let sh = xshell::Shell::new().ok()?;
    let json = crate::process::Command::new(
        crate::config::workspace::cargo_program(),
        [
            "metadata".to_owned(),
            "--format-version".to_owned(),
            "1".to_owned(),
            "--manifest-path".to_owned(),
            running.join("Cargo.toml").to_string_lossy().into_owned(),
        ],
    )
    .run(&sh)
    .ok()?;
    let metadata: Metadata = serde_json::from_str(&json).ok()?;
    Some(
        metadata
            .packages
            .into_iter()
            .filter(|p| p.name == "multiarch" && p.manifest_path == manifest)
            .filter_map(|p| p.source)
            .collect(),
    )
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<MetadataPackage>,
}

#[derive(Deserialize)]
struct MetadataPackage {
    name: String,
    manifest_path: PathBuf,
    source: Option<String>,
}

/// `$CARGO_HOME/.crates2.json`: what `cargo install` installed, keyed by package id.
#[derive(Deserialize)]
struct Installs {
    installs: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The URL and full commit of a git source id, as `cargo metadata` writes it
/// (`git+URL?rev=v1#SHA`) or as `cargo install` keys it (`multiarch 0.1.0 (git+URL#SHA)`).
fn parse_git_id(id: &str) -> Option<(String, String)> {
    let source = id.rsplit_once(" (").map_or(id, |(_, source)| source);
    let source = source.strip_suffix(')').unwrap_or(source);
    let (url, rev) = crate::config::workspace::git_source(source)?;
    let plain = !url.is_empty() && url.chars().all(|c| c.is_ascii_graphic());
    plain.then(|| (url.to_owned(), rev.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compile_directory_says_where_the_engine_came_from() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(classify("multiarch", checkout), Compiled::Checkout);
        assert_eq!(classify("xtask", checkout), Compiled::Vendored);
        assert_eq!(
            classify(
                "multiarch",
                Path::new("/home/u/.cargo/git/checkouts/multiarch-1a2b3c/4d5e6f7/xtask/engine")
            ),
            Compiled::GitCheckout {
                short_rev: "4d5e6f7".into()
            }
        );
        let packaged =
            std::env::temp_dir().join(format!("multiarch-origin-{}", std::process::id()));
        std::fs::create_dir_all(&packaged).unwrap();
        std::fs::write(packaged.join("Cargo.toml.orig"), "").unwrap();
        assert_eq!(classify("multiarch", &packaged), Compiled::Packaged);
        std::fs::remove_dir_all(&packaged).unwrap();
    }

    #[test]
    fn git_ids_give_the_url_and_the_full_commit() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            parse_git_id(&format!(
                "git+https://github.com/multiarch-rs/multiarch?rev=v0.1.0#{sha}"
            )),
            Some((
                "https://github.com/multiarch-rs/multiarch".into(),
                sha.into()
            ))
        );
        assert_eq!(
            parse_git_id(&format!("multiarch 0.1.0 (git+file:///srv/m.git#{sha})")),
            Some(("file:///srv/m.git".into(), sha.into()))
        );
        for bad in [
            "registry+https://github.com/rust-lang/crates.io-index".to_owned(),
            format!("git+https://h/r#{}", &sha[..8]),
            format!("git+https://h/r x#{sha}"),
            format!("git+#{sha}"),
        ] {
            assert_eq!(parse_git_id(&bad), None, "{bad}");
        }
    }

    #[test]
    fn this_checkout_pins_itself() {
        assert_eq!(
            this_engine().unwrap(),
            EngineSource::Path(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        );
    }
}
