//! Processes: a program and its arguments (never a shell string), run through xshell, with
//! failures that keep the program's own stderr for classification.

use std::fmt;
use std::path::PathBuf;

use anyhow::Result;
use xshell::{cmd, Shell};

/// A process to run: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment variables set for this process only.
    pub env: Vec<(String, String)>,
}

impl Command {
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Command {
        Command {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }

    /// The xshell command: program, arguments and environment, echo off.
    fn cmd<'a>(&self, sh: &'a Shell) -> xshell::Cmd<'a> {
        let Command { program, args, env } = self;
        let mut command = cmd!(sh, "{program} {args...}").quiet();
        for (key, value) in env {
            command = command.env(key, value);
        }
        command
    }

    /// The failure of a program that could not be started (or waited for).
    fn not_started(&self, err: impl fmt::Display) -> CommandFailed {
        CommandFailed {
            command: self.to_string(),
            status: "not started".into(),
            stdout: String::new(),
            stderr: err.to_string(),
            help: Some(format!(
                "install `{}` or put it on PATH",
                self.program.display()
            )),
            refused: false,
        }
    }

    /// Runs the command; a non-zero exit is a [`CommandFailed`] carrying its output.
    pub fn run(&self, sh: &Shell) -> Result<String> {
        let output = self
            .cmd(sh)
            .ignore_status()
            .output()
            .map_err(|err| self.not_started(err))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        Err(CommandFailed {
            command: self.to_string(),
            status: output.status.to_string(),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            help: None,
            refused: false,
        }
        .into())
    }
}

impl Command {
    /// Runs the command, handing each line of its stderr to `on_line` as it arrives; a
    /// non-zero exit is a [`CommandFailed`] carrying the whole stderr.
    pub fn stream(&self, sh: &Shell, mut on_line: impl FnMut(&str)) -> Result<()> {
        use std::io::BufRead;
        let mut command = std::process::Command::from(self.cmd(sh));
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let not_started = |err| self.not_started(err);
        let mut child = command.spawn().map_err(not_started)?;
        let mut stderr = String::new();
        if let Some(pipe) = child.stderr.take() {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                on_line(&line);
                stderr.push_str(&line);
                stderr.push('\n');
            }
        }
        let status = child.wait().map_err(not_started)?;
        if status.success() {
            return Ok(());
        }
        Err(CommandFailed {
            command: self.to_string(),
            status: status.to_string(),
            stdout: String::new(),
            stderr,
            help: None,
            refused: false,
        }
        .into())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let program = self.program.display().to_string();
        let name = program.rsplit('/').next().unwrap_or(&program);
        for (key, value) in &self.env {
            write!(f, "{key}={} ", shell_quote(value))?;
        }
        // Programs found on PATH are shown by name, as a user would type them.
        f.write_str(&shell_quote(name))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// A process that ran and exited non-zero.
#[derive(Debug, Clone)]
pub struct CommandFailed {
    /// The command line, for messages only.
    pub command: String,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
    /// The fix, when the output says what went wrong.
    pub help: Option<String>,
    /// The program was refused (auth), rather than failing.
    pub refused: bool,
}

impl CommandFailed {
    /// The last lines of its output, indented, for the error message.
    pub fn tail(&self) -> String {
        let combined = format!("{}\n{}", self.stdout, self.stderr);
        let lines: Vec<&str> = combined.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(12)..].join("\n    ")
    }

    /// Whether trying again may help: network trouble and server errors, as the program's
    /// own stderr reports them; refusals (auth, 4xx) are final.
    pub fn is_transient(&self) -> bool {
        let stderr = self.stderr.to_ascii_lowercase();
        let refused = [
            "unauthorized",
            "denied",
            "authentication required",
            "forbidden",
            "manifest invalid",
            "name unknown",
        ];
        let transient = [
            "connection reset",
            "connection refused",
            "eof",
            "i/o timeout",
            "tls handshake timeout",
            "500 internal",
            "502 bad gateway",
            "503 service",
            "504 gateway",
            "received unexpected http status: 5",
        ];
        !refused.iter().any(|r| stderr.contains(r)) && transient.iter().any(|t| stderr.contains(t))
    }
}

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.refused {
            write!(f, "`{}` was refused:\n    {}", self.command, self.tail())
        } else {
            write!(
                f,
                "`{}` exited with {}:\n    {}",
                self.command,
                self.status,
                self.tail()
            )
        }
    }
}

impl std::error::Error for CommandFailed {}

/// Whether an error chain holds a failed process that is worth retrying.
pub fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<CommandFailed>()
            .is_some_and(CommandFailed::is_transient)
    })
}

/// Quotes a word for display the way a POSIX shell would read it back.
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stderr: &str, command: &str) -> CommandFailed {
        CommandFailed {
            command: command.into(),
            status: "exit status: 1".into(),
            stdout: String::new(),
            stderr: stderr.into(),
            help: None,
            refused: false,
        }
    }

    #[test]
    fn transient_and_refused_failures_are_told_from_stderr_only() {
        assert!(failed("error: read: connection reset by peer", "docker push x").is_transient());
        assert!(failed(
            "received unexpected HTTP status: 503 Service Unavailable",
            "x"
        )
        .is_transient());
        assert!(!failed("unauthorized: authentication required", "x").is_transient());
        assert!(!failed("denied: requested access to the resource is denied", "x").is_transient());
        assert!(!failed("manifest invalid", "x").is_transient());
        // A repository whose name reads like a network failure is not one.
        assert!(!failed("name unknown", "docker push r/timeout-service-eof:1").is_transient());
        assert!(!failed("some other failure", "docker push r/timeout-eof:1").is_transient());
    }

    #[test]
    fn quoting_round_trips_through_a_shell_reading() {
        assert_eq!(shell_quote("plain-arg_1.0"), "plain-arg_1.0");
        assert_eq!(shell_quote("has space"), "'has space'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("{{.Id}}"), "'{{.Id}}'");
    }
}
