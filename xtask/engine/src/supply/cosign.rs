//! Signing through cosign, the ecosystem's tool (key files, KMS URIs, keyless OIDC in CI):
//! every pushed image and every tag's index by digest, and an image's SBOM as a cosign
//! attestation. Key passwords travel as `COSIGN_PASSWORD` in the environment, never on a
//! command line.

use std::path::Path;

use crate::config::image_ref::ImageRef;
use crate::config::Signing;
use crate::process::Command;

/// The flags every cosign call of a run shares.
fn flags(signing: &Signing, insecure: bool) -> Vec<String> {
    let mut flags = vec!["--yes".to_owned()];
    if let Some(key) = &signing.key {
        flags.extend(["--key".to_owned(), key.clone()]);
    }
    if !signing.tlog {
        flags.push("--tlog-upload=false".to_owned());
    }
    if insecure {
        flags.extend([
            "--allow-http-registry".to_owned(),
            "--allow-insecure-registry".to_owned(),
        ]);
    }
    flags
}

/// `cosign sign` of `reference` (`repo@sha256:...`).
pub(crate) fn sign(reference: &str, signing: &Signing, insecure: bool) -> Command {
    let mut args = vec!["sign".to_owned()];
    args.extend(flags(signing, insecure));
    args.push(reference.to_owned());
    Command::new("cosign", args)
}

/// `cosign public-key --key KEY`: derives the public key, which opens the private one
/// (with `COSIGN_PASSWORD`), so a key that will not sign is found before anything runs.
pub(crate) fn open_key(key: &str) -> Command {
    Command::new("cosign", ["public-key", "--key", key])
}

/// `cosign attest --type cyclonedx` of `reference` with the SBOM at `predicate`.
pub(crate) fn attest_sbom(
    reference: &str,
    signing: &Signing,
    insecure: bool,
    predicate: &Path,
) -> Command {
    attest("cyclonedx", reference, signing, insecure, predicate)
}

/// `cosign attest --type slsaprovenance1` of `reference` with the provenance at `predicate`.
pub(crate) fn attest_provenance(
    reference: &str,
    signing: &Signing,
    insecure: bool,
    predicate: &Path,
) -> Command {
    attest("slsaprovenance1", reference, signing, insecure, predicate)
}

fn attest(
    kind: &str,
    reference: &str,
    signing: &Signing,
    insecure: bool,
    predicate: &Path,
) -> Command {
    let mut args = vec!["attest".to_owned()];
    args.extend(flags(signing, insecure));
    args.extend([
        "--type".to_owned(),
        kind.to_owned(),
        "--predicate".to_owned(),
        predicate.display().to_string(),
        reference.to_owned(),
    ]);
    Command::new("cosign", args)
}

/// Every cosign call for one pushed image (`reference`, `repo@sha256:...`), each with what
/// it does: the signature, then the attestations of the SBOM and provenance `build` has.
pub(crate) fn image_commands(
    reference: &str,
    signing: &Signing,
    insecure: bool,
    build: &crate::plan::ImageBuild,
) -> Vec<(Command, String)> {
    let mut commands = vec![(
        sign(reference, signing, insecure),
        format!("signing {reference}"),
    )];
    if let Some(sbom) = &build.sbom_of {
        let attest = attest_sbom(reference, signing, insecure, &sbom.cyclonedx);
        commands.push((attest, format!("attesting the SBOM of {reference}")));
    }
    if let Some((_, provenance)) = &build.provenance_of {
        let attest = attest_provenance(reference, signing, insecure, provenance);
        commands.push((attest, format!("attesting the provenance of {reference}")));
    }
    commands
}

/// `reference` pinned to `digest`, as cosign is given it.
pub(crate) fn pinned(reference: &ImageRef, digest: &str) -> String {
    reference.with_digest(digest).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_name_the_digest_and_carry_the_registry_flags() {
        let key = Signing {
            key: Some("cosign.key".into()),
            tlog: false,
        };
        let reference = format!("127.0.0.1:5000/hello@sha256:{}", "a".repeat(64));
        assert_eq!(
            sign(&reference, &key, true).to_string(),
            format!("cosign sign --yes --key cosign.key --tlog-upload=false --allow-http-registry --allow-insecure-registry {reference}")
        );
        let keyless = Signing {
            key: None,
            tlog: true,
        };
        assert_eq!(sign("r@d", &keyless, false).args, ["sign", "--yes", "r@d"]);
        let attest = attest_sbom("r@d", &key, false, Path::new("sbom/linux-arm64.cdx.json"));
        assert!(attest
            .to_string()
            .ends_with("--type cyclonedx --predicate sbom/linux-arm64.cdx.json r@d"));
    }
}
