//! End to end for the start check: a binary that could not start in its image `FROM
//! scratch` (dynamically linked against glibc) is refused after compiling and before any
//! image is built or pushed, on both backends; linked statically, the same platform builds,
//! publishes and runs.

mod common;

use common::*;

/// amd64 on the glibc target, `rustflags` as given, on `scratch`, with `backend`.
fn glibc_workspace(name: &str, backend: &str, rustflags: &str) -> std::path::PathBuf {
    fixture_workspace(
        name,
        &format!(
            "platforms = [\"linux/amd64\"]\nbackend = \"{backend}\"\n\
             [package.metadata.multiarch.vars]\nbase = \"scratch\"\n\
             [package.metadata.multiarch.platform.\"linux/amd64\"]\n\
             target = \"x86_64-unknown-linux-gnu\"\n{rustflags}"
        ),
    )
}

#[test]
fn a_dynamic_binary_on_scratch_is_refused_before_any_push_on_both_backends() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("starts");
    for backend in ["docker", "oci"] {
        let dir = glibc_workspace(&format!("starts-dynamic-{backend}"), backend, "");
        let image = format!("{}/dynamic-{backend}", registry.host());
        let output = xtask(&dir, &["image", "--push", "--image", &image]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{backend}: {message}");
        assert!(
            message.contains("staging failed for linux/amd64: `hello` needs the dynamic loader /lib64/ld-linux-x86-64.so.2 and ")
                && message.contains("libc.so.6")
                && message.contains("(glibc 2."),
            "{backend}: {message}"
        );
        assert!(
            message.contains("its image is `FROM scratch`, which has none"),
            "{backend}: {message}"
        );
        assert!(
            message.contains("help: link it statically: `rustflags = [\"-C\", \"target-feature=+crt-static\"]` under [package.metadata.multiarch.platform.\"linux/amd64\"]"),
            "{backend}: {message}"
        );
        assert!(!message.contains("image build ..."), "{backend}: {message}");
        let tags = registry
            .get(&format!("/v2/dynamic-{backend}/tags/list"), &[])
            .unwrap();
        assert_eq!(tags.status, 404, "{backend}: a tag exists");
        // `doctor` shows the same finding for the binary the run staged.
        let doctor = xtask(&dir, &["doctor"]);
        let table = stdout(&doctor);
        let row = table
            .lines()
            .find(|l| l.starts_with("starts on scratch linux/amd64"))
            .unwrap_or_else(|| panic!("{backend}: no start row in\n{table}"));
        assert!(
            row.contains("`hello` needs the dynamic loader") && row.contains("crt-static"),
            "{backend}: {row}"
        );
    }
    // Linked statically, the same target passes the check, publishes and runs.
    let dir = glibc_workspace(
        "starts-static",
        "oci",
        "rustflags = [\"-C\", \"target-feature=+crt-static\"]\n",
    );
    let image = format!("{}/static", registry.host());
    let output = xtask(&dir, &["image", "--push", "--image", &image]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = pull_and_run("linux/amd64", &format!("{image}:1.2.3"));
    assert!(printed.contains("(built for x86_64)"), "{printed}");
}

/// A base with Debian 11's glibc 2.31 (its loader, C library and libgcc_s, no shell),
/// built in the local engine as `<registry>/bullseye:1` and pushed there.
fn bullseye_base(registry: &Registry) -> String {
    let dir = scratch_dir("starts-bullseye");
    let root = dir.join("root");
    for package in ["libc6", "libgcc-s1"] {
        let deb = std::fs::read_dir(debs_dir().join("bullseye"))
            .expect("Debian 11's packages in the test debs (run .ci/setup)")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{package}_"))
            })
            .unwrap_or_else(|| panic!("no bullseye {package} (run .ci/setup)"));
        run(
            "dpkg",
            &["-x", deb.to_str().unwrap(), root.to_str().unwrap()],
        );
    }
    let image = format!("{}/bullseye:1", registry.host());
    build_from_rootfs(&dir, &root, "", "linux/amd64", &image);
    run("docker", &["push", "--quiet", &image]);
    image
}

#[test]
fn a_binary_that_needs_a_newer_glibc_than_its_base_is_refused_and_zigs_older_one_runs() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start("starts-glibc");
    let base = bullseye_base(&registry);
    for backend in ["docker", "oci"] {
        // Linked on this host (glibc 2.36): it asks for GLIBC_2.34's `__libc_start_main`.
        let dir = glibc_workspace(&format!("starts-glibc-{backend}"), backend, "");
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            manifest.replace("base = \"scratch\"", &format!("base = \"{base}\"")),
        )
        .unwrap();
        let image = format!("{}/glibc-{backend}", registry.host());
        let output = xtask(&dir, &["image", "--push", "--image", &image]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{backend}: {message}");
        assert!(
            message.contains("`hello` needs glibc 2.34 or newer")
                && message.contains(&format!(
                    "the C library of the base image {base} for linux/amd64 provides symbols up to GLIBC_2.30"
                )),
            "{backend}: {message}"
        );
        assert!(
            message.contains("target = \"x86_64-unknown-linux-gnu.2.30\""),
            "{backend}: {message}"
        );
        let tags = registry
            .get(&format!("/v2/glibc-{backend}/tags/list"), &[])
            .unwrap();
        assert_eq!(tags.status, 404, "{backend}: a tag exists");
        let table = stdout(&xtask(&dir, &["doctor"]));
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("starts on {base} linux/amd64")))
            .unwrap_or_else(|| panic!("{backend}: no start row in\n{table}"));
        assert!(
            row.contains("needs glibc 2.34 or newer"),
            "{backend}: {row}"
        );

        // The same binary through zig against glibc 2.17 starts there.
        let zig = manifest
            .replace("base = \"scratch\"", &format!("base = \"{base}\""))
            .replace(
                "target = \"x86_64-unknown-linux-gnu\"",
                "target = \"x86_64-unknown-linux-gnu.2.17\"\ntoolchain = \"zig\"",
            );
        std::fs::write(dir.join("Cargo.toml"), zig).unwrap();
        let output = xtask(&dir, &["image", "--push", "--image", &image]);
        assert!(output.status.success(), "{backend}: {}", stderr(&output));
        let printed = pull_and_run("linux/amd64", &format!("{image}:1.2.3"));
        assert!(
            printed.contains("(built for x86_64)"),
            "{backend}: {printed}"
        );
    }
}
