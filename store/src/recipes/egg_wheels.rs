//! The cache of wheels built from sdists (`<download cache>/built-wheels/<key>/<wheel>`): an
//! sdist that an egg build installs in an isolated build environment is built into a wheel
//! once, and every later build (of any part, in any root sharing the cache) that would build
//! it the same way installs that wheel instead.
//!
//! The key ([`key`]) is the SHA-256 of everything that makes the wheel: the sdist's SHA-256,
//! the interpreter (its path, a store path for a Python the profile builds, and the version the
//! derivation records for a host one), the build's environment (without the scratch
//! directories it names), the build dependencies (name, version and SHA-256 of each, the exact
//! set in the build's wheelhouse) and the version of uv. Misses are built in the build's
//! sandbox, in parallel (`uv build --wheel`, one per sdist, as many at once as there are CPUs),
//! each from the wheelhouse only and constrained to the recorded build dependencies. A built
//! wheel enters the cache through a temporary directory renamed to its key, so a reader sees a
//! complete entry or none; two builds making the same wheel at once both build it, the first
//! rename wins and the other's copy is dropped. Wheels are copied (not linked) out of the cache
//! into a build, so nothing a build does to its scratch directory reaches the cache.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::cmmi::shell_quote;
use super::egg::{sandbox_with, Request};
use super::egg_artifacts::Artifact;
use super::Context;
use crate::checksum::{Algorithm, Checksum};
use crate::error::{io_error, Result, StoreError};

/// The directory of the download cache holding built wheels.
pub const BUILT_WHEELS_DIR: &str = "built-wheels";

/// Environment variables that name the build's own scratch directory or output: not part of
/// what makes a wheel.
const PER_BUILD_VARIABLES: [&str; 3] = ["HOME", "TMPDIR", "out"];

/// The key of the wheel built from `sdist` with `build` as its build dependencies.
pub fn key(
    sdist: &Artifact,
    python: &str,
    python_version: &str,
    env: &BTreeMap<String, String>,
    build: &[Artifact],
) -> String {
    let mut text = format!(
        "slapstore built wheel 1\nuv {}\nsdist {}\npython {python} {python_version}\n",
        super::egg_uv::UV_VERSION,
        sdist.sha256
    );
    text.push_str(&env_lines(env));
    let mut deps: Vec<String> = build
        .iter()
        .map(|a| format!("build {} {} {}", a.name, a.version, a.sha256))
        .collect();
    deps.sort();
    for dep in deps {
        writeln!(text, "{dep}").ok();
    }
    Checksum::of_bytes(Algorithm::Sha256, text.as_bytes()).hex()
}

/// The build's environment as `env NAME=VALUE` lines, without the variables naming its own
/// scratch directory or output: what of it a cache key covers.
pub(super) fn env_lines(env: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (k, v) in env {
        if !PER_BUILD_VARIABLES.contains(&k.as_str()) {
            writeln!(text, "env {k}={v}").ok();
        }
    }
    text
}

/// The wheel cached under `key` (an entry holds exactly one), if any.
fn lookup(cache: &Path, key: &str) -> Option<PathBuf> {
    only_wheel(&cache.join(key)).ok()
}

/// The one `.whl` file in `dir`.
fn only_wheel(dir: &Path) -> std::io::Result<PathBuf> {
    let mut wheels = fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"));
    match (wheels.next(), wheels.next()) {
        (Some(w), None) => Ok(w),
        _ => Err(std::io::Error::other(format!(
            "`{}` does not hold exactly one wheel",
            dir.display()
        ))),
    }
}

/// Puts `wheel` into the cache under `key` (a temporary directory, synced, renamed; when
/// another build got there first, its entry); the cached file.
fn insert(cache: &Path, key: &str, wheel: &Path) -> std::io::Result<PathBuf> {
    fs::create_dir_all(cache)?;
    let tmp = tempfile::Builder::new().prefix(".tmp-").tempdir_in(cache)?;
    let name = wheel
        .file_name()
        .ok_or_else(|| std::io::Error::other("a wheel without a file name"))?;
    let file = tmp.path().join(name);
    fs::copy(wheel, &file)?;
    fs::File::open(&file)?.sync_all()?;
    let entry = cache.join(key);
    match fs::rename(tmp.path(), &entry) {
        Ok(()) => {
            // renamed away: nothing left for the guard to delete
            let _ = tmp.keep();
        }
        // another build's entry is there (a non-empty directory): keep theirs
        Err(_) if entry.is_dir() => {}
        Err(e) => return Err(e),
    }
    only_wheel(&entry)
}

/// Makes the wheelhouse offer `wheel` instead of `sdist`: the wheel copied in, the sdist taken
/// out (so that the install builds nothing).
fn use_wheel(wheelhouse: &Path, sdist: &Artifact, wheel: &Path) -> std::io::Result<()> {
    let name = wheel
        .file_name()
        .ok_or_else(|| std::io::Error::other("a wheel without a file name"))?;
    let dest = wheelhouse.join(name);
    if !dest.exists() {
        fs::copy(wheel, &dest)?;
    }
    match fs::remove_file(wheelhouse.join(&sdist.file)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Provides a wheel for each of `sdists` in the wheelhouse, from the cache or built (in the
/// sandbox, in parallel) and then cached; `build` is the wheelhouse's build dependencies.
pub(super) fn provide(
    ctx: &mut Context,
    uv: &Path,
    req: &Request,
    wheelhouse: &Path,
    sdists: &[&Artifact],
    build: &[Artifact],
) -> Result<()> {
    let cache = ctx.fetcher.cache_dir().join(BUILT_WHEELS_DIR);
    let python_version = ctx.option("python-version").unwrap_or("").trim().to_owned();
    let mut missing: Vec<(&Artifact, String)> = Vec::new();
    for sdist in sdists {
        let key = key(sdist, &req.python, &python_version, &req.env, build);
        match lookup(&cache, &key) {
            Some(wheel) => {
                use_wheel(wheelhouse, sdist, &wheel).map_err(|e| io_error(wheelhouse, e))?;
                ctx.note(&format!(
                    "`{}`: built wheel from the cache (`{}`)",
                    sdist.file,
                    wheel.display()
                ))?;
            }
            None => missing.push((sdist, key)),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let built = ctx.scratch.join("built");
    let jobs: Vec<Job> = missing
        .iter()
        .map(|(sdist, _)| Job {
            source: wheelhouse.join(&sdist.file),
            what: sdist.file.clone(),
            isolated: true,
        })
        .collect();
    build_wheels(ctx, uv, req, wheelhouse, &built, &jobs, build)?;
    for (i, (sdist, key)) in missing.iter().enumerate() {
        let dir = built.join(i.to_string());
        let wheel = only_wheel(&dir).map_err(|e| StoreError::Recipe {
            part: ctx.part(),
            message: format!("building `{}` made no wheel: {e}", sdist.file),
        })?;
        let cached = insert(&cache, key, &wheel).map_err(|e| io_error(&cache, e))?;
        use_wheel(wheelhouse, sdist, &cached).map_err(|e| io_error(wheelhouse, e))?;
        ctx.note(&format!(
            "`{}`: built `{}`, kept in the cache",
            sdist.file,
            cached.file_name().unwrap_or_default().to_string_lossy()
        ))?;
    }
    Ok(())
}

/// Builds a wheel of a `:develop` tree (a copy in the scratch directory) with the
/// interpreter's own setuptools (no isolation, as buildout builds it), in the sandbox; the
/// wheel.
pub(super) fn build_tree(
    ctx: &mut Context,
    uv: &Path,
    req: &Request,
    wheelhouse: &Path,
    tree: &Path,
) -> Result<PathBuf> {
    let built = ctx.scratch.join("develop-built");
    let job = Job {
        source: tree.to_owned(),
        what: tree.display().to_string(),
        isolated: false,
    };
    build_wheels(ctx, uv, req, wheelhouse, &built, &[job], &[])?;
    let wheel = only_wheel(&built.join("0")).map_err(|e| StoreError::Recipe {
        part: ctx.part(),
        message: format!("building the `setup` tree made no wheel: {e}"),
    })?;
    let dest = wheelhouse.join(wheel.file_name().unwrap_or_default());
    fs::copy(&wheel, &dest).map_err(|e| io_error(&dest, e))?;
    Ok(dest)
}

/// One wheel to build: from an sdist or a tree, isolated (its build dependencies from the
/// wheelhouse) or with the interpreter's own packages.
struct Job {
    source: PathBuf,
    /// What the log calls it.
    what: String,
    isolated: bool,
}

/// Builds a wheel of each job into `built/<i>/`, in the sandbox, offline, from the
/// wheelhouse, as many at once as there are CPUs: one script per job (every value quoted),
/// run by `xargs -P`; each build's output goes to the build log once it is done.
fn build_wheels(
    ctx: &mut Context,
    uv: &Path,
    req: &Request,
    wheelhouse: &Path,
    built: &Path,
    jobs: &[Job],
    build: &[Artifact],
) -> Result<()> {
    fs::create_dir_all(built).map_err(|e| io_error(built, e))?;
    // exactly the recorded build dependencies, whatever else the wheelhouse offers
    let constraints = built.join("build-constraints.txt");
    let text: String = build
        .iter()
        .map(|a| format!("{}=={}\n", a.name, a.version))
        .collect();
    fs::write(&constraints, text).map_err(|e| io_error(&constraints, e))?;
    let q = |p: &Path| shell_quote(&p.display().to_string());
    let mut scripts = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let out = built.join(i.to_string());
        let log = built.join(format!("{i}.log"));
        let command = format!(
            "{} build --wheel --offline --no-index --no-progress --no-create-gitignore \
             --find-links {} --build-constraints {} --python {} --out-dir {}{} {}",
            q(uv),
            q(wheelhouse),
            q(&constraints),
            shell_quote(&req.python),
            q(&out),
            if job.isolated {
                ""
            } else {
                " --no-build-isolation"
            },
            q(&job.source),
        );
        let what = shell_quote(&format!("building a wheel of `{}`", job.what));
        let script = format!(
            "if {command} >{log} 2>&1; then s=0; else s=$?; fi\n\
             echo {what}; cat {log}\n\
             [ $s = 0 ] || echo 'slapstore: that build failed'\n\
             exit $s\n",
            log = q(&log),
        );
        let file = built.join(format!("build-{i}.sh"));
        fs::write(&file, script).map_err(|e| io_error(&file, e))?;
        scripts.push(format!("build-{i}.sh"));
    }
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let script = format!(
        "cd {} && printf '%s\\n' {} | xargs -P {jobs} -n 1 sh",
        q(built),
        scripts.join(" ")
    );
    let mut env = super::egg_uv::uv_env(req);
    env.insert(
        "UV_CACHE_DIR".into(),
        ctx.scratch.join("uv-cache").display().to_string(),
    );
    sandbox_with(ctx, &[uv.to_owned()])?;
    ctx.shell("build wheels", &script, &req.work, &env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(name: &str, sha: char) -> Artifact {
        Artifact {
            name: name.into(),
            version: "1.0".into(),
            file: format!("{name}-1.0.tar.gz"),
            sha256: sha.to_string().repeat(64),
            location: format!("/c/{name}-1.0.tar.gz"),
        }
    }

    #[test]
    fn the_key_covers_what_makes_the_wheel_and_not_the_scratch_directories() {
        let sdist = artifact("p", 'a');
        let build = [artifact("setuptools", 'b'), artifact("wheel", 'c')];
        let mut env = BTreeMap::from([
            ("PATH".to_owned(), "/usr/bin".to_owned()),
            ("HOME".to_owned(), "/scratch/1/home".to_owned()),
        ]);
        let k = key(&sdist, "/usr/bin/python3.11", "3.11.2", &env, &build);
        // another build's scratch directory: the same key
        env.insert("HOME".into(), "/scratch/2/home".into());
        env.insert("out".into(), "/store/x-eggs".into());
        assert_eq!(
            k,
            key(&sdist, "/usr/bin/python3.11", "3.11.2", &env, &build)
        );
        // build dependencies in another order: the same key
        let reversed = [build[1].clone(), build[0].clone()];
        assert_eq!(
            k,
            key(&sdist, "/usr/bin/python3.11", "3.11.2", &env, &reversed)
        );
        // each input changes it
        let other = [artifact("setuptools", 'd'), artifact("wheel", 'c')];
        assert_ne!(
            k,
            key(&sdist, "/usr/bin/python3.11", "3.11.2", &env, &other)
        );
        assert_ne!(
            k,
            key(
                &artifact("p", 'e'),
                "/usr/bin/python3.11",
                "3.11.2",
                &env,
                &build
            )
        );
        assert_ne!(k, key(&sdist, "/s/py/bin/python3", "3.11.2", &env, &build));
        assert_ne!(
            k,
            key(&sdist, "/usr/bin/python3.11", "3.11.3", &env, &build)
        );
        env.insert("CFLAGS".into(), "-O0".into());
        assert_ne!(
            k,
            key(&sdist, "/usr/bin/python3.11", "3.11.2", &env, &build)
        );
    }

    #[test]
    fn an_entry_is_renamed_into_place_and_a_second_insert_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("built-wheels");
        let wheel = dir.path().join("p-1.0-py3-none-any.whl");
        fs::write(&wheel, "first").unwrap();
        assert!(lookup(&cache, "k").is_none());
        let cached = insert(&cache, "k", &wheel).unwrap();
        assert_eq!(cached, cache.join("k/p-1.0-py3-none-any.whl"));
        fs::write(&wheel, "second").unwrap();
        let again = insert(&cache, "k", &wheel).unwrap();
        assert_eq!(fs::read_to_string(again).unwrap(), "first");
        assert_eq!(lookup(&cache, "k"), Some(cached));
        // no temporary directory is left behind
        let names: Vec<_> = fs::read_dir(&cache).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }
}
