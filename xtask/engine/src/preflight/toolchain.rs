//! Rust targets, linkers and C compilers: each platform's must exist before anything is
//! compiled.

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

use crate::process::Command;

use crate::config::compile::Toolchain;
use crate::config::platform::gnu_tool_prefix;
use crate::config::PlatformConfig;
use crate::diagnostic::Diagnostic;
use crate::preflight::{Finding, Status};

/// The installed Rust toolchain, as `rustc --print sysroot` locates it.
pub(crate) struct RustToolchain {
    sysroot: PathBuf,
    /// The host's target triple, which cc-rs compiles for with plain `cc`.
    pub(crate) host: String,
    /// `rustc -V` as it answers (`rustc 1.95.0 (59807616e 2026-04-14)`), for provenance.
    pub(crate) version: String,
}

/// The rustc to ask: `RUSTC`, else the one beside `CARGO` (the real binary of the toolchain
/// cargo runs, without rustup's proxy), else `rustc` on PATH. The second value says whether
/// the path names one toolchain for good, so that its answers may be cached.
fn rustc_program() -> (PathBuf, bool) {
    if let Some(rustc) = std::env::var_os("RUSTC") {
        return (PathBuf::from(rustc), true);
    }
    let beside_cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|cargo| Some(cargo.parent()?.join("rustc")))
        .filter(|rustc| rustc.is_file() && !rustc.starts_with(cargo_home_bin()));
    match beside_cargo {
        Some(rustc) => (rustc, true),
        None => (PathBuf::from("rustc"), false),
    }
}

/// Where rustup puts its proxies (`~/.cargo/bin`), which pick a toolchain per directory.
fn cargo_home_bin() -> PathBuf {
    crate::config::workspace::cargo_home()
        .unwrap_or_default()
        .join("bin")
}

/// The cache of one rustc's answers, named by its path, size and modification time.
fn facts_cache(rustc: &std::path::Path) -> Option<PathBuf> {
    let metadata = std::fs::metadata(rustc).ok()?;
    let modified = metadata
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let identity = format!(
        "{}\0{}\0{}",
        rustc.display(),
        metadata.len(),
        modified.as_nanos()
    );
    let dir = crate::layout::user_cache()?.join("rustc");
    Some(dir.join(crate::digest::hex_sha256(identity.as_bytes())))
}

impl RustToolchain {
    /// The toolchain's sysroot and host. For a rustc that names one toolchain for good,
    /// the answers are cached by its identity, so a warm run asks nothing.
    pub(crate) fn locate() -> Result<RustToolchain> {
        let (rustc, stable_path) = rustc_program();
        let cache = stable_path.then(|| facts_cache(&rustc)).flatten();
        if let Some(cached) = cache
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
        {
            let lines: Vec<&str> = cached.lines().collect();
            if let [sysroot, host, version] = lines.as_slice() {
                return Ok(RustToolchain {
                    sysroot: PathBuf::from(sysroot),
                    host: (*host).to_owned(),
                    version: (*version).to_owned(),
                });
            }
        }
        let toolchain = RustToolchain::ask(&rustc)?;
        if let Some(path) = cache {
            let text = format!(
                "{}\n{}\n{}\n",
                toolchain.sysroot.display(),
                toolchain.host,
                toolchain.version
            );
            let _ = crate::exec::files::write_if_changed(&path, text.as_bytes());
        }
        Ok(toolchain)
    }

    fn ask(rustc: &std::path::Path) -> Result<RustToolchain> {
        let sh = Shell::new()?;
        // Both questions at once: each rustup-proxied rustc takes a few tens of ms.
        let (sysroot, version) = std::thread::scope(|scope| {
            let version = scope.spawn(|| {
                let sh = Shell::new()?;
                Command::new(rustc, ["-vV"]).run(&sh)
            });
            let sysroot = Command::new(rustc, ["--print", "sysroot"])
                .run(&sh)
                .map(|s| s.trim().to_owned());
            (sysroot, version.join().expect("rustc -vV does not panic"))
        });
        let sysroot = sysroot.map_err(|err| {
            crate::diagnostic::diagnostic(
                format!("cannot run `rustc --print sysroot`: {err}"),
                "install Rust with rustup (https://rustup.rs)",
            )
        })?;
        let version = version.unwrap_or_default();
        let host = version
            .lines()
            .find_map(|line| line.strip_prefix("host: "))
            .unwrap_or_default()
            .to_owned();
        Ok(RustToolchain {
            sysroot: PathBuf::from(sysroot),
            host,
            version: version.lines().next().unwrap_or_default().trim().to_owned(),
        })
    }

    /// Whether the standard library for `target` is installed.
    pub(crate) fn has_target(&self, target: &str) -> bool {
        self.sysroot
            .join("lib/rustlib")
            .join(target)
            .join("lib")
            .is_dir()
    }

    /// Whether `linker` can be found: on PATH, or among the toolchain's own tools (`rust-lld`).
    pub(crate) fn has_linker(&self, linker: &str) -> bool {
        if which::which(linker).is_ok() {
            return true;
        }
        let Ok(hosts) = std::fs::read_dir(self.sysroot.join("lib/rustlib")) else {
            return false;
        };
        hosts
            .flatten()
            .any(|host| host.path().join("bin").join(linker).is_file())
    }
}

/// The Rust target and linker findings of one platform.
pub(crate) fn findings(
    toolchain: &Result<RustToolchain>,
    platform: &PlatformConfig,
) -> [Finding; 2] {
    let name = platform.platform;
    let target = &platform.target;
    let target_check = format!("rust target {name}");
    let linker_check = format!("linker {name}");
    let toolchain = match toolchain {
        Ok(toolchain) => toolchain,
        Err(err) => {
            let missing = Finding::failed(&target_check, Diagnostic::of(err));
            return [
                missing,
                Finding::new(linker_check, Status::Note, "not checked without rustc", ""),
            ];
        }
    };
    let target_finding = if toolchain.has_target(target) {
        Finding::ok(target_check, target)
    } else {
        Finding::new(
            target_check,
            Status::Missing,
            format!("{target} is not installed"),
            format!("rustup target add {target}"),
        )
        .with_cause(format!(
            "rust target `{target}` for {name} is not installed"
        ))
    };
    let linker_finding = match &platform.linker {
        None if platform.toolchain == Toolchain::Zig => {
            Finding::ok(linker_check, "zig (cargo-zigbuild)")
        }
        None => Finding::new(linker_check, Status::Note, "cargo's default (none configured)", ""),
        Some(linker) if toolchain.has_linker(linker) => Finding::ok(linker_check, linker),
        Some(linker) => Finding::new(
            linker_check,
            Status::Missing,
            format!("`{linker}` is not on PATH"),
            format!("install it (Debian: the `gcc-<arch>-linux-gnu` packages), or change `linker` in [package.metadata.multiarch.platform.\"{name}\"]"),
        )
        .with_cause(format!("linker `{linker}` for {name} ({target}) is not on PATH")),
    };
    [target_finding, linker_finding]
}

/// Whether `cargo zigbuild` can run: cargo-zigbuild on PATH, and zig on PATH, in `ZIG`, or
/// as Python's `ziglang` package (where cargo-zigbuild also looks).
pub(crate) fn zig_available() -> Result<(), String> {
    if which::which("cargo-zigbuild").is_err() {
        return Err("`cargo-zigbuild` is not on PATH".into());
    }
    if std::env::var_os("ZIG").is_some() || which::which("zig").is_ok() {
        return Ok(());
    }
    let sh = Shell::new().map_err(|err| err.to_string())?;
    match Command::new("python3", ["-c", "import ziglang"]).run(&sh) {
        Ok(_) => Ok(()),
        Err(_) => Err("zig is neither on PATH nor installed as Python's `ziglang`".into()),
    }
}

/// How to get zig and cargo-zigbuild.
pub(crate) const INSTALL_ZIG: &str =
    "`pip install ziglang cargo-zigbuild`, or zig from a package manager plus `cargo install cargo-zigbuild`";

/// The C compiler cc-rs will use for `platform`'s target with cargo's toolchain, and
/// whether it exists: the configured `cc` (or a `*-gcc` linker), then `CC_<triple>`,
/// `TARGET_CC` and `CC`, then cc-rs's default name for the triple.
pub(crate) fn c_compiler(platform: &PlatformConfig, host: &str) -> (String, bool) {
    let target = &platform.target;
    let configured = platform.configured_cc();
    let from_env = [
        format!("CC_{target}"),
        format!("CC_{}", target.replace('-', "_")),
        "TARGET_CC".to_owned(),
        "CC".to_owned(),
    ]
    .into_iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    let compiler = configured.or(from_env).unwrap_or_else(|| {
        match gnu_tool_prefix(target).filter(|_| target != host) {
            Some(prefix) => format!("{prefix}-gcc"),
            None => "cc".to_owned(),
        }
    });
    // A compiler variable may carry a wrapper and flags (`ccache gcc -m32`).
    let program = compiler.split_whitespace().next().unwrap_or_default();
    let found = which::which(program).is_ok();
    (compiler, found)
}

/// The C compiler finding of one platform: needed only when crates of its graph compile C.
pub(crate) fn c_compiler_finding(
    platform: &PlatformConfig,
    host: &str,
    native_crates: Option<&[String]>,
    zig: &Result<(), String>,
) -> Finding {
    let name = platform.platform;
    let check = format!("C compiler {name}");
    let crates = native_crates.map(|crates| {
        let mut shown: Vec<String> = crates.iter().take(4).map(|c| format!("`{c}`")).collect();
        if crates.len() > 4 {
            shown.push(format!("{} more", crates.len() - 4));
        }
        shown.join(", ")
    });
    if platform.toolchain == Toolchain::Zig {
        return match zig {
            Ok(()) => Finding::ok(check, "zig (cargo zigbuild)"),
            Err(problem) => Finding::new(check, Status::Missing, problem.clone(), INSTALL_ZIG)
                .with_cause(format!(
                    "{name} builds with toolchain = \"zig\", but {problem}"
                )),
        };
    }
    let (compiler, found) = c_compiler(platform, host);
    match (crates, found) {
        (Some(crates), _) if crates.is_empty() => {
            Finding::ok(check, "not needed: no crate compiles C")
        }
        (Some(crates), true) => Finding::ok(check, format!("{compiler} (C in {crates})")),
        (None, true) => Finding::ok(check, compiler),
        (None, false) => Finding::new(
            check,
            Status::Note,
            format!("`{compiler}` is not installed (needed only by crates that compile C)"),
            "",
        ),
        (Some(crates), false) => {
            let target = &platform.target;
            let gnu = target.contains("-gnu");
            let alternative = match gnu_tool_prefix(target).filter(|_| gnu) {
                Some(prefix) => format!("; or install Debian's `gcc-{prefix}` and set `linker = \"{prefix}-gcc\"` for {name}"),
                None => String::new(),
            };
            Finding::new(
                check,
                Status::Missing,
                format!("`{compiler}` is not installed; C in {crates}"),
                format!("set `toolchain = \"zig\"` in [package.metadata.multiarch] or platform.\"{name}\"; for zig: {INSTALL_ZIG}{alternative}"),
            )
            .with_cause(format!(
                "{name} ({target}) compiles C in {crates}, and its C compiler `{compiler}` is not installed"
            ))
        }
    }
}
