//! The cache of evaluations: `plan` and `build` of a profile reuse the derivations computed the
//! last time when nothing they were computed from changed, so a no-op build neither parses the
//! profile again nor starts Python.
//!
//! An entry, `<root>/var/cache/eval/<hash>.json`, is found by the hash of everything an
//! evaluation depends on besides files — slapstore's version and binary, the working directory,
//! `PATH`, the `SLAPSTORE_*` variables, the interpreter (its path and file), the profile's path,
//! the options and overrides, the store directory, the system, `--allow-unpinned`, the release
//! name, the lock file's path — and is used only if every file it was computed from still has
//! the content it had: each profile file read (extends, templates, the instance
//! profile: the text as read), each local file or tree a derivation takes in (patches, hooks,
//! `path` sources, local `url`s, what `install` code reads; not other parts' outputs, which are
//! references), what profile Python code read of the machine (files it opened to read,
//! directories it listed — their names —, programs it ran: `python::Bridge::touched`), and the
//! lock file (its bytes as the evaluation parsed them, or its absence). Not covered: what Python
//! learns otherwise (`os.path.exists`, `os.environ` beyond `PATH` and `SLAPSTORE_*`, the clock).
//!
//! The entry also keeps what the evaluation told the lock ([`LockState::replay`]): the unpinned
//! inputs it asked for (so that stale entries, and `--frozen`'s refusal of them, come out the
//! same) and those it accepted as the profile names them, with their warnings and the text those
//! point into (`warnings.rs`), so a cached `plan` prints the same warnings and `unpinned` marks.
//! An unpinned input is planned by what the profile names (a URL, a repository and branch),
//! never by what it holds today, so a profile with unpinned inputs is cached like any other.
//! `plan`, `build` and `--frozen` share entries: the derivations of an evaluation that succeeded
//! do not depend on which of them asked, only whether it succeeds does, so an entry serves a run
//! only if that run accepts everything its evaluation accepted ([`EvalCache::lookup`]): `build`
//! without `--allow-unpinned` no input accepted unpinned, `--frozen` every input pinned by the
//! lock; otherwise the run evaluates (and fails as it must). Uncacheable: a remote profile,
//! something Python touched that cannot be fingerprinted. `SLAPSTORE_EVAL_CACHE=0` turns the
//! cache off.
//!
//! Writes are atomic (a temporary file renamed over the entry), so concurrent evaluations never
//! see half an entry; the last writer wins, and every writer's entry is correct. A read or write
//! that fails is a miss, never an error: the cache only ever saves time.

mod fingerprint;
mod warnings;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slapstore_store::Derivation;

use crate::evaluate::{EvalOptions, Evaluation};
use crate::lock::{LockState, Pin, Wanted};
use crate::source::Sources;
use fingerprint::{bytes_fingerprint, current, identity, program, text_fingerprint};
use warnings::Kept;

/// Bumped when the entry format or what the key covers changes.
const FORMAT: u32 = 2;

/// One profile's entry in one store root's cache.
pub struct EvalCache {
    file: PathBuf,
    /// What the entry's name is the hash of; kept in the entry to rule out collisions.
    key: String,
    store_dir: PathBuf,
    allow_unpinned: bool,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    /// What the evaluation read (`text:`, `file:`, `dir:`, `exec:` and a path or program) and its
    /// fingerprint then.
    inputs: BTreeMap<String, String>,
    derivations: Vec<Derivation>,
    /// The unpinned inputs the evaluation asked the lock for, sorted, each once.
    seen: Vec<Wanted>,
    /// Those `plan` accepted, with their warnings.
    unpinned: Kept,
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
    /// The lock the evaluation asks for pins (its path is part of the key, its text an input).
    pub lock: &'a LockState,
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
            allow_unpinned: context.allow_unpinned,
        })
    }

    /// The derivations of the entry, if it is there, every input is unchanged and this run
    /// (`lock` says whether `plan` or `--frozen` asks) accepts all that its evaluation accepted;
    /// then the files its warnings point into are in `sources` and `lock` has seen what the
    /// evaluation asked of it, as if this were that evaluation.
    pub fn lookup(&self, sources: &mut Sources, lock: &LockState) -> Option<Vec<Derivation>> {
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
        let refused = if lock.frozen {
            // the lock was read as the evaluation read it (an input): it pins each the same
            !entry
                .seen
                .iter()
                .all(|w| matches!(lock.file.pin(&w.part, &w.input), Pin::Locked(_)))
        } else {
            !lock.planning && !self.allow_unpinned && !entry.unpinned.is_empty()
        };
        if refused {
            return None;
        }
        let (kept, unpinned) = entry.unpinned.restore()?;
        *sources = kept;
        lock.replay(entry.seen, unpinned);
        Some(entry.derivations)
    }

    /// Records a successful evaluation that used `lock`, if it is cacheable (errors are
    /// ignored: a later evaluation simply misses).
    pub fn record(&self, sources: &Sources, evaluation: &Evaluation, lock: &LockState) {
        let Some(mut inputs) = inputs(sources, evaluation, &self.store_dir) else {
            return;
        };
        if !lock.path.as_os_str().is_empty() {
            // the lock as the evaluation parsed it, not as it may be by now
            let fingerprint = lock
                .text
                .as_ref()
                .map_or_else(|| "absent".into(), |t| bytes_fingerprint(t.as_bytes()));
            inputs.insert(format!("file:{}", lock.path.display()), fingerprint);
        }
        let entry = Entry {
            key: self.key.clone(),
            inputs,
            derivations: evaluation.derivations.clone(),
            seen: lock.seen(),
            unpinned: Kept::keep(sources, &lock.unpinned()),
        };
        let _ = self.write(&entry);
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
        format!("lock {}", c.lock.path.display()),
    ];
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SLAPSTORE_"))
        .collect();
    vars.sort();
    lines.extend(vars.into_iter().map(|(k, v)| format!("env {k}={v}")));
    Some(lines.join("\n"))
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
