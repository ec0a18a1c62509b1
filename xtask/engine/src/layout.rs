//! Every path under the target dir's `multiarch/`, spelled once: the run lock, each
//! package's platform contexts, OCI layout and caches, the bake file, the load archive.
//! The target dir is cargo's (`CARGO_TARGET_DIR` and `build.target-dir` honoured), so a
//! run with it elsewhere writes nothing under the workspace.

use std::path::{Path, PathBuf};

/// The cache every workspace shares: `$XDG_CACHE_HOME/multiarch`, else `~/.cache/multiarch`
/// (QEMU binaries, rustc's answers per toolchain).
pub(crate) fn user_cache() -> Option<PathBuf> {
    match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
        (Some(cache), _) if !cache.is_empty() => Some(PathBuf::from(cache).join("multiarch")),
        (_, Some(home)) => Some(PathBuf::from(home).join(".cache/multiarch")),
        _ => None,
    }
}

/// A temporary name beside `path`, unique to this process and call, so that concurrent
/// writers never share one; a run's lock sweeps those of dead runs (`*.multiarch-tmp`).
pub(crate) fn temporary_beside(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(
        ".{name}.{}.{unique}.multiarch-tmp",
        std::process::id()
    ))
}

/// The `multiarch/` directory of one target dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(target_dir: &Path) -> Layout {
        Layout {
            dir: target_dir.join("multiarch"),
        }
    }

    /// The target dir this layout is in.
    pub(crate) fn target_dir(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    /// The `multiarch/` directory itself.
    pub(crate) fn root(&self) -> &Path {
        &self.dir
    }

    /// The run lock: one run per target dir at a time.
    pub(crate) fn lock(&self) -> PathBuf {
        self.dir.join(".lock")
    }

    /// Where versions before the built-in HTTP client kept curl's scratch files.
    pub(crate) fn legacy_scratch(&self) -> PathBuf {
        self.dir.join(".http")
    }

    /// One package's directory.
    pub(crate) fn package(&self, package: &str) -> PathBuf {
        self.dir.join(package)
    }

    /// A platform's build context (`slug` as `linux-arm-v7`).
    pub(crate) fn context(&self, package: &str, slug: &str) -> PathBuf {
        self.package(package).join(slug)
    }

    /// A package's OCI image layout, written by the OCI backend.
    pub(crate) fn oci_layout(&self, package: &str) -> PathBuf {
        self.package(package).join("oci")
    }

    /// Which gzip blob each uncompressed layer (by its `diff_id`) was compressed to, so an
    /// unchanged layer is not compressed again.
    pub(crate) fn layer_cache(&self, package: &str) -> PathBuf {
        self.package(package).join("layers")
    }

    /// A package's SBOMs, one CycloneDX and one SPDX document per platform.
    pub(crate) fn sbom(&self, package: &str) -> PathBuf {
        self.package(package).join("sbom")
    }

    /// The native-code answer cached per lockfile.
    pub(crate) fn native_cache(&self, package: &str) -> PathBuf {
        self.package(package).join("native-code.json")
    }

    /// The bake file of one package, or of a run that bakes several.
    pub(crate) fn bake_file(&self, package: Option<&str>) -> PathBuf {
        match package {
            Some(package) => self.package(package).join("bake.json"),
            None => self.dir.join("bake.json"),
        }
    }

    /// The base layers a run fetched, shared by every package's layout (which links them).
    pub(crate) fn blob_store(&self) -> PathBuf {
        self.dir.join("blobs/sha256")
    }

    /// Which gzipped blob of the store each plain layer an engine saved became: files
    /// named by the plain layer's digest, naming the blob's.
    pub(crate) fn gzipped_layers(&self) -> PathBuf {
        self.dir.join("blobs/gzipped")
    }

    /// Where `docker image save` writes one platform's image on its way to a registry.
    pub(crate) fn saved_image(&self, package: &str, slug: &str) -> PathBuf {
        self.dir.join("saved").join(format!("{package}-{slug}.tar"))
    }

    /// Where `image --push-by-digest` writes its records unless told otherwise.
    pub(crate) fn records(&self) -> PathBuf {
        self.dir.join("records")
    }

    /// The archive `--load` hands to `docker load`.
    pub(crate) fn load_archive(&self) -> PathBuf {
        self.dir.join("load.tar")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_target_dirs_multiarch() {
        let layout = Layout::new(Path::new("/t"));
        assert_eq!(layout.lock(), Path::new("/t/multiarch/.lock"));
        assert_eq!(
            layout.context("api", "linux-arm-v7"),
            Path::new("/t/multiarch/api/linux-arm-v7")
        );
        assert_eq!(layout.oci_layout("api"), Path::new("/t/multiarch/api/oci"));
        assert_eq!(
            layout.native_cache("api"),
            Path::new("/t/multiarch/api/native-code.json")
        );
        assert_eq!(
            layout.bake_file(Some("api")),
            Path::new("/t/multiarch/api/bake.json")
        );
        assert_eq!(layout.bake_file(None), Path::new("/t/multiarch/bake.json"));
        assert_eq!(layout.load_archive(), Path::new("/t/multiarch/load.tar"));
    }
}
