//! The binary cache (`docs/cache.md`): a directory of static files that any HTTP server or
//! object store can serve — per store path a signed metadata file (`<hash>.info`) and a
//! compressed canonical archive (`archives/<blake3>.tar.zst`) — so that one machine's builds
//! serve others. [`push`] writes closures into one; [`Substituter`] fetches from configured
//! caches before a build, trusting only metadata signed by a trusted key and archives whose
//! content hash verifies.

pub mod archive;
pub mod info;
pub mod keys;
pub mod pull;
pub mod push;
pub mod substitute;

pub use info::CacheInfo;
pub use keys::{PublicKey, SecretKey};
pub use pull::pull;
pub use push::push;
pub use substitute::Substituter;

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("key `{0}` is not `name:base64` of 32 bytes")]
    BadKey(String),
    #[error(
        "cannot read the signing key `{path}`: {error} (make one with `slapstore key generate`)"
    )]
    NoSigningKey { path: String, error: String },
    #[error("`{url}`: {message}")]
    Fetch { url: String, message: String },
    #[error("`{url}`: the metadata is not valid: {message}")]
    BadInfo { url: String, message: String },
    #[error("`{url}`: no signature by a trusted key")]
    Untrusted { url: String },
    #[error("`{url}`: the archive's hash is {actual}, not the {expected} its metadata signs")]
    ArchiveMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error(
        "`{path}`: the unpacked contents hash to {actual}, not the {expected} the metadata signs"
    )]
    ContentMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("`{0}` is not a valid path of this store: push only what is built")]
    NotValid(String),
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    #[error("`{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> CacheError {
    CacheError::Io {
        path: path.display().to_string(),
        source,
    }
}
