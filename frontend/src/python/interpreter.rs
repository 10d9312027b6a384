//! Which interpreter runs profile code by default. The `python3` found on `PATH` may be a shim
//! (pyenv, asdf, mise: a script that works out which interpreter to run and execs it), which
//! costs tens of processes at every start. Such a shim is asked once for the interpreter it runs
//! (`sys.executable`), and the answer is kept in `$XDG_CACHE_HOME/slapstore/interpreters.json`
//! (default `~/.cache/slapstore/`) for the next evaluations, which then start that interpreter
//! directly.
//!
//! Invariants:
//! - an answer is reused only under the same circumstances it was given in: the same shim file
//!   (path, inode, size, modification time), `PATH`, working directory, the environment
//!   variables version managers read (`PYENV_*`, `ASDF_*`, `MISE_*`) and the version files they
//!   read (`.python-version`, `.tool-versions` in the working directory and its parents,
//!   `$PYENV_ROOT/version`); any change asks the shim again;
//! - an answer is reused only while the interpreter it names is the same file (the link and what
//!   it points to: inode, size, modification time), so an upgraded or removed interpreter is
//!   seen;
//! - an interpreter that is not a script (an executable, or a link to one), or one given
//!   explicitly (`--python`, `$SLAPSTORE_PYTHON`), is used as it is; when anything fails (no
//!   cache directory, a shim that does not answer) the shim itself is used, as before.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The most answers kept; past it the cache starts afresh.
const MAX_ENTRIES: usize = 64;

/// What a file was when an answer was given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        }
    }
}

/// A shim's answer: the interpreter, as the link it named and the file behind it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Answer {
    executable: PathBuf,
    link: Stamp,
    file: Stamp,
}

impl Answer {
    /// The answer for `executable` as it is now; `None` if it is not a file.
    fn for_executable(executable: PathBuf) -> Option<Answer> {
        let link = Stamp::of(&std::fs::symlink_metadata(&executable).ok()?);
        let metadata = std::fs::metadata(&executable).ok()?;
        if !metadata.is_file() {
            return None;
        }
        Some(Answer {
            link,
            file: Stamp::of(&metadata),
            executable,
        })
    }

    /// Whether the interpreter is still the file it was.
    fn still_valid(&self) -> bool {
        Answer::for_executable(self.executable.clone()).as_ref() == Some(self)
    }
}

/// The interpreter to start for `found` (the `python3` found on `PATH`), going past a shim.
pub fn resolve(found: &Path) -> PathBuf {
    let Some(cache) = cache_file() else {
        return found.to_owned();
    };
    resolve_with(found, &cache).unwrap_or_else(|| found.to_owned())
}

fn resolve_with(found: &Path, cache: &Path) -> Option<PathBuf> {
    if !is_script(found) {
        return None;
    }
    let key = circumstances(found)?;
    let mut answers: BTreeMap<String, Answer> = std::fs::read(cache)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    if let Some(answer) = answers.get(&key) {
        if answer.still_valid() {
            return Some(answer.executable.clone());
        }
    }
    let answer = Answer::for_executable(ask(found)?)?;
    let executable = answer.executable.clone();
    if answers.len() >= MAX_ENTRIES {
        answers.clear();
    }
    answers.insert(key, answer);
    // best effort: without the cache the next evaluation asks again
    let _ = write_atomically(cache, &serde_json::to_vec_pretty(&answers).ok()?);
    Some(executable)
}

/// `$XDG_CACHE_HOME/slapstore/interpreters.json`, or under `~/.cache`.
fn cache_file() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| Path::new(d).is_absolute())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(dir.join("slapstore/interpreters.json"))
}

/// Whether `path` is a script (`#!`), which a shim is; interpreters are executables.
fn is_script(path: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == *b"#!"
}

/// Everything that may decide which interpreter the shim `found` runs, as one key.
fn circumstances(found: &Path) -> Option<String> {
    let mut key = blake3::Hasher::new();
    let mut add = |name: &str, value: &[u8]| {
        key.update(&(name.len() as u64).to_le_bytes());
        key.update(name.as_bytes());
        key.update(&(value.len() as u64).to_le_bytes());
        key.update(value);
    };
    let shim = Stamp::of(&std::fs::metadata(found).ok()?);
    add("shim", found.as_os_str().as_encoded_bytes());
    add("shim-stamp", format!("{shim:?}").as_bytes());
    let cwd = std::env::current_dir().ok()?;
    add("cwd", cwd.as_os_str().as_encoded_bytes());
    let mut vars: Vec<(String, std::ffi::OsString)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, _)| {
            k == "PATH"
                || ["PYENV_", "ASDF_", "MISE_"]
                    .iter()
                    .any(|p| k.starts_with(p))
        })
        .collect();
    vars.sort();
    for (name, value) in &vars {
        add(name, value.as_encoded_bytes());
    }
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    let mut version_files: Vec<PathBuf> = cwd
        .ancestors()
        .flat_map(|d| [d.join(".python-version"), d.join(".tool-versions")])
        .collect();
    version_files.extend(pyenv_root.map(|r| r.join("version")));
    for file in &version_files {
        if let Ok(metadata) = std::fs::metadata(file) {
            add("version-file", file.as_os_str().as_encoded_bytes());
            add(
                "version-stamp",
                format!("{:?}", Stamp::of(&metadata)).as_bytes(),
            );
        }
    }
    Some(key.finalize().to_hex().to_string())
}

/// The interpreter the shim runs, by asking it.
fn ask(shim: &Path) -> Option<PathBuf> {
    let out = Command::new(shim)
        .args(["-S", "-c", "import sys; sys.stdout.write(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let path = PathBuf::from(text.trim_end_matches('\n'));
    (out.status.success() && path.is_absolute()).then_some(path)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shim that counts its runs in `count` and execs the interpreter at `target`.
    fn shim(dir: &Path, target: &Path) -> PathBuf {
        let shim = dir.join("python3");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho run >> '{}/count'\nexec '{}' \"$@\"\n",
                dir.display(),
                target.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        shim
    }

    fn runs(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("count"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// The real interpreter of this machine, past any shim.
    fn real_python() -> PathBuf {
        ask(Path::new("python3")).expect("python3")
    }

    #[test]
    fn a_shim_is_asked_once_and_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache/interpreters.json");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(real_python(), real.join("python3")).unwrap();
        let found = shim(dir.path(), &real.join("python3"));
        for _ in 0..3 {
            assert_eq!(resolve_with(&found, &cache), Some(real.join("python3")));
        }
        assert_eq!(runs(dir.path()), 1, "asked once");
        // the shim changes: asked again, once
        let text = std::fs::read_to_string(&found).unwrap();
        std::fs::write(&found, format!("{text}# changed\n")).unwrap();
        for _ in 0..2 {
            assert_eq!(resolve_with(&found, &cache), Some(real.join("python3")));
        }
        assert_eq!(runs(dir.path()), 2);
        // the interpreter it named is replaced: asked again
        std::fs::remove_file(real.join("python3")).unwrap();
        std::os::unix::fs::symlink(real_python(), real.join("python3")).unwrap();
        assert_eq!(resolve_with(&found, &cache), Some(real.join("python3")));
        assert_eq!(runs(dir.path()), 3);
        // an executable is not a shim: used as it is, not run
        assert_eq!(resolve_with(&real_python(), &cache), None);
    }

    #[test]
    fn a_shim_that_does_not_answer_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let found = shim(dir.path(), Path::new("/nonexistent/python3"));
        assert_eq!(resolve_with(&found, &dir.path().join("c.json")), None);
        assert!(!dir.path().join("c.json").exists());
    }
}
