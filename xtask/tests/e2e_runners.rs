//! End to end: one release built on three "runners" on this machine (separate clones at
//! different paths, target dirs, homes and Docker configs: Docker 26.1 with the containerd
//! store, the engine-free backend with no engine reachable, Docker 20.10), each pushing its
//! platform by digest, then joined, signed and tagged by `publish` from a fourth clone.
//! Every refusal leaves the tag as it was.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const LIST_TYPES: &str = "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";
const ALL_TYPES: &str = "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

/// The variables of an engine lane that `.ci/setup` started (`export KEY=VALUE` lines).
fn lane_env(lane: &str) -> Vec<(String, String)> {
    let dir = std::env::var("MULTIARCH_LANES").unwrap_or_else(|_| "/tmp/multiarch-lanes".into());
    let path = Path::new(&dir).join(format!("{lane}.env"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the lane {lane} is not up ({}: {e}): .ci/setup starts every lane",
            path.display()
        )
    });
    text.lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// One machine: its own clone, home and Docker config, and the variables it runs with.
struct Runner {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Runner {
    fn new(origin: &Path, name: &str, docker_host: &str, docker_config: Option<&Path>) -> Runner {
        let dir = scratch_dir(&format!("e2e-runners-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        run(
            "git",
            &[
                "clone",
                "-q",
                origin.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        let home = scratch_dir(&format!("e2e-runners-{name}-home"));
        let config = home.join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        if let Some(from) = docker_config {
            run(
                "cp",
                &[
                    "-r",
                    &format!("{}/.", from.display()),
                    config.to_str().unwrap(),
                ],
            );
        }
        let real_home = std::env::var("HOME").unwrap();
        let keep = |key: &str, default: String| std::env::var(key).unwrap_or(default);
        let path = format!(
            "{}:{}",
            cosign_dir().display(),
            std::env::var("PATH").unwrap()
        );
        let env = vec![
            ("HOME".into(), home.display().to_string()),
            ("DOCKER_HOST".into(), docker_host.to_owned()),
            ("DOCKER_CONFIG".into(), config.display().to_string()),
            (
                "RUSTUP_HOME".into(),
                keep("RUSTUP_HOME", format!("{real_home}/.rustup")),
            ),
            (
                "CARGO_HOME".into(),
                keep("CARGO_HOME", format!("{real_home}/.cargo")),
            ),
            ("PATH".into(), path),
            ("COSIGN_PASSWORD".into(), "pw".into()),
        ];
        Runner { dir, env }
    }

    fn xtask(&self, args: &[&str]) -> std::process::Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        xtask_with_env(&self.dir, args, &env)
    }

    fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }
}

/// The digest a tag names now, or `None` when it names nothing.
fn tagged(registry: &Registry, tag: &str) -> Option<String> {
    let response = registry
        .get(
            &format!("/v2/hello/manifests/{tag}"),
            &[("Accept", ALL_TYPES)],
        )
        .unwrap();
    (response.status == 200).then(|| response.header("docker-content-digest").unwrap().to_owned())
}

/// Checks that `output` failed with `message` on stderr, and that the tag `v1` names
/// `published` still.
fn refused(output: &std::process::Output, message: &str, registry: &Registry, published: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    assert!(
        stderr(output).contains(message),
        "{message}\n{}",
        stderr(output)
    );
    assert!(stderr(output).contains("help: "), "{}", stderr(output));
    assert_eq!(tagged(registry, "v1").as_deref(), Some(published));
}

/// A copy of the record `from` in a directory of its own, edited by `edit`.
fn edited_record(from: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from).unwrap()).unwrap();
    edit(&mut record);
    let dir = scratch_dir(&format!("e2e-runners-edited-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(from.file_name().unwrap());
    std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    path
}

#[test]
fn three_runners_push_by_digest_and_a_fourth_clone_publishes_one_signed_tag() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("runners");
    let image = format!("{}/hello", registry.host());
    let origin = fixture_workspace(
        "e2e-runners-origin",
        &format!("image = \"{image}\"\nplatforms = [\"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\"]\nsign = {{ key = \"cosign.key\", tlog = false }}\n{STATIC_TARGETS}"),
    );
    let (_, public) = cosign_keys(&origin);
    let git = |args: &[&str]| {
        let mut all = vec!["-C", origin.to_str().unwrap()];
        all.extend(args);
        run("git", &all)
    };
    let _ = std::fs::remove_dir_all(origin.join(".git"));
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.name=ci",
        "-c",
        "user.email=ci@example.com",
        "commit",
        "-qm",
        "release",
    ]);
    let commit = git(&["rev-parse", "HEAD"]).trim().to_owned();
    let records = |name: &str| {
        let dir = scratch_dir(&format!("e2e-runners-records-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    };
    let no_engine = "unix:///nonexistent/docker.sock";

    // Runner A: linux/amd64 on Docker 26.1 with the containerd store, with provenance.
    let containerd = lane_env("docker26-containerd");
    let value =
        |env: &[(String, String)], key: &str| env.iter().find(|(k, _)| k == key).unwrap().1.clone();
    let a = Runner::new(
        &origin,
        "a",
        &value(&containerd, "DOCKER_HOST"),
        Some(Path::new(&value(&containerd, "DOCKER_CONFIG"))),
    );
    let records_a = records("a");
    let output = a.xtask(&[
        "image",
        "--push-by-digest",
        "--records",
        records_a.to_str().unwrap(),
        "--platform",
        "linux/amd64",
        "--provenance",
        "min",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Runner B: linux/arm64 with no engine at all, with the tool's SBOM.
    let b = Runner::new(&origin, "b", no_engine, None);
    let records_b = records("b");
    let output = b.xtask(&[
        "image",
        "--push-by-digest",
        "--records",
        records_b.to_str().unwrap(),
        "--platform",
        "linux/arm64",
        "--backend",
        "oci",
        "--sbom",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Runner C: linux/arm/v7 on Docker 20.10 (this lane's engine).
    let c = Runner::new(&origin, "c", "unix:///var/run/docker.sock", None);
    let records_c = records("c");
    let output = c.xtask(&[
        "image",
        "--push-by-digest",
        "--records",
        records_c.to_str().unwrap(),
        "--platform",
        "linux/arm/v7",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let tags = registry.get("/v2/hello/tags/list", &[]).unwrap();
    assert!(
        tags.status == 404 || tags.json()["tags"].as_array().is_none_or(Vec::is_empty),
        "the pushes left no tag: {:?}",
        tags.json()
    );
    let record = |dir: &Path, slug: &str| dir.join(format!("hello-{slug}.json"));
    let (ra, rb, rc) = (
        record(&records_a, "linux-amd64"),
        record(&records_b, "linux-arm64"),
        record(&records_c, "linux-arm-v7"),
    );
    for path in [&ra, &rb, &rc] {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(json["schema"], "multiarch.record.v1");
        assert_eq!(json["commit"], commit.as_str(), "{}", path.display());
    }

    // The fourth clone publishes, signs, and tags; with no engine reachable either.
    let d = Runner::new(&origin, "d", no_engine, None);
    let sources = [&records_a, &records_b, &records_c].map(|p| p.to_str().unwrap().to_owned());
    let publish = |runner: &Runner, extra: &[&str], sources: &[&str]| {
        let mut args = vec!["publish", "--tag", "v1", "--json"];
        args.extend(extra);
        args.extend(sources);
        runner.xtask(&args)
    };
    let all: Vec<&str> = sources.iter().map(String::as_str).collect();
    let output = publish(&d, &[], &all);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let published = report["releases"][0]["digest"].as_str().unwrap().to_owned();
    assert_eq!(tagged(&registry, "v1").as_deref(), Some(published.as_str()));
    let index = registry
        .get("/v2/hello/manifests/v1", &[("Accept", LIST_TYPES)])
        .unwrap()
        .json();
    let manifests = index["manifests"].as_array().unwrap();
    let images: Vec<&serde_json::Value> = manifests
        .iter()
        .filter(|m| m["platform"]["os"] == "linux")
        .collect();
    let platforms: Vec<String> = images
        .iter()
        .map(|m| {
            let p = &m["platform"];
            match p["variant"].as_str() {
                Some(v) => format!("{}/{v}", p["architecture"].as_str().unwrap()),
                None => p["architecture"].as_str().unwrap().to_owned(),
            }
        })
        .collect();
    assert_eq!(platforms, ["amd64", "arm64/v8", "arm/v7"], "{index:#}");
    let attested: Vec<&str> = manifests
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .map(|m| {
            m["annotations"]["vnd.docker.reference.digest"]
                .as_str()
                .unwrap()
        })
        .collect();
    for (image, what) in [
        (images[0], "BuildKit's provenance"),
        (images[1], "the tool's SBOM"),
    ] {
        assert!(
            attested.contains(&image["digest"].as_str().unwrap()),
            "{what} is kept: {index:#}"
        );
    }
    for manifest in manifests {
        let digest = manifest["digest"].as_str().unwrap();
        let child = registry
            .get(
                &format!("/v2/hello/manifests/{digest}"),
                &[("Accept", ALL_TYPES)],
            )
            .unwrap();
        assert_eq!(child.status, 200, "{digest}");
        assert_eq!(child.body.len() as u64, manifest["size"].as_u64().unwrap());
    }
    for (platform, machine) in [
        ("linux/amd64", "x86_64"),
        ("linux/arm64", "aarch64"),
        ("linux/arm/v7", "armv7l"),
    ] {
        let printed = pull_and_run(platform, &format!("{image}:v1"));
        assert!(printed.contains(machine), "{platform}: {printed}");
    }
    assert!(cosign_verifies(
        &format!("{image}@{published}"),
        &public,
        None
    ));
    for platform in &images {
        let digest = platform["digest"].as_str().unwrap();
        assert!(
            cosign_verifies(&format!("{image}@{digest}"), &public, None),
            "{platform}"
        );
    }
    // Runner B's SBOM, read back from its attestation manifest, is attested with the key
    // by the machine that publishes, as the machine that built it would have.
    let arm64 = format!("{image}@{}", images[1]["digest"].as_str().unwrap());
    assert!(
        cosign_verifies(&arm64, &public, Some("cyclonedx")),
        "{arm64}"
    );

    // The same records again: the same index, and the tag where it was.
    let output = publish(&d, &[], &all);
    assert!(output.status.success(), "{}", stderr(&output));
    let again: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(again["releases"][0]["digest"], published.as_str());
    assert!(
        stderr(&output).contains(&format!("index {published} is there already")),
        "a rerun puts no index: {}",
        stderr(&output)
    );
    // A platform built elsewhere comes as `repo@sha256:` (its platform read from the
    // registry): the same images give the same index.
    let c_record: serde_json::Value = serde_json::from_slice(&std::fs::read(&rc).unwrap()).unwrap();
    let reference = format!("{image}@{}", c_record["digest"].as_str().unwrap());
    let output = publish(&d, &[], &[all[0], all[1], reference.as_str()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let by_reference: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(by_reference["releases"][0]["digest"], published.as_str());
    // A reference that is no image of a platform this release has is refused by name.
    let a_record: serde_json::Value = serde_json::from_slice(&std::fs::read(&ra).unwrap()).unwrap();
    let wrong = format!("{image}@{}", a_record["digest"].as_str().unwrap());
    refused(
        &publish(&d, &[], &[all[0], all[1], wrong.as_str()]),
        "two records of package `hello` for linux/amd64",
        &registry,
        &published,
    );

    // Refusals, each before any tag moves.
    let missing = [all[0], all[1]];
    refused(
        &publish(&d, &[], &missing),
        "no record of package `hello` for linux/arm/v7",
        &registry,
        &published,
    );
    let twice = edited_record(&ra, "twice", |_| {});
    let twice_args = [all[0], all[1], all[2], twice.to_str().unwrap()];
    refused(
        &publish(&d, &[], &twice_args),
        "two records of package `hello` for linux/amd64",
        &registry,
        &published,
    );
    let other_commit = edited_record(&rc, "commit", |r| r["commit"] = "f".repeat(40).into());
    let commits = [all[0], all[1], other_commit.to_str().unwrap()];
    refused(
        &publish(&d, &[], &commits),
        "the records are of different commits",
        &registry,
        &published,
    );
    let absent = edited_record(&rc, "absent", |r| {
        r["digest"] = format!("sha256:{}", "0".repeat(64)).into()
    });
    let absent_args = [all[0], all[1], absent.to_str().unwrap()];
    refused(
        &publish(&d, &[], &absent_args),
        "cannot be read from the registry",
        &registry,
        &published,
    );
    let b_digest: serde_json::Value = serde_json::from_slice(&std::fs::read(&rb).unwrap()).unwrap();
    let swapped = edited_record(&rc, "swapped", |r| r["digest"] = b_digest["digest"].clone());
    let swapped_args = [all[0], all[1], swapped.to_str().unwrap()];
    refused(
        &publish(&d, &[], &swapped_args),
        "(hello for linux/arm/v7)",
        &registry,
        &published,
    );
    // An index PUT that fails: a proxy answers 500 to every manifest PUT by digest.
    let proxy = FlakyProxy::start(
        registry.port,
        "PUT /v2/hello/manifests/sha256:",
        "500 Internal Server Error",
        usize::MAX,
    );
    let proxied = format!("127.0.0.1:{}/hello", proxy.port);
    let two = [all[0], all[1]];
    let output = publish(
        &d,
        &[
            "--image",
            &proxied,
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
        ],
        &two,
    );
    refused(
        &output,
        "putting the index of package `hello`",
        &registry,
        &published,
    );
    assert!(
        stderr(&output).contains("no tag was moved"),
        "{}",
        stderr(&output)
    );
    // A signature that fails: no tag of that run exists.
    let fake = scratch_dir("e2e-runners-fake-cosign");
    std::fs::create_dir_all(&fake).unwrap();
    let script = fake.join("cosign");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in public-key) exit 0;; esac\necho 'error: signing refused' >&2\nexit 1\n",
    )
    .unwrap();
    run("chmod", &["+x", script.to_str().unwrap()]);
    let mut failing = Runner::new(&origin, "failing-sign", no_engine, None);
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    failing.set("PATH", &path);
    let output = failing.xtask(&["publish", "--tag", "failsign", all[0], all[1], all[2]]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no tag was moved"),
        "{}",
        stderr(&output)
    );
    for tag in [
        "failsign",
        "amd64-failsign",
        "arm64v8-failsign",
        "arm32v7-failsign",
    ] {
        assert_eq!(tagged(&registry, tag), None, "{tag}");
    }

    // Two publishes at once, one of all three platforms and one of two: whichever ends
    // last, the tag names a whole index of one of them, never a partial one. (From a
    // checkout that does not sign, so that only the tags race.)
    let racer = Runner::new(&origin, "race", no_engine, None);
    let manifest = racer.dir.join("Cargo.toml");
    let unsigned = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("sign = { key = \"cosign.key\", tlog = false }\n", "");
    std::fs::write(&manifest, unsigned).unwrap();
    let racing: Vec<std::process::Child> = [
        vec!["publish", "--tag", "race", all[0], all[1], all[2]],
        vec![
            "publish",
            "--tag",
            "race",
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
            all[0],
            all[1],
        ],
    ]
    .into_iter()
    .map(|args| {
        std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .current_dir(&racer.dir)
            .envs(racer.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    })
    .collect();
    let mut indexes = Vec::new();
    for child in racing {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        indexes.push(
            stdout(&output)
                .trim()
                .rsplit('@')
                .next()
                .unwrap()
                .to_owned(),
        );
    }
    let raced = tagged(&registry, "race").unwrap();
    assert!(indexes.contains(&raced), "{raced} is one of {indexes:?}");
    let raced_index = registry
        .get(
            &format!("/v2/hello/manifests/{raced}"),
            &[("Accept", LIST_TYPES)],
        )
        .unwrap()
        .json();
    let images = raced_index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["platform"]["os"] == "linux")
        .count();
    assert_eq!(
        images,
        if raced == published { 3 } else { 2 },
        "{raced_index:#}"
    );
}
