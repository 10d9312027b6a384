//! Lock files (`slapstore lock`, `docs/lock.md`): the pins of a profile's unpinned inputs, kept
//! beside the profile as `<profile>.lock` (TOML, sorted, with a format `version`).
//!
//! An unpinned input is what the profile names without fixing its content: a gitclone part that
//! follows a branch, a remote `url` or patch without checksum, and an egg part's closure (the
//! distributions its eggs resolve to under the `[versions]` pins, each by file and SHA-256). [`LockFile`] is the file;
//! [`LockState`] is what a `plan`/`build` evaluation consults (through
//! [`crate::derive::StoreMode`]): every unpinned input the translation meets asks it for its pin
//! ([`LockState::pin`]), and is remembered, so that afterwards the entries no input asked for
//! are known as stale ([`LockState::stale`]) and `slapstore lock` knows what to resolve
//! ([`LockState::seen`]). Entries are keyed by part and input, and record what they pin (the
//! repository and branch, the URL): an entry whose part now names something else is out of
//! date, never silently applied.
//!
//! Reading a lock file checks it whole (version, hex digests); nothing here writes but
//! [`LockFile::save`], which replaces the file atomically.

pub mod resolve;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The format version this slapstore reads and writes.
pub const VERSION: u32 = 1;

/// What the file says it is, first thing in it.
const HEADER: &str =
    "# Pins of the unpinned inputs of a buildout profile, written by `slapstore lock`\n\
                      # (docs/lock.md). `plan` and `build` use it; `--frozen` insists on it.\n";

/// A lock file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    /// By part name.
    #[serde(default)]
    pub parts: BTreeMap<String, PartEntry>,
}

/// The pins of one part's inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartEntry {
    /// A gitclone part's branch, as a commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitEntry>,
    /// Remote files without checksum, by role (`url`, `patch:0`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, SourceEntry>,
    /// An egg part's closure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eggs: Option<EggsEntry>,
}

/// The distributions an egg part's requirements resolved to, for one interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EggsEntry {
    /// The interpreter resolved for.
    pub python: String,
    /// The part's requirements, one a line, as the profile gives them.
    pub requirements: String,
    /// Sorted by name.
    #[serde(default)]
    pub dists: Vec<DistEntry>,
}

/// One distribution of a closure: the file to install and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistEntry {
    pub name: String,
    pub version: String,
    /// The file's name (`six-1.16.0-py2.py3-none-any.whl`).
    pub file: String,
    pub sha256: String,
    /// Where it was found (an `https://` URL or a local path); not part of its identity.
    pub url: String,
}

impl DistEntry {
    /// `name version file sha256:HEX location`: a line of the egg builder's `egg-artifacts`.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} sha256:{} {}",
            self.name, self.version, self.file, self.sha256, self.url
        )
    }
}

/// What an egg part asks to resolve.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EggsInput {
    pub python: String,
    /// One requirement a line.
    pub requirements: String,
    /// `[versions]`: normalised name → (name, version without `:whl`, whether `:whl`).
    pub pins: BTreeMap<String, (String, String, bool)>,
    /// The part's `index`, if any.
    pub index: Option<String>,
    pub find_links: Vec<String>,
    /// `:custom`: the distribution built from its sdist.
    pub no_binary: Option<String>,
}

/// A branch (none: the repository's default branch) of a repository, at a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitEntry {
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub commit: String,
}

/// A remote file, by the SHA-256 of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    pub url: String,
    pub sha256: String,
}

/// One unpinned input of a part, as the profile names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Input {
    /// A gitclone part without `revision`.
    Git {
        repository: String,
        branch: Option<String>,
    },
    /// A remote file without checksum; `role` is `url` or `patch:N`.
    Source { role: String, url: String },
    /// An egg part's requirements.
    Eggs(Box<EggsInput>),
}

impl Input {
    /// The input's name within its part: `git`, or the source's role.
    pub fn key(&self) -> &str {
        match self {
            Input::Git { .. } => "git",
            Input::Source { role, .. } => role,
            Input::Eggs(_) => "eggs",
        }
    }

    /// What the input is, for messages: ``branch `main` of `URL` `` or `` `URL` ``.
    pub fn describe(&self) -> String {
        match self {
            Input::Git {
                repository,
                branch: Some(b),
            } => format!("branch `{b}` of `{repository}`"),
            Input::Git {
                repository,
                branch: None,
            } => format!("the default branch of `{repository}`"),
            Input::Source { url, .. } => format!("`{url}`"),
            Input::Eggs(e) => format!(
                "the closure of `{}`",
                e.requirements.lines().collect::<Vec<_>>().join(" ")
            ),
        }
    }
}

/// An unpinned input met while translating the profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Wanted {
    pub part: String,
    pub input: Input,
}

/// What the lock says of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// Its pin: a commit, `sha256:HEX`, or an egg closure's `egg-artifacts` lines.
    Locked(String),
    /// No entry.
    Missing,
    /// An entry for the part's input that records another input (a changed URL or branch):
    /// what it records.
    OutOfDate(String),
}

/// Why a lock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read the lock file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the lock file `{path}` is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write the lock file `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the profile `{0}` is not a local file: a lock file lies beside its profile")]
    NotLocal(String),
}

impl LockFile {
    /// The lock file of the profile at `profile`: `<profile>.lock`.
    pub fn path_for(profile: &str) -> Result<PathBuf, LockError> {
        if crate::extends::is_url(profile) && !profile.starts_with("file://") {
            return Err(LockError::NotLocal(profile.to_owned()));
        }
        let path = profile.strip_prefix("file://").unwrap_or(profile);
        let mut name = Path::new(path)
            .file_name()
            .ok_or_else(|| LockError::NotLocal(profile.to_owned()))?
            .to_os_string();
        name.push(".lock");
        Ok(Path::new(path).with_file_name(name))
    }

    /// The file at `path`; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<LockFile>, LockError> {
        match read(path)? {
            Some(text) => LockFile::parse(path, &text).map(Some),
            None => Ok(None),
        }
    }

    /// The file at `path` whose text is `text`, checked whole.
    pub fn parse(path: &Path, text: &str) -> Result<LockFile, LockError> {
        let invalid = |message: String| LockError::Invalid {
            path: path.to_owned(),
            message,
        };
        let file: LockFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.version != VERSION {
            return Err(invalid(format!(
                "format version {} (this slapstore reads version {VERSION})",
                file.version
            )));
        }
        for (part, entry) in &file.parts {
            if let Some(git) = &entry.git {
                let c = &git.commit;
                if !((c.len() == 40 || c.len() == 64) && is_lower_hex(c)) {
                    return Err(invalid(format!(
                        "part `{part}`: commit `{c}` is not a full hash in lowercase hex"
                    )));
                }
            }
            for dist in entry.eggs.iter().flat_map(|e| &e.dists) {
                if !(dist.sha256.len() == 64 && is_lower_hex(&dist.sha256)) {
                    return Err(invalid(format!(
                        "part `{part}`, egg `{}`: sha256 `{}` is not 64 lowercase hex digits",
                        dist.name, dist.sha256
                    )));
                }
                if [&dist.name, &dist.version, &dist.file, &dist.url]
                    .iter()
                    .any(|w| w.is_empty() || w.contains(char::is_whitespace))
                {
                    return Err(invalid(format!(
                        "part `{part}`, egg `{}`: an empty field, or one with a space",
                        dist.name
                    )));
                }
            }
            for (role, source) in &entry.sources {
                if !(source.sha256.len() == 64 && is_lower_hex(&source.sha256)) {
                    return Err(invalid(format!(
                        "part `{part}`, `{role}`: sha256 `{}` is not 64 lowercase hex digits",
                        source.sha256
                    )));
                }
            }
        }
        Ok(file)
    }

    /// The file's text: a header comment, then the entries sorted (by part, then input).
    pub fn to_text(&self) -> String {
        // serialising plain strings and maps cannot fail
        let body = toml::to_string(self).unwrap_or_default();
        format!("{HEADER}\n{body}")
    }

    /// Writes the file at `path`, atomically (a temporary file beside it, then a rename).
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let write = |source| LockError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
        std::io::Write::write_all(&mut tmp, self.to_text().as_bytes()).map_err(write)?;
        tmp.as_file().sync_all().map_err(write)?;
        tmp.persist(path).map_err(|e| write(e.error))?;
        Ok(())
    }

    /// What the file says of `part`'s `input`.
    pub fn pin(&self, part: &str, input: &Input) -> Pin {
        let Some(entry) = self.parts.get(part) else {
            return Pin::Missing;
        };
        match input {
            Input::Git { repository, branch } => match &entry.git {
                None => Pin::Missing,
                Some(g) if &g.repository == repository && &g.branch == branch => {
                    Pin::Locked(g.commit.clone())
                }
                Some(g) => Pin::OutOfDate(
                    Input::Git {
                        repository: g.repository.clone(),
                        branch: g.branch.clone(),
                    }
                    .describe(),
                ),
            },
            Input::Source { role, url } => match entry.sources.get(role) {
                None => Pin::Missing,
                Some(s) if &s.url == url => Pin::Locked(format!("sha256:{}", s.sha256)),
                Some(s) => Pin::OutOfDate(format!("`{}`", s.url)),
            },
            Input::Eggs(wanted) => match &entry.eggs {
                None => Pin::Missing,
                Some(e) if e.python != wanted.python => {
                    Pin::OutOfDate(format!("the interpreter `{}`", e.python))
                }
                Some(e) if e.requirements != wanted.requirements => Pin::OutOfDate(format!(
                    "the requirements `{}`",
                    e.requirements.lines().collect::<Vec<_>>().join(" ")
                )),
                Some(e) => {
                    // a pin that applies to the closure must be the locked version; the
                    // others do not matter
                    for d in &e.dists {
                        if let Some((_, version, _)) = wanted.pins.get(&normalise(&d.name)) {
                            let exact = !version.starts_with(['<', '>', '=', '!', '~']);
                            if exact && version != &d.version {
                                return Pin::OutOfDate(format!(
                                    "`{} {}`, where `[versions]` now pins {version}",
                                    d.name, d.version
                                ));
                            }
                        }
                    }
                    let lines: Vec<String> = e.dists.iter().map(DistEntry::line).collect();
                    Pin::Locked(lines.join("\n"))
                }
            },
        }
    }

    /// Every entry, as `(part, input key)`.
    pub fn keys(&self) -> BTreeSet<(String, String)> {
        let mut keys = BTreeSet::new();
        for (part, entry) in &self.parts {
            if entry.git.is_some() {
                keys.insert((part.clone(), "git".to_owned()));
            }
            for role in entry.sources.keys() {
                keys.insert((part.clone(), role.clone()));
            }
            if entry.eggs.is_some() {
                keys.insert((part.clone(), "eggs".to_owned()));
            }
        }
        keys
    }
}

/// PEP 503's normalised name: lowercase, runs of `-`, `_`, `.` as one `-`.
pub fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The text of the file at `path`; `None` if there is none.
fn read(path: &Path) -> Result<Option<String>, LockError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LockError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The lock as one evaluation uses it.
#[derive(Debug, Default)]
pub struct LockState {
    /// Where the file is (or would be).
    pub path: PathBuf,
    /// Its entries (none when there is no file).
    pub file: LockFile,
    /// Whether there is a file.
    pub exists: bool,
    /// The file's text as it was read (none when there is no file): what its entries come
    /// from, for the cache of evaluations.
    pub text: Option<String>,
    /// `--frozen`: an unpinned input the lock does not pin is an error.
    pub frozen: bool,
    /// Every unpinned input asked for, in the order met.
    seen: Mutex<Vec<Wanted>>,
    /// `plan` (without `--frozen`): an unpinned input without an entry is accepted as the
    /// profile names it (its URL and branch, or its URL, are its identity) instead of refused.
    pub planning: bool,
    /// The unpinned inputs accepted (by `planning`, or `--allow-unpinned`) as the profile
    /// names them, in the order met.
    unpinned: Mutex<Vec<Unpinned>>,
}

/// An unpinned input accepted as the profile names it: its part and the warning `plan` prints
/// without `--allow-unpinned` (pointing at the option that names it).
#[derive(Debug, Clone)]
pub struct Unpinned {
    pub part: String,
    pub warning: crate::error::Error,
}

impl LockState {
    /// The lock of the profile at `profile` (empty when it has none, or is not a local file
    /// and not `frozen`).
    pub fn for_profile(profile: &str, frozen: bool) -> Result<LockState, LockError> {
        let path = match LockFile::path_for(profile) {
            Ok(p) => p,
            Err(e) if frozen => return Err(e),
            Err(_) => PathBuf::new(),
        };
        let text = if path.as_os_str().is_empty() {
            None
        } else {
            read(&path)?
        };
        let file = match &text {
            Some(text) => Some(LockFile::parse(&path, text)?),
            None => None,
        };
        Ok(LockState {
            exists: file.is_some(),
            text,
            file: file.unwrap_or(LockFile {
                version: VERSION,
                parts: BTreeMap::new(),
            }),
            path,
            frozen,
            seen: Mutex::new(Vec::new()),
            planning: false,
            unpinned: Mutex::new(Vec::new()),
        })
    }

    /// What the lock says of `part`'s unpinned `input`; the input is remembered.
    pub fn pin(&self, part: &str, input: &Input) -> Pin {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Wanted {
                part: part.to_owned(),
                input: input.clone(),
            });
        self.file.pin(part, input)
    }

    /// Notes an unpinned input accepted as the profile names it.
    pub fn accept_unpinned(&self, part: &str, warning: crate::error::Error) {
        self.unpinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Unpinned {
                part: part.to_owned(),
                warning,
            });
    }

    /// The unpinned inputs accepted as the profile names them, in the order met.
    pub fn unpinned(&self) -> Vec<Unpinned> {
        self.unpinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes what an earlier evaluation of the same profile with the same lock met, as if
    /// this one had: the unpinned inputs it asked for and those `plan` accepted (the cache of
    /// evaluations, `evalcache`).
    pub fn replay(&self, seen: Vec<Wanted>, unpinned: Vec<Unpinned>) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(seen);
        self.unpinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(unpinned);
    }

    /// The unpinned inputs met, sorted, each once.
    pub fn seen(&self) -> Vec<Wanted> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        seen.sort();
        seen.dedup();
        seen
    }

    /// The entries no unpinned input of the evaluation asked for, as `(part, input key)`.
    pub fn stale(&self) -> Vec<(String, String)> {
        let asked: BTreeSet<(String, String)> = self
            .seen()
            .into_iter()
            .map(|w| (w.part, w.input.key().to_owned()))
            .collect();
        self.file
            .keys()
            .into_iter()
            .filter(|k| !asked.contains(k))
            .collect()
    }

    /// What to tell of an unpinned input that `pin` does not pin.
    pub fn explain(&self, part: &str, input: &Input, pin: &Pin) -> String {
        let file = self.path.display();
        match pin {
            Pin::OutOfDate(recorded) => format!(
                "the lock file `{file}` is out of date for it (it records {recorded}): run \
                 `slapstore lock --update {part}`"
            ),
            _ if self.exists => format!(
                "the lock file `{file}` has no entry for {} of part `{part}`: run `slapstore lock`",
                input.describe()
            ),
            _ => format!("no lock file `{file}`: `slapstore lock` pins it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LockFile {
        let mut file = LockFile {
            version: VERSION,
            parts: BTreeMap::new(),
        };
        file.parts.insert(
            "src".into(),
            PartEntry {
                git: Some(GitEntry {
                    repository: "https://example.org/r.git".into(),
                    branch: Some("main".into()),
                    commit: "a".repeat(40),
                }),
                sources: BTreeMap::new(),
                eggs: None,
            },
        );
        let mut sources = BTreeMap::new();
        sources.insert(
            "url".to_owned(),
            SourceEntry {
                url: "https://example.org/a.tar.gz".into(),
                sha256: "b".repeat(64),
            },
        );
        file.parts.insert(
            "a".into(),
            PartEntry {
                git: None,
                sources,
                eggs: None,
            },
        );
        file
    }

    #[test]
    fn the_text_is_sorted_and_reads_back() {
        let file = sample();
        let text = file.to_text();
        assert!(text.find("[parts.a.sources.url]") < text.find("[parts.src.git]"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("software.cfg.lock");
        file.save(&path).expect("save");
        assert_eq!(LockFile::load(&path).expect("load"), Some(file));
    }

    #[test]
    fn pins_apply_only_to_what_they_record() {
        let file = sample();
        let git = |branch: &str| Input::Git {
            repository: "https://example.org/r.git".into(),
            branch: Some(branch.into()),
        };
        assert_eq!(file.pin("src", &git("main")), Pin::Locked("a".repeat(40)));
        assert!(matches!(file.pin("src", &git("dev")), Pin::OutOfDate(_)));
        assert_eq!(file.pin("other", &git("main")), Pin::Missing);
        let url = Input::Source {
            role: "url".into(),
            url: "https://example.org/b.tar.gz".into(),
        };
        assert!(matches!(file.pin("a", &url), Pin::OutOfDate(_)));
    }

    #[test]
    fn an_egg_closure_applies_while_its_own_pins_agree() {
        let mut file = sample();
        file.parts.get_mut("a").expect("a").eggs = Some(EggsEntry {
            python: "/usr/bin/python3".into(),
            requirements: "Flask".into(),
            dists: vec![DistEntry {
                name: "Jinja2".into(),
                version: "3.1.6".into(),
                file: "jinja2-3.1.6-py3-none-any.whl".into(),
                sha256: "c".repeat(64),
                url: "https://example.org/jinja2-3.1.6-py3-none-any.whl".into(),
            }],
        });
        let input = |pins: &[(&str, &str)]| {
            Input::Eggs(Box::new(EggsInput {
                python: "/usr/bin/python3".into(),
                requirements: "Flask".into(),
                pins: pins
                    .iter()
                    .map(|(n, v)| (normalise(n), (n.to_string(), v.to_string(), false)))
                    .collect(),
                index: None,
                find_links: Vec::new(),
                no_binary: None,
            }))
        };
        let locked = file.pin("a", &input(&[("jinja2", "3.1.6"), ("six", "1.0")]));
        assert!(matches!(&locked, Pin::Locked(l) if l.starts_with("Jinja2 3.1.6 jinja2-3.1.6")));
        assert_eq!(file.pin("a", &input(&[("six", "2.0")])), locked);
        assert!(matches!(
            file.pin("a", &input(&[("Jinja2", "3.1.5")])),
            Pin::OutOfDate(_)
        ));
        assert!(matches!(
            file.pin("a", &input(&[("jinja2", ">=3")])),
            Pin::Locked(_)
        ));
        assert_eq!(normalise("Zope.Interface__x"), "zope-interface-x");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lock");
        for (text, needle) in [
            ("version = 2\n", "format version 2"),
            ("version = 1\nbogus = 3\n", "unknown field"),
            (
                "version = 1\n[parts.a.git]\nrepository = \"r\"\ncommit = \"HEAD\"\n",
                "not a full hash",
            ),
            (
                "version = 1\n[parts.a.sources.url]\nurl = \"u\"\nsha256 = \"12\"\n",
                "64 lowercase hex",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let e = LockFile::load(&path).expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn the_lock_lies_beside_the_profile() {
        assert_eq!(
            LockFile::path_for("dir/software.cfg").expect("path"),
            PathBuf::from("dir/software.cfg.lock")
        );
        assert!(LockFile::path_for("https://example.org/software.cfg").is_err());
    }
}
