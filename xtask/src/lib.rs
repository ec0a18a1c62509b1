//! multiarch: the engine behind `cargo xtask`, which turns this workspace into
//! multi-architecture container images.

pub mod base_images;
pub mod binfmt;
pub mod cli;
pub mod config;
pub mod context;
pub mod docker;
pub mod doctor;
pub mod image;
pub mod init;
pub mod plan;
pub mod platform;
pub mod qemu;
pub mod qemu_fetch;
pub mod render;
pub mod report;
pub mod runner;
pub mod setup;
pub mod sha256;
pub mod template;
pub mod toolchain;
pub mod workspace;

/// Runs one command line (without the program name).
pub fn run(args: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    match cli::parse(args)? {
        cli::Task::Image(args) => image::run(&args),
        cli::Task::Render(args) => render::run(&args),
        cli::Task::QemuFetch(args) => qemu_fetch::run(&args),
        cli::Task::Setup(args) => setup::run(&args),
        cli::Task::Doctor(args) => doctor::run(&args),
        cli::Task::Init(args) => init::run(&args),
        cli::Task::Help => {
            println!("{}", cli::USAGE);
            Ok(())
        }
    }
}

/// Formats an error chain as `error: outer: inner` with every `help:` line after it.
pub fn format_error(err: &anyhow::Error) -> String {
    let mut causes = Vec::new();
    let mut helps = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let mut own = Vec::new();
        for line in text.lines() {
            match line.strip_prefix("help: ") {
                Some(help) if !helps.iter().any(|h| h == help) => helps.push(help.to_owned()),
                Some(_) => {}
                None => own.push(line.to_owned()),
            }
        }
        causes.push(own.join("\n"));
    }
    let mut message = format!("error: {}", causes.join(": "));
    for help in helps {
        message.push_str(&format!("\nhelp: {help}"));
    }
    message
}

/// Splits a message into its cause (one line) and its `help:` lines (joined by `; `).
pub fn split_help(message: &str) -> (String, String) {
    let (cause, help): (Vec<&str>, Vec<&str>) =
        message.lines().partition(|l| !l.starts_with("help: "));
    (
        cause.join(" "),
        help.iter()
            .map(|h| h.trim_start_matches("help: "))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// Compares `actual` with `tests/snapshots/<name>`; `UPDATE_SNAPSHOTS=1` rewrites the file.
#[cfg(test)]
pub(crate) fn assert_snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(expected == actual, "snapshot {} differs (UPDATE_SNAPSHOTS=1 rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}", path.display());
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    #[test]
    fn help_lines_go_last() {
        let err = Err::<(), _>(anyhow::anyhow!(
            "rust target `x` is not installed\nhelp: rustup target add x"
        ))
        .context("checking linux/arm64")
        .unwrap_err();
        assert_eq!(super::format_error(&err), "error: checking linux/arm64: rust target `x` is not installed\nhelp: rustup target add x");
    }

    #[test]
    fn help_lines_become_the_fix() {
        assert_eq!(
            super::split_help("rust target x is missing\nhelp: rustup target add x"),
            (
                "rust target x is missing".to_owned(),
                "rustup target add x".to_owned()
            )
        );
    }
}
