//! Partitions: an instance's directory (design §3, §6). It holds `current`, a symlink to the
//! output of the generation in use, the links that make that generation's files appear at their
//! places (`etc -> current/etc`), and the instance's mutable directories (`srv/`, `var/`), which
//! belong to no generation and survive upgrades and rollbacks.
//!
//! Switching generations is one `rename(2)` of a new symlink over `current`: every link goes
//! through `current`, so the whole partition changes at once. Links are made at the highest
//! level that holds no mutable directory, so a generation whose files all live under `etc/` and
//! `bin/` costs two links, whatever the number of files (a symlink costs about 0.8 ms here, a
//! rename 27 µs).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{io_error, Result};

/// A valid instance name: a single path component, no `..`, no control characters, not
/// starting with `.` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceName(String);

/// Why a text cannot name an instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` cannot name an instance: {why}")]
pub struct InstanceNameError {
    pub name: String,
    pub why: &'static str,
}

impl InstanceName {
    pub fn new(name: &str) -> std::result::Result<InstanceName, InstanceNameError> {
        let why = if name.is_empty() {
            Some("it is empty")
        } else if name.contains('/') {
            Some("it contains `/`")
        } else if name.starts_with('.') {
            Some("it starts with `.`")
        } else if name.starts_with('-') {
            Some("it starts with `-`")
        } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Some("it contains a space or a control character")
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

/// Makes the partition show a generation: mutable directories created (kept if they exist),
/// `links` made (links of `old_links` that are not in `links` removed after the switch), and
/// `current` switched to `output` with one rename. The caller flushes (one `syncfs` for a
/// batch of partitions, see `output::sync_filesystem`).
pub fn switch(
    partition: &Path,
    output: &Path,
    mutable: &BTreeSet<PathBuf>,
    links: &BTreeSet<PathBuf>,
    old_links: &BTreeSet<PathBuf>,
) -> Result<()> {
    // 0755 whatever the umask (`store.rs`)
    crate::store::create_dirs(partition)?;
    for dir in mutable {
        crate::store::create_dirs(&partition.join(dir))?;
    }
    for link in links {
        let at = partition.join(link);
        let target = link_target(link);
        match fs::read_link(&at) {
            Ok(t) if t == target => continue,
            Ok(_) => fs::remove_file(&at).map_err(|e| io_error(&at, e))?,
            Err(_) => {}
        }
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        std::os::unix::fs::symlink(&target, &at).map_err(|e| io_error(&at, e))?;
    }
    // the switch: a new symlink beside `current`, renamed over it
    let next = partition.join(".current.new");
    let _ = fs::remove_file(&next);
    std::os::unix::fs::symlink(output, &next).map_err(|e| io_error(&next, e))?;
    let current = partition.join("current");
    fs::rename(&next, &current).map_err(|e| io_error(&current, e))?;
    for stale in old_links.difference(links) {
        let at = partition.join(stale);
        if fs::read_link(&at).is_ok_and(|t| t == link_target(stale)) {
            fs::remove_file(&at).map_err(|e| io_error(&at, e))?;
        }
    }
    Ok(())
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
        let mutable = set(&["srv"]);
        switch(&p, &g1, &mutable, &set(&["etc"]), &BTreeSet::new()).expect("switch");
        fs::write(p.join("srv/data"), "kept").expect("write");
        assert_eq!(
            fs::read_to_string(p.join("etc/app.conf")).expect("read"),
            "one"
        );
        switch(&p, &g2, &mutable, &set(&["bin", "etc"]), &set(&["etc"])).expect("switch");
        assert_eq!(
            fs::read_to_string(p.join("etc/app.conf")).expect("read"),
            "two"
        );
        assert!(p.join("bin/run").exists());
        switch(&p, &g1, &mutable, &set(&["etc"]), &set(&["bin", "etc"])).expect("switch");
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
        assert_eq!(current(&p), Some(g1));
    }

    #[test]
    fn bad_names() {
        for bad in ["", "a/b", "..", ".hidden", "-rf", "a b", "a\n"] {
            assert!(InstanceName::new(bad).is_err(), "{bad:?}");
        }
        assert!(InstanceName::new("web-1").is_ok());
    }
}
