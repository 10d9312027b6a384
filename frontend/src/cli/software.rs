//! `slapstore software list|remove`: installed releases. A successful `build` (and an
//! `instance create|upgrade` of a profile) installs the release it made; an installed release
//! is a gc root until it is removed, as a SlapOS node keeps the software it was supplied until
//! it is supplied for removal. One release per profile: building a profile again replaces it.

use clap::{Args, Subcommand};
use slapstore_store::Store;

use super::{report, StoreArgs};

#[derive(Args, Debug)]
pub struct SoftwareArgs {
    #[command(subcommand)]
    command: SoftwareCommand,
}

#[derive(Subcommand, Debug)]
enum SoftwareCommand {
    /// List the installed releases and the profiles they were built from.
    List {
        /// Print `[{"profile": ..., "release": ..., "installed": unix time}]`.
        #[arg(long)]
        json: bool,
    },
    /// Stop keeping installed releases alive (the next gc deletes what nothing else roots).
    Remove {
        /// Releases (store paths) or the profiles they were built from.
        #[arg(required = true, value_name = "RELEASE|PROFILE")]
        software: Vec<String>,
    },
}

pub fn run(store_args: &StoreArgs, args: SoftwareArgs) -> i32 {
    let store = match Store::open_existing(&store_args.root()) {
        Ok(s) => s,
        Err(e) => return report::store_error(&e),
    };
    match args.command {
        SoftwareCommand::List { json } => list(&store, json),
        SoftwareCommand::Remove { software } => remove(&store, &software),
    }
}

fn list(store: &Store, json: bool) -> i32 {
    let rows = match store.db().installed() {
        Ok(r) => r,
        Err(e) => return report::store_error(&e),
    };
    let dir = store.store_dir();
    let out = if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "profile": r.profile,
                    "release": dir.join(&r.release).display().to_string(),
                    "installed": r.installed,
                })
            })
            .collect();
        format!("{:#}\n", serde_json::Value::Array(list))
    } else {
        rows.iter()
            .map(|r| format!("{}  {}\n", dir.join(&r.release).display(), r.profile))
            .collect()
    };
    super::print(&out)
}

fn remove(store: &Store, software: &[String]) -> i32 {
    let mut out = String::new();
    for text in software {
        // a store path names a release; anything else is a profile
        let release = store
            .parse_path(text)
            .ok()
            .filter(|_| {
                text.starts_with(&*store.store_dir().to_string_lossy()) || !text.contains('/')
            })
            .map(|p| p.to_string())
            .unwrap_or_default();
        let profile = slapstore_store::roots::profile_key(text);
        let removed = match store.db().uninstall(&profile, &release) {
            Ok(r) => r,
            Err(e) => return report::store_error(&e),
        };
        if removed.is_empty() {
            return report::usage(&format!(
                "no installed software is `{text}` (see `slapstore software list`)"
            ));
        }
        for r in removed {
            out.push_str(&format!(
                "removed {} ({})\n",
                store.store_dir().join(&r.release).display(),
                r.profile
            ));
        }
    }
    super::print(&out)
}
