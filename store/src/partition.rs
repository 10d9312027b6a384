//! Partitions: an instance's directory (design §3, §6). It holds `current`, a symlink to the
//! output of the generation in use, the links that make that generation's files appear at their
//! places (`etc -> current/etc`), and the instance's mutable directories (`srv/`, `var/`), which
//! belong to no generation and survive upgrades and rollbacks.
//!
//! With an instance user (`users.rs`), the partition directory is root's with the user's
//! group, mode 0750 (no other instance enters it), its mutable directories (and the
//! directories on their way) the user's, their modes cut to 0750 or stricter, and the
//! generation's output (0500, root's: it holds the parameters) is given the user's group and
//! mode 0550, so that the instance's services read their configuration and nothing else writes
//! it. [`mismatches`] checks all of that, so a partition whose owners drifted is switched again.
//!
//! Switching generations is one `rename(2)` of a new symlink over `current`: every link goes
//! through `current`, so the whole partition changes at once. Links are made at the highest
//! level that holds no mutable directory, so a generation whose files all live under `etc/` and
//! `bin/` costs two links, whatever the number of files (a symlink costs about 0.8 ms here, a
//! rename 27 µs).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs as rfs;

use crate::derivation::Derivation;
use crate::error::{io_error, Result};
use crate::store::Store;
use crate::users::User;

/// A valid instance name: one path component made of ASCII letters, digits and `-_.+@`, not
/// starting with `.` or `-`, without `..`, at most 200 bytes. It reaches paths, lock names and
/// generated shell scripts, so it is checked once here and never again: nothing that a shell
/// or a path resolution treats specially can be in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceName(String);

/// Why a text cannot name an instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` cannot name an instance: {why}", name.escape_debug())]
pub struct InstanceNameError {
    pub name: String,
    pub why: &'static str,
}

impl InstanceName {
    pub fn new(name: &str) -> std::result::Result<InstanceName, InstanceNameError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.+@".contains(c);
        let why = if name.is_empty() {
            Some("it is empty")
        } else if name.contains('/') {
            Some("it contains `/`")
        } else if name.starts_with('.') {
            Some("it starts with `.`")
        } else if name.starts_with('-') {
            Some("it starts with `-`")
        } else if name.contains("..") {
            Some("it contains `..`")
        } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Some("it contains a space or a control character")
        } else if !name.chars().all(allowed) {
            Some("only ASCII letters, digits and `-_.+@` may name an instance")
        } else if name.len() > 200 {
            Some("it is longer than 200 bytes")
        } else {
            None
        };
        match why {
            Some(why) => Err(InstanceNameError {
                name: name.to_owned(),
                why,
            }),
            None => Ok(InstanceName(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `path` is a relative path that stays inside its base (only normal components).
pub fn is_inside(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// The links that make `files` (relative paths of a generation's output) appear in a partition
/// whose mutable directories are `mutable`: for each file, its shallowest ancestor (or itself)
/// that is neither a mutable directory nor holds one.
pub fn links(files: &BTreeSet<PathBuf>, mutable: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let mut prefix = PathBuf::new();
        for c in file.components() {
            prefix.push(c);
            if !mutable.iter().any(|m| m.starts_with(&prefix)) {
                out.insert(prefix.clone());
                break;
            }
        }
    }
    out
}

/// The target of the link at `link` (relative to the partition): `current/<link>`, seen from
/// the link's own directory.
fn link_target(link: &Path) -> PathBuf {
    let depth = link.components().count().saturating_sub(1);
    let mut target = PathBuf::new();
    for _ in 0..depth {
        target.push("..");
    }
    target.push("current");
    target.push(link);
    target
}

/// What a generation puts in a partition: the files of its output and its mutable
/// directories (with their modes), as its derivation records them (`files-json`, `dirs-json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub files: BTreeSet<PathBuf>,
    pub dirs: BTreeMap<PathBuf, u32>,
}

impl Layout {
    /// The layout of a generation's derivation; `None` if its options are unreadable.
    pub fn of(drv: &Derivation) -> Option<Layout> {
        let files: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(drv.option("files-json").unwrap_or("{}")).ok()?;
        let dirs: BTreeMap<String, u32> =
            serde_json::from_str(drv.option("dirs-json").unwrap_or("{}")).ok()?;
        Some(Layout {
            files: files.into_keys().map(PathBuf::from).collect(),
            dirs: dirs
                .into_iter()
                .map(|(k, v)| (PathBuf::from(k), v))
                .collect(),
        })
    }

    pub fn mutable(&self) -> BTreeSet<PathBuf> {
        self.dirs.keys().cloned().collect()
    }

    /// The links into `current` that show this layout (see [`links`]).
    pub fn links(&self) -> BTreeSet<PathBuf> {
        links(&self.files, &self.mutable())
    }
}

/// Opens the directory `name` in `dir` without following a symlink, making it (`mode`) if it
/// does not exist and `create` is set. A symlink or a non-directory there is an error: nothing is
/// ever made or removed through a link (a `var -> <store path>` planted in a partition cannot
/// make `switch` write into the store).
fn open_dir_at(dir: BorrowedFd<'_>, name: &Path, create: bool, mode: u32) -> io::Result<OwnedFd> {
    let made = create
        && match rfs::mkdirat(dir, name, rfs::Mode::from_raw_mode(mode)) {
            Ok(()) => true,
            Err(rustix::io::Errno::EXIST) => false,
            Err(e) => return Err(e.into()),
        };
    let flags = rfs::OFlags::DIRECTORY | rfs::OFlags::NOFOLLOW | rfs::OFlags::CLOEXEC;
    let fd = rfs::openat(dir, name, flags, rfs::Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => io::Error::other(
            "it is a symlink or not a directory: nothing is made or removed through it",
        ),
        e => e.into(),
    })?;
    if made {
        // the mode asked for, not the umask's choice
        rfs::fchmod(&fd, rfs::Mode::from_raw_mode(mode))?;
    }
    Ok(fd)
}

/// The directory `rel` under `root` (opened without following any symlink on the way), its
/// missing components made with `mode` if `create` is set.
fn open_path_at(root: &OwnedFd, rel: &Path, create: bool, mode: u32) -> io::Result<OwnedFd> {
    let mut fd = open_dir_at(root.as_fd(), Path::new("."), false, 0)?;
    for c in rel.components() {
        fd = open_dir_at(fd.as_fd(), Path::new(c.as_os_str()), create, mode)?;
    }
    Ok(fd)
}

/// The mode of a directory of an instance user's partition: at most 0750.
fn owned_mode(mode: u32) -> u32 {
    mode & 0o750
}

/// Gives the directory `fd` to `owner` (uid and gid) with `mode`, unless it has them.
fn give(fd: &OwnedFd, owner: &User, mode: u32) -> io::Result<()> {
    let st = rfs::fstat(fd)?;
    if (st.st_uid, st.st_gid) != (owner.uid, owner.gid) {
        rfs::fchown(fd, Some(uid(owner.uid)), Some(gid(owner.gid)))?;
    }
    if st.st_mode & 0o7777 != mode {
        rfs::fchmod(fd, rfs::Mode::from_raw_mode(mode))?;
    }
    Ok(())
}

/// Root's, with `group` and `mode` (the partition directory, the generation's output).
fn give_group(fd: &OwnedFd, group: u32, mode: u32) -> io::Result<()> {
    let st = rfs::fstat(fd)?;
    if (st.st_uid, st.st_gid) != (0, group) {
        rfs::fchown(fd, Some(uid(0)), Some(gid(group)))?;
    }
    if st.st_mode & 0o7777 != mode {
        rfs::fchmod(fd, rfs::Mode::from_raw_mode(mode))?;
    }
    Ok(())
}

fn uid(raw: u32) -> rfs::Uid {
    rfs::Uid::from_raw(raw)
}

fn gid(raw: u32) -> rfs::Gid {
    rfs::Gid::from_raw(raw)
}

/// The directory `rel` under `root`, made (`mode`) where missing, every component given to
/// `owner` with the mode cut to 0750; nothing followed through a symlink.
fn open_owned_path_at(root: &OwnedFd, rel: &Path, mode: u32, owner: &User) -> io::Result<OwnedFd> {
    let mode = owned_mode(mode);
    let mut fd = open_dir_at(root.as_fd(), Path::new("."), false, 0)?;
    for c in rel.components() {
        fd = open_dir_at(fd.as_fd(), Path::new(c.as_os_str()), true, mode)?;
        give(&fd, owner, mode)?;
    }
    Ok(fd)
}

/// A path's parent and final name; `rel` is relative and inside (see [`is_inside`]).
fn split(rel: &Path) -> (&Path, &Path) {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().map(Path::new).unwrap_or(rel);
    (parent, name)
}

/// Makes the partition show a generation: mutable directories created with their modes (kept
/// if they exist), `links` made, `current` switched to `output` with one rename, then links
/// into `current` that `links` does not hold (a previous generation's) removed. Nothing is
/// followed through a symlink inside the partition. With an `owner` (the instance's user), the
/// partition, its mutable directories and the output are given to it (module docs). The caller
/// flushes (one `syncfs` for a batch of partitions, see `output::sync_filesystem`).
pub fn switch(
    partition: &Path,
    output: &Path,
    layout: &Layout,
    owner: Option<&User>,
) -> Result<()> {
    let at = |rel: &Path| partition.join(rel);
    if let Some(parent) = partition.parent() {
        // 0755 whatever the umask
        crate::store::create_dirs(parent)?;
    }
    let root = open_dir_at(rfs::CWD, partition, true, 0o755).map_err(|e| io_error(partition, e))?;
    if let Some(owner) = owner {
        give_group(&root, owner.gid, 0o750).map_err(|e| io_error(partition, e))?;
        let out = rfs::open(
            output,
            rfs::OFlags::DIRECTORY | rfs::OFlags::NOFOLLOW | rfs::OFlags::CLOEXEC,
            rfs::Mode::empty(),
        )
        .map_err(|e| io_error(output, e.into()))?;
        give_group(&out, owner.gid, 0o550).map_err(|e| io_error(output, e))?;
    }
    for (dir, mode) in &layout.dirs {
        match owner {
            Some(owner) => open_owned_path_at(&root, dir, *mode, owner).map(drop),
            None => open_path_at(&root, dir, true, *mode).map(drop),
        }
        .map_err(|e| io_error(&at(dir), e))?;
    }
    let links = layout.links();
    for link in &links {
        let (parent, name) = split(link);
        let dir = open_path_at(&root, parent, true, 0o755).map_err(|e| io_error(&at(link), e))?;
        let target = link_target(link);
        match rfs::readlinkat(&dir, name, Vec::new()) {
            Ok(t) if Path::new(std::ffi::OsStr::from_bytes(t.as_bytes())) == target => continue,
            Ok(_) => rfs::unlinkat(&dir, name, rfs::AtFlags::empty())
                .map_err(|e| io_error(&at(link), e.into()))?,
            Err(_) => {}
        }
        rfs::symlinkat(&target, &dir, name).map_err(|e| io_error(&at(link), e.into()))?;
    }
    // the switch: a new symlink beside `current`, renamed over it
    let next = Path::new(".current.new");
    let _ = rfs::unlinkat(&root, next, rfs::AtFlags::empty());
    rfs::symlinkat(output, &root, next).map_err(|e| io_error(&at(next), e.into()))?;
    rfs::renameat(&root, next, &root, "current")
        .map_err(|e| io_error(&at(Path::new("current")), e.into()))?;
    for stale in existing_links(partition, &layout.mutable()).difference(&links) {
        let (parent, name) = split(stale);
        if let Ok(dir) = open_path_at(&root, parent, false, 0) {
            rfs::unlinkat(&dir, name, rfs::AtFlags::empty())
                .map_err(|e| io_error(&at(stale), e.into()))?;
        }
    }
    Ok(())
}

/// The links into `current` the partition holds (`x -> [../]current/x`), outside its mutable
/// directories; symlinks are never followed.
pub fn existing_links(partition: &Path, mutable: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let walk = walkdir::WalkDir::new(partition)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            e.path()
                .strip_prefix(partition)
                .is_ok_and(|rel| !mutable.contains(rel))
        });
    for entry in walk.flatten() {
        if !entry.path_is_symlink() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(partition) else {
            continue;
        };
        if rel != Path::new("current")
            && fs::read_link(entry.path()).is_ok_and(|t| t == link_target(rel))
        {
            out.insert(rel.to_owned());
        }
    }
    out
}

/// How a partition differs from showing `output` with `layout` (as `owner`'s, when it has
/// one): nothing when it shows it.
pub fn mismatches(
    partition: &Path,
    output: &Path,
    layout: &Layout,
    owner: Option<&User>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(owner) = owner {
        out.extend(ownership_mismatches(partition, output, layout, owner));
    }
    match current(partition) {
        None => out.push("it has no `current`".to_owned()),
        Some(c) if c != output => out.push(format!(
            "`current` points to `{}`, not to the current generation's output `{}`",
            c.display(),
            output.display()
        )),
        Some(_) => {}
    }
    let links = layout.links();
    for link in &links {
        let at = partition.join(link);
        if fs::read_link(&at).ok() != Some(link_target(link)) {
            out.push(format!("`{}` is not a link to `current`", link.display()));
        }
    }
    for dir in layout.dirs.keys() {
        if !fs::symlink_metadata(partition.join(dir)).is_ok_and(|m| m.is_dir()) {
            out.push(format!(
                "its mutable directory `{}` is missing",
                dir.display()
            ));
        }
    }
    for stale in existing_links(partition, &layout.mutable()).difference(&links) {
        out.push(format!(
            "`{}` is a link of another generation",
            stale.display()
        ));
    }
    out
}

/// How the owners and modes of a partition and its output differ from an instance user's.
fn ownership_mismatches(
    partition: &Path,
    output: &Path,
    layout: &Layout,
    owner: &User,
) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let name = &owner.name;
    let group_only = |path: &Path, what: &str, mode: u32, out: &mut Vec<String>| {
        if let Ok(m) = fs::symlink_metadata(path) {
            if (m.uid(), m.gid(), m.mode() & 0o7777) != (0, owner.gid, mode) {
                out.push(format!(
                    "{what} is not root's with group `{name}` and mode {mode:o}"
                ));
            }
        }
    };
    group_only(partition, "the partition", 0o750, &mut out);
    group_only(output, "the generation's output", 0o550, &mut out);
    for (dir, mode) in &layout.dirs {
        if let Ok(m) = fs::symlink_metadata(partition.join(dir)) {
            let want = owned_mode(*mode);
            if (m.uid(), m.gid(), m.mode() & 0o7777) != (owner.uid, owner.gid, want) {
                out.push(format!(
                    "`{}` does not belong to `{name}` with mode {want:o}",
                    dir.display()
                ));
            }
        }
    }
    out
}

/// A partition that does not show its instance's current generation (`verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub instance: String,
    pub partition: String,
    pub generation: i64,
    pub problems: Vec<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "partition `{}` of instance `{}` does not show its generation {}: {}",
            self.partition,
            self.instance,
            self.generation,
            self.problems.join("; ")
        )
    }
}

/// Every instance whose partition does not show its current generation (an operation killed
/// between its commit and its switch; the next instance command on it finishes the switch).
pub fn check(store: &Store) -> Result<Vec<Mismatch>> {
    let db = store.db();
    let mut out = Vec::new();
    for instance in db.instances()? {
        let generation = db
            .generations(&instance.name)?
            .into_iter()
            .find(|g| g.number == instance.current);
        let mismatch = |problems: Vec<String>| Mismatch {
            instance: instance.name.clone(),
            partition: instance.partition.clone(),
            generation: instance.current,
            problems,
        };
        let Some(generation) = generation else {
            out.push(mismatch(vec!["the generation has no row".into()]));
            continue;
        };
        let layout = db
            .derivation(&generation.path)?
            .and_then(|json| serde_json::from_str::<Derivation>(&json).ok())
            .and_then(|drv| Layout::of(&drv));
        let Some(layout) = layout else {
            out.push(mismatch(vec![format!(
                "the derivation of `{}` is missing or unreadable",
                generation.path
            )]));
            continue;
        };
        let output = store.store_dir().join(&generation.path);
        let owner = db.instance_user(&instance.name)?;
        let problems = mismatches(
            Path::new(&instance.partition),
            &output,
            &layout,
            owner.as_ref(),
        );
        if !problems.is_empty() {
            out.push(mismatch(problems));
        }
    }
    Ok(out)
}

/// The output `current` points to.
pub fn current(partition: &Path) -> Option<PathBuf> {
    fs::read_link(partition.join("current")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<PathBuf> {
        items.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn links_are_as_high_as_mutable_directories_allow() {
        let files = set(&["etc/app.conf", "etc/nginx/site.conf", "bin/run", "bin/stop"]);
        assert_eq!(
            links(&files, &set(&["srv", "var/log"])),
            set(&["bin", "etc"])
        );
        // a mutable directory inside etc/: etc/ becomes real, its files are linked one level down
        assert_eq!(
            links(&files, &set(&["etc/run"])),
            set(&["bin", "etc/app.conf", "etc/nginx"])
        );
        assert_eq!(
            link_target(Path::new("etc/nginx")),
            Path::new("../current/etc/nginx")
        );
    }

    fn layout(files: &[&str], dirs: &[&str]) -> Layout {
        Layout {
            files: set(files),
            dirs: dirs.iter().map(|d| (PathBuf::from(d), 0o755)).collect(),
        }
    }

    #[test]
    fn switch_moves_every_link_at_once_and_keeps_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (g1, g2) = (dir.path().join("g1"), dir.path().join("g2"));
        for (g, text) in [(&g1, "one"), (&g2, "two")] {
            fs::create_dir_all(g.join("etc")).expect("mkdir");
            fs::write(g.join("etc/app.conf"), text).expect("write");
        }
        fs::create_dir_all(g2.join("bin")).expect("mkdir");
        fs::write(g2.join("bin/run"), "x").expect("write");
        let p = dir.path().join("partition");
        let l1 = layout(&["etc/app.conf"], &["srv"]);
        let l2 = layout(&["etc/app.conf", "bin/run"], &["srv"]);
        assert!(!mismatches(&p, &g1, &l1, None).is_empty());
        switch(&p, &g1, &l1, None).expect("switch");
        assert_eq!(mismatches(&p, &g1, &l1, None), Vec::<String>::new());
        fs::write(p.join("srv/data"), "kept").expect("write");
        assert_eq!(
            fs::read_to_string(p.join("etc/app.conf")).expect("read"),
            "one"
        );
        switch(&p, &g2, &l2, None).expect("switch");
        assert_eq!(
            fs::read_to_string(p.join("etc/app.conf")).expect("read"),
            "two"
        );
        assert!(p.join("bin/run").exists());
        // back to g1: the link g1 does not have is found and removed, whatever came before
        assert_eq!(
            mismatches(&p, &g1, &l1, None).len(),
            2,
            "{:?}",
            mismatches(&p, &g1, &l1, None)
        );
        switch(&p, &g1, &l1, None).expect("switch");
        assert_eq!(
            fs::read_to_string(p.join("etc/app.conf")).expect("read"),
            "one"
        );
        assert!(
            fs::symlink_metadata(p.join("bin")).is_err(),
            "a stale link was kept"
        );
        assert_eq!(
            fs::read_to_string(p.join("srv/data")).expect("read"),
            "kept"
        );
        assert_eq!(current(&p), Some(g1.clone()));
        assert!(mismatches(&p, &g1, &l1, None).is_empty());
    }

    #[test]
    fn switch_never_makes_anything_through_a_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (g1, outside) = (dir.path().join("g1"), dir.path().join("outside"));
        fs::create_dir_all(g1.join("etc")).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        let p = dir.path().join("partition");
        fs::create_dir_all(&p).expect("mkdir");
        std::os::unix::fs::symlink(&outside, p.join("var")).expect("symlink");
        let l = layout(&["etc/app.conf"], &["srv", "var/log"]);
        let e = switch(&p, &g1, &l, None).expect_err("through a symlink");
        assert!(e.to_string().contains("var/log"), "{e}");
        assert!(e.to_string().contains("symlink"), "{e}");
        assert_eq!(fs::read_dir(&outside).expect("dir").count(), 0);
        // a link whose parent is a symlink: refused too
        fs::remove_file(p.join("var")).expect("rm");
        std::os::unix::fs::symlink(&outside, p.join("etc")).expect("symlink");
        let l = layout(&["etc/nginx/site.conf"], &["etc/run"]);
        assert!(switch(&p, &g1, &l, None).is_err());
        assert_eq!(fs::read_dir(&outside).expect("dir").count(), 0);
    }

    #[test]
    fn bad_names() {
        for bad in [
            "",
            "a/b",
            "..",
            "a..b",
            ".hidden",
            "-rf",
            "a b",
            "a\n",
            "a$(touch$IFS\"X\")",
            "a;b",
            "a`b`",
            "a'b",
            "a|b",
            "a*",
            "é",
        ] {
            assert!(InstanceName::new(bad).is_err(), "{bad:?}");
        }
        for good in ["web-1", "slappart0", "a.b_c+d@e", "W"] {
            assert!(InstanceName::new(good).is_ok(), "{good}");
        }
    }
}
