//! Substituters: before building a derivation, ask each configured cache for its output. Found,
//! signed by a trusted key, built for this store directory, its archive matching the signed hash
//! and its unpacked contents the signed content hash: it is used instead of a build. Anything
//! else — not found, unsigned, tampered, truncated, unreachable — is a reason to try the next
//! cache and finally to build, and is said.
//!
//! A cache is checked once, at its first use in a run: its `slapstore-cache.json` must be
//! readable and name this store directory. A cache that fails this check (a missing directory,
//! an unreachable server, no cache there, a cache for another store directory) is said once and
//! not asked again in that run.

use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use super::info::CacheInfo;
use super::keys::PublicKey;
use super::{archive, io, CacheError};
use crate::StorePath;

/// The schemes a substituter URL may have; anything else without a scheme is a directory.
const SCHEMES: [&str; 3] = ["http", "https", "file"];

/// Checks that `url` is one a substituter can use: `http://`, `https://`, `file://` or a
/// directory; the error says what is wrong with it.
pub fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Ok(());
    };
    if SCHEMES.contains(&scheme) {
        return Ok(());
    }
    Err(format!(
        "unknown scheme `{scheme}://`: a substituter is an `http://`, `https://` or `file://` \
         URL, or a directory"
    ))
}

/// One configured cache and, once checked, whether it can be used.
#[derive(Debug, Clone)]
struct Cache {
    url: String,
    checked: OnceLock<Result<(), String>>,
}

/// The configured caches and keys.
#[derive(Debug, Clone)]
pub struct Substituter {
    caches: Vec<Cache>,
    trusted: Vec<PublicKey>,
    store_dir: String,
    agent: ureq::Agent,
    /// The total deadline of one download (a cache that drips a byte at a time is cut off).
    deadline: Duration,
}

/// What a cache says of itself (`slapstore-cache.json`).
#[derive(Debug, serde::Deserialize)]
struct CacheMarker {
    format: u32,
    store_dir: String,
}

/// What one attempt gave.
#[derive(Debug, Default)]
pub struct Attempt {
    /// The metadata of what was unpacked into the destination, and the cache it came from.
    pub found: Option<(CacheInfo, String)>,
    /// Why caches were passed over.
    pub warnings: Vec<String>,
}

impl Substituter {
    pub fn new(urls: Vec<String>, trusted: Vec<PublicKey>, store_dir: &Path) -> Substituter {
        Substituter {
            caches: urls
                .into_iter()
                .map(|u| Cache {
                    url: u.trim_end_matches('/').to_owned(),
                    checked: OnceLock::new(),
                })
                .collect(),
            trusted,
            store_dir: store_dir.to_string_lossy().into_owned(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(60))
                .build(),
            deadline: crate::fetch::DOWNLOAD_DEADLINE,
        }
    }

    /// The total deadline of each download from a cache (`--download-timeout`).
    pub fn deadline(mut self, deadline: Duration) -> Substituter {
        self.deadline = deadline;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.caches.is_empty()
    }

    /// Whether `cache` can be used: `Err(Some(why))` the first time it is found unusable,
    /// `Err(None)` afterwards, so that each unusable cache is said once.
    fn usable(&self, cache: &Cache) -> Result<(), Option<String>> {
        let mut first = false;
        let checked = cache.checked.get_or_init(|| {
            first = true;
            self.check(&cache.url)
        });
        match checked {
            Ok(()) => Ok(()),
            Err(why) if first => Err(Some(format!("{why}; it is not asked again"))),
            Err(_) => Err(None),
        }
    }

    /// Reads the cache's `slapstore-cache.json`: it must be there and name this store directory.
    fn check(&self, base: &str) -> Result<(), String> {
        if !is_http(base) {
            let dir = base.strip_prefix("file://").unwrap_or(base);
            if !Path::new(dir).is_dir() {
                return Err(format!("`{base}`: no such directory"));
            }
        }
        let url = format!("{base}/slapstore-cache.json");
        let unreachable = |e: CacheError| format!("cannot reach `{base}`: {e}");
        let Some(reader) = self.open(&url).map_err(unreachable)? else {
            return Err(format!(
                "`{base}` is not a binary cache: it has no `slapstore-cache.json` (`slapstore \
                 cache push` makes one)"
            ));
        };
        let mut text = String::new();
        reader
            .take(1 << 16)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot reach `{base}`: `{url}`: {e}"))?;
        let marker: CacheMarker =
            serde_json::from_str(&text).map_err(|e| format!("`{url}` is not valid: {e}"))?;
        if marker.format != super::info::FORMAT {
            return Err(format!(
                "`{base}` is a cache of format {}, this slapstore reads format {}",
                marker.format,
                super::info::FORMAT
            ));
        }
        if marker.store_dir != self.store_dir {
            return Err(format!(
                "`{base}` serves `{}`, this store is `{}`",
                marker.store_dir, self.store_dir
            ));
        }
        Ok(())
    }

    /// Tries each cache for `path`; on success its tree is at `dest` (not yet canonical).
    /// `scratch` holds the downloaded archive meanwhile.
    pub fn substitute(&self, path: &StorePath, dest: &Path, scratch: &Path) -> Attempt {
        let mut attempt = Attempt::default();
        for cache in &self.caches {
            match self.usable(cache) {
                Ok(()) => {}
                Err(why) => {
                    attempt.warnings.extend(why);
                    continue;
                }
            }
            let base = &cache.url;
            match self.try_one(base, path, dest, scratch) {
                Ok(Some(info)) => {
                    attempt.found = Some((info, base.clone()));
                    return attempt;
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = crate::output::remove_tree(dest);
                    attempt.warnings.push(e.to_string());
                }
            }
        }
        attempt
    }

    fn try_one(
        &self,
        base: &str,
        path: &StorePath,
        dest: &Path,
        scratch: &Path,
    ) -> Result<Option<CacheInfo>, CacheError> {
        let Some(info) = self.info_from(base, path)? else {
            return Ok(None);
        };
        self.fetch_into(base, &info, dest, &scratch.join("archive.tar.zst"))?;
        Ok(Some(info))
    }

    /// The checked metadata of `path` from the first cache that has it, and that cache.
    pub fn info(&self, path: &StorePath) -> Result<(CacheInfo, String), CacheError> {
        let mut errors = Vec::new();
        for cache in &self.caches {
            if let Err(why) = self.usable(cache) {
                errors.extend(why);
                continue;
            }
            let base = &cache.url;
            match self.info_from(base, path) {
                Ok(Some(info)) => return Ok((info, base.clone())),
                Ok(None) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(CacheError::Fetch {
            url: path.to_string(),
            message: if errors.is_empty() {
                "no cache has it".into()
            } else {
                errors.join("; ")
            },
        })
    }

    /// The metadata of `path` in the cache at `base`, checked (store, path, signature, archive
    /// name); `None` if the cache does not have it.
    fn info_from(&self, base: &str, path: &StorePath) -> Result<Option<CacheInfo>, CacheError> {
        let info_url = format!("{base}/{}.info", path.hash_part());
        let Some(mut reader) = self.open(&info_url)? else {
            return Ok(None);
        };
        let mut text = String::new();
        reader
            .by_ref()
            .take(1 << 20)
            .read_to_string(&mut text)
            .map_err(|e| CacheError::Fetch {
                url: info_url.clone(),
                message: e.to_string(),
            })?;
        let info: CacheInfo = serde_json::from_str(&text).map_err(|e| CacheError::BadInfo {
            url: info_url.clone(),
            message: e.to_string(),
        })?;
        if info.path != path.to_string() || info.store_dir != self.store_dir {
            return Err(CacheError::BadInfo {
                url: info_url,
                message: format!(
                    "it describes `{}/{}`, not this store's `{}`",
                    info.store_dir, info.path, path
                ),
            });
        }
        if !info.trusted_by(&self.trusted) {
            return Err(CacheError::Untrusted { url: info_url });
        }
        if info.archive.contains("..") || info.archive.starts_with('/') {
            return Err(CacheError::BadInfo {
                url: info_url,
                message: format!("archive name `{}`", info.archive),
            });
        }
        Ok(Some(info))
    }

    /// Downloads `info`'s archive from the cache at `base` into `download` (bounded by the
    /// signed size, hashed on the way), checks it, and extracts it to `dest`.
    pub fn fetch_into(
        &self,
        base: &str,
        info: &CacheInfo,
        dest: &Path,
        download: &Path,
    ) -> Result<(), CacheError> {
        let archive_url = format!("{base}/{}", info.archive);
        let reader = self.open(&archive_url)?.ok_or_else(|| CacheError::Fetch {
            url: archive_url.clone(),
            message: "the archive its metadata names is missing".into(),
        })?;
        if let Some(parent) = download.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let mut file = std::fs::File::create(download).map_err(|e| io(download, e))?;
        let mut hasher = blake3::Hasher::new();
        let mut limited = reader.take(info.archive_size + 1);
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = limited.read(&mut buffer).map_err(|e| CacheError::Fetch {
                url: archive_url.clone(),
                message: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            std::io::Write::write_all(&mut file, &buffer[..n]).map_err(|e| io(download, e))?;
        }
        let actual = format!("blake3:{}", hasher.finalize().to_hex());
        if actual != info.archive_hash {
            return Err(CacheError::ArchiveMismatch {
                url: archive_url,
                expected: info.archive_hash.clone(),
                actual,
            });
        }
        drop(file);
        let file = std::fs::File::open(download).map_err(|e| io(download, e))?;
        archive::extract(std::io::BufReader::new(file), dest, info.size, &archive_url)?;
        let _ = std::fs::remove_file(download);
        Ok(())
    }

    /// Opens a URL (`http(s)://`, `file://`, or a path); `None` if it does not exist.
    fn open(&self, url: &str) -> Result<Option<Box<dyn Read + Send>>, CacheError> {
        if is_http(url) {
            let started = std::time::Instant::now();
            match self.agent.get(url).call() {
                Ok(resp) => Ok(Some(Box::new(crate::fetch::Deadline::new(
                    resp.into_reader(),
                    started,
                    self.deadline,
                )))),
                Err(ureq::Error::Status(404 | 410, _)) => Ok(None),
                Err(ureq::Error::Status(code, _)) => Err(CacheError::Fetch {
                    url: url.to_owned(),
                    message: format!("HTTP status {code}"),
                }),
                Err(e) => Err(CacheError::Fetch {
                    url: url.to_owned(),
                    message: e.to_string(),
                }),
            }
        } else {
            let path = url.strip_prefix("file://").unwrap_or(url);
            match std::fs::File::open(path) {
                Ok(f) => Ok(Some(Box::new(f))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CacheError::Fetch {
                    url: url.to_owned(),
                    message: e.to_string(),
                }),
            }
        }
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for good in [
            "http://x",
            "https://x/y",
            "file:///srv/cache",
            "/srv/cache",
            "cache",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for bad in ["ftp://x", "htps://cache.example.net", "s3://bucket"] {
            let err = check_url(bad).unwrap_err();
            assert!(err.contains("unknown scheme"), "{bad}: {err}");
        }
    }
}
