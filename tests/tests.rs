//! End-to-end tests of the `slapstore` binary (one test binary, as ripgrep does).

mod common;

mod build;
mod cache;
mod cases;
mod cli;
mod eval;
mod examples;
mod faults;
mod gc;
mod instance;
mod releases;
mod safety;
mod services;
mod stress;
