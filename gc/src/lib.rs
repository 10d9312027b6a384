//! Garbage collection of the slapstore store: delete every output that no generation, pin or
//! running process reaches (design §4, §9), and deduplicate identical files (`optimise`).
//!
//! Depends on `slapstore-store` only, never on the frontend. [`graph`] loads the reference graph
//! in one scan, [`roots`] gathers what keeps paths alive, [`collect`] marks and sweeps,
//! [`why`] explains why a path is alive, [`optimise`] hard-links identical files. The protocol
//! against races with builds is in `docs/gc.md`.

pub mod collect;
pub mod graph;
pub mod optimise;
pub mod roots;
pub mod why;

pub use collect::{collect, GcOptions, GcReport};
