//! The archive of a store path in a cache: a tar stream of the tree in canonical form (entries
//! sorted, under a top entry `root`, modes 0555/0444, mtime 1, owner 0), compressed with zstd.
//! The same tree always gives the same archive.
//!
//! Extraction is the store's own, stricter than for source archives in what it accepts as names
//! and laxer in one way: outputs hold symlinks with absolute targets (a release links to its
//! parts), which are written as links and never followed — every directory an entry is written
//! into is one this extraction created, and files are created exclusively. Names must be plain
//! relative paths under `root`; only directories, regular files and symlinks are accepted; the
//! bytes written are bounded by the size the signed metadata gives.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use super::{io, CacheError};

/// Writes the canonical archive of the tree at `path` to `out`.
pub fn pack(path: &Path, out: impl Write) -> Result<(), CacheError> {
    let encoder = zstd::Encoder::new(out, 9).map_err(|e| io(path, e))?;
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    add(&mut tar, path, Path::new("root"))?;
    let encoder = tar.into_inner().map_err(|e| io(path, e))?;
    encoder.finish().map_err(|e| io(path, e))?;
    Ok(())
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn add<W: Write>(tar: &mut tar::Builder<W>, path: &Path, name: &Path) -> Result<(), CacheError> {
    let meta = fs::symlink_metadata(path).map_err(|e| io(path, e))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(path).map_err(|e| io(path, e))?;
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, name, &target)
            .map_err(|e| io(path, e))?;
    } else if kind.is_file() {
        let mode = if meta.mode() & 0o111 != 0 {
            0o555
        } else {
            0o444
        };
        let mut h = header(tar::EntryType::Regular, mode, meta.len());
        let file = fs::File::open(path).map_err(|e| io(path, e))?;
        tar.append_data(&mut h, name, file)
            .map_err(|e| io(path, e))?;
    } else if kind.is_dir() {
        let mut h = header(tar::EntryType::Directory, 0o555, 0);
        tar.append_data(&mut h, name, std::io::empty())
            .map_err(|e| io(path, e))?;
        for n in crate::output::sorted_names(path)? {
            add(tar, &path.join(&n), &name.join(&n))?;
        }
    } else {
        return Err(io(
            path,
            std::io::Error::other("a device, fifo or socket cannot be archived"),
        ));
    }
    Ok(())
}

/// Extracts an archive made by [`pack`] into `dest` (which must not exist): the tree of `root`
/// becomes `dest`. At most `max_bytes` of file contents are accepted.
pub fn extract(
    archive: impl Read,
    dest: &Path,
    max_bytes: u64,
    url: &str,
) -> Result<(), CacheError> {
    let bad = |message: String| CacheError::BadInfo {
        url: url.to_owned(),
        message,
    };
    let decoder = zstd::Decoder::new(archive).map_err(|e| io(dest, e))?;
    let mut tar = tar::Archive::new(decoder);
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    let mut written = 0u64;
    let mut root_seen = false;
    for entry in tar
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("a damaged archive: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| bad(format!("a bad entry name: {e}")))?
            .into_owned();
        let rel = name
            .strip_prefix("root")
            .map_err(|_| bad(format!("entry `{}` is not under `root`", name.display())))?
            .to_owned();
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad(format!(
                "entry `{}` is not a plain relative name",
                name.display()
            )));
        }
        let target = if rel.as_os_str().is_empty() {
            if root_seen {
                return Err(bad("`root` appears twice".into()));
            }
            root_seen = true;
            dest.to_owned()
        } else {
            let parent = rel.parent().unwrap_or(Path::new(""));
            if !dirs.contains(parent) {
                return Err(bad(format!(
                    "entry `{}` comes before its directory, or its directory is not one",
                    name.display()
                )));
            }
            dest.join(&rel)
        };
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o444);
        match kind {
            tar::EntryType::Directory => {
                fs::create_dir(&target).map_err(|e| io(&target, e))?;
                dirs.insert(rel);
            }
            tar::EntryType::Regular => {
                let size = entry.header().size().unwrap_or(0);
                written += size;
                if written > max_bytes {
                    return Err(bad(format!(
                        "the archive holds more than the {max_bytes} bytes its metadata gives"
                    )));
                }
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if mode & 0o111 != 0 { 0o755 } else { 0o644 })
                    .open(&target)
                    .map_err(|e| io(&target, e))?;
                std::io::copy(&mut (&mut entry).take(size), &mut file)
                    .map_err(|e| io(&target, e))?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| bad(format!("a bad link: {e}")))?
                    .ok_or_else(|| bad("a link without a target".into()))?;
                std::os::unix::fs::symlink(&*link, &target).map_err(|e| io(&target, e))?;
            }
            other => {
                return Err(bad(format!(
                    "entry `{}` is a {other:?}, which a store path cannot hold",
                    name.display()
                )));
            }
        }
        if !root_seen {
            return Err(bad("the archive does not start with `root`".into()));
        }
    }
    if !root_seen {
        return Err(bad("the archive is empty".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_canonical() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).expect("mkdir");
        fs::write(src.join("bin/tool"), "#!/bin/sh\n").expect("write");
        std::os::unix::fs::symlink("/abs/target", src.join("link")).expect("symlink");
        let mut a = Vec::new();
        pack(&src, &mut a).expect("pack");
        let mut b = Vec::new();
        pack(&src, &mut b).expect("pack");
        assert_eq!(a, b, "the same tree gives the same archive");
        let dest = dir.path().join("dest");
        extract(&a[..], &dest, 1 << 20, "test").expect("extract");
        assert_eq!(
            fs::read_to_string(dest.join("bin/tool")).expect("read"),
            "#!/bin/sh\n"
        );
        assert_eq!(
            fs::read_link(dest.join("link")).expect("link"),
            Path::new("/abs/target")
        );
        assert!(
            extract(&a[..], &dir.path().join("small"), 3, "test").is_err(),
            "bounded by size"
        );
        assert!(extract(&a[..a.len() / 2], &dir.path().join("half"), 1 << 20, "test").is_err());
        // a single file as a store path
        fs::write(dir.path().join("one"), "x").expect("write");
        let mut c = Vec::new();
        pack(&dir.path().join("one"), &mut c).expect("pack");
        extract(&c[..], &dir.path().join("one-out"), 10, "test").expect("extract");
        assert_eq!(
            fs::read_to_string(dir.path().join("one-out")).expect("read"),
            "x"
        );
    }
}
