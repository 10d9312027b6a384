//! A store path's metadata in a cache (`<hash part>.info`, JSON): what it is, what it refers to,
//! its content hash and size, where its archive is and the archive's own hash, and signatures.
//! A signature covers a fingerprint of every field that matters (format version, path, content
//! hash, size, references, archive and archive hash), so no field can be changed unnoticed.

use serde::{Deserialize, Serialize};

use super::keys::{PublicKey, SecretKey};

/// The version of the cache format.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInfo {
    pub format: u32,
    /// The store directory the path was built for (store paths embed it).
    pub store_dir: String,
    /// Base name of the store path (`<hash>-<name>`).
    pub path: String,
    /// Base names of the paths it refers to, sorted.
    pub references: Vec<String>,
    /// `blake3:<hex>` of the tree (`docs/store.md`).
    pub content_hash: String,
    pub size: u64,
    /// Relative to the cache's root: `archives/<blake3 of the archive>.tar.zst`.
    pub archive: String,
    /// `blake3:<hex>` of the compressed archive file.
    pub archive_hash: String,
    pub archive_size: u64,
    pub compression: String,
    /// `name:base64` ed25519 signatures of [`CacheInfo::fingerprint`].
    pub signatures: Vec<String>,
}

impl CacheInfo {
    /// What a signature covers.
    pub fn fingerprint(&self) -> Vec<u8> {
        format!(
            "slapstore-cache {};{};{};{};{};{};{};{};{}",
            self.format,
            self.store_dir,
            self.path,
            self.content_hash,
            self.size,
            self.references.join(","),
            self.archive,
            self.archive_hash,
            self.compression
        )
        .into_bytes()
    }

    pub fn sign(&mut self, key: &SecretKey) {
        let sig = key.sign(&self.fingerprint());
        self.signatures
            .retain(|s| !s.starts_with(&format!("{}:", key.name)));
        self.signatures.push(sig);
    }

    /// Whether one of `trusted` signed it.
    pub fn trusted_by(&self, trusted: &[PublicKey]) -> bool {
        let fingerprint = self.fingerprint();
        self.signatures
            .iter()
            .any(|s| trusted.iter().any(|k| k.verifies(&fingerprint, s)))
    }
}
