//! The one tar codec: deterministic ustar writing (layers, `docker load` archives) and a
//! strict reader that takes one regular file out of a downloaded archive and refuses
//! everything else (links, `..`, absolute paths, other entries).

use anyhow::{bail, Context, Result};

/// What one path in an archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    Directory,
    File(Vec<u8>),
    Link(String),
}

/// One entry: what it is, its mode and its numeric owner (no names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) content: Content,
    pub(crate) mode: u32,
    pub(crate) owner: (u32, u32),
}

/// A ustar archive of `entries` in their order, every entry dated `epoch`.
pub(crate) fn write<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a Entry)>,
    epoch: u64,
) -> Result<Vec<u8>> {
    let mut tar = Vec::new();
    for (path, entry) in entries {
        write_entry(&mut tar, path, entry, epoch)?;
    }
    tar.extend_from_slice(&[0; 1024]);
    Ok(tar)
}

/// A plain archive of `files` (path, contents), mode 0644, dated `epoch`.
pub(crate) fn archive(files: &[(String, Vec<u8>)], epoch: u64) -> Result<Vec<u8>> {
    let entries: Vec<(String, Entry)> = files
        .iter()
        .map(|(path, contents)| {
            let entry = Entry {
                content: Content::File(contents.clone()),
                mode: 0o644,
                owner: (0, 0),
            };
            (path.clone(), entry)
        })
        .collect();
    write(entries.iter().map(|(p, e)| (p, e)), epoch)
}

/// One ustar header (and the file's data, padded to 512 bytes).
fn write_entry(tar: &mut Vec<u8>, path: &str, entry: &Entry, epoch: u64) -> Result<()> {
    let name = match entry.content {
        Content::Directory => format!("{path}/"),
        _ => path.to_owned(),
    };
    let (prefix, name) = split_name(&name)
        .ok_or_else(|| anyhow::anyhow!("the path `{path}` is too long for a tar entry"))?;
    let (kind, size, link) = match &entry.content {
        Content::Directory => (b'5', 0, ""),
        Content::File(data) => (b'0', data.len(), ""),
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
    tar.extend_from_slice(&header);
    if let Content::File(data) = &entry.content {
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
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
