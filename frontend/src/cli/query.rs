//! The queries Nix users reach for, on the store's reference graph loaded once
//! (`slapstore_gc::graph::Graph`, two scans of the database): `graph` (DOT, like
//! `nix-store -q --graph`), `why-depends A B`, `referrers`, `roots`, `why-alive`, and the closure
//! tree behind `path-info --tree` (`nix-store -q --tree`).

use std::collections::{BTreeSet, VecDeque};

use clap::Args;
use slapstore_gc::graph::Graph;
use slapstore_store::{Store, StoreError};

use super::{report, StoreArgs};

#[derive(Args, Debug)]
pub struct GraphArgs {
    /// Profiles (their derivations, evaluated, nothing built) or store paths (their closures).
    #[arg(required = true, value_name = "PROFILE|PATH")]
    targets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct WhyDependsArgs {
    /// The store path that depends.
    from: String,
    /// The store path it may depend on.
    to: String,
    /// Print `{"depends", "chain"}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ReferrersArgs {
    /// Store paths (full paths, or `<hash>-<name>`).
    #[arg(required = true)]
    paths: Vec<String>,
    /// Every path that reaches them, not only those that refer to them directly.
    #[arg(long)]
    closure: bool,
    /// Print `{"paths", "referrers"}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct RootsArgs {
    /// Print a list of `{"root", "path", "valid"}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct WhyAliveArgs {
    /// Store paths (full paths, or `<hash>-<name>`; a shell glob may name several).
    #[arg(required = true)]
    paths: Vec<String>,
    /// Print a list of `{"path", "alive", "root", "chain"}`.
    #[arg(long)]
    json: bool,
}

/// Opens an existing store: a query on a root that does not exist creates nothing.
fn open(args: &StoreArgs) -> Result<Store, i32> {
    Store::open_existing(&args.root()).map_err(|e| report::store_error(&e))
}

/// The store and its reference graph.
fn load(args: &StoreArgs) -> Result<(Store, Graph), i32> {
    let store = open(args)?;
    let graph = Graph::load(&store).map_err(|e| report::store_error(&e))?;
    Ok((store, graph))
}

/// The graph index of a store path given on the command line.
fn index(store: &Store, graph: &Graph, text: &str) -> Result<u32, i32> {
    let path = store
        .parse_path(text)
        .map_err(|e| report::store_error(&e))?;
    graph
        .index
        .get(&path.to_string())
        .copied()
        .ok_or_else(|| report::store_error(&StoreError::NotValid(text.to_owned())))
}

fn indices(store: &Store, graph: &Graph, texts: &[String]) -> Result<Vec<u32>, i32> {
    texts.iter().map(|t| index(store, graph, t)).collect()
}

/// A store path's full path, for printing.
fn full(store: &Store, name: &str) -> String {
    store.store_dir().join(name).display().to_string()
}

/// Children of a node, sorted by name, for stable output.
fn sorted(graph: &Graph, ids: &[u32]) -> Vec<u32> {
    let mut out = ids.to_vec();
    out.sort_by(|a, b| graph.names[*a as usize].cmp(&graph.names[*b as usize]));
    out
}

/// The closure tree of `roots`, as `nix-store -q --tree` draws it: a path's references below
/// it, each path expanded once (later occurrences end in ` [...]`).
pub fn tree(graph: &Graph, roots: &[u32], full: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut done = vec![false; graph.len()];
    // depth-first with an explicit stack: (node, prefix of its children, is it the last child)
    for &root in roots {
        let mut stack: Vec<(u32, String, Option<bool>)> = vec![(root, String::new(), None)];
        while let Some((node, prefix, last)) = stack.pop() {
            let name = full(&graph.names[node as usize]);
            let (line_prefix, child_prefix) = match last {
                None => (String::new(), String::new()),
                Some(true) => (format!("{prefix}└───"), format!("{prefix}    ")),
                Some(false) => (format!("{prefix}├───"), format!("{prefix}│   ")),
            };
            let children = sorted(graph, &graph.references[node as usize]);
            if done[node as usize] {
                let elided = if children.is_empty() { "" } else { " [...]" };
                out.push_str(&format!("{line_prefix}{name}{elided}\n"));
                continue;
            }
            done[node as usize] = true;
            out.push_str(&format!("{line_prefix}{name}\n"));
            let count = children.len();
            for (i, child) in children.into_iter().enumerate().rev() {
                stack.push((child, child_prefix.clone(), Some(i + 1 == count)));
            }
        }
    }
    out
}

/// Every node reachable from `starts` along `edges` (the starts included).
fn reach(edges: &[Vec<u32>], starts: &[u32]) -> BTreeSet<u32> {
    let mut seen = BTreeSet::new();
    let mut stack = starts.to_vec();
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(&edges[n as usize]);
        }
    }
    seen
}

/// The shortest chain of references from `from` to `to`, both included.
fn chain(graph: &Graph, from: u32, to: u32) -> Option<Vec<u32>> {
    let mut parent: Vec<Option<u32>> = vec![None; graph.len()];
    let mut queue = VecDeque::from([from]);
    parent[from as usize] = Some(from);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut out = vec![to];
            let mut p = to;
            while p != from {
                p = parent[p as usize]?;
                out.push(p);
            }
            out.reverse();
            return Some(out);
        }
        for &next in &sorted(graph, &graph.references[n as usize]) {
            if parent[next as usize].is_none() {
                parent[next as usize] = Some(n);
                queue.push_back(next);
            }
        }
    }
    None
}

/// A DOT identifier: quoted, with `"` and `\` escaped.
fn dot_id(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A DOT graph: nodes labelled with their part names, edges from a path to what it refers to.
fn dot(nodes: &[(String, String)], edges: &[(String, String)]) -> String {
    let mut out = String::from("digraph slapstore {\n  node [shape = box];\n");
    for (id, label) in nodes {
        out.push_str(&format!("  {} [label = {}];\n", dot_id(id), dot_id(label)));
    }
    for (a, b) in edges {
        out.push_str(&format!("  {} -> {};\n", dot_id(a), dot_id(b)));
    }
    out.push_str("}\n");
    out
}

/// The part name of a store path's base name (`<hash>-<name>`).
fn part_name(base: &str) -> &str {
    base.split_once('-').map_or(base, |(_, name)| name)
}

/// Whether a command-line target names a store path rather than a profile.
fn is_store_path(store_dir: &std::path::Path, text: &str) -> bool {
    std::path::Path::new(text).starts_with(store_dir)
        || (!text.contains('/') && slapstore_store::StorePath::parse(text).is_ok())
}

pub fn graph(store_args: &StoreArgs, args: GraphArgs) -> i32 {
    let store_dir = store_args.root().join("store");
    let mut nodes: Vec<(String, String)> = Vec::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    let (paths, profiles): (Vec<&String>, Vec<&String>) = args
        .targets
        .iter()
        .partition(|t| is_store_path(&store_dir, t));
    for profile in profiles {
        let spec = super::eval::ProfileArgs::from_profile(profile);
        let drvs = match super::build::derivations(&store_dir.to_string_lossy(), &spec, true) {
            Ok(d) => d,
            Err(code) => return code,
        };
        for d in &drvs {
            nodes.push((d.path.to_string(), d.name().to_owned()));
            for other in &drvs {
                if other.path != d.path && d.inputs.references.contains(&other.path.to_string()) {
                    edges.push((d.path.to_string(), other.path.to_string()));
                }
            }
        }
    }
    if !paths.is_empty() {
        let (store, graph) = match load(store_args) {
            Ok(l) => l,
            Err(code) => return code,
        };
        let starts = match paths
            .iter()
            .map(|t| index(&store, &graph, t))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(s) => s,
            Err(code) => return code,
        };
        for n in reach(&graph.references, &starts) {
            let name = &graph.names[n as usize];
            nodes.push((name.clone(), part_name(name).to_owned()));
            for &r in &sorted(&graph, &graph.references[n as usize]) {
                edges.push((name.clone(), graph.names[r as usize].clone()));
            }
        }
    }
    let mut seen = BTreeSet::new();
    nodes.retain(|(id, _)| seen.insert(id.clone()));
    let mut seen = BTreeSet::new();
    edges.retain(|e| seen.insert(e.clone()));
    super::print(&dot(&nodes, &edges))
}

pub fn why_depends(store_args: &StoreArgs, args: WhyDependsArgs) -> i32 {
    let (store, graph) = match load(store_args) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (from, to) = match (
        index(&store, &graph, &args.from),
        index(&store, &graph, &args.to),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let found = chain(&graph, from, to);
    let names: Vec<String> = found
        .iter()
        .flatten()
        .map(|&n| full(&store, &graph.names[n as usize]))
        .collect();
    let out = if args.json {
        let value = serde_json::json!({"depends": found.is_some(), "chain": names});
        format!("{value:#}\n")
    } else if names.is_empty() {
        format!(
            "{} does not depend on {}\n",
            full(&store, &graph.names[from as usize]),
            full(&store, &graph.names[to as usize])
        )
    } else {
        let mut out = String::new();
        for (i, name) in names.iter().enumerate() {
            let indent = if i == 0 {
                String::new()
            } else {
                format!("{}└───", "    ".repeat(i - 1))
            };
            out.push_str(&format!("{indent}{name}\n"));
        }
        out
    };
    super::print(&out)
}

pub fn referrers(store_args: &StoreArgs, args: ReferrersArgs) -> i32 {
    let (store, graph) = match load(store_args) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let targets = match indices(&store, &graph, &args.paths) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let found: BTreeSet<u32> = if args.closure {
        reach(&graph.referrers, &targets)
            .into_iter()
            .filter(|n| !targets.contains(n))
            .collect()
    } else {
        targets
            .iter()
            .flat_map(|&t| graph.referrers[t as usize].iter().copied())
            .filter(|n| !targets.contains(n))
            .collect()
    };
    let mut names: Vec<String> = found
        .iter()
        .map(|&n| full(&store, &graph.names[n as usize]))
        .collect();
    names.sort();
    let out = if args.json {
        let paths: Vec<String> = targets
            .iter()
            .map(|&n| full(&store, &graph.names[n as usize]))
            .collect();
        format!(
            "{:#}\n",
            serde_json::json!({"paths": paths, "referrers": names})
        )
    } else {
        names.iter().map(|n| format!("{n}\n")).collect()
    };
    super::print(&out)
}

pub fn roots(store_args: &StoreArgs, args: RootsArgs) -> i32 {
    let (store, graph) = match load(store_args) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let roots = match slapstore_gc::roots::gather(&store) {
        Ok(r) => r,
        Err(e) => return report::store_error(&e),
    };
    let rows: Vec<(String, String, bool)> = roots
        .iter()
        .map(|(path, root)| {
            (
                root.to_string(),
                full(&store, path),
                graph.index.contains_key(path),
            )
        })
        .collect();
    let out = if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(root, path, valid)| serde_json::json!({"root": root, "path": path, "valid": valid}))
            .collect();
        format!("{:#}\n", serde_json::Value::Array(list))
    } else {
        let mut table = super::table::new(&["root", "path"]);
        for (root, path, valid) in &rows {
            let path = if *valid {
                path.clone()
            } else {
                format!("{path} (missing)")
            };
            table.add_row(vec![root.clone(), path]);
        }
        super::table::render(&table)
    };
    super::print(&out)
}

pub fn why_alive(store_args: &StoreArgs, args: WhyAliveArgs) -> i32 {
    let store = match open(store_args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut paths = Vec::new();
    for text in &args.paths {
        match store.parse_path(text) {
            Ok(p) => paths.push(p),
            Err(e) => return report::store_error(&e),
        }
    }
    let mut text = String::new();
    let mut list = Vec::new();
    for path in &paths {
        let name = path.to_string();
        let answer = match slapstore_gc::why::why(&store, &name) {
            Ok(a) => a,
            Err(StoreError::NotValid(_)) => {
                return report::store_error(&StoreError::NotValid(full(&store, &name)))
            }
            Err(e) => return report::store_error(&e),
        };
        match &answer {
            Some((root, chain)) => {
                text.push_str(&format!("{} is alive: {root} keeps\n", full(&store, &name)));
                for (i, p) in chain.iter().enumerate() {
                    text.push_str(&format!("{}{}\n", "  ".repeat(i + 1), full(&store, p)));
                }
            }
            None => text.push_str(&format!(
                "{} is not reachable from any root: the next gc deletes it\n",
                full(&store, &name)
            )),
        }
        list.push(serde_json::json!({
            "path": full(&store, &name),
            "alive": answer.is_some(),
            "root": answer.as_ref().map(|(root, _)| root.to_string()),
            "chain": answer.as_ref().map_or(Vec::new(), |(_, chain)| {
                chain.iter().map(|p| full(&store, p)).collect()
            }),
        }));
    }
    if args.json {
        text = format!("{:#}\n", serde_json::Value::Array(list));
    }
    super::print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a → b → c, a → c, d alone.
    fn sample() -> Graph {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let references = vec![vec![2, 1], vec![2], vec![], vec![]];
        let mut referrers = vec![Vec::new(); 4];
        for (i, refs) in references.iter().enumerate() {
            for &r in refs {
                referrers[r as usize].push(i as u32);
            }
        }
        Graph {
            index: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i as u32))
                .collect(),
            sizes: vec![0; 4],
            names,
            references,
            referrers,
        }
    }

    #[test]
    fn tree_expands_each_path_once() {
        let g = sample();
        let text = tree(&g, &[0], &|n| n.to_owned());
        assert_eq!(text, "a\n├───b\n│   └───c\n└───c\n");
        let text = tree(&g, &[0, 1], &|n| n.to_owned());
        assert!(text.ends_with("b [...]\n"), "{text}");
    }

    #[test]
    fn chains_are_shortest_and_absent_when_unreachable() {
        let g = sample();
        assert_eq!(chain(&g, 0, 2), Some(vec![0, 2]));
        assert_eq!(chain(&g, 1, 2), Some(vec![1, 2]));
        assert_eq!(chain(&g, 2, 0), None);
        assert_eq!(chain(&g, 0, 3), None);
        assert_eq!(chain(&g, 3, 3), Some(vec![3]));
    }

    #[test]
    fn dot_quotes_identifiers() {
        assert_eq!(dot_id(r#"a"b\c"#), r#""a\"b\\c""#);
        let text = dot(&[("x-y".into(), "y".into())], &[("x-y".into(), "z".into())]);
        assert!(text.contains("\"x-y\" [label = \"y\"];"), "{text}");
        assert!(text.contains("\"x-y\" -> \"z\";"), "{text}");
    }
}
