//! End to end against a real Docker engine and a real `docker-registry`: per-platform
//! pushes, one manifest list per tag, all or nothing, and idempotent re-runs.

mod common;

use common::*;

const LIST_TYPES: &str = "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";
const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
const PLATFORMS: &[(&str, &str, Option<&str>, &str)] = &[
    ("linux/amd64", "amd64", None, "x86_64"),
    ("linux/arm64", "arm64", Some("v8"), "aarch64"),
    ("linux/arm/v7", "arm", Some("v7"), "armv7l"),
];

fn push(dir: &std::path::Path, registry: &Registry, tags: &[&str]) -> std::process::Output {
    let platforms: Vec<&str> = PLATFORMS.iter().map(|(platform, ..)| *platform).collect();
    push_to(dir, &registry.host(), &platforms, tags)
}

/// `image --push` of `platforms` to `hello` at the registry `host`.
fn push_to(
    dir: &std::path::Path,
    host: &str,
    platforms: &[&str],
    tags: &[&str],
) -> std::process::Output {
    let image = format!("{host}/hello");
    let mut args = vec![
        "image", "--push", "--image", &image, "--json", "--jobs", "2",
    ];
    for platform in platforms {
        args.extend(["--platform", platform]);
    }
    for tag in tags {
        args.extend(["--tag", tag]);
    }
    xtask(dir, &args)
}

/// Checks one published list against the registry's HTTP API.
fn check_list(registry: &Registry, tag: &str, printed_digest: &str) {
    let response = registry
        .get(
            &format!("/v2/hello/manifests/{tag}"),
            &[("Accept", LIST_TYPES)],
        )
        .unwrap();
    assert_eq!(response.status, 200, "list {tag}");
    let list = response.json();
    assert_eq!(
        response.header("content-type"),
        list["mediaType"].as_str(),
        "Content-Type is the body's mediaType"
    );
    assert_eq!(
        response.header("docker-content-digest"),
        Some(printed_digest),
        "the digest the tool printed"
    );
    let all = list["manifests"].as_array().unwrap();
    // BuildKit's attestation manifests are `unknown/unknown` entries that name an image entry.
    let (attestations, entries): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) = all
        .iter()
        .partition(|e| e["platform"]["architecture"] == "unknown");
    for attestation in &attestations {
        let annotations = &attestation["annotations"];
        assert_eq!(
            annotations["vnd.docker.reference.type"], "attestation-manifest",
            "{list}"
        );
        let subject = annotations["vnd.docker.reference.digest"].as_str().unwrap();
        assert!(
            entries.iter().any(|e| e["digest"] == subject),
            "the attestation names an image of the index: {list}"
        );
    }
    assert_eq!(entries.len(), PLATFORMS.len());
    for (platform, arch, variant, _) in PLATFORMS {
        let entry = entries
            .iter()
            .find(|e| e["platform"]["architecture"] == *arch)
            .unwrap_or_else(|| panic!("no {platform} entry in {list}"));
        let mut expected = serde_json::json!({ "os": "linux", "architecture": arch });
        // imagetools copies each image's platform as the engine wrote it: arm64 may omit v8.
        let omitted_v8 = *arch == "arm64"
            && Lane::current().buildkit()
            && entry["platform"].get("variant").is_none();
        if let Some(variant) = variant.filter(|_| !omitted_v8) {
            expected["variant"] = serde_json::json!(variant);
        }
        assert_eq!(entry["platform"], expected, "{platform} entry is exact");

        let digest = entry["digest"].as_str().unwrap();
        let head = registry
            .request(
                "HEAD",
                &format!("/v2/hello/manifests/{digest}"),
                &[("Accept", MANIFEST_TYPES)],
            )
            .unwrap();
        assert_eq!(head.status, 200, "{platform} child exists");
        assert_eq!(
            head.header("content-length")
                .map(|l| l.parse::<u64>().unwrap()),
            entry["size"].as_u64(),
            "{platform} child size"
        );

        let manifest = registry
            .get(
                &format!("/v2/hello/manifests/{digest}"),
                &[("Accept", MANIFEST_TYPES)],
            )
            .unwrap()
            .json();
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config = registry
            .get(&format!("/v2/hello/blobs/{config_digest}"), &[])
            .unwrap()
            .json();
        assert_eq!(config["os"], "linux", "{platform} config");
        assert_eq!(config["architecture"], *arch, "{platform} config");
    }
}

fn list_digests(output: &std::process::Output) -> Vec<(String, String)> {
    let report: serde_json::Value = serde_json::from_str(&stdout(output)).expect("--json report");
    report["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["list"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn publishes_one_list_per_tag_that_every_platform_pulls() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("publish");
    let dir = fixture_workspace("e2e-push", &format!("semver = true\n{STATIC_TARGETS}"));
    let output = push(&dir, &registry, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lists = list_digests(&output);
    let tags: Vec<&str> = lists
        .iter()
        .map(|(list, _)| list.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["1.2.3", "1.2", "1", "latest"],
        "semver expands the version"
    );
    for (list, digest) in &lists {
        check_list(&registry, list.rsplit(':').next().unwrap(), digest);
    }
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    // The lists name exactly the digests this run pushed and printed.
    let list = registry
        .get("/v2/hello/manifests/1.2.3", &[("Accept", LIST_TYPES)])
        .unwrap()
        .json();
    let listed: Vec<&str> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    for platform in report["platforms"].as_array().unwrap() {
        let digest = platform["digest"].as_str().unwrap();
        assert!(
            digest.starts_with("sha256:"),
            "per-platform digest: {platform}"
        );
        assert!(listed.contains(&digest), "{digest} in {listed:?}");
    }

    // A stale local list (one entry only), as an earlier run or a hand-made
    // `docker manifest create` leaves behind, must not leak into the next publish.
    let stale = format!("{}/hello:1.2.3", registry.host());
    let amd64_only = format!("{}/hello:amd64-1.2.3", registry.host());
    run(
        "docker",
        &["manifest", "create", "--insecure", &stale, &amd64_only],
    );

    // A second full run after a success changes nothing: the same lists.
    let again = push(&dir, &registry, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(list_digests(&again), lists);

    // Labels from Cargo metadata are on every image.
    let image = format!("{}/hello:arm64v8-1.2.3", registry.host());
    let labels = run(
        "docker",
        &[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &image,
        ],
    );
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["org.opencontainers.image.title"], "hello");
    assert_eq!(labels["org.opencontainers.image.version"], "1.2.3");

    // Pull each platform from the list with no local copies left, and run it.
    let list = format!("{}/hello:1.2.3", registry.host());
    for (platform, _, _, uname_m) in PLATFORMS {
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", "--force", &list])
            .output();
        for tag in ["1.2.3", "1.2", "1", "latest"] {
            let prefix = match *platform {
                "linux/amd64" => "amd64",
                "linux/arm64" => "arm64v8",
                _ => "arm32v7",
            };
            let _ = std::process::Command::new("docker")
                .args([
                    "image",
                    "rm",
                    "--force",
                    &format!("{}/hello:{prefix}-{tag}", registry.host()),
                ])
                .output();
        }
        run("docker", &["pull", "--platform", platform, &list]);
        let printed = run("docker", &["run", "--rm", "--platform", platform, &list]);
        assert!(
            printed.starts_with(&format!("hello 1.2.3 on {uname_m} ")),
            "{platform}: {printed}"
        );
    }
}

#[test]
fn a_failed_platform_publishes_no_list_and_a_rerun_completes() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("all-or-nothing");
    let broken =
        STATIC_TARGETS.replace("linker = \"arm-linux-gnueabihf-gcc\"", "linker = \"false\"");
    let dir = fixture_workspace("e2e-push-fail", &broken);
    let output = push(&dir, &registry, &["fail"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("error: cargo build failed for linux/arm/v7"),
        "{message}"
    );
    assert!(message.contains("help: "), "{message}");
    let list = registry
        .get("/v2/hello/manifests/fail", &[("Accept", LIST_TYPES)])
        .unwrap();
    assert_eq!(
        list.status, 404,
        "no list is published over a failed platform"
    );
    let pushed = registry.get("/v2/hello/tags/list", &[]).unwrap();
    assert!(
        pushed.status == 404 || !String::from_utf8_lossy(&pushed.body).contains("fail"),
        "nothing was pushed before every platform built"
    );

    write_fixture_manifest(&dir, STATIC_TARGETS);
    let output = push(&dir, &registry, &["fail"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lists = list_digests(&output);
    check_list(&registry, "fail", &lists[0].1);
}

#[test]
fn a_registry_error_on_the_list_push_is_retried() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("flaky");
    // The list push is a PUT of the tag's manifest; the first one gets a 503.
    let proxy = FlakyProxy::start(
        registry.port,
        "PUT /v2/hello/manifests/retry",
        "503 Service Unavailable",
        1,
    );
    let dir = fixture_workspace("e2e-push-retry", STATIC_TARGETS);
    let proxied = format!("127.0.0.1:{}", proxy.port);
    let output = push_to(&dir, &proxied, &["linux/amd64", "linux/arm64"], &["retry"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(proxy.refused() >= 1, "the proxy refused a push");
    assert!(
        stderr(&output).contains("transient failure"),
        "{}",
        stderr(&output)
    );
    let list = registry
        .get("/v2/hello/manifests/retry", &[("Accept", LIST_TYPES)])
        .unwrap();
    assert_eq!(list.status, 200, "published after the retry");
}

#[test]
fn a_refused_push_is_not_retried_and_says_to_log_in() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("refusing");
    let proxy = FlakyProxy::start(
        registry.port,
        "PUT /v2/hello/manifests/",
        "401 Unauthorized",
        usize::MAX,
    );
    let dir = fixture_workspace("e2e-push-refused", STATIC_TARGETS);
    let proxied = format!("127.0.0.1:{}", proxy.port);
    let output = push_to(&dir, &proxied, &["linux/amd64"], &["refused"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        !message.contains("transient failure"),
        "a refusal is not retried: {message}"
    );
    assert!(
        message.contains(&format!(
            "help: log in to 127.0.0.1:{} first: `docker login 127.0.0.1:{}`",
            proxy.port, proxy.port
        )),
        "{message}"
    );
    let list = registry
        .get("/v2/hello/manifests/refused", &[("Accept", LIST_TYPES)])
        .unwrap();
    assert_eq!(list.status, 404);
}

#[test]
fn provenance_on_request_keeps_attestations_that_name_their_images() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("provenance");
    let dir = fixture_workspace("e2e-push-provenance", STATIC_TARGETS);
    let image = format!("{}/hello", registry.host());
    let output = xtask(
        &dir,
        &[
            "image",
            "--push",
            "--image",
            &image,
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
            "--tag",
            "attested",
            "--provenance",
            "true",
        ],
    );
    let message = stderr(&output);
    let lane = Lane::current();
    if lane == Lane::Docker26Classic {
        assert_eq!(output.status.code(), Some(1));
        assert!(
            message.contains("error: provenance attestations need the containerd image store, and this engine uses the classic one")
                && message.contains("help: turn on the containerd image store"),
            "{message}"
        );
        return;
    }
    if !lane.buildkit() {
        assert_eq!(output.status.code(), Some(1), "{lane:?}");
        assert!(
            message.contains("error: provenance needs BuildKit")
                && message.contains("help: set up the buildx plugin"),
            "{message}"
        );
        return;
    }
    assert!(output.status.success(), "{message}");
    let list = registry
        .get("/v2/hello/manifests/attested", &[("Accept", LIST_TYPES)])
        .unwrap()
        .json();
    let all = list["manifests"].as_array().unwrap();
    let (attestations, images): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) = all
        .iter()
        .partition(|e| e["platform"]["architecture"] == "unknown");
    assert_eq!(images.len(), 2, "{list}");
    assert_eq!(attestations.len(), 2, "one attestation per image: {list}");
    for image in &images {
        let attestation = attestations
            .iter()
            .find(|a| a["annotations"]["vnd.docker.reference.digest"] == image["digest"])
            .unwrap_or_else(|| panic!("no attestation names {image}"));
        let digest = attestation["digest"].as_str().unwrap();
        let manifest = registry
            .get(
                &format!("/v2/hello/manifests/{digest}"),
                &[("Accept", MANIFEST_TYPES)],
            )
            .unwrap()
            .json();
        let predicate = manifest["layers"][0]["annotations"]["in-toto.io/predicate-type"]
            .as_str()
            .unwrap_or_default();
        assert!(
            predicate.starts_with("https://slsa.dev/provenance/"),
            "{lane:?}: {manifest}"
        );
    }
}

#[test]
fn sbom_names_what_it_needs() {
    if !require_docker() {
        return;
    }
    let dir = fixture_workspace("e2e-sbom", STATIC_TARGETS);
    let output = xtask(
        &dir,
        &["image", "--platform", "linux/amd64", "--sbom=buildkit"],
    );
    let message = stderr(&output);
    if !Lane::current().buildkit() {
        assert!(
            message.contains("error: sbom = \"buildkit\" needs BuildKit"),
            "{message}"
        );
        return;
    }
    if Lane::current() == Lane::Docker26Classic {
        assert!(
            message.contains("error: sbom attestations need the containerd image store"),
            "{message}"
        );
        return;
    }
    // BuildKit runs its scanner image: where its registry answers the build succeeds;
    // where it does not (this machine has no internet), the error names the image to pull.
    let scanner = "docker.io/docker/buildkit-syft-scanner:stable-1";
    let reachable = std::process::Command::new("docker")
        .args(["buildx", "imagetools", "inspect", scanner])
        .output()
        .is_ok_and(|o| o.status.success());
    if reachable {
        assert!(output.status.success(), "{message}");
    } else {
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert!(
            message.contains(&format!(
                "help: BuildKit's SBOM scanner `{scanner}` could not be fetched"
            )),
            "{message}"
        );
    }
}

#[test]
fn cosign_signs_every_pushed_image_and_the_tag_on_the_docker_backend() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("docker-sign");
    let (key, public) = cosign_keys(&scratch_dir("docker-sign-keys"));
    let dir = fixture_workspace(
        "docker-sign",
        &format!("platforms = [\"linux/amd64\", \"linux/arm64\"]\n{STATIC_TARGETS}"),
    );
    let image = format!("{}/hello", registry.host());
    let path = format!(
        "{}:{}",
        cosign_dir().display(),
        std::env::var("PATH").unwrap()
    );
    let key = key.display().to_string();
    // The table names a key that is not there: the run stops before anything compiles.
    std::fs::write(
        dir.join("Cargo.toml"),
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap()
            .replace(
                "[package.metadata.multiarch]\n",
                "[package.metadata.multiarch]\nsbom = true\nsign = { key = \"missing.key\", tlog = false }\n",
            ),
    )
    .unwrap();
    let env = [("PATH", path.as_str()), ("COSIGN_PASSWORD", "pw")];
    let args = [
        "image", "--push", "--image", &image, "--tag", "signed", "--json",
    ];
    let output = xtask_with_env(&dir, &args, &env);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("the signing key `missing.key` is not a file"),
        "{}",
        stderr(&output)
    );
    // `--sign KEY` overrides the table's key, keeping its `tlog = false`.
    let with_key: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--sign", key.as_str()])
        .collect();
    let output = xtask_with_env(&dir, &with_key, &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    for platform in report["platforms"].as_array().unwrap() {
        let reference = format!("{image}@{}", platform["digest"].as_str().unwrap());
        assert!(cosign_verifies(&reference, &public, None), "{reference}");
        // `sbom = true` is the tool's own SBOM on this backend too, attested with the key.
        assert!(
            cosign_verifies(&reference, &public, Some("cyclonedx")),
            "the SBOM attestation of {reference}"
        );
    }
    let sbom: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("target/multiarch/hello/sbom/linux-arm64.cdx.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        sbom["metadata"]["component"]["purl"],
        "pkg:cargo/hello@1.2.3"
    );
    let index = format!(
        "{image}@{}",
        report["manifests"][0]["digest"].as_str().unwrap()
    );
    assert!(cosign_verifies(&index, &public, None), "{index}");
}
