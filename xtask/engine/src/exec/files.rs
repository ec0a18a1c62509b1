//! File steps of a plan: contexts pruned to what was planned, files written atomically and
//! only when they change, so Docker's cache stays warm.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Creates `dir` and removes every file below it that `keep` does not list, then the
/// directories left empty.
pub(crate) fn prune(dir: &Path, keep: &[PathBuf]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let keep: std::collections::HashSet<&Path> = keep.iter().map(PathBuf::as_path).collect();
    prune_below(dir, Path::new(""), &keep)?;
    Ok(())
}

/// Returns whether `dir/relative` is empty afterwards.
fn prune_below(
    dir: &Path,
    relative: &Path,
    keep: &std::collections::HashSet<&Path>,
) -> Result<bool> {
    let mut empty = true;
    for entry in std::fs::read_dir(dir.join(relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        let full = dir.join(&path);
        if entry.file_type()?.is_dir() {
            if prune_below(dir, &path, keep)? {
                std::fs::remove_dir(&full)
                    .with_context(|| format!("cannot remove {}", full.display()))?;
            } else {
                empty = false;
            }
        } else if keep.contains(path.as_path()) {
            empty = false;
        } else {
            std::fs::remove_file(&full)
                .with_context(|| format!("cannot remove stale {}", full.display()))?;
        }
    }
    Ok(empty)
}

/// Writes atomically (temporary file, then rename) and only when the content differs, so
/// unchanged files keep their timestamps and Docker's cache stays warm.
pub(crate) fn write_if_changed(path: &Path, contents: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = crate::layout::temporary_beside(path);
    // An interrupt removes the temporary file; so does any failure here.
    let _guard = crate::process::Temporary::new(&temporary);
    let written = std::fs::write(&temporary, contents)
        .with_context(|| format!("cannot write {}", temporary.display()))
        .and_then(|()| {
            std::fs::rename(&temporary, path)
                .with_context(|| format!("cannot move {} into place", path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Copies a file like [`copy_if_changed`], or reproduces a symlink as the same link
/// without ever reading what it points at, as Docker sends links in a context.
pub(crate) fn mirror_if_changed(from: &Path, to: &Path) -> Result<()> {
    let metadata = std::fs::symlink_metadata(from)
        .with_context(|| format!("cannot read {}", from.display()))?;
    if !metadata.file_type().is_symlink() {
        return copy_if_changed(from, to);
    }
    let target = std::fs::read_link(from)?;
    if std::fs::read_link(to).is_ok_and(|existing| existing == target) {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = crate::layout::temporary_beside(to);
    std::os::unix::fs::symlink(&target, &temporary)
        .with_context(|| format!("cannot create the link {}", temporary.display()))?;
    std::fs::rename(&temporary, to)
        .with_context(|| format!("cannot move {} into place", to.display()))
}

pub(crate) fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let contents =
        std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write_if_changed(to, &contents)?;
    let mode = std::fs::metadata(from)?.permissions();
    std::fs::set_permissions(to, mode)?;
    Ok(())
}

/// Takes the workspace's run lock (`target/multiarch/.lock`), waiting for another run on
/// the same workspace to finish first and saying so. The lock ends with the returned file.
pub(crate) fn lock_workspace(target_dir: &Path) -> Result<std::fs::File> {
    let layout = crate::layout::Layout::new(target_dir);
    let path = layout.lock();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the run lock {}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!(
            "waiting for another multiarch run on this workspace to finish (lock: {})",
            path.display()
        );
        file.lock()
            .with_context(|| format!("cannot take the run lock {}", path.display()))?;
    }
    // Scratch that earlier versions kept for curl (`.http`) goes; this run has none.
    let scratch = layout.legacy_scratch();
    if scratch.exists() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    remove_stale_temporaries(layout.root());
    Ok(file)
}

/// Removes the temporary files (`*.multiarch-tmp`) that runs killed before they could
/// clean up left under `dir`: with the lock held, no other run is writing any.
fn remove_stale_temporaries(dir: &Path) {
    let mut files = Vec::new();
    if walk(dir, Path::new(""), &mut files).is_err() {
        return;
    }
    let ours = format!(".{}.", std::process::id());
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".multiarch-tmp") && !name.contains(&ours) {
            let _ = std::fs::remove_file(dir.join(&file));
        }
    }
}

/// Every file (and link, not followed) below `dir/relative`, as paths relative to `dir`.
pub(crate) fn walk(dir: &Path, relative: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir.join(relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(dir, &path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// What goes into an image from its context: every file's path, mode and content hash (a
/// link's target), in path order, one per line after a NUL; `None` when the context cannot
/// be read.
pub(crate) fn context_material(context: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    walk(context, Path::new(""), &mut files).ok()?;
    files.sort();
    let mut material = Vec::new();
    for file in files {
        let path = context.join(&file);
        let metadata = std::fs::symlink_metadata(&path).ok()?;
        let content = match metadata.file_type().is_symlink() {
            true => std::fs::read_link(&path)
                .ok()?
                .display()
                .to_string()
                .into_bytes(),
            false => std::fs::read(&path).ok()?,
        };
        let mode = metadata.permissions().mode();
        let hex = crate::digest::hex_sha256(&content);
        material.extend(format!("\0{} {mode:o} {hex}", file.display()).as_bytes());
    }
    Some(material)
}

/// The digest of an image build's inputs, as its record carries them: its Dockerfile and
/// every file of its context.
pub(crate) fn inputs_digest(root: &Path, build: &crate::plan::ImageBuild) -> Option<String> {
    let mut material = std::fs::read(root.join(&build.dockerfile)).ok()?;
    material.extend(context_material(&root.join(&build.context))?);
    Some(crate::digest::Digest::of(&material).to_string())
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn contexts_are_written_atomically_and_pruned() {
        let dir = std::env::temp_dir().join(format!("multiarch-runner-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("stale-dir")).unwrap();
        std::fs::write(dir.join("stale"), "x").unwrap();
        std::fs::write(dir.join("hello"), "bin").unwrap();
        std::fs::create_dir_all(dir.join("keep-dir/empty-dir")).unwrap();
        std::fs::write(dir.join("keep-dir/kept"), "k").unwrap();
        prune(
            &dir,
            &["Dockerfile".into(), "hello".into(), "keep-dir/kept".into()],
        )
        .unwrap();
        write_if_changed(&dir.join("Dockerfile"), b"FROM scratch\n").unwrap();
        assert!(!dir.join("keep-dir/empty-dir").exists() && dir.join("keep-dir/kept").exists());
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["Dockerfile", "hello", "keep-dir"]);
        let modified = std::fs::metadata(dir.join("Dockerfile"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        prune(&dir, &["Dockerfile".into()]).unwrap();
        write_if_changed(&dir.join("Dockerfile"), b"FROM scratch\n").unwrap();
        assert_eq!(
            std::fs::metadata(dir.join("Dockerfile"))
                .unwrap()
                .modified()
                .unwrap(),
            modified
        );
        assert_eq!(dir_size(&dir), "FROM scratch\n".len() as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
