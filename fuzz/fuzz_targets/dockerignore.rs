//! Fuzzes the `.dockerignore` matcher: any file and any path must parse or fail cleanly,
//! never panic, and match in time linear in the input (no backtracking blow-up).

#![no_main]

use libfuzzer_sys::fuzz_target;
use multiarch::plan::dockerignore::DockerIgnore;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The last line is the path; the lines before it are the `.dockerignore`.
    let (patterns, path) = text.rsplit_once('\n').unwrap_or(("", &text));
    let Ok(ignore) = DockerIgnore::parse(patterns) else {
        return;
    };
    let started = std::time::Instant::now();
    let _ = ignore.excludes(path);
    // Linear matching takes microseconds per byte; backtracking takes seconds.
    let budget = std::time::Duration::from_millis(50 + data.len() as u64);
    assert!(started.elapsed() < budget, "{:?} for {} bytes", started.elapsed(), data.len());
});
