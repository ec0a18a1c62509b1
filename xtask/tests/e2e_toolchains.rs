//! End to end with C in the build graph: a crate whose build script compiles C with `cc`,
//! and one that bundles a C library (zstd), built with zig (`cargo zigbuild`) for musl
//! targets and Debian's cross gcc for gnu ones, then run on every platform; the C
//! compiler pre-flight; features and custom profiles reaching the images.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const SCRATCH_TEMPLATE: &str = r#"FROM scratch
{% for bin in bins %}
COPY {{ bin }} /{{ bin }}
{% endfor %}
ENTRYPOINT ["/{{ bins[0] }}"]
"#;

/// A package `name` with `dependencies`, `main.rs`, extra files, and a multiarch table.
fn workspace(
    name: &str,
    dependencies: &str,
    main: &str,
    files: &[(&str, &str)],
    multiarch: &str,
) -> PathBuf {
    let dir = scratch_dir(name);
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         {dependencies}\n\n[features]\nloud = []\n\n[workspace]\n\n\
         [profile.release]\nopt-level = \"s\"\nstrip = true\n\n\
         [profile.checked]\ninherits = \"release\"\ndebug-assertions = true\n\n\
         [package.metadata.multiarch]\n{multiarch}\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    std::fs::write(dir.join("docker/Dockerfile.j2"), SCRATCH_TEMPLATE).unwrap();
    for (path, contents) in files {
        std::fs::write(dir.join(path), contents).unwrap();
    }
    dir
}

/// The `cc` fixture: `build.rs` compiles `src/value.c`.
fn c_workspace(name: &str, multiarch: &str) -> PathBuf {
    workspace(
        name,
        C_DEPENDENCIES,
        C_MAIN,
        &[("src/value.c", C_SOURCE), ("build.rs", C_BUILD_SCRIPT)],
        multiarch,
    )
}

/// musl targets through zig; gnu targets through Debian's cross gcc, which `cc` defaults to.
const MIXED_TOOLCHAINS: &str = r#"
platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/riscv64"]
toolchain = "zig"
[package.metadata.multiarch.platform."linux/arm/v7"]
toolchain = "cargo"
target = "armv7-unknown-linux-gnueabihf"
linker = "arm-linux-gnueabihf-gcc"
rustflags = ["-C", "target-feature=+crt-static"]
[package.metadata.multiarch.platform."linux/riscv64"]
toolchain = "cargo"
target = "riscv64gc-unknown-linux-gnu"
linker = "riscv64-linux-gnu-gcc"
rustflags = ["-C", "target-feature=+crt-static"]
"#;

fn run_image(platform: &str, image: &str) -> String {
    run("docker", &["run", "--rm", "--platform", platform, image])
}

fn target_dirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("target"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn c_code_compiles_and_runs_on_four_platforms_with_zig_and_cross_gcc() {
    if !require_docker() {
        return;
    }
    let dir = c_workspace("toolchain-c", MIXED_TOOLCHAINS);
    let output = xtask(&dir, &["image"]);
    assert!(output.status.success(), "{}", Lane::current().name());
    let progress = stderr(&output);
    assert!(
        progress.contains("linux/arm64] Compiling toolchain-c v0.1.0"),
        "cargo's progress is shown with the platforms it builds: {progress}"
    );
    for (platform, docker_arch, c_arch, rust_arch) in [
        ("linux/amd64", "amd64", "x86_64", "x86_64"),
        ("linux/arm64", "arm64v8", "aarch64", "aarch64"),
        ("linux/arm/v7", "arm32v7", "arm", "arm"),
        ("linux/riscv64", "riscv64", "riscv64", "riscv64"),
    ] {
        let image = format!("toolchain-c:{docker_arch}-0.1.0");
        let printed = run_image(platform, &image);
        assert_eq!(
            printed.trim(),
            format!("c says 42 on {c_arch} (rust {rust_arch}) debug_assertions=false"),
            "{platform}"
        );
    }
}

#[test]
fn a_bundled_c_library_works_at_run_time_on_amd64_and_arm64_through_zig() {
    if !require_docker() {
        return;
    }
    let main = r#"
fn main() {
    let text = "multiarch ".repeat(200);
    let packed = zstd::encode_all(text.as_bytes(), 19).unwrap();
    let unpacked = zstd::decode_all(&packed[..]).unwrap();
    assert_eq!(unpacked, text.as_bytes());
    println!("zstd {} {} -> {} bytes on {}", zstd::zstd_safe::version_string(), text.len(), packed.len(), std::env::consts::ARCH);
}
"#;
    let dir = workspace(
        "toolchain-zstd",
        "[dependencies]\nzstd = { version = \"0.13\", default-features = false }",
        main,
        &[],
        "platforms = [\"linux/amd64\", \"linux/arm64\"]\ntoolchain = \"zig\"\n",
    );
    let output = xtask(&dir, &["image"]);
    assert!(output.status.success());
    let mut sizes = Vec::new();
    for (platform, docker_arch, arch) in [
        ("linux/amd64", "amd64", "x86_64"),
        ("linux/arm64", "arm64v8", "aarch64"),
    ] {
        let printed = run_image(platform, &format!("toolchain-zstd:{docker_arch}-0.1.0"));
        let words: Vec<&str> = printed.split_whitespace().collect();
        assert!(
            words.len() == 8 && words[0] == "zstd" && words[2] == "2000" && words[7] == arch,
            "{platform}: {printed}"
        );
        sizes.push(words[4].to_owned());
    }
    assert_eq!(sizes[0], sizes[1], "the same C library compressed alike");
}

#[test]
fn a_missing_c_compiler_stops_before_anything_compiles_and_doctor_says_so() {
    if !require_docker() {
        return;
    }
    // Cargo's toolchain for arm64 musl: cc-rs would look for `aarch64-linux-musl-gcc`.
    let dir = c_workspace("toolchain-missing", "platforms = [\"linux/arm64\"]\n");
    let started = std::time::Instant::now();
    let output = xtask(&dir, &["image"]);
    let seconds = started.elapsed().as_secs_f64();
    assert!(!output.status.success());
    let message = stderr(&output);
    let error = message
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert_eq!(
        error,
        "error: linux/arm64 (aarch64-unknown-linux-musl) compiles C in `toolchain-missing`, and its C compiler `aarch64-linux-musl-gcc` is not installed",
        "{message}"
    );
    assert!(
        message.contains("help: set `toolchain = \"zig\"`"),
        "{message}"
    );
    assert!(
        !target_dirs(&dir).iter().any(|d| d.starts_with("aarch64")),
        "nothing was compiled: {:?}",
        target_dirs(&dir)
    );
    assert!(seconds < 20.0, "the pre-flight took {seconds:.1}s");

    let doctor = xtask(&dir, &["doctor"]);
    assert_eq!(doctor.status.code(), Some(1));
    let row = stdout(&doctor)
        .lines()
        .find(|l| l.starts_with("C compiler linux/arm64"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        row.contains("missing")
            && row.contains("`aarch64-linux-musl-gcc` is not installed; C in `toolchain-missing`"),
        "{}",
        stdout(&doctor)
    );
}

#[test]
fn features_and_a_custom_profile_reach_the_image() {
    if !require_docker() {
        return;
    }
    let dir = c_workspace(
        "toolchain-features",
        "platforms = [\"linux/arm64\"]\ntoolchain = \"zig\"\nfeatures = [\"loud\"]\n",
    );
    let output = xtask(&dir, &["image", "--profile", "checked"]);
    assert!(output.status.success());
    assert!(
        dir.join("target/aarch64-unknown-linux-musl/checked/toolchain-features")
            .is_file(),
        "the binary came from the profile's directory"
    );
    let printed = run_image("linux/arm64", "toolchain-features:arm64v8-0.1.0");
    assert_eq!(
        printed.trim(),
        "C SAYS 42 on aarch64 (rust aarch64) debug_assertions=true"
    );

    let unknown = xtask(&dir, &["image", "--features", "nope"]);
    assert!(!unknown.status.success());
    let message = stderr(&unknown);
    assert!(
        message.contains("cargo does not know a requested feature")
            && message.contains("help: check `features`"),
        "{message}"
    );
}
