//! End to end for `cargo xtask doctor` and the base-image check that `image` runs first.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn doctor(dir: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let output = xtask_with_env(dir, &["doctor"], env);
    (output, started.elapsed())
}

/// The doctor row for `check`, as its cells.
fn row(output: &std::process::Output, check: &str) -> String {
    stdout(output)
        .lines()
        .find(|l| l.starts_with(&format!("{check} ")))
        .unwrap_or_else(|| panic!("no `{check}` row in\n{}", stdout(output)))
        .to_owned()
}

#[test]
fn doctor_passes_on_a_complete_host_quickly() {
    if !require_docker() {
        return;
    }
    let dir = fixture_workspace(
        "doctor-ok",
        &format!("platforms = [\"linux/amd64\", \"linux/arm64\"]\n{STATIC_TARGETS}"),
    );
    let (output, took) = doctor(&dir, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(took < Duration::from_secs(10), "doctor took {took:?}");
    for check in [
        "docker client",
        "docker daemon",
        "docker manifest",
        "config",
        "binfmt linux/arm64",
        "rust target linux/arm64",
        "linker linux/arm64",
    ] {
        assert!(
            row(&output, check).contains(" ok "),
            "{check}: {}",
            row(&output, check)
        );
    }
    let engine = if Lane::current() == Lane::Podman {
        " ok      Podman Engine 4."
    } else {
        " ok      Docker Engine "
    };
    assert!(
        row(&output, "docker daemon").contains(engine),
        "{}",
        row(&output, "docker daemon")
    );
    assert!(!stdout(&output).contains("missing"));
}

#[test]
fn doctor_names_a_stopped_or_hung_daemon_and_does_not_hang() {
    let dir = fixture_workspace(
        "doctor-daemon",
        &format!("platforms = [\"linux/amd64\"]\n{STATIC_TARGETS}"),
    );
    let socket = dir.join("dead.sock");
    let host = format!("unix://{}", socket.display());
    let (output, took) = doctor(&dir, &[("DOCKER_HOST", &host)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(took < Duration::from_secs(10), "doctor took {took:?}");
    let daemon = row(&output, "docker daemon");
    assert!(
        daemon.contains(" missing ")
            && daemon.contains(&host)
            && daemon.contains("start the engine"),
        "{daemon}"
    );
    assert!(row(&output, "docker client").contains(" ok "));

    // A socket that accepts and never answers: the probe gives up after its timeout.
    let hung = dir.join("hung.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&hung).unwrap();
    let (output, took) = doctor(
        &dir,
        &[("DOCKER_HOST", &format!("unix://{}", hung.display()))],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(took < Duration::from_secs(12), "doctor took {took:?}");
    assert!(
        row(&output, "docker daemon").contains("no answer within 5 s"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn doctor_names_a_missing_rust_target_with_its_fix() {
    let dir = fixture_workspace(
        "doctor-target",
        "platforms = [\"linux/amd64\", \"linux/s390x\"]\nvars = { base = \"scratch\" }",
    );
    let (output, _) = doctor(&dir, &[]);
    assert_eq!(output.status.code(), Some(1));
    let target = row(&output, "rust target linux/s390x");
    assert!(
        target.contains(" missing ")
            && target.ends_with("rustup target add s390x-unknown-linux-gnu"),
        "{target}"
    );
    assert!(row(&output, "rust target linux/amd64").contains(" ok "));
}

#[test]
fn a_base_published_for_amd64_only_stops_an_arm64_build_before_it_starts() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("bases");
    let local = busybox_image("linux/amd64", "amd64", "amd64");
    let base = format!("{}/base:amd64-only", registry.host());
    run("docker", &["tag", &local, &base]);
    run("docker", &["push", &base]);
    let dir = fixture_workspace(
        "doctor-bases",
        &format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\"]\n{}",
            STATIC_TARGETS.replace("base = \"scratch\"", &format!("base = \"{base}\""))
        ),
    );

    let output = xtask(&dir, &["image"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "error: base image `{base}` is not published for linux/arm64; it has linux/amd64"
        )),
        "{message}"
    );
    assert!(
        message.contains("help: choose a base with a linux/arm64 variant"),
        "{message}"
    );
    assert!(
        !message.contains("] cargo build") && !message.contains("] docker build"),
        "nothing was built: {message}"
    );

    let (output, _) = doctor(&dir, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        row(&output, "base linux/amd64").contains(" ok "),
        "{}",
        stdout(&output)
    );
    assert!(
        row(&output, "base linux/arm64").contains(" missing "),
        "{}",
        stdout(&output)
    );

    // The amd64 platform alone builds.
    let output = xtask(&dir, &["image", "--platform", "linux/amd64"]);
    assert!(output.status.success(), "{}", stderr(&output));
}
