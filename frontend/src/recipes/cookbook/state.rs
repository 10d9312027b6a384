//! State an instance owns (generated passwords, random integers, ports picked once): values a
//! render computes once and keeps in the partition, never in the store's generation, so that
//! later renders (upgrades, rollbacks, reconciliations) read them back and stay the same.
//!
//! A render only reads (`read`): `instance upgrade --dry-run` writes nothing. What it generated
//! is written by [`persist`] after the generation is built and before it is recorded (the
//! commit point), each file made once (`O_CREAT|O_EXCL`, mode 0600) and flushed, so that a
//! recorded generation never holds a value its partition has lost. Every path is opened from
//! the partition down with `O_NOFOLLOW`: a symlink planted in a partition is an error, never a
//! write elsewhere. Destroying the instance removes its partition, and its state with it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs as rfs;
use rustix::io::Errno;

/// The directory, relative to the partition, of the values that have no file of their own
/// (`storage-path` empty, `random.integer`, `free_port`, ...).
pub const DIR: &str = ".slapstore";

/// The mode of [`DIR`]: the instance's alone.
pub const DIR_MODE: u32 = 0o700;

/// Where a value without a file of its own is kept: `<DIR>/<section>.<option>`, the section
/// name hashed when it is not one plain path component.
pub fn slot(section: &str, option: &str) -> String {
    let plain = !section.is_empty()
        && !section.starts_with('.')
        && section
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+@".contains(c));
    let section = if plain {
        section.to_owned()
    } else {
        blake3::hash(section.as_bytes()).to_hex()[..32].to_owned()
    };
    format!("{DIR}/{section}.{option}")
}

fn refused(e: Errno) -> io::Error {
    match e {
        Errno::LOOP | Errno::NOTDIR => io::Error::other(
            "it is a symlink or not a directory: instance state is never read or written \
             through a link",
        ),
        e => e.into(),
    }
}

fn open_dir(at: BorrowedFd<'_>, name: &Path) -> Result<OwnedFd, Errno> {
    let flags = rfs::OFlags::DIRECTORY | rfs::OFlags::NOFOLLOW | rfs::OFlags::CLOEXEC;
    rfs::openat(at, name, flags, rfs::Mode::empty())
}

/// The components of `rel`, if it stays inside the partition: (the file, the directories
/// leading to it).
fn components(rel: &Path) -> io::Result<(&Path, Vec<&Path>)> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(Path::new(n)),
            _ => {
                return Err(io::Error::other(format!(
                    "`{}` is not a path inside the partition",
                    rel.display()
                )))
            }
        }
    }
    match out.pop() {
        Some(file) => Ok((file, out)),
        None => Err(io::Error::other("an empty path")),
    }
}

/// The value kept at `rel` in `partition`, `None` when there is none (or the partition does
/// not exist yet). A trailing newline is not part of the value (the cookbook strips it).
pub fn read(partition: &Path, rel: &Path) -> io::Result<Option<String>> {
    let (file, parents) = components(rel)?;
    let mut dir = match open_dir(rfs::CWD, partition) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(refused(e)),
    };
    for p in parents {
        dir = match open_dir(dir.as_fd(), p) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(refused(e)),
        };
    }
    let flags = rfs::OFlags::RDONLY | rfs::OFlags::NOFOLLOW | rfs::OFlags::CLOEXEC;
    let fd = match rfs::openat(&dir, file, flags, rfs::Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(refused(e)),
    };
    let mut text = String::new();
    io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text)?;
    let text = text.trim_end_matches('\n');
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// What one instance's render generated: the values to keep, by path relative to the
/// partition, and the partition's mutable directories (with their modes) that hold them.
pub struct Pending<'a> {
    pub partition: &'a Path,
    pub dirs: &'a BTreeMap<String, u32>,
    pub values: &'a BTreeMap<String, String>,
    /// The paths of `values` whose file is written again when it holds another value.
    pub replaced: &'a BTreeSet<String>,
}

/// Writes the values of renders that are not in their partitions yet (a file already there,
/// not empty, is kept: the value was read from it; one of `replaced` is replaced when it
/// differs), then makes them durable: one `syncfs` for
/// many, an fsync of each file and directory for a few. The number of files written.
pub fn persist(pending: &[Pending]) -> io::Result<usize> {
    let mut written: Vec<(OwnedFd, OwnedFd)> = Vec::new();
    for p in pending {
        for (rel, value) in p.values {
            let path = Path::new(rel);
            let context = |e: io::Error| {
                io::Error::new(e.kind(), format!("`{}/{rel}`: {e}", p.partition.display()))
            };
            if p.replaced.contains(rel) {
                if let Some(old) = read(p.partition, path).map_err(context)? {
                    if old != *value {
                        replace(p.partition, path, value).map_err(context)?;
                    }
                    continue;
                }
            }
            if let Some(fds) = write_once(p.partition, p.dirs, path, value).map_err(context)? {
                written.push(fds);
            }
        }
    }
    let n = written.len();
    if n > 16 {
        if let Some(p) = pending.first() {
            slapstore_store::output::sync_filesystem(p.partition)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
    } else {
        for (file, dir) in &written {
            rfs::fsync(file)?;
            rfs::fsync(dir)?;
        }
    }
    Ok(n)
}

/// Writes `value` at `rel` unless a non-empty file is there; the file and its directory when
/// written. Missing directories on the way are made with their mode in `dirs` (0755 else).
fn write_once(
    partition: &Path,
    dirs: &BTreeMap<String, u32>,
    rel: &Path,
    value: &str,
) -> io::Result<Option<(OwnedFd, OwnedFd)>> {
    let (file, parents) = components(rel)?;
    if let Some(parent) = partition.parent() {
        slapstore_store::store::create_dirs(parent).map_err(|e| io::Error::other(e.to_string()))?;
    }
    let mut dir = make_dir(rfs::CWD, partition, 0o755)?;
    let mut prefix = PathBuf::new();
    for p in parents {
        prefix.push(p);
        let mode = dirs
            .get(prefix.to_string_lossy().as_ref())
            .copied()
            .unwrap_or(0o755);
        dir = make_dir(dir.as_fd(), p, mode)?;
    }
    let flags = rfs::OFlags::WRONLY
        | rfs::OFlags::CREATE
        | rfs::OFlags::EXCL
        | rfs::OFlags::NOFOLLOW
        | rfs::OFlags::CLOEXEC;
    let fd = match rfs::openat(&dir, file, flags, rfs::Mode::from_raw_mode(0o600)) {
        Ok(fd) => fd,
        Err(Errno::EXIST) => {
            if read(partition, rel)?.is_some() {
                return Ok(None);
            }
            // an empty file holds no value: it is replaced, as the cookbook does
            rfs::unlinkat(&dir, file, rfs::AtFlags::empty())?;
            rfs::openat(&dir, file, flags, rfs::Mode::from_raw_mode(0o600)).map_err(refused)?
        }
        Err(e) => return Err(refused(e)),
    };
    let mut f = std::fs::File::from(fd);
    io::Write::write_all(&mut f, value.as_bytes())?;
    Ok(Some((OwnedFd::from(f), dir)))
}

/// Makes the file at `rel` hold `value` (written beside, then renamed over it, flushed), its
/// missing directories made 0700 (only [`DIR`] is written this way after a generation is
/// current).
pub fn replace(partition: &Path, rel: &Path, value: &str) -> io::Result<()> {
    let (file, parents) = components(rel)?;
    let mut dir = make_dir(rfs::CWD, partition, 0o755)?;
    for p in parents {
        dir = make_dir(dir.as_fd(), p, DIR_MODE)?;
    }
    let tmp = format!(".{}.new", file.display());
    let _ = rfs::unlinkat(&dir, tmp.as_str(), rfs::AtFlags::empty());
    let flags = rfs::OFlags::WRONLY
        | rfs::OFlags::CREATE
        | rfs::OFlags::EXCL
        | rfs::OFlags::NOFOLLOW
        | rfs::OFlags::CLOEXEC;
    let fd =
        rfs::openat(&dir, tmp.as_str(), flags, rfs::Mode::from_raw_mode(0o600)).map_err(refused)?;
    let mut f = std::fs::File::from(fd);
    io::Write::write_all(&mut f, value.as_bytes())?;
    f.sync_all()?;
    rfs::renameat(&dir, tmp.as_str(), &dir, file)?;
    rfs::fsync(&dir)?;
    Ok(())
}

/// Opens directory `name` in `at` without following a link, making it with `mode` (whatever the
/// umask) when missing.
fn make_dir(at: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<OwnedFd> {
    let made = match rfs::mkdirat(at, name, rfs::Mode::from_raw_mode(mode)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(e) => return Err(e.into()),
    };
    let fd = open_dir(at, name).map_err(refused)?;
    if made {
        rfs::fchmod(&fd, rfs::Mode::from_raw_mode(mode))?;
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_once_and_read_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let partition = tmp.path().join("p");
        let rel = Path::new("etc/secret");
        assert_eq!(read(&partition, rel).expect("read"), None);
        let dirs: BTreeMap<String, u32> = [("etc".to_owned(), 0o750)].into();
        let values: BTreeMap<String, String> = [("etc/secret".to_owned(), "abc".to_owned())].into();
        let pending = [Pending {
            partition: &partition,
            dirs: &dirs,
            values: &values,
            replaced: &BTreeSet::new(),
        }];
        assert_eq!(persist(&pending).expect("persist"), 1);
        assert_eq!(read(&partition, rel).expect("read").as_deref(), Some("abc"));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&partition.join("etc/secret")), 0o600);
        assert_eq!(mode(&partition.join("etc")), 0o750);
        // a value already kept is never overwritten
        let other: BTreeMap<String, String> = [("etc/secret".to_owned(), "xyz".to_owned())].into();
        let pending = [Pending {
            partition: &partition,
            dirs: &dirs,
            values: &other,
            replaced: &BTreeSet::new(),
        }];
        assert_eq!(persist(&pending).expect("persist"), 0);
        assert_eq!(read(&partition, rel).expect("read").as_deref(), Some("abc"));
    }

    #[test]
    fn replaced_values_are_written_again_when_they_differ() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let partition = tmp.path().join("p");
        let dirs = BTreeMap::new();
        let replaced: BTreeSet<String> = ["pw".to_owned()].into();
        for (value, written) in [("a", 1), ("a", 0), ("b", 0)] {
            let values: BTreeMap<String, String> = [("pw".to_owned(), value.to_owned())].into();
            let pending = [Pending {
                partition: &partition,
                dirs: &dirs,
                values: &values,
                replaced: &replaced,
            }];
            assert_eq!(persist(&pending).expect("persist"), written);
            let kept = read(&partition, Path::new("pw")).expect("read");
            assert_eq!(kept.as_deref(), Some(value));
        }
    }

    #[test]
    fn nothing_is_read_or_written_through_a_symlink() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let partition = tmp.path().join("p");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(&partition).expect("mkdir");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        std::fs::write(elsewhere.join("secret"), "stolen").expect("write");
        std::os::unix::fs::symlink(&elsewhere, partition.join("etc")).expect("symlink");
        assert!(read(&partition, Path::new("etc/secret")).is_err());
        let values: BTreeMap<String, String> = [("etc/new".to_owned(), "v".to_owned())].into();
        let dirs = BTreeMap::new();
        let pending = [Pending {
            partition: &partition,
            dirs: &dirs,
            values: &values,
            replaced: &BTreeSet::new(),
        }];
        assert!(persist(&pending).is_err());
        assert!(!elsewhere.join("new").exists());
        std::os::unix::fs::symlink(elsewhere.join("secret"), partition.join("link"))
            .expect("symlink");
        assert!(read(&partition, Path::new("link")).is_err());
    }

    #[test]
    fn slots_are_one_plain_component() {
        assert_eq!(slot("http-port", "port"), ".slapstore/http-port.port");
        let s = slot("a/../b", "passwd");
        assert!(!s[DIR.len() + 1..].contains('/'), "{s}");
    }
}
