//! `instance create --dry-run`: what creating an instance of a software profile would deploy,
//! changing nothing. The profile is planned (evaluated into derivations, nothing built or
//! downloaded), its instance profile found as slapgrid finds it (the release's `instance.cfg`,
//! else `template.cfg`, `derive/release.rs`) and rendered for the instance against the planned
//! store paths: a file of an output not built yet is read from its derivation when that says
//! what it holds (`planned.rs`), and a file known only once built is an error naming the part
//! that makes it. No partition, generation, database row or store path is made; the values a
//! render generates (passwords, ports) are shown but not kept.

use std::collections::BTreeMap;

use slapstore_store::master::{self, State, DEFAULT_SOFTWARE_TYPE};
use slapstore_store::partition::InstanceName;
use slapstore_store::StorePath;

use super::{no_instance_profile, Context, InstanceError, Parameters, Placement, Result};
use crate::planned::Planned;
use crate::recipes::instance::InstanceOutput;

/// What `instance create NAME --dry-run` would deploy.
pub struct DryRun {
    pub name: String,
    /// The partition it would take (`slappartN`).
    pub partition_id: String,
    pub software_type: String,
    pub release: StorePath,
    /// The parts that creating it would build first (empty when the release is in the store).
    pub to_build: Vec<String>,
    /// Where the instance profile comes from (`[part] (file)`), when the release says.
    pub instance_profile_from: Option<String>,
    /// The store path the generation would have.
    pub generation: StorePath,
    pub parameters: Parameters,
    /// What the render puts in the partition, publishes and requests, and its parts.
    pub output: InstanceOutput,
}

impl Context<'_> {
    /// What [`Context::create`] of `name` would deploy, changing nothing.
    pub fn dry_run_create(
        &self,
        name: &InstanceName,
        software: &str,
        parameters: &Parameters,
        software_type: Option<&str>,
    ) -> Result<DryRun> {
        if self.store.db().instance(name.as_str())?.is_some() {
            return Err(
                slapstore_store::StoreError::InstanceExists(name.as_str().to_owned()).into(),
            );
        }
        let (release, to_build, from, planned, text) = self.planned_release(software)?;
        let release_dir = self.store.path_of(&release);
        let profile = release_dir.join("instance.cfg");
        let text = match text {
            Some(text) => text,
            None => {
                std::fs::read_to_string(&profile).map_err(|_| no_instance_profile(&release_dir))?
            }
        };
        let partition = self
            .store
            .db()
            .free_partitions(1, &self.computer, &[])?
            .first()
            .copied()
            .unwrap_or(0);
        let software_type = software_type.unwrap_or(DEFAULT_SOFTWARE_TYPE).to_owned();
        let placement = Placement {
            partition,
            software_type: software_type.clone(),
            software_url: self.software_url(software),
            title: name.as_str().to_owned(),
            root_title: name.as_str().to_owned(),
            state: State::Started.as_str().to_owned(),
            published: Parameters::new(),
            children: BTreeMap::new(),
            generated: BTreeMap::new(),
            shared: Vec::new(),
        };
        let rendered = self.render_profile(
            name, &release, &profile, text, parameters, &placement, planned,
        )?;
        Ok(DryRun {
            name: name.as_str().to_owned(),
            partition_id: master::partition_id(partition),
            software_type,
            release,
            to_build,
            instance_profile_from: from,
            generation: rendered.drv.path,
            parameters: parameters.clone(),
            output: rendered.output,
        })
    }

    /// The release `software` names, planned: its store path, the parts not built, where its
    /// instance profile comes from, the planned outputs and, when the release is not built,
    /// the instance profile's text.
    #[allow(clippy::type_complexity)]
    fn planned_release(
        &self,
        software: &str,
    ) -> Result<(
        StorePath,
        Vec<String>,
        Option<String>,
        Option<std::sync::Arc<Planned>>,
        Option<String>,
    )> {
        if self.names_store_path(software) {
            return Ok((self.release(software)?, Vec::new(), None, None, None));
        }
        let drvs = self.derivations(software)?;
        let release = drvs
            .last()
            .ok_or_else(|| InstanceError::Usage("the profile has no release".into()))?;
        let mut valid = std::collections::HashSet::new();
        let mut to_build = Vec::new();
        for d in &drvs {
            if self.store.is_valid(&d.path)? {
                valid.insert(d.path.clone());
            } else {
                to_build.push(d.name().to_owned());
            }
        }
        let store_dir = self.store.store_dir().to_string_lossy().into_owned();
        let planned = Planned::of(&store_dir, &drvs, |d| valid.contains(&d.path));
        let from = release
            .option(crate::derive::INSTANCE_PROFILE_FROM)
            .map(str::to_owned);
        let text = if valid.contains(&release.path) {
            None
        } else if let Some(text) = release.option("instance-profile-text") {
            Some(text.to_owned())
        } else if let Some(file) = release.option("instance-profile-file") {
            let known = planned
                .read(file)
                .unwrap_or_else(|| std::fs::read_to_string(file).map_err(|e| e.to_string()));
            Some(known.map_err(|m| {
                InstanceError::Usage(format!("cannot read the instance profile: {m}"))
            })?)
        } else {
            return Err(no_instance_profile(&self.store.path_of(&release.path)));
        };
        Ok((
            release.path.clone(),
            to_build,
            from,
            Some(std::sync::Arc::new(planned)),
            text,
        ))
    }
}
