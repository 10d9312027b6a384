//! Translation of initialised parts into derivations (design §2, §4), for `plan` and `build`.
//!
//! In a build the resolver runs as for `eval`, except that a recipe's location is the
//! placeholder of its store path ([`StoreMode::placeholder`]). Once a part's recipe is
//! initialised, [`derive`] reads its options, turns them into the derivation's hashed
//! [`Inputs`] — own location as the placeholder, profile directories as a marker, sources by
//! declared checksum, local files (patches, `path` trees, templates) by content — computes the
//! store path, and puts the real path in place of the placeholder in the part's options. Since
//! buildout initialises a referenced section before the one that references it, the store paths
//! of a part's dependencies are known when its hash is computed (Merkle-style).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use md5::Digest as _;
use slapstore_store::derivation::{Build, Inputs, Source, PLACEHOLDER_HASH};
use slapstore_store::{Derivation, PartName, Recipe};

use crate::error::Result;
use crate::extends::is_url;
use crate::recipes::template::Jinja2Template;
use crate::recipes::Part;

/// The recipes a build supports, for error messages.
pub const SUPPORTED: &str = "`download` (slapos.recipe.build:download), `download-unpacked`, \
    `cmmi` (slapos.recipe.cmmi), `shell` (plone.recipe.command), `template` \
    (slapos.recipe.template), `jinja2` (slapos.recipe.template:jinja2) and `egg` (zc.recipe.egg, \
    `:scripts`, `:eggs`, `:custom`, `:develop`)";

/// The marker that replaces a profile directory in hashed option values.
const PROFILE_DIR_MARKER: &str = "@@PROFILE_DIR@@";

/// What a build evaluation needs to know of the store.
#[derive(Debug, Clone, Default)]
pub struct StoreMode {
    /// `<root>/store`.
    pub store_dir: String,
    /// `x86_64-linux`, ...
    pub system: String,
    /// Directories of the profile files, longest first (their paths are not inputs).
    pub profile_dirs: Vec<String>,
    /// Accept remote sources without a checksum (their URL is then hashed).
    pub allow_unpinned: bool,
}

impl Derivations {
    /// The derivation whose output `path` lies in (or is), if it is one of these.
    pub fn owner(&self, store_dir: &str, path: &str) -> Option<&Derivation> {
        let rest = path.strip_prefix(store_dir)?.strip_prefix('/')?;
        let name = rest.split('/').next()?;
        let &i = self.by_hash.get(name.get(..32)?)?;
        let d = &self.list[i];
        (name == d.path.to_string()).then_some(d)
    }
}

impl StoreMode {
    /// The stand-in for a part's own store path while its hash is computed.
    pub fn placeholder(&self, name: &str) -> String {
        format!("{}/{PLACEHOLDER_HASH}-{name}", self.store_dir)
    }
}

/// The derivations of one evaluation, in the order their parts were initialised (dependencies
/// first).
#[derive(Debug, Default)]
pub struct Derivations {
    pub list: Vec<Derivation>,
    /// Index in `list` by hash part.
    by_hash: HashMap<String, usize>,
    /// For each derivation, what its template part rendered to (`output` as written in the
    /// profile), to find the instance profile.
    pub outputs: HashMap<usize, String>,
}

/// Options that are never inputs: the part's identity is its name and recipe, its location is
/// the placeholder, sources and files enter by checksum or content.
const NOT_HASHED: &[&str] = &[
    "location",
    "recipe",
    "_profile_base_location_",
    "_buildout_section_name_",
    "__buildout_signature__",
    "__buildout_installed__",
    "shared",
    "url",
    "alternate-url",
    "md5sum",
    "sha256",
    "blake3",
    "patches",
    "path",
    "output",
    "rendered",
    "template",
    "inline",
];

/// Turns the initialised part into a derivation (see the module docs).
pub fn derive(part: &mut Part, recipe: Recipe) -> Result<()> {
    let Some(mode) = part.r.settings.store.clone() else {
        return Ok(());
    };
    let name = PartName::new(&part.name).map_err(|e| part.error(e.to_string()))?;
    let placeholder = mode.placeholder(&part.name);
    match part.get("location")? {
        Some(l) if l == placeholder => {}
        None => part.set("location", placeholder.clone()),
        Some(other) => {
            // `download-unpacked` takes its location from `destination`
            let key = match part.get("destination")? {
                Some(d) if d.trim() == other.trim() => "destination",
                _ => "location",
            };
            return Err(part.option_error(
                key,
                format!(
                    "in a build a part's location is its store path, not `{other}`: remove \
                     `{key}`, or make it buildout's default `${{buildout:parts-directory}}/{}` \
                     (commands find the output in `$out` or `${{:location}}`)",
                    part.name
                ),
            ));
        }
    }
    let mut inputs = Inputs {
        name,
        recipe,
        system: mode.system.clone(),
        options: BTreeMap::new(),
        sources: BTreeMap::new(),
        files: BTreeMap::new(),
        references: BTreeSet::new(),
    };
    let mut build = Build {
        options: BTreeMap::new(),
        sources: Vec::new(),
        files: BTreeMap::new(),
    };
    let mut extra: Vec<(String, String)> = Vec::new();
    let mut output = None;
    match recipe {
        Recipe::Download | Recipe::DownloadUnpacked | Recipe::Cmmi => {
            if part.get("url")?.is_some_and(|u| !u.trim().is_empty()) {
                source(part, &mode, &mut inputs, &mut build)?;
            }
            if recipe == Recipe::Cmmi {
                if let Some(path) = part.get("path")?.filter(|p| !p.trim().is_empty()) {
                    let tree = PathBuf::from(path.trim());
                    if part
                        .r
                        .derivations
                        .owner(&mode.store_dir, path.trim())
                        .is_some()
                    {
                        // in another part's output: copied when building, and that part's
                        // store path (its hash) is the input
                        inputs.options.insert("path".into(), path.trim().to_owned());
                        build.files.insert("path".into(), tree);
                    } else {
                        let info = slapstore_store::output::content_hash(&tree).map_err(|e| {
                            part.option_error("path", format!("cannot read the source tree: {e}"))
                        })?;
                        inputs.files.insert("path".into(), info.content_hash);
                        build.files.insert("path".into(), tree);
                    }
                }
                patches(part, &mode, &mut inputs, &mut build)?;
            }
        }
        Recipe::Template => {
            let original = part.require("output")?;
            let file = output_file(part, &original)?;
            let text = part.rendered.take().unwrap_or_default();
            extra.push(("rendered-text".into(), text));
            extra.push(("output-file".into(), file.clone()));
            part.set("output", format!("{placeholder}/{file}"));
            output = Some(original);
        }
        Recipe::Jinja2 => {
            let original = match part.get("output")? {
                Some(o) => o,
                None => part.require("rendered")?,
            };
            let file = output_file(part, &original)?;
            let (template, context) = crate::recipes::template::jinja2_inputs(part)?;
            match template {
                Jinja2Template::Text(text) => extra.push(("template-text".into(), text)),
                // in another part's output: read when building, and a reference to that part
                Jinja2Template::Built(path) => extra.push(("template-file".into(), path)),
            }
            extra.push(("context-json".into(), context.to_string()));
            extra.push(("output-file".into(), file.clone()));
            part.set("output", format!("{placeholder}/{file}"));
            output = Some(original);
        }
        Recipe::Egg => {
            let mut build_only = Vec::new();
            let mut files = Vec::new();
            crate::recipes::egg::derive_inputs(
                part,
                &mode.store_dir,
                &mut extra,
                &mut build_only,
                &mut files,
            )?;
            for (k, v) in build_only {
                build.options.insert(k, v);
            }
            for (role, hash, path) in files {
                if !hash.is_empty() {
                    inputs.files.insert(role.clone(), hash);
                }
                build.files.insert(role, path);
            }
        }
        Recipe::Shell | Recipe::Release | Recipe::Generation => {}
    }
    if let Some(env) = part
        .get("environment")?
        .filter(|e| !e.is_empty() && !e.contains('='))
    {
        // `environment` names a section: its options are the variables
        let idx = part.r.section(&env)?;
        let lines: Vec<String> = part
            .r
            .items(idx)?
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        extra.push(("environment".into(), lines.join("\n")));
    }

    let mut items: BTreeMap<String, String> = part.r.items(part.idx)?.into_iter().collect();
    for (k, v) in extra {
        items.insert(k, v);
    }
    for (k, v) in &items {
        references(&part.r.derivations, &mode, v, &mut inputs.references);
        if !NOT_HASHED.contains(&k.as_str()) {
            inputs.options.insert(k.clone(), unplace(&mode, v));
        }
    }
    // references to the part's own output are not references to another derivation
    let drv = Derivation::new(inputs, build);
    let real = format!("{}/{}", mode.store_dir, drv.path);
    let mut drv = drv;
    for (k, v) in items {
        let v = v.replace(&placeholder, &real);
        if k != "rendered-text" && k != "template-text" && k != "context-json" {
            if let Some(current) = part.r.get(part.idx, &k, None)? {
                if current.contains(&placeholder) {
                    part.set(&k, current.replace(&placeholder, &real));
                }
            }
        }
        drv.build.options.insert(k, v);
    }
    let list = &mut part.r.derivations;
    let i = list.list.len();
    list.by_hash.insert(drv.path.hash_part(), i);
    if let Some(o) = output {
        list.outputs.insert(i, o);
    }
    list.list.push(drv);
    Ok(())
}

/// In a build, an explicit `location` (or `download-unpacked`'s `destination`) equal to
/// buildout's default, `<parts-directory>/<name>`, is the default: it is dropped, as if not
/// written, and every mention of it in the part's options (`make-options = PREFIX=${:location}`)
/// becomes the placeholder of the part's store path. Called before the recipe's initialisation.
pub fn default_location(part: &mut Part, recipe: Recipe) -> Result<()> {
    let Some(mode) = part.r.settings.store.clone() else {
        return Ok(());
    };
    // `download`'s `destination` is the file itself, not a directory
    let keys: &[&str] = match recipe {
        Recipe::DownloadUnpacked => &["location", "destination"],
        _ => &["location"],
    };
    let parts = part.buildout("parts-directory")?;
    let default = crate::pystr::path_join(&parts, &part.name);
    let mut explicit = false;
    for &key in keys {
        if let Some(value) = part.get(key)? {
            if crate::pystr::normpath(value.trim()) == default {
                explicit = true;
            }
        }
    }
    if !explicit {
        return Ok(());
    }
    let placeholder = mode.placeholder(&part.name);
    for (key, value) in part.r.items(part.idx)? {
        let trimmed = value.trim();
        if keys.contains(&key.as_str()) && crate::pystr::normpath(trimmed) == default {
            // as if it were not written: the recipe sets the default (the placeholder)
            part.r.delete(part.idx, &key);
            continue;
        }
        let replaced = replace_path(&value, &default, &placeholder);
        if replaced != value {
            part.set(&key, replaced);
        }
    }
    Ok(())
}

/// `text` with every mention of the path `from` (not a longer name: `parts/x` is not in
/// `parts/x-dev`) replaced by `to`.
fn replace_path(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let after = &rest[i + from.len()..];
        let longer = after
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
        out.push_str(&rest[..i]);
        out.push_str(if longer { from } else { to });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A template's output file name: the base name of `output`.
fn output_file(part: &Part, output: &str) -> Result<String> {
    Path::new(output.trim())
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| part.option_error("output", format!("`{output}` names no file")))
}

/// A hashed option value: profile directories replaced by a marker, so that the same profile
/// elsewhere gives the same hashes.
fn unplace(mode: &StoreMode, value: &str) -> String {
    if !mode.profile_dirs.iter().any(|d| value.contains(d.as_str())) {
        return value.to_owned();
    }
    // store paths stay as they are, even when the store lies below a profile directory
    const STORE: &str = "\0store\0";
    let mut v = value.replace(&mode.store_dir, STORE);
    for dir in &mode.profile_dirs {
        if v.contains(dir.as_str()) {
            v = v.replace(dir.as_str(), PROFILE_DIR_MARKER);
        }
    }
    v.replace(STORE, &mode.store_dir)
}

/// Adds to `found` the derivations whose store paths `value` mentions.
fn references(drvs: &Derivations, mode: &StoreMode, value: &str, found: &mut BTreeSet<String>) {
    let prefix = format!("{}/", mode.store_dir);
    let mut rest = value;
    while let Some(i) = rest.find(&prefix) {
        let after = &rest[i + prefix.len()..];
        if let Some(hash) = after.get(..32) {
            if let Some(&j) = drvs.by_hash.get(hash) {
                found.insert(drvs.list[j].path.to_string());
            }
        }
        rest = after;
    }
}

/// The part's `url` (and `alternate-url`): a source identified by its declared checksum, or a
/// local file by its content.
fn source(part: &mut Part, mode: &StoreMode, inputs: &mut Inputs, build: &mut Build) -> Result<()> {
    let url = part.require("url")?.trim().to_owned();
    let mut urls = vec![url.clone()];
    if let Some(alt) = part.get("alternate-url")?.filter(|a| !a.trim().is_empty()) {
        urls.push(alt.trim().to_owned());
    }
    let mut checksum = None;
    for (option, algorithm) in [
        ("md5sum", "md5"),
        ("sha256", "sha256"),
        ("blake3", "blake3"),
    ] {
        if let Some(hex) = part.get(option)?.filter(|h| !h.trim().is_empty()) {
            let hex = hex.trim().to_lowercase();
            let text = format!("{algorithm}:{hex}");
            text.parse::<slapstore_store::checksum::Checksum>()
                .map_err(|e| part.option_error(option, e.to_string()))?;
            checksum = Some(text);
            break;
        }
    }
    match &checksum {
        Some(c) => {
            inputs.sources.insert("url".into(), c.clone());
        }
        None if is_url(&url) && !url.starts_with("file://") => {
            if !mode.allow_unpinned {
                return Err(part.option_error(
                    "url",
                    format!(
                        "`{url}` has no checksum: add `md5sum` (or `sha256`, `blake3`), or build \
                         with `--allow-unpinned`"
                    ),
                ));
            }
            inputs.options.insert("url".into(), url.clone());
        }
        None => {
            let path = url.strip_prefix("file://").unwrap_or(&url);
            let bytes = std::fs::read(path)
                .map_err(|e| part.option_error("url", format!("cannot read `{path}`: {e}")))?;
            inputs.files.insert(
                "url".into(),
                format!("blake3:{}", blake3::hash(&bytes).to_hex()),
            );
        }
    }
    build.sources.push(Source {
        role: "url".into(),
        urls,
        checksum,
    });
    Ok(())
}

/// cmmi's `patches`: `FILE[#md5]` words. A local file is checked against its MD5 now and
/// identified by content; a remote one (`https://...#md5`) is a source identified by its
/// checksum, fetched at build time through the download cache as `url` is.
fn patches(
    part: &mut Part,
    mode: &StoreMode,
    inputs: &mut Inputs,
    build: &mut Build,
) -> Result<()> {
    let Some(text) = part.get("patches")? else {
        return Ok(());
    };
    for (i, word) in text.split_whitespace().enumerate() {
        let (file, md5sum) = match word.split_once('#') {
            Some((f, m)) => (f, Some(m.to_lowercase()).filter(|m| !m.is_empty())),
            None => (word, None),
        };
        let role = format!("patch:{i}");
        if is_url(file) && !file.starts_with("file://") {
            remote_patch(part, mode, inputs, build, role, file, md5sum)?;
            continue;
        }
        let path = file.strip_prefix("file://").unwrap_or(file);
        let bytes = std::fs::read(path).map_err(|e| {
            part.option_error("patches", format!("cannot read patch `{path}`: {e}"))
        })?;
        if let Some(expected) = md5sum {
            let actual = format!("{:x}", md5::Md5::digest(&bytes));
            if actual != expected {
                return Err(part.option_error(
                    "patches",
                    format!(
                        "patch `{path}` has MD5 {actual}, not the {expected} the profile gives"
                    ),
                ));
            }
        }
        inputs.files.insert(
            role.clone(),
            format!("blake3:{}", blake3::hash(&bytes).to_hex()),
        );
        build.files.insert(role, PathBuf::from(path));
    }
    Ok(())
}

/// A patch at a remote URL: its `#md5` is its identity (a mirror with the same content gives
/// the same hash); without one it is an unpinned input, refused unless `--allow-unpinned`.
fn remote_patch(
    part: &Part,
    mode: &StoreMode,
    inputs: &mut Inputs,
    build: &mut Build,
    role: String,
    url: &str,
    md5sum: Option<String>,
) -> Result<()> {
    let checksum = match md5sum {
        Some(hex) => {
            let text = format!("md5:{hex}");
            text.parse::<slapstore_store::checksum::Checksum>()
                .map_err(|e| part.option_error("patches", format!("patch `{url}`: {e}")))?;
            inputs.sources.insert(role.clone(), text.clone());
            Some(text)
        }
        None if mode.allow_unpinned => {
            inputs.options.insert(role.clone(), url.to_owned());
            None
        }
        None => {
            return Err(part.option_error(
                "patches",
                format!(
                    "patch `{url}` has no checksum: write it `{url}#MD5`, or build with \
                     `--allow-unpinned`"
                ),
            ))
        }
    };
    build.sources.push(Source {
        role,
        urls: vec![url.to_owned()],
        checksum,
    });
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::replace_path;

    #[test]
    fn a_path_is_replaced_where_it_ends() {
        assert_eq!(
            replace_path(
                "PREFIX=/p/x a=/p/x/lib b=/p/x-dev /p/x.tar /p/x",
                "/p/x",
                "@"
            ),
            "PREFIX=@ a=@/lib b=/p/x-dev /p/x.tar @"
        );
        assert_eq!(replace_path("nothing", "/p/x", "@"), "nothing");
    }
}
