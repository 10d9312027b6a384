//! `slapstore cache pull`: copies store paths and their closures from binary caches into the
//! store without building anything (what `nix copy --from` does). The closure is read from the
//! signed metadata; paths already valid are skipped; the others are fetched and checked like a
//! substitution (signature, archive hash, content hash), in parallel, and published together:
//! one `syncfs`, references before referrers, one transaction.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use super::info::CacheInfo;
use super::substitute::Substituter;
use super::{io, CacheError};
use crate::db::{PathRow, Registration};
use crate::output::{self, fsync_dir, remove_tree, sync_filesystem};
use crate::references::Candidates;
use crate::{Store, StorePath};

/// What a pull did.
#[derive(Debug, Default, Clone)]
pub struct PullReport {
    pub fetched: Vec<String>,
    pub present: Vec<String>,
    pub bytes: u64,
}

/// Pulls the closures of `roots` from the substituter's caches.
pub fn pull(
    store: &Store,
    sub: &Substituter,
    roots: &[StorePath],
) -> Result<PullReport, CacheError> {
    store.add_temp_roots(roots)?;
    // the closure, from the metadata (each path's own cache)
    let mut infos: BTreeMap<String, (CacheInfo, String)> = BTreeMap::new();
    let mut report = PullReport::default();
    let mut stack: Vec<String> = roots.iter().map(StorePath::to_string).collect();
    let mut seen = BTreeSet::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let path = StorePath::parse(&name).map_err(crate::StoreError::from)?;
        store.add_temp_roots([&path])?;
        if store.is_valid(&path)? {
            report.present.push(name);
            continue;
        }
        let (info, base) = sub.info(&path)?;
        stack.extend(info.references.iter().filter(|r| **r != name).cloned());
        infos.insert(name, (info, base));
    }
    let batch = tempfile::Builder::new()
        .prefix("pull-")
        .tempdir_in(store.root().join("var/tmp"))
        .map_err(|e| io(&store.root().join("var/tmp"), e))?;
    // fetch and check, in parallel
    let wanted: Vec<(&String, &(CacheInfo, String))> = infos.iter().collect();
    let fetched: Vec<(
        StorePath,
        std::path::PathBuf,
        output::OutputInfo,
        Vec<String>,
    )> = wanted
        .par_iter()
        .enumerate()
        .map(|(i, (name, (info, base)))| {
            let name: &String = name;
            let path = StorePath::parse(name).map_err(crate::StoreError::from)?;
            let dest = batch.path().join(i.to_string());
            sub.fetch_into(
                base,
                info,
                &dest,
                &batch.path().join(format!("{i}.download")),
            )?;
            let finished = output::finish(&dest, &Candidates::default())?;
            if finished.content_hash != info.content_hash {
                return Err(CacheError::ContentMismatch {
                    path: name.clone(),
                    expected: info.content_hash.clone(),
                    actual: finished.content_hash,
                });
            }
            Ok((path, dest, finished, info.references.clone()))
        })
        .collect::<Result<_, CacheError>>()?;
    sync_filesystem(batch.path())?;
    // references before referrers, as registration requires
    let mut order: Vec<usize> = Vec::new();
    let mut done: BTreeSet<String> = report.present.iter().cloned().collect();
    while order.len() < fetched.len() {
        let before = order.len();
        for (i, (path, _, _, refs)) in fetched.iter().enumerate() {
            let name = path.to_string();
            if done.contains(&name) {
                continue;
            }
            if refs.iter().all(|r| *r == name || done.contains(r)) {
                order.push(i);
                done.insert(name);
            }
        }
        if order.len() == before {
            return Err(CacheError::BadInfo {
                url: "metadata".into(),
                message: "the references form a cycle or name paths no cache has".into(),
            });
        }
    }
    let mut registrations = Vec::new();
    for &i in &order {
        let (path, dest, finished, refs) = &fetched[i];
        let final_path = store.path_of(path);
        if !store.is_valid(path)? {
            remove_tree(&final_path)?;
            output::rename_into_place(dest, &final_path)?;
        }
        report.bytes += finished.size;
        report.fetched.push(path.to_string());
        registrations.push(Registration {
            row: PathRow {
                name: path.to_string(),
                content_hash: finished.content_hash.clone(),
                size: finished.size,
                registered: crate::build::unix_now(),
                build_ms: None,
                recipe: None,
            },
            references: refs.clone(),
            derivation: None,
        });
    }
    fsync_dir(&store.store_dir())?;
    store.db().register(&registrations)?;
    Ok(report)
}
