//! Base images: every `FROM` of a rendered Dockerfile must exist for its platform, in the
//! local engine or in its registry, before anything is built.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use xshell::Shell;

use crate::process::Command;

use crate::backend::docker::{first_line, Docker, ImageFacts};
use crate::config::image_ref::ImageRef;
use crate::config::platform::Platform;
use crate::diagnostic::diagnostic;

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
pub(crate) struct BaseImages {
    lookups: HashMap<String, Lookup>,
}

impl BaseImages {
    /// Succeeds when `image` exists for `platform` in the local engine, else in its registry.
    pub(crate) fn check(
        &mut self,
        docker: &Docker,
        image: &str,
        platform: &Platform,
    ) -> Result<()> {
        let sh = &Shell::new()?;
        let docker = &docker.program;
        let lookup = self.lookups.entry(image.to_owned()).or_default();
        let local = match &lookup.local {
            Some(local) => local.clone(),
            None => lookup
                .local
                .insert(inspect_local(sh, docker, image)?)
                .clone(),
        };
        if local.is_some_and(|(os, arch, variant)| platform.matches(&os, &arch, variant.as_deref()))
        {
            return Ok(());
        }
        let remote = match &lookup.remote {
            Some(remote) => remote.clone(),
            None => lookup
                .remote
                .insert(inspect_remote(sh, docker, image)?)
                .clone(),
        };
        let published = remote.map_err(|cause| {
            diagnostic(
                format!("base image `{image}` for {platform} is neither in the local engine nor in its registry ({cause})"),
                format!("build or pull it first, log in to its registry, or choose another base for {platform} in `vars`"),
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
        let has = if names.is_empty() {
            "no platform information".to_owned()
        } else {
            names.join(", ")
        };
        Err(diagnostic(
            format!("base image `{image}` is not published for {platform}; it has {has}"),
            format!("choose a base with a {platform} variant for this platform (set it in the platform's `vars`), or drop {platform} from `platforms`"),
        ))
    }
}

/// The platform of the local copy of `image`, if the engine has one.
fn inspect_local(sh: &Shell, docker: &std::path::Path, image: &str) -> Result<Option<Fields>> {
    let local = Command::new(docker, ["image", "inspect", image]).run(sh);
    let facts = local.ok().and_then(|stdout| ImageFacts::parse(&stdout));
    Ok(facts.map(|f| (f.os, f.architecture, f.variant)))
}

/// The platforms the registry publishes `image` for, or why it could not say.
fn inspect_remote(
    sh: &Shell,
    docker: &std::path::Path,
    image: &str,
) -> Result<std::result::Result<Vec<Fields>, String>> {
    let insecure = ImageRef::parse(image)
        .is_ok_and(|i| i.is_loopback())
        .then_some("--insecure");
    let args = ["manifest", "inspect"]
        .into_iter()
        .chain(insecure)
        .chain(["--verbose", image]);
    let stdout = match Command::new(docker, args).run(sh) {
        Ok(stdout) => stdout,
        Err(err) => {
            let stderr = err
                .downcast_ref::<crate::process::CommandFailed>()
                .map_or_else(|| err.to_string(), |f| f.stderr.clone());
            return Ok(Err(first_line(stderr.as_bytes())));
        }
    };
    let json: serde_json::Value = serde_json::from_str(&stdout)
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
