//! Attestations as BuildKit lays them out in an index: per image, a manifest whose
//! platform is `unknown/unknown`, annotated with the image it describes, holding in-toto
//! statements as layers, each annotated with its predicate type. `docker buildx imagetools
//! inspect --format '{{json .SBOM}}'` and Docker Scout read them there.

use serde_json::{json, Value};

use crate::digest::Digest;

pub(crate) const SPDX: &str = "https://spdx.dev/Document";
pub(crate) const CYCLONEDX: &str = "https://cyclonedx.org/bom";
pub(crate) const IN_TOTO: &str = "application/vnd.in-toto+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// One image's attestation manifest: its blobs (config, then one statement per layer),
/// its bytes and digest.
#[derive(Debug, Clone)]
pub(crate) struct Attestations {
    pub(crate) blobs: Vec<(Digest, Vec<u8>)>,
    /// Each statement's predicate type, digest and size, in layer order.
    pub(crate) statements: Vec<(String, Digest, u64)>,
    pub(crate) manifest: Vec<u8>,
    pub(crate) digest: Digest,
}

/// An in-toto statement about the image `subject` (its repository and platform) with
/// manifest digest `image`.
pub(crate) fn statement(
    predicate_type: &str,
    predicate: &Value,
    subject: &str,
    image: &Digest,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{ "name": subject, "digest": { "sha256": image.hex() } }],
        "predicate": predicate,
    }))
    .expect("statements serialise")
}

/// The attestation manifest holding `statements` (predicate type, statement bytes).
pub(crate) fn manifest(statements: &[(&str, Vec<u8>)]) -> Attestations {
    let layers: Vec<(Digest, &str, &Vec<u8>)> = statements
        .iter()
        .map(|(predicate_type, bytes)| (Digest::of(bytes), *predicate_type, bytes))
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|(d, ..)| d.as_str()).collect::<Vec<_>>() },
    }))
    .expect("configs serialise");
    let config_digest = Digest::of(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": { "mediaType": CONFIG, "digest": config_digest.as_str(), "size": config.len() },
        "layers": layers.iter().map(|(digest, predicate_type, bytes)| json!({
            "mediaType": IN_TOTO,
            "digest": digest.as_str(),
            "size": bytes.len(),
            "annotations": { "in-toto.io/predicate-type": predicate_type },
        })).collect::<Vec<_>>(),
    }))
    .expect("manifests serialise");
    let statements = layers
        .iter()
        .map(|(digest, predicate_type, bytes)| {
            (
                (*predicate_type).to_owned(),
                digest.clone(),
                bytes.len() as u64,
            )
        })
        .collect();
    let mut blobs = vec![(config_digest, config)];
    blobs.extend(
        layers
            .into_iter()
            .map(|(digest, _, bytes)| (digest, bytes.clone())),
    );
    Attestations {
        digest: Digest::of(&manifest),
        statements,
        blobs,
        manifest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attestation_manifest_names_its_statements_and_its_image() {
        let image = Digest::of(b"image");
        let spdx = statement(
            SPDX,
            &json!({ "spdxVersion": "SPDX-2.3" }),
            "pkg:docker/r/hello?platform=linux%2Farm64",
            &image,
        );
        let made = manifest(&[(SPDX, spdx.clone())]);
        let manifest: Value = serde_json::from_slice(&made.manifest).unwrap();
        assert_eq!(
            manifest["layers"][0]["annotations"]["in-toto.io/predicate-type"],
            SPDX
        );
        assert_eq!(manifest["layers"][0]["digest"], Digest::of(&spdx).as_str());
        assert_eq!(made.blobs.len(), 2);
        let statement: Value = serde_json::from_slice(&spdx).unwrap();
        assert_eq!(statement["subject"][0]["digest"]["sha256"], image.hex());
        assert_eq!(made.statements[0].0, SPDX);
        assert_eq!(made.statements[0].1, Digest::of(&spdx));
    }
}
