//! Fingerprints of what an evaluation depends on, taken without evaluating: a file's identity
//! (the binary, the interpreter), a program found on `PATH`, and each recorded input by kind —
//! `text:` a profile file's text as read (newlines normalised), `file:` a file by content or a
//! tree by names, kinds, modes and contents, `dir:` a listing's names, `exec:` the program a
//! name runs — or `absent`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::source::normalise_newlines;

/// A file's identity without reading it: path, size, modification time, inode.
pub(super) fn identity(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{} {} {}.{} {}",
        path.display(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ino()
    ))
}

/// Where `name` runs from: itself if it has a `/`, else the first executable on `PATH`.
pub(super) fn program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

pub(super) fn text_fingerprint(text: &str) -> String {
    format!(
        "blake3:{}",
        blake3::hash(normalise_newlines(text).as_bytes()).to_hex()
    )
}

/// A file's fingerprint from its bytes, as `file:` takes it.
pub(super) fn bytes_fingerprint(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// The fingerprint of an input as it is now; `None` if it cannot be taken.
pub(super) fn current(input: &str) -> Option<String> {
    let (kind, what) = input.split_once(':')?;
    match kind {
        "text" => Some(match std::fs::read(what) {
            Ok(bytes) => text_fingerprint(&String::from_utf8_lossy(&bytes)),
            Err(_) => "absent".into(),
        }),
        "file" => Some(path_fingerprint(Path::new(what))),
        "dir" => Some(listing(Path::new(what))),
        "exec" => Some(match program(what) {
            Some(p) => path_fingerprint(&p),
            None => "absent".into(),
        }),
        _ => None,
    }
}

/// What `os.listdir` sees: the sorted names of a directory, or `absent`.
fn listing(path: &Path) -> String {
    let Ok(read) = std::fs::read_dir(path) else {
        return "absent".into();
    };
    let mut names: Vec<_> = read.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    let mut hasher = blake3::Hasher::new();
    for name in names {
        hasher.update(name.as_encoded_bytes());
        hasher.update(b"\0");
    }
    format!("names:{}", hasher.finalize().to_hex())
}

/// A file by content, a directory by its tree (names, kinds, modes, contents), or `absent`.
fn path_fingerprint(path: &Path) -> String {
    let Ok(meta) = std::fs::metadata(path) else {
        return "absent".into();
    };
    if !meta.is_dir() {
        return match std::fs::read(path) {
            Ok(bytes) => bytes_fingerprint(&bytes),
            Err(_) => "unreadable".into(),
        };
    }
    let mut hasher = blake3::Hasher::new();
    tree(path, Path::new(""), &mut hasher);
    format!("tree:{}", hasher.finalize().to_hex())
}

fn tree(dir: &Path, rel: &Path, hasher: &mut blake3::Hasher) {
    let Ok(read) = std::fs::read_dir(dir) else {
        hasher.update(b"unreadable\0");
        return;
    };
    let mut entries: Vec<_> = read.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = rel.join(entry.file_name());
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        hasher.update(name.as_os_str().as_encoded_bytes());
        hasher.update(format!("\0{:o}\0", meta.mode()).as_bytes());
        if meta.is_dir() {
            tree(&path, &name, hasher);
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap_or_default();
            hasher.update(target.as_os_str().as_encoded_bytes());
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => hasher.update(blake3::hash(&bytes).as_bytes()),
                Err(_) => hasher.update(b"unreadable"),
            };
        }
        hasher.update(b"\0");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_content_and_trees() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.cfg");
        let key = format!("file:{}", file.display());
        assert_eq!(current(&key).as_deref(), Some("absent"));
        std::fs::write(&file, "[buildout]\n").expect("write");
        let one = current(&key).expect("fingerprint");
        std::fs::write(&file, "[buildout]\nparts =\n").expect("write");
        assert_ne!(current(&key).expect("fingerprint"), one);
        // a directory a derivation takes in changes with a file's content deep inside it, or a
        // new name; one that Python listed, only with its names
        let listed = format!("dir:{}", dir.path().display());
        let names = current(&listed).expect("listing");
        std::fs::write(&file, "[buildout]\n").expect("write");
        assert_eq!(current(&listed).expect("listing"), names);
        let tree_key = format!("file:{}", dir.path().display());
        let before = current(&tree_key).expect("tree");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let with_sub = current(&tree_key).expect("tree");
        assert_ne!(before, with_sub);
        assert_ne!(current(&listed).expect("listing"), names);
        std::fs::write(dir.path().join("sub/x"), "1").expect("write");
        let one = current(&tree_key).expect("tree");
        std::fs::write(dir.path().join("sub/x"), "2").expect("write");
        assert_ne!(current(&tree_key).expect("tree"), one);
        // profile text is compared as read: newlines normalised
        let text_key = format!("text:{}", file.display());
        std::fs::write(&file, "[buildout]\r\n").expect("write");
        assert_eq!(current(&text_key), Some(text_fingerprint("[buildout]\n")));
        // something unknown cannot be fingerprinted, so its evaluation is not cached
        assert_eq!(current("unknown:open"), None);
    }

    #[test]
    fn programs_are_found_on_path() {
        assert_eq!(program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert!(program("sh").is_some());
        assert_eq!(program("no-such-program-slapstore"), None);
    }
}
