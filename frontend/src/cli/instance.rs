//! `slapstore instance ...`: create, upgrade, roll back, inspect and remove instances.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use slapstore_store::build::BuildOptions;
use slapstore_store::partition::InstanceName;
use slapstore_store::Store;

use super::{report, StoreArgs};
use crate::evaluate::EvalOptions;
use crate::instance::{Context, InstanceError, Parameters};

#[derive(Args, Debug)]
pub struct InstanceArgs {
    #[command(subcommand)]
    command: InstanceCommand,
}

#[derive(Args, Debug)]
struct SoftwareArgs {
    /// The software: a profile (built first if needed) or a release's store path.
    #[arg(long, value_name = "PROFILE|RELEASE")]
    software: String,
    /// An instance parameter (`[slap-parameter]`), over the profile's defaults.
    #[arg(short = 'p', long = "parameter", value_name = "KEY=VALUE")]
    parameters: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum InstanceCommand {
    /// Create instances (a new partition each, generation 1).
    Create {
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        software: SoftwareArgs,
    },
    /// Make a new generation (parameters carry over unless given again) and switch to it.
    Upgrade {
        name: String,
        #[command(flatten)]
        software: SoftwareArgs,
    },
    /// Switch back to the current generation's parent, or to generation `--to`.
    Rollback {
        name: String,
        #[arg(long)]
        to: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// List instances.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show an instance: partition, current generation, release, parameters.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List an instance's generations.
    Generations {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete old generations (never the current one), so that gc can reclaim them.
    DeleteGenerations {
        name: String,
        /// Keep the N most recent generations (and the current one).
        #[arg(long, conflicts_with_all = ["older_than", "numbers"])]
        keep: Option<usize>,
        /// Delete generations older than this (`30d`, `12h`, `90m`, `45s`).
        #[arg(long, conflicts_with = "numbers")]
        older_than: Option<String>,
        /// Generation numbers.
        numbers: Vec<i64>,
    },
    /// Remove an instance: its partition (unless `--keep-data`: then only the links into the
    /// store) and its generations.
    Destroy {
        name: String,
        #[arg(long)]
        keep_data: bool,
    },
}

fn name(text: &str) -> Result<InstanceName, i32> {
    InstanceName::new(text).map_err(|e| report::usage(&e.to_string()))
}

fn parameters(list: &[String]) -> Result<Parameters, i32> {
    let mut out = BTreeMap::new();
    for p in list {
        let Some((k, v)) = p.split_once('=') else {
            return Err(report::usage(&format!("parameter `{p}` is not KEY=VALUE")));
        };
        if k.trim().is_empty() {
            return Err(report::usage(&format!("parameter `{p}` has no name")));
        }
        out.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(out)
}

fn fail(e: InstanceError) -> i32 {
    match e {
        InstanceError::Profile { sources, error } => report::error(&sources, &error),
        InstanceError::Build(failed) => {
            for (_, e) in &failed {
                eprintln!("error: {e}");
            }
            report::FAILED
        }
        InstanceError::Store(e) => report::store_error(&e),
        InstanceError::Usage(m) => report::usage(&m),
    }
}

pub fn run(store_args: &StoreArgs, args: InstanceArgs) -> i32 {
    match run_inner(store_args, args) {
        Ok(code) => code,
        Err(code) => code,
    }
}

fn run_inner(store_args: &StoreArgs, args: InstanceArgs) -> Result<i32, i32> {
    // the commands that only read create no store where there is none
    let read_only = matches!(
        args.command,
        InstanceCommand::List { .. }
            | InstanceCommand::Show { .. }
            | InstanceCommand::Generations { .. }
    );
    let store = if read_only {
        Store::open_existing(&store_args.root())
    } else {
        Store::open(&store_args.root())
    }
    .map_err(|e| report::store_error(&e))?;
    let partitions = store_args
        .partitions
        .clone()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .unwrap_or_else(|| store.root().join("partitions"));
    // the number of derivations is known only once the software is evaluated: the bar counts
    // what it sees
    let observer = super::progress::Progress::new(0, store_args.quiet);
    let ctx = Context {
        store: &store,
        partitions,
        eval: EvalOptions {
            python: std::env::var("SLAPSTORE_PYTHON")
                .unwrap_or_else(|_| super::eval::default_python()),
            ..EvalOptions::default()
        },
        build: BuildOptions {
            jobs: store_args.jobs.unwrap_or(BuildOptions::default().jobs),
            substituter: super::substituter(store_args, &store)?,
            ..BuildOptions::default()
        },
        observer: &observer,
    };
    let store_dir = store.store_dir();
    let full = |p: &str| store_dir.join(p).display().to_string();
    let out = match args.command {
        InstanceCommand::Create { names, software } => {
            let names = names
                .iter()
                .map(|n| name(n))
                .collect::<Result<Vec<_>, _>>()?;
            let params = parameters(&software.parameters)?;
            let paths = ctx
                .create(&names, &software.software, &params)
                .map_err(fail)?;
            if software.json {
                let list: Vec<_> = names
                    .iter()
                    .zip(&paths)
                    .map(|(n, p)| serde_json::json!({"name": n.as_str(), "generation": 1, "path": full(&p.to_string())}))
                    .collect();
                format!("{:#}\n", serde_json::Value::Array(list))
            } else {
                names
                    .iter()
                    .map(|n| {
                        format!(
                            "created {} (generation 1) in {}\n",
                            n.as_str(),
                            ctx.partitions.join(n.as_str()).display()
                        )
                    })
                    .collect()
            }
        }
        InstanceCommand::Upgrade { name: n, software } => {
            let n = name(&n)?;
            let params = parameters(&software.parameters)?;
            let upgrade = ctx.upgrade(&n, &software.software, &params).map_err(fail)?;
            let row = &upgrade.generation;
            if software.json {
                let mut value = generation_json(row, true, &full);
                value["changed"] = upgrade.changed.into();
                format!("{value:#}\n")
            } else if !upgrade.changed {
                format!(
                    "unchanged: {} stays at generation {} (same release and parameters)\n",
                    n.as_str(),
                    row.number
                )
            } else {
                format!(
                    "upgraded {} to generation {} ({})\n",
                    n.as_str(),
                    row.number,
                    full(&row.release)
                )
            }
        }
        InstanceCommand::Rollback { name: n, to, json } => {
            let n = name(&n)?;
            let row = ctx.rollback(&n, to).map_err(fail)?;
            if json {
                format!("{:#}\n", generation_json(&row, true, &full))
            } else {
                format!(
                    "rolled {} back to generation {} ({})\n",
                    n.as_str(),
                    row.number,
                    full(&row.release)
                )
            }
        }
        InstanceCommand::List { json } => {
            ctx.settle_all().map_err(fail)?;
            let rows = store
                .db()
                .instances()
                .map_err(|e| report::store_error(&e))?;
            if json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|r| serde_json::json!({"name": r.name, "partition": r.partition, "current": r.current}))
                    .collect();
                format!("{:#}\n", serde_json::Value::Array(list))
            } else {
                rows.iter()
                    .map(|r| format!("{}  generation {}  {}\n", r.name, r.current, r.partition))
                    .collect()
            }
        }
        InstanceCommand::Show { name: n, json } => {
            let n = name(&n)?;
            ctx.settle(&n).map_err(fail)?;
            let (instance, gens) = inspect(&store, &n)?;
            let current = gens.iter().find(|g| g.number == instance.current);
            let value = serde_json::json!({
                "name": instance.name,
                "partition": instance.partition,
                "current": current.map(|g| generation_json(g, true, &full)),
                "generations": gens.iter().filter(|g| !g.deleted).count(),
            });
            if json {
                format!("{value:#}\n")
            } else {
                let mut out = format!(
                    "instance    {}\npartition   {}\n",
                    instance.name, instance.partition
                );
                if let Some(g) = current {
                    out.push_str(&format!(
                        "generation  {}\nrelease     {}\noutput      {}\nparameters  {}\n",
                        g.number,
                        full(&g.release),
                        full(&g.path),
                        g.parameters
                    ));
                }
                out
            }
        }
        InstanceCommand::Generations { name: n, json } => {
            let n = name(&n)?;
            ctx.settle(&n).map_err(fail)?;
            let (instance, gens) = inspect(&store, &n)?;
            let live: Vec<_> = gens.iter().filter(|g| !g.deleted).collect();
            if json {
                let list: Vec<_> = live
                    .iter()
                    .map(|g| generation_json(g, g.number == instance.current, &full))
                    .collect();
                format!("{:#}\n", serde_json::Value::Array(list))
            } else {
                live.iter()
                    .map(|g| {
                        format!(
                            "{:>4}{}  {}  parent {}  {}\n",
                            g.number,
                            if g.number == instance.current {
                                " (current)"
                            } else {
                                ""
                            },
                            full(&g.release),
                            g.parent.map_or("-".to_owned(), |p| p.to_string()),
                            g.parameters
                        )
                    })
                    .collect()
            }
        }
        InstanceCommand::DeleteGenerations {
            name: n,
            keep,
            older_than,
            numbers,
        } => {
            let n = name(&n)?;
            ctx.settle(&n).map_err(fail)?;
            let (instance, gens) = inspect(&store, &n)?;
            let live: Vec<_> = gens.iter().filter(|g| !g.deleted).collect();
            let doomed: Vec<i64> = if let Some(keep) = keep {
                let mut sorted: Vec<_> = live.iter().map(|g| g.number).collect();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                sorted.into_iter().skip(keep).collect()
            } else if let Some(age) = older_than {
                let secs = duration(&age).ok_or_else(|| {
                    report::usage(&format!(
                        "`{age}` is not a duration like 30d, 12h, 90m or 45s"
                    ))
                })?;
                let limit = slapstore_store::build::unix_now() - secs;
                live.iter()
                    .filter(|g| g.created < limit)
                    .map(|g| g.number)
                    .collect()
            } else if !numbers.is_empty() {
                for number in &numbers {
                    if !live.iter().any(|g| g.number == *number) {
                        return Err(report::usage(&format!(
                            "`{}` has no generation {number}",
                            n.as_str()
                        )));
                    }
                    if *number == instance.current {
                        return Err(report::usage(&format!(
                            "generation {number} is current: roll back or upgrade first"
                        )));
                    }
                }
                numbers
            } else {
                return Err(report::usage(
                    "say which generations: `--keep N`, `--older-than DURATION` or numbers",
                ));
            };
            let doomed: Vec<i64> = doomed
                .into_iter()
                .filter(|g| *g != instance.current)
                .collect();
            {
                let _lock = store
                    .lock(&format!("instance-{}", n.as_str()))
                    .map_err(|e| report::store_error(&e))?;
                store
                    .db()
                    .delete_generations(n.as_str(), &doomed)
                    .map_err(|e| report::store_error(&e))?;
            }
            format!("deleted {} generations of {}\n", doomed.len(), n.as_str())
        }
        InstanceCommand::Destroy { name: n, keep_data } => {
            let n = name(&n)?;
            ctx.settle(&n).map_err(fail)?;
            let (instance, gens) = inspect(&store, &n)?;
            let _lock = store
                .lock(&format!("instance-{}", n.as_str()))
                .map_err(|e| report::store_error(&e))?;
            let partition = std::path::PathBuf::from(&instance.partition);
            if keep_data {
                remove_links(&partition);
            } else if partition.exists() {
                std::fs::remove_dir_all(&partition).map_err(|e| {
                    report::failure(&format!("cannot remove `{}`: {e}", partition.display()))
                })?;
            }
            store
                .db()
                .delete_instance(n.as_str())
                .map_err(|e| report::store_error(&e))?;
            format!(
                "destroyed {} ({} generations){}\n",
                n.as_str(),
                gens.len(),
                if keep_data { ", data kept" } else { "" }
            )
        }
    };
    Ok(super::print(&out))
}

fn inspect(
    store: &Store,
    n: &InstanceName,
) -> Result<
    (
        slapstore_store::db::InstanceRow,
        Vec<slapstore_store::db::GenerationRow>,
    ),
    i32,
> {
    let db = store.db();
    let instance = db
        .instance(n.as_str())
        .map_err(|e| report::store_error(&e))?
        .ok_or_else(|| report::usage(&format!("no instance `{}`", n.as_str())))?;
    let gens = db
        .generations(n.as_str())
        .map_err(|e| report::store_error(&e))?;
    Ok((instance, gens))
}

fn generation_json(
    g: &slapstore_store::db::GenerationRow,
    current: bool,
    full: &dyn Fn(&str) -> String,
) -> serde_json::Value {
    let parameters: serde_json::Value = serde_json::from_str(&g.parameters).unwrap_or_default();
    serde_json::json!({
        "number": g.number,
        "release": full(&g.release),
        "path": full(&g.path),
        "created": g.created,
        "current": current,
        "parent": g.parent,
        "parameters": parameters,
    })
}

/// Removes the links into `current` (and `current` itself) from a partition, keeping the rest.
fn remove_links(partition: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(partition) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if let Ok(target) = std::fs::read_link(&p) {
            let name = e.file_name();
            if name == "current"
                || target.starts_with("current")
                || target.to_string_lossy().contains("/current/")
            {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// `30d`, `12h`, `90m`, `45s` → seconds.
fn duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = number.parse().ok()?;
    Some(
        n * match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "w" => 604800,
            _ => return None,
        },
    )
}
