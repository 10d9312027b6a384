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
use slapstore_store::partition::{self, InstanceName};
use slapstore_store::{Derivation, PartName, Recipe, Store, StoreError, StorePath};

use crate::error::Error;
use crate::evaluate::{evaluate, EvalOptions};
use crate::load::Assignment;
use crate::recipes::instance::{FileSpec, InstanceOutput};
use crate::source::Sources;

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
    /// The pool instances take their users from (`[instance-users]`), if any.
    pub users: Option<slapstore_store::users::UserPool>,
    pub observer: &'a dyn Observer,
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

impl Context<'_> {
    fn partition(&self, name: &InstanceName) -> PathBuf {
        self.partitions.join(name.as_str())
    }

    /// Whether `software` names a store path (else a profile).
    fn names_store_path(&self, software: &str) -> bool {
        Path::new(software).starts_with(self.store.store_dir())
            || (!software.contains('/') && StorePath::parse(software).is_ok())
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
        let mut sources = Sources::default();
        let mut options = self.eval.clone();
        options.store = Some((
            crate::derive::StoreMode {
                store_dir: store_dir.to_string_lossy().into_owned(),
                system: crate::derive::system(),
                profile_dirs: Vec::new(),
                allow_unpinned: self.build.allow_unpinned,
            },
            crate::derive::release_name(software),
        ));
        evaluate(&mut sources, software, &options)
            .map(|e| e.derivations)
            .map_err(|error| InstanceError::Profile {
                sources: Box::new(sources),
                error,
            })
    }

    /// Renders the release's instance profile for an instance: the generation's derivation and
    /// the partition's mutable directories.
    fn render(
        &self,
        name: &InstanceName,
        release: &StorePath,
        parameters: &Parameters,
    ) -> Result<(Derivation, BTreeMap<String, u32>)> {
        let release_dir = self.store.path_of(release);
        let profile = release_dir.join("instance.cfg");
        let text = std::fs::read_to_string(&profile).map_err(|_| {
            InstanceError::Usage(format!(
                "the release `{}` has no instance profile (a template part rendering \
                 `${{buildout:directory}}/instance.cfg` or `template.cfg`, or \
                 `[buildout] instance-profile`)",
                release_dir.display()
            ))
        })?;
        let partition = self.partition(name);
        let partition_text = partition.to_string_lossy().into_owned();
        let mut options = EvalOptions {
            python: self.eval.python.clone(),
            target: self.eval.target.clone(),
            text: Some(text),
            instance: true,
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
        let mut sources = Sources::default();
        let evaluation =
            evaluate(&mut sources, &profile.to_string_lossy(), &options).map_err(|error| {
                InstanceError::Profile {
                    sources: Box::new(sources),
                    error,
                }
            })?;
        let drv = generation_derivation(name, release, parameters, &evaluation.instance)?;
        Ok((drv, evaluation.instance.dirs))
    }

    /// Creates instances (`names`) of one release, in one batch: rendered in parallel, their
    /// generations built and published together, recorded in one transaction.
    pub fn create(
        &self,
        names: &[InstanceName],
        software: &str,
        parameters: &Parameters,
    ) -> Result<Vec<StorePath>> {
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
        let rendered: Vec<(Derivation, BTreeMap<String, u32>)> = names
            .par_iter()
            .map(|n| self.render(n, &release, parameters))
            .collect::<Result<_>>()?;
        let drvs: Vec<Derivation> = rendered.iter().map(|(d, _)| d.clone()).collect();
        self.realise(&drvs)?;
        let now = slapstore_store::build::unix_now();
        let params = serde_json::to_string(parameters).unwrap_or_default();
        let new: Vec<NewGeneration> = names
            .iter()
            .zip(&drvs)
            .map(|(n, d)| NewGeneration {
                partition: self.partition(n).to_string_lossy().into_owned(),
                row: GenerationRow {
                    instance: n.as_str().to_owned(),
                    number: 1,
                    path: d.path.to_string(),
                    release: release.to_string(),
                    parameters: params.clone(),
                    parent: None,
                    created: now,
                    deleted: false,
                },
                expect_new: true,
            })
            .collect();
        self.store.db().add_generations(&new)?;
        names
            .par_iter()
            .map(|n| self.sync_partition(n))
            .collect::<Result<Vec<_>>>()?;
        self.flush(names)?;
        Ok(drvs.into_iter().map(|d| d.path).collect())
    }

    /// Builds generation outputs in one batch.
    fn realise(&self, drvs: &[Derivation]) -> Result<()> {
        let fetcher = Fetcher::new(self.store.cache_dir()).deadline(self.build.download_deadline);
        build::realise_batch(self.store, drvs, &fetcher, self.observer)?;
        Ok(())
    }

    /// A new generation of `name` running `software`, its parameters those of the current
    /// generation overridden by `parameters`; the current one is its parent. When that
    /// generation would be the current one (same release, same parameters, same rendered
    /// files: the same output path), nothing is added.
    pub fn upgrade(
        &self,
        name: &InstanceName,
        software: &str,
        parameters: &Parameters,
    ) -> Result<Upgrade> {
        let _lock = self.store.lock(&format!("instance-{}", name.as_str()))?;
        let (current, generations) = self.current(name)?;
        let mut merged: Parameters = serde_json::from_str(&current.parameters).unwrap_or_default();
        merged.extend(parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        let release = self.release(software)?;
        let (drv, _) = self.render(name, &release, &merged)?;
        if drv.path.to_string() == current.path {
            return Ok(Upgrade {
                generation: current,
                changed: false,
            });
        }
        self.realise(std::slice::from_ref(&drv))?;
        let row = GenerationRow {
            instance: name.as_str().to_owned(),
            number: generations.iter().map(|g| g.number).max().unwrap_or(0) + 1,
            path: drv.path.to_string(),
            release: release.to_string(),
            parameters: serde_json::to_string(&merged).unwrap_or_default(),
            parent: Some(current.number),
            created: slapstore_store::build::unix_now(),
            deleted: false,
        };
        self.store.db().add_generations(&[NewGeneration {
            partition: self.partition(name).to_string_lossy().into_owned(),
            row: row.clone(),
            expect_new: false,
        }])?;
        self.sync_partition(name)?;
        self.flush(std::slice::from_ref(name))?;
        Ok(Upgrade {
            generation: row,
            changed: true,
        })
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
            Some(self.render(name, &release, &merged)?.0.path)
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
