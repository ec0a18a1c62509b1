//! `.dockerignore` exactly as Docker reads it (moby's patternmatcher and ignorefile): a
//! leading BOM stripped, `#` comments only at the start of a line, patterns trimmed and
//! cleaned like Go's `filepath.Clean`, `**` across `/`, `!` exceptions, `\` escapes,
//! regexp-style `[...]` classes, and the last matching pattern deciding. Matching runs
//! as a set of states over the pattern, so it takes time linear in the path for every
//! pattern (no backtracking).

use std::fmt;

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    OneInName,
    /// `*`: any run of characters other than `/`.
    AnyInName,
    /// The `.*` of a trailing `**` that follows other wildcards.
    Anything,
    /// The `(.*/)?` of `**`: epsilon to the next token, or to the token after `skip`.
    Fork {
        skip: usize,
    },
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// How Docker matches a pattern: plain ones by comparison, the rest by its regexp.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact,
    /// `dir/**`: everything below `dir/`.
    Prefix(String),
    /// `**/name` (or `**name`): paths ending with the rest.
    Suffix(String),
    Tokens,
}

#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    kind: Kind,
    tokens: Vec<Token>,
    exception: bool,
}

/// A `.dockerignore` file that Docker would reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreError {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for IgnoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// The parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> Result<DockerIgnore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            // Only a `#` in the first column starts a comment; ` #x` is a pattern.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let error = |problem: String| IgnoreError {
                line: index + 1,
                problem,
            };
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if exception && pattern.is_empty() {
                return Err(error("illegal exclusion pattern: \"!\"".into()));
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let (kind, tokens) = compile(&cleaned).map_err(error)?;
            patterns.push(Pattern {
                cleaned,
                kind,
                tokens,
                exception,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether `path` (relative, `/`-separated) is left out of the context: a pattern
    /// that matches a parent directory matches everything below it.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let parents: Vec<&str> = match path.rfind('/') {
            Some(end) => {
                let dir = &path[..end];
                (0..dir.len())
                    .filter(|&i| dir.as_bytes()[i] == b'/')
                    .map(|i| &dir[..i])
                    .chain([dir])
                    .collect()
            }
            None => Vec::new(),
        };
        let mut excluded = false;
        for pattern in &self.patterns {
            // An exception matters only once excluded; a pattern only while not.
            if pattern.exception != excluded {
                continue;
            }
            let matched = pattern.matches(&path) || parents.iter().any(|p| pattern.matches(p));
            if matched {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Tokens => run(&self.tokens, path),
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Translates a cleaned pattern the way patternmatcher builds its regexp.
fn compile(pattern: &str) -> Result<(Kind, Vec<Token>), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut kind = Kind::Exact;
    let mut i = 0;
    while i < chars.len() {
        let first = i == 0;
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    // `**` at the end takes everything, `/` included.
                    if kind == Kind::Exact {
                        kind = Kind::Prefix(chars[..chars.len() - 2].iter().collect());
                    } else {
                        kind = Kind::Tokens;
                    }
                    tokens.push(Token::Anything);
                } else {
                    kind = Kind::Tokens;
                    tokens.extend([
                        Token::Fork { skip: 3 },
                        Token::Anything,
                        Token::Literal('/'),
                    ]);
                }
                if first {
                    kind = Kind::Suffix(chars[2..].iter().collect());
                }
                continue;
            }
            '*' => {
                kind = Kind::Tokens;
                tokens.push(Token::AnyInName);
            }
            '?' => {
                kind = Kind::Tokens;
                tokens.push(Token::OneInName);
            }
            '\\' => match chars.get(i + 1) {
                Some(&next) => {
                    kind = Kind::Tokens;
                    tokens.push(Token::Literal(next));
                    i += 1;
                }
                None => tokens.push(Token::Literal('\\')),
            },
            '[' => {
                kind = Kind::Tokens;
                let (class, end) =
                    class(&chars, i).ok_or_else(|| format!("`{pattern}` has an unclosed `[`"))?;
                tokens.push(class);
                i = end;
            }
            ']' => {
                return Err(format!("`{pattern}` has a `]` without its `[`"));
            }
            other => tokens.push(Token::Literal(other)),
        }
        i += 1;
    }
    // A later wildcard makes a `**`-first pattern a regexp after all.
    if matches!(kind, Kind::Suffix(_))
        && tokens
            .iter()
            .skip(3)
            .any(|t| !matches!(t, Token::Literal(_)))
    {
        kind = Kind::Tokens;
    }
    if let Kind::Suffix(suffix) = &kind {
        if suffix.contains('\\') {
            kind = Kind::Tokens;
        }
    }
    Ok((kind, tokens))
}

/// A regexp character class starting at `chars[start] == '['`; returns it and the index
/// of its `]`. As in Go's regexp, `^` negates and `!` is a plain character.
fn class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start + 1;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let mut c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Token::Class { negated, ranges }, i));
        }
        first = false;
        if c == '\\' {
            i += 1;
            c = *chars.get(i)?;
        }
        let mut high = c;
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&h| h != ']') {
            high = chars[i + 2];
            i += 2;
            if high < c {
                return None;
            }
        }
        ranges.push((c, high));
        i += 1;
    }
}

/// Runs the tokens over `text` as a set of states: O(tokens × characters).
fn run(tokens: &[Token], text: &str) -> bool {
    let mut states = vec![false; tokens.len() + 1];
    states[0] = true;
    close(tokens, &mut states);
    for c in text.chars() {
        let mut next = vec![false; tokens.len() + 1];
        for (at, token) in tokens.iter().enumerate() {
            if !states[at] {
                continue;
            }
            match token {
                Token::Literal(l) if *l == c => next[at + 1] = true,
                Token::OneInName if c != '/' => next[at + 1] = true,
                Token::AnyInName if c != '/' => next[at] = true,
                // Go's `.` stops at a newline.
                Token::Anything if c != '\n' => next[at] = true,
                Token::Class { negated, ranges } => {
                    let inside = ranges.iter().any(|&(low, high)| low <= c && c <= high);
                    if inside != *negated {
                        next[at + 1] = true;
                    }
                }
                _ => {}
            }
        }
        close(tokens, &mut next);
        if !next.iter().any(|&s| s) {
            return false;
        }
        states = next;
    }
    states[tokens.len()]
}

/// Adds the states reachable without reading a character.
fn close(tokens: &[Token], states: &mut [bool]) {
    for at in 0..tokens.len() {
        if !states[at] {
            continue;
        }
        match tokens[at] {
            Token::AnyInName | Token::Anything => states[at + 1] = true,
            Token::Fork { skip } => {
                states[at + 1] = true;
                states[at + skip] = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(ignore: &str, path: &str) -> bool {
        DockerIgnore::parse(ignore).unwrap().excludes(path)
    }

    /// Docker's documented examples (docs.docker.com, "Dockerignore files") and moby's
    /// patternmatcher tests, as (pattern file, path, excluded).
    #[test]
    fn matches_like_docker() {
        let table: &[(&str, &str, bool)] = &[
            // Documented examples.
            ("*/temp*", "somedir/temporary.txt", true),
            ("*/temp*", "somedir/temp", true),
            ("*/temp*", "temp", false),
            ("*/*/temp*", "somedir/subdir/temporary.txt", true),
            ("temp?", "tempa", true),
            ("temp?", "tempab", false),
            ("**/*.go", "main.go", true),
            ("**/*.go", "a/b/c.go", true),
            ("*.md\n!README.md", "README.md", false),
            ("*.md\n!README.md", "CHANGES.md", true),
            (
                "*.md\n!README*.md\nREADME-secret.md",
                "README-secret.md",
                true,
            ),
            (
                "*.md\n!README*.md\nREADME-secret.md",
                "README-public.md",
                false,
            ),
            (
                "*.md\nREADME-secret.md\n!README*.md",
                "README-secret.md",
                false,
            ),
            // Parents: a match on a directory takes everything below it.
            ("docs", "docs/a/b.md", true),
            ("docs/", "docs/a/b.md", true),
            ("/docs", "docs/a.md", true),
            ("docs", "src/docs", false),
            // `**` inside a name crosses `/`; `*` does not.
            ("**.key", "sub/dir/server.key", true),
            ("a**/*.txt", "ab/c/d.txt", true),
            ("a*/*.txt", "ab/c/d.txt", false),
            ("dir/**", "dir/a/b", true),
            ("dir/**", "dirx/a", false),
            ("**/secret", "secret", true),
            ("**/secret", "a/b/secret", true),
            ("**/secret", "a/notsecret", false),
            // Cleaning: `..`, `.`, doubled slashes.
            ("docs/../secret.txt", "secret.txt", true),
            ("./a//b/", "a/b", true),
            // Comments only in the first column; a leading space makes a pattern.
            ("#x", "#x", false),
            (" #x", "#x", true),
            // Classes are regexp classes: `^` negates, `!` is literal.
            ("[!a].txt", "b.txt", false),
            ("[!a].txt", "!.txt", true),
            ("[^a].txt", "b.txt", true),
            ("[^a].txt", "a.txt", false),
            ("[a-c]?", "bz", true),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("a.b", "axb", false),
            ("a+b", "a+b", true),
        ];
        for (ignore, path, expected) in table {
            assert_eq!(excluded(ignore, path), *expected, "{ignore:?} vs {path}");
        }
    }

    #[test]
    fn a_bom_is_stripped() {
        assert!(excluded("\u{feff}.env\n", ".env"));
    }

    #[test]
    fn a_lone_exclamation_mark_and_broken_classes_are_errors_with_their_line() {
        let error = DockerIgnore::parse("*.md\n!\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert_eq!(error.problem, "illegal exclusion pattern: \"!\"");
        assert_eq!(DockerIgnore::parse("ok\n! \n").unwrap_err().line, 2);
        assert_eq!(DockerIgnore::parse("[ab\n").unwrap_err().line, 1);
        assert!(DockerIgnore::parse("[z-a]\n").is_err());
    }

    #[test]
    fn cleaning_is_go_filepath_clean() {
        for (path, cleaned) in [
            ("a/../b", "b"),
            ("../a", "../a"),
            ("a/b/../../..", ".."),
            ("/../a", "/a"),
            ("", "."),
            ("./", "."),
            ("a//b/./c/", "a/b/c"),
        ] {
            assert_eq!(clean(path), cleaned, "{path}");
        }
    }

    #[test]
    fn matching_is_linear() {
        let ignore = DockerIgnore::parse("*a*a*a*a*a*a*a*a*a*a*b\n**a**a**a**a**a**b\n").unwrap();
        let name = "a".repeat(5000);
        let started = std::time::Instant::now();
        assert!(!ignore.excludes(&name));
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
}
