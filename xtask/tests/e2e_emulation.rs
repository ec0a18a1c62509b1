//! End to end with real QEMU through binfmt: foreign `RUN` steps on busybox base images
//! built from Debian packages, with the host's F-flag handlers, with a handler lacking F
//! (QEMU copied into the image), and `cargo xtask setup` registering a missing one.

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::*;
use multiarch::config::platform::Platform;
use multiarch::emulation::binfmt::{self, Handler, BINFMT_DIR};

/// Tests here change the host's binfmt handlers, so they take turns. (The image's command
/// is an exec-form `cat`: a handler without the P flag loses argv[0], which busybox's
/// shell needs to re-exec its applets.)
static HOST_HANDLERS: Mutex<()> = Mutex::new(());

const TEMPLATE: &str = r#"FROM multiarch-test/busybox:{{ docker_arch }}
{% if qemu %}
COPY {{ qemu }} {{ qemu_interpreter }}
{% endif %}
COPY hello /usr/local/bin/hello
RUN uname -m > /built-on && /usr/local/bin/hello > /hello-at-build
CMD ["cat", "/built-on", "/hello-at-build"]
"#;

fn workspace(name: &str, platforms: &str) -> std::path::PathBuf {
    let dir = fixture_workspace(name, &format!("platforms = {platforms}\n# RUN steps need no network, and engines here have no bridge.\nnetwork = \"none\"\n[package.metadata.multiarch.qemu]\nsource = \"path\"\n{STATIC_TARGETS}"));
    std::fs::write(dir.join("docker/Dockerfile.j2"), TEMPLATE).unwrap();
    dir
}

fn handler(platform: &str) -> Option<Handler> {
    let handlers = binfmt::read_handlers(Path::new(BINFMT_DIR));
    binfmt::handler_for(&handlers, Platform::parse(platform).unwrap()).cloned()
}

fn register(line: &str) {
    std::fs::write(Path::new(BINFMT_DIR).join("register"), line)
        .unwrap_or_else(|e| panic!("register {line}: {e} (run as root)"));
}

fn unregister(handler: &Handler) {
    std::fs::write(Path::new(BINFMT_DIR).join(&handler.name), "-1").unwrap();
}

/// Puts a handler back as it was when dropped, even when the test fails.
struct Restore(Option<Handler>, &'static str);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(current) = handler(self.1) {
            unregister(&current);
        }
        if let Some(saved) = &self.0 {
            register(&saved.registration_line());
        }
    }
}

fn context_files(dir: &Path, slug: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("target/multiarch/hello").join(slug))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn foreign_run_steps_build_and_run_with_and_without_the_fix_binary_flag() {
    if !require_docker() {
        return;
    }
    let _turn = HOST_HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
    busybox_image("linux/arm64", "arm64v8", "arm64");
    busybox_image("linux/arm/v7", "arm32v7", "armhf");
    let dir = workspace("e2e-emulation", r#"["linux/arm64", "linux/arm/v7"]"#);
    for platform in ["linux/arm64", "linux/arm/v7"] {
        assert!(
            handler(platform).is_some_and(|h| h.fix_binary()),
            "{platform}: .ci/start-engine registers Debian's F handlers"
        );
    }

    // With F handlers nothing is copied: the kernel holds QEMU open.
    let output = xtask(&dir, &["image", "--tag", "with-f"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(context_files(&dir, "linux-arm64"), ["Dockerfile", "hello"]);
    for (platform, arch, uname_m) in [
        ("linux/arm64", "arm64v8", "aarch64"),
        ("linux/arm/v7", "arm32v7", "armv7l"),
    ] {
        let printed = run(
            "docker",
            &[
                "run",
                "--rm",
                "--platform",
                platform,
                &format!("hello:{arch}-with-f"),
            ],
        );
        assert!(
            printed.starts_with(&format!("{uname_m}\nhello 1.2.3 on {uname_m} ")),
            "{platform}: {printed}"
        );
    }

    // A handler without F: `copy = "auto"` puts QEMU where the handler looks for it.
    let saved = handler("linux/arm64").unwrap();
    let _restore = Restore(Some(saved.clone()), "linux/arm64");
    unregister(&saved);
    let interpreter = "/usr/bin/qemu-aarch64-static";
    register(&binfmt::registration(
        Platform::parse("arm64").unwrap(),
        Path::new(interpreter),
        "",
    ));
    assert!(handler("linux/arm64").is_some_and(|h| !h.fix_binary()));
    let output = xtask(
        &dir,
        &["image", "--tag", "without-f", "--platform", "linux/arm64"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        context_files(&dir, "linux-arm64"),
        ["Dockerfile", "hello", "qemu-aarch64-static"]
    );
    let dockerfile =
        std::fs::read_to_string(dir.join("target/multiarch/hello/linux-arm64/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("COPY qemu-aarch64-static {interpreter}\n")),
        "{dockerfile}"
    );
    let printed = run(
        "docker",
        &[
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            "hello:arm64v8-without-f",
        ],
    );
    assert!(
        printed.starts_with("aarch64\nhello 1.2.3 on aarch64 "),
        "{printed}"
    );
}

#[test]
fn a_missing_handler_stops_the_build_and_setup_registers_it() {
    if !require_docker() {
        return;
    }
    let _turn = HOST_HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
    // ppc64le: Debian ships its QEMU, and nothing here registers a handler for it.
    let saved = handler("linux/ppc64le");
    let _restore = Restore(saved.clone(), "linux/ppc64le");
    if let Some(existing) = &saved {
        unregister(existing);
    }
    let dir = workspace("e2e-setup", r#"["linux/ppc64le"]"#);
    let output = xtask(&dir, &["image"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("error: the Dockerfile for linux/ppc64le has RUN steps, and no binfmt handler on this host runs ppc64le binaries"), "{message}");
    assert!(
        message.contains(
            "help: register QEMU for the configured platforms with `sudo cargo multiarch setup`"
        ),
        "{message}"
    );

    let output = xtask(&dir, &["setup"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let registered = handler("linux/ppc64le").expect("setup registered a handler");
    assert!(registered.fix_binary());
    assert_eq!(
        registered.interpreter,
        Path::new("/usr/bin/qemu-ppc64le-static")
    );
    assert!(stderr(&output).contains("[linux/ppc64le] registered qemu-ppc64le with F"));

    // Idempotent: a second run changes nothing; --reset registers it anew.
    let output = xtask(&dir, &["setup"]);
    assert!(
        output.status.success()
            && stderr(&output).contains("already registered: qemu-ppc64le (with F"),
        "{}",
        stderr(&output)
    );
    assert_eq!(handler("linux/ppc64le"), Some(registered));
    let output = xtask(&dir, &["setup", "--reset"]);
    assert!(
        output.status.success() && stderr(&output).contains("registered qemu-ppc64le with F"),
        "{}",
        stderr(&output)
    );

    // With the handler in place the plan goes ahead (the build then needs the Rust target).
    let output = xtask(&dir, &["image", "--dry-run"]);
    assert!(output.status.success(), "{}", stderr(&output));
}
