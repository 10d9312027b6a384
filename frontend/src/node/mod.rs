//! `slapstore node`: this root as a node of a SlapOS master, in place of slapgrid.

pub mod marshal;
pub mod pass;
pub mod requests;
pub mod slap;
pub mod state;
