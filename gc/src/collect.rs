//! Mark and sweep (`docs/gc.md`).
//!
//! Under the exclusive GC lock: finish what an interrupted collection left in `var/trash/`; load
//! the graph; mark from the roots; order the dead paths so that a path comes after every path
//! that refers to it; then, batch by batch (bounded transactions), unregister the batch, move its
//! trees into `var/trash/` (one rename each: the store never shows a half-deleted path under its
//! name), and delete them there. The database therefore never names a path that is gone or
//! half-deleted, and an interrupted collection resumes: what it unregistered but did not move is
//! an unregistered entry of `store/`, which the next collection removes like the leftovers of a
//! killed build (when no build holds its lock and no process roots it).

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use rayon::prelude::*;
use slapstore_store::output::{make_writable, remove_tree};
use slapstore_store::store::Lock;
use slapstore_store::{roots, Result, Store, StorePath};

use crate::graph::Graph;
use crate::roots::gather;

/// How to collect.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Report what would be deleted; delete nothing.
    pub dry_run: bool,
    /// Stop once this many bytes are freed.
    pub max_freed: Option<u64>,
    /// Paths per transaction (default 1000).
    pub batch: Option<usize>,
}

/// What a collection did (or would do).
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Base names of the valid paths deleted, in deletion order.
    pub deleted: Vec<String>,
    pub freed_bytes: u64,
    /// Unregistered entries of `store/` and stale scratch directories removed.
    pub leftovers: Vec<String>,
    /// Valid paths before the collection, and how many the roots reach.
    pub total: usize,
    pub live: usize,
    pub roots: usize,
}

/// Collects garbage; `progress(done, total)` is called after each batch.
pub fn collect(
    store: &Store,
    options: &GcOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<GcReport> {
    let _gc = roots::gc_lock(store)?;
    let trash = store.root().join("var/trash");
    if !options.dry_run {
        empty_trash(&trash)?;
    }
    let graph = Graph::load(store)?;
    let roots = gather(store)?;
    let root_names: HashSet<&str> = roots.iter().map(|(p, _)| p.as_str()).collect();
    let root_ids: Vec<u32> = roots
        .iter()
        .filter_map(|(p, _)| graph.index.get(p).copied())
        .collect();
    let marked = graph.mark(root_ids.iter().copied());
    let mut report = GcReport {
        total: graph.len(),
        live: marked.iter().filter(|m| m.is_some()).count(),
        roots: root_ids.len(),
        ..GcReport::default()
    };
    let order = deletion_order(&graph, &marked);
    let mut chosen = Vec::new();
    for i in order {
        if let Some(max) = options.max_freed {
            if report.freed_bytes >= max {
                break;
            }
        }
        report.freed_bytes += graph.sizes[i as usize];
        chosen.push(graph.names[i as usize].clone());
    }
    if options.dry_run {
        report.deleted = chosen;
        report.leftovers = leftovers(store, &graph, &root_names)?.0;
        return Ok(report);
    }
    fs::create_dir_all(&trash).map_err(|e| slapstore_store::error::io_error(&trash, e))?;
    let batch = options.batch.unwrap_or(1000).max(1);
    let total = chosen.len();
    for (n, names) in chosen.chunks(batch).enumerate() {
        // a path that something registered since the graph was loaded refers to is kept
        let kept: HashSet<String> = store.db().unregister(names)?.into_iter().collect();
        let names: Vec<String> = names
            .iter()
            .filter(|n| !kept.contains(*n))
            .cloned()
            .collect();
        for k in &kept {
            if let Some(&i) = graph.index.get(k) {
                report.freed_bytes = report.freed_bytes.saturating_sub(graph.sizes[i as usize]);
            }
        }
        // one rename per tree: out of `store/` at once, then deleted at leisure
        for name in &names {
            let from = store.store_dir().join(name);
            let to = trash.join(name);
            move_out(&from, &to)?;
        }
        names
            .par_iter()
            .map(|name| remove_tree(&trash.join(name)))
            .collect::<Result<Vec<_>>>()?;
        report.deleted.extend(names);
        progress(((n + 1) * batch).min(total), total);
    }
    let deleted: HashSet<&str> = report.deleted.iter().map(String::as_str).collect();
    let (leftovers, _locks) = leftovers(store, &graph, &root_names)?;
    let leftovers: Vec<String> = leftovers
        .into_iter()
        .filter(|n| !deleted.contains(n.as_str()))
        .collect();
    for name in &leftovers {
        let path = if let Some(scratch) = name.strip_prefix("var/tmp/") {
            let dir = store.root().join("var/tmp").join(scratch);
            // the commands a killed build left running
            slapstore_store::recipes::kill_leftover(&dir.join("build"));
            dir
        } else {
            store.store_dir().join(name)
        };
        remove_tree(&path)?;
    }
    report.leftovers = leftovers;
    Ok(report)
}

/// Dead paths, each after every path that refers to it (referrers of a dead path are dead).
fn deletion_order(graph: &Graph, marked: &[Option<u32>]) -> Vec<u32> {
    let dead: Vec<u32> = (0..graph.len() as u32)
        .filter(|&i| marked[i as usize].is_none())
        .collect();
    // Kahn's algorithm on "referrer before reference": a path is ready when all its referrers
    // are deleted
    let mut waiting: Vec<u32> = vec![0; graph.len()];
    for &d in &dead {
        waiting[d as usize] = graph.referrers[d as usize].len() as u32;
    }
    let mut ready: Vec<u32> = dead
        .iter()
        .copied()
        .filter(|&d| waiting[d as usize] == 0)
        .collect();
    let mut order = Vec::with_capacity(dead.len());
    while let Some(p) = ready.pop() {
        order.push(p);
        for &q in &graph.references[p as usize] {
            waiting[q as usize] -= 1;
            if waiting[q as usize] == 0 {
                ready.push(q);
            }
        }
    }
    order
}

/// Moves a store tree out of `store/` (its top directory made writable first, unless root:
/// moving a directory to another parent rewrites its `..`); a single file is unlinked.
fn move_out(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match fs::symlink_metadata(from) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(slapstore_store::error::io_error(from, e)),
    };
    if !meta.is_dir() {
        // a file or link goes in one unlink: it is never seen half-deleted
        return fs::remove_file(from).map_err(|e| slapstore_store::error::io_error(from, e));
    }
    if !slapstore_store::output::is_root() {
        fs::set_permissions(from, fs::Permissions::from_mode(0o755))
            .map_err(|e| slapstore_store::error::io_error(from, e))?;
    }
    fs::rename(from, to).map_err(|e| slapstore_store::error::io_error(to, e))
}

/// Removes what an interrupted collection left in the trash.
fn empty_trash(trash: &Path) -> Result<()> {
    if trash.exists() {
        make_writable(trash)?;
        fs::remove_dir_all(trash).map_err(|e| slapstore_store::error::io_error(trash, e))?;
    }
    Ok(())
}

/// Entries of `store/` that are not valid paths, and scratch directories of `var/tmp/`, that no
/// build is working on (their derivation's lock is free, and held here until they are gone) and
/// no process roots.
fn leftovers(
    store: &Store,
    graph: &Graph,
    roots: &HashSet<&str>,
) -> Result<(Vec<String>, std::collections::HashMap<String, Lock>)> {
    // paths registered since the graph was loaded are valid too
    let valid: HashSet<String> = store.db().all_names()?.into_iter().collect();
    let mut out = Vec::new();
    let mut locks = std::collections::HashMap::new();
    for (dir, prefix) in [
        (store.store_dir(), ""),
        (store.root().join("var/tmp"), "var/tmp/"),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let registered = graph.index.contains_key(&name) || valid.contains(&name);
            if (prefix.is_empty() && registered) || roots.contains(name.as_str()) {
                continue;
            }
            let Ok(path) = StorePath::parse(&name) else {
                continue;
            };
            let hash = path.hash_part();
            if let std::collections::hash_map::Entry::Vacant(slot) = locks.entry(hash) {
                match store.try_lock(slot.key())? {
                    Some(lock) => {
                        slot.insert(lock);
                    }
                    None => continue,
                }
            }
            out.push(format!("{prefix}{name}"));
        }
    }
    out.sort();
    Ok((out, locks))
}
