//! Typed diagnostics: a cause and the fix, kept apart so no caller parses text back.

use std::fmt;

/// An error the user can act on: what failed and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    /// What failed, on one line, lowercase, without a trailing period.
    pub(crate) cause: String,
    /// The fix, shown on a `help:` line.
    pub(crate) help: String,
}

impl Diagnostic {
    pub(crate) fn new(cause: impl Into<String>, help: impl Into<String>) -> Diagnostic {
        Diagnostic {
            cause: cause.into(),
            help: help.into(),
        }
    }

    /// The cause and fix of an error chain: the outermost contexts joined with `: ` before
    /// the innermost cause, and the help of every [`Diagnostic`] in the chain.
    pub(crate) fn of(err: &anyhow::Error) -> Diagnostic {
        let mut causes = Vec::new();
        let mut helps: Vec<String> = Vec::new();
        for cause in err.chain() {
            let failed = cause.downcast_ref::<crate::process::CommandFailed>();
            let (text, help) = match (cause.downcast_ref::<Diagnostic>(), failed) {
                (Some(diagnostic), _) => (diagnostic.cause.clone(), Some(diagnostic.help.clone())),
                (None, Some(failed)) => (failed.to_string(), failed.help.clone()),
                (None, None) => (cause.to_string(), None),
            };
            // A context that repeats its source (anyhow's `{:#}` style) adds nothing.
            if !causes
                .last()
                .is_some_and(|last: &String| last.ends_with(&text))
            {
                causes.push(text);
            }
            if let Some(help) = help.filter(|h| !h.is_empty() && !helps.contains(h)) {
                helps.push(help);
            }
        }
        Diagnostic {
            cause: causes.join(": "),
            help: helps.join("; "),
        }
    }
}

impl fmt::Display for Diagnostic {
    /// Only the cause: the chain formatter adds `help:` lines once, at the end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause)
    }
}

impl std::error::Error for Diagnostic {}

/// Builds an `anyhow::Error` from a cause and a fix.
pub(crate) fn diagnostic(cause: impl Into<String>, help: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Diagnostic::new(cause, help))
}

/// Returns early with a [`Diagnostic`]: `fail!(help = "...", "cause {x}")`.
macro_rules! fail {
    (help = $help:expr, $($cause:tt)+) => {
        return Err($crate::diagnostic::diagnostic(format!($($cause)+), $help).into())
    };
}
pub(crate) use fail;

/// Formats an error chain as `error: outer: inner` and one `help:` line. No line of it can
/// read as a CI runner's command (`::stop-commands::`, `::warning::`), and no control
/// character but the line break reaches the terminal, whatever a message quoted without
/// [`escape`] (a program's output, a peer's answer, the user's input).
pub fn format_error(err: &anyhow::Error) -> String {
    let diagnostic = Diagnostic::of(err);
    let mut message = format!("error: {}", diagnostic.cause);
    if !diagnostic.help.is_empty() {
        message.push_str(&format!("\nhelp: {}", diagnostic.help));
    }
    message
        .lines()
        .map(|line| {
            let line = escape(line);
            match line.trim_start().strip_prefix("::") {
                Some(rest) => format!("  \\:\\:{rest}"),
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Text from the user or a peer, made safe to quote in a message: control characters
/// (newlines included) are shown as escapes, never sent.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn contexts_go_first_and_help_goes_last() {
        let err = Err::<(), _>(diagnostic(
            "rust target `x` is not installed",
            "rustup target add x",
        ))
        .context("checking linux/arm64")
        .unwrap_err();
        assert_eq!(
            format_error(&err),
            "error: checking linux/arm64: rust target `x` is not installed\nhelp: rustup target add x"
        );
        let plain = anyhow::anyhow!("no help here");
        assert_eq!(format_error(&plain), "error: no help here");
        let typed = Diagnostic::of(&err);
        assert_eq!(typed.help, "rustup target add x");
    }

    #[test]
    fn no_control_character_of_a_message_reaches_the_terminal() {
        let err = diagnostic("tag `v1\u{1b}[2J`\tis bad", "fix it").context("[linux/arm64]");
        assert_eq!(
            format_error(&err),
            "error: [linux/arm64]: tag `v1\\u{1b}[2J`\\tis bad\nhelp: fix it"
        );
    }

    #[test]
    fn quoted_input_cannot_start_a_line_or_a_runner_command() {
        assert_eq!(
            escape("a\n::stop-commands::x\r\u{1b}[31m"),
            "a\\n::stop-commands::x\\r\\u{1b}[31m"
        );
        let err = diagnostic("bad tag\n::stop-commands::token", "fix it");
        let message = format_error(&err);
        assert!(
            message.lines().all(|l| !l.trim_start().starts_with("::")),
            "{message}"
        );
    }
}
