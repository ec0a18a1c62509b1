//! The plan: every step of a run (render, cargo build, docker build/push, manifest) as data.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::{BuildMode, Config, PlatformConfig};
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
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
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

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create a build context holding the rendered Dockerfile, removing anything stale.
    WriteContext {
        dir: PathBuf,
        dockerfile: String,
        keep: Vec<String>,
    },
    /// Copy a file into a build context, skipping the write when it is already identical.
    Copy {
        from: PathBuf,
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
}

/// Every step of a run, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub package: String,
    pub repository: String,
    pub tags: Vec<String>,
    pub root: PathBuf,
    /// Build contexts, written before anything is compiled.
    pub contexts: Vec<(&'static Platform, Step)>,
    pub builds: Vec<Job>,
    pub pushes: Vec<Job>,
    pub manifests: Vec<ManifestJob>,
}

const DOCKER: &str = "docker";

impl Plan {
    /// Computes the plan; templates are rendered here, so a template error writes nothing.
    pub fn new(config: &Config, inputs: &PlanInputs) -> Result<Plan> {
        if config.build == BuildMode::Container {
            bail!(
                "`build = \"container\"` is not supported by this version of the xtask\n\
                 help: use `build = \"cross\"` (the default): binaries are cross-compiled on the host"
            );
        }
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
            repository: repository.clone(),
            tags: tags.clone(),
            root: root.clone(),
            contexts: Vec::new(),
            builds: Vec::new(),
            pushes: Vec::new(),
            manifests: Vec::new(),
        };
        for &platform in &config.platforms {
            let platform_config = config.platform(platform);
            let dir = shown(&template::context_dir(
                &config.target_dir,
                &config.package.name,
                platform,
            ));
            let context = DockerfileContext::new(
                platform,
                &platform_config.target,
                &config.bins,
                &config.package.name,
                &config.package.version,
                &platform_config.vars,
            );
            let dockerfile = template
                .render(&context)
                .with_context(|| format!("rendering the Dockerfile for {platform}"))?;
            let mut keep: Vec<String> = vec!["Dockerfile".into()];
            keep.extend(config.bins.iter().cloned());
            keep.extend(
                config
                    .files
                    .iter()
                    .filter_map(|f| f.components().next())
                    .map(|c| c.as_os_str().to_string_lossy().into_owned()),
            );
            keep.dedup();
            plan.contexts.push((
                platform,
                Step {
                    label: "render",
                    action: Action::WriteContext {
                        dir: dir.clone(),
                        dockerfile,
                        keep,
                    },
                },
            ));

            let images: Vec<String> = tags
                .iter()
                .map(|tag| format!("{repository}:{}-{tag}", platform.docker_arch))
                .collect();
            let mut steps = vec![cargo_build(config, &platform_config)];
            let release_dir = shown(&config.target_dir)
                .join(&platform_config.target)
                .join("release");
            for bin in &config.bins {
                steps.push(Step {
                    label: "stage",
                    action: Action::Copy {
                        from: release_dir.join(bin),
                        to: dir.join(bin),
                    },
                });
            }
            for file in &config.files {
                steps.push(Step {
                    label: "stage",
                    action: Action::Copy {
                        from: file.clone(),
                        to: dir.join(file),
                    },
                });
            }
            steps.push(docker_build(
                inputs.builder,
                platform,
                &images,
                &labels,
                &dir,
            ));
            steps.push(Step {
                label: "inspect",
                action: Action::Run {
                    command: Command::new(DOCKER, ["image", "inspect", images[0].as_str()]),
                    expect: Expect::Image,
                },
            });
            plan.builds.push(Job {
                platform,
                images: images.clone(),
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
                    steps,
                });
            }
        }
        if inputs.push {
            let insecure = (config.insecure_registry || is_loopback_registry(&repository))
                .then_some("--insecure");
            for (index, tag) in tags.iter().enumerate() {
                let list = format!("{repository}:{tag}");
                let entries: Vec<&str> = plan
                    .pushes
                    .iter()
                    .map(|job| job.images[index].as_str())
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
                                .chain(entries.iter().copied()),
                        ),
                        Expect::Success,
                    ),
                ];
                for job in &plan.pushes {
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
                    args.extend([list.as_str(), job.images[index].as_str()]);
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
        for (platform, step) in &self.contexts {
            lines.push(format!("[{platform}] {}", describe(step)));
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
    match &step.action {
        Action::WriteContext { dir, .. } => format!("render {}", dir.join("Dockerfile").display()),
        Action::Copy { from, to } => format!(
            "cp {} {}",
            shell_quote(&from.display().to_string()),
            shell_quote(&to.display().to_string())
        ),
        Action::Run { command, .. } => command.to_string(),
    }
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
        label: "cargo build",
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
        dir.join("Dockerfile").display().to_string(),
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
    let Some((host, _)) = repository.split_once('/') else {
        return false;
    };
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
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

    #[test]
    fn quoting_round_trips_through_a_shell_reading() {
        assert_eq!(shell_quote("plain-arg_1.0"), "plain-arg_1.0");
        assert_eq!(shell_quote("has space"), "'has space'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("{{.Id}}"), "'{{.Id}}'");
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
