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
    xtask::emulation::sha256::hex_digest(data)
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
        ("truncated", truncated, None, "is not a gzip tarball"),
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
