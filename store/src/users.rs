//! Pools of unprivileged users (issue 16): one user per instance, as SlapOS gives each partition
//! its own `slapuserN`, and one per concurrent build, as Nix's `nixbld` users.
//!
//! A pool is configured by the root (`[instance-users]`, `[build-users]` in
//! `<root>/etc/slapstore.toml`): a name prefix, a count and a first uid; user `i` is
//! `<prefix><i>` with uid and gid `first-uid + i`; without `[build-users]`, builds (as root)
//! use [`UserPool::default_build_users`], `slapbld<i>`. A user that is missing is created, with its
//! own group, by `groupadd` and `useradd` (arguments, never a shell; names checked first), under
//! a `users` lock (the root's for instance users, the host's, `/run/slapstore/users.lock`, for
//! build users); a user of that name that exists already is used as it is.
//!
//! An instance's user is recorded in the database with the instance (`instance_users`, gone with
//! it), so it stays the instance's even if the pool changes; a free one is the lowest index no
//! instance holds. A build user is held by a host-wide lock
//! (`/run/slapstore/build-user-<name>.lock`) for the build's life, so two builds at once, of one
//! root or of two, never share one.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use crate::error::{Result, StoreError};
use crate::store::Store;

/// A pool of users, as configured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UserPool {
    /// Users are `<prefix>0`, `<prefix>1`, ...
    pub prefix: String,
    /// How many users the pool has.
    pub count: u32,
    /// The uid (and gid) of `<prefix>0`.
    pub first_uid: u32,
}

/// The prefix of the default pool of build users: `slapbld0`, `slapbld1`, ...
pub const DEFAULT_BUILD_PREFIX: &str = "slapbld";
/// The uid (and gid) of `slapbld0`, clear of Debian's dynamic range's usual users (1000 and
/// up, a few at a time), Nix's `nixbld` users (30001–30032) and `nobody` (65534).
pub const DEFAULT_BUILD_FIRST_UID: u32 = 34000;
/// The fewest users of the default pool: several slapstore processes on one root build at once
/// without waiting for each other's users.
const DEFAULT_BUILD_COUNT: u32 = 32;

impl UserPool {
    /// The pool builds run as when slapstore runs as root and the configuration does not say
    /// otherwise: `slapbld<i>`, uid and gid 34000 + i, as many as `jobs` builds at once (and at
    /// least 32). A user is created only when a build first needs one (the lowest free index),
    /// so the system gets as many as builds ever ran at once.
    pub fn default_build_users(jobs: usize) -> UserPool {
        UserPool {
            prefix: DEFAULT_BUILD_PREFIX.to_owned(),
            count: u32::try_from(jobs)
                .unwrap_or(u32::MAX)
                .clamp(DEFAULT_BUILD_COUNT, 100_000),
            first_uid: DEFAULT_BUILD_FIRST_UID,
        }
    }
}

/// A system user of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Whether this process runs as root (only root can switch to other users).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl UserPool {
    /// Why this pool cannot be used, if it cannot: a prefix that `useradd` would refuse or a
    /// shell would treat specially, no users, uids below 1000 (system users) or past 2^31.
    pub fn check(&self) -> std::result::Result<(), String> {
        let p = &self.prefix;
        let first_ok = p
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let rest_ok = p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        if !first_ok || !rest_ok || p.len() > 20 {
            return Err(format!(
                "`prefix = {p:?}`: a prefix is up to 20 lowercase letters, digits, `_` and `-`, \
                 starting with a letter or `_`"
            ));
        }
        if self.count == 0 || self.count > 100_000 {
            return Err(format!(
                "`count = {}`: a pool has 1 to 100000 users",
                self.count
            ));
        }
        let last = u64::from(self.first_uid) + u64::from(self.count);
        if self.first_uid < 1000 || last > 1 << 31 {
            return Err(format!(
                "`first-uid = {}`: uids start at 1000 or more (below are system users) and stay \
                 below 2^31",
                self.first_uid
            ));
        }
        Ok(())
    }

    /// The name of user `i`.
    pub fn name(&self, i: u32) -> String {
        format!("{}{i}", self.prefix)
    }

    /// User `i`, created (with its group) if missing; the caller holds a `users` lock.
    fn ensure(&self, i: u32) -> Result<User> {
        let name = self.name(i);
        if let Some(user) = known(&name) {
            return Ok(user);
        }
        if let Some(user) = lookup(&name)? {
            remember(&user);
            return Ok(user);
        }
        let id = (self.first_uid + i).to_string();
        if group_gid(&name)?.is_none() {
            if let Err(e) = run("groupadd", &["--gid", &id, &name]) {
                // another root's slapstore may have made it meanwhile
                if group_gid(&name)?.is_none() {
                    return Err(e);
                }
            }
        }
        let home = "/nonexistent";
        run(
            "useradd",
            &[
                "--uid",
                &id,
                "--gid",
                &name,
                "--no-create-home",
                "--home-dir",
                home,
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "slapstore",
                &name,
            ],
        )
        .or_else(|e| match lookup(&name) {
            Ok(Some(_)) => Ok(()),
            _ => Err(e),
        })?;
        let user = lookup(&name)?.ok_or_else(|| {
            StoreError::Users(format!(
                "`useradd {name}` succeeded but no user `{name}` can be found"
            ))
        })?;
        remember(&user);
        Ok(user)
    }
}

/// The pool users this process has found or made: a build looks its user up once per run, not
/// once per build (a lookup reads `/etc/passwd` through NSS).
static KNOWN: std::sync::Mutex<Vec<User>> = std::sync::Mutex::new(Vec::new());

fn known(name: &str) -> Option<User> {
    let list = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    list.iter().find(|u| u.name == name).cloned()
}

fn remember(user: &User) {
    KNOWN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(user.clone());
}

/// The user `name` of the system, if there is one.
fn lookup(name: &str) -> Result<Option<User>> {
    let found = nix::unistd::User::from_name(name)
        .map_err(|e| StoreError::Users(format!("cannot look up the user `{name}`: {e}")))?;
    Ok(found.map(|u| User {
        name: name.to_owned(),
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

fn group_gid(name: &str) -> Result<Option<u32>> {
    let found = nix::unistd::Group::from_name(name)
        .map_err(|e| StoreError::Users(format!("cannot look up the group `{name}`: {e}")))?;
    Ok(found.map(|g| g.gid.as_raw()))
}

/// Runs `program args` (from `/usr/sbin` or `PATH`), failing with what it said; again, for up
/// to 10 s, while it cannot lock `/etc/passwd` or `/etc/group` (another process, another root's
/// slapstore, is adding users: "try again later").
fn run(program: &str, args: &[&str]) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match run_once(program, args) {
            Err(StoreError::Users(m))
                if m.contains("try again") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn run_once(program: &str, args: &[&str]) -> Result<()> {
    let sbin = Path::new("/usr/sbin").join(program);
    let exe = if sbin.exists() {
        sbin.into_os_string()
    } else {
        program.into()
    };
    let out = Command::new(&exe)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .map_err(|e| {
            StoreError::Users(format!(
                "cannot run `{program}` ({e}): it creates the pool's users (Debian: `passwd`)"
            ))
        })?;
    if !out.status.success() {
        return Err(StoreError::Users(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The user of instance `instance`: the one recorded, else (with a `pool`) the pool's first
/// user no instance holds, created if missing and recorded. `None` without a recorded user and
/// without a pool: the instance runs as slapstore does. A pool needs root.
pub fn instance_user(
    store: &Store,
    instance: &str,
    pool: Option<&UserPool>,
) -> Result<Option<User>> {
    if let Some(user) = store.db().instance_user(instance)? {
        return Ok(Some(user));
    }
    let Some(pool) = pool else {
        return Ok(None);
    };
    pool.check()
        .map_err(|m| StoreError::Users(format!("`[instance-users]`: {m}")))?;
    if !is_root() {
        return Err(StoreError::Users(
            "instances get their own users (`[instance-users]` in `<root>/etc/slapstore.toml`) \
             only when slapstore runs as root: run it as root, or remove that section"
                .to_owned(),
        ));
    }
    let _lock = store.lock("users")?;
    let mut db = store.db();
    if let Some(user) = db.instance_user(instance)? {
        return Ok(Some(user));
    }
    let taken: std::collections::HashSet<u32> = db.instance_uids()?.into_iter().collect();
    for i in 0..pool.count {
        let name = pool.name(i);
        if db.user_taken(&name)? {
            continue;
        }
        let user = pool.ensure(i)?;
        if taken.contains(&user.uid) {
            continue;
        }
        db.record_instance_user(instance, &user)?;
        return Ok(Some(user));
    }
    Err(StoreError::Users(format!(
        "every user of `[instance-users]` (`{}0` to `{}`) belongs to an instance: raise `count`",
        pool.prefix,
        pool.name(pool.count - 1)
    )))
}

/// Gives every entry of the tree at `dir` (symlinks themselves, never followed) to `uid`:`gid`
/// where it is not theirs already: a build's scratch directory and output, to its build user
/// before each command. Nothing else runs in that tree meanwhile. A file with other hard links
/// stays root's, made readable by all if it was not (and never writable): its other name may
/// be outside, such as the download cache's entry that a fetched source or wheel is a link to,
/// which the build user may read but must not own.
pub fn give_tree(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    chown_tree(dir, uid, gid)
}

/// Gives a build user's output back to root, before it is made read-only; a file with other
/// hard links is left alone (`output::finish` replaces it with a copy, root's): its other names
/// may be outside.
pub fn give_tree_to_root(dir: &Path) -> Result<()> {
    chown_tree(dir, 0, 0)
}

/// One walk of the tree at `dir` on open directory descriptors (`openat(O_NOFOLLOW)`, `fstatat`
/// and `fchownat` by name in their directory: no path is resolved twice, no symlink followed),
/// changing the owner of what is not `uid`:`gid` already, but for files with other hard links.
/// No process of the build user runs
/// meanwhile (its commands are over: their PID namespace died with them).
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(rustix::fs::CWD, dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(crate::error::io_error(dir, e.into())),
    };
    let owner = Owner {
        uid: rustix::fs::Uid::from_raw(uid),
        gid: rustix::fs::Gid::from_raw(gid),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| crate::error::io_error(dir, e.into()))?;
    if (st.st_uid, st.st_gid) != (uid, gid) {
        rustix::fs::fchown(&fd, Some(owner.uid), Some(owner.gid))
            .map_err(|e| crate::error::io_error(dir, e.into()))?;
    }
    owner.walk(fd, dir)
}

/// Whom [`chown_tree`] gives a tree to.
struct Owner {
    uid: rustix::fs::Uid,
    gid: rustix::fs::Gid,
}

impl Owner {
    /// The entries of the directory open as `fd` (at `path`, for errors), and below.
    fn walk(&self, fd: rustix::fd::OwnedFd, path: &Path) -> Result<()> {
        use rustix::fs::{AtFlags, FileType, Mode, OFlags};
        let err = |name: &std::ffi::CStr, e: rustix::io::Errno| {
            let at = path.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            crate::error::io_error(&at, e.into())
        };
        let mut dir = rustix::fs::Dir::new(fd).map_err(|e| err(c".", e))?;
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| err(c".", e))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let parent = dir.fd().map_err(|e| err(name, e))?;
            let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| err(name, e))?;
            let kind = FileType::from_raw_mode(st.st_mode);
            let mine = (st.st_uid, st.st_gid) == (self.uid.as_raw(), self.gid.as_raw());
            let linked = kind != FileType::Directory && st.st_nlink > 1;
            if !mine && linked && kind == FileType::RegularFile && st.st_mode & 0o004 == 0 {
                // readable by all, not the user's (a cache entry: public, read-only)
                let mode = Mode::from_raw_mode((st.st_mode & 0o555) | 0o444);
                rustix::fs::chmodat(parent, name, mode, AtFlags::empty())
                    .map_err(|e| err(name, e))?;
            } else if !mine && !linked {
                rustix::fs::chownat(
                    parent,
                    name,
                    Some(self.uid),
                    Some(self.gid),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| err(name, e))?;
            }
            if kind == FileType::Directory {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let sub = rustix::fs::openat(parent, name, flags, Mode::empty())
                    .map_err(|e| err(name, e))?;
                let at = path.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
                self.walk(sub, &at)?;
            }
        }
        Ok(())
    }
}

/// A build user held for one build: free for another build once dropped.
pub struct BuildUser {
    pub user: User,
    /// The host-wide lock that holds the user (an `flock`, released when the file closes).
    _lock: std::fs::File,
}

/// Where the locks of build users live: build users are the host's, shared by every root on
/// it (as Nix's `/nix/var/nix/userpool`), so two roots never build as one user at once.
const HOST_LOCKS: &str = "/run/slapstore";

/// The host-wide lock file `<HOST_LOCKS>/<name>.lock` (its directory made if missing, 0755: only
/// root writes there), open, not locked.
fn host_lock_file(name: &str) -> Result<std::fs::File> {
    let dir = Path::new(HOST_LOCKS);
    crate::store::create_dirs(dir)?;
    crate::store::open_lock_file(&dir.join(format!("{name}.lock")))
}

/// A build user of `pool` that no other build on this host holds, created if missing; waits
/// while every user is busy (at most `count` builds run as pool users at once).
pub fn build_user(pool: &UserPool) -> Result<BuildUser> {
    pool.check()
        .map_err(|m| StoreError::Users(format!("`[build-users]`: {m}")))?;
    loop {
        for i in 0..pool.count {
            let name = pool.name(i);
            let file = host_lock_file(&format!("build-user-{name}"))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(crate::error::io_error(
                        &Path::new(HOST_LOCKS).join(format!("build-user-{name}.lock")),
                        e,
                    ))
                }
            }
            let user = match known(&name) {
                Some(user) => user,
                None => {
                    let users = host_lock_file("users")?;
                    users.lock().map_err(|e| {
                        crate::error::io_error(&Path::new(HOST_LOCKS).join("users.lock"), e)
                    })?;
                    pool.ensure(i).map_err(|e| match e {
                        StoreError::Users(m) => StoreError::Users(format!(
                            "{m} (builds run as the users of `[build-users]` in \
                             `<root>/etc/slapstore.toml`, by default `{DEFAULT_BUILD_PREFIX}0`, \
                             `{DEFAULT_BUILD_PREFIX}1`, ... from uid {DEFAULT_BUILD_FIRST_UID}: \
                             configure another pool there, or `build-users = false` to build as \
                             root in the sandbox)"
                        )),
                        other => other,
                    })?
                }
            };
            return Ok(BuildUser { user, _lock: file });
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(prefix: &str, count: u32, first_uid: u32) -> UserPool {
        UserPool {
            prefix: prefix.to_owned(),
            count,
            first_uid,
        }
    }

    #[test]
    fn pools_that_cannot_work_are_refused() {
        assert!(pool("slapuser", 10, 20000).check().is_ok());
        assert_eq!(pool("slapuser", 10, 20000).name(3), "slapuser3");
        for bad in [
            "",
            "Slap",
            "1slap",
            "a b",
            "a;b",
            "a$(x)",
            "-x",
            "averyveryverylongprefix",
        ] {
            let e = pool(bad, 10, 20000).check().expect_err(bad);
            assert!(e.contains("prefix"), "{e}");
        }
        assert!(pool("s", 0, 20000)
            .check()
            .expect_err("0")
            .contains("count"));
        assert!(pool("s", 10, 0)
            .check()
            .expect_err("0")
            .contains("first-uid"));
        assert!(pool("s", 10, u32::MAX - 5)
            .check()
            .expect_err("past")
            .contains("first-uid"));
    }

    #[test]
    fn trees_change_owner_in_one_walk_never_following_links() {
        use std::os::unix::fs::MetadataExt;
        if !is_root() {
            eprintln!("skipped: changing owners needs root");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path().join("t");
        std::fs::create_dir_all(t.join("a/b")).expect("mkdir");
        std::fs::write(t.join("a/b/f"), "x").expect("write");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "y").expect("write");
        std::os::unix::fs::symlink(&outside, t.join("l")).expect("symlink");
        std::fs::hard_link(&outside, t.join("h")).expect("link");
        let owners = |paths: &[&str]| -> Vec<(u32, u32)> {
            paths
                .iter()
                .map(|p| {
                    let m = std::fs::symlink_metadata(t.join(p)).expect("meta");
                    (m.uid(), m.gid())
                })
                .collect()
        };
        let all = ["", "a", "a/b", "a/b/f", "l", "h"];
        give_tree(&t, 61234, 61235).expect("give");
        assert_eq!(owners(&all[..5]), vec![(61234, 61235); 5]);
        // the symlink itself changed, not what it points to; a file linked from outside (the
        // download cache) stays root's
        assert_eq!(owners(&["h"]), vec![(0, 0)]);
        assert_eq!(std::fs::metadata(&outside).expect("meta").uid(), 0);
        std::os::unix::fs::lchown(t.join("h"), Some(61234), Some(61235)).expect("chown");
        give_tree_to_root(&t).expect("back");
        assert_eq!(owners(&all[..5]), vec![(0, 0); 5]);
        assert_eq!(
            owners(&["h"]),
            vec![(61234, 61235)],
            "a linked file is left alone"
        );
        // what is missing is nothing to do
        give_tree(&dir.path().join("missing"), 61234, 61235).expect("missing");
    }

    #[test]
    fn root_exists() {
        let root = lookup("root").expect("lookup").expect("root");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(lookup("no-such-user-slapstore").expect("lookup"), None);
    }
}
