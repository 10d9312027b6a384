//! `slapstore gc`, `pin`, `unpin` and `optimise` (`why-alive` is with the queries, `query.rs`).

use clap::Args;
use slapstore_store::Store;

use super::inspect::human_size;
use super::{report, StoreArgs};

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Say what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Stop once this much is freed (`500M`, `2G`, bytes without a unit).
    #[arg(long, value_name = "SIZE")]
    max_freed: Option<String>,
    /// Print `{"deleted": [paths], "freed_bytes": N}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct PinArgs {
    /// A store path to keep.
    path: String,
    /// The pin's name (default: the path's base name).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args, Debug)]
pub struct UnpinArgs {
    /// The pin's name.
    name: String,
}

#[derive(Args, Debug)]
pub struct OptimiseArgs {
    /// Leave files smaller than this many bytes alone.
    #[arg(long, default_value_t = 1024)]
    min_size: u64,
    /// Print `{"paths", "files", "linked", "bytes_saved", "reflinks"}`.
    #[arg(long)]
    json: bool,
}

/// Opens an existing store: none of these commands makes a store where there is none.
fn open(args: &StoreArgs) -> Result<Store, i32> {
    Store::open_existing(&args.root()).map_err(|e| report::store_error(&e))
}

/// `500M` → bytes (K, M, G, T: powers of 1024).
fn size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = number.parse().ok()?;
    let factor: u64 = match unit
        .trim_end_matches(['B', 'b', 'i'])
        .to_ascii_uppercase()
        .as_str()
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(factor)
}

pub fn gc(store_args: &StoreArgs, args: GcArgs) -> i32 {
    let store = match open(store_args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let max_freed = match args.max_freed.as_deref().map(size) {
        Some(None) => return report::usage("`--max-freed` takes a size like 500M or 2G"),
        Some(Some(n)) => Some(n),
        None => None,
    };
    let options = slapstore_gc::GcOptions {
        dry_run: args.dry_run,
        max_freed,
        batch: None,
    };
    let quiet = store_args.quiet || args.json;
    let progress = |done: usize, total: usize| {
        if !quiet {
            eprintln!("deleted {done} of {total} paths");
        }
    };
    let result = match slapstore_gc::collect(&store, &options, &progress) {
        Ok(r) => r,
        Err(e) => return report::store_error(&e),
    };
    for k in &result.kept {
        // the guard of `collect.rs`: a writer used a path without rooting it first
        eprintln!(
            "warning: kept `{k}`, which the collection found dead but a path registered meanwhile refers to"
        );
    }
    let dir = store.store_dir();
    let full: Vec<String> = result
        .deleted
        .iter()
        .map(|n| dir.join(n).display().to_string())
        .collect();
    let out = if args.json {
        let value = serde_json::json!({
            "deleted": full,
            "freed_bytes": result.freed_bytes,
            "dry_run": args.dry_run,
            "leftovers": result.leftovers,
            "kept": result.kept,
            "live": result.live,
            "total": result.total,
        });
        format!("{value:#}\n")
    } else {
        let mut out = String::new();
        if store_args.verbose || args.dry_run {
            for p in &full {
                out.push_str(&format!(
                    "{}{p}\n",
                    if args.dry_run {
                        "would delete "
                    } else {
                        "deleted "
                    }
                ));
            }
        }
        out.push_str(&format!(
            "{} {} paths ({}) of {}; {} live from {} roots{}\n",
            if args.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            result.deleted.len(),
            human_size(result.freed_bytes),
            result.total,
            result.live,
            result.roots,
            if result.leftovers.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} leftovers of interrupted builds removed",
                    result.leftovers.len()
                )
            }
        ));
        out
    };
    super::print(&out)
}

pub fn pin(store_args: &StoreArgs, args: PinArgs) -> i32 {
    let store = match open(store_args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let path = match store.parse_path(&args.path) {
        Ok(p) => p,
        Err(e) => return report::store_error(&e),
    };
    let name = args.name.unwrap_or_else(|| path.to_string());
    if slapstore_store::partition::InstanceName::new(&name).is_err() {
        return report::usage(&format!(
            "`{name}` cannot name a pin (one path component, not starting with `.` or `-`)"
        ));
    }
    let result = store
        .add_temp_roots([&path])
        .and_then(|()| store.is_valid(&path))
        .and_then(|valid| {
            if valid {
                slapstore_store::roots::pin(&store, &path, &name)
            } else {
                Err(slapstore_store::StoreError::NotValid(path.to_string()))
            }
        });
    match result {
        Ok(link) => super::print(&format!(
            "pinned {} as {}\n",
            store.path_of(&path).display(),
            link.display()
        )),
        Err(e) => report::store_error(&e),
    }
}

pub fn unpin(store_args: &StoreArgs, args: UnpinArgs) -> i32 {
    let store = match open(store_args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if args.name.contains('/') || args.name.starts_with('.') {
        return report::usage(&format!("`{}` cannot name a pin", args.name));
    }
    match slapstore_store::roots::unpin(&store, &args.name) {
        Ok(true) => super::print(&format!("unpinned {}\n", args.name)),
        Ok(false) => report::not_found(
            &format!("no pin `{}`", args.name),
            Some("`slapstore roots` lists the pins"),
        ),
        Err(e) => report::store_error(&e),
    }
}

pub fn optimise(store_args: &StoreArgs, args: OptimiseArgs) -> i32 {
    let store = match open(store_args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let options = slapstore_gc::optimise::Options {
        min_size: args.min_size,
    };
    match slapstore_gc::optimise::optimise(&store, &options) {
        Ok(r) => {
            let out = if args.json {
                format!(
                    "{:#}\n",
                    serde_json::json!({
                        "paths": r.paths, "files": r.files, "linked": r.linked,
                        "bytes_saved": r.bytes_saved, "reflinks": r.reflinks,
                    })
                )
            } else {
                format!(
                    "{} files of {} paths checked; {} {} ({} saved)\n",
                    r.files,
                    r.paths,
                    r.linked,
                    if r.reflinks {
                        "reflinked"
                    } else {
                        "hard-linked"
                    },
                    human_size(r.bytes_saved)
                )
            };
            super::print(&out)
        }
        Err(e) => report::store_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes() {
        assert_eq!(size("500"), Some(500));
        assert_eq!(size("1K"), Some(1024));
        assert_eq!(size("2G"), Some(2 << 30));
        assert_eq!(size("3MiB"), Some(3 << 20));
        assert_eq!(size("x"), None);
        assert_eq!(size("1Q"), None);
    }
}
