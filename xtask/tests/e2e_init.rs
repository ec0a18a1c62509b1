//! End to end for `cargo xtask init`: the xtask embedded into a fresh `cargo new` project
//! and into a virtual workspace, then real images built and run there.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// Every file under `dir` (without `target/`) with its contents and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                if entry.file_name() != "target" {
                    pending.push(path);
                }
            } else {
                let modified = entry.metadata().unwrap().modified().unwrap();
                files.insert(path.clone(), (std::fs::read(&path).unwrap(), modified));
            }
        }
    }
    files
}

/// `cargo xtask ARGS` inside `dir`, through the alias `init` added; one shared target dir
/// keeps the embedded xtask's dependencies compiled once.
fn cargo_xtask(dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::env::temp_dir().join("multiarch-test-init-target");
    let output = Command::new(cargo)
        .arg("xtask")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    eprintln!(
        "$ cargo xtask {}\n{}{}",
        args.join(" "),
        stderr(&output),
        stdout(&output)
    );
    output
}

fn builds_and_runs(dir: &Path, package: &str) {
    let dry_run = cargo_xtask(dir, &["image", "--dry-run"]);
    assert!(dry_run.status.success());
    let plan = stdout(&dry_run);
    // BuildKit lanes build both platforms in one bake; the legacy builder one by one.
    let (prefix, expected) = if Lane::current().buildkit() {
        (
            "[linux/amd64, linux/arm64] ",
            format!(
                "docker buildx bake --load --file {}/multiarch/{package}/bake.json",
                std::env::temp_dir()
                    .join("multiarch-test-init-target")
                    .display()
            ),
        )
    } else {
        (
            "[linux/arm64] ",
            format!("docker build --platform linux/arm64 --tag {package}:arm64v8-0.1.0"),
        )
    };
    assert!(
        plan.lines()
            .any(|l| l.starts_with(prefix) && l.contains(&expected)),
        "{plan}"
    );
    let output = cargo_xtask(
        dir,
        &[
            "image",
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
        ],
    );
    assert!(output.status.success());
    for (platform, arch) in [("linux/amd64", "amd64"), ("linux/arm64", "arm64v8")] {
        let image = format!("{package}:{arch}-0.1.0");
        assert!(stdout(&output).contains(&image), "{image}");
        let printed = run("docker", &["run", "--rm", "--platform", platform, &image]);
        assert_eq!(printed.trim(), "Hello, world!", "{platform}");
        let inspected = run(
            "docker",
            &["image", "inspect", "--format", "{{.Architecture}}", &image],
        );
        assert_eq!(inspected.trim(), platform.trim_start_matches("linux/"));
    }
}

fn cargo_new(dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["new", "--quiet", "--vcs", "none"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn init_into_a_cargo_new_project_builds_images_and_is_idempotent() {
    if !require_docker() {
        return;
    }
    let dir = scratch_dir("init-new").join("hello-app");
    cargo_new(&dir);
    let output = xtask(&repo_root(), &["init", dir.to_str().unwrap()]);
    assert!(output.status.success());
    for file in [
        "xtask/Cargo.toml",
        "xtask/src/main.rs",
        "xtask/src/lib.rs",
        "docker/Dockerfile.j2",
        ".cargo/config.toml",
    ] {
        assert!(
            stdout(&output).contains(&format!("created {}", dir.join(file).display())),
            "{file}"
        );
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[workspace]\nmembers = [\"xtask\"]")
            && manifest.contains("[package.metadata.multiarch]"),
        "{manifest}"
    );

    builds_and_runs(&dir, "hello-app");

    let before = snapshot(&dir);
    let again = xtask(&repo_root(), &["init", dir.to_str().unwrap()]);
    assert!(again.status.success());
    assert_eq!(stdout(&again), "", "the second run changes nothing");
    assert!(stderr(&again).contains("nothing to do"));
    assert!(stderr(&again).contains(&format!(
        "skipped {} (the file is already there)",
        dir.join("xtask/src/main.rs").display()
    )));
    assert!(before == snapshot(&dir), "no file changed");
}

#[test]
fn init_into_a_virtual_workspace_needs_a_package_choice() {
    if !require_docker() {
        return;
    }
    let dir = scratch_dir("init-virtual");
    // The members first, so `cargo new` finds no half-made workspace around them.
    cargo_new(&dir.join("api"));
    cargo_new(&dir.join("worker"));
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"api\", \"worker\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::write(dir.join(".cargo/config.toml"), "[alias]\nb = \"build\"\n").unwrap();

    let output = xtask(&repo_root(), &["init", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("several packages of")
            && message.contains("have binaries: `api`, `worker`"),
        "{message}"
    );
    assert!(
        message.contains("help: pick the one that ships as an image with `--package NAME`"),
        "{message}"
    );
    assert!(!dir.join("xtask").exists(), "a refused init writes nothing");

    let output = xtask(
        &repo_root(),
        &["init", dir.to_str().unwrap(), "--package", "api"],
    );
    assert!(output.status.success());
    let root = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        root.contains("members = [\"api\", \"worker\", \"xtask\"]"),
        "{root}"
    );
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    assert_eq!(
        config,
        "[alias]\nb = \"build\"\nxtask = \"run --package xtask --\"\n"
    );
    assert!(std::fs::read_to_string(dir.join("api/Cargo.toml"))
        .unwrap()
        .contains("[package.metadata.multiarch]"));
    assert!(!std::fs::read_to_string(dir.join("worker/Cargo.toml"))
        .unwrap()
        .contains("multiarch"));

    builds_and_runs(&dir, "api");
}

#[test]
fn init_refuses_a_directory_that_is_not_a_cargo_project() {
    let dir = scratch_dir("init-not-cargo");
    let output = xtask(&repo_root(), &["init", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with(&format!(
            "error: {} is not a Cargo project (no Cargo.toml)\nhelp: ",
            dir.display()
        )),
        "{message}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn init_into_a_package_that_compiles_c_chooses_zig_and_the_first_image_works() {
    if !require_docker() {
        return;
    }
    let dir = scratch_dir("init-c").join("c-app");
    cargo_new(&dir);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("{}\n{C_DEPENDENCIES}\n", manifest.trim_end()),
    )
    .unwrap();
    std::fs::write(dir.join("build.rs"), C_BUILD_SCRIPT).unwrap();
    std::fs::write(dir.join("src/value.c"), C_SOURCE).unwrap();
    std::fs::write(dir.join("src/main.rs"), C_MAIN).unwrap();

    let output = xtask(&repo_root(), &["init", dir.to_str().unwrap()]);
    assert!(output.status.success());
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("\ntoolchain = \"zig\"\n") && !manifest.contains("linker ="),
        "{manifest}"
    );
    let output = cargo_xtask(
        &dir,
        &[
            "image",
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
        ],
    );
    assert!(output.status.success());
    for (platform, arch, c_arch) in [
        ("linux/amd64", "amd64", "x86_64"),
        ("linux/arm64", "arm64v8", "aarch64"),
    ] {
        let image = format!("c-app:{arch}-0.1.0");
        let printed = run("docker", &["run", "--rm", "--platform", platform, &image]);
        assert_eq!(
            printed.trim(),
            format!("c says 42 on {c_arch} (rust {c_arch}) debug_assertions=false"),
            "{platform}"
        );
    }
}

#[test]
fn a_second_init_with_nothing_to_do_changes_no_file_not_even_the_lock() {
    let dir = scratch_dir("init-twice").join("app");
    cargo_new(&dir);
    let first = xtask(&repo_root(), &["init", dir.to_str().unwrap()]);
    assert!(first.status.success(), "{}", stderr(&first));
    // No build in between: the lock is as the first run's `cargo metadata` left it.
    let before = snapshot(&dir);
    assert!(before.keys().any(|p| p.ends_with("Cargo.lock")));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = xtask(&repo_root(), &["init", dir.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("nothing to do"));
    let after = snapshot(&dir);
    let changed: Vec<_> = after
        .iter()
        .filter(|(path, state)| before.get(*path) != Some(state))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        changed.is_empty() && before.len() == after.len(),
        "changed: {changed:?}"
    );
}
