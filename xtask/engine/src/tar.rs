//! The one tar codec: deterministic ustar writing (layers, `docker load` archives), files
//! streamed from disk as they are written, and a strict reader that takes one regular file out of a downloaded archive and refuses
//! everything else (links, `..`, absolute paths, other entries).

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// What one path in an archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    Directory,
    /// A file held in memory.
    Bytes(Vec<u8>),
    /// A file on disk, read as the archive is written.
    File(PathBuf),
    Link(String),
}

/// One entry: what it is, its mode and its numeric owner (no names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) content: Content,
    pub(crate) mode: u32,
    pub(crate) owner: (u32, u32),
}

/// Writes the ustar archive of `entries` into `out` as it goes: a file on disk is read in
/// pieces, never whole.
pub(crate) fn write_to<'a>(
    out: &mut dyn Write,
    entries: impl IntoIterator<Item = (&'a String, &'a Entry)>,
    epoch: u64,
) -> Result<()> {
    for (path, entry) in entries {
        write_entry(out, path, entry, epoch)?;
    }
    out.write_all(&[0; 1024])?;
    Ok(())
}

/// A plain archive of `files` (path in the archive, contents), mode 0644, dated `epoch`,
/// written into `out`.
pub(crate) fn archive_to(
    out: &mut dyn Write,
    files: Vec<(String, Content)>,
    epoch: u64,
) -> Result<()> {
    let entries: Vec<(String, Entry)> = files
        .into_iter()
        .map(|(path, content)| {
            let entry = Entry {
                content,
                mode: 0o644,
                owner: (0, 0),
            };
            (path, entry)
        })
        .collect();
    write_to(out, entries.iter().map(|(p, e)| (p, e)), epoch)
}

/// One ustar header (and the file's data, padded to 512 bytes).
fn write_entry(out: &mut dyn Write, path: &str, entry: &Entry, epoch: u64) -> Result<()> {
    let name = match entry.content {
        Content::Directory => format!("{path}/"),
        _ => path.to_owned(),
    };
    let (prefix, name) = split_name(&name)
        .ok_or_else(|| anyhow::anyhow!("the path `{path}` is too long for a tar entry"))?;
    let (kind, size, link) = match &entry.content {
        Content::Directory => (b'5', 0, ""),
        Content::Bytes(data) => (b'0', data.len() as u64, ""),
        Content::File(file) => (
            b'0',
            std::fs::metadata(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .len(),
            "",
        ),
        Content::Link(target) => (b'2', 0, target.as_str()),
    };
    if link.len() > 100 {
        anyhow::bail!("the link `{path}` -> `{link}` is too long for a tar entry");
    }
    let mut header = [0u8; 512];
    let mut put =
        |at: usize, text: &str| header[at..at + text.len()].copy_from_slice(text.as_bytes());
    put(0, name);
    put(100, &format!("{:07o}", entry.mode));
    put(108, &format!("{:07o}", entry.owner.0));
    put(116, &format!("{:07o}", entry.owner.1));
    put(124, &format!("{size:011o}"));
    put(136, &format!("{epoch:011o}"));
    put(157, link);
    put(257, "ustar\0");
    put(263, "00");
    put(345, prefix);
    header[156] = kind;
    header[148..156].copy_from_slice(b"        ");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    out.write_all(&header)?;
    match &entry.content {
        Content::Bytes(data) => out.write_all(data)?,
        Content::File(file) => {
            let opened = std::fs::File::open(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let copied = std::io::copy(&mut opened.take(size), out)?;
            if copied != size {
                bail!("{} changed while it was archived", file.display());
            }
        }
        _ => return Ok(()),
    }
    let padding = (512 - size % 512) % 512;
    out.write_all(&[0; 512][..padding as usize])?;
    Ok(())
}

/// Splits a path into ustar's prefix (up to 155 bytes) and name (up to 100).
fn split_name(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    let trimmed = path.trim_end_matches('/');
    (0..trimmed.len())
        .rev()
        .filter(|&i| trimmed.as_bytes()[i] == b'/')
        .find(|&i| i <= 155 && path.len() - i - 1 <= 100)
        .map(|i| (&path[..i], &path[i + 1..]))
}

/// Returns the one regular file `name` (optionally `./name`) of a tar archive. Any other
/// entry, a link, a `..` path or a truncated archive is an error.
pub(crate) fn extract_only(archive: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut found = None;
    let mut offset = 0;
    loop {
        let Some(header) = archive.get(offset..offset + 512) else {
            bail!("the archive is truncated (no end-of-archive marker)");
        };
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let field = |range: std::ops::Range<usize>| {
            let bytes = &header[range];
            String::from_utf8_lossy(
                &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())],
            )
            .into_owned()
        };
        let prefix = field(345..500);
        let entry = if prefix.is_empty() {
            field(0..100)
        } else {
            format!("{prefix}/{}", field(0..100))
        };
        let size_field = field(124..136);
        let size = u64::from_str_radix(size_field.trim(), 8)
            .with_context(|| format!("entry `{entry}` has a bad size field"))?
            as usize;
        let kind = header[156];
        let data_start = offset + 512;
        let data = archive
            .get(data_start..data_start + size)
            .with_context(|| format!("the archive is truncated inside `{entry}`"))?;
        let path = entry.strip_prefix("./").unwrap_or(&entry);
        if entry.split('/').any(|part| part == "..") || entry.starts_with('/') {
            bail!("entry `{entry}` escapes the extraction directory");
        }
        match kind {
            b'0' | 0 if path == name => found = Some(data.to_vec()),
            b'5' if path.is_empty() || path == "." => {}
            b'1' | b'2' => {
                bail!("entry `{entry}` is a link; only the regular file `{name}` is accepted")
            }
            _ => bail!("unexpected entry `{entry}`; only the regular file `{name}` is accepted"),
        }
        offset = data_start + size.div_ceil(512) * 512;
    }
    found.with_context(|| format!("the archive has no `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_on_disk_and_in_memory_archive_alike() {
        let dir = std::env::temp_dir().join(format!("multiarch-tar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("blob"), &data).unwrap();
        let mut from_disk = Vec::new();
        archive_to(
            &mut from_disk,
            vec![("blob".into(), Content::File(dir.join("blob")))],
            0,
        )
        .unwrap();
        let mut from_memory = Vec::new();
        archive_to(
            &mut from_memory,
            vec![("blob".into(), Content::Bytes(data.clone()))],
            0,
        )
        .unwrap();
        assert_eq!(from_disk, from_memory);
        assert_eq!(from_disk.len() % 512, 0);
        assert_eq!(extract_only(&from_disk, "blob").unwrap(), data);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
