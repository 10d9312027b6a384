//! `slapos.recipe.build:mkdirectory` (and `slapos.cookbook:mkdirectory`) in a software profile,
//! for a build. Each option is a directory to make; SlapOS releases use it to give downloads a
//! place beside the software (`json = ${buildout:parts-directory}/json-schema`, then
//! `destination = ${directory:json}/${:filename}`). In the store such a directory is a
//! subdirectory of the part's own output: an option under buildout's `directory` (or its
//! `parts-directory`) becomes `${:location}/<the path below it>`, made empty by a `shell`
//! derivation (`mkdir -p`, each path quoted), so `${directory:json}` names a real, read-only
//! directory. A path elsewhere is refused, naming the option. `mode` is checked and not
//! applied: store directories are read-only (0555).

use super::{wrapper, Part};
use crate::error::Result;

pub fn in_build(part: &mut Part) -> Result<()> {
    super::build::mkdirectory(part)?;
    let Some(mode) = part.r.settings.store.clone() else {
        return Ok(());
    };
    let placeholder = mode.placeholder(&part.name);
    let roots = [
        part.buildout("parts-directory")?,
        part.buildout("directory")?,
    ];
    let mut made = Vec::new();
    for (key, value) in part.r.items(part.idx)? {
        if matches!(key.as_str(), "recipe" | "mode" | "location") || key.starts_with('_') {
            continue;
        }
        let path = crate::pystr::normpath(value.trim());
        if value.trim().is_empty() {
            continue;
        }
        let below = roots.iter().find_map(|root| {
            if path == *root {
                Some(String::new())
            } else {
                path.strip_prefix(root.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                    .map(str::to_owned)
            }
        });
        let Some(below) = below.filter(|b| !b.starts_with("..")) else {
            return Err(part.option_error(
                &key,
                format!(
                    "at software time a directory is made in the part's own output, so it must \
                     lie in the buildout directory; `{path}` does not"
                ),
            ));
        };
        let target = if below.is_empty() {
            placeholder.clone()
        } else {
            format!("{placeholder}/{below}")
        };
        part.set(&key, target);
        made.push(below);
    }
    made.sort();
    made.dedup();
    let mut command = String::from("mkdir -p \"$out\"");
    for below in made.iter().filter(|b| !b.is_empty()) {
        command.push_str(&format!(" \"$out\"/{}", wrapper::quote(below)));
    }
    part.set("command", command);
    Ok(())
}
