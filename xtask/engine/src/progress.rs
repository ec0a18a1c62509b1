//! Progress lines for long transfers: a blob that takes more than a few seconds to fetch
//! or upload says on stderr how far it is (bytes, rate, time left) every few seconds.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A transfer says nothing until it has run this long.
const QUIET: Duration = Duration::from_secs(3);
/// Then one line at most this often.
const EVERY: Duration = Duration::from_secs(5);

/// How far one transfer of `total` bytes is.
pub(crate) struct Progress {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    said: Option<Instant>,
}

impl Progress {
    pub(crate) fn new(label: &str, total: u64) -> Progress {
        Progress {
            label: label.to_owned(),
            total,
            done: 0,
            started: Instant::now(),
            said: None,
        }
    }

    /// Counts `bytes` more, printing a line when one is due.
    pub(crate) fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        let now = Instant::now();
        let due = match self.said {
            None => now.duration_since(self.started) >= QUIET,
            Some(said) => now.duration_since(said) >= EVERY,
        };
        if due && !self.label.is_empty() {
            self.said = Some(now);
            eprintln!("  {}", self.line(now.duration_since(self.started)));
        }
    }

    /// `<label>: 120 MiB of 400 MiB, 85 MiB/s, about 4 s left`.
    fn line(&self, elapsed: Duration) -> String {
        let rate = self.done as f64 / elapsed.as_secs_f64().max(0.001);
        let left = self.total.saturating_sub(self.done) as f64 / rate.max(1.0);
        format!(
            "{}: {} of {}, {}/s, about {:.0} s left",
            self.label,
            mebibytes(self.done as f64),
            mebibytes(self.total as f64),
            mebibytes(rate),
            left.ceil()
        )
    }
}

fn mebibytes(bytes: f64) -> String {
    format!("{:.0} MiB", bytes / f64::from(1 << 20))
}

/// A reader that counts what is read from it.
pub(crate) struct Reading<R> {
    pub(crate) inner: R,
    pub(crate) progress: Progress,
}

impl<R: Read> Read for Reading<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.progress.advance(read as u64);
        Ok(read)
    }
}

/// A writer that counts what is written to it.
pub(crate) struct Writing<W> {
    pub(crate) inner: W,
    pub(crate) progress: Progress,
}

impl<W: Write> Write for Writing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.progress.advance(written as u64);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_bytes_rate_and_time_left() {
        let mut progress = Progress::new("fetching sha256:abc", 400 << 20);
        progress.done = 100 << 20;
        assert_eq!(
            progress.line(Duration::from_secs(2)),
            "fetching sha256:abc: 100 MiB of 400 MiB, 50 MiB/s, about 6 s left"
        );
    }

    #[test]
    fn counting_leaves_the_bytes_alone() {
        let mut reading = Reading {
            inner: &b"hello"[..],
            progress: Progress::new("", 5),
        };
        let mut read = Vec::new();
        reading.read_to_end(&mut read).unwrap();
        assert_eq!((read.as_slice(), reading.progress.done), (&b"hello"[..], 5));
    }
}
