//! The slapos.cookbook recipes that instance profiles use most, done natively (no Python is
//! started per recipe): one file per recipe or family, each reproducing the options the real
//! recipe reads and sets and the files it writes in the partition. Hooked into the instance
//! recipes' lookup (`recipes/instance.rs`).

mod random;
pub mod state;

use super::Part;
use crate::error::Result;

/// The cookbook recipes slapstore runs natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Password,
    Mac,
    RandomInteger,
    RandomTime,
    FreePort,
}

/// The names under which [`lookup`] finds them, for error messages.
pub const SUPPORTED: &str = "`slapos.cookbook:generate.password`, `generate.mac`, \
    `random.integer`, `random.time`, `free_port`";

/// The cookbook recipe of egg `egg` (normalised) and entry point `entry`.
pub fn lookup(egg: &str, entry: &str) -> Option<Kind> {
    if egg != "slapos-cookbook" {
        return None;
    }
    Some(match entry {
        "generate.password" => Kind::Password,
        "generate.mac" => Kind::Mac,
        "random.integer" => Kind::RandomInteger,
        "random.time" => Kind::RandomTime,
        "free_port" => Kind::FreePort,
        _ => return None,
    })
}

/// Initialises a part of a cookbook recipe.
pub fn init(part: &mut Part, kind: Kind) -> Result<()> {
    match kind {
        Kind::Password => random::password(part),
        Kind::Mac => random::mac(part),
        Kind::RandomInteger => random::random_integer(part),
        Kind::RandomTime => random::random_time(part),
        Kind::FreePort => random::free_port(part),
    }
}
