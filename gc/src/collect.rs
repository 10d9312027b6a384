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
//!
//! The roots are read before the graph is loaded (temporary roots first, `roots.rs`), so every
//! path a root names was registered when the graph was loaded. A dead path that a path
//! registered since refers to is kept and reported in [`GcReport::kept`]: with the protocol
//! kept that never happens (such a writer rooted the path before the collection started), so
//! it is a guard, logged by the CLI, not a case. The build logs and lock files of what is
//! deleted go with it.

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
    /// Dead paths kept because a path registered during the collection refers to them: a
    /// writer that did not root what it uses (a bug the guard caught; see the module docs).
    pub kept: Vec<String>,
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
    // the roots first, then the graph: see the module docs and `docs/gc.md`
    let roots = gather(store)?;
    let graph = Graph::load(store)?;
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
        // a path that something registered since the graph was loaded refers to is kept (the
        // guard: see the module docs)
        let kept: HashSet<String> = store.db().unregister(names)?.into_iter().collect();
        report.kept.extend(kept.iter().cloned());
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
            slapstore_store::recipes::kill_leftover(&dir);
            dir
        } else {
            store.store_dir().join(name)
        };
        remove_tree(&path)?;
    }
    report.leftovers = leftovers;
    remove_state(store, &report, &root_names)?;
    // a collection writes much: the WAL goes back to empty rather than waiting for its limit
    store.db().checkpoint()?;
    Ok(report)
}

/// Removes the build logs of the paths deleted and the leftovers removed, and the lock files of
/// hashes that no valid path has, no process roots and nobody holds. Under the exclusive GC
/// lock: a process that will build such a path roots it first, which waits for the collection
/// to end, so it opens (and creates) the lock file only after it is gone; one that rooted it
/// before the collection started is in `roots`, and its lock file stays.
fn remove_state(store: &Store, report: &GcReport, roots: &HashSet<&str>) -> Result<()> {
    let log_dir = store.root().join("var/log");
    for name in report.deleted.iter().chain(&report.leftovers) {
        let base = name.strip_prefix("var/tmp/").unwrap_or(name);
        let log = log_dir.join(format!("{base}.log"));
        match fs::remove_file(&log) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(slapstore_store::error::io_error(&log, e)),
        }
    }
    let names = store.db().all_names()?;
    let keep: HashSet<String> = names
        .iter()
        .map(String::as_str)
        .chain(roots.iter().copied())
        .filter_map(|n| StorePath::parse(n).ok())
        .map(|p| p.hash_part())
        .collect();
    let lock_dir = store.root().join("var/lock");
    let Ok(entries) = fs::read_dir(&lock_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(hash) = file.strip_suffix(".lock") else {
            continue;
        };
        // only the locks of store paths: `<hash>.lock`, a hash of 32 base32 characters
        let is_hash =
            hash.len() == 32 && hash.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
        if !is_hash || keep.contains(hash) {
            continue;
        }
        if let Some(held) = store.try_lock(hash)? {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| slapstore_store::error::io_error(&path, e))?;
            drop(held);
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use slapstore_store::db::{PathRow, Registration};

    use super::*;

    fn name(i: usize) -> String {
        let mut hash = [0u8; slapstore_store::HASH_BYTES];
        hash[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        format!("{}-p{i}", slapstore_store::encode_base32(&hash))
    }

    /// A store of `n` paths (one directory each, with a file), path `i` referring to the paths
    /// in `edges[i]` (all below `i`) and to itself when `selfref[i]`; `pins` pinned and
    /// `installed` installed.
    fn store(
        n: usize,
        edges: &[BTreeSet<usize>],
        selfref: &[bool],
        pins: &BTreeSet<usize>,
        installed: &BTreeSet<usize>,
    ) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut regs = Vec::new();
        for i in 0..n {
            let p = store.store_dir().join(name(i));
            fs::create_dir_all(&p).expect("mkdir");
            fs::write(p.join("f"), name(i)).expect("write");
            let mut references: Vec<String> = edges[i].iter().map(|&j| name(j)).collect();
            if selfref[i] {
                references.push(name(i));
            }
            regs.push(Registration {
                row: PathRow {
                    name: name(i),
                    content_hash: "blake3:00".into(),
                    size: 10,
                    registered: 0,
                    build_ms: None,
                    recipe: None,
                },
                references,
                derivation: None,
            });
        }
        store.db().register(&regs).expect("register");
        for &i in pins {
            let path = StorePath::parse(&name(i)).expect("name");
            roots::pin(&store, &path, &format!("pin{i}")).expect("pin");
        }
        for &i in installed {
            store
                .db()
                .install(&format!("/profile{i}.cfg"), &name(i), 0)
                .expect("install");
        }
        (dir, store)
    }

    /// What the roots reach, computed without the collector's graph.
    fn reachable(edges: &[BTreeSet<usize>], roots: impl Iterator<Item = usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = roots.collect();
        while let Some(p) = stack.pop() {
            if seen.insert(p) {
                stack.extend(edges[p].iter().copied());
            }
        }
        seen
    }

    fn graphs() -> impl Strategy<Value = (usize, Vec<BTreeSet<usize>>, Vec<bool>)> {
        (1usize..40).prop_flat_map(|n| {
            let edges = (0..n)
                .map(|i| {
                    if i == 0 {
                        Just(BTreeSet::new()).boxed()
                    } else {
                        proptest::collection::btree_set(0..i, 0..4).boxed()
                    }
                })
                .collect::<Vec<_>>();
            (Just(n), edges, proptest::collection::vec(any::<bool>(), n))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// One collection deletes exactly what no root reaches; a second deletes nothing.
        #[test]
        fn one_gc_deletes_exactly_the_unreachable(
            (n, edges, selfref) in graphs(),
            pins in proptest::collection::btree_set(0usize..40, 0..4),
            installed in proptest::collection::btree_set(0usize..40, 0..3),
        ) {
            let pins: BTreeSet<usize> = pins.into_iter().filter(|&p| p < n).collect();
            let installed: BTreeSet<usize> = installed.into_iter().filter(|&p| p < n).collect();
            let (_dir, store) = store(n, &edges, &selfref, &pins, &installed);
            let live = reachable(&edges, pins.iter().chain(&installed).copied());
            let report = collect(&store, &GcOptions::default(), &|_, _| {}).expect("gc");
            let deleted: BTreeSet<String> = report.deleted.iter().cloned().collect();
            let dead: BTreeSet<String> =
                (0..n).filter(|i| !live.contains(i)).map(name).collect();
            prop_assert_eq!(&deleted, &dead);
            prop_assert!(report.kept.is_empty());
            let valid: BTreeSet<String> = store.db().all_names().expect("names").into_iter().collect();
            let alive: BTreeSet<String> = live.iter().map(|&i| name(i)).collect();
            prop_assert_eq!(&valid, &alive);
            for i in 0..n {
                prop_assert_eq!(store.store_dir().join(name(i)).exists(), live.contains(&i));
            }
            let again = collect(&store, &GcOptions::default(), &|_, _| {}).expect("gc");
            prop_assert!(again.deleted.is_empty());
        }
    }
}
