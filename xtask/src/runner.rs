//! The one runner that executes a plan: contexts, parallel builds, pushes, then manifest lists.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use xshell::{cmd, Shell};

use crate::base_images::BaseImages;
use crate::docker::{parse_digest, registry_of, ImageFacts, START_ENGINE};
use crate::plan::{
    repository_of, Action, Command, Expect, Job, Plan, Step, CARGO_BUILD, PUSHED_DIGEST,
};
use crate::platform::Platform;

/// What one platform produced.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformResult {
    pub platform: String,
    pub image: String,
    pub tags: Vec<String>,
    pub id: String,
    pub size: u64,
    /// Bytes sent to docker as the build context.
    pub context_bytes: u64,
    /// The registry digest, after a push.
    pub digest: Option<String>,
    pub seconds: f64,
}

/// One published manifest list.
#[derive(Debug, Clone, Serialize)]
pub struct ListResult {
    pub list: String,
    pub digest: String,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub package: String,
    pub platforms: Vec<PlatformResult>,
    pub manifests: Vec<ListResult>,
    pub seconds: f64,
}

/// How many times a transient registry failure is retried, and the first pause.
const PUSH_ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Executes `plan` with up to `jobs` platforms at a time.
pub fn execute(plan: &Plan, jobs: usize) -> Result<Report> {
    let started = Instant::now();
    let sh = new_shell(&plan.root)?;
    let mut bases = BaseImages::default();
    let mut failed_checks = Vec::new();
    for (platform, image) in &plan.checks {
        if let Err(err) = bases.check(&sh, image, platform) {
            failed_checks.push(format!("{err:#}"));
        }
    }
    if !failed_checks.is_empty() {
        bail!("{}", failed_checks.join("\n"));
    }
    for (platform, steps) in &plan.contexts {
        for step in steps {
            run_step(&sh, plan, step)
                .with_context(|| format!("{} failed for {platform}", step.label))?;
        }
    }

    let cargo_lock = Mutex::new(());
    let builds = run_jobs(plan, &plan.builds, jobs, &cargo_lock)?;
    let mut platforms = Vec::new();
    for (job, outcome) in plan.builds.iter().zip(builds) {
        let facts = outcome.facts.expect("every build job inspects its image");
        let context_bytes = dir_size(&plan.root.join(&job.context));
        platforms.push(PlatformResult {
            platform: job.platform.name(),
            image: job.images[0].clone(),
            tags: job.images.clone(),
            id: facts.id,
            size: facts.size,
            context_bytes,
            digest: None,
            seconds: outcome.seconds,
        });
    }

    let pushes = run_jobs(plan, &plan.pushes, jobs, &cargo_lock)?;
    let mut pushed = std::collections::HashMap::new();
    for ((result, outcome), job) in platforms.iter_mut().zip(pushes).zip(&plan.pushes) {
        let digest = outcome
            .digest
            .with_context(|| format!("`docker push` printed no digest for {}", job.platform))?;
        for image in &job.images {
            pushed.insert(image.clone(), digest.clone());
        }
        result.seconds += outcome.seconds;
        result.digest = Some(digest);
    }

    let mut manifests = Vec::new();
    for manifest in &plan.manifests {
        let sh = new_shell(&plan.root)?;
        let mut digest = None;
        for step in &manifest.steps {
            eprintln!("[{}] {}", manifest.list, step.label);
            let step = &with_pushed_digests(step, &pushed);
            if let Some(output) = run_step_retrying(&sh, plan, step).with_context(|| {
                format!(
                    "{} failed for the manifest list {}",
                    step.label, manifest.list
                )
            })? {
                if expects_digest(step) {
                    digest = parse_digest(&output);
                }
            }
        }
        let digest = digest.ok_or_else(|| {
            anyhow!(
                "`docker manifest push` printed no digest for {}",
                manifest.list
            )
        })?;
        manifests.push(ListResult {
            list: manifest.list.clone(),
            digest,
        });
    }

    Ok(Report {
        package: plan.package.clone(),
        platforms,
        manifests,
        seconds: started.elapsed().as_secs_f64(),
    })
}

struct JobOutcome {
    facts: Option<ImageFacts>,
    digest: Option<String>,
    seconds: f64,
}

/// Runs every job, `jobs` at a time; fails, naming each failed platform, once all have ended.
fn run_jobs(
    plan: &Plan,
    all: &[Job],
    jobs: usize,
    cargo_lock: &Mutex<()>,
) -> Result<Vec<JobOutcome>> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Result<JobOutcome>>>> =
        Mutex::new(all.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, all.len().max(1)) {
            scope.spawn(|| loop {
                let index = {
                    let mut next = next.lock().unwrap();
                    *next += 1;
                    *next - 1
                };
                let Some(job) = all.get(index) else { break };
                let outcome = run_job(plan, job, cargo_lock);
                results.lock().unwrap()[index] = Some(outcome);
            });
        }
    });
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for (job, result) in all.iter().zip(results.into_inner().unwrap()) {
        match result.expect("every job ran") {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => failures.push((job.platform, err)),
        }
    }
    match failures.len() {
        0 => Ok(outcomes),
        1 => Err(failures.pop().unwrap().1),
        _ => {
            let names: Vec<String> = failures.iter().map(|(p, _)| p.name()).collect();
            let details: Vec<String> = failures.iter().map(|(_, e)| format!("{e:#}")).collect();
            bail!(
                "{} platforms failed: {}\n{}",
                failures.len(),
                names.join(", "),
                details.join("\n")
            )
        }
    }
}

fn run_job(plan: &Plan, job: &Job, cargo_lock: &Mutex<()>) -> Result<JobOutcome> {
    let sh = new_shell(&plan.root)?;
    let started = Instant::now();
    let mut outcome = JobOutcome {
        facts: None,
        digest: None,
        seconds: 0.0,
    };
    for step in &job.steps {
        let output = {
            // Cargo serialises builds on its own lock; taking ours keeps its output whole.
            let _cargo = (step.label == CARGO_BUILD).then(|| cargo_lock.lock().unwrap());
            // Processes can take minutes (rustc under QEMU), so their start is shown too.
            if matches!(step.action, Action::Run { .. }) {
                eprintln!("[{}] {} ...", job.platform, step.label);
            }
            let step_started = Instant::now();
            let output = run_step_retrying(&sh, plan, step)
                .with_context(|| format!("{} failed for {}", step.label, job.platform))?;
            let seconds = step_started.elapsed().as_secs_f64();
            eprintln!("[{}] {} done ({seconds:.1}s)", job.platform, step.label);
            output
        };
        if let (Action::Run { expect, .. }, Some(output)) = (&step.action, output) {
            match expect {
                Expect::Image => {
                    outcome.facts = Some(check_image(job.platform, &job.images[0], &output)?)
                }
                Expect::Digest => outcome.digest = outcome.digest.or(parse_digest(&output)),
                Expect::Success | Expect::MissingOk => {}
            }
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// The built image must carry exactly the platform it was built for.
fn check_image(platform: &Platform, image: &str, output: &str) -> Result<ImageFacts> {
    let facts = ImageFacts::parse(output).ok_or_else(|| {
        anyhow!("cannot read `docker image inspect` output for {image}: {output}")
    })?;
    if !platform.matches(&facts.os, &facts.architecture, facts.variant.as_deref()) {
        let built = [facts.os.as_str(), facts.architecture.as_str()]
            .into_iter()
            .chain(facts.variant.as_deref())
            .collect::<Vec<_>>()
            .join("/");
        bail!(
            "the image built for {platform} is {built}: its base image is probably not published for {platform}\n\
             help: pick a base with a {platform} variant (set it per platform in `vars`), or drop {platform} from `platforms`"
        );
    }
    Ok(facts)
}

fn new_shell(root: &Path) -> Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(root);
    Ok(sh)
}

/// The step with every pushed-digest placeholder replaced by `<repository>@<digest>`.
fn with_pushed_digests(step: &Step, pushed: &std::collections::HashMap<String, String>) -> Step {
    let mut step = step.clone();
    if let Action::Run { command, .. } = &mut step.action {
        for arg in &mut command.args {
            if let Some(image) = arg.strip_prefix(PUSHED_DIGEST) {
                let digest = pushed
                    .get(image)
                    .expect("every list entry was pushed first");
                *arg = format!("{}@{digest}", repository_of(image));
            }
        }
    }
    step
}

/// Whether a step pushes to a registry (which prints the pushed digest).
fn expects_digest(step: &Step) -> bool {
    matches!(
        step.action,
        Action::Run {
            expect: Expect::Digest,
            ..
        }
    )
}

/// Runs a step, retrying transient registry failures of pushes with backoff.
fn run_step_retrying(sh: &Shell, plan: &Plan, step: &Step) -> Result<Option<String>> {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1.. {
        match run_step(sh, plan, step) {
            Err(err)
                if expects_digest(step)
                    && attempt < PUSH_ATTEMPTS
                    && is_transient(&format!("{err:#}")) =>
            {
                eprintln!(
                    "  transient failure ({}), retrying in {:.1}s",
                    last_cause(&format!("{err:#}")),
                    backoff.as_secs_f64()
                );
                std::thread::sleep(backoff);
                backoff *= 2;
            }
            result => return result,
        }
    }
    unreachable!("the retry loop returns")
}

/// Network trouble and server errors are worth retrying; refusals (auth, 4xx) are not.
fn is_transient(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    let refused = [
        "unauthorized",
        "denied",
        "authentication required",
        "forbidden",
        "manifest invalid",
        "name unknown",
    ];
    let transient = [
        "connection reset",
        "connection refused",
        "eof",
        "timeout",
        "i/o timeout",
        "500 internal",
        "502 bad gateway",
        "503 service",
        "504 gateway",
        "received unexpected http status: 5",
    ];
    !refused.iter().any(|r| message.contains(r)) && transient.iter().any(|t| message.contains(t))
}

/// The last line of a failure that is not a `help:` line: the command's own last word.
fn last_cause(message: &str) -> &str {
    message
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("help:"))
        .unwrap_or(message)
}

/// Executes one step; returns the command's stdout for steps that read it.
fn run_step(sh: &Shell, plan: &Plan, step: &Step) -> Result<Option<String>> {
    let root = &plan.root;
    match &step.action {
        Action::Context { dir, keep } => prune(&root.join(dir), keep)?,
        Action::Write { path, contents } => {
            write_if_changed(&root.join(path), contents.as_bytes())?
        }
        Action::Copy { from, to } => copy_if_changed(&root.join(from), &root.join(to))?,
        Action::Mirror { from, to, files } => {
            for file in files {
                copy_if_changed(&root.join(from).join(file), &root.join(to).join(file))?;
            }
        }
        Action::StageQemu { qemu_arch, to } => {
            let binary = crate::qemu::locate(sh, &plan.qemu, qemu_arch)?;
            copy_if_changed(&binary, &root.join(to))?;
        }
        Action::Run { command, expect } => return run_command(sh, command, *expect).map(Some),
    }
    Ok(None)
}

fn run_command(sh: &Shell, command: &Command, expect: Expect) -> Result<String> {
    let Command { program, args } = command;
    let output = cmd!(sh, "{program} {args...}")
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| format!("cannot start `{program}`"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    if expect == Expect::MissingOk
        && (stderr.contains("No such manifest") || stderr.contains("no such manifest"))
    {
        return Ok(stdout);
    }
    Err(command_failure(command, &output.status, &stdout, &stderr))
}

/// Turns a failed command into a short cause, the tail of its output, and a fix.
fn command_failure(
    command: &Command,
    status: &std::process::ExitStatus,
    stdout: &str,
    stderr: &str,
) -> anyhow::Error {
    let combined = format!("{stdout}\n{stderr}");
    let tail: Vec<&str> = combined.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(12)..].join("\n    ");
    let lower = combined.to_ascii_lowercase();
    let help = if lower.contains("linking with `") || lower.contains("linker `") {
        "the platform needs a working linker: set `linker` in its [package.metadata.multiarch.platform.\"...\"] table (rust-lld for musl targets, or the cross gcc)"
    } else if lower.contains("can't find crate for `std`")
        || lower.contains("target may not be installed")
    {
        "install the Rust target with `rustup target add <target>`"
    } else if lower.contains("no matching manifest")
        || lower.contains("manifest unknown")
        || lower.contains("pull access denied")
    {
        "the base image is not published for this platform: choose another base in `vars` for it"
    } else if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
    {
        let registry = command
            .args
            .last()
            .map_or("docker.io", |image| registry_of(image));
        return anyhow!("`{command}` was refused:\n    {tail}\nhelp: log in to {registry} first: `docker login {registry}` (credentials stay in Docker's own store)");
    } else if lower.contains("cannot connect to the docker daemon") {
        START_ENGINE
    } else {
        "read the command's output above, fix the cause, and run again; finished steps are cached"
    };
    anyhow!("`{command}` exited with {status}:\n    {tail}\nhelp: {help}")
}

/// Creates `dir` and removes every file below it that `keep` does not list, then the
/// directories left empty.
fn prune(dir: &Path, keep: &[PathBuf]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let keep: std::collections::HashSet<&Path> = keep.iter().map(PathBuf::as_path).collect();
    prune_below(dir, Path::new(""), &keep)?;
    Ok(())
}

/// Returns whether `dir/relative` is empty afterwards.
fn prune_below(
    dir: &Path,
    relative: &Path,
    keep: &std::collections::HashSet<&Path>,
) -> Result<bool> {
    let mut empty = true;
    for entry in std::fs::read_dir(dir.join(relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        let full = dir.join(&path);
        if entry.file_type()?.is_dir() {
            if prune_below(dir, &path, keep)? {
                std::fs::remove_dir(&full)
                    .with_context(|| format!("cannot remove {}", full.display()))?;
            } else {
                empty = false;
            }
        } else if keep.contains(path.as_path()) {
            empty = false;
        } else {
            std::fs::remove_file(&full)
                .with_context(|| format!("cannot remove stale {}", full.display()))?;
        }
    }
    Ok(empty)
}

/// Writes atomically (temporary file, then rename) and only when the content differs, so
/// unchanged files keep their timestamps and Docker's cache stays warm.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("multiarch-tmp");
    std::fs::write(&temporary, contents)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot move {} into place", path.display()))
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let contents =
        std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write_if_changed(to, &contents)?;
    let mode = std::fs::metadata(from)?.permissions();
    std::fs::set_permissions(to, mode)?;
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_and_refused_failures() {
        assert!(is_transient("error: read: connection reset by peer"));
        assert!(is_transient(
            "received unexpected HTTP status: 503 Service Unavailable"
        ));
        assert!(!is_transient("unauthorized: authentication required"));
        assert!(!is_transient(
            "denied: requested access to the resource is denied"
        ));
        assert!(!is_transient("manifest invalid"));
    }

    #[test]
    fn refused_pushes_name_the_registry_to_log_in_to() {
        let command = Command::new("docker", ["push", "ghcr.io/acme/hello:arm64v8-1.0.0"]);
        let status = std::process::Command::new("false").status().unwrap();
        let message = command_failure(
            &command,
            &status,
            "",
            "unauthorized: authentication required",
        )
        .to_string();
        assert!(message.ends_with("help: log in to ghcr.io first: `docker login ghcr.io` (credentials stay in Docker's own store)"), "{message}");
        assert_eq!(registry_of("acme/hello:1"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/hello:1"), "127.0.0.1:5000");
    }

    #[test]
    fn image_platform_is_checked() {
        let arm = Platform::parse("arm/v7").unwrap();
        let inspect = |arch: &str, variant: Option<&str>| {
            let variant = variant.map_or(String::new(), |v| format!(r#", "Variant": "{v}""#));
            format!(
                r#"[{{"Id": "sha256:1", "Size": 10, "Os": "linux", "Architecture": "{arch}"{variant}}}]"#
            )
        };
        assert!(check_image(arm, "x", &inspect("arm", Some("v7"))).is_ok());
        let message = format!(
            "{:#}",
            check_image(arm, "x", &inspect("amd64", None)).unwrap_err()
        );
        assert!(
            message.starts_with("the image built for linux/arm/v7 is linux/amd64"),
            "{message}"
        );
        assert!(check_image(arm, "x", &inspect("arm", Some("v6"))).is_err());
        let arm64 = Platform::parse("arm64").unwrap();
        assert!(check_image(arm64, "x", &inspect("arm64", None)).is_ok());
        assert!(check_image(arm64, "x", &inspect("arm64", Some("v8"))).is_ok());
    }

    #[test]
    fn contexts_are_written_atomically_and_pruned() {
        let dir = std::env::temp_dir().join(format!("multiarch-runner-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("stale-dir")).unwrap();
        std::fs::write(dir.join("stale"), "x").unwrap();
        std::fs::write(dir.join("hello"), "bin").unwrap();
        std::fs::create_dir_all(dir.join("keep-dir/empty-dir")).unwrap();
        std::fs::write(dir.join("keep-dir/kept"), "k").unwrap();
        prune(
            &dir,
            &["Dockerfile".into(), "hello".into(), "keep-dir/kept".into()],
        )
        .unwrap();
        write_if_changed(&dir.join("Dockerfile"), b"FROM scratch\n").unwrap();
        assert!(!dir.join("keep-dir/empty-dir").exists() && dir.join("keep-dir/kept").exists());
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["Dockerfile", "hello", "keep-dir"]);
        let modified = std::fs::metadata(dir.join("Dockerfile"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        prune(&dir, &["Dockerfile".into()]).unwrap();
        write_if_changed(&dir.join("Dockerfile"), b"FROM scratch\n").unwrap();
        assert_eq!(
            std::fs::metadata(dir.join("Dockerfile"))
                .unwrap()
                .modified()
                .unwrap(),
            modified
        );
        assert_eq!(dir_size(&dir), "FROM scratch\n".len() as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
