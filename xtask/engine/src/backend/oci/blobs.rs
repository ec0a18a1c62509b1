//! Where an assembled image's blobs live and how they travel. The image's own blobs are
//! files in its layout; a base layer is fetched (streamed and hashed) into the run's shared
//! store once, whichever build asks first, and linked into each layout that needs it. A
//! push sends nothing the registry has, mounts a base layer that lives in another
//! repository of the same registry, and streams the rest from disk: no blob is ever held
//! in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::digest::Digest;
use crate::registry::{Payload, Registry};

/// Base layers fetched at once, per base.
pub(crate) const PARALLEL_FETCHES: usize = 4;

/// How long a run may spend fetching base layers, in all, unless `MULTIARCH_BASE_DEADLINE`
/// (seconds) says otherwise: retries and slow layers spend it, however many layers there are.
pub(crate) const BASE_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// The environment variable that sets [`BASE_DEADLINE`].
pub(crate) const BASE_DEADLINE_VARIABLE: &str = "MULTIARCH_BASE_DEADLINE";

/// The deadline for fetching base layers: `MULTIARCH_BASE_DEADLINE` seconds, else
/// [`BASE_DEADLINE`].
pub(crate) fn base_deadline() -> Result<Duration> {
    let Some(value) = std::env::var_os(BASE_DEADLINE_VARIABLE) else {
        return Ok(BASE_DEADLINE);
    };
    let text = value.to_string_lossy();
    match text.trim().parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(crate::diagnostic::diagnostic(
            format!(
                "{BASE_DEADLINE_VARIABLE}=`{}` is not a number of seconds",
                crate::diagnostic::escape(&text)
            ),
            format!(
                "set it to whole seconds, such as {}",
                BASE_DEADLINE.as_secs()
            ),
        )),
    }
}

/// One blob of an assembled image: its descriptor, and for a base layer, the repository
/// it comes from.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) origin: Option<Arc<Registry>>,
}

impl Blob {
    /// A blob this run wrote into the layout.
    pub(crate) fn own(digest: Digest, size: u64) -> Blob {
        Blob {
            digest,
            size,
            origin: None,
        }
    }
}

/// When a base's layers are downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BaseLayers {
    /// While the image is assembled, so that its layout is complete.
    Fetch,
    /// Only when a push cannot mount them or `--load` needs them (`--push` alone).
    OnDemand,
}

/// How one blob reached a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Sent {
    /// The registry had it.
    Present,
    /// Mounted from the base's repository on the same registry: no bytes moved.
    Mounted,
    /// Streamed from the layout.
    Uploaded,
}

impl Sent {
    /// `2 blobs already there, 1 mounted (382 MiB), 1 uploaded (0 MiB)`: how a push's
    /// blobs went, counted and sized.
    pub(crate) fn summary(sent: &std::collections::BTreeMap<Sent, (usize, u64)>) -> String {
        let parts: Vec<String> = sent
            .iter()
            .map(|(how, (count, bytes))| {
                let what = match how {
                    Sent::Present => "already there",
                    Sent::Mounted => "mounted",
                    Sent::Uploaded => "uploaded",
                };
                let blobs = if *count == 1 { "blob" } else { "blobs" };
                format!(
                    "{count} {blobs} {what} ({:.1} MiB)",
                    *bytes as f64 / f64::from(1 << 20)
                )
            })
            .collect();
        parts.join(", ")
    }
}

/// The run's store of fetched base layers: `target/multiarch/blobs/sha256/`.
pub(crate) struct Store {
    dir: PathBuf,
    /// One lock per digest being fetched, so that a layer is fetched once per run.
    fetching: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
    /// How long fetching may take in all, counted from the run's first fetch.
    deadline: Duration,
    until: OnceLock<Instant>,
}

impl Store {
    pub(crate) fn new(dir: PathBuf, deadline: Duration) -> Store {
        Store {
            dir,
            fetching: Mutex::new(HashMap::new()),
            deadline,
            until: OnceLock::new(),
        }
    }

    /// Fetches a base layer into the store, within the run's deadline for fetching.
    fn fetch(&self, origin: &Registry, blob: &Blob, stored: &Path) -> Result<()> {
        let until = *self.until.get_or_init(|| Instant::now() + self.deadline);
        let fetched = match Instant::now() < until {
            true => origin.fetch_blob(&blob.digest, blob.size, stored, Some(until)),
            false => Err(anyhow::anyhow!("no time was left")),
        };
        match fetched {
            Err(err) if Instant::now() >= until => Err(crate::diagnostic::diagnostic(
                format!(
                    "fetching base layers took longer than this run allows them ({} s in all; {err:#})",
                    self.deadline.as_secs()
                ),
                format!(
                    "use a registry closer to this machine (a mirror of the base), or allow more time with {BASE_DEADLINE_VARIABLE}=SECONDS"
                ),
            )),
            other => other,
        }
    }

    /// Makes sure `blob` is at `layout_blobs/<hex>` and returns that path: a base layer is
    /// fetched into the store (once) and linked there. A file is only ever moved into
    /// place once its digest was checked, so one of the right size is taken as it is.
    pub(crate) fn ensure_local(&self, blob: &Blob, layout_blobs: &Path) -> Result<PathBuf> {
        let path = layout_blobs.join(blob.digest.hex());
        if has_size(&path, blob.size) {
            return Ok(path);
        }
        if blob.origin.is_none() {
            anyhow::bail!(
                "the blob {} of this run is missing from {}",
                blob.digest,
                layout_blobs.display()
            );
        }
        link(&self.fetched(blob)?, &path)?;
        Ok(path)
    }

    /// The store's copy of a base layer, fetched first when the store lacks it (once a run,
    /// however many builds ask at once).
    pub(crate) fn fetched(&self, blob: &Blob) -> Result<PathBuf> {
        let Some(origin) = &blob.origin else {
            anyhow::bail!("the blob {} is no base layer", blob.digest);
        };
        let stored = self.dir.join(blob.digest.hex());
        let lock = {
            let mut fetching = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
            fetching.entry(blob.digest.clone()).or_default().clone()
        };
        {
            let _turn = lock.lock().unwrap_or_else(|e| e.into_inner());
            if !has_size(&stored, blob.size) {
                self.fetch(origin, blob, &stored)
                    .with_context(|| format!("fetching the base layer {}", blob.digest))?;
            }
        }
        Ok(stored)
    }

    /// [`Store::ensure_local`] for every blob, base layers fetched a few at a time.
    pub(crate) fn ensure_all(&self, blobs: &[Blob], layout_blobs: &Path) -> Result<()> {
        self.each_parallel(blobs, |blob| self.ensure_local(blob, layout_blobs))
            .map(drop)
    }

    /// [`Store::fetched`] for every base layer, a few at a time: their paths, in order.
    pub(crate) fn fetched_all(&self, blobs: &[Blob]) -> Result<Vec<PathBuf>> {
        self.each_parallel(blobs, |blob| self.fetched(blob))
    }

    /// `each` of `blobs` on [`PARALLEL_FETCHES`] threads, the results in the blobs' order.
    fn each_parallel(
        &self,
        blobs: &[Blob],
        each: impl Fn(&Blob) -> Result<PathBuf> + Sync,
    ) -> Result<Vec<PathBuf>> {
        let next = AtomicUsize::new(0);
        let work = || -> Result<Vec<(usize, PathBuf)>> {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(blob) = blobs.get(index) else {
                    return Ok(done);
                };
                done.push((index, each(blob)?));
            }
        };
        let workers = PARALLEL_FETCHES.min(blobs.len());
        let mut paths: Vec<(usize, PathBuf)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| anyhow::bail!("a fetch panicked"))
                })
                .collect::<Result<Vec<_>>>()
        })?
        .into_iter()
        .flatten()
        .collect();
        paths.sort_by_key(|(index, _)| *index);
        Ok(paths.into_iter().map(|(_, path)| path).collect())
    }

    /// Sends `blob` to `target`: nothing when it has it, a mount when the blob comes from
    /// another repository of the same registry (and the registry agrees), else its bytes
    /// streamed from the layout, fetched there first when they are not yet.
    pub(crate) fn push(&self, blob: &Blob, layout_blobs: &Path, target: &Registry) -> Result<Sent> {
        if target.has_blob(&blob.digest)? {
            return Ok(Sent::Present);
        }
        if let Some(origin) = blob.origin.as_deref().filter(|o| o.same_registry(target)) {
            if target.mount_blob(&blob.digest, origin.repository())? {
                return Ok(Sent::Mounted);
            }
        }
        let path = self.ensure_local(blob, layout_blobs)?;
        target.send_blob(&blob.digest, Payload::File(&path))?;
        Ok(Sent::Uploaded)
    }
}

fn has_size(path: &Path, size: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}

/// Puts `from` at `to` as a hard link (the store and the layouts share a file system), or a
/// copy where links are not possible.
fn link(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let temporary = crate::layout::temporary_beside(to);
    let made = std::fs::hard_link(from, &temporary)
        .or_else(|_| std::fs::copy(from, &temporary).map(|_| ()))
        .and_then(|()| std::fs::rename(&temporary, to));
    if made.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    made.with_context(|| format!("cannot put {} at {}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_summary_counts_and_sizes_each_way() {
        let sent = [
            (Sent::Present, (2, 2048)),
            (Sent::Mounted, (1, 400 << 20)),
            (Sent::Uploaded, (1, 1 << 20)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            Sent::summary(&sent),
            "2 blobs already there (0.0 MiB), 1 blob mounted (400.0 MiB), 1 blob uploaded (1.0 MiB)"
        );
    }
}
