//! Native code in the build graph: which crates of a platform's dependency graph compile C
//! (or C++), read from one full `cargo metadata` with `cfg(...)` dependencies evaluated
//! for that platform's target.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use xshell::Shell;

use crate::config::compile::CargoOptions;
use crate::config::rustflags::applies_to;
use crate::config::workspace::cargo_program;
use crate::config::Config;

/// Build dependencies that mean a crate's build script compiles native code for the target.
/// A `links` key alone does not count: `rayon-core` has one and compiles no C.
pub(crate) const NATIVE_BUILDERS: &[&str] = &[
    "cc",
    "cmake",
    "bindgen",
    "pkg-config",
    "autotools",
    "vcpkg",
    "cxx-build",
    "nasm-rs",
    "system-deps",
];

/// The resolved dependency graph of the workspace.
pub(crate) struct BuildGraph {
    names: HashMap<String, String>,
    edges: HashMap<String, Vec<Edge>>,
    members: HashMap<String, String>,
}

/// One resolved dependency of a package.
struct Edge {
    to: String,
    /// The platform conditions it is a normal dependency under; `None` means always.
    normal: Vec<Option<String>>,
    build: bool,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<MetadataPackage>,
    workspace_members: Vec<String>,
    resolve: Option<Resolve>,
}

#[derive(Deserialize)]
struct MetadataPackage {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[derive(Deserialize)]
struct NodeDep {
    pkg: String,
    dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize)]
struct DepKind {
    kind: Option<String>,
    target: Option<String>,
}

impl BuildGraph {
    /// Resolves the workspace with the features the images are built with.
    pub(crate) fn load(root: &Path, options: &CargoOptions) -> Result<BuildGraph> {
        let sh = Shell::new()?;
        sh.change_dir(root);
        let cargo = cargo_program();
        let features = (!options.features.is_empty())
            .then(|| format!("--features={}", options.features.join(",")));
        let features = features.as_deref();
        let no_default = options
            .no_default_features
            .then_some("--no-default-features");
        let all = options.all_features.then_some("--all-features");
        let locked = options.locked.then_some("--locked");
        let frozen = options.frozen.then_some("--frozen");
        let flags = [features, no_default, all, locked, frozen]
            .into_iter()
            .flatten()
            .map(String::from);
        let args = ["metadata".to_owned(), "--format-version".into(), "1".into()]
            .into_iter()
            .chain(flags);
        // Cargo's stderr (lock waits, downloads) is kept for the error message only.
        let json = crate::process::Command::new(cargo, args)
            .run(&sh)
            .map_err(|err| {
                crate::diagnostic::diagnostic(
                    format!(
                        "cannot resolve the dependency graph with `cargo metadata`: {}",
                        crate::diagnostic::Diagnostic::of(&err).cause
                    ),
                    "run `cargo metadata --format-version 1` in the workspace and fix what it reports",
                )
            })?;
        BuildGraph::from_json(&json)
    }

    pub(crate) fn from_json(json: &str) -> Result<BuildGraph> {
        let metadata: Metadata =
            serde_json::from_str(json).context("cannot parse the output of `cargo metadata`")?;
        let names: HashMap<String, String> = metadata
            .packages
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect();
        let members = metadata
            .workspace_members
            .iter()
            .filter_map(|id| Some((names.get(id)?.clone(), id.clone())))
            .collect();
        let edges = metadata
            .resolve
            .map(|r| r.nodes)
            .unwrap_or_default()
            .into_iter()
            .map(|node| {
                let edges = node
                    .deps
                    .into_iter()
                    .map(|dep| Edge {
                        normal: dep
                            .dep_kinds
                            .iter()
                            .filter(|k| k.kind.is_none())
                            .map(|k| k.target.clone())
                            .collect(),
                        build: dep
                            .dep_kinds
                            .iter()
                            .any(|k| k.kind.as_deref() == Some("build")),
                        to: dep.pkg,
                    })
                    .collect();
                (node.id, edges)
            })
            .collect();
        Ok(BuildGraph {
            names,
            edges,
            members,
        })
    }

    /// The crates compiled for `target` in `package`'s graph whose build scripts compile
    /// native code, nearest first.
    pub(crate) fn native_crates(&self, package: &str, target: &str) -> Vec<String> {
        let Some(root) = self.members.get(package) else {
            return Vec::new();
        };
        // An unknown target keeps a `cfg` dependency rather than miss a C compile.
        let applies = |condition: &Option<String>| {
            condition
                .as_deref()
                .is_none_or(|condition| applies_to(condition, target))
        };
        let mut seen = BTreeSet::from([root.as_str()]);
        let mut queue = VecDeque::from([root.as_str()]);
        let mut native = Vec::new();
        while let Some(id) = queue.pop_front() {
            let edges = self.edges.get(id).map_or(&[][..], Vec::as_slice);
            let compiles_c = edges.iter().any(|edge| {
                edge.build
                    && self
                        .names
                        .get(&edge.to)
                        .is_some_and(|name| NATIVE_BUILDERS.contains(&name.as_str()))
            });
            if compiles_c {
                native.extend(self.names.get(id).cloned());
            }
            for edge in edges {
                if edge.normal.iter().any(applies) && seen.insert(&edge.to) {
                    queue.push_back(&edge.to);
                }
            }
        }
        native
    }
}

/// The native crates of the package's graph for each target, remembered in
/// `target/multiarch/<package>/native-code.json` under a digest of what decides them (the
/// lockfile, the root and package manifests, the cargo options, the targets), so that
/// `cargo metadata` runs again only when one of those changes.
pub(crate) fn native_crates_by_target(
    config: &Config,
    targets: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut key_material = format!("{:?}\n{targets:?}\n", config.cargo).into_bytes();
    for path in [
        config.workspace_root.join("Cargo.lock"),
        config.workspace_root.join("Cargo.toml"),
        config.package.manifest_path.clone(),
    ] {
        key_material.extend(std::fs::read(&path).unwrap_or_default());
        key_material.push(0);
    }
    let key = crate::digest::hex_sha256(&key_material);
    let cache = crate::layout::Layout::new(&config.target_dir).native_cache(&config.package.name);
    #[derive(serde::Serialize, Deserialize)]
    struct Cached {
        key: String,
        crates: BTreeMap<String, Vec<String>>,
    }
    let cached = std::fs::read(&cache)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Cached>(&bytes).ok());
    if let Some(cached) = cached.filter(|c| c.key == key) {
        return Ok(cached.crates);
    }
    let graph = BuildGraph::load(&config.workspace_root, &config.cargo)?;
    let crates: BTreeMap<String, Vec<String>> = targets
        .iter()
        .map(|target| {
            (
                target.clone(),
                graph.native_crates(&config.package.name, target),
            )
        })
        .collect();
    let json = serde_json::to_vec(&Cached {
        key,
        crates: crates.clone(),
    })?;
    // A cache that cannot be written only costs the next run a `cargo metadata`.
    let _ = crate::exec::files::write_if_changed(&cache, &json);
    Ok(crates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(id: &str) -> String {
        format!(
            r#"{{"id": "{id}", "name": "{}"}}"#,
            id.split('@').next().unwrap()
        )
    }

    fn dep(pkg: &str, kind: &str, target: &str) -> String {
        format!(r#"{{"pkg": "{pkg}", "dep_kinds": [{{"kind": {kind}, "target": {target}}}]}}"#)
    }

    fn graph() -> BuildGraph {
        let ids = [
            "app@1",
            "ring@0.17",
            "cc@1",
            "jemalloc-sys@0.5",
            "winapi-sys@0.3",
            "rayon-core@1",
            "bindgen@0.70",
            "host-only@1",
        ];
        let packages: Vec<String> = ids.iter().map(|id| package(id)).collect();
        let nodes = [
            (
                "app@1",
                vec![
                    dep("ring@0.17", "null", "null"),
                    dep(
                        "jemalloc-sys@0.5",
                        "null",
                        r#""cfg(target_env = \"musl\")""#,
                    ),
                    dep("winapi-sys@0.3", "null", r#""cfg(windows)""#),
                    dep("rayon-core@1", "null", "null"),
                    dep("host-only@1", r#""build""#, "null"),
                ],
            ),
            ("ring@0.17", vec![dep("cc@1", r#""build""#, "null")]),
            ("jemalloc-sys@0.5", vec![dep("cc@1", r#""build""#, "null")]),
            ("winapi-sys@0.3", vec![dep("cc@1", r#""build""#, "null")]),
            (
                "host-only@1",
                vec![dep("bindgen@0.70", r#""build""#, "null")],
            ),
            ("rayon-core@1", vec![]),
            ("cc@1", vec![]),
            ("bindgen@0.70", vec![]),
        ];
        let nodes: Vec<String> = nodes
            .iter()
            .map(|(id, deps)| format!(r#"{{"id": "{id}", "deps": [{}]}}"#, deps.join(",")))
            .collect();
        let json = format!(
            r#"{{"packages": [{}], "workspace_members": ["app@1"], "resolve": {{"nodes": [{}]}}}}"#,
            packages.join(","),
            nodes.join(",")
        );
        BuildGraph::from_json(&json).unwrap()
    }

    #[test]
    fn native_crates_follow_the_target_and_skip_host_only_build_dependencies() {
        let graph = graph();
        assert_eq!(
            graph.native_crates("app", "aarch64-unknown-linux-musl"),
            ["ring", "jemalloc-sys"]
        );
        assert_eq!(
            graph.native_crates("app", "aarch64-unknown-linux-gnu"),
            ["ring"]
        );
        assert_eq!(
            graph.native_crates("app", "x86_64-pc-windows-msvc"),
            ["ring", "winapi-sys"]
        );
        assert!(graph
            .native_crates("other", "aarch64-unknown-linux-gnu")
            .is_empty());
    }
}
