//! Cargo facts about the workspace, read from `cargo metadata` rather than assumed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use xshell::Shell;

/// The workspace as `cargo metadata` describes it.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    pub(crate) target_dir: PathBuf,
    pub(crate) packages: Vec<Package>,
}

/// A workspace member with the facts the images need.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Package {
    pub(crate) name: String,
    /// The resolved version, inherited from the workspace where the package says so.
    pub(crate) version: String,
    pub(crate) manifest_path: PathBuf,
    pub(crate) description: Option<String>,
    pub(crate) license: Option<String>,
    pub(crate) repository: Option<String>,
    #[serde(skip)]
    pub(crate) bins: Vec<String>,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<MetadataPackage>,
    workspace_members: Vec<String>,
    workspace_root: PathBuf,
    target_directory: PathBuf,
}

#[derive(Deserialize)]
struct MetadataPackage {
    id: String,
    #[serde(flatten)]
    package: Package,
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// The cargo this program was started by (`CARGO`), else the one on PATH.
pub(crate) fn cargo_program() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// Cargo's home: `CARGO_HOME`, else `~/.cargo`.
pub(crate) fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

/// The value of `key` for every package of a `Cargo.lock` that has one, by name and
/// version.
pub(crate) fn lock_field(
    lockfile: &str,
    key: &str,
) -> std::collections::BTreeMap<(String, String), String> {
    let Ok(lock) = lockfile.parse::<toml::Table>() else {
        return Default::default();
    };
    lock.get("package")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|package| {
            let field = |key: &str| package.get(key)?.as_str().map(str::to_owned);
            Some(((field("name")?, field("version")?), field(key)?))
        })
        .collect()
}

/// The URL (without its query) and full commit of a git source id, as `Cargo.lock` and
/// `cargo metadata` write it (`git+URL?rev=v1#SHA`).
pub(crate) fn git_source(source: &str) -> Option<(&str, &str)> {
    let (location, revision) = source.strip_prefix("git+")?.rsplit_once('#')?;
    let url = location.split('?').next()?;
    let full = revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit());
    full.then_some((url, revision))
}

impl Workspace {
    /// Reads the workspace that contains `dir`.
    pub(crate) fn load(sh: &Shell, dir: &Path) -> Result<Workspace> {
        let cargo = cargo_program();
        let _dir = sh.push_dir(dir);
        // Cargo's stderr (lock waits, its own errors) is kept for the error message only.
        let json =
            crate::process::Command::new(cargo, ["metadata", "--format-version", "1", "--no-deps"])
                .run(sh)
                .map_err(|err| {
                    crate::diagnostic::diagnostic(
                        format!(
                            "cannot read the Cargo workspace at {}: {}",
                            dir.display(),
                            crate::diagnostic::Diagnostic::of(&err).cause
                        ),
                        "run this inside a Cargo workspace; `cargo metadata` must succeed there",
                    )
                })?;
        Workspace::from_metadata_json(&json)
    }

    /// Builds the workspace from `cargo metadata --format-version 1` output.
    pub(crate) fn from_metadata_json(json: &str) -> Result<Workspace> {
        let metadata: Metadata =
            serde_json::from_str(json).context("cannot parse the output of `cargo metadata`")?;
        let packages = metadata
            .packages
            .into_iter()
            .filter(|p| metadata.workspace_members.contains(&p.id))
            .map(|p| Package {
                bins: p
                    .targets
                    .iter()
                    .filter(|t| t.kind.iter().any(|k| k == "bin"))
                    .map(|t| t.name.clone())
                    .collect(),
                ..p.package
            })
            .collect();
        Ok(Workspace {
            root: metadata.workspace_root,
            target_dir: metadata.target_directory,
            packages,
        })
    }

    /// The manifest at the workspace root, which holds `[workspace.metadata.multiarch]`.
    pub(crate) fn root_manifest(&self) -> PathBuf {
        self.root.join("Cargo.toml")
    }
}
