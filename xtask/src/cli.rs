//! Command-line parsing: a small hand-written parser keeps the first `cargo xtask` build fast.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

pub const USAGE: &str = "\
multiarch: multi-architecture container images of this workspace

usage:
    cargo xtask image [--push] [-p PACKAGE] [--platform P]... [--tag T]... [--image REPO]
                      [--dry-run] [--jobs N] [--json]
    cargo xtask render [-p PACKAGE] [--platform P]...
    cargo xtask qemu fetch [-p PACKAGE] [--platform P]...
    cargo xtask setup [--reset] [-p PACKAGE] [--platform P]...
    cargo xtask doctor [-p PACKAGE] [--platform P]...
    cargo xtask init DIR [--package NAME]
    cargo xtask help

    --push          push every platform's image, then publish one manifest list per tag
    -p, --package   the package to build (default: the one with [package.metadata.multiarch])
    --platform      only these platforms (any spelling: arm64, aarch64, linux/arm/v7...)
    --tag           use these tags instead of the configured ones
    --image         use this repository instead of the configured one
    --dry-run       print every command in order and run none
    --jobs          platforms built at the same time (default: available cores)
    --json          print results as JSON on stdout
    --reset         (setup) replace binfmt handlers that are already registered";

/// The options of every command; each command accepts the subset `parse` allows it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub push: bool,
    pub package: Option<String>,
    pub platforms: Vec<String>,
    pub tags: Vec<String>,
    pub image: Option<String>,
    pub dry_run: bool,
    pub jobs: Option<usize>,
    pub json: bool,
    pub reset: bool,
    /// The directory `init` works on.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Task {
    Image(Args),
    Render(Args),
    QemuFetch(Args),
    Setup(Args),
    Doctor(Args),
    Init(Args),
    Help,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Task> {
    let mut args = args.into_iter().peekable();
    let Some(command) = args.next() else {
        return Ok(Task::Help);
    };
    let (task, allowed): (fn(Args) -> Task, &[&str]) = match command.as_str() {
        "image" => (Task::Image, &["--push", "--dry-run", "--json", "--package", "--platform", "--tag", "--image", "--jobs"]),
        "render" => (Task::Render, &["--package", "--platform"]),
        "qemu" if args.next_if(|a| a == "fetch").is_some() => (Task::QemuFetch, &["--package", "--platform"]),
        "qemu" => bail!("`cargo xtask qemu` needs a subcommand\nhelp: run `cargo xtask qemu fetch`"),
        "setup" => (Task::Setup, &["--reset", "--package", "--platform"]),
        "doctor" => (Task::Doctor, &["--package", "--platform"]),
        "init" => (Task::Init, &["--package", "DIR"]),
        "help" | "--help" | "-h" => return Ok(Task::Help),
        other => bail!(
            "unknown command `{other}`\n\
             help: the commands are image, render, qemu fetch, setup, doctor and init; see `cargo xtask help`"
        ),
    };
    let mut parsed = Args::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let flag = match flag.as_str() {
            "-p" => "--package".to_owned(),
            "-j" => "--jobs".to_owned(),
            _ if !flag.starts_with('-') && allowed.contains(&"DIR") && parsed.dir.is_none() => {
                parsed.dir = Some(PathBuf::from(&arg));
                continue;
            }
            _ => flag,
        };
        if !allowed.contains(&flag.as_str()) {
            bail!("unknown option `{arg}` for `{command}`\nhelp: see `cargo xtask help`");
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("`{flag}` needs a value\nhelp: see `cargo xtask help`"))
        };
        match flag.as_str() {
            "--push" => parsed.push = true,
            "--dry-run" => parsed.dry_run = true,
            "--json" => parsed.json = true,
            "--reset" => parsed.reset = true,
            "--package" => parsed.package = Some(value()?),
            "--platform" => parsed.platforms.push(value()?),
            "--tag" => parsed.tags.push(value()?),
            "--image" => parsed.image = Some(value()?),
            "--jobs" => {
                let jobs = value()?;
                parsed.jobs = match jobs.parse::<usize>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => bail!("`--jobs {jobs}` is not a positive number\nhelp: pass how many platforms to build at once, such as `--jobs 2`"),
                };
            }
            _ => unreachable!("every allowed flag is handled"),
        }
    }
    if allowed.contains(&"DIR") && parsed.dir.is_none() {
        bail!("`cargo xtask {command}` needs a directory\nhelp: cargo xtask {command} path/to/workspace");
    }
    Ok(task(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &str) -> Result<Task> {
        parse(words.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_every_option() {
        let task = parse_words("image --push -p hello --platform arm64 --platform=armhf --tag a --tag=b --image r/x --dry-run --jobs 3 --json").unwrap();
        assert_eq!(
            task,
            Task::Image(Args {
                push: true,
                package: Some("hello".into()),
                platforms: vec!["arm64".into(), "armhf".into()],
                tags: vec!["a".into(), "b".into()],
                image: Some("r/x".into()),
                dry_run: true,
                jobs: Some(3),
                json: true,
                ..Default::default()
            })
        );
        assert_eq!(
            parse_words("render --platform riscv64").unwrap(),
            Task::Render(Args {
                platforms: vec!["riscv64".into()],
                ..Default::default()
            })
        );
        assert_eq!(
            parse_words("qemu fetch -p x").unwrap(),
            Task::QemuFetch(Args {
                package: Some("x".into()),
                ..Default::default()
            })
        );
        assert_eq!(
            parse_words("setup --reset").unwrap(),
            Task::Setup(Args {
                reset: true,
                ..Default::default()
            })
        );
        assert_eq!(
            parse_words("doctor").unwrap(),
            Task::Doctor(Args::default())
        );
        assert_eq!(
            parse_words("init ../app --package api").unwrap(),
            Task::Init(Args {
                dir: Some("../app".into()),
                package: Some("api".into()),
                ..Default::default()
            })
        );
        assert_eq!(parse_words("").unwrap(), Task::Help);
    }

    #[test]
    fn rejects_mistakes_with_help() {
        for (words, expected) in [
            ("image --pus", "unknown option `--pus` for `image`"),
            ("image --jobs 0", "`--jobs 0` is not a positive number"),
            ("image --platform", "`--platform` needs a value"),
            ("render --push", "unknown option `--push` for `render`"),
            ("setup --dry-run", "unknown option `--dry-run` for `setup`"),
            ("image extra", "unknown option `extra` for `image`"),
            ("init", "`cargo xtask init` needs a directory"),
            ("qemu", "`cargo xtask qemu` needs a subcommand"),
            ("build", "unknown command `build`"),
        ] {
            let message = parse_words(words).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{words}: {message}");
            assert!(message.contains("\nhelp: "), "{words}: {message}");
        }
    }
}
