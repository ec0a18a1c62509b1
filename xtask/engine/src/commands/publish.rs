//! `cargo xtask publish`: joins the records of any number of machines (or `repo@sha256:`
//! references built by other tools) into one index per package, checked against the
//! registry, signed when asked, and only then tagged.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::commands::cli::PublishArgs;
use crate::diagnostic::{diagnostic, escape};
use crate::plan::Release;
use crate::publish::record::{self, Checked};
use crate::publish::{Published, Share};

pub(crate) fn run(args: &PublishArgs) -> Result<()> {
    let configs = super::load_configs(&args.selection, &args.cli_layer())?;
    if configs.len() > 1 && args.overrides.image.is_some() {
        return Err(diagnostic(
            format!(
                "--image names one repository, and this publish releases {} packages",
                configs.len()
            ),
            "pick one package with `-p PACKAGE`, or set `image` in each package's [package.metadata.multiarch]",
        ));
    }
    crate::exec::report::prepare_metadata_file(args.metadata_file.as_deref(), false)?;
    let (files, references) = sources(&args.sources)?;
    let records: Vec<Checked> = files
        .iter()
        .map(|path| record::read(path))
        .collect::<Result<_>>()?;
    // The tags are the records' commit's (`{{ sha }}`), whatever this checkout is at.
    let commit = records.iter().find_map(|r| r.record.commit.clone());
    let named = |package: &str| records.iter().any(|r| r.record.package == package);
    let releases: Vec<Release> = configs
        .iter()
        // Without -p, the packages the records name; references alone, every package.
        .filter(|c| {
            !args.selection.packages.is_empty() || records.is_empty() || named(&c.package.name)
        })
        .map(|config| crate::plan::release_of(config, commit.clone()))
        .collect::<Result<_>>()?;
    let mut shares: Vec<Share> = records
        .into_iter()
        .map(|checked| Share {
            checked,
            build: None,
        })
        .collect();
    for reference in &references {
        shares.push(crate::publish::share_of_reference(reference, &releases)?);
    }
    let root = &configs[0].workspace_root;
    if args.dry_run {
        return dry_run(&releases, &shares, args.json);
    }
    super::image::signing_checks(root, &releases)?;
    let scratch = crate::layout::Layout::new(&configs[0].target_dir).blob_store();
    let places = crate::publish::Places {
        root,
        scratch: &scratch,
    };
    let started = std::time::Instant::now();
    let published = crate::publish::publish(&releases, shares, &places)?;
    eprintln!(
        "published {} packages in {:.1} s",
        published.len(),
        started.elapsed().as_secs_f64()
    );
    output(&published, args)
}

/// The record files (each file, and every `*.json` under each directory) and references.
fn sources(sources: &[String]) -> Result<(Vec<std::path::PathBuf>, Vec<String>)> {
    let (mut files, mut references) = (Vec::new(), Vec::new());
    for source in sources {
        let path = Path::new(source);
        if path.is_dir() {
            files.extend(record::files_under(path)?);
        } else if path.is_file() {
            files.push(path.to_owned());
        } else if source.contains("@sha256:") {
            references.push(source.clone());
        } else {
            return Err(diagnostic(
                format!("`{}` is no file, directory or REPO@sha256:... reference", escape(source)),
                "pass the records `cargo xtask image --push-by-digest` wrote (files or their directory), or references pinned by digest",
            ));
        }
    }
    Ok((files, references))
}

/// What a publish would do, with the records' digests; nothing is read or written.
fn dry_run(releases: &[Release], shares: &[Share], json: bool) -> Result<()> {
    let digest = |release: &Release, platform: &crate::config::platform::Platform| {
        shares
            .iter()
            .find(|s| s.checked.record.package == release.package && s.checked.platform == platform)
            .map_or_else(
                || "<no record>".to_owned(),
                |s| s.checked.digest.to_string(),
            )
    };
    let lines = crate::publish::describe(releases, &digest, &|_, _| None);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "steps": lines }))?
        );
    } else {
        for line in lines {
            println!("{}", escape(&line));
        }
    }
    Ok(())
}

/// What was published as a Markdown table, for the step summary and stderr.
fn markdown(published: &[Published]) -> String {
    let mut summary =
        String::from("### Published\n\n| package | platform | tag | digest |\n|---|---|---|---|\n");
    for release in published {
        for platform in &release.platforms {
            summary.push_str(&format!(
                "| {} | {} | `{}` | `{}` |\n",
                release.package,
                platform.platform,
                platform.tags.join("`, `"),
                platform.digest
            ));
        }
        for tag in &release.tags {
            summary.push_str(&format!(
                "| {} | (index) | `{tag}` | `{}` |\n",
                release.package, release.index
            ));
        }
    }
    summary
}

/// The published references on stdout (or JSON), and the metadata file.
fn output(published: &[Published], args: &PublishArgs) -> Result<()> {
    #[derive(Serialize)]
    struct Platform<'a> {
        platform: &'a str,
        digest: &'a str,
        tags: &'a [String],
        signature: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Release<'a> {
        package: &'a str,
        repository: &'a str,
        digest: &'a str,
        signature: Option<&'a str>,
        tags: &'a [String],
        platforms: Vec<Platform<'a>>,
    }
    let releases: Vec<Release<'_>> = published
        .iter()
        .map(|p| Release {
            package: &p.package,
            repository: &p.repository,
            digest: &p.index,
            signature: p.signature.as_deref(),
            tags: &p.tags,
            platforms: p
                .platforms
                .iter()
                .map(|platform| Platform {
                    platform: &platform.platform,
                    digest: &platform.digest,
                    tags: &platform.tags,
                    signature: platform.signature.as_deref(),
                })
                .collect(),
        })
        .collect();
    let metadata = serde_json::json!({ "releases": releases });
    let digests: Vec<String> = published
        .iter()
        .flat_map(|release| {
            let platforms = release
                .platforms
                .iter()
                .map(|p| format!("{}@{}", release.repository, p.digest));
            let tags = release
                .tags
                .iter()
                .map(|tag| format!("{tag}@{}", release.index));
            platforms.chain(tags).collect::<Vec<_>>()
        })
        .collect();
    let summary = markdown(published);
    let outputs = crate::exec::report::Outputs {
        metadata: &metadata,
        digests: &digests,
        summary: &summary,
    };
    outputs.write(args.metadata_file.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&metadata)?);
        return Ok(());
    }
    eprint!("{summary}");
    for release in published {
        for tag in &release.tags {
            println!("{tag}@{}", release.index);
        }
    }
    Ok(())
}
