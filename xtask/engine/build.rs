//! Lists the engine library's sources for `init --vendor`, so the list is never kept by
//! hand: every `.rs` file under `src/` but the binaries (`main.rs`, `bin/`), sorted, as
//! `(path, include_str!(...))`.

use std::path::{Path, PathBuf};

fn main() {
    let src =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("src");
    let mut files = Vec::new();
    collect(&src, &src, &mut files);
    files.sort();
    let mut out = String::from("&[\n");
    for file in &files {
        let relative = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        out.push_str(&format!(
            "    ({relative:?}, include_str!({:?})),\n",
            file.display().to_string()
        ));
    }
    out.push_str("]\n");
    let target =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("sources.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
    println!("cargo:rerun-if-changed=src");
}

fn collect(src: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !(dir == src && name == "bin") {
                collect(src, &path, files);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && !(dir == src && name == "main.rs")
        {
            files.push(path);
        }
    }
}
