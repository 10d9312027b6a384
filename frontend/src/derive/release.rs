//! The release of a software profile (design §6): every part's output and the instance profile,
//! found as slapgrid finds it; and its name.

use std::collections::{BTreeMap, BTreeSet};

use slapstore_store::derivation::{Build, Inputs};
use slapstore_store::{Derivation, PartName, Recipe};

use super::unplace;
use crate::error::Result;

/// The files slapgrid runs as a release's instance profile, in the order it looks for them.
pub const INSTANCE_PROFILES: [&str; 2] = ["instance.cfg", "template.cfg"];

/// The release of a software profile (design §6): every part's output, and the instance
/// profile — the file a template part renders to `${buildout:directory}/instance.cfg`, else to
/// `${buildout:directory}/template.cfg` (slapgrid's order), else `[buildout] instance-profile`
/// rendered with the software's `${...}`.
pub fn release(r: &mut crate::resolver::Resolver, name: &str) -> Result<Derivation> {
    let Some(mode) = r.settings.store.clone() else {
        return Err(crate::error::Error::buildout(
            "a release is made in builds only",
        ));
    };
    let b = r.section("buildout")?;
    let directory = r.require(b, "directory")?;
    // options of the release: the instance profile as text (a `template` part, which the
    // frontend rendered, or `instance-profile`) or as the file a `jinja2` part renders
    let mut instance: Option<(&str, String)> = None;
    let mut from = None;
    for file in INSTANCE_PROFILES {
        let conventional = crate::pystr::path_join(&directory, file);
        // of two parts writing the file, the one installed last leaves it
        let last = r
            .derivations
            .outputs
            .iter()
            .filter(|(_, output)| crate::pystr::normpath(output) == conventional)
            .map(|(&i, _)| i)
            .max();
        if let Some(i) = last {
            let d = &r.derivations.list[i];
            from = Some(format!("[{}] ({file})", d.name()));
            instance = match (d.option("rendered-text"), d.option("output-file")) {
                (Some(text), _) if d.recipe() == Recipe::Template => {
                    Some(("instance-profile-text", text.to_owned()))
                }
                (_, Some(out)) => Some((
                    "instance-profile-file",
                    format!("{}/{}/{out}", mode.store_dir, d.path),
                )),
                _ => None,
            };
            break;
        }
    }
    if instance.is_none() {
        if let Some(file) = r
            .get(b, "instance-profile", None)?
            .filter(|f| !f.trim().is_empty())
        {
            let path = crate::pystr::path_join(&directory, file.trim());
            let span = r.span_of(b, "instance-profile");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                crate::error::Error::buildout(format!(
                    "cannot read the instance profile `{path}`: {e}"
                ))
                .or_at(span)
            })?;
            let len = text.len();
            let file_id = r.sources.add(path.clone(), text.clone());
            let origin = crate::config::Origin::File(crate::source::Span::new(file_id, 0..len));
            from = Some(format!("`{path}`"));
            instance = Some((
                "instance-profile-text",
                crate::recipes::template::render(r, b, &text, &origin)?,
            ));
        }
    }
    let name = PartName::new(name).map_err(|e| crate::error::Error::buildout(e.to_string()))?;
    let mut parts = serde_json::Map::new();
    let mut references = BTreeSet::new();
    for d in &r.derivations.list {
        let path = format!("{}/{}", mode.store_dir, d.path);
        parts.insert(d.name().to_owned(), serde_json::Value::String(path));
        references.insert(d.path.to_string());
    }
    let mut options = BTreeMap::new();
    options.insert(
        "parts-json".to_owned(),
        serde_json::Value::Object(parts).to_string(),
    );
    options.insert(
        crate::software_paths::OPTION.to_owned(),
        software_paths(r, &mode.store_dir)?.to_json(),
    );
    if let Some((key, value)) = instance {
        options.insert(key.to_owned(), value);
    }
    let inputs = Inputs {
        name,
        recipe: Recipe::Release,
        system: mode.system.clone(),
        options: options
            .iter()
            .map(|(k, v)| (k.clone(), unplace(&mode, v)))
            .collect(),
        sources: BTreeMap::new(),
        files: BTreeMap::new(),
        references,
    };
    // where the instance profile comes from, for `plan` (not an input: its content is)
    let mut build_options = options;
    if let Some(from) = from {
        build_options.insert(INSTANCE_PROFILE_FROM.to_owned(), from);
    }
    Ok(Derivation::new(
        inputs,
        Build {
            options: build_options,
            sources: Vec::new(),
            files: BTreeMap::new(),
        },
    ))
}

/// The release's build option saying where its instance profile comes from: `[part] (file)`
/// or `` `path` ``.
pub const INSTANCE_PROFILE_FROM: &str = "instance-profile-from";

/// The system string derivations are built for.
pub fn system() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// `<directory of the profile>-release` (`examples/lua/software.cfg` → `lua-release`).
pub fn release_name(profile: &str) -> String {
    let path = std::path::Path::new(profile);
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let dir = abs
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && slapstore_store::PartName::new(n).is_ok())
        .unwrap_or("software");
    format!("{dir}-release")
}

/// Where buildout would have put each part's files, and where the store has them: its
/// directory `${buildout:parts-directory}/<name>` is its output, and a template part's `output`
/// is the file in its output (`software_paths.rs`).
fn software_paths(
    r: &mut crate::resolver::Resolver,
    store_dir: &str,
) -> Result<crate::software_paths::SoftwarePaths> {
    let b = r.section("buildout")?;
    let parts_dir = r.require(b, "parts-directory")?;
    let mut map = BTreeMap::new();
    for (i, d) in r.derivations.list.iter().enumerate() {
        let out = format!("{store_dir}/{}", d.path);
        if let (Some(original), Some(file)) =
            (r.derivations.outputs.get(&i), d.option("output-file"))
        {
            map.insert(crate::pystr::normpath(original), format!("{out}/{file}"));
        }
        map.insert(crate::pystr::path_join(&parts_dir, d.name()), out);
    }
    Ok(crate::software_paths::SoftwarePaths::new(map))
}
