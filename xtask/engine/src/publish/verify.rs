//! What `publish` believes of a record: only what the registry shows. Each manifest is read
//! by digest and re-hashed, its size compared with the record's, its config's platform
//! with the record's platform, and every blob it names asked for; what a registry returns
//! is checked before it names a URL or a file. A copy into another repository mounts or
//! streams blobs the same way.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::index::{attestation, Entry};
use super::record::{AttachedKind, Checked};
use crate::config::platform::Platform;
use crate::diagnostic::{diagnostic, escape, Diagnostic};
use crate::digest::Digest;
use crate::registry::{Payload, Registry, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

/// The largest image config read.
const CONFIG_LIMIT: u64 = 4 << 20;

/// A manifest or index as the registry holds it.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub(crate) digest: Digest,
    pub(crate) media_type: String,
    pub(crate) bytes: Vec<u8>,
}

/// One record, verified against the registry.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    /// What its platform puts into the index.
    pub(crate) entry: Entry,
    /// The record's own manifest (or index), which the platform's own tags name.
    pub(crate) top: Document,
    /// Every manifest it brings, children before the index that names them, `top` last.
    pub(crate) manifests: Vec<Document>,
    /// Every blob those manifests name.
    pub(crate) blobs: Vec<(Digest, u64)>,
    /// The in-toto statements of its attestation manifests.
    pub(crate) statements: Vec<Statement>,
}

/// One in-toto statement of an attestation manifest: its predicate type (the layer's
/// `in-toto.io/predicate-type` annotation), digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub(crate) predicate_type: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

/// Reads what `share` names from `registry` (its repository) and checks it.
pub(crate) fn verify(share: &Checked, registry: &Registry) -> Result<Verified> {
    let record = &share.record;
    let refuse = |what: String| {
        diagnostic(
            format!(
                "{} ({} for {}): {what}",
                share.origin, record.package, record.platform
            ),
            "push that platform again (`cargo xtask image --push-by-digest`) and pass the record it writes; nothing was published",
        )
    };
    let bytes = registry
        .get_manifest(share.digest.as_str())
        .map_err(|err| {
            refuse(format!(
                "{}@{} cannot be read from the registry: {}",
                share.repository,
                share.digest,
                Diagnostic::of(&err).cause
            ))
        })?;
    if bytes.len() as u64 != record.size {
        return Err(refuse(format!(
            "the registry's manifest is {} bytes, and the record says {}",
            bytes.len(),
            record.size
        )));
    }
    let document: Value = serde_json::from_slice(&bytes)
        .map_err(|_| refuse("the registry's manifest is not JSON".into()))?;
    let media_type = document["mediaType"].as_str().unwrap_or_default();
    if media_type != record.media_type {
        return Err(refuse(format!(
            "the registry's manifest is `{}`, and the record says `{}`",
            escape(media_type),
            escape(&record.media_type)
        )));
    }
    let top = Document {
        digest: share.digest.clone(),
        media_type: media_type.to_owned(),
        bytes,
    };
    let mut found = Found::default();
    let entry = match media_type {
        OCI_INDEX | DOCKER_LIST => from_index(registry, share, &document, &mut found),
        OCI_MANIFEST | DOCKER_MANIFEST => from_manifest(registry, share, &document, &mut found),
        other => Err(diagnostic(
            format!("`{}` is neither an image nor an index", escape(other)),
            "",
        )),
    }
    .map_err(|err| refuse(Diagnostic::of(&err).cause))?;
    let unlisted = record.attached.iter().find(|a| {
        matches!(a.kind, AttachedKind::Sbom | AttachedKind::Provenance)
            && !found.blobs.iter().any(|(d, _)| d.as_str() == a.digest)
    });
    if let Some(unlisted) = unlisted {
        return Err(refuse(format!(
            "the record attaches {}, which no attestation of the image holds",
            unlisted.digest
        )));
    }
    found.manifests.push(top.clone());
    Ok(Verified {
        entry,
        top,
        manifests: found.manifests,
        blobs: found.blobs,
        statements: found.statements,
    })
}

/// The manifests, blobs and statements a record brings, gathered as they are checked.
#[derive(Default)]
struct Found {
    manifests: Vec<Document>,
    blobs: Vec<(Digest, u64)>,
    statements: Vec<Statement>,
}

/// An image manifest: listed with the record's platform, beside the attestation manifests
/// the record attaches.
fn from_manifest(
    registry: &Registry,
    share: &Checked,
    manifest: &Value,
    found: &mut Found,
) -> Result<Entry> {
    let descriptor = serde_json::json!({
        "mediaType": share.record.media_type,
        "digest": share.digest.as_str(),
        "size": share.record.size,
        "platform": share.platform.descriptor(),
    });
    let labels = image(registry, share.platform, manifest, found)?;
    let attestations = attached(registry, share, found)?;
    Ok(Entry {
        image: descriptor,
        attestations,
        labels,
    })
}

/// An index (an engine's push with attestations): its one image for the record's platform,
/// and that image's attestation manifests, each descriptor kept as the index has it.
fn from_index(
    registry: &Registry,
    share: &Checked,
    index: &Value,
    found: &mut Found,
) -> Result<Entry> {
    let children = index["manifests"].as_array().cloned().unwrap_or_default();
    let images: Vec<&Value> = children
        .iter()
        .filter(|child| {
            let field = |key: &str| child["platform"][key].as_str().unwrap_or_default();
            let variant = child["platform"]["variant"].as_str();
            share
                .platform
                .matches(field("os"), field("architecture"), variant)
        })
        .collect();
    let [image_descriptor] = images.as_slice() else {
        anyhow::bail!(
            "the index lists {} images for {}, and a record names one",
            images.len(),
            share.platform
        );
    };
    let image_digest = manifest_at(registry, image_descriptor, found)?;
    let manifest = found.manifests.last().expect("just read").bytes.clone();
    let labels = image(
        registry,
        share.platform,
        &serde_json::from_slice(&manifest)?,
        found,
    )?;
    let mut attestations = Vec::new();
    for child in &children {
        let annotations = &child["annotations"];
        if annotations["vnd.docker.reference.type"] == "attestation-manifest"
            && annotations["vnd.docker.reference.digest"] == image_digest.as_str()
        {
            let digest = manifest_at(registry, child, found)?;
            attestation_manifest(registry, found)
                .map_err(|err| err.context(format!("in the attestation {digest}")))?;
            attestations.push(child.clone());
        }
    }
    Ok(Entry {
        image: (*image_descriptor).clone(),
        attestations,
        labels,
    })
}

/// The attestation manifests a record attaches to an image manifest (the OCI backend's),
/// read and checked; their descriptors as BuildKit writes them.
fn attached(registry: &Registry, share: &Checked, found: &mut Found) -> Result<Vec<Value>> {
    let mut descriptors = Vec::new();
    for attached in &share.record.attached {
        if attached.kind != AttachedKind::AttestationManifest {
            continue;
        }
        let descriptor = attestation(
            &attached.media_type,
            &attached.digest,
            attached.size,
            share.digest.as_str(),
        );
        manifest_at(registry, &descriptor, found)?;
        attestation_manifest(registry, found)?;
        descriptors.push(descriptor);
    }
    Ok(descriptors)
}

/// Checks the attestation manifest read last: every blob it names is there; its layers
/// are statements.
fn attestation_manifest(registry: &Registry, found: &mut Found) -> Result<()> {
    let bytes = found.manifests.last().expect("just read").bytes.clone();
    let manifest: Value = serde_json::from_slice(&bytes)?;
    blobs_of(registry, &manifest, found)?;
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let (digest, size) = digest_and_size(layer)?;
        let predicate_type = layer["annotations"]["in-toto.io/predicate-type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        found.statements.push(Statement {
            predicate_type,
            digest,
            size,
        });
    }
    Ok(())
}

/// Reads the manifest a descriptor names, checks its size and digest, and keeps it.
fn manifest_at(registry: &Registry, descriptor: &Value, found: &mut Found) -> Result<Digest> {
    let (digest, size) = digest_and_size(descriptor)?;
    let bytes = registry.get_manifest(digest.as_str())?;
    if bytes.len() as u64 != size {
        anyhow::bail!(
            "{digest} is {} bytes, and its descriptor says {size}",
            bytes.len()
        );
    }
    let media_type = descriptor["mediaType"]
        .as_str()
        .unwrap_or(OCI_MANIFEST)
        .to_owned();
    found.manifests.push(Document {
        digest: digest.clone(),
        media_type,
        bytes,
    });
    Ok(digest)
}

/// Checks an image manifest: its config says the record's platform, and the registry has
/// every blob it names. Returns its `org.opencontainers.image.*` labels.
fn image(
    registry: &Registry,
    platform: &Platform,
    manifest: &Value,
    found: &mut Found,
) -> Result<BTreeMap<String, String>> {
    let (config_digest, config_size) = digest_and_size(&manifest["config"])?;
    if config_size > CONFIG_LIMIT {
        anyhow::bail!("the image's config is {config_size} bytes, above {CONFIG_LIMIT}");
    }
    let config: Value = serde_json::from_slice(&registry.get_blob(&config_digest, config_size)?)?;
    let field = |key: &str| config[key].as_str().unwrap_or_default().to_owned();
    let variant = config["variant"].as_str();
    if !platform.matches(&field("os"), &field("architecture"), variant) {
        let variant = variant.map(|v| format!("/{v}")).unwrap_or_default();
        anyhow::bail!(
            "the image is {}/{}{}, and the record says {platform}",
            escape(&field("os")),
            escape(&field("architecture")),
            escape(&variant)
        );
    }
    blobs_of(registry, manifest, found)?;
    let labels = config["config"]["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.starts_with("org.opencontainers.image."))
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect();
    Ok(labels)
}

/// The config and layers of a manifest, each of which the registry must have.
fn blobs_of(registry: &Registry, manifest: &Value, found: &mut Found) -> Result<()> {
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    for descriptor in std::iter::once(&manifest["config"]).chain(&layers) {
        let (digest, size) = digest_and_size(descriptor)?;
        if !registry.has_blob(&digest)? {
            anyhow::bail!("the registry lacks the blob {digest}");
        }
        found.blobs.push((digest, size));
    }
    Ok(())
}

/// A descriptor's digest, checked before it names anything, and its size.
fn digest_and_size(descriptor: &Value) -> Result<(Digest, u64)> {
    let text = descriptor["digest"].as_str().unwrap_or_default();
    let digest = Digest::parse(text).ok_or_else(|| {
        anyhow::anyhow!(
            "a descriptor names `{}`, which is not sha256:<64 hex>",
            escape(text)
        )
    })?;
    let size = descriptor["size"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("the descriptor of {digest} has no size"))?;
    Ok((digest, size))
}

/// Puts what `verified` brings into `to` from `from`: each blob `to` lacks mounted (same
/// registry) or streamed through `scratch`, then every manifest by digest, byte for byte.
pub(crate) fn copy(
    verified: &Verified,
    from: &Registry,
    to: &Registry,
    scratch: &Path,
) -> Result<()> {
    for (digest, size) in &verified.blobs {
        if to.has_blob(digest)? {
            continue;
        }
        if from.same_registry(to) && to.mount_blob(digest, from.repository())? {
            continue;
        }
        let path = scratch.join(digest.hex());
        from.fetch_blob(digest, *size, &path, None)?;
        let sent = to.send_blob(digest, Payload::File(&path));
        let _ = std::fs::remove_file(&path);
        sent?;
    }
    for document in &verified.manifests {
        if to.get_manifest(document.digest.as_str()).is_ok() {
            continue;
        }
        to.put_manifest(
            document.digest.as_str(),
            &document.media_type,
            &document.bytes,
        )?;
    }
    Ok(())
}
