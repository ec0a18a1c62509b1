//! `cargo xtask init DIR`: embeds this xtask into another Cargo workspace, adding files and
//! entries but never overwriting what is there.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::commands::cli::InitArgs;
use crate::config::compile::{CargoOptions, Toolchain};
use crate::config::platform::{Platform, PLATFORMS};
use crate::config::workspace::Workspace;
use crate::preflight::native::BuildGraph;

/// This xtask's own sources, embedded so that `init` needs no network but the crate registry;
/// the list is written by `build.rs` from what `src/` holds.
const SOURCES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/sources.rs"));

/// The build script that writes that list, copied beside the sources.
const BUILD_SCRIPT: &str = include_str!("../../build.rs");

const MANIFEST: &str = include_str!("../../Cargo.toml");

/// The Dockerfile template for a static binary that `init` writes.
pub(crate) const DOCKERFILE: &str = r#"# Rendered by `cargo xtask image` for {{ platform }}; the context holds only this
# file and the binaries, built on the host for {{ rust_target }}.
FROM {{ base }}
{% for bin in bins %}
COPY {{ bin }} /usr/local/bin/{{ bin }}
{% endfor %}
ENTRYPOINT ["/usr/local/bin/{{ bins[0] }}"]
"#;

/// What `init` did to one file.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Created,
    Updated(&'static str),
    Skipped(&'static str),
}

pub(crate) fn run(args: &InitArgs) -> Result<()> {
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
        eprintln!(
            "next: cd {} && cargo xtask image --dry-run",
            crate::process::shell_quote(&dir.display().to_string())
        );
    }
    Ok(())
}

/// Embeds the xtask; a failure leaves the directory as it was, down to the `Cargo.lock`
/// that reading the workspace with `cargo metadata` creates or updates. With nothing to
/// do, no file changes, the lock included.
fn init(dir: &Path, package: Option<&str>) -> Result<Vec<(PathBuf, Change)>> {
    let lock = dir.join("Cargo.lock");
    let before = std::fs::read(&lock).ok();
    let modified = std::fs::metadata(&lock).and_then(|m| m.modified()).ok();
    let result = init_workspace(dir, package);
    let changed = result.as_ref().is_ok_and(|changes| {
        changes
            .iter()
            .any(|(_, c)| !matches!(c, Change::Skipped(_)))
    });
    if !changed {
        match &before {
            Some(bytes) => {
                if std::fs::read(&lock).ok().as_ref() != Some(bytes) {
                    let _ = std::fs::write(&lock, bytes);
                }
                // Even a rewrite of the same bytes would be a change to `make` and editors.
                if let (Some(time), Ok(file)) =
                    (modified, std::fs::File::options().write(true).open(&lock))
                {
                    let _ = file.set_modified(time);
                }
            }
            None => {
                let _ = std::fs::remove_file(&lock);
            }
        }
    }
    result
}

fn init_workspace(dir: &Path, package: Option<&str>) -> Result<Vec<(PathBuf, Change)>> {
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
    let chosen = choose_package(&workspace, &root, package)?;
    refuse_a_foreign_xtask(&root, &workspace)?;
    let xtask = root.join("xtask");
    let mut writes = Writes::default();
    writes.create(&xtask.join("Cargo.toml"), &embedded_manifest());
    writes.create(&xtask.join("build.rs"), BUILD_SCRIPT);
    for (name, source) in SOURCES {
        writes.create(&xtask.join("src").join(name), &strip_tests(source));
    }
    writes.create(&root.join("docker/Dockerfile.j2"), DOCKERFILE);
    writes.edit(
        &root.join(".cargo/config.toml"),
        add_alias,
        "the xtask alias",
    )?;
    writes.edit(
        &root.join("Cargo.toml"),
        add_workspace_member,
        "the xtask workspace member",
    )?;
    let toolchain = suggested_toolchain(&root, &chosen.name);
    writes.edit(
        &chosen.manifest_path,
        |text| add_multiarch_table(text, toolchain),
        "[package.metadata.multiarch]",
    )?;
    writes.apply()
}

/// The package that ships as an image: the one named, else the only binary package.
fn choose_package<'a>(
    workspace: &'a Workspace,
    root: &Path,
    package: Option<&str>,
) -> Result<&'a crate::config::workspace::Package> {
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
    Ok(chosen)
}

/// A workspace's own `xtask/` (or a package named `xtask` elsewhere) is never touched.
fn refuse_a_foreign_xtask(root: &Path, workspace: &Workspace) -> Result<()> {
    let xtask = root.join("xtask");
    let manifest = xtask.join("Cargo.toml");
    let ours = std::fs::read_to_string(&manifest)
        .is_ok_and(|text| text.contains("\ndescription = \"multiarch: "));
    let other_package = workspace
        .packages
        .iter()
        .find(|p| p.name == "xtask" && p.manifest_path != manifest);
    let found = if let Some(package) = other_package {
        Some(format!(
            "a package `xtask` at {}",
            package.manifest_path.display()
        ))
    } else if xtask.exists() && !ours {
        let mut entries: Vec<String> = std::fs::read_dir(&xtask)
            .map(|dir| {
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        entries.sort();
        Some(format!(
            "{} holding {}",
            xtask.display(),
            entries.join(", ")
        ))
    } else {
        None
    };
    match found {
        Some(found) => Err(crate::diagnostic::diagnostic(
            format!("the workspace already has its own xtask: {found}"),
            "init embeds multiarch as the workspace's `xtask`; rename yours, or copy multiarch's sources into it by hand",
        )),
        None => Ok(()),
    }
}

/// Everything `init` writes, decided before anything is written, then applied all or
/// nothing: on any error the files created are removed and the files edited restored.
#[derive(Default)]
struct Writes {
    /// In order: path, new contents (`None`: unchanged), the original when edited, and
    /// what is reported.
    files: Vec<(PathBuf, Option<String>, Option<String>, Change)>,
}

impl Writes {
    fn create(&mut self, path: &Path, contents: &str) {
        let (contents, change) = if path.exists() {
            (None, Change::Skipped("the file"))
        } else {
            (Some(contents.to_owned()), Change::Created)
        };
        self.files
            .push((path.to_path_buf(), contents, None, change));
    }

    /// Applies `change` to the file as this run will have left it (a manifest can be both
    /// the workspace root and the package).
    fn edit(
        &mut self,
        path: &Path,
        change: impl Fn(&str) -> Result<Option<String>>,
        what: &'static str,
    ) -> Result<()> {
        let earlier = self.files.iter().rposition(|(p, ..)| p == path);
        let original = match earlier {
            Some(index) => self.files[index].2.clone(),
            None => std::fs::read_to_string(path).ok(),
        };
        let current = earlier
            .and_then(|index| self.files[index].1.clone())
            .or_else(|| original.clone());
        let edited = change(current.as_deref().unwrap_or(""))
            .with_context(|| format!("cannot edit {}", path.display()))?;
        let report = match (&edited, &original) {
            (None, _) => Change::Skipped(what),
            (Some(_), Some(_)) => Change::Updated(what),
            (Some(_), None) => Change::Created,
        };
        if let (Some(index), Some(edited)) = (earlier, &edited) {
            self.files[index].1 = Some(edited.clone());
        }
        let contents = if earlier.is_some() { None } else { edited };
        self.files
            .push((path.to_path_buf(), contents, original, report));
        Ok(())
    }

    fn apply(self) -> Result<Vec<(PathBuf, Change)>> {
        let mut done: Vec<(&Path, Option<&str>)> = Vec::new();
        let mut created_dirs: Vec<PathBuf> = Vec::new();
        for (path, contents, original, _) in &self.files {
            let Some(contents) = contents else { continue };
            let result = missing_dirs(path, &mut created_dirs)
                .and_then(|()| write_keeping_link_and_mode(path, contents));
            if let Err(err) = result {
                for (path, original) in done.iter().rev() {
                    let _ = match original {
                        Some(original) => write_keeping_link_and_mode(path, original),
                        None => std::fs::remove_file(path).map_err(Into::into),
                    };
                }
                for dir in created_dirs.iter().rev() {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(err.context("init changed nothing"));
            }
            done.push((path, original.as_deref()));
        }
        Ok(self
            .files
            .into_iter()
            .map(|(path, _, _, change)| (path, change))
            .collect())
    }
}

/// Creates the missing parents of `path`, recording them so a failed run can remove them.
fn missing_dirs(path: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut missing = Vec::new();
    let mut parent = path.parent();
    while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(dir.to_path_buf());
        parent = dir.parent();
    }
    for dir in missing.into_iter().rev() {
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        created.push(dir);
    }
    Ok(())
}

/// Replaces a file's contents atomically; a symlink stays a link (its target is written)
/// and the file keeps its permissions.
fn write_keeping_link_and_mode(path: &Path, contents: &str) -> Result<()> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let permissions = std::fs::metadata(&real).ok().map(|m| m.permissions());
    let temporary = real.with_file_name(format!(
        ".{}.{}.multiarch-init",
        real.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::write(&temporary, contents)
        .and_then(|()| match &permissions {
            Some(permissions) => std::fs::set_permissions(&temporary, permissions.clone()),
            None => Ok(()),
        })
        .and_then(|()| std::fs::rename(&temporary, &real));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(err).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
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

/// Adds `xtask = "run --package xtask --"` to `[alias]`, keeping everything else as written.
fn add_alias(text: &str) -> Result<Option<String>> {
    let mut doc = parse(text)?;
    let alias = doc
        .entry("alias")
        .or_insert(toml_edit::table())
        .as_table_like_mut()
        .context("`alias` is not a table")?;
    if alias.contains_key("xtask") {
        return Ok(None);
    }
    alias.insert("xtask", toml_edit::value("run --package xtask --"));
    Ok(Some(doc.to_string()))
}

/// Makes `xtask` a workspace member, creating `[workspace]` when the package has none.
fn add_workspace_member(text: &str) -> Result<Option<String>> {
    let mut doc = parse(text)?;
    let workspace = doc
        .entry("workspace")
        .or_insert(toml_edit::table())
        .as_table_like_mut()
        .context("`workspace` is not a table")?;
    let members = workspace
        .entry("members")
        .or_insert(toml_edit::value(toml_edit::Array::new()))
        .as_array_mut()
        .context("`workspace.members` is not an array")?;
    if members
        .iter()
        .any(|m| matches!(m.as_str(), Some("xtask" | "*" | "./xtask")))
    {
        return Ok(None);
    }
    members.push("xtask");
    Ok(Some(doc.to_string()))
}

fn parse(text: &str) -> Result<toml_edit::DocumentMut> {
    text.parse::<toml_edit::DocumentMut>()
        .map_err(|err| anyhow::anyhow!("{}", err.to_string().trim()))
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
fn add_multiarch_table(text: &str, toolchain: Toolchain) -> Result<Option<String>> {
    let manifest = parse(text)?;
    if manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("multiarch"))
        .is_some()
    {
        return Ok(None);
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
    let edited = format!(
        "{}\n\n# Container images of this package: `cargo xtask image` (see the multiarch README).\n\
         [package.metadata.multiarch]\nplatforms = [{list}]\ntags = [\"{{{{ version }}}}\", \"latest\"]\n{compile}\n\
         [package.metadata.multiarch.vars]\nbase = \"scratch\"\n{arm64}",
        text.trim_end()
    );
    // Appending a table is not valid after every shape of `[package]` (an inline
    // `metadata = { ... }`, say): the result must still parse.
    if let Err(err) = parse(&edited) {
        let problem = err.to_string();
        return Err(crate::diagnostic::diagnostic(
            format!(
                "adding [package.metadata.multiarch] would make it invalid ({})",
                problem.lines().next().unwrap_or_default()
            ),
            "add the table by hand; the README's \"Configuration\" section shows it",
        ));
    }
    Ok(Some(edited))
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

    fn member(text: &str) -> Option<String> {
        add_workspace_member(text).unwrap()
    }

    #[test]
    fn workspace_membership_keeps_the_manifest_as_written() {
        assert_eq!(
            member("[package]\nname = \"a\"\n").unwrap(),
            "[package]\nname = \"a\"\n\n[workspace]\nmembers = [\"xtask\"]\n"
        );
        assert_eq!(
            member("[workspace]\nmembers = [\"a\", \"b\"]\n").unwrap(),
            "[workspace]\nmembers = [\"a\", \"b\", \"xtask\"]\n"
        );
        assert_eq!(
            member("[workspace] # c\nresolver = \"2\"\n").unwrap(),
            "[workspace] # c\nresolver = \"2\"\nmembers = [\"xtask\"]\n"
        );
        assert_eq!(
            member("[workspace]\ndefault-members = [\"a\"]\nmembers = [\"a\"]\n").unwrap(),
            "[workspace]\ndefault-members = [\"a\"]\nmembers = [\"a\", \"xtask\"]\n"
        );
        let commented = "[workspace]\n# see [docs] and members = [old]\nmembers = [\"a\"]\n";
        assert_eq!(
            member(commented).unwrap(),
            "[workspace]\n# see [docs] and members = [old]\nmembers = [\"a\", \"xtask\"]\n"
        );
        assert_eq!(member("[workspace]\nmembers = [\"xtask\", \"a\"]\n"), None);
        assert_eq!(member("[workspace]\nmembers = [\"*\"]\n"), None);
        for text in [
            "[package]\nname = \"a\"\n",
            "[workspace]\nmembers = [\n  \"a\",\n]\n",
            "[workspace] # c\n",
        ] {
            let edited = member(text).unwrap();
            assert!(edited.parse::<toml::Table>().is_ok(), "{edited}");
            assert_eq!(member(&edited), None, "idempotent: {edited}");
        }
        assert!(add_workspace_member("workspace = 3\n").is_err());
    }

    #[test]
    fn aliases_merge_into_an_existing_config() {
        let alias = |text: &str| add_alias(text).unwrap();
        assert_eq!(
            alias("").unwrap(),
            "[alias]\nxtask = \"run --package xtask --\"\n"
        );
        assert_eq!(
            alias("[build]\njobs = 2\n").unwrap(),
            "[build]\njobs = 2\n\n[alias]\nxtask = \"run --package xtask --\"\n"
        );
        assert_eq!(
            alias("[alias] # mine\nb = \"build\"\n").unwrap(),
            "[alias] # mine\nb = \"build\"\nxtask = \"run --package xtask --\"\n"
        );
        let dotted = alias("alias.b = \"build\"\n").unwrap();
        assert_eq!(dotted.matches("alias").count(), 2, "{dotted}");
        let parsed: toml::Table = dotted.parse().unwrap();
        assert_eq!(
            parsed["alias"]["xtask"].as_str(),
            Some("run --package xtask --")
        );
        assert_eq!(parsed["alias"]["b"].as_str(), Some("build"));
        assert_eq!(alias("[alias]\nxtask = \"run -p xtask --\"\n"), None);
    }

    #[test]
    fn a_failed_write_removes_what_was_created_and_restores_what_was_edited() {
        let dir =
            std::env::temp_dir().join(format!("multiarch-init-writes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"a\"\n").unwrap();
        std::fs::write(dir.join("blocker"), "a file, not a directory").unwrap();
        let mut writes = Writes::default();
        writes.create(&dir.join("new/dir/created.rs"), "x");
        writes
            .edit(&dir.join("Cargo.toml"), add_workspace_member, "member")
            .unwrap();
        writes.create(&dir.join("blocker/child.rs"), "y");
        let message = format!("{:#}", writes.apply().unwrap_err());
        assert!(
            message.starts_with("init changed nothing: cannot write "),
            "{message}"
        );
        assert!(message.contains("blocker/child.rs"), "{message}");
        assert!(!dir.join("new").exists(), "created directories are gone");
        assert_eq!(
            std::fs::read_to_string(dir.join("Cargo.toml")).unwrap(),
            "[package]\nname = \"a\"\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn edits_keep_a_symlinked_manifest_a_link_and_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("multiarch-init-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::fs::write(dir.join("real/Cargo.toml"), "[package]\nname = \"a\"\n").unwrap();
        std::fs::set_permissions(
            dir.join("real/Cargo.toml"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("real/Cargo.toml", dir.join("Cargo.toml")).unwrap();
        let mut writes = Writes::default();
        writes
            .edit(&dir.join("Cargo.toml"), add_workspace_member, "member")
            .unwrap();
        writes.apply().unwrap();
        let link = std::fs::symlink_metadata(dir.join("Cargo.toml")).unwrap();
        assert!(link.file_type().is_symlink());
        let real = std::fs::metadata(dir.join("real/Cargo.toml")).unwrap();
        assert_eq!(real.permissions().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(dir.join("real/Cargo.toml"))
            .unwrap()
            .contains("members = [\"xtask\"]"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_multiarch_table_parses_and_is_added_once() {
        let edited = add_multiarch_table(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n",
            Toolchain::Cargo,
        )
        .unwrap()
        .unwrap();
        let tables = crate::config::parse_manifest(Path::new("Cargo.toml"), &edited).unwrap();
        assert!(tables.package.is_some());
        assert_eq!(
            add_multiarch_table(&edited, Toolchain::Cargo).unwrap(),
            None
        );
        let inline = "[package]\nname = \"app\"\nmetadata = { docs = 1 }\n";
        assert!(add_multiarch_table(inline, Toolchain::Cargo).is_err());
        assert!(edited.contains("use `toolchain = \"zig\"`"), "{edited}");
    }

    #[test]
    fn a_package_that_compiles_c_gets_zig_and_no_linker() {
        let edited = add_multiarch_table("[package]\nname = \"app\"\n", Toolchain::Zig)
            .unwrap()
            .unwrap();
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
