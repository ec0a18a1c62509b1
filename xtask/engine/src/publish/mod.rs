//! Publishing: the images that one machine or many pushed by digest (their records, or
//! `repo@sha256:...` references built by other tools) joined into one index per package,
//! checked against the registry, signed, and only then tagged. One path for every backend,
//! and for one machine (`image --push`) as for many (`publish`).

pub mod index;
pub mod record;
pub mod verify;

use std::path::Path;

use anyhow::{Context, Result};

use self::record::{Checked, Origin, Record};
use self::verify::Verified;
use crate::config::image_ref::ImageRef;
use crate::config::platform::Platform;
use crate::diagnostic::{diagnostic, escape, Diagnostic};
use crate::digest::Digest;
use crate::plan::{ImageBuild, Release};
use crate::registry::{Registry, OCI_INDEX};
use crate::supply::cosign;

/// One platform's image to publish: its checked record, and when this process built it,
/// its build (whose SBOM and provenance files cosign attests when signing).
#[derive(Debug, Clone)]
pub(crate) struct Share {
    pub(crate) checked: Checked,
    pub(crate) build: Option<ImageBuild>,
}

/// What a release published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) package: String,
    pub(crate) repository: String,
    /// The index's digest.
    pub(crate) index: String,
    /// The digest of the index's cosign signature, when signed.
    pub(crate) signature: Option<String>,
    /// Every multi-arch tag, as a full reference.
    pub(crate) tags: Vec<String>,
    pub(crate) platforms: Vec<PublishedPlatform>,
}

/// One platform of a published release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublishedPlatform {
    pub(crate) platform: String,
    /// The record's digest: the image, or the engine's index around it.
    pub(crate) digest: String,
    pub(crate) tags: Vec<String>,
    /// The digest of the image's cosign signature, when signed.
    pub(crate) signature: Option<String>,
}

/// The largest in-toto statement read back from a registry to be attested.
const STATEMENT_LIMIT: u64 = 64 << 20;

/// What a statement read back from the registry is attested as.
enum Predicate {
    Sbom,
    Provenance,
}

/// Where publishing works: cosign's working directory (key paths are relative to the
/// workspace) and where blobs copied between registries pass through.
pub(crate) struct Places<'a> {
    pub(crate) root: &'a Path,
    pub(crate) scratch: &'a Path,
}

/// Publishes every release from `shares`. Everything is checked before anything is
/// written; every index is in the registry by digest, and signed when asked, before the
/// first tag moves; so a refusal or a failure leaves every tag as it was.
pub(crate) fn publish(
    releases: &[Release],
    shares: Vec<Share>,
    places: &Places<'_>,
) -> Result<Vec<Published>> {
    let assigned = assign(releases, shares)?;
    one_commit(assigned.iter().flatten())?;
    let mut joined = Vec::new();
    for (release, shares) in releases.iter().zip(assigned) {
        eprintln!("[{}] checking {} images", release.package, shares.len());
        joined.push(Joined::verify(release, shares, places.scratch)?);
    }
    for joined in &joined {
        joined.put_index()?;
    }
    let mut signatures = Vec::new();
    for joined in &joined {
        signatures.push(joined.sign(places)?);
    }
    joined
        .iter()
        .zip(signatures)
        .map(|(joined, signed)| joined.move_tags(signed))
        .collect()
}

/// Each release's shares in its platform order: every platform exactly once.
fn assign(releases: &[Release], shares: Vec<Share>) -> Result<Vec<Vec<Share>>> {
    let mut slots: Vec<Vec<Option<Share>>> = releases
        .iter()
        .map(|r| vec![None; r.platforms.len()])
        .collect();
    let packages = || {
        releases
            .iter()
            .map(|r| format!("`{}`", r.package))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for share in shares {
        let (origin, record) = (&share.checked.origin, &share.checked.record);
        let Some(at) = releases.iter().position(|r| r.package == record.package) else {
            return Err(diagnostic(
                format!(
                    "{origin} is of package `{}`, and this publish releases {}",
                    escape(&record.package),
                    packages()
                ),
                "publish it from the workspace that has that package, or leave -p out to publish every package",
            ));
        };
        let release = &releases[at];
        let Some(slot) = release
            .platforms
            .iter()
            .position(|p| p.name() == share.checked.platform.name())
        else {
            return Err(diagnostic(
                format!(
                    "{origin} is for {}, which package `{}` does not publish (its platforms: {})",
                    share.checked.platform,
                    release.package,
                    names(&release.platforms)
                ),
                "add the platform to `platforms`, or name the platforms to publish with --platform",
            ));
        };
        if let Some(earlier) = &slots[at][slot] {
            return Err(diagnostic(
                format!(
                    "two records of package `{}` for {}: {} and {origin}",
                    release.package, share.checked.platform, earlier.checked.origin
                ),
                "pass one record per platform (a job that ran again wrote its record again: keep the newer one)",
            ));
        }
        slots[at][slot] = Some(share);
    }
    releases
        .iter()
        .zip(slots)
        .map(|(release, slots)| {
            release
                .platforms
                .iter()
                .zip(slots)
                .map(|(platform, share)| {
                    share.ok_or_else(|| {
                        diagnostic(
                            format!("no record of package `{}` for {platform}", release.package),
                            format!(
                                "run `cargo xtask image --push-by-digest -p {} --platform {platform}` on a machine and pass its record, or publish fewer platforms with --platform",
                                release.package
                            ),
                        )
                    })
                })
                .collect()
        })
        .collect()
}

/// Every record names the same commit (references built elsewhere name none).
fn one_commit<'a>(shares: impl Iterator<Item = &'a Share>) -> Result<()> {
    let mut first: Option<&Share> = None;
    for share in shares.filter(|s| !matches!(s.checked.origin, Origin::Reference(_))) {
        let Some(earlier) = first else {
            first = Some(share);
            continue;
        };
        let (a, b) = (&earlier.checked.record, &share.checked.record);
        if a.commit != b.commit {
            let commit = |c: &Option<String>| c.clone().unwrap_or_else(|| "no commit".into());
            return Err(diagnostic(
                format!(
                    "the records are of different commits: {} ({}) and {} ({})",
                    escape(&commit(&a.commit)),
                    earlier.checked.origin,
                    escape(&commit(&b.commit)),
                    share.checked.origin
                ),
                "build every platform of a release from one commit, then publish their records together",
            ));
        }
    }
    Ok(())
}

/// One release, its shares verified and its index joined.
struct Joined<'a> {
    release: &'a Release,
    shares: Vec<Share>,
    verified: Vec<Verified>,
    target: Registry,
    index: Vec<u8>,
    digest: Digest,
}

impl<'a> Joined<'a> {
    /// Reads every share from its registry and checks it; copies what lives in another
    /// repository into the release's; joins the index.
    fn verify(release: &'a Release, shares: Vec<Share>, scratch: &Path) -> Result<Joined<'a>> {
        let target = Registry::of(&release.repository, release.insecure)?;
        let mut verified = Vec::new();
        for share in &shares {
            let repository = &share.checked.repository;
            // The release's own repository is read through the client that writes it.
            if same_repository(repository, &release.repository) {
                verified.push(verify::verify(&share.checked, &target)?);
                continue;
            }
            let insecure = match repository.registry_host() == release.repository.registry_host() {
                true => release.insecure,
                false => repository.is_loopback(),
            };
            let source = Registry::of(repository, insecure)?;
            let checked = verify::verify(&share.checked, &source)?;
            std::fs::create_dir_all(scratch)?;
            verify::copy(&checked, &source, &target, scratch).with_context(|| {
                format!(
                    "copying {}@{} into {}",
                    repository, share.checked.digest, release.repository
                )
            })?;
            verified.push(checked);
        }
        let entries: Vec<index::Entry> = verified.iter().map(|v| v.entry.clone()).collect();
        let index = index::join(&entries);
        Ok(Joined {
            release,
            digest: Digest::of(&index),
            shares,
            verified,
            target,
            index,
        })
    }

    /// Puts the index by digest, under no tag (nothing when the registry has it).
    fn put_index(&self) -> Result<()> {
        let repository = &self.release.repository;
        if self.target.get_manifest(self.digest.as_str()).is_ok() {
            eprintln!(
                "[{}] index {} is there already",
                self.release.package, self.digest
            );
            return Ok(());
        }
        self.target
            .put_manifest(self.digest.as_str(), OCI_INDEX, &self.index)
            .map_err(|err| {
                diagnostic(
                    format!(
                        "putting the index of package `{}` into {repository} failed: {}",
                        self.release.package,
                        Diagnostic::of(&err).cause
                    ),
                    "no tag was moved; publish the same records again once the registry takes writes",
                )
            })?;
        eprintln!(
            "[{}] index {} put by digest",
            self.release.package, self.digest
        );
        Ok(())
    }

    /// Signs every platform's image (with this run's SBOM and provenance where it built
    /// them) and the index, by digest. Returns the signatures' digests: the images' in
    /// platform order, then the index's.
    fn sign(&self, places: &Places<'_>) -> Result<(Vec<Option<String>>, Option<String>)> {
        let Some(signing) = &self.release.sign else {
            return Ok((vec![None; self.verified.len()], None));
        };
        let sh = xshell::Shell::new()?;
        sh.change_dir(places.root);
        let insecure = self.release.insecure;
        let run = |command: crate::process::Command, what: &str| {
            eprintln!("[{}] {what}", self.release.package);
            command.run(&sh).map(drop).map_err(|err| {
                diagnostic(
                    format!("{what} failed: {}", Diagnostic::of(&err).cause),
                    format!(
                        "no tag was moved: the images and the index are in {} by digest, untagged; fix signing, then publish the same records again",
                        self.release.repository
                    ),
                )
            })
        };
        let mut images = Vec::new();
        for (share, verified) in self.shares.iter().zip(&self.verified) {
            let digest = image_digest(verified);
            let reference = cosign::pinned(&self.release.repository, &digest);
            let mut predicates = Vec::new();
            let commands = match &share.build {
                Some(build) => cosign::image_commands(&reference, signing, insecure, build),
                None => {
                    let mut commands = vec![(
                        cosign::sign(&reference, signing, insecure),
                        format!("signing {reference}"),
                    )];
                    predicates = self.predicates(verified, &digest, places.scratch)?;
                    for (kind, path) in &predicates {
                        let (command, what) = match kind {
                            Predicate::Sbom => (
                                cosign::attest_sbom(&reference, signing, insecure, path),
                                "attesting the SBOM of",
                            ),
                            Predicate::Provenance => (
                                cosign::attest_provenance(&reference, signing, insecure, path),
                                "attesting the provenance of",
                            ),
                        };
                        commands.push((command, format!("{what} {reference}")));
                    }
                    commands
                }
            };
            let ran = commands
                .into_iter()
                .try_for_each(|(command, what)| run(command, &what));
            for (_, path) in &predicates {
                let _ = std::fs::remove_file(path);
            }
            ran?;
            images.push(signature_digest(&self.target, &digest));
        }
        let reference = cosign::pinned(&self.release.repository, self.digest.as_str());
        run(
            cosign::sign(&reference, signing, insecure),
            &format!("signing {reference}"),
        )?;
        Ok((images, signature_digest(&self.target, self.digest.as_str())))
    }

    /// The SBOM and provenance a platform's attestation manifest holds (the tool's own
    /// predicate types), each predicate written to a file for `cosign attest`, as the
    /// machine that built them would have attested them. A statement about another image
    /// is refused.
    fn predicates(
        &self,
        verified: &Verified,
        image: &str,
        scratch: &Path,
    ) -> Result<Vec<(Predicate, std::path::PathBuf)>> {
        let mut written = Vec::new();
        for statement in &verified.statements {
            let kind = match statement.predicate_type.as_str() {
                crate::supply::attest::CYCLONEDX => Predicate::Sbom,
                crate::supply::provenance::PREDICATE_TYPE => Predicate::Provenance,
                _ => continue,
            };
            if statement.size > STATEMENT_LIMIT {
                anyhow::bail!(
                    "the statement {} is {} bytes, above {STATEMENT_LIMIT}",
                    statement.digest,
                    statement.size
                );
            }
            let bytes = self.target.get_blob(&statement.digest, statement.size)?;
            let parsed: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("the statement {} is not JSON", statement.digest))?;
            let subject = parsed["subject"][0]["digest"]["sha256"].as_str();
            if subject != image.strip_prefix("sha256:") {
                anyhow::bail!(
                    "the statement {} is about another image than {image}",
                    statement.digest
                );
            }
            std::fs::create_dir_all(scratch)?;
            let path = scratch.join(format!("predicate-{}.json", statement.digest.hex()));
            std::fs::write(&path, serde_json::to_vec(&parsed["predicate"])?)?;
            written.push((kind, path));
        }
        Ok(written)
    }

    /// Moves every platform's own tags, then the multi-arch tags, to what was checked.
    fn move_tags(&self, signed: (Vec<Option<String>>, Option<String>)) -> Result<Published> {
        let (image_signatures, signature) = signed;
        let mut platforms = Vec::new();
        for ((share, verified), signature) in
            self.shares.iter().zip(&self.verified).zip(image_signatures)
        {
            let tags = self.release.platform_tags(share.checked.platform);
            for tag in &tags {
                self.put_tag(tag, &verified.top.media_type, &verified.top.bytes)?;
            }
            platforms.push(PublishedPlatform {
                platform: share.checked.platform.name(),
                digest: verified.top.digest.to_string(),
                tags: tags.iter().map(ImageRef::to_string).collect(),
                signature,
            });
        }
        let lists = self.release.lists();
        for list in &lists {
            self.put_tag(list, OCI_INDEX, &self.index)?;
            eprintln!("[{list}] published {}", self.digest);
        }
        Ok(Published {
            package: self.release.package.clone(),
            repository: self.release.repository.to_string(),
            index: self.digest.to_string(),
            signature,
            tags: lists.iter().map(ImageRef::to_string).collect(),
            platforms,
        })
    }

    /// Puts `bytes` under the tag `tag`, unless it names them already.
    fn put_tag(&self, tag: &ImageRef, media_type: &str, bytes: &[u8]) -> Result<()> {
        let name = tag.tag.as_deref().unwrap_or("latest");
        let current = self.target.get_manifest(name).ok();
        if current.as_deref() == Some(bytes) {
            return Ok(());
        }
        self.target
            .put_manifest(name, media_type, bytes)
            .with_context(|| format!("moving the tag {tag}"))
            .map(drop)
    }
}

/// The digest of the image a platform publishes (the one inside an engine's index).
fn image_digest(verified: &Verified) -> String {
    verified.entry.image["digest"]
        .as_str()
        .unwrap_or(verified.top.digest.as_str())
        .to_owned()
}

/// Whether two references name one repository.
fn same_repository(a: &ImageRef, b: &ImageRef) -> bool {
    a.registry_host().eq_ignore_ascii_case(b.registry_host()) && a.path == b.path
}

/// The digest of the signature cosign stored for `digest` (its `sha256-<hex>.sig` tag),
/// read back and hashed here; `None` when it is elsewhere (`COSIGN_REPOSITORY`).
fn signature_digest(registry: &Registry, digest: &str) -> Option<String> {
    let tag = format!("{}.sig", digest.replace(':', "-"));
    match registry.get_manifest(&tag) {
        Ok(bytes) => Some(Digest::of(&bytes).to_string()),
        Err(err) => {
            let cause = Diagnostic::of(&err).cause;
            eprintln!("note: the signature of {digest} is not at {tag}: {cause}");
            None
        }
    }
}

fn names(platforms: &[&Platform]) -> String {
    platforms
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A share for a `repo@sha256:...` reference built by another tool: its platform read
/// from the registry (the image's config, or the one image of an index), its package the
/// release whose repository it is in (or the only release).
pub(crate) fn share_of_reference(text: &str, releases: &[Release]) -> Result<Share> {
    let origin = Origin::Reference(text.to_owned());
    let refuse = |what: String, help: &str| diagnostic(format!("{origin} {what}"), help);
    let reference =
        ImageRef::parse(text).map_err(|err| refuse(err, "write it as REPO@sha256:HEX"))?;
    let Some(digest) = reference.digest.clone() else {
        return Err(refuse(
            "names no digest".into(),
            "pass a record file or directory, or a reference pinned as REPO@sha256:HEX",
        ));
    };
    let repository = ImageRef::parse(&reference.name()).map_err(|e| refuse(e, ""))?;
    let release = releases
        .iter()
        .find(|r| same_repository(&r.repository, &repository))
        .or(match releases {
            [only] => Some(only),
            _ => None,
        })
        .ok_or_else(|| {
            refuse(
                "is in no repository this publish releases".into(),
                "pass references from the packages' configured `image` repositories",
            )
        })?;
    let insecure = repository.is_loopback() || release.insecure;
    let registry = Registry::of(&repository, insecure)?;
    let bytes = registry.get_manifest(&digest).map_err(|err| {
        refuse(
            format!("cannot be read: {}", Diagnostic::of(&err).cause),
            "check the reference; nothing was published",
        )
    })?;
    let document: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| refuse("is not JSON".into(), "check the reference"))?;
    let platform = reference_platform(&registry, &document).map_err(|err| {
        refuse(
            format!("has no one platform: {}", Diagnostic::of(&err).cause),
            "pass one reference per platform (buildx: --output type=image,push-by-digest=true)",
        )
    })?;
    let record = Record {
        schema: record::SCHEMA.to_owned(),
        package: release.package.clone(),
        platform: platform.name(),
        repository: repository.to_string(),
        digest: digest.clone(),
        media_type: document["mediaType"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        size: bytes.len() as u64,
        commit: None,
        dirty: false,
        inputs: None,
        tool: Record::tool(),
        sbom: None,
        attached: Vec::new(),
    };
    Ok(Share {
        checked: record.check(origin)?,
        build: None,
    })
}

/// The one platform of an image manifest (its config) or of an index (its one image).
fn reference_platform(
    registry: &Registry,
    document: &serde_json::Value,
) -> Result<&'static Platform> {
    let platform_of = |os: &str, arch: &str, variant: Option<&str>| {
        let name = match variant {
            Some(variant) => format!("{os}/{arch}/{variant}"),
            None => format!("{os}/{arch}"),
        };
        Platform::parse(&name).map_err(|err| anyhow::anyhow!("{err}"))
    };
    if let Some(children) = document["manifests"].as_array() {
        let images: Vec<&serde_json::Value> = children
            .iter()
            .filter(|c| c["platform"]["os"] != "unknown")
            .collect();
        let [image] = images.as_slice() else {
            anyhow::bail!("the index lists {} images", images.len());
        };
        let field = |key: &str| image["platform"][key].as_str().unwrap_or_default();
        return platform_of(
            field("os"),
            field("architecture"),
            image["platform"]["variant"].as_str(),
        );
    }
    let config = &document["config"];
    let digest = Digest::parse(config["digest"].as_str().unwrap_or_default())
        .context("the manifest names no config digest")?;
    let size = config["size"].as_u64().unwrap_or(0).min(4 << 20);
    let config: serde_json::Value = serde_json::from_slice(&registry.get_blob(&digest, size)?)?;
    let field = |key: &str| config[key].as_str().unwrap_or_default();
    platform_of(
        field("os"),
        field("architecture"),
        config["variant"].as_str(),
    )
}

/// The steps of publishing `releases`, for a dry run: `digest` says what each platform's
/// digest is (or will be), `build` which of them this run builds.
pub(crate) fn describe(
    releases: &[Release],
    digest: &dyn Fn(&Release, &Platform) -> String,
    build: &dyn Fn(&Release, &Platform) -> Option<ImageBuild>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for release in releases {
        let package = &release.package;
        let repository = &release.repository;
        for platform in &release.platforms {
            lines.push(format!(
                "[{package}] read {repository}@{} for {platform} from the registry: its size, bytes re-hashed, its config's platform, every blob present",
                digest(release, platform)
            ));
        }
        lines.push(format!(
            "[{package}] PUT the OCI index of {} and their attestations into {repository} by digest (registry API)",
            names(&release.platforms)
        ));
        if let Some(signing) = &release.sign {
            for platform in &release.platforms {
                let reference = format!("{repository}@{}", digest(release, platform));
                let commands = match build(release, platform) {
                    Some(build) => {
                        cosign::image_commands(&reference, signing, release.insecure, &build)
                    }
                    None => vec![(
                        cosign::sign(&reference, signing, release.insecure),
                        String::new(),
                    )],
                };
                for (command, _) in commands {
                    lines.push(format!(
                        "[{package} {platform}] {}",
                        unquoted(&command, &reference)
                    ));
                }
            }
            let reference = format!("{repository}@<the index's digest>");
            let command = cosign::sign(&reference, signing, release.insecure);
            lines.push(format!("[{package}] {}", unquoted(&command, &reference)));
        }
        for platform in &release.platforms {
            for tag in release.platform_tags(platform) {
                lines.push(format!(
                    "[{tag}] PUT {repository}@{} under the tag (registry API)",
                    digest(release, platform)
                ));
            }
        }
        for list in release.lists() {
            lines.push(format!(
                "[{list}] PUT the index under the tag (registry API)"
            ));
        }
    }
    lines
}

/// A command line with `reference` shown as written: a placeholder is no shell word.
fn unquoted(command: &crate::process::Command, reference: &str) -> String {
    command
        .to_string()
        .replace(&crate::process::shell_quote(reference), reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(platforms: &[&str]) -> Release {
        Release {
            package: "hello".into(),
            repository: ImageRef::repository("localhost:5000/hello").unwrap(),
            insecure: true,
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
            tags: vec!["1.0".into()],
            sign: None,
        }
    }

    fn share(platform: &str, file: &str, commit: char) -> Share {
        let record = Record {
            platform: platform.into(),
            commit: Some(commit.to_string().repeat(40)),
            ..record::tests::sample()
        };
        Share {
            checked: record.check(Origin::File(file.into())).unwrap(),
            build: None,
        }
    }

    fn refusal(result: Result<Vec<Vec<Share>>>) -> String {
        crate::diagnostic::format_error(&result.expect_err("refused"))
    }

    #[test]
    fn every_platform_once_in_the_configs_order() {
        let releases = [release(&["amd64", "arm64"])];
        let assigned = assign(
            &releases,
            vec![share("arm64", "b.json", 'a'), share("amd64", "a.json", 'a')],
        )
        .unwrap();
        let order: Vec<String> = assigned[0]
            .iter()
            .map(|s| s.checked.platform.name())
            .collect();
        assert_eq!(order, ["linux/amd64", "linux/arm64"]);
        let missing = refusal(assign(&releases, vec![share("amd64", "a.json", 'a')]));
        assert!(
            missing.starts_with("error: no record of package `hello` for linux/arm64"),
            "{missing}"
        );
        assert!(
            missing.contains(
                "help: run `cargo xtask image --push-by-digest -p hello --platform linux/arm64`"
            ),
            "{missing}"
        );
        let twice = refusal(assign(
            &releases,
            vec![
                share("amd64", "a.json", 'a'),
                share("amd64", "again.json", 'a'),
            ],
        ));
        assert!(twice.contains("two records of package `hello` for linux/amd64: the record a.json and the record again.json"), "{twice}");
        let foreign = refusal(assign(&releases, vec![share("arm/v7", "c.json", 'a')]));
        assert!(
            foreign.contains(
                "the record c.json is for linux/arm/v7, which package `hello` does not publish"
            ),
            "{foreign}"
        );
        let mut other = share("amd64", "o.json", 'a');
        other.checked.record.package = "worker".into();
        let package = refusal(assign(&releases, vec![other]));
        assert!(
            package.contains("is of package `worker`, and this publish releases `hello`"),
            "{package}"
        );
    }

    #[test]
    fn records_of_two_commits_are_refused_and_references_carry_none() {
        let same = [share("amd64", "a.json", 'a'), share("arm64", "b.json", 'a')];
        assert!(one_commit(same.iter()).is_ok());
        let two = [share("amd64", "a.json", 'a'), share("arm64", "b.json", 'b')];
        let message = crate::diagnostic::format_error(&one_commit(two.iter()).unwrap_err());
        assert!(message.contains("different commits"), "{message}");
        assert!(
            message.contains("a.json") && message.contains("b.json"),
            "{message}"
        );
        let mut reference = share("arm64", "r", 'b');
        reference.checked.origin = Origin::Reference("localhost:5000/hello@sha256:..".into());
        assert!(one_commit([&same[0], &reference].into_iter()).is_ok());
    }

    #[test]
    fn the_dry_run_names_every_step_and_tag_in_order() {
        let mut releases = [release(&["amd64", "arm64"])];
        releases[0].sign = Some(crate::config::Signing {
            key: Some("cosign.key".into()),
            tlog: false,
        });
        let lines = describe(&releases, &|_, p| format!("<{p}>"), &|_, _| None);
        let expected = [
            "[hello] read localhost:5000/hello@<linux/amd64> for linux/amd64 from the registry",
            "[hello] PUT the OCI index of linux/amd64, linux/arm64",
            "[hello linux/arm64] cosign sign --yes --key cosign.key --tlog-upload=false --allow-http-registry --allow-insecure-registry localhost:5000/hello@<linux/arm64>",
            "[hello] cosign sign --yes --key cosign.key --tlog-upload=false --allow-http-registry --allow-insecure-registry localhost:5000/hello@<the index's digest>",
            "[localhost:5000/hello:arm64v8-1.0] PUT localhost:5000/hello@<linux/arm64> under the tag",
            "[localhost:5000/hello:1.0] PUT the index under the tag",
        ];
        let mut at = 0;
        for step in expected {
            let found = lines[at..].iter().position(|l| l.starts_with(step));
            at += found.unwrap_or_else(|| panic!("{step} after line {at}: {lines:#?}")) + 1;
        }
        assert_eq!(at, lines.len(), "the index's tag moves last: {lines:#?}");
    }
}
