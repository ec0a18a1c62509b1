//! The plan: every step of a run (render, cargo build, docker build/push, manifest) as data.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::binfmt::{self, Emulation, Handler};
use crate::config::{BuildMode, Config, PlatformConfig, QemuConfig, QemuCopy};
use crate::platform::Platform;
use crate::template::{self, DockerfileContext, TagContext, Template};

/// A process to run: a program and its arguments, never a shell string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
}

impl Command {
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Command {
        Command {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.args {
            match arg.strip_prefix(PUSHED_DIGEST) {
                Some(image) => write!(f, " {}@<digest pushed as {image}>", repository_of(image))?,
                None => write!(f, " {}", shell_quote(arg))?,
            }
        }
        Ok(())
    }
}

/// Marks an argument that the runner replaces with `<repository>@<digest>` of what
/// `docker push` pushed as the image that follows, once the push has happened.
pub const PUSHED_DIGEST: &str = "pushed-digest-of:";

/// The placeholder for the digest pushed as `image`.
pub fn pushed_digest_of(image: &str) -> String {
    format!("{PUSHED_DIGEST}{image}")
}

/// An image reference without its tag: `127.0.0.1:5000/hello:1.0` gives `127.0.0.1:5000/hello`.
pub fn repository_of(image: &str) -> &str {
    match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => image,
    }
}

/// Quotes a word for display the way a POSIX shell would read it back.
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What the runner reads from a command's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Success is all that matters.
    Success,
    /// `docker image inspect` output, checked against the platform the image must have.
    Image,
    /// A `docker push` or `docker manifest push` that prints the pushed digest.
    Digest,
    /// Success, or a "no such manifest" failure, which means there was nothing to remove.
    MissingOk,
}

/// One unit of work. Paths are relative to the workspace root unless absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create a build context directory and remove every file in it not listed in `keep`.
    Context {
        dir: PathBuf,
        keep: Vec<PathBuf>,
    },
    /// Write a file atomically, skipping the write when it is already identical.
    Write {
        path: PathBuf,
        contents: String,
    },
    /// Copy a file, skipping the write when it is already identical.
    Copy {
        from: PathBuf,
        to: PathBuf,
    },
    /// Copy `files` (relative paths) from the directory `from` into `to`, each when changed.
    Mirror {
        from: PathBuf,
        to: PathBuf,
        files: Vec<PathBuf>,
    },
    /// Put the static QEMU for `qemu_arch` at `to`, from the cache (fetched when missing)
    /// or PATH, as the config's `qemu.source` says.
    StageQemu {
        qemu_arch: &'static str,
        to: PathBuf,
    },
    Run {
        command: Command,
        expect: Expect,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The short name progress shows, such as `cargo build`.
    pub label: &'static str,
    pub action: Action,
}

/// A platform's sequence of steps; jobs for different platforms may run in parallel.
#[derive(Debug, Clone)]
pub struct Job {
    pub platform: &'static Platform,
    /// The per-platform image refs, `<repo>:<docker_arch>-<tag>`, one per tag.
    pub images: Vec<String>,
    /// The build context directory.
    pub context: PathBuf,
    pub steps: Vec<Step>,
}

/// One multi-arch tag: its manifest list steps.
#[derive(Debug, Clone)]
pub struct ManifestJob {
    pub list: String,
    pub steps: Vec<Step>,
}

/// Which `docker build` front end the engine offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// The classic builder behind `docker build` (no buildx plugin).
    Legacy,
    /// `docker buildx build --load`.
    Buildx,
}

/// Facts about the run that are not in the config.
#[derive(Debug, Clone)]
pub struct PlanInputs {
    pub push: bool,
    pub builder: Builder,
    /// Full commit hash of the workspace checkout, when it is one.
    pub git_revision: Option<String>,
    /// Commit time (RFC 3339), used as a reproducible `created` label.
    pub git_time: Option<String>,
    /// The host's binfmt handlers, which decide how foreign `RUN` steps run.
    pub handlers: Vec<Handler>,
}

/// Every step of a run, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub package: String,
    pub root: PathBuf,
    /// Base images each platform needs, checked before anything else.
    pub checks: Vec<(&'static Platform, String)>,
    /// Build contexts, written before anything is compiled.
    pub contexts: Vec<(&'static Platform, Vec<Step>)>,
    /// Where staged QEMU binaries come from.
    pub qemu: QemuConfig,
    pub builds: Vec<Job>,
    pub pushes: Vec<Job>,
    pub manifests: Vec<ManifestJob>,
}

const DOCKER: &str = "docker";

/// The label of cargo steps, which the runner serialises on one lock.
pub const CARGO_BUILD: &str = "cargo build";

impl Plan {
    /// Computes the plan; templates are rendered here, so a template error writes nothing.
    pub fn new(config: &Config, inputs: &PlanInputs) -> Result<Plan> {
        let repository = config.repository();
        if inputs.push && config.image.is_none() {
            bail!(
                "--push needs an image repository, and package `{}` configures none\n\
                 help: set `image = \"registry.example.com/team/{}\"` in [package.metadata.multiarch] of {}, or pass --image REPO",
                config.package.name,
                config.package.name,
                config.package.manifest_path.display()
            );
        }
        let short_sha = inputs
            .git_revision
            .as_ref()
            .map(|rev| rev.chars().take(7).collect());
        let tags = template::render_tags(
            &config.tags,
            &TagContext::new(&config.package.version, short_sha),
            config.semver,
        )?;
        let template = Template::load(&config.dockerfile, &config.workspace_root)?;
        let root = &config.workspace_root;
        let shown = |path: &Path| path.strip_prefix(root).unwrap_or(path).to_path_buf();
        let labels = labels(config, inputs);

        let mut plan = Plan {
            package: config.package.name.clone(),
            root: root.clone(),
            checks: Vec::new(),
            contexts: Vec::new(),
            qemu: config.qemu.clone(),
            builds: Vec::new(),
            pushes: Vec::new(),
            manifests: Vec::new(),
        };
        // Container builds see the workspace sources; they are listed once for all platforms.
        let sources = match config.build {
            BuildMode::Cross => Vec::new(),
            BuildMode::Container => crate::context::source_files(root, &config.target_dir)?,
        };
        for &platform in &config.platforms {
            let platform_config = config.platform(platform);
            let prepared = prepare_platform(config, &platform_config, &template, inputs)?;
            for image in crate::base_images::from_images(&prepared.dockerfile) {
                plan.checks.push((platform, image));
            }
            let dir = shown(&prepared.context);
            let images: Vec<String> = tags
                .iter()
                .map(|tag| format!("{repository}:{}-{tag}", platform.docker_arch))
                .collect();

            // The files each context holds; anything else in it is stale and removed.
            let mut keep: Vec<PathBuf> = match config.build {
                BuildMode::Cross => std::iter::once(PathBuf::from("Dockerfile"))
                    .chain(config.bins.iter().map(PathBuf::from))
                    .collect(),
                BuildMode::Container => sources.clone(),
            };
            keep.extend(config.files.iter().cloned());
            keep.extend(prepared.qemu.iter().map(PathBuf::from));
            // Container builds keep the Dockerfile beside the context, so a workspace
            // `Dockerfile` and `COPY . .` are unaffected.
            let dockerfile = match config.build {
                BuildMode::Cross => dir.join("Dockerfile"),
                BuildMode::Container => dir.with_extension("Dockerfile"),
            };
            let step = |label, action| Step { label, action };
            let mut contexts = vec![
                step(
                    "context",
                    Action::Context {
                        dir: dir.clone(),
                        keep,
                    },
                ),
                step(
                    "render",
                    Action::Write {
                        path: dockerfile.clone(),
                        contents: prepared.dockerfile,
                    },
                ),
            ];
            let mut steps = Vec::new();
            match config.build {
                BuildMode::Cross => {
                    steps.push(cargo_build(config, &platform_config));
                    let release_dir = shown(&config.target_dir)
                        .join(&platform_config.target)
                        .join("release");
                    for bin in &config.bins {
                        steps.push(step(
                            "stage",
                            Action::Copy {
                                from: release_dir.join(bin),
                                to: dir.join(bin),
                            },
                        ));
                    }
                }
                BuildMode::Container => {
                    contexts.push(step(
                        "sources",
                        Action::Mirror {
                            from: PathBuf::new(),
                            to: dir.clone(),
                            files: sources.clone(),
                        },
                    ));
                }
            }
            if !config.files.is_empty() {
                contexts.push(step(
                    "files",
                    Action::Mirror {
                        from: PathBuf::new(),
                        to: dir.clone(),
                        files: config.files.clone(),
                    },
                ));
            }
            if let Some(qemu) = &prepared.qemu {
                steps.push(step(
                    "qemu",
                    Action::StageQemu {
                        qemu_arch: platform.qemu_arch,
                        to: dir.join(qemu),
                    },
                ));
            }
            steps.push(docker_build(
                inputs.builder,
                platform,
                &images,
                &labels,
                &dockerfile,
                &dir,
            ));
            steps.push(Step {
                label: "inspect",
                action: Action::Run {
                    command: Command::new(DOCKER, ["image", "inspect", images[0].as_str()]),
                    expect: Expect::Image,
                },
            });
            plan.contexts.push((platform, contexts));
            plan.builds.push(Job {
                platform,
                images: images.clone(),
                context: dir.clone(),
                steps,
            });

            if inputs.push {
                let steps = images
                    .iter()
                    .map(|image| Step {
                        label: "docker push",
                        action: Action::Run {
                            command: Command::new(DOCKER, ["push", image.as_str()]),
                            expect: Expect::Digest,
                        },
                    })
                    .collect();
                plan.pushes.push(Job {
                    platform,
                    images,
                    context: dir,
                    steps,
                });
            }
        }
        if inputs.push {
            let insecure = (config.insecure_registry || is_loopback_registry(&repository))
                .then_some("--insecure");
            for (index, tag) in tags.iter().enumerate() {
                let list = format!("{repository}:{tag}");
                // Entries name the digests this run pushed, not tags someone could move.
                let entries: Vec<String> = plan
                    .pushes
                    .iter()
                    .map(|job| pushed_digest_of(&job.images[index]))
                    .collect();
                let run = |label, command: Command, expect| Step {
                    label,
                    action: Action::Run { command, expect },
                };
                let mut steps = vec![
                    run(
                        "manifest rm",
                        Command::new(DOCKER, ["manifest", "rm", list.as_str()]),
                        Expect::MissingOk,
                    ),
                    run(
                        "manifest create",
                        Command::new(
                            DOCKER,
                            ["manifest", "create"]
                                .into_iter()
                                .chain(insecure)
                                .chain([list.as_str()])
                                .chain(entries.iter().map(String::as_str)),
                        ),
                        Expect::Success,
                    ),
                ];
                for (job, entry) in plan.pushes.iter().zip(&entries) {
                    let platform = job.platform;
                    let mut args = vec![
                        "manifest",
                        "annotate",
                        "--os",
                        crate::platform::OS,
                        "--arch",
                        platform.arch,
                    ];
                    args.extend(
                        platform
                            .variant
                            .map(|variant| ["--variant", variant])
                            .into_iter()
                            .flatten(),
                    );
                    args.extend([list.as_str(), entry.as_str()]);
                    steps.push(run(
                        "manifest annotate",
                        Command::new(DOCKER, args),
                        Expect::Success,
                    ));
                }
                steps.push(run(
                    "manifest push",
                    Command::new(
                        DOCKER,
                        ["manifest", "push", "--purge"]
                            .into_iter()
                            .chain(insecure)
                            .chain([list.as_str()]),
                    ),
                    Expect::Digest,
                ));
                plan.manifests.push(ManifestJob { list, steps });
            }
        }
        Ok(plan)
    }

    /// Every step, in the order a run with one job executes them, as `[scope] command` lines.
    pub fn display_steps(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (platform, image) in &self.checks {
            lines.push(format!("[{platform}] check that {image} exists for {platform} (docker image inspect, then docker manifest inspect)"));
        }
        for (platform, steps) in &self.contexts {
            for step in steps {
                lines.push(format!("[{platform}] {}", describe(step)));
            }
        }
        for job in self.builds.iter().chain(&self.pushes) {
            for step in &job.steps {
                lines.push(format!("[{}] {}", job.platform, describe(step)));
            }
        }
        for manifest in &self.manifests {
            for step in &manifest.steps {
                lines.push(format!("[{}] {}", manifest.list, describe(step)));
            }
        }
        lines
    }
}

fn describe(step: &Step) -> String {
    let path = |p: &Path| shell_quote(&p.display().to_string());
    match &step.action {
        Action::Context { dir, keep } => format!(
            "prepare {} (the {} planned files stay, all else goes)",
            path(dir),
            keep.len()
        ),
        Action::Write { path: file, .. } => format!("render {}", path(file)),
        Action::Copy { from, to } => format!("cp {} {}", path(from), path(to)),
        Action::Mirror { from, to, files } => {
            let from = if from.as_os_str().is_empty() {
                Path::new(".")
            } else {
                from
            };
            format!(
                "copy {} files from {} to {}",
                files.len(),
                path(from),
                path(to)
            )
        }
        Action::StageQemu { qemu_arch, to } => format!(
            "stage {} at {}",
            crate::qemu::binary_name(qemu_arch),
            path(to)
        ),
        Action::Run { command, .. } => command.to_string(),
    }
}

/// A platform's rendered Dockerfile and whether QEMU goes into its context.
struct Prepared {
    context: PathBuf,
    dockerfile: String,
    qemu: Option<String>,
}

/// Renders the Dockerfile for one platform; stops when it needs emulation this host lacks.
fn prepare_platform(
    config: &Config,
    platform_config: &PlatformConfig,
    template: &Template,
    inputs: &PlanInputs,
) -> Result<Prepared> {
    let platform = platform_config.platform;
    let rendered = render_platform(config, platform_config, template, &inputs.handlers)?;
    if rendered.emulation == Emulation::Missing && has_run_steps(&rendered.dockerfile) {
        bail!(
            "the Dockerfile for {platform} has RUN steps, and no binfmt handler on this host runs {} binaries\n\
             help: register QEMU for the configured platforms with `sudo cargo xtask setup`",
            platform.qemu_arch
        );
    }
    Ok(Prepared {
        context: template::context_dir(&config.target_dir, &config.package.name, platform),
        dockerfile: rendered.dockerfile,
        qemu: rendered.qemu,
    })
}

/// A platform's Dockerfile as rendered for this host.
pub struct Rendered {
    pub dockerfile: String,
    /// The QEMU binary's name in the context, when one is copied.
    pub qemu: Option<String>,
    pub emulation: Emulation,
}

/// Renders the Dockerfile for one platform, deciding from the host's binfmt handler and
/// `qemu.copy` whether QEMU is copied into the context.
pub fn render_platform(
    config: &Config,
    platform_config: &PlatformConfig,
    template: &Template,
    handlers: &[Handler],
) -> Result<Rendered> {
    let platform = platform_config.platform;
    let emulation = binfmt::emulation(handlers, platform);
    let copy = match (config.qemu.copy, &emulation) {
        (_, Emulation::Native) | (QemuCopy::Never, _) | (QemuCopy::Auto, Emulation::Missing) => {
            false
        }
        (QemuCopy::Always, _) => true,
        (QemuCopy::Auto, Emulation::Handler { fix_binary, .. }) => !fix_binary,
    };
    let mut context = DockerfileContext::new(
        platform,
        &platform_config.target,
        &config.bins,
        &config.package.name,
        &config.package.version,
        &platform_config.vars,
    );
    if let Emulation::Handler { interpreter, .. } = &emulation {
        context.qemu_interpreter = interpreter.display().to_string();
    }
    context.qemu = copy.then(|| crate::qemu::binary_name(platform.qemu_arch));
    let dockerfile = template
        .render(&context)
        .with_context(|| format!("rendering the Dockerfile for {platform}"))?;
    Ok(Rendered {
        dockerfile,
        qemu: context.qemu,
        emulation,
    })
}

/// Whether a Dockerfile runs commands while building, which for a foreign platform needs
/// emulation.
pub fn has_run_steps(dockerfile: &str) -> bool {
    dockerfile.lines().any(|line| {
        line.trim_start()
            .get(..4)
            .is_some_and(|word| word.eq_ignore_ascii_case("RUN "))
    })
}

fn cargo_build(config: &Config, platform: &PlatformConfig) -> Step {
    let target = &platform.target;
    let mut args: Vec<String> = [
        "build",
        "--release",
        "--package",
        &config.package.name,
        "--target",
        target,
    ]
    .map(String::from)
    .to_vec();
    for bin in &config.bins {
        args.extend(["--bin".to_owned(), bin.clone()]);
    }
    // `--config` scopes the linker and flags to this one invocation and this one target.
    // JSON strings and arrays of strings are valid TOML values.
    if let Some(linker) = &platform.linker {
        args.extend([
            "--config".to_owned(),
            format!("target.{target}.linker={}", toml_value(linker)),
        ]);
    }
    if !platform.rustflags.is_empty() {
        args.extend([
            "--config".to_owned(),
            format!(
                "target.{target}.rustflags={}",
                toml_value(&platform.rustflags)
            ),
        ]);
    }
    let cargo = crate::workspace::cargo_program();
    Step {
        label: CARGO_BUILD,
        action: Action::Run {
            command: Command::new(cargo.display().to_string(), args),
            expect: Expect::Success,
        },
    }
}

fn toml_value(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("strings serialise")
}

fn docker_build(
    builder: Builder,
    platform: &Platform,
    images: &[String],
    labels: &[(String, String)],
    dockerfile: &Path,
    dir: &Path,
) -> Step {
    let mut args: Vec<String> = match builder {
        Builder::Legacy => vec!["build".into()],
        Builder::Buildx => vec!["buildx".into(), "build".into(), "--load".into()],
    };
    args.extend(["--platform".into(), platform.name()]);
    for image in images {
        args.extend(["--tag".into(), image.clone()]);
    }
    for (key, value) in labels {
        args.extend(["--label".into(), format!("{key}={value}")]);
    }
    args.extend([
        "--file".into(),
        dockerfile.display().to_string(),
        dir.display().to_string(),
    ]);
    Step {
        label: "docker build",
        action: Action::Run {
            command: Command::new(DOCKER, args),
            expect: Expect::Success,
        },
    }
}

/// OCI labels from Cargo metadata and git, then the config's own labels.
fn labels(config: &Config, inputs: &PlanInputs) -> Vec<(String, String)> {
    let package = &config.package;
    let oci = |key: &str| format!("org.opencontainers.image.{key}");
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(oci("title"), Some(package.name.clone()));
    labels.insert(oci("version"), Some(package.version.clone()));
    labels.insert(oci("description"), package.description.clone());
    labels.insert(oci("licenses"), package.license.clone());
    labels.insert(oci("source"), package.repository.clone());
    labels.insert(oci("revision"), inputs.git_revision.clone());
    labels.insert(oci("created"), inputs.git_time.clone());
    let mut labels: std::collections::BTreeMap<String, String> = labels
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    labels.extend(config.labels.clone());
    labels.into_iter().collect()
}

/// Whether the repository's registry is on loopback, which Docker reaches over plain HTTP.
pub fn is_loopback_registry(repository: &str) -> bool {
    let registry = crate::docker::registry_of(repository);
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    };
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_manifest, Config};
    use crate::workspace::{Package, Workspace};

    fn sample_config(extra: &str) -> Config {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
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
        let mut config = Config::resolve(
            &workspace,
            &package,
            tables.workspace.unwrap(),
            tables.package.unwrap(),
        )
        .unwrap();
        config.image = Some("127.0.0.1:5000/hello".into());
        config
    }

    fn inputs(push: bool) -> PlanInputs {
        PlanInputs {
            push,
            builder: Builder::Legacy,
            git_revision: Some("0123456789abcdef".into()),
            git_time: Some("2026-11-28T01:00:00+00:00".into()),
            handlers: Vec::new(),
        }
    }

    fn normalised(plan: &Plan) -> String {
        let cargo = crate::workspace::cargo_program().display().to_string();
        plan.display_steps().join("\n").replace(&cargo, "cargo") + "\n"
    }

    #[test]
    fn push_plan_snapshot() {
        let plan = Plan::new(&sample_config(""), &inputs(true)).unwrap();
        crate::assert_snapshot("plan-push.txt", &normalised(&plan));
    }

    #[test]
    fn push_happens_only_after_every_build_and_lists_only_after_every_push() {
        let plan = Plan::new(&sample_config(""), &inputs(true)).unwrap();
        let lines = plan.display_steps();
        let last_build = lines
            .iter()
            .rposition(|l| l.contains("docker image inspect"))
            .unwrap();
        let first_push = lines
            .iter()
            .position(|l| l.contains("docker push"))
            .unwrap();
        let last_push = lines
            .iter()
            .rposition(|l| l.contains("docker push"))
            .unwrap();
        let first_list = lines
            .iter()
            .position(|l| l.contains("docker manifest"))
            .unwrap();
        assert!(last_build < first_push && last_push < first_list);
        assert_eq!(plan.manifests.len(), 2);
        assert_eq!(plan.pushes.len(), 3);
    }

    #[test]
    fn local_plan_has_no_pushes_and_uses_buildx_when_present() {
        let mut inputs = inputs(false);
        inputs.builder = Builder::Buildx;
        let plan = Plan::new(&sample_config(""), &inputs).unwrap();
        assert!(plan.pushes.is_empty() && plan.manifests.is_empty());
        let lines = plan.display_steps();
        assert!(
            lines.iter().any(|l| l
                .starts_with("[linux/arm64] docker buildx build --load --platform linux/arm64 ")),
            "{lines:#?}"
        );
        assert!(!lines.iter().any(|l| l.contains("docker push")));
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
    fn emulated_config(copy: QemuCopy) -> Config {
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

    fn handler(arch: &str, flags: &str) -> Handler {
        let (magic, machine) = match arch {
            "aarch64" => ("7f454c460201010000000000000000000200b700", "aarch64"),
            _ => ("7f454c4601010100000000000000000002002800", "arm"),
        };
        let text = format!("enabled\ninterpreter /usr/libexec/qemu-binfmt/{machine}-binfmt-P\nflags: {flags}\noffset 0\nmagic {magic}\nmask ffffffffffffff00fffffffffffffffffeffffff\n");
        Handler::parse(&format!("qemu-{arch}"), &text).unwrap()
    }

    fn rendered(plan: &Plan, platform: &str) -> String {
        let (_, steps) = plan
            .contexts
            .iter()
            .find(|(p, _)| p.name() == platform)
            .unwrap();
        steps
            .iter()
            .find_map(|s| match &s.action {
                Action::Write { contents, .. } => Some(contents.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn stages_qemu(plan: &Plan, platform: &str) -> bool {
        let job = plan
            .builds
            .iter()
            .find(|j| j.platform.name() == platform)
            .unwrap();
        job.steps
            .iter()
            .any(|s| matches!(s.action, Action::StageQemu { .. }))
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
    fn foreign_run_steps_without_a_handler_fail_before_anything_runs() {
        let mut inputs = inputs(false);
        inputs.handlers = vec![handler("aarch64", "F")];
        let message = format!(
            "{:#}",
            Plan::new(&emulated_config(QemuCopy::Auto), &inputs).unwrap_err()
        );
        assert!(message.starts_with("the Dockerfile for linux/arm/v7 has RUN steps, and no binfmt handler on this host runs arm binaries"), "{message}");
        assert!(
            message.contains(
                "help: register QEMU for the configured platforms with `sudo cargo xtask setup`"
            ),
            "{message}"
        );
        // Without RUN steps nothing is emulated, so no handler is needed.
        assert!(Plan::new(&sample_config(""), &inputs).is_ok());
    }

    #[test]
    fn container_builds_compile_in_the_image_from_the_workspace_sources() {
        let mut config = sample_config("");
        config.build = BuildMode::Container;
        let plan = Plan::new(&config, &inputs(false)).unwrap();
        let lines = plan.display_steps();
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
        let (_, steps) = &plan.contexts[0];
        let Action::Mirror { files, .. } = &steps[2].action else {
            panic!("{steps:?}")
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
        let lines = plan.display_steps();
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

    #[test]
    fn run_steps_are_recognised() {
        assert!(has_run_steps("FROM x\n  run apk add ca-certificates\n"));
        assert!(!has_run_steps("FROM x\nCOPY run /run\n# RUN nothing\n"));
    }

    #[test]
    fn quoting_round_trips_through_a_shell_reading() {
        assert_eq!(shell_quote("plain-arg_1.0"), "plain-arg_1.0");
        assert_eq!(shell_quote("has space"), "'has space'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("{{.Id}}"), "'{{.Id}}'");
    }

    #[test]
    fn repositories_of_image_references() {
        assert_eq!(
            repository_of("127.0.0.1:5000/hello:arm64v8-1.0"),
            "127.0.0.1:5000/hello"
        );
        assert_eq!(
            repository_of("127.0.0.1:5000/hello"),
            "127.0.0.1:5000/hello"
        );
        assert_eq!(repository_of("hello:1"), "hello");
    }

    #[test]
    fn loopback_registries() {
        for (repo, loopback) in [
            ("127.0.0.1:5000/a", true),
            ("localhost:5000/a/b", true),
            ("localhost/a", true),
            ("ghcr.io/a/b", false),
            ("hello", false),
            ("127.example.com/a", false),
        ] {
            assert_eq!(is_loopback_registry(repo), loopback, "{repo}");
        }
    }
}
