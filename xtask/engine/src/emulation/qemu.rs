//! Static QEMU binaries: downloaded once into a user cache, checksum-verified, extracted
//! strictly and written atomically; or taken from PATH.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::config::{QemuConfig, QemuSource};
use crate::digest::hex_sha256;

/// The cache shared by every workspace: `$XDG_CACHE_HOME/multiarch/qemu/<version>`,
/// else `~/.cache/...`.
pub(crate) fn cache_dir(version: &str) -> Result<PathBuf> {
    let base = crate::layout::user_cache().ok_or_else(|| {
        crate::diagnostic::diagnostic(
            "cannot find a cache directory: neither XDG_CACHE_HOME nor HOME is set",
            "set XDG_CACHE_HOME",
        )
    })?;
    Ok(base.join("qemu").join(version))
}

/// The name QEMU's user-mode emulator has for `qemu_arch`.
pub(crate) fn binary_name(qemu_arch: &str) -> String {
    format!("qemu-{qemu_arch}-static")
}

/// The static QEMU for `qemu_arch` from the configured source.
pub(crate) fn locate(qemu: &QemuConfig, qemu_arch: &str) -> Result<PathBuf> {
    match qemu.source {
        QemuSource::Download => fetch(qemu, qemu_arch),
        QemuSource::Path => which::which(binary_name(qemu_arch)).map_err(|_| {
            crate::diagnostic::diagnostic(
                format!("`{}` is not on PATH (qemu.source = \"path\")", binary_name(qemu_arch)),
                "install it (Debian: apt-get install qemu-user-static), or use qemu.source = \"download\"",
            )
        }),
    }
}

#[derive(Serialize)]
struct UrlContext<'a> {
    version: &'a str,
    qemu_arch: &'a str,
}

/// Returns the cached binary, downloading it first when the cache lacks it (or holds one
/// from a tarball other than the pinned one). Failures leave nothing in the cache.
pub(crate) fn fetch(qemu: &QemuConfig, qemu_arch: &str) -> Result<PathBuf> {
    let dir = cache_dir(&qemu.version)?;
    let name = binary_name(qemu_arch);
    let binary = dir.join(&name);
    let recorded = dir.join(format!("{name}.tar.gz.sha256"));
    let pin = qemu.sha256.get(qemu_arch);
    if binary.is_file() {
        let recorded_digest = std::fs::read_to_string(&recorded).unwrap_or_default();
        if pin.is_none_or(|pin| pin.eq_ignore_ascii_case(recorded_digest.trim())) {
            return Ok(binary);
        }
    }
    let url = crate::config::template::Template::from_source("qemu.url", qemu.url.as_str())
        .render(&UrlContext {
            version: &qemu.version,
            qemu_arch,
        })
        .context("in `package.metadata.multiarch.qemu.url`")?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the QEMU cache {}", dir.display()))?;
    remove_abandoned(&dir);
    let tarball = download(&url, qemu.timeout)
        .with_context(|| format!("cannot download QEMU for {qemu_arch}"))?;

    let digest = hex_sha256(&tarball);
    match pin {
        Some(pin) if !pin.eq_ignore_ascii_case(&digest) => return Err(crate::diagnostic::diagnostic(format!("checksum mismatch for {url}: expected sha256 {pin}, got {digest}; the download was deleted"), format!("if the new tarball is trusted, pin it: qemu.sha256.{qemu_arch} = \"{digest}\""))),
        _ => {}
    }
    let damaged = |cause: String| {
        crate::diagnostic::diagnostic(
            cause,
            "the download is damaged or is not a qemu-user-static release tarball; check qemu.url, or use qemu.source = \"path\"",
        )
    };
    let archive = gunzip(&tarball, MAX_BYTES)
        .map_err(|err| damaged(format!("{url} is not a usable gzip tarball: {err:#}")))?;
    let contents = crate::tar::extract_only(&archive, &name)
        .and_then(|contents| check_elf(&contents, qemu_arch).map(|()| contents))
        .map_err(|err| damaged(format!("refusing the tarball from {url}: {err:#}")))?;
    if pin.is_none() {
        eprintln!(
            "note: {url} has sha256 {digest}; pin it with qemu.sha256.{qemu_arch} = \"{digest}\""
        );
    }
    // The binary appears under its name last, so its presence means a complete fetch.
    let partial = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let installed = std::fs::write(&partial, &contents)
        .and_then(|()| set_executable(&partial))
        .and_then(|()| std::fs::write(&recorded, format!("{digest}\n")))
        .and_then(|()| std::fs::rename(&partial, &binary));
    if let Err(err) = installed {
        let _ = std::fs::remove_file(&partial);
        return Err(err)
            .with_context(|| format!("cannot write {} into the cache", binary.display()));
    }
    Ok(binary)
}

/// The largest tarball, and the largest unpacked archive, a QEMU download may be. Static
/// QEMU binaries are 5 to 20 MB.
const MAX_BYTES: u64 = 128 << 20;

/// Downloads `url` (http or https only, redirects included) into memory, at most
/// [`MAX_BYTES`]; a server that sends nothing for `timeout` seconds ends the download.
/// Lost connections and server errors are retried under the one retry policy.
fn download(url: &str, timeout: u64) -> Result<Vec<u8>> {
    use crate::http::{Failure, Method, Request};
    let help = "check qemu.url and qemu.version, or use qemu.source = \"path\" with Debian's qemu-user-static";
    if let Err(err) = crate::http::Origin::of(url) {
        return Err(crate::diagnostic::diagnostic(
            err.to_string(),
            "set qemu.url to an https:// URL template, or use qemu.source = \"path\"",
        ));
    }
    crate::http::require_tls(url, "the QEMU download")?;
    eprintln!("downloading {url}");
    let mut request = Request::new(
        Method::Get,
        url,
        MAX_BYTES,
        std::time::Duration::from_secs(3600),
    );
    request.stall = std::time::Duration::from_secs(timeout.max(1));
    let outcome = crate::retry::DEFAULT.run(|| crate::http::send(&request), crate::http::transient);
    match outcome {
        Ok(response) if response.status == 200 => Ok(response.body),
        Ok(response) => Err(crate::diagnostic::diagnostic(
            format!("{url} answered: HTTP {}", response.status),
            help,
        )),
        Err(Failure::TooSlow { received, .. }) => Err(crate::diagnostic::diagnostic(
            format!("{url} sent nothing for {timeout} s ({received} bytes so far)"),
            format!("{help}; raise qemu.timeout (seconds) for a slow mirror"),
        )),
        Err(Failure::TooLarge(_)) => Err(crate::diagnostic::diagnostic(
            format!("{url} is larger than {} MiB", MAX_BYTES >> 20),
            help,
        )),
        Err(err) => Err(crate::diagnostic::diagnostic(
            format!("{url} answered: {err}"),
            help,
        )),
    }
}

/// Removes downloads and partial binaries that an interrupted run (killed, power lost)
/// left in the cache: those whose process no longer runs.
fn remove_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_suffix(".download")
            .or_else(|| name.strip_suffix(".partial"))
        else {
            continue;
        };
        let pid = rest.rsplit('.').next().unwrap_or_default();
        let running = !pid.is_empty() && Path::new("/proc").join(pid).exists();
        if name.starts_with('.') && !running {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Inflates a gzip stream, refusing one that inflates past `limit` bytes.
fn gunzip(data: &[u8], limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(limit + 1)
        .read_to_end(&mut inflated)?;
    if inflated.len() as u64 > limit {
        bail!("it inflates past {} MiB", limit >> 20);
    }
    Ok(inflated)
}

/// A QEMU binary must be an ELF executable for the host that runs it. The host here is
/// the machine running this tool.
fn check_elf(binary: &[u8], qemu_arch: &str) -> Result<()> {
    let Some(host) = crate::config::platform::Platform::host() else {
        return Ok(());
    };
    if binary.len() < 64 || &binary[..4] != b"\x7fELF" {
        bail!(
            "`qemu-{qemu_arch}-static` is not an ELF executable ({} bytes)",
            binary.len()
        );
    }
    let big_endian = binary[5] == 2;
    let half = |at: usize| {
        let bytes = [binary[at], binary[at + 1]];
        if big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        }
    };
    let (elf_type, machine) = (half(16), half(18));
    let elf_64 = binary[4] == 2;
    if !matches!(elf_type, 2 | 3) {
        bail!("`qemu-{qemu_arch}-static` is an ELF file but not an executable");
    }
    if machine != host.elf_machine || elf_64 != host.elf_64 || big_endian != host.big_endian {
        bail!(
            "`qemu-{qemu_arch}-static` is built for ELF machine {machine}, not for this {} host",
            host.arch
        );
    }
    Ok(())
}

fn set_executable(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry: name, type flag, contents.
    type Entry<'a> = (&'a str, u8, &'a [u8]);

    /// A ustar archive of entries, as tar writes them.
    fn tar(entries: &[Entry]) -> Vec<u8> {
        let mut archive = Vec::new();
        for (name, kind, contents) in entries {
            let mut header = [0u8; 512];
            header[..name.len()].copy_from_slice(name.as_bytes());
            header[100..107].copy_from_slice(b"0000755");
            header[124..135].copy_from_slice(format!("{:011o}", contents.len()).as_bytes());
            header[156] = *kind;
            header[257..263].copy_from_slice(b"ustar\0");
            archive.extend_from_slice(&header);
            archive.extend_from_slice(contents);
            archive.resize(archive.len().div_ceil(512) * 512, 0);
        }
        archive.extend_from_slice(&[0; 1024]);
        archive
    }

    #[test]
    fn extracts_exactly_the_expected_file() {
        let archive = tar(&[("qemu-aarch64-static", b'0', b"\x7fELF binary")]);
        assert_eq!(
            crate::tar::extract_only(&archive, "qemu-aarch64-static").unwrap(),
            b"\x7fELF binary"
        );
        let archive = tar(&[("./", b'5', b""), ("./qemu-arm-static", b'0', &[7; 700])]);
        assert_eq!(
            crate::tar::extract_only(&archive, "qemu-arm-static").unwrap(),
            vec![7; 700]
        );
    }

    #[test]
    fn refuses_anything_else() {
        let cases: &[(&[Entry], &str)] = &[
            (
                &[("../qemu-arm-static", b'0', b"x")],
                "escapes the extraction directory",
            ),
            (
                &[("/usr/bin/qemu-arm-static", b'0', b"x")],
                "escapes the extraction directory",
            ),
            (&[("qemu-arm-static", b'2', b"")], "is a link"),
            (
                &[("qemu-arm-static", b'0', b"x"), ("extra", b'0', b"y")],
                "unexpected entry `extra`",
            ),
            (&[("other", b'0', b"x")], "unexpected entry `other`"),
            (&[], "the archive has no `qemu-arm-static`"),
        ];
        for (entries, expected) in cases {
            let message = crate::tar::extract_only(&tar(entries), "qemu-arm-static")
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{message}");
        }
        let archive = tar(&[("qemu-arm-static", b'0', &[1; 2000])]);
        let message = crate::tar::extract_only(&archive[..1500], "qemu-arm-static")
            .unwrap_err()
            .to_string();
        assert!(message.contains("truncated"), "{message}");
        let message = crate::tar::extract_only(&archive[..2560], "qemu-arm-static")
            .unwrap_err()
            .to_string();
        assert!(message.contains("truncated"), "{message}");
    }

    fn elf(machine: u16, elf_type: u16) -> Vec<u8> {
        let mut binary = vec![0u8; 128];
        binary[..4].copy_from_slice(b"\x7fELF");
        binary[4] = 2;
        binary[5] = 1;
        binary[16..18].copy_from_slice(&elf_type.to_le_bytes());
        binary[18..20].copy_from_slice(&machine.to_le_bytes());
        binary
    }

    #[test]
    fn only_an_elf_executable_for_this_host_is_accepted() {
        let host = crate::config::platform::Platform::host().unwrap();
        assert!(check_elf(&elf(host.elf_machine, 2), "aarch64").is_ok());
        for (binary, expected) in [
            (
                b"not qemu at 14".to_vec(),
                "is not an ELF executable (14 bytes)",
            ),
            (elf(host.elf_machine, 1), "not an executable"),
            (elf(host.elf_machine + 1, 2), "is built for ELF machine"),
        ] {
            let message = check_elf(&binary, "aarch64").unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn inflation_is_bounded() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&vec![0u8; 3 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert_eq!(gunzip(&bomb, 4 << 20).unwrap().len(), 3 << 20);
        let message = gunzip(&bomb, 1 << 20).unwrap_err().to_string();
        assert_eq!(message, "it inflates past 1 MiB");
    }
}
