//! Command-line parsing: a small hand-written parser keeps the first `cargo xtask` build fast.

use anyhow::{bail, Context, Result};

pub const USAGE: &str = "\
multiarch: multi-architecture container images of this workspace

usage:
    cargo xtask image [--push] [-p PACKAGE] [--platform P]... [--tag T]... [--image REPO]
                      [--dry-run] [--jobs N] [--json]
    cargo xtask render [-p PACKAGE] [--platform P]...
    cargo xtask help

    --push          push every platform's image, then publish one manifest list per tag
    -p, --package   the package to build (default: the one with [package.metadata.multiarch])
    --platform      build only these platforms (any spelling: arm64, aarch64, linux/arm/v7...)
    --tag           use these tags instead of the configured ones
    --image         use this repository instead of the configured one
    --dry-run       print every command in order and run none
    --jobs          platforms built at the same time (default: available cores)
    --json          print results as JSON on stdout";

/// Options shared by `image` and `render`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImageArgs {
    pub push: bool,
    pub package: Option<String>,
    pub platforms: Vec<String>,
    pub tags: Vec<String>,
    pub image: Option<String>,
    pub dry_run: bool,
    pub jobs: Option<usize>,
    pub json: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Task {
    Image(ImageArgs),
    Render(ImageArgs),
    Help,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Task> {
    let mut args = args.into_iter();
    let Some(task) = args.next() else {
        return Ok(Task::Help);
    };
    let render = match task.as_str() {
        "image" => false,
        "render" => true,
        "help" | "--help" | "-h" => return Ok(Task::Help),
        other => bail!("unknown command `{other}`\nhelp: the commands are `image` and `render`; see `cargo xtask help`"),
    };
    let mut parsed = ImageArgs::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("`{flag}` needs a value\nhelp: see `cargo xtask help`"))
        };
        match flag.as_str() {
            "--push" if !render => parsed.push = true,
            "--dry-run" if !render => parsed.dry_run = true,
            "--json" if !render => parsed.json = true,
            "-p" | "--package" => parsed.package = Some(value()?),
            "--platform" => parsed.platforms.push(value()?),
            "--tag" if !render => parsed.tags.push(value()?),
            "--image" if !render => parsed.image = Some(value()?),
            "--jobs" | "-j" if !render => {
                let jobs = value()?;
                parsed.jobs = match jobs.parse::<usize>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => bail!("`--jobs {jobs}` is not a positive number\nhelp: pass how many platforms to build at once, such as `--jobs 2`"),
                };
            }
            _ => bail!("unknown option `{arg}` for `{task}`\nhelp: see `cargo xtask help`"),
        }
    }
    Ok(if render {
        Task::Render(parsed)
    } else {
        Task::Image(parsed)
    })
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
            Task::Image(ImageArgs {
                push: true,
                package: Some("hello".into()),
                platforms: vec!["arm64".into(), "armhf".into()],
                tags: vec!["a".into(), "b".into()],
                image: Some("r/x".into()),
                dry_run: true,
                jobs: Some(3),
                json: true,
            })
        );
        assert_eq!(
            parse_words("render --platform riscv64").unwrap(),
            Task::Render(ImageArgs {
                platforms: vec!["riscv64".into()],
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
            ("build", "unknown command `build`"),
        ] {
            let message = parse_words(words).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{words}: {message}");
            assert!(message.contains("\nhelp: "), "{words}: {message}");
        }
    }
}
