//! The cache of evaluations: `plan` and `build` of a profile reuse the derivations computed the
//! last time when nothing they were computed from changed, so a no-op build neither parses the
//! profile again nor starts Python.
//!
//! An entry, `<root>/var/cache/eval/<hash>.json`, is found by the hash of everything an
//! evaluation depends on besides files — slapstore's version and binary, the working directory,
//! `PATH`, the `SLAPSTORE_*` variables, the interpreter (its path and file), the profile's path,
//! the options and overrides, the store directory, the system, `--allow-unpinned`, the release
//! name — and is used only if every file it was computed from still has the content it had: each
//! profile file read (extends, templates, the instance profile: the text as read), each local file
//! or tree a derivation takes in (patches, hooks, `path` sources, local `url`s, what `install` code
//! reads; not other parts' outputs, which are references), and what profile Python code read of
//! the machine (files it opened to read, directories it listed — their names —, programs it ran:
//! `python::Bridge::touched`). Not covered: what Python learns otherwise (`os.path.exists`,
//! `os.environ` beyond `PATH` and `SLAPSTORE_*`, the clock). Anything else makes the evaluation
//! uncacheable: a remote profile, a lock file (its pins are checked as the evaluation asks for
//! them), unpinned inputs (plan's warnings and marks come from the evaluation that meets them;
//! `cli/build.rs`), something Python touched that cannot be fingerprinted. `SLAPSTORE_EVAL_CACHE=0` turns
//! the cache off.
//!
//! Writes are atomic (a temporary file renamed over the entry), so concurrent evaluations never
//! see half an entry; the last writer wins, and every writer's entry is correct. A read or write
//! that fails is a miss, never an error: the cache only ever saves time.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slapstore_store::Derivation;

use crate::evaluate::{EvalOptions, Evaluation};
use crate::source::{normalise_newlines, Sources};

/// Bumped when the entry format or what the key covers changes.
const FORMAT: u32 = 1;

/// One profile's entry in one store root's cache.
pub struct EvalCache {
    file: PathBuf,
    /// What the entry's name is the hash of; kept in the entry to rule out collisions.
    key: String,
    store_dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    /// What the evaluation read (`text:`, `file:`, `dir:`, `exec:` and a path or program) and its
    /// fingerprint then.
    inputs: BTreeMap<String, String>,
    derivations: Vec<Derivation>,
}

/// What evaluating `profile` with `options` for a store depends on, besides files.
pub struct Context<'a> {
    pub root: &'a Path,
    pub profile: &'a str,
    pub options: &'a EvalOptions,
    pub store_dir: &'a str,
    pub system: &'a str,
    pub allow_unpinned: bool,
    pub release: &'a str,
}

impl EvalCache {
    /// The cache entry for this evaluation, or `None` when the cache is off or the root has no
    /// `var/` (planning on a root that does not exist creates nothing).
    pub fn open(context: &Context) -> Option<EvalCache> {
        if std::env::var_os("SLAPSTORE_EVAL_CACHE").is_some_and(|v| v == "0") {
            return None;
        }
        let var = context.root.join("var");
        if !var.is_dir() {
            return None;
        }
        let key = key(context)?;
        let name = blake3::hash(key.as_bytes()).to_hex();
        Some(EvalCache {
            file: var.join("cache/eval").join(format!("{}.json", &name[..32])),
            key,
            store_dir: PathBuf::from(context.store_dir),
        })
    }

    /// The derivations of the entry, if it is there and every input is unchanged.
    pub fn lookup(&self) -> Option<Vec<Derivation>> {
        let bytes = std::fs::read(&self.file).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        if entry.key != self.key {
            return None;
        }
        for (input, fingerprint) in &entry.inputs {
            if current(input).as_deref() != Some(fingerprint.as_str()) {
                return None;
            }
        }
        Some(entry.derivations)
    }

    /// Records a successful evaluation, if it is cacheable (errors are ignored: a later
    /// evaluation simply misses).
    pub fn record(&self, sources: &Sources, evaluation: &Evaluation) {
        if let Some(inputs) = inputs(sources, evaluation, &self.store_dir) {
            let entry = Entry {
                key: self.key.clone(),
                inputs,
                derivations: evaluation.derivations.clone(),
            };
            let _ = self.write(&entry);
        }
    }

    fn write(&self, entry: &Entry) -> std::io::Result<()> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(&serde_json::to_vec(entry).map_err(std::io::Error::other)?)?;
        tmp.persist(&self.file).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The text of the key, or `None` if something it needs cannot be known.
fn key(c: &Context) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let mut lines = vec![
        format!(
            "slapstore-eval-cache {FORMAT} {}",
            env!("CARGO_PKG_VERSION")
        ),
        format!("exe {}", identity(&exe)?),
        format!("cwd {}", std::env::current_dir().ok()?.display()),
        format!("PATH {}", std::env::var("PATH").unwrap_or_default()),
        format!(
            "python {} {}",
            c.options.python,
            program(&c.options.python)
                .and_then(|p| identity(&p))
                .unwrap_or_default()
        ),
        format!("profile {}", c.profile),
        format!("options {:?}", c.options),
        format!("store {} {} {}", c.store_dir, c.system, c.allow_unpinned),
        format!("release {}", c.release),
    ];
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SLAPSTORE_"))
        .collect();
    vars.sort();
    lines.extend(vars.into_iter().map(|(k, v)| format!("env {k}={v}")));
    Some(lines.join("\n"))
}

/// A file's identity without reading it: path, size, modification time, inode.
fn identity(path: &Path) -> Option<String> {
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
fn program(name: &str) -> Option<PathBuf> {
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

/// The inputs of an evaluation and their fingerprints now, or `None` if it is not cacheable.
fn inputs(
    sources: &Sources,
    evaluation: &Evaluation,
    store_dir: &Path,
) -> Option<BTreeMap<String, String>> {
    let mut inputs = BTreeMap::new();
    // profile files, templates, the instance profile: the text as it was read
    for i in 0..sources.len() {
        let file = sources.get(crate::source::FileId(i as u32));
        if file.name.starts_with('<') {
            continue; // text that profile code parsed
        }
        if crate::extends::is_url(&file.name) {
            return None;
        }
        let fingerprint = text_fingerprint(&file.text);
        let key = format!("text:{}", file.name);
        if inputs
            .insert(key, fingerprint.clone())
            .is_some_and(|f| f != fingerprint)
        {
            return None; // read twice, changed in between
        }
    }
    let mut paths = Vec::new();
    for drv in &evaluation.derivations {
        paths.extend(drv.build.files.values().cloned());
        for source in drv.build.sources.iter().filter(|s| s.checksum.is_none()) {
            for url in &source.urls {
                if !crate::extends::is_url(url) || url.starts_with("file://") {
                    paths.push(PathBuf::from(url.strip_prefix("file://").unwrap_or(url)));
                }
            }
        }
    }
    for path in paths {
        // another part's output is a reference, not a file read
        if path.starts_with(store_dir) {
            continue;
        }
        let key = format!("file:{}", path.display());
        inputs.insert(key.clone(), current(&key)?);
    }
    for touched in &evaluation.touched {
        inputs.insert(touched.clone(), current(touched)?);
    }
    Some(inputs)
}

fn text_fingerprint(text: &str) -> String {
    format!(
        "blake3:{}",
        blake3::hash(normalise_newlines(text).as_bytes()).to_hex()
    )
}

/// The fingerprint of an input as it is now; `None` if it cannot be taken.
fn current(input: &str) -> Option<String> {
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
            Ok(bytes) => format!("blake3:{}", blake3::hash(&bytes).to_hex()),
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
