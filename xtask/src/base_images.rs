//! Base images: every `FROM` of a rendered Dockerfile must exist for its platform, in the
//! local engine or in its registry, before anything is built.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use xshell::{cmd, Shell};

use crate::docker::{first_line, ImageFacts};
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

/// An image's `(os, architecture, variant)`.
type Fields = (String, String, Option<String>);

/// What is known of one base image: its local copy's platform and its registry's platforms.
#[derive(Default)]
struct Lookup {
    /// The local image's fields, when the engine has one.
    local: Option<Option<Fields>>,
    /// The registry's platforms, or why it could not be asked.
    remote: Option<std::result::Result<Vec<Fields>, String>>,
}

/// Checks base images, asking the engine and the registry at most once per image however
/// many platforms use it.
#[derive(Default)]
pub struct BaseImages {
    lookups: HashMap<String, Lookup>,
}

impl BaseImages {
    /// Succeeds when `image` exists for `platform` in the local engine, else in its registry.
    pub fn check(&mut self, sh: &Shell, image: &str, platform: &Platform) -> Result<()> {
        let lookup = self.lookups.entry(image.to_owned()).or_default();
        let local = match &lookup.local {
            Some(local) => local.clone(),
            None => lookup.local.insert(inspect_local(sh, image)?).clone(),
        };
        if local.is_some_and(|(os, arch, variant)| platform.matches(&os, &arch, variant.as_deref()))
        {
            return Ok(());
        }
        let remote = match &lookup.remote {
            Some(remote) => remote.clone(),
            None => lookup.remote.insert(inspect_remote(sh, image)?).clone(),
        };
        let published = remote.map_err(|cause| {
            anyhow!(
                "base image `{image}` for {platform} is neither in the local engine nor in its registry ({cause})\n\
                 help: build or pull it first, log in to its registry, or choose another base for {platform} in `vars`"
            )
        })?;
        if published
            .iter()
            .any(|(os, arch, variant)| platform.matches(os, arch, variant.as_deref()))
        {
            return Ok(());
        }
        let names: Vec<String> = published
            .iter()
            .map(|(os, arch, variant)| {
                [Some(os.as_str()), Some(arch.as_str()), variant.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        bail!(
            "base image `{image}` is not published for {platform}; it has {}\n\
             help: choose a base with a {platform} variant for this platform (set it in the platform's `vars`), or drop {platform} from `platforms`",
            if names.is_empty() { "no platform information".to_owned() } else { names.join(", ") }
        )
    }
}

/// The platform of the local copy of `image`, if the engine has one.
fn inspect_local(sh: &Shell, image: &str) -> Result<Option<Fields>> {
    let local = cmd!(sh, "docker image inspect {image}")
        .quiet()
        .ignore_status()
        .output()?;
    let facts = local
        .status
        .success()
        .then(|| ImageFacts::parse(&String::from_utf8_lossy(&local.stdout)))
        .flatten();
    Ok(facts.map(|f| (f.os, f.architecture, f.variant)))
}

/// The platforms the registry publishes `image` for, or why it could not say.
fn inspect_remote(sh: &Shell, image: &str) -> Result<std::result::Result<Vec<Fields>, String>> {
    let insecure = is_loopback_registry(image).then_some("--insecure");
    let remote = cmd!(
        sh,
        "docker manifest inspect {insecure...} --verbose {image}"
    )
    .quiet()
    .ignore_status()
    .output()?;
    if !remote.status.success() {
        return Ok(Err(first_line(&remote.stderr)));
    }
    let json: serde_json::Value = serde_json::from_slice(&remote.stdout)
        .map_err(|e| anyhow!("cannot read `docker manifest inspect` for {image}: {e}"))?;
    // A list gives an array of entries; a single image gives one.
    let entries = match json {
        serde_json::Value::Array(entries) => entries,
        single => vec![single],
    };
    Ok(Ok(entries
        .iter()
        .filter_map(|e| {
            let p = &e["Descriptor"]["platform"];
            Some((
                p["os"].as_str()?.to_owned(),
                p["architecture"].as_str()?.to_owned(),
                p["variant"].as_str().map(str::to_owned),
            ))
        })
        .collect()))
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
