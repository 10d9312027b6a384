//! uv as the installer of egg builds: finding (or installing) it at the version pinned here
//! ([`UV_VERSION`]), else pip (said in the build log); resolving with it outside the sandbox
//! and installing with it inside ([`install`]).
//!
//! Where uv comes from, first found wins:
//! 1. `SLAPSTORE_UV`: the path of a `uv` to use, or `pip` to use pip (tests, and a machine
//!    whose uv is elsewhere);
//! 2. a `uv` on the builds' `PATH` ([`BUILD_PATH`](super::BUILD_PATH)) that says it is
//!    [`UV_VERSION`] (`.ci/deps.sh` puts one in `/usr/local/bin`);
//! 3. `<download cache>/tools/uv-<version>/uv`, extracted earlier from the pinned wheel;
//! 4. the pinned wheel (`uv-<version>-*.whl`, a real one from the package index) in the cache's
//!    `dists/` (where `slapstore add-source` puts it), extracted into 3;
//! 5. online, that wheel fetched with the interpreter's `pip download` into `dists/`, then 4.
//!
//! A uv of another version is never used: the installer is part of what makes an egg's files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cmmi::shell_quote;
use super::egg::{
    keep_distribution, normalise, outside, project_name, sandbox_with, Installed, Request,
    DISTS_DIR,
};
use super::egg_artifacts::{build_requires, choose, Artifact, Kind};
use super::{Context, BUILD_PATH};
use crate::error::{io_error, Result, StoreError};

/// The version of uv that egg builds use.
pub const UV_VERSION: &str = "0.13.9";

/// The installer of one build.
pub enum Installer {
    Uv(PathBuf),
    /// pip, and why not uv (for the log).
    Pip(String),
}

/// Finds (or installs) the pinned uv; pip when it cannot be had, with the reason.
pub fn find(ctx: &mut Context, python: &str) -> Result<Installer> {
    match std::env::var("SLAPSTORE_UV").ok().filter(|v| !v.is_empty()) {
        Some(v) if v == "pip" => return Ok(Installer::Pip("`SLAPSTORE_UV=pip`".into())),
        Some(v) => return Ok(Installer::Uv(PathBuf::from(v))),
        None => {}
    }
    for dir in BUILD_PATH.split(':') {
        let uv = Path::new(dir).join("uv");
        if uv.is_file() && says_pinned_version(&uv) {
            return Ok(Installer::Uv(uv));
        }
    }
    let tools = ctx
        .fetcher
        .cache_dir()
        .join("tools")
        .join(format!("uv-{UV_VERSION}"));
    let uv = tools.join("uv");
    if uv.is_file() {
        return Ok(Installer::Uv(uv));
    }
    let dists = ctx.fetcher.cache_dir().join(DISTS_DIR);
    let mut wheel = pinned_wheel(&dists);
    if wheel.is_none() && !ctx.fetcher.is_offline() {
        wheel = download_wheel(ctx, python, &dists)?;
    }
    let Some(wheel) = wheel else {
        return Ok(Installer::Pip(format!(
            "no uv {UV_VERSION} on `{BUILD_PATH}`, and no `uv-{UV_VERSION}-*.whl` in `{}`",
            dists.display()
        )));
    };
    match extract(&wheel, &tools) {
        Ok(uv) => {
            ctx.note(&format!(
                "installed uv {UV_VERSION} from `{}`",
                wheel.display()
            ))?;
            Ok(Installer::Uv(uv))
        }
        Err(e) => Ok(Installer::Pip(format!(
            "`{}` could not be extracted: {e}",
            wheel.display()
        ))),
    }
}

/// Whether `uv --version` names [`UV_VERSION`].
fn says_pinned_version(uv: &Path) -> bool {
    Command::new(uv)
        .arg("--version")
        .env_clear()
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1) == Some(UV_VERSION)
        })
}

/// The pinned uv's wheel for this machine in `dists`, if there is one.
fn pinned_wheel(dists: &Path) -> Option<PathBuf> {
    let prefix = format!("uv-{UV_VERSION}-");
    let arch = std::env::consts::ARCH;
    fs::read_dir(dists).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        (name.starts_with(&prefix)
            && name.ends_with(".whl")
            && name.contains("linux")
            && name.contains(arch))
        .then(|| e.path())
    })
}

/// `pip download uv==VERSION` (the wheel for this machine) into `dists`, outside any sandbox.
fn download_wheel(ctx: &mut Context, python: &str, dists: &Path) -> Result<Option<PathBuf>> {
    let dir = ctx.scratch.join("uv-download");
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    ctx.note(&format!(
        "fetching uv {UV_VERSION} with `{python} -m pip download`"
    ))?;
    let status = Command::new(python)
        .args([
            "-s",
            "-m",
            "pip",
            "download",
            "-q",
            "--isolated",
            "--no-deps",
        ])
        .args(["--only-binary", ":all:", "--dest"])
        .arg(&dir)
        .arg(format!("uv=={UV_VERSION}"))
        .env_clear()
        .envs(super::base_environment(ctx))
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        ctx.note("could not fetch uv")?;
        return Ok(None);
    }
    if let Some(wheel) = pinned_wheel(&dir) {
        keep_distribution(dists, &wheel).map_err(|e| io_error(dists, e))?;
    }
    Ok(pinned_wheel(dists))
}

/// Extracts the `uv` program of `wheel` into `dir` (through a temporary file, renamed once
/// complete: concurrent builds may do the same); its path.
fn extract(wheel: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    let member = format!("uv-{UV_VERSION}.data/scripts/uv");
    let mut archive =
        zip::ZipArchive::new(fs::File::open(wheel)?).map_err(std::io::Error::other)?;
    let mut entry = archive
        .by_name(&member)
        .map_err(|e| std::io::Error::other(format!("`{member}`: {e}")))?;
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::copy(&mut entry, tmp.as_file_mut())?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o755))?;
    tmp.as_file().sync_all()?;
    let uv = dir.join("uv");
    tmp.persist(&uv).map_err(|e| e.error)?;
    Ok(uv)
}

/// Installs `req` with uv into `target`: the artifacts (the derivation's locked
/// `egg-artifacts`, else resolved by `uv pip compile` outside the sandbox, online or from the
/// cache), fetched outside the sandbox; the build dependencies of the sdists among them
/// likewise (`egg-build-artifacts`, else resolved, as wheels); then `uv pip install
/// --offline --no-index --no-deps` from a wheelhouse of exactly those files, in the sandbox.
pub(super) fn install(
    ctx: &mut Context,
    uv: &Path,
    req: &Request,
    target: &Path,
) -> Result<Vec<Installed>> {
    let dists = PathBuf::from(&req.links[0]);
    let wheelhouse = ctx.scratch.join("wheelhouse");
    // a `:develop` tree is built into a wheel first (kept in the output's `dist/` for the egg
    // parts after it), then resolved and installed as that wheel, at its version whatever the
    // versions section pins for its name
    let develop_req;
    let req = if req.develop {
        develop_req = develop_request(ctx, uv, req, &wheelhouse)?;
        &develop_req
    } else {
        req
    };
    let pinned: BTreeSet<String> = req.pins.pins.keys().cloned().collect();
    let wheels: BTreeSet<String> = req.pins.wheels.iter().map(|w| normalise(w)).collect();
    // `:custom`'s egg and a `:develop` tree build against the interpreter's own setuptools, as
    // zc.recipe.egg builds them with buildout's
    let own_setuptools: BTreeSet<String> = if req.custom {
        [normalise(project_name(&req.eggs[0]))].into()
    } else {
        BTreeSet::new()
    };
    let artifacts = match ctx.option("egg-artifacts") {
        Some(text) => locked(ctx, "egg-artifacts", text)?,
        None => compile(
            ctx,
            uv,
            req,
            &req.req_file,
            Resolve::Install,
            (&pinned, &wheels),
        )?,
    };
    fetch(ctx, &artifacts, &wheelhouse, &dists)?;
    let isolated: Vec<&Artifact> = artifacts
        .iter()
        .filter(|a| a.kind() == Kind::Sdist && !own_setuptools.contains(&normalise(&a.name)))
        .collect();
    let build_artifacts = match ctx.option("egg-build-artifacts") {
        Some(text) => locked(ctx, "egg-build-artifacts", text)?,
        None if isolated.is_empty() => Vec::new(),
        None => {
            let mut requires = BTreeSet::new();
            for a in &isolated {
                let file = wheelhouse.join(&a.file);
                requires.extend(build_requires(a, &file).map_err(|m| recipe_error(ctx, m))?);
            }
            if requires
                .iter()
                .any(|r| normalise(project_name(r)) == "setuptools")
            {
                // what setuptools before 70.1 asks for besides itself
                requires.insert("wheel".to_owned());
            }
            let file = ctx.scratch.join("build-requirements.txt");
            let text: String = requires.iter().map(|r| format!("{r}\n")).collect();
            fs::write(&file, text).map_err(|e| io_error(&file, e))?;
            ctx.note(&format!(
                "build dependencies of the sdists: {}",
                requires.iter().cloned().collect::<Vec<_>>().join(", ")
            ))?;
            // the versions section's pins apply to what builds the sdists too, as buildout
            // builds them with the pinned setuptools; when they conflict with what an sdist
            // asks for, the newest that it allows, the log saying so
            let none = BTreeSet::new();
            match compile(ctx, uv, req, &file, Resolve::Build, (&none, &none)) {
                Err(StoreError::BuildFailed { .. }) if !req.pins.pins.is_empty() => {
                    ctx.note(
                        "the build dependencies cannot be resolved at the pins of the versions \
                         section: resolving them without",
                    )?;
                    compile(ctx, uv, req, &file, Resolve::BuildUnpinned, (&none, &none))?
                }
                result => result?,
            }
        }
    };
    fetch(ctx, &build_artifacts, &wheelhouse, &dists)?;
    // every sdist built in isolation becomes a wheel (from the cache of built wheels, else
    // built now, in parallel, and kept there): the install below builds none of them
    super::egg_wheels::provide(ctx, uv, req, &wheelhouse, &isolated, &build_artifacts)?;

    let install = ctx.scratch.join("install.txt");
    let text: String = artifacts
        .iter()
        .map(|a| match a.kind() {
            Kind::Tree => format!("{}\n", a.location),
            _ => format!("{}=={}\n", a.name, a.version),
        })
        .collect();
    fs::write(&install, text).map_err(|e| io_error(&install, e))?;
    // a tree's name is known to uv only once built: no isolation at all for `:develop`
    let mut no_isolation = String::new();
    if req.develop {
        no_isolation.push_str(" --no-build-isolation");
    }
    for name in &own_setuptools {
        write!(
            no_isolation,
            " --no-build-isolation-package {}",
            shell_quote(name)
        )
        .ok();
    }
    let script = format!(
        "{} pip install --offline --no-index --no-deps --no-progress --find-links {} \
         --target {} --python {}{no_isolation} -r {}",
        shell_quote(&uv.display().to_string()),
        shell_quote(&wheelhouse.display().to_string()),
        shell_quote(&target.display().to_string()),
        shell_quote(&req.python),
        shell_quote(&install.display().to_string()),
    );
    let mut env = uv_env(req);
    let uv_cache = ctx.scratch.join("uv-cache");
    env.insert("UV_CACHE_DIR".into(), uv_cache.display().to_string());
    sandbox_with(ctx, &[uv.to_owned()])?;
    ctx.shell("install", &script, &req.work, &env)?;
    // uv installed hard links to its cache: with it gone, each installed file has one name,
    // and moves into the store as it is (`egg_split.rs`), not copied
    crate::output::remove_tree(&uv_cache)?;
    let mut installed: Vec<Installed> = artifacts
        .iter()
        .map(|a| Installed {
            name: a.name.clone(),
            // a tree's version is known once it is built
            version: match a.kind() {
                Kind::Tree if a.version.is_empty() => installed_version(target, &a.name),
                _ => a.version.clone(),
            },
            url: a.location.clone(),
            sha256: (!a.sha256.is_empty()).then(|| a.sha256.clone()),
            path: None,
            build_only: false,
        })
        .collect();
    installed.sort_by(|a, b| a.name.cmp(&b.name));
    installed.extend(build_artifacts.iter().map(|a| Installed {
        name: a.name.clone(),
        version: a.version.clone(),
        url: a.location.clone(),
        sha256: Some(a.sha256.clone()),
        path: None,
        build_only: true,
    }));
    Ok(installed)
}

/// The request of a `:develop` part once its tree is built into a wheel (in the wheelhouse,
/// and copied into `<out>/dist/`): that wheel's name and version as the requirement, the
/// wheelhouse as a find-links directory, and no pin for that name.
fn develop_request(
    ctx: &mut Context,
    uv: &Path,
    req: &Request,
    wheelhouse: &Path,
) -> Result<Request> {
    fs::create_dir_all(wheelhouse).map_err(|e| io_error(wheelhouse, e))?;
    let tree = PathBuf::from(&req.eggs[0]);
    let wheel = super::egg_wheels::build_tree(ctx, uv, req, wheelhouse, &tree)?;
    let file = wheel
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut words = file.split('-');
    let (name, version) = (
        words.next().unwrap_or_default().to_owned(),
        words.next().unwrap_or_default().to_owned(),
    );
    let dist = ctx.out.join(super::egg::DEVELOP_DIST_DIR);
    fs::create_dir_all(&dist).map_err(|e| io_error(&dist, e))?;
    fs::copy(&wheel, dist.join(&file)).map_err(|e| io_error(&dist, e))?;
    let mut out = req.clone();
    out.pins.pins.remove(&normalise(&name));
    out.req_file = ctx.scratch.join("develop-requirements.txt");
    out.con_file = ctx.scratch.join("develop-constraints.txt");
    fs::write(&out.req_file, format!("{name}=={version}\n"))
        .map_err(|e| io_error(&out.req_file, e))?;
    fs::write(&out.con_file, out.pins.constraints()).map_err(|e| io_error(&out.con_file, e))?;
    out.links.push(wheelhouse.display().to_string());
    Ok(out)
}

/// The version of the distribution `name` installed in `target`, from its `.dist-info`.
fn installed_version(target: &Path, name: &str) -> String {
    let want = normalise(name);
    fs::read_dir(target)
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let (n, v) = file.strip_suffix(".dist-info")?.rsplit_once('-')?;
            (normalise(n) == want).then(|| v.to_owned())
        })
        .unwrap_or_default()
}

/// What a resolution is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resolve {
    /// The part's eggs and their closure, at the pins.
    Install,
    /// The sdists' build dependencies: wheels only, at the pins, else newest.
    Build,
    /// The same without the pins (when they conflict with what the sdists ask for).
    BuildUnpinned,
}

/// `uv pip compile` of `requirements` into a `pylock.toml`, outside the sandbox: online from
/// the index (`index`, else uv's default), the cache's `dists/` and `find-links`; offline from
/// `dists/` and the local `find-links` only. The file of each package, as [`choose`] chooses
/// it among what is offered (`pinned` and `wheels`: the normalised names it prefers an sdist
/// and a wheel of). A resolution whose every package is pinned exactly is kept in the cache of
/// resolutions and taken from there next time, without running uv (`egg_resolutions.rs`).
fn compile(
    ctx: &mut Context,
    uv: &Path,
    req: &Request,
    requirements: &Path,
    what: Resolve,
    (pinned, wheels): (&BTreeSet<String>, &BTreeSet<String>),
) -> Result<Vec<Artifact>> {
    let dir = ctx.scratch.join(match what {
        Resolve::Install => "resolve",
        Resolve::Build | Resolve::BuildUnpinned => "resolve-build",
    });
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let lock = dir.join("pylock.toml");
    let mut script = format!(
        "{} pip compile --quiet --system-certs --no-header --format pylock.toml --python {} -o {} {}",
        shell_quote(&uv.display().to_string()),
        shell_quote(&req.python),
        shell_quote(&lock.display().to_string()),
        shell_quote(&requirements.display().to_string()),
    );
    let mut links: Vec<&String> = req.links.iter().collect();
    if ctx.fetcher.is_offline() {
        script.push_str(" --offline --no-index");
    } else {
        if let Some(index) = &req.index {
            write!(script, " --index-url {}", shell_quote(index)).ok();
        }
        links.extend(&req.remote_links);
    }
    for link in links {
        write!(script, " --find-links {}", shell_quote(link)).ok();
    }
    if what != Resolve::BuildUnpinned {
        write!(
            script,
            " -c {}",
            shell_quote(&req.con_file.display().to_string())
        )
        .ok();
    }
    match what {
        Resolve::Install => {
            for name in &req.pins.wheels {
                write!(script, " --only-binary {}", shell_quote(name)).ok();
            }
            if req.custom {
                let egg = project_name(&req.eggs[0]);
                write!(
                    script,
                    " --no-binary {egg} --no-build-isolation-package {egg}",
                    egg = shell_quote(egg)
                )
                .ok();
            }
            if req.develop {
                script.push_str(" --no-build-isolation");
            }
        }
        Resolve::Build | Resolve::BuildUnpinned => script.push_str(" --only-binary :all:"),
    }
    let mut env = uv_env(req);
    // the resolver's cache (index pages, metadata) lasts across builds, outside the sandbox
    env.insert(
        "UV_CACHE_DIR".into(),
        ctx.fetcher.cache_dir().join("uv").display().to_string(),
    );
    let step = match what {
        Resolve::Install => "resolve",
        Resolve::Build | Resolve::BuildUnpinned => "resolve build dependencies",
    };
    // a `:develop` tree's wheel is in the scratch directory; unpinned build dependencies are
    // the newest
    let cacheable = !req.develop && what != Resolve::BuildUnpinned;
    let cache = ctx.fetcher.cache_dir().to_owned();
    let read = |p: &Path| fs::read_to_string(p).map_err(|e| io_error(p, e));
    let key = super::egg_resolutions::key(
        &[
            &script,
            &read(requirements)?,
            &read(&req.con_file)?,
            &super::egg_wheels::env_lines(&env),
            ctx.option("python-version").unwrap_or(""),
        ],
        &ctx.scratch,
        &cache,
    );
    if cacheable {
        if let Some(artifacts) = super::egg_resolutions::lookup(&cache, &key) {
            ctx.note(&format!("{step}: from the cache of resolutions (`{key}`)"))?;
            return Ok(artifacts);
        }
    }
    outside(ctx, step, &script, &req.work, &env)?;
    let text = fs::read_to_string(&lock).map_err(|e| io_error(&lock, e))?;
    let offers = super::egg_artifacts::from_pylock(&text)
        .map_err(|m| recipe_error(ctx, format!("`{}`: {m}", lock.display())))?;
    let artifacts = choose(offers, pinned, wheels).map_err(|m| recipe_error(ctx, m))?;
    if cacheable && super::egg_resolutions::fully_pinned(&artifacts, &req.pins) {
        super::egg_resolutions::keep(&cache, &key, &artifacts).map_err(|e| io_error(&cache, e))?;
    }
    Ok(artifacts)
}

/// The environment of uv's commands: no user configuration, no Python downloaded.
pub(super) fn uv_env(req: &Request) -> BTreeMap<String, String> {
    let mut env = req.env.clone();
    for (k, v) in [
        ("UV_NO_CONFIG", "1"),
        ("UV_PYTHON_DOWNLOADS", "never"),
        ("UV_NO_PROGRESS", "1"),
    ] {
        env.insert(k.into(), v.into());
    }
    env
}

/// A locked artifact list (one [`Artifact`] a line).
fn locked(ctx: &Context, option: &str, text: &str) -> Result<Vec<Artifact>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Artifact::parse(l).map_err(|m| ctx.bad_option(option, m)))
        .collect()
}

/// Fetches `artifacts` into the wheelhouse, logging what came from the network.
fn fetch(ctx: &mut Context, artifacts: &[Artifact], wheelhouse: &Path, dists: &Path) -> Result<()> {
    let fetched = super::egg_artifacts::fetch_all(ctx.fetcher, artifacts, wheelhouse, dists)
        .map_err(|m| recipe_error(ctx, m))?;
    for file in fetched {
        ctx.note(&format!("fetched `{file}`"))?;
    }
    Ok(())
}

fn recipe_error(ctx: &Context, message: String) -> StoreError {
    StoreError::Recipe {
        part: ctx.part(),
        message,
    }
}
