//! The engine's floors, read off its `use` lines: each top-level module uses only the
//! floors below it (docs/ARCHITECTURE.md), and the ground floor's modules form no circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and its floor; the ground is 0.
const FLOORS: &[(&str, u32)] = &[
    ("diagnostic", 0),
    ("process", 0),
    ("progress", 0),
    ("digest", 0),
    ("http", 0),
    ("retry", 0),
    ("rootfs", 0),
    ("docker_config", 0),
    ("elf", 0),
    ("layout", 0),
    ("tar", 0),
    ("time", 0),
    ("config", 1),
    ("emulation", 2),
    ("registry", 3),
    ("plan", 4),
    ("supply", 5),
    ("publish", 6),
    ("exec", 7),
    ("backend", 8),
    ("preflight", 9),
    ("commands", 10),
];

/// `crate::<module>` references outside `#[cfg(test)]` code, per top-level module.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let module = relative.split(['/', '.']).next().unwrap().to_owned();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for (at, _) in code.match_indices("crate::") {
                let used: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used != module && !used.is_empty() {
                    uses.entry(module.clone()).or_default().insert(used);
                }
            }
        }
    }
    uses
}

#[test]
fn every_module_uses_only_the_floors_below_it() {
    let floor: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    let uses = uses();
    for (module, used) in &uses {
        let own = *floor
            .get(module.as_str())
            .unwrap_or_else(|| panic!("`{module}` has no floor in FLOORS"));
        for other in used {
            let theirs = *floor.get(other.as_str()).unwrap_or_else(|| {
                panic!("`{module}` uses `crate::{other}`: lib.rs is the top floor, which nothing reaches up to (or `{other}` needs a floor in FLOORS)")
            });
            assert!(
                theirs < own || (theirs == 0 && own == 0),
                "`{module}` (floor {own}) uses `{other}` (floor {theirs}), a floor not below it"
            );
        }
    }
    // The ground floor's modules may use each other, but in no circle.
    let ground: Vec<&str> = FLOORS
        .iter()
        .filter(|(_, f)| *f == 0)
        .map(|(m, _)| *m)
        .collect();
    for start in &ground {
        let mut seen = BTreeSet::new();
        let mut pending: Vec<String> = uses.get(*start).into_iter().flatten().cloned().collect();
        while let Some(next) = pending.pop() {
            assert_ne!(
                next, *start,
                "`{start}` reaches itself through the ground floor"
            );
            if seen.insert(next.clone()) {
                pending.extend(uses.get(&next).into_iter().flatten().cloned());
            }
        }
    }
}
