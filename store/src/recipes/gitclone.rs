//! `gitclone` (`slapos.recipe.build:gitclone`): a checkout of one commit of a git repository.
//!
//! The repository is kept in the download cache as a bare mirror,
//! `<root>/var/cache/git/<sha256 of the repository URL>.git` (beside the sources' cache,
//! `var/cache/sources`), made with `git clone --mirror` and
//! brought up to date with `git fetch` only when it lacks the wanted commit (or follows an
//! unpinned branch) and the build is online; offline, the mirror alone serves. The output is
//! `git clone --shared --no-checkout` of the mirror, checked out at the commit (restricted to
//! `sparse-checkout`'s patterns if any), its `.git` then removed: the output is the tree and
//! nothing else, and does not point into the cache. A `revision` that is a full hash must be
//! what `git rev-parse REV^{commit}` gives; the commit used is written to the build log.
//!
//! Every git command runs with the build's cleared environment and its arguments as argv. The
//! mirror is made and updated outside the build sandbox (it fetches); the checkout runs in it
//! (no network; as the build user when slapstore runs as root), the mirror shown read-only.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::{base_environment, Context};
use crate::error::{io_error, Result, StoreError};

pub fn build(ctx: &mut Context) -> Result<()> {
    ctx.prepare_scratch()?;
    let url = ctx
        .option("repository")
        .ok_or_else(|| ctx.bad_option("repository", "a `gitclone` part needs a `repository`"))?
        .trim()
        .to_owned();
    let revision = ctx.option("revision").map(|r| r.trim().to_owned());
    let branch = ctx.option("branch").map(|b| b.trim().to_owned());
    let git = ctx
        .option("git-executable")
        .map(|g| g.trim().to_owned())
        .unwrap_or_else(|| "git".to_owned());
    let mirror = mirror_path(ctx.fetcher.cache_dir(), &url);
    // what to check out: the pinned revision, else the branch's head, else the default branch
    let wanted = match (&revision, &branch) {
        (Some(r), _) => r.clone(),
        (None, Some(b)) => format!("refs/heads/{b}"),
        (None, None) => "HEAD".to_owned(),
    };
    let offline = ctx.fetcher.is_offline();
    if !mirror.exists() {
        if offline {
            return Err(ctx.bad_option(
                "repository",
                format!(
                    "`{url}` has no mirror in the download cache ({}) and the build is offline",
                    mirror.display()
                ),
            ));
        }
        clone_mirror(ctx, &git, &url, &mirror)?;
    } else if revision.is_none() || resolve(ctx, &git, &mirror, &wanted)?.is_none() {
        if offline {
            ctx.note(&format!(
                "offline: using the mirror {} as it is",
                mirror.display()
            ))?;
        } else {
            let dir = mirror.display().to_string();
            run_git(
                ctx,
                &git,
                &["--git-dir", &dir, "fetch", "--prune", "origin"],
            )?;
        }
    }
    let commit = resolve(ctx, &git, &mirror, &wanted)?.ok_or_else(|| {
        let option = if revision.is_some() {
            "revision"
        } else {
            "branch"
        };
        ctx.bad_option(
            option,
            format!(
                "`{wanted}` is not a commit of `{url}`{}",
                if offline {
                    " (as its mirror in the download cache has it; the build is offline)"
                } else {
                    ""
                }
            ),
        )
    })?;
    if let Some(r) = &revision {
        if is_full_hash(r) && !r.eq_ignore_ascii_case(&commit) {
            return Err(ctx.bad_option(
                "revision",
                format!("`{r}` resolves to commit {commit} in `{url}`, not to itself"),
            ));
        }
    }
    ctx.note(&format!("gitclone: {url} at commit {commit}"))?;
    // the checkout runs in the build's sandbox (as its build user, when it has one), which
    // shows the mirror read-only
    super::egg::sandbox_with(ctx, std::slice::from_ref(&mirror))?;
    checkout(ctx, &git, &mirror, &commit)
}

/// `<cache>/../git/<sha256 hex of the URL>.git`, `cache_dir` being the sources' cache.
pub fn mirror_path(cache_dir: &Path, url: &str) -> PathBuf {
    let hash = hex::encode(Sha256::digest(url.as_bytes()));
    let caches = cache_dir.parent().unwrap_or(cache_dir);
    caches.join("git").join(format!("{hash}.git"))
}

/// For `slapstore lock`: the commit that `branch` (`None`: the default branch) of the
/// repository `url` is at, as its mirror in the download cache (`cache_dir` being the sources'
/// cache) has it. Online, the mirror is made (`git clone --mirror`) or brought up to date
/// (`git fetch`) first; offline, an existing mirror alone answers. Git runs with a cleared
/// environment, `home` as its `HOME`. Errors are messages naming the repository and branch.
pub fn branch_commit(
    cache_dir: &Path,
    url: &str,
    branch: Option<&str>,
    offline: bool,
    home: &Path,
) -> std::result::Result<String, String> {
    let mirror = mirror_path(cache_dir, url);
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .env_clear()
            .env("PATH", super::BUILD_PATH)
            .env("HOME", home)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `git`: {e}"))
    };
    let failed = |what: &str, out: &std::process::Output| {
        format!(
            "{what} `{url}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    };
    let dir = mirror.display().to_string();
    if !mirror.exists() {
        if offline {
            return Err(format!(
                "`{url}` has no mirror in the download cache ({dir}) and `lock` is offline"
            ));
        }
        let parent = mirror.parent().unwrap_or(&mirror);
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".clone-")
            .tempdir_in(parent)
            .map_err(|e| format!("cannot create a directory in `{}`: {e}", parent.display()))?;
        let target = tmp.path().join("mirror.git");
        let target_s = target.display().to_string();
        let out = git(&["clone", "--mirror", "--quiet", "--", url, &target_s])?;
        if !out.status.success() {
            return Err(failed("cloning", &out));
        }
        if let Err(e) = fs::rename(&target, &mirror) {
            if !mirror.exists() {
                return Err(format!("cannot rename into `{dir}`: {e}"));
            }
        }
    } else if !offline {
        let out = git(&["--git-dir", &dir, "fetch", "--prune", "--quiet", "origin"])?;
        if !out.status.success() {
            return Err(failed("fetching", &out));
        }
    }
    let spec = match branch {
        Some(b) => format!("refs/heads/{b}^{{commit}}"),
        None => "HEAD^{commit}".to_owned(),
    };
    let out = git(&[
        "--git-dir",
        &dir,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &spec,
    ])?;
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !is_full_hash(&commit) {
        return Err(match branch {
            Some(b) => format!("`{url}` has no branch `{b}`"),
            None => format!("`{url}` has no default branch"),
        });
    }
    Ok(commit.to_lowercase())
}

fn is_full_hash(r: &str) -> bool {
    (r.len() == 40 || r.len() == 64) && r.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `git clone --mirror` into a temporary directory beside the mirror, renamed into place (a
/// concurrent build that got there first wins; its mirror is as good).
fn clone_mirror(ctx: &mut Context, git: &str, url: &str, mirror: &Path) -> Result<()> {
    let dir = mirror.parent().unwrap_or(mirror);
    fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".clone-")
        .tempdir_in(dir)
        .map_err(|e| io_error(dir, e))?;
    let target = tmp.path().join("mirror.git");
    let target_s = target.display().to_string();
    run_git(
        ctx,
        git,
        &["clone", "--mirror", "--quiet", "--", url, &target_s],
    )?;
    if let Err(e) = fs::rename(&target, mirror) {
        if !mirror.exists() {
            return Err(io_error(mirror, e));
        }
    }
    Ok(())
}

/// The commit `wanted` names in the mirror, if it names one.
fn resolve(ctx: &mut Context, git: &str, mirror: &Path, wanted: &str) -> Result<Option<String>> {
    let dir = mirror.display().to_string();
    let spec = format!("{wanted}^{{commit}}");
    let out = git_output(
        ctx,
        git,
        &[
            "--git-dir",
            &dir,
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ],
    )?;
    Ok(out.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
}

/// The output: a shared clone of the mirror checked out at `commit`, without its `.git`. In the
/// sandbox git writes the output at its store path, where the sandbox shows it.
fn checkout(ctx: &mut Context, git: &str, mirror: &Path, commit: &str) -> Result<()> {
    let out = match ctx.sandbox {
        Some(_) => ctx.store_out.display().to_string(),
        None => ctx.out.display().to_string(),
    };
    let mirror_s = mirror.display().to_string();
    if ctx.sandbox.is_some() {
        // a build user reads the root's mirror: git refuses a repository another user owns
        // unless its (global) configuration says it is safe
        let config = ctx.scratch.join("home/.gitconfig");
        fs::write(&config, "[safe]\n\tdirectory = *\n").map_err(|e| io_error(&config, e))?;
    }
    run_checkout_git(
        ctx,
        git,
        &[
            "clone",
            "--shared",
            "--no-checkout",
            "--quiet",
            "--",
            &mirror_s,
            &out,
        ],
    )?;
    if let Some(patterns) = ctx.option("sparse-checkout").map(str::to_owned) {
        run_checkout_git(
            ctx,
            git,
            &["-C", &out, "config", "core.sparseCheckout", "true"],
        )?;
        let info = ctx.out.join(".git/info");
        fs::create_dir_all(&info).map_err(|e| io_error(&info, e))?;
        let file = info.join("sparse-checkout");
        let lines: Vec<&str> = patterns
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        fs::write(&file, lines.join("\n") + "\n").map_err(|e| io_error(&file, e))?;
    }
    run_checkout_git(
        ctx,
        git,
        &[
            "-C",
            &out,
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            commit,
        ],
    )?;
    let submodules = ctx.out.join(".gitmodules").exists();
    let ignore = ctx
        .option("ignore-cloning-submodules")
        .is_some_and(|v| v.trim() == "true");
    if submodules && !ignore {
        return Err(ctx.bad_option(
            "ignore-cloning-submodules",
            "the repository has submodules, which slapstore does not clone (a mirror holds one \
             repository): set `ignore-cloning-submodules = true`, or make each submodule a \
             gitclone part of its own",
        ));
    }
    let dot_git = ctx.out.join(".git");
    fs::remove_dir_all(&dot_git).map_err(|e| io_error(&dot_git, e))
}

/// Runs git, its output to the build log; a failure is a build failure.
fn run_git(ctx: &mut Context, git: &str, args: &[&str]) -> Result<()> {
    ctx.note(&format!("{git} {}", args.join(" ")))?;
    let log = ctx
        .log
        .try_clone()
        .map_err(|e| io_error(&ctx.log_path, e))?;
    let log2 = ctx
        .log
        .try_clone()
        .map_err(|e| io_error(&ctx.log_path, e))?;
    let status = command(ctx, git, args)
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .status()
        .map_err(|e| io_error(Path::new(git), e))?;
    check_interrupt(ctx)?;
    failed_unless(ctx, status, args)
}

/// Runs a git command of the checkout in the build's sandbox when it has one (as its build
/// user, if any: `Context::spawn`), else as [`run_git`] does; its output to the build log, a
/// failure a build failure.
fn run_checkout_git(ctx: &mut Context, git: &str, args: &[&str]) -> Result<()> {
    if ctx.sandbox.is_none() {
        return run_git(ctx, git, args);
    }
    ctx.note(&format!("{git} {}", args.join(" ")))?;
    let mut env = base_environment(ctx);
    env.insert("GIT_CONFIG_NOSYSTEM".into(), "1".into());
    env.insert("GIT_TERMINAL_PROMPT".into(), "0".into());
    let mut command = Command::new(git);
    command.args(args).stdin(Stdio::null());
    let dir = ctx.scratch.clone();
    let mut child = ctx.spawn(command, &dir, &env, false)?;
    let group = crate::interrupt::Group::register(child.id() as i32);
    let status = child.wait().map_err(|e| io_error(Path::new(git), e))?;
    drop(group);
    check_interrupt(ctx)?;
    failed_unless(ctx, status, args)
}

/// A build failure naming git's first argument, unless `status` is a success.
fn failed_unless(ctx: &Context, status: std::process::ExitStatus, args: &[&str]) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    Err(StoreError::BuildFailed {
        part: ctx.part(),
        what: format!("`git {}`", args.first().copied().unwrap_or_default()),
        status: match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_owned(),
        },
        log: ctx.log_path.clone(),
    })
}

/// Runs git for its standard output: `None` when it fails (its stderr to the log).
fn git_output(ctx: &mut Context, git: &str, args: &[&str]) -> Result<Option<String>> {
    let log = ctx
        .log
        .try_clone()
        .map_err(|e| io_error(&ctx.log_path, e))?;
    let out = command(ctx, git, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .output()
        .map_err(|e| io_error(Path::new(git), e))?;
    check_interrupt(ctx)?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// `git ARGS` with the build's cleared environment (no user or system git configuration, no
/// prompts), in the scratch directory.
fn command(ctx: &Context, git: &str, args: &[&str]) -> Command {
    let mut command = Command::new(git);
    command
        .args(args)
        .current_dir(&ctx.scratch)
        .env_clear()
        .envs(base_environment(ctx))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    command
}

fn check_interrupt(ctx: &Context) -> Result<()> {
    if crate::interrupt::interrupted() {
        return Err(StoreError::Interrupted { part: ctx.part() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_named_by_the_url() {
        let a = mirror_path(Path::new("/c/sources"), "https://example.org/a.git");
        let b = mirror_path(Path::new("/c/sources"), "https://example.org/b.git");
        assert_ne!(a, b);
        assert!(a.starts_with("/c/git"));
        assert_eq!(a.extension().and_then(|e| e.to_str()), Some("git"));
    }

    #[test]
    fn full_hashes() {
        assert!(is_full_hash(&"a".repeat(40)));
        assert!(!is_full_hash("abc123"));
        assert!(!is_full_hash(&"g".repeat(40)));
        assert!(!is_full_hash("v1.0"));
    }
}
