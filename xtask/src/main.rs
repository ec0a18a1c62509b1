//! `cargo xtask`: a thin entry point; the engine is the `xtask` library.

fn main() {
    if let Err(err) = xtask::run(std::env::args().skip(1)) {
        eprintln!("{}", xtask::format_error(&err));
        std::process::exit(1);
    }
}
