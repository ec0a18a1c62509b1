//! Which workspace files a context holds: for `build = "container"` the sources, without
//! the target dir and `.git`, filtered by `.dockerignore` as Docker reads it; and the
//! `files` every context gets, checked before anything is built.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::diagnostic::diagnostic;
use crate::plan::dockerignore::DockerIgnore;

/// Every file of the workspace a container build sees, relative to `root`, sorted.
pub(crate) fn source_files(root: &Path, target_dir: &Path) -> Result<Vec<PathBuf>> {
    let path = root.join(".dockerignore");
    let ignore = match std::fs::read_to_string(&path) {
        Ok(text) => DockerIgnore::parse(&text).map_err(|err| {
            diagnostic(
                format!("{}:{}: {}", path.display(), err.line, err.problem),
                "fix the pattern; Docker rejects this file too",
            )
        })?,
        Err(_) => DockerIgnore::default(),
    };
    let target = target_dir.strip_prefix(root).ok().map(Path::to_path_buf);
    let mut files = Vec::new();
    walk(root, Path::new(""), &ignore, target.as_deref(), &mut files)?;
    files.sort();
    Ok(files)
}

fn walk(
    root: &Path,
    relative: &Path,
    ignore: &DockerIgnore,
    target: Option<&Path>,
    files: &mut Vec<PathBuf>,
) -> Result<()> {
    let dir = root.join(relative);
    let entries =
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        let slashed = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let kind = entry.file_type()?;
        if path == Path::new(".git") || Some(path.as_path()) == target {
            continue;
        }
        if kind.is_dir() {
            // Without `!` exceptions an excluded directory has nothing to re-include.
            if ignore.has_exceptions() || !ignore.excludes(&slashed) {
                walk(root, &path, ignore, target, files)?;
            }
        } else if (kind.is_file() || kind.is_symlink()) && !ignore.excludes(&slashed) {
            // A symlink is sent as the link, as Docker does; its target is never read.
            debug_assert!(path.components().all(|c| matches!(c, Component::Normal(_))));
            files.push(path);
        }
    }
    Ok(())
}

/// Checks the config's `files` before anything is built: each must be a regular file (or
/// a symlink, sent as the link) of the workspace, reached through no symlinked directory,
/// not a glob, and not the context's own `Dockerfile`.
pub(crate) fn check_files(
    root: &Path,
    files: &[PathBuf],
    dockerfile_in_context: bool,
) -> Result<()> {
    for file in files {
        let shown = file.display();
        let help_list =
            "list each file of the workspace by its path, such as `config/default.toml`";
        if shown.to_string().contains(['*', '?', '[']) {
            return Err(diagnostic(
                format!("`files` entry `{shown}` is a glob, and `files` takes paths"),
                help_list,
            ));
        }
        if dockerfile_in_context && file == Path::new("Dockerfile") {
            return Err(diagnostic(
                format!(
                    "`files` entry `{shown}` would replace the rendered Dockerfile in the context"
                ),
                "remove it from `files`; the template in `dockerfile` is what the build uses",
            ));
        }
        let mut reached = root.to_path_buf();
        let components: Vec<_> = file.components().collect();
        for (index, component) in components.iter().enumerate() {
            reached.push(component);
            let last = index + 1 == components.len();
            let metadata = std::fs::symlink_metadata(&reached).map_err(|_| {
                diagnostic(
                    format!(
                        "`files` entry `{shown}` does not exist in {}",
                        root.display()
                    ),
                    help_list,
                )
            })?;
            if !last && metadata.file_type().is_symlink() {
                return Err(diagnostic(
                    format!(
                        "`files` entry `{shown}` is reached through the symlink `{}`, which Docker would send as a link",
                        reached.strip_prefix(root).unwrap_or(&reached).display()
                    ),
                    "list the file by its real path inside the workspace",
                ));
            }
            if last && metadata.is_dir() {
                return Err(diagnostic(
                    format!("`files` entry `{shown}` is a directory"),
                    help_list,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_leave_out_target_git_and_ignored_files() {
        let root = std::env::temp_dir().join(format!("multiarch-context-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for file in [
            "Cargo.toml",
            "src/main.rs",
            "target/release/hello",
            ".git/HEAD",
            "notes.tmp",
            "custom-target/x",
            "docs/a.md",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        std::fs::write(root.join(".dockerignore"), "*.tmp\ndocs\n").unwrap();
        let files = source_files(&root, &root.join("custom-target")).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Cargo.toml",
                "src/main.rs",
                "target/release/hello"
            ]
        );
        let files = source_files(&root, &root.join("target")).unwrap();
        assert!(!files.iter().any(|f| f.starts_with("target")));
        assert!(files.iter().any(|f| f.starts_with("custom-target")));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn symlinks_are_listed_as_links_and_bad_files_entries_are_refused() {
        let root = std::env::temp_dir().join(format!("multiarch-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("conf")).unwrap();
        std::fs::write(root.join("conf/app.toml"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("host")).unwrap();
        let sources = source_files(&root, &root.join("target")).unwrap();
        assert!(sources.contains(&PathBuf::from("host")), "{sources:?}");
        assert!(sources.contains(&PathBuf::from("etc")), "{sources:?}");
        assert!(
            !sources
                .iter()
                .any(|s| s.starts_with("etc") && s != Path::new("etc")),
            "{sources:?}"
        );

        assert!(check_files(&root, &[PathBuf::from("conf/app.toml")], true).is_ok());
        assert!(check_files(&root, &[PathBuf::from("host")], true).is_ok());
        for (entry, expected) in [
            ("etc/passwd", "is reached through the symlink `etc`"),
            ("conf/*.toml", "is a glob"),
            ("conf", "is a directory"),
            ("missing.toml", "does not exist"),
            ("Dockerfile", "would replace the rendered Dockerfile"),
        ] {
            let err = check_files(&root, &[PathBuf::from(entry)], true).unwrap_err();
            let diagnostic = crate::diagnostic::Diagnostic::of(&err);
            assert!(
                diagnostic.cause.contains(expected),
                "{entry}: {diagnostic:?}"
            );
            assert!(!diagnostic.help.is_empty(), "{entry}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_bad_dockerignore_names_its_file_and_line() {
        let root = std::env::temp_dir().join(format!("multiarch-ignore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join(".dockerignore"), "*.md\n!\n").unwrap();
        let err = source_files(&root, &root.join("target")).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(".dockerignore:2: illegal exclusion pattern: \"!\""),
            "{err}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
