//! Substituters: before building a derivation, ask each configured cache for its output. Found,
//! signed by a trusted key, built for this store directory, its archive matching the signed hash
//! and its unpacked contents the signed content hash: it is used instead of a build. Anything
//! else — not found, unsigned, tampered, truncated, unreachable — is a reason to try the next
//! cache and finally to build, and is said.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::info::CacheInfo;
use super::keys::PublicKey;
use super::{archive, io, CacheError};
use crate::StorePath;

/// The configured caches and keys.
#[derive(Debug, Clone)]
pub struct Substituter {
    urls: Vec<String>,
    trusted: Vec<PublicKey>,
    store_dir: String,
    agent: ureq::Agent,
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
            urls: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            trusted,
            store_dir: store_dir.to_string_lossy().into_owned(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(60))
                .build(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Tries each cache for `path`; on success its tree is at `dest` (not yet canonical).
    /// `scratch` holds the downloaded archive meanwhile.
    pub fn substitute(&self, path: &StorePath, dest: &Path, scratch: &Path) -> Attempt {
        let mut attempt = Attempt::default();
        for base in &self.urls {
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
        for base in &self.urls {
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
        if url.starts_with("http://") || url.starts_with("https://") {
            match self.agent.get(url).call() {
                Ok(resp) => Ok(Some(Box::new(resp.into_reader()))),
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
