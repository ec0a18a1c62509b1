//! One deterministic layer for all of an image's `COPY`s: entries sorted, parent
//! directories included, one fixed time, numeric owners without names, modes that do not
//! depend on the umask of the machine that built it, gzip with a fixed header and level.
//! One layer rather than one per `COPY`: the demo's images have one anyway, and fewer
//! blobs are fewer uploads; later `COPY`s still replace earlier files, as in Docker.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::backend::oci::spec::Copy;
use crate::diagnostic::diagnostic;
use crate::digest::{Digest, Hashing};
use crate::tar::{Content, Entry};

/// A built layer: its gzip blob (in the layout's `blobs/sha256/`, by `digest`) and the
/// digest of the uncompressed tar (the config's `diff_id`).
#[derive(Debug)]
pub(crate) struct Layer {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) diff_id: String,
    /// Taken from the cache rather than compressed again.
    pub(crate) reused: bool,
}

/// Builds the layer of `copies` from the context directory, every entry dated `epoch`.
/// The uncompressed tar is always built and hashed (it is cheap); its gzip is taken from
/// `blobs` when `cache` says which blob an identical tar was compressed to before.
pub(crate) fn build(
    context: &Path,
    copies: &[Copy],
    epoch: u64,
    cache: &LayerCache,
) -> Result<Layer> {
    let entries = entries(context, copies)?;
    // The tar is hashed first (cheap), then compressed only when no blob of it is known;
    // files are read in pieces both times.
    let mut hashing = Hashing::new(std::io::sink());
    crate::tar::write_to(&mut hashing, &entries, epoch)?;
    let diff_id = hashing.finish().0;
    if let Some((digest, size)) = cache.get(&diff_id) {
        return Ok(Layer {
            digest,
            size,
            diff_id: diff_id.to_string(),
            reused: true,
        });
    }
    let (digest, size) = compress(&entries, epoch, &cache.blobs)?;
    cache.put(&diff_id, &digest);
    Ok(Layer {
        digest,
        size,
        diff_id: diff_id.to_string(),
        reused: false,
    })
}

/// Every entry of the layer of `copies`, by path, parent directories included.
fn entries(context: &Path, copies: &[Copy]) -> Result<BTreeMap<String, Entry>> {
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
    Ok(entries)
}

/// Writes the gzip of the tar of `entries` into `blobs/<hex>` as it is compressed: its
/// digest and size.
fn compress(entries: &BTreeMap<String, Entry>, epoch: u64, blobs: &Path) -> Result<(Digest, u64)> {
    std::fs::create_dir_all(blobs).with_context(|| format!("cannot create {}", blobs.display()))?;
    let temporary = crate::layout::temporary_beside(&blobs.join("layer"));
    let written = (|| {
        let file = std::fs::File::create(&temporary)
            .with_context(|| format!("cannot create {}", temporary.display()))?;
        let mut encoder = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Hashing::new(file), flate2::Compression::new(6));
        crate::tar::write_to(&mut encoder, entries, epoch)?;
        let hashing = encoder.finish()?;
        let (digest, size) = hashing.finish();
        std::fs::rename(&temporary, blobs.join(digest.hex()))?;
        Ok::<_, anyhow::Error>((digest, size))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Compressed layers from earlier runs: `dir/<diff_id hex>` names the blob digest, and the
/// blob is read from the OCI layout's `blobs/sha256/` and checked against it.
pub(crate) struct LayerCache {
    pub(crate) dir: std::path::PathBuf,
    pub(crate) blobs: std::path::PathBuf,
}

impl LayerCache {
    /// The blob an identical tar was compressed to, when the layout still holds it intact.
    fn get(&self, diff_id: &Digest) -> Option<(Digest, u64)> {
        let named = std::fs::read_to_string(self.dir.join(diff_id.hex())).ok()?;
        let digest = Digest::parse(named.trim())?;
        let (actual, size) = crate::digest::of_file(&self.blobs.join(digest.hex())).ok()?;
        (actual == digest).then_some((digest, size))
    }

    /// Records the blob of `diff_id`; a cache that cannot be written only costs a gzip.
    fn put(&self, diff_id: &Digest, digest: &Digest) {
        let _ = crate::exec::files::write_if_changed(
            &self.dir.join(diff_id.hex()),
            digest.as_str().as_bytes(),
        );
    }
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
        Content::File(from.to_path_buf())
    };
    let executable = metadata.permissions().mode() & 0o111 != 0;
    let mode = match (&content, copy.mode) {
        (Content::Link(_), _) => 0o777,
        (_, Some(mode)) => mode,
        (Content::Directory, None) => 0o755,
        (Content::File(_) | Content::Bytes(_), None) if executable => 0o755,
        (Content::File(_) | Content::Bytes(_), None) => 0o644,
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
        let cache = LayerCache {
            dir: dir.join("cache"),
            blobs: dir.join("blobs"),
        };
        let first = build(&dir, &copies, 1_700_000_000, &cache).unwrap();
        assert!(!first.reused);
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
        let second = build(&dir, &copies, 1_700_000_000, &cache).unwrap();
        assert_eq!(first.diff_id, second.diff_id);
        assert_eq!((&first.digest, first.size), (&second.digest, second.size));
        // With the blob in the layout, the same tar is not compressed again; a blob that
        // does not match its recorded digest is not trusted.
        let blob = cache.blobs.join(first.digest.hex());
        let gzip = std::fs::read(&blob).unwrap();
        assert_eq!(crate::digest::Digest::of(&gzip), first.digest);
        let third = build(&dir, &copies, 1_700_000_000, &cache).unwrap();
        assert!(third.reused && third.digest == first.digest);
        std::fs::write(&blob, b"tampered").unwrap();
        let fourth = build(&dir, &copies, 1_700_000_000, &cache).unwrap();
        assert!(!fourth.reused && fourth.digest == first.digest);
        assert_eq!(std::fs::read(&blob).unwrap(), gzip);
        let mut tar = Vec::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(&gzip[..])
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
        let cache = LayerCache {
            dir: dir.join("cache"),
            blobs: dir.join("blobs"),
        };
        let err = build(&dir, &[copy(&["no-such-file-here"], "/x")], 0, &cache).unwrap_err();
        assert!(
            err.to_string().contains("is not in the build context"),
            "{err}"
        );
    }
}
