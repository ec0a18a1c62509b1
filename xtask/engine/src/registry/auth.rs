//! Logging in to a registry the way Docker does, without Docker: credentials from Docker's
//! config, then the registry's challenge answered with Basic auth or a Bearer token from
//! its token server. A token must be a valid HTTP token; secrets are never printed and go
//! only to the origin they are for.

use std::time::Duration;

use anyhow::Result;

use crate::diagnostic::{diagnostic, escape};
use crate::docker_config::{self, Credentials};
use crate::http::{self, Authorization, Method, Origin, Request};

/// The largest token server answer read.
const TOKEN_LIMIT: u64 = 64 << 10;
/// How long a token server may take to answer.
const TOKEN_DEADLINE: Duration = Duration::from_secs(30);

/// The registry a login is for.
pub(crate) struct Target<'a> {
    pub(crate) base: &'a str,
    pub(crate) origin: &'a Origin,
    /// The name Docker's config files credentials under.
    pub(crate) host: &'a str,
    pub(crate) repository: &'a str,
}

/// The `Authorization` that answers `challenge`, bound to the registry's origin.
pub(crate) fn log_in(challenge: &Challenge, target: &Target<'_>) -> Result<Authorization> {
    let credentials = docker_config::credentials(target.host)?;
    let value = match challenge {
        Challenge::Basic => credentials.map(|c| c.basic()).ok_or_else(|| {
            diagnostic(
                format!(
                    "{} asks for credentials, and Docker's config has none for {}",
                    target.base, target.host
                ),
                format!(
                    "log in to {} first: `docker login {}` (credentials are read from Docker's config and credential helpers)",
                    target.host, target.host
                ),
            )
        })?,
        Challenge::Bearer { realm, service, .. } => {
            format!(
                "Bearer {}",
                token(realm, service.as_deref(), credentials.as_ref(), target)?
            )
        }
    };
    Ok(Authorization {
        origin: target.origin.clone(),
        value,
    })
}

/// A token from the token server at `realm` for pull and push on the repository.
fn token(
    realm: &str,
    service: Option<&str>,
    credentials: Option<&Credentials>,
    target: &Target<'_>,
) -> Result<String> {
    let realm_origin = Origin::of(realm).map_err(|err| {
        diagnostic(
            format!(
                "{} names a token server that cannot be used: {err}",
                target.base
            ),
            "check the registry's configuration: its token server must be reachable over HTTPS (or loopback HTTP)",
        )
    })?;
    let mut url = format!(
        "{realm}{}scope={}",
        if realm.contains('?') { '&' } else { '?' },
        http::percent_encode(&format!("repository:{}:pull,push", target.repository))
    );
    if let Some(service) = service {
        url.push_str(&format!("&service={}", http::percent_encode(service)));
    }
    // Credentials travel to a token server only over TLS, or on the registry's own host
    // (a plain-HTTP registry on loopback or `insecure_registry` serving its own tokens):
    // never over plain HTTP to a host the registry merely names.
    let basic = credentials
        .filter(|_| realm_origin.scheme == "https" || realm_origin.host == target.origin.host)
        .map(|c| Authorization {
            origin: realm_origin.clone(),
            value: c.basic(),
        });
    let mut request = Request::new(Method::Get, url, TOKEN_LIMIT, TOKEN_DEADLINE);
    request.authorization = basic;
    let unreadable = |why: String| {
        diagnostic(
            format!(
                "the token server {}'s answer for `{}` was unreadable: {why}",
                escape(realm),
                target.repository
            ),
            format!(
                "check the registry's token service, or log in again with `docker login {}`",
                target.host
            ),
        )
    };
    let response = crate::retry::DEFAULT
        .run(|| http::send(&request), super::transient)
        .map_err(|err| unreadable(err.to_string()))?;
    if response.status != 200 {
        return Err(diagnostic(
            format!(
                "the token server {} refused a token for `{}` (HTTP {})",
                escape(realm),
                target.repository,
                response.status
            ),
            format!(
                "log in to {} first: `docker login {}` (credentials are read from Docker's config and credential helpers)",
                target.host, target.host
            ),
        ));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&response.body).map_err(|_| unreadable("not JSON".into()))?;
    let token = json["token"]
        .as_str()
        .or_else(|| json["access_token"].as_str())
        .ok_or_else(|| unreadable("no `token`".into()))?;
    if !is_token68(token) {
        return Err(unreadable("the token is not a valid HTTP token".into()));
    }
    Ok(token.to_owned())
}

/// RFC 7235's token68: `[A-Za-z0-9-._~+/]+=*`, at most 16 KiB.
pub(crate) fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && token.len() <= 16 << 10
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A registry's `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
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
    }

    #[test]
    fn tokens_are_token68_and_queries_are_encoded() {
        assert!(is_token68("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(is_token68("abc=="));
        for bad in [
            "",
            "abc\noutput = /tmp/x",
            "a b",
            "a\"b",
            "==",
            "a\r\nX-Injected: 1",
        ] {
            assert!(!is_token68(bad), "{bad:?}");
        }
        assert!(!is_token68(&"a".repeat(1 << 20)));
        assert_eq!(
            http::percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
