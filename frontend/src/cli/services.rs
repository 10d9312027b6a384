//! `slapstore instance start|stop|restart|status NAME|--all`: the services of instances under
//! the root's supervisord (`crate::services`), their promises (`crate::promises`); the hooks that keep running services in step
//! with `upgrade`, `rollback` and `destroy`. `start`, `restart` and `stop` record the state
//! they ask in the local master (`requested_state`), which `instance reconcile` then keeps.

use clap::Args;
use slapstore_store::partition::InstanceName;
use slapstore_store::Store;

use super::instance::{fail, name};
use super::report;
use crate::instance::Context;
use crate::services::{Supervisor, Target as Started};
use slapstore_store::master::State;

/// Which instances a service command acts on.
#[derive(Args, Debug)]
pub struct Which {
    /// The instances' names.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    names: Vec<String>,
    /// Every instance of the root.
    #[arg(long)]
    all: bool,
}

/// An instance to act on: its name, partition and user (if it has its own).
type Target = (String, std::path::PathBuf, Option<String>);

/// The instances named (each checked and settled) with their partitions, or all of them.
fn instances(ctx: &Context, which: &Which) -> Result<Vec<Target>, i32> {
    let names: Vec<InstanceName> = if which.all {
        ctx.settle_all().map_err(fail)?;
        let rows = ctx
            .store
            .db()
            .instances()
            .map_err(|e| report::store_error(&e))?;
        rows.iter()
            .filter_map(|r| InstanceName::new(&r.name).ok())
            .collect()
    } else {
        which
            .names
            .iter()
            .map(|n| name(n))
            .collect::<Result<_, _>>()?
    };
    let mut out = Vec::new();
    for n in names {
        ctx.settle(&n).map_err(fail)?;
        let row = ctx
            .store
            .db()
            .instance(n.as_str())
            .map_err(|e| report::store_error(&e))?
            .ok_or_else(|| {
                report::not_found(
                    &format!("no instance `{}`", n.as_str()),
                    Some("`slapstore instance list` lists the instances"),
                )
            })?;
        let user = user(ctx.store, &row.name)?;
        out.push((row.name, row.partition.into(), user));
    }
    Ok(out)
}

/// Runs `f` on the root's supervisor under its lock (one change of its files at a time).
fn locked<T>(
    store: &Store,
    f: impl FnOnce(&Supervisor) -> crate::services::Result<T>,
) -> Result<T, i32> {
    let _lock = store
        .lock("supervisor")
        .map_err(|e| report::store_error(&e))?;
    f(&Supervisor::new(store.root())).map_err(|m| report::failure(&m))
}

/// The name of the user `instance` runs as, if it has its own.
fn user(store: &Store, instance: &str) -> Result<Option<String>, i32> {
    let row = store
        .db()
        .instance_user(instance)
        .map_err(|e| report::store_error(&e))?;
    Ok(row.map(|u| u.name))
}

fn count(n: usize) -> String {
    match n {
        1 => "1 service".to_owned(),
        n => format!("{n} services"),
    }
}

/// Records `state` as what the local master asks of each target.
fn record(ctx: &Context, targets: &[Target], state: State) -> Result<(), i32> {
    let mut db = ctx.store.db();
    for (instance, _, _) in targets {
        db.set_requested_state(instance, state)
            .map_err(|e| report::store_error(&e))?;
    }
    Ok(())
}

/// Starts the instances' services, all with one `supervisorctl update`.
pub fn start(ctx: &Context, which: &Which) -> Result<String, i32> {
    let targets = instances(ctx, which)?;
    record(ctx, &targets, State::Started)?;
    let list: Vec<Started> = targets
        .iter()
        .map(|(instance, partition, user)| Started {
            instance: instance.clone(),
            partition: partition.clone(),
            user: user.clone(),
        })
        .collect();
    let started = locked(ctx.store, |s| s.apply(&list, &[]))?;
    let mut out = String::new();
    for (t, services) in list.iter().zip(&started) {
        out.push_str(&format!(
            "started {} ({})\n",
            t.instance,
            count(services.len())
        ));
    }
    Ok(out)
}

/// Stops the instances' services (recorded: `reconcile` leaves them stopped).
pub fn stop(ctx: &Context, which: &Which) -> Result<String, i32> {
    let targets = instances(ctx, which)?;
    record(ctx, &targets, State::Stopped)?;
    let names: Vec<&str> = targets.iter().map(|(n, _, _)| n.as_str()).collect();
    locked(ctx.store, |s| s.apply(&[], &names))?;
    Ok(names.iter().map(|n| format!("stopped {n}\n")).collect())
}

pub fn restart(ctx: &Context, which: &Which) -> Result<String, i32> {
    let mut out = String::new();
    let targets = instances(ctx, which)?;
    record(ctx, &targets, State::Started)?;
    for (instance, partition, user) in targets {
        let done = locked(ctx.store, |s| {
            s.restart(&instance, &partition, user.as_deref())
        })?;
        out.push_str(&format!("restarted {instance} ({})\n", count(done.len())));
    }
    Ok(out)
}

/// Each service's state and each promise's check (`crate::promises`), per instance.
pub fn status(ctx: &Context, which: &Which, json: bool) -> Result<String, i32> {
    let mut all = Vec::new();
    let mut promises = Vec::new();
    for (instance, partition, _) in instances(ctx, which)? {
        all.extend(locked(ctx.store, |s| s.status(&instance, &partition))?);
        let checked = crate::promises::check(&partition).map_err(|m| report::failure(&m))?;
        promises.extend(checked.into_iter().map(|p| (instance.clone(), p)));
    }
    let kind = |restart: bool| if restart { "service" } else { "run" };
    if json {
        let list: Vec<_> = all
            .iter()
            .map(|s| {
                serde_json::json!({
                    "instance": s.service.instance,
                    "service": s.service.name,
                    "program": s.service.program,
                    "kind": kind(s.service.restart),
                    "state": s.state,
                    "pid": s.pid,
                })
            })
            .collect();
        let checks: Vec<_> = promises
            .iter()
            .map(|(instance, p)| {
                serde_json::json!({
                    "instance": instance,
                    "promise": p.name,
                    "kind": p.kind.as_str(),
                    "state": p.state.as_str(),
                    "output": p.output,
                })
            })
            .collect();
        let out = serde_json::json!({"services": list, "promises": checks});
        return Ok(format!("{out:#}\n"));
    }
    let mut table = super::table::new(&["instance", "service", "kind", "state", "pid"]);
    super::table::right(&mut table, 4);
    for s in &all {
        table.add_row(vec![
            s.service.instance.clone(),
            s.service.name.clone(),
            kind(s.service.restart).to_owned(),
            s.state.clone(),
            s.pid.map_or("-".to_owned(), |p| p.to_string()),
        ]);
    }
    let mut out = super::table::render(&table);
    if !promises.is_empty() {
        let mut table = super::table::new(&["instance", "promise", "kind", "state", "output"]);
        for (instance, p) in &promises {
            table.add_row(vec![
                instance.clone(),
                p.name.clone(),
                p.kind.as_str().to_owned(),
                p.state.as_str().to_owned(),
                p.output.lines().next().unwrap_or("").to_owned(),
            ]);
        }
        out.push('\n');
        out.push_str(&super::table::render(&table));
    }
    Ok(out)
}

/// After `upgrade` or `rollback`: a started instance's changed services are restarted.
pub fn refresh(store: &Store, n: &InstanceName) -> Result<(), i32> {
    let Some(row) = store
        .db()
        .instance(n.as_str())
        .map_err(|e| report::store_error(&e))?
    else {
        return Ok(());
    };
    // an instance never started costs nothing (not even the supervisor's lock file)
    if !Supervisor::new(store.root()).is_started(&row.name) {
        return Ok(());
    }
    let partition = std::path::PathBuf::from(&row.partition);
    let user = user(store, &row.name)?;
    locked(store, |s| s.refresh(&row.name, &partition, user.as_deref()))
}
