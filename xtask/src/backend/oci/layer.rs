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
use crate::tar::{Content, Entry};

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
    let tar = crate::tar::write(&entries, epoch)?;
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
