//! An engine's image into a registry by digest, under no tag: `docker image save` streams
//! it to a file, which is read as it lies on disk (Docker's own archive from 20.10, or the
//! OCI layout of 25 and later, with the index and attestation manifests of the containerd
//! store) and sent over the registry API. Layers the engine keeps uncompressed are gzipped
//! once, reproducibly, and remembered by their content's digest.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::digest::{Digest, Hashing};
use crate::exec::{Attached, Pushed};
use crate::publish::record::AttachedKind;
use crate::registry::{Payload, Registry, OCI_INDEX, OCI_MANIFEST};

/// The largest manifest, index or config read from an archive.
const DOCUMENT_LIMIT: u64 = 4 << 20;
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Layer media types that are plain tar, which are gzipped before they travel.
const PLAIN_LAYERS: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// Where a blob to send is: a file of the archive, a file of the blob store, or (a
/// config, bounded) bytes.
enum Place {
    InArchive(String),
    Stored(PathBuf),
    Bytes(Vec<u8>),
}

/// One blob to send: its descriptor's digest and size, and where it is (`None`: not in
/// the archive, which is an error unless the registry has it).
struct Outgoing {
    digest: Digest,
    size: u64,
    place: Option<Place>,
}

/// A layer of the manifest to send: its descriptor, and its blob.
type Layer = (Value, Outgoing);

/// What one push sends, children before the documents that name them.
#[derive(Default)]
struct Upload {
    blobs: Vec<Outgoing>,
    manifests: Vec<(Digest, String, Vec<u8>)>,
    attached: Vec<Attached>,
}

/// The saved image's files, read in place.
type Archive = crate::tar::Indexed;

/// A document of the archive (a manifest, an index, a config), bounded.
fn document(archive: &Archive, name: &str) -> Result<Vec<u8>> {
    archive.read(name, DOCUMENT_LIMIT)
}

/// A blob of the OCI layout, checked against its digest.
fn layout_blob(archive: &Archive, digest: &Digest) -> Result<Vec<u8>> {
    let bytes = document(archive, &blob_name(digest))?;
    if Digest::of(&bytes) != *digest {
        bail!("the saved image's blob {digest} does not hash to its name");
    }
    Ok(bytes)
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Pushes the image saved at `archive` to `registry` by digest. `store` keeps gzipped
/// layers (`<hex>`), and `gzipped` which plain layer each one is (`<diff_id hex>`).
pub(crate) fn push(
    archive: &Path,
    registry: &Registry,
    store: &Path,
    gzipped: &Path,
) -> Result<Pushed> {
    let archive = Archive::scan(archive)?;
    let mut upload = Upload::default();
    let top = match archive.has("index.json") {
        true => {
            let index: Value = serde_json::from_slice(&document(&archive, "index.json")?)?;
            let top = &index["manifests"][0];
            let digest = descriptor_digest(top)?;
            let media_type = top["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
            match media_type {
                OCI_INDEX | crate::registry::DOCKER_LIST => {
                    from_index(&archive, &digest, &mut upload)?
                }
                _ => {
                    let manifest: Value = serde_json::from_slice(&layout_blob(&archive, &digest)?)?;
                    from_manifest(&archive, &manifest, &mut upload, (store, gzipped))?
                }
            }
        }
        false => from_docker_archive(&archive, &mut upload, (store, gzipped))?,
    };
    for Outgoing {
        digest,
        size,
        place,
    } in &upload.blobs
    {
        if registry.has_blob(digest)? {
            continue;
        }
        match place {
            Some(Place::Stored(path)) => registry.send_blob(digest, Payload::File(path))?,
            Some(Place::Bytes(bytes)) => registry.send_blob(digest, Payload::Bytes(bytes))?,
            // Sent from where it lies in the archive; the registry checks its digest.
            Some(Place::InArchive(name)) => {
                let (start, len) = archive.span(name)?;
                if len != *size {
                    bail!("the saved blob {digest} is {len} bytes, not {size}");
                }
                let part = Payload::Part {
                    path: archive.path(),
                    start,
                    len,
                };
                registry.send_blob(digest, part)?;
            }
            None => bail!("the saved image lacks the blob {digest}"),
        }
    }
    for (digest, media_type, bytes) in &upload.manifests {
        let put = registry.put_manifest(digest.as_str(), media_type, bytes)?;
        if put != *digest {
            bail!("the manifest {digest} hashes to {put}");
        }
    }
    Ok(Pushed {
        digest: top.0.to_string(),
        media_type: top.1,
        size: top.2,
        attached: upload.attached,
    })
}

/// An engine's index (the containerd store's): pushed as it is, byte for byte, with every
/// child it has; its attestation manifests are what is attached.
fn from_index(
    archive: &Archive,
    digest: &Digest,
    upload: &mut Upload,
) -> Result<(Digest, String, u64)> {
    let bytes = layout_blob(archive, digest)?;
    let index: Value = serde_json::from_slice(&bytes)?;
    for child in index["manifests"].as_array().into_iter().flatten() {
        let child_digest = descriptor_digest(child)?;
        if !archive.has(&blob_name(&child_digest)) {
            bail!("the saved index names {child_digest}, which the engine did not save");
        }
        let child_bytes = layout_blob(archive, &child_digest)?;
        let manifest: Value = serde_json::from_slice(&child_bytes)?;
        for (digest, size) in blobs_of(&manifest)? {
            let name = blob_name(&digest);
            let place = archive.has(&name).then_some(Place::InArchive(name));
            upload.blobs.push(Outgoing {
                digest,
                size,
                place,
            });
        }
        let media_type = child["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
        if child["annotations"]["vnd.docker.reference.type"] == "attestation-manifest" {
            upload.attached.push(Attached {
                kind: AttachedKind::AttestationManifest,
                digest: child_digest.to_string(),
                media_type: media_type.to_owned(),
                size: child_bytes.len() as u64,
            });
        }
        upload
            .manifests
            .push((child_digest, media_type.to_owned(), child_bytes));
    }
    let media_type = index["mediaType"].as_str().unwrap_or(OCI_INDEX).to_owned();
    let size = bytes.len() as u64;
    upload
        .manifests
        .push((digest.clone(), media_type.clone(), bytes));
    Ok((digest.clone(), media_type, size))
}

/// An OCI layout's image manifest: as it is when its layers are compressed, else anew
/// with each plain layer gzipped.
fn from_manifest(
    archive: &Archive,
    manifest: &Value,
    upload: &mut Upload,
    stores: (&Path, &Path),
) -> Result<(Digest, String, u64)> {
    let config = layout_blob(archive, &descriptor_digest(&manifest["config"])?)?;
    let diff_ids = diff_ids(&config);
    let mut layers = Vec::new();
    for (index, layer) in manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let digest = descriptor_digest(layer)?;
        let media_type = layer["mediaType"].as_str().unwrap_or_default();
        let size = layer["size"].as_u64().unwrap_or_default();
        let claimed = diff_ids.get(index);
        layers.push(match PLAIN_LAYERS.contains(&media_type) {
            true => gzip_layer(archive, &blob_name(&digest), claimed, stores)?,
            false => (
                layer.clone(),
                Outgoing {
                    place: Some(Place::InArchive(blob_name(&digest))),
                    digest,
                    size,
                },
            ),
        });
    }
    image_manifest(config, layers, upload)
}

/// Docker's own archive (20.10, Podman): its config, and its plain layers gzipped.
fn from_docker_archive(
    archive: &Archive,
    upload: &mut Upload,
    stores: (&Path, &Path),
) -> Result<(Digest, String, u64)> {
    let listing: Value = serde_json::from_slice(&document(archive, "manifest.json")?)
        .context("the saved image has neither index.json nor manifest.json")?;
    let image = &listing[0];
    let config = document(archive, image["Config"].as_str().unwrap_or_default())?;
    let diff_ids = diff_ids(&config);
    let mut layers = Vec::new();
    for (index, layer) in image["Layers"].as_array().into_iter().flatten().enumerate() {
        let name = layer.as_str().unwrap_or_default();
        layers.push(gzip_layer(archive, name, diff_ids.get(index), stores)?);
    }
    image_manifest(config, layers, upload)
}

/// The OCI manifest of `config` and `layers` (descriptor, and the blob to send).
fn image_manifest(
    config: Vec<u8>,
    layers: Vec<Layer>,
    upload: &mut Upload,
) -> Result<(Digest, String, u64)> {
    let config_digest = Digest::of(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest.as_str(), "size": config.len() },
        "layers": layers.iter().map(|(descriptor, _)| descriptor).collect::<Vec<_>>(),
    }))?;
    let config_size = config.len() as u64;
    upload.blobs.push(Outgoing {
        digest: config_digest,
        size: config_size,
        place: Some(Place::Bytes(config)),
    });
    upload
        .blobs
        .extend(layers.into_iter().map(|(_, blob)| blob));
    let digest = Digest::of(&manifest);
    let size = manifest.len() as u64;
    upload
        .manifests
        .push((digest.clone(), OCI_MANIFEST.to_owned(), manifest));
    Ok((digest, OCI_MANIFEST.to_owned(), size))
}

/// The digests of an image's plain layers, as its config lists them (`rootfs.diff_ids`).
fn diff_ids(config: &[u8]) -> Vec<Digest> {
    let config: Value = serde_json::from_slice(config).unwrap_or_default();
    config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Digest::parse(d.as_str()?))
        .collect()
}

/// A plain layer of the archive, gzipped into the store once: its descriptor and blob.
/// A layer gzipped before, by the digest its config `claimed`, is not read again; else it
/// is read once, hashed and gzipped as it streams, and must be what its config claims.
fn gzip_layer(
    archive: &Archive,
    name: &str,
    claimed: Option<&Digest>,
    (store, gzipped): (&Path, &Path),
) -> Result<Layer> {
    let known = |diff_id: &Digest| {
        let text = std::fs::read_to_string(gzipped.join(diff_id.hex())).ok()?;
        let digest = Digest::parse(text.trim())?;
        let size = std::fs::metadata(store.join(digest.hex())).ok()?.len();
        Some((digest, size))
    };
    let (digest, size) = match claimed.and_then(known) {
        Some(found) => found,
        None => {
            let (diff_id, digest, size) = gzip_into(archive.open(name)?, store)?;
            if claimed.is_some_and(|claimed| *claimed != diff_id) {
                bail!(
                    "the saved layer `{name}` is {diff_id}, and the image's config says otherwise"
                );
            }
            std::fs::create_dir_all(gzipped)?;
            std::fs::write(gzipped.join(diff_id.hex()), digest.as_str())?;
            (digest, size)
        }
    };
    let descriptor = json!({ "mediaType": GZIP_LAYER, "digest": digest.as_str(), "size": size });
    let path = store.join(digest.hex());
    let blob = Outgoing {
        digest,
        size,
        place: Some(Place::Stored(path)),
    };
    Ok((descriptor, blob))
}

/// Gzips `plain` into `store/<hex>` as it reads, reproducibly, hashing both sides: the
/// plain digest (the diff id), and the blob's digest and size.
fn gzip_into(mut plain: impl Read, store: &Path) -> Result<(Digest, Digest, u64)> {
    std::fs::create_dir_all(store)?;
    let temporary = crate::layout::temporary_beside(&store.join("layer"));
    let written = (|| {
        let file = std::fs::File::create(&temporary)?;
        let encoder = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Hashing::new(file), flate2::Compression::new(6));
        let mut plain_side = Hashing::new(encoder);
        std::io::copy(&mut plain, &mut plain_side)?;
        plain_side.flush()?;
        let (diff_id, _) = plain_side.finish();
        let (digest, size) = plain_side.inner.finish()?.finish();
        std::fs::rename(&temporary, store.join(digest.hex()))?;
        Ok::<_, anyhow::Error>((diff_id, digest, size))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// The config and layers a manifest names.
fn blobs_of(manifest: &Value) -> Result<Vec<(Digest, u64)>> {
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    std::iter::once(&manifest["config"])
        .chain(&layers)
        .map(|d| {
            Ok((
                descriptor_digest(d)?,
                d["size"].as_u64().unwrap_or_default(),
            ))
        })
        .collect()
}

/// A descriptor's digest, checked before it names a file.
fn descriptor_digest(descriptor: &Value) -> Result<Digest> {
    let text = descriptor["digest"].as_str().unwrap_or_default();
    Digest::parse(text).with_context(|| {
        format!(
            "the saved image names `{}`, which is not sha256:<64 hex>",
            crate::diagnostic::escape(text)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::Content;

    /// A Docker 20.10 `docker image save` archive of one plain layer, whose config claims
    /// the diff id `claimed` (the layer's own when `None`).
    fn docker_archive(dir: &Path, layer: &[u8], claimed: Option<String>) -> PathBuf {
        let diff_id = claimed.unwrap_or_else(|| Digest::of(layer).to_string());
        let config = json!({
            "architecture": "arm64",
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        });
        let path = dir.join(format!(
            "saved-{}.tar",
            Digest::of(diff_id.as_bytes()).hex()
        ));
        let mut file = std::fs::File::create(&path).unwrap();
        crate::tar::archive_to(
            &mut file,
            vec![
                (
                    "manifest.json".into(),
                    Content::Bytes(br#"[{"Config":"c.json","Layers":["l/layer.tar"]}]"#.to_vec()),
                ),
                (
                    "c.json".into(),
                    Content::Bytes(config.to_string().into_bytes()),
                ),
                ("l/layer.tar".into(), Content::Bytes(layer.to_vec())),
            ],
            0,
        )
        .unwrap();
        path
    }

    #[test]
    fn a_plain_layer_is_gzipped_once_reproducibly_and_must_be_what_its_config_claims() {
        let dir = std::env::temp_dir().join(format!("multiarch-save-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (store, gzipped) = (dir.join("store"), dir.join("gzipped"));
        let layer = b"a plain layer's tar bytes".repeat(100);
        let saved = Archive::scan(&docker_archive(&dir, &layer, None)).unwrap();
        let mut first = Upload::default();
        let top = from_docker_archive(&saved, &mut first, (&store, &gzipped)).unwrap();
        let manifest: Value = serde_json::from_slice(&first.manifests[0].2).unwrap();
        assert_eq!(manifest["layers"][0]["mediaType"], GZIP_LAYER);
        let blob = Digest::parse(manifest["layers"][0]["digest"].as_str().unwrap()).unwrap();
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(store.join(blob.hex())).unwrap())
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, layer);
        // Again: the same manifest, from what was remembered.
        let mut again = Upload::default();
        assert_eq!(
            from_docker_archive(&saved, &mut again, (&store, &gzipped))
                .unwrap()
                .0,
            top.0
        );
        // A config that claims other bytes than the layer holds is refused.
        let lying = docker_archive(&dir, &layer, Some(format!("sha256:{}", "e".repeat(64))));
        let err = from_docker_archive(
            &Archive::scan(&lying).unwrap(),
            &mut Upload::default(),
            (&store, &gzipped),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("the image's config says otherwise"),
            "{err:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
