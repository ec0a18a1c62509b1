//! cargo-auditable's dependency list in a binary (the `.dep-v0` section: zlib-compressed
//! JSON, which syft, trivy, grype and osv-scanner read), read back and checked against the
//! SBOM of the same platform before anything is built from it.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::diagnostic::{diagnostic, escape};

/// The largest dependency list read, decompressed.
const LIST_LIMIT: u64 = 16 << 20;

/// The crates (name, version) a binary says were compiled into it: its list's packages
/// but those only built for the build (build scripts, proc-macros); `None` without a list.
pub(crate) fn embedded_crates(binary: &Path) -> Result<Option<BTreeSet<(String, String)>>> {
    let Some(section) = crate::elf::section(binary, ".dep-v0")? else {
        return Ok(None);
    };
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(&section[..])
        .take(LIST_LIMIT)
        .read_to_end(&mut json)
        .context("its dependency list is not zlib data")?;
    let list: Value = serde_json::from_slice(&json).context("its dependency list is not JSON")?;
    let packages = list["packages"].as_array().map_or(&[][..], Vec::as_slice);
    Ok(Some(
        packages
            .iter()
            .filter(|p| p["kind"].as_str() != Some("build"))
            .map(|p| {
                let field = |key: &str| p[key].as_str().unwrap_or_default().to_owned();
                (field("name"), field("version"))
            })
            .collect(),
    ))
}

/// Refuses a binary whose embedded list and the SBOM (`sbom`: the crates it lists for the
/// platform) name different crates, or that carries no list at all.
pub(crate) fn check_agreement(
    binary: &Path,
    sbom: &BTreeSet<(String, String)>,
    platform: &str,
) -> Result<()> {
    let name = binary.file_name().unwrap_or_default().to_string_lossy();
    let embedded = embedded_crates(binary)
        .with_context(|| format!("reading the dependency list of `{name}`"))?
        .ok_or_else(|| {
            diagnostic(
                format!("`{name}` for {platform} carries no dependency list, although `cargo auditable` built it"),
                "check that no other rustc wrapper (sccache, RUSTC_WORKSPACE_WRAPPER) replaces cargo-auditable's, or set `auditable = false` in [package.metadata.multiarch]",
            )
        })?;
    if embedded == *sbom {
        return Ok(());
    }
    let named = |set: BTreeSet<&(String, String)>| -> String {
        let shown: Vec<String> = set
            .iter()
            .take(10)
            .map(|(n, v)| format!("{} {}", escape(n), escape(v)))
            .collect();
        match set.len() > 10 {
            true => format!("{}, ... ({} in all)", shown.join(", "), set.len()),
            false => shown.join(", "),
        }
    };
    let only_binary = named(embedded.difference(sbom).collect());
    let only_sbom = named(sbom.difference(&embedded).collect());
    Err(diagnostic(
        format!(
            "`{name}` for {platform} and its SBOM disagree on the crates compiled into it: only in the binary [{only_binary}], only in the SBOM [{only_sbom}]; nothing was built or pushed"
        ),
        "the SBOM comes from `cargo tree -e normal` for the platform's target and features; report this with both lists, or set `auditable = false` or `sbom = false` meanwhile",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_without_a_list_has_none() {
        let me = std::env::current_exe().unwrap();
        assert_eq!(embedded_crates(&me).unwrap(), None);
        let err = check_agreement(&me, &BTreeSet::new(), "linux/amd64").unwrap_err();
        assert!(
            format!("{err:#}").contains("carries no dependency list"),
            "{err:#}"
        );
    }
}
