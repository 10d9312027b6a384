//! Checking the store against its database, in two tiers: the fast one (`verify`) checks that
//! every valid path exists, is read-only at its top, and that SQLite's integrity and foreign
//! keys hold, and lists what lies in `store/` unregistered; `--check-contents` re-hashes every
//! valid path (in parallel) against its recorded content hash. Both go on past errors and name
//! every bad path. Both also check the roots: a generation that is not deleted, a pin, an
//! installed release or a partition's `current` whose path is not valid (or not on disk) is a
//! lost root, which a collection that broke its protocol would leave.

use std::fs;
use std::os::unix::fs::MetadataExt;

use rayon::prelude::*;

use crate::error::Result;
use crate::output::content_hash;
use crate::store::Store;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The database's own check failed.
    Database(String),
    /// A partition does not show its instance's current generation.
    Partition(crate::partition::Mismatch),
    /// A valid path is not on disk.
    Missing { path: String },
    /// A valid path is writable or not a directory/file/symlink as built.
    Writable { path: String },
    /// Its size (from metadata) is not the recorded one.
    SizeChanged {
        path: String,
        expected: u64,
        actual: u64,
    },
    /// Its contents no longer have the recorded hash.
    Modified {
        path: String,
        expected: String,
        actual: String,
    },
    /// It could not be read.
    Unreadable { path: String, error: String },
    /// A root (`root` says which) names a path that is not valid or not on disk.
    LostRoot { root: String, path: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Database(m) => write!(f, "database: {m}"),
            Problem::Partition(m) => write!(f, "{m}"),
            Problem::Missing { path } => write!(f, "`{path}` is registered but missing"),
            Problem::Writable { path } => write!(f, "`{path}` is writable"),
            Problem::SizeChanged {
                path,
                expected,
                actual,
            } => write!(
                f,
                "`{path}` holds {actual} bytes, not the {expected} registered"
            ),
            Problem::Modified {
                path,
                expected,
                actual,
            } => write!(
                f,
                "`{path}` was modified: its content hash is {actual}, not {expected}"
            ),
            Problem::Unreadable { path, error } => write!(f, "`{path}` cannot be read: {error}"),
            Problem::LostRoot { root, path } => {
                write!(f, "{root} keeps `{path}`, which is missing")
            }
        }
    }
}

impl Problem {
    /// The store path (base name) the problem is about, if it is about one.
    pub fn store_path(&self, store_dir: &std::path::Path) -> Option<String> {
        let path = match self {
            // nothing left to rebuild it from: the database forgot it, or it is not a path
            Problem::Database(_) | Problem::LostRoot { .. } | Problem::Partition(_) => return None,
            Problem::Missing { path }
            | Problem::Writable { path }
            | Problem::SizeChanged { path, .. }
            | Problem::Modified { path, .. }
            | Problem::Unreadable { path, .. } => path,
        };
        std::path::Path::new(path)
            .strip_prefix(store_dir)
            .ok()?
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(str::to_owned)
    }
}

/// The size of a tree from metadata (file lengths and symlink target lengths), and the first
/// entry that is writable, if any.
fn metadata_walk(root: &std::path::Path) -> std::io::Result<(u64, Option<String>)> {
    let mut size = 0;
    let mut writable = None;
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.map_err(|e| std::io::Error::other(e.to_string()))?;
        let meta = entry
            .metadata()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if meta.file_type().is_symlink() {
            size += meta.len();
            continue;
        }
        if meta.is_file() {
            size += meta.len();
        }
        if writable.is_none() && meta.mode() & 0o222 != 0 {
            writable = Some(entry.path().display().to_string());
        }
    }
    Ok((size, writable))
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    pub checked: usize,
    pub problems: Vec<Problem>,
    /// Entries of `store/` that are not valid paths (left by a killed build, or being built).
    pub invalid: Vec<String>,
}

/// Checks the store (see the module docs).
pub fn verify(store: &Store, check_contents: bool) -> Result<Report> {
    let mut report = Report::default();
    // pins first (a pin names a path valid when it was made), then the database in one snapshot:
    // a generation's row and its path's are read as of the same moment
    let pins = crate::roots::pins(store)?;
    let (rows, integrity, generations, installed, instances) = store.db().snapshot(|db| {
        Ok((
            db.all_paths()?,
            db.integrity_problems()?,
            db.generation_roots()?,
            db.installed()?,
            db.instances()?,
        ))
    })?;
    report
        .problems
        .extend(integrity.into_iter().map(Problem::Database));
    report.checked = rows.len();
    let store_dir = store.store_dir();
    let problems: Vec<Problem> = rows
        .par_iter()
        .filter_map(|row| {
            let full = store_dir.join(&row.name);
            let path = full.display().to_string();
            let meta = match fs::symlink_metadata(&full) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Some(Problem::Missing { path })
                }
                Err(e) => {
                    return Some(Problem::Unreadable {
                        path,
                        error: e.to_string(),
                    })
                }
            };
            if !meta.file_type().is_symlink() && meta.mode() & 0o222 != 0 {
                return Some(Problem::Writable { path });
            }
            if !check_contents {
                // the fast tier: sizes and modes from metadata alone, no contents read
                return match metadata_walk(&full) {
                    Ok((size, None)) if size == row.size => None,
                    Ok((size, None)) => Some(Problem::SizeChanged {
                        path,
                        expected: row.size,
                        actual: size,
                    }),
                    Ok((_, Some(file))) => Some(Problem::Writable { path: file }),
                    Err(e) => Some(Problem::Unreadable {
                        path,
                        error: e.to_string(),
                    }),
                };
            }
            match content_hash(&full) {
                Ok(info) if info.content_hash == row.content_hash => None,
                Ok(info) => Some(Problem::Modified {
                    path,
                    expected: row.content_hash.clone(),
                    actual: info.content_hash,
                }),
                Err(e) => Some(Problem::Unreadable {
                    path,
                    error: e.to_string(),
                }),
            }
        })
        .collect();
    report.problems.extend(problems);
    let valid: std::collections::HashSet<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let lost = |root: String, name: &str| Problem::LostRoot {
        root,
        path: store_dir.join(name).display().to_string(),
    };
    for (path, instance, number) in &generations {
        if !valid.contains(path.as_str()) {
            let root = format!("generation {number} of instance `{instance}`");
            report.problems.push(lost(root, path));
        }
    }
    for (name, path) in &pins {
        if !valid.contains(path.as_str()) {
            report.problems.push(lost(format!("pin `{name}`"), path));
        }
    }
    for s in &installed {
        if !valid.contains(s.release.as_str()) {
            let root = format!("the software installed from `{}`", s.profile);
            report.problems.push(lost(root, &s.release));
        }
    }
    for i in &instances {
        let current = std::path::Path::new(&i.partition).join("current");
        // a partition not switched yet has no `current`; one that has must show a real output
        if let Ok(target) = fs::read_link(&current) {
            if fs::metadata(&current).is_err() {
                report.problems.push(Problem::LostRoot {
                    root: format!("the partition of instance `{}`", i.name),
                    path: target.display().to_string(),
                });
            }
        }
    }
    let entries = fs::read_dir(&store_dir).map_err(|e| crate::error::io_error(&store_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| crate::error::io_error(&store_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !valid.contains(name.as_str()) {
            report.invalid.push(name);
        }
    }
    report.invalid.sort();
    report.problems.extend(
        crate::partition::check(store)?
            .into_iter()
            .map(Problem::Partition),
    );
    Ok(report)
}
