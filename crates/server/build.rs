//! Links the `citadel` binary with packed relative relocations (DT_RELR) where the C library
//! that will load it understands them.
//!
//! Why: the binary is position-independent (kept for ASLR), so the dynamic loader applies ~32,000
//! relative relocations at every start. As classic `Rela` entries they fill 780 KB that the loader
//! faults in and keeps resident; packed, they take 9 KB. Measured on the release build
//! (BENCHMARKS.md, "Start-up and footprint"): idle RSS 14.6 -> 13.8 MiB and a faster cold start.
//!
//! DT_RELR needs glibc 2.36 or later at run time (the linker records a `GLIBC_ABI_DT_RELR`
//! version dependency, so an older glibc refuses the binary with a clear message rather than
//! misbehaving). It is therefore only used when building natively for x86_64 GNU/Linux, where
//! Rust links with its bundled lld (which supports the flag), on a machine whose own glibc is
//! recent enough. `CITADEL_NO_RELR=1` turns it off, for example to build on a new machine a
//! binary meant for an older one.
//!
//! Release builds for the same target also place the functions that start-up runs side by side,
//! followed by those of the common calls (`startup-symbols.txt`, written by
//! `scripts/startup_symbols.py`, through lld's `--symbol-ordering-file`). A cold start then faults in
//! about 1.5 MB of code instead of touching pages all over the 17 MB text segment, each of which the
//! kernel maps with its 64 KiB neighbourhood: idle RSS and start-up time both fall, and the request
//! path takes fewer pages (BENCHMARKS.md, session 8). Names the list has and the binary lacks are
//! ignored, so an out-of-date list only places fewer functions.

use std::process::Command;

/// The functions to place first (start-up, then the common calls), one mangled name per line.
const STARTUP_SYMBOLS: &str = "startup-symbols.txt";

fn main() {
    println!("cargo:rerun-if-env-changed=CITADEL_NO_RELR");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    println!("cargo:rerun-if-changed={STARTUP_SYMBOLS}");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" || host != target {
        return;
    }
    // The ordering flag is lld's (Rust's default linker here); a build that picks its own linker
    // (cargo's `linker` setting, or `-C linker` / `-fuse-ld` in RUSTFLAGS) goes without it.
    let own_linker = std::env::var_os("RUSTC_LINKER").is_some()
        || std::env::var("CARGO_ENCODED_RUSTFLAGS")
            .is_ok_and(|flags| flags.contains("linker") || flags.contains("fuse-ld"));
    if std::env::var("PROFILE").is_ok_and(|profile| profile == "release")
        && !own_linker
        && let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR")
    {
        let list = std::path::Path::new(&dir).join(STARTUP_SYMBOLS);
        if list.is_file() {
            println!(
                "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
                list.display()
            );
            println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
        }
    }
    if std::env::var_os("CITADEL_NO_RELR").is_none() && glibc_version().is_some_and(|version| version >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The build machine's glibc version, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn glibc_version() -> Option<(u32, u32)> {
    let output = Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}
