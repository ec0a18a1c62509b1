//! The docker client and engine: found once, probed with a bound, and the executor that
//! builds through it and pushes what it built by digest (saved out of the engine, sent
//! over the registry API).

mod save;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;
use xshell::Shell;

use crate::config::image_ref::ImageRef;
use crate::config::platform::Platform;
use crate::config::{EngineTarget, Network, Provenance};
use crate::diagnostic::diagnostic;
use crate::exec::{Backend, Built, BuiltImage, Pushed, Work};
use crate::plan::{Builder, ImageBuild, Push};
pub(crate) use crate::process::{first_line, Probe};
use crate::process::{Command, CommandFailed};

/// The fix for a daemon that does not answer.
pub(crate) const START_ENGINE: &str =
    "start the engine (`sudo systemctl start docker`, or run `dockerd`), or point DOCKER_HOST at a running one";

/// How long a docker probe may take before it counts as not answering.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The docker client this run uses: found once on PATH, then every step runs this path.
#[derive(Debug, Clone)]
pub(crate) struct Docker {
    pub(crate) program: PathBuf,
    /// The Docker context every command names (`docker --context NAME ...`); `None` is
    /// the client's current engine.
    pub(crate) context: Option<String>,
}

impl Docker {
    /// Finds the client on PATH; the error says how to install it.
    pub(crate) fn find() -> Result<Docker> {
        let program = which::which("docker").map_err(|_| {
            diagnostic(
                "docker is not installed (no `docker` on PATH)",
                "install Docker (https://docs.docker.com/engine/install/), or use --dry-run to see the plan",
            )
        })?;
        Ok(Docker {
            program,
            context: None,
        })
    }

    /// The build front end the client offers: buildx when its plugin answers.
    pub(crate) fn builder(&self) -> Builder {
        match self.probe(&["buildx", "version"]) {
            Probe::Answered(_) => Builder::Buildx,
            _ => Builder::Legacy,
        }
    }

    /// Runs `docker ARGS`, giving up after [`PROBE_TIMEOUT`]; a probe that times out ends
    /// the whole process group it started, so nothing is left running.
    pub(crate) fn probe(&self, args: &[&str]) -> Probe {
        let mut all: Vec<&str> = Vec::new();
        if let Some(context) = &self.context {
            all.extend(["--context", context]);
        }
        all.extend(args);
        Command::new(&self.program, all).probe(PROBE_TIMEOUT)
    }

    /// The same client, talking to `engine`'s context.
    pub(crate) fn on(&self, engine: &EngineTarget) -> Docker {
        Docker {
            program: self.program.clone(),
            context: engine.context.clone(),
        }
    }

    pub(crate) fn command(&self, args: impl IntoIterator<Item = impl Into<String>>) -> Command {
        let context = self
            .context
            .iter()
            .flat_map(|context| ["--context".to_owned(), context.clone()]);
        Command::new(
            &self.program,
            context.chain(args.into_iter().map(Into::into)),
        )
    }
}

/// Where the docker client looks for its daemon, for messages.
pub(crate) fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "the default socket".into())
}

/// What `docker image inspect` reports about an image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ImageFacts {
    pub(crate) id: String,
    pub(crate) size: u64,
    pub(crate) os: String,
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) variant: Option<String>,
    #[serde(default)]
    pub(crate) repo_tags: Vec<String>,
    #[serde(default)]
    pub(crate) config: ImageConfig,
}

/// The part of an image's config this tool reads back: its labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ImageConfig {
    #[serde(default)]
    pub(crate) labels: Option<BTreeMap<String, String>>,
}

impl ImageFacts {
    fn built(self, reused: bool) -> BuiltImage {
        BuiltImage {
            id: self.id,
            size: self.size,
            os: self.os,
            architecture: self.architecture,
            variant: self.variant,
            reused,
        }
    }
}

/// The label that records a digest of everything that goes into an image (its build
/// command, Dockerfile, every context file, its base images' ids), so that a run where
/// none of it changed finds the image it built and builds nothing.
pub(crate) const INPUTS_LABEL: &str = "org.multiarch.inputs";
/// What the dry run shows for that digest: the context is not staged yet.
const INPUTS_PLACEHOLDER: &str = "<digest of the inputs>";

impl ImageFacts {
    /// Parses the JSON array `docker image inspect IMAGE` prints.
    pub(crate) fn parse(json: &str) -> Option<ImageFacts> {
        let images: Vec<ImageFacts> = serde_json::from_str(json).ok()?;
        images.into_iter().next()
    }
}

/// Carries out a plan with the host's cargo and the docker client.
pub(crate) struct DockerBackend {
    pub(crate) docker: Docker,
    /// The workspace root, where every command runs.
    pub(crate) root: PathBuf,
    layout: crate::layout::Layout,
}

impl DockerBackend {
    pub(crate) fn new(docker: Docker, root: &Path, target_dir: &Path) -> DockerBackend {
        DockerBackend {
            docker,
            root: root.to_path_buf(),
            layout: crate::layout::Layout::new(target_dir),
        }
    }

    fn shell(&self) -> Result<Shell> {
        let sh = Shell::new()?;
        sh.change_dir(&self.root);
        Ok(sh)
    }

    /// Runs `command` in the workspace root, turning a failure into a cause and a fix.
    fn run(&self, command: &Command) -> Result<String> {
        command.run(&self.shell()?).map_err(with_help)
    }

    fn build_commands(&self, build: &ImageBuild) -> Vec<Command> {
        let docker = self.docker.on(&build.engine);
        let mut args: Vec<String> = match build.builder {
            Builder::Legacy => vec!["build".into()],
            Builder::Buildx => vec!["buildx".into(), "build".into(), "--load".into()],
        };
        if let Some(builder) = &build.engine.builder {
            args.extend(["--builder".into(), builder.clone()]);
        }
        args.extend(["--platform".into(), build.platform.name()]);
        if build.network != Network::Default {
            args.extend(["--network".into(), build.network.name().into()]);
        }
        if build.builder == Builder::Buildx {
            args.extend(attestation_flags(build));
        }
        for image in &build.tags {
            args.extend(["--tag".into(), image.to_string()]);
        }
        for (key, value) in &build.labels {
            args.extend(["--label".into(), format!("{key}={value}")]);
        }
        args.extend([
            "--file".into(),
            build.dockerfile.display().to_string(),
            build.context.display().to_string(),
        ]);
        let inspect = docker.command(["image".into(), "inspect".into(), build.tags[0].to_string()]);
        let mut build_command = docker.command(args);
        build_command.env = buildkit_env(build);
        vec![build_command, inspect]
    }

    /// One `docker buildx bake` for every build: one BuildKit session, one target per
    /// platform, each with its own Dockerfile, context, tags and labels.
    fn bake_command(&self, builds: &[&ImageBuild]) -> (Command, String) {
        let several_packages = builds.iter().any(|b| b.package != builds[0].package);
        // Target names must be unique across the packages a bake builds.
        let name = |build: &ImageBuild| match several_packages {
            true => format!("{}-{}", build.package, build.platform.slug()),
            false => build.platform.slug(),
        };
        let mut targets = serde_json::Map::new();
        for build in builds {
            let labels: serde_json::Map<String, serde_json::Value> = build
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            targets.insert(
                name(build),
                serde_json::json!({
                    "context": self.root.join(&build.context),
                    "dockerfile": self.root.join(&build.dockerfile),
                    "platforms": [build.platform.name()],
                    "tags": build.tags.iter().map(ImageRef::to_string).collect::<Vec<_>>(),
                    "labels": labels,
                }),
            );
        }
        let names: Vec<String> = builds.iter().map(|b| name(b)).collect();
        let file =
            serde_json::json!({ "group": { "default": { "targets": names } }, "target": targets });
        // One package's bake file, or the run's for several; shown from the workspace root.
        let bake_file = self
            .layout
            .bake_file((!several_packages).then_some(builds[0].package.as_str()));
        let bake_file = bake_file
            .strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .unwrap_or(bake_file);
        let mut args = vec![
            "buildx".to_owned(),
            "bake".into(),
            "--load".into(),
            "--file".into(),
            bake_file.display().to_string(),
        ];
        if let Some(builder) = &builds[0].engine.builder {
            args.extend(["--builder".into(), builder.clone()]);
        }
        args.extend(attestation_flags(builds[0]));
        let mut command = self.docker.on(&builds[0].engine).command(args);
        command.env = buildkit_env(builds[0]);
        (
            command,
            serde_json::to_string_pretty(&file).expect("the bake file serialises"),
        )
    }

    /// Whether `builds` go through one bake: BuildKit builds that share the run-wide
    /// options (bake 0.13 has no per-target network, and attestation flags and
    /// `SOURCE_DATE_EPOCH` apply to the whole bake, so builds that differ go one by one).
    fn bakes(&self, builds: &[&ImageBuild]) -> bool {
        let first = builds[0];
        builds.len() > 1
            && builds.iter().all(|b| {
                b.builder == Builder::Buildx
                    && b.network == Network::Default
                    && b.engine == first.engine
                    && (b.provenance, b.sbom, b.source_date_epoch)
                        == (first.provenance, first.sbom, first.source_date_epoch)
            })
    }

    /// The builds of one engine: one bake when they can share it, else one by one.
    fn build_on_one_engine(&self, builds: &[&ImageBuild], jobs: usize) -> Vec<Result<BuiltImage>> {
        if !self.bakes(builds) {
            return crate::exec::runner::each_in_parallel(builds, jobs, |build| {
                self.build_one(build)
            });
        }
        let (command, file) = self.bake_command(builds);
        let file_at = command
            .args
            .iter()
            .position(|a| a == "--file")
            .expect("bake has --file")
            + 1;
        let bake_file = self.root.join(command.args[file_at].as_str());
        let baked = crate::exec::files::write_if_changed(&bake_file, file.as_bytes())
            .and_then(|()| self.run(&command));
        match baked {
            Ok(_) => self.inspect_all(builds),
            Err(err) => one_failure_for_each(builds.len(), &err),
        }
    }

    /// One `docker image inspect` of the first tag of every build.
    fn inspect_command(&self, builds: &[&ImageBuild]) -> Command {
        let tags = builds.iter().map(|b| b.tags[0].to_string());
        self.docker.on(&builds[0].engine).command(
            ["image".to_owned(), "inspect".to_owned()]
                .into_iter()
                .chain(tags),
        )
    }

    fn inspect(&self, build: &ImageBuild) -> Result<BuiltImage> {
        self.inspect_all(&[build]).remove(0)
    }

    /// What each build produced, read with one `docker image inspect`.
    fn inspect_all(&self, builds: &[&ImageBuild]) -> Vec<Result<BuiltImage>> {
        let inspected = self.run(&self.inspect_command(builds)).and_then(|output| {
            let images: Vec<ImageFacts> = serde_json::from_str(&output)
                .ok()
                .filter(|images: &Vec<ImageFacts>| images.len() == builds.len())
                .ok_or_else(|| anyhow!("cannot read `docker image inspect` output: {output}"))?;
            Ok(images)
        });
        match inspected {
            Ok(images) => images
                .into_iter()
                .map(|facts| Ok(facts.built(false)))
                .collect(),
            Err(err) => one_failure_for_each(builds.len(), &err),
        }
    }

    /// `docker image save` of the image `push` sends, into `archive`.
    fn save_command(&self, push: &Push, archive: &Path) -> Command {
        self.docker.on(&push.engine).command([
            "image".to_owned(),
            "save".to_owned(),
            "--output".to_owned(),
            archive.display().to_string(),
            push.local.to_string(),
        ])
    }
}

fn by_engine(builds: &[&ImageBuild]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&EngineTarget, Vec<usize>)> = Vec::new();
    for (index, build) in builds.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|(engine, _)| *engine == &build.engine)
        {
            Some((_, members)) => members.push(index),
            None => groups.push((&build.engine, vec![index])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// `build` with the inputs label (none when its inputs cannot be pinned).
fn with_inputs_label(build: &ImageBuild, inputs: Option<&str>) -> ImageBuild {
    let mut build = build.clone();
    if let Some(inputs) = inputs {
        build
            .labels
            .push((INPUTS_LABEL.to_owned(), inputs.to_owned()));
    }
    build
}

/// The same failure for each of `count` builds that one command served.
fn one_failure_for_each(count: usize, err: &anyhow::Error) -> Vec<Result<BuiltImage>> {
    let failed = crate::diagnostic::Diagnostic::of(err);
    (0..count)
        .map(|_| {
            Err(crate::diagnostic::diagnostic(
                failed.cause.clone(),
                failed.help.clone(),
            ))
        })
        .collect()
}

/// BuildKit's attestation flags: both are always given, so a default of the builder never
/// adds what the config did not ask for.
fn attestation_flags(build: &ImageBuild) -> [String; 2] {
    let provenance = match build.provenance {
        Provenance::Off => "--provenance=false",
        Provenance::Min => "--provenance=mode=min",
        Provenance::Max => "--provenance=mode=max",
    };
    [provenance.to_owned(), format!("--sbom={}", build.sbom)]
}

/// The environment of a BuildKit build: the commit time as `SOURCE_DATE_EPOCH`, and no
/// git probing by buildx (the tool writes its own OCI labels).
fn buildkit_env(build: &ImageBuild) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if build.builder == Builder::Buildx {
        env.push(("BUILDX_GIT_INFO".to_owned(), "0".to_owned()));
        if let Some(epoch) = build.source_date_epoch {
            env.push(("SOURCE_DATE_EPOCH".to_owned(), epoch.to_string()));
        }
    }
    env
}

impl DockerBackend {
    fn build_one(&self, build: &ImageBuild) -> Result<BuiltImage> {
        let build_command = self.build_commands(build).swap_remove(0);
        self.run(&build_command)?;
        self.inspect(build)
    }

    /// Every build, each engine's on its own (one bake where it can), engines in parallel.
    fn build_all(&self, builds: &[&ImageBuild], jobs: usize) -> Vec<Result<BuiltImage>> {
        let groups = by_engine(builds);
        let results = crate::exec::runner::each_in_parallel(&groups, jobs, |group| {
            let group: Vec<&ImageBuild> = group.iter().map(|&i| builds[i]).collect();
            Ok(self.build_on_one_engine(&group, jobs))
        });
        let mut ordered: Vec<Option<Result<BuiltImage>>> = builds.iter().map(|_| None).collect();
        for (group, built) in groups.iter().zip(results) {
            let built = built.expect("a group's builds report one by one");
            for (&index, result) in group.iter().zip(built) {
                ordered[index] = Some(result);
            }
        }
        ordered
            .into_iter()
            .map(|r| r.expect("every build belongs to a group"))
            .collect()
    }

    /// The digest of everything that goes into `build`, or `None` when something cannot
    /// be pinned (a base image the engine does not have, a `FROM` with a variable): such a
    /// build always runs.
    fn inputs_digest(&self, build: &ImageBuild) -> Option<String> {
        let mut material = self.build_commands(build)[0].to_string().into_bytes();
        let dockerfile = std::fs::read_to_string(self.root.join(&build.dockerfile)).ok()?;
        material.extend(b"\0");
        material.extend(dockerfile.as_bytes());
        let dynamic_from = dockerfile.lines().any(|line| {
            let line = line.trim_start();
            line.get(..5)
                .is_some_and(|w| w.eq_ignore_ascii_case("FROM "))
                && line.contains('$')
        });
        if dynamic_from {
            return None;
        }
        let docker = self.docker.on(&build.engine);
        for base in crate::plan::dockerfile::from_images(&dockerfile) {
            match docker.probe(&["image", "inspect", "--format", "{{.Id}}", &base]) {
                Probe::Answered(id) => material.extend(format!("\0{base}={id}").as_bytes()),
                _ => return None,
            }
        }
        material.extend(crate::exec::files::context_material(
            &self.root.join(&build.context),
        )?);
        Some(crate::digest::Digest::of(&material).to_string())
    }

    /// The builds whose image is already there with these inputs, found with one
    /// `docker image inspect` per engine: what each is, or `None` to build it.
    fn unchanged(
        &self,
        builds: &[&ImageBuild],
        inputs: &[Option<String>],
    ) -> Vec<Option<BuiltImage>> {
        let mut found: Vec<Option<BuiltImage>> = builds.iter().map(|_| None).collect();
        for group in by_engine(builds) {
            let group: Vec<usize> = group.into_iter().filter(|&i| inputs[i].is_some()).collect();
            if group.is_empty() {
                continue;
            }
            let wanted: Vec<&ImageBuild> = group.iter().map(|&i| builds[i]).collect();
            // Missing tags make the command fail; what it found is still on stdout.
            let output = match self.inspect_command(&wanted).run(&match self.shell() {
                Ok(sh) => sh,
                Err(_) => continue,
            }) {
                Ok(output) => output,
                Err(err) => err
                    .downcast_ref::<CommandFailed>()
                    .map(|f| f.stdout.clone())
                    .unwrap_or_default(),
            };
            let images: Vec<ImageFacts> = serde_json::from_str(&output).unwrap_or_default();
            for &index in &group {
                // Every tag must still name the image: a tag moved elsewhere is rebuilt.
                let image = images.iter().find(|image| {
                    builds[index].tags.iter().all(|tag| {
                        image
                            .repo_tags
                            .iter()
                            .any(|reported| tag.is_reported_as(reported))
                    })
                });
                let labelled =
                    image.and_then(|image| image.config.labels.as_ref()?.get(INPUTS_LABEL));
                if labelled.is_some() && labelled == inputs[index].as_ref() {
                    found[index] = image.cloned().map(|facts| facts.built(true));
                }
            }
        }
        found
    }
}

/// The engine keeps what it built: nothing travels from a build to its push.
impl Backend for DockerBackend {
    type Image = ();

    fn describe(&self, work: Work<'_>) -> Vec<String> {
        let commands = match work {
            Work::BaseImage(base) => {
                let (platform, image) = (base.platform, &base.image);
                return vec![format!("check that {image} exists for {platform} (docker image inspect, then docker manifest inspect)")];
            }
            Work::Image(build) => {
                self.build_commands(&with_inputs_label(build, Some(INPUTS_PLACEHOLDER)))
            }
            Work::Push(push) => {
                let archive = self
                    .layout
                    .saved_image(&push.package, &push.platform.slug());
                let archive = archive.strip_prefix(&self.root).unwrap_or(&archive);
                return vec![
                    self.save_command(push, archive).to_string(),
                    format!(
                        "upload its blobs, then PUT its manifest into {} by digest (registry API)",
                        push.repository
                    ),
                ];
            }
        };
        commands.iter().map(Command::to_string).collect()
    }

    fn describe_images(&self, builds: &[&ImageBuild]) -> Vec<(String, String)> {
        let labelled: Vec<ImageBuild> = builds
            .iter()
            .map(|build| with_inputs_label(build, Some(INPUTS_PLACEHOLDER)))
            .collect();
        let builds: Vec<&ImageBuild> = labelled.iter().collect();
        let builds = builds.as_slice();
        let mut lines = Vec::new();
        for group in by_engine(builds) {
            let group: Vec<&ImageBuild> = group.iter().map(|&i| builds[i]).collect();
            if !self.bakes(&group) {
                for build in &group {
                    let scope = build.platform.name();
                    lines.extend(
                        self.build_commands(build)
                            .into_iter()
                            .map(|c| (scope.clone(), c.to_string())),
                    );
                }
                continue;
            }
            let all: Vec<String> = group.iter().map(|b| b.platform.name()).collect();
            let all = all.join(", ");
            lines.push((all.clone(), self.bake_command(&group).0.to_string()));
            lines.push((all, self.inspect_command(&group).to_string()));
        }
        lines
    }

    fn build_image(&self, build: &ImageBuild) -> Result<Built<()>> {
        self.build_one(build)
            .map(|facts| Built { facts, image: () })
    }

    /// Builds what changed: each build's inputs are hashed and labelled; an image already
    /// there with the same label is reused as it is.
    fn build_images(&self, builds: &[&ImageBuild], jobs: usize) -> Vec<Result<Built<()>>> {
        let inputs: Vec<Option<String>> =
            crate::exec::runner::each_in_parallel(builds, jobs, |build| {
                Ok(self.inputs_digest(build))
            })
            .into_iter()
            .map(|digest| digest.ok().flatten())
            .collect();
        let mut results: Vec<Option<Result<BuiltImage>>> = self
            .unchanged(builds, &inputs)
            .into_iter()
            .map(|found| found.map(Ok))
            .collect();
        let labelled: Vec<ImageBuild> = builds
            .iter()
            .zip(&inputs)
            .zip(&results)
            .filter(|(_, result)| result.is_none())
            .map(|((build, inputs), _)| with_inputs_label(build, inputs.as_deref()))
            .collect();
        let pending: Vec<&ImageBuild> = labelled.iter().collect();
        let mut built = self.build_all(&pending, jobs).into_iter();
        for result in results.iter_mut().filter(|r| r.is_none()) {
            *result = built.next();
        }
        results
            .into_iter()
            .map(|r| {
                r.expect("every build ran or was reused")
                    .map(|facts| Built { facts, image: () })
            })
            .collect()
    }

    /// The local engine's copy when it has the base for `platform` (`docker image save`,
    /// read as it streams from disk), else the base's registry, as the OCI backend reads it.
    fn base_rootfs(
        &self,
        base: &str,
        platform: &'static Platform,
    ) -> Result<crate::rootfs::Rootfs> {
        let archive = crate::layout::temporary_beside(&self.layout.root().join("base.tar"));
        let scratch = crate::layout::temporary_beside(&self.layout.root().join("libc"));
        std::fs::create_dir_all(self.layout.root())?;
        let save = self.docker.command([
            "image".to_owned(),
            "save".to_owned(),
            "--output".to_owned(),
            archive.display().to_string(),
            base.to_owned(),
        ]);
        let local = self
            .run(&save)
            .and_then(|_| crate::rootfs::from_image_archive(&archive, &scratch));
        let _ = std::fs::remove_file(&archive);
        if let Ok((rootfs, config)) = local {
            let field = |key: &str| config[key].as_str().unwrap_or_default().to_owned();
            let variant = config["variant"].as_str();
            if platform.matches(&field("os"), &field("architecture"), variant) {
                return Ok(rootfs);
            }
        }
        let target_dir = self.layout.target_dir();
        let deadline = crate::backend::oci::blobs::base_deadline()?;
        let registry = crate::backend::oci::OciBackend::new(
            &self.root,
            target_dir,
            None,
            (crate::backend::oci::blobs::BaseLayers::OnDemand, deadline),
        );
        registry.base_rootfs(base, platform)
    }

    /// Saves the image out of its engine, then sends it over the registry API by digest:
    /// no tag is pushed, and the engine's own index (with attestations) goes as it is.
    fn push(&self, push: &Push, _: &()) -> Result<Pushed> {
        let archive = self
            .layout
            .saved_image(&push.package, &push.platform.slug());
        if let Some(parent) = archive.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let registry = crate::registry::Registry::of(&push.repository, push.insecure)?;
        let pushed = self
            .run(&self.save_command(push, &archive))
            .and_then(|_| {
                save::push(
                    &archive,
                    &registry,
                    &self.layout.blob_store(),
                    &self.layout.gzipped_layers(),
                )
            })
            .with_context(|| format!("pushing {} to {}", push.local, push.repository));
        let _ = std::fs::remove_file(&archive);
        pushed
    }
}

/// Adds the fix to a failed command: what its output says went wrong.
/// The SBOM scanner image a failed BuildKit build could not resolve.
fn sbom_scanner(stderr: &str) -> Option<&str> {
    stderr
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("docker-image://"))
        .find(|image| image.contains("buildkit-syft-scanner"))
        .map(|image| image.trim_end_matches(':'))
}

fn with_help(mut err: anyhow::Error) -> anyhow::Error {
    let Some(failed) = err.downcast_mut::<CommandFailed>() else {
        return err;
    };
    let lower = format!("{}\n{}", failed.stdout, failed.stderr).to_ascii_lowercase();
    let help = if lower.contains("linking with `") || lower.contains("linker `") {
        "the platform needs a working linker: set `linker` in its [package.metadata.multiarch.platform.\"...\"] table (rust-lld for musl targets, or the cross gcc)".to_owned()
    } else if lower.contains("can't find crate for `std`")
        || lower.contains("target may not be installed")
    {
        "install the Rust target with `rustup target add <target>`".to_owned()
    } else if lower.contains("no matching manifest")
        || lower.contains("manifest unknown")
        || lower.contains("pull access denied")
    {
        "the base image is not published for this platform: choose another base in `vars` for it"
            .to_owned()
    } else if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
    {
        let registry = failed
            .command
            .rsplit(' ')
            .find_map(|word| ImageRef::parse(word).ok())
            .map_or("docker.io".to_owned(), |image| {
                image.registry_host().to_owned()
            });
        failed.refused = true;
        format!("log in to {registry} first: `docker login {registry}` (credentials stay in Docker's own store)")
    } else if let Some(scanner) = sbom_scanner(&failed.stderr) {
        format!("BuildKit's SBOM scanner `{scanner}` could not be fetched: `docker pull {scanner}` where its registry is reachable (or mirror it), or set `sbom = false`")
    } else if lower.contains("network bridge not found") {
        "this engine has no bridge network for RUN steps: set `network = \"none\"` (or \"host\") in [package.metadata.multiarch], or pass --network none".to_owned()
    } else if lower.contains("cannot connect to the docker daemon") {
        START_ENGINE.to_owned()
    } else {
        "read the command's output above, fix the cause, and run again; finished steps are cached"
            .to_owned()
    };
    failed.help = Some(help);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inspect_output() {
        let facts = ImageFacts::parse(r#"[{"Id": "sha256:abc", "Size": 1234, "Os": "linux", "Architecture": "arm", "Variant": "v7", "Config": {}}]"#).unwrap();
        assert_eq!(facts.variant.as_deref(), Some("v7"));
        assert_eq!(facts.size, 1234);
        let facts = ImageFacts::parse(
            r#"[{"Id": "sha256:abc", "Size": 99, "Os": "linux", "Architecture": "amd64"}]"#,
        )
        .unwrap();
        assert_eq!(
            (facts.architecture.as_str(), facts.variant),
            ("amd64", None)
        );
        assert_eq!(ImageFacts::parse("garbage"), None);
    }

    #[test]
    fn refused_pushes_name_the_registry_to_log_in_to() {
        let failed = CommandFailed {
            command: "docker push ghcr.io/acme/hello:arm64v8-1.0.0".into(),
            status: "exit status: 1".into(),
            stdout: String::new(),
            stderr: "unauthorized: authentication required".into(),
            help: None,
            refused: false,
        };
        let message = crate::diagnostic::format_error(&with_help(failed.into()));
        assert!(message.ends_with("help: log in to ghcr.io first: `docker login ghcr.io` (credentials stay in Docker's own store)"), "{message}");
    }

    #[test]
    fn a_probe_that_times_out_ends_its_process() {
        let started = std::time::Instant::now();
        let timeout = Duration::from_millis(200);
        let probe = Command::new("sleep", ["30"]).probe(timeout);
        assert_eq!(probe, Probe::TimedOut(timeout));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            Command::new("echo", ["hi"]).probe(PROBE_TIMEOUT),
            Probe::Answered("hi".into())
        );
    }
}
