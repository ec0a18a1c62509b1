//! Docker's client config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): the
//! one reader of where a registry's credentials come from (a credential helper, the
//! credential store, or an inline `auths` entry), for `doctor` and for logging in alike.

use std::path::PathBuf;

use anyhow::Result;
use base64::Engine as _;
use serde_json::Value;

use crate::diagnostic::diagnostic;

/// Docker's config file: its path and contents (empty when absent or unreadable).
pub(crate) fn read() -> (Option<PathBuf>, Value) {
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
pub(crate) fn keys(registry: &str) -> Vec<String> {
    let registry = registry.to_ascii_lowercase();
    if registry == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "docker.io".into(),
            "index.docker.io".into(),
        ]
    } else {
        vec![
            registry.clone(),
            format!("https://{registry}"),
            format!("https://{registry}/v1/"),
            format!("https://{registry}/v2/"),
            format!("http://{registry}"),
        ]
    }
}

/// Where the credentials for a registry would come from; no secret is read to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `credHelpers` names `docker-credential-<name>` for this registry.
    Helper(String),
    /// `credsStore` names the helper every registry uses.
    Store(String),
    /// An `auths` entry with an inline `auth`.
    Inline,
    None,
}

/// The entry of `object` filed under any of `keys`, hosts compared case-insensitively.
fn entry<'a>(object: &'a Value, keys: &[String]) -> Option<&'a Value> {
    let object = object.as_object()?;
    keys.iter().find_map(|key| {
        object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

/// Where Docker's config gets `registry`'s credentials from.
pub(crate) fn source(config: &Value, registry: &str) -> Source {
    let keys = keys(registry);
    if let Some(helper) = entry(&config["credHelpers"], &keys).and_then(Value::as_str) {
        return Source::Helper(helper.to_owned());
    }
    if let Some(store) = config["credsStore"].as_str().filter(|s| !s.is_empty()) {
        return Source::Store(store.to_owned());
    }
    match entry(&config["auths"], &keys).and_then(|e| e["auth"].as_str()) {
        Some(_) => Source::Inline,
        None => Source::None,
    }
}

/// A user name and secret for one registry. The secret is never printed.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <secret>)", self.username)
    }
}

impl Credentials {
    /// The `Authorization` header value for Basic auth.
    pub(crate) fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// What Docker's config holds for `registry`, if anything: from its helper or store (asked
/// through the process layer, the key on stdin), else the inline `auths` entry.
pub(crate) fn credentials(registry: &str) -> Result<Option<Credentials>> {
    let (_, config) = read();
    let keys = keys(registry);
    let helper = match source(&config, registry) {
        Source::Helper(helper) | Source::Store(helper) => helper,
        Source::Inline => return inline(&config, &keys, registry).map(Some),
        Source::None => return Ok(None),
    };
    let program = format!("docker-credential-{helper}");
    for key in &keys {
        let command = crate::process::Command::new(&program, ["get"]);
        let Ok(output) = command.run_with_stdin(key.as_bytes()) else {
            continue;
        };
        let json: Value = serde_json::from_str(&output).unwrap_or_default();
        if let (Some(username), Some(secret)) = (json["Username"].as_str(), json["Secret"].as_str())
        {
            return Ok(Some(Credentials {
                username: username.to_owned(),
                secret: secret.to_owned(),
            }));
        }
    }
    // A store that does not know this registry leaves the inline entry, as Docker does.
    match entry(&config["auths"], &keys).and_then(|e| e["auth"].as_str()) {
        Some(_) => inline(&config, &keys, registry).map(Some),
        None => Ok(None),
    }
}

fn inline(config: &Value, keys: &[String], registry: &str) -> Result<Credentials> {
    let encoded = entry(&config["auths"], keys)
        .and_then(|e| e["auth"].as_str())
        .unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            diagnostic(
                format!("the `auths` entry for {registry} in Docker's config is not base64 `user:password`"),
                format!("log in again with `docker login {registry}`"),
            )
        })?;
    let (username, secret) = decoded.split_once(':').unwrap_or((&decoded, ""));
    Ok(Credentials {
        username: username.to_owned(),
        secret: secret.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sources_follow_dockers_order_and_ignore_host_case() {
        let config = json!({
            "auths": { "Registry.Example:5000": { "auth": "dXNlcjpwYXNz" } },
            "credHelpers": { "ghcr.io": "gh" },
        });
        assert_eq!(source(&config, "ghcr.io"), Source::Helper("gh".into()));
        assert_eq!(source(&config, "registry.example:5000"), Source::Inline);
        assert_eq!(source(&config, "other.example"), Source::None);
        let store = json!({ "credsStore": "desktop" });
        assert_eq!(
            source(&store, "other.example"),
            Source::Store("desktop".into())
        );
        let decoded = inline(&config, &keys("REGISTRY.example:5000"), "r").unwrap();
        assert_eq!(
            (decoded.username.as_str(), decoded.secret.as_str()),
            ("user", "pass")
        );
        assert_eq!(decoded.basic(), "Basic dXNlcjpwYXNz");
        assert!(!format!("{decoded:?}").contains("pass"));
        // A secret with a newline stays inside one header value.
        let odd = Credentials {
            username: "u".into(),
            secret: "p\noutput = /tmp/x".into(),
        };
        assert!(!odd.basic().contains('\n'));
    }
}
