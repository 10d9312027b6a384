//! `slapstore eval`: load a profile, then do what `bin/buildout install` does before installing
//! anything — initialise `[buildout]` (directories made absolute, booleans and logging checked,
//! the versions section), then every part listed in `[buildout] parts` (which pulls in what they
//! reference) — and collect the options of every section buildout reached.

use crate::condition::Target;
use crate::config::{Map, Origin};
use crate::error::{Error, ErrorKind, Result};
use crate::load::{self, default_options, Assignment, LoadOptions};
use crate::pystr::{path_join, split_whitespace};
use crate::resolver::{Resolved, Resolver, Settings};
use crate::source::Sources;

/// What to evaluate and how.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    pub assignments: Vec<Assignment>,
    /// Values taken verbatim, `(section, option, value)`: an instance's parameters.
    pub verbatim: Vec<(String, String, String)>,
    /// Also resolve the sections no part reaches (their failures are reported, not fatal).
    pub all_sections: bool,
    pub target: Target,
    /// The interpreter for profile Python code; also `[buildout] executable`'s default.
    pub python: String,
    /// The root profile's text, if it is not to be read from the profile's path.
    pub text: Option<String>,
    /// For `plan` and `build`: translate parts into derivations for this store, and make the
    /// release named so.
    pub store: Option<(crate::derive::StoreMode, String)>,
    /// Render an instance profile: only instance-time recipes, collected in
    /// [`Evaluation::instance`].
    pub instance: bool,
    /// When rendering an instance: what the local master tells it (`recipes/slap.rs`).
    pub slap: Option<std::sync::Arc<crate::recipes::slap::Slap>>,
    /// The download cache remote profiles (`http(s)://`) are fetched through; without it they
    /// are an error (`load::LoadOptions::remote_cache`).
    pub remote_cache: Option<std::path::PathBuf>,
    /// The files of outputs planned but not built, read from their derivations
    /// (`instance create --dry-run`, `planned.rs`).
    pub planned: Option<std::sync::Arc<crate::planned::Planned>>,
    /// When rendering an instance: the distributions of the release's egg parts
    /// (`python/eggs.rs`).
    pub eggs: Option<std::sync::Arc<crate::python::eggs::ReleaseEggs>>,
    /// The files an enclosing render writes in the partition, by absolute path (a
    /// switched-to profile's, `recipes/slap_switch.rs`): read instead of the disk, where they
    /// are not yet.
    pub written: crate::load::Written,
    /// The release's files by their buildout paths (`software_paths.rs`), when rendering its
    /// instance profile.
    pub software_paths: std::sync::Arc<crate::software_paths::SoftwarePaths>,
}

/// The result: sections in the order buildout initialised them, with final values.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub sections: Map<String, Map<String, Resolved>>,
    /// Parts in install order.
    pub parts: Vec<String>,
    /// Profile files read, in merge order.
    pub files: Vec<String>,
    /// With `all_sections`: sections that could not be resolved, and why.
    pub failed: Vec<(String, Error)>,
    /// In a build: the parts' derivations in install order (dependencies first), then the
    /// release.
    pub derivations: Vec<slapstore_store::Derivation>,
    /// When rendering an instance: what its parts put in the partition.
    pub instance: crate::recipes::instance::InstanceOutput,
    /// What profile Python code read of the machine (`python::Bridge::touched`).
    pub touched: Vec<String>,
}

pub fn evaluate(sources: &mut Sources, profile: &str, options: &EvalOptions) -> Result<Evaluation> {
    let loaded = load::load(
        sources,
        &options.target,
        profile,
        &LoadOptions {
            assignments: options.assignments.clone(),
            verbatim: options.verbatim.clone(),
            executable: options.python.clone(),
            text: options.text.clone(),
            remote_cache: options.remote_cache.clone(),
            planned: options.planned.clone(),
            written: options.written.clone(),
            software_paths: options.software_paths.clone(),
        },
    )?;
    let versions_name = loaded
        .raw
        .get("buildout")
        .and_then(|b| b.get("versions"))
        .map(|v| v.text.clone())
        .unwrap_or_default();
    let store = options.store.as_ref().map(|(mode, _)| {
        let mut mode = mode.clone();
        let mut dirs: Vec<String> = loaded
            .files
            .iter()
            .filter(|f| !crate::extends::is_url(f))
            .map(|f| crate::pystr::dirname(f).to_owned())
            .filter(|d| d.len() > 1)
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
        dirs.dedup();
        mode.profile_dirs = dirs;
        mode
    });
    let settings = Settings {
        target: options.target.clone(),
        python: options.python.clone(),
        store,
        instance: options.instance,
        slap: options.slap.clone(),
        remote_cache: options.remote_cache.clone(),
        planned: options.planned.clone(),
        eggs: options.eggs.clone(),
        written: options.written.clone(),
        software_paths: options.software_paths.clone(),
    };
    let mut r = Resolver::new(sources, loaded.raw, settings, loaded.bridge, loaded.headers);
    init_buildout(&mut r, &versions_name)?;
    let b = r.section("buildout")?;
    let parts = r.require(b, "parts")?;
    let parts_span = r.span_of(b, "parts");
    for part in split_whitespace(&parts) {
        let listed = |e: Error| match parts_span {
            Some(span) if e.span.is_some() => e.related(span, format!("`{part}` is listed here")),
            _ => e.or_at(parts_span),
        };
        let idx = r.section(part).map_err(listed)?;
        r.require(idx, "recipe").map_err(listed)?;
    }
    let reached = r.sections.len();
    let mut derivations = Vec::new();
    if let Some((_, release_name)) = &options.store {
        let release = crate::derive::release(&mut r, release_name)?;
        derivations = std::mem::take(&mut r.derivations.list);
        derivations.push(release);
    }
    let mut failed = Vec::new();
    if options.all_sections {
        let names: Vec<String> = r.raw.keys().cloned().collect();
        for name in names {
            if r.sections.contains_key(&name) {
                continue;
            }
            if let Err(e) = r.section(&name) {
                r.sections.shift_remove(&name);
                failed.push((name, e));
            }
        }
    }
    // the sections initialised so far (as buildout's dump iterates over a copy of `_data`)
    let initialised = r.sections.len();
    let mut sections = Map::default();
    for i in 0..initialised {
        let name = r.sections[i].name.clone();
        match r.items(i) {
            Ok(items) => {
                let values = items
                    .into_iter()
                    .map(|(k, text)| {
                        let origin = r.sections[i]
                            .origin(&k)
                            .cloned()
                            .unwrap_or(Origin::Computed);
                        let text = crate::recipes::handed_out(text);
                        (k, Resolved { text, origin })
                    })
                    .collect();
                sections.insert(name, values);
            }
            Err(e) if i >= reached => failed.push((name, e)),
            Err(e) => return Err(e),
        }
    }
    Ok(Evaluation {
        sections,
        parts: r.parts.clone(),
        files: loaded.files,
        failed,
        derivations,
        instance: std::mem::take(&mut r.instance_output),
        touched: r
            .bridge
            .as_mut()
            .map(|b| std::mem::take(&mut b.touched))
            .unwrap_or_default(),
    })
}

/// The part of `Buildout.__init__` that works on the resolved `[buildout]` section.
fn init_buildout(r: &mut Resolver, versions_name: &str) -> Result<()> {
    // on the raw values first: directories are absolute before anything reads them
    if let Some(raw) = r.raw.get_mut("buildout") {
        if let Some(directory) = raw.get("directory").map(|v| v.text.clone()) {
            for name in ["bin", "parts", "eggs", "develop-eggs"] {
                if let Some(v) = raw.get_mut(&format!("{name}-directory")) {
                    v.text = buildout_path(&directory, &v.text);
                }
            }
        }
        for name in ["offline", "newest"] {
            if let Some(v) = raw.get(name) {
                check_bool(name, &v.text, &v.origin)?;
            }
        }
    }
    let b = r.section("buildout")?;
    r.get(b, "find-links", None)?;
    r.require(b, "allow-hosts")?;
    let directory = r.require(b, "directory")?;
    for name in ["bin", "parts", "eggs", "develop-eggs"] {
        let key = format!("{name}-directory");
        let value = r.require(b, &key)?;
        r.set(b, &key, buildout_path(&directory, &value), Origin::Computed);
    }
    let installed = r.require(b, "installed")?;
    if !installed.is_empty() {
        r.set(
            b,
            "installed",
            path_join(&directory, &installed),
            Origin::Computed,
        );
    }
    r.require(b, "log-format")?;
    let level = r.require(b, "log-level")?;
    if !matches!(
        level.as_str(),
        "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL"
    ) && level.trim().parse::<i64>().is_err()
    {
        return Err(Error::buildout(format!("invalid logging level `{level}`"))
            .or_at(r.span_of(b, "log-level")));
    }
    if let Some(verbosity) = r.get(b, "verbosity", None)? {
        if verbosity.trim().parse::<i64>().is_err() {
            return Err(Error::buildout(format!("invalid verbosity `{verbosity}`"))
                .or_at(r.span_of(b, "verbosity")));
        }
    }
    r.require(b, "socket-timeout")?;
    if !versions_name.is_empty() {
        r.section(versions_name)?;
    }
    r.require(b, "versions")?;
    for name in [
        "prefer-final",
        "use-dependency-links",
        "allow-picked-versions",
        "show-picked-versions",
    ] {
        bool_option(r, b, name, None)?;
    }
    r.require(b, "update-versions-file")?;
    r.get(b, "download-cache", None)?;
    r.get(b, "extends-cache", None)?;
    if bool_option(r, b, "abi-tag-eggs", Some("false"))? {
        let eggs = r.require(b, "eggs-directory")?;
        let (major, minor, _) = r.settings.target.python;
        r.set(
            b,
            "eggs-directory",
            path_join(&eggs, &format!("cp{major}{minor}")),
            Origin::Computed,
        );
    }
    r.get(b, "eggs-directory", None)?;
    let offline = bool_option(r, b, "offline", None)?;
    if bool_option(r, b, "install-from-cache", None)? && offline {
        return Err(Error::buildout(
            "install-from-cache can't be used with offline mode: nothing is installed, even from \
             cache, in offline mode",
        )
        .or_at(r.span_of(b, "install-from-cache")));
    }
    for (name, _) in default_options("") {
        r.require(b, &name)?;
    }
    Ok(())
}

/// `_buildout_path`: joined onto `directory` unless it holds a `${` reference.
fn buildout_path(directory: &str, name: &str) -> String {
    if name.contains("${") {
        name.to_owned()
    } else {
        path_join(directory, name)
    }
}

fn check_bool(name: &str, value: &str, origin: &Origin) -> Result<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => {
            let span = origin.span();
            Err(Error::new(ErrorKind::InvalidBool {
                option: name.to_owned(),
                value: value.to_owned(),
            })
            .or_at(span))
        }
    }
}

/// `bool_option`.
fn bool_option(r: &mut Resolver, b: usize, name: &str, default: Option<&str>) -> Result<bool> {
    let value = match r.get(b, name, None)? {
        Some(v) => v,
        None => match default {
            Some(d) => d.to_owned(),
            None => {
                return Err(Error::new(ErrorKind::RequiredOption {
                    section: "buildout".into(),
                    option: name.into(),
                }))
            }
        },
    };
    let origin = r.sections[b]
        .origin(name)
        .cloned()
        .unwrap_or(Origin::Default);
    check_bool(name, &value, &origin)
}
