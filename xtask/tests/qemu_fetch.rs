//! `cargo xtask qemu fetch` against a real HTTP server on loopback serving tarballs made
//! from Debian's qemu-user-static binaries.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A gzip tarball of Debian's `qemu-<arch>-static`, made by `tar` with extra flags.
fn tarball(arch: &str, scratch: &Path, tar_flags: &[&str]) -> Vec<u8> {
    let name = format!("qemu-{arch}-static");
    let source = which_qemu(arch);
    let work = scratch.join(format!(
        "tar-{}",
        tar_flags.join("").replace(['/', ',', '='], "_")
    ));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(&source, work.join(&name)).unwrap();
    let out = work.join("out.tar.gz");
    let mut args = vec!["-C", work.to_str().unwrap(), "-czf", out.to_str().unwrap()];
    args.extend(tar_flags);
    args.push(&name);
    run("tar", &args);
    std::fs::read(out).unwrap()
}

fn which_qemu(arch: &str) -> PathBuf {
    let path = PathBuf::from(format!("/usr/bin/qemu-{arch}-static"));
    assert!(
        path.is_file(),
        "{} is missing: .ci/setup installs qemu-user-static",
        path.display()
    );
    path
}

fn sha256(data: &[u8]) -> String {
    multiarch::digest::hex_sha256(data)
}

fn workspace(name: &str, server: &FileServer, pin: Option<&str>) -> PathBuf {
    let pin = pin.map_or(String::new(), |digest| {
        format!("sha256 = {{ aarch64 = \"{digest}\" }}\n")
    });
    fixture_workspace(
        name,
        &format!(
            "platforms = [\"linux/arm64\"]\n[package.metadata.multiarch.qemu]\nversion = \"7.2.0-1\"\nurl = \"{}/v{{{{ version }}}}/x86_64_qemu-{{{{ qemu_arch }}}}-static.tar.gz\"\n{pin}",
            server.url()
        ),
    )
}

fn fetch(dir: &Path, cache: &Path) -> std::process::Output {
    xtask_with_env(
        dir,
        &["qemu", "fetch"],
        &[("XDG_CACHE_HOME", cache.to_str().unwrap())],
    )
}

fn cache_files(cache: &Path) -> Vec<String> {
    let dir = cache.join("multiarch/qemu/7.2.0-1");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A gzip tarball holding `name` with `contents`, padded with zeros to `size` bytes.
fn gzip_tar(name: &str, contents: &[u8], size: usize) -> Vec<u8> {
    use std::io::Write;
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..107].copy_from_slice(b"0000755");
    header[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&header).unwrap();
    encoder.write_all(contents).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = size - contents.len() + (512 - size % 512) % 512 + 1024;
    while left > 0 {
        let n = left.min(zeros.len());
        encoder.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    encoder.finish().unwrap()
}

const URL_PATH: &str = "/v7.2.0-1/x86_64_qemu-aarch64-static.tar.gz";

#[test]
fn fetches_verifies_and_then_serves_from_the_cache() {
    let scratch = scratch_dir("fetch-ok");
    let good = tarball("aarch64", &scratch, &[]);
    let digest = sha256(&good);
    let mut server = FileServer::start(vec![(URL_PATH.into(), good)]);
    let cache = scratch.join("cache");

    // Without a pin: fetched, and the digest to pin is printed.
    let dir = workspace("fetch-ok-ws", &server, None);
    let output = fetch(&dir, &cache);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("pin it with qemu.sha256.aarch64 = \"{digest}\"")),
        "{}",
        stderr(&output)
    );
    let binary = cache.join("multiarch/qemu/7.2.0-1/qemu-aarch64-static");
    assert_eq!(stdout(&output).trim(), binary.display().to_string());
    assert_eq!(
        std::fs::read(&binary).unwrap(),
        std::fs::read(which_qemu("aarch64")).unwrap()
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&binary).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(server.request_count(), 1);
    assert_eq!(
        cache_files(&cache),
        ["qemu-aarch64-static", "qemu-aarch64-static.tar.gz.sha256"]
    );

    // With the pin and the server stopped: a cache hit, no request.
    let pinned = workspace("fetch-ok-pinned", &server, Some(&digest));
    server.stop();
    let output = fetch(&pinned, &cache);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), binary.display().to_string());
    assert_eq!(
        server.request_count(),
        1,
        "the second fetch made no request"
    );
}

#[test]
fn bad_downloads_fail_clearly_and_leave_nothing_in_the_cache() {
    let scratch = scratch_dir("fetch-bad");
    let good = tarball("aarch64", &scratch, &[]);
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let cases: Vec<(&str, Vec<u8>, Option<String>, &str)> = vec![
        (
            "mismatch",
            good.clone(),
            Some("0".repeat(64)),
            "checksum mismatch for",
        ),
        ("missing", Vec::new(), None, "answered: HTTP 404"),
        ("truncated", truncated, None, "is not a usable gzip tarball"),
        (
            "not-elf",
            gzip_tar("qemu-aarch64-static", b"not qemu at 14", 14),
            None,
            "`qemu-aarch64-static` is not an ELF executable (14 bytes)",
        ),
        (
            "bomb",
            gzip_tar("qemu-aarch64-static", &[], 200 << 20),
            None,
            "it inflates past 128 MiB",
        ),
        (
            "escape",
            tarball("aarch64", &scratch, &["--transform=s,^,../,"]),
            None,
            "entry `../qemu-aarch64-static` escapes the extraction directory",
        ),
        (
            "link",
            {
                let work = scratch.join("link");
                std::fs::create_dir_all(&work).unwrap();
                std::os::unix::fs::symlink(
                    "/usr/bin/qemu-aarch64-static",
                    work.join("qemu-aarch64-static"),
                )
                .unwrap();
                run(
                    "tar",
                    &[
                        "-C",
                        work.to_str().unwrap(),
                        "-czf",
                        work.join("l.tgz").to_str().unwrap(),
                        "qemu-aarch64-static",
                    ],
                );
                std::fs::read(work.join("l.tgz")).unwrap()
            },
            None,
            "is a link",
        ),
        (
            "extra",
            tarball("aarch64", &scratch, &["/etc/hostname"]),
            None,
            "unexpected entry",
        ),
    ];
    for (name, body, pin, expected) in cases {
        let files = if name == "missing" {
            Vec::new()
        } else {
            vec![(URL_PATH.to_owned(), body)]
        };
        let server = FileServer::start(files);
        let cache = scratch.join(format!("cache-{name}"));
        let dir = workspace(&format!("fetch-bad-{name}"), &server, pin.as_deref());
        let output = fetch(&dir, &cache);
        assert_eq!(output.status.code(), Some(1), "{name}");
        let message = stderr(&output);
        let error = message
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{name}: {message}"));
        assert!(
            error.starts_with("error: cannot fetch QEMU for linux/arm64: "),
            "{name}: {message}"
        );
        assert!(error.contains(expected), "{name}: {message}");
        assert!(
            message.lines().last().unwrap().starts_with("help: "),
            "{name}: {message}"
        );
        assert!(!message.contains("panicked"), "{name}: {message}");
        assert_eq!(
            cache_files(&cache),
            Vec::<String>::new(),
            "{name}: the cache holds nothing"
        );
    }
}

#[test]
fn a_server_that_never_answers_fails_after_the_timeout_and_leaves_nothing() {
    let scratch = scratch_dir("fetch-stall");
    // Accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for client in listener.incoming().flatten() {
            held.push(client);
        }
    });
    let dir = fixture_workspace(
        "fetch-stall",
        &format!(
            "platforms = [\"linux/arm64\"]\n[package.metadata.multiarch.qemu]\nversion = \"7.2.0-1\"\ntimeout = 2\nurl = \"http://127.0.0.1:{port}/q-{{{{ qemu_arch }}}}.tar.gz\"\n"
        ),
    );
    let cache = scratch.join("cache");
    // What a killed earlier run left behind: a download of a process that is gone.
    let abandoned = cache.join("multiarch/qemu/7.2.0-1/.qemu-aarch64-static.999999999.download");
    std::fs::create_dir_all(abandoned.parent().unwrap()).unwrap();
    std::fs::write(&abandoned, b"half").unwrap();
    let started = std::time::Instant::now();
    let output = fetch(&dir, &cache);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "http://127.0.0.1:{port}/q-aarch64.tar.gz sent nothing for 2 s (0 bytes so far)"
        )) && message.contains("raise qemu.timeout"),
        "{message}"
    );
    // curl tries three times (--retry 2), each bounded by the timeout.
    assert!(seconds < 20.0, "took {seconds:.1}s");
    assert!(
        cache_files(&cache).is_empty(),
        "nothing is left: {:?}",
        cache_files(&cache)
    );
}
