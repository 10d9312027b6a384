//! `slapstore plan` and `slapstore build`: a profile's derivations in build order, and building
//! them (then the release, whose store path is printed last on stdout).

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use clap::Args;
use slapstore_store::build::{self, BuildOptions};
use slapstore_store::{Derivation, Store};

use super::eval::ProfileArgs;
use super::{report, StoreArgs};
use crate::derive::StoreMode;
use crate::evalcache::{Context, EvalCache};
use crate::evaluate::evaluate;
use crate::source::Sources;

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    profile: ProfileArgs,
    /// Print a list of `{"part", "hash", "path", "recipe", "deps", "built", "unpinned"}` (the
    /// release's also says where its `instance-profile` comes from).
    #[arg(long)]
    json: bool,
    /// Accept remote sources without a checksum.
    #[arg(long)]
    allow_unpinned: bool,
    /// Refuse unless the profile's lock file pins every unpinned input, and nothing else.
    #[arg(long, conflicts_with = "allow_unpinned")]
    frozen: bool,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    profile: ProfileArgs,
    /// Go on building what does not depend on a failed part.
    #[arg(long)]
    keep_going: bool,
    /// Print `{"release", "built", "parts"}` as JSON.
    #[arg(long)]
    json: bool,
    /// Accept remote sources without a checksum.
    #[arg(long)]
    allow_unpinned: bool,
    /// Refuse unless the profile's lock file pins every unpinned input, and nothing else.
    #[arg(long, conflicts_with = "allow_unpinned")]
    frozen: bool,
    /// Never download: sources come from the download cache or local files.
    #[arg(long)]
    offline: bool,
    /// Print the builds' logs as they are written, each line prefixed with its part's name.
    #[arg(short = 'L', long)]
    print_build_logs: bool,
}

/// How many lines of a failed build's log are shown.
const LOG_TAIL_LINES: usize = 20;

/// Evaluates the profile into derivations for `store` (the release last), with its lock file
/// if it has one, or reports why not.
pub fn derivations(
    store_dir: &str,
    profile: &ProfileArgs,
    allow_unpinned: bool,
) -> Result<Vec<Derivation>, i32> {
    locked_derivations(store_dir, profile, allow_unpinned, false, false).map(|(d, _)| d)
}

/// [`derivations`], `frozen`: the lock file must pin every unpinned input and hold nothing
/// else (else stale entries are only reported). `planning` (`plan`): an unpinned input without
/// a lock entry is planned as the profile names it, with a warning (none with
/// `allow_unpinned`), instead of refused; the store names of the parts with an unpinned input
/// come second.
pub fn locked_derivations(
    store_dir: &str,
    profile: &ProfileArgs,
    allow_unpinned: bool,
    frozen: bool,
    planning: bool,
) -> Result<(Vec<Derivation>, BTreeSet<String>), i32> {
    let mut lock = super::lock::attach(&profile.profile, frozen)?;
    lock.planning = planning && !frozen;
    let lock = Arc::new(lock);
    let mut sources = Sources::default();
    let drvs = evaluate_in(
        &mut sources,
        store_dir,
        profile,
        allow_unpinned,
        Some(lock.clone()),
        true,
    )?;
    let mut unpinned = BTreeSet::new();
    for u in lock.unpinned() {
        if !allow_unpinned {
            report::warning(&sources, "plan", &u.warning);
        }
        unpinned.insert(crate::derive::store_name(&u.part));
    }
    super::lock::check_stale(&lock)?;
    Ok((drvs, unpinned))
}

/// Evaluates the profile into derivations with `lock` as its lock, which sees every unpinned
/// input the evaluation asks for (never from the cache of evaluations: `slapstore lock` needs
/// them).
pub fn evaluate_with(
    store_dir: &str,
    profile: &ProfileArgs,
    allow_unpinned: bool,
    lock: Option<Arc<crate::lock::LockState>>,
) -> Result<Vec<Derivation>, i32> {
    evaluate_in(
        &mut Sources::default(),
        store_dir,
        profile,
        allow_unpinned,
        lock,
        false,
    )
}

/// [`evaluate_with`], reading the profile's files into `sources`, through the cache of
/// evaluations if `cached` and there is a lock (`evalcache/`): a hit leaves in `lock` what the
/// evaluation asked of it and in `sources` the files its warnings point into.
fn evaluate_in(
    sources: &mut Sources,
    store_dir: &str,
    profile: &ProfileArgs,
    allow_unpinned: bool,
    lock: Option<Arc<crate::lock::LockState>>,
    cached: bool,
) -> Result<Vec<Derivation>, i32> {
    let mut options = profile.eval_options(sources)?;
    let release = crate::derive::release_name(&profile.profile);
    let system = crate::derive::system();
    let cache = match (std::path::Path::new(store_dir).parent(), &lock) {
        (Some(root), Some(lock)) if cached => EvalCache::open(&Context {
            root,
            profile: &profile.profile,
            options: &options,
            store_dir,
            system: &system,
            allow_unpinned,
            release: &release,
            lock,
        })
        .map(|cache| (cache, lock.clone())),
        _ => None,
    };
    if let Some((cache, lock)) = &cache {
        if let Some(derivations) = cache.lookup(sources, lock) {
            return Ok(derivations);
        }
    }
    options.store = Some((
        StoreMode {
            store_dir: store_dir.to_owned(),
            system,
            profile_dirs: Vec::new(),
            allow_unpinned,
            lock: lock.clone(),
        },
        release,
    ));
    let evaluation =
        evaluate(sources, &profile.profile, &options).map_err(|e| report::error(sources, &e))?;
    if let Some((cache, lock)) = &cache {
        cache.record(sources, &evaluation, lock);
    }
    Ok(evaluation.derivations)
}

/// The part names a derivation depends on, among `drvs`.
fn deps(drv: &Derivation, drvs: &[Derivation]) -> Vec<String> {
    drvs.iter()
        .filter(|d| d.path != drv.path && drv.inputs.references.contains(&d.path.to_string()))
        .map(|d| d.name().to_owned())
        .collect()
}

pub fn plan(store_args: &StoreArgs, args: PlanArgs) -> i32 {
    let store_dir = store_args.root().join("store");
    let (drvs, unpinned) = match locked_derivations(
        &store_dir.to_string_lossy(),
        &args.profile,
        args.allow_unpinned,
        args.frozen,
        true,
    ) {
        Ok(d) => d,
        Err(code) => return code,
    };
    // planning writes nothing: a store that does not exist yet has nothing built
    let store = if store_args.root().join("var/db.sqlite").exists() {
        match Store::open(&store_args.root()) {
            Ok(s) => Some(s),
            Err(e) => return report::failure(&e.to_string()),
        }
    } else {
        None
    };
    let mut rows = Vec::new();
    for d in &drvs {
        if let Some(why) = d.refusal() {
            report::warn(&format!(
                "part `{}` plans, but `build` refuses it: {why}",
                d.name()
            ));
        }
        let built = match &store {
            Some(s) => match s.is_valid(&d.path) {
                Ok(v) => v,
                Err(e) => return report::failure(&e.to_string()),
            },
            None => false,
        };
        rows.push((d, built));
    }
    let mut out = String::new();
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(d, built)| {
                let mut row = serde_json::json!({
                    "part": d.name(),
                    "hash": d.path.hash_part(),
                    "path": store_dir.join(d.path.to_string()),
                    "recipe": d.recipe().name(),
                    "deps": deps(d, &drvs),
                    "built": built,
                    "unpinned": unpinned.contains(d.name()),
                });
                if let Some(why) = d.refusal() {
                    row["refusal"] = why.into();
                }
                if d.recipe() == slapstore_store::Recipe::Release {
                    // where the release's instance profile comes from (null: it has none)
                    row["instance-profile"] = d
                        .option(crate::derive::INSTANCE_PROFILE_FROM)
                        .map_or(serde_json::Value::Null, Into::into);
                }
                row
            })
            .collect();
        out = format!("{:#}\n", serde_json::Value::Array(list));
    } else {
        let width = drvs.iter().map(|d| d.name().len()).max().unwrap_or(0);
        for (d, built) in &rows {
            let state = match (built, d.refusal()) {
                (true, _) => "built",
                (false, Some(_)) => "refused",
                (false, None) => "to build",
            };
            out.push_str(&format!(
                "{:width$}  {:17}  {:8}  {}\n",
                d.name(),
                d.recipe().name(),
                state,
                store_dir.join(d.path.to_string()).display(),
            ));
        }
    }
    super::print(&out)
}

pub fn build(store_args: &StoreArgs, args: BuildArgs) -> i32 {
    let store = match Store::open(&store_args.root()) {
        Ok(s) => s,
        Err(e) => return report::failure(&e.to_string()),
    };
    let store_dir = store.store_dir();
    let drvs = match locked_derivations(
        &store_dir.to_string_lossy(),
        &args.profile,
        args.allow_unpinned,
        args.frozen,
        false,
    ) {
        Ok((d, _)) => d,
        Err(code) => return code,
    };
    let options = match super::build_options(store_args, &store) {
        Ok(shared) => BuildOptions {
            keep_going: args.keep_going,
            offline: args.offline,
            allow_unpinned: args.allow_unpinned,
            ..shared
        },
        Err(code) => return code,
    };
    let interrupts = match super::interrupts::Interrupts::start() {
        Ok(i) => i,
        Err(code) => return code,
    };
    let progress = super::progress::Progress::new(drvs.len(), store_args.quiet)
        .with_logs(store.root().join("var/log"), args.print_build_logs);
    let outcome = build::build(&store, &drvs, &options, &progress);
    drop(progress);
    if let Some(code) = interrupts.stopped(Some(outcome.built.len())) {
        return code;
    }
    let Some(release) = drvs.last() else {
        return report::failure("the profile has no release");
    };
    if !outcome.failed.is_empty() {
        report_failures(
            &outcome,
            drvs.len(),
            store_args.verbose,
            args.print_build_logs,
        );
        return report::FAILED;
    }
    // installed: a gc root until `slapstore software remove` (the release is still this
    // process's temporary root, so no collection took it meanwhile)
    if let Err(e) = slapstore_store::roots::install(&store, &release.path, &args.profile.profile) {
        return report::store_error(&e);
    }
    let release_path = store_dir.join(release.path.to_string());
    let out = if args.json {
        let parts: serde_json::Map<String, serde_json::Value> = drvs
            .iter()
            .map(|d| {
                (
                    d.name().to_owned(),
                    store_dir
                        .join(d.path.to_string())
                        .display()
                        .to_string()
                        .into(),
                )
            })
            .collect();
        let built: Vec<String> = outcome
            .built
            .iter()
            .map(|p| store_dir.join(p.to_string()).display().to_string())
            .collect();
        format!(
            "{:#}\n",
            serde_json::json!({"release": release_path, "built": built, "parts": parts})
        )
    } else {
        format!("{}\n", release_path.display())
    };
    let _ = std::io::stderr().flush();
    super::print(&out)
}

/// Says why the build failed, once per failed part: its error, the last lines of its log
/// (unless they were streamed) and how to see the whole log; then what was done and not.
fn report_failures(outcome: &build::Outcome, total: usize, verbose: bool, streamed: bool) {
    use slapstore_store::StoreError;
    let mut skipped = 0;
    for (part, e) in &outcome.failed {
        match e {
            StoreError::DependencyFailed { .. } => {
                skipped += 1;
                if verbose {
                    report::error_line(&e.to_string(), None);
                }
            }
            StoreError::BuildFailed { log, .. } => {
                let mut message = e.to_string();
                if !streamed {
                    if let Some(tail) = log_tail(log, LOG_TAIL_LINES) {
                        message.push_str("\n  last lines of its log:");
                        for line in tail {
                            message.push_str(&format!("\n  | {line}"));
                        }
                    }
                }
                let hint = format!("the whole log: `slapstore log {part}`");
                report::error_line(&message, Some(&hint));
            }
            _ => report::error_line(&e.to_string(), report::hint(e).as_deref()),
        }
    }
    let failed = outcome.failed.len() - skipped;
    let mut counts = vec![format!("{failed} failed")];
    if skipped > 0 {
        counts.push(format!("{skipped} skipped (dependencies failed)"));
    }
    counts.push(format!("{} built", outcome.built.len()));
    if outcome.valid > 0 {
        counts.push(format!("{} already built", outcome.valid));
    }
    let not_started =
        total.saturating_sub(outcome.failed.len() + outcome.built.len() + outcome.valid);
    if not_started > 0 {
        counts.push(format!(
            "{not_started} not started (`--keep-going` builds them)"
        ));
    }
    report::error_line(&counts.join(", "), None);
}

/// The last `n` lines of the log at `path`; `None` if it cannot be read or is empty.
fn log_tail(path: &std::path::Path, n: usize) -> Option<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    // the tail of a big log is in its last 64 KiB
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 << 10)))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let lines = &lines[lines.len().saturating_sub(n)..];
    (!lines.is_empty()).then(|| lines.iter().map(|l| l.to_string()).collect())
}
