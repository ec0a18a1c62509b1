//! Configuration, the ground floor: `[package.metadata.multiarch]` parsed strictly and
//! resolved over workspace defaults, plus the facts everything else stands on.

pub mod compile;
pub mod image_ref;
pub mod platform;
pub mod rustflags;
pub mod template;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::compile::{CargoOptions, RustTarget, Toolchain};
use crate::config::image_ref::ImageRef;
use crate::config::platform::Platform;
use crate::config::workspace::{Package, Workspace};

/// Where binaries are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BuildMode {
    /// On the host with `cargo build --target`; the Dockerfile copies the binaries in.
    #[default]
    Cross,
    /// Inside the image for the target architecture, under QEMU when foreign.
    Container,
}

/// What assembles and publishes the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// A Docker engine builds; `docker push`, then `docker manifest` or imagetools.
    #[default]
    Docker,
    /// The tool writes OCI images itself and talks to the registry's HTTP API; no engine.
    Oci,
}

impl Backend {
    pub(crate) fn parse(text: &str) -> Option<Backend> {
        match text {
            "docker" => Some(Backend::Docker),
            "oci" => Some(Backend::Oci),
            _ => None,
        }
    }
}

/// BuildKit's provenance attestation: `false` (the default), `true` (= `"min"`), `"min"`, `"max"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Provenance {
    #[default]
    Off,
    Min,
    Max,
}

impl Provenance {
    /// Reads the command line's or the manifest's spelling.
    pub(crate) fn parse(text: &str) -> Option<Provenance> {
        match text {
            "false" => Some(Provenance::Off),
            "true" | "min" => Some(Provenance::Min),
            "max" => Some(Provenance::Max),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Provenance {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Mode(String),
        }
        let text = match Written::deserialize(deserializer)? {
            Written::Flag(flag) => flag.to_string(),
            Written::Mode(mode) => mode,
        };
        Provenance::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not one of false, true, \"min\", \"max\""
            ))
        })
    }
}

/// The network `RUN` steps get while building.
/// Which SBOM each image gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Sbom {
    #[default]
    Off,
    /// `sbom = true`: the tool's own, exact for the platform, on every backend.
    Exact,
    /// `sbom = "buildkit"`: BuildKit's scanner attestation (docker backend, BuildKit).
    BuildKit,
}

/// `sbom` as written: a bool, or the name of a kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawSbom {
    Flag(bool),
    Kind(String),
}

impl Sbom {
    /// `true`, `false` or `buildkit`.
    pub(crate) fn parse(text: &str) -> Option<Sbom> {
        match text {
            "true" => Some(Sbom::Exact),
            "false" => Some(Sbom::Off),
            "buildkit" => Some(Sbom::BuildKit),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Network {
    /// The engine's default (the bridge network).
    #[default]
    Default,
    None,
    Host,
}

impl Network {
    pub(crate) fn parse(text: &str) -> Option<Network> {
        match text {
            "default" => Some(Network::Default),
            "none" => Some(Network::None),
            "host" => Some(Network::Host),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Network::Default => "default",
            Network::None => "none",
            Network::Host => "host",
        }
    }
}

/// When a static QEMU binary goes into the build context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum QemuCopy {
    #[default]
    Auto,
    Always,
    Never,
}

/// Where static QEMU binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum QemuSource {
    #[default]
    Download,
    Path,
}

/// The multiarch table exactly as written in one manifest; every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    image: Option<String>,
    platforms: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    semver: Option<bool>,
    dockerfile: Option<String>,
    build: Option<BuildMode>,
    bins: Option<Vec<String>>,
    files: Option<Vec<String>>,
    insecure_registry: Option<bool>,
    provenance: Option<Provenance>,
    sbom: Option<RawSbom>,
    auditable: Option<bool>,
    network: Option<Network>,
    backend: Option<Backend>,
    /// The Docker context every platform builds on, unless its table names another.
    context: Option<String>,
    /// The buildx builder every platform builds with, unless its table names another.
    builder: Option<String>,
    toolchain: Option<Toolchain>,
    features: Option<Vec<String>>,
    no_default_features: Option<bool>,
    all_features: Option<bool>,
    profile: Option<String>,
    locked: Option<bool>,
    frozen: Option<bool>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    qemu: RawQemu,
    sign: Option<RawSign>,
    #[serde(default)]
    platform: BTreeMap<String, RawPlatform>,
}

/// `sign = { key = "<cosign key ref>" }` or `{ keyless = true }`, with `tlog = false` to
/// skip the transparency log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSign {
    key: Option<String>,
    keyless: Option<bool>,
    tlog: Option<bool>,
}

/// How every pushed image and tag is signed, by digest, through cosign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signing {
    /// A key reference cosign takes (a file, `awskms://...`, `k8s://...`); `None` signs
    /// keylessly with the CI's OIDC identity.
    pub(crate) key: Option<String>,
    /// Whether signatures are recorded in the transparency log.
    pub(crate) tlog: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQemu {
    version: Option<String>,
    url: Option<String>,
    /// Seconds a download may go without receiving a byte.
    timeout: Option<u64>,
    copy: Option<QemuCopy>,
    source: Option<QemuSource>,
    #[serde(default)]
    sha256: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    target: Option<String>,
    build: Option<BuildMode>,
    context: Option<String>,
    builder: Option<String>,
    toolchain: Option<Toolchain>,
    linker: Option<String>,
    cc: Option<String>,
    cxx: Option<String>,
    ar: Option<String>,
    rustflags: Option<Vec<String>>,
    /// Added to the package's features for this platform's build.
    features: Option<Vec<String>>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
}

/// Only the parts of a Cargo.toml this tool reads; everything else is cargo's business.
#[derive(Deserialize)]
struct Manifest {
    package: Option<Section>,
    workspace: Option<Section>,
}

#[derive(Deserialize)]
struct Section {
    metadata: Option<MetadataTable>,
}

#[derive(Deserialize)]
struct MetadataTable {
    multiarch: Option<RawConfig>,
}

/// The two multiarch tables of one Cargo.toml.
#[derive(Default)]
pub(crate) struct ManifestTables {
    pub(crate) package: Option<RawConfig>,
    pub(crate) workspace: Option<RawConfig>,
}

impl ManifestTables {
    /// The backend the tables of one manifest name, the package's over the workspace's.
    pub(crate) fn backend(&self) -> Option<Backend> {
        let of = |table: &Option<RawConfig>| table.as_ref().and_then(|t| t.backend);
        of(&self.package).or(of(&self.workspace))
    }

    /// Whether the registry of the `image` these tables name is spoken to over plain HTTP
    /// (loopback, or `insecure_registry`); `None` when they name no image.
    pub(crate) fn plain_http_image(&self) -> Option<bool> {
        let of = |table: &Option<RawConfig>| table.as_ref().and_then(|t| t.image.clone());
        let image = of(&self.package).or(of(&self.workspace))?;
        let insecure = |table: &Option<RawConfig>| table.as_ref().and_then(|t| t.insecure_registry);
        let insecure = insecure(&self.package)
            .or(insecure(&self.workspace))
            .unwrap_or(false);
        Some(insecure || ImageRef::parse(&image).is_ok_and(|image| image.is_loopback()))
    }
}

pub(crate) const DEFAULT_DOCKERFILE: &str = "docker/Dockerfile.j2";
pub(crate) const DEFAULT_TAGS: &[&str] = &["{{ version }}"];
pub(crate) const DEFAULT_QEMU_VERSION: &str = "7.2.0-1";
pub(crate) const DEFAULT_QEMU_URL: &str = "https://github.com/multiarch/qemu-user-static/releases/download/v{{ version }}/x86_64_qemu-{{ qemu_arch }}-static.tar.gz";

/// Template variables the tool defines; `vars` may not redefine them.
pub(crate) const BUILTIN_VARIABLES: &[&str] = &[
    "platform",
    "os",
    "arch",
    "variant",
    "docker_arch",
    "qemu_arch",
    "uname_m",
    "debian_arch",
    "rust_target",
    "native",
    "qemu",
    "qemu_interpreter",
    "bins",
    "package",
    "version",
];

/// Reads the multiarch tables of a manifest, naming the file, line and key of any mistake.
pub(crate) fn parse_manifest(path: &Path, text: &str) -> Result<ManifestTables> {
    let invalid = |key: &str, inner: toml::de::Error| {
        let location = match inner.span() {
            Some(span) => {
                let line = text[..span.start].matches('\n').count() + 1;
                format!("{}:{line}", path.display())
            }
            None => path.display().to_string(),
        };
        let message = inner.message().trim().replace('\n', " ");
        crate::diagnostic::diagnostic(
            format!("invalid `{key}` in {location}: {message}"),
            format!("fix or remove `{key}`; docs/configuration.md lists every key"),
        )
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|err| invalid(".", err))?;
    let manifest: Manifest = serde_path_to_error::deserialize(deserializer)
        .map_err(|err| invalid(&err.path().to_string(), err.into_inner()))?;
    let table = |s: Option<Section>| s.and_then(|s| s.metadata).and_then(|m| m.multiarch);
    Ok(ManifestTables {
        package: table(manifest.package),
        workspace: table(manifest.workspace),
    })
}

/// One platform with everything needed to build for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlatformConfig {
    pub(crate) platform: &'static Platform,
    /// Where this platform's binaries are compiled: the package's mode unless overridden.
    pub(crate) build: BuildMode,
    /// The engine this platform builds, inspects and pushes on.
    pub(crate) engine: EngineTarget,
    /// The plain Rust target triple.
    pub(crate) target: String,
    /// The glibc version cargo-zigbuild links against, from `target = "<triple>.2.28"`.
    pub(crate) glibc: Option<String>,
    pub(crate) toolchain: Toolchain,
    pub(crate) linker: Option<String>,
    /// The C compiler, C++ compiler and archiver for this target (`CC_<triple>`, ...).
    pub(crate) cc: Option<String>,
    pub(crate) cxx: Option<String>,
    pub(crate) ar: Option<String>,
    pub(crate) rustflags: Vec<String>,
    /// The package's features plus this platform's.
    pub(crate) features: Vec<String>,
    /// `vars` with this platform's overrides applied.
    pub(crate) vars: BTreeMap<String, toml::Value>,
}

/// The engine a platform's image is built on: the local one, a Docker context
/// (`docker --context NAME`), and optionally a buildx builder (`--builder NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EngineTarget {
    pub(crate) context: Option<String>,
    pub(crate) builder: Option<String>,
}

impl EngineTarget {
    pub(crate) fn is_local(&self) -> bool {
        self.context.is_none() && self.builder.is_none()
    }
}

impl std::fmt::Display for EngineTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.context, &self.builder) {
            (None, None) => f.write_str("the local engine"),
            (Some(context), None) => write!(f, "context `{context}`"),
            (None, Some(builder)) => write!(f, "builder `{builder}`"),
            (Some(context), Some(builder)) => {
                write!(f, "context `{context}`, builder `{builder}`")
            }
        }
    }
}

impl PlatformConfig {
    /// The C compiler this platform names: `cc`, else a `*-gcc` linker (which is also the
    /// C compiler of that cross toolchain).
    pub(crate) fn configured_cc(&self) -> Option<String> {
        self.cc.clone().or_else(|| {
            self.linker
                .clone()
                .filter(|linker| linker.ends_with("-gcc"))
        })
    }
}

/// QEMU settings after defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QemuConfig {
    pub(crate) version: String,
    pub(crate) url: String,
    /// Seconds a download may go without receiving a byte before it fails.
    pub(crate) timeout: u64,
    pub(crate) copy: QemuCopy,
    pub(crate) source: QemuSource,
    /// Pinned digests by QEMU arch name.
    pub(crate) sha256: BTreeMap<String, String>,
}

/// A package's multiarch config with workspace defaults merged in and every value checked.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Signing of pushed images and tags, when configured.
    pub(crate) sign: Option<Signing>,
    pub(crate) package: Package,
    pub(crate) workspace_root: PathBuf,
    pub(crate) target_dir: PathBuf,
    /// The image repository, without a tag; `None` means a local-only name.
    pub(crate) image: Option<ImageRef>,
    pub(crate) platforms: Vec<&'static Platform>,
    /// Tag templates of the multi-arch manifest list.
    pub(crate) tags: Vec<String>,
    pub(crate) semver: bool,
    pub(crate) dockerfile: PathBuf,
    pub(crate) build: BuildMode,
    pub(crate) bins: Vec<String>,
    /// Extra files, relative to the workspace root, copied into every build context.
    pub(crate) files: Vec<PathBuf>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) insecure_registry: bool,
    /// Attestations BuildKit attaches to each image.
    pub(crate) provenance: Provenance,
    pub(crate) sbom: Sbom,
    /// Binaries carry the crates compiled into them (cargo-auditable's `.dep-v0`).
    pub(crate) auditable: bool,
    pub(crate) network: Network,
    pub(crate) backend: Backend,
    /// The toolchain of platforms that do not name their own.
    pub(crate) toolchain: Toolchain,
    /// The engine of platforms that do not name their own.
    pub(crate) engine: EngineTarget,
    /// Features, profile and lockfile options of every cargo build.
    pub(crate) cargo: CargoOptions,
    pub(crate) qemu: QemuConfig,
    /// The rustflags the user gives cargo, which every platform's flags compose with.
    pub(crate) user_rustflags: rustflags::UserRustflags,
    vars: BTreeMap<String, toml::Value>,
    overrides: BTreeMap<String, RawPlatform>,
    /// Every configured platform's settings, computed once when the config resolves.
    resolved: Vec<PlatformConfig>,
}

impl Config {
    /// Loads the configs of the packages a run builds: those named with `-p` (each must be
    /// a member), else every member with a `[package.metadata.multiarch]` table; minus
    /// `exclude`.
    pub(crate) fn load_all(
        workspace: &Workspace,
        packages: &[String],
        exclude: &[String],
        cli: &CliLayer,
    ) -> Result<Vec<Config>> {
        let member_names = || names(workspace.packages.iter().map(|p| &p.name));
        if let Some(name) = packages
            .iter()
            .chain(exclude)
            .find(|name| !workspace.packages.iter().any(|p| &p.name == *name))
        {
            return Err(crate::diagnostic::diagnostic(
                format!(
                    "package `{name}` is not a member of the workspace at {}",
                    workspace.root.display()
                ),
                format!("pick one of: {}", member_names()),
            ));
        }
        let root_manifest = workspace.root_manifest();
        let read = |path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let root_text = read(&root_manifest)?;
        let root_tables = parse_manifest(&root_manifest, &root_text)?;
        let mut configs = Vec::new();
        for candidate in &workspace.packages {
            let named = packages.contains(&candidate.name);
            if (!packages.is_empty() && !named) || exclude.contains(&candidate.name) {
                continue;
            }
            let own = if candidate.manifest_path == root_manifest {
                root_tables.package.clone()
            } else {
                parse_manifest(&candidate.manifest_path, &read(&candidate.manifest_path)?)?.package
            };
            // Without `-p`, a package takes part by having a table.
            if own.is_none() && !named {
                continue;
            }
            configs.push(Config::resolve(
                workspace,
                candidate,
                root_tables.workspace.clone().unwrap_or_default(),
                own.unwrap_or_default(),
                cli,
            )?);
        }
        if configs.is_empty() {
            return Err(crate::diagnostic::diagnostic(
                format!(
                    "no package in {} has a `[package.metadata.multiarch]` table{}",
                    workspace.root.display(),
                    if exclude.is_empty() {
                        ""
                    } else {
                        " that is not excluded"
                    }
                ),
                "add one to the package that ships as an image, or pass `-p PACKAGE`",
            ));
        }
        Ok(configs)
    }

    /// Loads the config of the one package a command works on.
    pub(crate) fn load(
        workspace: &Workspace,
        packages: &[String],
        exclude: &[String],
        cli: &CliLayer,
    ) -> Result<Config> {
        let mut configs = Config::load_all(workspace, packages, exclude, cli)?;
        if configs.len() > 1 {
            return Err(crate::diagnostic::diagnostic(
                format!(
                    "several packages have a `[package.metadata.multiarch]` table: {}",
                    names(configs.iter().map(|c| &c.package.name))
                ),
                "this command works on one package: pick it with `-p PACKAGE`",
            ));
        }
        Ok(configs.remove(0))
    }

    /// Merges the command line over `own` over `defaults`, once, and checks every value.
    /// Errors name the layer a bad value came from: the package's manifest, the workspace
    /// root's, or the flag.
    pub(crate) fn resolve(
        workspace: &Workspace,
        package: &Package,
        defaults: RawConfig,
        own: RawConfig,
        cli: &CliLayer,
    ) -> Result<Config> {
        let layers = Layers { workspace, package };
        let image = layers.image(cli, &own, &defaults)?;
        let platforms = layers.platforms(cli, &own, &defaults)?;
        let (tags, semver) = layers.tags(cli, &own, &defaults)?;
        let bins = layers.bins(&own, &defaults)?;
        layers.check_names(&defaults, Origin::Workspace)?;
        layers.check_names(&own, Origin::Package)?;
        let overrides = layers.platform_overrides(&defaults, &own)?;
        let cargo = layers.cargo_options(cli, &own, &defaults)?;
        let toolchain = own.toolchain.or(defaults.toolchain).unwrap_or_default();
        let engine = layers.engine(&own, &defaults)?;
        layers.check_platform_toolchains(&overrides, toolchain)?;
        let files = layers.files(&own, &defaults)?;
        let qemu = resolve_qemu(&defaults.qemu, &own.qemu);
        let dockerfile = layers.dockerfile(&own, &defaults)?;
        layers.check_labels(&defaults, Origin::Workspace)?;
        layers.check_labels(&own, Origin::Package)?;
        let mut labels = defaults.labels.clone();
        labels.extend(own.labels.clone());
        let sign = layers.signing(cli, &own, &defaults)?;
        let sbom = layers.sbom(cli, &own, &defaults)?;
        let mut vars = defaults.vars;
        vars.extend(own.vars);
        let config = Config {
            sign,
            package: package.clone(),
            workspace_root: workspace.root.clone(),
            target_dir: workspace.target_dir.clone(),
            image,
            platforms,
            tags,
            semver,
            dockerfile,
            build: own.build.or(defaults.build).unwrap_or_default(),
            bins,
            files,
            labels,
            provenance: cli
                .provenance
                .or(own.provenance)
                .or(defaults.provenance)
                .unwrap_or_default(),
            sbom,
            auditable: own.auditable.or(defaults.auditable).unwrap_or(true),
            network: cli
                .network
                .or(own.network)
                .or(defaults.network)
                .unwrap_or_default(),
            insecure_registry: own
                .insecure_registry
                .or(defaults.insecure_registry)
                .unwrap_or(false),
            backend: cli
                .backend
                .or(own.backend)
                .or(defaults.backend)
                .unwrap_or_default(),
            toolchain,
            engine,
            cargo,
            qemu,
            user_rustflags: rustflags::UserRustflags::default(),
            vars,
            overrides,
            resolved: Vec::new(),
        }
        .with_platforms_resolved();
        config.check_rustflags()
    }

    /// Reads the user's rustflags (the environment, cargo's config files from the
    /// workspace root up and in cargo's home, and `CARGO_TARGET_<TRIPLE>_RUSTFLAGS` of every
    /// platform's target), and refuses a platform whose flags contradict them.
    fn check_rustflags(mut self) -> Result<Config> {
        let cargo_home = workspace::cargo_home();
        self.user_rustflags =
            rustflags::UserRustflags::read(&self.workspace_root, cargo_home.as_deref(), |name| {
                std::env::var(name).ok()
            });
        for platform in &self.resolved {
            let variable = format!(
                "CARGO_TARGET_{}_RUSTFLAGS",
                platform
                    .target
                    .to_ascii_uppercase()
                    .replace(['-', '.'], "_")
            );
            self.user_rustflags = std::mem::take(&mut self.user_rustflags)
                .with_target_variable(&platform.target, std::env::var(&variable).ok());
        }
        for platform in &self.resolved {
            let key = format!(
                "[package.metadata.multiarch.platform.\"{}\"] rustflags",
                platform.platform.name()
            );
            self.user_rustflags
                .check(
                    &platform.target,
                    &platform.rustflags,
                    &platform.platform.name(),
                    &key,
                )
                .with_context(|| format!("package `{}`", self.package.name))?;
        }
        Ok(self)
    }

    /// Computes every configured platform's settings once; after a change to the layers
    /// (tests do that), call it again.
    pub(crate) fn with_platforms_resolved(mut self) -> Config {
        self.resolved = self
            .platforms
            .iter()
            .map(|&p| self.resolve_platform(p))
            .collect();
        self
    }

    /// Everything needed to build for `platform`: resolved when the config loaded, or, for
    /// a platform the config does not list (`qemu fetch --platform`), computed now.
    pub(crate) fn platform(&self, platform: &'static Platform) -> PlatformConfig {
        self.resolved
            .iter()
            .find(|resolved| resolved.platform == platform)
            .cloned()
            .unwrap_or_else(|| self.resolve_platform(platform))
    }

    fn resolve_platform(&self, platform: &'static Platform) -> PlatformConfig {
        let overrides = self
            .overrides
            .get(&platform.name())
            .cloned()
            .unwrap_or_default();
        let mut vars = self.vars.clone();
        vars.extend(overrides.vars);
        // Targets were checked when the config was resolved.
        let target = overrides
            .target
            .and_then(|t| RustTarget::parse(&t).ok())
            .unwrap_or_else(|| RustTarget {
                triple: platform.rust_target.to_owned(),
                glibc: None,
            });
        let mut features = self.cargo.features.clone();
        for feature in overrides.features.unwrap_or_default() {
            if !features.contains(&feature) {
                features.push(feature);
            }
        }
        PlatformConfig {
            platform,
            build: overrides.build.unwrap_or(self.build),
            engine: EngineTarget {
                context: overrides.context.or(self.engine.context.clone()),
                builder: overrides.builder.or(self.engine.builder.clone()),
            },
            target: target.triple,
            glibc: target.glibc,
            toolchain: overrides.toolchain.unwrap_or(self.toolchain),
            linker: overrides.linker,
            cc: overrides.cc,
            cxx: overrides.cxx,
            ar: overrides.ar,
            rustflags: overrides.rustflags.unwrap_or_default(),
            features,
            vars,
        }
    }

    /// The repository images are named after: the configured one or the package name.
    /// Whether the registry is spoken to over plain HTTP: loopback, or `insecure_registry`.
    pub(crate) fn insecure(&self) -> bool {
        self.insecure_registry || self.repository().is_loopback()
    }

    pub(crate) fn repository(&self) -> ImageRef {
        self.image.clone().unwrap_or_else(|| ImageRef {
            registry: None,
            path: self.package.name.to_ascii_lowercase(),
            tag: None,
            digest: None,
        })
    }
}

/// Values given on the command line: the last layer, over the package's and the workspace's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CliLayer {
    pub(crate) platforms: Vec<String>,
    /// Replaces the configured tags and, with them, the semver family.
    pub(crate) tags: Vec<String>,
    pub(crate) image: Option<String>,
    pub(crate) provenance: Option<Provenance>,
    pub(crate) sbom: Option<Sbom>,
    pub(crate) network: Option<Network>,
    pub(crate) backend: Option<Backend>,
    /// Added to the configured features.
    pub(crate) features: Vec<String>,
    pub(crate) profile: Option<String>,
    /// `--sign KEY`: signs with this key, whatever `sign` says.
    pub(crate) sign: Option<String>,
}

/// Which layer a value came from, so that errors name the right key and manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    CommandLine,
    Package,
    Workspace,
}

/// The package's value if it set one, else the workspace default, with where it came from.
fn pick<T>(own: Option<T>, default: Option<T>) -> (Option<T>, Origin) {
    match own {
        Some(value) => (Some(value), Origin::Package),
        None => (default, Origin::Workspace),
    }
}

/// Like [`pick`], with the command line first.
fn pick3<T>(cli: Option<T>, own: Option<T>, default: Option<T>) -> (Option<T>, Origin) {
    match cli {
        Some(value) => (Some(value), Origin::CommandLine),
        None => pick(own, default),
    }
}

/// The layers of one package's config, for resolving values and naming them in errors.
struct Layers<'a> {
    workspace: &'a Workspace,
    package: &'a Package,
}

impl Layers<'_> {
    /// An error naming the key (or flag), the layer's manifest and the fix.
    fn error(
        &self,
        origin: Origin,
        key: &str,
        problem: impl std::fmt::Display,
        help: impl Into<String>,
    ) -> anyhow::Error {
        let (table, manifest) = match origin {
            Origin::Package => ("package", self.package.manifest_path.clone()),
            Origin::Workspace => ("workspace", self.workspace.root_manifest()),
            Origin::CommandLine => {
                let flag = match key.split(['[', '.']).next() {
                    Some("platforms") => "--platform",
                    Some("tags") => "--tag",
                    Some("features") => "--features",
                    Some("profile") => "--profile",
                    _ => "--image",
                };
                return crate::diagnostic::diagnostic(format!("in {flag}: {problem}"), help);
            }
        };
        crate::diagnostic::diagnostic(
            format!(
                "invalid `{table}.metadata.multiarch.{key}` for package `{}` ({}): {problem}",
                self.package.name,
                manifest.display()
            ),
            help,
        )
    }

    fn platforms(
        &self,
        cli: &CliLayer,
        own: &RawConfig,
        defaults: &RawConfig,
    ) -> Result<Vec<&'static Platform>> {
        let cli_names = (!cli.platforms.is_empty()).then(|| cli.platforms.clone());
        let (names, origin) = pick3(cli_names, own.platforms.clone(), defaults.platforms.clone());
        let names = names
            .unwrap_or_else(|| vec![Platform::host().map_or("linux/amd64".into(), |p| p.name())]);
        let platforms = parse_platforms(&names).map_err(|(index, err)| {
            let diagnostic = crate::diagnostic::Diagnostic::of(&err);
            self.error(
                origin,
                &format!("platforms[{index}]"),
                diagnostic.cause,
                diagnostic.help,
            )
        })?;
        if platforms.is_empty() {
            return Err(self.error(
                origin,
                "platforms",
                "the list is empty",
                "list at least one platform, such as \"linux/amd64\"",
            ));
        }
        Ok(platforms)
    }

    /// The tag templates and whether the semver family is added.
    fn tags(
        &self,
        cli: &CliLayer,
        own: &RawConfig,
        defaults: &RawConfig,
    ) -> Result<(Vec<String>, bool)> {
        let cli_tags = (!cli.tags.is_empty()).then(|| cli.tags.clone());
        let (tags, origin) = pick3(cli_tags, own.tags.clone(), defaults.tags.clone());
        let tags = tags.unwrap_or_else(|| DEFAULT_TAGS.iter().map(|t| t.to_string()).collect());
        if tags.is_empty() || tags.iter().any(|t| t.trim().is_empty()) {
            return Err(self.error(
                origin,
                "tags",
                "tags must be non-empty",
                "list tags such as [\"{{ version }}\", \"latest\"]",
            ));
        }
        // `--tag` names exactly the tags to publish, so the semver family is not added.
        let semver =
            origin != Origin::CommandLine && own.semver.or(defaults.semver).unwrap_or(false);
        Ok((tags, semver))
    }

    /// The repository, checked; `None` builds local images only.
    fn image(
        &self,
        cli: &CliLayer,
        own: &RawConfig,
        defaults: &RawConfig,
    ) -> Result<Option<ImageRef>> {
        let (image, origin) = pick3(cli.image.clone(), own.image.clone(), defaults.image.clone());
        let image = match image {
            Some(image) => Some(ImageRef::repository(&image).map_err(|problem| {
                self.error(
                    origin,
                    "image",
                    problem,
                    "write a repository such as `ghcr.io/acme/hello`; tags come from `tags`",
                )
            })?),
            None => None,
        };
        Ok(image)
    }

    /// `--sbom`, else the package's `sbom`, else the workspace's.
    fn sbom(&self, cli: &CliLayer, own: &RawConfig, defaults: &RawConfig) -> Result<Sbom> {
        if let Some(sbom) = cli.sbom {
            return Ok(sbom);
        }
        let (raw, origin) = pick(own.sbom.clone(), defaults.sbom.clone());
        match raw {
            None | Some(RawSbom::Flag(false)) => Ok(Sbom::Off),
            Some(RawSbom::Flag(true)) => Ok(Sbom::Exact),
            Some(RawSbom::Kind(name)) => Sbom::parse(&name).ok_or_else(|| {
                self.error(
                    origin,
                    "sbom",
                    format!("`{}` is not an SBOM kind", crate::diagnostic::escape(&name)),
                    "write sbom = true (the tool's own, exact per platform) or sbom = \"buildkit\" (BuildKit's scanner)",
                )
            }),
        }
    }

    /// `--sign`, else the package's `sign` table, else the workspace's.
    fn signing(
        &self,
        cli: &CliLayer,
        own: &RawConfig,
        defaults: &RawConfig,
    ) -> Result<Option<Signing>> {
        let (table, origin) = pick(own.sign.clone(), defaults.sign.clone());
        let tlog = table.as_ref().and_then(|t| t.tlog).unwrap_or(true);
        if let Some(key) = &cli.sign {
            // `--sign keyless` signs with the CI's OIDC identity.
            let key = (key != "keyless").then(|| key.clone());
            return Ok(Some(Signing { key, tlog }));
        }
        let Some(table) = table else {
            return Ok(None);
        };
        match (table.key, table.keyless.unwrap_or(false)) {
            (Some(key), false) if !key.trim().is_empty() => Ok(Some(Signing { key: Some(key), tlog })),
            (None, true) => Ok(Some(Signing { key: None, tlog })),
            _ => Err(self.error(
                origin,
                "sign",
                "name exactly one of `key` and `keyless = true`",
                "write sign = { key = \"cosign.key\" } (any key reference cosign takes), or sign = { keyless = true } in CI",
            )),
        }
    }

    /// The engine of platforms that name none: a Docker context or buildx builder.
    fn engine(&self, own: &RawConfig, defaults: &RawConfig) -> Result<EngineTarget> {
        let engine = EngineTarget {
            context: own.context.clone().or(defaults.context.clone()),
            builder: own.builder.clone().or(defaults.builder.clone()),
        };
        for (key, name) in [("context", &engine.context), ("builder", &engine.builder)] {
            if let Some(name) = name.as_deref().filter(|n| !is_engine_name(n)) {
                return Err(self.error(
                    Origin::Package,
                    key,
                    format!("`{name}` is not a Docker {key} name"),
                    format!("name one that `docker {key} ls` lists"),
                ));
            }
        }
        Ok(engine)
    }

    fn bins(&self, own: &RawConfig, defaults: &RawConfig) -> Result<Vec<String>> {
        let package = self.package;
        let (bins, origin) = pick(own.bins.clone(), defaults.bins.clone());
        let bins = bins.unwrap_or_else(|| package.bins.clone());
        if let Some(bin) = bins.iter().find(|bin| !package.bins.contains(bin)) {
            return Err(self.error(
                origin,
                "bins",
                format!("`{bin}` is not a binary target of `{}`", package.name),
                format!("use one of: {}", names(package.bins.iter())),
            ));
        }
        let configured = own.bins.is_some() || defaults.bins.is_some();
        match (bins.is_empty(), configured) {
            (true, true) => Err(self.error(
                origin,
                "bins",
                "`bins` is empty",
                format!("list binaries of `{}`: {}", package.name, names(package.bins.iter())),
            )),
            // No key is to blame: the package itself has nothing to put in an image.
            (true, false) => Err(crate::diagnostic::diagnostic(
                format!(
                    "package `{}` ({}) has no binary targets to put in an image",
                    package.name,
                    package.manifest_path.display()
                ),
                "add a `src/main.rs` or a `[[bin]]` target, or move its [package.metadata.multiarch] to the package that ships",
            )),
            (false, _) => Ok(bins),
        }
    }

    /// Template variable names and QEMU pins of one layer.
    fn check_names(&self, raw: &RawConfig, origin: Origin) -> Result<()> {
        check_var_names(raw.vars.keys()).map_err(|name| {
            self.error(
                origin,
                &format!("vars.{name}"),
                format!("`{name}` is a built-in template variable"),
                "rename the variable",
            )
        })?;
        if let Some(version) = raw.qemu.version.as_deref().filter(|v| !is_plain_version(v)) {
            return Err(self.error(
                origin,
                "qemu.version",
                format!("`{version}` is not a plain version (it names the cache directory)"),
                "write a release such as \"7.2.0-1\": letters, digits, `.`, `-`, `_` and `+`",
            ));
        }
        if let Some(url) = raw.qemu.url.as_deref() {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(self.error(
                    origin,
                    "qemu.url",
                    format!("`{url}` is not an http or https URL"),
                    "write an https:// URL template over `version` and `qemu_arch`, or use qemu.source = \"path\"",
                ));
            }
        }
        for (arch, digest) in &raw.qemu.sha256 {
            let key = format!("qemu.sha256.{arch}");
            if !crate::config::platform::PLATFORMS
                .iter()
                .any(|p| p.qemu_arch == arch)
            {
                return Err(self.error(
                    origin,
                    &key,
                    format!("`{arch}` is not a QEMU architecture"),
                    "key pins by QEMU name: aarch64, arm, riscv64, ...",
                ));
            }
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(self.error(
                    origin,
                    &key,
                    "a SHA-256 digest is 64 hex digits",
                    "copy the digest `cargo multiarch qemu fetch` prints",
                ));
            }
        }
        Ok(())
    }

    /// The per-platform tables of both layers, merged key by key under canonical names.
    fn platform_overrides(
        &self,
        defaults: &RawConfig,
        own: &RawConfig,
    ) -> Result<BTreeMap<String, RawPlatform>> {
        let mut overrides: BTreeMap<String, RawPlatform> = BTreeMap::new();
        for (raw, origin) in [(defaults, Origin::Workspace), (own, Origin::Package)] {
            let mut seen = BTreeMap::new();
            for (key, raw) in raw.platform.clone() {
                let platform = Platform::parse(&key).map_err(|err| {
                    let diagnostic = crate::diagnostic::Diagnostic::of(&err);
                    self.error(
                        origin,
                        &format!("platform.\"{key}\""),
                        diagnostic.cause,
                        diagnostic.help,
                    )
                })?;
                if let Some(other) = seen.insert(platform.name(), key.clone()) {
                    return Err(self.error(
                        origin,
                        &format!("platform.\"{key}\""),
                        format!("the table names {platform} twice, as `{other}` and `{key}`"),
                        "merge the two tables into one",
                    ));
                }
                check_var_names(raw.vars.keys()).map_err(|name| {
                    self.error(
                        origin,
                        &format!("platform.\"{key}\".vars.{name}"),
                        format!("`{name}` is a built-in template variable"),
                        "rename the variable",
                    )
                })?;
                self.check_platform_table(&raw, origin, &key)?;
                let merged = overrides.entry(platform.name()).or_default();
                merged.target = raw.target.or(merged.target.take());
                merged.build = raw.build.or(merged.build.take());
                merged.context = raw.context.or(merged.context.take());
                merged.builder = raw.builder.or(merged.builder.take());
                merged.toolchain = raw.toolchain.or(merged.toolchain.take());
                merged.linker = raw.linker.or(merged.linker.take());
                merged.cc = raw.cc.or(merged.cc.take());
                merged.cxx = raw.cxx.or(merged.cxx.take());
                merged.ar = raw.ar.or(merged.ar.take());
                merged.rustflags = raw.rustflags.or(merged.rustflags.take());
                merged.features = raw.features.or(merged.features.take());
                merged.vars.extend(raw.vars);
            }
        }
        Ok(overrides)
    }

    /// The values of one layer's platform table that can be checked on their own.
    fn check_platform_table(&self, raw: &RawPlatform, origin: Origin, key: &str) -> Result<()> {
        let key = |field: &str| format!("platform.\"{key}\".{field}");
        if let Some(target) = &raw.target {
            RustTarget::parse(target).map_err(|problem| {
                self.error(
                    origin,
                    &key("target"),
                    problem,
                    "write a triple that `rustc --print target-list` lists, such as `aarch64-unknown-linux-musl`",
                )
            })?;
        }
        for (field, name) in [("context", &raw.context), ("builder", &raw.builder)] {
            if let Some(name) = name.as_deref().filter(|n| !is_engine_name(n)) {
                return Err(self.error(
                    origin,
                    &key(field),
                    format!("`{name}` is not a Docker {field} name"),
                    format!("name one that `docker {field} ls` lists"),
                ));
            }
        }
        let programs = [
            ("linker", &raw.linker),
            ("cc", &raw.cc),
            ("cxx", &raw.cxx),
            ("ar", &raw.ar),
        ];
        for (field, program) in programs {
            if let Some(program) = program.as_deref().filter(|p| !is_program_name(p)) {
                return Err(self.error(
                    origin,
                    &key(field),
                    format!("`{program}` is not a program name or path"),
                    "name a program on PATH, such as `aarch64-linux-gnu-gcc`, or an absolute path",
                ));
            }
        }
        for feature in raw.features.iter().flatten() {
            if !compile::is_feature_name(feature) {
                return Err(self.error(
                    origin,
                    &key("features"),
                    format!("`{feature}` is not a feature name"),
                    "list feature names such as \"tls\" or \"serde/std\", one per string",
                ));
            }
        }
        Ok(())
    }

    /// Features, profile and lockfile flags: the command line, then the package, then the
    /// workspace.
    fn cargo_options(
        &self,
        cli: &CliLayer,
        own: &RawConfig,
        defaults: &RawConfig,
    ) -> Result<CargoOptions> {
        let (features, origin) = pick(own.features.clone(), defaults.features.clone());
        let mut features = features.unwrap_or_default();
        for (feature, origin) in features
            .iter()
            .map(|f| (f, origin))
            .chain(cli.features.iter().map(|f| (f, Origin::CommandLine)))
        {
            if !compile::is_feature_name(feature) {
                return Err(self.error(
                    origin,
                    "features",
                    format!("`{feature}` is not a feature name"),
                    "list feature names such as \"tls\" or \"serde/std\", one per string",
                ));
            }
        }
        for feature in &cli.features {
            if !features.contains(feature) {
                features.push(feature.clone());
            }
        }
        let (profile, origin) = pick3(
            cli.profile.clone(),
            own.profile.clone(),
            defaults.profile.clone(),
        );
        let profile = profile.unwrap_or_else(|| "release".into());
        if !compile::is_profile_name(&profile) {
            return Err(self.error(
                origin,
                "profile",
                format!("`{profile}` is not a profile name"),
                "name `release`, `dev` or a `[profile.<name>]` of the workspace",
            ));
        }
        let flag = |own: Option<bool>, default: Option<bool>| own.or(default).unwrap_or(false);
        Ok(CargoOptions {
            features,
            no_default_features: flag(own.no_default_features, defaults.no_default_features),
            all_features: flag(own.all_features, defaults.all_features),
            profile,
            locked: flag(own.locked, defaults.locked),
            frozen: flag(own.frozen, defaults.frozen),
        })
    }

    /// Settings that conflict with the toolchain a platform ends up with.
    fn check_platform_toolchains(
        &self,
        overrides: &BTreeMap<String, RawPlatform>,
        default: Toolchain,
    ) -> Result<()> {
        for (name, raw) in overrides {
            let toolchain = raw.toolchain.unwrap_or(default);
            let key = |field: &str| format!("platform.\"{name}\".{field}");
            let glibc = raw
                .target
                .as_deref()
                .and_then(|t| RustTarget::parse(t).ok())
                .and_then(|t| t.glibc);
            if let (Some(glibc), Toolchain::Cargo) = (glibc, toolchain) {
                return Err(self.error(
                    Origin::Package,
                    &key("target"),
                    format!("a glibc version (`.{glibc}`) needs toolchain = \"zig\""),
                    format!("set `toolchain = \"zig\"` for {name}, or drop the `.{glibc}` suffix"),
                ));
            }
            if toolchain == Toolchain::Zig && raw.linker.is_some() {
                return Err(self.error(
                    Origin::Package,
                    &key("linker"),
                    "zig links for every target, so `linker` would be ignored",
                    format!("remove `linker` for {name}, or set `toolchain = \"cargo\"` there"),
                ));
            }
        }
        Ok(())
    }

    /// The template's path: inside the workspace, like every input of a build.
    fn dockerfile(&self, own: &RawConfig, defaults: &RawConfig) -> Result<PathBuf> {
        let (dockerfile, origin) = pick(own.dockerfile.clone(), defaults.dockerfile.clone());
        let dockerfile = dockerfile.unwrap_or_else(|| DEFAULT_DOCKERFILE.into());
        let path = Path::new(&dockerfile);
        if dockerfile.trim().is_empty()
            || path.is_absolute()
            || path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(self.error(
                origin,
                "dockerfile",
                format!("`{dockerfile}` is not a path inside the workspace"),
                "put the template in the workspace and give its path from the root, such as `docker/Dockerfile.j2`",
            ));
        }
        Ok(self.workspace.root.join(path))
    }

    /// Label keys Docker can take: no `=` (it would split the key), no whitespace.
    fn check_labels(&self, raw: &RawConfig, origin: Origin) -> Result<()> {
        match raw
            .labels
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.chars().any(char::is_whitespace))
        {
            Some(key) => Err(self.error(
                origin,
                &format!("labels.\"{key}\""),
                format!("`{key}` is not a label key"),
                "use keys such as `org.example.team`: no `=`, no spaces",
            )),
            None => Ok(()),
        }
    }

    fn files(&self, own: &RawConfig, defaults: &RawConfig) -> Result<Vec<PathBuf>> {
        let (files, origin) = pick(own.files.clone(), defaults.files.clone());
        let files = files.unwrap_or_default();
        if files.iter().any(|f| f.trim().is_empty()) {
            return Err(self.error(
                origin,
                "files",
                "an entry is empty",
                "list paths relative to the workspace root",
            ));
        }
        // `./Cargo.toml` and `Cargo.toml` are one file, kept under one name.
        let mut files: Vec<PathBuf> = files
            .iter()
            .map(|f| {
                Path::new(f)
                    .components()
                    .filter(|c| *c != std::path::Component::CurDir)
                    .collect()
            })
            .collect();
        files.dedup();
        if let Some(file) = files.iter().find(|f| {
            f.is_absolute() || f.components().any(|c| c == std::path::Component::ParentDir)
        }) {
            return Err(self.error(
                origin,
                "files",
                format!("`{}` leaves the workspace", file.display()),
                "list paths relative to the workspace root",
            ));
        }
        Ok(files)
    }
}

/// QEMU settings: the package's over the workspace's over the defaults.
fn resolve_qemu(defaults: &RawQemu, own: &RawQemu) -> QemuConfig {
    let mut sha256 = defaults.sha256.clone();
    sha256.extend(own.sha256.clone());
    QemuConfig {
        version: own
            .version
            .clone()
            .or(defaults.version.clone())
            .unwrap_or_else(|| DEFAULT_QEMU_VERSION.into()),
        url: own
            .url
            .clone()
            .or(defaults.url.clone())
            .unwrap_or_else(|| DEFAULT_QEMU_URL.into()),
        timeout: own.timeout.or(defaults.timeout).unwrap_or(30).max(1),
        copy: own.copy.or(defaults.copy).unwrap_or_default(),
        source: own.source.or(defaults.source).unwrap_or_default(),
        sha256,
    }
}

/// Parses platform names, reporting the index of the first bad one; duplicates are dropped.
pub(crate) fn parse_platforms(
    names: &[String],
) -> std::result::Result<Vec<&'static Platform>, (usize, anyhow::Error)> {
    let mut platforms = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let platform = Platform::parse(name).map_err(|err| (index, err))?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

fn check_var_names<'a>(
    mut names: impl Iterator<Item = &'a String>,
) -> std::result::Result<(), String> {
    match names.find(|name| BUILTIN_VARIABLES.contains(&name.as_str())) {
        Some(name) => Err(name.clone()),
        None => Ok(()),
    }
}

/// Whether `name` can name a Docker context or buildx builder (and never a flag).
fn is_engine_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
}

/// Whether `version` is a release name that is safe as one path component.
fn is_plain_version(version: &str) -> bool {
    version
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        && !version.contains("..")
}

/// Whether `text` can name a program: not empty, not a flag, no whitespace.
fn is_program_name(text: &str) -> bool {
    !text.is_empty() && !text.starts_with('-') && !text.chars().any(char::is_whitespace)
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (Workspace, Package) {
        let package = Package {
            name: "hello".into(),
            version: "1.2.3".into(),
            manifest_path: "/ws/Cargo.toml".into(),
            description: None,
            license: None,
            repository: None,
            bins: vec!["hello".into(), "helper".into()],
        };
        let workspace = Workspace {
            root: "/ws".into(),
            target_dir: "/ws/target".into(),
            packages: vec![package.clone()],
        };
        (workspace, package)
    }

    fn resolve(toml_text: &str) -> Result<Config> {
        let tables = parse_manifest(Path::new("/ws/Cargo.toml"), toml_text)?;
        let (workspace, package) = workspace();
        Config::resolve(
            &workspace,
            &package,
            tables.workspace.unwrap_or_default(),
            tables.package.unwrap_or_default(),
            &CliLayer::default(),
        )
    }

    fn error(toml_text: &str) -> String {
        crate::diagnostic::format_error(&resolve(toml_text).unwrap_err()).replacen("error: ", "", 1)
    }

    #[test]
    fn signing_takes_a_key_or_keyless_and_the_workspace_default() {
        let key = resolve(
            "[package.metadata.multiarch]\nsign = { key = \"cosign.key\", tlog = false }\n",
        )
        .unwrap();
        assert_eq!(
            key.sign,
            Some(Signing {
                key: Some("cosign.key".into()),
                tlog: false
            })
        );
        let keyless =
            resolve("[workspace.metadata.multiarch]\nsign = { keyless = true }\n").unwrap();
        assert_eq!(
            keyless.sign,
            Some(Signing {
                key: None,
                tlog: true
            })
        );
        assert_eq!(
            resolve("[package.metadata.multiarch]\n").unwrap().sign,
            None
        );
        for bad in [
            "sign = {}",
            "sign = { key = \"k\", keyless = true }",
            "sign = { keyless = false }",
        ] {
            let message = error(&format!("[package.metadata.multiarch]\n{bad}\n"));
            assert!(
                message.contains("`package.metadata.multiarch.sign`")
                    && message.contains("exactly one of `key` and `keyless = true`"),
                "{bad}: {message}"
            );
        }
        assert!(
            error("[package.metadata.multiarch]\nsign = { kee = \"k\" }\n")
                .contains("unknown field `kee`")
        );
    }

    #[test]
    fn package_values_override_workspace_defaults() {
        let config = resolve(
            r#"
[workspace.metadata.multiarch]
image = "ghcr.io/acme/default"
platforms = ["amd64", "arm64"]
tags = ["{{ version }}", "latest"]
vars = { base = "scratch", user = "root" }
[workspace.metadata.multiarch.platform.armhf]
linker = "arm-linux-gnueabihf-gcc"
rustflags = ["-C", "target-feature=+crt-static"]
[workspace.metadata.multiarch.qemu]
sha256 = { aarch64 = "0000000000000000000000000000000000000000000000000000000000000000" }

[package.metadata.multiarch]
image = "ghcr.io/acme/hello"
platforms = ["linux/arm/v7", "aarch64", "arm64v8"]
bins = ["hello"]
vars = { base = "alpine" }
[package.metadata.multiarch.platform."linux/arm/v7"]
target = "armv7-unknown-linux-gnueabihf"
vars = { base = "arm32v7/alpine" }
[package.metadata.multiarch.qemu]
copy = "always"
"#,
        )
        .unwrap();
        assert_eq!(
            config.image.as_ref().map(ToString::to_string).as_deref(),
            Some("ghcr.io/acme/hello")
        );
        let names: Vec<String> = config.platforms.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["linux/arm/v7", "linux/arm64"]);
        assert_eq!(config.tags, ["{{ version }}", "latest"]);
        assert_eq!(config.bins, ["hello"]);
        assert_eq!(config.build, BuildMode::Cross);
        assert_eq!(config.dockerfile, Path::new("/ws/docker/Dockerfile.j2"));
        assert_eq!(config.qemu.copy, QemuCopy::Always);
        assert_eq!(config.qemu.version, DEFAULT_QEMU_VERSION);
        assert_eq!(config.qemu.sha256.len(), 1);

        let arm = config.platform(config.platforms[0]);
        assert_eq!(arm.target, "armv7-unknown-linux-gnueabihf");
        assert_eq!(arm.linker.as_deref(), Some("arm-linux-gnueabihf-gcc"));
        assert_eq!(arm.rustflags, ["-C", "target-feature=+crt-static"]);
        assert_eq!(arm.vars["base"].as_str(), Some("arm32v7/alpine"));
        assert_eq!(arm.vars["user"].as_str(), Some("root"));

        let arm64 = config.platform(config.platforms[1]);
        assert_eq!(arm64.target, "aarch64-unknown-linux-musl");
        assert_eq!(arm64.linker, None);
        assert_eq!(arm64.vars["base"].as_str(), Some("alpine"));
    }

    #[test]
    fn engines_and_build_modes_resolve_per_platform() {
        let config = resolve(
            r#"
[workspace.metadata.multiarch]
context = "farm"
[package.metadata.multiarch]
platforms = ["amd64", "arm64"]
builder = "fleet"
[package.metadata.multiarch.platform.amd64]
context = "laptop"
build = "container"
"#,
        )
        .unwrap();
        let amd64 = config.platform(config.platforms[0]);
        assert_eq!(amd64.build, BuildMode::Container);
        assert_eq!(amd64.engine.context.as_deref(), Some("laptop"));
        assert_eq!(amd64.engine.builder.as_deref(), Some("fleet"));
        let arm64 = config.platform(config.platforms[1]);
        assert_eq!(arm64.build, BuildMode::Cross);
        assert_eq!(arm64.engine.context.as_deref(), Some("farm"));
        assert_eq!(arm64.engine.to_string(), "context `farm`, builder `fleet`");
    }

    #[test]
    fn defaults_without_any_table() {
        let config = resolve("[package]\nname = \"hello\"\n").unwrap();
        assert_eq!(config.image, None);
        assert_eq!(config.repository().to_string(), "hello");
        assert_eq!(config.platforms, [Platform::host().unwrap()]);
        assert_eq!(config.tags, ["{{ version }}"]);
        assert_eq!(config.bins, ["hello", "helper"]);
        assert!(!config.semver);
    }

    #[test]
    fn unknown_key_names_the_key_the_file_and_the_line() {
        let message = error("[package]\nname = \"x\"\n\n[package.metadata.multiarch]\nimage = \"a/b\"\nplatfroms = [\"arm64\"]\n");
        assert!(message.starts_with("invalid `package.metadata.multiarch.platfroms` in /ws/Cargo.toml:6: unknown field `platfroms`, expected one of"), "{message}");
        assert!(
            message.contains("\nhelp: fix or remove `package.metadata.multiarch.platfroms`"),
            "{message}"
        );
    }

    #[test]
    fn unknown_nested_key_and_wrong_type_are_named() {
        let message = error("[workspace.metadata.multiarch.qemu]\ncopy = \"sometimes\"\n");
        assert!(message.starts_with("invalid `workspace.metadata.multiarch.qemu.copy` in /ws/Cargo.toml:2: unknown variant `sometimes`, expected one of `auto`, `always`, `never`"), "{message}");
        let message = error("[package.metadata.multiarch]\ntags = \"latest\"\n");
        assert!(message.starts_with("invalid `package.metadata.multiarch.tags` in /ws/Cargo.toml:2: invalid type: string \"latest\", expected a sequence"), "{message}");
        let message = error("[package.metadata.multiarch.platform.arm64]\nlinkr = \"cc\"\n");
        assert!(
            message.starts_with(
                "invalid `package.metadata.multiarch.platform.arm64.linkr` in /ws/Cargo.toml:2"
            ),
            "{message}"
        );
        let message = error("[package.metadata.multiarch]\nbuild = \"docker\"\n");
        assert!(
            message.contains("unknown variant `docker`, expected `cross` or `container`"),
            "{message}"
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_manifest() {
        let cases = [
            ("platforms = [\"amd64\", \"sparc\"]", "`package.metadata.multiarch.platforms[1]` for package `hello` (/ws/Cargo.toml): unknown platform `sparc`"),
            ("platforms = []", "`package.metadata.multiarch.platforms` for package `hello` (/ws/Cargo.toml): the list is empty"),
            ("image = \"ghcr.io/acme/hello:1.0\"", "`package.metadata.multiarch.image` for package `hello` (/ws/Cargo.toml): `ghcr.io/acme/hello:1.0` carries a tag or digest"),
            ("image = \"ghcr.io/Acme/hello\"", "is not a valid repository name"),
            ("bins = [\"nope\"]", "`nope` is not a binary target of `hello`\nhelp: use one of: `hello`, `helper`"),
            ("vars = { arch = \"x\" }", "`package.metadata.multiarch.vars.arch`"),
            ("tags = [\"\"]", "tags must be non-empty"),
            ("files = [\"../secret\"]", "`../secret` leaves the workspace"),
            ("platform.sparc = { target = \"x\" }", "`package.metadata.multiarch.platform.\"sparc\"`"),
            ("platform.arm64 = {}\nplatform.aarch64 = {}", "the table names linux/arm64 twice"),
            ("qemu.sha256 = { aarch64 = \"abc\" }", "a SHA-256 digest is 64 hex digits"),
            ("qemu.sha256 = { arm64 = \"abc\" }", "`arm64` is not a QEMU architecture"),
            ("qemu.version = \"/tmp/x\"", "`/tmp/x` is not a plain version"),
            ("qemu.version = \"../../x\"", "`../../x` is not a plain version"),
            ("qemu.url = \"-K/some/file\"", "`-K/some/file` is not an http or https URL"),
            ("qemu.url = \"file:///etc/passwd\"", "is not an http or https URL"),
            ("files = [\"\"]", "an entry is empty"),
            ("dockerfile = \"../../etc/passwd\"", "`../../etc/passwd` is not a path inside the workspace"),
            ("dockerfile = \"/etc/hostname\"", "`/etc/hostname` is not a path inside the workspace"),
            ("labels = { \"k=v\" = \"x\" }", "`k=v` is not a label key"),
            ("context = \"--host=x\"", "`--host=x` is not a Docker context name"),
            ("platform.arm64 = { builder = \"a b\" }", "`a b` is not a Docker builder name"),
            ("platform.arm64 = { target = \"--help\" }", "`--help` is not a Rust target triple"),
            ("platform.arm64 = { target = \"aarch64-unknown-linux-gnu.2.28\" }", "a glibc version (`.2.28`) needs toolchain = \"zig\""),
            ("toolchain = \"zig\"\nplatform.arm64 = { linker = \"rust-lld\" }", "zig links for every target"),
            ("features = [\"--all\"]", "`--all` is not a feature name"),
            ("profile = \"a/b\"", "`a/b` is not a profile name"),
            ("platform.arm64 = { cc = \"-x\" }", "`-x` is not a program name or path"),
        ];
        for (table, expected) in cases {
            let message = error(&format!("[package.metadata.multiarch]\n{table}\n"));
            assert!(message.contains(expected), "{table}: {message}");
            assert!(message.contains("\nhelp: "), "{table}: {message}");
        }
    }

    #[test]
    fn bad_workspace_defaults_name_the_workspace_table_and_root_manifest() {
        let message = error("[workspace.metadata.multiarch]\nplatforms = [\"amd64\", \"sparc\"]\nvars = { os = \"x\" }\n");
        assert!(message.starts_with("invalid `workspace.metadata.multiarch.platforms[1]` for package `hello` (/ws/Cargo.toml): unknown platform `sparc`"), "{message}");
        let message = error("[workspace.metadata.multiarch]\nvars = { os = \"x\" }\n");
        assert!(
            message.starts_with("invalid `workspace.metadata.multiarch.vars.os`"),
            "{message}"
        );
        // A package value that overrides a bad default is what counts.
        assert!(resolve("[workspace.metadata.multiarch]\nimage = \"Bad\"\n[package.metadata.multiarch]\nimage = \"good/name\"\n").is_ok());
    }

    #[test]
    fn repositories() {
        for ok in [
            "hello",
            "acme/hello",
            "ghcr.io/acme/hello",
            "127.0.0.1:5000/hello",
            "localhost/a-b_c.d",
        ] {
            assert_eq!(ImageRef::repository(ok).map(drop), Ok(()), "{ok}");
        }
        for bad in ["", "hello:1", "a//b", "Hello", "a/b@sha256:00", "a/"] {
            assert!(ImageRef::repository(bad).is_err(), "{bad}");
        }
    }
}
