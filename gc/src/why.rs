//! Why a path is alive: the chain of references from a root to it (what Nix users ask for with
//! `nix-store --query --roots` and `nix why-depends`).

use slapstore_store::{roots, Result, Store};

use crate::graph::Graph;
use crate::roots::{gather, Root};

/// The chain from a root to `name`: the root, then store paths from the root's path to `name`.
/// `None` if no root reaches it (the next collection deletes it).
pub fn why(store: &Store, name: &str) -> Result<Option<(Root, Vec<String>)>> {
    let _gc = roots::gc_lock(store)?;
    // the roots first, as a collection reads them (`collect.rs`)
    let roots = gather(store)?;
    let graph = Graph::load(store)?;
    let Some(&target) = graph.index.get(name) else {
        return Err(slapstore_store::StoreError::NotValid(name.to_owned()));
    };
    let root_ids: Vec<u32> = roots
        .iter()
        .filter_map(|(p, _)| graph.index.get(p).copied())
        .collect();
    let from = graph.mark(root_ids);
    if from[target as usize].is_none() {
        return Ok(None);
    }
    let mut chain = vec![target];
    let mut p = target;
    while let Some(prev) = from[p as usize].filter(|&f| f != u32::MAX) {
        chain.push(prev);
        p = prev;
    }
    chain.reverse();
    let first = graph.names[chain[0] as usize].clone();
    let root = roots
        .into_iter()
        .find(|(path, _)| *path == first)
        .map(|(_, r)| r)
        .unwrap_or(Root::Pin { name: "?".into() });
    Ok(Some((
        root,
        chain
            .into_iter()
            .map(|i| graph.names[i as usize].clone())
            .collect(),
    )))
}
