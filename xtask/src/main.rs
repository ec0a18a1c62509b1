//! `cargo xtask`: a thin entry point; the engine is the `xtask` library. Exit codes are
//! decided here: 0 success, 1 failure or problems found.

fn main() {
    restore_default_sigpipe();
    match xtask::run(std::env::args().skip(1)) {
        Ok(xtask::Outcome::Success) => {}
        Ok(xtask::Outcome::ProblemsFound) => std::process::exit(1),
        Err(err) => {
            eprintln!("{}", xtask::format_error(&err));
            std::process::exit(1);
        }
    }
}

/// Lets `cargo xtask doctor | head` end quietly, as Unix tools do, instead of panicking
/// on a closed stdout.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: resetting SIGPIPE to its default disposition before any thread starts.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}
