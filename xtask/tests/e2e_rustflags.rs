//! End to end for the user's rustflags: `RUSTFLAGS` in the environment (a common CI
//! setting) and `[build] rustflags` in cargo's config compose with a platform's own flags,
//! so the binary that is published is the one the user's `cargo build` makes, and static
//! where the platform says so. Real cross-compiled binaries, run in their images.

mod common;

use common::*;

#[test]
fn rustflags_in_the_environment_keep_the_platforms_static_linking() {
    if !require_docker() {
        return;
    }
    let dir = fixture_workspace(
        "rustflags-env",
        &format!("platforms = [\"linux/arm/v7\"]\n{STATIC_TARGETS}"),
    );
    let env = [("RUSTFLAGS", "-Dwarnings")];
    let plan = xtask_with_env(&dir, &["image", "--dry-run"], &env);
    assert!(plan.status.success());
    assert!(
        stdout(&plan).contains(
            "CARGO_ENCODED_RUSTFLAGS=$'-Dwarnings\\u001f-C\\u001ftarget-feature=+crt-static' cargo auditable build"
        ),
        "{}",
        stdout(&plan)
    );
    let output = xtask_with_env(&dir, &["image"], &env);
    assert!(output.status.success());
    // Dynamically linked, it would fail on `FROM scratch` with "no such file or directory".
    let printed = run(
        "docker",
        &[
            "run",
            "--rm",
            "--platform",
            "linux/arm/v7",
            "hello:arm32v7-1.2.3",
        ],
    );
    assert!(printed.starts_with("hello 1.2.3 on armv7l "), "{printed}");

    // Flags that contradict the platform's are refused before anything compiles.
    let refused = xtask_with_env(
        &dir,
        &["image"],
        &[("RUSTFLAGS", "-C target-feature=-crt-static")],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(
            "RUSTFLAGS turns static linking off (`-crt-static`), and linux/arm/v7 turns it on"
        ),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn build_rustflags_in_cargo_config_reach_the_engine_free_backends_binary() {
    if !require_docker() {
        return;
    }
    let dir = fixture_workspace(
        "rustflags-build",
        &format!("platforms = [\"linux/arm64\"]\nbackend = \"oci\"\n{STATIC_TARGETS}"),
    );
    std::fs::write(
        dir.join("src/main.rs"),
        "fn main() {\n    println!(\"marker: {}\", cfg!(multiarch_marker));\n}\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::write(
        dir.join(".cargo/config.toml"),
        "[build]\nrustflags = [\"--cfg\", \"multiarch_marker\"]\n",
    )
    .unwrap();
    let registry = Registry::start("rustflags-build");
    let image = format!("{}/marker", registry.host());
    let output = xtask(&dir, &["image", "--push", "--image", &image, "--tag", "1"]);
    assert!(output.status.success());
    let printed = pull_and_run("linux/arm64", &format!("{image}:1"));
    assert_eq!(printed.trim(), "marker: true");
}
