//! `instance request` and `instance reconcile`: the local master's requests, and deploying what
//! it asks of every instance, as `slapos node instance` does periodically.
//!
//! A request ([`Context::request`]) records a release, software type or parameters asked of an
//! instance, deploying nothing; a shared request ([`Context::request_shared`]) records a
//! shared (slave) instance, which its host's next reconciliation renders into its
//! `slave-instance-list`. A reconciliation makes each instance what the master asks: the
//! release its software gives now (each software evaluated once for all its instances), its
//! requested software type and parameters, the connection parameters of what it requested,
//! and its requested state (services started or stopped). An instance none of whose inputs
//! changed since the last reconciliation is not rendered at all: the fingerprint of its inputs
//! and the generation they gave are kept in `<root>/var/instances/reconcile.json`
//! (`crate::fingerprint`, as `slapstore node` keeps its own), read and compared in memory after
//! one read transaction. An instance whose inputs changed is rendered (in parallel with the
//! others); it gets a new generation only if the render differs from its current one, and is
//! otherwise left as it was (nothing written, no command run). Instances that requested others
//! are reconciled after them, and rounds repeat until nothing changes, so a requester sees
//! what its children publish now.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use slapstore_store::master::{self, Request, Shared, State};
use slapstore_store::partition::InstanceName;
use slapstore_store::StorePath;

use super::{Context, InstanceError, Parameters, Result};
use crate::services::{Supervisor, Target};

/// What a reconciliation did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Instances that got a new generation (its number).
    pub upgraded: Vec<(String, i64)>,
    /// Instances rendered (an input changed) whose render is their current generation.
    pub unchanged: Vec<String>,
    /// How many instances were not rendered: nothing they depend on changed.
    pub untouched: usize,
    /// Instances whose services were started (how many services), or stopped.
    pub started: Vec<(String, usize)>,
    pub stopped: Vec<String>,
    /// Pending requests dropped: a generation made since (an upgrade, a rollback) superseded them.
    pub superseded: Vec<String>,
    /// Instances that could not be reconciled, and why (the others were).
    pub failed: Vec<(String, InstanceError)>,
}

/// What one instance was last reconciled with: the fingerprint of its inputs and the
/// generation they gave.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Done {
    inputs: String,
    generation: String,
}

/// The fingerprints of the last reconciliation, by instance.
type Memory = BTreeMap<String, Done>;

/// Everything a render of an instance depends on but the release's own files (which its store
/// path names) and the state its partition keeps.
#[derive(serde::Serialize)]
struct Inputs<'a> {
    release: &'a str,
    software_url: &'a str,
    software_type: &'a str,
    parameters: &'a Parameters,
    partition: i64,
    title: &'a str,
    root_title: &'a str,
    state: &'static str,
    published: &'a Parameters,
    children: BTreeMap<&'a str, &'a Parameters>,
    shared: Vec<serde_json::Value>,
    computer: (&'a str, &'a [String], &'a [String], &'a str),
}

/// How many rounds a reconciliation makes at most (a requester is reconciled again after what
/// it requested changed; requests are at most 8 deep).
const MAX_ROUNDS: usize = 10;

/// What is asked of one instance now.
struct Wanted<'a> {
    name: InstanceName,
    instance: &'a master::Instance,
    software_url: &'a str,
    software_type: &'a str,
    parameters: &'a Parameters,
    /// How many requesters are above it.
    depth: usize,
}

impl Context<'_> {
    fn memory_file(&self) -> std::path::PathBuf {
        self.store.root().join("var/instances/reconcile.json")
    }

    /// Records what is asked of `name` from now on (`instance request`, as `slapos request`):
    /// `software` (else the one asked until now), `software_type` (likewise), and `parameters`
    /// over those asked until now. Nothing is deployed: `instance reconcile` does that.
    pub fn request(
        &self,
        name: &InstanceName,
        software: Option<&str>,
        parameters: &Parameters,
        software_type: Option<&str>,
    ) -> Result<Request> {
        let _lock = self.store.lock(&format!("instance-{}", name.as_str()))?;
        let instance = self
            .store
            .db()
            .master_instance(name.as_str())?
            .ok_or_else(|| InstanceError::Usage(format!("no instance `{}`", name.as_str())))?;
        let software_url = match software {
            Some(s) if self.names_store_path(s) => {
                self.release(s)?;
                self.software_url(s)
            }
            Some(s) if !s.contains("://") && !Path::new(s).is_file() => {
                return Err(InstanceError::Usage(format!(
                    "`--software {s}`: no such profile or release"
                )))
            }
            Some(s) => self.software_url(s),
            None => instance
                .pending()
                .map_or_else(|| instance.software_url.clone(), |r| r.software_url.clone()),
        };
        let pending = instance.pending();
        let mut merged = pending
            .map_or(&instance.parameters, |r| &r.parameters)
            .clone();
        merged.extend(parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        let request = Request {
            software_url,
            software_type: software_type
                .map(str::to_owned)
                .or(pending.map(|r| r.software_type.clone()))
                .unwrap_or_else(|| instance.software_type.clone()),
            parameters: merged,
            base: instance.current,
        };
        let deployed = request.software_url == instance.software_url
            && request.software_type == instance.software_type
            && request.parameters == instance.parameters;
        // asking for what is deployed leaves nothing pending
        self.store
            .db()
            .set_request(name.as_str(), (!deployed).then_some(&request))?;
        Ok(request)
    }

    /// Records the shared (slave) instance `name` on `host` (as `slapos request --slave`; its
    /// host moved there if it had another): its software type (else the one asked until now, or
    /// `default`) and `parameters` over those asked until now. Nothing is deployed: the host's
    /// next reconciliation gives it in its `slave-instance-list`.
    pub fn request_shared(
        &self,
        name: &InstanceName,
        host: &InstanceName,
        parameters: &Parameters,
        software_type: Option<&str>,
    ) -> Result<Shared> {
        let mut db = self.store.db();
        if db.instance(host.as_str())?.is_none() {
            return Err(InstanceError::Usage(format!(
                "no instance `{}`",
                host.as_str()
            )));
        }
        if db.instance(name.as_str())?.is_some() {
            return Err(InstanceError::Usage(format!(
                "`{}` is an instance with a partition, not a shared one",
                name.as_str()
            )));
        }
        let before = db.shared(name.as_str())?;
        let mut merged = before
            .as_ref()
            .map(|s| s.parameters.clone())
            .unwrap_or_default();
        merged.extend(parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        let shared = Shared {
            name: name.as_str().to_owned(),
            host: host.as_str().to_owned(),
            software_type: software_type
                .map(str::to_owned)
                .or(before.map(|s| s.software_type))
                .unwrap_or_else(|| master::DEFAULT_SOFTWARE_TYPE.to_owned()),
            parameters: merged,
        };
        db.set_shared(&shared, slapstore_store::build::unix_now())?;
        Ok(shared)
    }

    /// Makes the instances (`only`, else all) what the local master asks of them (see the
    /// module's documentation); `full` renders each one whatever its fingerprint says.
    pub fn reconcile(&self, only: Option<&[InstanceName]>, full: bool) -> Result<Reconciled> {
        if let Some(names) = only {
            let db = self.store.db();
            for n in names {
                if db.instance(n.as_str())?.is_none() {
                    return Err(InstanceError::Usage(format!(
                        "no instance `{}`",
                        n.as_str()
                    )));
                }
            }
        }
        let file = self.memory_file();
        let mut memory: Memory = crate::fingerprint::load(&file);
        let before = memory.clone();
        let mut done = Reconciled::default();
        let mut releases: BTreeMap<String, std::result::Result<StorePath, String>> =
            BTreeMap::new();
        let mut failed: BTreeMap<String, InstanceError> = BTreeMap::new();
        let mut upgraded: std::collections::BTreeSet<String> = Default::default();
        // the instances rendered (or failed), the others being untouched
        let mut touched: std::collections::BTreeSet<String> = Default::default();
        let mut seen = 0;
        for round in 0..MAX_ROUNDS {
            let (all, shared) = self
                .store
                .db()
                .snapshot(|db| Ok((db.master_instances()?, db.all_shared()?)))?;
            let wanted = self.wanted(&all, only, &mut done, round == 0)?;
            seen = wanted.len();
            // the software of each release URL, evaluated once
            for w in &wanted {
                if !releases.contains_key(w.software_url) {
                    let release = self.release(w.software_url).map_err(|e| describe(&e));
                    releases.insert(w.software_url.to_owned(), release);
                }
            }
            let children = children(&all);
            let by_name: BTreeMap<&str, &master::Instance> =
                all.iter().map(|i| (i.name.as_str(), i)).collect();
            let mut to_render = Vec::new();
            for w in wanted {
                if failed.contains_key(w.name.as_str()) {
                    continue;
                }
                let release = match &releases[w.software_url] {
                    Ok(r) => r.clone(),
                    Err(message) => {
                        failed.insert(
                            w.name.as_str().to_owned(),
                            InstanceError::Usage(format!(
                                "the software `{}` of `{}`: {message}",
                                w.software_url,
                                w.name.as_str()
                            )),
                        );
                        continue;
                    }
                };
                let inputs = crate::fingerprint::fingerprint(&Inputs {
                    release: &release.to_string(),
                    software_url: w.software_url,
                    software_type: w.software_type,
                    parameters: w.parameters,
                    partition: w.instance.partition,
                    title: &w.instance.title,
                    root_title: root_title(&by_name, w.instance),
                    state: w.instance.requested_state.as_str(),
                    published: &w.instance.connection,
                    children: children
                        .get(w.instance.name.as_str())
                        .cloned()
                        .unwrap_or_default(),
                    shared: shared
                        .iter()
                        .filter(|s| s.host == w.instance.name)
                        .map(Shared::entry)
                        .collect(),
                    computer: (
                        &self.computer.id,
                        &self.computer.ipv4,
                        &self.computer.ipv6,
                        &self.computer.server_url,
                    ),
                });
                let same = memory.get(w.name.as_str())
                    == Some(&Done {
                        inputs: inputs.clone(),
                        generation: w.instance.generation.clone(),
                    });
                if same && !(full && round == 0) {
                    if !self.shows(&w.name, &w.instance.generation) {
                        // a switch a killed operation left undone
                        if let Err(e) = self.settle(&w.name) {
                            failed.insert(w.name.as_str().to_owned(), e);
                        }
                    }
                    continue;
                }
                to_render.push((w, release, inputs));
            }
            if to_render.is_empty() {
                break;
            }
            // rendered in parallel, deployed one by one, what others requested first
            let mut renders: Vec<Option<Result<bool>>> = to_render
                .par_iter()
                .map(|(w, release, _)| Some(self.renders_current(w, release)))
                .collect();
            let mut order: Vec<usize> = (0..to_render.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(to_render[i].0.depth));
            let mut changed = false;
            for i in order {
                let (w, release, inputs) = &to_render[i];
                let name = w.name.as_str().to_owned();
                touched.insert(name.clone());
                let same = match renders[i].take() {
                    Some(Ok(same)) => same,
                    Some(Err(e)) => {
                        failed.insert(name, e);
                        continue;
                    }
                    None => continue,
                };
                let generation = if same {
                    if !upgraded.contains(&name) && !done.unchanged.contains(&name) {
                        done.unchanged.push(name.clone());
                    }
                    w.instance.generation.clone()
                } else {
                    let upgrade = self.upgrade_with(
                        &w.name,
                        w.software_url,
                        w.parameters,
                        Some(w.software_type),
                        false,
                        &[],
                        None,
                        Some(release),
                    );
                    match upgrade {
                        Ok(u) => {
                            if w.instance.pending().is_some() {
                                self.store.db().set_request(&name, None)?;
                            }
                            changed = true;
                            done.unchanged.retain(|n| *n != name);
                            done.upgraded.retain(|(n, _)| *n != name);
                            done.upgraded.push((name.clone(), u.generation.number));
                            upgraded.insert(name.clone());
                            u.generation.path
                        }
                        Err(e) => {
                            failed.insert(name, e);
                            continue;
                        }
                    }
                };
                memory.insert(
                    name,
                    Done {
                        inputs: inputs.clone(),
                        generation,
                    },
                );
            }
            if !changed {
                break;
            }
        }
        touched.extend(failed.keys().cloned());
        done.untouched = seen.saturating_sub(touched.len());
        // instances gone since are forgotten
        let names: std::collections::HashSet<String> = self
            .store
            .db()
            .instances()?
            .into_iter()
            .map(|r| r.name)
            .collect();
        memory.retain(|n, _| names.contains(n));
        for n in failed.keys() {
            memory.remove(n);
        }
        if memory != before {
            crate::fingerprint::save(&file, &memory).map_err(|e| {
                InstanceError::Usage(format!("cannot write `{}`: {e}", file.display()))
            })?;
        }
        let problems = self.services(only, &upgraded, &failed, &mut done)?;
        failed.extend(problems);
        done.failed = failed.into_iter().collect();
        Ok(done)
    }

    /// What is asked of each instance (of `only`), requesters after what they requested; the
    /// requests a newer generation superseded are dropped (`first` round only).
    fn wanted<'i>(
        &self,
        all: &'i [master::Instance],
        only: Option<&[InstanceName]>,
        done: &mut Reconciled,
        first: bool,
    ) -> Result<Vec<Wanted<'i>>> {
        let by_name: BTreeMap<&str, &master::Instance> =
            all.iter().map(|i| (i.name.as_str(), i)).collect();
        let mut out = Vec::new();
        for i in all {
            // a name recorded by an older version that today's rules refuse is left alone
            let Ok(name) = InstanceName::new(&i.name) else {
                continue;
            };
            if only.is_some_and(|o| !o.contains(&name)) {
                continue;
            }
            if first && i.request.is_some() && i.pending().is_none() {
                self.store.db().set_request(&i.name, None)?;
                done.superseded.push(i.name.clone());
            }
            let (software_url, software_type, parameters) = match i.pending() {
                Some(r) => (&r.software_url, &r.software_type, &r.parameters),
                None => (&i.software_url, &i.software_type, &i.parameters),
            };
            let mut depth = 0;
            let mut at = i;
            while let Some(parent) = at.parent.as_deref().and_then(|p| by_name.get(p)) {
                depth += 1;
                at = parent;
                if depth > super::MAX_REQUEST_DEPTH {
                    break;
                }
            }
            out.push(Wanted {
                name,
                instance: i,
                software_url,
                software_type,
                parameters,
                depth,
            });
        }
        Ok(out)
    }

    /// Whether the partition's `current` is the generation's output (one `readlink`).
    fn shows(&self, name: &InstanceName, generation: &str) -> bool {
        std::fs::read_link(self.partition(name).join("current"))
            .is_ok_and(|t| t == self.store.store_dir().join(generation))
    }

    /// Whether rendering `w` now gives its current generation (same output, software type and
    /// URL); nothing is written.
    fn renders_current(&self, w: &Wanted, release: &StorePath) -> Result<bool> {
        let i = w.instance;
        if w.software_type != i.software_type || w.software_url != i.software_url {
            return Ok(false);
        }
        let placement = self.placement(&w.name, w.software_type, w.software_url)?;
        let rendered = self.render(&w.name, release, w.parameters, &placement)?;
        Ok(rendered.drv.path.to_string() == i.generation)
    }

    /// Makes the services match the requested states: started (or refreshed after an upgrade)
    /// where requested started and there are some, stopped where requested stopped; one
    /// `supervisorctl update` for all. The instances whose services could not be, and why.
    fn services(
        &self,
        only: Option<&[InstanceName]>,
        upgraded: &std::collections::BTreeSet<String>,
        failed: &BTreeMap<String, InstanceError>,
        done: &mut Reconciled,
    ) -> Result<Vec<(String, InstanceError)>> {
        let mut problems = Vec::new();
        let supervisor = Supervisor::new(self.store.root());
        let all = self.store.db().master_instances()?;
        let mut start = Vec::new();
        let mut refresh = Vec::new();
        let mut stop = Vec::new();
        for i in &all {
            let Ok(name) = InstanceName::new(&i.name) else {
                continue;
            };
            if only.is_some_and(|o| !o.contains(&name)) || failed.contains_key(&i.name) {
                continue;
            }
            let running = supervisor.is_started(&i.name);
            let partition = self.partition(&name);
            match i.requested_state {
                State::Started if !running => {
                    match crate::services::services(&i.name, &partition) {
                        Ok(has) if has.is_empty() => {}
                        Ok(_) => start.push(name),
                        Err(m) => problems.push((i.name.clone(), InstanceError::Usage(m))),
                    }
                }
                State::Started if upgraded.contains(&i.name) => refresh.push(name),
                State::Stopped | State::Destroyed if running => stop.push(i.name.clone()),
                _ => {}
            }
        }
        if start.is_empty() && refresh.is_empty() && stop.is_empty() {
            return Ok(problems);
        }
        let mut targets = Vec::new();
        for n in start.iter().chain(&refresh) {
            targets.push(Target {
                instance: n.as_str().to_owned(),
                partition: self.partition(n),
                user: self.store.db().instance_user(n.as_str())?.map(|u| u.name),
            });
        }
        let stop: Vec<&str> = stop.iter().map(String::as_str).collect();
        let _lock = self.store.lock("supervisor")?;
        match supervisor.apply(&targets, &stop) {
            Ok(services) => {
                for (n, s) in start.iter().zip(&services) {
                    done.started.push((n.as_str().to_owned(), s.len()));
                }
                done.stopped.extend(stop.iter().map(|s| s.to_string()));
            }
            Err(m) => {
                for t in &targets {
                    problems.push((t.instance.clone(), InstanceError::Usage(m.clone())));
                }
                for n in &stop {
                    problems.push((n.to_string(), InstanceError::Usage(m.clone())));
                }
            }
        }
        Ok(problems)
    }
}

/// Each requester's children: their connection parameters by the title it requested them as.
fn children(all: &[master::Instance]) -> BTreeMap<&str, BTreeMap<&str, &Parameters>> {
    let mut out: BTreeMap<&str, BTreeMap<&str, &Parameters>> = BTreeMap::new();
    for i in all {
        if let Some(parent) = &i.parent {
            out.entry(parent.as_str())
                .or_default()
                .insert(i.title.as_str(), &i.connection);
        }
    }
    out
}

/// The title of the instance at the root of `i`'s request tree.
fn root_title<'a>(
    by_name: &BTreeMap<&str, &'a master::Instance>,
    i: &'a master::Instance,
) -> &'a str {
    let mut at = i;
    for _ in 0..=super::MAX_REQUEST_DEPTH {
        match at.parent.as_deref().and_then(|p| by_name.get(p)) {
            Some(parent) => at = parent,
            None => break,
        }
    }
    &at.title
}

/// An instance error in words (a profile error with its `file:line:column`).
fn describe(e: &InstanceError) -> String {
    crate::node::pass::describe(e)
}
