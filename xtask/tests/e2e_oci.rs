//! End to end for `backend = "oci"`: images assembled and pushed by the tool itself, with
//! no `docker` process, verified from the registry API, pulled and run by the engine of
//! the lane; the same sources give the same digests from another clone.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A directory holding a `docker` that records its calls and fails, for PATH.
fn recording_docker() -> (PathBuf, PathBuf) {
    let dir = scratch_dir("oci-fake-docker");
    let record = dir.join("calls");
    let script = dir.join("docker");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\nexit 1\n", record.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, record)
}

fn oci_workspace(name: &str) -> PathBuf {
    fixture_workspace(
        name,
        &format!("platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\"]\nbackend = \"oci\"\n{STATIC_TARGETS}"),
    )
}

#[test]
fn an_oci_build_publishes_without_any_engine_and_every_engine_runs_it() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("oci");
    let dir = oci_workspace("oci-push");
    let (fake, record) = recording_docker();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let image = format!("{}/hello", registry.host());
    let output = xtask_with_env(
        &dir,
        &[
            "image", "--push", "--image", &image, "--tag", "oci", "--json",
        ],
        &[("PATH", &path)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !record.exists(),
        "no docker process ran: {:?}",
        std::fs::read_to_string(&record)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let printed = report["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = registry
        .get("/v2/hello/manifests/oci", &[("Accept", INDEX)])
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some(INDEX));
    assert_eq!(
        response.header("docker-content-digest"),
        Some(printed.as_str())
    );
    let index = response.json();
    assert_eq!(index["mediaType"], INDEX);
    assert_eq!(
        index["annotations"]["org.opencontainers.image.version"],
        "1.2.3"
    );
    let entries = index["manifests"].as_array().unwrap();
    let platforms: Vec<&serde_json::Value> = entries.iter().map(|e| &e["platform"]).collect();
    assert_eq!(
        platforms,
        [
            &serde_json::json!({"os": "linux", "architecture": "amd64"}),
            &serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
            &serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v7"}),
        ]
    );
    for entry in entries {
        let digest = entry["digest"].as_str().unwrap();
        let child = registry
            .get(
                &format!("/v2/hello/manifests/{digest}"),
                &[("Accept", MANIFEST)],
            )
            .unwrap();
        assert_eq!(child.status, 200);
        assert_eq!(child.body.len() as u64, entry["size"].as_u64().unwrap());
        let manifest = child.json();
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config = registry
            .get(&format!("/v2/hello/blobs/{config_digest}"), &[])
            .unwrap()
            .json();
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], entry["platform"]["architecture"]);
        assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/hello");
    }
    let tag = format!("{image}:oci");
    for (platform, uname_m) in [
        ("linux/amd64", "x86_64"),
        ("linux/arm64", "aarch64"),
        ("linux/arm/v7", "armv7l"),
    ] {
        let printed = pull_and_run(platform, &tag);
        assert!(
            printed.starts_with(&format!("hello 1.2.3 on {uname_m} ")),
            "{platform}: {printed}"
        );
    }
}

/// The manifest digest of each platform in a build's OCI layout, by platform.
fn layout_digests(dir: &Path) -> Vec<(String, String)> {
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("target/multiarch/hello/oci/index.json")).unwrap(),
    )
    .unwrap();
    let mut digests: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    digests.sort();
    digests.dedup();
    digests
}

#[test]
fn another_clone_at_another_path_gives_the_same_images() {
    let first = oci_workspace("oci-clone-a");
    let second = scratch_dir("oci-clone-b-at-another-path").join("deeper");
    run(
        "cp",
        &["-r", first.to_str().unwrap(), second.to_str().unwrap()],
    );
    // Other times and modes than the first clone's.
    run(
        "touch",
        &[
            "-d",
            "2001-01-01",
            second.join("src/main.rs").to_str().unwrap(),
        ],
    );
    let output = xtask(&first, &["image", "--tag", "same"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // The second clone builds under a strict umask, so its binaries get other modes.
    let output = std::process::Command::new("sh")
        .args([
            "-c",
            "umask 077 && exec \"$0\" image --tag same",
            env!("CARGO_BIN_EXE_xtask"),
        ])
        .current_dir(&second)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    use std::os::unix::fs::PermissionsExt;
    let staged = second.join("target/multiarch/hello/linux-amd64/hello");
    assert_eq!(
        std::fs::metadata(&staged).unwrap().permissions().mode() & 0o077,
        0,
        "the umask reached the binary"
    );
    let (a, b) = (layout_digests(&first), layout_digests(&second));
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(a, b, "the same sources give the same image digests");

    // A changed binary changes only its platform's image.
    let manifest = second.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "[package.metadata.multiarch.platform.\"linux/arm64\"]\nlinker = \"rust-lld\"",
        "[package.metadata.multiarch.platform.\"linux/arm64\"]\nlinker = \"rust-lld\"\nrustflags = [\"-C\", \"opt-level=1\"]",
    );
    std::fs::write(&manifest, text).unwrap();
    let output = xtask(&second, &["image", "--tag", "same"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let changed = layout_digests(&second);
    for ((arch, before), (_, after)) in a.iter().zip(&changed) {
        assert_eq!(before == after, arch != "arm64", "{arch}: {before} {after}");
    }
}

#[test]
fn a_template_that_needs_an_engine_stops_with_its_line_before_anything_compiles() {
    let dir = oci_workspace("oci-run");
    std::fs::write(
        dir.join("docker/Dockerfile.j2"),
        "FROM scratch\nCOPY hello /hello\nRUN [\"/hello\"]\n",
    )
    .unwrap();
    let output = xtask(&dir, &["image"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("target/multiarch/hello/linux-amd64/Dockerfile:3: `RUN`, which backend = \"oci\" cannot build without an engine")
            && message.contains("help: use backend = \"docker\" for this template"),
        "{message}"
    );
    assert!(
        !dir.join("target/x86_64-unknown-linux-musl").exists(),
        "nothing compiled"
    );
}

#[test]
fn a_registry_failing_on_the_index_leaves_no_tag() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("oci-fail");
    let proxy = FlakyProxy::start(
        registry.port,
        "PUT /v2/hello/manifests/broken ",
        "500 Internal Server Error",
        usize::MAX,
    );
    let dir = oci_workspace("oci-fail");
    let image = format!("127.0.0.1:{}/hello", proxy.port);
    let output = xtask(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "broken"],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("HTTP 500"), "{message}");
    let list = registry
        .get("/v2/hello/manifests/broken", &[("Accept", INDEX)])
        .unwrap();
    assert_eq!(list.status, 404, "no tag");
}

/// Pushes the demo's amd64 image with backend oci to `registry`, logged in through
/// `config` (a Docker config directory).
fn push_as(dir: &Path, registry: &Registry, config: &Path, tag: &str) -> std::process::Output {
    let image = format!("{}/hello", registry.host());
    xtask_with_env(
        dir,
        &[
            "image",
            "--push",
            "--image",
            &image,
            "--tag",
            tag,
            "--platform",
            "linux/amd64",
        ],
        &[("DOCKER_CONFIG", config.to_str().unwrap())],
    )
}

fn logs_in_and_refuses_wrong_credentials(name: &str, registry: &Registry) {
    let dir = oci_workspace(&format!("oci-{name}"));
    let good = docker_config_for(&format!("{name}-good"), &registry.host(), "tester:s3cret");
    let output = push_as(&dir, registry, &good, "logged-in");
    assert!(output.status.success(), "{}", stderr(&output));
    let digest = stdout(&output)
        .lines()
        .last()
        .and_then(|l| l.split_once('@'))
        .map(|(_, d)| d.to_owned())
        .unwrap();
    assert!(digest.starts_with("sha256:"));

    let wrong = docker_config_for(
        &format!("{name}-wrong"),
        &registry.host(),
        "tester:not-the-password",
    );
    let output = push_as(&dir, registry, &wrong, "refused");
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("help: log in to 127.0.0.1:"), "{message}");
    assert!(
        !message.contains("not-the-password"),
        "no secret is printed: {message}"
    );
    let none = scratch_dir(&format!("docker-config-{name}-none"));
    let output = push_as(&dir, registry, &none, "anonymous");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn pushes_log_in_with_basic_auth_from_dockers_config() {
    let registry = registry_with_basic_auth("oci-basic");
    logs_in_and_refuses_wrong_credentials("basic", &registry);
}

#[test]
fn pushes_log_in_with_bearer_tokens_from_a_token_server() {
    let tokens = TokenServer::start("oci-bearer");
    let registry = registry_with_tokens("oci-bearer", &tokens);
    logs_in_and_refuses_wrong_credentials("bearer", &registry);
}

#[test]
fn a_registry_error_on_the_index_is_retried() {
    let registry = Registry::start("oci-retry");
    let proxy = FlakyProxy::start(
        registry.port,
        "PUT /v2/hello/manifests/retried ",
        "503 Service Unavailable",
        1,
    );
    let dir = oci_workspace("oci-retry");
    let image = format!("127.0.0.1:{}/hello", proxy.port);
    let output = xtask(
        &dir,
        &[
            "image",
            "--push",
            "--image",
            &image,
            "--tag",
            "retried",
            "--platform",
            "linux/amd64",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("transient failure (HTTP 503"),
        "{}",
        stderr(&output)
    );
    assert!(
        proxy.refused() >= 1,
        "the proxy refused the first index PUT"
    );
    let list = registry
        .get("/v2/hello/manifests/retried", &[("Accept", INDEX)])
        .unwrap();
    assert_eq!(list.status, 200);
}

#[test]
fn load_puts_the_images_into_the_lanes_engine() {
    if !require_docker() {
        return;
    }
    let dir = oci_workspace("oci-load");
    let images = [
        "hello:amd64-loaded",
        "hello:arm64v8-loaded",
        "hello:arm32v7-loaded",
    ];
    for image in images {
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", "--force", image])
            .output();
    }
    let output = xtask(&dir, &["image", "--load", "--tag", "loaded"]);
    assert!(output.status.success(), "{}", Lane::current().name());
    for ((platform, uname_m), image) in [
        ("linux/amd64", "x86_64"),
        ("linux/arm64", "aarch64"),
        ("linux/arm/v7", "armv7l"),
    ]
    .into_iter()
    .zip(images)
    {
        let printed = run("docker", &["run", "--rm", "--platform", platform, image]);
        assert!(
            printed.starts_with(&format!("hello 1.2.3 on {uname_m} ")),
            "{platform}: {printed}"
        );
    }
}

#[test]
fn a_registry_base_is_resolved_per_platform_and_its_layers_reused() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("oci-base");
    let host = registry.host();
    // A two-platform base in the registry: busybox for amd64 and arm/v7, joined by a list.
    let mut sources = Vec::new();
    for (platform, docker_arch, debian_arch) in [
        ("linux/amd64", "amd64", "amd64"),
        ("linux/arm/v7", "arm32v7", "armhf"),
    ] {
        let local = busybox_image(platform, docker_arch, debian_arch);
        let remote = format!("{host}/busybox:{docker_arch}");
        run("docker", &["tag", &local, &remote]);
        run("docker", &["push", &remote]);
        sources.push(remote);
    }
    let base = format!("{host}/busybox:multi");
    if Lane::current().buildkit() {
        // The containerd store pushes indexes (with attestations), which only imagetools joins.
        let mut create = vec!["buildx", "imagetools", "create", "--tag", &base];
        create.extend(sources.iter().map(String::as_str));
        run("docker", &create);
    } else {
        let _ = std::process::Command::new("docker")
            .args(["manifest", "rm", &base])
            .output();
        let mut create = vec!["manifest", "create", "--insecure", &base];
        create.extend(sources.iter().map(String::as_str));
        run("docker", &create);
        run(
            "docker",
            &["manifest", "push", "--insecure", "--purge", &base],
        );
    }

    let dir = fixture_workspace(
        "oci-base",
        &format!(
            "platforms = [\"linux/amd64\", \"linux/arm/v7\"]\nbackend = \"oci\"\n{STATIC_TARGETS}"
        ),
    );
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("base = \"scratch\"", &format!("base = \"{base}\""));
    std::fs::write(&manifest, text).unwrap();
    let image = format!("{host}/hello");
    let output = xtask(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "on-busybox"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let tag = format!("{image}:on-busybox");
    for (platform, uname_m) in [("linux/amd64", "x86_64"), ("linux/arm/v7", "armv7l")] {
        let printed = pull_and_run(platform, &tag);
        assert!(
            printed.starts_with(&format!("hello 1.2.3 on {uname_m} ")),
            "{printed}"
        );
        let from_base = run(
            "docker",
            &[
                "run",
                "--rm",
                "--platform",
                platform,
                "--entrypoint",
                "/bin/busybox",
                &tag,
                "echo",
                "base",
            ],
        );
        assert_eq!(
            from_base.trim(),
            "base",
            "{platform}: the base's layers are in the image"
        );
    }

    // arm64 is not in the base: the run stops before anything is uploaded.
    let output = xtask(
        &dir,
        &[
            "image",
            "--push",
            "--image",
            &image,
            "--tag",
            "arm64",
            "--platform",
            "linux/arm64",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "the base image {base} is not published for linux/arm64"
        )),
        "{message}"
    );
    let tags = registry.get("/v2/hello/tags/list", &[]).unwrap().json();
    let tags: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(!tags.iter().any(|t| t.contains("arm64")), "{tags:?}");
}

#[test]
fn the_oci_backend_names_no_engine_in_its_dry_run_or_doctor_and_writes_only_to_its_target_dir() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("oci-peer");
    let dir = oci_workspace("oci-peer");
    let image = format!("{}/hello", registry.host());
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .unwrap()
        .replace(
            "backend = \"oci\"",
            &format!("backend = \"oci\"\nimage = \"{image}\""),
        )
        .replace(
            "base = \"scratch\"",
            &format!("base = \"{}/base:1\"", registry.host()),
        );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();

    let output = xtask(&dir, &["image", "--dry-run", "--push"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = stdout(&output);
    assert!(
        lines.contains(&format!(
            "[linux/arm64] resolve {}/base:1 for linux/arm64 from its registry",
            registry.host()
        )),
        "{lines}"
    );
    assert!(lines.contains("PUT the OCI index"), "{lines}");
    for line in lines.lines() {
        assert!(
            !line.contains("docker "),
            "the dry run names a docker command: {line}"
        );
    }

    let (fake, record) = recording_docker();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let output = xtask_with_env(&dir, &["doctor"], &[("PATH", &path)]);
    let table = stdout(&output);
    assert!(
        table.contains("backend") && table.contains("oci: images assembled here, no engine"),
        "{table}"
    );
    assert!(
        table.contains(&format!("registry {}", registry.host()))
            && table.contains(&format!("http://{} answers (HTTP 200)", registry.host())),
        "{table}"
    );
    assert!(
        table.contains("OCI index PUT over the registry API"),
        "{table}"
    );
    assert!(
        !table.contains("docker manifest") && !table.contains("docker daemon"),
        "{table}"
    );
    assert!(
        !record.exists(),
        "doctor ran docker: {:?}",
        std::fs::read_to_string(&record)
    );

    // With the target dir elsewhere, the workspace gets no `target/` at all.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .unwrap()
        .replace(
            &format!("base = \"{}/base:1\"", registry.host()),
            "base = \"scratch\"",
        );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    // The dry run and doctor above cached the native-code answer in the default one.
    std::fs::remove_dir_all(dir.join("target")).unwrap();
    let elsewhere = scratch_dir("oci-peer-target");
    let output = xtask_with_env(
        &dir,
        &[
            "image",
            "--push",
            "--tag",
            "elsewhere",
            "--platform",
            "linux/amd64",
        ],
        &[
            ("CARGO_TARGET_DIR", elsewhere.to_str().unwrap()),
            ("PATH", &path),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !dir.join("target").exists(),
        "nothing is written under the workspace's target/"
    );
    assert!(elsewhere.join("multiarch/hello/oci/index.json").is_file());
    assert!(!record.exists(), "no docker process ran");
}

/// The validators `.ci/setup` installs from PyPI (cyclonedx-python-lib, spdx-tools).
fn sbom_validators() -> PathBuf {
    let venv = PathBuf::from(
        std::env::var("MULTIARCH_SBOM_VALIDATORS")
            .unwrap_or_else(|_| "/opt/multiarch-tools/sbom-venv".into()),
    );
    assert!(
        venv.join("bin/pyspdxtools").is_file(),
        "the SBOM validators are missing at {}: run .ci/setup",
        venv.display()
    );
    venv
}

/// The crates `cargo tree` says are compiled for `target` with `features`, as purls.
fn cargo_tree_purls(dir: &Path, target: &str, features: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "tree",
            "-e",
            "normal",
            "--target",
            target,
            "--features",
            features,
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut purls: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim_end_matches(" (*)"))
        .filter(|line| !line.ends_with("(proc-macro)"))
        .map(|line| {
            let (name, version) = line.split_once(" v").unwrap();
            format!("pkg:cargo/{name}@{}", version.split(' ').next().unwrap())
        })
        .collect();
    purls.sort();
    purls.dedup();
    purls
}

#[test]
fn sboms_are_exact_per_platform_valid_attached_and_reproducible() {
    if !require_docker() {
        return;
    }
    let validators = sbom_validators();
    let registry = Registry::start("oci-sbom");
    let dir = fixture_workspace(
        "oci-sbom",
        &format!("platforms = [\"linux/amd64\", \"linux/arm64\"]\nbackend = \"oci\"\nsbom = true\nprovenance = \"max\"\nfeatures = [\"fast\"]\n{STATIC_TARGETS}"),
    );
    // A dependency for arm64 alone, and one behind a feature.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()
        + "\n[target.'cfg(target_arch = \"aarch64\")'.dependencies]\nitoa = \"1\"\n\
           [dependencies]\nryu = { version = \"1\", optional = true }\n\
           [features]\nfast = [\"dep:ryu\"]\n";
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let second = scratch_dir("oci-sbom-other-clone").join("deeper");
    run(
        "cp",
        &["-r", dir.to_str().unwrap(), second.to_str().unwrap()],
    );
    let image = format!("{}/sbom", registry.host());
    let output = xtask(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "one"],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    for (slug, target, only_here) in [
        ("linux-amd64", "x86_64-unknown-linux-musl", None),
        ("linux-arm64", "aarch64-unknown-linux-musl", Some("itoa")),
    ] {
        let sboms = dir.join("target/multiarch/hello/sbom");
        let cdx_path = sboms.join(format!("{slug}.cdx.json"));
        let cdx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cdx_path).unwrap()).unwrap();
        let components = cdx["components"].as_array().unwrap();
        let mut purls: Vec<String> = components
            .iter()
            .filter_map(|c| c["purl"].as_str().map(str::to_owned))
            .collect();
        purls.push(
            cdx["metadata"]["component"]["purl"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        purls.sort();
        assert_eq!(purls, cargo_tree_purls(&dir, target, "fast"), "{slug}");
        assert!(
            purls.iter().any(|p| p.starts_with("pkg:cargo/ryu@")),
            "{slug}: the feature's crate"
        );
        assert_eq!(
            purls.iter().any(|p| p.starts_with("pkg:cargo/itoa@")),
            only_here.is_some(),
            "{slug}"
        );
        let ryu = components.iter().find(|c| c["name"] == "ryu").unwrap();
        assert_eq!(
            ryu["hashes"][0]["content"].as_str().unwrap().len(),
            64,
            "the Cargo.lock checksum"
        );
        let binary =
            std::fs::read(dir.join(format!("target/multiarch/hello/{slug}/hello"))).unwrap();
        let file = components.iter().find(|c| c["type"] == "file").unwrap();
        assert_eq!(file["name"], "hello");
        assert_eq!(
            file["hashes"][0]["content"].as_str().unwrap(),
            multiarch::digest::hex_sha256(&binary)
        );
        // Both documents pass their own validators.
        let script = format!(
            "from cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\n\
             import sys\nerr = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open({:?}).read())\nsys.exit(str(err) if err else 0)\n",
            cdx_path.display().to_string()
        );
        run(
            validators.join("bin/python").to_str().unwrap(),
            &["-c", &script],
        );
        let spdx_path = sboms.join(format!("{slug}.spdx.json"));
        let problems = run(
            validators.join("bin/pyspdxtools").to_str().unwrap(),
            &["-i", spdx_path.to_str().unwrap()],
        );
        assert!(problems.trim().is_empty(), "{slug}: {problems}");
    }

    // The index carries an attestation manifest per image, as BuildKit lays them out.
    let index: serde_json::Value = serde_json::from_str(&run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}:one"),
        ],
    ))
    .unwrap();
    let entries = index["manifests"].as_array().unwrap();
    let images: Vec<&str> = entries
        .iter()
        .filter(|e| e["platform"]["os"] == "linux")
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    let attested: Vec<&str> = entries
        .iter()
        .filter(|e| e["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .map(|e| {
            e["annotations"]["vnd.docker.reference.digest"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(images, attested, "{index}");
    if Lane::current().buildkit() {
        let sbom = run(
            "docker",
            &[
                "buildx",
                "imagetools",
                "inspect",
                &format!("{image}:one"),
                "--format",
                "{{json .SBOM}}",
            ],
        );
        let sbom: serde_json::Value = serde_json::from_str(&sbom).unwrap();
        for platform in ["linux/amd64", "linux/arm64"] {
            assert_eq!(
                sbom[platform]["SPDX"]["spdxVersion"], "SPDX-2.3",
                "{platform}: {sbom}"
            );
        }
    }

    // Another clone at another path, the same command: the same index, SBOMs, provenance
    // and all.
    let published = |output: &std::process::Output| -> String {
        assert!(output.status.success(), "{}", stderr(output));
        let report: serde_json::Value = serde_json::from_str(&stdout(output)).unwrap();
        report["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let args = [
        "image", "--push", "--image", &image, "--tag", "one", "--json",
    ];
    let first = published(&xtask(&dir, &args));
    let again = published(&xtask(&second, &args));
    assert_eq!(first, again, "the same index from another clone");
}

#[test]
fn cosign_signs_every_image_and_the_index_and_attests_each_sbom() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("oci-sign");
    let keys = scratch_dir("oci-sign-keys");
    let (key, public) = cosign_keys(&keys.join("right"));
    let (_, wrong) = cosign_keys(&keys.join("wrong"));
    let dir = fixture_workspace(
        "oci-sign",
        &format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\"]\nbackend = \"oci\"\nsbom = true\nprovenance = \"max\"\n\
             sign = {{ key = \"{}\", tlog = false }}\n{STATIC_TARGETS}",
            key.display()
        ),
    );
    let image = format!("{}/signed", registry.host());
    let path = format!(
        "{}:{}",
        cosign_dir().display(),
        std::env::var("PATH").unwrap()
    );
    let output = xtask_with_env(
        &dir,
        &[
            "image", "--push", "--image", &image, "--tag", "v1", "--json",
        ],
        &[("PATH", &path), ("COSIGN_PASSWORD", "pw")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("pw\n"),
        "the password is never printed"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    // The report (and so `--metadata-file` and the CI outputs) names what was attached.
    for platform in report["platforms"].as_array().unwrap() {
        for field in ["sbom", "signature"] {
            let digest = platform[field].as_str().unwrap_or_default();
            assert!(
                multiarch::digest::Digest::parse(digest).is_some(),
                "{field}: {platform}"
            );
        }
    }
    assert!(report["manifests"][0]["signature"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(
        stderr(&output).contains("sbom, signature"),
        "the summary says so"
    );
    let mut references: Vec<String> = report["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{image}@{}", p["digest"].as_str().unwrap()))
        .collect();
    for reference in &references {
        assert!(cosign_verifies(reference, &public, None), "{reference}");
        assert!(
            cosign_verifies(reference, &public, Some("cyclonedx")),
            "the SBOM attestation of {reference}"
        );
        assert!(
            cosign_verifies(reference, &public, Some("slsaprovenance1")),
            "the provenance of {reference}"
        );
        assert!(
            !cosign_verifies(reference, &wrong, None),
            "a wrong key is refused: {reference}"
        );
    }
    references.push(format!(
        "{image}@{}",
        report["manifests"][0]["digest"].as_str().unwrap()
    ));
    assert!(
        cosign_verifies(references.last().unwrap(), &public, None),
        "the index"
    );

    // A key that does not open (the wrong password) stops the run before anything
    // compiles or is published, naming the key and the fix.
    let _ = std::fs::remove_dir_all(dir.join("target"));
    let output = xtask_with_env(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "v3"],
        &[("PATH", &path), ("COSIGN_PASSWORD", "wrong")],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "the signing key `{}` does not open",
            key.display()
        )) && stderr(&output).contains("help: set COSIGN_PASSWORD to the key's password"),
        "{}",
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains("wrong\n"),
        "the password is never printed"
    );
    assert!(!dir.join("target/x86_64-unknown-linux-musl").exists());
    let tag = registry.get("/v2/signed/manifests/v3", &[]).unwrap();
    assert_eq!(tag.status, 404, "no tag was published");

    // A signature that fails (cosign cannot store it anywhere) stops the run before any
    // tag moves: the images and the index are in the registry by digest, untagged.
    let output = xtask_with_env(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "v4"],
        &[
            ("PATH", &path),
            ("COSIGN_PASSWORD", "pw"),
            ("COSIGN_REPOSITORY", "127.0.0.1:9/nowhere"),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("error: signing ") && message.contains("help: no tag was moved"),
        "{message}"
    );
    for tag in ["v4", "amd64-v4", "arm64v8-v4"] {
        let response = registry
            .get(&format!("/v2/signed/manifests/{tag}"), &[])
            .unwrap();
        assert_eq!(response.status, 404, "{tag} was not published unsigned");
    }

    // Without cosign the run stops before anything compiles, naming the fix.
    let _ = std::fs::remove_dir_all(dir.join("target"));
    let output = xtask(&dir, &["image", "--push", "--image", &image, "--tag", "v2"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cosign is not on PATH"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.join("target/x86_64-unknown-linux-musl").exists());
}
