//! What recipes do when buildout initialises a part: the options they add or change (`location`,
//! cmmi's `prefix` and `compile-directory`, download's `target`, ...), which other sections
//! reference, and the sections they read (which become dependencies). Only the initialisation
//! is reproduced here, exactly as each recipe's `__init__` does it; building is the store's job.
//!
//! Recipes are named `egg[:entry]`. The eggs known to slapstore are matched like
//! `pkg_resources` does (case-insensitively, `-`, `_` and `.` equivalent); a recipe slapstore
//! does not know only gets `location = <parts-directory>/<part>`, as a placeholder recipe would.

mod build;
mod cmmi;
mod command;
pub mod cookbook;
pub mod deploy;
mod download;
pub(crate) mod egg;
pub mod instance;
mod mkdirectory;
pub mod render_at_deploy;
pub mod slap;
mod slap_schema;
mod slap_switch;
pub mod template;
pub(crate) mod wrapper;

use slapstore_store::Recipe;

use crate::config::Origin;
use crate::error::{Error, ErrorKind, Result};
use crate::pystr::path_join;
use crate::resolver::Resolver;

/// The recipe families slapstore emulates, by normalised egg name and entry point.
fn lookup(egg: &str, entry: &str) -> Option<Init> {
    Some(match (egg, entry) {
        ("slapos-recipe-build", "default") => build::script,
        ("slapos-recipe-build", "download") => download::file,
        ("slapos-recipe-build", "download-unpacked") => download::unpacked,
        ("slapos-recipe-build", "gitclone") => build::gitclone,
        ("slapos-recipe-build", "mkdirectory") => build::mkdirectory,
        ("slapos-recipe-build", "vm.install-debian" | "vm.install-ubuntu") => build::vm_install,
        ("slapos-recipe-build", "vm.run") => build::vm_run,
        ("slapos-recipe-cmmi", "default") => cmmi::init,
        ("slapos-recipe-template", "default") => template::template,
        ("slapos-recipe-template", "jinja2") => template::jinja2,
        ("collective-recipe-template", "default") => template::collective,
        ("plone-recipe-command", "default") => command::init,
        ("zc-recipe-egg", "default" | "script" | "scripts") => egg::scripts,
        ("zc-recipe-egg", "eggs") => egg::eggs,
        ("zc-recipe-egg", "custom") => egg::custom,
        ("zc-recipe-egg", "develop") => egg::develop,
        _ => return None,
    })
}

/// `plone.recipe.command`'s initialisation (the cookbook's instance-time version reuses it).
pub(crate) fn command_init(part: &mut Part) -> Result<()> {
    command::init(part)
}

/// A recipe's initialisation of the part at index `idx`.
type Init = fn(&mut Part) -> Result<()>;

/// The part a recipe initialises: the resolver and the section's index and name.
pub struct Part<'r, 's> {
    pub r: &'r mut Resolver<'s>,
    pub idx: usize,
    pub name: String,
    pub recipe: String,
    /// What a template recipe rendered at initialisation (kept for builds).
    pub rendered: Option<String>,
}

impl Part<'_, '_> {
    /// `options.get(key)`.
    pub fn get(&mut self, key: &str) -> Result<Option<String>> {
        self.r.get(self.idx, key, None)
    }

    /// `options[key]`.
    pub fn require(&mut self, key: &str) -> Result<String> {
        self.r.require(self.idx, key)
    }

    /// `options[key] = value`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let origin = Origin::Recipe(self.recipe.clone());
        self.r.set(self.idx, key, value.into(), origin);
    }

    /// `buildout['buildout'][key]`.
    pub fn buildout(&mut self, key: &str) -> Result<String> {
        let b = self.r.section("buildout")?;
        self.r.require(b, key)
    }

    /// `buildout['buildout'].get(key)`.
    pub fn buildout_get(&mut self, key: &str) -> Result<Option<String>> {
        let b = self.r.section("buildout")?;
        self.r.get(b, key, None)
    }

    /// A `UserError` raised by the recipe, blamed on the section.
    pub fn error(&self, message: impl Into<String>) -> Error {
        let span = self
            .r
            .header(&self.name)
            .or_else(|| self.r.span_of(self.idx, "recipe"));
        Error::new(ErrorKind::Recipe {
            section: self.name.clone(),
            recipe: self.recipe.clone(),
            message: message.into(),
        })
        .or_at(span)
    }

    /// A `UserError` about one option, blamed on that option's definition.
    pub fn option_error(&self, key: &str, message: impl Into<String>) -> Error {
        let span = self.r.span_of(self.idx, key);
        let mut e = self.error(message);
        if span.is_some() {
            e.span = span;
        }
        e
    }

    /// slapos.recipe.build's `is_true`: only `true` and `false` are accepted.
    pub fn is_true(&mut self, key: &str) -> Result<bool> {
        match self.get(key)?.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(self.option_error(
                key,
                format!("option `{key}` must be `true` or `false`, not `{other}`"),
            )),
        }
    }

    /// The default location of the part: `<parts-directory>/<name>`; in a build, the
    /// placeholder of its store path, replaced once its hash is known.
    pub fn parts_location(&mut self) -> Result<String> {
        if let Some(store) = &self.r.settings.store {
            return Ok(store.placeholder(&self.name));
        }
        let parts = self.buildout("parts-directory")?;
        Ok(path_join(&parts, &self.name))
    }
}

/// A value as SlapOS's buildout hands it out (the final values; a template's `inline` and a
/// jinja2 context's values): every `$${` is `${`, while substitutions inside the buildout keep
/// `$${` (a `$$` not followed by `{` stays). So `t = $${:home}/t` in a software profile's
/// jinja2 `inline` reaches the instance profile as `${:home}/t` (software/neotest).
pub(crate) fn handed_out(text: String) -> String {
    if text.contains("$${") {
        text.replace("$${", "${")
    } else {
        text
    }
}

/// Initialises the recipe of section `idx` (`Options.initialize`).
pub fn initialize(r: &mut Resolver, idx: usize, recipe: &str) -> Result<()> {
    let name = r.name(idx).to_owned();
    let pieces: Vec<&str> = recipe.split(':').collect();
    let (spec, entry) = match pieces.as_slice() {
        [spec] => (*spec, "default"),
        [spec, entry] => (*spec, *entry),
        _ => {
            return Err(Error::new(ErrorKind::Recipe {
                section: name,
                recipe: recipe.to_owned(),
                message: "a recipe is `egg` or `egg:entry`, with at most one `:`".into(),
            }))
        }
    };
    let building = r.settings.store.is_some();
    let mut part = Part {
        r,
        idx,
        name,
        recipe: recipe.to_owned(),
        rendered: None,
    };
    let egg = egg_key(spec);
    if part.r.settings.instance {
        let Some(kind) = egg.as_deref().and_then(|egg| instance::lookup(egg, entry)) else {
            return Err(part.option_error(
                "recipe",
                format!(
                    "recipe `{recipe}` cannot run in an instance; instances use {}; and {}",
                    instance::SUPPORTED,
                    cookbook::SUPPORTED
                ),
            ));
        };
        return instance::init(&mut part, kind);
    }
    if building {
        if egg.as_deref() == Some("slapos-recipe-build") && entry == "default" {
            return build::script_in_build(&mut part);
        }
        let Some((init, kind)) = egg.as_deref().and_then(|egg| buildable(egg, entry)) else {
            return Err(part.option_error(
                "recipe",
                format!(
                    "slapstore cannot build recipe `{recipe}`; it builds {}",
                    crate::derive::SUPPORTED
                ),
            ));
        };
        crate::derive::default_location(&mut part, kind)?;
        init(&mut part)?;
        return crate::derive::derive(&mut part, kind);
    }
    match egg.and_then(|egg| lookup(&egg, entry)) {
        Some(init) => init(&mut part),
        None => placeholder(&mut part),
    }
}

/// The recipes a build can run: their initialisation and the store recipe that builds them,
/// under their SlapOS names and the store's own (design §5).
fn buildable(egg: &str, entry: &str) -> Option<(Init, Recipe)> {
    Some(match (egg, entry) {
        ("slapos-recipe-build", "download")
        | ("hexagonit-recipe-download", "default")
        | ("download", "default") => (download::file as Init, Recipe::Download),
        ("slapos-recipe-build", "download-unpacked") | ("download-unpacked", "default") => {
            (download::unpacked, Recipe::DownloadUnpacked)
        }
        ("slapos-recipe-cmmi" | "hexagonit-recipe-cmmi" | "zc-recipe-cmmi" | "cmmi", "default") => {
            (cmmi::init, Recipe::Cmmi)
        }
        ("plone-recipe-command" | "shell", "default") => (command::init, Recipe::Shell),
        ("slapos-recipe-template" | "template", "default") => {
            (template::template, Recipe::Template)
        }
        // rendered when the profile is read, as slapos.recipe.template is; written the same way
        ("collective-recipe-template", "default") => (template::collective, Recipe::Template),
        ("slapos-recipe-template", "jinja2") | ("jinja2", "default") => {
            (template::jinja2, Recipe::Jinja2)
        }
        ("zc-recipe-egg", "default" | "script" | "scripts") => (egg::scripts, Recipe::Egg),
        ("zc-recipe-egg", "eggs") => (egg::eggs, Recipe::Egg),
        ("zc-recipe-egg", "custom") => (egg::custom, Recipe::Egg),
        ("zc-recipe-egg", "develop") => (egg::develop, Recipe::Egg),
        ("zc-recipe-testrunner", "default") => (egg::testrunner, Recipe::Egg),
        ("slapos-recipe-build", "gitclone") => (build::gitclone_in_build, Recipe::Gitclone),
        // planned, their build refused with why (`derive::refusal`)
        ("rubygemsrecipe" | "z3c-recipe-openoffice", "default") => {
            (placeholder, Recipe::Unbuildable)
        }
        ("slapos-recipe-build", "vm.install-debian" | "vm.install-ubuntu") => {
            (build::vm_install, Recipe::Unbuildable)
        }
        // directories in the part's own output
        ("slapos-recipe-build" | "slapos-cookbook", "mkdirectory") => {
            (mkdirectory::in_build, Recipe::Shell)
        }
        _ => return None,
    })
}

/// A recipe slapstore does not emulate: like a placeholder, set `location` if unset.
fn placeholder(part: &mut Part) -> Result<()> {
    if part.get("location")?.is_none() {
        let location = part.parts_location()?;
        part.set("location", location);
    }
    Ok(())
}

/// The normalised project name of a requirement (`Foo.Bar>=1` → `foo-bar`), or `None` if the
/// text is not a valid requirement.
fn egg_key(spec: &str) -> Option<String> {
    let spec = spec.trim();
    let end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(spec.len());
    let (name, rest) = spec.split_at(end);
    if name.is_empty()
        || !(rest.is_empty()
            || rest
                .trim_start()
                .starts_with(['[', '<', '>', '=', '!', '~', ';']))
    {
        return None;
    }
    let mut key = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                key.push('-');
            }
            in_sep = true;
        } else {
            key.push(c.to_ascii_lowercase());
            in_sep = false;
        }
    }
    Some(key)
}

/// slapos.recipe.build's `EnvironMixin`: an `environment` option is either `KEY=VALUE` lines
/// (checked) or the name of a section, which is initialised.
fn environment(part: &mut Part) -> Result<()> {
    let Some(env) = part.get("environment")? else {
        return Ok(());
    };
    if env.is_empty() {
        return Ok(());
    }
    if env.contains('=') {
        let mut keys = Vec::new();
        for line in env.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((k, _)) = line.split_once('=') else {
                return Err(part.option_error(
                    "environment",
                    format!("line `{line}` in `environment` is incorrect (no `=`)"),
                ));
            };
            let k = k.trim_end().to_owned();
            if keys.contains(&k) {
                return Err(part.option_error("environment", format!("key `{k}` is repeated")));
            }
            keys.push(k);
        }
    } else {
        let span = part.r.span_of(part.idx, "environment");
        part.r.section(&env).map_err(|e| e.or_at(span))?;
    }
    Ok(())
}

/// Where slapos.recipe.build's `Shared` puts a part: in a shared directory named after the
/// hash of its options when `shared = true` and `[buildout] shared-part-list` is set, else in
/// `<parts-directory>/<name>`.
struct Shared {
    location: String,
    maybe_shared: bool,
}

impl Shared {
    fn new(part: &mut Part) -> Result<Shared> {
        let maybe_shared = part.is_true("shared")?;
        // in a build every part is shared: its store path is its identity
        if maybe_shared && part.r.settings.store.is_none() {
            part.get("__buildout_signature__")?;
            if let Some(list) = part.buildout_get("shared-part-list")? {
                if !list.is_empty() {
                    if let Some(location) = shared_location(part, &list)? {
                        return Ok(Shared {
                            location,
                            maybe_shared,
                        });
                    }
                }
            }
        }
        Ok(Shared {
            location: part.parts_location()?,
            maybe_shared,
        })
    }

    fn assert_not_shared(&self, part: &Part, reason: &str) -> Result<()> {
        if self.maybe_shared {
            return Err(part.error(format!("when shared=true, {reason}")));
        }
        Ok(())
    }
}

fn shared_location(part: &mut Part, list: &str) -> Result<Option<String>> {
    let base = part.get("_profile_base_location_")?;
    let mut signature = std::collections::BTreeMap::new();
    for (k, v) in part.r.items(part.idx)? {
        if k == "_profile_base_location_" {
            continue;
        }
        let v = match base.as_deref() {
            Some(b) if !b.is_empty() => v.replace(b, crate::extends::BASE_LOCATION_MARKER),
            _ => v,
        };
        signature.insert(k, v);
    }
    let text = serde_json::to_string_pretty(&signature).unwrap_or_default();
    let digest = format!("{:x}", md5::Md5::digest(text.as_bytes()));
    let mut candidates = Vec::new();
    for dir in list.lines() {
        let dir = dir.trim().trim_end_matches('/');
        if dir.is_empty() {
            continue;
        }
        let location = path_join(&path_join(dir, &part.name), &digest);
        if std::path::Path::new(&location)
            .join(".buildout-shared.json")
            .exists()
        {
            return Ok(Some(location));
        }
        candidates.push((dir.to_owned(), location));
    }
    Ok(candidates
        .into_iter()
        .find(|(dir, _)| writable(dir))
        .map(|(_, location)| location))
}

use md5::Digest as _;

/// `os.access(path, os.W_OK)`.
fn writable(path: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egg_names() {
        assert_eq!(
            egg_key("slapos.recipe.CMMI").as_deref(),
            Some("slapos-recipe-cmmi")
        );
        assert_eq!(
            egg_key("zc.recipe.egg>=2").as_deref(),
            Some("zc-recipe-egg")
        );
        assert_eq!(egg_key("a b"), None);
    }
}
