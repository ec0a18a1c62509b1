//! End to end with builders on other engines: a second real engine on this machine,
//! reached the way users reach remote ones, as Docker contexts over a unix socket and over
//! TCP on loopback. Platforms build and push there; the local run publishes one tag that
//! joins every engine's digests.

mod common;

use common::*;

const LIST_TYPES: &str = "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";

/// The other engine of this lane: a 26.1 engine that is not the one the tests run on,
/// with its unix socket and its loopback TCP endpoint (.ci/start-engine).
fn other_engine() -> (String, String) {
    let lane = match Lane::current() {
        Lane::Docker26Classic => "docker26-containerd",
        _ => "docker26-classic",
    };
    let port = if lane == "docker26-classic" {
        23760
    } else {
        23761
    };
    (
        format!("unix:///tmp/multiarch-lanes/{lane}/docker.sock"),
        format!("tcp://127.0.0.1:{port}"),
    )
}

/// Creates (or recreates) a Docker context named `name` for `endpoint`.
fn context(name: &str, endpoint: &str) {
    let _ = std::process::Command::new("docker")
        .args(["context", "rm", "--force", name])
        .output();
    run(
        "docker",
        &[
            "context",
            "create",
            name,
            "--docker",
            &format!("host={endpoint}"),
        ],
    );
}

/// The tests' contexts, created once per run of this file.
fn contexts() {
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(|| {
        let (unix, tcp) = other_engine();
        context("multiarch-test-unix", &unix);
        context("multiarch-test-tcp", &tcp);
        context(
            "multiarch-test-dead",
            "unix:///tmp/multiarch-test-no-engine.sock",
        );
    });
}

/// [`STATIC_TARGETS`] with `context = "..."` added to the named platforms' tables.
fn static_targets_on(engines: &[(&str, &str)]) -> String {
    engines
        .iter()
        .fold(STATIC_TARGETS.to_owned(), |text, (platform, engine)| {
            let header = format!("[package.metadata.multiarch.platform.\"{platform}\"]\n");
            assert!(text.contains(&header), "{platform} has a table");
            text.replace(&header, &format!("{header}context = \"{engine}\"\n"))
        })
}

#[test]
fn platforms_build_on_other_engines_and_one_tag_joins_them() {
    if !require_docker() {
        return;
    }
    contexts();
    let registry = Registry::start("engines");
    let dir = fixture_workspace(
        "engines",
        &format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\"]\nimage = \"{}/hello\"\n{}",
            registry.host(),
            static_targets_on(&[
                ("linux/arm64", "multiarch-test-unix"),
                ("linux/arm/v7", "multiarch-test-tcp"),
            ])
        ),
    );
    let plan = stdout(&xtask(&dir, &["image", "--push", "--dry-run"]));
    for (platform, engine) in [
        ("linux/arm64", "multiarch-test-unix"),
        ("linux/arm/v7", "multiarch-test-tcp"),
    ] {
        for work in ["build", "image save"] {
            assert!(
                plan.lines()
                    .any(|l| l.starts_with(&format!("[{platform}] "))
                        && l.contains(&format!("docker --context {engine} "))
                        && l.contains(work)),
                "the dry run names the engine of {platform}'s {work}: {plan}"
            );
        }
    }
    assert!(
        plan.lines().any(|l| l.starts_with("[linux/amd64] ")
            && l.contains("docker ")
            && !l.contains("--context")),
        "{plan}"
    );

    let output = xtask(&dir, &["image", "--push", "--tag", "joined"]);
    assert!(output.status.success(), "{}", Lane::current().name());
    let arm64 = format!("{}/hello:arm64v8-joined", registry.host());
    // Built on the other engine, not here.
    assert!(run(
        "docker",
        &[
            "--context",
            "multiarch-test-unix",
            "image",
            "inspect",
            &arm64
        ]
    )
    .contains("arm64"));
    let here = std::process::Command::new("docker")
        .args(["image", "inspect", &arm64])
        .output()
        .unwrap();
    assert!(
        !here.status.success(),
        "arm64 was not built on the local engine"
    );

    let list = registry
        .get("/v2/hello/manifests/joined", &[("Accept", LIST_TYPES)])
        .unwrap()
        .json();
    let mut platforms: Vec<String> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["platform"]["architecture"] != "unknown")
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_owned())
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["amd64", "arm", "arm64"], "{list}");
    let tag = format!("{}/hello:joined", registry.host());
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

    let doctor = stdout(&xtask(&dir, &["doctor"]));
    for engine in ["multiarch-test-unix", "multiarch-test-tcp"] {
        let row = doctor
            .lines()
            .find(|l| l.starts_with(&format!("engine {engine} ")))
            .unwrap_or_else(|| panic!("a row for {engine}: {doctor}"));
        assert!(row.contains(" ok ") && row.contains("26.1"), "{row}");
    }
    assert!(
        doctor.contains("engine multiarch-test-tcp linux/arm/v7"),
        "{doctor}"
    );
}

#[test]
fn an_unreachable_engine_stops_the_run_before_anything_is_built() {
    if !require_docker() {
        return;
    }
    contexts();
    let registry = Registry::start("engines-dead");
    let dir = fixture_workspace(
        "engines-dead",
        &format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\"]\nimage = \"{}/hello\"\n{}",
            registry.host(),
            static_targets_on(&[("linux/arm64", "multiarch-test-dead")])
        ),
    );
    let started = std::time::Instant::now();
    let output = xtask(&dir, &["image", "--push", "--tag", "never"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("the engine of Docker context `multiarch-test-dead` (unix:///tmp/multiarch-test-no-engine.sock) does not answer")
            && message.contains("it builds linux/arm64")
            && message.contains("help: start that engine"),
        "{message}"
    );
    assert!(started.elapsed().as_secs() < 30);
    assert!(
        !dir.join("target/aarch64-unknown-linux-musl").exists(),
        "nothing was compiled"
    );
    let list = registry
        .get("/v2/hello/manifests/never", &[("Accept", LIST_TYPES)])
        .unwrap();
    assert_eq!(list.status, 404);
    let doctor = xtask(&dir, &["doctor"]);
    assert_eq!(doctor.status.code(), Some(1));
    assert!(
        stdout(&doctor)
            .lines()
            .any(|l| l.starts_with("engine multiarch-test-dead ") && l.contains("missing")),
        "{}",
        stdout(&doctor)
    );
}

/// Copies a local image to the engine of `context` (`docker save | docker load`).
fn copy_image(image: &str, context: &str) {
    let mut save = std::process::Command::new("docker")
        .args(["save", image])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let load = std::process::Command::new("docker")
        .args(["--context", context, "load"])
        .stdin(save.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(
        save.wait().unwrap().success() && load.status.success(),
        "{}",
        stderr(&load)
    );
}

const MIXED_TEMPLATE: &str = r#"{% if mode == "container" %}
FROM multiarch-test/busybox:{{ docker_arch }}
COPY src/main.rs /src/main.rs
RUN wc -l < /src/main.rs > /report && uname -m >> /report
CMD ["cat", "/report"]
{% else %}
FROM scratch
COPY hello /hello
ENTRYPOINT ["/hello"]
{% endif %}
"#;

#[test]
fn one_platform_builds_in_container_mode_on_another_engine_while_one_cross_compiles_here() {
    if !require_docker() {
        return;
    }
    contexts();
    let busybox = busybox_image("linux/amd64", "amd64", "amd64");
    copy_image(&busybox, "multiarch-test-unix");
    let dir = fixture_workspace(
        "engines-mixed",
        "platforms = [\"linux/amd64\", \"linux/arm64\"]\nnetwork = \"none\"\n\
         [package.metadata.multiarch.platform.\"linux/amd64\"]\nbuild = \"container\"\n\
         context = \"multiarch-test-unix\"\nvars = { mode = \"container\" }\n\
         [package.metadata.multiarch.platform.\"linux/arm64\"]\nlinker = \"rust-lld\"\nvars = { mode = \"cross\" }\n",
    );
    std::fs::write(dir.join("docker/Dockerfile.j2"), MIXED_TEMPLATE).unwrap();
    let output = xtask(&dir, &["image", "--tag", "mixed"]);
    assert!(output.status.success(), "{}", Lane::current().name());
    let progress = stderr(&output);
    assert!(progress.contains("[linux/arm64] cargo build"), "{progress}");
    assert!(
        !progress.contains("[linux/amd64] cargo build"),
        "{progress}"
    );
    // The container platform's context is the workspace sources; the cross one's, the binary.
    let amd64 = dir.join("target/multiarch/hello/linux-amd64");
    assert!(amd64.join("src/main.rs").is_file() && amd64.join("Cargo.toml").is_file());
    assert!(dir
        .join("target/multiarch/hello/linux-arm64/hello")
        .is_file());

    let lines = std::fs::read_to_string(dir.join("src/main.rs"))
        .unwrap()
        .lines()
        .count();
    let report = run(
        "docker",
        &[
            "--context",
            "multiarch-test-unix",
            "run",
            "--rm",
            "hello:amd64-mixed",
        ],
    );
    assert_eq!(
        report.split_whitespace().collect::<Vec<_>>(),
        [lines.to_string().as_str(), "x86_64"]
    );
    let printed = run(
        "docker",
        &[
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            "hello:arm64v8-mixed",
        ],
    );
    assert!(printed.starts_with("hello 1.2.3 on aarch64 "), "{printed}");
}

#[test]
fn an_engine_that_stops_answering_mid_run_fails_its_platform_and_publishes_nothing() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("engines-stop");
    // The other engine's TCP endpoint behind a proxy that passes the pre-flight's questions
    // and then drops every build request, as an engine that went away would.
    let (_, tcp) = other_engine();
    let port: u16 = tcp.rsplit(':').next().unwrap().parse().unwrap();
    let build_request = if Lane::current().buildkit() {
        "/grpc"
    } else {
        "/build"
    };
    let proxy = FlakyProxy::start(port, build_request, "", usize::MAX);
    context(
        "multiarch-test-stops",
        &format!("tcp://127.0.0.1:{}", proxy.port),
    );
    let dir = fixture_workspace(
        "engines-stop",
        &format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\"]\nimage = \"{}/hello\"\n{}",
            registry.host(),
            static_targets_on(&[("linux/arm64", "multiarch-test-stops")])
        ),
    );
    let output = xtask(&dir, &["image", "--push", "--tag", "halfway"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("linux/arm64] cargo build done"),
        "the pre-flight passed and the run started: {message}"
    );
    assert!(
        message.contains("image build failed for linux/arm64")
            && message.contains("docker --context multiarch-test-stops"),
        "{message}"
    );
    assert!(
        proxy.refused() >= 1,
        "the build reached the engine's endpoint"
    );
    let list = registry
        .get("/v2/hello/manifests/halfway", &[("Accept", LIST_TYPES)])
        .unwrap();
    assert_eq!(list.status, 404, "no tag over a failed platform");
    let tags = registry.get("/v2/hello/tags/list", &[]).unwrap();
    assert!(
        tags.status == 404 || !String::from_utf8_lossy(&tags.body).contains("amd64"),
        "nothing was pushed, not even the platform that built"
    );
}
