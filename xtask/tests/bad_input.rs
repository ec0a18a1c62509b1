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
        "[linux/amd64] docker image save --output target/multiarch/saved/hello-linux-amd64.tar registry.example.com/acme/hello:amd64-1.2.3",
        "[linux/amd64] upload its blobs, then PUT its manifest into registry.example.com/acme/hello by digest (registry API)",
        "[hello] PUT the OCI index of linux/amd64, linux/arm64 and their attestations into registry.example.com/acme/hello by digest (registry API)",
        "[registry.example.com/acme/hello:arm64v8-1.2.3] PUT registry.example.com/acme/hello@<digest pushed for hello linux/arm64> under the tag (registry API)",
        "[registry.example.com/acme/hello:1.2.3] PUT the index under the tag (registry API)",
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
fn init_beside_an_own_xtask_refuses_a_foreign_xtask_multiarch_and_writes_nothing() {
    let dir = scratch_dir("init-foreign-xtask");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"app\", \"xtask\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    for package in ["app", "xtask", "xtask-multiarch"] {
        std::fs::create_dir_all(dir.join(package).join("src")).unwrap();
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
        &format!(
            "the workspace has its own xtask, and {} is not multiarch's",
            dir.join("xtask-multiarch").display()
        ),
        "move",
    );
    assert_eq!(tree(&dir), before);
}

#[test]
fn init_refuses_an_engine_path_that_is_not_a_checkout_and_writes_nothing() {
    let dir = scratch_dir("init-bad-engine");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let before = tree(&dir);
    let elsewhere = dir.join("src");
    let output = xtask(
        &repo_root(),
        &[
            "init",
            dir.to_str().unwrap(),
            "--engine-path",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert_error(
        &output,
        &format!("{} is not a checkout of multiarch", elsewhere.display()),
        "pass the root of a clone of the multiarch repository",
    );
    assert_eq!(tree(&dir), before, "not even a Cargo.lock");
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

/// A workspace of two binary packages, `api` and `worker`, with the given tables.
fn two_packages(name: &str, api: &str, worker: &str) -> std::path::PathBuf {
    let dir = scratch_dir(name);
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"api\", \"worker\"]\nresolver = \"2\"\n\n[workspace.metadata.multiarch]\nplatforms = [\"linux/amd64\"]\nvars = { base = \"scratch\" }\n",
    )
    .unwrap();
    for (package, table) in [("api", api), ("worker", worker)] {
        std::fs::create_dir_all(dir.join(package).join("src")).unwrap();
        std::fs::write(
            dir.join(package).join("Cargo.toml"),
            format!("[package]\nname = \"{package}\"\nversion = \"1.0.0\"\nedition = \"2021\"\n\n[package.metadata.multiarch]\n{table}\n"),
        )
        .unwrap();
        std::fs::write(dir.join(package).join("src/main.rs"), "fn main() {}\n").unwrap();
    }
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    std::fs::copy(
        repo_root().join("docker/Dockerfile.j2"),
        dir.join("docker/Dockerfile.j2"),
    )
    .unwrap();
    dir
}

#[test]
fn two_packages_that_would_write_one_image_stop_before_anything_compiles() {
    let same = "image = \"127.0.0.1:5000/same\"";
    let dir = two_packages("bad-same-image", same, same);
    let output = xtask(&dir, &["image", "--dry-run"]);
    assert_error(
        &output,
        "packages `api` and `worker` would both write 127.0.0.1:5000/same:amd64-1.0.0",
        "give each package its own `image`",
    );
    // The tags alone collide too (different per-platform names, one list).
    let dir = two_packages(
        "bad-same-tag",
        "image = \"127.0.0.1:5000/same\"\ntags = [\"a\"]",
        "image = \"127.0.0.1:5000/same\"\ntags = [\"a\"]\nplatforms = [\"linux/arm64\"]",
    );
    let output = xtask(&dir, &["image", "--backend", "oci", "--push"]);
    assert_error(
        &output,
        "would both write 127.0.0.1:5000/same:a",
        "`-p` one at a time",
    );
    assert!(
        !dir.join("target/release").exists()
            && !dir.join("target/x86_64-unknown-linux-musl").exists()
    );
}

#[test]
fn a_metadata_file_that_cannot_be_written_stops_before_anything_compiles() {
    let dir = fixture_workspace(
        "bad-metadata-file",
        &format!("platforms = [\"linux/amd64\"]\nbackend = \"oci\"\n{STATIC_TARGETS}"),
    );
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let output = xtask(&dir, &["image", "--metadata-file", "out"]);
    assert_error(&output, "--metadata-file out is a directory", "name a file");
    let output = xtask(&dir, &["image", "--metadata-file", "missing/meta.json"]);
    assert_error(
        &output,
        "the directory missing does not exist",
        "create the directory first",
    );
    assert!(
        !dir.join("target/x86_64-unknown-linux-musl").exists(),
        "nothing compiled"
    );

    // A run that fails after it started leaves no metadata file from an earlier run.
    std::fs::write(dir.join("out/meta.json"), "{\"stale\": true}").unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        "fn main() { this does not compile }\n",
    )
    .unwrap();
    let output = xtask(&dir, &["image", "--metadata-file", "out/meta.json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        !dir.join("out/meta.json").exists(),
        "the stale file is gone"
    );
    assert!(
        tree(&dir.join("out")).is_empty(),
        "no temporary file left: {:?}",
        tree(&dir.join("out"))
    );
}

#[test]
fn ports_outside_the_range_and_control_characters_are_refused_and_shown_escaped() {
    let dir = fixture_workspace("bad-port", "platforms = [\"linux/amd64\"]");
    let output = xtask(
        &dir,
        &["image", "--dry-run", "--image", "127.0.0.1:99999/x"],
    );
    assert_error(
        &output,
        "invalid registry port `99999`: ports are 1 to 65535",
        "",
    );
    let output = xtask(
        &dir,
        &["image", "--dry-run", "--tag", "a\n::stop-commands::x"],
    );
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("a\\n::stop-commands::x"), "{message}");
    assert!(
        message.lines().all(|l| !l.trim_start().starts_with("::")),
        "no line reads as a runner command: {message}"
    );
}

#[test]
fn a_package_without_binaries_is_named_not_a_key_that_is_not_set() {
    let dir = fixture_workspace("bad-no-bins", "platforms = [\"linux/amd64\"]");
    std::fs::remove_file(dir.join("src/main.rs")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    let output = xtask(&dir, &["image", "--dry-run"]);
    assert_error(
        &output,
        "package `hello` (",
        "add a `src/main.rs` or a `[[bin]]` target",
    );
    assert!(
        !stderr(&output).contains("workspace.metadata.multiarch.bins"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("has no binary targets to put in an image"));
}

/// Every descendant of `pid`, read from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after_name = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        if let Some(parent) = after_name
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
        {
            parents.push((child, parent));
        }
    }
    let mut found = vec![pid];
    let mut index = 0;
    while index < found.len() {
        let current = found[index];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == current)
                .map(|(c, _)| *c),
        );
        index += 1;
    }
    found.remove(0);
    found
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// `xtask image` in a fresh fixture whose build script sleeps two minutes, returned once
/// the script runs (cargo, rustc and the script all running), with its process tree. The
/// caller ends it and waits for it.
#[allow(clippy::zombie_processes)]
fn image_run_in_a_build_script(name: &str) -> (std::path::PathBuf, std::process::Child, Vec<u32>) {
    let dir = fixture_workspace(
        name,
        &format!("platforms = [\"linux/amd64\"]\nbackend = \"oci\"\n{STATIC_TARGETS}"),
    );
    std::fs::write(
        dir.join("build.rs"),
        "fn main() { std::thread::sleep(std::time::Duration::from_secs(120)); }\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("image")
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let tree = descendants(child.id());
        let script_runs = tree.iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains("build-script-build"))
        });
        if script_runs {
            return (dir, child, tree);
        }
        if started.elapsed().as_secs() >= 120 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the build script never started");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn sigterm_ends_every_child_removes_temporary_files_and_releases_the_lock() {
    let (dir, mut child, tree) = image_run_in_a_build_script("interrupt");
    assert!(tree.len() >= 2, "cargo and the build script: {tree:?}");
    run("kill", &["-TERM", &child.id().to_string()]);
    let ended = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "exit code 128 + SIGTERM");
    assert!(ended.elapsed().as_secs() < 10);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let left: Vec<u32> = tree.iter().copied().filter(|&pid| running(pid)).collect();
    assert!(left.is_empty(), "children still running: {left:?}");
    let mut stderr_text = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr_text)
        .unwrap();
    assert!(
        stderr_text.contains("interrupted: ending child processes"),
        "{stderr_text}"
    );
    let lock = std::fs::File::open(dir.join("target/multiarch/.lock")).unwrap();
    assert!(lock.try_lock().is_ok(), "the run lock was released");
    let temporary: Vec<String> = super_tree(&dir)
        .into_iter()
        .filter(|f| f.ends_with(".multiarch-tmp"))
        .collect();
    assert!(temporary.is_empty(), "{temporary:?}");
}

/// Every file below `dir`, target included.
fn super_tree(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.display().to_string());
            }
        }
    }
    files
}

#[test]
fn buildkits_scanner_on_the_oci_backend_is_refused_naming_the_backend_not_buildx() {
    let dir = fixture_workspace(
        "bad-oci-sbom",
        "platforms = [\"linux/amd64\"]\nbackend = \"oci\"",
    );
    let output = xtask(&dir, &["image", "--dry-run", "--sbom=buildkit"]);
    assert_error(
        &output,
        "sbom = \"buildkit\" is BuildKit's scanner, and backend = \"oci\" has no BuildKit",
        "write sbom = true for the tool's own SBOM",
    );
    assert!(
        !stderr(&output).contains("buildx plugin"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_argument_that_is_not_utf8_is_named_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["image", "--tag"])
        .arg(std::ffi::OsStr::from_bytes(b"v1\xff"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: argument 3 is not UTF-8: `v1\\xff`\nhelp: pass paths, names and tags as UTF-8 text\n"
    );
}

#[test]
fn sigkill_ends_the_tools_children_and_the_next_run_removes_what_it_left() {
    let (dir, mut child, tree) = image_run_in_a_build_script("sigkill");
    // The tool's own children: cargo, here.
    let direct: Vec<u32> = tree
        .iter()
        .copied()
        .filter(|&pid| parent_of(pid) == Some(child.id()))
        .collect();
    assert!(!direct.is_empty(), "{tree:?}");
    // A temporary file as a killed run leaves it.
    let stale = dir.join("target/multiarch/.report.json.4194303.0.multiarch-tmp");
    std::fs::write(&stale, "half").unwrap();
    run("kill", &["-KILL", &child.id().to_string()]);
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let left: Vec<u32> = direct.iter().copied().filter(|&pid| running(pid)).collect();
    // What the killed cargo started is its own to end; end it here for the next test.
    for pid in &tree {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(left.is_empty(), "children outlived the tool: {left:?}");

    std::fs::remove_file(dir.join("build.rs")).unwrap();
    let output = xtask(&dir, &["image"]);
    assert!(output.status.success());
    assert!(!stale.exists(), "the next run removed {}", stale.display());
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
