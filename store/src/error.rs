//! The store's errors: one enum, variants named after what went wrong, each carrying what the
//! CLI needs to explain it.

use std::path::{Path, PathBuf};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("`{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` is a device, fifo or socket, which a store path cannot hold")]
    SpecialFile { path: PathBuf },
    #[error("store database `{path}`: {source}")]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "store database `{path}` has schema version {found}; this slapstore knows up to {known}"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("part `{part}`: {source}")]
    Fetch {
        part: String,
        source: crate::fetch::FetchError,
    },
    #[error("part `{part}`: {source}")]
    Unpack {
        part: String,
        source: crate::unpack::UnpackError,
    },
    #[error("part `{part}`: option `{option}`: {message}")]
    BadOption {
        part: String,
        option: String,
        message: String,
    },
    #[error("part `{part}`: {message}")]
    Recipe { part: String, message: String },
    #[error("part `{part}` failed: {what} {status}; its log is `{log}`")]
    BuildFailed {
        part: String,
        what: String,
        status: String,
        log: PathBuf,
    },
    #[error(
        "part `{part}` failed: its {what} raised an exception; its log is `{log}`\n{traceback}"
    )]
    PythonFailed {
        part: String,
        what: String,
        traceback: String,
        log: PathBuf,
    },
    #[error("part `{part}` was not built: part `{dependency}` failed")]
    DependencyFailed { part: String, dependency: String },
    #[error(
        "the build sandbox cannot be set up: {0} (builds are sandboxed with Linux namespaces, \
         which need root; to build without the sandbox, pass `--no-sandbox`, set \
         `sandbox = false` in `<root>/etc/slapstore.toml` or `SLAPSTORE_SANDBOX=0`)"
    )]
    Sandbox(String),
    #[error("part `{part}` was not built: the build was interrupted")]
    Interrupted { part: String },
    #[error("`{0}` is not a valid path of this store")]
    NotValid(String),
    #[error("`{0}` is not in the store directory `{1}`")]
    NotInStore(String, PathBuf),
    #[error("`{}` is not a slapstore root (it has no `var/db.sqlite`); check `--root` or `SLAPSTORE_ROOT`", .0.display())]
    NoStore(PathBuf),
    /// A pool of users (`users.rs`) cannot serve.
    #[error("{0}")]
    Users(String),
    #[error("instance `{0}` exists already")]
    InstanceExists(String),
    #[error("no free partition for instance `{instance}`: the computer's {count} partitions (`partition-count` in `etc/slapstore.toml`) each host an instance")]
    NoFreePartition { instance: String, count: u32 },
    #[error(transparent)]
    StorePath(#[from] crate::store_path::StorePathError),
}

/// An I/O error about `path`.
pub fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}
