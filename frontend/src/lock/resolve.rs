//! Turning a profile's unpinned inputs into lock entries, for `slapstore lock`: a branch into the
//! commit its mirror in the download cache (`var/cache/git/`) has for it, a remote file into the
//! SHA-256 of its content, which is then kept in the download cache (`var/cache/sources/`)
//! under that checksum, so that a build with the lock finds it offline.
//!
//! An egg part's closure is resolved by pip (`python -m pip install --dry-run --report`, with
//! the part's own interpreter, so markers are that interpreter's) under the part's `[versions]`
//! pins as constraints, from its `index` and `find-links` and the cache's `dists/`; each chosen
//! file is then fetched into the download cache by its SHA-256 and kept in `dists/`.
//!
//! An entry that still pins what the profile names is kept as it is, without any network,
//! unless its part is to be updated; so an offline `lock` works as far as mirrors and the
//! existing entries reach (a new remote file needs the network, once).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use slapstore_store::checksum::{Algorithm, Checksum};
use slapstore_store::fetch::Fetcher;

use super::{
    DistEntry, EggsEntry, EggsInput, GitEntry, Input, LockFile, PartEntry, Pin, SourceEntry,
    Wanted, VERSION,
};

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
            Input::Eggs(eggs) => {
                let dists = self.closure(eggs)?;
                let lines: Vec<String> = dists.iter().map(DistEntry::line).collect();
                Ok(lines.join("\n"))
            }
        }
    }

    /// The distributions `eggs` resolves to, sorted by name, each fetched into the download
    /// cache by its SHA-256 and kept in its `dists/`.
    fn closure(&self, eggs: &EggsInput) -> Result<Vec<DistEntry>, String> {
        let dir = self.scratch.join("eggs");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map(|()| path)
                .map_err(|e| format!("cannot write `{}`: {e}", dir.join(name).display()))
        };
        let requirements = write("requirements.txt", eggs.requirements.clone() + "\n")?;
        let mut constraints = String::new();
        let mut wheels = Vec::new();
        for (name, version, whl) in eggs.pins.values() {
            if version.starts_with(['<', '>', '=', '!', '~']) {
                constraints.push_str(&format!("{name}{version}\n"));
            } else {
                constraints.push_str(&format!("{name}=={version}\n"));
            }
            if *whl {
                wheels.push(name.clone());
            }
        }
        let constraints = write("constraints.txt", constraints)?;
        let report = dir.join("report.json");
        let dists_dir = self.cache_dir.join(slapstore_store::recipes::DISTS_DIR);
        let mut args: Vec<String> = [
            "-s",
            "-m",
            "pip",
            "install",
            "--isolated",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(report.display().to_string());
        if self.offline {
            args.push("--no-index".into());
        } else if let Some(index) = &eggs.index {
            args.extend(["--index-url".into(), index.clone()]);
        }
        let mut links: Vec<String> = vec![dists_dir.display().to_string()];
        for link in &eggs.find_links {
            let local = link.strip_prefix("file://").unwrap_or(link);
            if local.starts_with('/') {
                links.push(local.to_owned());
            } else if !self.offline {
                links.push(link.clone());
            }
        }
        for link in links
            .iter()
            .filter(|l| !l.starts_with('/') || Path::new(l).exists())
        {
            args.extend(["--find-links".into(), link.clone()]);
        }
        if !wheels.is_empty() {
            args.extend(["--only-binary".into(), wheels.join(",")]);
        }
        if let Some(name) = &eggs.no_binary {
            args.extend(["--no-binary".into(), name.clone()]);
        }
        args.extend(["-c".into(), constraints.display().to_string()]);
        args.extend(["-r".into(), requirements.display().to_string()]);
        let out = std::process::Command::new(&eggs.python)
            .args(&args)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", slapstore_store::recipes::BUILD_PATH)
            .env("HOME", &dir)
            .env("LC_ALL", "C.UTF-8")
            .env("PYTHONNOUSERSITE", "1")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_INPUT", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", eggs.python))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            return Err(format!(
                "pip could not resolve them{}: {}",
                if self.offline { " offline" } else { "" },
                last[last.len().saturating_sub(3)..].join(" / ")
            ));
        }
        let text = std::fs::read_to_string(&report)
            .map_err(|e| format!("cannot read pip's report: {e}"))?;
        let mut dists = from_report(&text)?;
        let fetcher = Fetcher::new(&self.cache_dir)
            .offline(self.offline)
            .deadline(self.deadline);
        for d in &mut dists {
            let local = d.url.strip_prefix("file://").map(percent_decode);
            if d.sha256.is_empty() {
                let path = local
                    .clone()
                    .ok_or_else(|| format!("`{}`: pip gives no SHA-256 for `{}`", d.name, d.url))?;
                d.sha256 = Checksum::of_file(Algorithm::Sha256, Path::new(&path))
                    .map_err(|e| format!("cannot read `{path}`: {e}"))?
                    .hex();
            }
            if let Some(path) = local {
                d.url = path;
            }
            let sha = Checksum::parse(Algorithm::Sha256, &d.sha256).map_err(|e| e.to_string())?;
            let placed = dir.join(&d.file);
            fetcher
                .fetch(&[&d.url], Some(&sha), &placed)
                .map_err(|e| format!("`{}`: {e}", d.file))?;
            slapstore_store::recipes::keep_distribution(&dists_dir, &placed).map_err(|e| {
                format!("cannot keep `{}` in `{}`: {e}", d.file, dists_dir.display())
            })?;
        }
        dists.sort_by_key(|d| super::normalise(&d.name));
        Ok(dists)
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

/// The distributions of pip's installation report (`--report`), SHA-256 empty where pip gives
/// none.
fn from_report(text: &str) -> Result<Vec<DistEntry>, String> {
    let report: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("pip's report is not JSON: {e}"))?;
    let mut dists = Vec::new();
    for item in report["install"].as_array().into_iter().flatten() {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let name = s(&item["metadata"]["name"]);
        let version = s(&item["metadata"]["version"]);
        let info = &item["download_info"];
        let url = s(&info["url"]);
        if info.get("archive_info").is_none() {
            return Err(format!(
                "`{name}` comes from `{url}`, not from a file (a directory or a repository \
                 cannot be locked)"
            ));
        }
        let archive = &info["archive_info"];
        let sha256 = match archive["hashes"]["sha256"].as_str() {
            Some(h) => h.to_owned(),
            None => s(&archive["hash"])
                .strip_prefix("sha256=")
                .unwrap_or_default()
                .to_owned(),
        }
        .to_lowercase();
        let file = percent_decode(url.rsplit('/').next().unwrap_or_default());
        let file = file.split(['#', '?']).next().unwrap_or_default().to_owned();
        if name.is_empty() || version.is_empty() || file.is_empty() {
            return Err(format!("pip's report has an incomplete entry for `{url}`"));
        }
        dists.push(DistEntry {
            name,
            version,
            file,
            sha256,
            url,
        });
    }
    Ok(dists)
}

/// `%XX` escapes decoded (`+` in versions comes as `%2B`); a `%` not followed by two hex digits
/// is kept.
pub(crate) fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The pin `entry` records for `input`'s key, whatever it records it for.
fn recorded(entry: &PartEntry, input: &Input) -> Option<String> {
    recorded_key(entry, input.key())
}

fn recorded_key(entry: &PartEntry, key: &str) -> Option<String> {
    match key {
        "git" => entry.git.as_ref().map(|g| g.commit.clone()),
        "eggs" => entry.eggs.as_ref().map(|e| {
            let lines: Vec<String> = e.dists.iter().map(DistEntry::line).collect();
            lines.join("\n")
        }),
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
        Input::Eggs(eggs) => {
            let dists = pin
                .lines()
                .filter_map(|line| {
                    let w: Vec<&str> = line.split_whitespace().collect();
                    let [name, version, file, sha, url] = w[..] else {
                        return None;
                    };
                    Some(DistEntry {
                        name: name.to_owned(),
                        version: version.to_owned(),
                        file: file.to_owned(),
                        sha256: sha.strip_prefix("sha256:").unwrap_or(sha).to_owned(),
                        url: url.to_owned(),
                    })
                })
                .collect();
            entry.eggs = Some(EggsEntry {
                python: eggs.python.clone(),
                requirements: eggs.requirements.clone(),
                dists,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pips_report_gives_each_file_and_its_sha256() {
        let report = r#"{"install": [
            {"metadata": {"name": "six", "version": "1.16.0"},
             "download_info": {"url": "https://files.example/six-1.16.0-py2.py3-none-any.whl",
                               "archive_info": {"hashes": {"sha256": "AB12"}}}},
            {"metadata": {"name": "slapos.core", "version": "1.0+SlapOSPatched001"},
             "download_info": {"url": "file:///links/slapos.core-1.0%2BSlapOSPatched001.tar.gz",
                               "archive_info": {"hash": "sha256=cd34"}}},
            {"metadata": {"name": "local", "version": "1"},
             "download_info": {"url": "file:///links/local-1.tar.gz", "archive_info": {}}}
        ]}"#;
        let dists = from_report(report).expect("report");
        assert_eq!(dists.len(), 3);
        assert_eq!(dists[0].file, "six-1.16.0-py2.py3-none-any.whl");
        assert_eq!(dists[0].sha256, "ab12");
        assert_eq!(dists[1].file, "slapos.core-1.0+SlapOSPatched001.tar.gz");
        assert_eq!(dists[1].sha256, "cd34");
        assert_eq!(dists[2].sha256, "", "computed from the local file later");
    }

    #[test]
    fn a_directory_or_repository_cannot_be_locked() {
        let report = r#"{"install": [{"metadata": {"name": "x", "version": "1"},
            "download_info": {"url": "git+https://example.org/x.git", "vcs_info": {"vcs": "git"}}}]}"#;
        let e = from_report(report).expect_err("a repository");
        assert!(
            e.contains("`x` comes from `git+https://example.org/x.git`"),
            "{e}"
        );
        assert!(from_report("not json").is_err());
    }

    #[test]
    fn percent_escapes_are_decoded_and_stray_percents_kept() {
        assert_eq!(percent_decode("a%2Bb%20c"), "a+b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn only_the_named_parts_are_updated() {
        let parts = Update::Parts(["a".to_owned()].into_iter().collect());
        assert!(parts.covers("a") && !parts.covers("b"));
        assert!(Update::All.covers("b"));
        assert!(!Update::Nothing.covers("a"));
    }
}
