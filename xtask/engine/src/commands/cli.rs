//! Command-line parsing: one argument struct per command, read by a small hand-written
//! parser that keeps the first `cargo multiarch` build fast.

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{Backend, CliLayer, Network, Provenance, Sbom};
use crate::diagnostic::diagnostic;

pub(crate) const USAGE: &str = "\
multiarch: multi-architecture container images of this workspace

usage:
    cargo multiarch image [--push | --push-by-digest [--records DIR]] [-p PACKAGE]... [--exclude PACKAGE]...
                          [--platform P]... [--tag T]... [--image REPO]
                          [--dry-run] [--jobs N] [--json] [--provenance MODE] [--sbom]
                          [--network NET] [--features F,...] [--profile NAME]
                          [--metadata-file PATH] [--backend docker|oci] [--load] [--sign KEY]
    cargo multiarch publish RECORD_OR_DIR_OR_REPO@DIGEST... [-p PACKAGE]... [--platform P]...
                          [--tag T]... [--image REPO] [--sign KEY|keyless] [--dry-run] [--json]
                          [--metadata-file PATH]
    cargo multiarch render [-p PACKAGE]... [--exclude PACKAGE]... [--platform P]...
    cargo multiarch qemu fetch [-p PACKAGE] [--platform P]...
    cargo multiarch setup [--reset] [-p PACKAGE] [--platform P]...
    cargo multiarch doctor [-p PACKAGE] [--platform P]...
    cargo multiarch init DIR [--package NAME] [--engine-version REQ | --engine-path CHECKOUT
                         | --engine-git URL [--rev REV] | --vendor]
    cargo multiarch help

    (`cargo xtask ...` is the same command line in a workspace whose xtask `init` wrote)

    --push          push every platform's image by digest, then publish one index per package
                    under every tag (signed first, when `sign` asks)
    --push-by-digest  push every platform's image by digest, under no tag, and write one
                    record per package and platform: this machine's share of a release
    --records       (--push-by-digest) where the records go (default target/multiarch/records)
    -p, --package   a package to build, repeatable (default: every package with a
                    [package.metadata.multiarch] table)
    --exclude       leave this package out, repeatable
    --platform      only these platforms (any spelling: arm64, aarch64, linux/arm/v7...)
    --tag           publish exactly these tags (replaces `tags` and the semver family)
    --image         use this repository instead of the configured one
    --dry-run       print every command in order and run none
    --jobs          platforms built at the same time (default: available cores)
    --json          print results as JSON on stdout
    --provenance    BuildKit provenance attestation: false (default), true, min or max
    --sbom          attach BuildKit's SBOM attestation (needs its scanner image)
    --network       network for RUN steps while building: default, none or host
    --features      cargo features to enable, added to the configured `features`
    --profile       cargo profile to build with (default: release; custom profiles too)
    --metadata-file write the refs and digests of every package, platform and tag as JSON
    --backend       docker (default) or oci: the tool writes and pushes the images itself
    --load          (oci) load the images into the local engine too
    RECORD...       (publish) record files, directories of them, or REPO@sha256:... references
                    (built elsewhere); checked against the registry, joined, signed, then tagged
    --reset         (setup) replace binfmt handlers that are already registered
    --engine-*      (init) where the thin xtask gets the engine: a crates.io version
                    (default: this one's), a checkout of multiarch, or a git repository
    --vendor        (init) copy the engine's sources into the xtask instead";

/// Which package and platforms a command works on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    /// `-p`, repeatable; empty means every package with a multiarch table.
    pub(crate) packages: Vec<String>,
    /// `--exclude`, repeatable.
    pub(crate) exclude: Vec<String>,
    pub(crate) platforms: Vec<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ImageArgs {
    pub(crate) selection: Selection,
    pub(crate) push: bool,
    /// Push by digest under no tag, and write records (one machine's share of a release).
    pub(crate) push_by_digest: bool,
    /// Where the records go; `None` is `target/multiarch/records`.
    pub(crate) records: Option<PathBuf>,
    pub(crate) dry_run: bool,
    pub(crate) jobs: Option<usize>,
    pub(crate) json: bool,
    /// Where to write the JSON of refs and digests, for the steps after a CI build.
    pub(crate) metadata_file: Option<PathBuf>,
    /// With backend oci: load the images into the local engine.
    pub(crate) load: bool,
    /// The flags that override configured values (`--tag`, `--image`, `--provenance`, ...);
    /// the platforms come from `selection`.
    pub(crate) overrides: CliLayer,
}

impl ImageArgs {
    /// The flags that override configured values, as the config's last layer.
    pub(crate) fn cli_layer(&self) -> CliLayer {
        CliLayer {
            platforms: self.selection.platforms.clone(),
            ..self.overrides.clone()
        }
    }
}

impl Selection {
    pub(crate) fn cli_layer(&self) -> CliLayer {
        CliLayer {
            platforms: self.platforms.clone(),
            ..CliLayer::default()
        }
    }
}

/// `publish`: what to join, and the flags that override configured values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PublishArgs {
    pub(crate) selection: Selection,
    /// Record files, directories of records, or `repo@sha256:...` references.
    pub(crate) sources: Vec<String>,
    pub(crate) dry_run: bool,
    pub(crate) json: bool,
    pub(crate) metadata_file: Option<PathBuf>,
    /// `--tag`, `--image` and `--sign`.
    pub(crate) overrides: CliLayer,
}

impl PublishArgs {
    /// The flags that override configured values, as the config's last layer.
    pub(crate) fn cli_layer(&self) -> CliLayer {
        CliLayer {
            platforms: self.selection.platforms.clone(),
            ..self.overrides.clone()
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SetupArgs {
    pub(crate) selection: Selection,
    /// Replace handlers that are already registered.
    pub(crate) reset: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InitArgs {
    /// The workspace to add the xtask to.
    pub(crate) dir: PathBuf,
    pub(crate) package: Option<String>,
    /// `None`: the source this engine itself came from.
    pub(crate) engine: Option<EngineSource>,
}

/// Where the xtask that `init` writes gets the engine from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EngineSource {
    /// `multiarch = "REQ"` from crates.io.
    Version(String),
    /// A checkout of the multiarch repository (its root) or of the engine package.
    Path(PathBuf),
    Git {
        url: String,
        rev: Option<String>,
    },
    /// The engine's sources copied into the xtask, for projects without a registry.
    Vendor,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Task {
    Image(ImageArgs),
    Publish(PublishArgs),
    Render(Selection),
    QemuFetch(Selection),
    Setup(SetupArgs),
    Doctor(Selection),
    Init(InitArgs),
    Help,
}

/// Parses the arguments after the program name.
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Task> {
    let mut args = args.into_iter().peekable();
    let Some(command) = args.next() else {
        return Ok(Task::Help);
    };
    let command = match command.as_str() {
        "qemu" if args.next_if(|a| a == "fetch").is_some() => "qemu fetch".to_owned(),
        "qemu" => {
            return Err(diagnostic(
                "`cargo multiarch qemu` needs a subcommand",
                "run `cargo multiarch qemu fetch`",
            ))
        }
        "help" | "--help" | "-h" => return Ok(Task::Help),
        _ => command,
    };
    let mut flags = Flags {
        command: &command,
        args,
        positional: Vec::new(),
        positional_allowed: 0,
    };
    let task = match command.as_str() {
        "image" => Task::Image(parse_image(&mut flags)?),
        "publish" => Task::Publish(parse_publish(&mut flags)?),
        "render" | "qemu fetch" | "doctor" => {
            let mut selection = Selection::default();
            while let Some(flag) = flags.next()? {
                flags.selection(&flag, &mut selection)?;
            }
            match command.as_str() {
                "render" => Task::Render(selection),
                "doctor" => Task::Doctor(selection),
                _ => Task::QemuFetch(selection),
            }
        }
        "setup" => {
            let mut setup = SetupArgs::default();
            while let Some(flag) = flags.next()? {
                match flag.name.as_str() {
                    "--reset" => setup.reset = true,
                    _ => flags.selection(&flag, &mut setup.selection)?,
                }
            }
            Task::Setup(setup)
        }
        "init" => Task::Init(parse_init(&mut flags)?),
        other => {
            return Err(diagnostic(
                format!("unknown command `{other}`"),
                "the commands are image, publish, render, qemu fetch, setup, doctor and init; see `cargo multiarch help`",
            ))
        }
    };
    Ok(task)
}

/// The options of `image`.
fn parse_image<I: Iterator<Item = String>>(flags: &mut Flags<'_, I>) -> Result<ImageArgs> {
    let mut image = ImageArgs::default();
    while let Some(flag) = flags.next()? {
        match flag.name.as_str() {
            "--push" => image.push = true,
            "--push-by-digest" => image.push_by_digest = true,
            "--records" => image.records = Some(flags.value(&flag)?.into()),
            "--dry-run" => image.dry_run = true,
            "--json" => image.json = true,
            "--load" => image.load = true,
            "--tag" => image.overrides.tags.push(flags.value(&flag)?),
            "--image" => image.overrides.image = Some(flags.value(&flag)?),
            "--jobs" => image.jobs = Some(parse_jobs(&flags.value(&flag)?)?),
            "--features" => image.overrides.features.extend(
                flags
                    .value(&flag)?
                    .split([',', ' '])
                    .filter(|f| !f.is_empty())
                    .map(String::from),
            ),
            "--profile" => image.overrides.profile = Some(flags.value(&flag)?),
            "--metadata-file" => image.metadata_file = Some(flags.value(&flag)?.into()),
            "--backend" => {
                let value = flags.value(&flag)?;
                image.overrides.backend = Some(Backend::parse(&value).ok_or_else(|| {
                    diagnostic(
                        format!("`--backend {value}` is not a backend"),
                        "pass docker or oci",
                    )
                })?);
            }
            "--provenance" => {
                let value = flags.value(&flag)?;
                image.overrides.provenance = Some(Provenance::parse(&value).ok_or_else(|| {
                    diagnostic(
                        format!("`--provenance {value}` is not a provenance mode"),
                        "pass false, true, min or max",
                    )
                })?);
            }
            "--sbom" => {
                let value = flag.inline.as_deref().unwrap_or("true");
                image.overrides.sbom = Some(Sbom::parse(value).ok_or_else(|| {
                    diagnostic(
                        format!("`--sbom={value}` is not true, false or buildkit"),
                        "pass --sbom, --sbom=false or --sbom=buildkit",
                    )
                })?)
            }
            "--sign" => image.overrides.sign = Some(flags.value(&flag)?),
            "--network" => {
                let value = flags.value(&flag)?;
                image.overrides.network = Some(Network::parse(&value).ok_or_else(|| {
                    diagnostic(
                        format!("`--network {value}` is not a build network"),
                        "pass default, none or host",
                    )
                })?);
            }
            _ => flags.selection(&flag, &mut image.selection)?,
        }
    }
    if image.push && image.push_by_digest {
        return Err(diagnostic(
            "--push and --push-by-digest are two ways to push; pass one",
            "--push publishes the tags from this machine; --push-by-digest pushes this machine's share for `cargo multiarch publish` to join",
        ));
    }
    if image.records.is_some() && !image.push_by_digest {
        return Err(diagnostic(
            "--records is where --push-by-digest writes its records",
            "add --push-by-digest, or drop --records",
        ));
    }
    Ok(image)
}

/// The options of `publish`: any number of sources, and the flags it shares with `image`.
fn parse_publish<I: Iterator<Item = String>>(flags: &mut Flags<'_, I>) -> Result<PublishArgs> {
    let mut publish = PublishArgs::default();
    flags.positional_allowed = usize::MAX;
    while let Some(flag) = flags.next()? {
        match flag.name.as_str() {
            "--dry-run" => publish.dry_run = true,
            "--json" => publish.json = true,
            "--tag" => publish.overrides.tags.push(flags.value(&flag)?),
            "--image" => publish.overrides.image = Some(flags.value(&flag)?),
            "--sign" => publish.overrides.sign = Some(flags.value(&flag)?),
            "--metadata-file" => publish.metadata_file = Some(flags.value(&flag)?.into()),
            _ => flags.selection(&flag, &mut publish.selection)?,
        }
    }
    publish.sources = std::mem::take(&mut flags.positional);
    if publish.sources.is_empty() {
        return Err(diagnostic(
            "`publish` needs the records to join",
            "pass record files or directories (what `cargo multiarch image --push-by-digest` wrote), or REPO@sha256:... references",
        ));
    }
    Ok(publish)
}

/// The options of `init`: one engine source at most, `--rev` only with `--engine-git`.
fn parse_init<I: Iterator<Item = String>>(flags: &mut Flags<'_, I>) -> Result<InitArgs> {
    let mut package = None;
    let mut sources = Vec::new();
    let mut rev = None;
    flags.positional_allowed = 1;
    while let Some(flag) = flags.next()? {
        match flag.name.as_str() {
            "--package" => package = Some(flags.value(&flag)?),
            "--engine-version" => {
                let requirement = flags.value(&flag)?;
                sources.push((flag.name, EngineSource::Version(requirement)));
            }
            "--engine-path" => {
                let checkout = flags.value(&flag)?;
                sources.push((flag.name, EngineSource::Path(checkout.into())));
            }
            "--engine-git" => {
                let url = flags.value(&flag)?;
                sources.push((flag.name, EngineSource::Git { url, rev: None }));
            }
            "--rev" => rev = Some(flags.value(&flag)?),
            "--vendor" => sources.push((flag.name, EngineSource::Vendor)),
            _ => return Err(flags.unknown(&flag)),
        }
    }
    let Some(dir) = flags.positional.pop() else {
        return Err(diagnostic(
            "`cargo multiarch init` needs a directory",
            "cargo multiarch init path/to/workspace",
        ));
    };
    let mut engine = match sources.as_slice() {
        [] => None,
        [(_, source)] => Some(source.clone()),
        [(first, _), (second, _), ..] => {
            return Err(diagnostic(
                format!("`{first}` and `{second}` both say where the engine comes from"),
                "pass one of --engine-version, --engine-path, --engine-git and --vendor",
            ))
        }
    };
    match (&mut engine, rev) {
        (Some(EngineSource::Git { rev: slot, .. }), rev) => *slot = rev,
        (_, Some(_)) => {
            return Err(diagnostic(
                "`--rev` names a commit of `--engine-git`, which is not given",
                "pass `--engine-git URL --rev REV`, or leave `--rev` out",
            ))
        }
        (_, None) => {}
    }
    Ok(InitArgs {
        dir: PathBuf::from(dir),
        package,
        engine,
    })
}

/// One option as written, with an inline `--flag=value` split off.
struct Flag {
    name: String,
    written: String,
    inline: Option<String>,
}

/// Reads options one at a time, for one command.
struct Flags<'a, I: Iterator<Item = String>> {
    command: &'a str,
    args: std::iter::Peekable<I>,
    positional: Vec<String>,
    /// How many bare words (such as `init`'s directory) the command takes.
    positional_allowed: usize,
}

impl<I: Iterator<Item = String>> Flags<'_, I> {
    fn next(&mut self) -> Result<Option<Flag>> {
        let Some(arg) = self.args.next() else {
            return Ok(None);
        };
        if !arg.starts_with('-') && self.positional.len() < self.positional_allowed {
            self.positional.push(arg);
            return self.next();
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let name = match name.as_str() {
            "-p" => "--package".to_owned(),
            "-j" => "--jobs".to_owned(),
            _ => name,
        };
        Ok(Some(Flag {
            name,
            written: arg,
            inline,
        }))
    }

    fn value(&mut self, flag: &Flag) -> Result<String> {
        flag.inline
            .clone()
            .or_else(|| self.args.next())
            .ok_or_else(|| {
                diagnostic(
                    format!("`{}` needs a value", flag.name),
                    "see `cargo multiarch help`",
                )
            })
    }

    /// `--package` and `--platform`, which every build command takes.
    fn selection(&mut self, flag: &Flag, selection: &mut Selection) -> Result<()> {
        match flag.name.as_str() {
            "--package" => selection.packages.push(self.value(flag)?),
            "--exclude" => selection.exclude.push(self.value(flag)?),
            "--platform" => selection.platforms.push(self.value(flag)?),
            _ => return Err(self.unknown(flag)),
        }
        Ok(())
    }

    fn unknown(&self, flag: &Flag) -> anyhow::Error {
        diagnostic(
            format!("unknown option `{}` for `{}`", flag.written, self.command),
            "see `cargo multiarch help`",
        )
    }
}

fn parse_jobs(jobs: &str) -> Result<usize> {
    match jobs.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(diagnostic(
            format!("`--jobs {jobs}` is not a positive number"),
            "pass how many platforms to build at once, such as `--jobs 2`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &str) -> Result<Task> {
        parse(words.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_every_option() {
        let task = parse_words("image --push -p hello -p api --exclude worker --platform arm64 --platform=armhf --tag a --tag=b --image r/x --dry-run --jobs 3 --json --metadata-file out.json").unwrap();
        assert_eq!(
            task,
            Task::Image(ImageArgs {
                selection: Selection {
                    packages: vec!["hello".into(), "api".into()],
                    exclude: vec!["worker".into()],
                    platforms: vec!["arm64".into(), "armhf".into()],
                },
                metadata_file: Some("out.json".into()),
                push: true,
                overrides: CliLayer {
                    tags: vec!["a".into(), "b".into()],
                    image: Some("r/x".into()),
                    ..Default::default()
                },
                dry_run: true,
                jobs: Some(3),
                json: true,
                ..Default::default()
            })
        );
        let riscv = Selection {
            platforms: vec!["riscv64".into()],
            ..Default::default()
        };
        assert_eq!(
            parse_words("render --platform riscv64").unwrap(),
            Task::Render(riscv)
        );
        let package_x = Selection {
            packages: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            parse_words("qemu fetch -p x").unwrap(),
            Task::QemuFetch(package_x)
        );
        assert_eq!(
            parse_words("setup --reset").unwrap(),
            Task::Setup(SetupArgs {
                reset: true,
                ..Default::default()
            })
        );
        assert_eq!(
            parse_words("doctor").unwrap(),
            Task::Doctor(Selection::default())
        );
        assert_eq!(
            parse_words("init ../app --package api").unwrap(),
            Task::Init(InitArgs {
                dir: "../app".into(),
                package: Some("api".into()),
                engine: None,
            })
        );
        for (words, engine) in [
            (
                "init . --engine-path ../multiarch",
                EngineSource::Path("../multiarch".into()),
            ),
            (
                "init . --engine-version 0.2",
                EngineSource::Version("0.2".into()),
            ),
            ("init . --vendor", EngineSource::Vendor),
            (
                "init . --engine-git https://example.com/m.git --rev abc",
                EngineSource::Git {
                    url: "https://example.com/m.git".into(),
                    rev: Some("abc".into()),
                },
            ),
        ] {
            let Task::Init(args) = parse_words(words).unwrap() else {
                panic!("{words}")
            };
            assert_eq!(args.engine, Some(engine), "{words}");
        }
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
            ("init", "`cargo multiarch init` needs a directory"),
            ("init a b", "unknown option `b` for `init`"),
            (
                "init a --vendor --engine-path b",
                "`--vendor` and `--engine-path` both say",
            ),
            (
                "init a --rev abc",
                "`--rev` names a commit of `--engine-git`",
            ),
            ("qemu", "`cargo multiarch qemu` needs a subcommand"),
            ("build", "unknown command `build`"),
        ] {
            let diagnostic = crate::diagnostic::Diagnostic::of(&parse_words(words).unwrap_err());
            assert!(
                diagnostic.cause.starts_with(expected),
                "{words}: {diagnostic:?}"
            );
            assert!(!diagnostic.help.is_empty(), "{words}: {diagnostic:?}");
        }
    }
}
