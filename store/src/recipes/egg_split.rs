//! One distribution, one store path: after an egg build's `pip install --target`, the files
//! of each installed distribution (as its `.dist-info/RECORD` lists them) are moved into a tree
//! of their own, `<name>-<version>`, and added to the store content-addressed, moved rather
//! than copied ([`crate::add::stage`]: flushed and registered with the part's output, in its one
//! `syncfs` and transaction), so that every part and every release installing the same
//! distribution for the same interpreter shares one path, and gc deletes it once no part
//! refers to it.
//!
//! Invariants:
//! - a shared tree holds only what the installer wrote for that distribution, minus
//!   `REQUESTED`, `direct_url.json` and uv's `uv_cache.json` (which say who asked for it, from
//!   where and when, not what it is): the same wheel installed by the same installer gives the
//!   same content, hence the same path;
//! - a distribution whose files mention the store directory (compiled against a store-built
//!   library, say) is a path of its own too, added with the references found by scanning it
//!   for the part's inputs' closure: gc keeps the library
//!   while the distribution lives; any file no `RECORD` claims stays in the part's own
//!   `<out>/lib`, scanned with the part's output;
//! - the trees are root's before they move into the store (the install may have run as a build
//!   user);
//! - the added paths are temporary roots of this process from before they are checked until it
//!   exits (`add::stage`), and candidates of the part's reference scan ([`Context::added`]): the part's
//!   scripts and `.slapstore-eggs` name them, so it refers to them once registered.

use std::fs;
use std::path::{Path, PathBuf};

use super::egg::Installed;
use super::Context;
use crate::error::{io_error, Result};

/// Splits `target` into shared store paths (recorded in `installed`); the directories of the
/// part's `sys.path`: those paths, then `<out>/lib` if anything stays unshared.
pub(super) fn share(
    ctx: &mut Context,
    target: &Path,
    installed: &mut [Installed],
) -> Result<Vec<PathBuf>> {
    let split = ctx.scratch.join("split");
    fs::create_dir_all(&split).map_err(|e| io_error(&split, e))?;
    let store_dir = ctx.store.store_dir().display().to_string();
    let mut trees = Vec::new();
    let mut owners = Vec::new();
    for (i, dist) in installed.iter().enumerate().filter(|(_, d)| !d.build_only) {
        let Some(info) = dist_info(target, &dist.name, &dist.version)? else {
            continue;
        };
        let record_path = info.join("RECORD");
        let Ok(record) = fs::read_to_string(&record_path) else {
            continue;
        };
        let info_name = info
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // who asked for it, and from where (a `:develop` tree's scratch copy): not what it is
        // (uv's `uv_cache.json` holds the time it was cached)
        let dropped = [
            format!("{info_name}/REQUESTED"),
            format!("{info_name}/direct_url.json"),
            format!("{info_name}/uv_cache.json"),
        ];
        let files: Vec<String> = record
            .lines()
            .filter_map(record_path_of)
            .filter(|p| !p.starts_with('/') && !p.split('/').any(|c| c == ".."))
            .filter(|p| target.join(p).is_file())
            .collect();
        let referring = files
            .iter()
            .any(|f| mentions(&target.join(f), store_dir.as_bytes()));
        if referring {
            ctx.note(&format!(
                "`{}` mentions the store: its references are registered",
                dist.name
            ))?;
        }
        let tree = split.join(format!("{}-{}", dist.name, dist.version));
        for file in &files {
            let from = target.join(file);
            if dropped.contains(file) {
                fs::remove_file(&from).map_err(|e| io_error(&from, e))?;
                continue;
            }
            let to = tree.join(file);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
            }
            fs::rename(&from, &to).map_err(|e| io_error(&to, e))?;
        }
        let kept: String = record
            .lines()
            .filter(|l| record_path_of(l).is_none_or(|p| !dropped.contains(&p)))
            .map(|l| format!("{l}\n"))
            .collect();
        let record_to = tree.join(&info_name).join("RECORD");
        fs::write(&record_to, kept).map_err(|e| io_error(&record_to, e))?;
        trees.push((tree, referring));
        owners.push(i);
    }
    // uv's lock of the target directory
    let lock = target.join(".lock");
    if lock.is_file() {
        fs::remove_file(&lock).map_err(|e| io_error(&lock, e))?;
    }
    // the build user's files become root's before they enter the store (they are moved in)
    if ctx.sandbox.as_ref().and_then(|s| s.user()).is_some() {
        crate::users::give_tree_to_root(&split)?;
    }
    // one batch, moved in (no copy); those mentioning the store scanned for the part's inputs
    // (its closure but the part itself, which a distribution cannot refer to); flushed and
    // registered with the part's output
    let candidates = if trees.iter().any(|(_, r)| *r) {
        crate::build::candidates(ctx.store, ctx.drv)?
            .into_iter()
            .filter(|p| *p != ctx.drv.path)
            .collect()
    } else {
        Vec::new()
    };
    let staged = crate::add::stage(
        ctx.store,
        &trees,
        &crate::references::Candidates::new(candidates),
    )?;
    let added = staged.paths;
    ctx.staged.extend(staged.registrations);
    let mut paths = Vec::new();
    for (path, &i) in added.iter().zip(&owners) {
        let full = ctx.store.path_of(path);
        installed[i].path = Some(full.clone());
        paths.push(full);
    }
    ctx.added.extend(added);
    remove_empty_dirs(target)?;
    if target.exists() {
        fs::create_dir_all(&ctx.out).map_err(|e| io_error(&ctx.out, e))?;
        let lib = ctx.out.join("lib");
        fs::rename(target, &lib).map_err(|e| io_error(&lib, e))?;
        // where the scripts find it once the output is in the store
        paths.push(ctx.store_out.join("lib"));
    }
    Ok(paths)
}

/// The `.dist-info` directory of `name` at `version` in `target`, if there is one.
fn dist_info(target: &Path, name: &str, version: &str) -> Result<Option<PathBuf>> {
    let want = super::egg::normalise(name);
    for entry in fs::read_dir(target).map_err(|e| io_error(target, e))? {
        let entry = entry.map_err(|e| io_error(target, e))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".dist-info") else {
            continue;
        };
        if let Some((n, v)) = stem.rsplit_once('-') {
            if super::egg::normalise(n) == want && v == version {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}

/// The path of a `RECORD` line (`path,hash,size`, the path quoted if it holds a comma).
fn record_path_of(line: &str) -> Option<String> {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix('"') {
        let end = rest.find("\",")?;
        return Some(rest[..end].replace("\"\"", "\""));
    }
    let mut pieces = line.rsplitn(3, ',');
    let (_size, _hash, path) = (pieces.next()?, pieces.next()?, pieces.next()?);
    (!path.is_empty()).then(|| path.to_owned())
}

/// Whether the file's bytes contain `needle`.
fn mentions(file: &Path, needle: &[u8]) -> bool {
    fs::read(file).is_ok_and(|bytes| memchr::memmem::find(&bytes, needle).is_some())
}

/// Removes the empty directories under `dir`, and `dir` itself if it ends up empty.
fn remove_empty_dirs(dir: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(dir).contents_first(true) {
        let entry = entry.map_err(|e| io_error(dir, std::io::Error::other(e.to_string())))?;
        if entry.file_type().is_dir() {
            // fails, as wanted, when not empty
            let _ = fs::remove_dir(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::record_path_of;

    #[test]
    fn record_lines() {
        assert_eq!(
            record_path_of("six.py,sha256=abc,34549").as_deref(),
            Some("six.py")
        );
        assert_eq!(
            record_path_of("six-1.16.0.dist-info/RECORD,,").as_deref(),
            Some("six-1.16.0.dist-info/RECORD")
        );
        assert_eq!(
            record_path_of("\"a,b.py\",sha256=x,1").as_deref(),
            Some("a,b.py")
        );
        assert_eq!(record_path_of(""), None);
    }
}
