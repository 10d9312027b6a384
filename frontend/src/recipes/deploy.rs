//! Instance parts that buildout's `install` runs and slapstore cannot render: `slapos.recipe.build`
//! with `install` code, `slapos.recipe.build:gitclone` and `slapos.recipe.build:download-unpacked`.
//! They make state in the partition (a checkout, an unpacked archive, what the code makes), at
//! their `location` (`parts/NAME` by default), never in a generation.
//!
//! Rendering runs nothing (a render is pure): the part is initialised as the recipe's `__init__`
//! does (its `location`, `init` code), the directory holding its location becomes a mutable
//! directory of the partition (and, for a checkout or an archive, the location itself, so that
//! files other parts render into it are linked one by one), and the generation records a step
//! ([`Step::Install`]) in the same list as `plone.recipe.command`'s, in install order. After every
//! switch to the generation the steps run in order in the partition ([`run_all`]), a part being
//! installed when it is new, when its options changed since it was last installed here (their
//! hash is kept in `.slapstore/<section>.install`) or when its location is gone — as buildout
//! reinstalls a part whose options changed — and left as it is otherwise. Its files are therefore
//! kept across upgrades and rollbacks that do not change it; a rollback to other options installs
//! it again with them. A failure fails the operation (exit status 1, naming the part); the
//! generation stays current and the next operation installs it again.
//!
//! `install` code runs in the Python host (`store/src/recipes/pyhost.py`, slapos.recipe.build's
//! `Script` API: `options`, `location`, `self.extract`, `self.copyTree`, `self.buildout` as the
//! sections the code names), after the switch: the files rendered by the parts before it are in
//! place, as buildout installs them before. A gitclone clones the `repository` (a local
//! directory, else its mirror in the download cache, `var/cache/git/`, else the URL) with git's
//! arguments as argv, checks out `revision` (or `branch`) and keeps `.git`, as the recipe does. A
//! download-unpacked fetches `url` through the download cache (its checksum checked) and unpacks
//! it safely (`store/src/unpack.rs`).
//!
//! `slapos.cookbook:postgres`'s cluster is made and updated by a step of the same list
//! ([`Step::Postgres`], `cookbook/postgres.rs`), run on every deploy as the recipe's `install`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::cookbook::{command, postgres, state};
use super::Part;
use crate::error::Result;

/// What runs after each switch to a generation, in install order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Step {
    /// Tried first: its `run` field is what tells it from a command.
    Install(InstallSpec),
    /// A `:jinja2` part whose template is made in the partition (`render_at_deploy.rs`); its
    /// `template` field tells it from a command.
    Render(super::render_at_deploy::RenderSpec),
    Command(command::CommandSpec),
    /// `slapos.cookbook:postgres`'s cluster (`cookbook/postgres.rs`).
    Postgres(postgres::Spec),
}

impl Step {
    pub fn section(&self) -> &str {
        match self {
            Step::Install(s) => &s.section,
            Step::Render(r) => &r.section,
            Step::Command(c) => &c.section,
            Step::Postgres(p) => &p.section,
        }
    }
}

/// Which recipe an install step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Run {
    /// `slapos.recipe.build`'s `install` code.
    Install,
    Gitclone,
    DownloadUnpacked,
}

/// One part installed at deploy, as the generation records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSpec {
    pub section: String,
    pub run: Run,
    /// The part's `location`, absolute (inside the partition).
    pub location: String,
    /// The part's options, after substitution.
    pub options: BTreeMap<String, String>,
    /// For `install` code: the sections it names (`self.buildout[...]`), as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildout: Option<String>,
}

/// `slapos.recipe.build`'s `update` code (which buildout runs when the part's options did not
/// change) is refused in an instance.
pub fn refuse_update(part: &mut Part) -> Result<()> {
    if part.get("update")?.is_some_and(|c| !c.trim().is_empty()) {
        return Err(part.option_error(
            "update",
            "`slapos.recipe.build`'s `update` code cannot run in an instance: slapstore runs \
             its `init` code when rendering and its `install` code at deploy",
        ));
    }
    Ok(())
}

/// `slapos.recipe.build` with `install` code in an instance: `init` runs now, `install` at
/// deploy.
pub fn install_code(part: &mut Part) -> Result<()> {
    super::build::script(part)?;
    let code = part.require("install")?;
    let buildout = crate::derive::script::captured_sections(part, &code)?;
    record(part, Run::Install, Some(buildout))
}

/// `slapos.recipe.build:gitclone` in an instance: cloned at deploy.
pub fn gitclone(part: &mut Part) -> Result<()> {
    super::build::gitclone_in_build(part)?;
    if let Some(git) = part.get("git-executable")? {
        if git.trim().starts_with('-') {
            return Err(part.option_error(
                "git-executable",
                format!("`{}` cannot start with `-`", git.trim()),
            ));
        }
    }
    record(part, Run::Gitclone, None)
}

/// `slapos.recipe.build:download-unpacked` in an instance: fetched and unpacked at deploy.
pub fn download_unpacked(part: &mut Part) -> Result<()> {
    super::download::unpacked(part)?;
    let md5sum = part.get("md5sum")?.unwrap_or_default();
    if !md5sum.trim().is_empty() {
        checksum(md5sum.trim()).map_err(|m| part.option_error("md5sum", m))?;
    }
    record(part, Run::DownloadUnpacked, None)
}

/// Records the step, and the partition's directories it writes in.
fn record(part: &mut Part, run: Run, buildout: Option<String>) -> Result<()> {
    let location = part.require("location")?.trim().to_owned();
    // `install` code whose `init` emptied `location` manages no path (slapos.recipe.build
    // then just runs the code: profiles do so to keep buildout from ever removing what it
    // writes, e.g. mail-server's certificate bundles)
    if run == Run::Install && location.is_empty() {
        return push(part, run, location, buildout);
    }
    let location = crate::pystr::normpath(&location);
    let rel = super::instance::relative(part, "location", &location)?;
    let out = &part.r.instance_output;
    if out.files.contains_key(&rel) || out.kept.contains(&rel) {
        return Err(part.option_error(
            "location",
            format!("`{location}` is written by another part too"),
        ));
    }
    let mut dirs = Vec::new();
    if let Some(parent) = Path::new(&rel)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        dirs.push(parent.to_string_lossy().into_owned());
    }
    // a checkout or an archive is a directory: what other parts render into it is linked
    // file by file (`install` code may make a file, so only its parent is known)
    if run != Run::Install {
        dirs.push(rel);
    }
    for dir in dirs {
        part.r.instance_output.dirs.entry(dir).or_insert(0o755);
    }
    push(part, run, location, buildout)
}

/// Adds the install step of the part.
fn push(part: &mut Part, run: Run, location: String, buildout: Option<String>) -> Result<()> {
    let options = part.r.items(part.idx)?.into_iter().collect();
    let spec = InstallSpec {
        section: part.name.clone(),
        run,
        location,
        options,
        buildout,
    };
    part.r.instance_output.commands.push(Step::Install(spec));
    Ok(())
}

/// A render cannot read what a part installed at deploy makes (it runs after the render): an
/// error blamed on `option` when `path` lies in the location of such a part of this render.
pub fn refuse_deploy_made(part: &Part, option: &str, path: &str) -> Result<()> {
    let path = crate::pystr::normpath(path);
    let owner = part
        .r
        .instance_output
        .commands
        .iter()
        .find_map(|step| match step {
            Step::Install(s)
                if !s.location.is_empty() && Path::new(&path).starts_with(&s.location) =>
            {
                Some(s)
            }
            _ => None,
        });
    match owner {
        None => Ok(()),
        Some(s) => Err(part.option_error(
            option,
            format!(
                "`{path}` is made by [{}] ({}) when the instance is deployed, after its render: \
                 the render cannot read it",
                s.section,
                s.options.get("recipe").map(String::as_str).unwrap_or("?")
            ),
        )),
    }
}

/// `md5:<hex>` of an md5sum option, checked.
fn checksum(md5sum: &str) -> std::result::Result<slapstore_store::checksum::Checksum, String> {
    format!("md5:{}", md5sum.to_lowercase())
        .parse()
        .map_err(|e| format!("`{md5sum}` is not an md5 sum: {e}"))
}

/// What deploying a generation's steps needs besides the steps.
pub struct Deploy<'a> {
    pub partition: &'a Path,
    /// The download cache of sources (`var/cache/sources`), beside the git mirrors.
    pub cache_dir: &'a Path,
}

/// Runs a generation's steps in order: the failures of commands that did not stop it (one line
/// each), and whether a part was installed (its location replaced: the caller makes the links
/// into it again).
pub fn run_all(
    deploy: &Deploy,
    steps: &[Step],
) -> std::result::Result<(Vec<String>, bool), String> {
    let mut reported = Vec::new();
    let mut installed = false;
    for step in steps {
        match step {
            Step::Command(spec) => {
                if let Some(failure) = command::run(deploy.partition, spec)? {
                    reported.push(failure);
                }
            }
            Step::Install(spec) => installed |= install(deploy, spec)?,
            Step::Render(spec) => super::render_at_deploy::run(deploy.partition, spec)?,
            Step::Postgres(spec) => postgres::deploy(deploy.partition, spec)?,
        }
    }
    Ok((reported, installed))
}

/// Installs one part unless its kept hash says it is installed with these options.
fn install(deploy: &Deploy, spec: &InstallSpec) -> std::result::Result<bool, String> {
    let partition = deploy.partition;
    let signature = blake3::hash(serde_json::to_string(spec).unwrap_or_default().as_bytes())
        .to_hex()
        .to_string();
    let rel = state::slot(&spec.section, "install");
    let kept = state::read(partition, Path::new(&rel))
        .map_err(|e| format!("cannot read `{}/{rel}`: {e}", partition.display()))?;
    let location = Path::new(&spec.location);
    // without a location, the code runs again only when its options change
    let managed = !spec.location.is_empty();
    if kept.as_deref() == Some(signature.as_str())
        && (!managed || location.symlink_metadata().is_ok())
    {
        return Ok(false);
    }
    let failed = |m: String| format!("[{}] cannot install the part: {m}", spec.section);
    // buildout uninstalls the part first: its location goes (never followed through a link)
    if managed {
        remove(location).map_err(&failed)?;
    }
    match spec.run {
        Run::Install => python(deploy, spec),
        Run::Gitclone => git(deploy, spec),
        Run::DownloadUnpacked => unpack(deploy, spec),
    }
    .map_err(&failed)?;
    state::replace(partition, Path::new(&rel), &signature)
        .map_err(|e| format!("cannot write `{}/{rel}`: {e}", partition.display()))?;
    Ok(true)
}

fn remove(path: &Path) -> std::result::Result<(), String> {
    let result = match path.symlink_metadata() {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    result.map_err(|e| format!("cannot remove `{}`: {e}", path.display()))
}

/// `install` code in a Python host of its own, in the partition.
fn python(deploy: &Deploy, spec: &InstallSpec) -> std::result::Result<(), String> {
    let code = spec.options.get("install").cloned().unwrap_or_default();
    let buildout: serde_json::Value =
        serde_json::from_str(spec.buildout.as_deref().unwrap_or("{}")).unwrap_or_default();
    let request = serde_json::json!({
        "op": "install",
        "part": spec.section,
        "code": code,
        "options": spec.options,
        "buildout": buildout,
        "downloads": [],
        "files": [],
    });
    slapstore_store::recipes::run_python_alone(request, deploy.partition).map(drop)
}

/// A clone of `repository` at `location`, at `revision` or `branch`.
fn git(deploy: &Deploy, spec: &InstallSpec) -> std::result::Result<(), String> {
    let option = |k: &str| {
        spec.options
            .get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let repository = option("repository").unwrap_or_default();
    let git = option("git-executable").unwrap_or_else(|| "git".to_owned());
    let mirror = slapstore_store::recipes::git_mirror_path(deploy.cache_dir, &repository);
    let source = if Path::new(&repository).is_dir() || !mirror.is_dir() {
        repository.clone()
    } else {
        mirror.display().to_string()
    };
    let mut clone = vec!["clone", "--quiet"];
    let branch = option("branch");
    if let (Some(b), None) = (&branch, option("revision")) {
        clone.extend(["--branch", b.as_str()]);
    }
    clone.extend(["--", source.as_str(), spec.location.as_str()]);
    run_git(&git, deploy.partition, &clone)?;
    if source != repository {
        // as the recipe's clone has it: the repository is the origin, not the cache
        run_git(
            &git,
            deploy.partition,
            &[
                "-C",
                &spec.location,
                "remote",
                "set-url",
                "origin",
                &repository,
            ],
        )?;
    }
    if let Some(revision) = option("revision") {
        run_git(
            &git,
            deploy.partition,
            &[
                "-C",
                &spec.location,
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                &revision,
                "--",
            ],
        )?;
    }
    Ok(())
}

fn run_git(git: &str, dir: &Path, args: &[&str]) -> std::result::Result<(), String> {
    let out = Command::new(git)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{git}`: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`{git} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// `url` fetched through the download cache and unpacked at `location`.
fn unpack(deploy: &Deploy, spec: &InstallSpec) -> std::result::Result<(), String> {
    use slapstore_store::unpack::{StripTopLevel, UnpackOptions};
    let url = spec
        .options
        .get("url")
        .map(|u| u.trim())
        .unwrap_or_default();
    let checksum = match spec.options.get("md5sum").map(|m| m.trim()) {
        Some(m) if !m.is_empty() => Some(checksum(m)?),
        _ => None,
    };
    let strip = match spec.options.get("strip-top-level-dir").map(|s| s.trim()) {
        Some("true") => StripTopLevel::Yes,
        Some("false") => StripTopLevel::No,
        _ => StripTopLevel::Auto,
    };
    let parent = Path::new(&spec.location)
        .parent()
        .unwrap_or(deploy.partition);
    // beside the location, under a name no section name can make a path of
    let hash = blake3::hash(spec.section.as_bytes()).to_hex();
    let archive = parent.join(format!(".{}.archive", &hash[..16]));
    let fetcher = slapstore_store::fetch::Fetcher::new(deploy.cache_dir);
    fetcher
        .fetch(&[url], checksum.as_ref(), &archive)
        .map_err(|e| e.to_string())?;
    let unpacked = slapstore_store::unpack::unpack(
        &archive,
        Path::new(&spec.location),
        &UnpackOptions {
            strip_top_level: strip,
            ..UnpackOptions::default()
        },
    )
    .map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&archive);
    unpacked
}
