//! Helpers for the end-to-end tests: fixture workspaces, the xtask binary, a real registry.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository's own workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh directory under the system temp dir, removed first if a previous run left it.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("multiarch-test-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A workspace with the demo app and the given `[package.metadata.multiarch]` body.
pub fn fixture_workspace(name: &str, multiarch: &str) -> PathBuf {
    let dir = scratch_dir(name);
    write_fixture_manifest(&dir, multiarch);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    std::fs::copy(repo_root().join("src/main.rs"), dir.join("src/main.rs")).unwrap();
    std::fs::copy(
        repo_root().join("docker/Dockerfile.j2"),
        dir.join("docker/Dockerfile.j2"),
    )
    .unwrap();
    dir
}

pub fn write_fixture_manifest(dir: &Path, multiarch: &str) {
    let manifest = format!(
        "[package]\nname = \"hello\"\nversion = \"1.2.3\"\nedition = \"2021\"\npublish = false\n\n\
         [workspace]\n\n[profile.release]\nopt-level = \"s\"\nstrip = true\n\n\
         [package.metadata.multiarch]\n{multiarch}\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
}

/// Platform tables that give static binaries on this machine.
pub const STATIC_TARGETS: &str = r#"
[package.metadata.multiarch.vars]
base = "scratch"
[package.metadata.multiarch.platform."linux/arm64"]
linker = "rust-lld"
[package.metadata.multiarch.platform."linux/arm/v7"]
target = "armv7-unknown-linux-gnueabihf"
linker = "arm-linux-gnueabihf-gcc"
rustflags = ["-C", "target-feature=+crt-static"]
[package.metadata.multiarch.platform."linux/riscv64"]
target = "riscv64gc-unknown-linux-gnu"
linker = "riscv64-linux-gnu-gcc"
rustflags = ["-C", "target-feature=+crt-static"]
"#;

/// A C file for packages whose build script compiles C with `cc`.
pub const C_SOURCE: &str = r#"
int c_value(void) { return 6 * 7; }

const char *c_arch(void) {
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#elif defined(__arm__)
    return "arm";
#elif defined(__riscv)
    return "riscv64";
#else
    return "unknown";
#endif
}
"#;

/// A `main.rs` printing a value computed in C, the arch C was compiled for and Rust's.
pub const C_MAIN: &str = r#"
use std::ffi::CStr;
use std::os::raw::c_char;

unsafe extern "C" {
    fn c_value() -> i32;
    fn c_arch() -> *const c_char;
}

fn main() {
    let (value, arch) = unsafe { (c_value(), CStr::from_ptr(c_arch())) };
    let greeting = if cfg!(feature = "loud") { "C SAYS" } else { "c says" };
    println!(
        "{greeting} {value} on {} (rust {}) debug_assertions={}",
        arch.to_str().unwrap(),
        std::env::consts::ARCH,
        cfg!(debug_assertions)
    );
}
"#;

pub const C_DEPENDENCIES: &str = "[build-dependencies]\ncc = \"1\"";

pub const C_BUILD_SCRIPT: &str =
    "fn main() {\n    cc::Build::new().file(\"src/value.c\").compile(\"value\");\n}\n";

/// Runs the xtask binary in `dir`.
pub fn xtask(dir: &Path, args: &[&str]) -> Output {
    xtask_with_env(dir, args, &[])
}

pub fn xtask_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(args).current_dir(dir);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("xtask starts");
    eprintln!(
        "$ xtask {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a program and returns its stdout, failing the test when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// Runs `reference` for `platform` as pulled from its registry now, and returns what it
/// printed: the proof that a published tag serves that platform.
pub fn pull_and_run(platform: &str, reference: &str) -> String {
    run(
        "docker",
        &[
            "run",
            "--rm",
            "--pull",
            "always",
            "--platform",
            platform,
            reference,
        ],
    )
}

/// End-to-end tests need a real engine; they never skip unless told to.
pub fn require_docker() -> bool {
    if std::env::var_os("MULTIARCH_SKIP_E2E").is_some() {
        eprintln!("SKIPPED: MULTIARCH_SKIP_E2E is set, so this end-to-end test does not run");
        return false;
    }
    name_the_lane_in_failures();
    let answered = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(answered, "end-to-end tests need a running Docker engine (.ci/start-engine starts one); set MULTIARCH_SKIP_E2E=1 to skip them");
    true
}

/// The engine lane the tests run on (`MULTIARCH_LANE`, set by `.ci/run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Docker 20.10, classic store, legacy builder.
    Docker20,
    /// Docker 26.1 with buildx, classic store.
    Docker26Classic,
    /// Docker 26.1 with buildx and the containerd image store.
    Docker26Containerd,
    /// Podman 4.3 through its Docker-compatible service, driven by the docker CLI.
    Podman,
}

impl Lane {
    pub fn current() -> Lane {
        match std::env::var("MULTIARCH_LANE").as_deref() {
            Ok("docker26-classic") => Lane::Docker26Classic,
            Ok("docker26-containerd") => Lane::Docker26Containerd,
            Ok("podman") => Lane::Podman,
            _ => Lane::Docker20,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Lane::Docker20 => "docker20",
            Lane::Docker26Classic => "docker26-classic",
            Lane::Docker26Containerd => "docker26-containerd",
            Lane::Podman => "podman",
        }
    }

    /// Whether builds go through BuildKit (buildx) on this lane.
    pub fn buildkit(self) -> bool {
        !matches!(self, Lane::Docker20 | Lane::Podman)
    }
}

/// Prefixes every panic message of this test process with the engine lane.
fn name_the_lane_in_failures() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            eprintln!("[lane {}] test failed:", Lane::current().name());
            default(info);
        }));
    });
}

/// A real `docker-registry` on a free loopback port, stopped when dropped.
pub struct Registry {
    pub port: u16,
    child: Child,
    pub dir: PathBuf,
}

impl Registry {
    pub fn start(name: &str) -> Registry {
        Registry::start_with(name, "")
    }

    /// A registry with more configuration (an `auth:` section) appended.
    pub fn start_with(name: &str, extra: &str) -> Registry {
        let dir = scratch_dir(&format!("registry-{name}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: warn }}\nstorage: {{ filesystem: {{ rootdirectory: {} }}, delete: {{ enabled: true }} }}\nhttp: {{ addr: 127.0.0.1:{port} }}\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("docker-registry starts (apt-get install docker-registry)");
        let registry = Registry { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        // A registry that asks for a login answers 401 once it is up.
        while registry
            .get("/v2/", &[])
            .map_or(true, |r| r.status != 200 && r.status != 401)
        {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A plain HTTP/1.1 request to the registry API.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<HttpResponse> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.host()
        );
        for (key, value) in headers {
            request.push_str(&format!("{key}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("HTTP header end");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let body = raw[split + 4..].to_vec();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> std::io::Result<HttpResponse> {
        self.request("GET", path, headers)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// The ELF `e_machine` of a file inside an image, read with `docker create` and `docker cp`.
pub fn elf_machine_in_image(image: &str, platform: &str, path: &str, scratch: &Path) -> u16 {
    let container = run("docker", &["create", "--platform", platform, image])
        .trim()
        .to_owned();
    let copy = scratch.join(format!("elf-{}", platform.replace('/', "-")));
    let copied = Command::new("docker")
        .args(["cp", &format!("{container}:{path}")])
        .arg(&copy)
        .status();
    run("docker", &["rm", &container]);
    assert!(copied.unwrap().success(), "docker cp from {image}");
    let bytes = std::fs::read(&copy).unwrap();
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{path} in {image} is not an ELF file"
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// A tiny HTTP/1.1 file server on loopback that counts the requests it answers.
pub struct FileServer {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    /// Serves `files` (URL path to body); anything else is a 404.
    pub fn start(files: Vec<(String, Vec<u8>)>) -> FileServer {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopping) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let response = match files.iter().find(|(p, _)| p == path) {
                    Some((_, body)) => [
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes(),
                        body.clone(),
                    ]
                    .concat(),
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&response);
            }
        });
        FileServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where `.ci/setup` downloads Debian's busybox-static packages for each architecture.
pub fn debs_dir() -> PathBuf {
    std::env::var_os("MULTIARCH_TEST_DEBS").map_or_else(
        || PathBuf::from("/var/cache/multiarch-test/debs"),
        PathBuf::from,
    )
}

/// The `.deb` of a Debian package for an architecture, from [`debs_dir`].
pub fn deb(package: &str, debian_arch: &str) -> PathBuf {
    let entries = std::fs::read_dir(debs_dir())
        .unwrap_or_else(|e| panic!("{}: {e}; run .ci/setup", debs_dir().display()));
    entries
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{package}_"))
                && name.ends_with(&format!("_{debian_arch}.deb"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no {package}_*_{debian_arch}.deb in {}; run .ci/setup",
                debs_dir().display()
            )
        })
}

/// Builds `image` for `platform` from the directory tree `root`, through `dir/rootfs.tar`.
pub fn build_from_rootfs(dir: &Path, root: &Path, extra: &str, platform: &str, image: &str) {
    let rootfs = dir.join("rootfs.tar");
    run(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "-cf",
            rootfs.to_str().unwrap(),
            ".",
        ],
    );
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM scratch\nADD rootfs.tar /\n{extra}CMD [\"sh\"]\n"),
    )
    .unwrap();
    run(
        "docker",
        &[
            "build",
            "--quiet",
            "--platform",
            platform,
            "--tag",
            image,
            dir.to_str().unwrap(),
        ],
    );
}

/// Builds `multiarch-test/busybox:<docker_arch>`, a real base image for `platform` made
/// from Debian's busybox-static package, and returns its name.
pub fn busybox_image(platform: &str, docker_arch: &str, debian_arch: &str) -> String {
    let image = format!("multiarch-test/busybox:{docker_arch}");
    let deb = deb("busybox-static", debian_arch);
    let dir = scratch_dir(&format!("busybox-{docker_arch}"));
    run(
        "dpkg",
        &[
            "-x",
            deb.to_str().unwrap(),
            dir.join("deb").to_str().unwrap(),
        ],
    );
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::copy(dir.join("deb/bin/busybox"), root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "echo", "cat", "uname", "ls", "mkdir", "cp", "rm", "env", "true",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    build_from_rootfs(&dir, &root, "", platform, &image);
    image
}

/// The sysroot of the toolchain running the tests, and its version (`1.95.0`).
pub fn host_toolchain() -> (PathBuf, String) {
    let sysroot = PathBuf::from(run("rustc", &["--print", "sysroot"]).trim());
    let version = run("rustc", &["--version"])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    (sysroot, version)
}

/// Builds `multiarch-test/rust-builder-<version>:<docker_arch>`: busybox, glibc and a Rust
/// toolchain for `platform` (rustc, cargo, rust-lld and the musl std), assembled from
/// Debian packages and rustup's toolchain directories. Cargo there links musl with rust-lld
/// and never touches the network.
pub fn rust_builder_image(
    platform: &str,
    docker_arch: &str,
    debian_arch: &str,
    rust_host: &str,
    musl_target: &str,
) -> String {
    let (sysroot, version) = host_toolchain();
    let image = format!("multiarch-test/rust-builder-{version}:{docker_arch}");
    if Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return image;
    }
    let toolchain = sysroot
        .parent()
        .unwrap()
        .join(format!("{version}-{rust_host}"));
    assert!(
        toolchain.join("bin/rustc").is_file(),
        "{} is missing; .ci/setup installs it with rustup --force-non-host",
        toolchain.display()
    );
    let dir = scratch_dir(&format!("rust-builder-{docker_arch}"));
    let root = dir.join("root");
    for package in ["busybox-static", "libc6", "libgcc-s1", "zlib1g"] {
        let deb = deb(package, debian_arch);
        run(
            "dpkg",
            &["-x", deb.to_str().unwrap(), root.to_str().unwrap()],
        );
    }
    for applet in [
        "sh", "echo", "cat", "uname", "ls", "mkdir", "cp", "rm", "env",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let rust = root.join("opt/rust");
    std::fs::create_dir_all(rust.join("bin")).unwrap();
    std::fs::create_dir_all(rust.join("lib/rustlib").join(rust_host)).unwrap();
    for tool in ["rustc", "cargo"] {
        run(
            "cp",
            &[
                "-a",
                toolchain.join("bin").join(tool).to_str().unwrap(),
                rust.join("bin").to_str().unwrap(),
            ],
        );
    }
    for entry in std::fs::read_dir(toolchain.join("lib")).unwrap().flatten() {
        if entry.file_name().to_string_lossy().contains(".so") {
            run(
                "cp",
                &[
                    "-a",
                    entry.path().to_str().unwrap(),
                    rust.join("lib").to_str().unwrap(),
                ],
            );
        }
    }
    run(
        "cp",
        &[
            "-a",
            toolchain
                .join("lib/rustlib")
                .join(rust_host)
                .join("bin")
                .to_str()
                .unwrap(),
            rust.join("lib/rustlib").join(rust_host).to_str().unwrap(),
        ],
    );
    // A target's std does not depend on the host it is used from: the host toolchain's copy serves.
    run(
        "cp",
        &[
            "-a",
            sysroot
                .join("lib/rustlib")
                .join(musl_target)
                .to_str()
                .unwrap(),
            rust.join("lib/rustlib").to_str().unwrap(),
        ],
    );
    std::fs::create_dir_all(root.join("cargo")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(
        root.join("cargo/config.toml"),
        format!("[target.{musl_target}]\nlinker = \"rust-lld\"\n\n[net]\noffline = true\n"),
    )
    .unwrap();
    build_from_rootfs(
        &dir,
        &root,
        "ENV PATH=/opt/rust/bin:/bin CARGO_HOME=/cargo\n",
        platform,
        &image,
    );
    std::fs::remove_dir_all(&dir).unwrap();
    image
}

/// A loopback proxy in front of a registry that answers the first `failures` requests whose
/// request line contains `pattern` with `status` (such as `503 Service Unavailable`), and
/// forwards the rest.
pub struct FlakyProxy {
    pub port: u16,
    pub refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyProxy {
    pub fn start(
        upstream: u16,
        pattern: &'static str,
        status: &'static str,
        failures: usize,
    ) -> FlakyProxy {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let refused = Arc::new(AtomicUsize::new(0));
        let counter = refused.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut client = client;
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    // A TLS hello (Docker tries HTTPS first) is passed through untouched.
                    while !head.ends_with(b"\r\n\r\n")
                        && head.first() != Some(&0x16)
                        && client.read(&mut byte).is_ok_and(|n| n == 1)
                    {
                        head.push(byte[0]);
                    }
                    let request_line = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    if request_line.contains(pattern)
                        && counter.fetch_add(1, Ordering::SeqCst) < failures
                    {
                        // No status: the connection just ends, as when the server stops.
                        if status.is_empty() {
                            return;
                        }
                        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                        let body = if status.starts_with("401") { body } else { "" };
                        let response = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                        let _ = client.write_all(response.as_bytes());
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    // One request per connection, so that every request passes the check
                    // above: clients such as imagetools otherwise reuse the connection.
                    let head = if head.ends_with(b"\r\n\r\n") {
                        let text = String::from_utf8_lossy(&head).into_owned();
                        let mut lines: Vec<&str> = text
                            .trim_end()
                            .lines()
                            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                            .collect();
                        lines.push("Connection: close");
                        format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
                    } else {
                        head
                    };
                    let _ = server.write_all(&head);
                    let (mut client_reader, mut server_writer) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let upload = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut client_reader, &mut server_writer);
                        let _ = server_writer.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                    let _ = upload.join();
                });
            }
        });
        FlakyProxy { port, refused }
    }

    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// URL-safe base64 without padding (JWT), or standard base64 with padding.
pub fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |w, (i, &b)| w | (u32::from(b) << (16 - 8 * i)));
        for index in 0..=chunk.len() {
            text.push(alphabet[(word >> (18 - 6 * index) & 63) as usize] as char);
        }
        if !url_safe {
            text.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    text
}

/// A `docker-registry` with htpasswd Basic auth; `tester` / `s3cret` is the one account.
pub fn registry_with_basic_auth(name: &str) -> Registry {
    let dir = scratch_dir(&format!("htpasswd-{name}"));
    let hash = run(
        "python3",
        &[
            "-W",
            "ignore",
            "-c",
            "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))",
        ],
    );
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, format!("tester:{}\n", hash.trim())).unwrap();
    Registry::start_with(
        name,
        &format!(
            "auth: {{ htpasswd: {{ realm: multiarch-test, path: {} }} }}\n",
            htpasswd.display()
        ),
    )
}

/// A `docker-registry` that takes Bearer tokens from `tokens`.
pub fn registry_with_tokens(name: &str, tokens: &TokenServer) -> Registry {
    Registry::start_with(
        name,
        &format!(
            "auth: {{ token: {{ realm: \"http://127.0.0.1:{}/token\", service: multiarch-test-registry, issuer: multiarch-test, rootcertbundle: {} }} }}\n",
            tokens.port,
            tokens.certificate.display()
        ),
    )
}

/// A Docker config directory that logs in to `host` as `user:password`.
pub fn docker_config_for(name: &str, host: &str, user_password: &str) -> PathBuf {
    let dir = scratch_dir(&format!("docker-config-{name}"));
    std::fs::write(
        dir.join("config.json"),
        format!(
            r#"{{"auths": {{"{host}": {{"auth": "{}"}}}}}}"#,
            base64(user_password.as_bytes(), false)
        ),
    )
    .unwrap();
    dir
}

/// A token server for registries with `auth: token`: it signs RS256 JWTs with a fresh
/// self-signed certificate, for `tester` / `s3cret` only.
pub struct TokenServer {
    pub port: u16,
    pub certificate: PathBuf,
}

impl TokenServer {
    pub fn start(name: &str) -> TokenServer {
        let dir = scratch_dir(&format!("token-{name}"));
        let (key, certificate) = (dir.join("key.pem"), dir.join("cert.pem"));
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=token",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                certificate.to_str().unwrap(),
            ],
        );
        let der = Command::new("openssl")
            .args([
                "x509",
                "-outform",
                "der",
                "-in",
                certificate.to_str().unwrap(),
            ])
            .output()
            .unwrap()
            .stdout;
        let x5c = base64(&der, false);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let _ = answer_token_request(client, &key, &x5c);
            }
        });
        TokenServer { port, certificate }
    }
}

/// `%3a` and `%3A` alike, as URLs encode either.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        match (bytes[index], bytes.get(index + 1..index + 3)) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).unwrap_or("");
                decoded.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn answer_token_request(mut client: TcpStream, key: &Path, x5c: &str) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte)? == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let expected = format!("Basic {}", base64(b"tester:s3cret", false));
    let authorized = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("authorization:") && l[14..].trim() == expected
    });
    let query = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let repository = query
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("scope="))
        .map(percent_decode)
        .and_then(|s| s.split(':').nth(1).map(str::to_owned))
        .unwrap_or_default();
    if !authorized {
        let body = r#"{"details":"wrong credentials"}"#;
        return write!(
            client,
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = format!(r#"{{"alg":"RS256","typ":"JWT","x5c":["{x5c}"]}}"#);
    let claims = format!(
        r#"{{"iss":"multiarch-test","sub":"tester","aud":"multiarch-test-registry","exp":{},"nbf":{},"iat":{now},"jti":"{now}-{repository}","access":[{{"type":"repository","name":"{repository}","actions":["pull","push"]}}]}}"#,
        now + 300,
        now - 10
    );
    let signing_input = format!(
        "{}.{}",
        base64(header.as_bytes(), true),
        base64(claims.as_bytes(), true)
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", key.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())?;
    let signature = openssl.wait_with_output()?.stdout;
    let token = format!("{signing_input}.{}", base64(&signature, true));
    let body = format!(r#"{{"token":"{token}"}}"#);
    write!(
        client,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The directory holding cosign (`.ci/install-cosign` unpacks it), for PATH.
pub fn cosign_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("MULTIARCH_COSIGN_DIR").unwrap_or_else(|_| "/opt/cosign/usr/bin".into()),
    );
    assert!(
        dir.join("cosign").is_file(),
        "cosign is missing at {}: run .ci/setup",
        dir.display()
    );
    dir
}

/// A cosign key pair in `dir` with the password `pw`: (private key, public key).
pub fn cosign_keys(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let output = Command::new(cosign_dir().join("cosign"))
        .args(["generate-key-pair"])
        .env("COSIGN_PASSWORD", "pw")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

/// Whether `cosign verify` (or `verify-attestation --type KIND`) with `public` accepts
/// `reference` on a loopback registry.
pub fn cosign_verifies(reference: &str, public: &Path, attestation: Option<&str>) -> bool {
    let verb = if attestation.is_some() {
        "verify-attestation"
    } else {
        "verify"
    };
    let mut command = Command::new(cosign_dir().join("cosign"));
    command.args([
        verb,
        "--key",
        public.to_str().unwrap(),
        "--insecure-ignore-tlog=true",
    ]);
    command.args(["--allow-http-registry", "--allow-insecure-registry"]);
    if let Some(kind) = attestation {
        command.args(["--type", kind]);
    }
    let output = command.arg(reference).output().unwrap();
    if !output.status.success() {
        eprintln!(
            "cosign {verb} {reference}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.status.success()
}
