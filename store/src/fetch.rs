//! Downloads through a content-addressed cache: what a profile's `url` + `md5sum` (or `sha256`,
//! `blake3`) names is fetched once, checked, and kept as `<cache_dir>/<algorithm>/<hex>`.
//!
//! Invariants:
//! - a file under its cache name has that checksum: downloads are written to a temporary file
//!   inside `cache_dir` (same file system), hashed while written, and renamed to their cache name
//!   only once checked and synced; a cache hit is re-hashed (which also gives its BLAKE3) and a
//!   corrupt entry is evicted and fetched again;
//! - on any error `dest` is left as it was: it is replaced by a rename, only with checked content;
//! - a remote (`http://`, `https://`) URL without checksum is refused unless
//!   [`Fetcher::allow_unpinned`]; local files (`file://`, absolute paths) may be unpinned and are
//!   then copied without being cached. Unpinned remote downloads are cached under their BLAKE3;
//! - an [`offline`](Fetcher::offline) fetcher never opens a network connection; cache hits work;
//! - cache entries are read-only, and `dest` may be a hard link to one: replace it, do not write
//!   into it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::checksum::{Algorithm, Checksum, Hasher};

/// How long to wait for a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for each read from a connection.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one download may take in all: a server that sends a byte just often enough to beat
/// [`READ_TIMEOUT`] is cut off there.
pub const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(3600);

const BUFFER_SIZE: usize = 64 * 1024;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("nothing to fetch: no url given and {} is not in the download cache `{cache_dir}`", checksum_or_none(.checksum))]
    NoUrls {
        checksum: Option<Checksum>,
        cache_dir: PathBuf,
    },
    #[error(
        "unsupported url `{url}` (expected `http://`, `https://`, `file://` or an absolute path)"
    )]
    UnsupportedUrl { url: String },
    #[error(
        "refusing to download `{url}` without a checksum (give `md5sum`, `sha256` or `blake3`)"
    )]
    Unpinned { url: String },
    #[error("cannot download `{url}` offline, and it is not in the download cache")]
    Offline { url: String },
    #[error("cannot download `{url}`: HTTP status {status} {reason}")]
    Http {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("cannot download `{url}`: {}", transport_text(.url, .source))]
    Transport {
        url: String,
        source: Box<ureq::Transport>,
    },
    #[error("cannot read `{url}`: {source}")]
    Read { url: String, source: io::Error },
    #[error("download cache `{path}`: {source}")]
    Cache { path: PathBuf, source: io::Error },
    #[error("cannot create `{path}`: {source}")]
    Dest { path: PathBuf, source: io::Error },
    #[error("checksum mismatch for `{url}`: expected {expected}, got {actual}")]
    ChecksumMismatch {
        url: String,
        expected: Checksum,
        actual: Checksum,
    },
    #[error("{}", all_failed(.errors))]
    AllFailed { errors: Vec<FetchError> },
}

fn checksum_or_none(checksum: &Option<Checksum>) -> String {
    match checksum {
        Some(checksum) => checksum.to_string(),
        None => "an unpinned file".into(),
    }
}

/// What went wrong in `transport`, without repeating `url` (only a URL redirected to).
fn transport_text(url: &str, transport: &ureq::Transport) -> String {
    let mut text = transport.kind().to_string();
    if let Some(message) = transport.message() {
        text.push_str(": ");
        text.push_str(message);
    }
    if let Some(source) = std::error::Error::source(transport) {
        text.push_str(": ");
        text.push_str(&source.to_string());
    }
    if let Some(at) = transport.url().filter(|at| at.as_str() != url) {
        text.push_str(&format!(" (at `{at}`)"));
    }
    text
}

fn all_failed(errors: &[FetchError]) -> String {
    let mut text = format!("all {} urls failed", errors.len());
    for error in errors {
        text.push_str("; ");
        text.push_str(&error.to_string());
    }
    text
}

/// What [`Fetcher::fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    /// Whether the content came from the cache, without reading any URL.
    pub from_cache: bool,
    /// The URL the content was read from; `None` on a cache hit.
    pub url: Option<String>,
    /// The checksum asked for, which the content matches; `None` for an unpinned fetch.
    pub checksum: Option<Checksum>,
    /// The BLAKE3 of the content, always computed: the store records content identity.
    pub blake3: Checksum,
    /// The size of the content in bytes.
    pub size: u64,
}

/// Fetches files through a content-addressed download cache.
#[derive(Debug, Clone)]
pub struct Fetcher {
    cache_dir: PathBuf,
    allow_unpinned: bool,
    offline: bool,
    /// The HTTP client, made on first use (loading the system's certificates costs a no-op
    /// build, which fetches nothing, several milliseconds).
    agent: std::sync::OnceLock<ureq::Agent>,
    timeouts: (Duration, Duration),
    deadline: Duration,
}

impl Fetcher {
    /// A fetcher caching into `cache_dir` (created when first needed), refusing unpinned remote
    /// URLs, online, with the timeouts [`CONNECT_TIMEOUT`] and [`READ_TIMEOUT`] and the total
    /// [`DOWNLOAD_DEADLINE`].
    pub fn new(cache_dir: impl Into<PathBuf>) -> Fetcher {
        Fetcher {
            cache_dir: cache_dir.into(),
            allow_unpinned: false,
            offline: false,
            agent: std::sync::OnceLock::new(),
            timeouts: (CONNECT_TIMEOUT, READ_TIMEOUT),
            deadline: DOWNLOAD_DEADLINE,
        }
    }

    /// How long one HTTP download may take in all (its body is cut off then), besides the
    /// timeouts for connecting and for each read.
    pub fn deadline(mut self, deadline: Duration) -> Fetcher {
        self.deadline = deadline;
        self
    }

    /// Whether remote URLs without checksum are downloaded (they are refused by default).
    pub fn allow_unpinned(mut self, allow: bool) -> Fetcher {
        self.allow_unpinned = allow;
        self
    }

    /// Whether network fetches are refused (cache hits and local files still work).
    pub fn offline(mut self, offline: bool) -> Fetcher {
        self.offline = offline;
        self
    }

    /// Other timeouts for connecting and for each read.
    pub fn timeouts(mut self, connect: Duration, read: Duration) -> Fetcher {
        self.timeouts = (connect, read);
        self.agent = std::sync::OnceLock::new();
        self
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    pub fn allows_unpinned(&self) -> bool {
        self.allow_unpinned
    }

    /// Where the content of `checksum` is cached: `<cache_dir>/<algorithm>/<hex>`.
    pub fn cache_path(&self, checksum: &Checksum) -> PathBuf {
        self.cache_dir
            .join(checksum.algorithm().name())
            .join(checksum.hex())
    }

    /// Fetches the content named by `checksum` to `dest` (replacing it), from the cache, or else
    /// from the first of `urls` that works (the others are mirrors, like buildout's
    /// `alternate-url`). Each URL is `http://…`, `https://…`, `file://…` or an absolute path.
    pub fn fetch(
        &self,
        urls: &[&str],
        checksum: Option<&Checksum>,
        dest: &Path,
    ) -> Result<FetchOutcome, FetchError> {
        let locations = urls
            .iter()
            .map(|url| locate(url))
            .collect::<Result<Vec<_>, _>>()?;
        if checksum.is_none() && !self.allow_unpinned {
            if let Some((url, _)) = urls
                .iter()
                .zip(&locations)
                .find(|(_, location)| matches!(location, Location::Remote))
            {
                return Err(FetchError::Unpinned { url: (*url).into() });
            }
        }
        if let Some(checksum) = checksum {
            if let Some(outcome) = self.cache_hit(checksum, dest)? {
                return Ok(outcome);
            }
        }
        let mut errors = Vec::new();
        for (url, location) in urls.iter().zip(locations) {
            match self.fetch_one(url, location, checksum, dest) {
                Ok(outcome) => return Ok(outcome),
                Err(error) => errors.push(error),
            }
        }
        match errors.len() {
            0 => Err(FetchError::NoUrls {
                checksum: checksum.cloned(),
                cache_dir: self.cache_dir.clone(),
            }),
            1 => Err(errors.remove(0)),
            _ => Err(FetchError::AllFailed { errors }),
        }
    }

    /// A cache hit for `checksum`, placed at `dest`; a corrupt entry is removed and is a miss.
    fn cache_hit(
        &self,
        checksum: &Checksum,
        dest: &Path,
    ) -> Result<Option<FetchOutcome>, FetchError> {
        let path = self.cache_path(checksum);
        let cache_error = |source| FetchError::Cache {
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cache_error(e)),
        };
        if !file.metadata().map_err(cache_error)?.is_file() {
            return Ok(None);
        }
        let mut hashers = Hashers::new(Some(checksum));
        let size = hashers.update_from(&mut file).map_err(cache_error)?;
        drop(file);
        let (actual, blake3) = hashers.finalize();
        if actual.as_ref() != Some(checksum) {
            // Corrupt (say, written to through a hard link): evict and fetch again.
            fs::remove_file(&path).map_err(cache_error)?;
            return Ok(None);
        }
        place(&path, dest)?;
        Ok(Some(FetchOutcome {
            from_cache: true,
            url: None,
            checksum: Some(checksum.clone()),
            blake3,
            size,
        }))
    }

    fn fetch_one(
        &self,
        url: &str,
        location: Location,
        checksum: Option<&Checksum>,
        dest: &Path,
    ) -> Result<FetchOutcome, FetchError> {
        let read_error = |source| FetchError::Read {
            url: url.into(),
            source,
        };
        let mut reader: Box<dyn Read> = match location {
            Location::Remote if self.offline => {
                return Err(FetchError::Offline { url: url.into() });
            }
            Location::Remote => self.get(url)?,
            Location::Local(path) => {
                let file = File::open(&path).map_err(read_error)?;
                if checksum.is_none() {
                    return copy_unpinned(url, file, dest);
                }
                Box::new(file)
            }
        };
        fs::create_dir_all(&self.cache_dir).map_err(|source| FetchError::Cache {
            path: self.cache_dir.clone(),
            source,
        })?;
        let (mut file, mut temp) =
            create_temp(&self.cache_dir, ".download-").map_err(|source| FetchError::Cache {
                path: self.cache_dir.clone(),
                source,
            })?;
        let cache_error = |path: &Path, source| FetchError::Cache {
            path: path.to_owned(),
            source,
        };
        let mut hashers = Hashers::new(checksum);
        let mut buffer = vec![0; BUFFER_SIZE];
        let mut size = 0;
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            hashers.update(&buffer[..n]);
            file.write_all(&buffer[..n])
                .map_err(|e| cache_error(&temp.path, e))?;
            size += n as u64;
        }
        let (actual, blake3) = hashers.finalize();
        if let Some(expected) = checksum {
            if actual.as_ref() != Some(expected) {
                return Err(FetchError::ChecksumMismatch {
                    url: url.into(),
                    expected: expected.clone(),
                    actual: actual.unwrap_or(blake3),
                });
            }
        }
        file.sync_all().map_err(|e| cache_error(&temp.path, e))?;
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(|e| cache_error(&temp.path, e))?;
        drop(file);
        let target = self.cache_path(checksum.unwrap_or(&blake3));
        let target_dir = target.parent().unwrap_or(&self.cache_dir);
        fs::create_dir_all(target_dir).map_err(|e| cache_error(target_dir, e))?;
        fs::rename(&temp.path, &target).map_err(|e| cache_error(&target, e))?;
        temp.keep = true;
        File::open(target_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| cache_error(target_dir, e))?;
        place(&target, dest)?;
        Ok(FetchOutcome {
            from_cache: false,
            url: Some(url.into()),
            checksum: checksum.cloned(),
            blake3,
            size,
        })
    }

    /// The body of a successful GET of `url`.
    fn get(&self, url: &str) -> Result<Box<dyn Read>, FetchError> {
        let started = std::time::Instant::now();
        let agent = self
            .agent
            .get_or_init(|| agent(self.timeouts.0, self.timeouts.1));
        match agent.get(url).call() {
            Ok(response) if (200..300).contains(&response.status()) => Ok(Box::new(Deadline::new(
                response.into_reader(),
                started,
                self.deadline,
            ))),
            Ok(response) => Err(FetchError::Http {
                url: url.into(),
                status: response.status(),
                reason: response.status_text().into(),
            }),
            Err(ureq::Error::Status(status, response)) => Err(FetchError::Http {
                url: url.into(),
                status,
                reason: response.status_text().into(),
            }),
            Err(ureq::Error::Transport(transport)) => Err(FetchError::Transport {
                url: url.into(),
                source: Box::new(transport),
            }),
        }
    }
}

/// A body that fails with `TimedOut` once `limit` has passed since `started` (checked at each
/// read, and a read returns at least every [`READ_TIMEOUT`], or as soon as a byte comes).
pub struct Deadline<R> {
    inner: R,
    started: std::time::Instant,
    limit: Duration,
}

impl<R> Deadline<R> {
    /// `inner`, which must be read to its end within `limit` of `started` (the request's start).
    pub fn new(inner: R, started: std::time::Instant, limit: Duration) -> Deadline<R> {
        Deadline {
            inner,
            started,
            limit,
        }
    }
}

impl<R: Read> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.started.elapsed() > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the download took longer than its deadline of {} s (`--download-timeout`)",
                    self.limit.as_secs_f64()
                ),
            ));
        }
        self.inner.read(buf)
    }
}

fn agent(connect: Duration, read: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout_read(read)
        .user_agent(concat!("slapstore/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Remote,
    Local(PathBuf),
}

fn locate(url: &str) -> Result<Location, FetchError> {
    let unsupported = || FetchError::UnsupportedUrl { url: url.into() };
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Location::Remote);
    }
    if lower.starts_with("file://") {
        let rest = &url[7..];
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        if !rest.starts_with('/') {
            return Err(unsupported());
        }
        let bytes = percent_decode(rest).ok_or_else(unsupported)?;
        return Ok(Location::Local(PathBuf::from(OsString::from_vec(bytes))));
    }
    if url.starts_with('/') {
        return Ok(Location::Local(PathBuf::from(url)));
    }
    Err(unsupported())
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a decoded NUL.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    (!out.contains(&0)).then_some(out)
}

/// The hasher of the checksum asked for, and the BLAKE3 one (the same when that is BLAKE3).
struct Hashers {
    expected: Option<Hasher>,
    blake3: Hasher,
    expects_blake3: bool,
}

impl Hashers {
    fn new(checksum: Option<&Checksum>) -> Hashers {
        let algorithm = checksum.map(Checksum::algorithm);
        Hashers {
            expected: algorithm
                .filter(|a| *a != Algorithm::Blake3)
                .map(Hasher::new),
            blake3: Hasher::new(Algorithm::Blake3),
            expects_blake3: algorithm == Some(Algorithm::Blake3),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        if let Some(hasher) = &mut self.expected {
            hasher.update(bytes);
        }
        self.blake3.update(bytes);
    }

    fn update_from(&mut self, reader: &mut impl Read) -> io::Result<u64> {
        crate::checksum::for_each_chunk(reader, BUFFER_SIZE, |chunk| self.update(chunk))
    }

    /// The checksum of the algorithm asked for (if one was), and the BLAKE3.
    fn finalize(self) -> (Option<Checksum>, Checksum) {
        let blake3 = self.blake3.finalize();
        match self.expected {
            Some(hasher) => (Some(hasher.finalize()), blake3),
            None if self.expects_blake3 => (Some(blake3.clone()), blake3),
            None => (None, blake3),
        }
    }
}

/// A temporary file removed when dropped, unless kept.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh name `<dir>/<prefix><pid>-<n>` for which `create` succeeds.
fn with_temp_name<T>(
    dir: &Path,
    prefix: &str,
    mut create: impl FnMut(&Path) -> io::Result<T>,
) -> io::Result<(T, TempFile)> {
    for _ in 0..1000 {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{prefix}{}-{n}", std::process::id()));
        match create(&path) {
            Ok(value) => return Ok((value, TempFile { path, keep: false })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

fn create_temp(dir: &Path, prefix: &str) -> io::Result<(File, TempFile)> {
    with_temp_name(dir, prefix, |path| {
        OpenOptions::new().write(true).create_new(true).open(path)
    })
}

/// The directory of `dest` and the prefix of temporary names next to it.
fn dest_parts(dest: &Path) -> Result<(&Path, String), FetchError> {
    let name = dest.file_name().ok_or_else(|| FetchError::Dest {
        path: dest.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, format!(".{}.fetch-", name.to_string_lossy())))
}

/// Puts (a hard link to, or else a copy of) the cache file `source` at `dest`, replacing it.
fn place(source: &Path, dest: &Path) -> Result<(), FetchError> {
    let dest_error = |source| FetchError::Dest {
        path: dest.to_owned(),
        source,
    };
    let (dir, prefix) = dest_parts(dest)?;
    let linked = with_temp_name(dir, &prefix, |path| fs::hard_link(source, path));
    let temp = match linked {
        Ok(((), temp)) => temp,
        Err(_) => {
            let (mut file, temp) = create_temp(dir, &prefix).map_err(dest_error)?;
            let mut input = File::open(source).map_err(|e| FetchError::Cache {
                path: source.to_owned(),
                source: e,
            })?;
            io::copy(&mut input, &mut file).map_err(dest_error)?;
            file.set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(dest_error)?;
            temp
        }
    };
    commit(temp, dest)
}

/// Renames `temp` to `dest`. (When both are links to the same file, the rename does nothing and
/// `temp` is removed when dropped.)
fn commit(temp: TempFile, dest: &Path) -> Result<(), FetchError> {
    fs::rename(&temp.path, dest).map_err(|source| FetchError::Dest {
        path: dest.to_owned(),
        source,
    })
}

/// Copies the local, unpinned file `input` to `dest`, hashing it; not cached.
fn copy_unpinned(url: &str, mut input: File, dest: &Path) -> Result<FetchOutcome, FetchError> {
    let dest_error = |source| FetchError::Dest {
        path: dest.to_owned(),
        source,
    };
    let (dir, prefix) = dest_parts(dest)?;
    let (mut file, temp) = create_temp(dir, &prefix).map_err(dest_error)?;
    let mut hashers = Hashers::new(None);
    let mut buffer = vec![0; BUFFER_SIZE];
    let mut size = 0;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(FetchError::Read {
                    url: url.into(),
                    source,
                })
            }
        };
        hashers.update(&buffer[..n]);
        file.write_all(&buffer[..n]).map_err(dest_error)?;
        size += n as u64;
    }
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(dest_error)?;
    drop(file);
    commit(temp, dest)?;
    let (_, blake3) = hashers.finalize();
    Ok(FetchOutcome {
        from_cache: false,
        url: Some(url.into()),
        checksum: None,
        blake3,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn md5(content: &[u8]) -> Checksum {
        Checksum::of_bytes(Algorithm::Md5, content)
    }

    /// Every regular file under `dir`.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        walkdir::WalkDir::new(dir)
            .into_iter()
            .map(|entry| entry.unwrap())
            .filter(|entry| entry.file_type().is_file())
            .map(|entry| entry.into_path())
            .collect()
    }

    /// A URL nothing listens on (the discard port on loopback).
    const NOWHERE: &str = "http://127.0.0.1:9/nowhere/archive.tar.gz";

    #[test]
    fn errors_are_send_sync() {
        fn check<T: Send + Sync + std::error::Error>() {}
        check::<FetchError>();
    }

    #[test]
    fn cache_hit_without_network() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"genuine upstream tarball";
        let sum = md5(content);
        let fetcher = Fetcher::new(dir.path().join("cache"));
        let cached = fetcher.cache_path(&sum);
        assert_eq!(cached, dir.path().join("cache/md5").join(sum.hex()));
        fs::create_dir_all(cached.parent().unwrap()).unwrap();
        fs::write(&cached, content).unwrap();
        let dest = dir.path().join("dest.tar.gz");
        // Online: the URL would fail, so a success shows it was not touched.
        let outcome = fetcher.fetch(&[NOWHERE], Some(&sum), &dest).unwrap();
        assert!(outcome.from_cache);
        assert_eq!(outcome.url, None);
        assert_eq!(outcome.checksum, Some(sum.clone()));
        assert_eq!(
            outcome.blake3,
            Checksum::of_bytes(Algorithm::Blake3, content)
        );
        assert_eq!(outcome.size, content.len() as u64);
        assert_eq!(fs::read(&dest).unwrap(), content);
        // Offline too, and with no URL at all; fetching onto the same link again leaves no
        // temporary file behind.
        let offline = fetcher.clone().offline(true);
        assert!(
            offline
                .fetch(&[NOWHERE], Some(&sum), &dest)
                .unwrap()
                .from_cache
        );
        assert!(offline.fetch(&[], Some(&sum), &dest).unwrap().from_cache);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn blake3_and_sha256_pins() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, b"data").unwrap();
        let fetcher = Fetcher::new(dir.path().join("cache"));
        for algorithm in [Algorithm::Blake3, Algorithm::Sha256] {
            let sum = Checksum::of_bytes(algorithm, b"data");
            let dest = dir.path().join(format!("dest-{algorithm}"));
            let outcome = fetcher
                .fetch(&[source.to_str().unwrap()], Some(&sum), &dest)
                .unwrap();
            assert!(!outcome.from_cache);
            assert_eq!(outcome.checksum, Some(sum.clone()));
            assert!(fetcher.cache_path(&sum).is_file());
            let outcome = fetcher.fetch(&[], Some(&sum), &dest).unwrap();
            assert!(outcome.from_cache);
            assert_eq!(
                outcome.blake3,
                Checksum::of_bytes(Algorithm::Blake3, b"data")
            );
        }
    }

    #[test]
    fn corrupt_cache_entry_is_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, b"right").unwrap();
        let sum = md5(b"right");
        let fetcher = Fetcher::new(dir.path().join("cache"));
        let cached = fetcher.cache_path(&sum);
        fs::create_dir_all(cached.parent().unwrap()).unwrap();
        fs::write(&cached, b"wrong").unwrap();
        let dest = dir.path().join("dest");
        let outcome = fetcher
            .fetch(&[source.to_str().unwrap()], Some(&sum), &dest)
            .unwrap();
        assert!(!outcome.from_cache);
        assert_eq!(fs::read(&cached).unwrap(), b"right");
        assert_eq!(fs::read(&dest).unwrap(), b"right");
        // Cache entries are read-only.
        assert_eq!(
            fs::metadata(&cached).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }

    #[test]
    fn mismatch_leaves_cache_and_dest_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.tar.gz");
        fs::write(&source, b"tampered").unwrap();
        let expected = md5(b"genuine");
        let cache = dir.path().join("cache");
        let fetcher = Fetcher::new(&cache);
        let dest = dir.path().join("dest");
        let url = format!("file://{}", source.display());
        let err = fetcher.fetch(&[&url], Some(&expected), &dest).unwrap_err();
        match &err {
            FetchError::ChecksumMismatch {
                url: u,
                expected: e,
                actual,
            } => {
                assert_eq!(u, &url);
                assert_eq!(e, &expected);
                assert_eq!(actual, &md5(b"tampered"));
            }
            other => panic!("{other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with(&format!("checksum mismatch for `{url}`: expected md5:")));
        assert_eq!(files_under(&cache), Vec::<PathBuf>::new());
        assert!(!dest.exists());
        // An existing dest is kept as it was.
        fs::write(&dest, b"before").unwrap();
        assert!(fetcher.fetch(&[&url], Some(&expected), &dest).is_err());
        assert_eq!(fs::read(&dest).unwrap(), b"before");
        assert_eq!(files_under(&cache), Vec::<PathBuf>::new());
    }

    #[test]
    fn local_files() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("a file%.patch");
        fs::write(&source, b"patch").unwrap();
        let cache = dir.path().join("cache");
        let fetcher = Fetcher::new(&cache);
        let dest = dir.path().join("dest");
        let path = source.to_str().unwrap();
        let url = format!("file://{}", path.replace('%', "%25").replace(' ', "%20"));

        // Unpinned: copied, not cached.
        for location in [path, url.as_str()] {
            let outcome = fetcher.fetch(&[location], None, &dest).unwrap();
            assert!(!outcome.from_cache);
            assert_eq!(outcome.url.as_deref(), Some(location));
            assert_eq!(outcome.checksum, None);
            assert_eq!(
                outcome.blake3,
                Checksum::of_bytes(Algorithm::Blake3, b"patch")
            );
            assert_eq!(fs::read(&dest).unwrap(), b"patch");
            assert!(!cache.exists());
        }

        // Pinned: cached, then served from the cache once the source is gone.
        let sum = md5(b"patch");
        let outcome = fetcher.fetch(&[&url], Some(&sum), &dest).unwrap();
        assert!(!outcome.from_cache);
        assert_eq!(files_under(&cache), vec![fetcher.cache_path(&sum)]);
        fs::remove_file(&source).unwrap();
        fs::remove_file(&dest).unwrap();
        assert!(
            fetcher
                .fetch(&[path], Some(&sum), &dest)
                .unwrap()
                .from_cache
        );
        assert_eq!(fs::read(&dest).unwrap(), b"patch");

        // A missing local file is a read error naming the URL.
        let err = fetcher.fetch(&[path], None, &dest).unwrap_err();
        assert!(
            matches!(&err, FetchError::Read { url, .. } if url == path),
            "{err:?}"
        );
    }

    #[test]
    fn unpinned_remote_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fetcher = Fetcher::new(dir.path().join("cache"));
        let dest = dir.path().join("dest");
        let err = fetcher
            .fetch(&["/some/local", NOWHERE], None, &dest)
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::Unpinned { url } if url == NOWHERE),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to download `{NOWHERE}` without a checksum (give `md5sum`, `sha256` or \
                 `blake3`)"
            )
        );
        // Allowed, but offline.
        let fetcher = fetcher.allow_unpinned(true).offline(true);
        let err = fetcher.fetch(&[NOWHERE], None, &dest).unwrap_err();
        assert!(
            matches!(&err, FetchError::Offline { url } if url == NOWHERE),
            "{err:?}"
        );
        assert!(!dest.exists());
    }

    #[test]
    fn bad_urls() {
        let dir = tempfile::tempdir().unwrap();
        let fetcher = Fetcher::new(dir.path().join("cache"));
        let dest = dir.path().join("dest");
        for url in [
            "ftp://example.org/x",
            "relative/path",
            "file://host/x",
            "file:///a%2",
            "file:///a%00",
        ] {
            let err = fetcher.fetch(&[url], None, &dest).unwrap_err();
            assert!(
                matches!(&err, FetchError::UnsupportedUrl { url: u } if u == url),
                "{err:?}"
            );
        }
        let sum = md5(b"x");
        let err = fetcher.fetch(&[], Some(&sum), &dest).unwrap_err();
        assert!(matches!(err, FetchError::NoUrls { .. }), "{err:?}");
        assert_eq!(locate("HTTPS://example.org").unwrap(), Location::Remote);
        assert_eq!(
            locate("file://localhost/tmp/a%20b").unwrap(),
            Location::Local(PathBuf::from("/tmp/a b"))
        );
    }

    /// Serves `/ok` (200, `body`) and anything else (404) on 127.0.0.1, one request per
    /// connection, for the rest of the test process; returns the base URL.
    fn serve(body: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut byte = [0; 1];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => request.push(byte[0]),
                        _ => break,
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let path = request.split(' ').nth(1).unwrap_or("");
                let (status, body): (&str, &[u8]) = if path == "/ok" {
                    ("200 OK", body)
                } else {
                    ("404 Not Found", b"not found")
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            }
        });
        format!("http://{address}")
    }

    #[test]
    fn http() {
        let base = serve(b"served over http");
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let fetcher = Fetcher::new(&cache);
        let dest = dir.path().join("dest");
        let ok = format!("{base}/ok");
        let missing = format!("{base}/missing.tar.gz");
        let sum = md5(b"served over http");

        // 404.
        let err = fetcher.fetch(&[&missing], Some(&sum), &dest).unwrap_err();
        assert!(
            matches!(&err, FetchError::Http { status: 404, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("cannot download `{missing}`: HTTP status 404 Not Found")
        );
        assert!(!dest.exists());

        // A wrong checksum over http.
        let err = fetcher
            .fetch(&[&ok], Some(&md5(b"other")), &dest)
            .unwrap_err();
        assert!(
            matches!(err, FetchError::ChecksumMismatch { .. }),
            "{err:?}"
        );
        assert_eq!(files_under(&cache), Vec::<PathBuf>::new());

        // 200 after a failing mirror.
        let outcome = fetcher.fetch(&[&missing, &ok], Some(&sum), &dest).unwrap();
        assert!(!outcome.from_cache);
        assert_eq!(outcome.url.as_deref(), Some(ok.as_str()));
        assert_eq!(fs::read(&dest).unwrap(), b"served over http");
        assert_eq!(files_under(&cache), vec![fetcher.cache_path(&sum)]);
        // Then from the cache, even if every URL fails.
        assert!(
            fetcher
                .fetch(&[&missing], Some(&sum), &dest)
                .unwrap()
                .from_cache
        );

        // Unpinned, when allowed: cached under its BLAKE3.
        let blake3 = Checksum::of_bytes(Algorithm::Blake3, b"served over http");
        let outcome = fetcher
            .clone()
            .allow_unpinned(true)
            .fetch(&[&ok], None, &dest)
            .unwrap();
        assert_eq!(outcome.checksum, None);
        assert_eq!(outcome.blake3, blake3);
        assert!(fetcher.cache_path(&blake3).is_file());

        // Every URL failing.
        let err = fetcher
            .fetch(&[&missing, NOWHERE], Some(&md5(b"?")), &dest)
            .unwrap_err();
        match &err {
            FetchError::AllFailed { errors } => {
                assert!(matches!(errors[0], FetchError::Http { status: 404, .. }));
                assert!(matches!(errors[1], FetchError::Transport { .. }));
            }
            other => panic!("{other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with("all 2 urls failed; cannot download `"));
    }
}
