//! `zc.recipe.egg` and its entry points (`eggs`, `scripts`/`default`, `custom`, `develop`):
//! initialisation records the buildout's egg directories in the part (`eggs-directory`, `_e`,
//! `develop-eggs-directory`, `_d`, `bin-directory`, `_b`) and makes some paths absolute.

use super::Part;
use crate::error::{Error, Result};
use crate::pystr::{path_join, split_whitespace, strip};

/// `Eggs.__init__`.
pub fn eggs(part: &mut Part) -> Result<()> {
    let default_links = part.buildout("find-links")?;
    let links = part.get("find-links")?.unwrap_or(default_links);
    links_and_index(part, Some(links))?;
    part.buildout("allow-hosts")?;
    let eggs = part.buildout("eggs-directory")?;
    part.set("eggs-directory", eggs.clone());
    part.set("_e", eggs);
    let develop = part.buildout("develop-eggs-directory")?;
    part.set("develop-eggs-directory", develop.clone());
    part.set("_d", develop);
    Ok(())
}

/// `find-links` (one link a line) and `index` (the part's, else the buildout's), as both
/// `Eggs` and `Custom` record them.
fn links_and_index(part: &mut Part, links: Option<String>) -> Result<()> {
    if let Some(links) = links.filter(|l| !l.is_empty()) {
        part.set(
            "find-links",
            split_whitespace(&links).collect::<Vec<_>>().join("\n"),
        );
    }
    let index = match part.get("index")? {
        Some(i) => Some(i),
        None => part.buildout_get("index")?,
    };
    if let Some(index) = index {
        part.set("index", index);
    }
    Ok(())
}

/// `Scripts.__init__` (also `default` and `script`).
pub fn scripts(part: &mut Part) -> Result<()> {
    eggs(part)?;
    let bin = part.buildout("bin-directory")?;
    part.set("bin-directory", bin.clone());
    part.set("_b", bin);
    let directory = part.buildout("directory")?;
    let extra: Vec<String> = part
        .get("extra-paths")?
        .unwrap_or_default()
        .split('\n')
        .filter(|p| !strip(p).is_empty())
        .map(|p| path_join(&directory, strip(p)))
        .collect();
    if !extra.is_empty() {
        part.set("extra-paths", extra.join("\n"));
    }
    let relative = match part.get("relative-paths")? {
        Some(v) => v,
        None => part
            .buildout_get("relative-paths")?
            .unwrap_or_else(|| "false".into()),
    };
    match relative.as_str() {
        "true" => part.set("buildout-directory", directory),
        "false" => {}
        other => {
            return Err(part.option_error(
                "relative-paths",
                format!("`relative-paths` must be `true` or `false`, not `{other}`"),
            ))
        }
    }
    Ok(())
}

/// `custom.Base.__init__` and `build_ext`.
fn base(part: &mut Part) -> Result<()> {
    let develop = part.buildout("develop-eggs-directory")?;
    part.set("_d", develop);
    let directory = part.buildout("directory")?;
    for key in ["include-dirs", "library-dirs"] {
        if let Some(value) = part.get(key)? {
            let joined: Vec<String> = strip(&value)
                .split('\n')
                .filter(|v| !strip(v).is_empty())
                .map(|v| path_join(&directory, strip(v)))
                .collect();
            part.set(key, joined.join(":"));
        }
    }
    if let Some(value) = part.get("rpath")? {
        const SPECIAL: [&str; 6] = [
            "$ORIGIN",
            "$LIB",
            "$PLATFORM",
            "${ORIGIN}",
            "${LIB}",
            "${PLATFORM}",
        ];
        let joined: Vec<String> = strip(&value)
            .split('\n')
            .filter(|v| !strip(v).is_empty())
            .map(|v| {
                let v = strip(v);
                if SPECIAL.iter().any(|s| v.starts_with(s)) {
                    v.to_owned()
                } else {
                    path_join(&directory, v)
                }
            })
            .collect();
        part.set("rpath", joined.join(":"));
    }
    if let Some(swig) = part.get("swig")?.filter(|s| !s.is_empty()) {
        part.set("swig", path_join(&directory, &swig));
    }
    Ok(())
}

/// `Custom.__init__`.
pub fn custom(part: &mut Part) -> Result<()> {
    base(part)?;
    let links = match part.get("find-links")? {
        Some(l) => Some(l),
        None => part.buildout_get("find-links")?,
    };
    links_and_index(part, links)?;
    let mut data: Vec<(String, String)> = Vec::new();
    if let Some(env) = part.get("environment")?.filter(|e| !e.is_empty()) {
        let span = part.r.span_of(part.idx, "environment");
        let idx = part.r.section(&env).map_err(|e: Error| e.or_at(span))?;
        data = part.r.items(idx)?;
        data.sort();
    }
    let repr: Vec<String> = data
        .iter()
        .map(|(k, v)| format!("({}, {})", crate::pystr::repr(k), crate::pystr::repr(v)))
        .collect();
    part.set("_environment-data", format!("[{}]", repr.join(", ")));
    let eggs = part.buildout("eggs-directory")?;
    part.set("_e", eggs);
    part.buildout_get("offline")?;
    part.buildout_get("newest")?;
    Ok(())
}

/// `Develop.__init__`: `setup` is made absolute.
pub fn develop(part: &mut Part) -> Result<()> {
    base(part)?;
    let directory = part.buildout("directory")?;
    let setup = part.require("setup")?;
    part.set("setup", path_join(&directory, &setup));
    Ok(())
}
