//! The slapstore store: where derivation outputs live (`<root>/store/<hash>-<name>`), how they
//! are built, registered and checked.
//!
//! This crate knows nothing of buildout profiles: it receives [`Derivation`]s (a recipe name and
//! resolved options, with the inputs that identify them) and turns them into registered,
//! read-only outputs. Modules: [`derivation`] (identity and hashing), [`store`] (the root on
//! disk, locks), [`db`] (SQLite metadata; [`master`], the local master's model), [`build`] (scheduling and realising), [`interrupt`] (stopping builds),
//! [`recipes`] (the builders), [`fetch`]/[`checksum`] (sources and the download cache),
//! [`unpack`] (archives), [`output`] (canonical form, content hash), [`references`] (scanning),
//! [`verify`] (checking the store against the database), [`users`] (pools of unprivileged
//! users for instances and builds).

pub mod add;
pub mod build;
pub mod cache;
pub mod checksum;
pub mod db;
pub use db::master;
pub mod derivation;
pub mod error;
pub mod fetch;
pub mod interrupt;
pub mod output;
pub mod partition;
pub mod pyrepr;
pub mod recipes;
pub mod references;
pub mod roots;
pub mod sandbox;
pub mod store;
mod store_path;
pub mod unpack;
pub mod users;
pub mod verify;

pub use derivation::{Derivation, Recipe};
pub use error::{Result, StoreError};
pub use store::Store;
pub use store_path::{
    decode_base32, encode_base32, PartName, PartNameError, StorePath, StorePathError, HASH_BYTES,
};
