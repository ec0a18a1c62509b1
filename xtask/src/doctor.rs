//! `cargo xtask doctor`: one table of what this host and workspace have, what is missing,
//! and the exact fix for each; exit 1 when the configured platforms lack something.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::Shell;

use crate::base_images::BaseImages;
use crate::binfmt::{self, Emulation, BINFMT_DIR};
use crate::cli::Args;
use crate::config::{BuildMode, Config, QemuSource};
use crate::docker::{docker_host, probe, registry_of, Probe, START_ENGINE};
use crate::plan::{has_run_steps, is_loopback_registry, render_platform};
use crate::split_help;
use crate::template::Template;
use crate::toolchain::Toolchain;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Something the configured platforms need is missing: the exit code is 1.
    Missing,
    /// Worth knowing, not needed for a build.
    Note,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub check: String,
    pub status: Status,
    pub detail: String,
    pub fix: String,
}

fn row(
    check: impl Into<String>,
    status: Status,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Row {
    Row {
        check: check.into(),
        status,
        detail: detail.into(),
        fix: fix.into(),
    }
}

pub fn run(args: &Args) -> Result<()> {
    let rows = diagnose(args);
    println!("{}", table(&rows));
    if rows.iter().any(|r| r.status == Status::Missing) {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs every check; it never fails, it reports.
pub fn diagnose(args: &Args) -> Vec<Row> {
    let mut rows = Vec::new();
    let docker = which::which("docker").ok();
    let daemon_up = docker_rows(docker.as_deref(), &mut rows);
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(err) => {
            rows.push(row(
                "shell",
                Status::Missing,
                err.to_string(),
                "run from a readable directory",
            ));
            return rows;
        }
    };
    let config = match crate::image::load(&sh, args) {
        Ok(config) => config,
        Err(err) => {
            let (cause, fix) = split_help(&format!("{err:#}"));
            rows.push(row("config", Status::Missing, cause, fix));
            return rows;
        }
    };
    let names: Vec<String> = config.platforms.iter().map(|p| p.name()).collect();
    let mode = match config.build {
        BuildMode::Cross => "cross",
        BuildMode::Container => "container",
    };
    rows.push(row(
        "config",
        Status::Ok,
        format!(
            "package `{}`: {} ({mode})",
            config.package.name,
            names.join(", ")
        ),
        "",
    ));
    platform_rows(&sh, &config, daemon_up, &mut rows);
    rows.push(credentials_row(&config));
    rows
}

/// Client, daemon, `docker manifest` and buildx; returns whether the daemon answered.
fn docker_rows(docker: Option<&Path>, rows: &mut Vec<Row>) -> bool {
    let Some(docker) = docker else {
        rows.push(row(
            "docker client",
            Status::Missing,
            "no `docker` on PATH",
            "install Docker: https://docs.docker.com/engine/install/",
        ));
        return false;
    };
    // `docker --version` never contacts the daemon.
    let client = probe(docker, &["--version"]);
    rows.push(match client {
        Probe::Answered(version) => {
            let version = version
                .trim_start_matches("Docker version ")
                .split(',')
                .next()
                .unwrap_or_default()
                .to_owned();
            row(
                "docker client",
                Status::Ok,
                format!("{version} ({})", docker.display()),
                "",
            )
        }
        other => row(
            "docker client",
            Status::Missing,
            other.describe(),
            "reinstall the docker CLI",
        ),
    });
    let server = probe(docker, &["version", "--format", "{{.Server.Version}}"]);
    let daemon_up = matches!(server, Probe::Answered(_));
    let host = docker_host();
    rows.push(match server {
        Probe::Answered(version) => row(
            "docker daemon",
            Status::Ok,
            format!("{version} at {host}"),
            "",
        ),
        other => row(
            "docker daemon",
            Status::Missing,
            format!("{host}: {}", other.describe()),
            START_ENGINE,
        ),
    });
    rows.push(match probe(docker, &["manifest", "--help"]) {
        Probe::Answered(_) => row("docker manifest", Status::Ok, "available", ""),
        other => row(
            "docker manifest",
            Status::Missing,
            other.describe(),
            "update the docker CLI to 18.02 or newer",
        ),
    });
    rows.push(match probe(docker, &["buildx", "version"]) {
        Probe::Answered(version) => row("buildx", Status::Ok, version, ""),
        _ => row(
            "buildx",
            Status::Note,
            "absent: the legacy builder is used",
            "install the buildx plugin for BuildKit (optional)",
        ),
    });
    daemon_up
}

fn platform_rows(sh: &Shell, config: &Config, daemon_up: bool, rows: &mut Vec<Row>) {
    let handlers = binfmt::read_handlers(Path::new(BINFMT_DIR));
    let toolchain = Toolchain::locate(sh);
    let template = Template::load(&config.dockerfile, &config.workspace_root);
    let mut bases = BaseImages::default();
    for &platform in &config.platforms {
        let platform_config = config.platform(platform);
        let rendered = template
            .as_ref()
            .map_err(|e| format!("{e:#}"))
            .and_then(|t| {
                render_platform(config, &platform_config, t, &handlers)
                    .map_err(|e| format!("{e:#}"))
            });
        let rendered = match rendered {
            Ok(rendered) => rendered,
            Err(err) => {
                let (cause, fix) = split_help(&err);
                rows.push(row(
                    format!("template {platform}"),
                    Status::Missing,
                    cause,
                    fix,
                ));
                continue;
            }
        };
        let needs_emulation = has_run_steps(&rendered.dockerfile);
        rows.push(match &rendered.emulation {
            Emulation::Native => row(
                format!("binfmt {platform}"),
                Status::Ok,
                "native: no emulation needed",
                "",
            ),
            Emulation::Handler {
                fix_binary: true,
                interpreter,
            } => row(
                format!("binfmt {platform}"),
                Status::Ok,
                format!("handler with F: {}", interpreter.display()),
                "",
            ),
            Emulation::Handler {
                fix_binary: false,
                interpreter,
            } => row(
                format!("binfmt {platform}"),
                Status::Ok,
                format!(
                    "handler without F: {}; QEMU goes into the context (qemu.copy)",
                    interpreter.display()
                ),
                "`sudo cargo xtask setup --reset` registers one with F (optional)",
            ),
            Emulation::Missing if needs_emulation => row(
                format!("binfmt {platform}"),
                Status::Missing,
                "no handler, and the Dockerfile has RUN steps",
                "sudo cargo xtask setup",
            ),
            Emulation::Missing => row(
                format!("binfmt {platform}"),
                Status::Note,
                "no handler; not needed (no RUN steps)",
                "sudo cargo xtask setup (to run the images here)",
            ),
        });
        // The QEMU cache matters to every foreign platform; it is needed when QEMU is copied.
        if rendered.emulation != Emulation::Native {
            rows.push(qemu_row(
                config,
                platform.qemu_arch,
                rendered.qemu.is_some(),
            ));
        }
        if config.build == BuildMode::Cross {
            let target = &platform_config.target;
            rows.push(match &toolchain {
                Ok(t) if t.has_target(target) => row(
                    format!("rust target {platform}"),
                    Status::Ok,
                    target.clone(),
                    "",
                ),
                Ok(_) => row(
                    format!("rust target {platform}"),
                    Status::Missing,
                    format!("{target} is not installed"),
                    format!("rustup target add {target}"),
                ),
                Err(err) => row(
                    format!("rust target {platform}"),
                    Status::Missing,
                    first_line(&format!("{err:#}")),
                    "install Rust with rustup (https://rustup.rs)",
                ),
            });
            rows.push(match (&platform_config.linker, &toolchain) {
                (None, _) => row(format!("linker {platform}"), Status::Note, "cargo's default (none configured)", ""),
                (Some(linker), Ok(t)) if t.has_linker(linker) => row(format!("linker {platform}"), Status::Ok, linker.clone(), ""),
                (Some(linker), _) => row(
                    format!("linker {platform}"),
                    Status::Missing,
                    format!("`{linker}` is not on PATH"),
                    format!("install it (Debian: gcc-<arch>-linux-gnu), or change `linker` in [package.metadata.multiarch.platform.\"{platform}\"]"),
                ),
            });
        }
        for image in crate::base_images::from_images(&rendered.dockerfile) {
            let check = format!("base {platform}");
            rows.push(if !daemon_up {
                row(
                    check,
                    Status::Note,
                    format!("{image}: not checked, the daemon does not answer"),
                    "",
                )
            } else {
                match bases.check(sh, &image, platform) {
                    Ok(()) => row(check, Status::Ok, image, ""),
                    Err(err) => {
                        let (cause, fix) = split_help(&format!("{err:#}"));
                        row(check, Status::Missing, cause, fix)
                    }
                }
            });
        }
    }
}

/// Where the QEMU binary for `qemu_arch` comes from; `needed` when it is copied into contexts.
fn qemu_row(config: &Config, qemu_arch: &str, needed: bool) -> Row {
    let check = format!("qemu {qemu_arch}");
    let name = crate::qemu::binary_name(qemu_arch);
    let absent = if needed {
        Status::Missing
    } else {
        Status::Note
    };
    match config.qemu.source {
        QemuSource::Path => match which::which(&name) {
            Ok(path) => row(check, Status::Ok, path.display().to_string(), ""),
            Err(_) => row(
                check,
                absent,
                format!("`{name}` is not on PATH (qemu.source = \"path\")"),
                "apt-get install qemu-user-static",
            ),
        },
        QemuSource::Download => {
            match crate::qemu::cache_dir(&config.qemu.version).map(|dir| dir.join(&name)) {
                Ok(path) if path.is_file() => {
                    row(check, Status::Ok, format!("cached: {}", path.display()), "")
                }
                Ok(path) => row(
                    check,
                    Status::Note,
                    format!("not cached yet ({})", path.display()),
                    "cargo xtask qemu fetch (or let `image` fetch it)",
                ),
                Err(err) => row(
                    check,
                    Status::Missing,
                    first_line(&format!("{err:#}")),
                    "set XDG_CACHE_HOME or HOME",
                ),
            }
        }
    }
}

/// Whether Docker's config holds a way to authenticate to the image's registry; it never
/// reads or prints the secret itself.
fn credentials_row(config: &Config) -> Row {
    let Some(image) = &config.image else {
        return row(
            "credentials",
            Status::Note,
            "no `image` configured: local builds only",
            "set `image` to push",
        );
    };
    let registry = registry_of(image);
    let check = format!("credentials {registry}");
    if is_loopback_registry(image) {
        return row(check, Status::Ok, "loopback registry: no login needed", "");
    }
    let path = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
        .map(|dir| dir.join("config.json"));
    let json: serde_json::Value = path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let keys: Vec<String> = if registry == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "docker.io".into(),
            "index.docker.io".into(),
        ]
    } else {
        vec![
            registry.to_owned(),
            format!("https://{registry}"),
            format!("https://{registry}/v1/"),
            format!("https://{registry}/v2/"),
        ]
    };
    if let Some(helper) = keys.iter().find_map(|k| json["credHelpers"][k].as_str()) {
        return row(
            check,
            Status::Ok,
            format!("credential helper `{helper}`"),
            "",
        );
    }
    if keys.iter().any(|k| json["auths"].get(k).is_some()) {
        let store = json["credsStore"]
            .as_str()
            .map_or("config.json".to_owned(), |s| {
                format!("credential store `{s}`")
            });
        return row(check, Status::Ok, format!("logged in ({store})"), "");
    }
    row(
        check,
        Status::Note,
        "not logged in: --push will be refused",
        format!("docker login {registry}"),
    )
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_owned()
}

/// The table: check, status, detail, fix.
pub fn table(rows: &[Row]) -> String {
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
            row(
                "docker daemon",
                Status::Missing,
                "no answer within 5 s",
                "start the engine",
            ),
            row("buildx", Status::Note, "absent", ""),
        ];
        assert_eq!(
            table(&rows),
            "check          status   detail                fix\n\
             docker daemon  missing  no answer within 5 s  start the engine\n\
             buildx         note     absent"
        );
    }
}
