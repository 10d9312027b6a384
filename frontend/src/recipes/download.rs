//! `slapos.recipe.build:download` (one file: `location`, `target`) and
//! `slapos.recipe.build:download-unpacked` (an archive: `location` = `target`).

use super::{environment, Part, Shared};
use crate::error::Result;
use crate::pystr::{basename, path_join};

/// `download`: `target` is `<location>/<basename(filename) or part name>`, or `destination`.
pub fn file(part: &mut Part) -> Result<()> {
    part.require("url")?;
    part.get("alternate-url")?;
    let md5sum = part.get("md5sum")?.filter(|m| !m.is_empty());
    if let Some(offline) = part.get("offline")? {
        if !offline.is_empty() {
            part.is_true("offline")?;
        }
    }
    if part.get("mode")?.is_some() {
        return Err(part.option_error("mode", "option 'mode' not supported"));
    }
    let shared = Shared::new(part)?;
    if md5sum.is_none() {
        shared.assert_not_shared(part, "option 'md5sum' must be set")?;
    }
    let target = match part.get("destination")?.filter(|d| !d.is_empty()) {
        Some(destination) => {
            shared.assert_not_shared(part, "option 'destination' can't be set")?;
            destination
        }
        None => {
            let name = match part.get("filename")?.filter(|f| !f.is_empty()) {
                Some(f) => basename(&f).to_owned(),
                None => part.name.clone(),
            };
            part.set("location", shared.location.clone());
            path_join(&shared.location, &name)
        }
    };
    part.set("target", target);
    Ok(())
}

/// `download-unpacked`: `location` and `target` are both the unpack directory.
pub fn unpacked(part: &mut Part) -> Result<()> {
    if part.get("strip-top-level-dir")?.is_some() {
        part.is_true("strip-top-level-dir")?;
    }
    part.require("url")?;
    let shared = Shared::new(part)?;
    let location = match part.get("destination")?.filter(|d| !d.is_empty()) {
        Some(destination) => {
            shared.assert_not_shared(part, "option 'destination' can't be set")?;
            destination
        }
        None => shared.location.clone(),
    };
    part.set("location", location.clone());
    part.set("target", location);
    environment(part)
}
