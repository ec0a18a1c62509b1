//! `cargo xtask image`: plan the run for every selected package, check everything it
//! needs, then build (and with `--push`, publish) every platform of every package.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::backend::docker::{Docker, DockerBackend};
use crate::backend::oci::blobs::BaseLayers;
use crate::backend::oci::{Assembled, OciBackend};
use crate::commands::cli::ImageArgs;
use crate::config::{Backend, Config};
use crate::exec::{report, runner};
use crate::plan::{Builder, ContextStep, Plan};
use crate::preflight::{self, PlatformChecks};

/// The Rust toolchain as located for the run (or why it could not be).
type Toolchain = Result<preflight::RustToolchain>;

pub(crate) fn run(args: &ImageArgs) -> Result<()> {
    // rustc's answers while cargo metadata reads the workspace: both take tens of ms.
    let (configs, toolchain) = std::thread::scope(|scope| {
        let toolchain = scope.spawn(preflight::RustToolchain::locate);
        (
            load(args),
            toolchain.join().expect("locating rustc does not panic"),
        )
    });
    let configs = configs?;
    report::prepare_metadata_file(args.metadata_file.as_deref(), false)?;
    match backend(&configs)? {
        // No engine is asked anything: the OCI backend runs no `docker` process at all.
        Backend::Oci => {
            let plans = super::plans(&configs, pushing(args), Builder::Legacy)?;
            if !args.dry_run {
                oci_checks(&configs, &plans, &toolchain)?;
            }
            let rustc = toolchain.as_ref().ok().map(|t| t.version.clone());
            // A push alone mounts or copies base layers as it sends them; a local build
            // or `--load` needs them in the layout.
            let base_layers = match pushing(args) != super::Pushing::No && !args.load {
                true => BaseLayers::OnDemand,
                false => BaseLayers::Fetch,
            };
            let backend = OciBackend::new(
                &configs[0].workspace_root,
                &configs[0].target_dir,
                rustc,
                (base_layers, crate::backend::oci::blobs::base_deadline()?),
            );
            execute(args, &configs, plans, &backend, |run| {
                load_into_engine(args, run, &backend, &configs[0].target_dir)
            })
        }
        Backend::Docker if args.load => Err(crate::diagnostic::diagnostic(
            "--load is for backend = \"oci\"; the docker backend builds in the engine already",
            "drop --load, or pass --backend oci",
        )),
        Backend::Docker if args.dry_run => {
            // The builder is probed only when a client is there; no daemon is needed.
            let docker = Docker::find().ok();
            let builder = docker.as_ref().map_or(Builder::Legacy, Docker::builder);
            let plans = super::plans(&configs, pushing(args), builder)?;
            let docker = docker.unwrap_or(Docker {
                program: PathBuf::from("docker"),
                context: None,
            });
            let backend =
                DockerBackend::new(docker, &configs[0].workspace_root, &configs[0].target_dir);
            execute(args, &configs, plans, &backend, |_| Ok(()))
        }
        Backend::Docker => {
            let engine = preflight::engine().0;
            let plans = super::plans(&configs, pushing(args), engine.builder)?;
            let docker = docker_checks(&configs, &plans, engine, &toolchain)?;
            let backend =
                DockerBackend::new(docker, &configs[0].workspace_root, &configs[0].target_dir);
            execute(args, &configs, plans, &backend, |_| Ok(()))
        }
    }
}

/// The one way every backend runs: merge the packages' plans, then print them (dry run),
/// or take the run lock, walk the schedule, finish (`--load`) and report.
fn execute<B: crate::exec::Backend>(
    args: &ImageArgs,
    configs: &[Config],
    plans: Vec<Plan>,
    backend: &B,
    finish: impl FnOnce(&runner::Run<B::Image>) -> Result<()>,
) -> Result<()> {
    let mut plan = Plan::merge(plans)?;
    if args.push_by_digest {
        plan.records = Some(records_dir(args, &configs[0]));
    }
    if args.dry_run {
        report::print_dry_run(&plan, backend, args.json);
        return Ok(());
    }
    let _lock = crate::exec::files::lock_workspace(&configs[0].target_dir)?;
    report::prepare_metadata_file(args.metadata_file.as_deref(), true)?;
    let run = runner::execute(&plan, backend, jobs(args))?;
    finish(&run)?;
    report::print(&run.report, args.json);
    report::write_outputs(&run.report, args.metadata_file.as_deref())
}

/// The one backend of the run's packages.
fn backend(configs: &[Config]) -> Result<Backend> {
    let first = configs[0].backend;
    match configs.iter().find(|c| c.backend != first) {
        None => Ok(first),
        Some(other) => Err(crate::diagnostic::diagnostic(
            format!(
                "packages `{}` and `{}` use different backends",
                configs[0].package.name, other.package.name
            ),
            "set one `backend` for the run (or pass --backend), or build them with `-p` one at a time",
        )),
    }
}

/// What the OCI backend needs before anything compiles: templates it can assemble
/// (no `RUN`), TLS for every registry it pulls from or pushes to over HTTPS, and the
/// host's toolchain.
fn oci_checks(configs: &[Config], plans: &[Plan], toolchain: &Toolchain) -> Result<()> {
    for plan in plans {
        for platform_plan in &plan.platforms {
            for step in &platform_plan.context {
                if let ContextStep::Render { path, contents } = step {
                    let spec =
                        crate::backend::oci::spec::parse(contents, &path.display().to_string())?;
                    if let Some(base) = &spec.base {
                        crate::registry::Registry::of(base, base.is_loopback())?;
                    }
                }
            }
        }
        for (_, push) in plan.pushes() {
            crate::registry::Registry::of(&push.repository, push.insecure)?;
        }
    }
    host_checks(configs, plans, toolchain)
}

/// What the Docker backend needs before anything compiles: the host's toolchain, a daemon,
/// attestation support, every platform's engine and base images. Returns the client.
fn docker_checks(
    configs: &[Config],
    plans: &[Plan],
    engine: preflight::Engine,
    toolchain: &Toolchain,
) -> Result<Docker> {
    host_checks(configs, plans, toolchain)?;
    // Every push goes over the registry API: an HTTPS registry needs the engine's TLS.
    for (_, push) in plans.iter().flat_map(Plan::pushes) {
        crate::registry::Registry::of(&push.repository, push.insecure)?;
    }
    let docker = engine.require_daemon()?;
    for (config, plan) in configs.iter().zip(plans) {
        preflight::first_failure(preflight::attestations(config, &engine, &docker))?;
        let checks = PlatformChecks {
            config,
            plan,
            engine: Some(&docker),
        };
        preflight::first_failure(checks.engines())?;
        preflight::first_failure(checks.base_images())?;
    }
    Ok(docker)
}

/// Signing needs cosign on PATH and, for a key file, the file, which must open.
pub(crate) fn signing_checks(
    root: &std::path::Path,
    releases: &[crate::plan::Release],
) -> Result<()> {
    let Some(signing) = releases.iter().find_map(|release| release.sign.as_ref()) else {
        return Ok(());
    };
    if which::which("cosign").is_err() {
        return Err(crate::diagnostic::diagnostic(
            "`sign` is configured, and cosign is not on PATH",
            "install cosign 2 (Debian 13: apt install cosign; elsewhere https://docs.sigstore.dev/cosign/system_config/installation/), or drop `sign`",
        ));
    }
    match &signing.key {
        Some(key) if !key.contains("://") && !root.join(key).is_file() => {
            Err(crate::diagnostic::diagnostic(
                format!("the signing key `{}` is not a file", crate::diagnostic::escape(key)),
                "create one with `cosign generate-key-pair`, or name a KMS key (`awskms://...`, `gcpkms://...`, `hashivault://...`)",
            ))
        }
        // A key file must open now: a wrong `COSIGN_PASSWORD` found after the pushes
        // would leave images published unsigned.
        Some(key) if !key.contains("://") => {
            let sh = xshell::Shell::new()?;
            let _dir = sh.push_dir(root);
            crate::supply::cosign::open_key(key)
                .run(&sh)
                .map(drop)
                .map_err(|err| {
                    crate::diagnostic::diagnostic(
                        format!(
                            "the signing key `{}` does not open: {}",
                            crate::diagnostic::escape(key),
                            crate::diagnostic::Diagnostic::of(&err).cause
                        ),
                        "set COSIGN_PASSWORD to the key's password (an empty one for a key without), then run again; nothing was built or published",
                    )
                })
        }
        _ => Ok(()),
    }
}

/// What the host needs (targets, linkers, C compilers, emulation, cosign), for every package.
fn host_checks(configs: &[Config], plans: &[Plan], toolchain: &Toolchain) -> Result<()> {
    let releases: Vec<crate::plan::Release> =
        plans.iter().flat_map(|p| p.releases.clone()).collect();
    signing_checks(&configs[0].workspace_root, &releases)?;
    for (config, plan) in configs.iter().zip(plans) {
        let checks = PlatformChecks {
            config,
            plan,
            engine: None,
        };
        preflight::first_failure(checks.host(toolchain))?;
    }
    Ok(())
}

/// What the run does with its images, as the flags say.
fn pushing(args: &ImageArgs) -> super::Pushing {
    match (args.push, args.push_by_digest) {
        (true, _) => super::Pushing::AndPublish,
        (false, true) => super::Pushing::ByDigest,
        (false, false) => super::Pushing::No,
    }
}

/// Where `--push-by-digest` writes its records: `--records`, else under the target dir.
fn records_dir(args: &ImageArgs, config: &Config) -> PathBuf {
    match &args.records {
        Some(dir) => std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.clone()),
        None => crate::layout::Layout::new(&config.target_dir).records(),
    }
}

/// `--jobs`, or the number of cores.
fn jobs(args: &ImageArgs) -> usize {
    args.jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `--load`: the run's images into the local engine, through one `docker load`.
fn load_into_engine(
    args: &ImageArgs,
    run: &runner::Run<Assembled>,
    backend: &OciBackend,
    target_dir: &std::path::Path,
) -> Result<()> {
    if !args.load {
        return Ok(());
    }
    let images: Vec<(&Assembled, Vec<String>)> = run
        .report
        .platforms
        .iter()
        .zip(&run.images)
        .map(|(p, image)| (image, p.tags.clone()))
        .collect();
    let path = crate::layout::Layout::new(target_dir).load_archive();
    backend.write_load_archive(&images, &path)?;
    let docker = preflight::engine().0.require_daemon()?;
    eprintln!("[load] docker load ...");
    let sh = xshell::Shell::new()?;
    docker
        .command([
            "load".to_owned(),
            "--input".to_owned(),
            path.display().to_string(),
        ])
        .run(&sh)
        .context("loading the images into the local engine")?;
    eprintln!("[load] done");
    Ok(())
}

/// The configs of the packages the run builds.
fn load(args: &ImageArgs) -> Result<Vec<Config>> {
    let configs = super::load_configs(&args.selection, &args.cli_layer())?;
    if configs.len() > 1 && args.overrides.image.is_some() {
        return Err(crate::diagnostic::diagnostic(
            format!(
                "--image names one repository, and this run builds {} packages",
                configs.len()
            ),
            "pick one package with `-p PACKAGE`, or set `image` in each package's [package.metadata.multiarch]",
        ));
    }
    Ok(configs)
}
