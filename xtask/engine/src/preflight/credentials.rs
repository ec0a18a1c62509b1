//! Credentials: whether Docker's config can authenticate to the image's registry. Secrets
//! are never read or printed, only where they would come from.

use crate::config::Config;
use crate::docker_config::{self, Source};
use crate::preflight::{Finding, Status};

/// Whether Docker's config holds a way to authenticate to the image's registry.
pub(crate) fn finding(config: &Config) -> Finding {
    let Some(image) = &config.image else {
        return Finding::new(
            "credentials",
            Status::Note,
            "no `image` configured: local builds only",
            "set `image` to push",
        );
    };
    let registry = image.registry_host();
    let check = format!("credentials {registry}");
    if image.is_loopback() {
        return Finding::ok(check, "loopback registry: no login needed");
    }
    let (_, json) = docker_config::read();
    let found = match docker_config::source(&json, registry) {
        Source::Helper(helper) => format!("credential helper `{helper}`"),
        Source::Store(store) => format!("credential store `{store}`"),
        Source::Inline => "logged in (config.json)".to_owned(),
        Source::None => {
            return Finding::new(
                check,
                Status::Note,
                "not logged in: --push will be refused",
                format!("docker login {registry}"),
            )
        }
    };
    Finding::new(check, Status::Ok, found, "")
}
