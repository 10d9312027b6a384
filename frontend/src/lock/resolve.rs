//! Turning a profile's unpinned inputs into lock entries, for `slapstore lock`: a branch into the
//! commit its mirror in the download cache (`var/cache/git/`) has for it, a remote file into the
//! SHA-256 of its content, which is then kept in the download cache (`var/cache/sources/`)
//! under that checksum, so that a build with the lock finds it offline.
//!
//! An entry that still pins what the profile names is kept as it is, without any network,
//! unless its part is to be updated; so an offline `lock` works as far as mirrors and the
//! existing entries reach (a new remote file needs the network, once).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use slapstore_store::checksum::{Algorithm, Checksum};
use slapstore_store::fetch::Fetcher;

use super::{GitEntry, Input, LockFile, PartEntry, Pin, SourceEntry, Wanted, VERSION};

/// Which parts' entries `lock` resolves again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// None: existing entries that still apply are kept.
    Nothing,
    /// Every part.
    All,
    /// These parts.
    Parts(BTreeSet<String>),
}

impl Update {
    fn covers(&self, part: &str) -> bool {
        match self {
            Update::Nothing => false,
            Update::All => true,
            Update::Parts(parts) => parts.contains(part),
        }
    }
}

/// One entry that `lock` added, changed or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub part: String,
    /// `git`, `url`, `patch:N`.
    pub key: String,
    /// The pin before (`None`: a new entry).
    pub old: Option<String>,
    /// The pin now (`None`: dropped, as stale).
    pub new: Option<String>,
}

/// Where and how `lock` resolves.
pub struct Resolver {
    /// The download cache of sources (`<root>/var/cache/sources`).
    pub cache_dir: PathBuf,
    /// A directory of this process's own, for downloads in progress and git's `HOME`.
    pub scratch: PathBuf,
    pub offline: bool,
    /// The total deadline of one download.
    pub deadline: Duration,
}

impl Resolver {
    /// The new lock file for the inputs `seen` (from [`super::LockState::seen`]), starting from
    /// `old`, and what changed. An error names the part and the input.
    pub fn lock(
        &self,
        seen: &[Wanted],
        old: &LockFile,
        update: &Update,
    ) -> Result<(LockFile, Vec<Change>), String> {
        let mut new = LockFile {
            version: VERSION,
            parts: BTreeMap::new(),
        };
        let mut changes = Vec::new();
        // the same file for several parts is fetched once
        let mut fetched: HashMap<String, String> = HashMap::new();
        for wanted in seen {
            let part = &wanted.part;
            let before = match old.pin(part, &wanted.input) {
                Pin::Locked(p) => Some(p),
                _ => None,
            };
            let pin = match &before {
                Some(p) if !update.covers(part) => p.clone(),
                _ => self
                    .resolve(&wanted.input, old, &mut fetched)
                    .map_err(|m| {
                        format!(
                            "part `{part}`: cannot lock {}: {m}",
                            wanted.input.describe()
                        )
                    })?,
            };
            let previous = old.parts.get(part).and_then(|e| recorded(e, &wanted.input));
            if previous.as_ref() != Some(&pin) {
                changes.push(Change {
                    part: part.clone(),
                    key: wanted.input.key().to_owned(),
                    old: previous,
                    new: Some(pin.clone()),
                });
            }
            let entry = new.parts.entry(part.clone()).or_default();
            insert(entry, &wanted.input, pin);
        }
        let kept = new.keys();
        for (part, key) in old.keys() {
            if !kept.contains(&(part.clone(), key.clone())) {
                let old_pin = old.parts.get(&part).and_then(|e| recorded_key(e, &key));
                changes.push(Change {
                    part,
                    key,
                    old: old_pin,
                    new: None,
                });
            }
        }
        Ok((new, changes))
    }

    /// The pin of `input` now.
    fn resolve(
        &self,
        input: &Input,
        old: &LockFile,
        fetched: &mut HashMap<String, String>,
    ) -> Result<String, String> {
        match input {
            Input::Git { repository, branch } => slapstore_store::recipes::branch_commit(
                &self.cache_dir,
                repository,
                branch.as_deref(),
                self.offline,
                &self.scratch,
            ),
            Input::Source { url, .. } => {
                if let Some(sha) = fetched.get(url) {
                    return Ok(sha.clone());
                }
                let sha = self.fetch(url, old)?;
                fetched.insert(url.clone(), sha.clone());
                Ok(sha)
            }
        }
    }

    /// `sha256:HEX` of the file at `url`, which is then in the download cache under it.
    /// Offline, a pin the old lock gives the same URL (under another part) serves if the cache
    /// has its file.
    fn fetch(&self, url: &str, old: &LockFile) -> Result<String, String> {
        let fetcher = Fetcher::new(&self.cache_dir)
            .allow_unpinned(true)
            .offline(self.offline)
            .deadline(self.deadline);
        if self.offline {
            let known = old
                .parts
                .values()
                .flat_map(|e| e.sources.values())
                .filter(|s| s.url == url)
                .filter_map(|s| Checksum::parse(Algorithm::Sha256, &s.sha256).ok())
                .find(|c| fetcher.cache_path(c).is_file());
            if let Some(c) = known {
                return Ok(c.to_string());
            }
        }
        let file = self.scratch.join("download");
        fetcher
            .fetch(&[url], None, &file)
            .map_err(|e| e.to_string())?;
        let sha = Checksum::of_file(Algorithm::Sha256, &file)
            .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
        // into the cache under its SHA-256, where a build with the lock looks for it
        let local = file.display().to_string();
        let placed = self.scratch.join("cached");
        fetcher
            .fetch(&[&local], Some(&sha), &placed)
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(&placed);
        Ok(sha.to_string())
    }
}

/// The pin `entry` records for `input`'s key, whatever it records it for.
fn recorded(entry: &PartEntry, input: &Input) -> Option<String> {
    recorded_key(entry, input.key())
}

fn recorded_key(entry: &PartEntry, key: &str) -> Option<String> {
    match key {
        "git" => entry.git.as_ref().map(|g| g.commit.clone()),
        role => entry
            .sources
            .get(role)
            .map(|s| format!("sha256:{}", s.sha256)),
    }
}

fn insert(entry: &mut PartEntry, input: &Input, pin: String) {
    match input {
        Input::Git { repository, branch } => {
            entry.git = Some(GitEntry {
                repository: repository.clone(),
                branch: branch.clone(),
                commit: pin,
            });
        }
        Input::Source { role, url } => {
            let sha256 = pin.strip_prefix("sha256:").unwrap_or(&pin).to_owned();
            entry.sources.insert(
                role.clone(),
                SourceEntry {
                    url: url.clone(),
                    sha256,
                },
            );
        }
    }
}
