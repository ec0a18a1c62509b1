//! Records: one machine's share of a release (a package's image for one platform, pushed by
//! digest under no tag) as a small versioned JSON document that CI carries from a build
//! job to the publish job. The schema is documented in docs/records.md.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::image_ref::ImageRef;
use crate::config::platform::Platform;
use crate::diagnostic::{diagnostic, escape};
use crate::digest::Digest;

/// The schema this version writes and reads.
pub(crate) const SCHEMA: &str = "multiarch.record.v1";

/// The largest record file read.
const RECORD_LIMIT: u64 = 1 << 20;

/// What a backend's push left in the registry: the image (a manifest, or an index when the
/// engine pushes one) by digest, and what is attached to it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pushed {
    pub(crate) digest: String,
    pub(crate) media_type: String,
    pub(crate) size: u64,
    pub(crate) attached: Vec<Attached>,
}

/// One record: what was pushed for one package and platform, from which commit and inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    /// [`SCHEMA`].
    pub(crate) schema: String,
    pub(crate) package: String,
    /// `linux/arm/v7`, as the platform table names it.
    pub(crate) platform: String,
    /// The repository the image was pushed to, with no tag: `ghcr.io/acme/hello`.
    pub(crate) repository: String,
    /// The manifest (or index) the push wrote, by digest.
    pub(crate) digest: String,
    pub(crate) media_type: String,
    pub(crate) size: u64,
    /// The full commit hash of the checkout it was built from, when it is one.
    pub(crate) commit: Option<String>,
    /// Whether tracked files differed from that commit.
    pub(crate) dirty: bool,
    /// The digest of the image's inputs: its Dockerfile and every file of its context.
    pub(crate) inputs: Option<String>,
    /// `multiarch <version>`, the tool that wrote the record.
    pub(crate) tool: String,
    /// The digest of the image's CycloneDX SBOM document (`sbom = true`), as written on
    /// the build machine.
    pub(crate) sbom: Option<String>,
    /// What the registry holds about the image: attestation manifests and their layers.
    pub(crate) attached: Vec<Attached>,
}

/// One thing attached to a pushed image in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Attached {
    pub(crate) kind: AttachedKind,
    pub(crate) digest: String,
    pub(crate) media_type: String,
    pub(crate) size: u64,
}

/// What an attached digest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum AttachedKind {
    /// A BuildKit-style attestation manifest (platform `unknown/unknown`) that the
    /// published index lists beside the image.
    AttestationManifest,
    /// An SBOM statement, a layer of an attestation manifest.
    Sbom,
    /// A provenance statement, a layer of an attestation manifest.
    Provenance,
}

/// Where a record came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    File(PathBuf),
    /// A `repo@sha256:...` reference given on the command line.
    Reference(String),
    /// This process pushed it (`image --push`).
    ThisRun,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "the record {}", escape(&path.display().to_string())),
            Origin::Reference(reference) => write!(f, "the reference {}", escape(reference)),
            Origin::ThisRun => write!(f, "this run's push"),
        }
    }
}

/// What a record is, checked: its platform from the table and its digests well formed.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) record: Record,
    pub(crate) platform: &'static Platform,
    pub(crate) repository: ImageRef,
    pub(crate) digest: Digest,
    pub(crate) origin: Origin,
}

impl Record {
    /// The tool's name and version, as records carry it.
    pub(crate) fn tool() -> String {
        format!("multiarch {}", env!("CARGO_PKG_VERSION"))
    }

    /// The file name of this record in a records directory: `hello-linux-arm-v7.json`.
    pub(crate) fn file_name(&self, platform: &Platform) -> String {
        format!("{}-{}.json", self.package, platform.slug())
    }

    /// Checks the record's fields; the error names `origin`.
    pub(crate) fn check(self, origin: Origin) -> Result<Checked> {
        let refuse = |what: String| {
            diagnostic(
                format!("{origin} {what}"),
                "pass the records `cargo xtask image --push-by-digest` wrote, unedited, from the same version of the tool",
            )
        };
        if self.schema != SCHEMA {
            return Err(refuse(format!(
                "has the schema `{}`, and this tool reads `{SCHEMA}`",
                escape(&self.schema)
            )));
        }
        let platform = Platform::parse(&self.platform)
            .map_err(|err| refuse(format!("names a platform this tool does not know: {err}")))?;
        let repository = ImageRef::repository(&self.repository)
            .map_err(|err| refuse(format!("names no repository: {err}")))?;
        let digest = Digest::parse(&self.digest).ok_or_else(|| {
            refuse(format!(
                "has the digest `{}`, which is not sha256: and 64 hex digits",
                escape(&self.digest)
            ))
        })?;
        let attached_bad = self
            .attached
            .iter()
            .find(|a| Digest::parse(&a.digest).is_none());
        if let Some(bad) = attached_bad {
            return Err(refuse(format!(
                "has an attached digest `{}` that is not sha256: and 64 hex digits",
                escape(&bad.digest)
            )));
        }
        if let Some(commit) = &self.commit {
            if commit.len() < 40 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(refuse(format!(
                    "has the commit `{}`, which is not a full hash",
                    escape(commit)
                )));
            }
        }
        Ok(Checked {
            record: self,
            platform,
            repository,
            digest,
            origin,
        })
    }
}

/// Writes `record` into `dir` atomically; returns its path.
pub(crate) fn write(dir: &Path, record: &Record, platform: &Platform) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(record.file_name(platform));
    let temporary = crate::layout::temporary_beside(&path);
    let mut text = serde_json::to_string_pretty(record)?;
    text.push('\n');
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Reads one record file.
pub(crate) fn read(path: &Path) -> Result<Checked> {
    let origin = Origin::File(path.to_owned());
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > RECORD_LIMIT {
        return Err(diagnostic(
            format!("{origin} is {size} bytes; a record is a few hundred"),
            "pass the records `cargo xtask image --push-by-digest` wrote",
        ));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let record: Record = serde_json::from_str(&text).map_err(|err| {
        diagnostic(
            format!("{origin} is not a record: {err}"),
            "pass the records `cargo xtask image --push-by-digest` wrote, unedited",
        )
    })?;
    record.check(origin)
}

/// Every record file under `dir` (`*.json`, in subdirectories too, as CI artifacts are
/// unpacked), in path order.
pub(crate) fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Record {
        Record {
            schema: SCHEMA.into(),
            package: "hello".into(),
            platform: "linux/arm/v7".into(),
            repository: "localhost:5000/hello".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 527,
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            dirty: false,
            inputs: Some(format!("sha256:{}", "b".repeat(64))),
            tool: Record::tool(),
            sbom: None,
            attached: vec![Attached {
                kind: AttachedKind::AttestationManifest,
                digest: format!("sha256:{}", "c".repeat(64)),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 840,
            }],
        }
    }

    #[test]
    fn a_record_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("multiarch-record-{}", std::process::id()));
        let platform = Platform::parse("arm/v7").unwrap();
        let path = write(&dir.join("nested"), &sample(), platform).unwrap();
        assert!(path.ends_with("nested/hello-linux-arm-v7.json"));
        assert_eq!(files_under(&dir).unwrap(), vec![path.clone()]);
        let read = read(&path).unwrap();
        assert_eq!(read.record, sample());
        assert_eq!(read.platform.name(), "linux/arm/v7");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_that_is_edited_out_of_shape_is_refused_by_name() {
        let origin = || Origin::File("records/hello-linux-arm-v7.json".into());
        let schema = Record {
            schema: "multiarch.record.v9".into(),
            ..sample()
        };
        let err = format!("{:#}", schema.check(origin()).unwrap_err());
        assert!(err.contains("records/hello-linux-arm-v7.json"), "{err}");
        assert!(err.contains("multiarch.record.v9"), "{err}");
        let digest = Record {
            digest: "sha256:xyz".into(),
            ..sample()
        };
        let err = format!("{:#}", digest.check(origin()).unwrap_err());
        assert!(err.contains("`sha256:xyz`"), "{err}");
        let platform = Record {
            platform: "linux/sparc".into(),
            ..sample()
        };
        assert!(platform.check(origin()).is_err());
        let text = serde_json::to_string(&sample())
            .unwrap()
            .replace("\"dirty\"", "\"extra\":1,\"dirty\"");
        assert!(serde_json::from_str::<Record>(&text).is_err());
    }
}
