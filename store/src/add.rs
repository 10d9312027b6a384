//! Putting existing files into the store without a recipe: [`add`] copies files or trees in as
//! content-addressed paths (like `nix-store --add`), [`register`] registers trees already
//! written under `store/` with given references (like `nix-store --register-validity`).
//!
//! Both work in batches: the trees are copied, canonicalised and hashed in parallel, the
//! filesystem is flushed once, and every path is registered in one transaction — not one
//! transaction and one fsync per path, which is what makes Nix's equivalents slow. [`stage`] is
//! [`add`] for a build's own trees: moved instead of copied, and flushed and registered by the
//! build with its output.
//!
//! A content-addressed path is named `BLAKE3("slapstore-source 1\n" content-hash name)` and the
//! source's base name. A copy is imported under `var/tmp` — canonical and hashed in one pass —
//! and renamed into place; if the name exists already (another process added the same content),
//! the copy is dropped with the batch directory.

use std::fs;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::build::unix_now;
use crate::db::{PathRow, Registration};
use crate::error::{io_error, Result, StoreError};
use crate::output::{self, fsync_dir, sync_filesystem};
use crate::references::Candidates;
use crate::store::Store;
use crate::{PartName, StorePath};

/// Subdirectories of a batch's scratch directory.
const SHARDS: usize = 64;

/// Adds each of `sources` (files or directories) as a content-addressed store path; returns the
/// store paths, in the order of `sources`.
pub fn add(store: &Store, sources: &[PathBuf]) -> Result<Vec<StorePath>> {
    let batch = Batch::new(store, sources.len())?;
    let imported = batch.import(store, sources, Import::Copy)?;
    sync_filesystem(batch.dir.path())?;
    let registrations = batch.place(store, &imported)?;
    fsync_dir(&store.store_dir())?;
    store.db().register(&registrations)?;
    Ok(imported.into_iter().map(|(p, _, _)| p).collect())
}

/// Trees that are the caller's to consume (a build's own, in its scratch directory on the
/// store's file system), added as content-addressed paths without a copy: each is moved into
/// the batch, made canonical and hashed in place (one read of each file), scanned for
/// `candidates` when its flag says so (an egg compiled against a store-built library refers to
/// it; the name still covers the content only), and renamed into `store/`. Neither flushed nor
/// registered: the caller flushes the file system once and registers
/// [`Staged::registrations`] before or with what refers to them (a build, with its output, in
/// one `syncfs` and one transaction). Until then they are temporary roots of this process.
pub fn stage(
    store: &Store,
    sources: &[(PathBuf, bool)],
    candidates: &Candidates,
) -> Result<Staged> {
    let batch = Batch::new(store, sources.len())?;
    let trees: Vec<PathBuf> = sources.iter().map(|(t, _)| t.clone()).collect();
    let scanned: Vec<bool> = sources.iter().map(|(_, s)| *s).collect();
    let imported = batch.import(
        store,
        &trees,
        Import::Move {
            candidates,
            scanned: &scanned,
        },
    )?;
    let registrations = batch.place(store, &imported)?;
    Ok(Staged {
        paths: imported.into_iter().map(|(p, _, _)| p).collect(),
        registrations,
    })
}

/// What [`stage`] added: the paths, in the order of its sources, and their registrations (of
/// those not valid already), to make once the file system is flushed.
#[derive(Debug, Default)]
pub struct Staged {
    pub paths: Vec<StorePath>,
    pub registrations: Vec<Registration>,
}

/// How a batch takes its sources in.
enum Import<'a> {
    /// Copied, canonical, hashing on the way; the sources are left alone.
    Copy,
    /// Moved, then canonicalised and hashed in place; scanned for `candidates` where `scanned`.
    Move {
        candidates: &'a Candidates,
        scanned: &'a [bool],
    },
}

/// A source taken in: its store path, where its tree waits in the batch (`None`: valid already,
/// nothing to place), and what its registration records.
type Imported = (StorePath, Option<PathBuf>, output::OutputInfo);

/// The scratch directory of one batch, under `var/tmp` (deleted with what is left in it).
struct Batch {
    dir: tempfile::TempDir,
}

impl Batch {
    fn new(store: &Store, sources: usize) -> Result<Batch> {
        let tmp = store.root().join("var/tmp");
        let dir = tempfile::Builder::new()
            .prefix("add-")
            .tempdir_in(&tmp)
            .map_err(|e| io_error(&tmp, e))?;
        // spread over subdirectories: creating files in one directory serialises on its lock
        for shard in 0..SHARDS.min(sources) {
            let d = dir.path().join(shard.to_string());
            fs::create_dir(&d).map_err(|e| io_error(&d, e))?;
        }
        Ok(Batch { dir })
    }

    /// Takes `sources` in, in parallel, each named by its content; every path rooted (in one
    /// write) before its validity is checked.
    fn import(&self, store: &Store, sources: &[PathBuf], how: Import) -> Result<Vec<Imported>> {
        // Part names the store has already: a source of such a name may be there with the same
        // content, so a copied one is hashed first (one read, no copy when it is); any other is
        // copied in, canonical, hashing it on the way (one read of each file).
        let known: std::collections::HashSet<String> = match how {
            Import::Copy => store
                .db()
                .all_names()?
                .into_iter()
                .filter_map(|n| n.get(33..).map(str::to_owned))
                .collect(),
            Import::Move { .. } => Default::default(),
        };
        let imported: Vec<Imported> = sources
            .par_iter()
            .enumerate()
            .map(|(i, source)| {
                let name = source.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                    StoreError::NotInStore(source.display().to_string(), store.store_dir())
                })?;
                let name = PartName::new(name).map_err(|e| StoreError::Recipe {
                    part: name.to_owned(),
                    message: e.to_string(),
                })?;
                let copy = self
                    .dir
                    .path()
                    .join((i % SHARDS).to_string())
                    .join(i.to_string());
                let store_path = |info: &output::OutputInfo| {
                    let mut h = blake3::Hasher::new();
                    h.update(b"slapstore-source 1\n");
                    h.update(info.content_hash.as_bytes());
                    h.update(b"\n");
                    h.update(name.as_str().as_bytes());
                    StorePath::new(&h.finalize(), name.clone())
                };
                let info = match &how {
                    Import::Copy => {
                        if known.contains(name.as_str()) {
                            let info = output::content_hash(source)?;
                            let path = store_path(&info);
                            store.add_temp_roots([&path])?;
                            if store.is_valid(&path)? {
                                return Ok((path, None, info));
                            }
                        }
                        output::import(source, &copy)?
                    }
                    Import::Move {
                        candidates,
                        scanned,
                    } => {
                        fs::rename(source, &copy).map_err(|e| io_error(source, e))?;
                        let none = Candidates::default();
                        let scan = if scanned[i] { *candidates } else { &none };
                        output::finish(&copy, scan)?
                    }
                };
                Ok((store_path(&info), Some(copy), info))
            })
            .collect::<Result<_>>()?;
        store.add_temp_roots(imported.iter().map(|(p, _, _)| p))?;
        Ok(imported)
    }

    /// Renames what is not valid already into `store/`; the registrations of those.
    fn place(&self, store: &Store, imported: &[Imported]) -> Result<Vec<Registration>> {
        let names: Vec<String> = imported.iter().map(|(p, _, _)| p.to_string()).collect();
        let valid = store.db().valid_among(&names)?;
        let mut registrations = Vec::new();
        for (path, copy, info) in imported {
            let dest = store.path_of(path);
            let Some(copy) = copy else { continue };
            if valid.contains(&path.to_string()) {
                continue;
            }
            match output::rename_into_place(copy, &dest) {
                Ok(()) => {}
                // the same content was added meanwhile (a directory) or a name repeats in
                // `sources`: content-addressed entries are only ever renamed in complete
                Err(_) if dest.exists() => {}
                Err(e) => return Err(e),
            }
            let mut references: Vec<String> =
                info.references.iter().map(|r| r.to_string()).collect();
            references.sort();
            registrations.push(registration(path, info, references));
        }
        Ok(registrations)
    }
}

/// One path to [`register`]: a tree already under `store/`, and the paths it refers to.
#[derive(Debug, Clone)]
pub struct Unregistered {
    pub path: StorePath,
    pub references: Vec<StorePath>,
}

/// Canonicalises, hashes and registers trees already written under `store/`, in one
/// transaction.
pub fn register(store: &Store, paths: &[Unregistered]) -> Result<()> {
    store.add_temp_roots(paths.iter().map(|u| &u.path))?;
    let infos: Vec<output::OutputInfo> = paths
        .par_iter()
        .map(|u| output::finish(&store.path_of(&u.path), &Candidates::default()))
        .collect::<Result<_>>()?;
    sync_filesystem(&store.store_dir())?;
    let registrations: Vec<Registration> = paths
        .iter()
        .zip(&infos)
        .map(|(u, info)| {
            registration(
                &u.path,
                info,
                u.references.iter().map(StorePath::to_string).collect(),
            )
        })
        .collect();
    store.db().register(&registrations)
}

/// Parses `nix-store --register-validity` input: per path, its full path, a deriver line
/// (ignored), the number of references, then the references.
pub fn parse_validity(store: &Store, text: &str) -> Result<Vec<Unregistered>> {
    let mut lines = text.lines();
    let mut out = Vec::new();
    let bad = |what: &str| StoreError::Recipe {
        part: "register".into(),
        message: format!("malformed registration input: {what}"),
    };
    while let Some(path) = lines.next() {
        if path.is_empty() {
            continue;
        }
        let path = store.parse_path(path)?;
        lines.next().ok_or_else(|| bad("missing deriver line"))?;
        let n: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| bad("missing reference count"))?;
        let mut references = Vec::with_capacity(n);
        for _ in 0..n {
            let r = lines.next().ok_or_else(|| bad("missing reference"))?;
            references.push(store.parse_path(r)?);
        }
        out.push(Unregistered { path, references });
    }
    // references first: a reference must be registered before (or with) its referrer
    Ok(out)
}

fn registration(
    path: &StorePath,
    info: &output::OutputInfo,
    references: Vec<String>,
) -> Registration {
    Registration {
        row: PathRow {
            name: path.to_string(),
            content_hash: info.content_hash.clone(),
            size: info.size,
            registered: unix_now(),
            build_ms: None,
            recipe: None,
        },
        references,
        derivation: None,
    }
}
