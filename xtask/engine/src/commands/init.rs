//! `cargo xtask init DIR`: gives another Cargo workspace a thin xtask over the engine (or,
//! with `--vendor`, a copy of the engine's sources), adding files and entries but never
//! overwriting what is there.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::commands::cli::{EngineSource, InitArgs};
use crate::config::compile::{CargoOptions, Toolchain};
use crate::config::platform::{Platform, PLATFORMS};
use crate::config::workspace::Workspace;
use crate::preflight::native::BuildGraph;

/// The engine library's sources, embedded so that `init --vendor` needs no network but the
/// crate registry; the list is written by `build.rs` from what `src/` holds.
const SOURCES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/sources.rs"));

/// The build script that writes that list, copied beside the sources.
const BUILD_SCRIPT: &str = include_str!("../../build.rs");

/// The engine's own manifest, the base of a vendored xtask's.
const MANIFEST: &str = include_str!("../../Cargo.toml");

/// The `main.rs` of every xtask `init` writes, thin or vendored.
pub(crate) const THIN_MAIN: &str = r#"//! `cargo xtask`: this workspace's tasks, all of them the multiarch engine's (`image`,
//! `init`, `doctor`, ...); a thin binary, so the engine stays a library.

fn main() {
    multiarch::main()
}
"#;

/// The package `init` adds beside a workspace's own xtask, which it leaves alone.
const BESIDE_XTASK: &str = "xtask-multiarch";

/// The Dockerfile template for a static binary that `init` writes.
pub(crate) const DOCKERFILE: &str = r#"# Rendered by `cargo xtask image` for {{ platform }}; the context holds only this
# file and the binaries, built on the host for {{ rust_target }}.
FROM {{ base }}
{% for bin in bins %}
COPY {{ bin }} /usr/local/bin/{{ bin }}
{% endfor %}
ENTRYPOINT ["/usr/local/bin/{{ bins[0] }}"]
"#;

/// Every file `init` touched, and what it did to each.
type Changes = Vec<(PathBuf, Change)>;

/// What `init` did to one file.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Created,
    Updated(&'static str),
    Skipped(&'static str),
}

/// The package that carries the engine in the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Home {
    /// `xtask/`, which `cargo xtask` runs.
    Xtask,
    /// [`BESIDE_XTASK`]: the workspace has an xtask of its own, and `cargo xtask` stays its.
    BesideOwnXtask,
}

impl Home {
    /// Its directory and package name, relative to the workspace root.
    fn name(self) -> &'static str {
        match self {
            Home::Xtask => "xtask",
            Home::BesideOwnXtask => BESIDE_XTASK,
        }
    }
}

/// How every manifest `init` writes describes its package, and how `init` knows its own.
const DESCRIPTION_PREFIX: &str = "multiarch: this workspace's container images, ";

/// What `init` did: the files, and where the engine went.
struct Done {
    changes: Changes,
    home: Home,
    /// The `[dependencies]` line of a thin xtask.
    dependency: Option<String>,
    /// Packages the workspace had locked that the engine's requirements moved.
    moved: Vec<Moved>,
    /// What runs the engine here: `cargo xtask`, `cargo multiarch`, or `cargo run ...`
    /// when an alias of that name already ran something else.
    entry: String,
}

pub(crate) fn run(args: &InitArgs) -> Result<()> {
    let dir = args.dir.as_path();
    let engine = match &args.engine {
        Some(engine) => engine.clone(),
        None => super::engine_origin::this_engine()?,
    };
    let done = init(dir, args.package.as_deref(), &engine)?;
    for (path, change) in &done.changes {
        match change {
            Change::Created => println!("created {}", path.display()),
            Change::Updated(what) => println!("updated {} ({what})", path.display()),
            Change::Skipped(what) => {
                eprintln!("skipped {} ({what} is already there)", path.display())
            }
        }
    }
    if !done.moved.is_empty() {
        let moved: Vec<String> = done
            .moved
            .iter()
            .map(|m| match m.to.as_slice() {
                [] => format!("{} {} no longer used", m.name, m.from.join(", ")),
                to => format!("{} {} -> {}", m.name, m.from.join(", "), to.join(", ")),
            })
            .collect();
        println!(
            "updated {} ({}: the engine needs them; no other locked version moved)",
            dir.join("Cargo.lock").display(),
            moved.join(", ")
        );
    }
    let quoted = crate::process::shell_quote(&dir.display().to_string());
    if done
        .changes
        .iter()
        .all(|(_, c)| matches!(c, Change::Skipped(_)))
    {
        eprintln!("nothing to do: {} already has the xtask", dir.display());
        return Ok(());
    }
    if done.home == Home::BesideOwnXtask {
        eprintln!(
            "your xtask is untouched; `cargo multiarch` runs the engine through {BESIDE_XTASK}/"
        );
        if let Some(dependency) = &done.dependency {
            eprintln!("to call the engine from your own xtask instead (then remove {BESIDE_XTASK}/ and its alias):");
            eprintln!("    # xtask/Cargo.toml, [dependencies]\n    {dependency}");
            eprintln!("    // xtask/src/main.rs, where it matches its subcommands");
            eprintln!("    Some(\"image\" | \"doctor\" | \"render\" | \"setup\" | \"qemu\") => multiarch::main(),");
        }
    }
    eprintln!("next: cd {quoted} && {} image --dry-run", done.entry);
    Ok(())
}

/// Adds the xtask; a failure leaves the directory as it was, down to the `Cargo.lock`
/// that reading the workspace with `cargo metadata` creates or updates. With nothing to
/// do, no file changes, the lock included.
fn init(dir: &Path, package: Option<&str>, engine: &EngineSource) -> Result<Done> {
    let lock = dir.join("Cargo.lock");
    let before = std::fs::read(&lock).ok();
    let modified = std::fs::metadata(&lock).and_then(|m| m.modified()).ok();
    let result = init_workspace(dir, package, engine);
    let changed = result.as_ref().is_ok_and(|done| {
        done.changes
            .iter()
            .any(|(_, c)| !matches!(c, Change::Skipped(_)))
    });
    if !changed {
        match &before {
            Some(bytes) => {
                if std::fs::read(&lock).ok().as_ref() != Some(bytes) {
                    let _ = std::fs::write(&lock, bytes);
                }
                keep_modified(&lock, modified);
            }
            None => {
                let _ = std::fs::remove_file(&lock);
            }
        }
    }
    result
}

fn init_workspace(dir: &Path, package: Option<&str>, engine: &EngineSource) -> Result<Done> {
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
                "run `cargo multiarch init {}` on the workspace root instead",
                root.display()
            ),
        ));
    }
    let chosen = choose_package(&workspace, &root, package)?;
    let home = find_home(&root, &workspace, engine)?;
    let package_dir = root.join(home.name());
    let mut writes = Writes::default();
    let dependency = match engine {
        EngineSource::Vendor => {
            writes.create(
                &package_dir.join("Cargo.toml"),
                &vendored_manifest(home.name())?,
            );
            writes.create(&package_dir.join("build.rs"), BUILD_SCRIPT);
            for (name, source) in SOURCES {
                writes.create(&package_dir.join("src").join(name), &strip_tests(source));
            }
            None
        }
        thin => {
            let https = needs_tls(&workspace);
            let dependency = dependency_line(thin, &root, &package_dir, https)?;
            writes.create(
                &package_dir.join("Cargo.toml"),
                &thin_manifest(home.name(), &dependency),
            );
            Some(dependency)
        }
    };
    writes.create(&package_dir.join("src/main.rs"), THIN_MAIN);
    writes.create(&root.join("docker/Dockerfile.j2"), DOCKERFILE);
    let aliases: &[&str] = match home {
        Home::Xtask => &["xtask", "multiarch"],
        Home::BesideOwnXtask => &["multiarch"],
    };
    let config = cargo_config_path(&root);
    writes.edit(
        &config,
        |text| add_aliases(text, aliases, home.name()),
        "the aliases",
    )?;
    writes.edit(
        &root.join("Cargo.toml"),
        |text| add_workspace_member(text, home.name()),
        "the workspace member",
    )?;
    let toolchain = suggested_toolchain(&root, &chosen.name);
    writes.edit(
        &chosen.manifest_path,
        |text| add_multiarch_table(text, toolchain),
        "[package.metadata.multiarch]",
    )?;
    let (changes, moved) = apply_and_resolve(writes, &sh, &root)?;
    let config_text = std::fs::read_to_string(&config).unwrap_or_default();
    Ok(Done {
        changes,
        home,
        dependency,
        moved,
        entry: entry_command(&config_text, home.name()),
    })
}

/// The config file cargo reads in `root/.cargo`: the legacy `config` when it exists (cargo
/// prefers it over `config.toml`), else `config.toml`.
fn cargo_config_path(root: &Path) -> PathBuf {
    let legacy = root.join(".cargo/config");
    if legacy.is_file() {
        legacy
    } else {
        root.join(".cargo/config.toml")
    }
}

/// The command that runs the engine's `package`: the first alias of `xtask` and
/// `multiarch` that runs it, else `cargo run` with the package and profile spelled out.
fn entry_command(config: &str, package: &str) -> String {
    let aliases = config
        .parse::<toml::Table>()
        .ok()
        .and_then(|c| c.get("alias").and_then(|a| a.as_table()).cloned())
        .unwrap_or_default();
    let runs_package = |value: &str| {
        let words: Vec<&str> = value.split_whitespace().collect();
        words.first() == Some(&"run") && words.windows(2).any(|w| w == ["--package", package])
    };
    ["xtask", "multiarch"]
        .into_iter()
        .find(|name| {
            aliases
                .get(*name)
                .and_then(|v| v.as_str())
                .is_some_and(runs_package)
        })
        .map_or_else(
            || format!("cargo run --package {package} --profile {PROFILE} --"),
            |name| format!("cargo {name}"),
        )
}

/// Writes everything, then resolves the workspace with the engine in it; a workspace that
/// does not resolve gets every file back. Returns what changed and the locked packages
/// the engine moved.
fn apply_and_resolve(writes: Writes, sh: &Shell, root: &Path) -> Result<(Changes, Vec<Moved>)> {
    let lock_before = std::fs::read_to_string(root.join("Cargo.lock")).ok();
    let (changes, undo) = writes.apply()?;
    if changes.iter().all(|(_, c)| matches!(c, Change::Skipped(_))) {
        return Ok((changes, Vec::new()));
    }
    match resolve(sh, root) {
        Ok(lock_after) => Ok((changes, moved_packages(lock_before.as_deref(), &lock_after))),
        Err(err) => {
            undo.undo();
            Err(err.context("init changed nothing"))
        }
    }
}

/// Resolves the workspace with the engine in it (`cargo metadata` updates `Cargo.lock`
/// as the first `cargo xtask` would), so a dependency that cannot resolve is found now,
/// and returns the lock.
fn resolve(sh: &Shell, root: &Path) -> Result<String> {
    let _dir = sh.push_dir(root);
    crate::process::Command::new(
        crate::config::workspace::cargo_program(),
        ["metadata", "--format-version", "1"],
    )
    .run(sh)
    .map_err(|err| {
        crate::diagnostic::diagnostic(
            format!(
                "the engine does not resolve in the workspace at {}: {}",
                root.display(),
                crate::diagnostic::Diagnostic::of(&err).cause
            ),
            "pin the engine where it exists: `--engine-path CHECKOUT`, `--engine-git URL --rev REV` or `--vendor`",
        )
    })?;
    std::fs::read_to_string(root.join("Cargo.lock")).context("cannot read Cargo.lock")
}

/// A package locked before `init` whose versions the engine's requirements changed.
#[derive(Debug, PartialEq, Eq)]
struct Moved {
    name: String,
    from: Vec<String>,
    to: Vec<String>,
}

/// The packages of the lock before whose versions are no longer all there after: what
/// the engine forced, and what those no longer need (a second major version added beside
/// a locked one moves nothing).
fn moved_packages(before: Option<&str>, after: &str) -> Vec<Moved> {
    let versions = |text: &str| {
        let mut versions = std::collections::BTreeMap::<String, Vec<String>>::new();
        for (name, version) in crate::config::workspace::lock_field(text, "version").into_keys() {
            versions.entry(name).or_default().push(version);
        }
        versions
    };
    let (before, after) = (versions(before.unwrap_or_default()), versions(after));
    before
        .into_iter()
        .filter_map(|(name, from)| {
            let to = after.get(&name).cloned().unwrap_or_default();
            let gone: Vec<String> = from.iter().filter(|v| !to.contains(v)).cloned().collect();
            let new: Vec<String> = to.iter().filter(|v| !from.contains(v)).cloned().collect();
            (!gone.is_empty()).then_some(Moved {
                name,
                from: gone,
                to: new,
            })
        })
        .collect()
}

/// The package that ships as an image: the one named, else the only binary package, else
/// the only one with a multiarch table.
fn choose_package<'a>(
    workspace: &'a Workspace,
    root: &Path,
    package: Option<&str>,
) -> Result<&'a crate::config::workspace::Package> {
    let candidates: Vec<_> = workspace
        .packages
        .iter()
        .filter(|p| !["xtask", BESIDE_XTASK, "multiarch"].contains(&p.name.as_str()))
        .filter(|p| !p.bins.is_empty())
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
        (None, several) => match with_table(several).as_slice() {
            [one] => *one,
            _ => {
                return Err(crate::diagnostic::diagnostic(
                    format!(
                        "several packages of {} have binaries: {}",
                        root.display(),
                        names(several)
                    ),
                    "pick the one that ships as an image with `--package NAME`",
                ))
            }
        },
    };
    Ok(chosen)
}

/// The packages whose manifests already have a `[package.metadata.multiarch]` table.
fn with_table<'a>(
    packages: &[&'a crate::config::workspace::Package],
) -> Vec<&'a crate::config::workspace::Package> {
    packages
        .iter()
        .copied()
        .filter(|package| {
            std::fs::read_to_string(&package.manifest_path)
                .ok()
                .and_then(|text| parse(&text).ok())
                .is_some_and(|manifest| has_multiarch_table(&manifest))
        })
        .collect()
}

/// Whether a manifest has a `[package.metadata.multiarch]` table.
fn has_multiarch_table(manifest: &toml_edit::DocumentMut) -> bool {
    manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("multiarch"))
        .is_some()
}

/// Where the engine goes: `xtask/` when the workspace has no xtask or has one of
/// multiarch's, else [`BESIDE_XTASK`]. An xtask `init` wrote before is kept in its kind:
/// a thin one does not become a copy, nor a copy thin.
fn find_home(root: &Path, workspace: &Workspace, engine: &EngineSource) -> Result<Home> {
    let xtask = root.join("xtask");
    let beside = root.join(BESIDE_XTASK);
    let own_elsewhere = workspace
        .packages
        .iter()
        .any(|p| p.name == "xtask" && p.manifest_path != xtask.join("Cargo.toml"));
    let (home, vendored) = match (ours(&xtask), ours(&beside)) {
        (Some(vendored), _) => (Home::Xtask, Some(vendored)),
        (None, Some(vendored)) => (Home::BesideOwnXtask, Some(vendored)),
        (None, None) if xtask.exists() || own_elsewhere => {
            if beside.exists() {
                return Err(crate::diagnostic::diagnostic(
                    format!(
                        "the workspace has its own xtask, and {} is not multiarch's",
                        beside.display()
                    ),
                    format!(
                        "move {} aside; `init` puts the engine there",
                        beside.display()
                    ),
                ));
            }
            (Home::BesideOwnXtask, None)
        }
        (None, None) => (Home::Xtask, None),
    };
    let wanted = *engine == EngineSource::Vendor;
    if let Some(vendored) = vendored.filter(|&vendored| vendored != wanted) {
        let dir = root.join(home.name());
        let (is, flag) = if vendored {
            ("a vendored copy of", "--vendor")
        } else {
            ("a thin xtask over", "--engine-…")
        };
        return Err(crate::diagnostic::diagnostic(
            format!(
                "{} already holds {is} the multiarch engine; `init` does not mix the two",
                dir.display()
            ),
            format!(
                "pass {flag} to keep it as it is, or delete {} to switch",
                dir.display()
            ),
        ));
    }
    Ok(home)
}

/// Whether `dir` holds an xtask that `init` wrote: `Some(true)` for a vendored copy of
/// the engine, `Some(false)` for a thin one.
fn ours(dir: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    text.contains(&format!("\ndescription = \"{DESCRIPTION_PREFIX}"))
        .then(|| dir.join("src/lib.rs").exists())
}

/// The `[dependencies]` line of a thin xtask, checked before anything is written; without
/// `https`, the engine's default features (TLS) are left out.
fn dependency_line(
    engine: &EngineSource,
    root: &Path,
    package_dir: &Path,
    https: bool,
) -> Result<String> {
    let features = if https {
        ""
    } else {
        ", default-features = false"
    };
    let quote = |text: &str| toml_edit::Value::from(text).to_string().trim().to_owned();
    Ok(match engine {
        EngineSource::Version(requirement) => {
            let allowed = |c: char| c.is_ascii_alphanumeric() || " .*^~=<>,+-".contains(c);
            if requirement.trim().is_empty() || !requirement.chars().all(allowed) {
                return Err(crate::diagnostic::diagnostic(
                    format!(
                        "`--engine-version {}` is not a version requirement",
                        crate::diagnostic::escape(requirement)
                    ),
                    "pass one as Cargo writes them, such as `0.1` or `=0.1.0`",
                ));
            }
            if https {
                format!("multiarch = {}", quote(requirement))
            } else {
                format!(
                    "multiarch = {{ version = {}{features} }}",
                    quote(requirement)
                )
            }
        }
        EngineSource::Path(checkout) => {
            let engine = engine_package(checkout)?;
            let path = match engine.strip_prefix(root) {
                Ok(inside) => relative_from(package_dir, root).join(inside),
                Err(_) => engine,
            };
            format!(
                "multiarch = {{ path = {}{features} }}",
                quote(&path.display().to_string())
            )
        }
        EngineSource::Git { url, rev } => {
            let plain = |text: &str| {
                !text.is_empty() && !text.chars().any(|c| c.is_control() || c.is_whitespace())
            };
            if !plain(url) || rev.as_deref().is_some_and(|rev| !plain(rev)) {
                return Err(crate::diagnostic::diagnostic(
                    "`--engine-git` and `--rev` take one word each, without spaces or control characters",
                    "pass the repository's URL, such as `--engine-git https://github.com/multiarch-rs/multiarch`",
                ));
            }
            match rev {
                Some(rev) => format!(
                    "multiarch = {{ git = {}, rev = {}{features} }}",
                    quote(url),
                    quote(rev)
                ),
                None => format!("multiarch = {{ git = {}{features} }}", quote(url)),
            }
        }
        EngineSource::Vendor => unreachable!("a vendored xtask has no engine dependency"),
    })
}

/// Whether the engine needs its TLS in this workspace. Every push and publish speaks the
/// registry API itself, so it does unless every `image` configured names a plain-HTTP
/// registry (loopback, or `insecure_registry`) and no table sets `backend = "oci"` (whose
/// bases come from registries too). A workspace with no `image` yet gets TLS: it will
/// most likely name a registry such as ghcr.io.
fn needs_tls(workspace: &Workspace) -> bool {
    let manifests = std::iter::once(workspace.root_manifest())
        .chain(workspace.packages.iter().map(|p| p.manifest_path.clone()));
    let tables: Vec<crate::config::ManifestTables> = manifests
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            crate::config::parse_manifest(&path, &text).ok()
        })
        .collect();
    let oci = tables
        .iter()
        .any(|t| t.backend() == Some(crate::config::Backend::Oci));
    let images: Vec<bool> = tables.iter().filter_map(|t| t.plain_http_image()).collect();
    oci || images.is_empty() || images.contains(&false)
}

/// The engine package of a checkout of this repository (its root) or the package itself.
fn engine_package(checkout: &Path) -> Result<PathBuf> {
    let name_of = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        let manifest: toml::Table = text.parse().ok()?;
        let name = manifest.get("package")?.get("name")?.as_str()?.to_owned();
        Some(name)
    };
    [checkout.join("xtask/engine"), checkout.to_path_buf()]
        .into_iter()
        .find(|dir| name_of(dir).as_deref() == Some("multiarch"))
        .and_then(|dir| dir.canonicalize().ok())
        .ok_or_else(|| {
            crate::diagnostic::diagnostic(
                format!(
                    "{} is not a checkout of multiarch (no package `multiarch` at xtask/engine)",
                    checkout.display()
                ),
                "pass the root of a clone of the multiarch repository to `--engine-path`",
            )
        })
}

/// `../` once for every level `dir` sits below `root`.
fn relative_from(dir: &Path, root: &Path) -> PathBuf {
    let depth = dir
        .strip_prefix(root)
        .map_or(0, |inside| inside.components().count());
    (0..depth).map(|_| "..").collect()
}

/// A thin xtask's manifest: one dependency, on the engine.
fn thin_manifest(name: &str, dependency: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\
         description = \"{DESCRIPTION_PREFIX}a thin binary over the multiarch engine\"\n\n\
         [dependencies]\n\
         # Updating the engine is changing this line, then `cargo update -p multiarch`.\n\
         # `default-features = false` leaves TLS out (a quicker first compile) where every\n\
         # registry is plain HTTP; pushing to one over HTTPS needs it: then remove that key.\n\
         {dependency}\n"
    )
}

/// The engine's manifest as a workspace's own package: its name, no binary but `main.rs`,
/// not for publishing, and nothing only this repository's tests need.
fn vendored_manifest(name: &str) -> Result<String> {
    let mut manifest = parse(MANIFEST)?;
    manifest.remove("bin");
    manifest.remove("dev-dependencies");
    let package = manifest["package"]
        .as_table_mut()
        .context("the engine's manifest has a [package] table")?;
    for key in ["keywords", "categories", "repository"] {
        package.remove(key);
    }
    package["name"] = toml_edit::value(name);
    package["publish"] = toml_edit::value(false);
    package["description"] = toml_edit::value(format!(
        "{DESCRIPTION_PREFIX}a vendored copy of the multiarch engine"
    ));
    Ok(manifest.to_string())
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
        let edited = edit_keeping_encoding(current.as_deref().unwrap_or(""), &change)
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

    /// Writes every file; on an error, undoes what it wrote. Returns what changed and how
    /// to undo it, for a check that follows.
    fn apply(self) -> Result<(Changes, Undo)> {
        let mut undo = Undo::default();
        for (path, contents, original, _) in &self.files {
            let Some(contents) = contents else { continue };
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            let result = missing_dirs(path, &mut undo.created_dirs)
                .and_then(|()| write_keeping_link_and_mode(path, contents));
            if let Err(err) = result {
                undo.undo();
                return Err(err.context("init changed nothing"));
            }
            let original = original.clone().map(|text| Original { text, modified });
            undo.written.push((path.clone(), original));
        }
        let changes = self
            .files
            .into_iter()
            .map(|(path, _, _, change)| (path, change))
            .collect();
        Ok((changes, undo))
    }
}

/// What [`Writes::apply`] wrote: each file with its original contents and modification
/// time (`None`: created), and the directories it created.
#[derive(Debug, Default)]
struct Undo {
    written: Vec<(PathBuf, Option<Original>)>,
    created_dirs: Vec<PathBuf>,
}

/// A file's contents and modification time before `init` wrote it.
#[derive(Debug)]
struct Original {
    text: String,
    modified: Option<std::time::SystemTime>,
}

impl Undo {
    /// Restores every file written and removes every directory created, newest first.
    fn undo(self) {
        for (path, original) in self.written.iter().rev() {
            match original {
                Some(Original { text, modified }) => {
                    let _ = write_keeping_link_and_mode(path, text);
                    keep_modified(path, *modified);
                }
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        for dir in self.created_dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Gives a restored file its modification time back: even a rewrite of the same bytes
/// would be a change to `make` and editors.
fn keep_modified(path: &Path, modified: Option<std::time::SystemTime>) {
    if let (Some(time), Ok(file)) = (modified, std::fs::File::options().write(true).open(path)) {
        let _ = file.set_modified(time);
    }
}

/// Applies `change` to `text` as LF without a byte-order mark, then gives the result the
/// text's own line endings (CRLF when it had them) and its BOM back.
fn edit_keeping_encoding(
    text: &str,
    change: &impl Fn(&str) -> Result<Option<String>>,
) -> Result<Option<String>> {
    let bom = text.starts_with('\u{feff}');
    let body = text.trim_start_matches('\u{feff}');
    let crlf = body.contains("\r\n");
    let edited = change(&body.replace("\r\n", "\n"))?;
    Ok(edited.map(|new| {
        let new = if crlf { new.replace('\n', "\r\n") } else { new };
        if bom {
            format!("\u{feff}{new}")
        } else {
            new
        }
    }))
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

/// The cargo profile the aliases compile the engine with.
const PROFILE: &str = "multiarch-xtask";

/// Adds each of `names` to `[alias]` as `run --package PACKAGE --profile PROFILE --`,
/// keeping everything else as written; an alias of that name already there is left
/// alone. With the first alias comes [`PROFILE`]: the dev profile without debug info or
/// incremental caches (an engine on a path is a local package, compiled incrementally by
/// default), which takes about a third off the engine's first compile.
fn add_aliases(text: &str, names: &[&str], package: &str) -> Result<Option<String>> {
    let mut doc = parse(text)?;
    let alias = doc
        .entry("alias")
        .or_insert(toml_edit::table())
        .as_table_like_mut()
        .context("`alias` is not a table")?;
    let mut changed = false;
    for name in names {
        if !alias.contains_key(name) {
            alias.insert(
                name,
                toml_edit::value(format!("run --package {package} --profile {PROFILE} --")),
            );
            changed = true;
        }
    }
    let profiles = doc
        .entry("profile")
        .or_insert({
            let mut implicit = toml_edit::Table::new();
            implicit.set_implicit(true);
            toml_edit::Item::Table(implicit)
        })
        .as_table_like_mut()
        .context("`profile` is not a table")?;
    if changed && !profiles.contains_key(PROFILE) {
        let mut profile = toml_edit::Table::new();
        profile.decor_mut().set_prefix(
            "\n# How `cargo xtask` and `cargo multiarch` compile the multiarch engine: as the dev\n\
             # profile does, without debug info or incremental caches (a quicker first compile).\n",
        );
        profile.insert("inherits", toml_edit::value("dev"));
        profile.insert("debug", toml_edit::value(false));
        profile.insert("incremental", toml_edit::value(false));
        // Blobs are hashed as they stream; unoptimized SHA-256 runs at about 60 MB/s,
        // at opt-level 1 at 1.4 GB/s (3 is no faster).
        let mut sha2 = toml_edit::Table::new();
        sha2.decor_mut()
            .set_prefix("\n# Image layers are hashed as they stream: at full speed.\n");
        sha2.insert("opt-level", toml_edit::value(1));
        let mut package = toml_edit::Table::new();
        package.set_implicit(true);
        package.insert("sha2", toml_edit::Item::Table(sha2));
        // Plain layers an engine saves are gzipped as they stream: unoptimized, a 200 MB
        // layer takes 20 s; at opt-level 2, 5 s.
        for (name, comment) in [
            (
                "miniz_oxide",
                "\n# Saved layers are gzipped as they stream: at speed too.\n",
            ),
            ("crc32fast", "\n"),
        ] {
            let mut table = toml_edit::Table::new();
            table.decor_mut().set_prefix(comment);
            table.insert("opt-level", toml_edit::value(2));
            package.insert(name, toml_edit::Item::Table(table));
        }
        profile.insert("package", toml_edit::Item::Table(package));
        profiles.insert(PROFILE, toml_edit::Item::Table(profile));
    }
    Ok(changed.then(|| doc.to_string()))
}

/// Makes `member` a workspace member, creating `[workspace]` when the package has none.
fn add_workspace_member(text: &str, member: &str) -> Result<Option<String>> {
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
    let dotted = format!("./{member}");
    if members.iter().any(|m| {
        m.as_str()
            .is_some_and(|m| m == member || m == "*" || m == dotted)
    }) {
        return Ok(None);
    }
    members.push(member);
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
    if has_multiarch_table(&parse(text)?) {
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
        "{}\n\n# Container images of this package: `cargo multiarch image` (see the multiarch README).\n\
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
                    if path != Path::new("bin") {
                        rust_files(dir, &path, files);
                    }
                } else if path != Path::new("main.rs") {
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
        assert!(!embedded.contains(&"main.rs") && !embedded.iter().any(|f| f.starts_with("bin/")));
    }

    #[test]
    fn a_vendored_manifest_is_the_engines_as_a_workspace_package() {
        let manifest: toml::Table = vendored_manifest("xtask").unwrap().parse().unwrap();
        let package = manifest["package"].as_table().unwrap();
        assert_eq!(package["name"].as_str(), Some("xtask"));
        assert_eq!(package["publish"].as_bool(), Some(false));
        assert!(package["description"]
            .as_str()
            .unwrap()
            .starts_with("multiarch: "));
        assert_eq!(manifest["lib"]["name"].as_str(), Some("multiarch"));
        assert!(!manifest.contains_key("bin") && !manifest.contains_key("dev-dependencies"));
        assert_eq!(manifest["dependencies"]["xshell"].as_str(), Some("=0.2.7"));
    }

    #[test]
    fn the_thin_main_is_this_repositorys_own_xtask() {
        let own =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/main.rs"))
                .unwrap();
        assert_eq!(own, THIN_MAIN);
        assert!(THIN_MAIN.lines().count() <= 30);
    }

    #[test]
    fn a_thin_manifest_names_the_engine_as_each_source_says() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .unwrap()
            .canonicalize()
            .unwrap();
        let elsewhere = Path::new("/ws/xtask");
        let line = |engine: &EngineSource, package_dir: &Path| {
            dependency_line(engine, Path::new("/ws"), package_dir, true).unwrap()
        };
        assert_eq!(
            line(&EngineSource::Version("0.1.0".into()), elsewhere),
            "multiarch = \"0.1.0\""
        );
        assert_eq!(
            line(&EngineSource::Path(root.clone()), elsewhere),
            format!(
                "multiarch = {{ path = \"{}/xtask/engine\" }}",
                root.display()
            )
        );
        // Without the OCI backend, TLS is left out.
        let without_tls = |engine: &EngineSource| {
            dependency_line(engine, Path::new("/ws"), elsewhere, false).unwrap()
        };
        assert_eq!(
            without_tls(&EngineSource::Version("0.1.0".into())),
            "multiarch = { version = \"0.1.0\", default-features = false }"
        );
        assert_eq!(
            without_tls(&EngineSource::Path(root.clone())),
            format!(
                "multiarch = {{ path = \"{}/xtask/engine\", default-features = false }}",
                root.display()
            )
        );
        assert_eq!(
            without_tls(&EngineSource::Git {
                url: "https://example.com/m.git".into(),
                rev: None
            }),
            "multiarch = { git = \"https://example.com/m.git\", default-features = false }"
        );
        // A checkout inside the workspace, such as a submodule, is named relatively.
        let inside = dependency_line(
            &EngineSource::Path(root.clone()),
            root.parent().unwrap(),
            &root.parent().unwrap().join("xtask"),
            true,
        )
        .unwrap();
        assert_eq!(
            inside,
            format!(
                "multiarch = {{ path = \"../{}/xtask/engine\" }}",
                root.file_name().unwrap().to_string_lossy()
            )
        );
        assert_eq!(
            line(
                &EngineSource::Git {
                    url: "https://example.com/m.git".into(),
                    rev: Some("abc".into())
                },
                elsewhere
            ),
            "multiarch = { git = \"https://example.com/m.git\", rev = \"abc\" }"
        );
        let manifest: toml::Table = thin_manifest(
            "xtask",
            &line(&EngineSource::Version("0.1".into()), elsewhere),
        )
        .parse()
        .unwrap();
        assert_eq!(manifest["dependencies"]["multiarch"].as_str(), Some("0.1"));
        assert_eq!(manifest["package"]["name"].as_str(), Some("xtask"));
        for (engine, expected) in [
            (
                EngineSource::Version("0.1\"\nx = 1".into()),
                "is not a version requirement",
            ),
            (
                EngineSource::Version(String::new()),
                "is not a version requirement",
            ),
            (
                EngineSource::Path("/nonexistent".into()),
                "/nonexistent is not a checkout of multiarch",
            ),
            (
                EngineSource::Git {
                    url: "a b".into(),
                    rev: None,
                },
                "take one word each",
            ),
        ] {
            let message = format!(
                "{:#}",
                dependency_line(&engine, Path::new("/ws"), elsewhere, true).unwrap_err()
            );
            assert!(message.contains(expected), "{engine:?}: {message}");
        }
    }

    #[test]
    fn the_demo_template_is_the_one_init_writes() {
        let demo = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker/Dockerfile.j2"),
        )
        .unwrap();
        assert_eq!(demo, DOCKERFILE);
    }

    fn member(text: &str) -> Option<String> {
        add_workspace_member(text, "xtask").unwrap()
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
        assert!(add_workspace_member("workspace = 3\n", "xtask").is_err());
        assert_eq!(
            add_workspace_member("[workspace]\nmembers = [\"xtask\"]\n", BESIDE_XTASK)
                .unwrap()
                .unwrap(),
            "[workspace]\nmembers = [\"xtask\", \"xtask-multiarch\"]\n"
        );
    }

    #[test]
    fn aliases_merge_into_an_existing_config() {
        let alias = |text: &str| add_aliases(text, &["xtask"], "xtask").unwrap();
        let run =
            |package: &str| format!("\"run --package {package} --profile multiarch-xtask --\"");
        let profile = "\n# How `cargo xtask` and `cargo multiarch` compile the multiarch engine: as the dev\n\
                       # profile does, without debug info or incremental caches (a quicker first compile).\n\
                       [profile.multiarch-xtask]\ninherits = \"dev\"\ndebug = false\nincremental = false\n\n\
                       # Image layers are hashed as they stream: at full speed.\n\
                       [profile.multiarch-xtask.package.sha2]\nopt-level = 1\n\n\
                       # Saved layers are gzipped as they stream: at speed too.\n\
                       [profile.multiarch-xtask.package.miniz_oxide]\nopt-level = 2\n\n\
                       [profile.multiarch-xtask.package.crc32fast]\nopt-level = 2\n";
        assert_eq!(
            alias("").unwrap(),
            format!("[alias]\nxtask = {}\n{profile}", run("xtask"))
        );
        assert_eq!(
            add_aliases(
                "[alias]\nxtask = \"run -p theirs --\"\n",
                &["multiarch"],
                BESIDE_XTASK
            )
            .unwrap()
            .unwrap(),
            format!(
                "[alias]\nxtask = \"run -p theirs --\"\nmultiarch = {}\n{profile}",
                run(BESIDE_XTASK)
            )
        );
        assert_eq!(
            add_aliases("", &["xtask", "multiarch"], "xtask")
                .unwrap()
                .unwrap(),
            format!(
                "[alias]\nxtask = {0}\nmultiarch = {0}\n{profile}",
                run("xtask")
            )
        );
        assert_eq!(
            alias("[build]\njobs = 2\n").unwrap(),
            format!(
                "[build]\njobs = 2\n\n[alias]\nxtask = {}\n{profile}",
                run("xtask")
            )
        );
        assert_eq!(
            alias("[alias] # mine\nb = \"build\"\n").unwrap(),
            format!(
                "[alias] # mine\nb = \"build\"\nxtask = {}\n{profile}",
                run("xtask")
            )
        );
        let dotted = alias("alias.b = \"build\"\n").unwrap();
        assert_eq!(dotted.matches("alias").count(), 2, "{dotted}");
        let parsed: toml::Table = dotted.parse().unwrap();
        assert_eq!(
            parsed["alias"]["xtask"].as_str(),
            Some("run --package xtask --profile multiarch-xtask --")
        );
        assert_eq!(parsed["alias"]["b"].as_str(), Some("build"));
        assert_eq!(
            parsed["profile"]["multiarch-xtask"]["debug"].as_bool(),
            Some(false)
        );
        assert_eq!(alias("[alias]\nxtask = \"run -p xtask --\"\n"), None);
        // A profile of that name already there is the user's.
        let theirs = "[profile.multiarch-xtask]\ninherits = \"release\"\n";
        assert_eq!(
            alias(theirs).unwrap(),
            format!(
                "[profile.multiarch-xtask]\ninherits = \"release\"\n\n[alias]\nxtask = {}\n",
                run("xtask")
            )
        );
    }

    #[test]
    fn edits_keep_crlf_line_endings_and_a_byte_order_mark() {
        let original = "\u{feff}[package]\r\nname = \"app\"\r\n";
        let edited =
            edit_keeping_encoding(original, &|text: &str| add_workspace_member(text, "xtask"))
                .unwrap()
                .unwrap();
        assert_eq!(
            edited,
            "\u{feff}[package]\r\nname = \"app\"\r\n\r\n[workspace]\r\nmembers = [\"xtask\"]\r\n"
        );
        assert_eq!(
            edit_keeping_encoding("[package]\n", &|text: &str| add_workspace_member(
                text, "xtask"
            ))
            .unwrap()
            .unwrap(),
            "[package]\n\n[workspace]\nmembers = [\"xtask\"]\n"
        );
    }

    #[test]
    fn the_next_step_names_an_alias_that_runs_the_engine() {
        let ours = |package: &str| format!("run --package {package} --profile {PROFILE} --");
        let config = format!(
            "[alias]\nxtask = \"{}\"\nmultiarch = \"{}\"\n",
            ours("xtask"),
            ours("xtask")
        );
        assert_eq!(entry_command(&config, "xtask"), "cargo xtask");
        // An `xtask` alias of the workspace's own, kept as it was.
        let theirs = format!(
            "[alias]\nxtask = \"run -p tools --\"\nmultiarch = \"{}\"\n",
            ours("xtask")
        );
        assert_eq!(entry_command(&theirs, "xtask"), "cargo multiarch");
        assert_eq!(
            entry_command("[alias]\nxtask = \"run -p tools --\"\n", "xtask"),
            "cargo run --package xtask --profile multiarch-xtask --"
        );
    }

    #[test]
    fn only_locked_versions_the_engine_replaced_are_reported() {
        let lock = |packages: &[(&str, &str)]| {
            let mut text = String::from("version = 4\n");
            for (name, version) in packages {
                text.push_str(&format!(
                    "\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\n"
                ));
            }
            text
        };
        let before = lock(&[
            ("app", "0.1.0"),
            ("minijinja", "2.0.0"),
            ("which", "7.0.0"),
            ("ureq", "3.0.0"),
            ("untrusted", "0.7.1"),
        ]);
        let after = lock(&[
            ("app", "0.1.0"),
            ("minijinja", "2.5.0"),
            ("which", "7.0.0"),
            ("which", "8.0.0"),
            ("ureq", "3.0.0"),
            ("ring", "0.17.14"),
        ]);
        assert_eq!(
            moved_packages(Some(&before), &after),
            vec![
                Moved {
                    name: "minijinja".into(),
                    from: vec!["2.0.0".into()],
                    to: vec!["2.5.0".into()],
                },
                Moved {
                    name: "untrusted".into(),
                    from: vec!["0.7.1".into()],
                    to: Vec::new(),
                },
            ]
        );
        assert_eq!(moved_packages(None, &after), Vec::new());
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
            .edit(
                &dir.join("Cargo.toml"),
                |t| add_workspace_member(t, "xtask"),
                "member",
            )
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
            .edit(
                &dir.join("Cargo.toml"),
                |t| add_workspace_member(t, "xtask"),
                "member",
            )
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
