//! End-to-end tests of the `slapstore` binary (one test binary, as ripgrep does).

mod common;

mod build;
mod cache;
mod cases;
mod checks;
mod cli;
mod cookbook;
mod deploy;
mod dryrun;
mod eggs;
mod eval;
mod evalcache;
mod examples;
mod faults;
mod gc;
mod gitclone;
mod installs;
mod instance;
mod isolation;
mod jinja2;
mod lock;
mod master;
mod monitor;
mod node;
mod passwords;
mod pyhost;
mod releases;
mod safety;
mod sandbox;
mod semantics;
mod services;
mod stress;
mod templates;
