//! `slapstore plan` and `slapstore build`: a profile's derivations in build order, and building
//! them (then the release, whose store path is printed last on stdout).

use std::io::Write;

use clap::Args;
use slapstore_store::build::{self, BuildOptions};
use slapstore_store::{Derivation, Store};

use super::eval::ProfileArgs;
use super::{report, StoreArgs};
use crate::derive::StoreMode;
use crate::evaluate::evaluate;
use crate::source::Sources;

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    profile: ProfileArgs,
    /// Print a list of `{"part", "hash", "path", "recipe", "deps", "built"}`.
    #[arg(long)]
    json: bool,
    /// Accept remote sources without a checksum.
    #[arg(long)]
    allow_unpinned: bool,
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
    /// Never download: sources come from the download cache or local files.
    #[arg(long)]
    offline: bool,
}

/// Evaluates the profile into derivations for `store` (the release last), or reports why not.
pub fn derivations(
    store_dir: &str,
    profile: &ProfileArgs,
    allow_unpinned: bool,
) -> Result<Vec<Derivation>, i32> {
    let mut sources = Sources::default();
    let mut options = profile.eval_options(&sources)?;
    let release = crate::derive::release_name(&profile.profile);
    options.store = Some((
        StoreMode {
            store_dir: store_dir.to_owned(),
            system: crate::derive::system(),
            profile_dirs: Vec::new(),
            allow_unpinned,
        },
        release,
    ));
    evaluate(&mut sources, &profile.profile, &options)
        .map(|e| e.derivations)
        .map_err(|e| report::error(&sources, &e))
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
    let drvs = match derivations(
        &store_dir.to_string_lossy(),
        &args.profile,
        args.allow_unpinned,
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
                serde_json::json!({
                    "part": d.name(),
                    "hash": d.path.hash_part(),
                    "path": store_dir.join(d.path.to_string()),
                    "recipe": d.recipe().name(),
                    "deps": deps(d, &drvs),
                    "built": built,
                })
            })
            .collect();
        out = format!("{:#}\n", serde_json::Value::Array(list));
    } else {
        let width = drvs.iter().map(|d| d.name().len()).max().unwrap_or(0);
        for (d, built) in &rows {
            let state = if *built { "built" } else { "to build" };
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
    let drvs = match derivations(
        &store_dir.to_string_lossy(),
        &args.profile,
        args.allow_unpinned,
    ) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let substituter = match super::substituter(store_args, &store) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let options = BuildOptions {
        jobs: store_args.jobs.unwrap_or(BuildOptions::default().jobs),
        keep_going: args.keep_going,
        offline: args.offline,
        allow_unpinned: args.allow_unpinned,
        substituter,
    };
    let progress = super::progress::Progress::new(drvs.len(), store_args.quiet);
    let outcome = build::build(&store, &drvs, &options, &progress);
    drop(progress);
    let Some(release) = drvs.last() else {
        return report::failure("the profile has no release");
    };
    if !outcome.failed.is_empty() {
        for (_, e) in &outcome.failed {
            let skipped = matches!(e, slapstore_store::StoreError::DependencyFailed { .. });
            if !skipped || store_args.verbose {
                report::error_line(&e.to_string(), report::hint(e).as_deref());
            }
        }
        report::error_line(
            &format!(
                "{} of {} derivations not built",
                outcome.failed.len(),
                drvs.len()
            ),
            None,
        );
        return report::FAILED;
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
