//! What an ELF executable needs to start, read from its headers (nothing is run): the
//! dynamic loader it names (`PT_INTERP`), the shared libraries it links (`DT_NEEDED`) and
//! the highest `GLIBC_x.y` symbol version it asks for (`DT_VERNEED`). Every offset and
//! count in the file is checked before it is used; only headers and string tables are read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
const DT_VERNEED: u64 = 0x6fff_fffe;
const DT_VERNEEDNUM: u64 = 0x6fff_ffff;
/// More program headers, dynamic entries or version needs than this is not an executable
/// any linker writes.
const MOST_ENTRIES: u64 = 4096;
/// The longest string read (a library name, a loader path, a version).
const LONGEST_STRING: u64 = 4096;

/// What one executable needs from the system it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    /// The dynamic loader, such as `/lib64/ld-linux-x86-64.so.2`; none for a static binary.
    pub interpreter: Option<String>,
    /// The shared libraries, such as `libc.so.6`, in the file's order.
    pub libraries: Vec<String>,
    /// The highest glibc symbol version it asks for, such as `(2, 34)`.
    pub glibc: Option<(u32, u32)>,
    /// The highest glibc symbol version it defines: set for glibc's own `libc.so.6`.
    pub provides_glibc: Option<(u32, u32)>,
}

impl Needs {
    /// Starts with nothing from the system: no loader and no shared library.
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none() && self.libraries.is_empty()
    }

    /// `the dynamic loader /lib64/ld-linux-x86-64.so.2 and libc.so.6, libgcc_s.so.1 (glibc
    /// 2.34 or newer)`, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(interpreter) = &self.interpreter {
            parts.push(format!(
                "the dynamic loader {}",
                crate::diagnostic::escape(interpreter)
            ));
        }
        if !self.libraries.is_empty() {
            let libraries: Vec<String> = self
                .libraries
                .iter()
                .map(|l| crate::diagnostic::escape(l))
                .collect();
            parts.push(libraries.join(", "));
        }
        let mut text = parts.join(" and ");
        if let Some((major, minor)) = self.glibc {
            text.push_str(&format!(" (glibc {major}.{minor} or newer)"));
        }
        text
    }
}

/// Reads what the executable at `path` needs.
pub fn read(path: &Path) -> Result<Needs> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let size = file.metadata()?.len();
    Elf::new(&file, size)
        .and_then(|elf| elf.needs())
        .with_context(|| format!("{} is not an executable this tool can read", path.display()))
}

/// The bytes of the section `name` of the ELF file at `path` (at most 16 MiB), if it has one:
/// cargo-auditable's `.dep-v0`, for one.
pub fn section(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let size = file.metadata()?.len();
    Elf::new(&file, size)
        .and_then(|elf| elf.section(name))
        .with_context(|| format!("{} is not an executable this tool can read", path.display()))
}

/// One open ELF file: its class and byte order.
struct Elf<'a> {
    file: &'a File,
    size: u64,
    wide: bool,
    little: bool,
}

/// The file header's tables: programs (offset, entry size, count) and sections (offset,
/// entry size, count, index of the section names).
struct FileHeader {
    programs: (u64, u64, u64),
    sections: (u64, u64, u64, u64),
}

/// A program header's type, file range and address.
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

impl<'a> Elf<'a> {
    fn new(file: &'a File, size: u64) -> Result<Elf<'a>> {
        let mut ident = [0u8; 16];
        file.read_exact_at(&mut ident, 0)
            .context("it is shorter than an ELF header")?;
        if ident[..4] != *b"\x7fELF" {
            bail!("it does not start with the ELF magic");
        }
        let (wide, little) = match (ident[4], ident[5]) {
            (class @ (1 | 2), data @ (1 | 2)) => (class == 2, data == 1),
            _ => bail!("its ELF class or byte order is unknown"),
        };
        Ok(Elf {
            file,
            size,
            wide,
            little,
        })
    }

    fn bytes(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let end = offset.checked_add(len).filter(|&end| end <= self.size);
        if end.is_none() || len > 16 << 20 {
            bail!("a header points outside the file");
        }
        let mut buffer = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(buffer)
    }

    /// An unsigned field of `width` bytes (2, 4 or 8) at `at` in `bytes`.
    fn field(&self, bytes: &[u8], at: usize, width: usize) -> u64 {
        let slice = &bytes[at..at + width];
        let mut value = 0u64;
        for i in 0..width {
            let byte = if self.little {
                slice[width - 1 - i]
            } else {
                slice[i]
            };
            value = (value << 8) | u64::from(byte);
        }
        value
    }

    /// A word: 8 bytes in a 64-bit file, 4 in a 32-bit one.
    fn word(&self, bytes: &[u8], at: usize) -> u64 {
        self.field(bytes, at, if self.wide { 8 } else { 4 })
    }

    /// A section's bytes by name, through the section headers and their string table.
    fn section(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let header = self.file_header()?;
        let (shoff, entsize, count, names) = header.sections;
        if count == 0 {
            return Ok(None);
        }
        let expected = if self.wide { 64 } else { 40 };
        if entsize != expected || count > MOST_ENTRIES || names >= count {
            bail!("its section headers are malformed");
        }
        let table = self.bytes(shoff, entsize * count)?;
        // Each header's name, offset and size.
        let sections: Vec<(u64, u64, u64)> = table
            .chunks(entsize as usize)
            .map(|h| match self.wide {
                true => (
                    self.field(h, 0, 4),
                    self.field(h, 24, 8),
                    self.field(h, 32, 8),
                ),
                false => (
                    self.field(h, 0, 4),
                    self.field(h, 16, 4),
                    self.field(h, 20, 4),
                ),
            })
            .collect();
        let (_, names_offset, names_size) = sections[names as usize];
        let strings = Strings {
            offset: names_offset,
            size: names_size,
        };
        for &(name_index, offset, size) in &sections {
            if self.string(&strings, name_index).is_ok_and(|n| n == name) {
                return Ok(Some(self.bytes(offset, size.min(16 << 20))?));
            }
        }
        Ok(None)
    }

    /// Where the program and section header tables are, from the file header.
    fn file_header(&self) -> Result<FileHeader> {
        let header = self.bytes(0, if self.wide { 64 } else { 52 })?;
        // Offsets of e_phoff, e_phentsize, e_phnum, e_shoff, e_shentsize, e_shnum,
        // e_shstrndx, and the width of the two table offsets.
        let (at, width) = match self.wide {
            true => ([32, 54, 56, 40, 58, 60, 62], 8),
            false => ([28, 42, 44, 32, 46, 48, 50], 4),
        };
        let half = |i: usize| self.field(&header, at[i], 2);
        Ok(FileHeader {
            programs: (self.field(&header, at[0], width), half(1), half(2)),
            sections: (self.field(&header, at[3], width), half(4), half(5), half(6)),
        })
    }

    fn segments(&self) -> Result<Vec<Segment>> {
        let (phoff, entsize, count) = self.file_header()?.programs;
        let expected = if self.wide { 56 } else { 32 };
        if entsize != expected || count > MOST_ENTRIES {
            bail!("its program headers are malformed");
        }
        let table = self.bytes(phoff, entsize * count)?;
        Ok(table
            .chunks(entsize as usize)
            .map(|h| match self.wide {
                true => Segment {
                    kind: self.field(h, 0, 4) as u32,
                    offset: self.field(h, 8, 8),
                    vaddr: self.field(h, 16, 8),
                    filesz: self.field(h, 32, 8),
                },
                false => Segment {
                    kind: self.field(h, 0, 4) as u32,
                    offset: self.field(h, 4, 4),
                    vaddr: self.field(h, 8, 4),
                    filesz: self.field(h, 16, 4),
                },
            })
            .collect())
    }

    fn needs(&self) -> Result<Needs> {
        let segments = self.segments()?;
        let mut needs = Needs::default();
        if let Some(interp) = segments.iter().find(|s| s.kind == PT_INTERP) {
            let bytes = self.bytes(interp.offset, interp.filesz.min(LONGEST_STRING))?;
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            needs.interpreter = Some(String::from_utf8_lossy(&bytes[..end]).into_owned());
        }
        let Some(dynamic) = segments.iter().find(|s| s.kind == PT_DYNAMIC) else {
            return Ok(needs);
        };
        let entry = if self.wide { 16 } else { 8 };
        let table = self.bytes(dynamic.offset, dynamic.filesz.min(MOST_ENTRIES * entry))?;
        let mut entries = Vec::new();
        for chunk in table.chunks_exact(entry as usize) {
            let tag = self.word(chunk, 0);
            if tag == DT_NULL {
                break;
            }
            entries.push((tag, self.word(chunk, entry as usize / 2)));
        }
        let value = |tag: u64| entries.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
        let (Some(strtab), Some(strsz)) = (value(DT_STRTAB), value(DT_STRSZ)) else {
            return Ok(needs);
        };
        let strings = Strings {
            offset: file_offset(&segments, strtab)?,
            size: strsz,
        };
        for (_, name) in entries.iter().filter(|(t, _)| *t == DT_NEEDED) {
            needs.libraries.push(self.string(&strings, *name)?);
        }
        if let (Some(verneed), Some(count)) = (value(DT_VERNEED), value(DT_VERNEEDNUM)) {
            needs.glibc = self.highest_glibc(file_offset(&segments, verneed)?, count, &strings)?;
        }
        if let (Some(verdef), Some(count)) = (value(DT_VERDEF), value(DT_VERDEFNUM)) {
            needs.provides_glibc =
                self.highest_defined(file_offset(&segments, verdef)?, count, &strings)?;
        }
        Ok(needs)
    }

    /// Walks the version definitions (`Elf_Verdef`, 20 bytes, whose first `Elf_Verdaux`
    /// names the version) for the highest `GLIBC_x.y`.
    fn highest_defined(
        &self,
        mut offset: u64,
        count: u64,
        strings: &Strings,
    ) -> Result<Option<(u32, u32)>> {
        let mut highest = None;
        for _ in 0..count.min(MOST_ENTRIES) {
            let definition = self.bytes(offset, 20)?;
            let aux = self.field(&definition, 12, 4);
            let name = self.bytes(offset + aux, 8)?;
            let name = self.string(strings, self.field(&name, 0, 4))?;
            highest = highest.max(glibc_version(&name));
            let next = self.field(&definition, 16, 4);
            if next == 0 {
                break;
            }
            offset += next;
        }
        Ok(highest)
    }

    fn string(&self, strings: &Strings, index: u64) -> Result<String> {
        if index >= strings.size {
            bail!("a name points outside its string table");
        }
        let len = (strings.size - index).min(LONGEST_STRING);
        let bytes = self.bytes(strings.offset + index, len)?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// Walks the version needs (`Elf_Verneed`, each with its `Elf_Vernaux` list; 16 bytes
    /// each in both classes) for the highest `GLIBC_x.y`.
    fn highest_glibc(
        &self,
        mut offset: u64,
        count: u64,
        strings: &Strings,
    ) -> Result<Option<(u32, u32)>> {
        let mut highest = None;
        let mut visited = 0;
        for _ in 0..count.min(MOST_ENTRIES) {
            let need = self.bytes(offset, 16)?;
            let (aux_count, mut aux) = (self.field(&need, 2, 2), self.field(&need, 8, 4));
            let mut at = offset + aux;
            for _ in 0..aux_count {
                visited += 1;
                if visited > MOST_ENTRIES {
                    bail!("its version needs do not end");
                }
                let entry = self.bytes(at, 16)?;
                let name = self.string(strings, self.field(&entry, 8, 4))?;
                highest = highest.max(glibc_version(&name));
                aux = self.field(&entry, 12, 4);
                if aux == 0 {
                    break;
                }
                at += aux;
            }
            let next = self.field(&need, 12, 4);
            if next == 0 {
                break;
            }
            offset += next;
        }
        Ok(highest)
    }
}

/// Where a string table is in the file.
struct Strings {
    offset: u64,
    size: u64,
}

/// The file offset of the address `vaddr`, through the loadable segment that holds it.
fn file_offset(segments: &[Segment], vaddr: u64) -> Result<u64> {
    segments
        .iter()
        .filter(|s| s.kind == PT_LOAD)
        .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
        .map(|s| s.offset + (vaddr - s.vaddr))
        .context("an address is in no loadable segment")
}

/// `GLIBC_2.34` as `(2, 34)`; other version names as nothing.
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.strip_prefix("GLIBC_")?.split_once('.')?;
    let minor = minor.split('.').next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The smallest static executable header: 64-bit, little-endian, no program headers.
    pub(crate) const STATIC_ELF: &[u8; 64] = &{
        let mut header = [0u8; 64];
        header[0] = 0x7f;
        header[1] = b'E';
        header[2] = b'L';
        header[3] = b'F';
        header[4] = 2;
        header[5] = 1;
        header[54] = 56;
        header
    };

    #[test]
    fn a_header_without_loader_or_libraries_is_static() {
        let dir = std::env::temp_dir().join(format!("multiarch-elf-static-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("static"), STATIC_ELF).unwrap();
        let needs = read(&dir.join("static")).unwrap();
        assert!(needs.is_static(), "{needs:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn glibc_versions_read_as_numbers() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
        assert_eq!(glibc_version("GCC_3.0"), None);
        assert!(Some((2, 34)) > Some((2, 9)));
    }

    #[test]
    fn the_test_binary_is_read_and_garbage_is_refused() {
        // This test's own executable: dynamically linked on glibc hosts.
        let me = std::env::current_exe().unwrap();
        let needs = read(&me).unwrap();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(!needs.is_static(), "{needs:?}");
            assert!(
                needs.libraries.iter().any(|l| l.starts_with("libc.so")),
                "{needs:?}"
            );
            assert!(needs.glibc.is_some_and(|v| v >= (2, 2)), "{needs:?}");
            assert!(
                needs.describe().starts_with("the dynamic loader /"),
                "{}",
                needs.describe()
            );
        }
        let dir = std::env::temp_dir().join(format!("multiarch-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage");
        std::fs::write(&garbage, b"#!/bin/sh\necho hi\n").unwrap();
        assert!(read(&garbage).is_err());
        // Its own sections are found by name, and a missing one is none.
        assert!(section(&me, ".text")
            .unwrap()
            .is_some_and(|t| !t.is_empty()));
        assert_eq!(section(&me, ".dep-v0-no-such").unwrap(), None);
        let mut truncated = std::fs::read(&me).unwrap();
        truncated.truncate(70);
        std::fs::write(&garbage, &truncated).unwrap();
        assert!(read(&garbage).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
