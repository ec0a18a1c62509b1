//! End to end for the engine-free backend on a big base: two 400 MB layers (amd64, arm64)
//! in a loopback registry. A push to another repository of that registry mounts them
//! (nothing downloaded, nothing uploaded), a push to a second registry streams them, a
//! `--load` streams them into Docker; each run's peak memory (the process tree's largest
//! RSS, by GNU time) stays under 200 MiB, and the same-registry runs stay within 3x
//! `skopeo copy --all` of the same base.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const LAYER_MB: u64 = 400;
const MEMORY_LIMIT_KIB: u64 = 200 << 10;

/// The bytes a registry keeps on disk.
fn stored_bytes(registry: &Registry) -> u64 {
    let output = run(
        "du",
        &["-sb", &registry.dir.join("data").display().to_string()],
    );
    output.split_whitespace().next().unwrap().parse().unwrap()
}

/// Pushes the big base (built by `bench/make-big-base.py`) to `registry` as `base:1`.
fn push_big_base(registry: &Registry) {
    let layout = scratch_dir("big-base-layout");
    run(
        "python3",
        &[
            &repo_root()
                .join("bench/make-big-base.py")
                .display()
                .to_string(),
            &layout.display().to_string(),
            &LAYER_MB.to_string(),
            "linux/amd64",
            "linux/arm64",
        ],
    );
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:1", layout.display()),
            &format!("docker://{}/base:1", registry.host()),
        ],
    );
    std::fs::remove_dir_all(&layout).unwrap();
}

/// What one measured run took: wall time, peak memory, and the seconds cargo compiled.
struct Measured {
    wall: Duration,
    peak_kib: u64,
    compile: Duration,
    stderr: String,
}

/// Runs the xtask under GNU time in `dir`.
fn measure(dir: &Path, args: &[&str]) -> Measured {
    let rss = dir.join("peak-rss");
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss)
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("GNU time runs (apt-get install time)");
    let wall = started.elapsed();
    let stderr = stderr(&output);
    eprintln!("$ xtask {}\n{stderr}", args.join(" "));
    assert!(output.status.success(), "xtask {args:?} failed: {stderr}");
    let peak_kib = std::fs::read_to_string(&rss)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // `cargo build done (0.4s)`: compiling is what skopeo never does.
    let compile = stderr
        .lines()
        .filter_map(|l| l.split("cargo build done (").nth(1))
        .filter_map(|rest| rest.trim_end_matches("s)").parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .sum();
    Measured {
        wall,
        peak_kib,
        compile,
        stderr,
    }
}

/// Copies the base with skopeo to another repository of `registry` (or to `to`), timed.
fn skopeo_copy(from: &Registry, to: &Registry, repository: &str) -> Duration {
    let started = Instant::now();
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}/base:1", from.host()),
            &format!("docker://{}/{repository}:1", to.host()),
        ],
    );
    started.elapsed()
}

fn check_memory(what: &str, run: &Measured) {
    assert!(
        run.peak_kib <= MEMORY_LIMIT_KIB,
        "{what}: peak memory {} MiB, more than 200 MiB\n{}",
        run.peak_kib >> 10,
        run.stderr
    );
}

/// The tool's own time (compiling excluded) against 3x skopeo's, skopeo taken as at least
/// a second: on loopback a mount-only copy takes 0.1 s, below what timing can compare.
fn check_time(what: &str, run: &Measured, skopeo: Duration) {
    let own = run.wall.saturating_sub(run.compile);
    let bound = 3 * skopeo.max(Duration::from_secs(1));
    assert!(
        own <= bound,
        "{what}: {own:?} (compiling excluded), more than 3x skopeo's {skopeo:?}"
    );
}

#[test]
fn a_big_base_is_mounted_streamed_and_loaded_in_little_memory() {
    if !require_docker() {
        return;
    }
    let one = Registry::start("big-base-one");
    let two = Registry::start("big-base-two");
    push_big_base(&one);
    let skopeo = skopeo_copy(&one, &one, "copy");
    let dir = fixture_workspace(
        "big-base",
        &format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\"]\nbackend = \"oci\"\n\
             [package.metadata.multiarch.vars]\nbase = \"{}/base:1\"\n\
             [package.metadata.multiarch.platform.\"linux/arm64\"]\nlinker = \"rust-lld\"\n",
            one.host()
        ),
    );
    let image = format!("{}/app", one.host());

    // A fresh project on the base, pushed beside it: the layers are mounted.
    let before = stored_bytes(&one);
    let first = measure(&dir, &["image", "--push", "--image", &image]);
    check_memory("first push", &first);
    check_time("first push", &first, skopeo);
    let stored = stored_bytes(&one) - before;
    assert!(
        stored < 16 << 20,
        "the registry stored {stored} bytes: base layers were copied, not mounted"
    );
    let store = dir.join("target/multiarch/blobs/sha256");
    assert!(
        std::fs::read_dir(&store).map_or(true, |mut d| d.next().is_none()),
        "a push that can mount downloaded base layers into {}",
        store.display()
    );

    // A rebuild after a source change: the same.
    let main = dir.join("src/main.rs");
    let source = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        source.replace("(built for {})", "(built for {}, v2)"),
    )
    .unwrap();
    let rebuild = measure(&dir, &["image", "--push", "--image", &image]);
    check_memory("rebuild", &rebuild);
    check_time("rebuild", &rebuild, skopeo);
    let printed = pull_and_run("linux/arm64", &format!("{image}:1.2.3"));
    assert!(
        printed.contains("(built for aarch64, v2)"),
        "the rebuilt image runs: {printed}"
    );
    run("docker", &["image", "rm", &format!("{image}:1.2.3")]);

    // Another registry: the layers are copied, streamed through the store.
    let copied = measure(
        &dir,
        &["image", "--push", "--image", &format!("{}/app", two.host())],
    );
    check_memory("push to a second registry", &copied);
    let received = stored_bytes(&two);
    assert!(
        received > 2 * LAYER_MB * 1000 * 1000,
        "the second registry holds {received} bytes: the base layers were not copied"
    );
    let printed = pull_and_run("linux/amd64", &format!("{}/app:1.2.3", two.host()));
    assert!(printed.contains("(built for x86_64, v2)"), "{printed}");
    run(
        "docker",
        &["image", "rm", &format!("{}/app:1.2.3", two.host())],
    );

    // `--load`: the image (with its 400 MB layer) into Docker, and it runs.
    let loaded = measure(&dir, &["image", "--load", "--platform", "linux/amd64"]);
    check_memory("--load", &loaded);
    let printed = run(
        "docker",
        &[
            "run",
            "--rm",
            "--platform",
            "linux/amd64",
            "hello:amd64-1.2.3",
        ],
    );
    assert!(printed.contains("(built for x86_64, v2)"), "{printed}");
    run("docker", &["image", "rm", "hello:amd64-1.2.3"]);
}
