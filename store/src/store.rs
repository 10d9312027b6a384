//! A store root on disk (design §3): its directories, its database, and its locks.
//!
//! `Store::open` creates the layout when it is missing, with explicit modes (directories 0755,
//! lock files 0644, whatever the umask); `Store::open_existing`, for commands
//! that only read, refuses a root that has no database and creates nothing. Locks are files
//! under `var/lock/`,
//! held with `flock(2)` through std's `File::lock`, so the kernel drops them when a process
//! dies: a crashed build never holds a lock forever.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::db::Db;
use crate::error::{io_error, Result, StoreError};
use crate::StorePath;

/// An open store root.
pub struct Store {
    root: PathBuf,
    db: Mutex<Db>,
    temp_roots: crate::roots::TempRoots,
}

/// A held lock; released when dropped.
pub struct Lock {
    _file: fs::File,
}

impl Store {
    /// Opens the store at `root`, creating its directories and database if needed.
    pub fn open(root: &Path) -> Result<Store> {
        let root = if root.is_absolute() {
            root.to_owned()
        } else {
            std::env::current_dir()
                .map_err(|e| io_error(root, e))?
                .join(root)
        };
        for dir in [
            "store",
            "var/tmp",
            "var/log",
            "var/lock",
            "var/cache/sources",
            "var/gcroots",
        ] {
            create_dirs(&root.join(dir))?;
        }
        // opening is serialised: switching a new database to WAL and migrating it take locks
        // that SQLite does not wait for (a concurrent opener would get "database is locked")
        let guard = lock_file(&root.join("var/lock/db-open.lock"))?;
        let db = Db::open(&root.join("var/db.sqlite"))?;
        restrict_database(&root.join("var"))?;
        drop(guard);
        Ok(Store {
            root,
            db: Mutex::new(db),
            temp_roots: Default::default(),
        })
    }

    /// Opens the store at `root` for a command that only reads: a root without a database (a
    /// typo in `--root`) is an error, and nothing is created.
    pub fn open_existing(root: &Path) -> Result<Store> {
        let absolute = std::path::absolute(root).map_err(|e| io_error(root, e))?;
        if !absolute.join("var/db.sqlite").is_file() {
            return Err(StoreError::NoStore(absolute));
        }
        Store::open(&absolute)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/store`.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// The full path of a store path.
    pub fn path_of(&self, path: &StorePath) -> PathBuf {
        self.store_dir().join(path.to_string())
    }

    /// The scratch directory of a build of `path`.
    pub fn scratch_dir(&self, path: &StorePath) -> PathBuf {
        self.root.join("var/tmp").join(path.to_string())
    }

    /// The build log of `path`.
    pub fn log_path(&self, path: &StorePath) -> PathBuf {
        self.root.join("var/log").join(format!("{path}.log"))
    }

    /// The download cache.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("var/cache/sources")
    }

    /// The database, for one operation or transaction.
    pub fn db(&self) -> MutexGuard<'_, Db> {
        // a panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is still usable
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `paths` temporary roots of this process: a collection from now on keeps them
    /// (`roots.rs`). Add a path before checking that it exists or is valid.
    pub fn add_temp_roots<'a>(&self, paths: impl IntoIterator<Item = &'a StorePath>) -> Result<()> {
        self.temp_roots.add(self, paths)
    }

    /// Tries to take the lock named `name` without waiting; `None` if another process holds it.
    pub fn try_lock(&self, name: &str) -> Result<Option<Lock>> {
        let path = self.root.join("var/lock").join(format!("{name}.lock"));
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error(&path, e)),
        }
    }

    /// Whether `path` is registered.
    pub fn is_valid(&self, path: &StorePath) -> Result<bool> {
        self.db().is_valid(&path.to_string())
    }

    /// Takes the exclusive lock named `name` (blocking until it is free).
    pub fn lock(&self, name: &str) -> Result<Lock> {
        lock_file(&self.root.join("var/lock").join(format!("{name}.lock")))
    }

    /// Resolves a user's argument (`<root>/store/<base>`, a path below it, or the base name) to
    /// the store path it names.
    pub fn parse_path(&self, text: &str) -> Result<StorePath> {
        let store_dir = self.store_dir();
        let p = Path::new(text);
        let base = if p.is_absolute() {
            let rest = p
                .strip_prefix(&store_dir)
                .map_err(|_| StoreError::NotInStore(text.to_owned(), store_dir.clone()))?;
            rest.components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .ok_or_else(|| StoreError::NotInStore(text.to_owned(), store_dir.clone()))?
                .to_owned()
        } else {
            text.trim_end_matches('/').to_owned()
        };
        Ok(StorePath::parse(&base)?)
    }
}

/// Opens (creating if needed, mode 0644) the lock file at `path`, without locking it.
pub fn open_lock_file(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| io_error(path, e))
}

/// Creates `dir` and its missing parents, mode 0755 (not the umask's choice).
pub fn create_dirs(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| io_error(dir, e))
}

/// Takes an exclusive `flock` on the file at `path` (created if needed), blocking.
fn lock_file(path: &Path) -> Result<Lock> {
    let file = open_lock_file(path)?;
    file.lock().map_err(|e| io_error(path, e))?;
    Ok(Lock { _file: file })
}

/// Makes the database readable by the root's owner only (0600): it holds instances' parameters
/// (passwords) in generation rows and derivations. SQLite gives its `-wal` and `-shm` files the
/// database's mode; existing ones are set too.
fn restrict_database(var: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for name in ["db.sqlite", "db.sqlite-wal", "db.sqlite-shm"] {
        let path = var.join(name);
        match fs::metadata(&path) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .map_err(|e| io_error(&path, e))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, e)),
        }
    }
    Ok(())
}
