//! `slapstore cache push`: copies the closures of store paths into a cache directory, signed,
//! skipping what is there. For each path the archive is written first (temporary name, flushed,
//! renamed), then its metadata the same way: a metadata file that exists is complete, and a
//! reader never sees metadata whose archive is missing.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use super::info::{CacheInfo, FORMAT};
use super::keys::SecretKey;
use super::{archive, io, CacheError};
use crate::{Store, StorePath};

/// What a push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub pushed: Vec<String>,
    pub skipped: Vec<String>,
    pub bytes: u64,
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
    count: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Pushes the closures of `roots` into the cache directory `dest`.
pub fn push(
    store: &Store,
    dest: &Path,
    roots: &[StorePath],
    key: &SecretKey,
) -> Result<PushReport, CacheError> {
    // the closure, from the database
    let mut closure = BTreeSet::new();
    {
        let db = store.db();
        let mut stack: Vec<String> = roots.iter().map(StorePath::to_string).collect();
        while let Some(p) = stack.pop() {
            if !db.is_valid(&p)? {
                return Err(CacheError::NotValid(p));
            }
            if closure.insert(p.clone()) {
                stack.extend(db.references(&p)?);
            }
        }
    }
    let archives = dest.join("archives");
    fs::create_dir_all(&archives).map_err(|e| io(&archives, e))?;
    let store_dir = store.store_dir().to_string_lossy().into_owned();
    let marker = dest.join("slapstore-cache.json");
    if !marker.exists() {
        let text = serde_json::json!({"format": FORMAT, "store_dir": store_dir}).to_string();
        write_atomic(&marker, text.as_bytes())?;
    }
    let results: Vec<(String, Option<u64>)> = closure
        .par_iter()
        .map(|name| {
            let path = StorePath::parse(name).map_err(crate::StoreError::from)?;
            let info_file = dest.join(format!("{}.info", path.hash_part()));
            if info_file.exists() {
                return Ok((name.clone(), None));
            }
            let row = store
                .db()
                .path_info(name)?
                .ok_or_else(|| CacheError::NotValid(name.clone()))?;
            let references = store.db().references(name)?;
            let tmp = archives.join(format!(".tmp-{name}-{}", std::process::id()));
            let file = fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
            let mut writer = Hashing {
                inner: std::io::BufWriter::new(file),
                hasher: blake3::Hasher::new(),
                count: 0,
            };
            archive::pack(&store.path_of(&path), &mut writer)?;
            writer.flush().map_err(|e| io(&tmp, e))?;
            let hash = writer.hasher.finalize().to_hex().to_string();
            let size = writer.count;
            let file = writer
                .inner
                .into_inner()
                .map_err(|e| io(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| io(&tmp, e))?;
            let archive_name = format!("archives/{hash}.tar.zst");
            let final_archive = dest.join(&archive_name);
            fs::rename(&tmp, &final_archive).map_err(|e| io(&final_archive, e))?;
            let mut info = CacheInfo {
                format: FORMAT,
                store_dir: store_dir.clone(),
                path: name.clone(),
                references,
                content_hash: row.content_hash,
                size: row.size,
                archive: archive_name,
                archive_hash: format!("blake3:{hash}"),
                archive_size: size,
                compression: "zstd".into(),
                signatures: Vec::new(),
            };
            info.sign(key);
            let text = serde_json::to_string_pretty(&info)
                .map_err(|e| io(&info_file, std::io::Error::other(e)))?;
            write_atomic(&info_file, text.as_bytes())?;
            Ok((name.clone(), Some(size)))
        })
        .collect::<Result<_, CacheError>>()?;
    let mut report = PushReport::default();
    for (name, size) in results {
        match size {
            Some(n) => {
                report.pushed.push(name);
                report.bytes += n;
            }
            None => report.skipped.push(name),
        }
    }
    fs::File::open(dest)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dest, e))?;
    Ok(report)
}

/// Writes `bytes` to `path` through a flushed temporary file renamed into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io(path, e))
}
