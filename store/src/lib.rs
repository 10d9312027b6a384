//! The slapstore store: where derivation outputs live (`<root>/store/<hash>-<name>`).
//!
//! This crate knows nothing of buildout profiles. For now it holds the validated names of store
//! paths (design §4): building, registration in SQLite, locks and partitions arrive with the
//! store issues.

mod store_path;

pub use store_path::{encode_base32, PartName, PartNameError, StorePath, HASH_BYTES};
