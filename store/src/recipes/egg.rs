//! `egg` (`zc.recipe.egg`, `:scripts`, `:eggs`, `:custom`, `:develop`): installs the part's
//! distributions at the pins of its versions section into a scratch directory, makes each
//! distribution a store path of its own, shared by every part that installs the same one
//! (`egg_split.rs`), then writes the console scripts (and `interpreter`) into `<out>/bin`, their
//! `sys.path` naming those paths so that reference scanning finds what they use. `:develop`
//! installs a copy of its `setup` tree; `:custom` builds its egg from the sdist with the part's
//! `build_ext` options as compiler flags.
//!
//! The installer is uv (`egg_uv.rs`: it resolves and fetches outside the sandbox, installs
//! inside it); without uv, pip, here: online, `pip download` fetches the closure outside the
//! sandbox into the download cache's `dists/` (atomically: a temporary name, then a rename),
//! then `pip install --no-index --find-links <cache>/dists` installs in the sandbox, so a build
//! with `--offline` works from what the cache holds. Nothing of the host's site-packages
//! enters: `--target` installs the whole closure, and the scripts run with `python -S`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::cmmi::shell_quote;
use super::{environment, Context};
use crate::error::{io_error, Result, StoreError};

/// The directory of the download cache that keeps Python distributions under their file names.
pub const DISTS_DIR: &str = "dists";

/// The distribution a `zc.recipe.testrunner` part (`egg-entry = testrunner`) installs besides
/// its `eggs`: its one script runs `zope.testrunner.run` over them.
pub const TESTRUNNER: &str = "zope.testrunner";

pub fn build(ctx: &mut Context) -> Result<()> {
    ctx.prepare_scratch()?;
    let entry = ctx.option("egg-entry").unwrap_or("scripts").to_owned();
    let python = ctx
        .option("python-executable")
        .ok_or_else(|| ctx.bad_option("python", "no interpreter (`python-executable`)"))?
        .trim()
        .to_owned();
    let mut pins = Pins::parse(ctx.option("versions").unwrap_or(""));
    let develop = entry == "develop";
    // the develop eggs of the `:develop` parts before this one: their wheels, at their
    // versions, whatever the versions section pins
    let develop_eggs = develop_eggs(ctx)?;
    for (name, version, _) in &develop_eggs {
        pins.pins
            .insert(normalise(name), (name.clone(), version.clone()));
        pins.wheels.insert(name.clone());
    }
    let custom = entry == "custom";
    let eggs: Vec<String> = match ctx.drv.option("eggs") {
        // `:develop` installs its `setup` tree (a copy: building writes into the tree)
        _ if develop => vec![develop_tree(ctx)?.display().to_string()],
        // `:custom` builds one distribution: `egg`, else `eggs`, else the part's name
        _ if custom => vec![ctx
            .option("egg")
            .or(ctx.option("eggs"))
            .map_or_else(|| ctx.part(), |e| e.trim().to_owned())],
        Some(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => vec![ctx.part()],
    };
    let testrunner = entry == "testrunner";
    // the eggs a testrunner's script tests are its `eggs`; zope.testrunner is installed too
    let tested = eggs.clone();
    let mut eggs = eggs;
    if testrunner {
        eggs.push(TESTRUNNER.into());
    }
    let allow_picked = ctx.option("allow-picked-versions").map(str::trim) != Some("false");
    let show_picked = ctx.option("show-picked-versions").map(str::trim) == Some("true");

    // requirements and constraints as files, so no value from the profile reaches the shell
    let mut requirements = String::new();
    for egg in &eggs {
        let name = project_name(egg);
        if !develop
            && !allow_picked
            && !has_specifier(egg)
            && !pins.pins.contains_key(&normalise(name))
        {
            return Err(StoreError::Recipe {
                part: ctx.part(),
                message: format!(
                    "egg `{name}` has no pin in the versions section and \
                     `allow-picked-versions` is false: add `{name} = VERSION` to `[versions]`"
                ),
            });
        }
        writeln!(requirements, "{egg}").ok();
    }
    let req_file = ctx.scratch.join("requirements.txt");
    let con_file = ctx.scratch.join("constraints.txt");
    fs::write(&req_file, requirements).map_err(|e| io_error(&req_file, e))?;
    fs::write(&con_file, pins.constraints()).map_err(|e| io_error(&con_file, e))?;

    let dists = ctx.fetcher.cache_dir().join(DISTS_DIR);
    fs::create_dir_all(&dists).map_err(|e| io_error(&dists, e))?;
    let mut env = environment(ctx)?;
    env.insert("PYTHONNOUSERSITE".into(), "1".into());
    if custom {
        build_ext_flags(ctx, &mut env);
    }
    let mut links = vec![dists.display().to_string()];
    links.extend(
        develop_eggs
            .iter()
            .map(|(_, _, dir)| dir.display().to_string()),
    );
    let mut remote_links = Vec::new();
    for link in ctx.option("find-links").unwrap_or("").split_whitespace() {
        let local = link.strip_prefix("file://").unwrap_or(link);
        if local.starts_with('/') {
            links.push(local.to_owned());
        } else {
            remote_links.push(link.to_owned());
        }
    }
    let work = ctx.scratch.join("work");
    fs::create_dir_all(&work).map_err(|e| io_error(&work, e))?;
    let request = Request {
        python: python.clone(),
        eggs: eggs.clone(),
        pins,
        develop,
        custom,
        req_file,
        con_file,
        links,
        remote_links,
        index: ctx.option("index").map(|i| i.trim().to_owned()),
        env,
        work,
    };
    let target = ctx.scratch.join("target");
    let installer = super::egg_uv::find(ctx, &python)?;
    let mut installed = match installer {
        super::egg_uv::Installer::Uv(uv) => super::egg_uv::install(ctx, &uv, &request, &target),
        super::egg_uv::Installer::Pip(why) => {
            ctx.note(&format!("installing with pip: {why}"))?;
            install_with_pip(ctx, &request, &target)
        }
    }
    .map_err(|e| match e {
        // offline, a failed resolution or install may be a pin no file in the cache offers
        StoreError::BuildFailed { .. } if ctx.fetcher.is_offline() => {
            missing_pin(ctx, &request).unwrap_or(e)
        }
        e => e,
    })?;
    // the installer's own scripts (`bin`) know nothing of the part's paths: the part's are
    // made below
    let pip_bin = target.join("bin");
    if pip_bin.is_dir() {
        fs::remove_dir_all(&pip_bin).map_err(|e| io_error(&pip_bin, e))?;
    }
    check_picked(ctx, &request.pins, &installed, allow_picked, show_picked)?;
    let paths = super::egg_split::share(ctx, &target, &mut installed)?;
    fs::create_dir_all(&ctx.out).map_err(|e| io_error(&ctx.out, e))?;
    write_manifest(ctx, &installed)?;
    if entry == "scripts" {
        scripts(ctx, &python, &paths, &eggs, &installed)?;
    } else if testrunner {
        test_script(ctx, &python, &paths, &tested)?;
    }
    Ok(())
}

/// What an egg build installs, and how, for either installer.
#[derive(Clone)]
pub(super) struct Request {
    pub python: String,
    /// The requirements (`eggs` lines; a `:develop` tree's path).
    pub eggs: Vec<String>,
    pub pins: Pins,
    pub develop: bool,
    pub custom: bool,
    /// `eggs` as a requirements file, the pins as a constraints file.
    pub req_file: PathBuf,
    pub con_file: PathBuf,
    /// The cache's `dists/`, then the local `find-links` directories.
    pub links: Vec<String>,
    pub remote_links: Vec<String>,
    pub index: Option<String>,
    pub env: BTreeMap<String, String>,
    /// The commands' working directory.
    pub work: PathBuf,
}

/// Runs `script` outside the build's sandbox (a fetch: the sandbox has no network).
pub(super) fn outside(
    ctx: &mut Context,
    what: &str,
    script: &str,
    dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<()> {
    let sandbox = ctx.sandbox.take();
    let result = ctx.shell(what, script, dir, env);
    ctx.sandbox = sandbox;
    result
}

/// Sets up the sandbox the install runs in, showing it `inputs` read-only (nothing when builds
/// are not sandboxed).
pub(super) fn sandbox_with(ctx: &mut Context, inputs: &[PathBuf]) -> Result<()> {
    if ctx.sandbox.is_none() {
        return Ok(());
    }
    let Some(scratch) = ctx.scratch.parent() else {
        return Ok(());
    };
    // `:custom`'s directories: in SlapOS store paths, which the sandbox shows, but not always
    let mut inputs = inputs.to_vec();
    for key in ["include-dirs", "library-dirs"] {
        for dir in ctx.option(key).unwrap_or("").split(':').map(str::trim) {
            if dir.starts_with('/') {
                inputs.push(PathBuf::from(dir));
            }
        }
    }
    // what is under the host's system directories the sandbox shows already
    let system = ["/usr/", "/bin/", "/sbin/", "/lib", "/etc/"];
    let mut all: Vec<&Path> = inputs
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| !system.iter().any(|s| p.to_string_lossy().starts_with(s)))
        .collect();
    all.extend(ctx.drv.build.files.values().map(PathBuf::as_path));
    let mut sandbox = crate::sandbox::Sandbox::new(
        scratch,
        &ctx.store.store_dir(),
        &ctx.store_out,
        &ctx.out,
        all,
    )?;
    // the install runs as the build's user too, when it has one
    if let Some((uid, gid)) = ctx.sandbox.as_ref().and_then(|s| s.user()) {
        sandbox.run_as(uid, gid);
    }
    ctx.sandbox = Some(sandbox);
    Ok(())
}

/// The fallback: `pip download` (online, outside the sandbox) into `dists/`, then
/// `pip install --no-index --target` from there, in the sandbox.
fn install_with_pip(ctx: &mut Context, req: &Request, target: &Path) -> Result<Vec<Installed>> {
    let mut env = req.env.clone();
    env.insert("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into());
    env.insert("PIP_NO_INPUT".into(), "1".into());
    env.insert(
        "PIP_CACHE_DIR".into(),
        ctx.scratch.join("pip-cache").display().to_string(),
    );
    let binary = if req.pins.wheels.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = req.pins.wheels.iter().map(String::as_str).collect();
        format!(" --only-binary {}", shell_quote(&names.join(",")))
    };
    let py = shell_quote(&req.python);
    // a local tree is built with the interpreter's own setuptools: offline, no build
    // dependency can be fetched into an isolated build environment
    let binary = match (req.develop, req.custom) {
        (true, _) => format!("{binary} --no-build-isolation --use-pep517"),
        // from the sdist, compiled here with the part's build options
        (_, true) => format!(
            "{binary} --no-build-isolation --use-pep517 --no-binary {}",
            shell_quote(project_name(&req.eggs[0]))
        ),
        _ => binary,
    };
    let quoted = |v: &[String]| {
        v.iter()
            .map(|l| format!(" --find-links {}", shell_quote(l)))
            .collect::<String>()
    };
    let con = shell_quote(&req.con_file.display().to_string());
    let reqs = shell_quote(&req.req_file.display().to_string());
    if !ctx.fetcher.is_offline() {
        let download = ctx.scratch.join("download");
        let index = match &req.index {
            Some(i) => format!(" --index-url {}", shell_quote(i)),
            None => String::new(),
        };
        let script = format!(
            "{py} -s -m pip download --isolated --dest {}{index}{}{}{binary} -c {con} -r {reqs}",
            shell_quote(&download.display().to_string()),
            quoted(&req.links),
            quoted(&req.remote_links),
        );
        outside(ctx, "download", &script, &req.work, &env)?;
        let dists = PathBuf::from(&req.links[0]);
        keep_downloads(ctx, &download, &dists)?;
    }
    let report = ctx.scratch.join("report.json");
    let script = format!(
        "{py} -s -m pip install --isolated --no-index --no-compile --target {} --report {}{}{binary} \
         -c {con} -r {reqs}",
        shell_quote(&target.display().to_string()),
        shell_quote(&report.display().to_string()),
        quoted(&req.links),
    );
    let inputs: Vec<PathBuf> = req.links.iter().map(PathBuf::from).collect();
    sandbox_with(ctx, &inputs)?;
    ctx.shell("install", &script, &req.work, &env)?;
    read_report(ctx, &report)
}

/// `:custom`'s build options as the compiler's flags, which setuptools' `build_ext` adds to its
/// commands: `include-dirs` (`:`-separated, as initialisation joined them) as `-I`, `define`
/// (comma-separated symbols, as `build_ext` reads it) as `-D`, `library-dirs` as `-L`, `rpath`
/// as `-Wl,-rpath,`. Appended to what `environment` gave.
fn build_ext_flags(ctx: &Context, env: &mut BTreeMap<String, String>) {
    let list = |key: &str, sep: char| -> Vec<String> {
        ctx.option(key)
            .unwrap_or("")
            .split(sep)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut cpp: Vec<String> = list("include-dirs", ':')
        .into_iter()
        .map(|d| format!("-I{d}"))
        .collect();
    cpp.extend(list("define", ',').into_iter().map(|d| format!("-D{d}")));
    let mut ld: Vec<String> = list("library-dirs", ':')
        .into_iter()
        .map(|d| format!("-L{d}"))
        .collect();
    ld.extend(
        list("rpath", ':')
            .into_iter()
            .map(|d| format!("-Wl,-rpath,{d}")),
    );
    for (var, flags) in [("CPPFLAGS", cpp), ("LDFLAGS", ld)] {
        if flags.is_empty() {
            continue;
        }
        let value = match env.get(var).filter(|v| !v.is_empty()) {
            Some(before) => format!("{before} {}", flags.join(" ")),
            None => flags.join(" "),
        };
        env.insert(var.to_owned(), value);
    }
}

/// `:develop`'s `setup` tree, copied into the scratch directory.
fn develop_tree(ctx: &mut Context) -> Result<PathBuf> {
    let tree = match ctx.drv.build.files.get("setup") {
        Some(tree) => tree.clone(),
        // a tree another part makes (`setup-part`), read now that it is built
        None => PathBuf::from(
            ctx.option("setup")
                .ok_or_else(|| ctx.bad_option("setup", "a `:develop` part needs a `setup` tree"))?
                .trim(),
        ),
    };
    if !tree.is_dir() {
        let maker = match ctx.option("setup-part") {
            Some(p) => format!(" (`{}` was built and made none there)", p.trim()),
            None => String::new(),
        };
        return Err(ctx.bad_option(
            "setup",
            format!(
                "the `setup` tree `{}` is not a directory{maker}",
                tree.display()
            ),
        ));
    }
    let copy = ctx.scratch.join("develop-src");
    ctx.note(&format!("copying the `setup` tree `{}`", tree.display()))?;
    super::cmmi::copy_tree(&tree, &copy)?;
    Ok(copy)
}

/// The directory of a `:develop` part's output holding its distribution as a wheel, for the
/// egg parts after it.
pub(super) const DEVELOP_DIST_DIR: &str = "dist";

/// The develop eggs the derivation sees (`develop-eggs`: the outputs of the `:develop` parts
/// before it): name, version and directory of each one's wheel. A part that pip installed
/// (uv missing) kept no wheel, and offers none.
fn develop_eggs(ctx: &Context) -> Result<Vec<(String, String, PathBuf)>> {
    let mut out = Vec::new();
    for path in ctx.option("develop-eggs").unwrap_or("").split_whitespace() {
        let dir = Path::new(path).join(DEVELOP_DIST_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&dir, e)),
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = file.strip_suffix(".whl") else {
                continue;
            };
            let mut words = stem.split('-');
            if let (Some(name), Some(version)) = (words.next(), words.next()) {
                out.push((name.to_owned(), version.to_owned(), dir.clone()));
            }
        }
    }
    Ok(out)
}

/// The `[versions]` pins, by normalised name: the version (a `:whl` suffix removed) and which
/// ones must be installed from a wheel.
#[derive(Clone)]
pub(super) struct Pins {
    pub pins: BTreeMap<String, (String, String)>,
    pub wheels: BTreeSet<String>,
}

impl Pins {
    /// `name = version[:whl]` lines.
    fn parse(text: &str) -> Pins {
        let mut pins = BTreeMap::new();
        let mut wheels = BTreeSet::new();
        for line in text.lines() {
            let Some((name, version)) = line.split_once('=') else {
                continue;
            };
            let (name, mut version) = (name.trim(), version.trim());
            if name.is_empty() || version.is_empty() {
                continue;
            }
            if let Some(v) = version.strip_suffix(":whl") {
                version = v.trim();
                wheels.insert(name.to_owned());
            }
            pins.insert(normalise(name), (name.to_owned(), version.to_owned()));
        }
        Pins { pins, wheels }
    }

    /// A pip constraints file: `name==version`, or `name<spec>` for pins that are specifiers
    /// (`zc.buildout = >=3`).
    pub(super) fn constraints(&self) -> String {
        let mut out = String::new();
        for (name, version) in self.pins.values() {
            if version.starts_with(['<', '>', '=', '!', '~']) {
                writeln!(out, "{name}{version}").ok();
            } else {
                writeln!(out, "{name}=={version}").ok();
            }
        }
        out
    }
}

/// PEP 503's normalised name: lowercase, runs of `-`, `_`, `.` as one `-`.
pub(super) fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !sep {
                out.push('-');
            }
            sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            sep = false;
        }
    }
    out
}

/// The project name of a requirement (`Foo[bar] >= 1` → `Foo`).
pub(super) fn project_name(req: &str) -> &str {
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    &req[..end]
}

/// Whether a requirement carries its own version specifier.
fn has_specifier(req: &str) -> bool {
    req.contains(['<', '>', '=', '!', '~'])
}

/// Moves what `pip download` fetched into the cache's `dists/`.
fn keep_downloads(ctx: &mut Context, download: &Path, dists: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(download) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(download, e))?;
        if keep_distribution(dists, &entry.path()).map_err(|e| io_error(dists, e))? {
            ctx.note(&format!("cached `{}`", entry.file_name().to_string_lossy()))?;
        }
    }
    Ok(())
}

/// Whether a file name is that of a Python distribution (a wheel or an sdist).
pub fn is_distribution(name: &str) -> bool {
    [".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Copies `file` into `dists` (the download cache's [`DISTS_DIR`]) under its own name, unless
/// a file of that name is there already: through a temporary file in `dists`, renamed once
/// complete, so that a concurrent build never sees half a file; mode 0444. `Ok(true)` if it
/// was copied.
pub fn keep_distribution(dists: &Path, file: &Path) -> std::io::Result<bool> {
    let Some(name) = file.file_name() else {
        return Ok(false);
    };
    let dest = dists.join(name);
    if dest.exists() {
        return Ok(false);
    }
    fs::create_dir_all(dists)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dists)?;
    std::io::copy(&mut fs::File::open(file)?, tmp.as_file_mut())?;
    // readable by all, as the cache's other entries (a build user reads it in the sandbox)
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o444))?;
    tmp.as_file().sync_all()?;
    tmp.persist(&dest).map_err(|e| e.error)?;
    Ok(true)
}

/// After a failed install, the first requested egg whose pin no file of `links` (the cache's
/// `dists/` and the local `find-links`) offers, as an error naming the egg and its pin: pip's
/// own message is only in the log.
fn missing_pin(ctx: &Context, req: &Request) -> Option<StoreError> {
    let (eggs, pins, links) = (&req.eggs, &req.pins, &req.links);
    let mut files = Vec::new();
    for dir in links {
        if let Ok(entries) = fs::read_dir(dir) {
            files.extend(
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    eggs.iter().find_map(|egg| {
        let name = project_name(egg);
        let (_, version) = pins.pins.get(&normalise(name))?;
        if version.starts_with(['<', '>', '=', '!', '~']) {
            return None;
        }
        let offered = files.iter().any(|f| {
            let (stem, v) = split_file_name(f);
            normalise(stem) == normalise(name) && v == version
        });
        (!offered).then(|| StoreError::Recipe {
            part: ctx.part(),
            message: format!(
                "egg `{name}` is pinned at `{version}` by the versions section, and no \
                 distribution of it at that version is in {}{}: fix the pin, or add the \
                 file (`slapstore add-source FILE`)",
                links
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if ctx.fetcher.is_offline() {
                    " (offline)"
                } else {
                    " or on the index"
                },
            ),
        })
    })
}

/// A distribution file's project name and version: `six-1.16.0-py2.py3-none-any.whl` and
/// `six-1.16.0.tar.gz` both give `("six", "1.16.0")`.
fn split_file_name(file: &str) -> (&str, &str) {
    let stem = [".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .unwrap_or(file);
    if file.ends_with(".whl") {
        // a wheel's name has its `-` escaped: name, version, then tags
        let mut pieces = stem.splitn(3, '-');
        (pieces.next().unwrap_or(stem), pieces.next().unwrap_or(""))
    } else {
        // an sdist's name may hold `-`: the version is after the last one
        stem.rsplit_once('-').unwrap_or((stem, ""))
    }
}

/// One installed distribution, from pip's installation report.
pub(super) struct Installed {
    pub name: String,
    pub version: String,
    pub url: String,
    pub sha256: Option<String>,
    /// Its store path, once shared; `None` while in the part's own `lib`.
    pub path: Option<PathBuf>,
    /// A build dependency of an sdist, not installed.
    pub build_only: bool,
}

fn read_report(ctx: &Context, report: &Path) -> Result<Vec<Installed>> {
    let text = fs::read_to_string(report).map_err(|e| io_error(report, e))?;
    let bad = |m: String| StoreError::Recipe {
        part: ctx.part(),
        message: format!("pip's report `{}`: {m}", report.display()),
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let items = json["install"]
        .as_array()
        .ok_or_else(|| bad("no `install` list".into()))?;
    let mut out = Vec::new();
    for item in items {
        let meta = &item["metadata"];
        let (Some(name), Some(version)) = (meta["name"].as_str(), meta["version"].as_str()) else {
            return Err(bad("an item without a name and version".into()));
        };
        let info = &item["download_info"];
        let url = info["url"].as_str().unwrap_or_default().to_owned();
        // pip reports the hash of what it downloaded; a local file's is computed here
        let sha256 = info["archive_info"]["hashes"]["sha256"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                let file = Path::new(url.strip_prefix("file://")?);
                let sum =
                    crate::checksum::Checksum::of_file(crate::checksum::Algorithm::Sha256, file)
                        .ok()?;
                Some(sum.hex())
            });
        out.push(Installed {
            name: name.to_owned(),
            version: version.to_owned(),
            url,
            sha256,
            path: None,
            build_only: false,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `allow-picked-versions = false` refuses a distribution the versions section does not pin;
/// `show-picked-versions = true` logs the picked ones as `[versions]` lines.
fn check_picked(
    ctx: &mut Context,
    pins: &Pins,
    installed: &[Installed],
    allow: bool,
    show: bool,
) -> Result<()> {
    let picked: Vec<&Installed> = installed
        .iter()
        .filter(|i| !i.build_only && !pins.pins.contains_key(&normalise(&i.name)))
        .collect();
    if let (false, Some(first)) = (allow, picked.first()) {
        return Err(StoreError::Recipe {
            part: ctx.part(),
            message: format!(
                "egg `{}` was picked at version {} but has no pin in the versions section and \
                 `allow-picked-versions` is false: add `{} = {}` to `[versions]`",
                first.name, first.version, first.name, first.version
            ),
        });
    }
    if show && !picked.is_empty() {
        ctx.note("picked versions ([versions] lines):")?;
        for i in picked {
            ctx.note(&format!("{} = {}", i.name, i.version))?;
        }
    }
    Ok(())
}

/// `<out>/.slapstore-eggs`: each installed distribution, its version, the file it came from,
/// that file's SHA-256 (for a future lock file) and where it is (its store path, or `lib`).
fn write_manifest(ctx: &Context, installed: &[Installed]) -> Result<()> {
    let mut text = String::new();
    for i in installed {
        let file = i.url.rsplit('/').next().unwrap_or_default();
        let sha = i.sha256.as_deref().unwrap_or("-");
        let path = match (&i.path, i.build_only) {
            (_, true) => "build".into(),
            (Some(p), _) => p.display().to_string(),
            (None, _) => "lib".into(),
        };
        writeln!(
            text,
            "{} {} {} sha256:{sha} {path}",
            i.name, i.version, file
        )
        .ok();
    }
    let path = ctx.out.join(".slapstore-eggs");
    fs::write(&path, text).map_err(|e| io_error(&path, e))
}

/// The console scripts of the requested eggs (or, with `dependent-scripts = true`, of every
/// installed one), renamed or chosen by `scripts`, plus `entry-points` and `interpreter`.
fn scripts(
    ctx: &mut Context,
    python: &str,
    paths: &[PathBuf],
    eggs: &[String],
    installed: &[Installed],
) -> Result<()> {
    let dependent = ctx.option("dependent-scripts").map(str::trim) == Some("true");
    let wanted: BTreeSet<String> = if dependent {
        installed
            .iter()
            .filter(|i| !i.build_only)
            .map(|i| normalise(&i.name))
            .collect()
    } else {
        eggs.iter().map(|e| normalise(project_name(e))).collect()
    };
    let mut entry_points: BTreeMap<String, String> = BTreeMap::new();
    for dir in paths {
        // the part's own `lib` is still where the builder writes it
        let dir = match dir.strip_prefix(&ctx.store_out) {
            Ok(rest) => ctx.out.join(rest),
            Err(_) => dir.clone(),
        };
        let dir = &dir;
        for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".dist-info") else {
                continue;
            };
            let project = stem.rsplit_once('-').map_or(stem, |(n, _)| n);
            if !wanted.contains(&normalise(project)) {
                continue;
            }
            let file = entry.path().join("entry_points.txt");
            if let Ok(text) = fs::read_to_string(&file) {
                entry_points.extend(console_scripts(&text));
            }
        }
    }
    for word in ctx.option("entry-points").unwrap_or("").split_whitespace() {
        let (name, target) = word.split_once('=').ok_or_else(|| {
            ctx.bad_option(
                "entry-points",
                format!("`{word}` is not `name=module:attr`"),
            )
        })?;
        entry_points.insert(name.to_owned(), target.to_owned());
    }
    // `scripts`: when given, only those, `name=new-name` renaming
    let chosen: Option<BTreeMap<String, String>> = ctx.drv.option("scripts").map(|text| {
        text.split_whitespace()
            .map(|w| match w.split_once('=') {
                Some((from, to)) => (from.to_owned(), to.to_owned()),
                None => (w.to_owned(), w.to_owned()),
            })
            .collect()
    });
    let paths = script_paths(ctx, paths);
    let init = ctx.option("initialization").unwrap_or("").to_owned();
    let args = ctx.option("arguments").unwrap_or("").trim().to_owned();
    let bin = ctx.out.join("bin");
    fs::create_dir_all(&bin).map_err(|e| io_error(&bin, e))?;
    let head = header(python, &paths, &init);
    for (name, target) in &entry_points {
        let file = match &chosen {
            Some(c) => match c.get(name) {
                Some(f) => f.clone(),
                None => continue,
            },
            None => name.clone(),
        };
        let (module, attr) = target.split_once(':').ok_or_else(|| {
            ctx.bad_option("entry-points", format!("`{target}` is not `module:attr`"))
        })?;
        write_script(&bin.join(file), &entry_point(&head, module, attr, &args))?;
    }
    if let Some(name) = ctx.option("interpreter").map(str::trim).map(str::to_owned) {
        write_script(&bin.join(name), &format!("{head}{INTERPRETER}"))?;
    }
    Ok(())
}

/// A script's `sys.path`: the distributions' paths, then `extra-paths`.
fn script_paths(ctx: &Context, paths: &[PathBuf]) -> Vec<String> {
    let mut out: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    out.extend(
        ctx.option("extra-paths")
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    out
}

/// A script calling `module:attr` (extras ignored) with `args`, after `head`.
fn entry_point(head: &str, module: &str, attr: &str, args: &str) -> String {
    let attr = attr.split('[').next().unwrap_or(attr).trim();
    format!(
        "{head}import {module}\n\nif __name__ == '__main__':\n    \
         sys.exit({module}.{attr}({args}))\n",
        module = module.trim()
    )
}

/// `zc.recipe.testrunner`'s script, `<out>/bin/<script>`: zope.testrunner's `run` with
/// `defaults` and a `--test-path` for the path of each distribution of `eggs`, run in
/// `working-directory` (else the part's location, its store path), with the variables of the
/// `environment` section set, then `initialization`; as zc.recipe.testrunner 2 writes it.
fn test_script(ctx: &mut Context, python: &str, paths: &[PathBuf], eggs: &[String]) -> Result<()> {
    let mut test_paths = Vec::new();
    for egg in eggs {
        let wanted = normalise(project_name(egg));
        let found = paths.iter().find(|dir| {
            let dir = match dir.strip_prefix(&ctx.store_out) {
                Ok(rest) => ctx.out.join(rest),
                Err(_) => dir.to_path_buf(),
            };
            fs::read_dir(&dir).is_ok_and(|entries| {
                entries.flatten().any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".dist-info")
                        .map(|stem| stem.rsplit_once('-').map_or(stem, |(n, _)| n))
                        .is_some_and(|project| normalise(project) == wanted)
                })
            })
        });
        let found = found.ok_or_else(|| {
            ctx.bad_option(
                "eggs",
                format!("`{egg}` is not among the installed distributions"),
            )
        })?;
        test_paths.push(found.display().to_string());
    }
    let script = ctx
        .option("script")
        .unwrap_or(ctx.drv.name())
        .trim()
        .to_owned();
    let file = Path::new(&script)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| ctx.bad_option("script", format!("`{script}` names no file")))?;
    let wd = match ctx.option("working-directory").map(str::trim) {
        Some(wd) if !wd.is_empty() => wd.to_owned(),
        _ => ctx.store_out.display().to_string(),
    };
    let mut init = format!(
        "import os\nsys.argv[0] = os.path.abspath(sys.argv[0])\nos.chdir({})\n",
        py_str(&wd)
    );
    for (key, value) in ctx
        .option("environment")
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split_once('='))
    {
        writeln!(init, "os.environ[{}] = {}", py_str(key), py_str(value)).ok();
    }
    init.push_str(ctx.option("initialization").unwrap_or("").trim());
    let defaults = match ctx.option("defaults").map(str::trim) {
        Some(d) if !d.is_empty() => format!("({d}) + "),
        _ => String::new(),
    };
    let mut args = format!("{defaults}[\n");
    for p in &test_paths {
        writeln!(args, "        '--test-path', {},", py_str(p)).ok();
    }
    args.push_str("        ]");
    let bin = ctx.out.join("bin");
    fs::create_dir_all(&bin).map_err(|e| io_error(&bin, e))?;
    let head = header(python, &script_paths(ctx, paths), &init);
    write_script(
        &bin.join(file),
        &entry_point(&head, "zope.testrunner", "run", &args),
    )
}

/// The `[console_scripts]` of an `entry_points.txt`.
fn console_scripts(text: &str) -> Vec<(String, String)> {
    let mut in_section = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[console_scripts]";
        } else if in_section {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    out
}

/// A script's start: the interpreter without its site-packages (`-S`), no bytecode written
/// (not even by root, whom read-only modes do not stop), the part's paths first (`.pth` files
/// in them processed), then `initialization`.
fn header(python: &str, paths: &[String], init: &str) -> String {
    let mut s = format!(
        "#!{python} -S\n# made by slapstore (zc.recipe.egg)\nimport sys\n\
         # the store is read-only: no bytecode written into it\n\
         sys.dont_write_bytecode = True\nsys.path[0:0] = [\n"
    );
    for p in paths {
        writeln!(s, "    {},", py_str(p)).ok();
    }
    s.push_str("]\nimport site\n");
    for p in paths {
        writeln!(s, "site.addsitedir({})", py_str(p)).ok();
    }
    s.push('\n');
    if !init.trim().is_empty() {
        s.push_str(init.trim_end());
        s.push_str("\n\n");
    }
    s
}

/// The body of an `interpreter` script: `-c CODE`, `-m MODULE`, a file, or an interactive
/// prompt, like zc.buildout's.
const INTERPRETER: &str = "_args = sys.argv[1:]
if _args and _args[0] == '-c':
    sys.argv[:] = ['-c'] + _args[2:]
    exec(compile(_args[1], '<string>', 'exec'), {'__name__': '__main__'})
elif _args and _args[0] == '-m':
    import runpy
    sys.argv[:] = _args[1:]
    runpy.run_module(_args[1], run_name='__main__', alter_sys=True)
elif _args:
    import runpy
    sys.argv[:] = _args
    runpy.run_path(_args[0], run_name='__main__')
else:
    import code
    code.interact(banner='', local=globals())
";

/// A Python string literal.
fn py_str(text: &str) -> String {
    format!(
        "'{}'",
        text.replace('\\', "\\\\")
            .replace('\'', "\\'")
            .replace('\n', "\\n")
    )
}

fn write_script(path: &PathBuf, body: &str) -> Result<()> {
    fs::write(path, body).map_err(|e| io_error(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_constraints() {
        let p = Pins::parse("Jinja2 = 3.1.6:whl\nsix = 1.17.0\nzc.buildout = >=3.0\nbad\n");
        assert_eq!(p.pins["jinja2"].1, "3.1.6");
        assert!(p.wheels.contains("Jinja2"));
        assert!(!p.wheels.contains("six"));
        assert_eq!(
            p.constraints(),
            "Jinja2==3.1.6\nsix==1.17.0\nzc.buildout>=3.0\n"
        );
    }

    #[test]
    fn names() {
        assert_eq!(normalise("Zope.Interface__x"), "zope-interface-x");
        assert_eq!(project_name("Foo[bar] >= 1"), "Foo");
        assert!(has_specifier("six==1"));
        assert!(!has_specifier("six[x]"));
    }

    #[test]
    fn entry_points_file() {
        let text = "[gui_scripts]\ng = m:g\n[console_scripts]\na = m:main\nb=n.o:p [x]\n";
        assert_eq!(
            console_scripts(text),
            vec![
                ("a".to_owned(), "m:main".to_owned()),
                ("b".to_owned(), "n.o:p [x]".to_owned())
            ]
        );
    }

    #[test]
    fn distribution_file_names() {
        assert_eq!(
            split_file_name("six-1.16.0-py2.py3-none-any.whl"),
            ("six", "1.16.0")
        );
        assert_eq!(
            split_file_name("zope.interface-5.4.0.tar.gz"),
            ("zope.interface", "5.4.0")
        );
        assert_eq!(split_file_name("my-pkg-1.0.zip"), ("my-pkg", "1.0"));
    }

    #[test]
    fn python_strings() {
        assert_eq!(py_str("a'b\\c"), "'a\\'b\\\\c'");
    }
}
