//! The docker client and engine: finding them, probing the builder, reading results.

use std::path::PathBuf;

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
    pub fn probe(sh: &Shell) -> Docker {
        let program = which::which("docker").ok();
        let buildx = program.as_ref().is_some_and(|docker| {
            cmd!(sh, "{docker} buildx version")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run()
                .is_ok()
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

    /// Fails unless the docker client is installed and its daemon answers; returns the
    /// server version.
    pub fn require_daemon(&self, sh: &Shell) -> Result<String> {
        let Some(docker) = &self.program else {
            bail!(
                "docker is not installed (no `docker` on PATH)\n\
                 help: install Docker (https://docs.docker.com/engine/install/), or use --dry-run to see the plan"
            );
        };
        let format = "{{.Server.Version}}";
        let output = cmd!(sh, "{docker} version --format {format}")
            .quiet()
            .ignore_status()
            .output()?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let cause = stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no answer")
                .trim();
            let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "the default socket".into());
            bail!(
                "the docker daemon at {host} does not answer: {cause}\n\
                 help: start the engine (`sudo systemctl start docker`, or run `dockerd`), or point DOCKER_HOST at a running one"
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
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
