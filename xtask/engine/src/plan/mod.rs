//! The plan: every step of a run (contexts, cargo builds, image builds, pushes by digest,
//! and the releases that publish them under tags) as typed data, computed before anything
//! runs.

pub mod context;
pub mod dockerfile;
pub mod dockerignore;
mod render;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub(crate) use self::render::{render_platform, Rendered};
use crate::config::compile::{CargoOptions, RustTarget, Toolchain};
use crate::config::image_ref::ImageRef;
use crate::config::platform::Platform;
use crate::config::rustflags::Channel;
use crate::config::template::{self, TagContext, Template};
use crate::config::{
    Backend, BuildMode, Config, EngineTarget, Network, PlatformConfig, Provenance, QemuConfig,
    Sbom, Signing,
};
use crate::diagnostic::fail;
use crate::emulation::binfmt::{Emulation, Handler};

/// Which `docker build` front end the engine offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builder {
    /// The classic builder behind `docker build` (no buildx plugin).
    Legacy,
    /// `docker buildx build --load`.
    Buildx,
}

/// Facts about the run that are not in the config.
#[derive(Debug, Clone)]
pub(crate) struct PlanInputs {
    /// Push every platform's image by digest.
    pub(crate) push: bool,
    /// Then publish them under the config's tags (`--push`); without it, the pushes are
    /// one machine's share of a release (`--push-by-digest`).
    pub(crate) publish: bool,
    pub(crate) builder: Builder,
    /// Full commit hash of the workspace checkout, when it is one.
    pub(crate) git_revision: Option<String>,
    /// Whether tracked files of the checkout differ from that commit.
    pub(crate) git_dirty: bool,
    /// Commit time (RFC 3339), used as a reproducible `created` label.
    pub(crate) git_time: Option<String>,
    /// The same time in seconds since the epoch: `SOURCE_DATE_EPOCH` and staged mtimes.
    pub(crate) git_epoch: Option<u64>,
    /// The host's binfmt handlers, which decide how foreign `RUN` steps run.
    pub(crate) handlers: Vec<Handler>,
}

/// Names one platform's push in [`Plan::platforms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PushId(pub usize);

/// Every step of a run, in order.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The packages the run builds, in order.
    pub(crate) packages: Vec<String>,
    pub(crate) root: PathBuf,
    pub(crate) target_dir: PathBuf,
    /// The commit the workspace is at, and whether tracked files differ from it, as the
    /// run's records say.
    pub(crate) revision: Option<String>,
    pub(crate) dirty: bool,
    /// The base image of every `FROM`, per platform, for the pre-flight checks.
    pub(crate) base_images: Vec<BaseImage>,
    pub(crate) platforms: Vec<PlatformPlan>,
    /// One per package, run only after every platform of every package pushed.
    pub(crate) releases: Vec<Release>,
    /// Where each push's record goes (`--push-by-digest`), when this run publishes nothing.
    pub(crate) records: Option<PathBuf>,
}

/// A base image a platform's Dockerfile starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseImage {
    pub(crate) platform: &'static Platform,
    pub(crate) image: String,
}

/// Everything one platform needs, from its context to its push.
#[derive(Debug, Clone)]
pub(crate) struct PlatformPlan {
    pub(crate) package: String,
    pub(crate) platform: &'static Platform,
    /// The engine that builds, inspects and pushes this platform's image.
    pub(crate) engine: EngineTarget,
    /// Where staged QEMU binaries come from.
    pub(crate) qemu: QemuConfig,
    /// The build context directory, relative to the workspace root.
    pub(crate) context_dir: PathBuf,
    /// Whether the rendered Dockerfile has `RUN` steps, which a foreign platform emulates.
    pub(crate) runs_commands: bool,
    /// How this host runs the platform's binaries.
    pub(crate) emulation: Emulation,
    /// Written before anything compiles: a template error leaves no context half-built.
    pub(crate) context: Vec<ContextStep>,
    /// Compiles the binaries on the host (cross builds); container builds compile in
    /// the image instead.
    pub(crate) cargo: Option<CargoBuild>,
    /// Copies the compiled binaries (and QEMU) into the context once cargo is done.
    pub(crate) staging: Vec<StageStep>,
    /// The one image build of the platform.
    pub(crate) image: ImageBuild,
    pub(crate) push: Option<Push>,
}

/// What the final stage of a rendered Dockerfile starts from, for the start check.
enum RunsOn {
    Scratch,
    /// A base image named without build arguments.
    Image(String),
    /// A stage or a reference with build arguments: not checked.
    Unknown,
}

/// A step that writes the context before anything compiles. Paths are relative to the
/// workspace root unless absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContextStep {
    /// Create a build context directory and remove every file in it not listed in `keep`.
    Prepare { dir: PathBuf, keep: Vec<PathBuf> },
    /// Write a rendered Dockerfile atomically, skipping the write when it is identical.
    Render { path: PathBuf, contents: String },
    /// Copy `files` (relative paths) from the directory `from` into `to`, each when changed.
    Mirror {
        from: PathBuf,
        to: PathBuf,
        files: Vec<PathBuf>,
    },
}

/// A step that puts what cargo built (or QEMU) into the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StageStep {
    /// Copy a compiled binary into the context, skipping the write when it is identical,
    /// and give it the commit time (seconds since the epoch) when there is one.
    Binary {
        from: PathBuf,
        to: PathBuf,
        mtime: Option<u64>,
    },
    /// Put the static QEMU for `qemu_arch` at `to`, from the cache (fetched when missing)
    /// or PATH, as the config's `qemu.source` says.
    Qemu {
        qemu_arch: &'static str,
        to: PathBuf,
    },
    /// Check from its ELF headers that a staged binary can start in an image `FROM
    /// scratch`, which has no dynamic loader and no shared library: it must be static.
    StartsOnScratch { binary: PathBuf },
    /// Check that a staged binary can start on its base image: the loader, the libraries
    /// and the glibc it needs must be in the base for this platform.
    /// `target` is the plain triple it was compiled for, for the fix a refusal names.
    StartsOnBase {
        binary: PathBuf,
        base: String,
        target: String,
    },
}

/// `cargo build` of one package's binaries for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CargoBuild {
    pub(crate) platform: &'static Platform,
    /// Through `cargo auditable`, so the binaries carry the crates compiled into them.
    pub(crate) auditable: bool,
    /// The packages built together (one, or several that share everything else).
    pub(crate) packages: Vec<String>,
    /// `cargo build`, or `cargo zigbuild` with zig as the C toolchain and linker.
    pub(crate) toolchain: Toolchain,
    pub(crate) target: RustTarget,
    pub(crate) bins: Vec<String>,
    pub(crate) linker: Option<String>,
    /// What the tool passes to rustc for this target, composed with the user's own flags.
    pub(crate) rustflags: Vec<String>,
    /// How `rustflags` reach cargo: `--config target.<triple>.rustflags`, or
    /// `CARGO_ENCODED_RUSTFLAGS` when the user's flags come from the environment.
    pub(crate) rustflags_channel: Channel,
    /// `CC_<triple>`, `CXX_<triple>` and `AR_<triple>`, for this one invocation.
    pub(crate) compilers: Vec<(String, String)>,
    /// Features, profile and lockfile flags, with this platform's features merged in.
    pub(crate) options: CargoOptions,
}

/// One cargo invocation: builds that share toolchain, options, packages and binaries, each
/// for a target of its own, compiled together (`cargo build --target a --target b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CargoInvocation {
    pub(crate) builds: Vec<CargoBuild>,
}

impl CargoInvocation {
    /// The platforms it compiles for, for progress and dry-run lines.
    pub(crate) fn platforms(&self) -> String {
        let names: Vec<String> = self.builds.iter().map(|b| b.platform.name()).collect();
        names.join(", ")
    }

    /// Whether `build` may join: the same toolchain, options, packages and binaries, and a
    /// target not already in it.
    pub(crate) fn accepts(&self, build: &CargoBuild) -> bool {
        let first = &self.builds[0];
        (
            &first.toolchain,
            &first.options,
            &first.packages,
            &first.bins,
            first.rustflags_channel,
        ) == (
            &build.toolchain,
            &build.options,
            &build.packages,
            &build.bins,
            build.rustflags_channel,
        ) && first.auditable == build.auditable
            && (build.rustflags_channel == Channel::Config || first.rustflags == build.rustflags)
            && self
                .builds
                .iter()
                .all(|b| b.target.triple != build.target.triple)
    }
}

impl CargoBuild {
    /// Where cargo puts the binaries, relative to the target directory.
    pub(crate) fn output_dir(&self) -> PathBuf {
        Path::new(&self.target.triple).join(self.options.profile_dir())
    }
}

/// Building one platform's image from its context, then checking what was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageBuild {
    pub(crate) package: String,
    pub(crate) platform: &'static Platform,
    pub(crate) engine: EngineTarget,
    pub(crate) builder: Builder,
    /// Per-platform tags, `<repo>:<docker_arch>-<tag>`, one per list tag.
    pub(crate) tags: Vec<ImageRef>,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) dockerfile: PathBuf,
    pub(crate) context: PathBuf,
    pub(crate) network: Network,
    /// BuildKit attestations; always off on the legacy builder.
    pub(crate) provenance: Provenance,
    pub(crate) sbom: bool,
    /// `SOURCE_DATE_EPOCH` for BuildKit: the commit time, so timestamps repeat.
    pub(crate) source_date_epoch: Option<u64>,
    /// The SBOM written after staging (`sbom = true`, cross builds).
    pub(crate) sbom_of: Option<SbomPlan>,
    /// The SLSA provenance the OCI backend attaches (`provenance`), and where it is written.
    pub(crate) provenance_of: Option<(ProvenanceFacts, PathBuf)>,
}

/// What the plan knows of one image's build, for its SLSA provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProvenanceFacts {
    pub(crate) package: String,
    pub(crate) platform: String,
    pub(crate) target: String,
    /// `cargo` or `zig`.
    pub(crate) toolchain: String,
    pub(crate) features: Vec<String>,
    pub(crate) profile: String,
    pub(crate) rustflags: Vec<String>,
    /// The package's `repository`, and the commit the workspace is at.
    pub(crate) repository: Option<String>,
    pub(crate) revision: Option<String>,
    /// Whether tracked files differ from that commit.
    pub(crate) dirty: bool,
}

/// The crates one image's SBOM lists (its package's, for its target, with its options),
/// and where its documents go; written after staging, on every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SbomPlan {
    pub(crate) package: String,
    /// The binaries carry cargo-auditable's list, which must name the SBOM's crates.
    pub(crate) auditable: bool,
    pub(crate) platform: &'static Platform,
    /// The plain triple, as `cargo tree --target` takes it.
    pub(crate) target: String,
    pub(crate) options: CargoOptions,
    pub(crate) bins: Vec<String>,
    /// The commit time, RFC 3339: the documents' time, so they repeat.
    pub(crate) created: String,
    pub(crate) cyclonedx: PathBuf,
    pub(crate) spdx: PathBuf,
}

/// Pushing one platform's image by digest, under no tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Push {
    pub(crate) package: String,
    pub(crate) platform: &'static Platform,
    pub(crate) engine: EngineTarget,
    /// Plain HTTP to the registry (loopback, or `insecure_registry`).
    pub(crate) insecure: bool,
    /// The repository it goes to, with no tag.
    pub(crate) repository: ImageRef,
    /// The image as its build named it where it was built (an engine's local tag).
    pub(crate) local: ImageRef,
}

/// Publishing one package: its platforms' pushes joined into one index, signed when asked,
/// then its tags moved to it. Planned from the config alone, so that the machine that
/// publishes need not be one that built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Release {
    pub(crate) package: String,
    /// The repository the index and tags go to, with no tag.
    pub(crate) repository: ImageRef,
    /// Plain HTTP to the registry (loopback, or `insecure_registry`).
    pub(crate) insecure: bool,
    /// Every platform the index lists, in the config's order.
    pub(crate) platforms: Vec<&'static Platform>,
    /// The multi-arch tags; each platform's image is also tagged `<docker_arch>-<tag>`.
    pub(crate) tags: Vec<String>,
    /// Signing of every platform's image and of the index, before any tag moves.
    pub(crate) sign: Option<Signing>,
}

impl Release {
    /// The multi-arch tags as references.
    pub(crate) fn lists(&self) -> Vec<ImageRef> {
        self.tags
            .iter()
            .map(|tag| self.repository.with_tag(tag))
            .collect()
    }

    /// One platform's own tags, `<repo>:<docker_arch>-<tag>`, as the classic recipe named them.
    pub(crate) fn platform_tags(&self, platform: &Platform) -> Vec<ImageRef> {
        self.tags
            .iter()
            .map(|tag| {
                self.repository
                    .with_tag(&format!("{}-{tag}", platform.docker_arch))
            })
            .collect()
    }
}

impl Plan {
    /// Computes the plan; templates are rendered here, so a template error writes nothing.
    pub(crate) fn new(config: &Config, inputs: &PlanInputs) -> Result<Plan> {
        let repository = config.repository();
        refuse_impossible(config, inputs)?;
        let tags = list_tags(config, inputs)?;
        let attestations = attestations(config, inputs)?;
        let template = Template::load(&config.dockerfile, &config.workspace_root)?;
        let labels = labels(config, inputs);
        // Container builds see the workspace sources; they are listed once for all platforms.
        let in_container = config
            .platforms
            .iter()
            .any(|&p| config.platform(p).build == BuildMode::Container);
        let sources = match in_container {
            false => Vec::new(),
            true => context::source_files(&config.workspace_root, &config.target_dir)?,
        };
        context::check_files(
            &config.workspace_root,
            &config.files,
            config
                .platforms
                .iter()
                .any(|&p| config.platform(p).build == BuildMode::Cross),
        )
        .with_context(|| format!("in `files` of {}", config.package.manifest_path.display()))?;
        let mut plan = Plan {
            packages: vec![config.package.name.clone()],
            root: config.workspace_root.clone(),
            target_dir: config.target_dir.clone(),
            revision: inputs.git_revision.clone(),
            dirty: inputs.git_dirty,
            base_images: Vec::new(),
            platforms: Vec::new(),
            releases: Vec::new(),
            records: None,
        };
        for &platform in &config.platforms {
            let platform_config = config.platform(platform);
            let rendered = render_platform(config, &platform_config, &template, &inputs.handlers)?;
            let images: Vec<ImageRef> = tags
                .iter()
                .map(|tag| repository.with_tag(&format!("{}-{tag}", platform.docker_arch)))
                .collect();
            plan.base_images.extend(
                dockerfile::from_images(&rendered.dockerfile)
                    .into_iter()
                    .map(|image| BaseImage { platform, image }),
            );
            let platform_plan = PlatformSteps {
                config,
                platform: &platform_config,
                sources: &sources,
                labels: &labels,
                builder: inputs.builder,
                attestations,
                source_date_epoch: inputs.git_epoch,
                revision: inputs.git_revision.clone(),
                dirty: inputs.git_dirty,
            }
            .plan(rendered, images, inputs.push);
            plan.platforms.push(platform_plan);
        }
        if inputs.publish {
            plan.releases.push(release(config, tags));
        }
        Ok(plan)
    }

    /// The platforms whose pushes this plan runs, with their ids.
    pub(crate) fn pushes(&self) -> impl Iterator<Item = (PushId, &Push)> {
        self.platforms
            .iter()
            .enumerate()
            .filter_map(|(index, p)| Some((PushId(index), p.push.as_ref()?)))
    }

    /// Joins the plans of several packages of one workspace into one run: their platforms
    /// and releases in order, so that every image is built before any is pushed and every
    /// push happens before any tag is published, across packages.
    pub(crate) fn merge(plans: Vec<Plan>) -> Result<Plan> {
        let mut plans = plans.into_iter();
        let mut merged = plans.next().expect("a run plans at least one package");
        for plan in plans {
            merged.packages.extend(plan.packages);
            merged.base_images.extend(plan.base_images);
            merged.platforms.extend(plan.platforms);
            merged.releases.extend(plan.releases);
        }
        merged.refuse_shared_refs()?;
        Ok(merged)
    }

    /// Two packages that would write the same per-platform image or the same tag are an
    /// error before anything compiles: one image would silently replace the other.
    fn refuse_shared_refs(&self) -> Result<()> {
        let key = |image: &ImageRef| {
            format!(
                "{}/{}:{}",
                image.registry_host().to_ascii_lowercase(),
                image.path,
                image.tag.as_deref().unwrap_or("latest")
            )
        };
        let mut owners: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        let images = self.platforms.iter().flat_map(|p| {
            let package = p.package.as_str();
            p.image.tags.iter().map(move |tag| (tag, package))
        });
        let lists: Vec<(ImageRef, &str)> = self
            .releases
            .iter()
            .flat_map(|r| r.lists().into_iter().map(|list| (list, r.package.as_str())))
            .collect();
        let lists = lists.iter().map(|(list, package)| (list, *package));
        for (image, package) in images.chain(lists) {
            match owners.insert(key(image), package) {
                Some(other) if other != package => {
                    return Err(crate::diagnostic::diagnostic(
                        format!("packages `{other}` and `{package}` would both write {image}"),
                        "give each package its own `image` in its [package.metadata.multiarch], or build them with `-p` one at a time",
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The cargo invocations of the run. Builds for one target are joined first, where
    /// only the packages and binaries differ (every package that needs the target is built
    /// at once); then targets that share everything else go into one invocation. Each
    /// comes with the indexes of the platform plans it serves.
    pub(crate) fn cargo_builds(&self) -> Vec<(CargoInvocation, Vec<usize>)> {
        let mut per_target: Vec<(CargoBuild, Vec<usize>)> = Vec::new();
        for (index, platform_plan) in self.platforms.iter().enumerate() {
            if let Some(build) = &platform_plan.cargo {
                let shared = |b: &CargoBuild| CargoBuild {
                    packages: Vec::new(),
                    bins: Vec::new(),
                    ..b.clone()
                };
                match per_target
                    .iter_mut()
                    .find(|(g, _)| shared(g) == shared(build))
                {
                    Some((group, members)) => {
                        for package in &build.packages {
                            if !group.packages.contains(package) {
                                group.packages.push(package.clone());
                            }
                        }
                        for bin in &build.bins {
                            if !group.bins.contains(bin) {
                                group.bins.push(bin.clone());
                            }
                        }
                        members.push(index);
                    }
                    None => per_target.push((build.clone(), vec![index])),
                }
            }
        }
        let mut invocations: Vec<(CargoInvocation, Vec<usize>)> = Vec::new();
        for (build, members) in per_target {
            match invocations.iter_mut().find(|(i, _)| i.accepts(&build)) {
                Some((invocation, joined)) => {
                    invocation.builds.push(build);
                    joined.extend(members);
                }
                None => invocations.push((
                    CargoInvocation {
                        builds: vec![build],
                    },
                    members,
                )),
            }
        }
        invocations
    }

    /// How progress and dry-run lines name a platform: with its package when the run
    /// builds several.
    pub(crate) fn scope(&self, package: &str, platform: &Platform) -> String {
        if self.packages.len() > 1 {
            format!("{package} {platform}")
        } else {
            platform.name()
        }
    }
}

/// Which BuildKit attestations (provenance, SBOM) the builds attach: none without BuildKit.
fn attestations(config: &Config, inputs: &PlanInputs) -> Result<(Provenance, bool)> {
    let wanted = (config.provenance, config.sbom == Sbom::BuildKit);
    let key = |name: &str| {
        format!(
            "`{name}` in [package.metadata.multiarch] of {}",
            config.package.manifest_path.display()
        )
    };
    if config.backend == Backend::Oci {
        if config.sbom == Sbom::BuildKit {
            fail!(
                help = format!(
                    "write sbom = true for the tool's own SBOM, or remove {}",
                    key("sbom")
                ),
                "sbom = \"buildkit\" is BuildKit's scanner, and backend = \"oci\" has no BuildKit"
            );
        }
        return Ok((Provenance::Off, false));
    }
    if inputs.builder == Builder::Legacy {
        if config.sbom == Sbom::BuildKit {
            fail!(
                help = format!(
                    "set up the buildx plugin (BuildKit), or write sbom = true for the tool's own SBOM in {}",
                    key("sbom")
                ),
                "sbom = \"buildkit\" needs BuildKit, and this engine has only the legacy builder"
            );
        }
        if config.provenance != Provenance::Off {
            fail!(
                help = format!(
                    "set up the buildx plugin (BuildKit), or remove {}",
                    key("provenance")
                ),
                "provenance needs BuildKit, and this engine has only the legacy builder"
            );
        }
    }
    Ok(wanted)
}

/// What no run of `config` can do: push without a repository, or name a buildx builder
/// to a client without buildx.
fn refuse_impossible(config: &Config, inputs: &PlanInputs) -> Result<()> {
    if inputs.push && config.image.is_none() {
        fail!(
                help = format!(
                    "set `image = \"registry.example.com/team/{}\"` in [package.metadata.multiarch] of {}, or pass --image REPO",
                    config.package.name,
                    config.package.manifest_path.display()
                ),
                "--push needs an image repository, and package `{}` configures none",
                config.package.name
            );
    }
    if let Some(builder) = config
        .platforms
        .iter()
        .find_map(|&p| config.platform(p).engine.builder)
        .filter(|_| inputs.builder == Builder::Legacy && config.backend == Backend::Docker)
    {
        fail!(
            help =
                "install the buildx plugin, or remove `builder` from [package.metadata.multiarch]",
            "the buildx builder `{builder}` is configured, and this docker client has no buildx"
        );
    }
    Ok(())
}

/// The list tags: the config's templates rendered, plus the semver family when asked.
fn list_tags(config: &Config, inputs: &PlanInputs) -> Result<Vec<String>> {
    Ok(release_of(config, inputs.git_revision.clone())?.tags)
}

/// What one platform's steps are planned from.
struct PlatformSteps<'a> {
    config: &'a Config,
    platform: &'a PlatformConfig,
    sources: &'a [PathBuf],
    labels: &'a [(String, String)],
    builder: Builder,
    attestations: (Provenance, bool),
    source_date_epoch: Option<u64>,
    /// The commit the workspace is at, for provenance.
    revision: Option<String>,
    dirty: bool,
}

impl PlatformSteps<'_> {
    fn plan(&self, rendered: Rendered, images: Vec<ImageRef>, push: bool) -> PlatformPlan {
        let config = self.config;
        let platform = self.platform.platform;
        let layout = crate::layout::Layout::new(&config.target_dir);
        let dir = shown(
            &config.workspace_root,
            &layout.context(&config.package.name, &platform.slug()),
        );
        // Container builds keep the Dockerfile beside the context, so a workspace
        // `Dockerfile` and `COPY . .` are unaffected.
        let dockerfile = match self.platform.build {
            BuildMode::Cross => dir.join("Dockerfile"),
            BuildMode::Container => dir.with_extension("Dockerfile"),
        };
        let runs_commands = dockerfile::has_run_steps(&rendered.dockerfile);
        let runs_on = match dockerfile::final_base(&rendered.dockerfile) {
            Some(base) if base.eq_ignore_ascii_case("scratch") => RunsOn::Scratch,
            // A base that resolves without build arguments and is no earlier stage.
            Some(base) if dockerfile::from_images(&rendered.dockerfile).contains(&base) => {
                RunsOn::Image(base)
            }
            _ => RunsOn::Unknown,
        };
        let (cargo, staging) = self.compile_and_stage(&dir, rendered.qemu.as_deref(), &runs_on);
        let context = self.context_steps(
            &dir,
            &dockerfile,
            rendered.qemu.as_deref(),
            rendered.dockerfile,
        );
        PlatformPlan {
            package: config.package.name.clone(),
            platform,
            engine: self.platform.engine.clone(),
            qemu: config.qemu.clone(),
            context_dir: dir.clone(),
            runs_commands,
            emulation: rendered.emulation,
            context,
            cargo,
            staging,
            image: self.image_build(images.clone(), dockerfile, dir),
            push: push.then_some(Push {
                package: config.package.name.clone(),
                platform,
                engine: self.platform.engine.clone(),
                insecure: config.insecure(),
                repository: config.repository(),
                local: images[0].clone(),
            }),
        }
    }

    /// The context: the directory pruned to what is planned, the Dockerfile, and the
    /// mirrored files (the sources for container builds, then `files`).
    fn context_steps(
        &self,
        dir: &Path,
        dockerfile: &Path,
        qemu: Option<&str>,
        contents: String,
    ) -> Vec<ContextStep> {
        let config = self.config;
        let mut context = vec![
            ContextStep::Prepare {
                dir: dir.to_path_buf(),
                keep: self.kept_files(qemu),
            },
            ContextStep::Render {
                path: dockerfile.to_path_buf(),
                contents,
            },
        ];
        if self.platform.build == BuildMode::Container {
            context.push(ContextStep::Mirror {
                from: PathBuf::new(),
                to: dir.to_path_buf(),
                files: self.sources.to_vec(),
            });
        }
        if !config.files.is_empty() {
            context.push(ContextStep::Mirror {
                from: PathBuf::new(),
                to: dir.to_path_buf(),
                files: config.files.clone(),
            });
        }
        context
    }

    /// Cross builds compile on the host and stage the binaries; QEMU is staged where the
    /// template copies it.
    fn compile_and_stage(
        &self,
        dir: &Path,
        qemu: Option<&str>,
        runs_on: &RunsOn,
    ) -> (Option<CargoBuild>, Vec<StageStep>) {
        let config = self.config;
        let mut staging = Vec::new();
        let mut cargo = None;
        if self.platform.build == BuildMode::Cross {
            let build = self.cargo_build();
            let output_dir =
                shown(&config.workspace_root, &config.target_dir).join(build.output_dir());
            staging.extend(config.bins.iter().map(|bin| StageStep::Binary {
                from: output_dir.join(bin),
                to: dir.join(bin),
                mtime: self.source_date_epoch,
            }));
            staging.extend(config.bins.iter().filter_map(|bin| match runs_on {
                RunsOn::Scratch => Some(StageStep::StartsOnScratch {
                    binary: dir.join(bin),
                }),
                RunsOn::Image(base) => Some(StageStep::StartsOnBase {
                    binary: dir.join(bin),
                    base: base.clone(),
                    target: build.target.triple.clone(),
                }),
                RunsOn::Unknown => None,
            }));
            cargo = Some(build);
        }
        if let Some(qemu) = qemu {
            staging.push(StageStep::Qemu {
                qemu_arch: self.platform.platform.qemu_arch,
                to: dir.join(qemu),
            });
        }
        (cargo, staging)
    }

    fn image_build(
        &self,
        tags: Vec<ImageRef>,
        dockerfile: PathBuf,
        context: PathBuf,
    ) -> ImageBuild {
        let config = self.config;
        ImageBuild {
            package: config.package.name.clone(),
            platform: self.platform.platform,
            engine: self.platform.engine.clone(),
            builder: self.builder,
            tags,
            labels: self.labels.to_vec(),
            dockerfile,
            context,
            network: config.network,
            provenance: self.attestations.0,
            sbom: self.attestations.1,
            source_date_epoch: self.source_date_epoch,
            sbom_of: self.sbom_plan(),
            provenance_of: self.provenance_plan(),
        }
    }

    /// The OCI backend's provenance: what this plan knows of the build.
    fn provenance_plan(&self) -> Option<(ProvenanceFacts, PathBuf)> {
        let config = self.config;
        let wanted = config.backend == Backend::Oci && config.provenance != Provenance::Off;
        if !wanted || self.platform.build != BuildMode::Cross {
            return None;
        }
        let platform = self.platform.platform;
        let build = self.cargo_build();
        let facts = ProvenanceFacts {
            package: config.package.name.clone(),
            platform: platform.name(),
            target: build.target.for_cargo(),
            toolchain: format!("{:?}", build.toolchain).to_ascii_lowercase(),
            features: build.options.features.clone(),
            profile: build.options.profile.clone(),
            rustflags: config
                .user_rustflags
                .compose(&self.platform.target, &self.platform.rustflags)
                .all,
            repository: config.package.repository.clone(),
            revision: self.revision.clone(),
            dirty: self.dirty,
        };
        let dir = crate::layout::Layout::new(&config.target_dir).sbom(&config.package.name);
        Some((facts, dir.join(format!("{}.slsa.json", platform.slug()))))
    }

    fn sbom_plan(&self) -> Option<SbomPlan> {
        let config = self.config;
        let wanted = config.sbom == Sbom::Exact;
        let platform = self.platform.platform;
        let dir = crate::layout::Layout::new(&config.target_dir).sbom(&config.package.name);
        (wanted && self.platform.build == BuildMode::Cross).then(|| SbomPlan {
            auditable: self.config.auditable,
            package: config.package.name.clone(),
            platform,
            target: self.platform.target.clone(),
            options: self.cargo_build().options,
            bins: config.bins.clone(),
            created: crate::time::rfc3339(self.source_date_epoch.unwrap_or(0)),
            cyclonedx: dir.join(format!("{}.cdx.json", platform.slug())),
            spdx: dir.join(format!("{}.spdx.json", platform.slug())),
        })
    }

    /// The files a context holds; anything else in it is stale and removed.
    fn kept_files(&self, qemu: Option<&str>) -> Vec<PathBuf> {
        let config = self.config;
        let mut keep: Vec<PathBuf> = match self.platform.build {
            BuildMode::Cross => std::iter::once(PathBuf::from("Dockerfile"))
                .chain(config.bins.iter().map(PathBuf::from))
                .collect(),
            BuildMode::Container => self.sources.to_vec(),
        };
        keep.extend(config.files.iter().cloned());
        keep.extend(qemu.map(PathBuf::from));
        keep
    }

    /// The platform's own flags; the OCI backend promises the same digest from another
    /// clone or machine, so the paths of the workspace and of cargo's home are remapped.
    fn rustflags(&self) -> Vec<String> {
        let mut flags = self.platform.rustflags.clone();
        if self.config.backend == Backend::Oci {
            let cargo_home = crate::config::workspace::cargo_home();
            flags.push(format!(
                "--remap-path-prefix={}=/workspace",
                self.config.workspace_root.display()
            ));
            if let Some(cargo_home) = cargo_home {
                flags.push(format!(
                    "--remap-path-prefix={}=/cargo",
                    cargo_home.display()
                ));
            }
        }
        flags
    }

    fn cargo_build(&self) -> CargoBuild {
        let platform = self.platform;
        let rustflags = self
            .config
            .user_rustflags
            .compose(&platform.target, &self.rustflags());
        CargoBuild {
            platform: platform.platform,
            auditable: self.config.auditable,
            packages: vec![self.config.package.name.clone()],
            toolchain: platform.toolchain,
            target: RustTarget {
                triple: platform.target.clone(),
                glibc: platform.glibc.clone(),
            },
            bins: self.config.bins.clone(),
            linker: platform.linker.clone(),
            rustflags: rustflags.passed,
            rustflags_channel: rustflags.channel,
            compilers: compiler_env(platform),
            options: CargoOptions {
                features: platform.features.clone(),
                ..self.config.cargo.clone()
            },
        }
    }
}

/// The C toolchain variables cc-rs reads for this platform's target only. With cargo's
/// toolchain, a `*-gcc` linker is also the C compiler unless `cc` names another; zig
/// supplies its own.
fn compiler_env(platform: &PlatformConfig) -> Vec<(String, String)> {
    if platform.toolchain == Toolchain::Zig {
        return Vec::new();
    }
    let suffix = platform.target.replace(['-', '.'], "_");
    [
        ("CC", platform.configured_cc()),
        ("CXX", platform.cxx.clone()),
        ("AR", platform.ar.clone()),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((format!("{name}_{suffix}"), value?)))
    .collect()
}

/// A path relative to the workspace root when it is inside it.
fn shown(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// One publish per tag, each naming the push of every platform.
/// What publishing `config` under `tags` is.
fn release(config: &Config, tags: Vec<String>) -> Release {
    Release {
        package: config.package.name.clone(),
        repository: config.repository(),
        insecure: config.insecure(),
        platforms: config.platforms.clone(),
        tags,
        sign: config.sign.clone(),
    }
}

/// The release of `config` for the commit `revision` (whose short hash the tag templates
/// may name), as `publish` plans it on a machine that built nothing.
pub(crate) fn release_of(config: &Config, revision: Option<String>) -> Result<Release> {
    let short_sha = revision.map(|rev| rev.chars().take(7).collect());
    let tags = template::render_tags(
        &config.tags,
        &TagContext::new(&config.package.version, short_sha),
        config.semver,
    )?;
    Ok(release(config, tags))
}

/// OCI labels from Cargo metadata and git, then the config's own labels.
fn labels(config: &Config, inputs: &PlanInputs) -> Vec<(String, String)> {
    let package = &config.package;
    let oci = |key: &str| format!("org.opencontainers.image.{key}");
    let mut labels = BTreeMap::new();
    labels.insert(oci("title"), Some(package.name.clone()));
    labels.insert(oci("version"), Some(package.version.clone()));
    labels.insert(oci("description"), package.description.clone());
    labels.insert(oci("licenses"), package.license.clone());
    labels.insert(oci("source"), package.repository.clone());
    labels.insert(oci("revision"), inputs.git_revision.clone());
    labels.insert(oci("created"), inputs.git_time.clone());
    let mut labels: BTreeMap<String, String> = labels
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    labels.extend(config.labels.clone());
    labels.into_iter().collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::docker::{Docker, DockerBackend};
    use crate::config::workspace::{Package, Workspace};
    use crate::config::{parse_manifest, CliLayer, Config, QemuCopy};
    use crate::exec::report::dry_run_lines;

    pub(crate) fn sample_config(extra: &str) -> Config {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .unwrap();
        let manifest = root.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap() + extra;
        let tables = parse_manifest(&manifest, &text).unwrap();
        let package = Package {
            name: "hello".into(),
            version: "0.1.0".into(),
            manifest_path: manifest.clone(),
            description: Some("Reports the CPU architecture it runs on".into()),
            license: Some("MIT OR Apache-2.0".into()),
            repository: None,
            bins: vec!["hello".into()],
        };
        let workspace = Workspace {
            root: root.to_path_buf(),
            target_dir: root.join("target"),
            packages: vec![package.clone()],
        };
        let cli = CliLayer {
            image: Some("127.0.0.1:5000/hello".into()),
            ..CliLayer::default()
        };
        Config::resolve(
            &workspace,
            &package,
            tables.workspace.unwrap(),
            tables.package.unwrap(),
            &cli,
        )
        .unwrap()
    }

    pub(crate) fn inputs(push: bool) -> PlanInputs {
        PlanInputs {
            push,
            publish: push,
            builder: Builder::Legacy,
            git_revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            git_dirty: false,
            git_time: Some("2026-11-28T01:00:00+00:00".into()),
            git_epoch: Some(1_795_827_600),
            handlers: Vec::new(),
        }
    }

    /// The demo's plan for a push of its three platforms.
    pub(crate) fn push_plan() -> Plan {
        Plan::new(&sample_config(""), &inputs(true)).unwrap()
    }

    /// The dry-run lines of `plan`, as the Docker executor describes them.
    pub(crate) fn lines(plan: &Plan) -> Vec<String> {
        let docker = Docker {
            program: "docker".into(),
            context: None,
        };
        let executor = DockerBackend::new(docker, &plan.root, &plan.root.join("target"));
        let cargo = crate::config::workspace::cargo_program()
            .display()
            .to_string();
        dry_run_lines(plan, &executor)
            .into_iter()
            .map(|l| l.replace(&cargo, "cargo"))
            .collect()
    }

    #[test]
    fn push_plan_snapshot() {
        crate::assert_snapshot("plan-push.txt", &(lines(&push_plan()).join("\n") + "\n"));
    }

    #[test]
    fn several_packages_share_a_cargo_build_per_target_and_publish_after_every_push() {
        let hello = sample_config("");
        let mut worker = sample_config("");
        worker.package.name = "worker".into();
        worker.package.bins = vec!["worker".into()];
        worker.bins = vec!["worker".into()];
        worker.image = Some(ImageRef::repository("127.0.0.1:5000/worker").unwrap());
        worker.platforms = vec![Platform::parse("linux/amd64").unwrap()];
        let plan = Plan::merge(vec![
            Plan::new(&hello, &inputs(true)).unwrap(),
            Plan::new(&worker, &inputs(true)).unwrap(),
        ])
        .unwrap();
        assert_eq!(plan.packages, ["hello", "worker"]);
        let cargo = plan.cargo_builds();
        // amd64 builds both packages; arm64 and arm/v7 build hello alone, so they share
        // an invocation of their own.
        assert_eq!(cargo.len(), 2, "{cargo:#?}");
        assert_eq!(cargo[0].0.builds.len(), 1);
        assert_eq!(cargo[0].0.builds[0].packages, ["hello", "worker"]);
        assert_eq!(cargo[0].0.builds[0].bins, ["hello", "worker"]);
        assert_eq!(cargo[0].1, [0, 3], "it serves hello's and worker's amd64");
        assert_eq!(cargo[1].0.platforms(), "linux/arm64, linux/arm/v7");
        assert_eq!(cargo[1].1, [1, 2]);
        for (_, push) in plan.pushes() {
            let release = plan
                .releases
                .iter()
                .find(|r| r.package == push.package)
                .unwrap();
            assert_eq!(push.repository, release.repository);
        }
        let lines = lines(&plan);
        assert!(lines.contains(&"[linux/amd64] cargo auditable build --package hello --package worker --target x86_64-unknown-linux-musl --profile=release --bin hello --bin worker".to_owned()), "{lines:#?}");
        assert!(
            lines.iter().any(|l| l
                .starts_with("[worker linux/amd64] docker image save --output target/multiarch/saved/worker-linux-amd64.tar 127.0.0.1:5000/worker:amd64-0.1.0")),
            "{lines:#?}"
        );
        let last_push = lines
            .iter()
            .rposition(|l| l.contains("] docker image save "))
            .unwrap();
        let first_publish = lines
            .iter()
            .position(|l| l.contains("PUT the OCI index"))
            .unwrap();
        assert!(
            last_push < first_publish,
            "every push of every package comes first"
        );
    }

    #[test]
    fn each_platform_builds_and_pushes_on_its_own_engine() {
        let mut config = sample_config("");
        config.engine.builder = Some("fleet".into());
        let config = config.with_platforms_resolved();
        let mut inputs = inputs(true);
        inputs.builder = Builder::Buildx;
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let mut plan = Plan::new(&config, &inputs).unwrap();
        // As if linux/arm64's table named a context: the plan carries it to every step.
        let engine = EngineTarget {
            context: Some("pi4".into()),
            builder: Some("fleet".into()),
        };
        let index = plan
            .platforms
            .iter()
            .position(|p| p.platform == arm64)
            .unwrap();
        plan.platforms[index].engine = engine.clone();
        plan.platforms[index].image.engine = engine.clone();
        plan.platforms[index].push.as_mut().unwrap().engine = engine;
        let lines = lines(&plan);
        assert!(lines.iter().any(|l| l.starts_with("[linux/arm64] ") && l.contains("docker --context pi4 buildx build --load --builder fleet --platform linux/arm64")), "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("[linux/arm64] docker --context pi4 image save ")),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l.starts_with("[linux/amd64, linux/arm/v7] ") && l.contains("docker buildx bake --load --file target/multiarch/hello/bake.json --builder fleet")), "{lines:#?}");
        inputs.builder = Builder::Legacy;
        let message = crate::diagnostic::format_error(&Plan::new(&config, &inputs).unwrap_err());
        assert!(
            message.contains(
                "the buildx builder `fleet` is configured, and this docker client has no buildx"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_release_names_every_platform_and_tag_and_each_platforms_own_tags() {
        let plan = push_plan();
        assert_eq!(plan.pushes().count(), 3);
        let [release] = plan.releases.as_slice() else {
            panic!("one package, one release: {:#?}", plan.releases)
        };
        let lists: Vec<String> = release.lists().iter().map(ToString::to_string).collect();
        assert_eq!(
            lists,
            ["127.0.0.1:5000/hello:0.1.0", "127.0.0.1:5000/hello:latest"]
        );
        assert!(release.insecure);
        let platforms: Vec<String> = release.platforms.iter().map(|p| p.name()).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        let arm: Vec<String> = release
            .platform_tags(release.platforms[2])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            arm,
            [
                "127.0.0.1:5000/hello:arm32v7-0.1.0",
                "127.0.0.1:5000/hello:arm32v7-latest"
            ]
        );
        let mut by_digest = inputs(true);
        by_digest.publish = false;
        let plan = Plan::new(&sample_config(""), &by_digest).unwrap();
        assert_eq!(plan.pushes().count(), 3);
        assert!(plan.releases.is_empty());
    }

    #[test]
    fn buildkit_builds_every_platform_in_one_bake_unless_a_network_is_set() {
        let mut inputs = inputs(false);
        inputs.builder = Builder::Buildx;
        let plan = Plan::new(&sample_config(""), &inputs).unwrap();
        assert!(plan.pushes().next().is_none() && plan.releases.is_empty());
        let lines = lines(&plan);
        assert!(lines.contains(&"[linux/amd64, linux/arm64, linux/arm/v7] BUILDX_GIT_INFO=0 SOURCE_DATE_EPOCH=1795827600 docker buildx bake --load --file target/multiarch/hello/bake.json --provenance=false --sbom=false".to_owned()), "{lines:#?}");
        assert!(!lines.iter().any(|l| l.contains("docker image save")));
        let mut config = sample_config("");
        config.network = Network::None;
        config.provenance = Provenance::Max;
        let lines = super::tests::lines(&Plan::new(&config, &inputs).unwrap());
        assert!(
            lines.iter().any(|l| l.starts_with("[linux/arm64] BUILDX_GIT_INFO=0 SOURCE_DATE_EPOCH=1795827600 docker buildx build --load --platform linux/arm64 --network none --provenance=mode=max --sbom=false ")),
            "{lines:#?}"
        );
    }

    #[test]
    fn attestations_need_buildkit() {
        let mut config = sample_config("");
        config.sbom = Sbom::BuildKit;
        let message =
            crate::diagnostic::format_error(&Plan::new(&config, &inputs(true)).unwrap_err());
        assert!(
            message.starts_with("error: sbom = \"buildkit\" needs BuildKit"),
            "{message}"
        );
        let mut buildkit = inputs(true);
        buildkit.builder = Builder::Buildx;
        let plan = Plan::new(&config, &buildkit).unwrap();
        assert!(plan.platforms[0].image.sbom);
        // A plain-HTTP registry off loopback keeps them: publishing is the registry API's.
        config.image =
            Some(crate::config::image_ref::ImageRef::parse("registry.lan:5000/hello").unwrap());
        config.insecure_registry = true;
        let plan = Plan::new(&config, &buildkit).unwrap();
        assert!(plan.platforms[0].image.sbom);
    }

    #[test]
    fn push_without_image_is_an_error() {
        let mut config = sample_config("");
        config.image = None;
        let message = format!("{:#}", Plan::new(&config, &inputs(true)).unwrap_err());
        assert!(
            message.starts_with("--push needs an image repository"),
            "{message}"
        );
        assert!(Plan::new(&config, &inputs(false)).is_ok());
    }

    /// A config whose template has foreign `RUN` steps and uses `qemu`.
    pub(crate) fn emulated_config(copy: QemuCopy) -> Config {
        let dir =
            std::env::temp_dir().join(format!("multiarch-plan-{}-{copy:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let template = dir.join("Dockerfile.j2");
        std::fs::write(&template, "FROM {{ base }}\n{% if qemu %}COPY {{ qemu }} {{ qemu_interpreter }}\n{% endif %}RUN echo {{ uname_m }}\n").unwrap();
        let mut config = sample_config("");
        config.dockerfile = template;
        config.qemu.copy = copy;
        config
    }

    pub(crate) fn handler(arch: &str, flags: &str) -> Handler {
        let (magic, machine) = match arch {
            "aarch64" => ("7f454c460201010000000000000000000200b700", "aarch64"),
            _ => ("7f454c4601010100000000000000000002002800", "arm"),
        };
        let text = format!("enabled\ninterpreter /usr/libexec/qemu-binfmt/{machine}-binfmt-P\nflags: {flags}\noffset 0\nmagic {magic}\nmask ffffffffffffff00fffffffffffffffffeffffff\n");
        Handler::parse(&format!("qemu-{arch}"), &text).unwrap()
    }

    fn platform<'a>(plan: &'a Plan, name: &str) -> &'a PlatformPlan {
        plan.platforms
            .iter()
            .find(|p| p.platform.name() == name)
            .unwrap()
    }

    fn rendered(plan: &Plan, name: &str) -> String {
        platform(plan, name)
            .context
            .iter()
            .find_map(|s| match s {
                ContextStep::Render { contents, .. } => Some(contents.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn stages_qemu(plan: &Plan, name: &str) -> bool {
        platform(plan, name)
            .staging
            .iter()
            .any(|s| matches!(s, StageStep::Qemu { .. }))
    }

    #[test]
    fn qemu_is_copied_only_where_the_handler_lacks_the_fix_binary_flag() {
        let mut inputs = inputs(false);
        inputs.handlers = vec![handler("aarch64", "POF"), handler("arm", "PO")];
        let plan = Plan::new(&emulated_config(QemuCopy::Auto), &inputs).unwrap();
        assert!(!stages_qemu(&plan, "linux/arm64") && !stages_qemu(&plan, "linux/amd64"));
        assert!(stages_qemu(&plan, "linux/arm/v7"));
        assert_eq!(
            rendered(&plan, "linux/arm64"),
            "FROM scratch\nRUN echo aarch64\n"
        );
        assert_eq!(rendered(&plan, "linux/arm/v7"), "FROM scratch\nCOPY qemu-arm-static /usr/libexec/qemu-binfmt/arm-binfmt-P\nRUN echo armv7l\n");
        assert!(platform(&plan, "linux/arm64").runs_commands);

        let plan = Plan::new(&emulated_config(QemuCopy::Never), &inputs).unwrap();
        assert!(!stages_qemu(&plan, "linux/arm/v7"));
        let plan = Plan::new(&emulated_config(QemuCopy::Always), &inputs).unwrap();
        assert!(
            stages_qemu(&plan, "linux/arm64")
                && stages_qemu(&plan, "linux/arm/v7")
                && !stages_qemu(&plan, "linux/amd64")
        );
    }

    #[test]
    fn container_builds_compile_in_the_image_from_the_workspace_sources() {
        let mut config = sample_config("");
        config.build = BuildMode::Container;
        let config = config.with_platforms_resolved();
        let plan = Plan::new(&config, &inputs(false)).unwrap();
        let lines = lines(&plan);
        assert!(
            !lines.iter().any(|l| l.contains("cargo build")),
            "{lines:#?}"
        );
        let copy = lines
            .iter()
            .find(|l| l.starts_with("[linux/arm64] copy "))
            .unwrap();
        assert!(
            copy.ends_with(" files from . to target/multiarch/hello/linux-arm64"),
            "{copy}"
        );
        assert!(lines.iter().any(|l| l.starts_with("[linux/arm64] docker build ") && l.ends_with("--file target/multiarch/hello/linux-arm64.Dockerfile target/multiarch/hello/linux-arm64")), "{lines:#?}");
        let ContextStep::Mirror { files, .. } = &plan.platforms[0].context[2] else {
            panic!("{:?}", plan.platforms[0].context)
        };
        assert!(
            files.contains(&PathBuf::from("src/main.rs"))
                && files.contains(&PathBuf::from("Cargo.toml"))
        );
        assert!(!files
            .iter()
            .any(|f| f.starts_with("target") || f.starts_with(".git")));
    }

    #[test]
    fn base_images_are_checked_first_for_every_platform() {
        let mut config = sample_config("");
        config.platforms.truncate(2);
        let template =
            std::env::temp_dir().join(format!("multiarch-plan-bases-{}.j2", std::process::id()));
        std::fs::write(
            &template,
            "FROM alpine:3.20 AS certs\nFROM {{ base }}\nCOPY --from=certs /etc/ssl /etc/ssl\n",
        )
        .unwrap();
        config.dockerfile = template;
        let plan = Plan::new(&config, &inputs(false)).unwrap();
        let lines = lines(&plan);
        assert_eq!(lines[0], "[linux/amd64] check that alpine:3.20 exists for linux/amd64 (docker image inspect, then docker manifest inspect)");
        assert!(
            lines[1].starts_with("[linux/arm64] check that alpine:3.20 exists for linux/arm64"),
            "{}",
            lines[1]
        );
        assert!(
            !lines[2].contains("check that"),
            "scratch needs no check: {}",
            lines[2]
        );
    }
}
