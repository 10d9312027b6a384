//! Instance-time recipes (design §6): what an instance profile's parts put in the partition.
//! Files rendered under the partition (`slapos.recipe.template[:jinja2]` outputs,
//! `slapos.cookbook:wrapper` scripts, `slapos.cookbook:symbolic.link` links) are collected into
//! the generation's output; directories made by `mkdirectory` are the partition's mutable
//! directories. Nothing is written here: the store builds the generation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{template, Part};
use crate::error::Result;

/// What an instance profile's parts put in the partition, by path relative to it.
#[derive(Debug, Clone, Default)]
pub struct InstanceOutput {
    pub files: BTreeMap<String, FileSpec>,
    /// Mutable directories and their modes.
    pub dirs: BTreeMap<String, u32>,
    /// Connection parameters published (`publish` recipes, `slap.rs`).
    pub connection: BTreeMap<String, String>,
    /// Instances requested (`request` recipes, `slap.rs`).
    pub requests: Vec<super::slap::Request>,
    /// Instance state to keep in the partition (`cookbook/state.rs`), by path: the values this
    /// render generated, written before its generation is recorded.
    pub state: BTreeMap<String, String>,
    /// Every path of instance state this render uses (generated now or read back).
    pub kept: std::collections::BTreeSet<String>,
    /// The paths of [`Self::state`] written again when they hold another value
    /// (`generate.password`'s file, with the hashes asked for since, as the cookbook's install).
    pub replaced: std::collections::BTreeSet<String>,
    /// What runs after each switch to the generation, in install order: `plone.recipe.command`
    /// parts and the parts installed at deploy (`deploy.rs`).
    pub commands: Vec<super::deploy::Step>,
    /// The parts rendered and their recipes, in install order (a switched-to profile's
    /// included): what `instance create --dry-run` lists.
    pub parts: Vec<(String, String)>,
    /// Sections whose code needs distributions of egg parts not built yet (a dry run):
    /// `python/eggs.rs`.
    pub deferred: Vec<crate::python::eggs::Deferred>,
}

/// One file of a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSpec {
    Text { text: String, mode: u32 },
    Link { target: String },
}

/// The instance-time recipes, under their SlapOS names and the store's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Template,
    /// `collective.recipe.template`.
    Collective,
    Jinja2,
    Wrapper,
    MkDirectory,
    Symlink,
    /// `slapos.recipe.build`: its `init` code sets options; its `install` code runs at deploy.
    Build,
    /// `slapos.recipe.build:gitclone` and `download-unpacked`: run at deploy (`deploy.rs`).
    Gitclone,
    DownloadUnpacked,
    /// What talks to the master (`slap.rs`).
    Slap(super::slap::Kind),
    Cookbook(super::cookbook::Kind),
}

pub const SUPPORTED: &str = "`slapos.recipe.template` (template), `slapos.recipe.template:jinja2` \
    (jinja2), `collective.recipe.template`, `slapos.cookbook:wrapper` (wrapper), `slapos.cookbook:mkdirectory` (mkdirectory)\
    , `slapos.cookbook:symbolic.link` (symlink), `slapos.recipe.build` (its `init` code, and its \
    `install` code at deploy), `slapos.recipe.build:gitclone` and `:download-unpacked` (at \
    deploy); and \
    what talks to the master: \
    `slapos.cookbook:slapconfiguration` (`.serialised`, `.jsonschema`, `.jsondump`), \
    `switch-softwaretype`, `publish` (`.serialised`), `publish-early`, `request` \
    (`.serialised`) and `requestoptional` (`.serialised`)";

pub fn lookup(egg: &str, entry: &str) -> Option<Kind> {
    if let Some(kind) = super::slap::lookup(egg, entry) {
        return Some(Kind::Slap(kind));
    }
    Some(match (egg, entry) {
        ("slapos-recipe-template" | "template", "default") => Kind::Template,
        ("collective-recipe-template", "default") => Kind::Collective,
        ("slapos-recipe-template", "jinja2") | ("jinja2", "default") => Kind::Jinja2,
        ("slapos-cookbook", "wrapper") | ("wrapper", "default") => Kind::Wrapper,
        ("slapos-cookbook" | "slapos-recipe-build", "mkdirectory") | ("mkdirectory", "default") => {
            Kind::MkDirectory
        }
        ("slapos-cookbook", "symbolic-link" | "symbolic.link") | ("symlink", "default") => {
            Kind::Symlink
        }
        ("slapos-recipe-build", "default") => Kind::Build,
        ("slapos-recipe-build", "gitclone") => Kind::Gitclone,
        ("slapos-recipe-build", "download-unpacked") => Kind::DownloadUnpacked,
        _ => return super::cookbook::lookup(egg, entry).map(Kind::Cookbook),
    })
}

/// Initialises an instance part and records what it puts in the partition.
pub fn init(part: &mut Part, kind: Kind) -> Result<()> {
    init_kind(part, kind)?;
    let done = (part.name.clone(), part.recipe.clone());
    part.r.instance_output.parts.push(done);
    Ok(())
}

fn init_kind(part: &mut Part, kind: Kind) -> Result<()> {
    match kind {
        Kind::Template | Kind::Collective => {
            if kind == Kind::Template {
                template::template(part)?;
            } else {
                template::collective(part)?;
            }
            let text = part.rendered.take().unwrap_or_default();
            let mode = mode(part, 0o644)?;
            let output = part.require("output")?;
            add_file(part, "output", &output, FileSpec::Text { text, mode })
        }
        Kind::Jinja2 => {
            template::jinja2(part)?;
            let inputs = template::jinja2_inputs(part)?;
            let (key, output) = match part.get("output")? {
                Some(o) => ("output", o),
                None => ("rendered", part.require("rendered")?),
            };
            // an instance has no parts being built: a template is read now, or, when it is a
            // file of the partition the render does not write, at deploy
            let source = match &inputs.template {
                template::Jinja2Template::Text(source) => source.clone(),
                template::Jinja2Template::Built(path) => {
                    let mode = part.get("mode")?.map(|_| mode(part, 0o644)).transpose()?;
                    let at = (key, output.as_str());
                    return super::render_at_deploy::record(part, path.clone(), inputs, at, mode);
                }
            };
            let mut imports = BTreeMap::new();
            for (name, import) in inputs.imports {
                let template::Jinja2Template::Text(text) = import else {
                    return Err(part.option_error("import-list", "the template is not built"));
                };
                imports.insert(name, text);
            }
            let job = slapstore_store::recipes::Jinja2Job {
                source: &source,
                context: &inputs.context,
                imports: &imports,
            };
            let text = slapstore_store::recipes::render_jinja2(&job)
                .map_err(|m| part.option_error("url", m))?;
            let mode = mode(part, 0o644)?;
            add_file(part, key, &output, FileSpec::Text { text, mode })
        }
        Kind::Wrapper => wrapper(part),
        Kind::MkDirectory => mkdirectory(part),
        Kind::Symlink => symlink(part),
        Kind::Build => build(part),
        Kind::Gitclone => super::deploy::gitclone(part),
        Kind::DownloadUnpacked => super::deploy::download_unpacked(part),
        Kind::Slap(kind) => super::slap::init(part, kind),
        Kind::Cookbook(kind) => super::cookbook::init(part, kind),
    }
}

/// `slapos.recipe.build` in an instance: its `init` code runs (in the evaluation's Python, as
/// when a software profile is read) and sets the part's options; `install` code, which writes in
/// the partition when buildout installs the part, runs at deploy (`deploy.rs`).
fn build(part: &mut Part) -> Result<()> {
    super::deploy::refuse_update(part)?;
    if part.get("install")?.is_some_and(|c| !c.trim().is_empty()) {
        return super::deploy::install_code(part);
    }
    super::build::script(part)
}

/// `mode` as octal, or `default`.
fn mode(part: &mut Part, default: u32) -> Result<u32> {
    match part.get("mode")? {
        None => Ok(default),
        Some(m) => u32::from_str_radix(m.trim().trim_start_matches("0o"), 8)
            .map_err(|_| part.option_error("mode", format!("`{m}` is not an octal mode"))),
    }
}

/// The path of `path` relative to the partition, or an error blamed on `option`. A relative
/// `path` is the partition's: buildout runs its recipes from `${buildout:directory}`
/// (`Buildout.__init__` ends with `os.chdir`), so `output = instance-default.cfg` is written
/// there.
pub(crate) fn relative(part: &mut Part, option: &str, path: &str) -> Result<String> {
    let partition = part.buildout("directory")?;
    let p = crate::pystr::normpath(&crate::pystr::path_join(&partition, path.trim()));
    let rel = Path::new(&p)
        .strip_prefix(&partition)
        .ok()
        .filter(|r| slapstore_store::partition::is_inside(r))
        .map(|r| r.to_string_lossy().into_owned());
    rel.ok_or_else(|| {
        part.option_error(
            option,
            format!(
                "`{path}` is not inside the partition `{partition}`: an instance writes only there"
            ),
        )
    })
}

pub(crate) fn add_file(part: &mut Part, option: &str, path: &str, spec: FileSpec) -> Result<()> {
    let rel = relative(part, option, path)?;
    let out = &mut part.r.instance_output;
    // of two parts writing one file, the one buildout installs last leaves it (parts are
    // installed in the order their initialisation ends, which is the order they get here):
    // software/backupserver's `[dcron-service]` and stack/logrotate's `[cron-service]` both
    // write `etc/service/crond`
    if out.dirs.contains_key(&rel) || out.kept.contains(&rel) {
        return Err(part.option_error(option, format!("`{path}` is written by another part too")));
    }
    part.r.instance_output.files.insert(rel, spec);
    Ok(())
}

/// `slapos.cookbook:wrapper`: a shell script that sets `environment` and runs `command-line`
/// (with the wrapper's own arguments when `parameters-extra = true`), once each file of
/// `wait-for-files` exists, every value quoted (`wrapper.rs`).
fn wrapper(part: &mut Part) -> Result<()> {
    let command = part.require("command-line")?;
    let path = part.require("wrapper-path")?;
    let extra = matches!(
        part.get("parameters-extra")?.as_deref().map(str::trim),
        Some("true" | "yes" | "1")
    );
    let environment = part.get("environment")?;
    let script = super::wrapper::script(&command, environment.as_deref(), extra)
        .map_err(|e| part.option_error(e.option, e.message))?;
    let wait: Vec<String> = (part.get("wait-for-files")?.unwrap_or_default())
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let script = super::wrapper::waiting(&script, &wait);
    add_file(
        part,
        "wrapper-path",
        &path,
        FileSpec::Text {
            text: script,
            mode: 0o755,
        },
    )
}

/// `slapos.cookbook:mkdirectory`: every option but `recipe` and `mode` names a directory.
fn mkdirectory(part: &mut Part) -> Result<()> {
    let mode = mode(part, 0o755)?;
    for (key, value) in part.r.items(part.idx)? {
        if key == "recipe" || key == "mode" || key.starts_with('_') || value.trim().is_empty() {
            continue;
        }
        // the partition itself (`home = ${buildout:directory}`, as software/helloworld has
        // it) exists already
        if crate::pystr::normpath(value.trim()) == part.buildout("directory")? {
            continue;
        }
        let rel = match relative(part, &key, &value) {
            Ok(rel) => rel,
            // the cookbook makes only what `os.path.isdir` does not find: a directory elsewhere
            // that exists (software/monitor's `software = <the software's directory>`) is left
            // as it is
            Err(_) if Path::new(value.trim()).is_absolute() && Path::new(value.trim()).is_dir() => {
                continue
            }
            Err(e) => return Err(e),
        };
        part.r.instance_output.dirs.insert(rel, mode);
    }
    Ok(())
}

/// `slapos.cookbook:symbolic.link`: a link in `target-directory` to each file of `link-binary`.
fn symlink(part: &mut Part) -> Result<()> {
    let dir = part.require("target-directory")?;
    let binaries = part.require("link-binary")?;
    for binary in binaries.split_whitespace() {
        let name = Path::new(binary)
            .file_name()
            .map(PathBuf::from)
            .ok_or_else(|| part.option_error("link-binary", format!("`{binary}` names no file")))?;
        let at = Path::new(dir.trim()).join(name);
        add_file(
            part,
            "target-directory",
            &at.to_string_lossy(),
            FileSpec::Link {
                target: binary.to_owned(),
            },
        )?;
    }
    Ok(())
}
