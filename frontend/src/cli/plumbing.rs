//! `slapstore store ...`: low-level commands on store paths, without profiles — adding files as
//! content-addressed paths and registering trees written into `store/` by other means (what
//! benchmarks and tools that fill a store need, as `nix-store --add` and
//! `--register-validity` do for Nix).

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use slapstore_store::Store;

use super::{report, StoreArgs};

#[derive(Args, Debug)]
pub struct PlumbingArgs {
    #[command(subcommand)]
    command: Plumbing,
}

#[derive(Subcommand, Debug)]
enum Plumbing {
    /// Add files or directories as content-addressed store paths; print their paths.
    Add {
        /// Files or directories to add.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Register trees already written under `store/`, reading `nix-store --register-validity`
    /// input on stdin (path, deriver line, reference count, references).
    Register,
}

pub fn run(store_args: &StoreArgs, args: PlumbingArgs) -> i32 {
    let store = match Store::open(&store_args.root()) {
        Ok(s) => s,
        Err(e) => return report::store_error(&e),
    };
    match args.command {
        Plumbing::Add { paths } => match slapstore_store::add::add(&store, &paths) {
            Ok(added) => {
                let dir = store.store_dir();
                let text: String = added
                    .iter()
                    .map(|p| format!("{}\n", dir.join(p.to_string()).display()))
                    .collect();
                super::print(&text)
            }
            Err(e) => report::store_error(&e),
        },
        Plumbing::Register => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                return report::usage(&format!("cannot read stdin: {e}"));
            }
            let result = slapstore_store::add::parse_validity(&store, &text)
                .and_then(|paths| slapstore_store::add::register(&store, &paths));
            match result {
                Ok(()) => 0,
                Err(e) => report::store_error(&e),
            }
        }
    }
}
