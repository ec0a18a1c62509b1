//! `cargo xtask init DIR`: embeds this xtask into another Cargo workspace, adding files and
//! entries but never overwriting what is there.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::Shell;

use crate::cli::InitArgs;
use crate::config::compile::{CargoOptions, Toolchain};
use crate::config::platform::{Platform, PLATFORMS};
use crate::config::workspace::Workspace;
use crate::preflight::native::BuildGraph;

/// This xtask's own sources, embedded so that `init` needs no network but the crate registry.
const SOURCES: &[(&str, &str)] = &[
    ("cli.rs", include_str!("../cli.rs")),
    ("commands/doctor.rs", include_str!("../commands/doctor.rs")),
    ("commands/image.rs", include_str!("../commands/image.rs")),
    ("commands/init.rs", include_str!("../commands/init.rs")),
    ("commands/mod.rs", include_str!("../commands/mod.rs")),
    (
        "commands/qemu_fetch.rs",
        include_str!("../commands/qemu_fetch.rs"),
    ),
    ("commands/render.rs", include_str!("../commands/render.rs")),
    ("commands/setup.rs", include_str!("../commands/setup.rs")),
    ("config/compile.rs", include_str!("../config/compile.rs")),
    (
        "config/image_ref.rs",
        include_str!("../config/image_ref.rs"),
    ),
    ("config/mod.rs", include_str!("../config/mod.rs")),
    ("config/platform.rs", include_str!("../config/platform.rs")),
    ("config/template.rs", include_str!("../config/template.rs")),
    (
        "config/workspace.rs",
        include_str!("../config/workspace.rs"),
    ),
    ("diagnostic.rs", include_str!("../diagnostic.rs")),
    (
        "emulation/binfmt.rs",
        include_str!("../emulation/binfmt.rs"),
    ),
    ("emulation/mod.rs", include_str!("../emulation/mod.rs")),
    ("emulation/qemu.rs", include_str!("../emulation/qemu.rs")),
    (
        "emulation/sha256.rs",
        include_str!("../emulation/sha256.rs"),
    ),
    ("exec/cargo.rs", include_str!("../exec/cargo.rs")),
    ("exec/docker.rs", include_str!("../exec/docker.rs")),
    ("exec/files.rs", include_str!("../exec/files.rs")),
    ("exec/mod.rs", include_str!("../exec/mod.rs")),
    ("exec/report.rs", include_str!("../exec/report.rs")),
    ("exec/runner.rs", include_str!("../exec/runner.rs")),
    ("lib.rs", include_str!("../lib.rs")),
    ("main.rs", include_str!("../main.rs")),
    ("plan/context.rs", include_str!("../plan/context.rs")),
    ("plan/dockerfile.rs", include_str!("../plan/dockerfile.rs")),
    (
        "plan/dockerignore.rs",
        include_str!("../plan/dockerignore.rs"),
    ),
    ("plan/mod.rs", include_str!("../plan/mod.rs")),
    ("plan/render.rs", include_str!("../plan/render.rs")),
    (
        "preflight/base_images.rs",
        include_str!("../preflight/base_images.rs"),
    ),
    (
        "preflight/credentials.rs",
        include_str!("../preflight/credentials.rs"),
    ),
    ("preflight/mod.rs", include_str!("../preflight/mod.rs")),
    (
        "preflight/native.rs",
        include_str!("../preflight/native.rs"),
    ),
    (
        "preflight/toolchain.rs",
        include_str!("../preflight/toolchain.rs"),
    ),
    ("process.rs", include_str!("../process.rs")),
];

const MANIFEST: &str = include_str!("../../Cargo.toml");

/// The Dockerfile template for a static binary that `init` writes.
pub const DOCKERFILE: &str = r#"# Rendered by `cargo xtask image` for {{ platform }}; the context holds only this
# file and the binaries, built on the host for {{ rust_target }}.
FROM {{ base }}
{% for bin in bins %}
COPY {{ bin }} /usr/local/bin/{{ bin }}
{% endfor %}
ENTRYPOINT ["/usr/local/bin/{{ bins[0] }}"]
"#;

const ALIAS: &str = "xtask = \"run --package xtask --\"";

/// What `init` did to one file.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Created,
    Updated(&'static str),
    Skipped(&'static str),
}

pub fn run(args: &InitArgs) -> Result<()> {
    let dir = args.dir.as_path();
    let changes = init(dir, args.package.as_deref())?;
    for (path, change) in &changes {
        match change {
            Change::Created => println!("created {}", path.display()),
            Change::Updated(what) => println!("updated {} ({what})", path.display()),
            Change::Skipped(what) => {
                eprintln!("skipped {} ({what} is already there)", path.display())
            }
        }
    }
    if changes.iter().all(|(_, c)| matches!(c, Change::Skipped(_))) {
        eprintln!("nothing to do: {} already has the xtask", dir.display());
    } else {
        eprintln!("next: cd {} && cargo xtask image --dry-run", dir.display());
    }
    Ok(())
}

fn init(dir: &Path, package: Option<&str>) -> Result<Vec<(PathBuf, Change)>> {
    let root_manifest = dir.join("Cargo.toml");
    if !root_manifest.is_file() {
        return Err(crate::diagnostic::diagnostic(format!("{} is not a Cargo project (no Cargo.toml)", dir.display()), "run `cargo new` there first, or pass the directory of an existing package or workspace"));
    }
    let sh = Shell::new()?;
    let workspace = Workspace::load(&sh, dir)?;
    let root = workspace.root.canonicalize()?;
    if root != dir.canonicalize()? {
        return Err(crate::diagnostic::diagnostic(
            format!(
                "{} belongs to the workspace at {}",
                dir.display(),
                root.display()
            ),
            format!(
                "run `cargo xtask init {}` on the workspace root instead",
                root.display()
            ),
        ));
    }
    let candidates: Vec<_> = workspace
        .packages
        .iter()
        .filter(|p| p.name != "xtask" && !p.bins.is_empty())
        .collect();
    let chosen = match (package, candidates.as_slice()) {
        (Some(name), _) => candidates
            .iter()
            .find(|p| p.name == name)
            .copied()
            .ok_or_else(|| {
                crate::diagnostic::diagnostic(
                    format!(
                        "`{name}` is not a binary package of the workspace at {}",
                        root.display()
                    ),
                    format!("pick one of: {}", names(&candidates)),
                )
            })?,
        (None, [one]) => *one,
        (None, []) => {
            return Err(crate::diagnostic::diagnostic(
                format!("no package in {} has a binary target", root.display()),
                "add a `src/main.rs` to the package that ships as an image",
            ))
        }
        (None, several) => {
            return Err(crate::diagnostic::diagnostic(
                format!(
                    "several packages of {} have binaries: {}",
                    root.display(),
                    names(several)
                ),
                "pick the one that ships as an image with `--package NAME`",
            ))
        }
    };

    let mut changes = Vec::new();
    let xtask = root.join("xtask");
    changes.push(create(&xtask.join("Cargo.toml"), &embedded_manifest())?);
    for (name, source) in SOURCES {
        changes.push(create(&xtask.join("src").join(name), &strip_tests(source))?);
    }
    changes.push(create(&root.join("docker/Dockerfile.j2"), DOCKERFILE)?);
    changes.push(edit(
        &root.join(".cargo/config.toml"),
        add_alias,
        "the xtask alias",
    )?);
    changes.push(edit(
        &root.join("Cargo.toml"),
        add_workspace_member,
        "the xtask workspace member",
    )?);
    let toolchain = suggested_toolchain(&root, &chosen.name);
    changes.push(edit(
        &chosen.manifest_path,
        |text| add_multiarch_table(text, toolchain),
        "[package.metadata.multiarch]",
    )?);
    Ok(changes)
}

fn names(packages: &[&crate::config::workspace::Package]) -> String {
    packages
        .iter()
        .map(|p| format!("`{}`", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The xtask's manifest without what only this repository's tests need.
fn embedded_manifest() -> String {
    let end = MANIFEST
        .find("\n[dev-dependencies]")
        .unwrap_or(MANIFEST.len());
    format!("{}\n", MANIFEST[..end].trim_end())
}

/// A source file without its unit tests (and their doc comments), which read files only
/// this repository has. Test code comes last in every module.
fn strip_tests(source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut end = lines
        .iter()
        .position(|l| l.trim() == "#[cfg(test)]")
        .unwrap_or(lines.len());
    while end > 0 && lines[end - 1].starts_with("///") {
        end -= 1;
    }
    format!("{}\n", lines[..end].join("\n").trim_end())
}

fn create(path: &Path, contents: &str) -> Result<(PathBuf, Change)> {
    if path.exists() {
        return Ok((path.to_path_buf(), Change::Skipped("the file")));
    }
    crate::exec::files::write_if_changed(path, contents.as_bytes())?;
    Ok((path.to_path_buf(), Change::Created))
}

/// Applies `change` to a text file (empty when missing); `None` means nothing to add.
fn edit(
    path: &Path,
    change: impl Fn(&str) -> Option<String>,
    what: &'static str,
) -> Result<(PathBuf, Change)> {
    let existing = std::fs::read_to_string(path).ok();
    match change(existing.as_deref().unwrap_or("")) {
        None => Ok((path.to_path_buf(), Change::Skipped(what))),
        Some(text) => {
            crate::exec::files::write_if_changed(path, text.as_bytes())?;
            Ok((
                path.to_path_buf(),
                if existing.is_some() {
                    Change::Updated(what)
                } else {
                    Change::Created
                },
            ))
        }
    }
}

fn parse(text: &str) -> toml::Table {
    text.parse().unwrap_or_default()
}

/// Adds `xtask = "run --package xtask --"` under `[alias]`.
fn add_alias(text: &str) -> Option<String> {
    if parse(text)
        .get("alias")
        .and_then(|a| a.get("xtask"))
        .is_some()
    {
        return None;
    }
    Some(insert_under_header(text, "[alias]", ALIAS))
}

/// Makes `xtask` a workspace member, creating `[workspace]` when the package has none.
fn add_workspace_member(text: &str) -> Option<String> {
    let manifest = parse(text);
    let members = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array());
    if members.is_some_and(|m| {
        m.iter()
            .any(|v| matches!(v.as_str(), Some("xtask" | "*" | "./xtask")))
    }) {
        return None;
    }
    if members.is_none() {
        return Some(insert_under_header(
            text,
            "[workspace]",
            "members = [\"xtask\"]",
        ));
    }
    // Insert as the first entry of the existing `members = [` array.
    let section = text.find("[workspace]")?;
    let key = section + text[section..].find("members")?;
    let bracket = key + text[key..].find('[')? + 1;
    Some(format!(
        "{}\"xtask\", {}",
        &text[..bracket],
        text[bracket..].trim_start_matches(' ')
    ))
}

/// Zig when the package's graph compiles C and zig and cargo-zigbuild are both installed.
fn suggested_toolchain(root: &Path, package: &str) -> Toolchain {
    let compiles_c = || {
        BuildGraph::load(root, &CargoOptions::default()).is_ok_and(|graph| {
            PLATFORMS
                .iter()
                .take(2)
                .any(|p| !graph.native_crates(package, p.rust_target).is_empty())
        })
    };
    if crate::preflight::toolchain::zig_available().is_ok() && compiles_c() {
        Toolchain::Zig
    } else {
        Toolchain::Cargo
    }
}

/// Adds a `[package.metadata.multiarch]` table with the host's platform and linux/arm64.
fn add_multiarch_table(text: &str, toolchain: Toolchain) -> Option<String> {
    let manifest = parse(text);
    if manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("multiarch"))
        .is_some()
    {
        return None;
    }
    let host = Platform::host().map_or("linux/amd64".to_owned(), |p| p.name());
    let mut platforms = vec![host];
    if platforms[0] != "linux/arm64" {
        platforms.push("linux/arm64".to_owned());
    }
    let list = platforms
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let compile = match toolchain {
        Toolchain::Zig => {
            "# Crates of this package compile C: zig compiles it (and links) for every target.\n\
             toolchain = \"zig\"\n"
                .to_owned()
        }
        Toolchain::Cargo => String::new(),
    };
    let arm64 = match toolchain {
        Toolchain::Zig => String::new(),
        Toolchain::Cargo => "\n# Static musl binaries for `FROM scratch`; rust-lld ships with rustup. When a\n\
             # dependency compiles C (cc, ring, zstd, openssl...), use `toolchain = \"zig\"` above\n\
             # instead (pip install ziglang cargo-zigbuild).\n\
             [package.metadata.multiarch.platform.\"linux/arm64\"]\nlinker = \"rust-lld\"\n"
            .to_owned(),
    };
    Some(format!(
        "{}\n\n# Container images of this package: `cargo xtask image` (see the multiarch README).\n\
         [package.metadata.multiarch]\nplatforms = [{list}]\ntags = [\"{{{{ version }}}}\", \"latest\"]\n{compile}\n\
         [package.metadata.multiarch.vars]\nbase = \"scratch\"\n{arm64}",
        text.trim_end()
    ))
}

/// Inserts `line` right after `header`, appending the header at the end when it is absent.
fn insert_under_header(text: &str, header: &str, line: &str) -> String {
    match text.lines().position(|l| l.trim() == header) {
        Some(index) => {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.insert(index + 1, line);
            lines.join("\n") + "\n"
        }
        None if text.trim().is_empty() => format!("{header}\n{line}\n"),
        None => format!("{}\n\n{header}\n{line}\n", text.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_every_source_file() {
        fn rust_files(dir: &Path, relative: &Path, files: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir.join(relative)).unwrap() {
                let entry = entry.unwrap();
                let path = relative.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    rust_files(dir, &path, files);
                } else {
                    files.push(path.display().to_string());
                }
            }
        }
        let mut files = Vec::new();
        rust_files(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            Path::new(""),
            &mut files,
        );
        files.sort();
        let embedded: Vec<&str> = SOURCES.iter().map(|(name, _)| *name).collect();
        assert_eq!(files, embedded);
        for (name, source) in SOURCES {
            let stripped = strip_tests(source);
            assert!(
                !stripped.lines().any(|l| l.trim() == "#[cfg(test)]"),
                "{name}: tests must come last"
            );
            assert!(stripped.starts_with("//!"), "{name}");
        }
        assert!(!embedded_manifest().contains("dev-dependencies"));
        assert!(embedded_manifest().contains("xshell = \"=0.2.7\""));
    }

    #[test]
    fn the_demo_template_is_the_one_init_writes() {
        let demo = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/Dockerfile.j2"),
        )
        .unwrap();
        assert_eq!(demo, DOCKERFILE);
    }

    #[test]
    fn workspace_membership() {
        assert_eq!(
            add_workspace_member("[package]\nname = \"a\"\n").unwrap(),
            "[package]\nname = \"a\"\n\n[workspace]\nmembers = [\"xtask\"]\n"
        );
        assert_eq!(
            add_workspace_member("[workspace]\nmembers = [\"a\", \"b\"]\n").unwrap(),
            "[workspace]\nmembers = [\"xtask\", \"a\", \"b\"]\n"
        );
        assert_eq!(
            add_workspace_member("[workspace]\nmembers = [\n  \"a\",\n]\n").unwrap(),
            "[workspace]\nmembers = [\"xtask\", \n  \"a\",\n]\n"
        );
        assert_eq!(
            add_workspace_member("[workspace]\nresolver = \"2\"\n").unwrap(),
            "[workspace]\nmembers = [\"xtask\"]\nresolver = \"2\"\n"
        );
        assert_eq!(
            add_workspace_member("[workspace]\nmembers = [\"xtask\", \"a\"]\n"),
            None
        );
        assert_eq!(
            add_workspace_member("[workspace]\nmembers = [\"*\"]\n"),
            None
        );
        for text in [
            "[package]\nname = \"a\"\n",
            "[workspace]\nmembers = [\n  \"a\",\n]\n",
        ] {
            let edited = add_workspace_member(text).unwrap();
            assert!(edited.parse::<toml::Table>().is_ok(), "{edited}");
            assert_eq!(add_workspace_member(&edited), None, "idempotent: {edited}");
        }
    }

    #[test]
    fn aliases_merge_into_an_existing_config() {
        assert_eq!(
            add_alias("").unwrap(),
            "[alias]\nxtask = \"run --package xtask --\"\n"
        );
        assert_eq!(
            add_alias("[build]\njobs = 2\n").unwrap(),
            "[build]\njobs = 2\n\n[alias]\nxtask = \"run --package xtask --\"\n"
        );
        assert_eq!(
            add_alias("[alias]\nb = \"build\"\n").unwrap(),
            "[alias]\nxtask = \"run --package xtask --\"\nb = \"build\"\n"
        );
        assert_eq!(add_alias("[alias]\nxtask = \"run -p xtask --\"\n"), None);
    }

    #[test]
    fn the_multiarch_table_parses_and_is_added_once() {
        let edited = add_multiarch_table(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n",
            Toolchain::Cargo,
        )
        .unwrap();
        let tables = crate::config::parse_manifest(Path::new("Cargo.toml"), &edited).unwrap();
        assert!(tables.package.is_some());
        assert_eq!(add_multiarch_table(&edited, Toolchain::Cargo), None);
        assert!(edited.contains("use `toolchain = \"zig\"`"), "{edited}");
    }

    #[test]
    fn a_package_that_compiles_c_gets_zig_and_no_linker() {
        let edited = add_multiarch_table("[package]\nname = \"app\"\n", Toolchain::Zig).unwrap();
        let tables = crate::config::parse_manifest(Path::new("Cargo.toml"), &edited).unwrap();
        let (workspace, package) = (
            crate::config::workspace::Workspace {
                root: "/ws".into(),
                target_dir: "/ws/target".into(),
                packages: Vec::new(),
            },
            crate::config::workspace::Package {
                name: "app".into(),
                version: "0.1.0".into(),
                manifest_path: "/ws/Cargo.toml".into(),
                description: None,
                license: None,
                repository: None,
                bins: vec!["app".into()],
            },
        );
        let config = crate::config::Config::resolve(
            &workspace,
            &package,
            Default::default(),
            tables.package.unwrap(),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(config.toolchain, Toolchain::Zig);
        assert!(config
            .platforms
            .iter()
            .all(|p| config.platform(p).linker.is_none()));
    }
}
