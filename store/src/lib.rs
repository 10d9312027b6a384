//! The slapstore store: where derivation outputs live (`<root>/store/<hash>-<name>`), how they
//! are built, registered and checked.
//!
//! This crate knows nothing of buildout profiles: it receives [`Derivation`]s (a recipe name and
//! resolved options, with the inputs that identify them) and turns them into registered,
//! read-only outputs.

pub mod checksum;
pub mod fetch;
mod store_path;
pub mod unpack;

pub use store_path::{encode_base32, PartName, PartNameError, StorePath, HASH_BYTES};
