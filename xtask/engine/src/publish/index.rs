//! The index a release publishes, joined from its platforms' verified images: every image
//! first, then every image's attestation manifests (as BuildKit orders them), each
//! descriptor as the registry holds it, so the same records always give the same bytes.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// What one platform puts into the index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The image manifest's descriptor, with its platform.
    pub(crate) image: Value,
    /// Its attestation manifests' descriptors, annotated with the image they describe.
    pub(crate) attestations: Vec<Value>,
    /// `org.opencontainers.image.*` labels of the image's config, which the index carries
    /// as annotations.
    pub(crate) labels: BTreeMap<String, String>,
}

/// The descriptor of an attestation manifest for the image `image`, as BuildKit writes it.
pub(crate) fn attestation(media_type: &str, digest: &str, size: u64, image: &str) -> Value {
    json!({
        "mediaType": media_type,
        "digest": digest,
        "size": size,
        "annotations": {
            "vnd.docker.reference.digest": image,
            "vnd.docker.reference.type": "attestation-manifest",
        },
        "platform": { "architecture": "unknown", "os": "unknown" },
    })
}

/// The index of `entries` (in platform order), as bytes.
pub(crate) fn join(entries: &[Entry]) -> Vec<u8> {
    let mut annotations = BTreeMap::new();
    for entry in entries {
        annotations.extend(entry.labels.clone());
    }
    let manifests: Vec<&Value> = entries
        .iter()
        .map(|e| &e.image)
        .chain(entries.iter().flat_map(|e| &e.attestations))
        .collect();
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": crate::registry::OCI_INDEX,
        "manifests": manifests,
    });
    if !annotations.is_empty() {
        index["annotations"] = json!(annotations);
    }
    serde_json::to_vec(&index).expect("indexes serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, digit: char) -> Entry {
        let image = format!("sha256:{}", digit.to_string().repeat(64));
        Entry {
            image: json!({
                "mediaType": crate::registry::OCI_MANIFEST,
                "digest": image,
                "size": 500,
                "platform": { "architecture": arch, "os": "linux" },
            }),
            attestations: vec![attestation(
                crate::registry::OCI_MANIFEST,
                &format!("sha256:{}", "f".repeat(64)),
                840,
                &image,
            )],
            labels: [(
                "org.opencontainers.image.revision".to_owned(),
                "abc".to_owned(),
            )]
            .into(),
        }
    }

    #[test]
    fn images_come_first_then_their_attestations_and_the_bytes_repeat() {
        let entries = [entry("amd64", 'a'), entry("arm64", 'b')];
        let index: Value = serde_json::from_slice(&join(&entries)).unwrap();
        let kinds: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"]["architecture"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["amd64", "arm64", "unknown", "unknown"]);
        assert_eq!(
            index["manifests"][3]["annotations"]["vnd.docker.reference.digest"],
            format!("sha256:{}", "b".repeat(64))
        );
        assert_eq!(
            index["annotations"]["org.opencontainers.image.revision"],
            "abc"
        );
        assert_eq!(join(&entries), join(&entries.clone()));
    }
}
