//! SLSA provenance (v1) for one image: what built it (`image` and its resolved settings,
//! never the command line with its host paths and entry point), with what (rustc, the target, zig when it linked), and from what (the
//! commit, Cargo.lock's digest, the base image by digest). Deterministic: no clock, no
//! path of the machine.

use serde_json::{json, Value};

pub(crate) const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
const BUILD_TYPE: &str = "https://github.com/multiarch-rs/multiarch/oci@v1";

pub(crate) use crate::plan::ProvenanceFacts as Facts;

/// What only the build knows: rustc's version, Cargo.lock's digest, the base by digest.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    pub(crate) rustc: Option<String>,
    pub(crate) lock_sha256: Option<String>,
    /// The base image and its per-platform manifest digest.
    pub(crate) base: Option<(String, String)>,
}

/// The SLSA v1 predicate.
pub(crate) fn predicate(facts: &Facts, resolved: &Resolved) -> Value {
    let mut dependencies = Vec::new();
    if let Some(revision) = &facts.revision {
        let uri = facts.repository.as_deref().map_or("git".to_owned(), |r| {
            format!("git+{}", crate::supply::sbom::public_url(r))
        });
        let mut source = json!({ "uri": uri, "digest": { "gitCommit": revision } });
        if facts.dirty {
            // The commit alone does not say what was built.
            source["annotations"] = json!({ "dirty": true });
        }
        dependencies.push(source);
    }
    if let Some(lock) = &resolved.lock_sha256 {
        dependencies.push(json!({ "uri": "Cargo.lock", "digest": { "sha256": lock } }));
    }
    if let Some((name, digest)) = &resolved.base {
        let hex = digest.trim_start_matches("sha256:");
        dependencies
            .push(json!({ "uri": format!("pkg:docker/{name}"), "digest": { "sha256": hex } }));
    }
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "command": "image",
                "package": facts.package,
                "platform": facts.platform,
                "features": facts.features,
                "profile": facts.profile,
            },
            "internalParameters": {
                "target": facts.target,
                "toolchain": facts.toolchain,
                "rustflags": facts.rustflags,
                "rustc": resolved.rustc,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": { "id": "https://github.com/multiarch-rs/multiarch", "version": { "multiarch": env!("CARGO_PKG_VERSION") } },
            "metadata": {},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_names_the_source_the_toolchain_and_the_base() {
        let facts = Facts {
            package: "hello".into(),
            platform: "linux/arm64".into(),
            target: "aarch64-unknown-linux-musl".into(),
            toolchain: "zig".into(),
            features: vec!["fast".into()],
            profile: "release".into(),
            rustflags: Vec::new(),
            dirty: false,
            repository: Some("https://github.com/acme/hello".into()),
            revision: Some("0123abc".into()),
        };
        let resolved = Resolved {
            rustc: Some("rustc 1.95.0".into()),
            lock_sha256: Some("f".repeat(64)),
            base: Some(("r/base:1".into(), format!("sha256:{}", "e".repeat(64)))),
        };
        let value = predicate(&facts, &resolved);
        let dependencies = value["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(dependencies[0]["uri"], "git+https://github.com/acme/hello");
        assert_eq!(dependencies[0]["digest"]["gitCommit"], "0123abc");
        assert_eq!(dependencies[2]["digest"]["sha256"], "e".repeat(64));
        assert_eq!(
            value["buildDefinition"]["internalParameters"]["toolchain"],
            "zig"
        );
        assert_eq!(predicate(&facts, &resolved), value, "deterministic");
        // The resolved settings, never the command line (host paths, the entry point).
        assert_eq!(
            value["buildDefinition"]["externalParameters"]["command"],
            "image"
        );
        assert!(dependencies[0].get("annotations").is_none());
        // A repository URL loses its credentials; a dirty tree is marked as such.
        let dirty = Facts {
            dirty: true,
            repository: Some("https://ci:TOKEN@github.com/acme/hello?x=1".into()),
            ..facts
        };
        let value = predicate(&dirty, &resolved);
        let source = &value["buildDefinition"]["resolvedDependencies"][0];
        assert_eq!(source["uri"], "git+https://github.com/acme/hello");
        assert_eq!(source["annotations"]["dirty"], true);
    }
}
