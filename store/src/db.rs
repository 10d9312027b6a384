//! The store's metadata in SQLite (`var/db.sqlite`): valid paths with their content hash,
//! size, registration and build time, their references, and the derivations that built them.
//!
//! Invariants: a row in `paths` exists only for a complete, canonical output already renamed
//! into `store/` and flushed; a reference always names a registered path (foreign keys), so a
//! path cannot be unregistered while a registered path refers to it. Write transactions are
//! `IMMEDIATE` (a deferred one that upgrades fails with "database is locked" under WAL), and
//! the busy timeout is long, so that concurrent processes wait instead of failing. The schema
//! has a version (`PRAGMA user_version`) and each migration moves it one step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::{Result, StoreError};

pub mod master;

/// Schema migrations; `MIGRATIONS[i]` moves version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE paths (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        content_hash TEXT NOT NULL,
        size INTEGER NOT NULL,
        registered INTEGER NOT NULL,
        build_ms INTEGER,
        recipe TEXT
    );
    CREATE TABLE refs (
        referrer INTEGER NOT NULL REFERENCES paths(id) ON DELETE CASCADE,
        reference INTEGER NOT NULL REFERENCES paths(id) ON DELETE RESTRICT,
        PRIMARY KEY (referrer, reference)
    ) WITHOUT ROWID;
    CREATE INDEX refs_by_reference ON refs(reference);
    CREATE TABLE derivations (
        path TEXT PRIMARY KEY,
        json TEXT NOT NULL
    ) WITHOUT ROWID;
",
    "
    CREATE TABLE instances (
        name TEXT PRIMARY KEY,
        partition TEXT NOT NULL,
        current INTEGER NOT NULL,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE generations (
        instance TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        path TEXT NOT NULL,
        release TEXT NOT NULL,
        parameters TEXT NOT NULL,
        parent INTEGER,
        created INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (instance, number)
    ) WITHOUT ROWID;
",
    "
    ALTER TABLE paths ADD COLUMN optimised INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE contents (
        key TEXT PRIMARY KEY,
        file TEXT NOT NULL,
        links INTEGER NOT NULL
    ) WITHOUT ROWID;
",
    "
    CREATE TABLE software (
        profile TEXT PRIMARY KEY,
        release TEXT NOT NULL,
        installed INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX software_by_release ON software(release);
    CREATE INDEX contents_by_file ON contents(file);
",
    // the local master (`db/master.rs`): each instance on a partition `slappartN` of the
    // computer (at most one instance a partition), its requested state, the instance that
    // requested it and under which title; each generation's software type, software release
    // URL and published connection parameters (so that a rollback restores them)
    "
    ALTER TABLE generations ADD COLUMN software_type TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE generations ADD COLUMN software_url TEXT NOT NULL DEFAULT '';
    ALTER TABLE generations ADD COLUMN connection TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE instances ADD COLUMN partition_number INTEGER;
    ALTER TABLE instances ADD COLUMN requested_state TEXT NOT NULL DEFAULT 'started';
    ALTER TABLE instances ADD COLUMN parent TEXT;
    ALTER TABLE instances ADD COLUMN title TEXT;
    UPDATE instances SET partition_number =
        (SELECT COUNT(*) FROM instances AS o WHERE o.name < instances.name);
    CREATE UNIQUE INDEX instances_by_partition ON instances(partition_number);
    CREATE INDEX instances_by_parent ON instances(parent);
",
    // the user each instance runs as (`users.rs`), gone with the instance
    "
    CREATE TABLE instance_users (
        instance TEXT PRIMARY KEY REFERENCES instances(name) ON DELETE CASCADE,
        user TEXT NOT NULL UNIQUE,
        uid INTEGER NOT NULL UNIQUE,
        gid INTEGER NOT NULL
    ) WITHOUT ROWID;
",
    // a change requested of an instance that no generation deploys yet (`instance request`,
    // deployed by `instance reconcile`; `db/master.rs`), NULL when there is none
    "
    ALTER TABLE instances ADD COLUMN request TEXT;
",
    // shared (slave) instances: no partition, no generation; their parameters are given to
    // the instance hosting them (`slave-instance-list`), gone with it (`db/master.rs`)
    "
    CREATE TABLE shared_instances (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
        software_type TEXT NOT NULL,
        parameters TEXT NOT NULL,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX shared_by_host ON shared_instances(host);
",
];

/// The reference graph as stored: paths `(id, name, size)` and references `(referrer, reference)`.
pub type GraphRows = (Vec<(i64, String, u64)>, Vec<(i64, i64)>);

/// One generation of an instance, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationRow {
    pub instance: String,
    pub number: i64,
    /// The generation's output (base name).
    pub path: String,
    /// The release it runs (base name).
    pub release: String,
    /// `{"key": "value"}` parameters, as JSON.
    pub parameters: String,
    /// The generation it was made from (upgrade) — what rollback goes back to.
    pub parent: Option<i64>,
    pub created: i64,
    /// Deleted generations keep their row (so the parent chain stays whole) but are no root.
    pub deleted: bool,
    /// The software type it was rendered for (`default` unless requested otherwise).
    pub software_type: String,
    /// The software release's URL as the instance was given it (a profile or a store path).
    pub software_url: String,
    /// `{"key": "value"}` connection parameters the generation published, as JSON.
    pub connection: String,
}

/// A generation to record with [`Db::add_generations`].
#[derive(Debug, Clone)]
pub struct NewGeneration {
    pub partition: String,
    pub row: GenerationRow,
    /// The instance must not exist yet (`instance create`).
    pub expect_new: bool,
    /// For a new instance: the instance that requested it and the title it requested it
    /// under (`request` recipes); `None` for an instance made by the user.
    pub requested_by: Option<(String, String)>,
    /// For a new instance: the partition it is rendered for (`Db::free_partitions`); `None`:
    /// the lowest free one.
    pub partition_number: Option<i64>,
}

/// An instance, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub name: String,
    pub partition: String,
    pub current: i64,
    pub created: i64,
}

/// One valid path, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRow {
    pub name: String,
    pub content_hash: String,
    pub size: u64,
    /// Unix time of registration.
    pub registered: i64,
    pub build_ms: Option<u64>,
    pub recipe: Option<String>,
}

/// A path to register: its row, its references (base names) and the derivation that built it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub row: PathRow,
    pub references: Vec<String>,
    pub derivation: Option<String>,
}

/// An installed release: a root until it is removed (`slapstore software remove`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The profile it was built from (an absolute path or a URL): one release per profile.
    pub profile: String,
    /// The release (base name).
    pub release: String,
    /// Unix time of the installation.
    pub installed: i64,
}

/// An open store database.
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Db> {
        let conn = Connection::open(path).map_err(|e| db_error(path, e))?;
        let mut db = Db {
            conn,
            path: path.to_owned(),
        };
        db.configure()?;
        db.migrate()?;
        Ok(db)
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        db_error(&self.path, e)
    }

    /// The rows of a query, each mapped by `f`.
    fn rows<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params, f).map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    fn configure(&mut self) -> Result<()> {
        self.conn
            .busy_timeout(Duration::from_secs(600))
            .map_err(|e| self.err(e))?;
        // every command is a short process: checkpointing (two fsyncs, and the WAL deleted) as
        // each one closes the database would cost more than its work; SQLite checkpoints
        // automatically once the WAL holds 256 pages (1 MiB), and truncates it back to 1 MiB
        // after a checkpoint (`journal_size_limit`), so the WAL stays near 1 MiB at most
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA wal_autocheckpoint = 256;
                 PRAGMA journal_size_limit = 1048576;",
            )
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        if version == known {
            return Ok(());
        }
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&path, e))?;
        // another process may have migrated while we waited for the lock
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| db_error(&path, e))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(|e| db_error(&path, e))?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(|e| db_error(&path, e))?;
        }
        tx.commit().map_err(|e| db_error(&path, e))
    }

    /// Runs `f`'s reads in one read transaction: they all see the database as of one moment.
    pub fn snapshot<T>(&mut self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        let result = f(self);
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
        result
    }

    /// Whether `name` (a store path's base name) is registered.
    pub fn is_valid(&self, name: &str) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM paths WHERE name = ?1")
            .and_then(|mut s| s.exists([name]))
            .map_err(|e| self.err(e))
    }

    /// Which of `names` are valid, in one read transaction.
    pub fn valid_among(&mut self, names: &[String]) -> Result<std::collections::HashSet<String>> {
        let path = self.path.clone();
        let e = |e| db_error(&path, e);
        let tx = self.conn.transaction().map_err(e)?;
        let mut out = std::collections::HashSet::new();
        {
            let mut stmt = tx
                .prepare_cached("SELECT 1 FROM paths WHERE name = ?1")
                .map_err(e)?;
            for n in names {
                if stmt.exists([n]).map_err(e)? {
                    out.insert(n.clone());
                }
            }
        }
        tx.commit().map_err(e)?;
        Ok(out)
    }

    /// Registers `paths` in one transaction. References must name registered paths or paths of
    /// the same batch; a path already registered is left as it is.
    pub fn register(&mut self, paths: &[Registration]) -> Result<()> {
        let path = self.path.clone();
        let e = |e| db_error(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO paths
                        (name, content_hash, size, registered, build_ms, recipe)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(e)?;
            let mut drv = tx
                .prepare_cached("INSERT OR REPLACE INTO derivations (path, json) VALUES (?1, ?2)")
                .map_err(e)?;
            for p in paths {
                let r = &p.row;
                insert
                    .execute(params![
                        r.name,
                        r.content_hash,
                        r.size as i64,
                        r.registered,
                        r.build_ms.map(|m| m as i64),
                        r.recipe
                    ])
                    .map_err(e)?;
                if let Some(json) = &p.derivation {
                    drv.execute(params![r.name, json]).map_err(e)?;
                }
            }
            let mut reference = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO refs (referrer, reference)
                     SELECT a.id, b.id FROM paths a, paths b WHERE a.name = ?1 AND b.name = ?2",
                )
                .map_err(e)?;
            for p in paths {
                for r in &p.references {
                    if reference.execute(params![p.row.name, r]).map_err(e)? == 0 {
                        return Err(StoreError::NotValid(r.clone()));
                    }
                }
            }
        }
        tx.commit().map_err(e)
    }

    /// Records a repaired path's new content hash and size.
    pub fn update_output(&mut self, name: &str, content_hash: &str, size: u64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE paths SET content_hash = ?2, size = ?3 WHERE name = ?1",
                params![name, content_hash, size as i64],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The row of a valid path.
    pub fn path_info(&self, name: &str) -> Result<Option<PathRow>> {
        self.conn
            .prepare_cached(
                "SELECT name, content_hash, size, registered, build_ms, recipe
                 FROM paths WHERE name = ?1",
            )
            .and_then(|mut s| s.query_row([name], row).optional())
            .map_err(|e| self.err(e))
    }

    /// The paths `name` refers to, sorted.
    pub fn references(&self, name: &str) -> Result<Vec<String>> {
        self.names(
            "SELECT b.name FROM paths a JOIN refs ON refs.referrer = a.id
             JOIN paths b ON b.id = refs.reference WHERE a.name = ?1 ORDER BY b.name",
            name,
        )
    }

    /// The paths that refer to `name`, sorted.
    pub fn referrers(&self, name: &str) -> Result<Vec<String>> {
        self.names(
            "SELECT a.name FROM paths b JOIN refs ON refs.reference = b.id
             JOIN paths a ON a.id = refs.referrer WHERE b.name = ?1 ORDER BY a.name",
            name,
        )
    }

    fn names(&self, sql: &str, name: &str) -> Result<Vec<String>> {
        self.rows(sql, [name], |r| r.get(0))
    }

    /// The derivation (JSON) that built `name`, if it was built here.
    pub fn derivation(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT json FROM derivations WHERE path = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Valid paths that `optimise` has not deduplicated yet.
    pub fn unoptimised(&self) -> Result<Vec<String>> {
        self.rows(
            "SELECT name FROM paths WHERE optimised = 0 ORDER BY name",
            [],
            |r| r.get(0),
        )
    }

    /// The content index of `optimise`: key (`<blake3>-<x or ->`) → a file holding that
    /// content (relative to the store directory), and how many links it has.
    pub fn content_index(&self) -> Result<Vec<(String, String, i64)>> {
        self.rows("SELECT key, file, links FROM contents", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
    }

    /// Records an `optimise` run: the paths done and the index entries added or changed.
    pub fn record_optimised(
        &mut self,
        paths: &[String],
        index: &[(String, String, i64)],
    ) -> Result<()> {
        let path = self.path.clone();
        let e = |e| db_error(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        {
            let mut done = tx
                .prepare_cached("UPDATE paths SET optimised = 1 WHERE name = ?1")
                .map_err(e)?;
            for p in paths {
                done.execute([p]).map_err(e)?;
            }
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO contents (key, file, links) VALUES (?1, ?2, ?3)",
                )
                .map_err(e)?;
            for (k, f, l) in index {
                put.execute(params![k, f, l]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// The base names of every valid path.
    pub fn all_names(&self) -> Result<Vec<String>> {
        self.rows("SELECT name FROM paths", [], |r| r.get(0))
    }

    /// Every valid path.
    pub fn all_paths(&self) -> Result<Vec<PathRow>> {
        self.rows(
            "SELECT name, content_hash, size, registered, build_ms, recipe
             FROM paths ORDER BY name",
            [],
            row,
        )
    }

    /// Records new generations and makes each current, creating an instance on its first
    /// generation (`NewGeneration::expect_new`: fail if it exists) on the lowest free
    /// partition of the computer (`partition_count` of them; `None`: as many as needed). One
    /// transaction for all.
    pub fn add_generations(
        &mut self,
        new: &[NewGeneration],
        partition_count: Option<u32>,
    ) -> Result<()> {
        let path = self.path.clone();
        let e = |e| db_error(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        for g in new {
            let row = &g.row;
            let exists: bool = tx
                .prepare_cached("SELECT 1 FROM instances WHERE name = ?1")
                .and_then(|mut s| s.exists([&row.instance]))
                .map_err(e)?;
            if exists && g.expect_new {
                return Err(StoreError::InstanceExists(row.instance.clone()));
            }
            if !exists {
                let number = match g.partition_number {
                    Some(n) => n,
                    None => {
                        master::free_partition(&tx, partition_count).map_err(|err| match err {
                            master::Allocation::Full(count) => StoreError::NoFreePartition {
                                instance: row.instance.clone(),
                                count,
                            },
                            master::Allocation::Db(err) => e(err),
                        })?
                    }
                };
                let (parent, title) = match &g.requested_by {
                    Some((parent, title)) => (Some(parent.as_str()), Some(title.as_str())),
                    None => (None, None),
                };
                tx.prepare_cached(
                    "INSERT INTO instances (name, partition, current, created, partition_number,
                     parent, title) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        row.instance,
                        g.partition,
                        row.number,
                        row.created,
                        number,
                        parent,
                        title
                    ])
                })
                .map_err(e)?;
            }
            tx.prepare_cached(
                "INSERT INTO generations (instance, number, path, release, parameters, parent,
                 created, software_type, software_url, connection)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    row.instance,
                    row.number,
                    row.path,
                    row.release,
                    row.parameters,
                    row.parent,
                    row.created,
                    row.software_type,
                    row.software_url,
                    row.connection
                ])
            })
            .map_err(e)?;
            tx.prepare_cached("UPDATE instances SET current = ?2 WHERE name = ?1")
                .and_then(|mut s| s.execute(params![row.instance, row.number]))
                .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// Makes generation `number` current.
    pub fn set_current(&mut self, instance: &str, number: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE instances SET current = ?2 WHERE name = ?1",
                params![instance, number],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Marks generations deleted (never the current one: the caller checks).
    pub fn delete_generations(&mut self, instance: &str, numbers: &[i64]) -> Result<()> {
        let path = self.path.clone();
        let e = |e| db_error(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        for n in numbers {
            tx.execute(
                "UPDATE generations SET deleted = 1 WHERE instance = ?1 AND number = ?2",
                params![instance, n],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// Forgets an instance and its generations.
    pub fn delete_instance(&mut self, instance: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM instances WHERE name = ?1", [instance])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The user instance `instance` runs as, if it has one (`users.rs`).
    pub fn instance_user(&self, instance: &str) -> Result<Option<crate::users::User>> {
        self.conn
            .prepare_cached("SELECT user, uid, gid FROM instance_users WHERE instance = ?1")
            .and_then(|mut s| {
                s.query_row([instance], |r| {
                    Ok(crate::users::User {
                        name: r.get(0)?,
                        uid: r.get(1)?,
                        gid: r.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))
    }

    /// Whether an instance runs as the user `user`.
    pub fn user_taken(&self, user: &str) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM instance_users WHERE user = ?1")
            .and_then(|mut s| s.exists([user]))
            .map_err(|e| self.err(e))
    }

    /// The uids instances run as.
    pub fn instance_uids(&self) -> Result<Vec<u32>> {
        self.rows("SELECT uid FROM instance_users", [], |r| r.get(0))
    }

    /// Records that instance `instance` (which exists) runs as `user`.
    pub fn record_instance_user(
        &mut self,
        instance: &str,
        user: &crate::users::User,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO instance_users (instance, user, uid, gid) VALUES (?1, ?2, ?3, ?4)",
                params![instance, user.name, user.uid, user.gid],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn instance(&self, name: &str) -> Result<Option<InstanceRow>> {
        self.conn
            .prepare_cached(
                "SELECT name, partition, current, created FROM instances WHERE name = ?1",
            )
            .and_then(|mut s| s.query_row([name], instance_row).optional())
            .map_err(|e| self.err(e))
    }

    pub fn instances(&self) -> Result<Vec<InstanceRow>> {
        self.rows(
            "SELECT name, partition, current, created FROM instances ORDER BY name",
            [],
            instance_row,
        )
    }

    /// An instance's generations (deleted ones too), by number.
    pub fn generations(&self, instance: &str) -> Result<Vec<GenerationRow>> {
        self.rows(
            "SELECT instance, number, path, release, parameters, parent, created, deleted,
             software_type, software_url, connection
             FROM generations WHERE instance = ?1 ORDER BY number",
            [instance],
            generation_row,
        )
    }

    /// The whole reference graph in two scans: every valid path (id, name, size) and every
    /// reference (referrer id, reference id). What the collector marks over, in memory.
    pub fn graph(&self) -> Result<GraphRows> {
        let paths = self.rows("SELECT id, name, size FROM paths", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        let refs = self.rows("SELECT referrer, reference FROM refs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok((paths, refs))
    }

    /// Records `release` as the software installed from `profile` (replacing what that profile
    /// installed before).
    pub fn install(&mut self, profile: &str, release: &str, now: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO software (profile, release, installed) VALUES (?1, ?2, ?3)",
                params![profile, release, now],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every installed release, by profile.
    pub fn installed(&self) -> Result<Vec<Installed>> {
        self.rows(
            "SELECT profile, release, installed FROM software ORDER BY profile",
            [],
            |r| {
                Ok(Installed {
                    profile: r.get(0)?,
                    release: r.get(1)?,
                    installed: r.get(2)?,
                })
            },
        )
    }

    /// Removes the installations of `profile` or of release `release`; what was removed.
    pub fn uninstall(&mut self, profile: &str, release: &str) -> Result<Vec<Installed>> {
        let path = self.path.clone();
        let e = |e| db_error(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let removed = {
            let mut stmt = tx
                .prepare_cached(
                    "DELETE FROM software WHERE profile = ?1 OR release = ?2
                     RETURNING profile, release, installed",
                )
                .map_err(e)?;
            let rows = stmt
                .query_map(params![profile, release], |r| {
                    Ok(Installed {
                        profile: r.get(0)?,
                        release: r.get(1)?,
                        installed: r.get(2)?,
                    })
                })
                .map_err(e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(e)?
        };
        tx.commit().map_err(e)?;
        Ok(removed)
    }

    /// Moves the WAL's contents into the database and truncates it (after a collection, which
    /// writes much).
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }

    /// Store paths of the generations that are roots (not deleted), with what they belong to.
    pub fn generation_roots(&self) -> Result<Vec<(String, String, i64)>> {
        self.rows(
            "SELECT path, instance, number FROM generations WHERE deleted = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Unregisters `names` in one transaction, in the given order (referrers before the paths
    /// they refer to). A path that a valid path still refers to is kept; the kept are returned.
    pub fn unregister(&mut self, names: &[String]) -> Result<Vec<String>> {
        let path = self.path.clone();
        let e = |e| db_error(&path, e);
        // The foreign keys' checks and cascades cost a temporary b-tree per deleted row: they
        // are off for this transaction, which deletes reference rows itself and checks, path
        // by path, that nothing refers to what it deletes.
        self.conn
            .execute_batch("PRAGMA foreign_keys = OFF")
            .map_err(e)?;
        let result = (|| {
            let mut kept = Vec::new();
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(e)?;
            {
                let mut id = tx
                    .prepare_cached("SELECT id FROM paths WHERE name = ?1")
                    .map_err(e)?;
                let mut refs = tx
                    .prepare_cached("DELETE FROM refs WHERE referrer = ?1")
                    .map_err(e)?;
                let mut del = tx
                    .prepare_cached("DELETE FROM paths WHERE id = ?1")
                    .map_err(e)?;
                let mut drv = tx
                    .prepare_cached("DELETE FROM derivations WHERE path = ?1")
                    .map_err(e)?;
                // a path's reference to itself (a compiled output embeds its own prefix) does
                // not keep it
                let mut referred = tx
                    .prepare_cached("SELECT 1 FROM refs WHERE reference = ?1 AND referrer != ?1")
                    .map_err(e)?;
                // the content index of `optimise` must not name a file that is gone: it would
                // later link another path's file to whatever takes that name
                let mut contents = tx
                    .prepare_cached(
                        "DELETE FROM contents WHERE file >= ?1 || '/' AND file < ?1 || '0'",
                    )
                    .map_err(e)?;
                for n in names {
                    let Some(i) = id
                        .query_row([n], |r| r.get::<_, i64>(0))
                        .optional()
                        .map_err(e)?
                    else {
                        continue;
                    };
                    // referrers come first in the batch, so a reference still there is a path
                    // the caller did not know of (registered since it looked): it stays
                    if referred.exists([i]).map_err(e)? {
                        kept.push(n.clone());
                        continue;
                    }
                    refs.execute([i]).map_err(e)?;
                    del.execute([i]).map_err(e)?;
                    drv.execute([n]).map_err(e)?;
                    contents.execute([n]).map_err(e)?;
                }
            }
            tx.commit().map_err(e)?;
            Ok(kept)
        })();
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON")
            .map_err(e)?;
        result
    }

    /// SQLite's `PRAGMA integrity_check` and `foreign_key_check`: the problems found.
    pub fn integrity_problems(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        for r in rows {
            let r = r.map_err(|e| self.err(e))?;
            if r != "ok" {
                problems.push(r);
            }
        }
        let mut stmt = self
            .conn
            .prepare("PRAGMA foreign_key_check")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        for r in rows {
            let table = r.map_err(|e| self.err(e))?;
            problems.push(format!("a row of `{table}` names a missing path"));
        }
        Ok(problems)
    }
}

fn generation_row(r: &rusqlite::Row) -> rusqlite::Result<GenerationRow> {
    Ok(GenerationRow {
        instance: r.get(0)?,
        number: r.get(1)?,
        path: r.get(2)?,
        release: r.get(3)?,
        parameters: r.get(4)?,
        parent: r.get(5)?,
        created: r.get(6)?,
        deleted: r.get::<_, i64>(7)? != 0,
        software_type: r.get(8)?,
        software_url: r.get(9)?,
        connection: r.get(10)?,
    })
}

fn instance_row(r: &rusqlite::Row) -> rusqlite::Result<InstanceRow> {
    Ok(InstanceRow {
        name: r.get(0)?,
        partition: r.get(1)?,
        current: r.get(2)?,
        created: r.get(3)?,
    })
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<PathRow> {
    Ok(PathRow {
        name: r.get(0)?,
        content_hash: r.get(1)?,
        size: r.get::<_, i64>(2)? as u64,
        registered: r.get(3)?,
        build_ms: r.get::<_, Option<i64>>(4)?.map(|m| m as u64),
        recipe: r.get(5)?,
    })
}

fn db_error(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Database {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, refs: &[&str]) -> Registration {
        Registration {
            row: PathRow {
                name: name.into(),
                content_hash: "blake3:00".into(),
                size: 1,
                registered: 0,
                build_ms: None,
                recipe: None,
            },
            references: refs.iter().map(|s| s.to_string()).collect(),
            derivation: None,
        }
    }

    #[test]
    fn register_and_query() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = Db::open(&dir.path().join("db.sqlite")).expect("open");
        db.register(&[reg("a", &[]), reg("b", &["a", "b"])])
            .expect("register");
        assert!(db.is_valid("a").expect("query"));
        assert!(!db.is_valid("c").expect("query"));
        assert_eq!(db.references("b").expect("refs"), ["a", "b"]);
        assert_eq!(db.referrers("a").expect("refs"), ["b"]);
        // a reference to an unknown path rolls the whole batch back
        assert!(db.register(&[reg("c", &[]), reg("d", &["zzz"])]).is_err());
        assert!(!db.is_valid("c").expect("query"));
        assert!(db.integrity_problems().expect("check").is_empty());
        // a path still referred to is kept
        assert_eq!(db.unregister(&["a".into()]).expect("unregister"), ["a"]);
        assert!(db.is_valid("a").expect("query"));
        db.register(&[reg("e", &[])]).expect("register");
        assert!(db.unregister(&["e".into()]).expect("unregister").is_empty());
        assert!(!db.is_valid("e").expect("query"));
        assert!(db.integrity_problems().expect("check").is_empty());
        // a path's reference to itself does not keep it
        assert!(db.unregister(&["b".into()]).expect("unregister").is_empty());
        assert!(!db.is_valid("b").expect("query"));
        db.register(&[reg("b", &["a", "b"])]).expect("register");
        drop(db);
        // reopening does not migrate again
        let db = Db::open(&dir.path().join("db.sqlite")).expect("open");
        assert_eq!(db.all_paths().expect("all").len(), 2);
    }

    #[test]
    fn installed_software_and_the_content_index_follow_their_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = Db::open(&dir.path().join("db.sqlite")).expect("open");
        db.register(&[reg("r1", &[]), reg("r2", &[]), reg("r10", &[])])
            .expect("register");
        db.install("/p/a.cfg", "r1", 1).expect("install");
        db.install("/p/a.cfg", "r2", 2).expect("install");
        db.install("/p/b.cfg", "r2", 3).expect("install");
        let rows = db.installed().expect("installed");
        assert_eq!(rows.len(), 2, "one release per profile: {rows:?}");
        assert!(rows.iter().all(|r| r.release == "r2"));
        let removed = db.uninstall("", "r2").expect("uninstall");
        assert_eq!(removed.len(), 2);
        assert!(db.installed().expect("installed").is_empty());
        assert!(db.uninstall("/p/a.cfg", "").expect("uninstall").is_empty());
        // index rows of files under a deleted path go with it, not those of `r10`
        db.record_optimised(
            &[],
            &[
                ("k1".into(), "r1/f".into(), 1),
                ("k2".into(), "r1/d/g".into(), 1),
                ("k3".into(), "r10/f".into(), 1),
            ],
        )
        .expect("record");
        db.unregister(&["r1".into()]).expect("unregister");
        let left: Vec<String> = db
            .content_index()
            .expect("index")
            .into_iter()
            .map(|(k, _, _)| k)
            .collect();
        assert_eq!(left, ["k3"]);
    }
}
