//! The one tar codec: deterministic ustar writing (layers, `docker load` archives), files
//! streamed from disk as they are written, a scanner of archives as they stream, an index
//! of an archive on disk (an engine's saved image) whose files are read in place, and a
//! strict reader that takes one regular file out of a downloaded archive and refuses
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

/// What one entry of a scanned archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
    Symlink(String),
    Hardlink(String),
    Other,
}

/// One entry of a scanned archive: its path (without a leading `./` or `/`), kind, size,
/// and where its data starts in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scanned {
    pub(crate) path: String,
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    pub(crate) offset: u64,
}

/// The largest PAX or GNU long-name extension read.
const EXTENSION_LIMIT: u64 = 1 << 20;

/// Reads the tar stream `reader` entry by entry, handing each, with a reader of its data
/// (which `visit` may leave unread), to `visit`; nothing is held but one header. PAX
/// (`path`, `linkpath`) and GNU long names are honoured; an archive that ends without
/// its end-of-archive blocks ends the scan.
pub(crate) fn scan(
    mut reader: impl Read,
    mut visit: impl FnMut(&Scanned, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let (mut long_path, mut long_link): (Option<String>, Option<String>) = (None, None);
    let mut position = 0u64;
    loop {
        let mut header = [0u8; 512];
        if !read_block(&mut reader, &mut header)? || header.iter().all(|&b| b == 0) {
            return Ok(());
        }
        let size = header_size(&header)?;
        let offset = position + 512;
        let padding = (512 - size % 512) % 512;
        position = offset + size + padding;
        let mut data = (&mut reader).take(size);
        match header[156] {
            b'x' | b'L' | b'K' | b'g' => {
                if size > EXTENSION_LIMIT {
                    bail!("a tar extension header of {size} bytes is too large");
                }
                let mut extension = Vec::new();
                data.read_to_end(&mut extension)?;
                extend(header[156], &extension, &mut long_path, &mut long_link);
            }
            kind => {
                let field = |range: std::ops::Range<usize>| {
                    let bytes = &header[range];
                    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                    String::from_utf8_lossy(&bytes[..end]).into_owned()
                };
                let path = long_path.take().unwrap_or_else(|| {
                    let prefix = field(345..500);
                    match prefix.is_empty() {
                        true => field(0..100),
                        false => format!("{prefix}/{}", field(0..100)),
                    }
                });
                let link = long_link.take().unwrap_or_else(|| field(157..257));
                let kind = match kind {
                    b'0' | 0 | b'7' => Kind::File,
                    b'5' => Kind::Directory,
                    b'2' => Kind::Symlink(link),
                    b'1' => Kind::Hardlink(
                        link.trim_start_matches("./")
                            .trim_start_matches('/')
                            .to_owned(),
                    ),
                    _ => Kind::Other,
                };
                let path = path
                    .trim_start_matches("./")
                    .trim_start_matches('/')
                    .trim_end_matches('/');
                let scanned = Scanned {
                    path: path.to_owned(),
                    kind,
                    size,
                    offset,
                };
                visit(&scanned, &mut data)?;
            }
        }
        std::io::copy(&mut data, &mut std::io::sink())?;
        std::io::copy(&mut (&mut reader).take(padding), &mut std::io::sink())?;
    }
}

/// Takes a long path or link from a GNU (`L`, `K`) or PAX (`x`) extension for the next
/// entry; a global PAX header (`g`) sets nothing this scan needs.
fn extend(kind: u8, extension: &[u8], path: &mut Option<String>, link: &mut Option<String>) {
    let text = String::from_utf8_lossy(extension);
    let text = text.trim_end_matches('\0');
    match kind {
        b'L' => *path = Some(text.to_owned()),
        b'K' => *link = Some(text.to_owned()),
        b'x' => {
            for (key, value) in pax_records(text) {
                match key {
                    "path" => *path = Some(value.to_owned()),
                    "linkpath" => *link = Some(value.to_owned()),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Fills `block`, or returns `false` at the end of the stream before it.
fn read_block(reader: &mut impl Read, block: &mut [u8; 512]) -> Result<bool> {
    let mut filled = 0;
    while filled < block.len() {
        match reader.read(&mut block[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => bail!("the archive ends inside a header"),
            read => filled += read,
        }
    }
    Ok(true)
}

/// A header's size: octal text, or base-256 for large files (the high bit set).
fn header_size(header: &[u8; 512]) -> Result<u64> {
    let field = &header[124..136];
    if field[0] & 0x80 != 0 {
        let mut size = u64::from(field[0] & 0x7f);
        for &byte in &field[1..] {
            size = size.checked_shl(8).context("a tar size overflows")? | u64::from(byte);
        }
        return Ok(size);
    }
    let text = String::from_utf8_lossy(field);
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).with_context(|| format!("a tar header has the size `{text}`"))
}

/// The `key=value` records of a PAX extended header (`<length> <key>=<value>\n`).
fn pax_records(text: &str) -> Vec<(&str, &str)> {
    text.split('\n')
        .filter_map(|record| record.split_once(' ')?.1.split_once('='))
        .collect()
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

/// An archive on disk, scanned once: where each regular file's data lies in it, and where
/// each symbolic link points (against its directory), so that files are read in place.
pub(crate) struct Indexed {
    path: PathBuf,
    files: std::collections::BTreeMap<String, (u64, u64)>,
    links: std::collections::BTreeMap<String, String>,
}

impl Indexed {
    pub(crate) fn scan(path: &std::path::Path) -> Result<Indexed> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut indexed = Indexed {
            path: path.to_owned(),
            files: Default::default(),
            links: Default::default(),
        };
        scan(std::io::BufReader::new(file), |entry, _| {
            match &entry.kind {
                Kind::File => {
                    indexed
                        .files
                        .insert(entry.path.clone(), (entry.offset, entry.size));
                }
                Kind::Symlink(target) => {
                    let dir = entry.path.rsplit_once('/').map_or("", |(dir, _)| dir);
                    let link = normalize(&format!("{dir}/{target}"));
                    indexed.links.insert(entry.path.clone(), link);
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(indexed)
    }

    /// The file `name` (a link to one followed), or `None` when the archive lacks it.
    fn located(&self, name: &str) -> Option<(u64, u64)> {
        let name = self.links.get(name).map_or(name, String::as_str);
        self.files.get(name).copied()
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.located(name).is_some()
    }

    /// The archive's own path.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Where the file `name`'s data lies in the archive: its offset and size.
    pub(crate) fn span(&self, name: &str) -> Result<(u64, u64)> {
        self.located(name).with_context(|| {
            format!(
                "the archive {} lacks `{}`",
                self.path.display(),
                crate::diagnostic::escape(name)
            )
        })
    }

    /// A reader of the file `name`'s data.
    pub(crate) fn open(&self, name: &str) -> Result<std::io::Take<std::fs::File>> {
        let (offset, size) = self.span(name)?;
        let mut file = std::fs::File::open(&self.path)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))?;
        Ok(file.take(size))
    }

    /// The file `name`, read whole when it is at most `limit` bytes.
    pub(crate) fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open(name)?.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            bail!(
                "`{}` in {} is larger than {limit} bytes",
                crate::diagnostic::escape(name),
                self.path.display()
            );
        }
        Ok(bytes)
    }
}

/// `a/b/../c` as `a/c`, without a leading or trailing `/`.
pub(crate) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
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
    fn a_scan_sees_every_entry_with_long_names_and_links() {
        let long = format!("usr/lib/{}/libc.so.6", "x".repeat(120));
        let mut archive = Vec::new();
        let entries = [
            ("lib".to_owned(), Content::Link("usr/lib".into())),
            (long.clone(), Content::Bytes(b"ELF".to_vec())),
            ("etc".to_owned(), Content::Directory),
        ];
        let entries: Vec<(String, Entry)> = entries
            .into_iter()
            .map(|(p, content)| {
                (
                    p,
                    Entry {
                        content,
                        mode: 0o644,
                        owner: (0, 0),
                    },
                )
            })
            .collect();
        write_to(&mut archive, entries.iter().map(|(p, e)| (p, e)), 0).unwrap();
        let mut seen = Vec::new();
        scan(&archive[..], |entry, data| {
            let mut bytes = Vec::new();
            data.read_to_end(&mut bytes)?;
            seen.push((entry.clone(), bytes));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].0.kind, Kind::Symlink("usr/lib".into()));
        assert_eq!(
            (seen[1].0.path.as_str(), seen[1].1.as_slice()),
            (long.as_str(), &b"ELF"[..])
        );
        assert_eq!(
            (seen[2].0.path.as_str(), &seen[2].0.kind),
            ("etc", &Kind::Directory)
        );
        // A PAX path overrides the header's.
        let mut pax = [0u8; 512];
        let record = "28 path=very/long/name/here\n";
        pax[..5].copy_from_slice(b"pax\0\0");
        pax[124..135].copy_from_slice(format!("{:011o}", record.len()).as_bytes());
        pax[156] = b'x';
        let mut stream = pax.to_vec();
        let mut body = record.as_bytes().to_vec();
        body.resize(512, 0);
        stream.extend(body);
        stream.extend_from_slice(&archive[512..]);
        let mut paths = Vec::new();
        scan(&stream[..], |entry, _| {
            paths.push(entry.path.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            paths.first().map(String::as_str),
            Some("very/long/name/here"),
            "{paths:?}"
        );
    }

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

    #[test]
    fn an_indexed_archive_reads_files_in_place_through_links_and_within_bounds() {
        let path =
            std::env::temp_dir().join(format!("multiarch-indexed-{}.tar", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        archive_to(
            &mut file,
            vec![
                (
                    "blobs/sha256/aa".to_owned(),
                    Content::Bytes(b"layer".to_vec()),
                ),
                (
                    "one/layer.tar".to_owned(),
                    Content::Link("../blobs/sha256/aa".into()),
                ),
                ("manifest.json".to_owned(), Content::Bytes(b"[{}]".to_vec())),
            ],
            0,
        )
        .unwrap();
        drop(file);
        let indexed = Indexed::scan(&path).unwrap();
        let mut layer = String::new();
        indexed
            .open("one/layer.tar")
            .unwrap()
            .read_to_string(&mut layer)
            .unwrap();
        assert_eq!(layer, "layer");
        assert_eq!(indexed.read("manifest.json", 4).unwrap(), b"[{}]");
        assert!(
            indexed.read("manifest.json", 3).is_err(),
            "larger than its bound"
        );
        assert!(!indexed.has("index.json"));
        assert_eq!(normalize("one/../blobs/./sha256/aa/"), "blobs/sha256/aa");
        std::fs::remove_file(&path).unwrap();
    }
}
