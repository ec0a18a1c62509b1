//! Image references (`[registry/]path[:tag][@digest]`), parsed once with Docker's rules.

use std::fmt;

/// Docker Hub, where a reference without a registry host points.
pub(crate) const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ImageRef {
    /// The registry host (and port) as written, `None` for Docker Hub's implicit one.
    pub(crate) registry: Option<String>,
    /// The repository path inside the registry, such as `acme/hello`.
    pub(crate) path: String,
    pub(crate) tag: Option<String>,
    /// A `sha256:<hex>` digest.
    pub(crate) digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference; the error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<ImageRef, String> {
        if text.is_empty() {
            return Err("the image reference is empty".into());
        }
        // Messages quote the input with control characters shown, never sent.
        let quoted = crate::diagnostic::escape(text);
        let text = quoted.as_str();
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        if let Some(digest) = digest {
            if crate::digest::Digest::parse(digest).is_none() {
                return Err(format!(
                    "`{text}` has an invalid digest `{}` (expected sha256: and 64 lowercase hex digits)",
                    crate::diagnostic::escape(digest)
                ));
            }
        }
        let (registry, remainder) = match rest.split_once('/') {
            Some((host, remainder))
                if host.contains(['.', ':']) || host == "localhost" || host.starts_with('[') =>
            {
                (Some(host), remainder)
            }
            _ => (None, rest),
        };
        let (path, tag) = match remainder.rsplit_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (remainder, None),
        };
        if let Some(registry) = registry {
            let valid = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
            if !registry.chars().all(valid) || registry.starts_with(['.', '-']) {
                return Err(format!(
                    "`{text}` has an invalid registry host `{}`",
                    crate::diagnostic::escape(registry)
                ));
            }
            if let Some((_, port)) = registry.rsplit_once(':') {
                let bracketed_v6 = registry.starts_with('[') && !registry.contains("]:");
                let valid_port = port.parse::<u16>().is_ok_and(|p| p > 0);
                if !bracketed_v6 && !valid_port {
                    return Err(format!(
                        "`{text}` has an invalid registry port `{}`: ports are 1 to 65535",
                        crate::diagnostic::escape(port)
                    ));
                }
            }
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(format!(
                "`{text}` is not a valid repository name: each `/`-separated part is lowercase letters and digits, joined by single `.`, `_`, `__` or `-`"
            ));
        }
        if let Some(tag) = tag {
            let valid = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
            if tag.is_empty()
                || tag.len() > 128
                || !tag.chars().all(valid)
                || tag.starts_with(['.', '-'])
            {
                return Err(format!(
                    "`{text}` has an invalid tag `{}`",
                    crate::diagnostic::escape(tag)
                ));
            }
        }
        Ok(ImageRef {
            registry: registry.map(str::to_owned),
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// Parses a repository: a reference without a tag or digest.
    pub(crate) fn repository(text: &str) -> Result<ImageRef, String> {
        let image = ImageRef::parse(text)?;
        if image.tag.is_some() || image.digest.is_some() {
            return Err(format!("`{text}` carries a tag or digest"));
        }
        Ok(image)
    }

    /// The registry host Docker talks to (`docker.io` when none is written).
    pub(crate) fn registry_host(&self) -> &str {
        self.registry.as_deref().unwrap_or(DOCKER_HUB)
    }

    /// The repository without tag or digest, as written: `127.0.0.1:5000/hello`.
    pub(crate) fn name(&self) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The same repository with `tag`.
    pub(crate) fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to `digest`, without a tag.
    pub(crate) fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest.to_owned()),
            ..self.clone()
        }
    }

    /// Whether `reported`, a tag as an engine lists it, names this reference: as written,
    /// or qualified the way Podman reports what Docker calls `app:1` and `acme/app:1`
    /// (`docker.io/library/app:1`, `docker.io/acme/app:1`, `localhost/app:1`).
    pub(crate) fn is_reported_as(&self, reported: &str) -> bool {
        let Ok(reported) = ImageRef::parse(reported) else {
            return false;
        };
        if reported == *self {
            return true;
        }
        let same_tag = reported.tag == self.tag && reported.digest == self.digest;
        let path = reported.path.as_str();
        let hub_path = |path: &str| {
            path == self.path
                || (!self.path.contains('/') && path.strip_prefix("library/") == Some(&self.path))
        };
        self.registry.is_none()
            && same_tag
            && match reported.registry.as_deref() {
                Some(DOCKER_HUB) => hub_path(path),
                Some("localhost") => path == self.path,
                _ => false,
            }
    }

    /// Whether the registry is on loopback, which Docker reaches over plain HTTP.
    pub(crate) fn is_loopback(&self) -> bool {
        let Some(registry) = &self.registry else {
            return false;
        };
        let registry = registry.to_ascii_lowercase();
        let host = match registry.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => registry.as_str(),
        };
        host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, as the distribution spec says.
fn valid_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes: Vec<char> = component.chars().collect();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if alnum(bytes[index]) {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && !alnum(bytes[index]) {
            index += 1;
        }
        let separator: String = bytes[start..index].iter().collect();
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_match_as_written_or_as_podman_qualifies_them() {
        let reported = |tags: &[&str], tag: &str| {
            let ours = ImageRef::parse(tag).unwrap();
            tags.iter().any(|reported| ours.is_reported_as(reported))
        };
        assert!(reported(&["app:1"], "app:1"));
        assert!(reported(&["docker.io/library/app:1"], "app:1"));
        assert!(reported(&["localhost/app:1"], "app:1"));
        assert!(reported(&["docker.io/acme/app:1"], "acme/app:1"));
        assert!(reported(&["127.0.0.1:5000/app:1"], "127.0.0.1:5000/app:1"));
        assert!(!reported(&["docker.io/library/app:1"], "acme/app:1"));
        assert!(!reported(&["docker.io/app:2"], "app:1"));
        assert!(!reported(
            &["docker.io/127.0.0.1:5000/app:1"],
            "127.0.0.1:5000/app:1"
        ));
        assert!(!reported(&["other/app:1"], "app:1"));
    }

    #[test]
    fn parses_and_prints_references() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (text, registry, path, tag) in [
            ("hello", None, "hello", None),
            ("acme/hello:1.0", None, "acme/hello", Some("1.0")),
            (
                "127.0.0.1:5000/hello:arm64v8-1.0",
                Some("127.0.0.1:5000"),
                "hello",
                Some("arm64v8-1.0"),
            ),
            ("localhost/a/b", Some("localhost"), "a/b", None),
            (
                "ghcr.io/acme/my_app__x",
                Some("ghcr.io"),
                "acme/my_app__x",
                None,
            ),
        ] {
            let image = ImageRef::parse(text).unwrap();
            assert_eq!(
                (
                    image.registry.as_deref(),
                    image.path.as_str(),
                    image.tag.as_deref()
                ),
                (registry, path, tag),
                "{text}"
            );
            assert_eq!(image.to_string(), text);
        }
        let pinned = ImageRef::parse(&format!("r.io/a@{digest}")).unwrap();
        assert_eq!(pinned.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(
            ImageRef::parse("r.io/a:1")
                .unwrap()
                .with_digest(&digest)
                .to_string(),
            format!("r.io/a@{digest}")
        );
        assert_eq!(
            ImageRef::parse("acme/hello:1").unwrap().registry_host(),
            "docker.io"
        );
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for bad in [
            "",
            ".hello",
            "-hello",
            "hello.",
            "a..b",
            "x/-y",
            "Hello",
            "a//b",
            "a/",
            "r.io/a:",
            "a:-x",
            "a@sha256:12",
            "a b",
            "/a",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
        assert!(ImageRef::repository("a/b:1").is_err());
        assert!(ImageRef::repository("a/b").is_ok());
        assert!(ImageRef::parse("a-b--c/d.e").is_ok());
    }

    #[test]
    fn ports_are_1_to_65535_and_messages_escape_input() {
        assert!(ImageRef::parse("127.0.0.1:65535/a").is_ok());
        assert!(ImageRef::parse("[::1]:5000/a").is_ok());
        for bad in ["127.0.0.1:99999/a", "127.0.0.1:0/a", "localhost:/a"] {
            let err = ImageRef::parse(bad).unwrap_err();
            assert!(err.contains("ports are 1 to 65535"), "{bad}: {err}");
        }
        let err = ImageRef::parse("a:b\n::stop-commands::x").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("\\n::stop-commands::"), "{err}");
    }

    #[test]
    fn loopback_registries() {
        for (repo, loopback) in [
            ("127.0.0.1:5000/a", true),
            ("localhost:5000/a/b", true),
            ("localhost/a", true),
            ("LOCALHOST:5000/a", true),
            ("LocalHost:5000/a", true),
            ("ghcr.io/a/b", false),
            ("hello", false),
            ("127.example.com/a", false),
        ] {
            assert_eq!(
                ImageRef::parse(repo).unwrap().is_loopback(),
                loopback,
                "{repo}"
            );
        }
    }
}
