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
