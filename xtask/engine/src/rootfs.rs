//! A base image's file system as the start check needs it, read layer by layer from its
//! tars (gzip or not, streamed): which paths exist (files, directories, links, whiteouts
//! applied) and which glibc each C library there provides. Nothing is extracted but a
//! C library's headers, read from a scratch file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use crate::tar::Kind;

/// The directories a dynamic loader searches without configuration, and the multiarch
/// ones Debian and Ubuntu add through `/etc/ld.so.conf.d`.
const LIBRARY_DIRS: &[&str] = &[
    "lib",
    "lib64",
    "usr/lib",
    "usr/lib64",
    "usr/local/lib",
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib/arm-linux-gnueabihf",
    "usr/lib/arm-linux-gnueabihf",
    "lib/riscv64-linux-gnu",
    "usr/lib/riscv64-linux-gnu",
    "lib/powerpc64le-linux-gnu",
    "usr/lib/powerpc64le-linux-gnu",
    "lib/s390x-linux-gnu",
    "usr/lib/s390x-linux-gnu",
    "lib/i386-linux-gnu",
    "usr/lib/i386-linux-gnu",
];

/// The largest C library read for its version definitions.
const LIBC_LIMIT: u64 = 64 << 20;

/// What one path is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File,
    Directory,
    Link(String),
}

/// The merged file system of a base's layers.
#[derive(Debug, Default)]
pub struct Rootfs {
    nodes: BTreeMap<String, Node>,
    /// The glibc version each C library file (`libc.so.6`, `libc-2.31.so`) defines.
    libc: BTreeMap<String, (u32, u32)>,
}

impl Rootfs {
    /// Applies one layer on top: its tar, gzip-compressed or not. A C library's bytes go
    /// through `scratch` (a file path) to be read.
    pub fn apply_layer(&mut self, layer: impl Read, scratch: &Path) -> Result<()> {
        let mut layer = std::io::BufReader::new(layer);
        let gzip = std::io::BufRead::fill_buf(&mut layer)?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read> = match gzip {
            true => Box::new(flate2::read::GzDecoder::new(layer)),
            false => Box::new(layer),
        };
        crate::tar::scan(reader, |entry, data| self.apply_entry(entry, data, scratch))
    }

    fn apply_entry(
        &mut self,
        entry: &crate::tar::Scanned,
        data: &mut dyn Read,
        scratch: &Path,
    ) -> Result<()> {
        let (dir, name) = match entry.path.rsplit_once('/') {
            Some((dir, name)) => (dir, name),
            None => ("", entry.path.as_str()),
        };
        if name == ".wh..wh..opq" {
            let prefix = format!("{dir}/");
            self.nodes.retain(|path, _| !path.starts_with(&prefix));
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let path = join(dir, hidden);
            let prefix = format!("{path}/");
            self.nodes
                .retain(|p, _| *p != path && !p.starts_with(&prefix));
            self.libc.retain(|p, _| *p != path);
            return Ok(());
        }
        let node = match &entry.kind {
            Kind::Directory => Node::Directory,
            Kind::Symlink(target) => Node::Link(target.clone()),
            Kind::File | Kind::Hardlink(_) => Node::File,
            Kind::Other => return Ok(()),
        };
        if node == Node::File && is_libc(name) {
            let provided = match &entry.kind {
                Kind::Hardlink(target) => self.libc.get(target).copied(),
                _ => provided_glibc(data, entry.size, scratch)?,
            };
            match provided {
                Some(version) => self.libc.insert(entry.path.clone(), version),
                None => self.libc.remove(&entry.path),
            };
        }
        self.nodes.insert(entry.path.clone(), node);
        Ok(())
    }

    /// What `path` (absolute or not) is once every link on the way is followed, or `None`
    /// when it does not exist.
    fn resolve(&self, path: &str) -> Option<(String, Node)> {
        let mut pending: Vec<String> = components(path);
        pending.reverse();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(component);
            let current = resolved.join("/");
            // A directory a layer leaves implicit is still a directory.
            match self.nodes.get(&current).unwrap_or(&Node::Directory) {
                Node::Link(target) => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    resolved.pop();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    let mut next = components(target);
                    next.reverse();
                    pending.extend(next);
                }
                Node::File if !pending.is_empty() => return None,
                _ => {}
            }
        }
        let path = resolved.join("/");
        let node = self.nodes.get(&path).cloned()?;
        Some((path, node))
    }

    /// Whether `path` leads to a file.
    pub fn has_file(&self, path: &str) -> bool {
        matches!(self.resolve(path), Some((_, Node::File)))
    }

    /// Where the loader would find the library `name`, if anywhere.
    pub fn find_library(&self, name: &str) -> Option<String> {
        LIBRARY_DIRS
            .iter()
            .map(|dir| format!("{dir}/{name}"))
            .find_map(|path| match self.resolve(&path)? {
                (resolved, Node::File) => Some(resolved),
                _ => None,
            })
    }

    /// The glibc the base's `libc.so.6` provides, found as the loader would find it.
    pub fn glibc(&self) -> Option<(u32, u32)> {
        let libc = self.find_library("libc.so.6")?;
        self.libc.get(&libc).copied()
    }
}

/// The file system of the one image in a `docker image save` archive at `archive` (Docker's
/// format, whose layers are tars, or an OCI layout inside a tar, as Docker 25 and later
/// write it), its layers applied in the order its `manifest.json` gives.
/// Returns it with the image's config (its `os`, `architecture` and `variant`).
pub fn from_image_archive(archive: &Path, scratch: &Path) -> Result<(Rootfs, serde_json::Value)> {
    let archive = crate::tar::Indexed::scan(archive)?;
    let manifest: serde_json::Value = archive
        .read("manifest.json", 4 << 20)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .context("the archive's manifest.json is missing or not JSON")?;
    let config = archive.read(manifest[0]["Config"].as_str().unwrap_or_default(), 4 << 20)?;
    let config: serde_json::Value =
        serde_json::from_slice(&config).context("the image's config is not JSON")?;
    let mut rootfs = Rootfs::default();
    for layer in manifest[0]["Layers"].as_array().into_iter().flatten() {
        rootfs.apply_layer(archive.open(layer.as_str().unwrap_or_default())?, scratch)?;
    }
    Ok((rootfs, config))
}

/// `libc.so.6`, or glibc before 2.34's real file `libc-2.31.so`.
fn is_libc(name: &str) -> bool {
    name == "libc.so.6" || (name.starts_with("libc-2.") && name.ends_with(".so"))
}

/// The glibc version a C library defines: its bytes copied to `scratch`, then read.
fn provided_glibc(data: &mut dyn Read, size: u64, scratch: &Path) -> Result<Option<(u32, u32)>> {
    if size > LIBC_LIMIT {
        return Ok(None);
    }
    let mut file = std::fs::File::create(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    std::io::copy(data, &mut file)?;
    drop(file);
    let provided = crate::elf::read(scratch)
        .ok()
        .and_then(|n| n.provides_glibc);
    let _ = std::fs::remove_file(scratch);
    Ok(provided)
}

fn components(path: &str) -> Vec<String> {
    path.split('/').map(str::to_owned).collect()
}

fn join(dir: &str, name: &str) -> String {
    match dir {
        "" => name.to_owned(),
        dir => format!("{dir}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::{Content, Entry};

    fn layer(entries: &[(&str, Content)]) -> Vec<u8> {
        let entries: Vec<(String, Entry)> = entries
            .iter()
            .map(|(path, content)| {
                let entry = Entry {
                    content: content.clone(),
                    mode: 0o755,
                    owner: (0, 0),
                };
                (path.to_string(), entry)
            })
            .collect();
        let mut tar = Vec::new();
        crate::tar::write_to(&mut tar, entries.iter().map(|(p, e)| (p, e)), 0).unwrap();
        tar
    }

    #[test]
    fn links_across_layers_resolve_and_whiteouts_remove() {
        let scratch = std::env::temp_dir().join(format!("multiarch-rootfs-{}", std::process::id()));
        let mut rootfs = Rootfs::default();
        // Merged /usr, as Debian 12 has it.
        let base = layer(&[
            ("lib", Content::Link("usr/lib".into())),
            ("lib64", Content::Link("usr/lib64".into())),
            (
                "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                Content::Bytes(b"ld".to_vec()),
            ),
            (
                "usr/lib64/ld-linux-x86-64.so.2",
                Content::Link("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into()),
            ),
            (
                "usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
                Content::Bytes(b"gcc".to_vec()),
            ),
            (
                "usr/lib/x86_64-linux-gnu/libz.so.1",
                Content::Link("libz.so.1.2.13".into()),
            ),
        ]);
        rootfs.apply_layer(&base[..], &scratch).unwrap();
        assert!(rootfs.has_file("/lib64/ld-linux-x86-64.so.2"));
        assert_eq!(
            rootfs.find_library("libgcc_s.so.1").as_deref(),
            Some("usr/lib/x86_64-linux-gnu/libgcc_s.so.1")
        );
        // A dangling link is no library; a later layer can add what it points at.
        assert_eq!(rootfs.find_library("libz.so.1"), None);
        let top = layer(&[
            (
                "usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
                Content::Bytes(b"z".to_vec()),
            ),
            (
                "usr/lib/x86_64-linux-gnu/.wh.libgcc_s.so.1",
                Content::Bytes(Vec::new()),
            ),
        ]);
        rootfs.apply_layer(&top[..], &scratch).unwrap();
        assert!(rootfs.find_library("libz.so.1").is_some());
        assert_eq!(rootfs.find_library("libgcc_s.so.1"), None);
        assert!(!rootfs.has_file("/lib/ld-musl-x86_64.so.1"));
        assert_eq!(rootfs.glibc(), None);
    }

    #[test]
    fn the_hosts_c_library_gives_its_glibc_version() {
        let Some(libc) = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists()) else {
            return;
        };
        let bytes = std::fs::read(libc).unwrap();
        let dir = libc
            .parent()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('/')
            .to_owned();
        let scratch =
            std::env::temp_dir().join(format!("multiarch-rootfs-libc-{}", std::process::id()));
        let mut rootfs = Rootfs::default();
        let tar = layer(&[(&format!("{dir}/libc.so.6"), Content::Bytes(bytes))]);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, &tar).unwrap();
        rootfs
            .apply_layer(&gzip.finish().unwrap()[..], &scratch)
            .unwrap();
        let version = rootfs.glibc().expect("a version");
        assert!(version >= (2, 17), "{version:?}");
    }
}
