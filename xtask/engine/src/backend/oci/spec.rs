//! The part of a rendered Dockerfile the OCI backend builds without an engine: `FROM
//! scratch`, `COPY` from the context, and the instructions that only set metadata.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::config::image_ref::ImageRef;
use crate::diagnostic::diagnostic;

/// One `COPY`: context paths to a destination, with optional owner and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Copy {
    pub(crate) sources: Vec<String>,
    pub(crate) destination: String,
    pub(crate) owner: Option<(u32, u32)>,
    pub(crate) mode: Option<u32>,
    /// The instruction as written, for the image's history.
    pub(crate) written: String,
}

/// What the image's config says besides its layers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunConfig {
    pub(crate) env: Vec<(String, String)>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) user: Option<String>,
    pub(crate) working_dir: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) exposed_ports: Vec<String>,
    pub(crate) stop_signal: Option<String>,
}

/// A Dockerfile as the OCI backend builds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageSpec {
    /// The base image; `None` is `scratch`.
    pub(crate) base: Option<ImageRef>,
    pub(crate) copies: Vec<Copy>,
    pub(crate) config: RunConfig,
}

/// Reads `text` (the rendered Dockerfile shown as `name`); anything that needs an engine
/// or a registry base stops here, with its line.
pub(crate) fn parse(text: &str, name: &str) -> Result<ImageSpec> {
    let mut spec = ImageSpec::default();
    let mut seen_from = false;
    for (line, instruction) in instructions(text) {
        let at = format!("{name}:{line}");
        let (keyword, rest) = instruction
            .split_once(char::is_whitespace)
            .map(|(k, r)| (k, r.trim()))
            .unwrap_or((instruction.as_str(), ""));
        let keyword = keyword.to_ascii_uppercase();
        let engine_needed = |what: &str| {
            diagnostic(
                format!("{at}: {what}, which backend = \"oci\" cannot build without an engine"),
                "use backend = \"docker\" for this template (or --backend docker)",
            )
        };
        if keyword != "FROM" && keyword != "ARG" && !seen_from {
            return Err(diagnostic(
                format!("{at}: `{keyword}` comes before `FROM`"),
                "start the template with `FROM scratch`",
            ));
        }
        if rest.contains('$') && keyword != "ARG" {
            return Err(engine_needed("a `$` variable"));
        }
        match keyword.as_str() {
            "FROM" if seen_from => return Err(engine_needed("a second `FROM` (multi-stage)")),
            "FROM" if rest.eq_ignore_ascii_case("scratch") => seen_from = true,
            "FROM" if rest.split_whitespace().count() > 1 || rest.starts_with("--") => {
                return Err(engine_needed(&format!(
                    "`FROM {rest}` (a named stage or a flag)"
                )))
            }
            "FROM" => {
                let base = ImageRef::parse(rest).map_err(|problem| {
                    diagnostic(
                        format!("{at}: `FROM {rest}`: {problem}"),
                        "name the base as `registry/repository:tag`",
                    )
                })?;
                spec.base = Some(base);
                seen_from = true;
            }
            "ARG" => {}
            "COPY" => spec.copies.push(parse_copy(rest, &instruction, &at)?),
            "ENTRYPOINT" => spec.config.entrypoint = Some(command_form(rest, &at)?),
            "CMD" => spec.config.cmd = Some(command_form(rest, &at)?),
            "ENV" => spec.config.env.extend(pairs(rest, &at)?),
            "LABEL" => spec.config.labels.extend(pairs(rest, &at)?),
            "USER" => spec.config.user = Some(rest.to_owned()),
            "WORKDIR" => spec.config.working_dir = Some(rest.to_owned()),
            "STOPSIGNAL" => spec.config.stop_signal = Some(rest.to_owned()),
            "EXPOSE" => spec
                .config
                .exposed_ports
                .extend(rest.split_whitespace().map(|p| {
                    if p.contains('/') {
                        p.to_owned()
                    } else {
                        format!("{p}/tcp")
                    }
                })),
            other => return Err(engine_needed(&format!("`{other}`"))),
        }
    }
    if !seen_from {
        return Err(diagnostic(
            format!("{name}: no `FROM`"),
            "start the template with `FROM scratch`",
        ));
    }
    Ok(spec)
}

/// The instructions with their first line: comments and blank lines dropped, `\`
/// continuations joined.
fn instructions(text: &str) -> Vec<(usize, String)> {
    let mut result = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if pending.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                joined.push_str(part);
                joined.push(' ');
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(trimmed);
                result.push((start, joined));
            }
        }
    }
    result.extend(pending);
    result
}

fn parse_copy(rest: &str, written: &str, at: &str) -> Result<Copy> {
    let mut owner = None;
    let mut mode = None;
    let mut words: Vec<String> = Vec::new();
    let arguments = if rest.trim_start().starts_with('[') {
        json_array(rest, at)?
    } else {
        rest.split_whitespace().map(String::from).collect()
    };
    for word in arguments {
        if let Some(value) = word.strip_prefix("--chown=") {
            owner = Some(numeric_owner(value).ok_or_else(|| {
                diagnostic(
                    format!("{at}: `--chown={value}` names a user or group; the OCI backend writes numeric owners only"),
                    "write `--chown=1000:1000`, or use backend = \"docker\"",
                )
            })?);
        } else if let Some(value) = word.strip_prefix("--chmod=") {
            mode = Some(u32::from_str_radix(value, 8).map_err(|_| {
                diagnostic(
                    format!("{at}: `--chmod={value}` is not an octal mode"),
                    "write `--chmod=0755`",
                )
            })?);
        } else if word.starts_with("--") {
            return Err(diagnostic(
                format!("{at}: `COPY {word}` needs an engine"),
                "use backend = \"docker\" for this template",
            ));
        } else {
            words.push(word);
        }
    }
    let Some(destination) = words.pop().filter(|_| !words.is_empty()) else {
        return Err(diagnostic(
            format!("{at}: `COPY` needs a source and a destination"),
            "write `COPY hello /usr/local/bin/hello`",
        ));
    };
    if let Some(bad) = words
        .iter()
        .find(|s| s.contains(['*', '?', '[']) || s.split('/').any(|c| c == ".."))
    {
        return Err(diagnostic(
            format!("{at}: `COPY {bad}`: the OCI backend copies plain context paths (no globs, no `..`)"),
            "name each file, or use backend = \"docker\"",
        ));
    }
    Ok(Copy {
        sources: words,
        destination,
        owner,
        mode,
        written: written.to_owned(),
    })
}

fn numeric_owner(value: &str) -> Option<(u32, u32)> {
    let (user, group) = value.split_once(':').unwrap_or((value, value));
    Some((user.parse().ok()?, group.parse().ok()?))
}

/// `["a", "b"]`, or a shell form run by `/bin/sh -c` as Docker does.
fn command_form(rest: &str, at: &str) -> Result<Vec<String>> {
    if rest.trim_start().starts_with('[') {
        json_array(rest, at)
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_owned()])
    }
}

fn json_array(rest: &str, at: &str) -> Result<Vec<String>> {
    serde_json::from_str(rest).map_err(|err| {
        diagnostic(
            format!("{at}: `{rest}` is not a JSON array of strings: {err}"),
            "write the exec form as [\"/usr/local/bin/hello\", \"--flag\"]",
        )
    })
}

/// `k=v k2="v 2"` pairs, or the old `ENV k v` form.
fn pairs(rest: &str, at: &str) -> Result<Vec<(String, String)>> {
    if !rest.contains('=') {
        let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return Ok(vec![(key.to_owned(), value.trim().to_owned())]);
    }
    let mut result = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    (_, c) => {
                        value.push(c);
                        escaped = false;
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if key.trim().is_empty() {
            return Err(diagnostic(
                format!("{at}: `{rest}` has a value without a key"),
                "write key=value pairs",
            ));
        }
        result.push((key.trim().to_owned(), value));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_template_and_metadata_instructions() {
        let spec = parse(
            "# comment\nFROM scratch\nCOPY hello /usr/local/bin/hello\nCOPY --chown=1000:1000 --chmod=0700 a b /opt/\n\
             ENV A=1 B=\"two words\"\nLABEL org.example.team=infra\nUSER 1000\nWORKDIR /opt\nEXPOSE 8080 53/udp\n\
             STOPSIGNAL SIGTERM\nENTRYPOINT [\"/usr/local/bin/hello\"]\nCMD --serve \\\n  --port 8080\n",
            "Dockerfile",
        )
        .unwrap();
        assert_eq!(spec.copies.len(), 2);
        assert_eq!(spec.copies[1].sources, ["a", "b"]);
        assert_eq!(spec.copies[1].destination, "/opt/");
        assert_eq!(spec.copies[1].owner, Some((1000, 1000)));
        assert_eq!(spec.copies[1].mode, Some(0o700));
        let config = &spec.config;
        assert_eq!(
            config.env,
            [("A".into(), "1".into()), ("B".into(), "two words".into())]
        );
        assert_eq!(config.labels["org.example.team"], "infra");
        assert_eq!(config.exposed_ports, ["8080/tcp", "53/udp"]);
        assert_eq!(
            config.entrypoint.as_deref(),
            Some(&["/usr/local/bin/hello".to_owned()][..])
        );
        assert_eq!(
            config.cmd.as_deref(),
            Some(
                &[
                    "/bin/sh".to_owned(),
                    "-c".into(),
                    "--serve  --port 8080".into()
                ][..]
            )
        );
    }

    #[test]
    fn what_needs_an_engine_stops_with_its_line() {
        for (text, line, what) in [
            ("FROM scratch\nRUN true\n", 2, "`RUN`"),
            (
                "FROM scratch\nCOPY --from=build /a /a\n",
                2,
                "`COPY --from=build` needs an engine",
            ),
            ("FROM scratch\n\nADD https://x/y /y\n", 3, "`ADD`"),
            ("FROM scratch AS a\n", 1, "a named stage"),
            ("FROM alpine AS build\n", 1, "a named stage"),
            ("FROM scratch\nFROM scratch\n", 2, "multi-stage"),
            ("FROM scratch\nENV A=$B\n", 2, "a `$` variable"),
            ("FROM scratch\nCOPY *.so /lib/\n", 2, "no globs"),
            (
                "FROM scratch\nCOPY --chown=app a /a\n",
                2,
                "numeric owners only",
            ),
        ] {
            let err = parse(text, "docker/Dockerfile").unwrap_err();
            let diagnostic = crate::diagnostic::Diagnostic::of(&err);
            assert!(
                diagnostic
                    .cause
                    .starts_with(&format!("docker/Dockerfile:{line}: ")),
                "{text}: {diagnostic:?}"
            );
            assert!(diagnostic.cause.contains(what), "{text}: {diagnostic:?}");
            assert!(!diagnostic.help.is_empty());
        }
    }
}
