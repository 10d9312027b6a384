//! `slapstore instance ...`: create, upgrade, roll back, inspect and remove instances.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use slapstore_store::partition::InstanceName;
use slapstore_store::Store;

use super::{report, StoreArgs};
use crate::instance::{InstanceError, Parameters};

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
    /// An instance parameter (`[slap-parameter]`), over the profile's defaults and over
    /// `--parameters`.
    #[arg(short = 'p', long = "parameter", value_name = "KEY=VALUE")]
    parameters: Vec<String>,
    /// A file of parameters: a JSON object (`{"key": "value", ...}`, numbers and booleans as
    /// text; one holding lists or objects is passed whole as `_`, JSON in XML) or SlapOS's XML
    /// (`<instance><parameter id="key">value</parameter></instance>`).
    #[arg(long = "parameters", value_name = "FILE")]
    parameter_file: Option<std::path::PathBuf>,
    /// The software type to deploy (`slap-software-type`, what `switch-softwaretype` picks
    /// by); `default` on create, the current one's on upgrade.
    #[arg(long = "software-type", alias = "type", value_name = "TYPE")]
    software_type: Option<String>,
    /// Print the new generations as JSON (`docs/cli.md`).
    #[arg(long)]
    json: bool,
    /// Refuse a profile whose lock file does not pin every unpinned input, or is missing.
    #[arg(long)]
    frozen: bool,
    /// Accept remote sources of the software without a checksum (branches, unpinned files).
    #[arg(long, conflicts_with = "frozen")]
    allow_unpinned: bool,
}

/// What `instance request` asks of an instance.
#[derive(Args, Debug)]
struct RequestArgs {
    /// The software from now on: a profile or a release's store path (default: unchanged).
    #[arg(long, value_name = "PROFILE|RELEASE")]
    software: Option<String>,
    /// A parameter, over those asked until now (and over `--parameters`).
    #[arg(short = 'p', long = "parameter", value_name = "KEY=VALUE")]
    parameters: Vec<String>,
    /// A file of parameters (JSON object or SlapOS's XML), as for `create`.
    #[arg(long = "parameters", value_name = "FILE")]
    parameter_file: Option<std::path::PathBuf>,
    /// The software type from now on (default: unchanged).
    #[arg(long = "software-type", alias = "type", value_name = "TYPE")]
    software_type: Option<String>,
    /// A shared (slave) instance, hosted by `--host`: no partition, its parameters given to its
    /// host's `slave-instance-list` (as `slapos request --slave`).
    #[arg(long, requires = "host", conflicts_with = "software")]
    shared: bool,
    /// The instance hosting the shared instance.
    #[arg(long, value_name = "INSTANCE", requires = "shared")]
    host: Option<String>,
}

#[derive(Subcommand, Debug)]
enum InstanceCommand {
    /// Create instances (a new partition each, generation 1).
    Create {
        /// The new instances' names (one partition each).
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        software: SoftwareArgs,
        /// Say what would be deployed (the release planned, never built nor downloaded; its
        /// instance profile rendered in memory: parts, files, services, published
        /// parameters, requests); change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Make a new generation (parameters carry over unless given again) and switch to it.
    Upgrade {
        /// The instance's name.
        name: String,
        #[command(flatten)]
        software: SoftwareArgs,
        /// Say what would change (release, parts to build, parameters); change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Record a change of an instance's software, software type or parameters in the local
    /// master (as `slapos request`), deploying nothing: `instance reconcile` deploys it.
    Request {
        /// The instance's name.
        name: String,
        #[command(flatten)]
        request: RequestArgs,
    },
    /// Make every instance (or those named) what the local master asks: its software's
    /// release now, its requested parameters, its requested state (services started or
    /// stopped); an instance nothing of which changed is not even rendered.
    Reconcile {
        /// The instances' names (default: all).
        names: Vec<String>,
        /// Render every instance, whatever changed or not since the last reconciliation.
        #[arg(long)]
        full: bool,
        /// Print `{"upgraded", "unchanged", "untouched", "started", "stopped", "superseded",
        /// "failed"}`.
        #[arg(long)]
        json: bool,
    },
    /// Compare two generations: parts added, removed or changed in their closures, and
    /// parameters.
    Diff {
        /// The instance's name.
        name: String,
        /// The older generation.
        from: i64,
        /// The newer generation (default: the current one).
        to: Option<i64>,
        /// Print `{"instance", "from", "to", "parts", "parameters", "size_delta"}`.
        #[arg(long)]
        json: bool,
    },
    /// Switch back to the current generation's parent, or to generation `--to`.
    Rollback {
        /// The instance's name.
        name: String,
        /// The generation to switch to.
        #[arg(long, value_name = "GEN")]
        to: Option<i64>,
        /// Print the generation switched to as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List instances.
    List {
        /// Print a list of `{"name", "partition", "current"}`.
        #[arg(long)]
        json: bool,
    },
    /// Show an instance: partition, current generation, release, parameters.
    Show {
        /// The instance's name.
        name: String,
        /// Print `{"name", "partition", "current", "generations"}`.
        #[arg(long)]
        json: bool,
    },
    /// List an instance's generations.
    Generations {
        /// The instance's name.
        name: String,
        /// Print a list of generations (`number`, `release`, `path`, `created`, `current`, ...).
        #[arg(long)]
        json: bool,
    },
    /// Delete old generations (never the current one), so that gc can reclaim them.
    DeleteGenerations {
        /// The instance's name.
        name: String,
        /// Keep the N most recent generations (and the current one).
        #[arg(long, conflicts_with_all = ["older_than", "numbers"])]
        keep: Option<usize>,
        /// Delete generations older than this (`30d`, `12h`, `90m`, `45s`).
        #[arg(long, conflicts_with = "numbers")]
        older_than: Option<String>,
        /// Generation numbers.
        #[arg(value_name = "GEN")]
        numbers: Vec<i64>,
    },
    /// Start the services of instances (`etc/service/*`, `etc/run/*`) under supervisord.
    Start(super::services::Which),
    /// Stop the services of instances.
    Stop(super::services::Which),
    /// Restart the services of instances (starting those that were stopped).
    Restart(super::services::Which),
    /// Show the state of each service of instances.
    Status {
        #[command(flatten)]
        which: super::services::Which,
        /// Print a list of `{"instance", "service", "program", "kind", "state", "pid"}`.
        #[arg(long)]
        json: bool,
    },
    /// Remove an instance (stopping its services first): its partition (unless `--keep-data`:
    /// then only the links into the store) and its generations.
    Destroy {
        /// The instance's name.
        name: String,
        /// Keep the partition's data (`srv/`, `var/`, ...); remove only the links into the store.
        #[arg(long)]
        keep_data: bool,
    },
}

pub(super) fn name(text: &str) -> Result<InstanceName, i32> {
    InstanceName::new(text).map_err(|e| report::usage(&e.to_string()))
}

/// The parameters of `--parameters FILE`, then the `-p` ones over them.
fn parameters(args: &SoftwareArgs) -> Result<Parameters, i32> {
    parameters_of(args.parameter_file.as_deref(), &args.parameters)
}

fn parameters_of(file: Option<&std::path::Path>, list: &[String]) -> Result<Parameters, i32> {
    let mut out = match file {
        Some(file) => crate::parameters::read(file).map_err(|m| report::usage(&m))?,
        None => BTreeMap::new(),
    };
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

/// `--software-type`, checked: one line of printable text.
fn software_type(args: &SoftwareArgs) -> Result<Option<&str>, i32> {
    checked_type(args.software_type.as_deref())
}

fn checked_type(given: Option<&str>) -> Result<Option<&str>, i32> {
    match given {
        Some(t) if t.trim().is_empty() || t.chars().any(char::is_control) => Err(report::usage(
            &format!("`--software-type {t:?}`: a software type is one word of printable text"),
        )),
        other => Ok(other),
    }
}

pub(super) fn fail(e: InstanceError) -> i32 {
    match e {
        InstanceError::Profile { sources, error } => report::error(&sources, &error),
        InstanceError::Build(failed) => {
            for (_, e) in &failed {
                report::error_line(&e.to_string(), report::hint(e).as_deref());
            }
            report::FAILED
        }
        InstanceError::Store(e) => report::store_error(&e),
        InstanceError::Usage(m) | InstanceError::Waiting(m) => report::usage(&m),
    }
}

pub fn run(store_args: &StoreArgs, args: InstanceArgs) -> i32 {
    // create and upgrade build the release first: Ctrl-C and SIGTERM stop those builds as they
    // stop `build`'s (`interrupts.rs`)
    let builds = matches!(
        args.command,
        InstanceCommand::Create { .. }
            | InstanceCommand::Upgrade { .. }
            | InstanceCommand::Reconcile { .. }
    );
    let interrupts = if builds {
        match super::interrupts::Interrupts::start() {
            Ok(i) => Some(i),
            Err(code) => return code,
        }
    } else {
        None
    };
    let code = match run_inner(store_args, args) {
        Ok(code) => code,
        Err(code) => code,
    };
    interrupts.and_then(|i| i.stopped(None)).unwrap_or(code)
}

fn run_inner(store_args: &StoreArgs, args: InstanceArgs) -> Result<i32, i32> {
    // the commands that only read create no store where there is none
    let read_only = matches!(
        args.command,
        InstanceCommand::List { .. }
            | InstanceCommand::Show { .. }
            | InstanceCommand::Generations { .. }
            | InstanceCommand::Status { .. }
    );
    let store = if read_only {
        Store::open_existing(&store_args.root())
    } else {
        Store::open(&store_args.root())
    }
    .map_err(|e| report::store_error(&e))?;
    // the number of derivations is known only once the software is evaluated: the bar counts
    // what it sees
    let observer = super::progress::Progress::new(0, store_args.quiet);
    let (frozen, allow_unpinned) = match &args.command {
        InstanceCommand::Create { software, .. } | InstanceCommand::Upgrade { software, .. } => {
            (software.frozen, software.allow_unpinned)
        }
        _ => (false, false),
    };
    let mut ctx = super::instance_context(
        store_args,
        &store,
        &observer,
        super::computer(&store)?,
        frozen,
    )?;
    ctx.build.allow_unpinned |= allow_unpinned;
    let store_dir = store.store_dir();
    let full = |p: &str| store_dir.join(p).display().to_string();
    let out = match args.command {
        InstanceCommand::Create {
            names,
            software,
            dry_run,
        } => {
            let names = names
                .iter()
                .map(|n| name(n))
                .collect::<Result<Vec<_>, _>>()?;
            let params = parameters(&software)?;
            if dry_run {
                let (mut text, mut list) = (String::new(), Vec::new());
                for n in &names {
                    let d = ctx
                        .dry_run_create(n, &software.software, &params, software_type(&software)?)
                        .map_err(fail)?;
                    text.push_str(&super::dry_run::text(&d, &full));
                    list.push(super::dry_run::json(&d, &full));
                }
                if software.json {
                    text = format!("{:#}\n", serde_json::Value::Array(list));
                }
                return Ok(super::print(&text));
            }
            let paths = ctx
                .create(
                    &names,
                    &software.software,
                    &params,
                    software_type(&software)?,
                )
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
        InstanceCommand::Upgrade {
            name: n,
            software,
            dry_run,
        } => {
            let n = name(&n)?;
            let params = parameters(&software)?;
            inspect(&store, &n)?;
            if dry_run {
                let preview = ctx
                    .preview_upgrade(&n, &software.software, &params)
                    .map_err(fail)?;
                return Ok(super::print(&dry_run_text(&preview, software.json, &full)));
            }
            let upgrade = ctx
                .upgrade(&n, &software.software, &params, software_type(&software)?)
                .map_err(fail)?;
            super::services::refresh(&store, &n)?;
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
        InstanceCommand::Request { name: n, request } if request.shared => {
            let n = name(&n)?;
            let host = name(request.host.as_deref().unwrap_or_default())?;
            inspect(&store, &host)?;
            let params = parameters_of(request.parameter_file.as_deref(), &request.parameters)?;
            let shared = ctx
                .request_shared(
                    &n,
                    &host,
                    &params,
                    checked_type(request.software_type.as_deref())?,
                )
                .map_err(fail)?;
            format!(
                "requested shared {} on {} (type `{}`, {} parameters): `slapstore instance \
                 reconcile` renders its host\n",
                shared.name,
                shared.host,
                shared.software_type,
                shared.parameters.len()
            )
        }
        InstanceCommand::Request { name: n, request } => {
            let n = name(&n)?;
            inspect(&store, &n)?;
            let params = parameters_of(request.parameter_file.as_deref(), &request.parameters)?;
            let asked = ctx
                .request(
                    &n,
                    request.software.as_deref(),
                    &params,
                    checked_type(request.software_type.as_deref())?,
                )
                .map_err(fail)?;
            format!(
                "requested {} (software `{}`, type `{}`, {} parameters): `slapstore instance \
                 reconcile` deploys it\n",
                n.as_str(),
                asked.software_url,
                asked.software_type,
                asked.parameters.len()
            )
        }
        InstanceCommand::Reconcile { names, full, json } => {
            let names = names
                .iter()
                .map(|n| name(n))
                .collect::<Result<Vec<_>, _>>()?;
            for n in &names {
                inspect(&store, n)?;
            }
            let only = (!names.is_empty()).then_some(names.as_slice());
            let done = ctx.reconcile(only, full).map_err(fail)?;
            return Ok(reconciled(done, json));
        }
        InstanceCommand::Diff {
            name: n,
            from,
            to,
            json,
        } => {
            let n = name(&n)?;
            let (instance, gens) = inspect(&store, &n)?;
            let find = |number: i64| {
                gens.iter()
                    .find(|g| g.number == number && !g.deleted)
                    .ok_or_else(|| {
                        report::not_found(
                            &format!("`{}` has no generation {number}", n.as_str()),
                            Some(&format!(
                                "`slapstore instance generations {}` lists them",
                                n.as_str()
                            )),
                        )
                    })
            };
            let (a, b) = (find(from)?, find(to.unwrap_or(instance.current))?);
            super::diff::diff(&store, a, b, json)?
        }
        InstanceCommand::Rollback { name: n, to, json } => {
            let n = name(&n)?;
            inspect(&store, &n)?;
            let row = ctx.rollback(&n, to).map_err(fail)?;
            super::services::refresh(&store, &n)?;
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
                let mut table = super::table::new(&["instance", "generation", "partition"]);
                super::table::right(&mut table, 1);
                for r in &rows {
                    table.add_row(vec![
                        r.name.clone(),
                        r.current.to_string(),
                        r.partition.clone(),
                    ]);
                }
                super::table::render(&table)
            }
        }
        InstanceCommand::Show { name: n, json } => {
            let n = name(&n)?;
            ctx.settle(&n).map_err(fail)?;
            let (instance, gens) = inspect(&store, &n)?;
            let current = gens.iter().find(|g| g.number == instance.current);
            let master = store
                .db()
                .master_instance(n.as_str())
                .map_err(|e| report::store_error(&e))?;
            let value = serde_json::json!({
                "name": instance.name,
                "partition": instance.partition,
                "current": current.map(|g| generation_json(g, true, &full)),
                "generations": gens.iter().filter(|g| !g.deleted).count(),
                "partition_id": master.as_ref().map(|m| m.partition_id()),
                "software_type": master.as_ref().map(|m| m.software_type.clone()),
                "software_url": master.as_ref().map(|m| m.software_url.clone()),
                "requested_state": master.as_ref().map(|m| m.requested_state.as_str()),
                "title": master.as_ref().map(|m| m.title.clone()),
                "parent": master.as_ref().and_then(|m| m.parent.clone()),
                "connection": master.as_ref().map(|m| m.connection.clone()),
            });
            if json {
                format!("{value:#}\n")
            } else {
                let mut out = format!(
                    "instance    {}\npartition   {}\n",
                    instance.name, instance.partition
                );
                if let Some(m) = &master {
                    out.push_str(&format!(
                        "on          {} (software type `{}`, {})\n",
                        m.partition_id(),
                        m.software_type,
                        m.requested_state.as_str()
                    ));
                    if let Some(parent) = &m.parent {
                        out.push_str(&format!("requested   by {parent} as `{}`\n", m.title));
                    }
                }
                if let Some(g) = current {
                    out.push_str(&format!(
                        "generation  {}\nrelease     {}\noutput      {}\nparameters  {}\n",
                        g.number,
                        full(&g.release),
                        full(&g.path),
                        g.parameters
                    ));
                }
                if let Some(m) = &master {
                    for (k, v) in &m.connection {
                        out.push_str(&format!("published   {k} = {v}\n"));
                    }
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
                let mut table = super::table::new(&[
                    "gen",
                    "current",
                    "created",
                    "release",
                    "parent",
                    "parameters",
                ]);
                super::table::right(&mut table, 0);
                for g in &live {
                    table.add_row(vec![
                        g.number.to_string(),
                        if g.number == instance.current {
                            "*"
                        } else {
                            ""
                        }
                        .to_owned(),
                        created(g.created),
                        full(&g.release),
                        g.parent.map_or("-".to_owned(), |p| p.to_string()),
                        g.parameters.clone(),
                    ]);
                }
                super::table::render(&table)
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
                let secs = humantime::parse_duration(&age)
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .map_err(|e| {
                        report::usage(&format!(
                            "`--older-than {age}`: {e} (a duration like 30d, 12h, 90m or 45s)"
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
            format!(
                "deleted {} of {}{}\n",
                match doomed.len() {
                    1 => "1 generation".to_owned(),
                    count => format!("{count} generations"),
                },
                n.as_str(),
                if doomed.is_empty() && keep.is_some() {
                    " (`--keep N` keeps the N newest and the current one)"
                } else {
                    ""
                }
            )
        }
        InstanceCommand::Start(which) => super::services::start(&ctx, &which)?,
        InstanceCommand::Stop(which) => super::services::stop(&ctx, &which)?,
        InstanceCommand::Restart(which) => super::services::restart(&ctx, &which)?,
        InstanceCommand::Status { which, json } => super::services::status(&ctx, &which, json)?,
        InstanceCommand::Destroy { name: n, .. } if shared_instance(&store, &n)? => {
            let host = store
                .db()
                .shared(&n)
                .map_err(|e| report::store_error(&e))?
                .map(|s| s.host)
                .unwrap_or_default();
            store
                .db()
                .remove_shared(&n)
                .map_err(|e| report::store_error(&e))?;
            format!(
                "destroyed shared {n} (hosted by {host}): `slapstore instance reconcile` \
                 renders its host without it\n"
            )
        }
        InstanceCommand::Destroy { name: n, keep_data } => {
            let n = name(&n)?;
            let (_, gens) = inspect(&store, &n)?;
            let destroyed = ctx.destroy(&n, keep_data).map_err(fail)?;
            let mut out = String::new();
            for child in destroyed.iter().filter(|d| *d != n.as_str()) {
                out.push_str(&format!(
                    "destroyed {child} (requested by an instance destroyed)\n"
                ));
            }
            out.push_str(&format!(
                "destroyed {} ({} generations){}\n",
                n.as_str(),
                gens.len(),
                if keep_data { ", data kept" } else { "" }
            ));
            out
        }
    };
    Ok(super::print(&out))
}

/// Whether `name` is a shared instance (and no instance with a partition).
fn shared_instance(store: &Store, name: &str) -> Result<bool, i32> {
    let db = store.db();
    let shared = db.shared(name).map_err(|e| report::store_error(&e))?;
    let instance = db.instance(name).map_err(|e| report::store_error(&e))?;
    Ok(shared.is_some() && instance.is_none())
}

/// Prints what a reconciliation did; exit status 1 when an instance could not be reconciled
/// (each reported).
fn reconciled(done: crate::instance::Reconciled, json: bool) -> i32 {
    let failed = !done.failed.is_empty();
    let out = if json {
        let value = serde_json::json!({
            "upgraded": done.upgraded.iter().map(|(n, g)| serde_json::json!({"name": n, "generation": g})).collect::<Vec<_>>(),
            "unchanged": done.unchanged,
            "untouched": done.untouched,
            "started": done.started.iter().map(|(n, s)| serde_json::json!({"name": n, "services": s})).collect::<Vec<_>>(),
            "stopped": done.stopped,
            "superseded": done.superseded,
            "failed": done.failed.iter().map(|(n, e)| serde_json::json!({"name": n, "error": crate::node::pass::describe(e)})).collect::<Vec<_>>(),
        });
        format!("{value:#}\n")
    } else {
        let mut out = String::new();
        for n in &done.superseded {
            out.push_str(&format!(
                "dropped the request of {n}: a generation made since superseded it\n"
            ));
        }
        for (n, g) in &done.upgraded {
            out.push_str(&format!("upgraded {n} to generation {g}\n"));
        }
        for (n, s) in &done.started {
            out.push_str(&format!("started {n} ({s} services)\n"));
        }
        for n in &done.stopped {
            out.push_str(&format!("stopped {n}\n"));
        }
        out.push_str(&format!(
            "reconciled {} instances: {} upgraded, {} unchanged ({} not rendered: nothing they \
             depend on changed){}\n",
            done.upgraded.len() + done.unchanged.len() + done.untouched + done.failed.len(),
            done.upgraded.len(),
            done.unchanged.len() + done.untouched,
            done.untouched,
            match done.failed.len() {
                0 => String::new(),
                n => format!(", {n} failed"),
            }
        ));
        out
    };
    let code = super::print(&out);
    if !failed {
        return code;
    }
    for (n, e) in done.failed {
        report::error_line(
            &format!(
                "`{n}` could not be reconciled: {}",
                crate::node::pass::describe(&e)
            ),
            None,
        );
    }
    report::FAILED
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
        .ok_or_else(|| {
            report::not_found(
                &format!("no instance `{}`", n.as_str()),
                Some("`slapstore instance list` lists the instances"),
            )
        })?;
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

/// A generation's creation time, `2026-12-01 20:07:49` (UTC).
fn created(unix: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    let text = humantime::format_rfc3339_seconds(time).to_string();
    text.trim_end_matches('Z').replacen('T', " ", 1)
}

/// What `upgrade --dry-run` prints.
fn dry_run_text(
    p: &crate::instance::UpgradePreview,
    json: bool,
    full: &dyn Fn(&str) -> String,
) -> String {
    let before: Parameters = serde_json::from_str(&p.current.parameters).unwrap_or_default();
    let unchanged = p.generation.as_ref().map(|g| g.to_string()) == Some(p.current.path.clone());
    if json {
        let value = serde_json::json!({
            "current": p.current.number,
            "release": {"before": full(&p.current.release), "after": full(&p.release.to_string())},
            "to_build": p.to_build,
            "parameters": {"before": before, "after": p.parameters},
            "generation": p.generation.as_ref().map(|g| full(&g.to_string())),
            "unchanged": unchanged,
        });
        return format!("{value:#}\n");
    }
    let mut out = String::new();
    if unchanged {
        out.push_str(&format!(
            "{} is up to date: the upgrade would change nothing (generation {})\n",
            p.current.instance, p.current.number
        ));
        return out;
    }
    out.push_str(&format!(
        "would upgrade {} from generation {}; nothing changed (dry run)\n",
        p.current.instance, p.current.number
    ));
    let release = p.release.to_string();
    if release == p.current.release {
        out.push_str(&format!("  release     {} (unchanged)\n", full(&release)));
    } else {
        out.push_str(&format!(
            "  release     {}\n           -> {}\n",
            full(&p.current.release),
            full(&release)
        ));
    }
    if !p.to_build.is_empty() {
        out.push_str(&format!("  to build    {}\n", p.to_build.join(" ")));
    }
    let keys: std::collections::BTreeSet<&String> =
        before.keys().chain(p.parameters.keys()).collect();
    for k in keys {
        let (x, y) = (before.get(k), p.parameters.get(k));
        if x != y {
            let show = |v: Option<&String>| v.map_or("(unset)".to_owned(), |v| format!("`{v}`"));
            out.push_str(&format!("  parameter   {k}: {} -> {}\n", show(x), show(y)));
        }
    }
    out
}
