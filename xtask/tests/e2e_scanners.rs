//! What is inside is visible to tools nobody here wrote: syft reads the crates each pushed
//! image's binary carries (cargo-auditable's list) and finds exactly what `cargo tree`
//! compiles for that platform, on both backends; oci-image-tool validates the engine-free
//! backend's layout; skopeo copies the pushed index with its digests preserved.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

/// A dependency on every platform, one only on aarch64, one behind the feature `fast`
/// (which the config turns on), and one behind a feature nobody turns on.
fn scanned_workspace(name: &str) -> std::path::PathBuf {
    let dir = fixture_workspace(
        name,
        &format!("platforms = [\"linux/amd64\", \"linux/arm64\"]\nfeatures = [\"fast\"]\nsbom = true\n{STATIC_TARGETS}"),
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let dependencies = "[dependencies]\nitoa = \"1\"\nryu = { version = \"1\", optional = true }\n\
         memchr = { version = \"2\", optional = true, default-features = false }\n\n\
         [target.'cfg(target_arch = \"aarch64\")'.dependencies]\nsmallvec = \"1\"\n\n\
         [features]\nfast = [\"dep:ryu\"]\nunused = [\"dep:memchr\"]\n\n[workspace]";
    std::fs::write(
        dir.join("Cargo.toml"),
        manifest.replacen("[workspace]", dependencies, 1),
    )
    .unwrap();
    dir
}

/// `(name, version)` of every crate `cargo tree -e normal` compiles for `target`.
fn cargo_tree(dir: &Path, target: &str) -> BTreeSet<(String, String)> {
    let output = std::process::Command::new("cargo")
        .args([
            "tree",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--features",
            "fast",
        ])
        .args(["--target", target, "--format", "{p}"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?.to_owned();
            let version = words.next()?.trim_start_matches('v').to_owned();
            Some((name, version))
        })
        .collect()
}

/// `(name, version)` of every Rust crate syft finds in the image `reference`.
fn syft_crates(reference: &str) -> BTreeSet<(String, String)> {
    let syft = std::env::var("MULTIARCH_TEST_SYFT")
        .unwrap_or_else(|_| "/opt/multiarch-syft/bin/syft".to_owned());
    let output = std::process::Command::new(&syft)
        .args(["scan", "-q", &format!("registry:{reference}"), "-o", "json"])
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true")
        .output()
        .unwrap_or_else(|e| panic!("{syft}: {e}; run .ci/setup"));
    assert!(output.status.success(), "syft: {}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    report["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "rust-crate")
        .map(|a| {
            let field = |key: &str| a[key].as_str().unwrap().to_owned();
            (field("name"), field("version"))
        })
        .collect()
}

#[test]
fn scanners_see_exactly_the_crates_compiled_into_each_platform_on_both_backends() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("scanners");
    let dir = scanned_workspace("scanners");
    let expected = [
        ("linux/amd64", cargo_tree(&dir, "x86_64-unknown-linux-musl")),
        (
            "linux/arm64",
            cargo_tree(&dir, "aarch64-unknown-linux-musl"),
        ),
    ];
    assert!(expected[1].1.iter().any(|(name, _)| name == "smallvec"));
    assert!(!expected[0].1.iter().any(|(name, _)| name == "smallvec"));
    assert!(expected[0].1.iter().any(|(name, _)| name == "ryu"));
    assert!(!expected[0].1.iter().any(|(name, _)| name == "memchr"));
    for backend in ["docker", "oci"] {
        let image = format!("{}/scanned-{backend}", registry.host());
        let output = xtask(
            &dir,
            &[
                "image",
                "--push",
                "--image",
                &image,
                "--backend",
                backend,
                "--json",
            ],
        );
        assert!(output.status.success(), "{backend}: {}", stderr(&output));
        let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        for (platform, crates) in &expected {
            let entry = report["platforms"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["platform"] == *platform)
                .unwrap();
            let digest = entry["digest"].as_str().unwrap();
            let found = syft_crates(&format!("{image}@{digest}"));
            assert_eq!(
                &found, crates,
                "{backend} {platform}: syft against cargo tree"
            );
        }
    }
    // The engine-free backend's layout, by oci-image-tool (a build without --push keeps
    // every blob in it).
    let output = xtask(&dir, &["image", "--backend", "oci"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let layout = dir.join("target/multiarch/hello/oci");
    for reference in ["amd64-1.2.3", "arm64v8-1.2.3"] {
        run(
            "oci-image-tool",
            &[
                "validate",
                "--type",
                "image",
                "--ref",
                &format!("name={reference}"),
                layout.to_str().unwrap(),
            ],
        );
    }
    // skopeo copies the pushed index, every digest preserved and checked.
    let copy = scratch_dir("scanners-skopeo");
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &format!("docker://{}/scanned-oci:1.2.3", registry.host()),
            &format!("oci:{}:copied", copy.display()),
        ],
    );
}
