//! Credentials: whether Docker's config can authenticate to the image's registry. Secrets
//! are never read or printed, only where they would come from.

use std::path::PathBuf;

use crate::config::Config;
use crate::preflight::{Finding, Status};

/// Docker's client config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
/// its path and contents (empty when absent).
pub fn docker_config() -> (Option<PathBuf>, serde_json::Value) {
    let path = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
        .map(|dir| dir.join("config.json"));
    let json = path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    (path, json)
}

/// The keys Docker's config may file a registry's credentials under.
pub fn config_keys(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
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
    }
}

/// Whether Docker's config holds a way to authenticate to the image's registry.
pub fn finding(config: &Config) -> Finding {
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
    let (_, json) = docker_config();
    let keys = config_keys(registry);
    if let Some(helper) = keys.iter().find_map(|k| json["credHelpers"][k].as_str()) {
        return Finding::new(
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
        return Finding::new(check, Status::Ok, format!("logged in ({store})"), "");
    }
    Finding::new(
        check,
        Status::Note,
        "not logged in: --push will be refused",
        format!("docker login {registry}"),
    )
}
