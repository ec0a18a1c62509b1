//! The demo app: reports its version and the CPU architecture it runs on.

use std::ffi::CStr;

/// `struct utsname` as Linux glibc and musl lay it out: six 65-byte fields.
#[repr(C)]
struct UtsName {
    fields: [[u8; 65]; 6],
}

extern "C" {
    fn uname(buf: *mut UtsName) -> i32;
}

/// The machine name the kernel (or QEMU) reports, as `uname -m` prints it.
fn machine() -> Option<String> {
    let mut name = UtsName {
        fields: [[0; 65]; 6],
    };
    // SAFETY: `name` is a writable `struct utsname` that outlives the call.
    if unsafe { uname(&mut name) } != 0 {
        return None;
    }
    let machine = CStr::from_bytes_until_nul(&name.fields[4]).ok()?;
    Some(machine.to_string_lossy().into_owned())
}

fn main() {
    let machine = machine().unwrap_or_else(|| "unknown".to_owned());
    println!(
        "{} {} on {machine} (built for {})",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
}
