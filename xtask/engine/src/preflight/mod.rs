//! Pre-flight: every check that runs before a build (engine, builder, base images, Rust
//! targets, linkers, binfmt handlers, QEMU, credentials) as typed findings. `image` stops
//! on the first that fails; `doctor` shows them all.

pub mod base_images;
pub mod credentials;
pub mod native;
pub mod toolchain;

use crate::backend::docker::{docker_host, Docker, Probe, START_ENGINE};
use crate::config::compile::Toolchain;
use crate::config::{BuildMode, Config, Provenance, QemuSource};
use crate::diagnostic::{diagnostic, Diagnostic};
use crate::emulation::binfmt::Emulation;
use crate::plan::{Builder, Plan, PlatformPlan, StageStep};
use base_images::BaseImages;
pub(crate) use toolchain::RustToolchain;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    /// Something the configured platforms need is missing: a build would fail.
    Missing,
    /// Worth knowing, not needed for a build.
    Note,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// What was checked, such as `rust target linux/arm64`.
    pub(crate) check: String,
    pub(crate) status: Status,
    /// What was found, short enough for a table cell.
    pub(crate) detail: String,
    /// How to fix it; empty when there is nothing to do.
    pub(crate) fix: String,
    /// The sentence a build stops with, when it says more than `check: detail`.
    pub(crate) cause: Option<String>,
}

impl Finding {
    pub(crate) fn new(
        check: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check: check.into(),
            status,
            detail: detail.into(),
            fix: fix.into(),
            cause: None,
        }
    }

    pub(crate) fn ok(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(check, Status::Ok, detail, "")
    }

    /// A failure from a typed diagnostic: its cause is the detail, its help the fix.
    pub(crate) fn failed(check: impl Into<String>, diagnostic: Diagnostic) -> Finding {
        let cause = diagnostic.cause.clone();
        Finding::new(check, Status::Missing, diagnostic.cause, diagnostic.help).with_cause(cause)
    }

    pub(crate) fn with_cause(mut self, cause: impl Into<String>) -> Finding {
        self.cause = Some(cause.into());
        self
    }

    /// The error a build stops with.
    pub(crate) fn into_error(self) -> anyhow::Error {
        let cause = self
            .cause
            .unwrap_or_else(|| format!("{}: {}", self.check, self.detail));
        diagnostic(cause, self.fix)
    }
}

/// Fails with the first finding that would break a build.
pub(crate) fn first_failure(findings: impl IntoIterator<Item = Finding>) -> anyhow::Result<()> {
    match findings.into_iter().find(|f| f.status == Status::Missing) {
        Some(finding) => Err(finding.into_error()),
        None => Ok(()),
    }
}

/// The engine as the docker client sees it.
pub(crate) struct Engine {
    pub(crate) docker: Option<Docker>,
    pub(crate) builder: Builder,
    /// Why builds cannot run: the client's or the daemon's failing finding.
    pub(crate) unusable: Option<Finding>,
}

impl Engine {
    /// The client, once its daemon answered; else the finding that says why not.
    pub(crate) fn require_daemon(&self) -> anyhow::Result<Docker> {
        match (&self.docker, &self.unusable) {
            (Some(docker), None) => Ok(docker.clone()),
            (_, Some(finding)) => Err(finding.clone().into_error()),
            (None, None) => Err(diagnostic("docker is not installed", "install Docker")),
        }
    }
}

/// Client, daemon, `docker manifest` and buildx rows; with them, what the engine offers.
pub(crate) fn engine() -> (Engine, Vec<Finding>) {
    let docker = match Docker::find() {
        Ok(docker) => docker,
        Err(err) => {
            let missing = Finding::failed("docker client", Diagnostic::of(&err))
                .with_cause(Diagnostic::of(&err).cause);
            let engine = Engine {
                docker: None,
                builder: Builder::Legacy,
                unusable: Some(missing.clone()),
            };
            return (engine, vec![missing]);
        }
    };
    // The four probes are independent; asked at once, they cost one round trip.
    let [client, daemon, manifest, buildx] = std::thread::scope(|scope| {
        let probes: [&[&str]; 4] = [
            &["--version"],
            &["version", "--format", ENGINE_FORMAT],
            &["manifest", "--help"],
            &["buildx", "version"],
        ];
        probes
            .map(|args| scope.spawn(|| docker.probe(args)))
            .map(|probe| probe.join().expect("a probe does not panic"))
    });
    let client = client_finding(&docker, client);
    let daemon = daemon_finding(daemon);
    let manifest = match manifest {
        Probe::Answered(_) => Finding::ok("docker manifest", "available"),
        other => Finding::new(
            "docker manifest",
            Status::Missing,
            other.describe(),
            "update the docker CLI to 18.02 or newer",
        ),
    };
    let (builder, buildx) = match buildx {
        Probe::Answered(version) => (Builder::Buildx, Finding::ok("buildx", version)),
        _ => (
            Builder::Legacy,
            Finding::new(
                "buildx",
                Status::Note,
                "absent: the legacy builder is used",
                "install the buildx plugin for BuildKit (optional)",
            ),
        ),
    };
    // Builds cannot run without a working client and a daemon that answers.
    let unusable = [&client, &daemon]
        .into_iter()
        .find(|f| f.status == Status::Missing)
        .cloned();
    (
        Engine {
            docker: Some(docker),
            builder,
            unusable,
        },
        vec![client, daemon, manifest, buildx],
    )
}

/// The client's row; `docker --version` never contacts the daemon.
fn client_finding(docker: &Docker, probe: Probe) -> Finding {
    match probe {
        Probe::Answered(version) => {
            let version = version
                .trim_start_matches("Docker version ")
                .split(',')
                .next()
                .unwrap_or_default();
            Finding::ok(
                "docker client",
                format!("{version} ({})", docker.program.display()),
            )
        }
        other => Finding::new(
            "docker client",
            Status::Missing,
            other.describe(),
            "reinstall the docker CLI",
        ),
    }
}

/// The engine's first component and its version, as `Name|version`: Docker says
/// `Engine`, Podman's Docker-compatible service `Podman Engine`.
const ENGINE_FORMAT: &str =
    "{{range $i, $c := .Server.Components}}{{if eq $i 0}}{{$c.Name}}{{end}}{{end}}|{{.Server.Version}}";

/// The engine's product and version from an [`ENGINE_FORMAT`] answer, such as
/// `Docker Engine 26.1.5` or `Podman Engine 4.3.1`; what the engine says is shown escaped.
fn engine_name(answer: &str) -> String {
    let (name, version) = answer.split_once('|').unwrap_or(("", answer));
    let name = match name.trim() {
        "" | "Engine" => "Docker Engine",
        other => other,
    };
    crate::diagnostic::escape(&format!("{name} {}", version.trim()))
}

/// The daemon's version, when it answered, and its row.
fn daemon_finding(probe: Probe) -> Finding {
    let host = docker_host();
    match probe {
        Probe::Answered(answer) => Finding::ok(
            "docker daemon",
            format!("{} at {host}", engine_name(&answer)),
        ),
        other => {
            let cause = format!(
                "the docker daemon at {host} does not answer: {}",
                other.describe()
            );
            let detail = format!("{host}: {}", other.describe());
            Finding::new("docker daemon", Status::Missing, detail, START_ENGINE).with_cause(cause)
        }
    }
}

/// Doctor's rows about the engine: its image store, its builder, and how `--push` will
/// assemble tags.
pub(crate) fn engine_details(engine: &Engine) -> Vec<Finding> {
    let Some(docker) = engine.docker.as_ref().filter(|_| engine.unusable.is_none()) else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    let containerd = match containerd_store(docker) {
        Ok(containerd) => containerd,
        Err(problem) => {
            return vec![Finding::new(
                "image store",
                Status::Missing,
                problem,
                START_ENGINE,
            )]
        }
    };
    let store = if containerd {
        "containerd image store"
    } else {
        "classic image store"
    };
    findings.push(Finding::ok("image store", store));
    findings.push(match engine.builder {
        Builder::Legacy => Finding::new(
            "builder",
            Status::Note,
            "legacy builder: one `docker build` per platform, no attestations",
            "install the buildx plugin for BuildKit (optional)",
        ),
        Builder::Buildx => match buildx_driver(docker) {
            Some(driver) => Finding::ok(
                "builder",
                format!("buildx ({driver}): one `docker buildx bake` for every platform"),
            ),
            None => Finding::new(
                "builder",
                Status::Missing,
                "`docker buildx inspect` names no driver",
                START_ENGINE,
            ),
        },
    });
    findings.push(Finding::ok(
        "publish",
        "`docker image save`, then the registry API: each image by digest, one index (attestations kept), signatures, tags last",
    ));
    findings
}

/// Whether the engine keeps images in the containerd image store (else the classic one).
fn containerd_store(docker: &Docker) -> Result<bool, String> {
    match docker.probe(&["info", "--format", "{{json .DriverStatus}}"]) {
        Probe::Answered(status) => Ok(status.contains("io.containerd.snapshotter")),
        other => Err(other.describe()),
    }
}

/// Attestations need BuildKit to keep them in the engine: the containerd image store. On
/// the classic store buildx refuses them ("not supported for the docker driver").
pub(crate) fn attestations(config: &Config, engine: &Engine, docker: &Docker) -> Option<Finding> {
    let buildkit_sbom = config.sbom == crate::config::Sbom::BuildKit;
    let wanted = config.provenance != Provenance::Off || buildkit_sbom;
    if !wanted || engine.builder != Builder::Buildx || containerd_store(docker) != Ok(false) {
        return None;
    }
    let key = if buildkit_sbom { "sbom" } else { "provenance" };
    Some(
        Finding::new(
            "attestations",
            Status::Missing,
            "the classic image store cannot keep attestations",
            format!("turn on the containerd image store (\"features\": {{\"containerd-snapshotter\": true}} in daemon.json), or remove `{key}` from [package.metadata.multiarch]"),
        )
        .with_cause(format!(
            "{key} attestations need the containerd image store, and this engine uses the classic one"
        )),
    )
}

/// The driver of the current buildx builder, from `docker buildx inspect`.
fn buildx_driver(docker: &Docker) -> Option<String> {
    let output = crate::process::Command::new(&docker.program, ["buildx", "inspect"])
        .run(&xshell::Shell::new().ok()?)
        .ok()?;
    output
        .lines()
        .find_map(|line| line.strip_prefix("Driver:"))
        .map(|driver| format!("{} driver", driver.trim()))
}

/// What the platform checks may ask.
pub(crate) struct PlatformChecks<'a> {
    pub(crate) config: &'a Config,
    pub(crate) plan: &'a Plan,
    /// The engine to look base images up in; `None` skips those checks with a note.
    pub(crate) engine: Option<&'a Docker>,
}

impl PlatformChecks<'_> {
    /// What this host needs per platform: emulation, QEMU, Rust target and linker.
    /// `toolchain` is located once per run ([`RustToolchain::locate`]), however many
    /// packages are checked.
    pub(crate) fn host(&self, toolchain: &anyhow::Result<RustToolchain>) -> Vec<Finding> {
        let mut findings = Vec::new();
        for platform_plan in &self.plan.platforms {
            findings.push(binfmt(platform_plan));
            if matches!(
                platform_plan.emulation,
                Emulation::Handler { .. } | Emulation::Missing
            ) {
                findings.push(self.qemu(platform_plan));
            }
            let platform = self.config.platform(platform_plan.platform);
            if platform.build == BuildMode::Cross {
                findings.extend(toolchain::findings(toolchain, &platform));
            }
        }
        let host = toolchain.as_ref().map_or("", |t| t.host.as_str());
        findings.extend(self.c_compilers(host));
        findings.extend(self.auditable());
        findings
    }

    /// cargo-auditable, when the binaries compiled on the host are to carry their crates.
    fn auditable(&self) -> Option<Finding> {
        let compiles = self
            .plan
            .platforms
            .iter()
            .any(|p| p.cargo.as_ref().is_some_and(|c| c.auditable));
        if !compiles {
            return None;
        }
        Some(match which::which("cargo-auditable") {
            Ok(path) => Finding::ok("cargo-auditable", path.display().to_string()),
            Err(_) => Finding::new(
                "cargo-auditable",
                Status::Missing,
                "`cargo-auditable` is not on PATH, and binaries are built through it (`auditable`, on by default) so that scanners see their crates",
                "cargo install cargo-auditable --locked; or set `auditable = false` in [package.metadata.multiarch]",
            ),
        })
    }

    /// Whether the binaries last staged can start on their images' bases (for `doctor`; a
    /// run checks what it just compiled instead, after compiling). `bases` reads a base,
    /// as the backend would; only a dynamic binary needs it.
    pub(crate) fn starts(&self, bases: &crate::exec::runner::Bases<'_>) -> Vec<Finding> {
        let mut findings = Vec::new();
        for platform_plan in &self.plan.platforms {
            let platform = platform_plan.platform;
            for step in &platform_plan.staging {
                let (binary, check) = match step {
                    StageStep::StartsOnScratch { binary } => {
                        (binary, format!("starts on scratch {platform}"))
                    }
                    StageStep::StartsOnBase { binary, base, .. } => {
                        (binary, format!("starts on {base} {platform}"))
                    }
                    _ => continue,
                };
                let path = self.plan.root.join(binary);
                let name = binary.file_name().unwrap_or_default().to_string_lossy();
                if !path.exists() {
                    let detail = format!("`{name}` not built yet; checked after each compile");
                    findings.push(Finding::ok(check, detail));
                    continue;
                }
                let checked =
                    crate::exec::runner::start_check(&self.plan.root, platform, step, bases);
                findings.push(match checked {
                    Some(Err(err)) => Finding::failed(check, Diagnostic::of(&err)),
                    _ => Finding::ok(check, format!("`{name}` has what it needs there")),
                });
            }
        }
        findings
    }

    /// Each other engine the platforms build on (a Docker context, a buildx builder):
    /// reachable within the probe's bound, its version, image store and architecture, and
    /// whether it runs each of its platforms natively.
    pub(crate) fn engines(&self) -> Vec<Finding> {
        let local = self.engine.cloned().or_else(|| Docker::find().ok());
        let Some(local) = local else {
            return Vec::new();
        };
        let mut engines: Vec<&crate::config::EngineTarget> = Vec::new();
        for platform_plan in &self.plan.platforms {
            if !platform_plan.engine.is_local() && !engines.contains(&&platform_plan.engine) {
                engines.push(&platform_plan.engine);
            }
        }
        let mut findings = Vec::new();
        for engine in engines {
            let platforms: Vec<&PlatformPlan> = self
                .plan
                .platforms
                .iter()
                .filter(|p| &p.engine == engine)
                .collect();
            findings.extend(engine_findings(&local, engine, &platforms));
        }
        findings
    }

    /// One C compiler finding per platform. The dependency graph is read only when a
    /// platform on cargo's toolchain lacks its compiler, to learn whether anything needs it.
    fn c_compilers(&self, host: &str) -> Vec<Finding> {
        let config = self.config;
        let platforms: Vec<_> = self
            .plan
            .platforms
            .iter()
            .map(|p| config.platform(p.platform))
            .filter(|p| p.build == BuildMode::Cross)
            .collect();
        let zig = if platforms.iter().any(|p| p.toolchain == Toolchain::Zig) {
            toolchain::zig_available()
        } else {
            Ok(())
        };
        let lacking = platforms
            .iter()
            .any(|p| p.toolchain == Toolchain::Cargo && !toolchain::c_compiler(p, host).1);
        let targets: Vec<String> = platforms.iter().map(|p| p.target.clone()).collect();
        let native = lacking.then(|| native::native_crates_by_target(config, &targets));
        let mut findings = Vec::new();
        if let Some(Err(err)) = &native {
            findings.push(Finding::new(
                "dependency graph",
                Status::Note,
                Diagnostic::of(err).cause,
                "C compilers were not checked against the crates that need them",
            ));
        }
        for platform in &platforms {
            let crates = match &native {
                Some(Ok(native)) => native.get(&platform.target).map(Vec::as_slice),
                _ => None,
            };
            findings.push(toolchain::c_compiler_finding(platform, host, crates, &zig));
        }
        findings
    }

    /// Every base image of every platform, in the engine or its registry.
    pub(crate) fn base_images(&self) -> Vec<Finding> {
        // Each engine has its own images; one lookup cache per engine.
        let mut bases: std::collections::BTreeMap<_, BaseImages> = Default::default();
        let mut findings = Vec::new();
        for platform_plan in &self.plan.platforms {
            let bases = bases.entry(platform_plan.engine.clone()).or_default();
            findings.extend(self.platform_base_images(platform_plan, bases));
        }
        findings
    }

    fn platform_base_images(
        &self,
        platform_plan: &PlatformPlan,
        bases: &mut BaseImages,
    ) -> Vec<Finding> {
        let platform = platform_plan.platform;
        let check = format!("base {platform}");
        self.plan
            .base_images
            .iter()
            .filter(|base| base.platform == platform)
            .map(|base| match self.engine {
                None => Finding::new(
                    &check,
                    Status::Note,
                    format!("{}: not checked, the daemon does not answer", base.image),
                    "",
                ),
                Some(docker) => {
                    match bases.check(&docker.on(&platform_plan.engine), &base.image, platform) {
                        Ok(()) => Finding::ok(&check, &base.image),
                        Err(err) => Finding::failed(&check, Diagnostic::of(&err)),
                    }
                }
            })
            .collect()
    }

    /// Where the QEMU binary comes from; missing counts only when it is copied into contexts.
    fn qemu(&self, platform_plan: &PlatformPlan) -> Finding {
        let qemu_arch = platform_plan.platform.qemu_arch;
        let check = format!("qemu {qemu_arch}");
        let name = crate::emulation::qemu::binary_name(qemu_arch);
        let needed = platform_plan
            .staging
            .iter()
            .any(|s| matches!(s, StageStep::Qemu { .. }));
        let absent = if needed {
            Status::Missing
        } else {
            Status::Note
        };
        let qemu = &self.config.qemu;
        match qemu.source {
            QemuSource::Path => match which::which(&name) {
                Ok(path) => Finding::ok(check, path.display().to_string()),
                Err(_) => Finding::new(
                    check,
                    absent,
                    format!("`{name}` is not on PATH (qemu.source = \"path\")"),
                    "apt-get install qemu-user-static",
                ),
            },
            QemuSource::Download => {
                match crate::emulation::qemu::cache_dir(&qemu.version).map(|dir| dir.join(&name)) {
                    Ok(path) if path.is_file() => {
                        Finding::ok(check, format!("cached: {}", path.display()))
                    }
                    Ok(path) => Finding::new(
                        check,
                        Status::Note,
                        format!("not cached yet ({})", path.display()),
                        "cargo multiarch qemu fetch (or let `image` fetch it)",
                    ),
                    Err(err) => Finding::new(
                        check,
                        Status::Missing,
                        Diagnostic::of(&err).cause,
                        "set XDG_CACHE_HOME or HOME",
                    ),
                }
            }
        }
    }
}

/// How this host runs a platform's `RUN` steps, and whether it can.
fn binfmt(platform_plan: &PlatformPlan) -> Finding {
    let platform = platform_plan.platform;
    let check = format!("binfmt {platform}");
    match &platform_plan.emulation {
        Emulation::Native => Finding::ok(check, "native: no emulation needed"),
        Emulation::Handler { fix_binary: true, interpreter } => {
            Finding::ok(check, format!("handler with F: {}", interpreter.display()))
        }
        Emulation::Handler { fix_binary: false, interpreter } => Finding::new(
            check,
            Status::Ok,
            format!("handler without F: {}; QEMU goes into the context (qemu.copy)", interpreter.display()),
            "`sudo cargo multiarch setup --reset` registers one with F (optional)",
        ),
        Emulation::Missing if platform_plan.runs_commands => Finding::new(
            check,
            Status::Missing,
            "no handler, and the Dockerfile has RUN steps",
            "register QEMU for the configured platforms with `sudo cargo multiarch setup`",
        )
        .with_cause(format!(
            "the Dockerfile for {platform} has RUN steps, and no binfmt handler on this host runs {} binaries",
            platform.qemu_arch
        )),
        Emulation::Missing => Finding::new(
            check,
            Status::Note,
            "no handler; not needed (no RUN steps)",
            "sudo cargo multiarch setup (to run the images here)",
        ),
        Emulation::OtherEngine => Finding::ok(
            check,
            format!(
                "built on {}: that engine's own emulation applies",
                platform_plan.engine
            ),
        ),
    }
}

/// The rows of one other engine: whether it answers (bounded), what it is, and how it
/// runs each of its platforms.
fn engine_findings(
    local: &Docker,
    engine: &crate::config::EngineTarget,
    platforms: &[&PlatformPlan],
) -> Vec<Finding> {
    let names: Vec<String> = platforms.iter().map(|p| p.platform.name()).collect();
    let names = names.join(", ");
    let mut findings = Vec::new();
    if let Some(context) = &engine.context {
        findings.extend(context_findings(local, engine, context, &names, platforms));
    }
    if let Some(builder) = &engine.builder {
        let check = format!("builder {builder}");
        findings.push(match local.on(engine).probe(&["buildx", "inspect", builder]) {
            Probe::Answered(_) => Finding::ok(check, format!("buildx builder; builds {names}")),
            other => Finding::new(
                check,
                Status::Missing,
                other.describe(),
                format!("create it with `docker buildx create --name {builder}`, or remove `builder`"),
            )
            .with_cause(format!(
                "{names} build with the buildx builder `{builder}`, which does not answer"
            )),
        });
    }
    findings
}

/// The rows of one Docker context: its endpoint answering (bounded), what it runs, and
/// whether it runs each of its platforms natively.
fn context_findings(
    local: &Docker,
    engine: &crate::config::EngineTarget,
    context: &str,
    names: &str,
    platforms: &[&PlatformPlan],
) -> Vec<Finding> {
    let check = format!("engine {context}");
    let mut findings = Vec::new();
    let endpoint = match local.probe(&[
        "context",
        "inspect",
        context,
        "--format",
        "{{.Endpoints.docker.Host}}",
    ]) {
        Probe::Answered(endpoint) => endpoint,
        other => {
            return vec![Finding::new(
                &check,
                Status::Missing,
                format!("no Docker context `{context}`: {}", other.describe()),
                format!("create it: docker context create {context} --docker host=ssh://user@host (or tcp://, unix://)"),
            )
            .with_cause(format!(
                "{names} build on the Docker context `{context}`, which does not exist"
            ))];
        }
    };
    let remote = local.on(engine);
    let facts = "{{.Server.Version}} {{.Server.Os}}/{{.Server.Arch}}";
    match remote.probe(&["version", "--format", facts]) {
        Probe::Answered(answer) => {
            let (version, os_arch) = answer.split_once(' ').unwrap_or((&answer, ""));
            let arch = os_arch.rsplit('/').next().unwrap_or_default();
            let store = match containerd_store(&remote) {
                Ok(true) => "containerd image store",
                Ok(false) => "classic image store",
                Err(_) => "image store unknown",
            };
            findings.push(Finding::ok(
                &check,
                format!("{endpoint}: {version}, {os_arch}, {store}; builds {names}"),
            ));
            for platform_plan in platforms {
                let platform = platform_plan.platform;
                let native = platform.arch == arch;
                findings.push(Finding::ok(
                    format!("{check} {platform}"),
                    if native {
                        "native: no emulation needed".to_owned()
                    } else {
                        format!("emulated by {endpoint}'s own binfmt handlers (not visible from here)")
                    },
                ));
            }
        }
        other => findings.push(
            Finding::new(
                &check,
                Status::Missing,
                format!("{endpoint}: {}", other.describe()),
                format!("start that engine, or point `{context}` at one that runs (`docker context inspect {context}`)"),
            )
            .with_cause(format!(
                "the engine of Docker context `{context}` ({endpoint}) does not answer ({}); it builds {names}",
                other.describe()
            )),
        ),
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QemuCopy;
    use crate::plan::tests::{emulated_config, handler, inputs};

    #[test]
    fn the_engine_is_named_by_its_first_component() {
        assert_eq!(
            engine_name("Engine|26.1.5+dfsg1"),
            "Docker Engine 26.1.5+dfsg1"
        );
        assert_eq!(engine_name("Podman Engine|4.3.1"), "Podman Engine 4.3.1");
        assert_eq!(engine_name("|20.10.24"), "Docker Engine 20.10.24");
        assert_eq!(engine_name("Evil\u{1b}[2J|1"), "Evil\\u{1b}[2J 1");
    }

    #[test]
    fn foreign_run_steps_without_a_handler_stop_the_build() {
        let mut inputs = inputs(false);
        inputs.handlers = vec![handler("aarch64", "F")];
        let plan = Plan::new(&emulated_config(QemuCopy::Auto), &inputs).unwrap();
        let findings: Vec<Finding> = plan.platforms.iter().map(binfmt).collect();
        let message = crate::diagnostic::format_error(&first_failure(findings).unwrap_err());
        assert!(message.starts_with("error: the Dockerfile for linux/arm/v7 has RUN steps, and no binfmt handler on this host runs arm binaries"), "{message}");
        assert!(
            message.ends_with(
                "help: register QEMU for the configured platforms with `sudo cargo multiarch setup`"
            ),
            "{message}"
        );
        // Without RUN steps nothing is emulated, so no handler is needed.
        let plan = Plan::new(&crate::plan::tests::sample_config(""), &inputs).unwrap();
        assert!(first_failure(plan.platforms.iter().map(binfmt)).is_ok());
    }
}
