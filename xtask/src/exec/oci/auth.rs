//! Logging in to a registry the way Docker does, without Docker: credentials from Docker's
//! config (a credential helper, the credential store, or an `auths` entry), then the
//! registry's challenge answered with Basic auth or a Bearer token from its token server.
//! Secrets reach curl on its standard input, never its command line, and are never printed.

use anyhow::Result;
use xshell::{cmd, Shell};

use crate::diagnostic::diagnostic;
use crate::preflight::credentials::{config_keys, docker_config};

/// A user name and secret for one registry.
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

impl Credentials {
    /// What Docker's config holds for `registry`, if anything.
    pub fn for_registry(registry: &str) -> Result<Option<Credentials>> {
        let (_, config) = docker_config();
        let keys = config_keys(registry);
        let helper = keys
            .iter()
            .find_map(|k| config["credHelpers"][k].as_str())
            .or_else(|| config["credsStore"].as_str());
        if let Some(helper) = helper {
            return from_helper(helper, &keys);
        }
        let encoded = keys
            .iter()
            .find_map(|k| config["auths"][k]["auth"].as_str());
        let Some(encoded) = encoded else {
            return Ok(None);
        };
        let decoded = base64_decode(encoded)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                diagnostic(
                    format!("the `auths` entry for {registry} in Docker's config is not base64 `user:password`"),
                    format!("log in again with `docker login {registry}`"),
                )
            })?;
        let (username, secret) = decoded.split_once(':').unwrap_or((&decoded, ""));
        Ok(Some(Credentials {
            username: username.to_owned(),
            secret: secret.to_owned(),
        }))
    }

    /// A curl config line that sends these credentials with Basic auth.
    pub fn curl_user(&self) -> String {
        format!(
            "user = \"{}\"\n",
            escape(&format!("{}:{}", self.username, self.secret))
        )
    }
}

/// Asks `docker-credential-<helper> get` for the first key it knows.
fn from_helper(helper: &str, keys: &[String]) -> Result<Option<Credentials>> {
    let sh = Shell::new()?;
    let program = format!("docker-credential-{helper}");
    for key in keys {
        let Ok(output) = cmd!(sh, "{program} get")
            .stdin(key.as_bytes())
            .quiet()
            .ignore_stderr()
            .read()
        else {
            continue;
        };
        let json: serde_json::Value = serde_json::from_str(&output).unwrap_or_default();
        if let (Some(username), Some(secret)) = (json["Username"].as_str(), json["Secret"].as_str())
        {
            return Ok(Some(Credentials {
                username: username.to_owned(),
                secret: secret.to_owned(),
            }));
        }
    }
    Ok(None)
}

/// A registry's `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, parameters) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        let parameters = quoted_pairs(parameters);
        let parameter = |name: &str| {
            parameters
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer {
                realm: parameter("realm")?,
                service: parameter("service"),
                scope: parameter("scope"),
            })
        } else {
            None
        }
    }
}

/// `key="value", key2=value2` pairs; quoted values may hold commas.
fn quoted_pairs(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            return pairs;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            chars.by_ref().take_while(|&c| c != '"').collect()
        } else {
            chars.by_ref().take_while(|&c| c != ',').collect()
        };
        pairs.push((key.trim().to_owned(), value));
    }
}

/// Quotes a value for a curl config file.
pub fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Standard base64 (with or without padding).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|&b| b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut bytes = Vec::new();
    for chunk in digits.chunks(4) {
        let mut word = 0u32;
        for (index, &c) in chunk.iter().enumerate() {
            word |= value(c)? << (18 - 6 * index);
        }
        let count = chunk.len() * 6 / 8;
        bytes.extend(word.to_be_bytes()[1..1 + count].iter());
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_base64() {
        assert_eq!(
            Challenge::parse("Basic realm=\"Registry\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse("Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:a/b:pull,push\""),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
