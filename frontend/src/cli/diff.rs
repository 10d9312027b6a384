//! `slapstore instance diff NAME GEN GEN`: what changed between two generations' closures, per
//! part name (as `nix store diff-closures` does): parts added, removed, or rebuilt with another
//! hash, each with the change in size, and the parameters that changed.

use std::collections::{BTreeMap, BTreeSet};

use slapstore_gc::graph::Graph;
use slapstore_store::db::GenerationRow;
use slapstore_store::Store;

use super::inspect::human_size;
use super::report;

/// One part name's store paths and their total size in a closure.
#[derive(Default)]
struct Side {
    paths: BTreeSet<String>,
    size: u64,
}

/// Part name → its paths in the closure of a generation (its output and its release).
fn closure(graph: &Graph, generation: &GenerationRow) -> Result<BTreeMap<String, Side>, i32> {
    let mut stack = Vec::new();
    for p in [&generation.path, &generation.release] {
        match graph.index.get(p.as_str()) {
            Some(&id) => stack.push(id),
            None => {
                return Err(report::store_error(&slapstore_store::StoreError::NotValid(
                    p.clone(),
                )))
            }
        }
    }
    let mut seen = vec![false; graph.len()];
    let mut out: BTreeMap<String, Side> = BTreeMap::new();
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut seen[n as usize], true) {
            continue;
        }
        let name = &graph.names[n as usize];
        let part = name.split_once('-').map_or(name.as_str(), |(_, p)| p);
        let side = out.entry(part.to_owned()).or_default();
        side.paths.insert(name.clone());
        side.size += graph.sizes[n as usize];
        stack.extend(&graph.references[n as usize]);
    }
    Ok(out)
}

/// `+1.2 KiB`, `-3 B`.
fn signed_size(delta: i128) -> String {
    let sign = if delta < 0 { '-' } else { '+' };
    format!("{sign}{}", human_size(delta.unsigned_abs() as u64))
}

/// Compares generations `a` and `b` (rows of one instance).
pub fn diff(
    store: &Store,
    a: &GenerationRow,
    b: &GenerationRow,
    json: bool,
) -> Result<String, i32> {
    let graph = Graph::load(store).map_err(|e| report::store_error(&e))?;
    let (before, after) = (closure(&graph, a)?, closure(&graph, b)?);
    let dir = store.store_dir();
    let full = |n: &String| dir.join(n).display().to_string();
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let empty = Side::default();
    let mut rows = Vec::new();
    let mut total: i128 = 0;
    for name in names {
        let (x, y) = (
            before.get(name).unwrap_or(&empty),
            after.get(name).unwrap_or(&empty),
        );
        if x.paths == y.paths {
            continue;
        }
        let change = match (x.paths.is_empty(), y.paths.is_empty()) {
            (true, _) => "added",
            (_, true) => "removed",
            _ => "changed",
        };
        let delta = y.size as i128 - x.size as i128;
        total += delta;
        rows.push((name, change, x, y, delta));
    }
    let params = |g: &GenerationRow| -> BTreeMap<String, String> {
        serde_json::from_str(&g.parameters).unwrap_or_default()
    };
    let (pa, pb) = (params(a), params(b));
    let keys: BTreeSet<&String> = pa.keys().chain(pb.keys()).collect();
    let changed_params: Vec<(&String, Option<&String>, Option<&String>)> = keys
        .into_iter()
        .map(|k| (k, pa.get(k), pb.get(k)))
        .filter(|(_, x, y)| x != y)
        .collect();
    if json {
        let parts: Vec<_> = rows
            .iter()
            .map(|(name, change, x, y, delta)| {
                serde_json::json!({
                    "name": name,
                    "change": change,
                    "before": x.paths.iter().map(full).collect::<Vec<_>>(),
                    "after": y.paths.iter().map(full).collect::<Vec<_>>(),
                    "size_delta": delta,
                })
            })
            .collect();
        let parameters: Vec<_> = changed_params
            .iter()
            .map(|(k, x, y)| serde_json::json!({"name": k, "before": x, "after": y}))
            .collect();
        let value = serde_json::json!({
            "instance": a.instance,
            "from": a.number,
            "to": b.number,
            "parts": parts,
            "parameters": parameters,
            "size_delta": total,
        });
        return Ok(format!("{value:#}\n"));
    }
    let mut table = super::table::new(&["part", "change", "size"]);
    super::table::right(&mut table, 2);
    for (name, change, _, _, delta) in &rows {
        table.add_row(vec![
            name.to_string(),
            change.to_string(),
            signed_size(*delta),
        ]);
    }
    let mut out = format!(
        "{} generation {} → {}: {} parts differ, {}\n",
        a.instance,
        a.number,
        b.number,
        rows.len(),
        signed_size(total)
    );
    if !rows.is_empty() {
        out.push_str(&super::table::render(&table));
    }
    for (k, x, y) in changed_params {
        let show = |v: Option<&String>| v.map_or("(unset)".to_owned(), |v| format!("`{v}`"));
        out.push_str(&format!("parameter {k}: {} → {}\n", show(x), show(y)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::signed_size;

    #[test]
    fn sizes_carry_their_sign() {
        assert_eq!(signed_size(0), "+0 B");
        assert_eq!(signed_size(-3), "-3 B");
        assert_eq!(signed_size(2048), "+2.0 KiB");
    }
}
