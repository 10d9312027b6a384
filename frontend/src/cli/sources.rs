//! `slapstore add-source FILE...`: puts local files into the download cache under their MD5,
//! SHA-256 and BLAKE3, so that profiles naming them by URL and checksum build offline (as
//! SlapOS's download cache and networkcache do). Python distributions (wheels, sdists) are
//! also kept under their own names in the cache's `dists/`, where egg parts find them.

use clap::Args;
use slapstore_store::checksum::{Algorithm, Checksum};
use slapstore_store::fetch::Fetcher;
use slapstore_store::recipes;
use slapstore_store::Store;

use super::{report, StoreArgs};

#[derive(Args, Debug)]
pub struct AddSourceArgs {
    /// Files to cache.
    #[arg(required = true)]
    files: Vec<String>,
}

pub fn add_source(store_args: &StoreArgs, args: AddSourceArgs) -> i32 {
    let store = match Store::open(&store_args.root()) {
        Ok(s) => s,
        Err(e) => return report::store_error(&e),
    };
    let fetcher = Fetcher::new(store.cache_dir());
    let scratch = match tempfile::tempdir_in(store.root().join("var/tmp")) {
        Ok(d) => d,
        Err(e) => return report::failure(&format!("cannot make a scratch directory: {e}")),
    };
    let mut out = String::new();
    for file in &args.files {
        let path = match std::path::absolute(file) {
            Ok(p) => p,
            Err(e) => return report::usage(&format!("`{file}`: {e}")),
        };
        let text = path.to_string_lossy().into_owned();
        for algorithm in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Blake3] {
            let checksum = match Checksum::of_file(algorithm, &path) {
                Ok(c) => c,
                Err(e) => return report::usage(&format!("cannot read `{file}`: {e}")),
            };
            let dest = scratch.path().join("file");
            if let Err(e) = fetcher.fetch(&[&text], Some(&checksum), &dest) {
                return report::failure(&e.to_string());
            }
            out.push_str(&format!("{checksum}  {file}\n"));
        }
        // a Python distribution is also kept under its name, for egg parts' `--find-links`
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.as_deref().is_some_and(recipes::is_distribution) {
            let dists = store.cache_dir().join(recipes::DISTS_DIR);
            if let Err(e) = recipes::keep_distribution(&dists, &path) {
                return report::failure(&format!(
                    "cannot keep `{file}` in `{}`: {e}",
                    dists.display()
                ));
            }
        }
    }
    super::print(&out)
}
