//! End to end against a real Docker engine: cross-compiled images for four platforms,
//! run under QEMU through binfmt, inspected, and rebuilt idempotently.

mod common;

use common::*;

/// The platforms the demo is built for, with what `uname -m` says under each and its ELF machine.
const PLATFORMS: &[(&str, &str, &str, Option<&str>, u16)] = &[
    ("linux/amd64", "x86_64", "amd64", None, 62),
    ("linux/arm64", "aarch64", "arm64", None, 183),
    ("linux/arm/v7", "armv7l", "arm", Some("v7"), 40),
    ("linux/riscv64", "riscv64", "riscv64", None, 243),
];

#[test]
fn builds_runs_and_inspects_every_platform() {
    if !require_docker() {
        return;
    }
    let scratch = scratch_dir("e2e-image");
    // A target dir of its own exercises a custom CARGO_TARGET_DIR and keeps tests apart.
    let target_dir = scratch.join("target");
    let target = target_dir.display().to_string();
    let mut args = vec![
        "image",
        "--image",
        "multiarch-e2e/hello",
        "--tag",
        "e2e",
        "--json",
    ];
    for (platform, ..) in PLATFORMS {
        args.extend(["--platform", platform]);
    }
    let output = xtask_with_env(&repo_root(), &args, &[("CARGO_TARGET_DIR", &target)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&output)).expect("--json prints JSON on stdout");
    let built = report["platforms"].as_array().unwrap();
    assert_eq!(built.len(), PLATFORMS.len());
    assert!(
        stderr(&output).contains("platform "),
        "summary table on stderr"
    );

    for ((platform, uname_m, arch, variant, machine), result) in PLATFORMS.iter().zip(built) {
        assert_eq!(result["platform"], *platform);
        let image = result["image"].as_str().unwrap();
        assert!(
            image.starts_with("multiarch-e2e/hello:") && image.ends_with("-e2e"),
            "{image}"
        );

        let printed = run("docker", &["run", "--rm", "--platform", platform, image]);
        assert!(
            printed.starts_with(&format!("hello 0.1.0 on {uname_m} ")),
            "{platform}: {printed}"
        );

        let inspected = run(
            "docker",
            &[
                "image",
                "inspect",
                "--format",
                "{{.Os}}/{{.Architecture}}/{{.Variant}}",
                image,
            ],
        );
        // Podman 4.3 records no variant in an image built `FROM scratch`.
        let variant = variant.filter(|_| Lane::current() != Lane::Podman);
        assert_eq!(
            inspected.trim(),
            format!("linux/{arch}/{}", variant.unwrap_or("")),
            "{platform}"
        );
        assert_eq!(
            result["id"].as_str().unwrap(),
            run(
                "docker",
                &["image", "inspect", "--format", "{{.Id}}", image]
            )
            .trim()
        );

        assert_eq!(
            elf_machine_in_image(image, platform, "/usr/local/bin/hello", &scratch),
            *machine,
            "{platform}"
        );

        // The context holds the Dockerfile and the binary, nothing of the workspace.
        let context = target_dir
            .join("multiarch/hello")
            .join(platform.replace('/', "-"));
        let mut entries: Vec<String> = std::fs::read_dir(&context)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        assert_eq!(entries, ["Dockerfile", "hello"], "{platform}");
        let bytes = result["context_bytes"].as_u64().unwrap();
        assert!(
            bytes > 100_000 && bytes < 3_000_000,
            "{platform}: {bytes} context bytes"
        );
    }

    // A rerun with nothing changed rebuilds nothing: the same image ids.
    let rerun = xtask_with_env(&repo_root(), &args, &[("CARGO_TARGET_DIR", &target)]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    let again: serde_json::Value = serde_json::from_str(&stdout(&rerun)).unwrap();
    for (first, second) in built.iter().zip(again["platforms"].as_array().unwrap()) {
        assert_eq!(first["id"], second["id"]);
    }
}

/// The `--json` report's platforms by name: (image id, reused).
fn outcomes(output: &std::process::Output) -> Vec<(String, String, bool)> {
    let report: serde_json::Value = serde_json::from_str(&stdout(output)).unwrap();
    report["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_owned(),
                p["id"].as_str().unwrap().to_owned(),
                p["reused"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Builds twice (the second time with other flags for arm64 only) on `backend`: the
/// second run rebuilds arm64 alone and reports amd64 as reused, with the same id.
fn one_platforms_flags_rebuild_that_platform_alone(backend: &str) {
    let dir = fixture_workspace(
        &format!("reuse-{backend}"),
        &format!("platforms = [\"linux/amd64\", \"linux/arm64\"]\nbackend = \"{backend}\"\n{STATIC_TARGETS}"),
    );
    let args = ["image", "--json", "--tag", "reuse"];
    let first = xtask(&dir, &args);
    assert!(first.status.success(), "{}", stderr(&first));
    let warm = xtask(&dir, &args);
    let warm = outcomes(&warm);
    assert!(
        warm.iter().all(|(_, _, reused)| *reused),
        "nothing changed, all reused: {warm:?}"
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap().replace(
        "[package.metadata.multiarch.platform.\"linux/arm64\"]\nlinker = \"rust-lld\"",
        "[package.metadata.multiarch.platform.\"linux/arm64\"]\nlinker = \"rust-lld\"\nrustflags = [\"-C\", \"opt-level=1\"]",
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let changed = xtask(&dir, &args);
    assert!(changed.status.success(), "{}", stderr(&changed));
    let changed = outcomes(&changed);
    assert_eq!(changed[0].0, "linux/amd64");
    assert!(changed[0].2, "amd64 is reused: {changed:?}");
    assert_eq!(changed[0].1, warm[0].1, "amd64's image is the same");
    assert!(!changed[1].2, "arm64 is built again: {changed:?}");
    assert_ne!(changed[1].1, warm[1].1, "arm64's image changed");
    assert!(stderr_table_says(&dir, &args, "reused"));
}

/// Whether the summary table of a rerun names `word` in its build column.
fn stderr_table_says(dir: &std::path::Path, args: &[&str], word: &str) -> bool {
    let output = xtask(dir, args);
    stderr(&output)
        .lines()
        .any(|line| line.starts_with("hello ") && line.contains(&format!(" {word} ")))
}

#[test]
fn a_flag_change_on_one_platform_rebuilds_it_alone_on_the_docker_backend() {
    if !require_docker() {
        return;
    }
    one_platforms_flags_rebuild_that_platform_alone("docker");
}

#[test]
fn a_flag_change_on_one_platform_rebuilds_it_alone_on_the_oci_backend() {
    if !require_docker() {
        return;
    }
    one_platforms_flags_rebuild_that_platform_alone("oci");
}

#[test]
fn a_tag_moved_to_another_image_is_built_again() {
    if !require_docker() {
        return;
    }
    let dir = fixture_workspace(
        "reuse-moved-tag",
        &format!("platforms = [\"linux/amd64\", \"linux/arm64\"]\ntags = [\"moved-a\", \"moved-b\"]\n{STATIC_TARGETS}"),
    );
    let first = xtask(&dir, &["image", "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    // Someone points one of amd64's tags at the arm64 image.
    run(
        "docker",
        &["tag", "hello:arm64v8-moved-b", "hello:amd64-moved-b"],
    );
    let again = xtask(&dir, &["image", "--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let outcome = outcomes(&again);
    assert!(
        !outcome[0].2 && outcome[1].2,
        "amd64 is rebuilt, arm64 reused: {outcome:?}"
    );
    let id = |tag: &str| run("docker", &["image", "inspect", "--format", "{{.Id}}", tag]);
    assert_eq!(
        id("hello:amd64-moved-a"),
        id("hello:amd64-moved-b"),
        "both tags name the image again"
    );
}
