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

use slapstore_store::derivation::{Build, Inputs, PLACEHOLDER_HASH};
use slapstore_store::{Derivation, PartName, Recipe};

use crate::error::Result;
use crate::recipes::template::Jinja2Template;
use crate::recipes::Part;

mod inputs;
mod release;
pub(crate) mod script;

use inputs::{git, hooks, patches, source};
pub use release::{release, release_name, system, INSTANCE_PROFILES, INSTANCE_PROFILE_FROM};

/// The recipes a build supports, for error messages.
pub const SUPPORTED: &str = "`download` (slapos.recipe.build:download), `download-unpacked`, \
    `cmmi` (slapos.recipe.cmmi), `shell` (plone.recipe.command; also \
    slapos.recipe.build:mkdirectory's directories), `template` \
    (slapos.recipe.template, collective.recipe.template), `jinja2` (slapos.recipe.template:jinja2) \
    `egg` (zc.recipe.egg, `:scripts`, `:eggs`, `:custom`, `:develop`; zc.recipe.testrunner), `gitclone` \
    (slapos.recipe.build:gitclone) and `script` (slapos.recipe.build with Python `install` code)";

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
    /// The profile's lock file, which pins unpinned inputs (`crate::lock`).
    pub lock: Option<std::sync::Arc<crate::lock::LockState>>,
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
        format!("{}/{PLACEHOLDER_HASH}-{}", self.store_dir, store_name(name))
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

/// The name a part's store path ends with: its name, with each `/` (SlapOS writes
/// `[gitlab/vendor/bundle]`, `[cell/common.json]`) as `+`, which keeps it one path component.
pub fn store_name(part: &str) -> String {
    part.replace('/', "+")
}

/// Turns the initialised part into a derivation (see the module docs).
pub fn derive(part: &mut Part, recipe: Recipe) -> Result<()> {
    let Some(mode) = part.r.settings.store.clone() else {
        return Ok(());
    };
    let name = PartName::new(&store_name(&part.name)).map_err(|e| part.error(e.to_string()))?;
    let placeholder = mode.placeholder(&part.name);
    // why the part plans but its build is refused, as buildout's install would fail
    let mut refused: Option<String> = None;
    match part.get("location")? {
        Some(l) if l == placeholder => {}
        // `install` code makes its `location` (a file or a directory) inside the output, and a
        // command may make it below its own directory
        Some(l)
            if matches!(recipe, Recipe::Script | Recipe::Shell)
                && l.starts_with(&format!("{placeholder}/")) => {}
        None => part.set("location", placeholder.clone()),
        Some(other) => {
            // `download-unpacked` takes its location from `destination`
            let key = match part.get("destination")? {
                Some(d) if d.trim() == other.trim() => "destination",
                _ => "location",
            };
            if let Some(owner) = part.r.derivations.owner(&mode.store_dir, other.trim()) {
                // `[proftpd-mod_auth_web]`'s `location = ${proftpd:location}/libexec/...`: what
                // the part adds there would change another part's output after it was built, so
                // it plans (its options are its identity) and its build is refused
                refused = Some(format!(
                    "{} is `{other}`, inside the output of part `{}`, which is read-only once \
                     built: a part cannot add files to another's output; make this part build \
                     into its own (`${{:location}}`, buildout's default) and have its users \
                     look there",
                    written_at(part, key),
                    owner.name()
                ));
            } else {
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
        _ if refused.is_some() => {}
        Recipe::Download | Recipe::DownloadUnpacked | Recipe::Cmmi => {
            if part.get("url")?.is_some_and(|u| !u.trim().is_empty()) {
                refused = source(part, &mode, &mut inputs, &mut build)?;
            }
            if recipe == Recipe::Download {
                if let Some(destination) = part.get("destination")?.filter(|d| !d.is_empty()) {
                    // the file lands in the part's output under the destination's name, and
                    // `target` says so (not a place outside the store)
                    let file = output_file(part, &placeholder, &destination).map_err(|_| {
                        part.option_error("destination", format!("`{destination}` names no file"))
                    })?;
                    let file = Path::new(&file)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(&file)
                        .to_owned();
                    part.set("target", format!("{placeholder}/{file}"));
                    extra.push(("filename".into(), file));
                }
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
                hooks(part, &mut inputs, &mut build, &mut extra)?;
            }
        }
        Recipe::Template => {
            let original = part.require("output")?;
            let file = output_file(part, &placeholder, &original)?;
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
            let file = output_file(part, &placeholder, &original)?;
            let inputs = crate::recipes::template::jinja2_inputs(part)?;
            jinja2_options(part, inputs, &mut extra)?;
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
        Recipe::Script => {
            if part.get("url")?.is_some_and(|u| !u.trim().is_empty()) {
                refused = source(part, &mode, &mut inputs, &mut build)?;
            }
            script::local_files(part, &mode, &mut inputs, &mut build)?;
            let code = part.require("install")?;
            let sections = script::captured_sections(part, &code)?;
            extra.push(("buildout-sections".into(), sections));
        }
        Recipe::Gitclone => git(part, &mode, &mut extra)?,
        Recipe::Unbuildable => extra.push(("refusal".into(), refusal(&part.recipe))),
        Recipe::Shell | Recipe::Release | Recipe::Generation => {}
    }
    if let Some(why) = refused {
        // planned as `unbuildable`: its options are its identity, and `build` says why
        inputs.recipe = Recipe::Unbuildable;
        build.options.insert(
            "refusal".into(),
            format!("{why} (docs/profile-language.md)"),
        );
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
        if ![
            "rendered-text",
            "template-text",
            "context-json",
            "import-texts",
        ]
        .contains(&k.as_str())
        {
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

/// Where the part's `key` is written, for a message read without the profile: `` `key` `` and,
/// when known, `(file:line)`.
pub(super) fn written_at(part: &Part, key: &str) -> String {
    match part.r.span_of(part.idx, key) {
        Some(span) => {
            let file = part.r.sources.get(span.file);
            let (line, _) = file.line_col(span.range().start);
            format!("`{key}` ({}:{line})", file.name)
        }
        None => format!("`{key}`"),
    }
}

/// Why a recipe that plans cannot be built here: the message its build fails with.
fn refusal(recipe: &str) -> String {
    let why = if recipe.starts_with("rubygemsrecipe") {
        "it installs its `gems` with `gem install` from rubygems.org at build time, which the \
         build sandbox cannot reach and whose files the profile pins only by version"
    } else if recipe.starts_with("z3c.recipe.openoffice") {
        "it downloads `base-url` (with the machine in it, no checksum) at build time and \
         unpacks its RPMs, which the build sandbox cannot reach"
    } else {
        "it installs an operating system into a VM image by booting the installer under QEMU, \
         which fetches packages from the distribution's mirrors at build time (no network in the \
         build sandbox, and nothing the profile pins)"
    };
    format!("slapstore cannot build recipe `{recipe}`: {why} (docs/profile-language.md)")
}

/// In a build, an explicit `location` (or `download-unpacked`'s `destination`) equal to
/// buildout's default, `<parts-directory>/<name>`, is the default: it is dropped, as if not
/// written, and every mention of it in the part's options (`make-options = PREFIX=${:location}`)
/// becomes the placeholder of the part's store path; for `gitclone` and `download-unpacked`,
/// any directory directly in the parts directory is; for `plone.recipe.command`, a location below the default
/// (`<parts>/<name>/src`) is that path in the store path (`<store path>/src`). Called before the
/// recipe's initialisation.
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
    let mut default = crate::pystr::path_join(&parts, &part.name);
    if matches!(recipe, Recipe::Gitclone | Recipe::DownloadUnpacked) {
        // a checkout or an unpacked archive anywhere directly in the parts directory
        // (`[ZEO4-repository]` with `location = ${buildout:parts-directory}/ZEO4`,
        // `[cython-zstd-source]` with `destination = ${buildout:parts-directory}/cython-zstd`)
        // is the part's own directory: other parts find it through `${ZEO4-repository:location}`,
        // which is the store path
        let key = if recipe == Recipe::DownloadUnpacked && part.get("destination")?.is_some() {
            "destination"
        } else {
            "location"
        };
        if let Some(location) = part.get(key)? {
            let location = crate::pystr::normpath(location.trim());
            let name = location
                .strip_prefix(parts.as_str())
                .and_then(|rest| rest.strip_prefix('/'));
            if name.is_some_and(|n| !n.is_empty() && !n.contains('/') && n != "..") {
                default = location;
            } else if recipe == Recipe::Gitclone && location.starts_with('/') {
                // a checkout into a shared tree (`go-git-package`'s
                // `${gowork.dir:src}/${:go.importpath}`) is a store path of its own too: the
                // tree's other users cannot write into it (docs/profile-language.md)
                default = location;
            }
        }
    }
    let mut explicit = false;
    let below = format!("{default}/");
    for &key in keys {
        if let Some(value) = part.get(key)? {
            let value = crate::pystr::normpath(value.trim());
            // a command may make its location below its own directory (`[chromium-source]`
            // clones into `parts/chromium-source/src`, beside its `.gclient`)
            if value == default || (recipe == Recipe::Shell && value.starts_with(&below)) {
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
pub(crate) fn replace_path(text: &str, from: &str, to: &str) -> String {
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

/// A template's output file in its store path: the path below the part's own location when
/// `output` is there (`${:location}/bin/composer` → `bin/composer`), else the base name of
/// `output` (`${buildout:directory}/instance.cfg` → `instance.cfg`).
fn output_file(part: &Part, placeholder: &str, output: &str) -> Result<String> {
    let output = output.trim();
    if let Some(below) = output
        .strip_prefix(placeholder)
        .and_then(|r| r.strip_prefix('/'))
    {
        let below = crate::pystr::normpath(below);
        if below != "." && !below.starts_with("..") && !below.starts_with('/') {
            return Ok(below);
        }
    }
    Path::new(output)
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

/// A `jinja2` part's derivation options: its template (`template-text`, or `template-file` in
/// another part's output: read when building, and a reference to that part), `context-json`,
/// its `import-list` templates (`import-texts`, `import-files`: JSON objects by name, only when
/// it has some), and `jinja2-engine`, the version of Python's Jinja2, when Jinja2 renders it
/// or a text is known only when building (so that the hash covers the renderer).
fn jinja2_options(
    part: &Part,
    inputs: crate::recipes::template::Jinja2Inputs,
    extra: &mut Vec<(String, String)>,
) -> Result<()> {
    use slapstore_store::recipes::{jinja2_engine, Jinja2Engine, Jinja2Job};
    let mut texts = BTreeMap::new();
    let mut files = BTreeMap::new();
    for (name, template) in inputs.imports {
        match template {
            Jinja2Template::Text(text) => texts.insert(name, text),
            Jinja2Template::Built(path) => files.insert(name, path),
        };
    }
    let engine = match &inputs.template {
        Jinja2Template::Text(text) if files.is_empty() => {
            let job = Jinja2Job {
                source: text,
                context: &inputs.context,
                imports: &texts,
            };
            match jinja2_engine(&job) {
                Jinja2Engine::MiniJinja => None,
                Jinja2Engine::Jinja2(construct) => Some(construct),
            }
        }
        _ => Some("a template made by another part"),
    };
    match inputs.template {
        Jinja2Template::Text(text) => extra.push(("template-text".into(), text)),
        Jinja2Template::Built(path) => extra.push(("template-file".into(), path)),
    }
    extra.push(("context-json".into(), inputs.context.to_string()));
    for (option, map) in [("import-texts", texts), ("import-files", files)] {
        if !map.is_empty() {
            extra.push((option.into(), serde_json::json!(map).to_string()));
        }
    }
    if let Some(construct) = engine {
        let version = slapstore_store::recipes::jinja2_version()
            .map_err(|e| part.error(format!("renders with Python's Jinja2 ({construct}): {e}")))?;
        extra.push(("jinja2-engine".into(), version));
    }
    Ok(())
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
