//! Commands that inspect the store: `path-info` (`--tree` drawn by `query.rs`), `verify` and
//! `log`.

use std::collections::{BTreeMap, BTreeSet};

use clap::Args;
use slapstore_store::{Store, StorePath};

use super::{report, StoreArgs};

#[derive(Args, Debug)]
pub struct PathInfoArgs {
    /// Store paths (full paths, or `<hash>-<name>`).
    #[arg(required = true)]
    paths: Vec<String>,
    /// Show the whole runtime closure, with its total size.
    #[arg(long)]
    closure: bool,
    /// Draw the closure as a tree of references (each path expanded once), like
    /// `nix-store -q --tree`.
    #[arg(long, conflicts_with_all = ["closure", "json"])]
    tree: bool,
    /// Print `{"paths": [...], "closure_size"}` (`docs/cli.md`).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Re-hash every path's contents (in parallel) against its recorded hash.
    #[arg(long)]
    check_contents: bool,
    /// Rebuild the damaged paths whose derivation is known.
    #[arg(long)]
    repair: bool,
    /// Print `{"checked", "contents_checked", "problems", "invalid"}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    /// A part name (its most recent log) or a store path.
    target: String,
}

/// Opens an existing store: inspecting a root that does not exist creates nothing.
fn open(args: &StoreArgs) -> Result<Store, i32> {
    Store::open_existing(&args.root()).map_err(|e| report::store_error(&e))
}

pub fn path_info(store_args: &StoreArgs, args: PathInfoArgs) -> i32 {
    let store = match open(store_args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut roots = Vec::new();
    for text in &args.paths {
        match store.parse_path(text) {
            Ok(p) => roots.push(p),
            Err(e) => return report::store_error(&e),
        }
    }
    if args.tree {
        return tree(&store, &roots);
    }
    let db = store.db();
    let store_dir = store.store_dir();
    let mut infos = Vec::new();
    let mut total = 0u64;
    let roots: Vec<String> = roots.iter().map(StorePath::to_string).collect();
    if args.closure {
        // the whole graph in two scans, the rows in a third: no query per path
        let gathered = (|| -> Result<_, slapstore_store::StoreError> {
            let (paths, refs) = db.graph()?;
            let by_id: std::collections::HashMap<i64, &str> = paths
                .iter()
                .map(|(id, name, _)| (*id, name.as_str()))
                .collect();
            let mut adjacency: std::collections::HashMap<&str, Vec<String>> = Default::default();
            for (a, b) in &refs {
                if let (Some(a), Some(b)) = (by_id.get(a), by_id.get(b)) {
                    adjacency.entry(a).or_default().push(b.to_string());
                }
            }
            let mut seen = BTreeSet::new();
            let mut stack = roots.clone();
            while let Some(n) = stack.pop() {
                if seen.insert(n.clone()) {
                    if let Some(next) = adjacency.get(n.as_str()) {
                        stack.extend(next.iter().cloned());
                    }
                }
            }
            let rows: std::collections::HashMap<String, slapstore_store::db::PathRow> = db
                .all_paths()?
                .into_iter()
                .filter(|r| seen.contains(&r.name))
                .map(|r| (r.name.clone(), r))
                .collect();
            let mut out = Vec::new();
            for n in seen {
                let row = rows
                    .get(&n)
                    .cloned()
                    .ok_or_else(|| slapstore_store::StoreError::NotValid(n.clone()))?;
                let mut refs = adjacency.get(n.as_str()).cloned().unwrap_or_default();
                refs.sort();
                out.push((row, refs, None));
            }
            Ok(out)
        })();
        match gathered {
            Ok(list) => infos = list,
            Err(e) => return report::store_error(&e),
        }
        total = infos.iter().map(|(r, _, _)| r.size).sum();
    } else {
        for n in &roots {
            let row = match db.path_info(n) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return report::store_error(&slapstore_store::StoreError::NotValid(n.clone()))
                }
                Err(e) => return report::store_error(&e),
            };
            let refs = match db.references(n) {
                Ok(r) => r,
                Err(e) => return report::store_error(&e),
            };
            let deriver =
                db.derivation(n).ok().flatten().and_then(|json| {
                    serde_json::from_str::<slapstore_store::Derivation>(&json).ok()
                });
            total += row.size;
            infos.push((row, refs, deriver));
        }
    }
    drop(db);
    let full = |n: &str| store_dir.join(n).display().to_string();
    let deriver_of = |row: &slapstore_store::db::PathRow| {
        row.recipe
            .as_ref()
            .map(|recipe| (row.name.get(33..).unwrap_or("").to_owned(), recipe.clone()))
    };
    let out = if args.json {
        let list: Vec<serde_json::Value> = infos
            .iter()
            .map(|(row, refs, deriver)| {
                serde_json::json!({
                    "path": full(&row.name),
                    "content_hash": row.content_hash,
                    "size": row.size,
                    "registered": row.registered,
                    "build_ms": row.build_ms,
                    "references": refs.iter().map(|r| full(r)).collect::<Vec<_>>(),
                    "deriver": match deriver {
                        Some(d) => Some(serde_json::json!({
                            "part": d.name(),
                            "recipe": d.recipe().name(),
                            "inputs": d.inputs,
                        })),
                        None => deriver_of(row)
                            .map(|(part, recipe)| serde_json::json!({"part": part, "recipe": recipe})),
                    },
                })
            })
            .collect();
        let mut value = serde_json::json!({ "paths": list });
        if args.closure {
            value["closure_size"] = total.into();
        }
        format!("{value:#}\n")
    } else {
        let mut out = String::new();
        for (row, refs, deriver) in &infos {
            out.push_str(&format!("{}\n", full(&row.name)));
            out.push_str(&format!("  content hash  {}\n", row.content_hash));
            out.push_str(&format!("  size          {}\n", human_size(row.size)));
            let described = match deriver {
                Some(d) => Some((d.name().to_owned(), d.recipe().name().to_owned())),
                None => deriver_of(row),
            };
            if let Some((part, recipe)) = described {
                out.push_str(&format!(
                    "  deriver       part `{part}`, recipe `{recipe}`\n"
                ));
            }
            if let Some(ms) = row.build_ms {
                out.push_str(&format!("  build time    {}\n", human_duration(ms)));
            }
            if refs.is_empty() {
                out.push_str("  references    (none)\n");
            }
            for (i, r) in refs.iter().enumerate() {
                let label = if i == 0 { "references" } else { "" };
                out.push_str(&format!("  {label:12}  {}\n", full(r)));
            }
        }
        if args.closure {
            out.push_str(&format!(
                "closure: {} paths, {}\n",
                infos.len(),
                human_size(total)
            ));
        }
        out
    };
    super::print(&out)
}

/// The closure tree of `roots`.
fn tree(store: &Store, roots: &[StorePath]) -> i32 {
    let graph = match slapstore_gc::graph::Graph::load(store) {
        Ok(g) => g,
        Err(e) => return report::store_error(&e),
    };
    let mut ids = Vec::new();
    for p in roots {
        match graph.index.get(&p.to_string()) {
            Some(&id) => ids.push(id),
            None => {
                return report::store_error(&slapstore_store::StoreError::NotValid(p.to_string()))
            }
        }
    }
    let dir = store.store_dir();
    let full = |n: &str| dir.join(n).display().to_string();
    super::print(&super::query::tree(&graph, &ids, &full))
}

/// `1.2 MiB` (binary units).
pub fn human_size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// `1s 250ms`, to the millisecond.
fn human_duration(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

pub fn verify(store_args: &StoreArgs, args: VerifyArgs) -> i32 {
    let store = match open(store_args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let report = match slapstore_store::verify::verify(&store, args.check_contents) {
        Ok(r) => r,
        Err(e) => return report::store_error(&e),
    };
    let out = if args.json {
        let value = serde_json::json!({
            "checked": report.checked,
            "contents_checked": args.check_contents,
            "problems": report.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "invalid": report.invalid,
        });
        format!("{value:#}\n")
    } else {
        let mut out = String::new();
        for p in &report.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
        for i in &report.invalid {
            out.push_str(&format!(
                "not registered (an interrupted or running build): {i}\n"
            ));
        }
        out.push_str(&format!(
            "{} paths checked{}, {} problems\n",
            report.checked,
            if args.check_contents {
                " with their contents"
            } else {
                ""
            },
            report.problems.len()
        ));
        out
    };
    let code = super::print(&out);
    if report.problems.is_empty() {
        return code;
    }
    if !args.repair {
        return report::FAILED;
    }
    repair(&store, &report.problems)
}

/// Rebuilds the store paths named by `problems` from their recorded derivations.
fn repair(store: &Store, problems: &[slapstore_store::verify::Problem]) -> i32 {
    let store_dir = store.store_dir();
    let mut names: Vec<String> = problems
        .iter()
        .filter_map(|p| p.store_path(&store_dir))
        .collect();
    names.sort();
    names.dedup();
    let fetcher = slapstore_store::fetch::Fetcher::new(store.cache_dir());
    struct Quiet;
    impl slapstore_store::build::Observer for Quiet {
        fn event(&self, _: slapstore_store::build::Event) {}
    }
    let mut failed = problems.iter().any(|p| p.store_path(&store_dir).is_none());
    for name in names {
        let drv = store
            .db()
            .derivation(&name)
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str::<slapstore_store::Derivation>(&json).ok());
        let Some(drv) = drv else {
            report::error_line(
                &format!("cannot repair `{name}`: no derivation recorded"),
                Some("paths added with `slapstore store add` cannot be rebuilt"),
            );
            failed = true;
            continue;
        };
        match slapstore_store::build::repair(store, &drv, &fetcher, &Quiet) {
            Ok(()) => println!("repaired {}", store_dir.join(&name).display()),
            Err(e) => {
                report::error_line(
                    &format!("cannot repair `{name}`: {e}"),
                    report::hint(&e).as_deref(),
                );
                failed = true;
            }
        }
    }
    if failed {
        report::FAILED
    } else {
        0
    }
}

pub fn log(store_args: &StoreArgs, args: LogArgs) -> i32 {
    let root = store_args.root();
    let store_dir = root.join("store");
    let log_dir = root.join("var/log");
    let base = std::path::Path::new(&args.target)
        .strip_prefix(&store_dir)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| args.target.clone());
    let file = if StorePath::parse(base.trim_end_matches('/')).is_ok() {
        log_dir.join(format!("{}.log", base.trim_end_matches('/')))
    } else {
        // a part name: its most recent log
        let suffix = format!("-{}.log", args.target);
        let mut newest: BTreeMap<std::time::SystemTime, std::path::PathBuf> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&log_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(&suffix) && StorePath::parse(&name[..name.len() - 4]).is_ok() {
                    if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                        newest.insert(t, e.path());
                    }
                }
            }
        }
        match newest.into_values().next_back() {
            Some(p) => p,
            None => {
                return report::not_found(
                    &format!(
                        "no build log of part or path `{}` in `{}`",
                        args.target,
                        log_dir.display()
                    ),
                    Some("`slapstore plan PROFILE` names the parts"),
                )
            }
        }
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => super::print(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report::not_found(&format!("no build log `{}`", file.display()), None)
        }
        Err(e) => report::failure(&format!("cannot read the log `{}`: {e}", file.display())),
    }
}
