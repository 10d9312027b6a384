//! Gathering the roots of a collection: the temporary roots of live processes, pins, installed
//! releases and generations that are not deleted. Read with the GC lock held exclusively, and in
//! that order: temporary roots first. A writer keeps its paths in its temporary roots until it
//! has committed the root that replaces them (a generation row, a pin, an installed release) and
//! exited; reading the temporary roots before the durable roots means that a writer that finishes
//! between the two reads is seen in the second (the proof, writer by writer, is in `docs/gc.md`).

use slapstore_store::{roots, Result, Store};

/// Why a path is a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    Generation { instance: String, number: i64 },
    Pin { name: String },
    Installed { profile: String },
    Process { pid: u32 },
}

impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Root::Generation { instance, number } => {
                write!(f, "generation {number} of instance `{instance}`")
            }
            Root::Pin { name } => write!(f, "pin `{name}`"),
            Root::Installed { profile } => write!(f, "the software installed from `{profile}`"),
            Root::Process { pid } => write!(f, "a running slapstore process (pid {pid})"),
        }
    }
}

/// Every root, with the base name of the path it keeps. The order of the reads is the
/// protocol: do not change it without the proof in `docs/gc.md`.
pub fn gather(store: &Store) -> Result<Vec<(String, Root)>> {
    let mut out = Vec::new();
    // 1. temporary roots: what running writers use and have not yet recorded durably
    for (pid, paths) in roots::live_temp_roots(store)? {
        for p in paths {
            out.push((p, Root::Process { pid }));
        }
    }
    // 2. the durable roots, each committed by a writer before it dropped its temporary roots
    test_pause();
    for (name, path) in roots::pins(store)? {
        out.push((path, Root::Pin { name }));
    }
    test_pause();
    for s in store.db().installed()? {
        out.push((s.release, Root::Installed { profile: s.profile }));
    }
    test_pause();
    for (path, instance, number) in store.db().generation_roots()? {
        out.push((path, Root::Generation { instance, number }));
    }
    Ok(out)
}

/// A pause between two reads of root sources when `SLAPSTORE_TEST_ROOTS_PAUSE_MS` is set: the
/// stress test (`tests/stress.rs`) widens with it the window in which a writer can finish
/// between two reads, which the order of the reads must make harmless. Unset, it costs one
/// environment lookup.
pub fn test_pause() {
    if let Some(ms) = std::env::var("SLAPSTORE_TEST_ROOTS_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
