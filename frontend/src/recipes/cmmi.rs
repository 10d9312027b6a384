//! `slapos.recipe.cmmi`: configure/make/make install. Initialisation fixes `location` (shared
//! or `<parts>/<name>`), defaults `prefix` to it, sets `compile-directory` (`<location>/.build`
//! for `url`, the `path` itself otherwise) and replaces `@@LOCATION@@` in every option.

use super::{environment, Part, Shared};
use crate::error::Result;
use crate::pystr::path_join;

pub fn init(part: &mut Part) -> Result<()> {
    let shared = Shared::new(part)?;
    let location = shared.location.clone();
    if let Some(given) = part.get("location")? {
        if given.replace("@@LOCATION@@", &location) != location {
            return Err(part.option_error("location", "invalid 'location' value"));
        }
    }
    part.set("location", location.clone());
    match part.get("prefix")? {
        Some(prefix) if !prefix.is_empty() => {
            let prefix = realpath(&prefix.replace("@@LOCATION@@", &location));
            if !prefix.starts_with(&location) {
                shared.assert_not_shared(part, "'prefix' can't be outside location")?;
            }
        }
        _ => part.set("prefix", location.clone()),
    }
    let url = part.get("url")?.filter(|u| !u.is_empty());
    let path = part.get("path")?.filter(|p| !p.is_empty());
    match (url, path) {
        (Some(_), Some(_)) => {
            return Err(part.error("you must use either \"url\" or \"path\", not both"))
        }
        (Some(_), None) => part.set("compile-directory", path_join(&location, ".build")),
        (None, Some(path)) => part.set("compile-directory", path),
        (None, None) => return Err(part.error("you must provide either \"url\" or \"path\"")),
    }
    for (key, value) in part.r.items(part.idx)? {
        if value.contains('@') && value.contains("@@LOCATION@@") {
            part.set(&key, value.replace("@@LOCATION@@", &location));
        }
    }
    environment(part)
}

/// `os.path.realpath`, falling back to the path itself when it does not exist yet.
fn realpath(path: &str) -> String {
    std::fs::canonicalize(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| crate::pystr::normpath(path))
}
