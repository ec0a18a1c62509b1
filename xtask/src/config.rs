//! `[package.metadata.multiarch]`: strict parsing, workspace defaults, and the resolved config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::platform::Platform;
use crate::workspace::{Package, Workspace};

/// Where binaries are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BuildMode {
    /// On the host with `cargo build --target`; the Dockerfile copies the binaries in.
    #[default]
    Cross,
    /// Inside the image for the target architecture, under QEMU when foreign.
    Container,
}

/// When a static QEMU binary goes into the build context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QemuCopy {
    #[default]
    Auto,
    Always,
    Never,
}

/// Where static QEMU binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QemuSource {
    #[default]
    Download,
    Path,
}

/// The multiarch table exactly as written in one manifest; every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    image: Option<String>,
    platforms: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    semver: Option<bool>,
    dockerfile: Option<String>,
    build: Option<BuildMode>,
    bins: Option<Vec<String>>,
    files: Option<Vec<String>>,
    insecure_registry: Option<bool>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    qemu: RawQemu,
    #[serde(default)]
    platform: BTreeMap<String, RawPlatform>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQemu {
    version: Option<String>,
    url: Option<String>,
    copy: Option<QemuCopy>,
    source: Option<QemuSource>,
    #[serde(default)]
    sha256: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    target: Option<String>,
    linker: Option<String>,
    rustflags: Option<Vec<String>>,
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
pub struct ManifestTables {
    pub package: Option<RawConfig>,
    pub workspace: Option<RawConfig>,
}

pub const DEFAULT_DOCKERFILE: &str = "docker/Dockerfile.j2";
pub const DEFAULT_TAGS: &[&str] = &["{{ version }}"];
pub const DEFAULT_QEMU_VERSION: &str = "7.2.0-1";
pub const DEFAULT_QEMU_URL: &str = "https://github.com/multiarch/qemu-user-static/releases/download/v{{ version }}/x86_64_qemu-{{ qemu_arch }}-static.tar.gz";

/// Template variables the tool defines; `vars` may not redefine them.
pub const BUILTIN_VARIABLES: &[&str] = &[
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
pub fn parse_manifest(path: &Path, text: &str) -> Result<ManifestTables> {
    let deserializer = toml::Deserializer::new(text);
    let manifest: Manifest = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let location = match inner.span() {
            Some(span) => {
                let line = text[..span.start].matches('\n').count() + 1;
                format!("{}:{line}", path.display())
            }
            None => path.display().to_string(),
        };
        let message = inner.message().trim().replace('\n', " ");
        anyhow::anyhow!(
            "invalid `{key}` in {location}: {message}\n\
             help: fix or remove `{key}`; the README's \"Configuration\" section lists every key"
        )
    })?;
    let table = |s: Option<Section>| s.and_then(|s| s.metadata).and_then(|m| m.multiarch);
    Ok(ManifestTables {
        package: table(manifest.package),
        workspace: table(manifest.workspace),
    })
}

/// One platform with everything needed to build for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformConfig {
    pub platform: &'static Platform,
    pub target: String,
    pub linker: Option<String>,
    pub rustflags: Vec<String>,
    /// `vars` with this platform's overrides applied.
    pub vars: BTreeMap<String, toml::Value>,
}

/// QEMU settings after defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct QemuConfig {
    pub version: String,
    pub url: String,
    pub copy: QemuCopy,
    pub source: QemuSource,
    /// Pinned digests by QEMU arch name.
    pub sha256: BTreeMap<String, String>,
}

/// A package's multiarch config with workspace defaults merged in and every value checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub package: Package,
    pub workspace_root: PathBuf,
    pub target_dir: PathBuf,
    /// The image repository, without a tag; `None` means a local-only name.
    pub image: Option<String>,
    pub platforms: Vec<&'static Platform>,
    /// Tag templates of the multi-arch manifest list.
    pub tags: Vec<String>,
    pub semver: bool,
    pub dockerfile: PathBuf,
    pub build: BuildMode,
    pub bins: Vec<String>,
    /// Extra files, relative to the workspace root, copied into every build context.
    pub files: Vec<PathBuf>,
    pub labels: BTreeMap<String, String>,
    pub insecure_registry: bool,
    pub qemu: QemuConfig,
    vars: BTreeMap<String, toml::Value>,
    overrides: BTreeMap<String, RawPlatform>,
}

impl Config {
    /// Loads the config of `package` (or the one configured package) of the workspace.
    pub fn load(workspace: &Workspace, package: Option<&str>) -> Result<Config> {
        let root_manifest = workspace.root_manifest();
        let read = |path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let root_text = read(&root_manifest)?;
        let root_tables = parse_manifest(&root_manifest, &root_text)?;
        let mut tables = Vec::new();
        for candidate in &workspace.packages {
            if package.is_some_and(|name| name != candidate.name) {
                continue;
            }
            let own = if candidate.manifest_path == root_manifest {
                root_tables.package.clone()
            } else {
                parse_manifest(&candidate.manifest_path, &read(&candidate.manifest_path)?)?.package
            };
            tables.push((candidate, own));
        }
        let (package, own) = match (package, tables.as_slice()) {
            (Some(name), []) => bail!(
                "package `{name}` is not a member of the workspace at {}\n\
                 help: pick one of: {}",
                workspace.root.display(),
                names(workspace.packages.iter().map(|p| &p.name))
            ),
            (Some(_), [one]) => one.clone(),
            _ => {
                let configured: Vec<_> = tables.iter().filter(|(_, t)| t.is_some()).collect();
                match configured.as_slice() {
                    [one] => (*one).clone(),
                    [] => bail!(
                        "no package in {} has a `[package.metadata.multiarch]` table\n\
                         help: add one to the package that ships as an image, or pass `-p PACKAGE`",
                        workspace.root.display()
                    ),
                    several => bail!(
                        "several packages have a `[package.metadata.multiarch]` table: {}\n\
                         help: pick one with `-p PACKAGE`",
                        names(several.iter().map(|(p, _)| &p.name))
                    ),
                }
            }
        };
        Config::resolve(
            workspace,
            package,
            root_tables.workspace.unwrap_or_default(),
            own.unwrap_or_default(),
        )
    }

    /// Merges `own` over `defaults` and checks every value. Errors name the table the bad
    /// value came from: the package's manifest, or the workspace root's.
    pub fn resolve(
        workspace: &Workspace,
        package: &Package,
        defaults: RawConfig,
        own: RawConfig,
    ) -> Result<Config> {
        let key_error = |origin: Origin, key: &str, problem: String, help: &str| {
            let (table, manifest) = match origin {
                Origin::Package => ("package", package.manifest_path.clone()),
                Origin::Workspace => ("workspace", workspace.root_manifest()),
            };
            anyhow::anyhow!(
                "invalid `{table}.metadata.multiarch.{key}` for package `{}` ({}): {problem}\nhelp: {help}",
                package.name,
                manifest.display()
            )
        };
        let sources = [
            (defaults.clone(), Origin::Workspace),
            (own.clone(), Origin::Package),
        ];

        let (image, origin) = pick(own.image, defaults.image);
        if let Some(image) = &image {
            check_repository(image).map_err(|problem| {
                key_error(
                    origin,
                    "image",
                    problem,
                    "write a repository such as `ghcr.io/acme/hello`; tags come from `tags`",
                )
            })?;
        }

        let (platform_names, origin) = pick(own.platforms, defaults.platforms);
        let platform_names = platform_names
            .unwrap_or_else(|| vec![Platform::host().map_or("linux/amd64".into(), |p| p.name())]);
        let platforms = parse_platforms(&platform_names).map_err(|(index, err)| {
            let (problem, help) = crate::split_help(&err.to_string());
            key_error(origin, &format!("platforms[{index}]"), problem, &help)
        })?;
        if platforms.is_empty() {
            return Err(key_error(
                origin,
                "platforms",
                "the list is empty".into(),
                "list at least one platform, such as \"linux/amd64\"",
            ));
        }

        let (tags, origin) = pick(own.tags, defaults.tags);
        let tags = tags.unwrap_or_else(|| DEFAULT_TAGS.iter().map(|t| t.to_string()).collect());
        if tags.is_empty() || tags.iter().any(|t| t.trim().is_empty()) {
            return Err(key_error(
                origin,
                "tags",
                "tags must be non-empty".into(),
                "list tags such as [\"{{ version }}\", \"latest\"]",
            ));
        }

        let (bins, origin) = pick(own.bins, defaults.bins);
        let bins = bins.unwrap_or_else(|| package.bins.clone());
        if let Some(bin) = bins.iter().find(|bin| !package.bins.contains(bin)) {
            return Err(key_error(
                origin,
                "bins",
                format!("`{bin}` is not a binary target of `{}`", package.name),
                &format!("use one of: {}", names(package.bins.iter())),
            ));
        }
        if bins.is_empty() {
            return Err(key_error(
                origin,
                "bins",
                format!("package `{}` has no binary targets", package.name),
                "add a `src/main.rs` or a `[[bin]]` target, or configure another package",
            ));
        }

        for (raw, origin) in &sources {
            check_var_names(raw.vars.keys()).map_err(|name| {
                key_error(
                    *origin,
                    &format!("vars.{name}"),
                    format!("`{name}` is a built-in template variable"),
                    "rename the variable",
                )
            })?;
            for (arch, digest) in &raw.qemu.sha256 {
                let key = format!("qemu.sha256.{arch}");
                if !crate::platform::PLATFORMS
                    .iter()
                    .any(|p| p.qemu_arch == arch)
                {
                    return Err(key_error(
                        *origin,
                        &key,
                        format!("`{arch}` is not a QEMU architecture"),
                        "key pins by QEMU name: aarch64, arm, riscv64, ...",
                    ));
                }
                if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(key_error(
                        *origin,
                        &key,
                        "a SHA-256 digest is 64 hex digits".into(),
                        "copy the digest `cargo xtask qemu fetch` prints",
                    ));
                }
            }
        }
        let mut vars = defaults.vars;
        vars.extend(own.vars);

        let mut overrides = BTreeMap::new();
        for (raw, origin) in sources {
            let mut seen = BTreeMap::new();
            for (key, raw) in raw.platform {
                let platform = Platform::parse(&key).map_err(|err| {
                    let (problem, help) = crate::split_help(&err.to_string());
                    key_error(origin, &format!("platform.\"{key}\""), problem, &help)
                })?;
                if let Some(other) = seen.insert(platform.name(), key.clone()) {
                    return Err(key_error(
                        origin,
                        &format!("platform.\"{key}\""),
                        format!("the table names {platform} twice, as `{other}` and `{key}`"),
                        "merge the two tables into one",
                    ));
                }
                check_var_names(raw.vars.keys()).map_err(|name| {
                    key_error(
                        origin,
                        &format!("platform.\"{key}\".vars.{name}"),
                        format!("`{name}` is a built-in template variable"),
                        "rename the variable",
                    )
                })?;
                let merged: &mut RawPlatform = overrides.entry(platform.name()).or_default();
                merged.target = raw.target.or(merged.target.take());
                merged.linker = raw.linker.or(merged.linker.take());
                merged.rustflags = raw.rustflags.or(merged.rustflags.take());
                merged.vars.extend(raw.vars);
            }
        }

        let mut sha256 = defaults.qemu.sha256;
        sha256.extend(own.qemu.sha256);
        let qemu = QemuConfig {
            version: own
                .qemu
                .version
                .or(defaults.qemu.version)
                .unwrap_or_else(|| DEFAULT_QEMU_VERSION.into()),
            url: own
                .qemu
                .url
                .or(defaults.qemu.url)
                .unwrap_or_else(|| DEFAULT_QEMU_URL.into()),
            copy: own.qemu.copy.or(defaults.qemu.copy).unwrap_or_default(),
            source: own.qemu.source.or(defaults.qemu.source).unwrap_or_default(),
            sha256,
        };

        let mut labels = defaults.labels;
        labels.extend(own.labels);

        let (files, origin) = pick(own.files, defaults.files);
        let files: Vec<PathBuf> = files
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect();
        if let Some(file) = files.iter().find(|f| {
            f.is_absolute() || f.components().any(|c| c == std::path::Component::ParentDir)
        }) {
            return Err(key_error(
                origin,
                "files",
                format!("`{}` leaves the workspace", file.display()),
                "list paths relative to the workspace root",
            ));
        }

        Ok(Config {
            package: package.clone(),
            workspace_root: workspace.root.clone(),
            target_dir: workspace.target_dir.clone(),
            image,
            platforms,
            tags,
            semver: own.semver.or(defaults.semver).unwrap_or(false),
            dockerfile: workspace.root.join(
                own.dockerfile
                    .or(defaults.dockerfile)
                    .unwrap_or_else(|| DEFAULT_DOCKERFILE.into()),
            ),
            build: own.build.or(defaults.build).unwrap_or_default(),
            bins,
            files,
            labels,
            insecure_registry: own
                .insecure_registry
                .or(defaults.insecure_registry)
                .unwrap_or(false),
            qemu,
            vars,
            overrides,
        })
    }

    /// Everything needed to build for `platform`, whether or not the config lists it.
    pub fn platform(&self, platform: &'static Platform) -> PlatformConfig {
        let overrides = self
            .overrides
            .get(&platform.name())
            .cloned()
            .unwrap_or_default();
        let mut vars = self.vars.clone();
        vars.extend(overrides.vars);
        PlatformConfig {
            platform,
            target: overrides
                .target
                .unwrap_or_else(|| platform.rust_target.to_owned()),
            linker: overrides.linker,
            rustflags: overrides.rustflags.unwrap_or_default(),
            vars,
        }
    }

    /// The repository images are named after: the configured one or the package name.
    pub fn repository(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| self.package.name.clone())
    }
}

/// Which table a value came from, so that errors name the right key and manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
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

/// Parses platform names, reporting the index of the first bad one; duplicates are dropped.
pub fn parse_platforms(
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

/// Checks a repository reference such as `ghcr.io/acme/hello` or `127.0.0.1:5000/hello`.
pub fn check_repository(image: &str) -> std::result::Result<(), String> {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.is_empty() {
        return Err("the repository is empty".into());
    }
    if image.contains('@') || last.contains(':') {
        return Err(format!("`{image}` carries a tag or digest"));
    }
    let path = image.split_once('/').map_or(image, |(host, rest)| {
        if host.contains(['.', ':']) || host == "localhost" {
            rest
        } else {
            image
        }
    });
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
    if path.is_empty() || !path.chars().all(valid) || path.split('/').any(str::is_empty) {
        return Err(format!(
            "`{image}` is not a valid repository name (lowercase letters, digits, `._-/`)"
        ));
    }
    Ok(())
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
        )
    }

    fn error(toml_text: &str) -> String {
        format!("{:#}", resolve(toml_text).unwrap_err())
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
        assert_eq!(config.image.as_deref(), Some("ghcr.io/acme/hello"));
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
    fn defaults_without_any_table() {
        let config = resolve("[package]\nname = \"hello\"\n").unwrap();
        assert_eq!(config.image, None);
        assert_eq!(config.repository(), "hello");
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
            assert_eq!(check_repository(ok), Ok(()), "{ok}");
        }
        for bad in ["", "hello:1", "a//b", "Hello", "a/b@sha256:00", "a/"] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }
}
