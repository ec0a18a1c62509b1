//! `cargo xtask doctor`: one table of what this host and workspace have, what is missing,
//! and the exact fix for each; exit 1 when the configured platforms lack something.

use anyhow::Result;

use super::Outcome;
use crate::backend::oci::blobs::{BaseLayers, BASE_DEADLINE};
use crate::commands::cli::Selection;
use crate::config::{Backend, BuildMode, Config};
use crate::diagnostic::Diagnostic;
use crate::plan::{Builder, Plan};
use crate::preflight::{self, credentials, Finding, PlatformChecks, Status};
use crate::registry::Registry;

pub(crate) fn run(selection: &Selection) -> Result<Outcome> {
    let rows = diagnose(selection);
    println!("{}", table(&rows));
    Ok(if rows.iter().any(|r| r.status == Status::Missing) {
        Outcome::ProblemsFound
    } else {
        Outcome::Success
    })
}

/// Runs every pre-flight check; it never fails, it reports.
pub(crate) fn diagnose(selection: &Selection) -> Vec<Finding> {
    let config = super::load_config(selection, &selection.cli_layer());
    if let Some(config) = config.as_ref().ok().filter(|c| c.backend == Backend::Oci) {
        return oci_rows(config);
    }
    let (engine, mut rows) = preflight::engine();
    rows.extend(preflight::engine_details(&engine));
    let config = match config {
        Ok(config) => config,
        Err(err) => {
            rows.push(Finding::failed("config", Diagnostic::of(&err)));
            return rows;
        }
    };
    rows.push(Finding::ok("config", config_detail(&config)));
    let plan = super::plan_inputs(&config, super::Pushing::No, engine.builder)
        .and_then(|inputs| Plan::new(&config, &inputs));
    match plan {
        Ok(plan) => {
            let daemon = engine.require_daemon().ok();
            if let Some(docker) = &daemon {
                rows.extend(preflight::attestations(&config, &engine, docker));
            }
            let checks = PlatformChecks {
                config: &config,
                plan: &plan,
                engine: daemon.as_ref(),
            };
            rows.extend(checks.host(&preflight::RustToolchain::locate()));
            if let Some(docker) = &daemon {
                let backend = crate::backend::docker::DockerBackend::new(
                    docker.clone(),
                    &config.workspace_root,
                    &config.target_dir,
                );
                let read = |base: &str, platform| {
                    crate::exec::Backend::base_rootfs(&backend, base, platform)
                };
                rows.extend(checks.starts(&crate::exec::runner::Bases::new(&read)));
            }
            rows.extend(checks.engines());
            rows.extend(checks.base_images());
        }
        Err(err) => rows.push(Finding::failed("template", Diagnostic::of(&err))),
    }
    rows.push(credentials::finding(&config));
    rows.extend(cosign_finding(&config));
    rows
}

/// Whether cosign is there, when `sign` is configured.
fn cosign_finding(config: &Config) -> Option<Finding> {
    config.sign.as_ref()?;
    Some(match which::which("cosign") {
        Ok(path) => Finding::ok("cosign", path.display().to_string()),
        Err(_) => Finding::new(
            "cosign",
            Status::Missing,
            "`sign` is configured, and cosign is not on PATH",
            "install cosign 2 (Debian 13: apt install cosign)",
        ),
    })
}

/// The package and its platforms, for the config row.
fn config_detail(config: &Config) -> String {
    let names: Vec<String> = config.platforms.iter().map(|p| p.name()).collect();
    let mode = match config.build {
        BuildMode::Cross => "cross",
        BuildMode::Container => "container",
    };
    format!(
        "package `{}`: {} ({mode})",
        config.package.name,
        names.join(", ")
    )
}

/// The OCI backend's rows: no engine, the registry path, the host's toolchain.
fn oci_rows(config: &Config) -> Vec<Finding> {
    let mut rows = vec![
        Finding::ok("backend", "oci: images assembled here, no engine"),
        Finding::ok("config", config_detail(config)),
        Finding::ok(
            "publish",
            "OCI index PUT over the registry API after every platform's manifest (digests verified)",
        ),
        base_layers_row(),
    ];
    if let Some(image) = &config.image {
        let insecure = config.insecure();
        let check = format!("registry {}", image.registry_host());
        rows.push(match Registry::of(image, insecure) {
            Ok(registry) => match registry.ping() {
                Ok(status @ (200 | 401)) => Finding::ok(
                    check,
                    format!("{} answers (HTTP {status})", registry.base()),
                ),
                Ok(status) => Finding::new(
                    check,
                    Status::Missing,
                    format!("{} answers HTTP {status} at /v2/", registry.base()),
                    "check `image`: it must name an OCI distribution registry",
                ),
                Err(why) => Finding::new(
                    check,
                    Status::Missing,
                    why,
                    "start the registry, or check `image` and `insecure_registry`",
                ),
            },
            Err(err) => Finding::failed(check, Diagnostic::of(&err)),
        });
    }
    let plan = super::plan_inputs(config, super::Pushing::No, Builder::Legacy)
        .and_then(|inputs| Plan::new(config, &inputs));
    match plan {
        Ok(plan) => {
            let checks = PlatformChecks {
                config,
                plan: &plan,
                engine: None,
            };
            rows.extend(checks.host(&preflight::RustToolchain::locate()));
            let backend = crate::backend::oci::OciBackend::new(
                &config.workspace_root,
                &config.target_dir,
                None,
                (BaseLayers::OnDemand, BASE_DEADLINE),
            );
            let read =
                |base: &str, platform| crate::exec::Backend::base_rootfs(&backend, base, platform);
            rows.extend(checks.starts(&crate::exec::runner::Bases::new(&read)));
        }
        Err(err) => rows.push(Finding::failed("template", Diagnostic::of(&err))),
    }
    rows.push(credentials::finding(config));
    rows.extend(cosign_finding(config));
    rows
}

/// How base layers are fetched, and the deadline a run gives them.
fn base_layers_row() -> Finding {
    use crate::backend::oci::blobs;
    match blobs::base_deadline() {
        Ok(deadline) => Finding::ok(
            "base layers",
            format!(
                "fetched once a run, {} at a time, streamed to disk, within {} s in all ({}); mounted, not fetched, by a push to the base's registry",
                blobs::PARALLEL_FETCHES,
                deadline.as_secs(),
                blobs::BASE_DEADLINE_VARIABLE
            ),
        ),
        Err(err) => Finding::failed("base layers", Diagnostic::of(&err)),
    }
}

/// The table: check, status, detail, fix.
pub(crate) fn table(rows: &[Finding]) -> String {
    let status = |s: Status| match s {
        Status::Ok => "ok",
        Status::Missing => "missing",
        Status::Note => "note",
    };
    let cells: Vec<[String; 4]> = std::iter::once([
        "check".into(),
        "status".into(),
        "detail".into(),
        "fix".into(),
    ])
    .chain(rows.iter().map(|r| {
        [
            r.check.clone(),
            status(r.status).into(),
            r.detail.clone(),
            r.fix.clone(),
        ]
    }))
    .collect();
    let width = |column: usize| cells.iter().map(|c| c[column].len()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2)];
    cells
        .iter()
        .map(|c| {
            format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                c[0],
                c[1],
                c[2],
                c[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
            .trim_end()
            .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_names_the_fix() {
        let rows = vec![
            Finding::new(
                "docker daemon",
                Status::Missing,
                "no answer within 5 s",
                "start the engine",
            ),
            Finding::new("buildx", Status::Note, "absent", ""),
        ];
        assert_eq!(
            table(&rows),
            "check          status   detail                fix\n\
             docker daemon  missing  no answer within 5 s  start the engine\n\
             buildx         note     absent"
        );
    }
}
