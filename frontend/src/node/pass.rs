//! One pass of the node, what `slapos node format`, `slapos node software` and `slapos node
//! instance` do together (slapgrid's order): register the partitions with the master; install
//! the supplied releases (reporting building, available or the error's log tail) and remove those
//! supplied as destroyed; make each partition host what the master requests (create or upgrade
//! its instance, start or stop its services, destroy it and free the partition), reporting
//! started, stopped, destroyed or the error.
//!
//! A partition whose request (and release) did not change since the last pass is left alone:
//! nothing is evaluated or rendered for it (`state.rs`). A failure is reported to the master and
//! to the caller, and the pass goes on with the next item, as slapgrid does.
//!
//! The `request` recipes of the instances go to the master (`requests.rs`). An instance
//! waiting for what an instance it requested has not published yet is not deployed: the pass
//! reads `getFullComputerInformation` again (the master may have placed that instance here),
//! deploys what is new, then tries the waiting ones again, for as long as a round makes
//! progress; what is still waiting then is reported, and the next pass tries again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use slapstore_store::partition::InstanceName;
use slapstore_store::{StoreError, StorePath};

use super::requests::MasterRequests;
use super::slap::{FormatPartition, Hosted, Master, SlapError, State, Supplied};
use super::state::{self, Deployed, NodeState};
use crate::instance::{Context, InstanceError, Requester, Titles};
use crate::services::Supervisor;
use slapstore_store::master::{partition_id, State as LocalState};

/// Something the pass did or failed to do, for the caller to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `format`, a release URL or a partition.
    pub subject: String,
    pub message: String,
    pub failed: bool,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct Summary {
    pub events: Vec<Event>,
    /// Partitions left alone (nothing changed).
    pub unchanged: usize,
}

impl Summary {
    pub fn failed(&self) -> bool {
        self.events.iter().any(|e| e.failed)
    }

    fn did(&mut self, subject: &str, message: impl Into<String>) {
        self.events.push(Event {
            subject: subject.to_owned(),
            message: message.into(),
            failed: false,
        });
    }

    fn failed_with(&mut self, subject: &str, message: impl Into<String>) {
        self.events.push(Event {
            subject: subject.to_owned(),
            message: message.into(),
            failed: true,
        });
    }
}

/// A partition deployed in this pass whose services are still to start or stop and whose
/// state is still to report.
struct Pending {
    id: String,
    state: State,
    /// What the instance published.
    connection: BTreeMap<String, String>,
    /// What the master holds of it.
    master_connection: BTreeMap<String, String>,
    /// What to record once it is all done.
    deployed: Deployed,
    /// Why it was rendered without connection parameters of instances it requested
    /// (`requestoptional`): it is not recorded, so that a later render completes it.
    incomplete: Option<String>,
}

/// What became of a partition in a round of the pass.
enum Outcome {
    /// Nothing changed: left alone.
    Unchanged,
    /// Destroyed, cleaned, or failed (reported).
    Done,
    /// Deployed; its services and reports to do.
    Deploy(Pending),
    /// Waiting for instances it requested to publish (why): not deployed.
    Waiting(String),
}

/// Why a partition could not be deployed.
enum Failure {
    /// Instances it requested have not published what it needs yet.
    Waiting(String),
    Failed(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Failed(message)
    }
}

/// What the rounds of a pass share.
struct Round<'r> {
    /// The installed release of each URL.
    releases: &'r BTreeMap<String, StorePath>,
    requests: &'r MasterRequests<'r>,
    /// The partitions left alone.
    unchanged: &'r mut BTreeSet<String>,
}

/// A partition still to deploy again at the end of a round: why, and whether it is deployed
/// (rendered without what `requestoptional` allowed to go without) or not at all.
struct Wait {
    why: String,
    deployed: bool,
}

/// A node: a store root serving one computer of one master.
pub struct Node<'a> {
    pub master: &'a Master,
    /// The instance operations, on the computer as the node registers it (`ctx.computer`:
    /// its id, addresses and partition count).
    pub ctx: &'a Context<'a>,
    /// The user partitions run as.
    pub user: String,
}

/// How many partitions a computer offers when the configuration does not say (as many as
/// `slapos node format` makes by default).
pub const DEFAULT_PARTITIONS: u32 = 10;

const IPV4_NETMASK: &str = "255.0.0.0";
const IPV6_NETMASK: &str = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

/// How many lines of a failure's text a report to the master carries (slapgrid sends its
/// buildout's log tail).
const LOG_TAIL: usize = 100;

/// How many rounds a pass makes at most (a round per level of a chain of requests, as long
/// as each makes progress).
const MAX_ROUNDS: usize = 10;

impl Node<'_> {
    fn root(&self) -> &Path {
        self.ctx.store.root()
    }

    /// One pass. Only a master that cannot be reached (or answers nonsense) to what the
    /// computer must do is an error; everything else is in the summary.
    pub fn pass(&self) -> Result<Summary, SlapError> {
        let file = state::path(self.root());
        let mut state = NodeState::load(&file);
        let mut summary = Summary::default();
        self.format(&mut state, &mut summary)?;
        let mut info = self.master.computer_information()?;
        let releases = self.software(&info.software, &mut summary);
        let before = state.clone();
        let requests = MasterRequests::new(self.master);
        // what was done in this pass: each partition once for what the master requests of it
        let mut seen = BTreeSet::new();
        // left alone, unless a later round deploys it (an instance placed there meanwhile)
        let mut unchanged = BTreeSet::new();
        let mut waiting: BTreeMap<String, Wait> = BTreeMap::new();
        for round in 0..MAX_ROUNDS {
            if round > 0 {
                // what the requests of the waiting instances placed on this computer
                match self.master.computer_information() {
                    Ok(i) => info = i,
                    Err(e) => {
                        summary.failed_with("node", e.to_string());
                        break;
                    }
                }
            }
            let (retried, fresh): (Vec<&Hosted>, Vec<&Hosted>) = info
                .partitions
                .iter()
                .filter(|h| {
                    waiting.contains_key(&h.partition)
                        || seen.insert((h.partition.clone(), request_fingerprint(h)))
                })
                .partition(|h| waiting.contains_key(&h.partition));
            let mut round = Round {
                releases: &releases,
                requests: &requests,
                unchanged: &mut unchanged,
            };
            let mut now = self.round(&fresh, &mut round, &mut state, &mut summary);
            let still = self.round(&retried, &mut round, &mut state, &mut summary);
            let progress = !fresh.is_empty() || still.len() < retried.len();
            now.extend(still);
            waiting = now;
            if waiting.is_empty() || !progress {
                break;
            }
        }
        for (id, wait) in waiting {
            let message = format!("{} (the next pass tries again)", wait.why);
            if !wait.deployed {
                // as slapgrid reports a `request` whose instance is not ready
                if let Err(e) = self.master.instance_error(&id, &message) {
                    summary.failed_with(&id, e.to_string());
                }
            }
            summary.did(&id, message);
        }
        summary.unchanged = unchanged.len();
        // the instances created took users from the root's pool: the master is told
        if let Err(e) = self.format(&mut state, &mut summary) {
            summary.failed_with("format", e.to_string());
        }
        // a no-op pass writes nothing
        if state != before {
            if let Err(e) = state.save(&file) {
                summary.failed_with("node", format!("cannot write `{}`: {e}", file.display()));
            }
        }
        Ok(summary)
    }

    /// Deploys the partitions `hosted` (in order), then starts or stops their services and
    /// reports them ([`Node::services`]); those left to deploy again.
    fn round(
        &self,
        hosted: &[&Hosted],
        round: &mut Round,
        state: &mut NodeState,
        summary: &mut Summary,
    ) -> BTreeMap<String, Wait> {
        let mut pending = Vec::new();
        let mut waiting = BTreeMap::new();
        for h in hosted {
            let outcome = self.partition(h, round.releases, round.requests, state, summary);
            if let Outcome::Unchanged = outcome {
                round.unchanged.insert(h.partition.clone());
            } else {
                round.unchanged.remove(&h.partition);
            }
            match outcome {
                Outcome::Unchanged | Outcome::Done => {}
                Outcome::Deploy(p) => pending.push(p),
                Outcome::Waiting(why) => {
                    let wait = Wait {
                        why,
                        deployed: false,
                    };
                    waiting.insert(h.partition.clone(), wait);
                }
            }
        }
        for (id, why) in self.services(pending, state, summary) {
            waiting.insert(
                id,
                Wait {
                    why,
                    deployed: true,
                },
            );
        }
        waiting
    }

    /// Starts or stops the services of the partitions deployed in this round, in one
    /// `supervisorctl update`, then posts each one's connection parameters and reports it
    /// started or stopped; each partition that got there is recorded in `state`, but those
    /// rendered incomplete, returned with why.
    fn services(
        &self,
        deployed: Vec<Pending>,
        state: &mut NodeState,
        summary: &mut Summary,
    ) -> Vec<(String, String)> {
        let mut incomplete = Vec::new();
        if deployed.is_empty() {
            return incomplete;
        }
        let supervisor = Supervisor::new(self.root());
        let mut ready = Vec::new();
        {
            let _lock = match self.ctx.store.lock("supervisor") {
                Ok(l) => l,
                Err(e) => {
                    for d in &deployed {
                        self.deploy_failed(&d.id, &e.to_string(), state, summary);
                    }
                    return incomplete;
                }
            };
            let mut changed = Vec::new();
            for d in deployed {
                let id = d.id.as_str();
                let was = supervisor.is_started(id);
                let configured = if d.state == State::Started {
                    self.ctx
                        .store
                        .db()
                        .instance_user(id)
                        .map_err(|e| e.to_string())
                        .and_then(|user| {
                            let user = user.map(|u| u.name);
                            supervisor.configure(id, &self.partition_dir(id), user.as_deref())
                        })
                        .map(|services| {
                            (!was).then(|| format!("started ({} services)", services.len()))
                        })
                } else if was {
                    supervisor
                        .unconfigure(id)
                        .map(|_| Some("stopped".to_owned()))
                } else {
                    Ok(None)
                };
                match configured {
                    Ok(message) => {
                        if d.state == State::Started || was {
                            changed.push(ready.len());
                        }
                        ready.push((d, message));
                    }
                    Err(message) => self.deploy_failed(id, &message, state, summary),
                }
            }
            if !changed.is_empty() {
                if let Err(message) = supervisor.update() {
                    for (d, _) in ready.drain(..) {
                        self.deploy_failed(&d.id, &message, state, summary);
                    }
                }
            }
        }
        for (d, message) in ready {
            let id = d.id.as_str();
            if let Some(message) = message {
                summary.did(id, message);
            }
            if let Err(message) = self.report(&d, summary) {
                self.deploy_failed(id, &message, state, summary);
                continue;
            }
            match d.incomplete {
                Some(why) => incomplete.push((d.id, why)),
                None => {
                    state.partitions.insert(d.id, d.deployed);
                }
            }
        }
        incomplete
    }

    /// Posts what a deployed partition published, when the master does not hold it, and its
    /// state.
    fn report(&self, d: &Pending, summary: &mut Summary) -> Result<(), String> {
        if d.connection != d.master_connection {
            self.master
                .set_connection(&d.id, &d.connection)
                .map_err(|e| e.to_string())?;
            summary.did(
                &d.id,
                format!("published {} connection parameters", d.connection.len()),
            );
        }
        match d.state {
            State::Started => self.master.started(&d.id),
            _ => self.master.stopped(&d.id),
        }
        .map_err(|e| e.to_string())
    }

    /// A partition that failed: told to the caller and the master, tried again next pass.
    fn deploy_failed(&self, id: &str, message: &str, state: &mut NodeState, summary: &mut Summary) {
        state.partitions.remove(id);
        summary.failed_with(id, message);
        if let Err(e) = self.master.instance_error(id, &tail(message)) {
            summary.failed_with(id, e.to_string());
        }
    }

    /// Who each partition runs as, as the master is told: its instance's user from the root's
    /// pool (`[instance-users]`) when it has one, else the node's own user.
    fn partition_users(&self, count: u32) -> Vec<String> {
        let db = self.ctx.store.db();
        (0..count)
            .map(|i| {
                // a database that cannot say: the node's user, as for a free partition
                db.instance_user(&partition_id(i64::from(i)))
                    .ok()
                    .flatten()
                    .map_or_else(|| self.user.clone(), |u| u.name)
            })
            .collect()
    }

    /// Registers the partitions with the master, when they changed since the last time.
    fn format(&self, state: &mut NodeState, summary: &mut Summary) -> Result<(), SlapError> {
        let c = &self.ctx.computer;
        let count = c.partition_count.unwrap_or(DEFAULT_PARTITIONS);
        let addresses: Vec<(String, String)> = c
            .ipv4
            .iter()
            .map(|a| (a.clone(), IPV4_NETMASK.to_owned()))
            .chain(c.ipv6.iter().map(|a| (a.clone(), IPV6_NETMASK.to_owned())))
            .collect();
        let partitions: Vec<FormatPartition> = (0..count)
            .zip(self.partition_users(count))
            .map(|(i, user)| {
                let reference = partition_id(i64::from(i));
                FormatPartition {
                    path: self.ctx.partitions.join(&reference).display().to_string(),
                    reference,
                    user,
                    addresses: addresses.clone(),
                }
            })
            .collect();
        let address = c
            .ipv4
            .first()
            .cloned()
            .unwrap_or_else(|| "127.0.0.1".into());
        let fingerprint = state::fingerprint(&(
            self.master.computer(),
            &address,
            &partitions
                .iter()
                .map(|p| (&p.reference, &p.path, &p.user, &p.addresses))
                .collect::<Vec<_>>(),
        ));
        if state.format == fingerprint {
            return Ok(());
        }
        self.master.format((&address, IPV4_NETMASK), &partitions)?;
        state.format = fingerprint;
        summary.did("format", format!("registered {count} partitions"));
        Ok(())
    }

    /// Installs the releases supplied as available and removes those supplied as destroyed;
    /// the installed release of each URL (those that could not be installed are absent).
    fn software(
        &self,
        supplied: &[Supplied],
        summary: &mut Summary,
    ) -> BTreeMap<String, StorePath> {
        let mut releases = BTreeMap::new();
        let installed: BTreeMap<String, String> = match self.ctx.store.db().installed() {
            Ok(rows) => rows.into_iter().map(|r| (r.profile, r.release)).collect(),
            Err(e) => {
                summary.failed_with("software", e.to_string());
                return releases;
            }
        };
        for sr in supplied {
            let profile = match profile_of(&sr.url) {
                Ok(p) => p,
                Err(message) => {
                    self.software_failed(&sr.url, &message, summary);
                    continue;
                }
            };
            let key = slapstore_store::roots::profile_key(&profile);
            let current = installed.get(&key).and_then(|r| self.valid(r));
            match sr.state {
                State::Destroyed => {
                    if current.is_some() {
                        let removed = self.ctx.store.db().uninstall(&key, "");
                        if let Err(e) = removed {
                            self.software_failed(&sr.url, &e.to_string(), summary);
                            continue;
                        }
                        summary.did(&sr.url, "removed");
                    }
                    // slapgrid reports it even when it had nothing to remove
                    if let Err(e) = self.master.software_destroyed(&sr.url) {
                        summary.failed_with(&sr.url, e.to_string());
                    }
                }
                _ => {
                    if let Some(release) = current {
                        releases.insert(sr.url.clone(), release);
                        continue;
                    }
                    if let Err(e) = self.master.building(&sr.url) {
                        summary.failed_with(&sr.url, e.to_string());
                    }
                    match self.context_for(&profile, None).release(&profile) {
                        Ok(release) => {
                            summary.did(&sr.url, format!("installed {}", self.full(&release)));
                            if let Err(e) = self.master.available(&sr.url) {
                                summary.failed_with(&sr.url, e.to_string());
                            }
                            releases.insert(sr.url.clone(), release);
                        }
                        Err(e) => self.software_failed(&sr.url, &describe(&e), summary),
                    }
                }
            }
        }
        releases
    }

    fn software_failed(&self, url: &str, message: &str, summary: &mut Summary) {
        summary.failed_with(url, message);
        if let Err(e) = self.master.software_error(url, &tail(message)) {
            summary.failed_with(url, e.to_string());
        }
    }

    /// The store path `release` names, if it is still valid.
    fn valid(&self, release: &str) -> Option<StorePath> {
        let path = StorePath::parse(release).ok()?;
        self.ctx.store.add_temp_roots([&path]).ok()?;
        self.ctx.store.is_valid(&path).ok()?.then_some(path)
    }

    fn full(&self, path: &StorePath) -> String {
        self.ctx.store.path_of(path).display().to_string()
    }

    /// Makes one partition host what the master requests, unless that did not change.
    fn partition(
        &self,
        hosted: &Hosted,
        releases: &BTreeMap<String, StorePath>,
        requests: &MasterRequests,
        state: &mut NodeState,
        summary: &mut Summary,
    ) -> Outcome {
        let id = &hosted.partition;
        let name = match InstanceName::new(id) {
            Ok(n) => n,
            Err(e) => {
                summary.failed_with(id, e.to_string());
                return Outcome::Done;
            }
        };
        let release = hosted.software.as_ref().and_then(|url| releases.get(url));
        let deployed = Deployed {
            request: request_fingerprint(hosted),
            release: release.map(ToString::to_string),
        };
        let exists = match self.ctx.store.db().instance(id) {
            Ok(row) => row.is_some(),
            Err(e) => {
                summary.failed_with(id, e.to_string());
                return Outcome::Done;
            }
        };
        let free = hosted.software.is_none();
        let left_alone = if free {
            // a free partition: nothing to do unless an instance or its files remain
            !exists && !self.partition_dir(id).exists()
        } else {
            exists && state.partitions.get(id) == Some(&deployed)
        };
        if left_alone {
            return Outcome::Unchanged;
        }
        let outcome = match (hosted.state, &hosted.software) {
            (State::Destroyed, _) => self
                .destroy(&name, !free, summary)
                .map(|()| None)
                .map_err(Failure::from),
            (_, None) => Err(Failure::Failed(format!(
                "requested {:?} without a software release",
                hosted.state
            ))),
            (state, Some(url)) => match (release, profile_of(url)) {
                (Some(_), Ok(profile)) => self
                    .deploy(&name, exists, &profile, hosted, state, requests, summary)
                    .map(|connection| {
                        Some(Pending {
                            id: id.clone(),
                            state,
                            connection,
                            master_connection: hosted.connection.clone(),
                            deployed: deployed.clone(),
                            incomplete: requests.take_incomplete(id),
                        })
                    }),
                _ => Err(Failure::Failed(format!(
                    "software `{url}` is not installed"
                ))),
            },
        };
        match outcome {
            Ok(Some(pending)) => Outcome::Deploy(pending),
            Ok(None) => {
                state.partitions.insert(id.clone(), deployed);
                Outcome::Done
            }
            Err(Failure::Waiting(why)) => {
                state.partitions.remove(id);
                Outcome::Waiting(why)
            }
            Err(Failure::Failed(message)) => {
                // tried again at the next pass
                if free {
                    state.partitions.remove(id);
                    summary.failed_with(id, message);
                } else {
                    self.deploy_failed(id, &message, state, summary);
                }
                Outcome::Done
            }
        }
    }

    fn partition_dir(&self, id: &str) -> PathBuf {
        self.ctx.partitions.join(id)
    }

    /// The instance operations for a release's `profile`, their requests going to
    /// `requester`: for a remote one, its `${buildout:directory}` is the node's directory of
    /// that URL, `var/node/software/<md5 of the URL>` (as slapgrid's software directory), so
    /// that its release does not depend on where the node runs.
    fn context_for<'s>(
        &'s self,
        profile: &str,
        requester: Option<&'s dyn Requester>,
    ) -> Context<'s> {
        let mut eval = self.ctx.eval.clone();
        if crate::extends::is_url(profile) {
            use md5::Digest;
            let digest = format!("{:x}", md5::Md5::digest(profile.as_bytes()));
            let directory = self.root().join("var/node/software").join(digest);
            eval.assignments.push(crate::load::Assignment {
                section: "buildout".into(),
                option: "directory".into(),
                value: directory.display().to_string(),
            });
        }
        Context {
            store: self.ctx.store,
            partitions: self.ctx.partitions.clone(),
            eval,
            build: self.ctx.build.clone(),
            frozen: self.ctx.frozen,
            users: self.ctx.users.clone(),
            observer: self.ctx.observer,
            computer: self.ctx.computer.clone(),
            requester,
        }
    }

    /// Creates or upgrades the instance (of `profile`, its release installed; its requests
    /// going to the master) and records its requested state; what it published.
    #[allow(clippy::too_many_arguments)]
    fn deploy(
        &self,
        name: &InstanceName,
        exists: bool,
        profile: &str,
        hosted: &Hosted,
        state: State,
        requests: &MasterRequests,
        summary: &mut Summary,
    ) -> Result<BTreeMap<String, String>, Failure> {
        let id = name.as_str();
        let parameters = &hosted.parameters;
        let software_type = Some(hosted.software_type.as_str());
        // what slapconfiguration gives as `instance-title` and `root-instance-title`: the
        // master's, as slapgrid's instances see them
        let titles = Titles {
            title: hosted.instance_title.clone(),
            root_title: hosted.root_instance_title.clone(),
        };
        let ctx = self.context_for(profile, Some(requests));
        if exists {
            let upgrade = ctx
                .upgrade_replacing(name, profile, parameters, software_type, &titles)
                .map_err(failure)?;
            if upgrade.changed {
                summary.did(
                    id,
                    format!("upgraded to generation {}", upgrade.generation.number),
                );
            }
        } else {
            let number = id
                .strip_prefix("slappart")
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| format!("`{id}` is not a partition of this node (`slappartN`)"))?;
            ctx.create_on(name, number, profile, parameters, software_type, &titles)
                .map_err(failure)?;
            summary.did(id, format!("created {}", hosted.instance_title));
        }
        let local = match state {
            State::Started => LocalState::Started,
            _ => LocalState::Stopped,
        };
        let connection = {
            let mut db = self.ctx.store.db();
            db.set_requested_state(id, local)
                .map_err(|e| e.to_string())?;
            db.connection(id)
                .map_err(|e| e.to_string())?
                .unwrap_or_default()
        };
        Ok(connection)
    }

    /// Stops and removes the instance of a partition (its data too) and, if the master still
    /// has it busy, reports it destroyed so that the master frees it.
    fn destroy(
        &self,
        name: &InstanceName,
        busy: bool,
        summary: &mut Summary,
    ) -> Result<(), String> {
        let id = name.as_str();
        let exists = self
            .ctx
            .store
            .db()
            .instance(id)
            .map_err(|e| e.to_string())?
            .is_some();
        if exists {
            self.ctx.destroy(name, false).map_err(|e| describe(&e))?;
            summary.did(id, "destroyed");
        } else {
            // what a destruction that failed half-way left
            let partition = self.partition_dir(id);
            if partition.exists() {
                std::fs::remove_dir_all(&partition).map_err(|e| {
                    format!("cannot remove the partition `{}`: {e}", partition.display())
                })?;
                summary.did(id, "destroyed");
            }
        }
        if busy {
            self.master.destroyed(id).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// What the master sent for a partition, but for the connection parameters this node
/// publishes.
fn request_fingerprint(hosted: &Hosted) -> String {
    state::fingerprint(&Hosted {
        connection: BTreeMap::new(),
        ..hosted.clone()
    })
}

/// An instance operation's error as a partition's failure, or its wait.
fn failure(e: InstanceError) -> Failure {
    match e {
        InstanceError::Waiting(why) => Failure::Waiting(why),
        other => Failure::Failed(describe(&other)),
    }
}

/// The profile a release URL names: a local path, a `file://` URL's path, or an `http(s)://`
/// URL (fetched, with what it extends, through the download cache).
fn profile_of(url: &str) -> Result<String, String> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(path.to_owned());
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(url.to_owned());
    }
    if crate::extends::is_url(url) {
        return Err(format!(
            "cannot install `{url}`: a release URL is `http://`, `https://`, `file://` or an \
             absolute path"
        ));
    }
    if !url.starts_with('/') {
        return Err(format!("cannot install `{url}`: not an absolute path"));
    }
    Ok(url.to_owned())
}

/// An instance error in words: a profile error with its `file:line:column`.
pub fn describe(e: &InstanceError) -> String {
    match e {
        InstanceError::Profile { sources, error } => {
            let mut out = String::new();
            if let Some(span) = error.span {
                let file = sources.get(span.file);
                let (line, col) = file.line_col(span.range().start);
                out.push_str(&format!("{}:{line}:{col}: ", file.name));
            }
            out.push_str(&error.to_string());
            for note in &error.notes {
                out.push_str(&format!("\nnote: {note}"));
            }
            out
        }
        InstanceError::Build(failed) => {
            let mut out = String::new();
            for (_, e) in failed {
                out.push_str(&e.to_string());
                out.push('\n');
                if let StoreError::BuildFailed { log, .. } = e {
                    if let Ok(text) = std::fs::read_to_string(log) {
                        out.push_str(&tail(&text));
                    }
                }
            }
            out
        }
        InstanceError::Store(e) => e.to_string(),
        InstanceError::Usage(m) | InstanceError::Waiting(m) => m.clone(),
    }
}

/// The last `LOG_TAIL` lines of a text.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_urls_name_local_profiles() {
        assert_eq!(
            profile_of("/srv/sr/software.cfg").unwrap(),
            "/srv/sr/software.cfg"
        );
        assert_eq!(
            profile_of("file:///srv/software.cfg").unwrap(),
            "/srv/software.cfg"
        );
        assert_eq!(
            profile_of("https://lab.nexedi.com/software.cfg").unwrap(),
            "https://lab.nexedi.com/software.cfg"
        );
        assert!(profile_of("ftp://lab.nexedi.com/software.cfg")
            .unwrap_err()
            .contains("a release URL is"));
        assert!(profile_of("software.cfg").unwrap_err().contains("absolute"));
    }

    #[test]
    fn a_tail_keeps_the_last_lines() {
        let text: String = (0..150).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert!(t.starts_with("line 50\n") && t.ends_with("line 149"));
        assert_eq!(tail("one"), "one");
    }
}
