//! Instances (design §6): creating, upgrading and rolling back deployments of a release.
//!
//! An operation renders the release's instance profile (`instance.cfg`) for the instance — with
//! `[slap-parameter]` (the parameters over the profile's defaults), `[slap-partition]` (`name`,
//! `path`) and `${buildout:directory}` the partition — builds the generation's output (a
//! derivation of recipe `generation`: the files rendered under the partition), records the
//! generation in the database (the record is the commit point: a generation exists once it is
//! recorded), then makes the partition show it (`store/src/partition.rs`).
//!
//! The database is the truth; the partition follows it. Each operation starts by making the
//! partition match the recorded current generation, so an operation killed between its record
//! and its switch is finished by the next one. Rollback follows the recorded parent, not the
//! previous number. Operations on one instance are serialised by its lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use slapstore_store::build::{self, BuildOptions, Observer};
use slapstore_store::db::{GenerationRow, NewGeneration};
use slapstore_store::derivation::{Build, Inputs};
use slapstore_store::fetch::Fetcher;
use slapstore_store::master::{self, Computer, State, DEFAULT_SOFTWARE_TYPE};
use slapstore_store::partition::{self, InstanceName};
use slapstore_store::{Derivation, PartName, Recipe, Store, StoreError, StorePath};

use crate::error::Error;
use crate::evaluate::{evaluate, EvalOptions};
use crate::load::Assignment;
use crate::recipes::cookbook::state;
use crate::recipes::deploy;
use crate::recipes::instance::{FileSpec, InstanceOutput};
use crate::recipes::slap::{Request, Slap};
use crate::source::Sources;

mod dry_run;
pub use dry_run::DryRun;
mod reconcile;
pub use reconcile::Reconciled;
mod requester;
pub use requester::Requester;

/// Why an instance operation failed. Nothing was changed.
#[derive(Debug)]
pub enum InstanceError {
    /// The software or instance profile is at fault (with the sources to show it).
    Profile {
        sources: Box<Sources>,
        error: Error,
    },
    /// Building the release failed.
    Build(Vec<(String, StoreError)>),
    Store(StoreError),
    /// Bad usage: no such instance, no earlier generation, ...
    Usage(String),
    /// The instance cannot be rendered yet: instances it requested from a SlapOS master have
    /// not published what it needs (`requester.rs`).
    Waiting(String),
}

impl From<StoreError> for InstanceError {
    fn from(e: StoreError) -> Self {
        InstanceError::Store(e)
    }
}

type Result<T> = std::result::Result<T, InstanceError>;

/// What an upgrade would do (`Context::preview_upgrade`).
pub struct UpgradePreview {
    pub current: GenerationRow,
    pub release: StorePath,
    /// Part names the upgrade would build (empty when the release is in the store).
    pub to_build: Vec<String>,
    /// The parameters the new generation would have.
    pub parameters: Parameters,
    /// The new generation's output, when the release is in the store to render it.
    pub generation: Option<StorePath>,
}

/// What instance operations need besides their arguments.
pub struct Context<'a> {
    pub store: &'a Store,
    pub partitions: PathBuf,
    /// How a profile given as software is evaluated (python, target, assignments).
    pub eval: EvalOptions,
    pub build: BuildOptions,
    /// `--frozen`: a profile given as software must have a lock file that pins all its
    /// unpinned inputs, and nothing else.
    pub frozen: bool,
    /// The pool instances take their users from (`[instance-users]`), if any.
    pub users: Option<slapstore_store::users::UserPool>,
    pub observer: &'a dyn Observer,
    /// The computer this root is, as the local master knows it (`master.rs`).
    pub computer: Computer,
    /// Where the `request` recipes of the instances rendered go: the local master when
    /// `None`, else a SlapOS master (`requester.rs`).
    pub requester: Option<&'a dyn Requester>,
}

/// What an upgrade did: the generation now current, and whether it is a new one.
#[derive(Debug, Clone)]
pub struct Upgrade {
    pub generation: GenerationRow,
    /// False when the upgrade would have made a copy of the current generation: none was added.
    pub changed: bool,
}

/// Parameters of an instance: `key = value`.
pub type Parameters = BTreeMap<String, String>;

/// The titles a SlapOS master gives an instance it placed on this node (`slapstore node`):
/// what `slapconfiguration` gives as `instance-title` and `root-instance-title`, in place of
/// the local names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Titles {
    pub title: String,
    pub root_title: String,
}

/// Held by this process while it allocates partitions (`PartitionsHeld`): how many hold it,
/// and the store's `partitions` lock while any does.
static PARTITIONS: std::sync::Mutex<(usize, Option<slapstore_store::store::Lock>)> =
    std::sync::Mutex::new((0, None));

/// The store's `partitions` lock, held from the choice of a new instance's partition to its
/// record, so that two processes never choose the same; taken again by the creations a
/// creation's requests make (counted, the file locked once per process).
struct PartitionsHeld;

impl PartitionsHeld {
    fn take(store: &Store) -> Result<PartitionsHeld> {
        let mut held = PARTITIONS.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == 0 {
            held.1 = Some(store.lock("partitions")?);
        }
        held.0 += 1;
        Ok(PartitionsHeld)
    }
}

impl Drop for PartitionsHeld {
    fn drop(&mut self) {
        let mut held = PARTITIONS.lock().unwrap_or_else(|e| e.into_inner());
        held.0 = held.0.saturating_sub(1);
        if held.0 == 0 {
            held.1 = None;
        }
    }
}

/// How many requests down from an instance the user made a request may be.
const MAX_REQUEST_DEPTH: usize = 8;

/// What the local master knows of an instance when it is rendered.
#[derive(Debug, Clone)]
struct Placement {
    partition: i64,
    software_type: String,
    software_url: String,
    title: String,
    root_title: String,
    state: String,
    /// What its current generation published.
    published: Parameters,
    /// What each instance it requested published, by title.
    children: BTreeMap<String, Parameters>,
    /// Values an earlier render of this operation generated (passwords, ports, ...), not kept
    /// yet: a render again with its children's connections uses them, not new ones.
    generated: BTreeMap<String, String>,
    /// The shared instances it hosts, as its `slave-instance-list` gives them.
    shared: Vec<serde_json::Value>,
}

/// One render of an instance.
struct Rendered {
    drv: Derivation,
    /// What the render puts in the partition, publishes (`connection`) and requests.
    output: InstanceOutput,
}

/// The name of a new instance `parent` requests as `title`: the title itself when it is a
/// valid instance name (and not `qualified`), else its letters and digits with `-` for the
/// rest, after the parent's name.
fn child_name(parent: &InstanceName, title: &str, qualified: bool) -> Result<InstanceName> {
    if let Some(name) = InstanceName::new(title).ok().filter(|_| !qualified) {
        return Ok(name);
    }
    let cleaned: String = title
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    InstanceName::new(&format!(
        "{}.{}",
        parent.as_str(),
        cleaned.trim_matches('-')
    ))
    .map_err(|e| {
        InstanceError::Usage(format!(
            "cannot name the instance requested as `{title}`: {e}"
        ))
    })
}

impl Context<'_> {
    fn partition(&self, name: &InstanceName) -> PathBuf {
        self.partitions.join(name.as_str())
    }

    /// Whether `software` names a store path (else a profile).
    fn names_store_path(&self, software: &str) -> bool {
        Path::new(software).starts_with(self.store.store_dir())
            || (!software.contains('/') && StorePath::parse(software).is_ok())
    }

    /// The software release URL of `software`, as `[slap-connection] software-release-url`
    /// gives it: a URL as it is, a file's absolute path, a release's full store path.
    fn software_url(&self, software: &str) -> String {
        if software.contains("://") {
            return software.to_owned();
        }
        if self.names_store_path(software) && !software.contains('/') {
            return self
                .store
                .store_dir()
                .join(software)
                .to_string_lossy()
                .into_owned();
        }
        std::path::absolute(software)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| software.to_owned())
    }

    /// The release that `software` names: a store path of a release, or a profile built now.
    pub fn release(&self, software: &str) -> Result<StorePath> {
        if self.names_store_path(software) {
            let path = self.store.parse_path(software)?;
            self.store.add_temp_roots([&path])?;
            if !self.store.is_valid(&path)? {
                return Err(StoreError::NotValid(software.to_owned()).into());
            }
            if !self.store.path_of(&path).join("release.json").exists() {
                return Err(InstanceError::Usage(format!(
                    "`{software}` is not a release"
                )));
            }
            return Ok(path);
        }
        let drvs = self.derivations(software)?;
        let outcome = build::build(self.store, &drvs, &self.build, self.observer);
        if !outcome.failed.is_empty() {
            return Err(InstanceError::Build(outcome.failed));
        }
        let release = drvs
            .last()
            .map(|d| d.path.clone())
            .ok_or_else(|| InstanceError::Usage("the profile has no release".into()))?;
        // installed, as `build` installs it (`cli/software.rs`)
        slapstore_store::roots::install(self.store, &release, software)?;
        Ok(release)
    }

    /// The derivations of a software profile (its release last), evaluated, nothing built.
    fn derivations(&self, software: &str) -> Result<Vec<Derivation>> {
        let store_dir = self.store.store_dir();
        let lock = crate::lock::LockState::for_profile(software, self.frozen)
            .map_err(|e| InstanceError::Usage(e.to_string()))?;
        if self.frozen && !lock.exists {
            return Err(InstanceError::Usage(format!(
                "--frozen: the profile has no lock file `{}`: run `slapstore lock {software}`",
                lock.path.display()
            )));
        }
        let lock = std::sync::Arc::new(lock);
        let mut sources = Sources::default();
        let mut options = self.eval.clone();
        options.store = Some((
            crate::derive::StoreMode {
                store_dir: store_dir.to_string_lossy().into_owned(),
                system: crate::derive::system(),
                profile_dirs: Vec::new(),
                allow_unpinned: self.build.allow_unpinned,
                lock: Some(lock.clone()),
            },
            crate::derive::release_name(software),
        ));
        let drvs = evaluate(&mut sources, software, &options)
            .map(|e| e.derivations)
            .map_err(|error| InstanceError::Profile {
                sources: Box::new(sources),
                error,
            })?;
        let stale = lock.stale();
        if self.frozen && !stale.is_empty() {
            let entries: Vec<String> = stale
                .iter()
                .map(|(part, key)| format!("`{key}` of part `{part}`"))
                .collect();
            return Err(InstanceError::Usage(format!(
                "--frozen: the lock file `{}` has stale entries, which no unpinned input of the \
                 profile uses: {} (`slapstore lock` drops them)",
                lock.path.display(),
                entries.join(", ")
            )));
        }
        Ok(drvs)
    }

    /// Renders the release's instance profile for an instance placed as `placement` says:
    /// the generation's derivation, the partition's mutable directories, what it published
    /// and what it requested.
    fn render(
        &self,
        name: &InstanceName,
        release: &StorePath,
        parameters: &Parameters,
        placement: &Placement,
    ) -> Result<Rendered> {
        let release_dir = self.store.path_of(release);
        let profile = release_dir.join("instance.cfg");
        let text =
            std::fs::read_to_string(&profile).map_err(|_| no_instance_profile(&release_dir))?;
        self.render_profile(name, release, &profile, text, parameters, placement, None)
    }

    /// [`Context::render`] of the instance profile `text` (the release's `profile`), the
    /// files of outputs not built yet read from `planned` (a dry run).
    #[allow(clippy::too_many_arguments)]
    fn render_profile(
        &self,
        name: &InstanceName,
        release: &StorePath,
        profile: &Path,
        text: String,
        parameters: &Parameters,
        placement: &Placement,
        planned: Option<std::sync::Arc<crate::planned::Planned>>,
    ) -> Result<Rendered> {
        let partition = self.partition(name);
        let partition_text = partition.to_string_lossy().into_owned();
        // the release's distributions, for profile code asking easy_install for them
        let eggs = match &planned {
            Some(planned) => planned.release_eggs(),
            None => crate::python::eggs::ReleaseEggs::of_release(&self.store.path_of(release)),
        }
        .map_err(InstanceError::Usage)?;
        // where the release has the files its profile names by their buildout paths
        let software_paths = match &planned {
            Some(planned) => planned.software_paths.clone(),
            None => std::sync::Arc::new(
                (self.store.db().derivation(&release.to_string())?)
                    .and_then(|json| serde_json::from_str::<Derivation>(&json).ok())
                    .map(|d| crate::software_paths::SoftwarePaths::of(&d))
                    .unwrap_or_default(),
            ),
        };
        let mut options = EvalOptions {
            python: self.eval.python.clone(),
            target: self.eval.target.clone(),
            instance: true,
            planned,
            eggs: Some(std::sync::Arc::new(eggs)),
            software_paths,
            ..EvalOptions::default()
        };
        let mut assign = |section: &str, key: &str, value: &str| {
            options.assignments.push(Assignment {
                section: section.into(),
                option: key.into(),
                value: value.into(),
            });
        };
        assign("buildout", "directory", &partition_text);
        assign("slap-partition", "name", name.as_str());
        assign("slap-partition", "path", &partition_text);
        // verbatim, as SlapOS's master passes them: a `${...}` in a value is text, never a
        // reference to another section's value
        options.verbatim = parameters
            .iter()
            .map(|(k, v)| ("slap-parameter".to_owned(), k.clone(), v.clone()))
            .collect();
        // what slapgrid gives every instance profile (its `[slap-connection]`); no key or
        // certificate: the local master is this process
        let partition_id = master::partition_id(placement.partition);
        // and `[slap-network-information]` (`[network-information]` too, as slapgrid writes it
        // for older profiles): the computer's first addresses
        let ipv4 = self.computer.ipv4.first().cloned().unwrap_or_default();
        let ipv6 = self.computer.ipv6.first().cloned().unwrap_or_default();
        let network = if ipv4.is_empty() {
            String::new()
        } else {
            format!("{ipv4}/32")
        };
        for section in ["slap-network-information", "network-information"] {
            for (key, value) in [
                ("local-ipv4", ipv4.as_str()),
                ("global-ipv6", ipv6.as_str()),
                ("network-interface", ""),
                ("global-ipv4-network", network.as_str()),
            ] {
                options
                    .verbatim
                    .push((section.into(), key.into(), value.into()));
            }
        }
        for (key, value) in [
            ("computer-id", self.computer.id.as_str()),
            ("partition-id", partition_id.as_str()),
            ("server-url", self.computer.server_url.as_str()),
            ("key-file", ""),
            ("cert-file", ""),
            ("software-release-url", placement.software_url.as_str()),
        ] {
            options
                .verbatim
                .push(("slap-connection".into(), key.into(), value.into()));
        }
        let slap = Slap {
            computer: self.computer.clone(),
            partition_id,
            software_type: placement.software_type.clone(),
            software_url: placement.software_url.clone(),
            instance_title: placement.title.clone(),
            root_instance_title: placement.root_title.clone(),
            state: placement.state.clone(),
            parameters: parameters.clone(),
            published: placement.published.clone(),
            children: placement.children.clone(),
            generated: placement.generated.clone(),
            eval: options.clone(),
            shared: placement.shared.clone(),
            inherited: Vec::new(),
        };
        options.slap = Some(std::sync::Arc::new(slap));
        options.text = Some(text);
        let mut sources = Sources::default();
        let evaluation =
            evaluate(&mut sources, &profile.to_string_lossy(), &options).map_err(|error| {
                InstanceError::Profile {
                    sources: Box::new(sources),
                    error,
                }
            })?;
        let output = evaluation.instance;
        let drv = generation_derivation(name, release, parameters, &output)?;
        Ok(Rendered { drv, output })
    }

    /// Creates instances (`names`) of one release, in one batch: rendered in parallel, their
    /// generations built and published together, recorded in one transaction.
    pub fn create(
        &self,
        names: &[InstanceName],
        software: &str,
        parameters: &Parameters,
        software_type: Option<&str>,
    ) -> Result<Vec<StorePath>> {
        self.create_requested(names, software, parameters, software_type, None, &[], None)
    }

    /// [`Context::create`] of one instance on partition `number`, under the master's
    /// `titles`, as a node hosts what its SlapOS master placed there (`slapstore node`); an
    /// error when that partition is taken.
    pub fn create_on(
        &self,
        name: &InstanceName,
        number: i64,
        software: &str,
        parameters: &Parameters,
        software_type: Option<&str>,
        titles: &Titles,
    ) -> Result<StorePath> {
        // the partitions below it reserved: the lowest free one left is it, if it is free
        let below: Vec<i64> = (0..number).collect();
        let free = self.store.db().free_partitions(1, &self.computer, &below)?;
        if free.first() != Some(&number) {
            return Err(InstanceError::Usage(format!(
                "partition `{}` hosts another instance",
                master::partition_id(number)
            )));
        }
        let paths = self.create_requested(
            std::slice::from_ref(name),
            software,
            parameters,
            software_type,
            None,
            &below,
            Some(titles),
        )?;
        paths
            .into_iter()
            .next()
            .ok_or_else(|| InstanceError::Usage("nothing was created".into()))
    }

    /// [`Context::create`], for instances `requested_by` another one (then one name, under
    /// that parent's title for it); `reserved` are the partitions of the requesters being
    /// made (one per request down from the instance the user made); `titles`, a master's for
    /// them.
    #[allow(clippy::too_many_arguments)]
    fn create_requested(
        &self,
        names: &[InstanceName],
        software: &str,
        parameters: &Parameters,
        software_type: Option<&str>,
        requested_by: Option<(&InstanceName, &str)>,
        reserved: &[i64],
        titles: Option<&Titles>,
    ) -> Result<Vec<StorePath>> {
        let software_type = software_type.unwrap_or(DEFAULT_SOFTWARE_TYPE);
        let _locks = names
            .iter()
            .map(|n| self.store.lock(&format!("instance-{}", n.as_str())))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut existing = None;
        {
            let db = self.store.db();
            for n in names {
                if db.instance(n.as_str())?.is_some() {
                    existing = Some(n.clone());
                    break;
                }
            }
        }
        if let Some(n) = existing {
            // it exists: a switch its own creation left undone is finished, nothing else
            self.sync_partition(&n)?;
            self.flush(std::slice::from_ref(&n))?;
            return Err(StoreError::InstanceExists(n.as_str().to_owned()).into());
        }
        let release = self.release(software)?;
        let software_url = self.software_url(software);
        // from the choice of the partitions to their record, no other process chooses
        let _partitions = PartitionsHeld::take(self.store)?;
        let numbers = self
            .store
            .db()
            .free_partitions(names.len(), &self.computer, reserved)
            .map_err(|e| match e {
                StoreError::NoFreePartition { count, .. } => StoreError::NoFreePartition {
                    instance: names
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join("`, `"),
                    count,
                },
                other => other,
            })?;
        let root_title = match requested_by {
            Some((parent, _)) => self.root_title(parent)?,
            None => String::new(),
        };
        let placements: Vec<Placement> = names
            .iter()
            .zip(&numbers)
            .map(|(n, number)| Placement {
                partition: *number,
                software_type: software_type.to_owned(),
                software_url: software_url.clone(),
                title: match titles {
                    Some(t) => t.title.clone(),
                    None => requested_by
                        .map_or(n.as_str(), |(_, title)| title)
                        .to_owned(),
                },
                root_title: match titles {
                    Some(t) => t.root_title.clone(),
                    None if requested_by.is_some() => root_title.clone(),
                    None => n.as_str().to_owned(),
                },
                state: State::Started.as_str().to_owned(),
                published: Parameters::new(),
                children: BTreeMap::new(),
                generated: BTreeMap::new(),
                shared: Vec::new(),
            })
            .collect();
        let rendered: Vec<Rendered> = names
            .par_iter()
            .zip(&placements)
            .map(|(n, p)| self.render(n, &release, parameters, p))
            .collect::<Result<_>>()?;
        // what they request is deployed first, so that they are rendered with its connection
        // parameters; if they are not recorded in the end, what was deployed for them goes
        let recorded = self.render_requests_and_record(
            names,
            &release,
            parameters,
            placements,
            rendered,
            reserved,
            |final_renders| {
                let now = slapstore_store::build::unix_now();
                let params = serde_json::to_string(parameters).unwrap_or_default();
                names
                    .iter()
                    .zip(final_renders)
                    .zip(&numbers)
                    .map(|((n, r), number)| NewGeneration {
                        partition: self.partition(n).to_string_lossy().into_owned(),
                        row: GenerationRow {
                            instance: n.as_str().to_owned(),
                            number: 1,
                            path: r.drv.path.to_string(),
                            release: release.to_string(),
                            parameters: params.clone(),
                            parent: None,
                            created: now,
                            deleted: false,
                            software_type: software_type.to_owned(),
                            software_url: software_url.clone(),
                            connection: serde_json::to_string(&r.output.connection)
                                .unwrap_or_default(),
                        },
                        expect_new: true,
                        requested_by: requested_by
                            .map(|(p, t)| (p.as_str().to_owned(), t.to_owned())),
                        partition_number: Some(*number),
                    })
                    .collect()
            },
        );
        let drvs = match recorded {
            Ok(drvs) => drvs,
            Err(e) => {
                for n in names {
                    let orphans = self.store.db().children(n.as_str()).unwrap_or_default();
                    for child in orphans {
                        if let Ok(child) = InstanceName::new(&child.name) {
                            // best effort: the error that stopped the creation is the one told
                            let _ = self.destroy(&child, false);
                        }
                    }
                }
                return Err(e);
            }
        };
        names
            .par_iter()
            .map(|n| self.sync_partition(n))
            .collect::<Result<Vec<_>>>()?;
        self.flush(names)?;
        names
            .par_iter()
            .map(|n| self.run_commands(n))
            .collect::<Result<Vec<_>>>()?;
        Ok(drvs.into_iter().map(|d| d.path).collect())
    }

    /// The part of a creation that may deploy requested instances: each render completed with
    /// its requests ([`Context::with_requests`]), the outputs built, and the generations that
    /// `rows` makes of them recorded; the derivations.
    #[allow(clippy::too_many_arguments)]
    fn render_requests_and_record(
        &self,
        names: &[InstanceName],
        release: &StorePath,
        parameters: &Parameters,
        placements: Vec<Placement>,
        rendered: Vec<Rendered>,
        reserved: &[i64],
        rows: impl FnOnce(&[Rendered]) -> Vec<NewGeneration>,
    ) -> Result<Vec<Derivation>> {
        let mut final_renders = Vec::with_capacity(rendered.len());
        for ((n, p), r) in names.iter().zip(placements).zip(rendered) {
            let mut reserved = reserved.to_vec();
            reserved.push(p.partition);
            final_renders.push(self.with_requests(n, release, parameters, p, r, &reserved)?);
        }
        let drvs: Vec<Derivation> = final_renders.iter().map(|r| r.drv.clone()).collect();
        self.realise(&drvs)?;
        let partitions: Vec<PathBuf> = names.iter().map(|n| self.partition(n)).collect();
        self.keep_state(
            partitions
                .iter()
                .zip(final_renders.iter().map(|r| &r.output)),
        )?;
        let new = rows(&final_renders);
        self.store
            .db()
            .add_generations(&new, self.computer.partition_count)?;
        Ok(drvs)
    }

    /// Writes the state that renders generated (passwords, ports, ...) into their partitions
    /// and flushes it: before the generations that use it are recorded.
    fn keep_state<'o>(
        &self,
        rendered: impl IntoIterator<Item = (&'o PathBuf, &'o InstanceOutput)>,
    ) -> Result<()> {
        let pending: Vec<state::Pending> = rendered
            .into_iter()
            .filter(|(_, o)| !o.state.is_empty())
            .map(|(partition, o)| state::Pending {
                partition,
                dirs: &o.dirs,
                values: &o.state,
                replaced: &o.replaced,
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        state::persist(&pending)
            .map(|_| ())
            .map_err(|e| InstanceError::Usage(format!("cannot keep the instance's state: {e}")))
    }

    /// Runs the steps of `name`'s current generation in its partition: `plone.recipe.command`
    /// parts (`recipes/cookbook/command.rs`) and parts installed at deploy
    /// (`recipes/deploy.rs`), in install order; failures of commands without `stop-on-error`
    /// are appended to `.slapstore/commands.log`. A part installed anew had its location
    /// replaced: the links the generation makes into it are made again.
    fn run_commands(&self, name: &InstanceName) -> Result<()> {
        let current = self.current_generation(name)?;
        let Some(json) = self.store.db().derivation(&current.path)? else {
            return Ok(());
        };
        let specs: Vec<deploy::Step> = serde_json::from_str::<Derivation>(&json)
            .ok()
            .and_then(|d| d.option("commands-json").map(str::to_owned))
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default();
        if specs.is_empty() {
            return Ok(());
        }
        let partition = self.partition(name);
        let io = |message: String| {
            InstanceError::Store(StoreError::Io {
                path: partition.clone(),
                source: std::io::Error::other(message),
            })
        };
        let cache_dir = self.store.cache_dir();
        let steps = deploy::Deploy {
            partition: &partition,
            cache_dir: &cache_dir,
        };
        let (reported, installed) = deploy::run_all(&steps, &specs).map_err(&io)?;
        if installed && self.sync_partition(name)? {
            self.flush(std::slice::from_ref(name))?;
        }
        if !reported.is_empty() {
            use std::io::Write;
            let dir = partition.join(state::DIR);
            let log = dir.join("commands.log");
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            let _ = std::fs::DirBuilder::new()
                .mode(state::DIR_MODE)
                .create(&dir);
            // never through a link planted in the partition
            if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                return Err(io(format!("`{}` is not a directory", dir.display())));
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&log)
                .and_then(|mut f| f.write_all((reported.join("\n") + "\n").as_bytes()))
                .map_err(|e| io(format!("cannot write `{}`: {e}", log.display())))?;
        }
        Ok(())
    }

    /// Builds generation outputs in one batch.
    fn realise(&self, drvs: &[Derivation]) -> Result<()> {
        let fetcher = Fetcher::new(self.store.cache_dir()).deadline(self.build.download_deadline);
        build::realise_batch(self.store, drvs, &fetcher, self.observer)?;
        Ok(())
    }

    /// A new generation of `name` running `software`, its parameters those of the current
    /// generation overridden by `parameters`, of software type `software_type` (the current
    /// one's when `None`); the current one is its parent. When that generation would be the
    /// current one (same release, same parameters, same rendered files: the same output path,
    /// and the same software type), nothing is added.
    pub fn upgrade(
        &self,
        name: &InstanceName,
        software: &str,
        parameters: &Parameters,
        software_type: Option<&str>,
    ) -> Result<Upgrade> {
        self.upgrade_with(
            name,
            software,
            parameters,
            software_type,
            true,
            &[],
            None,
            None,
        )
    }

    /// [`Context::upgrade`] with `parameters` replacing the current ones and under the
    /// master's `titles`, as a SlapOS master gives them all (`slapstore node`).
    pub fn upgrade_replacing(
        &self,
        name: &InstanceName,
        software: &str,
        parameters: &Parameters,
        software_type: Option<&str>,
        titles: &Titles,
    ) -> Result<Upgrade> {
        self.upgrade_with(
            name,
            software,
            parameters,
            software_type,
            false,
            &[],
            Some(titles),
            None,
        )
    }

    /// [`Context::upgrade`]; the parameters replace the current ones unless `merge` (a
    /// request gives them all, as SlapOS's does); `reserved` and `titles` as for
    /// `create_requested`; `release`: the release `software` gives, when the caller has it
    /// already (one evaluation of the software for many instances, `instance reconcile`).
    #[allow(clippy::too_many_arguments)]
    fn upgrade_with(
        &self,
        name: &InstanceName,
        software: &str,
        parameters: &Parameters,
        software_type: Option<&str>,
        merge: bool,
        reserved: &[i64],
        titles: Option<&Titles>,
        release: Option<&StorePath>,
    ) -> Result<Upgrade> {
        let _lock = self.store.lock(&format!("instance-{}", name.as_str()))?;
        let (current, generations) = self.current(name)?;
        let mut merged: Parameters = if merge {
            serde_json::from_str(&current.parameters).unwrap_or_default()
        } else {
            Parameters::new()
        };
        merged.extend(parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        let software_type = software_type.unwrap_or(&current.software_type).to_owned();
        let release = match release {
            Some(r) => r.clone(),
            None => self.release(software)?,
        };
        let software_url = self.software_url(software);
        let mut placement = self.placement(name, &software_type, &software_url)?;
        if let Some(t) = titles {
            placement.title = t.title.clone();
            placement.root_title = t.root_title.clone();
        }
        let rendered = self.render(name, &release, &merged, &placement)?;
        let mut reserved = reserved.to_vec();
        reserved.push(placement.partition);
        let rendered =
            self.with_requests(name, &release, &merged, placement, rendered, &reserved)?;
        let connection = serde_json::to_string(&rendered.output.connection).unwrap_or_default();
        if rendered.drv.path.to_string() == current.path
            && software_type == current.software_type
            && software_url == current.software_url
        {
            self.keep_state([(&self.partition(name), &rendered.output)])?;
            self.run_commands(name)?;
            self.drop_unrequested(name, &rendered.output.requests)?;
            return Ok(Upgrade {
                generation: current,
                changed: false,
            });
        }
        self.realise(std::slice::from_ref(&rendered.drv))?;
        self.keep_state([(&self.partition(name), &rendered.output)])?;
        let row = GenerationRow {
            instance: name.as_str().to_owned(),
            number: generations.iter().map(|g| g.number).max().unwrap_or(0) + 1,
            path: rendered.drv.path.to_string(),
            release: release.to_string(),
            parameters: serde_json::to_string(&merged).unwrap_or_default(),
            parent: Some(current.number),
            created: slapstore_store::build::unix_now(),
            deleted: false,
            software_type,
            software_url,
            connection,
        };
        self.store.db().add_generations(
            &[NewGeneration {
                partition: self.partition(name).to_string_lossy().into_owned(),
                row: row.clone(),
                expect_new: false,
                requested_by: None,
                partition_number: None,
            }],
            self.computer.partition_count,
        )?;
        self.sync_partition(name)?;
        self.flush(std::slice::from_ref(name))?;
        self.run_commands(name)?;
        self.drop_unrequested(name, &rendered.output.requests)?;
        Ok(Upgrade {
            generation: row,
            changed: true,
        })
    }

    /// Where `name` is and what the master knows of it, for a render of software type
    /// `software_type` from `software_url`.
    fn placement(
        &self,
        name: &InstanceName,
        software_type: &str,
        software_url: &str,
    ) -> Result<Placement> {
        let db = self.store.db();
        let instance = db
            .master_instance(name.as_str())?
            .ok_or_else(|| InstanceError::Usage(format!("no instance `{}`", name.as_str())))?;
        let children = db
            .children(name.as_str())?
            .into_iter()
            .map(|c| (c.title, c.connection))
            .collect();
        let shared = db
            .shared_by(name.as_str())?
            .iter()
            .map(master::Shared::entry)
            .collect();
        drop(db);
        Ok(Placement {
            partition: instance.partition,
            software_type: software_type.to_owned(),
            software_url: software_url.to_owned(),
            root_title: match &instance.parent {
                Some(_) => self.root_title(name)?,
                None => instance.title.clone(),
            },
            title: instance.title,
            state: instance.requested_state.as_str().to_owned(),
            published: instance.connection,
            children,
            generated: BTreeMap::new(),
            shared,
        })
    }

    /// The title of the instance at the root of `name`'s request tree.
    fn root_title(&self, name: &InstanceName) -> Result<String> {
        let db = self.store.db();
        let mut at = name.as_str().to_owned();
        for _ in 0..MAX_REQUEST_DEPTH + 1 {
            match db.master_instance(&at)? {
                Some(i) => match i.parent {
                    Some(p) => at = p,
                    None => return Ok(i.title),
                },
                None => return Ok(at),
            }
        }
        Ok(at)
    }

    /// Deploys what a render of `name` requests (creating or upgrading each child; or asks
    /// the context's [`Requester`] for them), then renders `name` again with the connection
    /// parameters they published, until what they published no longer changes (their own
    /// requests deployed the same way, down to [`MAX_REQUEST_DEPTH`]). `reserved`: the
    /// partitions of `name` and its requesters.
    fn with_requests(
        &self,
        name: &InstanceName,
        release: &StorePath,
        parameters: &Parameters,
        mut placement: Placement,
        mut rendered: Rendered,
        reserved: &[i64],
    ) -> Result<Rendered> {
        let depth = reserved.len();
        for _ in 0..MAX_REQUEST_DEPTH {
            if rendered.output.requests.is_empty() {
                break;
            }
            if depth >= MAX_REQUEST_DEPTH {
                return Err(InstanceError::Usage(format!(
                    "`{}` is {depth} requests down from the instance the user made: requests \
                     that request again without end are refused",
                    name.as_str()
                )));
            }
            let requests = &rendered.output.requests;
            let children = match self.requester {
                Some(r) => self.request_remotely(r, placement.partition, requests)?,
                None => self.deploy_requests(name, requests, reserved)?,
            };
            if children == placement.children {
                break;
            }
            placement.children = children;
            // what the children were given stays what this render will keep
            placement
                .generated
                .extend(std::mem::take(&mut rendered.output.state));
            rendered = self.render(name, release, parameters, &placement)?;
        }
        if let Some(r) = self.requester {
            self.check_published(r, placement.partition, &rendered)?;
        }
        Ok(rendered)
    }

    /// Creates or upgrades each instance `requests` asks for on behalf of `parent` (destroying
    /// those requested `destroyed`); what each published, by requested title.
    fn deploy_requests(
        &self,
        parent: &InstanceName,
        requests: &[Request],
        reserved: &[i64],
    ) -> Result<BTreeMap<String, Parameters>> {
        let mut published = BTreeMap::new();
        for request in requests {
            let existing = self.store.db().child(parent.as_str(), &request.title)?;
            if request.state == State::Destroyed.as_str() {
                if let Some(child) = existing {
                    self.destroy(
                        &InstanceName::new(&child.name)
                            .map_err(|e| InstanceError::Usage(e.to_string()))?,
                        false,
                    )?;
                }
                continue;
            }
            let name = match &existing {
                Some(child) => InstanceName::new(&child.name)
                    .map_err(|e| InstanceError::Usage(e.to_string()))?,
                None => {
                    let name = child_name(parent, &request.title, false)?;
                    if self.store.db().instance(name.as_str())?.is_some() {
                        child_name(parent, &request.title, true)?
                    } else {
                        name
                    }
                }
            };
            if existing.is_some() {
                self.upgrade_with(
                    &name,
                    &request.software_url,
                    &request.parameters,
                    Some(&request.software_type),
                    false,
                    reserved,
                    None,
                    None,
                )?;
            } else {
                self.create_requested(
                    std::slice::from_ref(&name),
                    &request.software_url,
                    &request.parameters,
                    Some(&request.software_type),
                    Some((parent, &request.title)),
                    reserved,
                    None,
                )?;
            }
            let state = State::parse(&request.state).unwrap_or(State::Started);
            let mut db = self.store.db();
            db.set_requested_state(name.as_str(), state)?;
            let connection = db.connection(name.as_str())?.unwrap_or_default();
            published.insert(request.title.clone(), connection);
        }
        Ok(published)
    }

    /// Destroys the instances `parent` requested before and its generation no longer
    /// requests (SlapOS's master garbage-collects them the same way).
    fn drop_unrequested(&self, parent: &InstanceName, requests: &[Request]) -> Result<()> {
        let children = self.store.db().children(parent.as_str())?;
        for child in children {
            if !requests.iter().any(|r| r.title == child.title) {
                let name = InstanceName::new(&child.name)
                    .map_err(|e| InstanceError::Usage(e.to_string()))?;
                self.destroy(&name, false)?;
            }
        }
        Ok(())
    }

    /// Removes an instance, the instances it requested first: their services stopped, their
    /// records deleted (the commit), then their partitions removed (only the links into the
    /// store with `keep_data`). The names destroyed, children first.
    pub fn destroy(&self, name: &InstanceName, keep_data: bool) -> Result<Vec<String>> {
        let mut destroyed = Vec::new();
        let children = self.store.db().children(name.as_str())?;
        for child in children {
            let child =
                InstanceName::new(&child.name).map_err(|e| InstanceError::Usage(e.to_string()))?;
            destroyed.extend(self.destroy(&child, keep_data)?);
        }
        self.settle(name)?;
        let instance = self
            .store
            .db()
            .instance(name.as_str())?
            .ok_or_else(|| InstanceError::Usage(format!("no instance `{}`", name.as_str())))?;
        let supervisor = crate::services::Supervisor::new(self.store.root());
        // an instance never started costs no supervisor lock
        if supervisor.is_started(name.as_str()) {
            let _lock = self.store.lock("supervisor")?;
            supervisor
                .stop(name.as_str())
                .map_err(InstanceError::Usage)?;
        }
        let _lock = self.store.lock(&format!("instance-{}", name.as_str()))?;
        // the commit first: if it fails (a full disk), the partition and its data are as
        // they were; if removing them fails after it, the instance is gone all the same
        self.store.db().delete_instance(name.as_str())?;
        let partition = PathBuf::from(&instance.partition);
        if keep_data {
            remove_links(&partition);
        } else if partition.exists() {
            std::fs::remove_dir_all(&partition).map_err(|e| {
                InstanceError::Usage(format!(
                    "destroyed {}, but its partition `{}` could not be removed entirely \
                     ({e}): remove it by hand",
                    name.as_str(),
                    partition.display()
                ))
            })?;
        }
        destroyed.push(name.as_str().to_owned());
        Ok(destroyed)
    }

    /// What `upgrade` would do, changing nothing: the release `software` names (evaluated, not
    /// built), the parts that would be built, the parameters, and, when the release is in the
    /// store already, the generation's output (rendered, not built).
    pub fn preview_upgrade(
        &self,
        name: &InstanceName,
        software: &str,
        parameters: &Parameters,
    ) -> Result<UpgradePreview> {
        let current = self.current_generation(name)?;
        let mut merged: Parameters = serde_json::from_str(&current.parameters).unwrap_or_default();
        merged.extend(parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (release, to_build) = if self.names_store_path(software) {
            (self.release(software)?, Vec::new())
        } else {
            let drvs = self.derivations(software)?;
            let release = drvs
                .last()
                .map(|d| d.path.clone())
                .ok_or_else(|| InstanceError::Usage("the profile has no release".into()))?;
            let mut to_build = Vec::new();
            for d in &drvs {
                if !self.store.is_valid(&d.path)? {
                    to_build.push(d.name().to_owned());
                }
            }
            (release, to_build)
        };
        let generation = if self.store.is_valid(&release)? {
            let software_url = self.software_url(software);
            let placement = self.placement(name, &current.software_type, &software_url)?;
            Some(self.render(name, &release, &merged, &placement)?.drv.path)
        } else {
            None
        };
        Ok(UpgradePreview {
            current,
            release,
            to_build,
            parameters: merged,
            generation,
        })
    }

    /// Switches `name` back to the current generation's parent (the nearest one not deleted),
    /// or to generation `to`.
    pub fn rollback(&self, name: &InstanceName, to: Option<i64>) -> Result<GenerationRow> {
        let _lock = self.store.lock(&format!("instance-{}", name.as_str()))?;
        let (current, generations) = self.current(name)?;
        let by_number: BTreeMap<i64, &GenerationRow> =
            generations.iter().map(|g| (g.number, g)).collect();
        let target = match to {
            Some(n) => match by_number.get(&n) {
                Some(g) if !g.deleted => (*g).clone(),
                Some(_) => {
                    return Err(InstanceError::Usage(format!(
                        "generation {n} of `{}` was deleted",
                        name.as_str()
                    )))
                }
                None => {
                    return Err(InstanceError::Usage(format!(
                        "`{}` has no generation {n}",
                        name.as_str()
                    )))
                }
            },
            None => {
                let mut parent = current.parent;
                loop {
                    match parent.and_then(|p| by_number.get(&p)) {
                        Some(g) if !g.deleted => break (*g).clone(),
                        Some(g) => parent = g.parent,
                        None => {
                            return Err(InstanceError::Usage(format!(
                                "generation {} of `{}` has no earlier generation to roll back to",
                                current.number,
                                name.as_str()
                            )))
                        }
                    }
                }
            }
        };
        self.store.db().set_current(name.as_str(), target.number)?;
        self.sync_partition(name)?;
        self.flush(std::slice::from_ref(name))?;
        self.run_commands(name)?;
        Ok(target)
    }

    /// Makes switched partitions durable: an fsync of each partition directory for a few (the
    /// renames of `current`), one `syncfs` for a batch (which also flushes whatever else the
    /// filesystem holds dirty, so it does not pay for one partition).
    fn flush(&self, names: &[InstanceName]) -> Result<()> {
        if names.len() > 16 {
            slapstore_store::output::sync_filesystem(&self.partitions)?;
        } else {
            for n in names {
                slapstore_store::output::fsync_dir(&self.partition(n))?;
            }
        }
        Ok(())
    }

    /// The current generation of `name` and all its generations; the partition is made to
    /// match the record first (finishing an interrupted operation).
    fn current(&self, name: &InstanceName) -> Result<(GenerationRow, Vec<GenerationRow>)> {
        let (instance, generations) = {
            let db = self.store.db();
            let instance = db
                .instance(name.as_str())?
                .ok_or_else(|| InstanceError::Usage(format!("no instance `{}`", name.as_str())))?;
            (instance, db.generations(name.as_str())?)
        };
        let current = generations
            .iter()
            .find(|g| g.number == instance.current)
            .cloned()
            .ok_or_else(|| {
                InstanceError::Usage(format!("`{}` has no current generation", name.as_str()))
            })?;
        self.sync_partition(name)?;
        Ok((current, generations))
    }

    /// The row of `name`'s current generation.
    fn current_generation(&self, name: &InstanceName) -> Result<GenerationRow> {
        let db = self.store.db();
        let instance = db
            .instance(name.as_str())?
            .ok_or_else(|| InstanceError::Usage(format!("no instance `{}`", name.as_str())))?;
        db.generations(name.as_str())?
            .into_iter()
            .find(|g| g.number == instance.current)
            .ok_or_else(|| {
                InstanceError::Usage(format!("`{}` has no current generation", name.as_str()))
            })
    }

    /// Makes the partition show the recorded current generation, finishing a switch that an
    /// operation killed after its commit left undone; nothing is done when it shows it. Whether
    /// it switched.
    fn sync_partition(&self, name: &InstanceName) -> Result<bool> {
        let current = self.current_generation(name)?;
        let path = StorePath::parse(&current.path).map_err(StoreError::from)?;
        let output = self.store.path_of(&path);
        let partition = self.partition(name);
        let layout = self.layout(&current.path)?;
        let owner =
            slapstore_store::users::instance_user(self.store, name.as_str(), self.users.as_ref())?;
        if partition::mismatches(&partition, &output, &layout, owner.as_ref()).is_empty() {
            return Ok(false);
        }
        partition::switch(&partition, &output, &layout, owner.as_ref())?;
        Ok(true)
    }

    /// Finishes a pending switch of `name` under its lock (what every instance command does
    /// first, read-only ones included: the partition follows the database).
    pub fn settle(&self, name: &InstanceName) -> Result<()> {
        let _lock = self.store.lock(&format!("instance-{}", name.as_str()))?;
        if self.store.db().instance(name.as_str())?.is_none() {
            return Ok(());
        }
        if self.sync_partition(name)? {
            self.flush(std::slice::from_ref(name))?;
        }
        Ok(())
    }

    /// [`Context::settle`] for every instance (`instance list`).
    pub fn settle_all(&self) -> Result<()> {
        let names = self.store.db().instances()?;
        for row in names {
            // a name recorded by an older version that today's rules refuse is left alone
            if let Ok(name) = InstanceName::new(&row.name) {
                self.settle(&name)?;
            }
        }
        Ok(())
    }

    /// The files and mutable directories of a generation output, from its derivation.
    fn layout(&self, path: &str) -> Result<partition::Layout> {
        let json = self
            .store
            .db()
            .derivation(path)?
            .ok_or_else(|| StoreError::NotValid(path.to_owned()))?;
        serde_json::from_str::<Derivation>(&json)
            .ok()
            .and_then(|drv| partition::Layout::of(&drv))
            .ok_or_else(|| {
                InstanceError::Usage(format!("the derivation of `{path}` is unreadable"))
            })
    }
}

/// The error for a release without an instance profile.
fn no_instance_profile(release_dir: &Path) -> InstanceError {
    InstanceError::Usage(format!(
        "the release `{}` has no instance profile (a template part rendering \
         `${{buildout:directory}}/instance.cfg` or `template.cfg`, or \
         `[buildout] instance-profile`)",
        release_dir.display()
    ))
}

/// The derivation of a generation: the files rendered under the partition (and the mutable
/// directories, which are part of its identity), referring to the release.
fn generation_derivation(
    name: &InstanceName,
    release: &StorePath,
    parameters: &Parameters,
    output: &InstanceOutput,
) -> Result<Derivation> {
    let mut files = serde_json::Map::new();
    for (rel, spec) in &output.files {
        let value = match spec {
            FileSpec::Text { text, mode } => serde_json::json!({"text": text, "mode": mode}),
            FileSpec::Link { target } => serde_json::json!({"link": target}),
        };
        files.insert(rel.clone(), value);
    }
    let mut options = BTreeMap::new();
    options.insert(
        "files-json".to_owned(),
        serde_json::Value::Object(files).to_string(),
    );
    options.insert(
        "dirs-json".to_owned(),
        serde_json::to_string(&output.dirs).unwrap_or_default(),
    );
    options.insert(
        "parameters-json".to_owned(),
        serde_json::to_string(parameters).unwrap_or_default(),
    );
    // what it publishes is part of the generation (absent when nothing is, so that a
    // generation that publishes nothing keeps the identity it always had)
    if !output.connection.is_empty() {
        options.insert(
            "connection-json".to_owned(),
            serde_json::to_string(&output.connection).unwrap_or_default(),
        );
    }
    // only when there are some: the generations of profiles without commands keep their hash
    if !output.commands.is_empty() {
        options.insert(
            "commands-json".to_owned(),
            serde_json::to_string(&output.commands).unwrap_or_default(),
        );
    }
    let part = PartName::new(&format!("{}-instance", name.as_str()))
        .map_err(|e| InstanceError::Usage(e.to_string()))?;
    let inputs = Inputs {
        name: part,
        recipe: Recipe::Generation,
        system: crate::derive::system(),
        options: options.clone(),
        sources: BTreeMap::new(),
        files: BTreeMap::new(),
        references: [release.to_string()].into(),
    };
    Ok(Derivation::new(
        inputs,
        Build {
            options,
            sources: Vec::new(),
            files: BTreeMap::new(),
        },
    ))
}

/// Removes the links into `current` (and `current` itself) from a partition, keeping the rest.
fn remove_links(partition: &Path) {
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
