//! `optimise`: files with the same content (and executable bit) across the store share one
//! copy — a reflink where the filesystem has them, a hard link otherwise.
//!
//! The content index is a table of the database keyed by BLAKE3 (`contents`: key → a file that
//! holds it, with its link count), not a flat directory of links that ext4 cannot hold at scale
//! (NixOS/nix#1522, #15590). Each valid path is processed once (`paths.optimised`), files under
//! [`Options::min_size`] are skipped (a link saves little and costs a lookup), and a file whose
//! link count reaches [`MAX_LINKS`] stops being the shared copy, so the filesystem's hard-link
//! limit is never hit. A duplicate is replaced by `rename(2)` of a link made beside it, so a
//! reader sees the old file or the new one, never none; the parent directory's mode and mtime
//! are restored. Runs under the GC lock: a collection cannot delete a shared copy meanwhile.
//!
//! The link is made in `var/tmp/` (on the store's filesystem), never inside a store path, so a
//! process killed between the link and the rename leaves a stray file there, which the next run
//! removes, and no store path ever holds a file that is not its own. An index entry is trusted
//! only after a byte-for-byte comparison: a collection drops the entries of the files it deletes
//! (`Db::unregister`), and a file found different from its entry (another path rebuilt under a
//! deleted one's name) becomes the new entry instead of a link target.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use slapstore_store::error::io_error;
use slapstore_store::output::set_mtime;
use slapstore_store::{roots, Result, Store};

/// Below ext4's limit of 65,000 links per inode.
pub const MAX_LINKS: u64 = 60_000;

#[derive(Debug, Clone)]
pub struct Options {
    /// Files smaller than this are left alone.
    pub min_size: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options { min_size: 1024 }
    }
}

/// What `optimise` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub paths: usize,
    pub files: usize,
    /// Files replaced by a link to (or reflink of) another copy.
    pub linked: usize,
    pub bytes_saved: u64,
    pub reflinks: bool,
}

struct Candidate {
    /// Relative to the store directory.
    rel: PathBuf,
    key: String,
    size: u64,
    ino: u64,
}

/// The prefix of the temporary links, in `var/tmp/`.
const TEMP_PREFIX: &str = ".slapstore-optimise-";

pub fn optimise(store: &Store, options: &Options) -> Result<Report> {
    let _gc = roots::gc_lock(store)?;
    let store_dir = store.store_dir();
    let tmp_dir = store.root().join("var/tmp");
    // what a killed run left: under the GC lock, no other optimise is running
    remove_temp_links(&tmp_dir)?;
    let paths = store.db().unoptimised()?;
    let mut index: HashMap<String, (PathBuf, u64)> = store
        .db()
        .content_index()?
        .into_iter()
        .map(|(k, f, l)| (k, (PathBuf::from(f), l as u64)))
        .collect();
    // hash every candidate file, in parallel
    let candidates: Vec<Candidate> = paths
        .par_iter()
        .map(|p| files_of(&store_dir, p, options.min_size))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let mut report = Report {
        paths: paths.len(),
        files: candidates.len(),
        ..Report::default()
    };
    let mut changed: HashMap<String, (PathBuf, u64)> = HashMap::new();
    let mut reflinks: Option<bool> = None;
    for c in &candidates {
        let target = store_dir.join(&c.rel);
        let shared = index.get(&c.key).and_then(|(file, _)| {
            let full = store_dir.join(file);
            fs::symlink_metadata(&full)
                .ok()
                .filter(|m| m.is_file() && m.len() == c.size && m.nlink() < MAX_LINKS)
                .map(|m| (full, m.ino()))
        });
        // the entry's file must hold these very bytes (same inode, or compared now)
        let shared = match shared {
            Some((full, ino)) if ino == c.ino || same_bytes(&full, &target)? => Some((full, ino)),
            _ => None,
        };
        match shared {
            Some((_, ino)) if ino == c.ino => {}
            Some((full, _)) => {
                let reflinked = replace(&full, &target, &tmp_dir, &mut reflinks)?;
                report.linked += 1;
                report.bytes_saved += c.size;
                report.reflinks |= reflinked;
                if !reflinked {
                    if let Some(entry) = index.get_mut(&c.key) {
                        entry.1 += 1;
                        changed.insert(c.key.clone(), entry.clone());
                    }
                }
            }
            None => {
                index.insert(c.key.clone(), (c.rel.clone(), 1));
                changed.insert(c.key.clone(), (c.rel.clone(), 1));
            }
        }
    }
    let rows: Vec<(String, String, i64)> = changed
        .into_iter()
        .map(|(k, (f, l))| (k, f.to_string_lossy().into_owned(), l as i64))
        .collect();
    store.db().record_optimised(&paths, &rows)?;
    Ok(report)
}

/// The files of store path `name` of at least `min_size` bytes, hashed.
fn files_of(store_dir: &Path, name: &str, min_size: u64) -> Result<Vec<Candidate>> {
    let root = store_dir.join(name);
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.map_err(|e| io_error(&root, std::io::Error::other(e.to_string())))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let meta = entry
            .metadata()
            .map_err(|e| io_error(entry.path(), std::io::Error::other(e.to_string())))?;
        if meta.len() < min_size {
            continue;
        }
        let mut hasher = blake3::Hasher::new();
        // mapping small files costs more (a TLB shootdown per unmap) than reading them
        if meta.len() < 1 << 20 {
            let bytes = fs::read(entry.path()).map_err(|e| io_error(entry.path(), e))?;
            hasher.update(&bytes);
        } else {
            hasher
                .update_mmap(entry.path())
                .map_err(|e| io_error(entry.path(), e))?;
        }
        let exec = if meta.mode() & 0o111 != 0 { "x" } else { "-" };
        out.push(Candidate {
            rel: entry
                .path()
                .strip_prefix(store_dir)
                .unwrap_or(entry.path())
                .to_owned(),
            key: format!("{}-{exec}", hasher.finalize().to_hex()),
            size: meta.len(),
            ino: meta.ino(),
        });
    }
    Ok(out)
}

/// Whether two files hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    use std::io::Read;
    let open = |p: &Path| fs::File::open(p).map_err(|e| io_error(p, e));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = read_full(&mut fa, &mut ba).map_err(|e| io_error(a, e))?;
        let m = read_full(&mut fb, &mut bb).map_err(|e| io_error(b, e))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }

    /// Fills `buf` as far as the file goes; how much was read.
    fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

/// Removes the temporary links of `var/tmp/` that a killed run left.
fn remove_temp_links(tmp_dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(tmp_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(())
}

/// Replaces `target` by a reflink of `shared` (if the filesystem can) or a hard link to it,
/// made in `tmp_dir` and renamed over `target`; returns whether it was a reflink.
fn replace(
    shared: &Path,
    target: &Path,
    tmp_dir: &Path,
    reflinks: &mut Option<bool>,
) -> Result<bool> {
    let dir = target.parent().unwrap_or(Path::new("/"));
    let tmp = tmp_dir.join(format!("{TEMP_PREFIX}{}", std::process::id()));
    let dir_meta = fs::symlink_metadata(dir).map_err(|e| io_error(dir, e))?;
    let root = slapstore_store::output::is_root();
    if !root {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| io_error(dir, e))?;
    }
    let _ = fs::remove_file(&tmp);
    let mut reflinked = false;
    if *reflinks != Some(false) {
        match reflink_copy::reflink(shared, &tmp) {
            Ok(()) => {
                reflinked = true;
                *reflinks = Some(true);
            }
            Err(_) => {
                let _ = fs::remove_file(&tmp);
                *reflinks = Some(false);
            }
        }
    }
    let result = (|| {
        if reflinked {
            let mode = fs::symlink_metadata(target)
                .map_err(|e| io_error(target, e))?
                .mode();
            fs::set_permissions(&tmp, fs::Permissions::from_mode(mode & 0o555))
                .map_err(|e| io_error(&tmp, e))?;
            set_mtime(&tmp)?;
        } else {
            fs::hard_link(shared, &tmp).map_err(|e| io_error(&tmp, e))?;
        }
        fs::rename(&tmp, target).map_err(|e| io_error(target, e))
    })();
    // the directory as it was: read-only, its mtime canonical
    if !root {
        fs::set_permissions(dir, fs::Permissions::from_mode(dir_meta.mode() & 0o7777))
            .map_err(|e| io_error(dir, e))?;
    }
    set_mtime(dir)?;
    result.map(|()| reflinked)
}
