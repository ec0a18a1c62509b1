//! Which workspace files a `build = "container"` context holds: the sources, without the
//! target dir and `.git`, filtered by `.dockerignore` as Docker reads it.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

/// One `.dockerignore` line: a glob over `/`-separated components; `!` re-includes.
#[derive(Debug, Clone)]
struct Pattern {
    components: Vec<String>,
    include: bool,
}

/// The parsed `.dockerignore`; the last matching pattern decides.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> DockerIgnore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (include, glob) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let components = glob
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .map(str::to_owned)
                    .collect();
                Pattern {
                    components,
                    include,
                }
            })
            .filter(|p| !p.components.is_empty())
            .collect();
        DockerIgnore { patterns }
    }

    /// Whether `path` (relative, `/`-separated) is left out of the context. A pattern that
    /// matches a parent directory matches everything below it, as in Docker.
    pub fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            let matched =
                (1..=parts.len()).any(|n| glob_components(&pattern.components, &parts[..n]));
            if matched {
                excluded = !pattern.include;
            }
        }
        excluded
    }

    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.include)
    }
}

fn glob_components(pattern: &[String], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(p), _) if p == "**" => {
            (0..=path.len()).any(|skip| glob_components(&pattern[1..], &path[skip..]))
        }
        (Some(p), Some(c)) => {
            glob(p.as_bytes(), c.as_bytes()) && glob_components(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

/// Go's `filepath.Match` for one component: `*`, `?`, `[...]` classes and `\` escapes.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let (class, after) = (&rest[..end], &rest[end + 1..]);
            let (negated, class) = match class.split_first() {
                Some((b'^' | b'!', class)) => (true, class),
                _ => (false, class),
            };
            let Some(&c) = name.first() else { return false };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negated && glob(after, &name[1..])
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            name.first() == Some(&rest[0]) && glob(&rest[1..], &name[1..])
        }
        Some((&p, rest)) => name.first() == Some(&p) && glob(rest, &name[1..]),
    }
}

/// Every file of the workspace a container build sees, relative to `root`, sorted.
pub fn source_files(root: &Path, target_dir: &Path) -> Result<Vec<PathBuf>> {
    let ignore = match std::fs::read_to_string(root.join(".dockerignore")) {
        Ok(text) => DockerIgnore::parse(&text),
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
        } else if (kind.is_file() || kind.is_symlink() && root.join(&path).is_file())
            && !ignore.excludes(&slashed)
        {
            debug_assert!(path.components().all(|c| matches!(c, Component::Normal(_))));
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_semantics() {
        let ignore = DockerIgnore::parse(
            "# comment\n*.md\n!README.md\n/docs\n**/*.tmp\nbuild?\n[ab].txt\nsecrets/\n",
        );
        for (path, excluded) in [
            ("notes.md", true),
            ("README.md", false),
            ("sub/notes.md", false),
            ("docs/index.html", true),
            ("a/b/c.tmp", true),
            ("x.tmp", true),
            ("build1", true),
            ("build12", false),
            ("a.txt", true),
            ("c.txt", false),
            ("secrets/key", true),
            ("src/main.rs", false),
        ] {
            assert_eq!(ignore.excludes(path), excluded, "{path}");
        }
    }

    #[test]
    fn globs_like_go() {
        assert!(glob(b"*.rs", b"main.rs"));
        assert!(!glob(b"*.rs", b"main.rsx"));
        assert!(glob(b"[a-c]?", b"bz"));
        assert!(!glob(b"[^a-c]?", b"bz"));
        assert!(glob(b"\\*", b"*"));
        assert!(!glob(b"\\*", b"x"));
    }

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
}
