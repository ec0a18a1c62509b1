//! Base images: every `FROM` of a rendered Dockerfile must exist for its platform, in the
//! local engine or in its registry, before anything is built.

use anyhow::{anyhow, bail, Result};
use xshell::{cmd, Shell};

use crate::docker::ImageFacts;
use crate::plan::is_loopback_registry;
use crate::platform::Platform;

/// The images a Dockerfile builds on: each `FROM`, without `scratch`, earlier stages and
/// references that need build arguments to resolve.
pub fn from_images(dockerfile: &str) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for line in dockerfile.lines() {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let mut words = words.skip_while(|w| w.starts_with("--"));
        let Some(image) = words.next() else { continue };
        let is_stage = stages.contains(&image.to_ascii_lowercase());
        let known = !image.contains('$') && !image.eq_ignore_ascii_case("scratch") && !is_stage;
        if known && !images.iter().any(|i| i == image) {
            images.push(image.to_owned());
        }
        if let (Some(as_word), Some(stage)) = (words.next(), words.next()) {
            if as_word.eq_ignore_ascii_case("AS") {
                stages.push(stage.to_ascii_lowercase());
            }
        }
    }
    images
}

/// Succeeds when `image` exists for `platform` in the local engine, else in its registry.
pub fn check(sh: &Shell, image: &str, platform: &Platform) -> Result<()> {
    let local = cmd!(sh, "docker image inspect {image}")
        .quiet()
        .ignore_status()
        .output()?;
    if local.status.success() {
        let facts = ImageFacts::parse(&String::from_utf8_lossy(&local.stdout));
        if facts.is_some_and(|f| platform.matches(&f.os, &f.architecture, f.variant.as_deref())) {
            return Ok(());
        }
    }
    let insecure = is_loopback_registry(image).then_some("--insecure");
    let remote = cmd!(
        sh,
        "docker manifest inspect {insecure...} --verbose {image}"
    )
    .quiet()
    .ignore_status()
    .output()?;
    let stderr = String::from_utf8_lossy(&remote.stderr);
    if !remote.status.success() {
        let cause = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no answer")
            .trim();
        bail!(
            "base image `{image}` for {platform} is neither in the local engine nor in its registry ({cause})\n\
             help: build or pull it first, log in to its registry, or choose another base for {platform} in `vars`"
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&remote.stdout)
        .map_err(|e| anyhow!("cannot read `docker manifest inspect` for {image}: {e}"))?;
    let entries = match &json {
        serde_json::Value::Array(entries) => entries.clone(),
        single => vec![single.clone()],
    };
    let published: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            let p = &e["Descriptor"]["platform"];
            let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
            if platform.matches(os, arch, p["variant"].as_str()) {
                return Some(String::new());
            }
            Some(
                [Some(os), Some(arch), p["variant"].as_str()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        })
        .collect();
    if published.iter().any(String::is_empty) {
        return Ok(());
    }
    bail!(
        "base image `{image}` is not published for {platform}; it has {}\n\
         help: choose a base with a {platform} variant for this platform (set it in the platform's `vars`), or drop {platform} from `platforms`",
        if published.is_empty() { "no platform information".to_owned() } else { published.join(", ") }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_base_images_of_a_dockerfile() {
        let dockerfile = "FROM --platform=$BUILDPLATFORM rust:1 AS build\nRUN x\nfrom build as test\nFROM alpine:3.20\nFROM test\nFROM scratch\nFROM ${BASE}\nFROM alpine:3.20\n";
        assert_eq!(from_images(dockerfile), ["rust:1", "alpine:3.20"]);
        assert!(from_images("FROM scratch\nCOPY a /a\n").is_empty());
    }
}
