//! `slapstore key generate|show` and `slapstore cache push|pull`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use clap::{Args, Subcommand};
use slapstore_store::cache::{self, SecretKey};
use slapstore_store::{Store, StorePath};

use super::eval::ProfileArgs;
use super::{report, StoreArgs};

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Make this root's signing key (`<root>/etc/signing.key`); print its public key.
    Generate {
        /// The key's name (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Print this root's public key, `name:base64` (what other machines pass to `--trusted-key`).
    Show {
        /// Print `{"name", "public_key", "path"}`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Copy the closures of profiles' releases or store paths into a cache, signed.
    Push {
        /// The cache: a directory or a `file://` URL.
        dest: String,
        /// Profiles (their release, built) or store paths.
        #[arg(required = true)]
        what: Vec<String>,
        /// Print `{"pushed", "skipped", "bytes"}`.
        #[arg(long)]
        json: bool,
    },
    /// Copy store paths and their closures from binary caches (the substituters, and `--from`),
    /// building nothing.
    Pull {
        /// Store paths (full paths, or `<hash>-<name>`).
        #[arg(required = true)]
        paths: Vec<String>,
        /// A cache to pull from, besides the configured substituters.
        #[arg(long, value_name = "URL")]
        from: Vec<String>,
        /// Print `{"fetched", "present", "bytes"}`.
        #[arg(long)]
        json: bool,
    },
}

fn key_path(store: &Store) -> std::path::PathBuf {
    store.root().join("etc/signing.key")
}

pub fn key(store_args: &StoreArgs, args: KeyArgs) -> i32 {
    let store = match Store::open(&store_args.root()) {
        Ok(s) => s,
        Err(e) => return report::store_error(&e),
    };
    let (name, force) = match args.command {
        KeyCommand::Generate { name, force } => (name, force),
        KeyCommand::Show { json } => return show_key(&store, json),
    };
    let name = name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "slapstore".into())
    });
    if name.contains(':') || name.chars().any(char::is_whitespace) {
        return report::usage(&format!("`{name}` cannot name a key (no `:` or spaces)"));
    }
    let path = key_path(&store);
    if path.exists() && !force {
        return report::usage(&format!(
            "`{}` exists; `--force` replaces it",
            path.display()
        ));
    }
    let key = match SecretKey::generate(&name) {
        Ok(k) => k,
        Err(e) => return report::failure(&e.to_string()),
    };
    let dir = store.root().join("etc");
    let tmp = dir.join(".signing.key.new");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{}\n", key.to_text()).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    });
    if let Err(e) = written {
        return report::failure(&format!("cannot write `{}`: {e}", path.display()));
    }
    super::print(&format!("{}\n", key.public().to_text()))
}

/// `key show`: the public half of `<root>/etc/signing.key`.
fn show_key(store: &Store, json: bool) -> i32 {
    let path = key_path(store);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return report::not_found(
                &format!("this root has no signing key `{}`", path.display()),
                Some("make one with `slapstore key generate`"),
            )
        }
        Err(e) => return report::failure(&format!("cannot read `{}`: {e}", path.display())),
    };
    let key = match SecretKey::parse(text.trim()) {
        Ok(k) => k.public(),
        Err(e) => return report::failure(&format!("`{}`: {e}", path.display())),
    };
    let public = key.to_text();
    if json {
        let name = public.split_once(':').map_or("", |(n, _)| n);
        let value = serde_json::json!({
            "name": name,
            "public_key": public,
            "path": path.display().to_string(),
        });
        super::print(&format!("{value:#}\n"))
    } else {
        super::print(&format!("{public}\n"))
    }
}

pub fn cache(store_args: &StoreArgs, args: CacheArgs) -> i32 {
    let store = match Store::open(&store_args.root()) {
        Ok(s) => s,
        Err(e) => return report::store_error(&e),
    };
    match args.command {
        CacheCommand::Push { dest, what, json } => push(&store, dest, what, json),
        CacheCommand::Pull { paths, from, json } => pull(store_args, &store, paths, from, json),
    }
}

fn pull(
    store_args: &StoreArgs,
    store: &Store,
    paths: Vec<String>,
    from: Vec<String>,
    json: bool,
) -> i32 {
    let mut args = StoreArgs {
        root: store_args.root.clone(),
        partitions: None,
        substituters: store_args.substituters.clone(),
        trusted_keys: store_args.trusted_keys.clone(),
        jobs: None,
        download_timeout: store_args.download_timeout,
        no_sandbox: store_args.no_sandbox,
        verbose: false,
        quiet: false,
        color: store_args.color,
    };
    args.substituters.extend(from);
    let sub = match super::config(store).and_then(|config| super::substituter(&args, store, config))
    {
        Ok(Some(s)) => s,
        Ok(None) => {
            return report::usage("no cache to pull from: give `--from URL` or `--substituter URL`")
        }
        Err(code) => return code,
    };
    let mut roots = Vec::new();
    for p in &paths {
        match store.parse_path(p) {
            Ok(p) => roots.push(p),
            Err(e) => return report::store_error(&e),
        }
    }
    match cache::pull(store, &sub, &roots) {
        Ok(r) => {
            let out = if json {
                format!(
                    "{:#}\n",
                    serde_json::json!({"fetched": r.fetched, "present": r.present, "bytes": r.bytes})
                )
            } else {
                format!(
                    "fetched {} paths ({}), {} already here\n",
                    r.fetched.len(),
                    super::inspect::human_size(r.bytes),
                    r.present.len()
                )
            };
            super::print(&out)
        }
        Err(e) => report::failure(&e.to_string()),
    }
}

fn push(store: &Store, dest: String, what: Vec<String>, json: bool) -> i32 {
    let key_file = key_path(store);
    let key = match std::fs::read_to_string(&key_file)
        .map_err(|e| cache::CacheError::NoSigningKey {
            path: key_file.display().to_string(),
            error: e.to_string(),
        })
        .and_then(|t| SecretKey::parse(&t))
    {
        Ok(k) => k,
        Err(e) => return report::usage(&e.to_string()),
    };
    let dest_dir = std::path::PathBuf::from(dest.strip_prefix("file://").unwrap_or(&dest));
    let mut roots: Vec<StorePath> = Vec::new();
    for item in &what {
        let in_store = std::path::Path::new(item).starts_with(store.store_dir())
            || (!item.contains('/') && StorePath::parse(item).is_ok());
        if in_store {
            match store.parse_path(item) {
                Ok(p) => roots.push(p),
                Err(e) => return report::store_error(&e),
            }
            continue;
        }
        // a profile: its release, which must be built
        let profile = ProfileArgs::from_profile(item);
        let drvs = match super::build::derivations(
            &store.store_dir().to_string_lossy(),
            &profile,
            false,
        ) {
            Ok(d) => d,
            Err(code) => return code,
        };
        match drvs.last() {
            Some(release) => roots.push(release.path.clone()),
            None => return report::usage(&format!("`{item}` has no release")),
        }
    }
    let result = store
        .add_temp_roots(&roots)
        .map_err(cache::CacheError::from);
    let result = result.and_then(|()| cache::push(store, &dest_dir, &roots, &key));
    match result {
        Ok(r) => {
            let out = if json {
                format!(
                    "{:#}\n",
                    serde_json::json!({"pushed": r.pushed, "skipped": r.skipped, "bytes": r.bytes})
                )
            } else {
                format!(
                    "pushed {} paths ({} compressed), {} already in `{}`\n",
                    r.pushed.len(),
                    super::inspect::human_size(r.bytes),
                    r.skipped.len(),
                    dest_dir.display()
                )
            };
            super::print(&out)
        }
        Err(cache::CacheError::NotValid(p)) => report::usage(&format!(
            "`{p}` is not built in this store: build it before pushing it"
        )),
        Err(e) => report::failure(&e.to_string()),
    }
}
