//! `slapstore lock PROFILE`: writes `<profile>.lock`, the pins of every unpinned input of the
//! profile and of what it extends (`docs/lock.md`); and the lock's part in `plan`, `build` and
//! `instance`: finding the file, `--frozen`, stale entries.

use std::collections::BTreeSet;
use std::sync::Arc;

use clap::Args;
use slapstore_store::Store;

use super::eval::ProfileArgs;
use super::{report, StoreArgs};
use crate::lock::resolve::{Resolver, Update};
use crate::lock::{LockFile, LockState};

#[derive(Args, Debug)]
pub struct LockArgs {
    #[command(flatten)]
    profile: ProfileArgs,
    /// Resolve the inputs of the `PART`s again (of every part when none is named), instead of
    /// keeping the entries that still apply.
    #[arg(long)]
    update: bool,
    /// With `--update`: the parts to resolve again.
    #[arg(value_name = "PART", requires = "update")]
    parts: Vec<String>,
    /// Never download or fetch: branches from the mirrors in the download cache, remote files
    /// from the lock's existing entries.
    #[arg(long)]
    offline: bool,
}

/// The lock of `profile` for an evaluation, or the exit status of why it cannot be used
/// (`frozen` and no lock file, a lock file that does not read).
pub fn attach(profile: &str, frozen: bool) -> Result<LockState, i32> {
    let lock =
        LockState::for_profile(profile, frozen).map_err(|e| report::usage(&e.to_string()))?;
    if frozen && !lock.exists {
        return Err(report::usage(&format!(
            "--frozen: the profile has no lock file `{}`: run `slapstore lock {profile}`",
            lock.path.display()
        )));
    }
    Ok(lock)
}

/// Reports the lock's entries that no unpinned input used: warnings, or with `--frozen` an
/// error (exit status 2).
pub fn check_stale(lock: &LockState) -> Result<(), i32> {
    let stale = lock.stale();
    if stale.is_empty() {
        return Ok(());
    }
    for (part, key) in &stale {
        let message = format!(
            "the lock file `{}` has a stale entry, `{key}` of part `{part}`: no unpinned input \
             of the profile uses it (`slapstore lock` drops it)",
            lock.path.display()
        );
        if lock.frozen {
            report::error_line(&format!("--frozen: {message}"), None);
        } else {
            report::warn(&message);
        }
    }
    if lock.frozen {
        return Err(report::BAD_INPUT);
    }
    Ok(())
}

pub fn run(store_args: &StoreArgs, args: LockArgs) -> i32 {
    let profile = &args.profile.profile;
    let path = match LockFile::path_for(profile) {
        Ok(p) => p,
        Err(e) => return report::usage(&e.to_string()),
    };
    let lock = match LockState::for_profile(profile, false) {
        Ok(l) => Arc::new(l),
        Err(e) => return report::usage(&e.to_string()),
    };
    let store = match Store::open(&store_args.root()) {
        Ok(s) => s,
        Err(e) => return report::store_error(&e),
    };
    // every unpinned input is accepted (and, where the lock pins it, pinned) to be seen
    let store_dir = store.store_dir().to_string_lossy().into_owned();
    if let Err(code) =
        super::build::evaluate_with(&store_dir, &args.profile, true, Some(lock.clone()))
    {
        return code;
    }
    let seen = lock.seen();
    let update = match &args.parts {
        _ if !args.update => Update::Nothing,
        parts if parts.is_empty() => Update::All,
        parts => {
            let known: BTreeSet<&str> = seen.iter().map(|w| w.part.as_str()).collect();
            if let Some(unknown) = parts.iter().find(|p| !known.contains(p.as_str())) {
                return report::not_found(
                    &format!("part `{unknown}` of `{profile}` has no unpinned input to update"),
                    Some(&format!(
                        "the parts with unpinned inputs: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known
                                .iter()
                                .map(|p| format!("`{p}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    )),
                );
            }
            Update::Parts(parts.iter().cloned().collect())
        }
    };
    let scratch = match tempfile::Builder::new()
        .prefix("lock-")
        .tempdir_in(store.root().join("var/tmp"))
    {
        Ok(d) => d,
        Err(e) => return report::failure(&format!("cannot make a scratch directory: {e}")),
    };
    let resolver = Resolver {
        cache_dir: store.cache_dir(),
        scratch: scratch.path().to_owned(),
        offline: args.offline,
        deadline: store_args.download_deadline(),
    };
    let (new, changes) = match resolver.lock(&seen, &lock.file, &update) {
        Ok(r) => r,
        Err(message) => return report::failure(&message),
    };
    if !lock.exists || new != lock.file {
        if let Err(e) = new.save(&path) {
            return report::failure(&e.to_string());
        }
    }
    if !store_args.quiet {
        // an egg closure as its distributions and versions
        let show = |key: &str, pin: &str| -> String {
            if key != "eggs" {
                return pin.to_owned();
            }
            let dists: Vec<String> = pin
                .lines()
                .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
                .collect();
            dists.join(", ")
        };
        for c in &changes {
            let old = c.old.as_deref().map(|p| show(&c.key, p));
            let new = c.new.as_deref().map(|p| show(&c.key, p));
            let line = match (&old, &new) {
                (None, Some(new)) => format!("locked `{}` {}: {new}", c.part, c.key),
                (Some(old), Some(new)) => {
                    format!("updated `{}` {}: {old} -> {new}", c.part, c.key)
                }
                (Some(_), None) => format!("dropped `{}` {} (stale)", c.part, c.key),
                (None, None) => continue,
            };
            eprintln!("{line}");
        }
        eprintln!(
            "{} unpinned input{} pinned, {} changed",
            seen.len(),
            if seen.len() == 1 { "" } else { "s" },
            changes.len()
        );
    }
    super::print(&format!("{}\n", path.display()))
}
