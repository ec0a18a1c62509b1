//! Minijinja rendering of Dockerfile and tag templates, strict about undefined variables.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

use crate::config::platform::{Platform, OS};
use crate::config::BUILTIN_VARIABLES;

/// The variables a Dockerfile template sees for one platform.
#[derive(Debug, Serialize)]
pub(crate) struct DockerfileContext<'a> {
    pub(crate) platform: String,
    pub(crate) os: &'static str,
    pub(crate) arch: &'static str,
    pub(crate) variant: Option<&'static str>,
    pub(crate) docker_arch: &'static str,
    pub(crate) qemu_arch: &'static str,
    pub(crate) uname_m: &'static str,
    pub(crate) debian_arch: &'static str,
    pub(crate) rust_target: &'a str,
    /// Whether the platform is the host's, so `RUN` steps need no emulation.
    pub(crate) native: bool,
    /// Path of the QEMU binary inside the build context, when one is copied.
    pub(crate) qemu: Option<String>,
    /// Where the host's binfmt handler looks for QEMU, which is where a copied QEMU goes.
    pub(crate) qemu_interpreter: String,
    pub(crate) bins: &'a [String],
    pub(crate) package: &'a str,
    pub(crate) version: &'a str,
    #[serde(flatten)]
    pub(crate) vars: &'a BTreeMap<String, toml::Value>,
}

impl<'a> DockerfileContext<'a> {
    pub(crate) fn new(
        platform: &'static Platform,
        rust_target: &'a str,
        bins: &'a [String],
        package: &'a str,
        version: &'a str,
        vars: &'a BTreeMap<String, toml::Value>,
    ) -> Self {
        DockerfileContext {
            platform: platform.name(),
            os: OS,
            arch: platform.arch,
            variant: platform.variant,
            docker_arch: platform.docker_arch,
            qemu_arch: platform.qemu_arch,
            uname_m: platform.uname_m,
            debian_arch: platform.debian_arch,
            rust_target,
            native: platform.is_host(),
            qemu: None,
            qemu_interpreter: format!("/usr/bin/qemu-{}-static", platform.qemu_arch),
            bins,
            package,
            version,
            vars,
        }
    }
}

/// A template file, read once and rendered per platform.
pub(crate) struct Template {
    /// The path shown in errors, relative to the workspace root where possible.
    shown: String,
    source: String,
}

impl Template {
    pub(crate) fn load(path: &Path, root: &Path) -> Result<Template> {
        let shown = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        let source =
            std::fs::read_to_string(path).map_err(|err| {
                crate::diagnostic::diagnostic(
                format!("cannot read the Dockerfile template {}: {err}", path.display()),
                "create it, or point `dockerfile` in [package.metadata.multiarch] at your template",
            )
            })?;
        Ok(Template { shown, source })
    }

    pub(crate) fn from_source(shown: impl Into<String>, source: impl Into<String>) -> Template {
        Template {
            shown: shown.into(),
            source: source.into(),
        }
    }

    /// Renders with strict undefined behaviour; errors name the file, line and expression.
    pub(crate) fn render(&self, context: &impl Serialize) -> Result<String> {
        render_str(&self.shown, &self.source, context, Variables::Dockerfile)
    }
}

/// The most instructions one rendering may run: far more than a Dockerfile needs, far
/// fewer than a runaway loop takes.
const FUEL: u64 = 2_000_000;

/// The most bytes one rendering may produce.
const OUTPUT_LIMIT: usize = 1 << 20;

/// What the undefined-variable help lists: the Dockerfile's variables or the tags'.
#[derive(Debug, Clone, Copy)]
enum Variables {
    Dockerfile,
    Tags,
}

fn render_str(
    name: &str,
    source: &str,
    context: &impl Serialize,
    variables: Variables,
) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_fuel(Some(FUEL));
    let mut output = CappedOutput(Vec::new());
    let rendered = env
        .template_from_named_str(name, source)
        .and_then(|template| template.render_captured_to(context, &mut output).map(drop));
    match rendered {
        Ok(_) => Ok(String::from_utf8_lossy(&output.0).into_owned()),
        Err(_) if output.0.len() > OUTPUT_LIMIT => Err(crate::diagnostic::diagnostic(
            format!(
                "template {name}: its output passes {} MiB",
                OUTPUT_LIMIT >> 20
            ),
            "a loop in the template produces too much; a Dockerfile needs a few kB",
        )),
        Err(err) => Err(describe(&err, name, source, variables)),
    }
}

/// A buffer that refuses to grow past [`OUTPUT_LIMIT`].
struct CappedOutput(Vec<u8>);

impl std::io::Write for CappedOutput {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + bytes.len() > OUTPUT_LIMIT {
            self.0.resize(OUTPUT_LIMIT + 1, 0);
            return Err(std::io::Error::other("template output limit"));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn describe(
    err: &minijinja::Error,
    name: &str,
    source: &str,
    variables: Variables,
) -> anyhow::Error {
    let line = err
        .line()
        .map(|line| format!(":{line}"))
        .unwrap_or_default();
    let expression = err
        .range()
        .and_then(|range| source.get(range))
        .map(str::trim);
    let (problem, help) = match (err.kind(), expression) {
        (ErrorKind::UndefinedError, Some(expression)) => (
            format!("undefined variable `{expression}`"),
            match variables {
                Variables::Dockerfile => format!("define it in `[package.metadata.multiarch.vars]` or a platform's `vars`, or use a built-in variable: {}", BUILTIN_VARIABLES.join(", ")),
                Variables::Tags => "tag templates see only version, major, minor, patch and git_sha (in a git checkout with commits)".to_owned(),
            },
        ),
        (ErrorKind::OutOfFuel, _) => (
            format!("the template ran more than {FUEL} steps"),
            "a loop in the template runs away; a Dockerfile needs a few hundred steps".to_owned(),
        ),
        (kind, _) => {
            let detail = err.detail().map(|d| format!(": {d}")).unwrap_or_default();
            let near = expression.map(|e| format!(" near `{e}`")).unwrap_or_default();
            (format!("{kind}{detail}{near}"), "fix the template; the syntax is Jinja2 as minijinja implements it".to_owned())
        }
    };
    crate::diagnostic::diagnostic(
        format!("template {name}{line}: {problem}"),
        help.to_string(),
    )
}

/// The variables a tag template sees.
#[derive(Debug, Serialize)]
pub(crate) struct TagContext {
    pub(crate) version: String,
    pub(crate) major: String,
    pub(crate) minor: String,
    pub(crate) patch: String,
    /// The short commit hash, when the workspace is a git checkout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) git_sha: Option<String>,
}

impl TagContext {
    pub(crate) fn new(version: &str, git_sha: Option<String>) -> TagContext {
        let core = version.split(['-', '+']).next().unwrap_or(version);
        let mut parts = core.split('.').map(str::to_owned);
        TagContext {
            version: version.to_owned(),
            major: parts.next().unwrap_or_default(),
            minor: parts.next().unwrap_or_default(),
            patch: parts.next().unwrap_or_default(),
            git_sha,
        }
    }

    /// Whether the version carries a pre-release or build suffix (`1.0.0-rc.1`).
    fn is_prerelease(&self) -> bool {
        self.version.contains(['-', '+'])
    }
}

/// Renders the tag templates, adds the semver expansion when asked, and checks each tag.
pub(crate) fn render_tags(
    templates: &[String],
    context: &TagContext,
    semver: bool,
) -> Result<Vec<String>> {
    let mut tags = Vec::new();
    for template in templates {
        let tag = render_str("tags", template, context, Variables::Tags)
            .with_context(|| format!("in `package.metadata.multiarch.tags` entry `{template}`"))?;
        tags.push(tag.trim().to_owned());
    }
    if semver {
        let c = context;
        let expansion = if c.is_prerelease() {
            vec![c.version.clone()]
        } else {
            vec![
                c.version.clone(),
                format!("{}.{}", c.major, c.minor),
                c.major.clone(),
                "latest".to_owned(),
            ]
        };
        tags.extend(expansion);
    }
    let mut seen = std::collections::HashSet::new();
    let mut unique = Vec::new();
    for tag in tags {
        check_tag(&tag)?;
        if seen.insert(tag.clone()) {
            unique.push(tag);
        }
    }
    Ok(unique)
}

/// A Docker tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; per-platform prefixes need room too.
fn check_tag(tag: &str) -> Result<()> {
    let valid_first = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let valid_rest = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid_first || !valid_rest || tag.len() > 110 {
        return Err(crate::diagnostic::diagnostic(format!("tag `{}` is not a valid Docker tag", crate::diagnostic::escape(tag)), "tags use letters, digits, `_`, `.` and `-`, start with a letter, digit or `_`, and stay under 110 characters (a build metadata `+` is not allowed)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, toml::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
            .collect()
    }

    fn demo_render(platform: &str, vars: &BTreeMap<String, toml::Value>) -> Result<String> {
        let source = include_str!("../../../../docker/Dockerfile.j2");
        let platform = Platform::parse(platform).unwrap();
        let bins = ["hello".to_owned()];
        let context = DockerfileContext::new(
            platform,
            platform.rust_target,
            &bins,
            "hello",
            "0.1.0",
            vars,
        );
        Template::from_source("docker/Dockerfile.j2", source).render(&context)
    }

    #[test]
    fn demo_dockerfile_snapshots() {
        for platform in ["linux/arm/v7", "linux/amd64"] {
            let rendered = demo_render(platform, &vars(&[("base", "scratch")])).unwrap();
            crate::assert_snapshot(
                &format!("Dockerfile.{}", platform.replace('/', "-")),
                &rendered,
            );
        }
    }

    #[test]
    fn every_variable_is_defined() {
        let source = "{{ platform }} {{ os }} {{ arch }} {{ variant }} {{ docker_arch }} {{ qemu_arch }} {{ uname_m }} {{ debian_arch }} {{ rust_target }} {{ native }} {{ qemu }} {{ qemu_interpreter }} {{ bins | join(',') }} {{ package }} {{ version }} {{ base }}";
        let platform = Platform::parse("armhf").unwrap();
        let bins = ["a".to_owned(), "b".to_owned()];
        let vars = vars(&[("base", "debian")]);
        let context = DockerfileContext::new(
            platform,
            "armv7-unknown-linux-gnueabihf",
            &bins,
            "hello",
            "0.1.0",
            &vars,
        );
        let rendered = Template::from_source("t", source).render(&context).unwrap();
        assert_eq!(rendered, "linux/arm/v7 linux arm v7 arm32v7 arm armv7l armhf armv7-unknown-linux-gnueabihf False None /usr/bin/qemu-arm-static a,b hello 0.1.0 debian");
        let declared: Vec<&str> = source
            .split("{{ ")
            .skip(1)
            .map(|s| s.split([' ', '}']).next().unwrap())
            .collect();
        assert_eq!(declared[..BUILTIN_VARIABLES.len()], *BUILTIN_VARIABLES);
    }

    #[test]
    fn undefined_variable_names_file_line_and_variable() {
        let message =
            crate::diagnostic::format_error(&demo_render("arm64", &vars(&[])).unwrap_err())
                .replacen("error: ", "", 1);
        assert!(
            message.starts_with(
                "template docker/Dockerfile.j2:3: undefined variable `base`\nhelp: define it"
            ),
            "{message}"
        );
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let template = Template::from_source("docker/Dockerfile.j2", "FROM scratch\n{% if %}\n");
        let err = template
            .render(&TagContext::new("1.0.0", None))
            .unwrap_err();
        let message = crate::diagnostic::format_error(&err).replacen("error: ", "", 1);
        assert!(
            message.starts_with("template docker/Dockerfile.j2:2: syntax error"),
            "{message}"
        );
        assert!(message.contains("\nhelp: fix the template"), "{message}");
    }

    #[test]
    fn tags_and_semver_expansion() {
        let context = TagContext::new("1.2.3", Some("abc1234".into()));
        let templates = [
            "{{ version }}".to_owned(),
            "{{ major }}.{{ minor }}-{{ git_sha }}".to_owned(),
        ];
        assert_eq!(
            render_tags(&templates, &context, false).unwrap(),
            ["1.2.3", "1.2-abc1234"]
        );
        assert_eq!(
            render_tags(&templates[..1], &context, true).unwrap(),
            ["1.2.3", "1.2", "1", "latest"]
        );
        let pre = TagContext::new("2.0.0-rc.1", None);
        assert_eq!(
            render_tags(&["latest".to_owned()], &pre, true).unwrap(),
            ["latest", "2.0.0-rc.1"]
        );
        assert_eq!(
            (pre.major.as_str(), pre.minor.as_str(), pre.patch.as_str()),
            ("2", "0", "0")
        );
    }

    #[test]
    fn bad_tags_are_errors() {
        let context = TagContext::new("1.0.0+build.5", None);
        let message = format!(
            "{:#}",
            render_tags(&["{{ version }}".to_owned()], &context, false).unwrap_err()
        );
        assert!(
            message.contains("tag `1.0.0+build.5` is not a valid Docker tag"),
            "{message}"
        );
        let message = format!(
            "{:#}",
            render_tags(
                &["{{ git_sha }}x".to_owned()],
                &TagContext::new("1.0.0", None),
                false
            )
            .unwrap_err()
        );
        assert!(
            message.contains("undefined variable `git_sha`"),
            "{message}"
        );
    }

    #[test]
    fn runaway_templates_stop_with_an_error_naming_the_template() {
        let context = TagContext::new("1.0.0", None);
        let spin =
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let message = crate::diagnostic::format_error(
            &Template::from_source("docker/Dockerfile.j2", spin)
                .render(&context)
                .unwrap_err(),
        );
        assert!(
            message
                .starts_with("error: template docker/Dockerfile.j2:1: the template ran more than"),
            "{message}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let huge = "{% for a in range(100000) %}{{ version * 100 }}{% endfor %}";
        let message = crate::diagnostic::format_error(
            &Template::from_source("docker/Dockerfile.j2", huge)
                .render(&context)
                .unwrap_err(),
        );
        assert!(
            message.starts_with("error: template docker/Dockerfile.j2: its output passes 1 MiB"),
            "{message}"
        );
    }

    #[test]
    fn an_undefined_tag_variable_lists_what_tags_see() {
        let message = crate::diagnostic::format_error(
            &render_tags(
                &["{{ arch }}".to_owned()],
                &TagContext::new("1.0.0", None),
                false,
            )
            .unwrap_err(),
        );
        assert!(
            message
                .contains("help: tag templates see only version, major, minor, patch and git_sha"),
            "{message}"
        );
        assert!(!message.contains("vars"), "{message}");
    }

    #[test]
    fn many_tags_are_deduplicated_in_linear_time() {
        let templates: Vec<String> = (0..30_000).map(|i| format!("t{}", i % 20_000)).collect();
        let started = std::time::Instant::now();
        let tags = render_tags(&templates, &TagContext::new("1.0.0", None), false).unwrap();
        assert_eq!(tags.len(), 20_000);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
