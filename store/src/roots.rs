//! What keeps store paths alive besides generations: pins (`var/gcroots/<name>`, symlinks into
//! the store) and temporary roots of running processes (`var/temproots/<pid>`), and the GC lock
//! that orders them against a collection (`docs/gc.md`).
//!
//! Protocol: a process that is about to use a path — build it, check that it exists, register
//! it, point a generation at it — first adds it as a temporary root: under the GC lock held
//! *shared*, it appends the name to its own temporary-roots file, which it keeps locked for its
//! whole life. The collector holds the GC lock *exclusively* from before it reads the roots until
//! it has deleted the last path. So a root is either added before a collection starts (and the
//! collector sees it), or after it ended (and the process's existence check that follows sees
//! the outcome). A file whose lock the collector can take belongs to a dead process and is
//! ignored and removed: a crashed process does not pin anything forever. A process removes its
//! own file as it exits (as Nix's do), after everything it recorded has committed, so
//! `var/temproots/` holds one file per running process, not one per process that ever ran.
//!
//! Installed releases (`software` in the database) are roots too: a build records the release
//! it made (it holds the release as a temporary root until then), and the release stays alive
//! until `slapstore software remove`.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{io_error, Result};
use crate::store::open_lock_file;
use crate::{Store, StorePath};

/// This process's temporary roots file, created on first use, locked while the process lives
/// and removed when the store is closed.
#[derive(Default)]
pub struct TempRoots {
    file: Mutex<Option<(fs::File, PathBuf)>>,
}

impl Drop for TempRoots {
    fn drop(&mut self) {
        let slot = self.file.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some((file, path)) = slot.take() {
            // removed while still locked: a collector sees the file with its lock held, or no
            // file; everything this process recorded has committed by now
            let _ = fs::remove_file(&path);
            drop(file);
        }
    }
}

impl TempRoots {
    /// Adds `paths` as temporary roots of this process (see the module docs).
    pub fn add<'a>(
        &self,
        store: &Store,
        paths: impl IntoIterator<Item = &'a StorePath>,
    ) -> Result<()> {
        let mut text = String::new();
        for p in paths {
            text.push_str(&p.to_string());
            text.push('\n');
        }
        if text.is_empty() {
            return Ok(());
        }
        let dir = store.root().join("var/temproots");
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // the file is created and locked under the GC lock too: a collector that found it
        // unlocked would take its owner for dead and remove it
        let gc = gc_lock_shared(store)?;
        if guard.is_none() {
            crate::store::create_dirs(&dir)?;
            let path = dir.join(std::process::id().to_string());
            let file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            // a file left by a dead process with our pid is ours now: its lock is free
            file.lock().map_err(|e| io_error(&path, e))?;
            file.set_len(0).map_err(|e| io_error(&path, e))?;
            *guard = Some((file, path));
        }
        if let Some((file, _)) = guard.as_mut() {
            file.write_all(text.as_bytes())
                .map_err(|e| io_error(&dir, e))?;
        }
        drop(gc);
        Ok(())
    }
}

/// The GC lock, shared: held only while a temporary root is written.
fn gc_lock_shared(store: &Store) -> Result<fs::File> {
    let path = gc_lock_path(store);
    let file = open_lock_file(&path)?;
    file.lock_shared().map_err(|e| io_error(&path, e))?;
    Ok(file)
}

fn gc_lock_path(store: &Store) -> PathBuf {
    store.root().join("var/lock/gc.lock")
}

/// The GC lock, exclusive: held by a collection for its whole run.
pub fn gc_lock(store: &Store) -> Result<fs::File> {
    let path = gc_lock_path(store);
    let file = open_lock_file(&path)?;
    file.lock().map_err(|e| io_error(&path, e))?;
    Ok(file)
}

/// The temporary roots of live processes, by pid; files of dead processes are removed.
/// Call with the exclusive GC lock held.
pub fn live_temp_roots(store: &Store) -> Result<Vec<(u32, BTreeSet<String>)>> {
    let dir = store.root().join("var/temproots");
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_error(&dir, e)),
    };
    let me = std::process::id();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(&dir, e))?;
        let path = entry.path();
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // gone since the listing: its process exited, and its roots with it
        let Ok(mut file) = fs::OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        if pid != me && file.try_lock().is_ok() {
            // nobody holds it: its process is gone
            let _ = fs::remove_file(&path);
            continue;
        }
        // read through the open file: its process may remove it as it exits, after the lock test
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(|e| io_error(&path, e))?;
        out.push((pid, text.lines().map(str::to_owned).collect()));
    }
    Ok(out)
}

/// `var/gcroots/`.
pub fn pins_dir(store: &Store) -> PathBuf {
    store.root().join("var/gcroots")
}

/// Pins: `(name, store path base name)` for every symlink of `var/gcroots/` into the store.
pub fn pins(store: &Store) -> Result<Vec<(String, String)>> {
    let dir = pins_dir(store);
    let store_dir = store.store_dir();
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_error(&dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(&dir, e))?;
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        if let Some(base) = store_base(&store_dir, &target) {
            out.push((entry.file_name().to_string_lossy().into_owned(), base));
        }
    }
    out.sort();
    Ok(out)
}

/// The store path base name that `target` (a path into the store) names.
fn store_base(store_dir: &Path, target: &Path) -> Option<String> {
    let rest = target.strip_prefix(store_dir).ok()?;
    rest.components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .filter(|b| StorePath::parse(b).is_ok())
        .map(str::to_owned)
}

/// Pins `path` as `name` (replacing a pin of that name).
pub fn pin(store: &Store, path: &StorePath, name: &str) -> Result<PathBuf> {
    let dir = pins_dir(store);
    crate::store::create_dirs(&dir)?;
    let link = dir.join(name);
    let tmp = dir.join(format!(".{name}.new"));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(store.path_of(path), &tmp).map_err(|e| io_error(&tmp, e))?;
    fs::rename(&tmp, &link).map_err(|e| io_error(&link, e))?;
    crate::output::fsync_dir(&dir)?;
    Ok(link)
}

/// Removes the pin `name`; `false` if there was none.
pub fn unpin(store: &Store, name: &str) -> Result<bool> {
    let link = pins_dir(store).join(name);
    match fs::remove_file(&link) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(&link, e)),
    }
}

/// Records `release` as the software installed from `profile` (a path, made absolute, or a
/// URL): a root until `slapstore software remove`. The caller holds `release` as a temporary
/// root (it built or checked it), so it cannot have been collected meanwhile.
pub fn install(store: &Store, release: &StorePath, profile: &str) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    store
        .db()
        .install(&profile_key(profile), &release.to_string(), now)
}

/// How a profile is named among the installed software: a URL as given, a file by its
/// absolute path.
pub fn profile_key(profile: &str) -> String {
    if profile.contains("://") {
        return profile.to_owned();
    }
    std::path::absolute(profile)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| profile.to_owned())
}
