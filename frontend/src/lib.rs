//! slapstore's profile frontend: reads buildout profiles with zc.buildout's exact semantics
//! (as SlapOS's fork of buildout implements them) and hosts the `slapstore` command line.
//!
//! Data flow: [`load`] reads the files ([`extends`], [`parser`], conditions in [`condition`])
//! and merges them ([`merge`]) into a raw configuration ([`config`]); [`resolver`] evaluates sections
//! lazily, running recipe initialisations ([`recipes`]) and profile Python code ([`python`]);
//! [`evaluate`] drives it all for `slapstore eval`; [`evalcache`] keeps `plan`'s and `build`'s
//! derivations while nothing they came from changes; [`cli`] prints.

pub mod cli;
pub mod condition;
pub mod config;
pub mod derive;
pub mod error;
pub mod evalcache;
pub mod evaluate;
pub mod extends;
pub mod fingerprint;
pub mod instance;
pub mod load;
pub mod lock;
pub mod merge;
pub mod node;
pub mod parameters;
pub mod parser;
pub mod planned;
pub mod promises;
pub mod pystr;
pub mod python;
pub mod recipes;
pub mod resolver;
pub mod services;
pub mod software_paths;
pub mod source;
