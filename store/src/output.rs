//! Finishing an output before registration, in one walk of its tree: refuse what a store path
//! cannot hold (devices, fifos, sockets), make it canonical (files 0444 or 0555, directories
//! 0555, every mtime 1), compute its content hash and size, and scan it for references.
//!
//! The content hash is a Merkle hash over the tree (design §4): a file is `f`, its executable
//! bit and the BLAKE3 of its bytes; a symlink is `l` and its target; a directory is `d` and its
//! entries sorted by name, each as `<len>:<name>` and the entry's hash. Files are read in
//! parallel. [`content_hash`] recomputes it without changing anything, for `verify`.

use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{io_error, Result, StoreError};
use crate::references::Candidates;
use crate::StorePath;

/// What registration records of an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputInfo {
    /// `blake3:<hex>` of the tree.
    pub content_hash: String,
    /// Bytes of file contents and symlink targets.
    pub size: u64,
    /// Candidates that the output mentions.
    pub references: HashSet<StorePath>,
}

/// Canonicalises the tree at `root`, then hashes and scans it.
pub fn finish(root: &Path, candidates: &Candidates) -> Result<OutputInfo> {
    walk(root, candidates, true)
}

/// The content hash and size of the tree at `root`, changing nothing.
pub fn content_hash(root: &Path) -> Result<OutputInfo> {
    walk(root, &Candidates::default(), false)
}

/// One node of the tree, hashed.
struct Node {
    hash: blake3::Hash,
    size: u64,
    references: HashSet<StorePath>,
}

fn walk(root: &Path, candidates: &Candidates, canonicalise: bool) -> Result<OutputInfo> {
    let node = node(root, candidates, canonicalise)?;
    Ok(OutputInfo {
        content_hash: format!("blake3:{}", node.hash.to_hex()),
        size: node.size,
        references: node.references,
    })
}

fn node(path: &Path, candidates: &Candidates, canonicalise: bool) -> Result<Node> {
    let meta = fs::symlink_metadata(path).map_err(|e| io_error(path, e))?;
    let kind = meta.file_type();
    let mut references = HashSet::new();
    let hash;
    let size;
    if kind.is_symlink() {
        let target = fs::read_link(path).map_err(|e| io_error(path, e))?;
        let bytes = target.as_os_str().as_bytes();
        candidates.scan_bytes(bytes, &mut references);
        hash = link_hash(bytes);
        size = bytes.len() as u64;
    } else if kind.is_file() {
        let executable = meta.mode() & 0o111 != 0;
        let file = fs::File::open(path).map_err(|e| io_error(path, e))?;
        let mut contents = blake3::Hasher::new();
        size = candidates
            .scan_reader(file, meta.len(), &mut references, |chunk| {
                contents.update(chunk);
            })
            .map_err(|e| io_error(path, e))?;
        hash = file_hash(executable, &contents.finalize());
        if canonicalise {
            let mode = if executable { 0o555 } else { 0o444 };
            if meta.mode() & 0o7777 != mode {
                fs::set_permissions(path, fs::Permissions::from_mode(mode))
                    .map_err(|e| io_error(path, e))?;
            }
        }
    } else if kind.is_dir() {
        let names = sorted_names(path)?;
        let children: Vec<Node> = names
            .par_iter()
            .map(|name| node(&path.join(name), candidates, canonicalise))
            .collect::<Result<_>>()?;
        (hash, size) = dir_hash(&names, &children);
        for child in children {
            references.extend(child.references);
        }
        if canonicalise && meta.mode() & 0o7777 != 0o555 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o555))
                .map_err(|e| io_error(path, e))?;
        }
    } else {
        return Err(StoreError::SpecialFile {
            path: path.to_owned(),
        });
    }
    if canonicalise {
        set_mtime(path)?;
    }
    Ok(Node {
        hash,
        size,
        references,
    })
}

/// Copies the tree at `from` to `to` (which must not exist) in canonical form, computing its
/// content hash on the way: each file is read once, written with its final mode and time, so an
/// import costs one pass instead of a copy, a walk that fixes modes and times, and a re-read.
pub fn import(from: &Path, to: &Path) -> Result<OutputInfo> {
    let node = import_node(from, to)?;
    Ok(OutputInfo {
        content_hash: format!("blake3:{}", node.hash.to_hex()),
        size: node.size,
        references: HashSet::new(),
    })
}

fn import_node(from: &Path, to: &Path) -> Result<Node> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let meta = fs::symlink_metadata(from).map_err(|e| io_error(from, e))?;
    let kind = meta.file_type();
    let hash;
    let size;
    if kind.is_symlink() {
        let target = fs::read_link(from).map_err(|e| io_error(from, e))?;
        std::os::unix::fs::symlink(&target, to).map_err(|e| io_error(to, e))?;
        set_mtime(to)?;
        let bytes = target.as_os_str().as_bytes();
        hash = link_hash(bytes);
        size = bytes.len() as u64;
    } else if kind.is_file() {
        let executable = meta.mode() & 0o111 != 0;
        let mut input = fs::File::open(from).map_err(|e| io_error(from, e))?;
        // created with its final mode: the descriptor is writable all the same
        let mut output = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if executable { 0o555 } else { 0o444 })
            .open(to)
            .map_err(|e| io_error(to, e))?;
        let mut contents = blake3::Hasher::new();
        let mut buffer = vec![0u8; (meta.len() as usize + 1).clamp(1, 1 << 20)];
        let mut total = 0u64;
        // a file that fits the buffer needs no read to find its end
        let small = (meta.len() as usize) < buffer.len();
        while !(small && total >= meta.len()) {
            let n = match input.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(from, e)),
            };
            contents.update(&buffer[..n]);
            output
                .write_all(&buffer[..n])
                .map_err(|e| io_error(to, e))?;
            total += n as u64;
        }
        let epoch = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1);
        output
            .set_times(fs::FileTimes::new().set_modified(epoch).set_accessed(epoch))
            .map_err(|e| io_error(to, e))?;
        hash = file_hash(executable, &contents.finalize());
        size = total;
    } else if kind.is_dir() {
        fs::create_dir(to).map_err(|e| io_error(to, e))?;
        let names = sorted_names(from)?;
        let children: Vec<Node> = names
            .par_iter()
            .map(|name| import_node(&from.join(name), &to.join(name)))
            .collect::<Result<_>>()?;
        (hash, size) = dir_hash(&names, &children);
        fs::set_permissions(to, fs::Permissions::from_mode(0o555)).map_err(|e| io_error(to, e))?;
        set_mtime(to)?;
    } else {
        return Err(StoreError::SpecialFile {
            path: from.to_owned(),
        });
    }
    Ok(Node {
        hash,
        size,
        references: HashSet::new(),
    })
}

/// The content hash of a symlink node: `l` and its target.
fn link_hash(target: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"l");
    h.update(target);
    h.finalize()
}

/// The content hash of a file node: `f`, its executable bit and the BLAKE3 of its bytes.
fn file_hash(executable: bool, contents: &blake3::Hash) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(if executable { b"fx" } else { b"f-" });
    h.update(contents.as_bytes());
    h.finalize()
}

/// The content hash and size of a directory node: `d`, then each entry (sorted by name) as
/// `<len>:<name>` and its hash.
fn dir_hash(names: &[PathBuf], children: &[Node]) -> (blake3::Hash, u64) {
    let mut h = blake3::Hasher::new();
    h.update(b"d");
    let mut total = 0;
    for (name, child) in names.iter().zip(children) {
        let name = name.as_os_str().as_bytes();
        h.update(format!("{}:", name.len()).as_bytes());
        h.update(name);
        h.update(child.hash.as_bytes());
        total += child.size;
    }
    (h.finalize(), total)
}

/// The names in directory `dir`, sorted by their bytes (the order of the content hash and of
/// archives).
pub fn sorted_names(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        names.push(PathBuf::from(entry.file_name()));
    }
    names.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    Ok(names)
}

/// Sets the mtime (and atime) of `path`, not following symlinks, to 1 s after the epoch.
pub fn set_mtime(path: &Path) -> Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io_error(path, std::io::Error::other("path contains a NUL byte")))?;
    let one = libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    let times = [one, one];
    // SAFETY: `c` is NUL-terminated and outlives the call; `times` holds two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io_error(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Flushes the filesystem that holds `path` to disk: one `syncfs(2)` instead of an fsync per
/// file.
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let dir = fs::File::open(path).map_err(|e| io_error(path, e))?;
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is valid for the duration of the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io_error(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Renames the finished tree `from` to `to` (in another directory of the same filesystem).
/// Moving a directory to another parent updates its `..`, which needs write permission on it:
/// a process that is not root opens the canonical (read-only) top directory for the rename.
pub fn rename_into_place(from: &Path, to: &Path) -> Result<()> {
    let is_dir = fs::symlink_metadata(from)
        .map_err(|e| io_error(from, e))?
        .is_dir();
    let reopen = is_dir && !is_root();
    if reopen {
        fs::set_permissions(from, fs::Permissions::from_mode(0o755))
            .map_err(|e| io_error(from, e))?;
    }
    let renamed = fs::rename(from, to).map_err(|e| io_error(to, e));
    if reopen {
        let at = if renamed.is_ok() { to } else { from };
        fs::set_permissions(at, fs::Permissions::from_mode(0o555)).map_err(|e| io_error(at, e))?;
    }
    renamed
}

/// Flushes a directory's entries (after renames into it).
pub fn fsync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Makes the tree at `path` writable again (to delete or rebuild it).
pub fn make_writable(path: &Path) -> Result<()> {
    // root may write into read-only directories: nothing to change
    if is_root() {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(path) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.io_error().map(|e| e.kind()) == Some(std::io::ErrorKind::NotFound) => {
                continue
            }
            Err(e) => return Err(io_error(path, std::io::Error::other(e.to_string()))),
        };
        if entry.file_type().is_dir() {
            let p = entry.path();
            fs::set_permissions(p, fs::Permissions::from_mode(0o755))
                .map_err(|e| io_error(p, e))?;
        }
    }
    Ok(())
}

/// Whether this process runs as root, which writes into read-only directories.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Deletes the tree at `path`, read-only or not; a missing path is not an error.
pub fn remove_tree(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
        Ok(meta) if meta.is_dir() => {
            make_writable(path)?;
            fs::remove_dir_all(path).map_err(|e| io_error(path, e))
        }
        Ok(_) => fs::remove_file(path).map_err(|e| io_error(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_and_hash_depends_on_content_not_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        fs::create_dir_all(a.join("bin")).expect("mkdir");
        fs::write(a.join("bin/tool"), "#!/bin/sh\n").expect("write");
        fs::set_permissions(a.join("bin/tool"), fs::Permissions::from_mode(0o775)).expect("chmod");
        fs::write(a.join("data"), "x").expect("write");
        std::os::unix::fs::symlink("bin/tool", a.join("link")).expect("symlink");
        let before = content_hash(&a).expect("hash");
        let info = finish(&a, &Candidates::default()).expect("finish");
        assert_eq!(before.content_hash, info.content_hash);
        assert_eq!(info.size, 10 + 1 + 8);
        let mode = |p: &str| fs::symlink_metadata(a.join(p)).expect("meta").mode() & 0o7777;
        assert_eq!(mode("bin/tool"), 0o555);
        assert_eq!(mode("data"), 0o444);
        assert_eq!(mode("bin"), 0o555);
        assert_eq!(
            fs::symlink_metadata(a.join("data")).expect("meta").mtime(),
            1
        );

        make_writable(&a).expect("writable");
        fs::set_permissions(a.join("data"), fs::Permissions::from_mode(0o644)).expect("chmod");
        fs::write(a.join("data"), "y").expect("write");
        assert_ne!(
            content_hash(&a).expect("hash").content_hash,
            info.content_hash
        );
        fs::write(a.join("data"), "x").expect("write");
        assert_eq!(
            content_hash(&a).expect("hash").content_hash,
            info.content_hash
        );
        fs::set_permissions(a.join("data"), fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_ne!(
            content_hash(&a).expect("hash").content_hash,
            info.content_hash
        );
        // an import gives the same hash and the canonical form in one pass
        fs::set_permissions(a.join("data"), fs::Permissions::from_mode(0o644)).expect("chmod");
        let b = dir.path().join("b");
        let imported = import(&a, &b).expect("import");
        assert_eq!(imported.content_hash, info.content_hash);
        assert_eq!(imported.size, info.size);
        assert_eq!(
            fs::symlink_metadata(b.join("bin/tool"))
                .expect("meta")
                .mode()
                & 0o7777,
            0o555
        );
        assert_eq!(
            fs::symlink_metadata(b.join("data")).expect("meta").mode() & 0o7777,
            0o444
        );
        assert_eq!(
            fs::symlink_metadata(b.join("data")).expect("meta").mtime(),
            1
        );
        assert_eq!(
            fs::symlink_metadata(b.join("link")).expect("meta").mtime(),
            1
        );
        assert_eq!(
            content_hash(&b).expect("hash").content_hash,
            info.content_hash
        );
        remove_tree(&a).expect("remove");
        assert!(!a.exists());
    }

    #[test]
    fn refuses_fifos() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("cstring");
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(matches!(
            finish(dir.path(), &Candidates::default()),
            Err(StoreError::SpecialFile { .. })
        ));
    }
}
