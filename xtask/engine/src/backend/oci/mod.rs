//! The OCI backend: images assembled by the tool itself (no engine) from the rendered
//! Dockerfile and the context, written as an OCI image layout under
//! `target/multiarch/<package>/oci/`, and pushed through the registry's HTTP API with the
//! tag's index last, so a failed platform never leaves a tag.

pub mod blobs;
pub mod layer;
pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::image_ref::ImageRef;
use crate::config::platform::{Platform, OS};
use crate::digest::Digest;
use crate::exec::{Attached, Backend, Built, BuiltImage, Pushed, Work};
use crate::plan::{ImageBuild, Push};
use crate::publish::record::AttachedKind;
use crate::registry::{Payload, Registry};
use blobs::{BaseLayers, Blob};

pub(crate) const MANIFEST: &str = crate::registry::OCI_MANIFEST;
pub(crate) const INDEX: &str = crate::registry::OCI_INDEX;
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The default `PATH` Docker gives an image built `FROM scratch`.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One image this run assembled: its manifest and what it points to. A build hands it to
/// its push and publish (and to `--load`) as a value.
#[derive(Debug, Clone)]
pub(crate) struct Assembled {
    manifest_digest: String,
    /// Its SBOM's and provenance's attestation manifest, when either is on.
    attestations: Option<crate::supply::attest::Attestations>,
    /// The base image and its manifest digest for this platform.
    base: Option<(String, String)>,
    /// Its layer came from the cache: nothing it holds changed since the last run.
    reused: bool,
    manifest: Vec<u8>,
    /// The config, then every layer, the base's first.
    blobs: Vec<Blob>,
    /// The layout's `blobs/sha256/`, where the image's own blobs are and base layers are
    /// linked once fetched.
    layout_blobs: PathBuf,
    platform: &'static Platform,
}

/// A base image as the OCI backend builds on it: its config, and its layers' descriptors
/// (not their bytes).
struct BaseImage {
    config: Value,
    layers: Vec<Blob>,
    /// The base as written and its manifest digest for this platform, for provenance.
    pinned: (String, String),
}

/// The most layers an image may have: Docker's overlay2 driver stacks at most 125 (its
/// `maxDepth`), containerd's snapshotters about as many.
const MAX_LAYERS: usize = 125;

/// Refuses a base of `layers` layers that, with this image's own, an engine cannot stack;
/// checked before any layer is fetched, so it costs one request, not a download.
fn check_layer_count(base: &ImageRef, platform: &Platform, layers: usize) -> Result<()> {
    if layers < MAX_LAYERS {
        return Ok(());
    }
    Err(crate::diagnostic::diagnostic(
        format!(
            "the base image {base} has {layers} layers for {platform}; with this image's own that is more than the {MAX_LAYERS} an engine stacks (`docker load` fails with \"max depth exceeded\")"
        ),
        "use a base with fewer layers (squash it, or pick a slimmer one)",
    ))
}

/// Builds images with no engine at all: assembled here, written as an OCI layout, pushed
/// over the registry API.
pub(crate) struct OciBackend {
    pub(crate) root: PathBuf,
    layout: crate::layout::Layout,
    /// `rustc -V`, for provenance.
    rustc: Option<String>,
    /// When base layers are downloaded.
    base_layers: BaseLayers,
    store: blobs::Store,
    /// One client per base repository, so a login is made once per run.
    registries: Mutex<HashMap<String, Arc<Registry>>>,
}

impl OciBackend {
    pub(crate) fn new(
        root: &Path,
        target_dir: &Path,
        rustc: Option<String>,
        (base_layers, deadline): (BaseLayers, std::time::Duration),
    ) -> OciBackend {
        let layout = crate::layout::Layout::new(target_dir);
        OciBackend {
            root: root.to_path_buf(),
            store: blobs::Store::new(layout.blob_store(), deadline),
            layout,
            rustc,
            base_layers,
            registries: Mutex::new(HashMap::new()),
        }
    }

    /// The client of `base`'s repository, made once per run.
    fn base_registry(&self, base: &ImageRef) -> Result<Arc<Registry>> {
        let mut registries = self.registries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(registry) = registries.get(&base.name()) {
            return Ok(registry.clone());
        }
        let registry = Arc::new(Registry::of(base, base.is_loopback())?);
        registries.insert(base.name(), registry.clone());
        Ok(registry)
    }

    /// The OCI image layout of a build: beside the platform contexts of its package.
    fn layout(&self, build: &ImageBuild) -> PathBuf {
        self.layout.oci_layout(&build.package)
    }

    fn assemble(&self, build: &ImageBuild) -> Result<(String, Assembled)> {
        let dockerfile = std::fs::read_to_string(self.root.join(&build.dockerfile))
            .with_context(|| format!("cannot read {}", build.dockerfile.display()))?;
        let spec = spec::parse(&dockerfile, &build.dockerfile.display().to_string())?;
        let platform = build.platform;
        let layout_blobs = self.layout(build).join("blobs/sha256");
        let base = match &spec.base {
            Some(base) => Some(self.base_for(base, platform, &layout_blobs)?),
            None => None,
        };
        let base_config = base.as_ref().map(|b| &b.config);
        let epoch = build.source_date_epoch.unwrap_or(0);
        let cache = layer::LayerCache {
            dir: self.layout.layer_cache(&build.package),
            blobs: layout_blobs.clone(),
        };
        let layer = layer::build(&self.root.join(&build.context), &spec.copies, epoch, &cache)?;
        let reused = layer.reused;
        let mut labels: BTreeMap<String, String> = base_config
            .and_then(|c| serde_json::from_value(c["config"]["Labels"].clone()).ok())
            .unwrap_or_default();
        labels.extend(spec.config.labels.clone());
        labels.extend(build.labels.iter().cloned());
        let created = crate::time::rfc3339(epoch);
        let inherited = |key: &str| -> Vec<Value> {
            base_config
                .and_then(|c| c["rootfs"][key].as_array().or(c[key].as_array()).cloned())
                .unwrap_or_default()
        };
        let mut diff_ids = inherited("diff_ids");
        diff_ids.push(json!(layer.diff_id));
        let mut history = inherited("history");
        history.extend(spec.copies.iter().map(
            |c| json!({ "created": created, "created_by": format!("{} # multiarch", c.written) }),
        ));
        let mut config = json!({
            "created": created,
            "architecture": platform.arch,
            "os": OS,
            "config": run_config(&spec.config, &labels, base_config.map(|c| &c["config"])),
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        });
        if let Some(variant) = platform.variant {
            config["variant"] = json!(variant);
        }
        let config = serde_json::to_vec(&config)?;
        let config_digest = Digest::of(&config);
        crate::exec::files::write_if_changed(&layout_blobs.join(config_digest.hex()), &config)?;
        let mut blobs = vec![Blob::own(config_digest, config.len() as u64)];
        let pinned_base = base.as_ref().map(|b| b.pinned.clone());
        blobs.extend(base.map(|b| b.layers).unwrap_or_default());
        blobs.push(Blob::own(layer.digest, layer.size));
        let layers: Vec<Value> = blobs[1..]
            .iter()
            .map(|b| json!({ "mediaType": LAYER, "digest": b.digest.as_str(), "size": b.size }))
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": { "mediaType": CONFIG, "digest": blobs[0].digest.as_str(), "size": blobs[0].size },
            "layers": layers,
        }))?;
        let manifest_digest = Digest::of(&manifest).to_string();
        Ok((
            manifest_digest.clone(),
            Assembled {
                manifest_digest,
                attestations: None,
                base: pinned_base,
                reused,
                manifest,
                blobs,
                layout_blobs,
                platform,
            },
        ))
    }

    /// [`OciBackend::base_image`], its layers fetched into the layout unless they are
    /// fetched on demand.
    fn base_for(
        &self,
        base: &ImageRef,
        platform: &'static Platform,
        layout_blobs: &Path,
    ) -> Result<BaseImage> {
        let image = self.base_image(base, platform)?;
        if self.base_layers == BaseLayers::Fetch {
            self.store
                .ensure_all(&image.layers, layout_blobs)
                .with_context(|| format!("fetching the layers of {base} for {platform}"))?;
        }
        Ok(image)
    }

    /// The base image for `platform`: its config, fetched from its registry by digest, and
    /// its layers' descriptors (gzip tars). A base not published for the platform is an
    /// error here, before anything is uploaded.
    fn base_image(&self, base: &ImageRef, platform: &'static Platform) -> Result<BaseImage> {
        let registry = self.base_registry(base)?;
        let reference = base
            .digest
            .clone()
            .or_else(|| base.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let top_bytes = registry.get_manifest(&reference)?;
        let mut pinned = Digest::of(&top_bytes).to_string();
        let top: Value = serde_json::from_slice(&top_bytes)
            .with_context(|| format!("the manifest of the base image {base} is not JSON"))?;
        let not_published = || {
            crate::diagnostic::diagnostic(
                format!("the base image {base} is not published for {platform}"),
                format!("pick a base with a {platform} variant (set it per platform in `vars`), or drop {platform} from `platforms`"),
            )
        };
        let manifest: Value = match top["manifests"].as_array() {
            Some(entries) => {
                let entry = entries
                    .iter()
                    .find(|e| {
                        let p = &e["platform"];
                        platform.matches(
                            p["os"].as_str().unwrap_or_default(),
                            p["architecture"].as_str().unwrap_or_default(),
                            p["variant"].as_str(),
                        )
                    })
                    .ok_or_else(not_published)?;
                let (digest, _) = descriptor(entry, base)?;
                pinned = digest.to_string();
                serde_json::from_slice(&registry.get_manifest(digest.as_str())?)
                    .with_context(|| format!("the {platform} manifest of {base} is not JSON"))?
            }
            None => top,
        };
        let (config_digest, config_size) = descriptor(&manifest["config"], base)?;
        let config_size = config_size.min(crate::registry::DOCUMENT_LIMIT);
        let config: Value =
            serde_json::from_slice(&registry.get_blob(&config_digest, config_size)?)
                .with_context(|| format!("the config of {base} for {platform} is not JSON"))?;
        let matches = platform.matches(
            config["os"].as_str().unwrap_or_default(),
            config["architecture"].as_str().unwrap_or_default(),
            config["variant"].as_str(),
        );
        if !matches {
            return Err(not_published());
        }
        let descriptors = manifest["layers"].as_array().map_or(&[][..], Vec::as_slice);
        check_layer_count(base, platform, descriptors.len())?;
        let mut layers = Vec::new();
        for layer in descriptors {
            let media_type = layer["mediaType"].as_str().unwrap_or_default();
            if !media_type.ends_with("tar.gzip") && !media_type.ends_with("tar+gzip") {
                return Err(crate::diagnostic::diagnostic(
                    format!("the base image {base} has a `{}` layer; the OCI backend reuses gzip layers only", crate::diagnostic::escape(media_type)),
                    "use backend = \"docker\" for this base",
                ));
            }
            let (digest, size) = descriptor(layer, base)?;
            layers.push(Blob {
                digest,
                size,
                origin: Some(registry.clone()),
            });
        }
        Ok(BaseImage {
            config,
            layers,
            pinned: (base.to_string(), pinned),
        })
    }

    /// Writes the image's blobs into the layout and names it in `index.json` by its tags.
    fn write_layout(&self, build: &ImageBuild, digest_: &str, image: &Assembled) -> Result<()> {
        let layout = self.layout(build);
        let manifest = image
            .layout_blobs
            .join(digest_.trim_start_matches("sha256:"));
        crate::exec::files::write_if_changed(&manifest, &image.manifest)?;
        crate::exec::files::write_if_changed(
            &layout.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        // Builds run in parallel; the index is read and written by one at a time.
        static INDEX_LOCK: Mutex<()> = Mutex::new(());
        let _turn = INDEX_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let index_path = layout.join("index.json");
        let mut manifests: Vec<Value> = std::fs::read(&index_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|index| index["manifests"].as_array().cloned())
            .unwrap_or_default();
        for tag in &build.tags {
            let name = tag.tag.clone().unwrap_or_default();
            manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != name);
            manifests.push(json!({
                "mediaType": MANIFEST,
                "digest": digest_,
                "size": image.manifest.len(),
                "platform": image.platform.descriptor(),
                "annotations": { "org.opencontainers.image.ref.name": name },
            }));
        }
        manifests
            .sort_by_key(|m| m["annotations"]["org.opencontainers.image.ref.name"].to_string());
        let index = json!({ "schemaVersion": 2, "mediaType": INDEX, "manifests": manifests });
        crate::exec::files::write_if_changed(&index_path, &serde_json::to_vec_pretty(&index)?)
    }
}

impl Backend for OciBackend {
    type Image = Assembled;

    fn describe(&self, work: Work<'_>) -> Vec<String> {
        match work {
            Work::BaseImage(base) => vec![format!(
                "resolve {} for {} from its registry (registry API, digests verified)",
                base.image, base.platform
            )],
            Work::Image(build) => vec![format!(
                "assemble an OCI image from {} and {} into {} (no engine)",
                build.dockerfile.display(),
                build.context.display(),
                self.layout(build)
                    .strip_prefix(&self.root)
                    .unwrap_or(&self.layout(build))
                    .display()
            )],
            Work::Push(push) => vec![format!(
                "upload the blobs, then PUT the manifest and its attestations into {} by digest (registry API)",
                push.repository
            )],
        }
    }

    fn base_rootfs(
        &self,
        base: &str,
        platform: &'static Platform,
    ) -> Result<crate::rootfs::Rootfs> {
        let image = ImageRef::parse(base).map_err(|err| {
            crate::diagnostic::diagnostic(
                format!(
                    "the base image `{}` cannot be read: {err}",
                    crate::diagnostic::escape(base)
                ),
                "name the base as a registry reference in the template or `vars`",
            )
        })?;
        let base_image = self.base_image(&image, platform)?;
        let scratch = crate::layout::temporary_beside(&self.layout.blob_store().join("libc"));
        let mut rootfs = crate::rootfs::Rootfs::default();
        let paths = self.store.fetched_all(&base_image.layers)?;
        for (blob, path) in base_image.layers.iter().zip(paths) {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            rootfs
                .apply_layer(file, &scratch)
                .with_context(|| format!("reading the layer {} of {base}", blob.digest))?;
        }
        Ok(rootfs)
    }

    fn build_image(&self, build: &ImageBuild) -> Result<Built<Assembled>> {
        let (manifest_digest, mut image) = self.assemble(build)?;
        image.attestations = self
            .attestations(build, &manifest_digest, image.base.clone())
            .with_context(|| format!("attaching the SBOM and provenance of {}", build.platform))?;
        self.write_layout(build, &manifest_digest, &image)?;
        let size = image.blobs.iter().map(|b| b.size).sum();
        let platform = image.platform;
        Ok(Built {
            facts: BuiltImage {
                id: manifest_digest,
                size,
                os: OS.to_owned(),
                architecture: platform.arch.to_owned(),
                variant: platform.variant.map(String::from),
                reused: image.reused,
            },
            image,
        })
    }

    fn push(&self, push: &Push, image: &Assembled) -> Result<Pushed> {
        let manifest_digest = &image.manifest_digest;
        let registry = Registry::of(&push.repository, push.insecure)?;
        let mut sent: BTreeMap<blobs::Sent, (usize, u64)> = BTreeMap::new();
        for blob in &image.blobs {
            let how = self
                .store
                .push(blob, &image.layout_blobs, &registry)
                .with_context(|| format!("pushing {} to {}", blob.digest, push.repository))?;
            let tally = sent.entry(how).or_default();
            *tally = (tally.0 + 1, tally.1 + blob.size);
        }
        eprintln!("  {}: {}", push.repository, blobs::Sent::summary(&sent));
        let pushed = registry.put_manifest(manifest_digest, MANIFEST, &image.manifest)?;
        if pushed.as_str() != manifest_digest {
            anyhow::bail!("the manifest assembled as {manifest_digest} hashes to {pushed}");
        }
        // The attestations go up by digest too; the published index names them.
        let mut attached = Vec::new();
        if let Some(attestations) = &image.attestations {
            for (blob_digest, bytes) in &attestations.blobs {
                registry.upload_blob(blob_digest, Payload::Bytes(bytes))?;
            }
            registry.put_manifest(
                attestations.digest.as_str(),
                MANIFEST,
                &attestations.manifest,
            )?;
            attached.push(Attached {
                kind: AttachedKind::AttestationManifest,
                digest: attestations.digest.to_string(),
                media_type: MANIFEST.to_owned(),
                size: attestations.manifest.len() as u64,
            });
            attached.extend(
                attestations
                    .statements
                    .iter()
                    .map(|(predicate, digest, size)| Attached {
                        kind: match predicate == crate::supply::provenance::PREDICATE_TYPE {
                            true => AttachedKind::Provenance,
                            false => AttachedKind::Sbom,
                        },
                        digest: digest.to_string(),
                        media_type: crate::supply::attest::IN_TOTO.to_owned(),
                        size: *size,
                    }),
            );
        }
        Ok(Pushed {
            digest: manifest_digest.clone(),
            media_type: MANIFEST.to_owned(),
            size: image.manifest.len() as u64,
            attached,
        })
    }
}

impl OciBackend {
    /// The attestation manifest of the image: its SBOM (the CycloneDX and SPDX documents
    /// the runner wrote after staging) and its SLSA provenance (written here), as in-toto
    /// statements about `image_digest`; `None` when neither is on.
    fn attestations(
        &self,
        build: &ImageBuild,
        image_digest: &str,
        base: Option<(String, String)>,
    ) -> Result<Option<crate::supply::attest::Attestations>> {
        use crate::supply::{attest, provenance};
        let image = Digest::parse(image_digest).context("the image has no sha256 digest")?;
        let subject = format!(
            "pkg:docker/{}?platform={}",
            build.tags[0].name(),
            build.platform.name().replace('/', "%2F")
        );
        let read = |path: &Path| -> Result<Value> {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok(serde_json::from_slice(&bytes)?)
        };
        let mut statements = Vec::new();
        if let Some(plan) = &build.sbom_of {
            for (kind, path) in [
                (attest::SPDX, &plan.spdx),
                (attest::CYCLONEDX, &plan.cyclonedx),
            ] {
                statements.push((
                    kind,
                    attest::statement(kind, &read(path)?, &subject, &image),
                ));
            }
        }
        if let Some((facts, file)) = &build.provenance_of {
            let lock = std::fs::read(self.root.join("Cargo.lock")).ok();
            let resolved = provenance::Resolved {
                rustc: self.rustc.clone(),
                lock_sha256: lock.map(|bytes| crate::digest::hex_sha256(&bytes)),
                base,
            };
            let predicate = provenance::predicate(facts, &resolved);
            crate::exec::files::write_if_changed(file, &serde_json::to_vec_pretty(&predicate)?)?;
            let kind = provenance::PREDICATE_TYPE;
            statements.push((kind, attest::statement(kind, &predicate, &subject, &image)));
        }
        Ok((!statements.is_empty()).then(|| attest::manifest(&statements)))
    }
}

impl OciBackend {
    /// Writes a `docker load` archive (Docker's own format, which 20.10 and 26 both read,
    /// with the gzip layers as they are) of `images`, each with its tags, to `path`:
    /// base layers not fetched yet are fetched first, and every blob is streamed from disk.
    pub(crate) fn write_load_archive(
        &self,
        images: &[(&Assembled, Vec<String>)],
        path: &Path,
    ) -> Result<()> {
        let mut files: BTreeMap<String, crate::tar::Content> = BTreeMap::new();
        let mut entries = Vec::new();
        for (image, repo_tags) in images {
            self.store.ensure_all(&image.blobs, &image.layout_blobs)?;
            let name = |blob: &Blob| format!("blobs/sha256/{}", blob.digest.hex());
            for blob in &image.blobs {
                let file = image.layout_blobs.join(blob.digest.hex());
                files.insert(name(blob), crate::tar::Content::File(file));
            }
            let layers: Vec<String> = image.blobs[1..].iter().map(name).collect();
            entries.push(json!({
                "Config": name(&image.blobs[0]),
                "RepoTags": repo_tags,
                "Layers": layers,
            }));
        }
        files.insert(
            "manifest.json".into(),
            crate::tar::Content::Bytes(serde_json::to_vec(&entries)?),
        );
        let temporary = crate::layout::temporary_beside(path);
        let written = (|| {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&temporary)?);
            crate::tar::archive_to(&mut out, files.into_iter().collect(), 0)?;
            std::io::Write::flush(&mut out)?;
            std::fs::rename(&temporary, path)?;
            Ok::<_, anyhow::Error>(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written.with_context(|| format!("writing {}", path.display()))
    }
}

/// The config's `config` object: the Dockerfile's settings over the base's (or Docker's
/// scratch defaults). As in Docker, an `ENTRYPOINT` of its own drops the base's `CMD`.
fn run_config(
    run: &spec::RunConfig,
    labels: &BTreeMap<String, String>,
    base: Option<&Value>,
) -> Value {
    let mut env: Vec<String> = base
        .and_then(|b| serde_json::from_value(b["Env"].clone()).ok())
        .unwrap_or_else(|| vec![DEFAULT_PATH.to_owned()]);
    for (key, value) in &run.env {
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(format!("{key}={value}"));
    }
    let mut config = base
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    config["Env"] = json!(env);
    if run.entrypoint.is_some() && run.cmd.is_none() {
        if let Some(object) = config.as_object_mut() {
            object.remove("Cmd");
        }
    }
    let fields = [
        ("Entrypoint", run.entrypoint.as_ref().map(|e| json!(e))),
        ("Cmd", run.cmd.as_ref().map(|c| json!(c))),
        ("User", run.user.as_ref().map(|u| json!(u))),
        ("WorkingDir", run.working_dir.as_ref().map(|w| json!(w))),
        ("StopSignal", run.stop_signal.as_ref().map(|s| json!(s))),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            config[key] = value;
        }
    }
    if !labels.is_empty() {
        config["Labels"] = json!(labels);
    }
    if !run.exposed_ports.is_empty() {
        let mut ports: BTreeMap<String, Value> = base
            .and_then(|b| serde_json::from_value(b["ExposedPorts"].clone()).ok())
            .unwrap_or_default();
        ports.extend(run.exposed_ports.iter().map(|p| (p.clone(), json!({}))));
        config["ExposedPorts"] = json!(ports);
    }
    config
}

/// The digest and size of a descriptor in a base image's manifest, checked: a digest the
/// registry wrote must be `sha256:<64 hex>` before it names a URL or a file.
fn descriptor(descriptor: &Value, base: &ImageRef) -> Result<(Digest, u64)> {
    let text = descriptor["digest"].as_str().unwrap_or_default();
    let digest = Digest::parse(text).ok_or_else(|| {
        crate::diagnostic::diagnostic(
            format!(
                "the base image {base} names a digest `{}` that is not sha256:<64 hex>",
                crate::diagnostic::escape(text)
            ),
            "check the base image's registry; nothing was uploaded",
        )
    })?;
    let size = descriptor["size"].as_u64().ok_or_else(|| {
        crate::diagnostic::diagnostic(
            format!("the base image {base} names {digest} without a size"),
            "check the base image's registry; nothing was uploaded",
        )
    })?;
    Ok((digest, size))
}
