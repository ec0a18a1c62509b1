//! The docker client and engine: finding them, probing the builder, reading results.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

use crate::plan::Builder;

/// The docker client this run uses.
pub struct Docker {
    pub program: Option<PathBuf>,
    pub builder: Builder,
}

impl Docker {
    /// Finds docker and its build front end without needing the daemon.
    pub fn find() -> Docker {
        let program = which::which("docker").ok();
        let buildx = program.as_deref().is_some_and(|docker| {
            matches!(probe(docker, &["buildx", "version"]), Probe::Answered(_))
        });
        Docker {
            program,
            builder: if buildx {
                Builder::Buildx
            } else {
                Builder::Legacy
            },
        }
    }

    /// Fails unless the docker client is installed and its daemon answers in time.
    pub fn require_daemon(&self) -> Result<()> {
        let Some(docker) = &self.program else {
            bail!(
                "docker is not installed (no `docker` on PATH)\n\
                 help: install Docker (https://docs.docker.com/engine/install/), or use --dry-run to see the plan"
            );
        };
        match probe(docker, &["version", "--format", "{{.Server.Version}}"]) {
            Probe::Answered(_) => Ok(()),
            failed => bail!(
                "the docker daemon at {} does not answer: {}\nhelp: {START_ENGINE}",
                docker_host(),
                failed.describe()
            ),
        }
    }
}

/// The fix for a daemon that does not answer.
pub const START_ENGINE: &str =
    "start the engine (`sudo systemctl start docker`, or run `dockerd`), or point DOCKER_HOST at a running one";

/// Where the docker client looks for its daemon, for messages.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "the default socket".into())
}

/// How long a docker probe may take before it counts as not answering.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a bounded docker call gave.
pub enum Probe {
    /// The first line of its stdout.
    Answered(String),
    /// The first line of its stderr.
    Failed(String),
    TimedOut,
}

impl Probe {
    pub fn describe(&self) -> String {
        match self {
            Probe::Answered(text) => text.clone(),
            Probe::Failed(cause) => cause.clone(),
            Probe::TimedOut => format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        }
    }
}

/// Runs `docker ARGS` on a thread and gives up after [`PROBE_TIMEOUT`], so a hung daemon
/// never hangs the caller.
pub fn probe(docker: &Path, args: &[&str]) -> Probe {
    let (sender, receiver) = mpsc::channel();
    let docker = docker.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    std::thread::spawn(move || {
        let output = Shell::new().and_then(|sh| {
            cmd!(sh, "{docker} {args...}")
                .quiet()
                .ignore_status()
                .output()
        });
        let _ = sender.send(output);
    });
    match receiver.recv_timeout(PROBE_TIMEOUT) {
        Ok(Ok(output)) if output.status.success() => Probe::Answered(first_line(&output.stdout)),
        Ok(Ok(output)) => Probe::Failed(first_line(&output.stderr)),
        Ok(Err(err)) => Probe::Failed(err.to_string()),
        Err(_) => Probe::TimedOut,
    }
}

/// The first non-empty line of a process's output, trimmed.
pub fn first_line(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
        .to_owned()
}

/// What `docker image inspect` reports about a built image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageFacts {
    pub id: String,
    pub size: u64,
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl ImageFacts {
    /// Parses the JSON array `docker image inspect IMAGE` prints.
    pub fn parse(json: &str) -> Option<ImageFacts> {
        let images: Vec<ImageFacts> = serde_json::from_str(json).ok()?;
        images.into_iter().next()
    }
}

/// The registry host of an image reference, as Docker reads it (`docker.io` by default).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((host, _)) if host.contains(['.', ':']) || host == "localhost" => host,
        _ => "docker.io",
    }
}

/// Finds the `sha256:` digest that `docker push` or `docker manifest push` printed.
pub fn parse_digest(output: &str) -> Option<String> {
    output.lines().rev().find_map(|line| {
        let start = line.find("sha256:")?;
        let digest: String = line[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
            .collect();
        (digest.len() == "sha256:".len() + 64).then_some(digest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inspect_output() {
        let facts = ImageFacts::parse(r#"[{"Id": "sha256:abc", "Size": 1234, "Os": "linux", "Architecture": "arm", "Variant": "v7", "Config": {}}]"#).unwrap();
        assert_eq!(facts.variant.as_deref(), Some("v7"));
        assert_eq!(facts.size, 1234);
        let facts = ImageFacts::parse(
            r#"[{"Id": "sha256:abc", "Size": 99, "Os": "linux", "Architecture": "amd64"}]"#,
        )
        .unwrap();
        assert_eq!(
            (facts.architecture.as_str(), facts.variant),
            ("amd64", None)
        );
        assert_eq!(ImageFacts::parse("garbage"), None);
    }

    #[test]
    fn parses_push_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let push = format!("The push refers to repository [127.0.0.1:5000/hello]\n5f70bf18a086: Pushed\narm64v8-0.1.0: digest: {digest} size: 527\n");
        assert_eq!(parse_digest(&push), Some(digest.clone()));
        assert_eq!(parse_digest(&format!("{digest}\n")), Some(digest));
        assert_eq!(parse_digest("sha256:short"), None);
    }
}
