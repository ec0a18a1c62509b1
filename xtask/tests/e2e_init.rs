//! End to end for `cargo xtask init` and `cargo multiarch`: a thin xtask over this checkout
//! in a fresh `cargo new` project, a vendored copy in a virtual workspace, a workspace with
//! an xtask of its own, and the installed `cargo-multiarch`; real images built and run.

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

/// One target dir for every project here keeps the engine and its dependencies compiled once.
fn shared_target() -> PathBuf {
    std::env::temp_dir().join("multiarch-test-init-target")
}

/// `cargo SUBCOMMAND ARGS` inside `dir` (`xtask` or `multiarch`, through the aliases `init`
/// added or an installed `cargo-multiarch` on `path`).
fn cargo_in(dir: &Path, subcommand: &str, args: &[&str], path: Option<&Path>) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg(subcommand)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target());
    if let Some(path) = path {
        let search = std::env::join_paths(
            std::iter::once(path.to_path_buf())
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        command.env("PATH", search);
    }
    let output = command.output().unwrap();
    eprintln!(
        "$ cargo {subcommand} {}\n{}{}",
        args.join(" "),
        stderr(&output),
        stdout(&output)
    );
    output
}

fn cargo_xtask(dir: &Path, args: &[&str]) -> Output {
    cargo_in(dir, "xtask", args, None)
}

fn init(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["init", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    xtask(&repo_root(), &args)
}

/// `init` with the engine from this checkout.
fn init_thin(dir: &Path, extra: &[&str]) -> Output {
    let checkout = repo_root();
    let mut args = vec!["--engine-path", checkout.to_str().unwrap()];
    args.extend_from_slice(extra);
    init(dir, &args)
}

/// The arm64 image of `package`, as `cargo SUBCOMMAND image` built it, prints its greeting.
fn arm64_image_runs(package: &str, greeting: &str) {
    let image = format!("{package}:arm64v8-0.1.0");
    let printed = run(
        "docker",
        &["run", "--rm", "--platform", "linux/arm64", &image],
    );
    assert_eq!(printed.trim(), greeting, "{image}");
    let inspected = run(
        "docker",
        &["image", "inspect", "--format", "{{.Architecture}}", &image],
    );
    assert_eq!(inspected.trim(), "arm64");
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
                shared_target().display()
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
fn init_into_a_cargo_new_project_writes_a_thin_xtask_that_builds_images_and_is_idempotent() {
    if !require_docker() {
        return;
    }
    let dir = scratch_dir("init-new").join("hello-app");
    cargo_new(&dir);
    // No engine flag: the engine this checkout compiled pins this checkout.
    let output = init(&dir, &[]);
    assert!(output.status.success());
    for file in [
        "xtask/Cargo.toml",
        "xtask/src/main.rs",
        "docker/Dockerfile.j2",
        ".cargo/config.toml",
    ] {
        assert!(
            stdout(&output).contains(&format!("created {}", dir.join(file).display())),
            "{file}"
        );
    }
    let rust_files: Vec<_> = snapshot(&dir.join("xtask"))
        .into_iter()
        .filter(|(path, _)| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    assert_eq!(rust_files.len(), 1, "only main.rs: {rust_files:?}");
    let main = String::from_utf8(rust_files[0].1 .0.clone()).unwrap();
    assert!(
        main.lines().count() <= 30 && main.contains("multiarch::main()"),
        "{main}"
    );
    let xtask_manifest = std::fs::read_to_string(dir.join("xtask/Cargo.toml")).unwrap();
    let engine = repo_root().canonicalize().unwrap().join("xtask/engine");
    assert!(
        xtask_manifest.contains(&format!(
            "\nmultiarch = {{ path = \"{}\" }}\n",
            engine.display()
        )),
        "{xtask_manifest}"
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[workspace]\nmembers = [\"xtask\"]")
            && manifest.contains("[package.metadata.multiarch]"),
        "{manifest}"
    );
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    assert!(
        config.starts_with(
            "[alias]\nxtask = \"run --package xtask --profile multiarch-xtask --\"\n\
             multiarch = \"run --package xtask --profile multiarch-xtask --\"\n"
        ) && config.ends_with(
            "[profile.multiarch-xtask]\ninherits = \"dev\"\ndebug = false\nincremental = false\n\n\
             # Image layers are hashed as they stream: at full speed.\n\
             [profile.multiarch-xtask.package.sha2]\nopt-level = 1\n\n\
             # Saved layers are gzipped as they stream: at speed too.\n\
             [profile.multiarch-xtask.package.miniz_oxide]\nopt-level = 2\n\n\
             [profile.multiarch-xtask.package.crc32fast]\nopt-level = 2\n"
        ),
        "{config}"
    );

    builds_and_runs(&dir, "hello-app");
    // With no `image` yet, init kept TLS (every push speaks the registry API); it
    // publishes to a plain-HTTP registry all the same.
    let registry = Registry::start("init-without-tls");
    let image = format!("{}/hello-app", registry.host());
    let pushed = cargo_xtask(
        &dir,
        &[
            "image",
            "--backend",
            "oci",
            "--push",
            "--image",
            &image,
            "--platform",
            "linux/arm64",
        ],
    );
    assert!(pushed.status.success());
    assert_eq!(
        pull_and_run("linux/arm64", &format!("{image}:0.1.0")).trim(),
        "Hello, world!"
    );
    // `cargo multiarch` is the same engine behind the other alias.
    let again = cargo_in(&dir, "multiarch", &["image", "--platform", "arm64"], None);
    assert!(again.status.success());
    assert!(stdout(&again).contains("hello-app:arm64v8-0.1.0"));

    let before = snapshot(&dir);
    let again = init_thin(&dir, &[]);
    assert!(again.status.success());
    assert_eq!(stdout(&again), "", "the second run changes nothing");
    assert!(stderr(&again).contains("nothing to do"));
    assert!(stderr(&again).contains(&format!(
        "skipped {} (the file is already there)",
        dir.join("xtask/src/main.rs").display()
    )));
    assert!(before == snapshot(&dir), "no file changed");

    // A thin xtask does not become a copy.
    let vendor = init(&dir, &["--vendor"]);
    assert_eq!(vendor.status.code(), Some(1));
    assert!(
        stderr(&vendor).contains(
            "already holds a thin xtask over the multiarch engine; `init` does not mix the two"
        ),
        "{}",
        stderr(&vendor)
    );
    assert!(before == snapshot(&dir), "no file changed");
}

#[test]
fn init_vendor_copies_the_engine_into_a_virtual_workspace_that_needs_a_package_choice() {
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

    let output = init(&dir, &["--vendor"]);
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

    let output = init(&dir, &["--vendor", "--package", "api"]);
    assert!(output.status.success());
    for file in [
        "xtask/src/lib.rs",
        "xtask/src/main.rs",
        "xtask/build.rs",
        "xtask/src/commands/init.rs",
    ] {
        assert!(
            stdout(&output).contains(&format!("created {}", dir.join(file).display())),
            "{file}"
        );
    }
    assert!(
        !dir.join("xtask/src/bin").exists(),
        "no cargo-multiarch in a vendored copy"
    );
    let xtask_manifest = std::fs::read_to_string(dir.join("xtask/Cargo.toml")).unwrap();
    assert!(
        xtask_manifest.contains("name = \"xtask\"") && !xtask_manifest.contains("multiarch = {"),
        "{xtask_manifest}"
    );
    let root = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        root.contains("members = [\"api\", \"worker\", \"xtask\"]"),
        "{root}"
    );
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    assert!(
        config.starts_with(
            "[alias]\nb = \"build\"\nxtask = \"run --package xtask --profile multiarch-xtask --\"\n"
        ),
        "{config}"
    );
    assert!(std::fs::read_to_string(dir.join("api/Cargo.toml"))
        .unwrap()
        .contains("[package.metadata.multiarch]"));
    assert!(!std::fs::read_to_string(dir.join("worker/Cargo.toml"))
        .unwrap()
        .contains("multiarch"));

    builds_and_runs(&dir, "api");

    // Without an engine flag, a vendored copy copies itself again.
    let other = scratch_dir("init-virtual-other").join("app");
    cargo_new(&other);
    let copied = cargo_xtask(&dir, &["init", other.to_str().unwrap()]);
    assert!(copied.status.success());
    assert!(
        stdout(&copied).contains(&format!(
            "created {}",
            other.join("xtask/src/lib.rs").display()
        )),
        "{}",
        stdout(&copied)
    );

    // A vendored copy does not become thin.
    let thin = init_thin(&dir, &[]);
    assert_eq!(thin.status.code(), Some(1));
    assert!(
        stderr(&thin).contains("already holds a vendored copy of the multiarch engine"),
        "{}",
        stderr(&thin)
    );
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

    let output = init_thin(&dir, &[]);
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
    // A registry release the workspace cannot resolve is refused, and nothing is left.
    let before = snapshot(&dir);
    let unpublished = init(&dir, &["--engine-version", "=0.0.1"]);
    assert_eq!(unpublished.status.code(), Some(1));
    assert!(
        stderr(&unpublished).contains("the engine does not resolve in the workspace at")
            && stderr(&unpublished).contains("help: pin the engine where it exists"),
        "{}",
        stderr(&unpublished)
    );
    assert!(before == snapshot(&dir), "no file changed");
    let first = init(&dir, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let xtask_manifest = std::fs::read_to_string(dir.join("xtask/Cargo.toml")).unwrap();
    assert!(
        xtask_manifest.contains("\nmultiarch = { path = "),
        "{xtask_manifest}"
    );
    // No build in between: the lock is as the first run's `cargo metadata` left it.
    let before = snapshot(&dir);
    assert!(before.keys().any(|p| p.ends_with("Cargo.lock")));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = init(&dir, &[]);
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

#[test]
fn init_beside_a_workspaces_own_xtask_leaves_it_untouched_and_cargo_multiarch_builds() {
    if !require_docker() {
        return;
    }
    let dir = scratch_dir("init-own-xtask").join("shop");
    cargo_new(&dir);
    cargo_new(&dir.join("xtask"));
    std::fs::write(
        dir.join("xtask/src/main.rs"),
        "fn main() {\n    println!(\"own xtask: {:?}\", std::env::args().skip(1).collect::<Vec<_>>());\n}\n",
    )
    .unwrap();
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("{manifest}\n[workspace]\nmembers = [\"xtask\"]\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::write(
        dir.join(".cargo/config.toml"),
        "[alias]\nxtask = \"run --package xtask --\"\n",
    )
    .unwrap();
    let theirs = || snapshot(&dir.join("xtask"));
    let before = theirs();

    let output = init_thin(&dir, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(before == theirs(), "the own xtask is byte-identical");
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    assert!(
        config.starts_with(
            "[alias]\nxtask = \"run --package xtask --\"\n\
             multiarch = \"run --package xtask-multiarch --profile multiarch-xtask --\"\n"
        ),
        "{config}"
    );
    let message = stderr(&output);
    let engine = repo_root().canonicalize().unwrap().join("xtask/engine");
    for line in [
        "your xtask is untouched; `cargo multiarch` runs the engine through xtask-multiarch/".to_owned(),
        format!(
            "    multiarch = {{ path = \"{}\" }}",
            engine.display()
        ),
        "    Some(\"image\" | \"doctor\" | \"render\" | \"setup\" | \"qemu\") => multiarch::main(),".to_owned(),
    ] {
        assert!(message.lines().any(|l| l == line), "{line}\n{message}");
    }

    let own = cargo_xtask(&dir, &["hello"]);
    assert!(own.status.success());
    assert_eq!(stdout(&own), "own xtask: [\"hello\"]\n");
    let built = cargo_in(
        &dir,
        "multiarch",
        &["image", "--platform", "linux/arm64"],
        None,
    );
    assert!(built.status.success());
    assert!(
        stdout(&built).contains("shop:arm64v8-0.1.0"),
        "{}",
        stdout(&built)
    );
    arm64_image_runs("shop", "Hello, world!");

    let again = init_thin(&dir, &[]);
    assert!(again.status.success());
    assert!(
        stderr(&again).contains("nothing to do"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn cargo_install_gives_cargo_multiarch_which_builds_a_plain_project() {
    if !require_docker() {
        return;
    }
    let scratch = scratch_dir("install");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = scratch.join("installed");
    let status = Command::new(cargo)
        .args(["install", "--quiet", "--debug", "--locked", "--path"])
        .arg(repo_root().join("xtask/engine"))
        .arg("--root")
        .arg(&root)
        .env("CARGO_TARGET_DIR", shared_target())
        .status()
        .unwrap();
    assert!(status.success());
    let bin = root.join("bin");
    assert!(bin.join("cargo-multiarch").is_file());

    let dir = scratch.join("plain");
    cargo_new(&dir);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("{manifest}\n[package.metadata.multiarch]\nplatforms = [\"linux/arm64\"]\n\n[package.metadata.multiarch.vars]\nbase = \"scratch\"\n\n[package.metadata.multiarch.platform.\"linux/arm64\"]\nlinker = \"rust-lld\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    std::fs::copy(
        repo_root().join("docker/Dockerfile.j2"),
        dir.join("docker/Dockerfile.j2"),
    )
    .unwrap();

    let help = cargo_in(&dir, "multiarch", &["help"], Some(&bin));
    assert!(help.status.success() && stdout(&help).contains("usage:"));
    let built = cargo_in(&dir, "multiarch", &["image"], Some(&bin));
    assert!(built.status.success());
    assert_eq!(
        stdout(&built)
            .lines()
            .filter(|l| l.contains("plain:arm64v8-0.1.0"))
            .count(),
        1,
        "{}",
        stdout(&built)
    );
    arm64_image_runs("plain", "Hello, world!");
    assert!(
        !dir.join("xtask").exists() && !dir.join(".cargo").exists(),
        "nothing added to the project"
    );
}

/// The versions of each package in the lock of `dir`.
fn locked(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let lock: toml::Table = std::fs::read_to_string(dir.join("Cargo.lock"))
        .unwrap()
        .parse()
        .unwrap();
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in lock["package"].as_array().unwrap() {
        versions
            .entry(package["name"].as_str().unwrap().to_owned())
            .or_default()
            .push(package["version"].as_str().unwrap().to_owned());
    }
    versions
}

fn cargo_ok(dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo {args:?} in {}: {}",
        dir.display(),
        stderr(&output)
    );
}

#[test]
fn init_into_a_project_locked_at_older_releases_moves_only_what_the_engine_needs() {
    let dir = scratch_dir("init-old-lock").join("paste");
    cargo_new(&dir);
    // Edition 2024 resolves MSRV-aware (resolver 3), below the engine's own rust-version.
    // ureq without its `json` feature: with it, ureq 3.0.0 needs serde_json 1.0.120.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let manifest = manifest.replace(
        "edition = \"2024\"\n",
        "edition = \"2024\"\nrust-version = \"1.85\"\n",
    )
        + "ureq = { version = \"3.0\", default-features = false, features = [\"rustls\"] }\n\
         minijinja = \"2.0\"\ntoml_edit = \"0.22.0\"\nwhich = \"7.0\"\nflate2 = \"1.0.30\"\n\
         serde_json = \"1.0.100\"\n";
    assert!(manifest.contains("rust-version"), "{manifest}");
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let pins = [
        ("ureq", "3.0.0"),
        ("minijinja", "2.0.0"),
        ("toml_edit", "0.22.0"),
        ("which", "7.0.0"),
        ("flate2", "1.0.30"),
        ("serde_json", "1.0.100"),
    ];
    cargo_ok(&dir, &["generate-lockfile", "--quiet"]);
    for (name, version) in pins {
        cargo_ok(
            &dir,
            &["update", "--quiet", "-p", name, "--precise", version],
        );
    }
    let before = locked(&dir);
    for (name, version) in pins {
        assert_eq!(before[name], [version], "{name}");
    }

    let output = init(&dir, &[]);
    assert!(output.status.success());
    let after = locked(&dir);
    let moved: Vec<&String> = before
        .iter()
        .filter(|(name, versions)| {
            versions
                .iter()
                .any(|v| !after.get(*name).is_some_and(|now| now.contains(v)))
        })
        .map(|(name, _)| name)
        .collect();
    // The engine needs ureq 3.5 and minijinja 2.18; everything else it accepts as locked.
    let report = stdout(&output);
    let line = report
        .lines()
        .find(|l| l.starts_with(&format!("updated {}", dir.join("Cargo.lock").display())))
        .unwrap_or_else(|| panic!("no Cargo.lock line: {report}"));
    for name in &moved {
        assert!(
            line.contains(&format!("{name} ")),
            "{name} is not named: {line}"
        );
    }
    for (name, version) in pins {
        let expected_to_move = matches!(name, "ureq" | "minijinja");
        assert_eq!(
            moved.contains(&&name.to_owned()),
            expected_to_move,
            "{name}"
        );
        if !expected_to_move {
            assert_eq!(after[name][0], version, "{name}");
        }
    }
    assert!(
        line.contains("minijinja 2.0.0 -> 2.") && line.contains("ureq 3.0.0 -> 3."),
        "{line}"
    );

    let dry_run = cargo_xtask(&dir, &["image", "--dry-run"]);
    assert!(dry_run.status.success());
    assert!(
        stdout(&dry_run).contains("paste:arm64v8-0.1.0"),
        "{}",
        stdout(&dry_run)
    );
    // The project's own build still builds with what the lock holds now.
    cargo_ok(&dir, &["build", "--quiet", "--package", "paste"]);
}

#[test]
fn an_engine_from_git_pins_the_same_url_and_commit_in_the_next_workspace() {
    // A repository holding the engine as this one does, reached by a file:// URL.
    let repo = scratch_dir("init-git-repo");
    let engine = repo.join("xtask/engine");
    std::fs::create_dir_all(&engine).unwrap();
    let source = repo_root().join("xtask/engine");
    run(
        "cp",
        &[
            "-r",
            source.join("Cargo.toml").to_str().unwrap(),
            source.join("build.rs").to_str().unwrap(),
            source.join("src").to_str().unwrap(),
            engine.to_str().unwrap(),
        ],
    );
    let git = |args: &[&str]| {
        let mut all = vec![
            "-C",
            repo.to_str().unwrap(),
            "-c",
            "user.name=multiarch tests",
            "-c",
            "user.email=tests@multiarch.invalid",
        ];
        all.extend_from_slice(args);
        run("git", &all).trim().to_owned()
    };
    git(&["init", "--quiet"]);
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "engine"]);
    let commit = git(&["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());

    let first = scratch_dir("init-git-first").join("first");
    cargo_new(&first);
    let output = init(&first, &["--engine-git", &url, "--rev", &commit]);
    assert!(output.status.success());
    // That engine, started by `cargo multiarch` there, pins itself in the next workspace,
    // whose `image` is on a loopback registry: no TLS is compiled in.
    let next = scratch_dir("init-git-next").join("next");
    cargo_new(&next);
    let manifest = next.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!("{text}\n[package.metadata.multiarch]\nimage = \"127.0.0.1:5000/next\"\n[package.metadata.multiarch.vars]\nbase = \"scratch\"\n"),
    )
    .unwrap();
    let output = cargo_in(&first, "multiarch", &["init", next.to_str().unwrap()], None);
    assert!(output.status.success());
    let manifest = std::fs::read_to_string(next.join("xtask/Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!(
            "\nmultiarch = {{ git = \"{url}\", rev = \"{commit}\", default-features = false }}\n"
        )),
        "{manifest}"
    );
    let dry_run = cargo_xtask(&next, &["image", "--dry-run"]);
    assert!(dry_run.status.success());
    // Without TLS, a registry over HTTPS is refused before anything compiles, naming the
    // feature.
    let https = cargo_xtask(&next, &["image", "--push", "--image", "ghcr.io/acme/next"]);
    assert_eq!(https.status.code(), Some(1));
    assert!(
        stderr(&https).contains(
            "is served over HTTPS (https://ghcr.io), and this engine was compiled without TLS"
        ) && stderr(&https).contains("help: turn on the engine's `https` feature"),
        "{}",
        stderr(&https)
    );
    assert!(
        !stderr(&https).contains("cargo build"),
        "refused before anything compiles: {}",
        stderr(&https)
    );
}

#[test]
fn a_workspace_on_the_engine_free_backend_keeps_the_engines_tls() {
    let dir = scratch_dir("init-oci").join("app");
    cargo_new(&dir);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        manifest + "\n[package.metadata.multiarch]\nbackend = \"oci\"\n",
    )
    .unwrap();
    let output = init(&dir, &[]);
    assert!(output.status.success());
    let xtask_manifest = std::fs::read_to_string(dir.join("xtask/Cargo.toml")).unwrap();
    let engine = repo_root().canonicalize().unwrap().join("xtask/engine");
    assert!(
        xtask_manifest.contains(&format!(
            "\nmultiarch = {{ path = \"{}\" }}\n",
            engine.display()
        )),
        "{xtask_manifest}"
    );
}

#[test]
fn init_writes_to_a_legacy_cargo_config_and_names_the_alias_that_runs_the_engine() {
    // Cargo reads `.cargo/config` over `config.toml`; its `xtask` alias runs another
    // package, which stays as it is, so the next step must name `cargo multiarch`.
    let dir = scratch_dir("init-legacy-config").join("app");
    cargo_new(&dir);
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::write(
        dir.join(".cargo/config"),
        "[alias]\r\nxtask = \"run --package app --\"\r\n",
    )
    .unwrap();
    let output = init(&dir, &[]);
    assert!(output.status.success());
    assert!(
        !dir.join(".cargo/config.toml").exists(),
        "cargo would not read it"
    );
    let config = std::fs::read_to_string(dir.join(".cargo/config")).unwrap();
    assert!(
        config.starts_with(
            "[alias]\r\nxtask = \"run --package app --\"\r\n\
             multiarch = \"run --package xtask --profile multiarch-xtask --\"\r\n"
        ),
        "{config:?}"
    );
    assert!(
        stderr(&output).contains("&& cargo multiarch image --dry-run"),
        "{}",
        stderr(&output)
    );
    let dry_run = cargo_in(&dir, "multiarch", &["image", "--dry-run"], None);
    assert!(dry_run.status.success());
    assert!(stdout(&dry_run).contains("app:arm64v8-0.1.0"));
}
