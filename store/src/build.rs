//! Building derivations: in dependency order, independent ones in parallel, each exactly once
//! across processes.
//!
//! One derivation ([`realise`]): take its lock (`var/lock/<hash>.lock`), re-check that it is
//! still not valid (another process may have built it meanwhile), remove what a crashed build
//! left, run the recipe with a fresh scratch directory and log, then canonicalise, hash and scan
//! the output, flush the filesystem once, and register it with its references in one
//! transaction. Until that transaction commits the path is not valid, and nothing uses it.
//!
//! Where the output is written: under the scratch directory (`var/tmp/<path>/out`), the finished
//! tree renamed into `store/`, so that it appears whole or not at all. Recipes whose result does
//! not depend on where it lies (downloads, templates, the release) just write there. Compiled
//! software bakes its prefix into what it builds (rpaths, scripts, config), so the commands of
//! `cmmi` and `shell` run in the build [`Sandbox`](crate::sandbox), which binds that scratch
//! directory at the output's store path for their eyes only. Without the sandbox
//! ([`BuildOptions::sandbox`] off), they write at the final path, under the lock, as Nix does
//! without one; a build that dies then leaves an invalid path there, which the next build of
//! that derivation (or gc) removes first.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::db::{PathRow, Registration};
use crate::derivation::{Derivation, Recipe};
use crate::error::{io_error, Result, StoreError};
use crate::fetch::Fetcher;
use crate::output::{self, remove_tree, sync_filesystem};
use crate::recipes::{self, Context};
use crate::references::Candidates;
use crate::store::Store;
use crate::StorePath;

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Derivations built at once.
    pub jobs: usize,
    /// Go on with what does not depend on a failed derivation.
    pub keep_going: bool,
    /// Refuse network downloads (the download cache still serves).
    pub offline: bool,
    /// Accept remote sources without a checksum.
    pub allow_unpinned: bool,
    /// Binary caches to ask before building.
    pub substituter: Option<crate::cache::Substituter>,
    /// How long one download may take in all.
    pub download_deadline: std::time::Duration,
    /// Run build commands in the build sandbox (`crate::sandbox`).
    pub sandbox: bool,
    /// Run sandboxed build commands as users of this pool (`crate::users`); root only.
    pub build_users: Option<crate::users::UserPool>,
}

/// Whether builds are sandboxed unless told otherwise: yes, but for `SLAPSTORE_SANDBOX=0`
/// (or `false`, `no`, `off`).
pub fn sandbox_by_default() -> bool {
    !matches!(
        std::env::var("SLAPSTORE_SANDBOX").as_deref(),
        Ok("0" | "false" | "no" | "off")
    )
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            keep_going: false,
            offline: false,
            allow_unpinned: false,
            substituter: None,
            download_deadline: crate::fetch::DOWNLOAD_DEADLINE,
            sandbox: sandbox_by_default(),
            build_users: None,
        }
    }
}

/// What happened to one derivation, for progress displays.
#[derive(Debug)]
pub enum Event<'a> {
    /// Already valid: nothing to do.
    Valid(&'a Derivation),
    Started(&'a Derivation),
    Built {
        drv: &'a Derivation,
        millis: u64,
    },
    /// Fetched from a binary cache instead of built.
    Substituted {
        drv: &'a Derivation,
        from: &'a str,
    },
    /// Something to tell, such as a cache passed over.
    Warning {
        drv: &'a Derivation,
        message: &'a str,
    },
    Failed {
        drv: &'a Derivation,
        error: &'a StoreError,
    },
}

/// Receives [`Event`]s (from several threads).
pub trait Observer: Sync {
    fn event(&self, event: Event);
}

/// The result of [`build`].
#[derive(Debug, Default)]
pub struct Outcome {
    /// Paths built by this call.
    pub built: Vec<StorePath>,
    /// Derivations found valid already.
    pub valid: usize,
    /// Derivations that failed or were not built because a dependency failed, with why.
    pub failed: Vec<(String, StoreError)>,
}

/// Builds every derivation of `drvs` that is not valid yet. `drvs` must list a derivation's
/// dependencies (the derivations whose paths it references) before it, as the frontend does.
pub fn build(
    store: &Store,
    drvs: &[Derivation],
    options: &BuildOptions,
    observer: &dyn Observer,
) -> Outcome {
    let fetcher = Fetcher::new(store.cache_dir())
        .offline(options.offline)
        .allow_unpinned(options.allow_unpinned)
        .deadline(options.download_deadline);
    let graph = Graph::new(drvs);
    let state = Mutex::new(State {
        ready: (0..drvs.len())
            .filter(|&i| graph.deps[i].is_empty())
            .collect(),
        waiting: graph.deps.iter().map(Vec::len).collect(),
        dead: vec![false; drvs.len()],
        finished: 0,
        running: 0,
        stop: false,
        outcome: Outcome::default(),
    });
    let wake = Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| loop {
                let i = {
                    let mut s = lock(&state);
                    loop {
                        if s.stop || s.finished == drvs.len() || crate::interrupt::interrupted() {
                            return;
                        }
                        if let Some(i) = s.ready.pop_front() {
                            s.running += 1;
                            break i;
                        }
                        if s.running == 0 {
                            // nothing ready, nothing running: only failed dependencies are left
                            return;
                        }
                        s = wake.wait(s).unwrap_or_else(|p| p.into_inner());
                    }
                };
                let result =
                    match prepare(store, &drvs[i], &fetcher, observer, false, How::of(options)) {
                        Ok(Some(p)) => publish(store, vec![p], observer).map(|()| true),
                        Ok(None) => Ok(false),
                        Err(e) => Err(e),
                    };
                let mut s = lock(&state);
                s.running -= 1;
                s.finished += 1;
                match result {
                    Ok(built) => {
                        if built {
                            s.outcome.built.push(drvs[i].path.clone());
                        } else {
                            s.outcome.valid += 1;
                        }
                        for &d in &graph.dependents[i] {
                            s.waiting[d] -= 1;
                            if s.waiting[d] == 0 {
                                s.ready.push_back(d);
                            }
                        }
                    }
                    Err(error) => {
                        observer.event(Event::Failed {
                            drv: &drvs[i],
                            error: &error,
                        });
                        s.outcome.failed.push((drvs[i].name().to_owned(), error));
                        for d in graph.transitive_dependents(i) {
                            if std::mem::replace(&mut s.dead[d], true) {
                                continue;
                            }
                            s.finished += 1;
                            s.outcome.failed.push((
                                drvs[d].name().to_owned(),
                                StoreError::DependencyFailed {
                                    part: drvs[d].name().to_owned(),
                                    dependency: drvs[i].name().to_owned(),
                                },
                            ));
                        }
                        if !options.keep_going {
                            s.stop = true;
                        }
                    }
                }
                wake.notify_all();
            });
        }
    });
    state
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .outcome
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct State {
    ready: VecDeque<usize>,
    /// Dependencies not yet built, per derivation.
    waiting: Vec<usize>,
    /// Not to be built: a dependency failed.
    dead: Vec<bool>,
    finished: usize,
    running: usize,
    stop: bool,
    outcome: Outcome,
}

/// Dependencies between the derivations of one build, by index.
struct Graph {
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

impl Graph {
    fn new(drvs: &[Derivation]) -> Graph {
        let index: std::collections::HashMap<String, usize> = drvs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.path.to_string(), i))
            .collect();
        let mut deps = vec![Vec::new(); drvs.len()];
        let mut dependents = vec![Vec::new(); drvs.len()];
        for (i, d) in drvs.iter().enumerate() {
            for r in &d.inputs.references {
                if let Some(&j) = index.get(r) {
                    if j != i {
                        deps[i].push(j);
                        dependents[j].push(i);
                    }
                }
            }
        }
        Graph { deps, dependents }
    }

    fn transitive_dependents(&self, i: usize) -> Vec<usize> {
        let mut seen = HashSet::new();
        let mut stack = self.dependents[i].clone();
        while let Some(d) = stack.pop() {
            if seen.insert(d) {
                stack.extend(&self.dependents[d]);
            }
        }
        let mut out: Vec<usize> = seen.into_iter().collect();
        out.sort_unstable();
        out
    }
}

/// Whether a recipe runs commands, which see the output at its store path (module docs).
fn runs_commands(recipe: Recipe) -> bool {
    matches!(recipe, Recipe::Cmmi | Recipe::Shell | Recipe::Script)
}

/// Builds one derivation unless it is valid; `Ok(true)` if this call built it.
pub fn realise(
    store: &Store,
    drv: &Derivation,
    fetcher: &Fetcher,
    observer: &dyn Observer,
) -> Result<bool> {
    match prepare(store, drv, fetcher, observer, false, How::default())? {
        None => Ok(false),
        Some(prepared) => {
            publish(store, vec![prepared], observer)?;
            Ok(true)
        }
    }
}

/// Builds the derivations of `drvs` that are not valid, in parallel, and publishes them
/// together: one `syncfs`, one transaction. For many small independent outputs (the
/// generations of many instances), where a flush and a commit per output would dominate.
/// `drvs` must not depend on each other. Returns the paths built.
pub fn realise_batch(
    store: &Store,
    drvs: &[Derivation],
    fetcher: &Fetcher,
    observer: &dyn Observer,
) -> Result<Vec<StorePath>> {
    use rayon::prelude::*;
    let prepared: Vec<Option<Prepared>> = drvs
        .par_iter()
        .map(|d| prepare(store, d, fetcher, observer, false, How::default()))
        .collect::<Result<_>>()?;
    let prepared: Vec<Prepared> = prepared.into_iter().flatten().collect();
    let built = prepared.iter().map(|p| p.drv.path.clone()).collect();
    publish(store, prepared, observer)?;
    Ok(built)
}

/// Rebuilds a valid path whose contents were damaged (`verify --repair`): the damaged tree is
/// removed and the derivation built again at its path, under its lock; its recorded content hash
/// and size are updated (its references stay: the same derivation refers to the same paths).
pub fn repair(
    store: &Store,
    drv: &Derivation,
    fetcher: &Fetcher,
    observer: &dyn Observer,
) -> Result<()> {
    let Some(p) = prepare(store, drv, fetcher, observer, true, How::default())? else {
        return Ok(());
    };
    sync_filesystem(&store.store_dir())?;
    if p.out != p.final_path {
        remove_tree(&p.final_path)?;
        output::rename_into_place(&p.out, &p.final_path)?;
        output::fsync_dir(&store.store_dir())?;
    }
    if !p.staged.is_empty() {
        store.db().register(&p.staged)?;
    }
    store
        .db()
        .update_output(&drv.path.to_string(), &p.info.content_hash, p.info.size)?;
    remove_tree(&p.scratch)?;
    observer.event(Event::Built {
        drv,
        millis: p.start.elapsed().as_millis() as u64,
    });
    Ok(())
}

/// How [`prepare`] builds: as [`BuildOptions`] say, or by default (no binary cache, the sandbox
/// unless `SLAPSTORE_SANDBOX=0`, no build users).
#[derive(Clone, Copy)]
struct How<'o> {
    substituter: Option<&'o crate::cache::Substituter>,
    sandbox: bool,
    build_users: Option<&'o crate::users::UserPool>,
}

impl<'o> How<'o> {
    fn of(options: &'o BuildOptions) -> How<'o> {
        How {
            substituter: options.substituter.as_ref(),
            sandbox: options.sandbox,
            build_users: options.build_users.as_ref(),
        }
    }
}

impl Default for How<'_> {
    fn default() -> Self {
        How {
            substituter: None,
            sandbox: sandbox_by_default(),
            build_users: None,
        }
    }
}

/// A derivation built and finished, not yet published: it holds its lock.
struct Prepared<'a> {
    drv: &'a Derivation,
    _lock: crate::store::Lock,
    out: std::path::PathBuf,
    final_path: std::path::PathBuf,
    scratch: std::path::PathBuf,
    info: output::OutputInfo,
    start: Instant,
    /// Fetched from a binary cache (already reported).
    substituted: bool,
    /// Paths the recipe staged in `store/` (`add::stage`), registered before the output.
    staged: Vec<Registration>,
}

/// Builds `drv` (unless valid) up to a finished output: steps 1–4 of the module docs.
fn prepare<'a>(
    store: &Store,
    drv: &'a Derivation,
    fetcher: &Fetcher,
    observer: &dyn Observer,
    repair: bool,
    how: How,
) -> Result<Option<Prepared<'a>>> {
    let How {
        substituter,
        sandbox,
        build_users,
    } = how;
    // rooted before it is looked at: a collection running now cannot take it (or its inputs,
    // rooted when they were looked at) away
    store.add_temp_roots([&drv.path])?;
    if !repair && store.is_valid(&drv.path)? {
        observer.event(Event::Valid(drv));
        return Ok(None);
    }
    let lock = store.lock(&drv.path.hash_part())?;
    if !repair && store.is_valid(&drv.path)? {
        observer.event(Event::Valid(drv));
        return Ok(None);
    }
    let start = Instant::now();
    let final_path = store.path_of(&drv.path);
    let scratch = store.scratch_dir(&drv.path);
    // what a build killed earlier left behind: its commands, its output, its scratch
    recipes::kill_leftover(&scratch);
    remove_tree(&final_path)?;
    remove_tree(&scratch)?;
    fs::create_dir_all(&scratch).map_err(|e| io_error(&scratch, e))?;
    if let Some(sub) = substituter.filter(|s| !s.is_empty()) {
        if let Some(info) = substitute(store, drv, sub, &scratch, observer)? {
            return Ok(Some(Prepared {
                drv,
                _lock: lock,
                out: scratch.join("substituted"),
                final_path,
                scratch,
                info,
                start,
                substituted: true,
                staged: Vec::new(),
            }));
        }
    }
    observer.event(Event::Started(drv));
    let log_path = store.log_path(&drv.path);
    // 0644 whatever the umask (`store.rs`)
    let mut log = std::os::unix::fs::OpenOptionsExt::mode(
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        0o644,
    )
    .open(&log_path)
    .map_err(|e| io_error(&log_path, e))?;
    let in_place = runs_commands(drv.recipe()) && !sandbox;
    let out = if in_place {
        final_path.clone()
    } else {
        scratch.join("out")
    };
    let result = (|| {
        // an egg build installs in the sandbox too, but fetches outside it (`recipes/egg.rs`);
        // a gitclone checks out in it, its mirror updated outside (`recipes/gitclone.rs`)
        let sandboxed =
            runs_commands(drv.recipe()) || matches!(drv.recipe(), Recipe::Egg | Recipe::Gitclone);
        // held for the build's life: no other build runs as this user meanwhile
        let mut build_user = None;
        let sandbox = if sandboxed && sandbox {
            fs::create_dir_all(&out).map_err(|e| io_error(&out, e))?;
            let mut sandbox = crate::sandbox::Sandbox::new(
                &scratch,
                &store.store_dir(),
                &final_path,
                &out,
                drv.build.files.values().map(|p| p.as_path()),
            )?;
            if let Some(pool) = build_users {
                let user = crate::users::build_user(pool)?;
                // the output is made empty: the user's without a walk
                std::os::unix::fs::lchown(&out, Some(user.user.uid), Some(user.user.gid))
                    .map_err(|e| io_error(&out, e))?;
                sandbox.run_as(user.user.uid, user.user.gid);
                build_user = Some(user);
            }
            Some(sandbox)
        } else {
            None
        };
        let mut ctx = Context {
            drv,
            out: out.clone(),
            // an egg part's scripts name its own `lib` by its store path too
            store_out: if runs_commands(drv.recipe())
                || drv.recipe() == Recipe::Egg
                || (drv.recipe() == Recipe::Gitclone && sandbox.is_some())
            {
                final_path.clone()
            } else {
                out.clone()
            },
            sandbox,
            scratch: scratch.join("build"),
            log: &mut log,
            log_path: log_path.clone(),
            fetcher,
            store,
            added: Vec::new(),
            staged: Vec::new(),
            python: None,
        };
        fs::create_dir_all(&ctx.scratch).map_err(|e| io_error(&ctx.scratch, e))?;
        recipes::run(&mut ctx)?;
        // the Python host, if one ran, ends before the output is read
        ctx.python.take();
        if build_user.take().is_some() {
            // the build user's files become root's before they are made read-only
            crate::users::give_tree_to_root(&out)?;
        }
        let added = std::mem::take(&mut ctx.added);
        let staged = std::mem::take(&mut ctx.staged);
        if !out.exists() {
            fs::create_dir_all(&out).map_err(|e| io_error(&out, e))?;
        }
        let mut candidates = candidates(store, drv)?;
        candidates.extend(added);
        let info = output::finish(&out, &Candidates::new(candidates))?;
        if drv.recipe() == Recipe::Generation {
            output::make_private(&out)?; // it holds the instance's parameters
        }
        Ok((info, staged))
    })();
    // a build that logged nothing (a generation) leaves no empty log behind
    if result.is_ok() && log.metadata().is_ok_and(|m| m.len() == 0) {
        let _ = fs::remove_file(&log_path);
    }
    match result {
        Ok((info, staged)) => Ok(Some(Prepared {
            drv,
            _lock: lock,
            out,
            final_path,
            scratch,
            info,
            start,
            substituted: false,
            staged,
        })),
        Err(e) => {
            // nothing of a failed build stays but its log
            let _ = remove_tree(&final_path);
            let _ = remove_tree(&scratch);
            Err(e)
        }
    }
}

/// Fetches `drv`'s output from the binary caches into `<scratch>/substituted`, canonical and
/// checked: its content hash must be the signed one, its references valid here. `None` (and
/// warnings) when it cannot be used: the caller builds.
fn substitute(
    store: &Store,
    drv: &Derivation,
    sub: &crate::cache::Substituter,
    scratch: &std::path::Path,
    observer: &dyn Observer,
) -> Result<Option<output::OutputInfo>> {
    let dest = scratch.join("substituted");
    let attempt = sub.substitute(&drv.path, &dest, &scratch.join("download"));
    for message in &attempt.warnings {
        observer.event(Event::Warning {
            drv,
            message: &format!("binary cache passed over: {message}"),
        });
    }
    let Some((info, from)) = attempt.found else {
        return Ok(None);
    };
    let finished = output::finish(&dest, &Candidates::default());
    let problem = match &finished {
        Err(e) => Some(e.to_string()),
        Ok(f) if f.content_hash != info.content_hash => Some(format!(
            "`{from}`: the unpacked output hashes to {}, not the signed {}",
            f.content_hash, info.content_hash
        )),
        Ok(_) => {
            let valid = store.db().valid_among(&info.references)?;
            info.references
                .iter()
                .find(|r| **r != drv.path.to_string() && !valid.contains(*r))
                .map(|r| format!("`{from}`: it refers to `{r}`, which this store does not have"))
        }
    };
    if let Some(message) = problem {
        observer.event(Event::Warning {
            drv,
            message: &format!("binary cache passed over: {message}"),
        });
        remove_tree(&dest)?;
        return Ok(None);
    }
    let mut out = finished?;
    out.references = info
        .references
        .iter()
        .filter_map(|r| StorePath::parse(r).ok())
        .collect();
    observer.event(Event::Substituted { drv, from: &from });
    Ok(Some(out))
}

/// Flushes, moves into place and registers prepared outputs: steps 5–6 of the module docs.
fn publish(store: &Store, prepared: Vec<Prepared>, observer: &dyn Observer) -> Result<()> {
    if prepared.is_empty() {
        return Ok(());
    }
    let result = (|| {
        sync_filesystem(&store.store_dir())?;
        let mut renamed = false;
        for p in &prepared {
            if p.out != p.final_path {
                output::rename_into_place(&p.out, &p.final_path)?;
                renamed = true;
            }
        }
        if renamed {
            output::fsync_dir(&store.store_dir())?;
        }
        // what the recipes staged first: the outputs refer to it
        let mut registrations: Vec<Registration> = prepared
            .iter()
            .flat_map(|p| p.staged.iter().cloned())
            .collect();
        registrations.extend(prepared.iter().map(registration));
        store.db().register(&registrations)
    })();
    for p in &prepared {
        match &result {
            Ok(()) => {
                remove_tree(&p.scratch)?;
                if p.substituted {
                    continue;
                }
                observer.event(Event::Built {
                    drv: p.drv,
                    millis: p.start.elapsed().as_millis() as u64,
                });
            }
            Err(_) => {
                let _ = remove_tree(&p.final_path);
                let _ = remove_tree(&p.scratch);
            }
        }
    }
    result
}

fn registration(p: &Prepared) -> Registration {
    let mut references: Vec<String> = p.info.references.iter().map(|r| r.to_string()).collect();
    if p.drv.recipe() == Recipe::Generation {
        // a generation keeps its release alive whether or not its files mention it
        references.extend(p.drv.inputs.references.iter().cloned());
    }
    references.sort();
    references.dedup();
    Registration {
        row: PathRow {
            name: p.drv.path.to_string(),
            content_hash: p.info.content_hash.clone(),
            size: p.info.size,
            registered: unix_now(),
            build_ms: (!p.substituted).then(|| p.start.elapsed().as_millis() as u64),
            recipe: Some(p.drv.recipe().name().to_owned()),
        },
        references,
        derivation: serde_json::to_string(p.drv).ok(),
    }
}

/// The paths an output may refer to: its own, and the closure of what its derivation refers to.
pub(crate) fn candidates(store: &Store, drv: &Derivation) -> Result<Vec<StorePath>> {
    let db = store.db();
    let mut seen: HashSet<String> = HashSet::new();
    let mut stack: Vec<String> = drv.inputs.references.iter().cloned().collect();
    while let Some(p) = stack.pop() {
        if seen.insert(p.clone()) {
            stack.extend(db.references(&p)?);
        }
    }
    let mut out = vec![drv.path.clone()];
    for p in seen {
        out.push(StorePath::parse(&p)?);
    }
    Ok(out)
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
