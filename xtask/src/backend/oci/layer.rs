//! One deterministic layer for all of an image's `COPY`s: entries sorted, parent
//! directories included, one fixed time, numeric owners without names, modes that do not
//! depend on the umask of the machine that built it, gzip with a fixed header and level.
//! One layer rather than one per `COPY`: the demo's images have one anyway, and fewer
//! blobs are fewer uploads; later `COPY`s still replace earlier files, as in Docker.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::backend::oci::spec::Copy;
use crate::diagnostic::diagnostic;

/// What one path in the layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Directory,
    File(Vec<u8>),
    Link(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    content: Content,
    mode: u32,
    owner: (u32, u32),
}

/// A built layer: the gzip blob and the digest of the uncompressed tar (the config's
/// `diff_id`).
#[derive(Debug)]
pub(crate) struct Layer {
    pub(crate) gzip: Vec<u8>,
    pub(crate) diff_id: String,
}

/// Builds the layer of `copies` from the context directory, every entry dated `epoch`.
pub(crate) fn build(context: &Path, copies: &[Copy], epoch: u64) -> Result<Layer> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for copy in copies {
        let into_directory = copy.destination.ends_with('/') || copy.sources.len() > 1;
        for source in &copy.sources {
            let from = context.join(source.trim_start_matches('/'));
            let metadata = std::fs::symlink_metadata(&from).map_err(|_| {
                diagnostic(
                    format!(
                        "`{}`: `{source}` is not in the build context {}",
                        copy.written,
                        context.display()
                    ),
                    "copy only what the context holds: the binaries and `files`",
                )
            })?;
            let name = Path::new(source)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = if metadata.is_dir() || !into_directory {
                clean(&copy.destination)
            } else {
                clean(&format!("{}/{name}", copy.destination))
            };
            add_tree(&mut entries, &from, &target, copy)?;
        }
    }
    // Every parent directory is in the layer, so extraction never invents one.
    let parents: Vec<String> = entries
        .keys()
        .flat_map(|path| {
            let parts: Vec<&str> = path.split('/').collect();
            (1..parts.len())
                .map(move |n| parts[..n].join("/"))
                .collect::<Vec<_>>()
        })
        .collect();
    for parent in parents {
        entries.entry(parent).or_insert(Entry {
            content: Content::Directory,
            mode: 0o755,
            owner: (0, 0),
        });
    }
    let mut tar = Vec::new();
    for (path, entry) in &entries {
        write_entry(&mut tar, path, entry, epoch)?;
    }
    tar.extend_from_slice(&[0; 1024]);
    let diff_id = format!("sha256:{}", crate::digest::hex_sha256(&tar));
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(&tar)?;
    Ok(Layer {
        gzip: encoder.finish()?,
        diff_id,
    })
}

/// `/usr//local/bin/` as `usr/local/bin`.
fn clean(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Adds `from` (a file, link or directory) at `target` with the copy's owner and mode.
fn add_tree(
    entries: &mut BTreeMap<String, Entry>,
    from: &Path,
    target: &str,
    copy: &Copy,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::symlink_metadata(from)
        .with_context(|| format!("cannot read {}", from.display()))?;
    let owner = copy.owner.unwrap_or((0, 0));
    let kind = metadata.file_type();
    let content = if kind.is_symlink() {
        Content::Link(std::fs::read_link(from)?.to_string_lossy().into_owned())
    } else if kind.is_dir() {
        Content::Directory
    } else {
        Content::File(
            std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?,
        )
    };
    let executable = metadata.permissions().mode() & 0o111 != 0;
    let mode = match (&content, copy.mode) {
        (Content::Link(_), _) => 0o777,
        (_, Some(mode)) => mode,
        (Content::Directory, None) => 0o755,
        (Content::File(_), None) if executable => 0o755,
        (Content::File(_), None) => 0o644,
    };
    let is_directory = content == Content::Directory;
    if !target.is_empty() {
        entries.insert(
            target.to_owned(),
            Entry {
                content,
                mode,
                owner,
            },
        );
    }
    if is_directory {
        let mut children: Vec<_> = std::fs::read_dir(from)?.flatten().collect();
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let name = child.file_name().to_string_lossy().into_owned();
            let child_target = if target.is_empty() {
                name
            } else {
                format!("{target}/{name}")
            };
            add_tree(entries, &child.path(), &child_target, copy)?;
        }
    }
    Ok(())
}

/// A plain tar archive of `files` (path, contents), mode 0644, dated `epoch`.
pub(crate) fn archive(files: &[(String, Vec<u8>)], epoch: u64) -> Result<Vec<u8>> {
    let mut tar = Vec::new();
    for (path, contents) in files {
        let entry = Entry {
            content: Content::File(contents.clone()),
            mode: 0o644,
            owner: (0, 0),
        };
        write_entry(&mut tar, path, &entry, epoch)?;
    }
    tar.extend_from_slice(&[0; 1024]);
    Ok(tar)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(sources: &[&str], destination: &str) -> Copy {
        Copy {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            destination: destination.into(),
            owner: None,
            mode: None,
            written: format!("COPY {} {destination}", sources.join(" ")),
        }
    }

    #[test]
    fn layers_do_not_depend_on_mtimes_or_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("multiarch-layer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hello"), b"\x7fELF binary").unwrap();
        std::fs::write(dir.join("config.toml"), b"x = 1\n").unwrap();
        let copies = [
            copy(&["hello"], "/usr/local/bin/hello"),
            copy(&["config.toml"], "/etc/app/"),
        ];
        std::fs::set_permissions(dir.join("hello"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let first = build(&dir, &copies, 1_700_000_000).unwrap();
        // Another machine: a stricter umask and other times.
        std::fs::set_permissions(dir.join("hello"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::set_permissions(
            dir.join("config.toml"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::File::options()
            .write(true)
            .open(dir.join("hello"))
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
        let second = build(&dir, &copies, 1_700_000_000).unwrap();
        assert_eq!(first.diff_id, second.diff_id);
        assert_eq!(first.gzip, second.gzip);
        let mut tar = Vec::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(&first.gzip[..])
            .read_to_end(&mut tar)
            .unwrap();
        let names: Vec<String> = tar
            .chunks(512)
            .filter(|h| h[257..262] == *b"ustar")
            .map(|h| {
                String::from_utf8_lossy(&h[..100])
                    .trim_end_matches('\0')
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/app/",
                "etc/app/config.toml",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/hello"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_source_outside_the_context_is_an_error() {
        let dir = std::env::temp_dir();
        let err = build(&dir, &[copy(&["no-such-file-here"], "/x")], 0).unwrap_err();
        assert!(
            err.to_string().contains("is not in the build context"),
            "{err}"
        );
    }
}
