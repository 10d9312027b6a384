//! Gathering the roots of a collection: generations that are not deleted, pins, and the
//! temporary roots of live processes. Read with the GC lock held exclusively.

use slapstore_store::{roots, Result, Store};

/// Why a path is a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    Generation { instance: String, number: i64 },
    Pin { name: String },
    Process { pid: u32 },
}

impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Root::Generation { instance, number } => {
                write!(f, "generation {number} of instance `{instance}`")
            }
            Root::Pin { name } => write!(f, "pin `{name}`"),
            Root::Process { pid } => write!(f, "a running slapstore process (pid {pid})"),
        }
    }
}

/// Every root, with the base name of the path it keeps.
pub fn gather(store: &Store) -> Result<Vec<(String, Root)>> {
    let mut out = Vec::new();
    for (path, instance, number) in store.db().generation_roots()? {
        out.push((path, Root::Generation { instance, number }));
    }
    for (name, path) in roots::pins(store)? {
        out.push((path, Root::Pin { name }));
    }
    for (pid, paths) in roots::live_temp_roots(store)? {
        for p in paths {
            out.push((p, Root::Process { pid }));
        }
    }
    Ok(out)
}
