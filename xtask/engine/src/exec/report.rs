//! Output: progress goes to stderr; results (image refs, digests) and `--json` to stdout.

use serde::Serialize;

use crate::config::platform::Platform;
use crate::exec::{Backend, Work};
use crate::plan::schedule::{schedule, Phase};
use crate::plan::{ContextStep, Plan, StageStep};

/// What one platform produced.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlatformResult {
    pub(crate) package: String,
    pub(crate) platform: String,
    pub(crate) image: String,
    pub(crate) tags: Vec<String>,
    pub(crate) id: String,
    pub(crate) size: u64,
    /// Bytes sent to docker as the build context.
    pub(crate) context_bytes: u64,
    /// The registry digest, after a push.
    pub(crate) digest: Option<String>,
    /// The image was not built again: none of its inputs changed.
    pub(crate) reused: bool,
    /// The digest of its CycloneDX SBOM document, with `sbom = true`.
    pub(crate) sbom: Option<String>,
    /// The digest of its cosign signature, when signed.
    pub(crate) signature: Option<String>,
    pub(crate) seconds: f64,
}

/// One published tag.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ListResult {
    pub(crate) package: String,
    pub(crate) list: String,
    pub(crate) digest: String,
    /// The digest of its cosign signature, when signed.
    pub(crate) signature: Option<String>,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) packages: Vec<String>,
    pub(crate) platforms: Vec<PlatformResult>,
    pub(crate) manifests: Vec<ListResult>,
    pub(crate) seconds: f64,
}

/// Whether this runs as a GitHub Actions step.
pub(crate) fn on_github_actions() -> bool {
    std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true")
}

/// The refs and digests a run produced, per package, platform and tag: what signing and
/// provenance steps after a CI build take as input (`--metadata-file`).
#[derive(Debug, Serialize)]
pub(crate) struct Metadata<'a> {
    pub(crate) packages: Vec<PackageMetadata<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PackageMetadata<'a> {
    pub(crate) package: &'a str,
    pub(crate) platforms: Vec<PlatformMetadata<'a>>,
    pub(crate) tags: Vec<TagMetadata<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PlatformMetadata<'a> {
    pub(crate) platform: &'a str,
    pub(crate) image: &'a str,
    pub(crate) image_id: &'a str,
    /// The registry digest, after a push.
    pub(crate) digest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sbom: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signature: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TagMetadata<'a> {
    pub(crate) tag: &'a str,
    pub(crate) digest: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signature: Option<&'a str>,
}

impl Report {
    pub(crate) fn metadata(&self) -> Metadata<'_> {
        let packages = self
            .packages
            .iter()
            .map(|package| PackageMetadata {
                package,
                platforms: self
                    .platforms
                    .iter()
                    .filter(|p| &p.package == package)
                    .map(|p| PlatformMetadata {
                        platform: &p.platform,
                        image: &p.image,
                        image_id: &p.id,
                        digest: p.digest.as_deref(),
                        sbom: p.sbom.as_deref(),
                        signature: p.signature.as_deref(),
                    })
                    .collect(),
                tags: self
                    .manifests
                    .iter()
                    .filter(|m| &m.package == package)
                    .map(|m| TagMetadata {
                        tag: &m.list,
                        digest: &m.digest,
                        signature: m.signature.as_deref(),
                    })
                    .collect(),
            })
            .collect();
        Metadata { packages }
    }
}

/// Checks before anything compiles that `--metadata-file` can be written (not a directory,
/// its directory exists), and removes the previous run's file, so a failed run never
/// leaves a stale one behind. The dry run only checks.
pub(crate) fn prepare_metadata_file(
    path: Option<&std::path::Path>,
    remove_stale: bool,
) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let shown = crate::diagnostic::escape(&path.display().to_string());
    if path.is_dir() {
        return Err(crate::diagnostic::diagnostic(
            format!("--metadata-file {shown} is a directory"),
            "name a file, such as target/multiarch/metadata.json",
        ));
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(crate::diagnostic::diagnostic(
            format!(
                "--metadata-file {shown}: the directory {} does not exist",
                crate::diagnostic::escape(&parent.display().to_string())
            ),
            "create the directory first, or name a file in an existing one",
        ));
    }
    if remove_stale && path.exists() {
        std::fs::remove_file(path).map_err(|err| {
            crate::diagnostic::diagnostic(
                format!("--metadata-file {shown}: cannot remove the previous run's file: {err}"),
                "check the file's permissions",
            )
        })?;
    }
    Ok(())
}

/// Writes `--metadata-file`, and on GitHub Actions the step summary and outputs.
pub(crate) fn write_outputs(
    report: &Report,
    metadata_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let metadata = report.metadata();
    let digests: Vec<String> = report
        .platforms
        .iter()
        .filter_map(|p| Some(format!("{}@{}", p.image, p.digest.as_ref()?)))
        .chain(
            report
                .manifests
                .iter()
                .map(|m| format!("{}@{}", m.list, m.digest)),
        )
        .collect();
    let outputs = Outputs {
        metadata: &metadata,
        digests: &digests,
        summary: &markdown_summary(report),
    };
    outputs.write(metadata_file)
}

/// What a command hands to the steps after it: its metadata (the `--metadata-file` JSON),
/// its `ref@digest` lines, and its summary as Markdown.
pub(crate) struct Outputs<'a, M: Serialize> {
    pub(crate) metadata: &'a M,
    pub(crate) digests: &'a [String],
    pub(crate) summary: &'a str,
}

impl<M: Serialize> Outputs<'_, M> {
    /// Writes `metadata_file`, and on GitHub Actions appends the summary to
    /// `$GITHUB_STEP_SUMMARY` and the outputs `metadata` and `digests` to `$GITHUB_OUTPUT`.
    pub(crate) fn write(&self, metadata_file: Option<&std::path::Path>) -> anyhow::Result<()> {
        use anyhow::Context;
        let pretty = serde_json::to_string_pretty(self.metadata).expect("metadata serialises");
        if let Some(path) = metadata_file {
            crate::exec::files::write_if_changed(path, format!("{pretty}\n").as_bytes())
                .with_context(|| format!("cannot write the metadata file {}", path.display()))?;
        }
        if !on_github_actions() {
            return Ok(());
        }
        let append = |variable: &str, text: &str| -> anyhow::Result<()> {
            let Some(path) = std::env::var_os(variable) else {
                return Ok(());
            };
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut file| file.write_all(text.as_bytes()))
                .with_context(|| {
                    format!("cannot append to ${variable} ({})", path.to_string_lossy())
                })
        };
        append("GITHUB_STEP_SUMMARY", self.summary)?;
        let compact = serde_json::to_string(self.metadata).expect("metadata serialises");
        // A multi-line output needs a delimiter that no line can hold.
        let delimiter = format!("multiarch-{}", std::process::id());
        append(
            "GITHUB_OUTPUT",
            &format!(
                "metadata={compact}\ndigests<<{delimiter}\n{}\n{delimiter}\n",
                self.digests.join("\n")
            ),
        )
    }
}

/// The summary as a Markdown table, for `$GITHUB_STEP_SUMMARY`.
pub(crate) fn markdown_summary(report: &Report) -> String {
    let mut text =
        String::from("### Images\n\n| package | platform | image | digest |\n|---|---|---|---|\n");
    for p in &report.platforms {
        let digest = p.digest.as_deref().unwrap_or("(not pushed)");
        text.push_str(&format!(
            "| {} | {} | `{}` | `{digest}` |\n",
            p.package, p.platform, p.image
        ));
    }
    for m in &report.manifests {
        text.push_str(&format!(
            "| {} | (tag) | `{}` | `{}` |\n",
            m.package, m.list, m.digest
        ));
    }
    text.push('\n');
    text
}

/// Prints the results on stdout and the summary table on stderr.
pub(crate) fn print(report: &Report, json: bool) {
    eprintln!("{}", summary_table(report));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("the report serialises")
        );
        return;
    }
    for platform in &report.platforms {
        match &platform.digest {
            Some(digest) => println!("{}@{digest}", platform.image),
            None => println!("{}", platform.image),
        }
    }
    for list in &report.manifests {
        println!("{}@{}", list.list, list.digest);
    }
}

/// Prints every step of the plan on stdout, in the order a run with one job takes them.
pub(crate) fn print_dry_run<B: Backend>(plan: &Plan, backend: &B, json: bool) {
    let steps = dry_run_lines(plan, backend);
    if json {
        #[derive(Serialize)]
        struct DryRun<'a> {
            dry_run: bool,
            steps: &'a [String],
        }
        let dry_run = DryRun {
            dry_run: true,
            steps: &steps,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&dry_run).expect("the plan serialises")
        );
    } else {
        print!("{}", dry_run_text(&steps));
    }
}

/// The dry run as text: one line per step, each through the one escaper, so that no
/// name, path or value a step quotes can send a control character to the terminal
/// (commands quote theirs already; escaping leaves them as they are).
fn dry_run_text(steps: &[String]) -> String {
    steps
        .iter()
        .map(|step| format!("{}\n", crate::diagnostic::escape(step)))
        .collect()
}

/// Every step as `[scope] what it does` lines, phase by phase as the runner runs them.
pub(crate) fn dry_run_lines<B: Backend>(plan: &Plan, backend: &B) -> Vec<String> {
    let mut lines = Vec::new();
    for phase in schedule(plan) {
        match phase {
            Phase::BaseImages(bases) => {
                for base in bases {
                    let described = backend.describe(Work::BaseImage(base));
                    lines.extend(
                        described
                            .into_iter()
                            .map(|d| format!("[{}] {d}", base.platform)),
                    );
                }
            }
            Phase::Contexts => {
                for platform_plan in &plan.platforms {
                    let scope = plan.scope(&platform_plan.package, platform_plan.platform);
                    let described = platform_plan.context.iter().map(describe_context_step);
                    lines.extend(described.map(|d| format!("[{scope}] {d}")));
                }
            }
            // One cargo invocation per compatible group of targets and packages.
            Phase::Compile(groups) => {
                for (invocation, _) in groups {
                    let command = crate::exec::cargo::invocation_command(&invocation);
                    lines.push(format!("[{}] {command}", invocation.platforms()));
                }
            }
            Phase::Stage => {
                for platform_plan in &plan.platforms {
                    let scope = plan.scope(&platform_plan.package, platform_plan.platform);
                    let described = platform_plan.staging.iter().map(describe_stage_step);
                    lines.extend(described.map(|d| format!("[{scope}] {d}")));
                }
            }
            // A backend may join builds into one invocation, shown under every platform.
            Phase::Images(builds) => {
                let described = backend.describe_images(&builds);
                lines.extend(
                    described
                        .into_iter()
                        .map(|(scope, line)| format!("[{scope}] {line}")),
                );
            }
            Phase::Pushes(pushes) => {
                for (_, push) in pushes {
                    let scope = plan.scope(&push.package, push.platform);
                    let described = backend.describe(Work::Push(push));
                    lines.extend(described.into_iter().map(|d| format!("[{scope}] {d}")));
                }
            }
            Phase::Records(dir) => {
                for (_, push) in plan.pushes() {
                    let scope = plan.scope(&push.package, push.platform);
                    lines.push(format!(
                        "[{scope}] write its record into {}",
                        shown(dir.strip_prefix(&plan.root).unwrap_or(dir))
                    ));
                }
            }
            Phase::Publish(releases) => {
                let pushed = |release: &crate::plan::Release, platform: &Platform| {
                    format!("<digest pushed for {} {platform}>", release.package)
                };
                let build = |release: &crate::plan::Release, platform: &Platform| {
                    plan.platforms
                        .iter()
                        .find(|p| p.package == release.package && p.platform == platform)
                        .map(|p| p.image.clone())
                };
                lines.extend(crate::publish::describe(releases, &pushed, &build));
            }
        }
    }
    lines
}

fn shown(path: &std::path::Path) -> String {
    crate::process::shell_quote(&path.display().to_string())
}

/// What a context step does, as one line.
fn describe_context_step(step: &ContextStep) -> String {
    match step {
        ContextStep::Prepare { dir, keep } => format!(
            "prepare {} (the {} planned files stay, all else goes)",
            shown(dir),
            keep.len()
        ),
        ContextStep::Render { path: file, .. } => format!("render {}", shown(file)),
        ContextStep::Mirror { from, to, files } => {
            let from = if from.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                from
            };
            format!(
                "copy {} files from {} to {}",
                files.len(),
                shown(from),
                shown(to)
            )
        }
    }
}

/// What a staging step does, as one line.
fn describe_stage_step(step: &StageStep) -> String {
    match step {
        StageStep::Binary { from, to, .. } => format!("cp {} {}", shown(from), shown(to)),
        StageStep::Qemu { qemu_arch, to } => format!(
            "stage {} at {}",
            crate::emulation::qemu::binary_name(qemu_arch),
            shown(to)
        ),
        StageStep::StartsOnScratch { binary } => format!(
            "check that {} starts on scratch: a static ELF (no dynamic loader, no shared library)",
            shown(binary)
        ),
        StageStep::StartsOnBase { binary, base, .. } => format!(
            "check that {} starts on {base}: its dynamic loader, shared libraries and glibc are in the base (read only when it is not static)",
            shown(binary)
        ),
    }
}

/// The end-of-run table: platform, image, id or digest, size, context bytes, seconds.
pub(crate) fn summary_table(report: &Report) -> String {
    let mut rows = vec![[
        "package", "platform", "image", "image id", "digest", "size", "context", "build",
        "attached", "seconds",
    ]
    .map(String::from)
    .to_vec()];
    for p in &report.platforms {
        rows.push(vec![
            p.package.clone(),
            p.platform.clone(),
            p.image.clone(),
            short_id(&p.id),
            p.digest.as_deref().map_or("-".to_owned(), short_id),
            human_bytes(p.size),
            human_bytes(p.context_bytes),
            if p.reused { "reused" } else { "built" }.to_owned(),
            attached(p.sbom.is_some(), p.signature.is_some()),
            format!("{:.1}", p.seconds),
        ]);
    }
    for list in &report.manifests {
        rows.push(vec![
            list.package.clone(),
            "(list)".into(),
            list.list.clone(),
            "-".into(),
            short_id(&list.digest),
            "-".into(),
            "-".into(),
            "-".into(),
            attached(false, list.signature.is_some()),
            "-".into(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut table = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
    }
    table.push_str(&format!(
        "{} package(s), {} image(s) in {:.1}s",
        report.packages.len(),
        report.platforms.len(),
        report.seconds
    ));
    table
}

/// What went beside an image: its SBOM, its signature.
fn attached(sbom: bool, signature: bool) -> String {
    match (sbom, signature) {
        (true, true) => "sbom, signature".into(),
        (true, false) => "sbom".into(),
        (false, true) => "signature".into(),
        (false, false) => "-".into(),
    }
}

fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..=9_999 => format!("{bytes} B"),
        10_000..=9_999_999 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_row_per_platform_and_list() {
        let report = Report {
            packages: vec!["hello".into()],
            platforms: vec![PlatformResult {
                package: "hello".into(),
                platform: "linux/arm64".into(),
                image: "hello:arm64v8-0.1.0".into(),
                tags: vec![],
                id: format!("sha256:{}", "1".repeat(64)),
                size: 412_000,
                context_bytes: 411_900,
                digest: None,
                reused: true,
                sbom: None,
                signature: None,
                seconds: 3.25,
            }],
            manifests: vec![ListResult {
                package: "hello".into(),
                list: "r/hello:0.1.0".into(),
                digest: format!("sha256:{}", "2".repeat(64)),
                signature: None,
            }],
            seconds: 4.0,
        };
        let table = summary_table(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "package  platform     image                image id             digest               size      context   build   attached  seconds");
        assert_eq!(lines[1], "hello    linux/arm64  hello:arm64v8-0.1.0  sha256:111111111111  -                    412.0 kB  411.9 kB  reused  -         3.2");
        assert!(lines[2].starts_with(
            "hello    (list)       r/hello:0.1.0        -                    sha256:222222222222"
        ));
        assert_eq!(lines[3], "1 package(s), 1 image(s) in 4.0s");
        let metadata = serde_json::to_value(report.metadata()).unwrap();
        assert_eq!(
            metadata,
            serde_json::json!({"packages": [{
                "package": "hello",
                "platforms": [{"platform": "linux/arm64", "image": "hello:arm64v8-0.1.0", "image_id": format!("sha256:{}", "1".repeat(64)), "digest": null}],
                "tags": [{"tag": "r/hello:0.1.0", "digest": format!("sha256:{}", "2".repeat(64))}],
            }]})
        );
        assert!(markdown_summary(&report)
            .contains("| hello | linux/arm64 | `hello:arm64v8-0.1.0` | `(not pushed)` |"));
    }

    #[test]
    fn dry_run_lines_carry_no_control_characters() {
        let steps = vec![
            "[linux/amd64] copy files/\u{1b}]0;owned\u{7} into the context".to_owned(),
            "[linux/amd64] docker build --label $'a\\u001fb' .".to_owned(),
        ];
        assert_eq!(
            dry_run_text(&steps),
            "[linux/amd64] copy files/\\u{1b}]0;owned\\u{7} into the context\n\
             [linux/amd64] docker build --label $'a\\u001fb' .\n"
        );
    }
}
