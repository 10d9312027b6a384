//! The store's reference graph in memory: every valid path and reference, loaded in two scans
//! of the database (never a query per path: that is what makes Nix's collector take hours on
//! large stores, NixOS/nix#9581). Paths are indices; edges go from referrer to reference.

use std::collections::HashMap;

use slapstore_store::{Result, Store};

/// The graph of valid paths.
pub struct Graph {
    pub names: Vec<String>,
    pub sizes: Vec<u64>,
    /// `references[i]`: the paths `i` refers to (itself excluded).
    pub references: Vec<Vec<u32>>,
    /// `referrers[i]`: the paths that refer to `i` (itself excluded).
    pub referrers: Vec<Vec<u32>>,
    pub index: HashMap<String, u32>,
}

impl Graph {
    pub fn load(store: &Store) -> Result<Graph> {
        let (paths, refs) = store.db().graph()?;
        let mut by_id: HashMap<i64, u32> = HashMap::with_capacity(paths.len());
        let mut names = Vec::with_capacity(paths.len());
        let mut sizes = Vec::with_capacity(paths.len());
        let mut index = HashMap::with_capacity(paths.len());
        for (i, (id, name, size)) in paths.into_iter().enumerate() {
            by_id.insert(id, i as u32);
            index.insert(name.clone(), i as u32);
            names.push(name);
            sizes.push(size);
        }
        let mut references = vec![Vec::new(); names.len()];
        let mut referrers = vec![Vec::new(); names.len()];
        for (from, to) in refs {
            let (Some(&a), Some(&b)) = (by_id.get(&from), by_id.get(&to)) else {
                continue;
            };
            if a != b {
                references[a as usize].push(b);
                referrers[b as usize].push(a);
            }
        }
        Ok(Graph {
            names,
            sizes,
            references,
            referrers,
            index,
        })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Marks everything reachable from `roots`; returns, for each path, the path it was reached
    /// from (`u32::MAX` for a root, `None` for a dead path).
    pub fn mark(&self, roots: impl IntoIterator<Item = u32>) -> Vec<Option<u32>> {
        let mut from = vec![None; self.len()];
        let mut stack = Vec::new();
        for r in roots {
            if from[r as usize].is_none() {
                from[r as usize] = Some(u32::MAX);
                stack.push(r);
            }
        }
        while let Some(p) = stack.pop() {
            for &q in &self.references[p as usize] {
                if from[q as usize].is_none() {
                    from[q as usize] = Some(p);
                    stack.push(q);
                }
            }
        }
        from
    }
}
