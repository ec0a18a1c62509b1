//! Processes: a program and its arguments (never a shell string), run through xshell, each
//! in a process group of its own that an interrupt ends; secrets go on stdin; failures keep
//! the program's own stderr for classification.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use xshell::{cmd, Shell};

/// The process groups of every child still running, and the temporary files being
/// written: what an interrupt must end and remove.
static CHILDREN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
static TEMPORARY: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
/// Set once an interrupt arrived: a child that ends after it ended because of it.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// After an interrupt, the thread that waited for a child waits for the exit instead of
/// reporting the child's failure.
fn park_if_interrupted() {
    while INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Starts `command` in its own process group and records it until it is waited for. On
/// Linux the child gets SIGTERM when the thread that started it dies, even by SIGKILL,
/// which no handler of ours sees.
fn spawn(mut command: std::process::Command) -> std::io::Result<Child> {
    command.process_group(0);
    #[cfg(target_os = "linux")]
    {
        // SAFETY: between fork and exec the closure calls only async-signal-safe
        // functions (prctl, getppid, kill, getpid) and allocates nothing.
        let parent = std::process::id();
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                // The parent may have died before the line above took effect.
                if libc::getppid() as u32 != parent {
                    libc::kill(libc::getpid(), libc::SIGTERM);
                }
                Ok(())
            });
        }
    }
    let child = command.spawn()?;
    lock(&CHILDREN).insert(child.id());
    Ok(Child(child))
}

/// A running child; waiting for it forgets its group.
struct Child(std::process::Child);

impl Child {
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.0.wait();
        lock(&CHILDREN).remove(&self.0.id());
        park_if_interrupted();
        status
    }

    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        let status = self.0.try_wait();
        if !matches!(status, Ok(None)) {
            lock(&CHILDREN).remove(&self.0.id());
            park_if_interrupted();
        }
        status
    }

    /// Ends the child's whole group (the program and anything it started).
    fn kill_group(&mut self) {
        end_group(self.0.id(), libc::SIGKILL);
        let _ = self.0.kill();
        let _ = self.wait();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn end_group(group: u32, signal: i32) {
    if let Ok(group) = i32::try_from(group) {
        // SAFETY: killpg only sends a signal; a group that is gone gives ESRCH.
        unsafe {
            libc::killpg(group, signal);
        }
    }
}

/// A temporary file that an interrupt removes; dropping the guard forgets it.
pub(crate) struct Temporary(PathBuf);

impl Temporary {
    pub(crate) fn new(path: &Path) -> Temporary {
        lock(&TEMPORARY).insert(path.to_path_buf());
        Temporary(path.to_path_buf())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        lock(&TEMPORARY).remove(&self.0);
    }
}

/// On SIGINT, SIGTERM or SIGHUP: ends every child's process group (SIGTERM, then SIGKILL
/// after two seconds), removes temporary files, and exits with 128 + the signal, which
/// also releases the run lock. Installed once per process.
pub(crate) fn end_children_on_interrupt() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                eprintln!("interrupted: ending child processes");
                end_everything();
                std::process::exit(128 + signal);
            }
        });
    });
}

fn end_everything() {
    let groups: Vec<u32> = lock(&CHILDREN).iter().copied().collect();
    for &group in &groups {
        end_group(group, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let alive = |group: u32| {
        // SAFETY: signal 0 only asks whether the group still has a member.
        i32::try_from(group).is_ok_and(|g| unsafe { libc::killpg(g, 0) } == 0)
    };
    while groups.iter().any(|&g| alive(g)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &group in &groups {
        end_group(group, libc::SIGKILL);
    }
    for path in lock(&TEMPORARY).iter() {
        let _ = std::fs::remove_file(path);
    }
}

/// A process to run: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// Environment variables set for this process only.
    pub(crate) env: Vec<(String, String)>,
}

impl Command {
    pub(crate) fn new(
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
    pub(crate) fn run(&self, sh: &Shell) -> Result<String> {
        self.run_inner(sh, None)
    }

    /// Runs the command with `input` (a secret, a key) on its stdin, never its command line.
    pub(crate) fn run_with_stdin(&self, input: &[u8]) -> Result<String> {
        self.run_inner(&Shell::new()?, Some(input))
    }

    fn run_inner(&self, sh: &Shell, input: Option<&[u8]>) -> Result<String> {
        use std::process::Stdio;
        let mut command = std::process::Command::from(self.cmd(sh));
        command
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(command).map_err(|err| self.not_started(err))?;
        if let (Some(input), Some(mut stdin)) = (input, child.0.stdin.take()) {
            // A program that exits without reading gives a broken pipe: its status tells.
            let _ = stdin.write_all(input);
        }
        let (stdout, stderr) = read_both(&mut child.0);
        let status = child.wait().map_err(|err| self.not_started(err))?;
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        if status.success() {
            return Ok(stdout);
        }
        Err(CommandFailed {
            command: self.to_string(),
            status: status.to_string(),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            help: None,
            refused: false,
        }
        .into())
    }

    /// Runs the command for at most `timeout`, then ends its whole process group.
    pub(crate) fn probe(&self, timeout: Duration) -> Probe {
        use std::process::Stdio;
        let Ok(sh) = Shell::new() else {
            return Probe::Failed("cannot create a shell".into());
        };
        let mut command = std::process::Command::from(self.cmd(&sh));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match spawn(command) {
            Ok(child) => child,
            Err(err) => return Probe::Failed(err.to_string()),
        };
        let readers = [
            child
                .0
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .0
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .map(|pipe| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    child.kill_group();
                    return Probe::TimedOut(timeout);
                }
            }
        };
        let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
        if status.success() {
            Probe::Answered(first_line(&stdout))
        } else {
            Probe::Failed(first_line(&stderr))
        }
    }
}

/// Reads a child's stdout and stderr to their ends at once (neither pipe can fill up).
fn read_both(child: &mut std::process::Child) -> (Vec<u8>, Vec<u8>) {
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    });
    let mut stdout = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_end(&mut stdout);
    }
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    (stdout, stderr)
}

/// What a bounded call gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The first line of its stdout.
    Answered(String),
    /// The first line of its stderr.
    Failed(String),
    TimedOut(Duration),
}

impl Probe {
    pub(crate) fn describe(&self) -> String {
        match self {
            Probe::Answered(text) | Probe::Failed(text) => text.clone(),
            Probe::TimedOut(timeout) => format!("no answer within {} s", timeout.as_secs()),
        }
    }
}

/// The first non-empty line of a process's output, trimmed.
pub(crate) fn first_line(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned()
}

impl Command {
    /// Runs the command, handing each line of its stderr to `on_line` as it arrives; a
    /// non-zero exit is a [`CommandFailed`] carrying the whole stderr.
    pub(crate) fn stream(&self, sh: &Shell, mut on_line: impl FnMut(&str)) -> Result<()> {
        use std::io::BufRead;
        let mut command = std::process::Command::from(self.cmd(sh));
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let not_started = |err| self.not_started(err);
        let mut child = spawn(command).map_err(not_started)?;
        let mut stderr = String::new();
        if let Some(pipe) = child.0.stderr.take() {
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
pub(crate) struct CommandFailed {
    /// The command line, for messages only.
    pub(crate) command: String,
    pub(crate) status: String,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// The fix, when the output says what went wrong.
    pub(crate) help: Option<String>,
    /// The program was refused (auth), rather than failing.
    pub(crate) refused: bool,
}

impl CommandFailed {
    /// The last lines of its output, indented, for the error message.
    pub(crate) fn tail(&self) -> String {
        let combined = format!("{}\n{}", self.stdout, self.stderr);
        let lines: Vec<&str> = combined.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(12)..].join("\n    ")
    }

    /// Whether trying again may help: network trouble and server errors, as the program's
    /// own stderr reports them; refusals (auth, 4xx) are final.
    pub(crate) fn is_transient(&self) -> bool {
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
            "429 too many requests",
            "toomanyrequests",
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
pub(crate) fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<CommandFailed>()
            .is_some_and(CommandFailed::is_transient)
    })
}

/// Quotes a word for display the way a POSIX shell would read it back.
pub(crate) fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else if word.chars().any(char::is_control) {
        // Bash's `$'...'`, so a control character (the unit separator of
        // `CARGO_ENCODED_RUSTFLAGS`, say) is seen, not sent to the terminal.
        let mut quoted = String::from("$'");
        for c in word.chars() {
            match c {
                '\\' | '\'' => {
                    quoted.push('\\');
                    quoted.push(c);
                }
                c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => quoted.push(c),
            }
        }
        quoted.push('\'');
        quoted
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
        assert!(failed(
            "toomanyrequests: You have reached your pull rate limit",
            "x"
        )
        .is_transient());
        assert!(failed("unexpected status: 429 Too Many Requests", "x").is_transient());
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
