//! Software bills of materials exact for one platform: the crates compiled into its
//! binaries (cargo's own resolution for that target and those features, normal edges
//! only, no proc-macros or what only they use), each with its purl, Cargo.lock checksum
//! and license, the binaries with their SHA-256, and the dependency graph; written as
//! CycloneDX 1.6 and SPDX 2.3 JSON, deterministically (time and identifiers from content).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::compile::CargoOptions;
use crate::config::workspace::{git_source, lock_field};
use crate::digest::hex_sha256;

/// Where a crate came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    CratesIo,
    /// A git repository (`https://...#rev`).
    Git(String),
    /// A directory of the workspace or the file system.
    Path,
}

/// One crate of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Crate {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) source: Source,
    pub(crate) license: Option<String>,
    pub(crate) proc_macro: bool,
}

impl Crate {
    /// `pkg:cargo/name@version`, with `vcs_url` for a git source.
    pub(crate) fn purl(&self) -> String {
        let base = format!("pkg:cargo/{}@{}", self.name, self.version);
        match &self.source {
            Source::Git(url) => format!(
                "{base}?vcs_url={}",
                crate::http::percent_encode(&format!("git+{url}"))
            ),
            Source::CratesIo | Source::Path => base,
        }
    }
}

/// The crates `cargo tree` printed and the edges between them; the root is index 0.
#[derive(Debug, Clone, Default)]
pub(crate) struct Graph {
    pub(crate) crates: Vec<Crate>,
    pub(crate) edges: BTreeSet<(usize, usize)>,
}

/// The `cargo tree` arguments for one package, target and set of features.
pub(crate) fn tree_args(package: &str, target: &str, options: &CargoOptions) -> Vec<String> {
    let mut args: Vec<String> = [
        "tree",
        "--package",
        package,
        "--edges",
        "normal",
        "--target",
        target,
        "--prefix",
        "depth",
        "--format",
        "{p}|{l}",
    ]
    .map(str::to_owned)
    .to_vec();
    // Every option of the build but the profile, which `cargo tree` does not take.
    args.extend(
        options
            .args()
            .into_iter()
            .filter(|a| !a.starts_with("--profile")),
    );
    args
}

/// Reads `cargo tree --prefix depth --format '{p}|{l}'`: one line per crate, its depth
/// first; a crate printed again ends in `(*)` and is the same node.
pub(crate) fn parse_tree(text: &str) -> Result<Graph> {
    let mut graph = Graph::default();
    let mut index: BTreeMap<(String, String, Source), usize> = BTreeMap::new();
    let mut path: Vec<usize> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let depth: usize = line[..digits]
            .parse()
            .with_context(|| format!("`cargo tree` printed `{line}` without a depth"))?;
        let body = line[digits..].trim_end().trim_end_matches(" (*)");
        let (package, license) = body.rsplit_once('|').unwrap_or((body, ""));
        let krate = parse_package(package, license)?;
        let key = (
            krate.name.clone(),
            krate.version.clone(),
            krate.source.clone(),
        );
        let node = *index.entry(key).or_insert_with(|| {
            graph.crates.push(krate);
            graph.crates.len() - 1
        });
        path.truncate(depth);
        if let Some(&parent) = path.last() {
            graph.edges.insert((parent, node));
        }
        path.push(node);
    }
    anyhow::ensure!(!graph.crates.is_empty(), "`cargo tree` printed no crate");
    Ok(graph)
}

/// `name vX.Y.Z [(source)] [(proc-macro)]`.
fn parse_package(text: &str, license: &str) -> Result<Crate> {
    let mut rest = text.trim();
    let proc_macro = rest.ends_with(" (proc-macro)");
    rest = rest.trim_end_matches(" (proc-macro)");
    let (head, source) = match rest.split_once(" (") {
        Some((head, source)) => (head, Some(source.trim_end_matches(')'))),
        None => (rest, None),
    };
    let (name, version) = head
        .split_once(" v")
        .with_context(|| format!("`cargo tree` printed `{text}`, not `name vVERSION`"))?;
    let source = match source {
        None => Source::CratesIo,
        Some(url) if url.contains("://") => Source::Git(public_url(url)),
        Some(_) => Source::Path,
    };
    Ok(Crate {
        name: name.to_owned(),
        version: version.to_owned(),
        source,
        license: Some(license.trim().to_owned()).filter(|l| !l.is_empty()),
        proc_macro,
    })
}

impl Graph {
    /// The crates compiled into the binaries: reachable from the root without passing
    /// through a proc-macro (a proc-macro and what only it uses run in the compiler).
    pub(crate) fn runtime(&self) -> BTreeSet<usize> {
        let mut seen = BTreeSet::from([0]);
        let mut pending = vec![0];
        while let Some(node) = pending.pop() {
            for &(_, child) in self.edges.range((node, 0)..=(node, usize::MAX)) {
                if !self.crates[child].proc_macro && seen.insert(child) {
                    pending.push(child);
                }
            }
        }
        seen
    }
}

/// The CycloneDX and SPDX documents of one image, from cargo's view of `plan` in the
/// workspace `root` and the binaries staged in `context`.
pub(crate) fn documents(
    root: &Path,
    plan: &crate::plan::SbomPlan,
    context: &Path,
) -> Result<(Value, Value)> {
    let mut graph = Sbom::collect(root, &plan.package, &plan.target, &plan.options)?;
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    with_full_revisions(&mut graph, &lock_git_revisions(&lock));
    let mut binaries = Vec::new();
    for bin in &plan.bins {
        let (digest, _) = crate::digest::of_file(&context.join(bin))
            .with_context(|| format!("cannot read the staged binary `{bin}`"))?;
        binaries.push((bin.clone(), digest.hex().to_owned()));
    }
    let sbom = Sbom {
        graph,
        checksums: lock_checksums(&lock),
        platform: plan.platform.name(),
        binaries,
        created: plan.created.clone(),
    };
    if plan.auditable {
        let listed: std::collections::BTreeSet<(String, String)> = sbom
            .runtime_crates()
            .into_iter()
            .map(|c| (c.name.clone(), c.version.clone()))
            .collect();
        for bin in &plan.bins {
            super::auditable::check_agreement(&context.join(bin), &listed, &sbom.platform)?;
        }
    }
    Ok((sbom.cyclonedx(), sbom.spdx()))
}

/// `url` as a published document may state it: without the userinfo of its authority
/// (`https://user:TOKEN@host/`, how CI reaches private git crates) and without its query
/// (`?branch=`, `?token=`); the `#fragment` (a git revision) stays.
pub(crate) fn public_url(url: &str) -> String {
    let (rest, fragment) = match url.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (url, None),
    };
    let rest = rest.split('?').next().unwrap_or(rest);
    let rest = match rest.split_once("://") {
        Some((scheme, after)) => {
            let authority_end = after.find('/').unwrap_or(after.len());
            let (authority, path) = after.split_at(authority_end);
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => rest.to_owned(),
    };
    match fragment {
        Some(fragment) => format!("{rest}#{fragment}"),
        None => rest,
    }
}

/// The full commit of every git package in `Cargo.lock`, by name and version (`cargo
/// tree` prints only a short one).
pub(crate) fn lock_git_revisions(lockfile: &str) -> BTreeMap<(String, String), String> {
    lock_field(lockfile, "source")
        .into_iter()
        .filter_map(|(package, source)| {
            let (_, revision) = git_source(&source)?;
            Some((package, revision.to_owned()))
        })
        .collect()
}

/// Gives every git crate of `graph` the full commit the lock names for it.
fn with_full_revisions(graph: &mut Graph, revisions: &BTreeMap<(String, String), String>) {
    for krate in &mut graph.crates {
        if let Source::Git(url) = &krate.source {
            if let Some(revision) = revisions.get(&(krate.name.clone(), krate.version.clone())) {
                let base = url.split('#').next().unwrap_or(url);
                krate.source = Source::Git(format!("{base}#{revision}"));
            }
        }
    }
}

/// The `checksum` of every registry package in `Cargo.lock`, by name and version.
pub(crate) fn lock_checksums(lockfile: &str) -> BTreeMap<(String, String), String> {
    lock_field(lockfile, "checksum")
}

/// Everything one SBOM states.
#[derive(Debug, Clone)]
pub(crate) struct Sbom {
    pub(crate) graph: Graph,
    pub(crate) checksums: BTreeMap<(String, String), String>,
    /// `linux/arm64`.
    pub(crate) platform: String,
    /// Each binary of the image: its name and its SHA-256.
    pub(crate) binaries: Vec<(String, String)>,
    /// RFC 3339, from the commit time.
    pub(crate) created: String,
}

impl Sbom {
    /// The graph for `package` on `target` with `options`, by `cargo tree` in `root`.
    pub(crate) fn collect(
        root: &Path,
        package: &str,
        target: &str,
        options: &CargoOptions,
    ) -> Result<Graph> {
        let sh = xshell::Shell::new()?;
        sh.change_dir(root);
        let cargo = crate::config::workspace::cargo_program();
        let text = crate::process::Command::new(cargo, tree_args(package, target, options))
            .run(&sh)
            .with_context(|| {
                format!("reading the crates of `{package}` for {target} with `cargo tree`")
            })?;
        parse_tree(&text)
    }

    fn runtime_crates(&self) -> Vec<&Crate> {
        let mut crates: Vec<&Crate> = self
            .graph
            .runtime()
            .into_iter()
            .map(|i| &self.graph.crates[i])
            .collect();
        crates.sort_by_key(|c| c.purl());
        crates
    }

    fn checksum(&self, krate: &Crate) -> Option<&String> {
        (krate.source == Source::CratesIo)
            .then(|| {
                self.checksums
                    .get(&(krate.name.clone(), krate.version.clone()))
            })
            .flatten()
    }

    /// Runtime edges by purl, sorted.
    fn dependencies(&self) -> BTreeMap<String, BTreeSet<String>> {
        let runtime = self.graph.runtime();
        let mut dependencies: BTreeMap<String, BTreeSet<String>> = runtime
            .iter()
            .map(|&i| (self.graph.crates[i].purl(), BTreeSet::new()))
            .collect();
        for &(from, to) in &self.graph.edges {
            if runtime.contains(&from) && runtime.contains(&to) {
                let from = self.graph.crates[from].purl();
                dependencies
                    .entry(from)
                    .or_default()
                    .insert(self.graph.crates[to].purl());
            }
        }
        dependencies
    }

    /// An identifier derived from everything the document states.
    fn content_id(&self, format: &str) -> String {
        let mut material = format!("{format}\n{}\n{}\n", self.platform, self.created);
        for krate in self.runtime_crates() {
            material.push_str(&format!(
                "{} {:?} {:?}\n",
                krate.purl(),
                krate.license,
                self.checksum(krate)
            ));
        }
        for (path, digest) in &self.binaries {
            material.push_str(&format!("{path} {digest}\n"));
        }
        for (from, to) in self.dependencies() {
            material.push_str(&format!("{from} -> {to:?}\n"));
        }
        hex_sha256(material.as_bytes())
    }

    /// CycloneDX 1.6 JSON.
    pub(crate) fn cyclonedx(&self) -> Value {
        let root = &self.graph.crates[0];
        let id = self.content_id("cyclonedx");
        let uuid = format!(
            "{}-{}-5{}-8{}-{}",
            &id[..8],
            &id[8..12],
            &id[13..16],
            &id[17..20],
            &id[20..32]
        );
        let component = |krate: &Crate, kind: &str| {
            let mut value = json!({
                "type": kind,
                "bom-ref": krate.purl(),
                "name": krate.name,
                "version": krate.version,
                "purl": krate.purl(),
            });
            if let Some(license) = &krate.license {
                value["licenses"] = json!([{ "expression": spdx_expression(license) }]);
            }
            if let Some(checksum) = self.checksum(krate) {
                value["hashes"] = json!([{ "alg": "SHA-256", "content": checksum }]);
            }
            value
        };
        let mut components: Vec<Value> = self
            .runtime_crates()
            .into_iter()
            .filter(|c| *c != root)
            .map(|c| component(c, "library"))
            .collect();
        components.extend(self.binaries.iter().map(|(path, digest)| {
            json!({
                "type": "file",
                "bom-ref": format!("file:{path}"),
                "name": path,
                "hashes": [{ "alg": "SHA-256", "content": digest }],
            })
        }));
        let dependencies: Vec<Value> = self
            .dependencies()
            .into_iter()
            .map(|(from, to)| json!({ "ref": from, "dependsOn": to }))
            .collect();
        let mut metadata_component = component(root, "application");
        metadata_component["properties"] =
            json!([{ "name": "multiarch:platform", "value": self.platform }]);
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "serialNumber": format!("urn:uuid:{uuid}"),
            "version": 1,
            "metadata": {
                "timestamp": self.created,
                "tools": { "components": [{ "type": "application", "name": "multiarch", "version": env!("CARGO_PKG_VERSION") }] },
                "component": metadata_component,
            },
            "components": components,
            "dependencies": dependencies,
        })
    }

    /// SPDX 2.3 JSON; the binaries are packages of their own (SPDX files need SHA-1).
    pub(crate) fn spdx(&self) -> Value {
        let root = &self.graph.crates[0];
        let crates = self.runtime_crates();
        let spdx_id = |krate: &Crate| {
            format!(
                "SPDXRef-Package-{}-{}",
                sanitize(&krate.name),
                sanitize(&krate.version)
            )
        };
        let mut packages: Vec<Value> = crates
            .iter()
            .map(|krate| {
                let mut package = json!({
                    "name": krate.name,
                    "SPDXID": spdx_id(krate),
                    "versionInfo": krate.version,
                    "downloadLocation": match &krate.source {
                        Source::CratesIo => format!("https://crates.io/api/v1/crates/{}/{}/download", krate.name, krate.version),
                        Source::Git(url) => format!("git+{url}"),
                        Source::Path => "NOASSERTION".to_owned(),
                    },
                    "filesAnalyzed": false,
                    "licenseConcluded": "NOASSERTION",
                    "licenseDeclared": krate.license.as_deref().map_or("NOASSERTION".to_owned(), spdx_expression),
                    "copyrightText": "NOASSERTION",
                    "externalRefs": [{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": krate.purl() }],
                });
                if let Some(checksum) = self.checksum(krate) {
                    package["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": checksum }]);
                }
                package
            })
            .collect();
        let mut relationships = vec![json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": spdx_id(root),
        })];
        for (index, (path, digest)) in self.binaries.iter().enumerate() {
            let id = format!("SPDXRef-Binary-{index}");
            packages.push(json!({
                "name": path,
                "SPDXID": id,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "primaryPackagePurpose": "APPLICATION",
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "checksums": [{ "algorithm": "SHA256", "checksumValue": digest }],
            }));
            relationships.push(json!({ "spdxElementId": spdx_id(root), "relationshipType": "GENERATES", "relatedSpdxElement": id }));
        }
        let by_purl: BTreeMap<String, &Crate> = crates.iter().map(|c| (c.purl(), *c)).collect();
        for (from, to) in self.dependencies() {
            for to in to {
                relationships.push(json!({
                    "spdxElementId": spdx_id(by_purl[&from]),
                    "relationshipType": "DEPENDS_ON",
                    "relatedSpdxElement": spdx_id(by_purl[&to]),
                }));
            }
        }
        json!({
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": format!("{} {}", root.name, self.platform),
            "documentNamespace": format!("https://spdx.org/spdxdocs/multiarch/{}/{}", sanitize(&root.name), self.content_id("spdx")),
            "creationInfo": { "created": self.created, "creators": [format!("Tool: multiarch-{}", env!("CARGO_PKG_VERSION"))] },
            "packages": packages,
            "relationships": relationships,
        })
    }
}

/// Old-style `MIT/Apache-2.0` as the SPDX expression `MIT OR Apache-2.0`.
fn spdx_expression(license: &str) -> String {
    license
        .split('/')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Letters, digits, `.` and `-`, as SPDX identifiers allow.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "0app v0.1.0 (/work/app)|MIT
1anyhow v1.0.100|MIT OR Apache-2.0
1serde v1.0.200|MIT OR Apache-2.0
2serde_derive v1.0.200 (proc-macro)|MIT OR Apache-2.0
3proc-macro2 v1.0.90|MIT OR Apache-2.0
1fork v0.3.0 (https://github.com/acme/fork#0123abc)|MIT/Apache-2.0
2anyhow v1.0.100|MIT OR Apache-2.0 (*)
";

    fn sbom() -> Sbom {
        let lock = "[[package]]\nname = \"anyhow\"\nversion = \"1.0.100\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"abc\"\n";
        Sbom {
            graph: parse_tree(TREE).unwrap(),
            checksums: lock_checksums(lock),
            platform: "linux/arm64".into(),
            binaries: vec![("/usr/local/bin/app".into(), "f".repeat(64))],
            created: "2026-11-28T01:00:00Z".into(),
        }
    }

    #[test]
    fn the_runtime_graph_leaves_out_proc_macros_and_what_only_they_use() {
        let graph = parse_tree(TREE).unwrap();
        let names: Vec<&str> = graph
            .runtime()
            .iter()
            .map(|&i| graph.crates[i].name.as_str())
            .collect();
        assert_eq!(names, ["app", "anyhow", "serde", "fork"]);
        assert_eq!(
            graph.crates[5].purl(),
            "pkg:cargo/fork@0.3.0?vcs_url=git%2Bhttps%3A%2F%2Fgithub.com%2Facme%2Ffork%230123abc"
        );
        // The repeated anyhow is the same node, now also a dependency of fork.
        assert!(graph.edges.contains(&(5, 1)));
    }

    #[test]
    fn git_sources_lose_their_credentials_and_query_and_keep_the_full_commit() {
        assert_eq!(
            public_url("https://ci:ghp_SECRET@github.com/acme/private?branch=main#0123abc"),
            "https://github.com/acme/private#0123abc"
        );
        assert_eq!(
            public_url("ssh://git@host:2222/repo.git"),
            "ssh://host:2222/repo.git"
        );
        assert_eq!(public_url("https://h/p@x"), "https://h/p@x");
        let tree = "0app v0.1.0 (/work/app)|MIT\n\
                    1private v0.2.0 (https://ci:ghp_SECRET@github.com/acme/private?branch=main#0123abcd)|MIT\n";
        let mut graph = parse_tree(tree).unwrap();
        let full = "0123abcd".to_owned() + &"e".repeat(32);
        let lock = format!(
            "[[package]]\nname = \"private\"\nversion = \"0.2.0\"\n\
             source = \"git+https://ci:ghp_SECRET@github.com/acme/private?branch=main#{full}\"\n"
        );
        with_full_revisions(&mut graph, &lock_git_revisions(&lock));
        let sbom = Sbom {
            graph,
            checksums: BTreeMap::new(),
            platform: "linux/arm64".into(),
            binaries: vec![("app".into(), "0".repeat(64))],
            created: "2026-01-01T00:00:00Z".into(),
        };
        let documents = format!("{}{}", sbom.cyclonedx(), sbom.spdx());
        assert!(
            !documents.contains("SECRET") && !documents.contains("branch"),
            "{documents}"
        );
        assert!(documents.contains(&format!("git+https://github.com/acme/private#{full}")));
        assert!(documents.contains(&format!(
            "git%2Bhttps%3A%2F%2Fgithub.com%2Facme%2Fprivate%23{full}"
        )));
    }

    #[test]
    fn both_documents_name_the_same_crates_checksums_and_binaries_and_repeat_exactly() {
        let sbom = sbom();
        let cdx = sbom.cyclonedx();
        assert_eq!(cdx["specVersion"], "1.6");
        let purls: Vec<&str> = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["purl"].as_str())
            .collect();
        assert_eq!(purls.len(), 3, "{purls:?}");
        assert!(!purls
            .iter()
            .any(|p| p.contains("serde_derive") || p.contains("proc-macro2")));
        let anyhow = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "anyhow")
            .unwrap();
        assert_eq!(anyhow["hashes"][0]["content"], "abc");
        let fork = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "fork")
            .unwrap();
        assert_eq!(fork["licenses"][0]["expression"], "MIT OR Apache-2.0");
        assert!(cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "file" && c["hashes"][0]["content"] == "f".repeat(64)));
        let spdx = sbom.spdx();
        assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
        assert_eq!(
            spdx["packages"].as_array().unwrap().len(),
            5,
            "4 crates and the binary"
        );
        assert_eq!(sbom.cyclonedx(), cdx, "deterministic");
        assert_eq!(sbom.spdx(), spdx, "deterministic");
        let mut other = sbom.clone();
        other.platform = "linux/amd64".into();
        assert_ne!(other.cyclonedx()["serialNumber"], cdx["serialNumber"]);
    }

    #[test]
    fn tree_arguments_carry_the_features_but_not_the_profile() {
        let options = CargoOptions {
            features: vec!["tls".into()],
            no_default_features: true,
            locked: true,
            ..CargoOptions::default()
        };
        let args = tree_args("app", "aarch64-unknown-linux-musl", &options);
        assert!(
            args.contains(&"--features=tls".to_owned())
                && args.contains(&"--no-default-features".to_owned())
        );
        assert!(args.contains(&"--locked".to_owned()));
        assert!(!args.iter().any(|a| a.starts_with("--profile")));
    }
}
