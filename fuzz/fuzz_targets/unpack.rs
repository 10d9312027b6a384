//! Fuzzes archive unpacking: any bytes, taken as an archive file, must unpack or give an error,
//! never a panic or a hang, and never create anything outside the extraction destination.
//!
//! Layout of each run: `<jail>/base/archive` (the input) unpacked into `<jail>/base/out`.
//! Afterwards `<jail>` holds only `base`, which holds only `archive` and (on success) `out`; on
//! failure `out` does not exist (no temporary directory is left either). In `out`, no symlink
//! resolves outside `out`, and there are only directories, regular files and symlinks, without
//! setuid, setgid or sticky bits. The first input byte chooses how the top level is stripped.
#![no_main]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use slapstore_store::unpack::{unpack, StripTopLevel, UnpackOptions};

static RUN: AtomicU64 = AtomicU64::new(0);

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Checks every entry under `out` (not following symlinks).
fn check_tree(out: &Path, dir: &Path) {
    let canonical_out = fs::canonicalize(out).expect("canonicalize out");
    for entry in fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let kind = meta.file_type();
        if kind.is_symlink() {
            // A symlink that resolves must resolve inside `out`.
            if let Ok(resolved) = fs::canonicalize(&path) {
                assert!(
                    resolved.starts_with(&canonical_out),
                    "symlink {path:?} resolves to {resolved:?}, outside {canonical_out:?}"
                );
            }
        } else if kind.is_dir() {
            assert_eq!(meta.permissions().mode() & 0o7777, 0o755, "{path:?}");
            check_tree(out, &path);
        } else {
            assert!(
                kind.is_file(),
                "{path:?} is neither a file, a directory nor a symlink"
            );
            let mode = meta.permissions().mode() & 0o7777;
            assert!(mode == 0o644 || mode == 0o755, "{path:?} has mode {mode:o}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let jail = std::env::temp_dir().join(format!(
        "slapstore-fuzz-unpack-{}-{run}",
        std::process::id()
    ));
    let base = jail.join("base");
    fs::create_dir_all(&base).expect("create base");
    let archive = base.join("archive");
    let out = base.join("out");
    fs::write(&archive, bytes).expect("write archive");
    let options = UnpackOptions {
        strip_top_level: match selector % 3 {
            0 => StripTopLevel::Auto,
            1 => StripTopLevel::Yes,
            _ => StripTopLevel::No,
        },
        max_bytes: 16 << 20,
        ratio_threshold: 1 << 20,
        max_entries: 10_000,
        ..UnpackOptions::default()
    };
    let result = unpack(&archive, &out, &options);
    assert_eq!(names(&jail), ["base"]);
    match &result {
        Ok(()) => {
            assert_eq!(names(&base), ["archive", "out"]);
            check_tree(&out, &out);
        }
        Err(error) => {
            assert_eq!(names(&base), ["archive"], "after {error}");
            // Messages start in lowercase (their end may quote a library's message).
            let message = error.to_string();
            assert!(!message.starts_with(char::is_uppercase), "{message}");
        }
    }
    fs::remove_dir_all(&jail).expect("remove jail");
});
