//! Bad input end to end: each mistake exits non-zero with a one-line cause and a `help:` line.

mod common;

use common::*;

/// The whole stderr must be `error: <cause>` then `help: <fix>`, and no panic.
fn assert_error(output: &std::process::Output, cause: &str, help: &str) {
    let stderr = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one cause line and one help line: {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(cause),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("help: ") && lines[1].contains(help),
        "{stderr}"
    );
    assert!(stdout(output).is_empty(), "nothing on stdout on failure");
}

#[test]
fn unknown_platform() {
    let dir = fixture_workspace("bad-platform", "platforms = [\"linux/amd64\"]");
    let output = xtask(&dir, &["image", "--platform", "sparc64"]);
    assert_error(
        &output,
        "in --platform: unknown platform `sparc64`",
        "use one of linux/amd64 (amd64), linux/arm64 (arm64v8), linux/arm/v7 (arm32v7)",
    );
    write_fixture_manifest(&dir, "platforms = [\"amd64\", \"armv9\"]");
    let output = xtask(&dir, &["image", "--dry-run"]);
    assert_error(
        &output,
        "invalid `package.metadata.multiarch.platforms[1]` for package `hello`",
        "use one of linux/amd64",
    );
    assert!(stderr(&output).contains(&dir.join("Cargo.toml").display().to_string()));
}

#[test]
fn unknown_key() {
    let dir = fixture_workspace("bad-key", "platforms = [\"linux/amd64\"]\nimgae = \"x/y\"");
    let output = xtask(&dir, &["image", "--dry-run"]);
    let manifest = dir.join("Cargo.toml").display().to_string();
    assert_error(
        &output,
        &format!(
            "invalid `package.metadata.multiarch.imgae` in {manifest}:15: unknown field `imgae`"
        ),
        "fix or remove `package.metadata.multiarch.imgae`",
    );
}

#[test]
fn template_syntax_error_writes_nothing() {
    let dir = fixture_workspace(
        "bad-template",
        "platforms = [\"linux/amd64\", \"linux/arm64\"]\nvars = { base = \"scratch\" }",
    );
    std::fs::write(
        dir.join("docker/Dockerfile.j2"),
        "FROM {{ base }}\nCOPY {% for b in bins %}{{ b }} {% endfo %}/bin/\n",
    )
    .unwrap();
    let output = xtask(&dir, &["render"]);
    assert_error(
        &output,
        "rendering the Dockerfile for linux/amd64: template docker/Dockerfile.j2:2: syntax error",
        "fix the template",
    );
    assert!(
        !dir.join("target/multiarch").exists(),
        "a failed render leaves nothing behind"
    );

    std::fs::write(
        dir.join("docker/Dockerfile.j2"),
        "FROM {{ base }}\nCOPY hello /{{ destination }}\n",
    )
    .unwrap();
    let output = xtask(&dir, &["image", "--dry-run"]);
    assert_error(
        &output,
        "template docker/Dockerfile.j2:2: undefined variable `destination`",
        "define it in `[package.metadata.multiarch.vars]`",
    );
}

#[test]
fn missing_rust_target() {
    // No rustup target for s390x is installed on the build machines.
    let dir = fixture_workspace(
        "bad-target",
        "platforms = [\"linux/s390x\"]\nvars = { base = \"scratch\" }",
    );
    let output = xtask(&dir, &["image"]);
    assert_error(
        &output,
        "rust target `s390x-unknown-linux-gnu` for linux/s390x is not installed",
        "rustup target add s390x-unknown-linux-gnu",
    );
}

#[test]
fn missing_linker() {
    let dir = fixture_workspace("bad-linker", "platforms = [\"linux/amd64\"]\nvars = { base = \"scratch\" }\nplatform.amd64 = { linker = \"no-such-linker-gcc\" }");
    let output = xtask(&dir, &["image"]);
    assert_error(
        &output,
        "linker `no-such-linker-gcc` for linux/amd64 (x86_64-unknown-linux-musl) is not on PATH",
        "install it",
    );
}

#[test]
fn daemon_down() {
    let dir = fixture_workspace(
        "bad-daemon",
        "platforms = [\"linux/amd64\"]\nvars = { base = \"scratch\" }",
    );
    let socket = dir.join("no-daemon.sock");
    let host = format!("unix://{}", socket.display());
    let output = xtask_with_env(&dir, &["image"], &[("DOCKER_HOST", &host)]);
    assert_error(
        &output,
        &format!("the docker daemon at {host} does not answer"),
        "start the engine",
    );
}

#[test]
fn dry_run_needs_no_docker_and_runs_nothing() {
    let dir = fixture_workspace("dry-run", &format!("image = \"registry.example.com/acme/hello\"\nplatforms = [\"amd64\", \"arm64\"]\n{STATIC_TARGETS}"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = xtask_with_env(
        &dir,
        &["image", "--push", "--dry-run"],
        &[("PATH", "/nonexistent"), ("CARGO", &cargo)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let plan = stdout(&output);
    for expected in [
        "[linux/arm64] docker build --platform linux/arm64 --tag registry.example.com/acme/hello:arm64v8-1.2.3",
        "[linux/amd64] docker push registry.example.com/acme/hello:amd64-1.2.3",
        "[registry.example.com/acme/hello:1.2.3] docker manifest annotate --os linux --arch arm64 --variant v8",
        "[registry.example.com/acme/hello:1.2.3] docker manifest push --purge registry.example.com/acme/hello:1.2.3",
    ] {
        assert!(plan.contains(expected), "{expected}\n{plan}");
    }
    assert!(!dir.join("target").exists(), "a dry run writes nothing");
}

/// Every path below `dir`, sorted, to show that a failed run wrote nothing.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut paths = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            if entry.file_name() == "target" {
                continue;
            }
            paths.push(entry.path().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            }
        }
    }
    paths.sort();
    paths
}

#[test]
fn init_refuses_a_workspace_with_its_own_xtask_and_writes_nothing() {
    let dir = scratch_dir("init-foreign-xtask");
    std::fs::create_dir_all(dir.join("app/src")).unwrap();
    std::fs::create_dir_all(dir.join("xtask/src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"app\", \"xtask\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    for package in ["app", "xtask"] {
        std::fs::write(
            dir.join(package).join("Cargo.toml"),
            format!("[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        )
        .unwrap();
        std::fs::write(dir.join(package).join("src/main.rs"), "fn main() {}\n").unwrap();
    }
    let before = tree(&dir);
    let output = xtask(&repo_root(), &["init", dir.to_str().unwrap()]);
    assert_error(
        &output,
        "the workspace already has its own xtask: ",
        "rename yours",
    );
    assert!(
        stderr(&output).contains("xtask holding Cargo.toml, src"),
        "{}",
        stderr(&output)
    );
    assert_eq!(tree(&dir), before);
}

#[test]
fn init_into_a_manifest_it_cannot_extend_changes_nothing() {
    let dir = scratch_dir("init-inline-metadata");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\nmetadata = { docs = 1 }\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let before = tree(&dir);
    let original = std::fs::read(dir.join("Cargo.toml")).unwrap();
    let output = xtask(&repo_root(), &["init", dir.to_str().unwrap()]);
    assert_error(
        &output,
        "would make it invalid (TOML parse error at line",
        "add the table by hand",
    );
    assert_eq!(
        tree(&dir),
        before,
        "no xtask/, docker/ or .cargo/ left behind"
    );
    assert_eq!(std::fs::read(dir.join("Cargo.toml")).unwrap(), original);
}

#[test]
fn runs_on_one_workspace_take_turns_and_say_they_wait() {
    let dir = fixture_workspace(
        "run-lock",
        &format!("platforms = [\"linux/amd64\"]\n{STATIC_TARGETS}"),
    );
    let lock_path = dir.join("target/multiarch/.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let held = std::fs::File::create(&lock_path).unwrap();
    held.lock().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("render")
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        !dir.join("target/multiarch/hello/linux-amd64/Dockerfile")
            .exists(),
        "nothing is written while another run holds the lock"
    );
    held.unlock().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("waiting for another multiarch run on this workspace to finish"),
        "{}",
        stderr(&output)
    );
    assert!(dir
        .join("target/multiarch/hello/linux-amd64/Dockerfile")
        .is_file());
}
