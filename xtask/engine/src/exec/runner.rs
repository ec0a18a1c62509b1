//! The one runner: walks a plan's [`schedule`] (contexts, cargo, staging, parallel image
//! builds, parallel pushes by digest, then records or the publish), each image's work
//! through a [`Backend`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::image_ref::ImageRef;
use crate::config::platform::Platform;
use crate::diagnostic::{diagnostic, Diagnostic};
use crate::exec::files::{copy_if_changed, dir_size, mirror_if_changed, prune, write_if_changed};
use crate::exec::report::{ListResult, PlatformResult, Report};
use crate::exec::{Backend, Built, BuiltImage, Pushed};
use crate::plan::schedule::{schedule, Phase};
use crate::plan::{
    CargoInvocation, ContextStep, ImageBuild, Plan, PlatformPlan, Push, PushId, Release, StageStep,
};
use crate::publish::record::{Origin, Record};
use crate::publish::{Published, Share};

/// How the runner compiles: real cargo, or a recording fake in tests.
pub(crate) type Compile<'a> = dyn Fn(&CargoInvocation) -> Result<()> + Sync + 'a;

/// What a run produced: its report, and each platform's build result, in platform order.
pub(crate) struct Run<I> {
    pub(crate) report: Report,
    pub(crate) images: Vec<I>,
}

/// Executes `plan` through `backend` with the host's cargo, `jobs` platforms at a time.
pub(crate) fn execute<B: Backend>(plan: &Plan, backend: &B, jobs: usize) -> Result<Run<B::Image>> {
    let root = plan.root.clone();
    let compile = move |invocation: &CargoInvocation| {
        let sh = xshell::Shell::new()?;
        sh.change_dir(&root);
        crate::exec::cargo::run_invocation(invocation, &sh)
    };
    execute_with(plan, backend, &compile, jobs)
}

/// What the phases have produced so far.
struct Progress<I> {
    seconds: Vec<f64>,
    built: Vec<Built<I>>,
    pushed: BTreeMap<PushId, Pushed>,
    published: Vec<Published>,
    /// Each platform's SBOM digest, in platform order.
    sboms: Vec<Option<String>>,
}

/// Executes `plan` phase by phase, as [`schedule`] orders it.
pub(crate) fn execute_with<B: Backend>(
    plan: &Plan,
    backend: &B,
    compile: &Compile<'_>,
    jobs: usize,
) -> Result<Run<B::Image>> {
    let started = Instant::now();
    let mut progress = Progress {
        seconds: vec![0.0; plan.platforms.len()],
        built: Vec::new(),
        pushed: BTreeMap::new(),
        published: Vec::new(),
        sboms: Vec::new(),
    };
    for phase in schedule(plan) {
        match phase {
            // The pre-flight looked them up before the run began.
            Phase::BaseImages(_) => {}
            Phase::Contexts => write_contexts(plan)?,
            Phase::Compile(groups) => compile_all(&groups, compile, &mut progress.seconds)?,
            Phase::Stage => {
                let read =
                    |base: &str, platform: &'static Platform| backend.base_rootfs(base, platform);
                let bases = Bases::new(&read);
                progress.sboms = stage_all(plan, jobs, &bases, &mut progress.seconds)?;
            }
            Phase::Images(builds) => {
                progress.built = build_all(backend, &builds, jobs)?;
            }
            Phase::Pushes(pushes) => {
                progress.pushed = push_all(
                    plan,
                    backend,
                    &pushes,
                    &progress.built,
                    jobs,
                    &mut progress.seconds,
                )?;
            }
            Phase::Records(dir) => {
                for (id, record) in records(plan, &progress) {
                    let platform = plan.platforms[id.0].platform;
                    let path = crate::publish::record::write(dir, &record, platform)?;
                    eprintln!(
                        "[{}] record {}",
                        plan.scope(&record.package, platform),
                        path.display()
                    );
                }
            }
            Phase::Publish(releases) => {
                progress.published = publish(plan, releases, &progress)?;
            }
        }
    }
    Ok(finish(plan, progress, started))
}

/// The report and the build results, once every phase ran.
fn finish<I>(plan: &Plan, progress: Progress<I>, started: Instant) -> Run<I> {
    let Progress {
        seconds,
        built,
        pushed,
        published,
        sboms,
    } = progress;
    let signatures: BTreeMap<(String, String), String> = published
        .iter()
        .flat_map(|release| {
            release.platforms.iter().filter_map(|p| {
                Some((
                    (release.package.clone(), p.platform.clone()),
                    p.signature.clone()?,
                ))
            })
        })
        .collect();
    let manifests = published
        .iter()
        .flat_map(|release| {
            release.tags.iter().map(|list| ListResult {
                package: release.package.clone(),
                list: list.clone(),
                digest: release.index.clone(),
                signature: release.signature.clone(),
            })
        })
        .collect();
    let mut images = Vec::new();
    let mut platforms = Vec::new();
    for (index, (platform_plan, built)) in plan.platforms.iter().zip(built).enumerate() {
        let build = &platform_plan.image;
        platforms.push(PlatformResult {
            package: platform_plan.package.clone(),
            platform: platform_plan.platform.name(),
            // A pushed image is named by its repository and digest; a local one by its tag.
            image: match (&platform_plan.push, pushed.contains_key(&PushId(index))) {
                (Some(push), true) => push.repository.to_string(),
                _ => build.tags[0].to_string(),
            },
            tags: build.tags.iter().map(ImageRef::to_string).collect(),
            id: built.facts.id,
            size: built.facts.size,
            context_bytes: dir_size(&plan.root.join(&platform_plan.context_dir)),
            digest: pushed.get(&PushId(index)).map(|p| p.digest.clone()),
            reused: built.facts.reused,
            sbom: sboms.get(index).cloned().flatten(),
            signature: signatures
                .get(&(platform_plan.package.clone(), platform_plan.platform.name()))
                .cloned(),
            seconds: seconds[index],
        });
        images.push(built.image);
    }
    Run {
        report: Report {
            packages: plan.packages.clone(),
            platforms,
            manifests,
            seconds: started.elapsed().as_secs_f64(),
        },
        images,
    }
}

/// Writes every platform's context (directory, Dockerfile, mirrored files) before anything
/// compiles, so a bad template or file stops the run before any work.
pub(crate) fn write_contexts(plan: &Plan) -> Result<()> {
    for platform_plan in &plan.platforms {
        for step in &platform_plan.context {
            write_context_step(&plan.root, step)
                .with_context(|| format!("preparing the context for {}", platform_plan.platform))?;
        }
    }
    Ok(())
}

/// Every cargo invocation, one after another (cargo serialises builds on its target dir
/// anyway); each platform it serves is charged its time.
fn compile_all(
    groups: &[(CargoInvocation, Vec<usize>)],
    compile: &Compile<'_>,
    seconds: &mut [f64],
) -> Result<()> {
    let spent = run_parallel(groups, 1, |(invocation, _)| {
        let started = Instant::now();
        let label = match invocation.builds[0].packages.as_slice() {
            [_] => "cargo build".to_owned(),
            several => format!("cargo build ({})", several.join(", ")),
        };
        // Failures name their platform already.
        progress(invocation.platforms(), &label, || compile(invocation))?;
        Ok(started.elapsed().as_secs_f64())
    })?;
    for ((_, members), spent) in groups.iter().zip(spent) {
        for member in members {
            seconds[*member] += spent;
        }
    }
    Ok(())
}

/// Stages each platform's binaries (and QEMU) and writes its SBOM, `jobs` platforms at a
/// time; returns each platform's SBOM digest.
/// Reads a base image's file system (through the backend) for the start check.
pub(crate) type BaseRootfs<'a> =
    dyn Fn(&str, &'static Platform) -> Result<crate::rootfs::Rootfs> + Sync + 'a;

/// The file systems of the base images a run reads for the start check: each base is read
/// once per platform, however many binaries it checks.
pub(crate) struct Bases<'a> {
    read: &'a BaseRootfs<'a>,
    seen: Mutex<BTreeMap<(String, String), std::sync::Arc<crate::rootfs::Rootfs>>>,
}

impl<'a> Bases<'a> {
    pub(crate) fn new(read: &'a BaseRootfs<'a>) -> Bases<'a> {
        Bases {
            read,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// The file system of `base` for `platform`, read the first time it is asked for.
    pub(crate) fn get(
        &self,
        base: &str,
        platform: &'static Platform,
    ) -> Result<std::sync::Arc<crate::rootfs::Rootfs>> {
        let key = (base.to_owned(), platform.name());
        if let Some(known) = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(known.clone());
        }
        let rootfs = std::sync::Arc::new(
            (self.read)(base, platform)
                .with_context(|| format!("reading the base image {base} for {platform}"))?,
        );
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(key, rootfs.clone());
        Ok(rootfs)
    }
}

fn stage_all(
    plan: &Plan,
    jobs: usize,
    bases: &Bases<'_>,
    seconds: &mut [f64],
) -> Result<Vec<Option<String>>> {
    let staged = run_parallel(&plan.platforms, jobs, |platform_plan| {
        let started = Instant::now();
        let scope = plan.scope(&platform_plan.package, platform_plan.platform);
        for step in &platform_plan.staging {
            stage(&plan.root, platform_plan, step, bases)
                .with_context(|| format!("staging failed for {scope}"))?;
        }
        let sbom = match &platform_plan.image.sbom_of {
            Some(sbom) => Some(
                write_sbom(&plan.root, platform_plan, sbom)
                    .with_context(|| format!("writing the SBOM failed for {scope}"))?,
            ),
            None => None,
        };
        Ok((started.elapsed().as_secs_f64(), sbom))
    })?;
    let mut sboms = Vec::new();
    for (total, (spent, sbom)) in seconds.iter_mut().zip(staged) {
        *total += spent;
        sboms.push(sbom);
    }
    Ok(sboms)
}

/// Builds every image, then checks each carries its platform and a sha256 id.
fn build_all<B: Backend>(
    backend: &B,
    builds: &[&ImageBuild],
    jobs: usize,
) -> Result<Vec<Built<B::Image>>> {
    let started = Instant::now();
    eprintln!("[{}] image build ...", names(builds));
    let built = backend.build_images(builds, jobs);
    let built: Vec<Result<Built<B::Image>>> = builds
        .iter()
        .zip(built)
        .map(|(build, result)| {
            let built =
                result.with_context(|| format!("image build failed for {}", build.platform))?;
            check_platform(build.platform, &built.facts)?;
            checked_digest(built.facts.id.clone(), "the built image's id")?;
            Ok(built)
        })
        .collect();
    let built = all_or_failures(built)?;
    eprintln!(
        "[{}] image build done ({:.1}s)",
        names(builds),
        started.elapsed().as_secs_f64()
    );
    Ok(built)
}

/// Pushes every platform by digest, `jobs` at a time; returns what each push left.
fn push_all<B: Backend>(
    plan: &Plan,
    backend: &B,
    pushes: &[(PushId, &Push)],
    built: &[Built<B::Image>],
    jobs: usize,
    seconds: &mut [f64],
) -> Result<BTreeMap<PushId, Pushed>> {
    let pushed = run_parallel(pushes, jobs, |(id, push)| {
        let started = Instant::now();
        let scope = plan.scope(&push.package, push.platform);
        progress(&scope, "push", || {
            retrying(|| backend.push(push, &built[id.0].image))
                .and_then(|pushed| {
                    checked_digest(pushed.digest.clone(), "the pushed image").map(|_| pushed)
                })
                .with_context(|| format!("push failed for {scope}"))
        })
        .map(|pushed| (pushed, started.elapsed().as_secs_f64()))
    })?;
    let mut all = BTreeMap::new();
    for ((id, _), (pushed, spent)) in pushes.iter().zip(pushed) {
        seconds[id.0] += spent;
        all.insert(*id, pushed);
    }
    Ok(all)
}

/// The record of every push of the run, in platform order, with the push it records.
fn records<I>(plan: &Plan, progress: &Progress<I>) -> Vec<(PushId, Record)> {
    plan.pushes()
        .filter_map(|(id, push)| {
            let pushed = progress.pushed.get(&id)?;
            let platform_plan = &plan.platforms[id.0];
            let record = Record {
                schema: crate::publish::record::SCHEMA.to_owned(),
                package: push.package.clone(),
                platform: push.platform.name(),
                repository: push.repository.to_string(),
                digest: pushed.digest.clone(),
                media_type: pushed.media_type.clone(),
                size: pushed.size,
                commit: plan.revision.clone(),
                dirty: plan.dirty,
                inputs: crate::exec::files::inputs_digest(&plan.root, &platform_plan.image),
                tool: Record::tool(),
                sbom: progress.sboms.get(id.0).cloned().flatten(),
                attached: pushed.attached.clone(),
            };
            Some((id, record))
        })
        .collect()
}

/// Publishes every release from this run's pushes, through the one publishing path.
fn publish<I>(plan: &Plan, releases: &[Release], progress: &Progress<I>) -> Result<Vec<Published>> {
    let mut shares = Vec::new();
    for (id, record) in records(plan, progress) {
        shares.push(Share {
            checked: record.check(Origin::ThisRun)?,
            build: Some(plan.platforms[id.0].image.clone()),
        });
    }
    let scratch = crate::layout::Layout::new(&plan.target_dir).blob_store();
    let places = crate::publish::Places {
        root: &plan.root,
        scratch: &scratch,
    };
    crate::publish::publish(releases, shares, &places)
}

/// The platforms of `builds`, for progress lines.
fn names(builds: &[&ImageBuild]) -> String {
    builds
        .iter()
        .map(|b| b.platform.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shows a piece of work's start and end: processes can take minutes (rustc under QEMU).
/// On GitHub Actions, the work's own output is folded into a log group.
fn progress<T>(
    scope: impl std::fmt::Display,
    label: &str,
    work: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let grouped = label.starts_with("cargo build") && crate::exec::report::on_github_actions();
    if grouped {
        eprintln!("::group::[{scope}] {label}");
    }
    eprintln!("[{scope}] {label} ...");
    let started = Instant::now();
    let result = work();
    if grouped {
        eprintln!("::endgroup::");
    }
    let result = result?;
    eprintln!(
        "[{scope}] {label} done ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(result)
}

/// Executes a step that writes the context.
fn write_context_step(root: &std::path::Path, step: &ContextStep) -> Result<()> {
    match step {
        ContextStep::Prepare { dir, keep } => prune(&root.join(dir), keep),
        ContextStep::Render { path, contents } => {
            write_if_changed(&root.join(path), contents.as_bytes())
        }
        ContextStep::Mirror { from, to, files } => files.iter().try_for_each(|file| {
            mirror_if_changed(&root.join(from).join(file), &root.join(to).join(file))
        }),
    }
}

/// The image's SBOM documents, from what cargo resolves for it and what was staged.
/// Returns the digest of the CycloneDX document, for the report.
fn write_sbom(
    root: &std::path::Path,
    platform_plan: &PlatformPlan,
    sbom: &crate::plan::SbomPlan,
) -> Result<String> {
    let context = root.join(&platform_plan.context_dir);
    let (cyclonedx, spdx) = crate::supply::sbom::documents(root, sbom, &context)?;
    let cyclonedx = serde_json::to_vec_pretty(&cyclonedx)?;
    write_if_changed(&sbom.cyclonedx, &cyclonedx)?;
    write_if_changed(&sbom.spdx, &serde_json::to_vec_pretty(&spdx)?)?;
    Ok(crate::digest::Digest::of(&cyclonedx).to_string())
}

/// Executes a staging step.
fn stage(
    root: &std::path::Path,
    platform_plan: &PlatformPlan,
    step: &StageStep,
    bases: &Bases<'_>,
) -> Result<()> {
    match step {
        StageStep::Binary { from, to, mtime } => {
            copy_if_changed(&root.join(from), &root.join(to))?;
            // The commit time, so a rebuild elsewhere stages the same file.
            match mtime {
                Some(epoch) => set_mtime(&root.join(to), *epoch),
                None => Ok(()),
            }
        }
        StageStep::Qemu { qemu_arch, to } => {
            let binary = crate::emulation::qemu::locate(&platform_plan.qemu, qemu_arch)?;
            copy_if_changed(&binary, &root.join(to))
        }
        StageStep::StartsOnScratch { .. } | StageStep::StartsOnBase { .. } => {
            start_check(root, platform_plan.platform, step, bases).unwrap_or(Ok(()))
        }
    }
}

/// Runs a start check step, the run's and `doctor`'s; `None` for any other step.
pub(crate) fn start_check(
    root: &std::path::Path,
    platform: &'static Platform,
    step: &StageStep,
    bases: &Bases<'_>,
) -> Option<Result<()>> {
    match step {
        StageStep::StartsOnScratch { binary } => {
            Some(starts_on_scratch(&root.join(binary), platform))
        }
        StageStep::StartsOnBase {
            binary,
            base,
            target,
        } => Some(starts_on_base(
            &root.join(binary),
            platform,
            (base, target),
            || bases.get(base, platform),
        )),
        _ => None,
    }
}

/// Refuses a binary that could not start on its base: a dynamic loader or a shared library
/// the base lacks, or a glibc older than the binary asks for. A static binary needs
/// nothing, so its base is never read.
fn starts_on_base(
    binary: &std::path::Path,
    platform: &Platform,
    (base, target): (&str, &str),
    rootfs: impl FnOnce() -> Result<std::sync::Arc<crate::rootfs::Rootfs>>,
) -> Result<()> {
    let needs = crate::elf::read(binary)?;
    if needs.is_static() {
        return Ok(());
    }
    let rootfs = rootfs()?;
    let name = binary.file_name().unwrap_or_default().to_string_lossy();
    let mut missing: Vec<String> = needs
        .interpreter
        .iter()
        .filter(|loader| !rootfs.has_file(loader))
        .map(|loader| format!("the dynamic loader {}", crate::diagnostic::escape(loader)))
        .collect();
    missing.extend(
        needs
            .libraries
            .iter()
            .filter(|library| rootfs.find_library(library).is_none())
            .map(|library| crate::diagnostic::escape(library)),
    );
    let static_fix = format!("link it statically (`+crt-static` or a musl target under [package.metadata.multiarch.platform.\"{platform}\"])");
    if !missing.is_empty() {
        return Err(diagnostic(
            format!("`{name}` needs {}, which the base image {base} does not have for {platform}: it could not start; nothing was built or pushed", missing.join(", ")),
            format!("{static_fix}, or use a base image that has them"),
        ));
    }
    match (needs.glibc, rootfs.glibc()) {
        (Some(wanted), Some(has)) if has < wanted => Err(diagnostic(
            format!(
                "`{name}` needs glibc {}.{} or newer, and the C library of the base image {base} for {platform} provides symbols up to GLIBC_{}.{}: it could not start (\"version `GLIBC_{}.{}' not found\"); nothing was built or pushed",
                wanted.0, wanted.1, has.0, has.1, wanted.0, wanted.1
            ),
            format!(
                "build against the base's glibc with zig (`toolchain = \"zig\"` and a glibc suffix on the target, such as `target = \"{}.{}.{}\"`), or {static_fix}, or use a newer base",
                target, has.0, has.1
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses a binary that could not start in an image `FROM scratch`: one that names a
/// dynamic loader or shared libraries, which such an image lacks ("no such file or
/// directory" at `docker run`).
fn starts_on_scratch(binary: &std::path::Path, platform: &Platform) -> Result<()> {
    let needs = crate::elf::read(binary)?;
    if needs.is_static() {
        return Ok(());
    }
    let name = binary.file_name().unwrap_or_default().to_string_lossy();
    Err(diagnostic(
        format!(
            "`{name}` needs {}, and its image is `FROM scratch`, which has none: it could not start (\"no such file or directory\"); nothing was built or pushed",
            needs.describe()
        ),
        format!(
            "link it statically: `rustflags = [\"-C\", \"target-feature=+crt-static\"]` under [package.metadata.multiarch.platform.\"{platform}\"], or a musl target there, or a base image that has the C library"
        ),
    ))
}

/// The built image must carry exactly the platform it was built for. An engine that
/// records no variant (Podman 4.3 building `FROM scratch` for arm/v7) is taken at its
/// word on the architecture; the manifest list names the variant either way.
fn check_platform(platform: &Platform, built: &BuiltImage) -> Result<()> {
    let variant = built.variant.as_deref().filter(|v| !v.is_empty());
    if platform.matches(&built.os, &built.architecture, variant)
        || (variant.is_none() && platform.matches(&built.os, &built.architecture, platform.variant))
    {
        return Ok(());
    }
    let actual = [built.os.as_str(), built.architecture.as_str()]
        .into_iter()
        .chain(built.variant.as_deref())
        .collect::<Vec<_>>()
        .join("/");
    Err(diagnostic(
        format!("the image built for {platform} is {actual}: its base image is probably not published for {platform}"),
        format!("pick a base with a {platform} variant (set it per platform in `vars`), or drop {platform} from `platforms`"),
    ))
}

/// A digest an engine or registry reported, accepted only as `sha256:<64 hex>`: nothing
/// else ever reaches stdout, the metadata file or CI outputs.
fn checked_digest(digest: String, what: &str) -> Result<String> {
    match crate::digest::Digest::parse(digest.trim()) {
        Some(digest) => Ok(digest.to_string()),
        None => Err(diagnostic(
            format!(
                "{what} came back with `{}`, which is not a sha256 digest",
                crate::diagnostic::escape(&digest)
            ),
            "check the engine and registry; nothing more was published",
        )),
    }
}

/// Runs `work` under the one retry policy: failures the program reported as transient
/// (network trouble, 5xx, 429) are tried again with backoff.
fn retrying<T>(work: impl FnMut() -> Result<T>) -> Result<T> {
    crate::retry::DEFAULT.run(work, |outcome| match outcome {
        Err(err) if crate::process::is_transient(err) => {
            let cause = Diagnostic::of(err).cause;
            let last = cause.lines().last().unwrap_or_default().trim().to_owned();
            crate::retry::Verdict::Again {
                why: last,
                after: None,
            }
        }
        _ => crate::retry::Verdict::Final,
    })
}

/// Runs `work` on every item, `jobs` at a time; once all have ended, fails naming each
/// failed platform, or returns the results in item order.
fn run_parallel<I: Sync, T: Send>(
    items: &[I],
    jobs: usize,
    work: impl Fn(&I) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    all_or_failures(each_in_parallel(items, jobs, work))
}

/// Runs `work` on every item, `jobs` at a time; one result per item, in item order.
pub(crate) fn each_in_parallel<I: Sync, T: Send>(
    items: &[I],
    jobs: usize,
    work: impl Fn(&I) -> Result<T> + Sync,
) -> Vec<Result<T>> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let index = {
                    let mut next = next.lock().unwrap();
                    *next += 1;
                    *next - 1
                };
                let Some(item) = items.get(index) else { break };
                let outcome = work(item);
                results.lock().unwrap()[index] = Some(outcome);
            });
        }
    });
    let results = results.into_inner().unwrap();
    results
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// Every value, or one error naming every failure (each already names its platform).
fn all_or_failures<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    let mut values = Vec::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(err) => failures.push(err),
        }
    }
    match failures.len() {
        0 => Ok(values),
        1 => Err(failures.pop().expect("one failure")),
        n => {
            let diagnostics: Vec<Diagnostic> = failures.iter().map(Diagnostic::of).collect();
            let causes: Vec<&str> = diagnostics.iter().map(|d| d.cause.as_str()).collect();
            let mut helps: Vec<&str> = diagnostics
                .iter()
                .map(|d| d.help.as_str())
                .filter(|h| !h.is_empty())
                .collect();
            helps.dedup();
            Err(diagnostic(
                format!("{n} platforms failed:\n{}", causes.join("\n")),
                helps.join("; "),
            ))
        }
    }
}

/// Sets a file's modification time to `epoch` seconds.
fn set_mtime(path: &std::path::Path, epoch: u64) -> Result<()> {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(epoch);
    let file = std::fs::File::options().write(true).open(path)?;
    file.set_modified(time)
        .with_context(|| format!("cannot set the time of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Work;

    /// Records the order of the work it is given, and fails where told to.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
        fail_build_of: Option<&'static str>,
        transient_push_failures: Mutex<u32>,
    }

    impl Recorder {
        fn cargo(&self, invocation: &CargoInvocation) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("cargo {}", invocation.platforms()));
            Ok(())
        }

        fn run(&self, plan: &Plan, jobs: usize) -> Result<Run<&'static str>> {
            execute_with(plan, self, &|build| self.cargo(build), jobs)
        }
    }

    impl Backend for Recorder {
        type Image = &'static str;

        fn describe(&self, _: Work<'_>) -> Vec<String> {
            Vec::new()
        }
        fn build_image(&self, build: &ImageBuild) -> Result<Built<&'static str>> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("build {}", build.platform));
            if self.fail_build_of == Some(build.platform.arch) {
                anyhow::bail!("build broke");
            }
            Ok(Built {
                facts: BuiltImage {
                    id: format!("sha256:{}", "1".repeat(64)),
                    size: 1,
                    os: "linux".into(),
                    architecture: build.platform.arch.into(),
                    variant: build.platform.variant.map(str::to_owned),
                    reused: false,
                },
                image: build.platform.arch,
            })
        }
        fn base_rootfs(&self, base: &str, _: &'static Platform) -> Result<crate::rootfs::Rootfs> {
            anyhow::bail!("the recorder has no base {base}")
        }
        fn push(&self, push: &Push, image: &&'static str) -> Result<Pushed> {
            assert_eq!(*image, push.platform.arch, "each push gets its own build");
            let mut transient = self.transient_push_failures.lock().unwrap();
            if *transient > 0 {
                *transient -= 1;
                return Err(crate::process::CommandFailed {
                    command: "docker push".into(),
                    status: "exit status: 1".into(),
                    stdout: String::new(),
                    stderr: "received unexpected HTTP status: 503 Service Unavailable".into(),
                    help: None,
                    refused: false,
                }
                .into());
            }
            self.calls
                .lock()
                .unwrap()
                .push(format!("push {}", push.platform));
            Ok(Pushed {
                digest: format!("sha256:{:0>64}", push.platform.arch.len()),
                media_type: crate::registry::OCI_MANIFEST.into(),
                size: 500,
                attached: Vec::new(),
            })
        }
    }

    /// The push plan with its root in a temporary directory, writing records there
    /// instead of publishing (which the publish module's tests cover).
    fn plan_in_temp_root(name: &str) -> Plan {
        let mut plan = crate::plan::tests::push_plan();
        plan.root =
            std::env::temp_dir().join(format!("multiarch-runner-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&plan.root);
        plan.releases.clear();
        plan.records = Some(plan.root.join("records"));
        for platform_plan in &plan.platforms {
            for step in &platform_plan.staging {
                if let StageStep::Binary { from, .. } = step {
                    std::fs::create_dir_all(plan.root.join(from).parent().unwrap()).unwrap();
                    std::fs::write(plan.root.join(from), crate::elf::tests::STATIC_ELF).unwrap();
                }
            }
        }
        plan
    }

    #[test]
    fn pushes_start_after_every_build_and_each_record_names_its_own_push() {
        let plan = plan_in_temp_root("order");
        let recorder = Recorder::default();
        let report = recorder.run(&plan, 2).unwrap().report;
        let calls = recorder.calls.into_inner().unwrap();
        let last_build = calls.iter().rposition(|c| c.starts_with("build ")).unwrap();
        let first_push = calls.iter().position(|c| c.starts_with("push ")).unwrap();
        assert!(last_build < first_push, "{calls:#?}");
        assert_eq!(calls.iter().filter(|c| c.starts_with("push ")).count(), 3);
        let expected: Vec<String> = ["amd64", "arm64", "arm"]
            .iter()
            .map(|a| format!("sha256:{:0>64}", a.len()))
            .collect();
        let records = plan.root.join("records");
        for (slug, digest) in ["linux-amd64", "linux-arm64", "linux-arm-v7"]
            .iter()
            .zip(&expected)
        {
            let path = records.join(format!("hello-{slug}.json"));
            let record = crate::publish::record::read(&path).unwrap().record;
            assert_eq!(&record.digest, digest, "{}", path.display());
            assert_eq!(record.repository, "127.0.0.1:5000/hello");
            assert_eq!(record.size, 500);
        }
        assert!(report.manifests.is_empty());
        assert_eq!(
            report.platforms[1].digest.as_deref(),
            Some(expected[1].as_str())
        );
        std::fs::remove_dir_all(&plan.root).unwrap();
    }

    #[test]
    fn a_failed_build_pushes_nothing() {
        let plan = plan_in_temp_root("failed");
        let recorder = Recorder {
            fail_build_of: Some("arm64"),
            ..Recorder::default()
        };
        let err = recorder.run(&plan, 2).err().expect("the run fails");
        assert!(
            format!("{err:#}").contains("image build failed for linux/arm64"),
            "{err:#}"
        );
        let calls = recorder.calls.into_inner().unwrap();
        assert!(!calls.iter().any(|c| c.starts_with("push ")), "{calls:#?}");
        std::fs::remove_dir_all(&plan.root).unwrap();
    }

    #[test]
    fn transient_push_failures_are_retried() {
        let plan = plan_in_temp_root("retry");
        let recorder = Recorder {
            transient_push_failures: Mutex::new(1),
            ..Recorder::default()
        };
        recorder.run(&plan, 1).unwrap();
        let calls = recorder.calls.into_inner().unwrap();
        assert_eq!(
            calls.iter().filter(|c| c.starts_with("push ")).count(),
            3,
            "{calls:#?}"
        );
        std::fs::remove_dir_all(&plan.root).unwrap();
    }

    #[test]
    fn image_platform_is_checked() {
        let arm = Platform::parse("arm/v7").unwrap();
        let built = |arch: &str, variant: Option<&str>| BuiltImage {
            id: "sha256:1".into(),
            size: 10,
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(str::to_owned),
            reused: false,
        };
        assert!(check_platform(arm, &built("arm", Some("v7"))).is_ok());
        let message = format!(
            "{:#}",
            check_platform(arm, &built("amd64", None)).unwrap_err()
        );
        assert!(
            message.starts_with("the image built for linux/arm/v7 is linux/amd64"),
            "{message}"
        );
        assert!(check_platform(arm, &built("arm", Some("v6"))).is_err());
        assert!(
            check_platform(arm, &built("arm", Some(""))).is_ok(),
            "no variant recorded"
        );
        assert!(
            check_platform(arm, &built("arm", None)).is_ok(),
            "no variant recorded"
        );
        assert!(check_platform(arm, &built("arm64", Some(""))).is_err());
        let arm64 = Platform::parse("arm64").unwrap();
        assert!(check_platform(arm64, &built("arm64", None)).is_ok());
        assert!(check_platform(arm64, &built("arm64", Some("v8"))).is_ok());
    }
}
