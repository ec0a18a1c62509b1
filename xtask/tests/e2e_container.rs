//! End to end for `build = "container"`: the demo compiles inside images of the host's
//! platform and of linux/arm64 (under QEMU), from the workspace sources alone.

mod common;

use std::time::Instant;

use common::*;

#[test]
fn container_builds_compile_in_the_image_for_host_and_foreign_platforms() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let builder = rust_builder_image(
        "linux/amd64",
        "amd64",
        "amd64",
        "x86_64-unknown-linux-gnu",
        "x86_64-unknown-linux-musl",
    );
    rust_builder_image(
        "linux/arm64",
        "arm64v8",
        "arm64",
        "aarch64-unknown-linux-gnu",
        "aarch64-unknown-linux-musl",
    );
    let repository = builder.split(':').next().unwrap();
    eprintln!(
        "builder images ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let dir = fixture_workspace(
        "e2e-container",
        &format!("build = \"container\"\nnetwork = \"none\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\ndockerfile = \"docker/Dockerfile.container.j2\"\nvars = {{ base = \"scratch\", builder = \"{repository}\" }}"),
    );
    std::fs::copy(
        repo_root().join("docker/Dockerfile.container.j2"),
        dir.join("docker/Dockerfile.container.j2"),
    )
    .unwrap();
    run(
        "cargo",
        &[
            "generate-lockfile",
            "--offline",
            "--manifest-path",
            dir.join("Cargo.toml").to_str().unwrap(),
        ],
    );
    std::fs::write(dir.join(".dockerignore"), "*.tmp\n").unwrap();
    std::fs::write(dir.join("notes.tmp"), "left out by .dockerignore").unwrap();
    std::fs::create_dir_all(dir.join("target/release")).unwrap();
    std::fs::write(dir.join("target/release/stale"), "never in a context").unwrap();

    let started = Instant::now();
    let output = xtask(&dir, &["image", "--tag", "container", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    eprintln!(
        "container builds took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        !stderr(&output).contains("] cargo build"),
        "nothing compiles on the host"
    );

    let context = dir.join("target/multiarch/hello/linux-arm64");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&context).unwrap().flatten() {
        files.push(entry.file_name().to_string_lossy().into_owned());
    }
    files.sort();
    assert_eq!(
        files,
        [".dockerignore", "Cargo.lock", "Cargo.toml", "docker", "src"],
        "only sources in the context"
    );

    for (platform, arch, uname_m) in [
        ("linux/amd64", "amd64", "x86_64"),
        ("linux/arm64", "arm64v8", "aarch64"),
    ] {
        let image = format!("hello:{arch}-container");
        let printed = run("docker", &["run", "--rm", "--platform", platform, &image]);
        assert!(
            printed.starts_with(&format!("hello 1.2.3 on {uname_m} (built for {})", uname_m)),
            "{platform}: {printed}"
        );
        let inspected = run(
            "docker",
            &["image", "inspect", "--format", "{{.Architecture}}", &image],
        );
        assert_eq!(inspected.trim(), platform.rsplit('/').next().unwrap());
    }
}
