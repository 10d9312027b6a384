//! The builders of the store's recipes (design §5), run on a [`Derivation`] inside a build
//! [`Context`]: a scratch directory, the output path, a log, a cleared environment, a fetcher.
//!
//! Every command runs under `/bin/sh -c` with the cleared environment of [`base_environment`]
//! plus what the derivation adds, its output appended to the log, in the build's
//! [`Sandbox`] when it has one. Option values may use
//! Python's `%(option)s` formatting, as SlapOS recipes allow ([`interpolate`]).

mod cmmi;
mod download;
mod egg;
mod egg_artifacts;
mod egg_resolutions;
mod egg_split;
mod egg_uv;
mod egg_wheels;
mod generation;
mod gitclone;
mod jinja2;
mod jinja2py;
mod pybuiltins;
mod pyhost;
mod release;
mod script;
mod shell;
mod template;

pub use egg::{is_distribution, keep_distribution, DISTS_DIR, TESTRUNNER};
pub use egg_artifacts::Artifact as EggArtifact;
pub use egg_uv::UV_VERSION;
pub use gitclone::{branch_commit, mirror_path as git_mirror_path};
pub use jinja2::{
    engine as jinja2_engine, render as render_jinja2, Engine as Jinja2Engine, Job as Jinja2Job,
};
pub use jinja2py::version as jinja2_version;
pub use pybuiltins::{
    dumps_json as py_json_dumps, repr_json as pyrepr_json, MODULES as JINJA2_MODULES,
    MODULE_KEY as JINJA2_MODULE_KEY,
};
pub use pyhost::run_alone as run_python_alone;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::checksum::Checksum;
use crate::derivation::{Derivation, Recipe, Source};
use crate::error::{io_error, Result, StoreError};
use crate::fetch::Fetcher;
use crate::sandbox::Sandbox;

/// The file, in a build's scratch directory (`var/tmp/<path>`, root's: not the `build/` a build
/// user may write), that names the process group of the command running: a build that finds it
/// left by a killed one kills that group before starting.
pub const PROCESS_GROUP_FILE: &str = "process-group";

/// Kills the process group a killed build left running in `scratch`, if any.
pub fn kill_leftover(scratch: &Path) {
    if let Ok(text) = fs::read_to_string(scratch.join(PROCESS_GROUP_FILE)) {
        if let Ok(pgid) = text.trim().parse::<i32>() {
            if pgid > 1 {
                // SAFETY: kill(2) with a negative pid signals that process group only.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
    }
}

/// Where and how one derivation is built.
pub struct Context<'a> {
    pub drv: &'a Derivation,
    /// Where the recipe writes the output: a scratch directory, or its store path when built
    /// in place (without the sandbox).
    pub out: PathBuf,
    /// The output's path as the build's commands see it (`$out`, the default prefix): its store
    /// path (`<root>/store/<hash>-<name>`) for the recipes that run commands.
    pub store_out: PathBuf,
    /// The sandbox commands run in; `None` when builds are not sandboxed.
    pub sandbox: Option<Sandbox>,
    /// The scratch directory, empty at the start.
    pub scratch: PathBuf,
    pub log: &'a mut fs::File,
    pub log_path: PathBuf,
    pub fetcher: &'a Fetcher,
    /// The store, for builders that add content-addressed paths of their own (eggs).
    pub store: &'a crate::Store,
    /// Paths the builder added to the store (rooted by the adding): candidates of the output's
    /// reference scan besides the derivation's closure.
    pub added: Vec<crate::StorePath>,
    /// The registrations of the paths the builder staged (`add::stage`): not flushed nor
    /// registered yet, they are with the output (one `syncfs`, one transaction).
    pub staged: Vec<crate::db::Registration>,
    /// The build's Python host, once a step needed Python (`pyhost.rs`).
    pub(crate) python: Option<pyhost::Host>,
}

/// Builds `ctx.drv` into `ctx.out`.
pub fn run(ctx: &mut Context) -> Result<()> {
    match ctx.drv.recipe() {
        Recipe::Download => download::file(ctx),
        Recipe::DownloadUnpacked => download::unpacked(ctx),
        Recipe::Cmmi => cmmi::build(ctx),
        Recipe::Shell => shell::build(ctx),
        Recipe::Template => template::template(ctx),
        Recipe::Jinja2 => template::jinja2(ctx),
        Recipe::Egg => egg::build(ctx),
        Recipe::Release => release::build(ctx),
        Recipe::Generation => generation::build(ctx),
        Recipe::Gitclone => gitclone::build(ctx),
        Recipe::Script => script::build(ctx),
        Recipe::Unbuildable => Err(StoreError::Recipe {
            part: ctx.drv.name().to_owned(),
            message: ctx.drv.refusal().unwrap_or_default().to_owned(),
        }),
    }
}

/// The `PATH` of every build.
pub const BUILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The environment every build starts from (design §5): nothing of the caller's.
pub fn base_environment(ctx: &Context) -> BTreeMap<String, String> {
    let home = ctx.scratch.join("home");
    let tmp = ctx.scratch.join("tmp");
    [
        ("PATH", BUILD_PATH.to_owned()),
        ("HOME", home.display().to_string()),
        ("TMPDIR", tmp.display().to_string()),
        ("LC_ALL", "C".to_owned()),
        ("TZ", "UTC".to_owned()),
        ("SOURCE_DATE_EPOCH", "1".to_owned()),
        ("out", ctx.store_out.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Context<'_> {
    fn part(&self) -> String {
        self.drv.name().to_owned()
    }

    /// An option's value, `None` when absent or blank.
    fn option(&self, key: &str) -> Option<&str> {
        self.drv.option(key).filter(|v| !v.trim().is_empty())
    }

    fn bad_option(&self, option: &str, message: impl Into<String>) -> StoreError {
        StoreError::BadOption {
            part: self.part(),
            option: option.to_owned(),
            message: message.into(),
        }
    }

    /// Writes a line to the build log.
    fn note(&mut self, line: &str) -> Result<()> {
        writeln!(self.log, "slapstore: {line}").map_err(|e| io_error(&self.log_path, e))
    }

    /// Creates the scratch subdirectories the environment names.
    fn prepare_scratch(&self) -> Result<()> {
        for d in ["home", "tmp"] {
            let p = self.scratch.join(d);
            fs::create_dir_all(&p).map_err(|e| io_error(&p, e))?;
        }
        Ok(())
    }

    /// Runs `script` with `/bin/sh -c` in `dir`, logging; a non-zero exit is a build failure.
    fn shell(
        &mut self,
        what: &str,
        script: &str,
        dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.note(&format!("{what}: {script}"))?;
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(script).stdin(Stdio::null());
        let mut child = self.spawn(command, dir, env, false)?;
        // its process group is its pid (`setpgid(0, 0)` ran before exec, which `spawn` awaited)
        let pgid = child.id() as i32;
        let group = crate::interrupt::Group::register(pgid);
        let pgid_file = self
            .scratch
            .parent()
            .unwrap_or(&self.scratch)
            .join(PROCESS_GROUP_FILE);
        let status = fs::write(&pgid_file, pgid.to_string())
            .map_err(|e| io_error(&pgid_file, e))
            .and_then(|()| child.wait().map_err(|e| io_error(Path::new("/bin/sh"), e)));
        let status = match status {
            Ok(status) => status,
            Err(e) => {
                // SAFETY: kill(2) with a negative pid signals that process group only.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                let _ = child.wait();
                return Err(e);
            }
        };
        drop(group);
        if crate::interrupt::interrupted() {
            return Err(StoreError::Interrupted { part: self.part() });
        }
        if !status.success() {
            let status = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_owned(),
            };
            return Err(StoreError::BuildFailed {
                part: self.part(),
                what: format!("{what} `{}`", brief(script)),
                status,
                log: self.log_path.clone(),
            });
        }
        Ok(())
    }

    /// Starts `command` in `dir` with exactly `env`, its standard error appended to the log,
    /// and its standard output too unless `piped` (then its standard input and output are
    /// pipes), in its own process group (killed with the thread that started it), in the
    /// sandbox when the build has one.
    fn spawn(
        &mut self,
        mut command: Command,
        dir: &Path,
        env: &BTreeMap<String, String>,
        piped: bool,
    ) -> Result<std::process::Child> {
        let log = self
            .log
            .try_clone()
            .map_err(|e| io_error(&self.log_path, e))?;
        let log2 = self
            .log
            .try_clone()
            .map_err(|e| io_error(&self.log_path, e))?;
        command
            .current_dir(dir)
            .env_clear()
            .envs(env)
            .stderr(Stdio::from(log2));
        if piped {
            command.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            command.stdout(Stdio::from(log));
        }
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // its own process group, which a later build can kill whole if this one dies;
                // and killed with the thread that started it
                libc::setpgid(0, 0);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if let Some(sandbox) = &self.sandbox {
            if let Some((uid, gid)) = sandbox.user() {
                // what slapstore put there since the last command (sources, hooks) becomes the
                // build user's to change
                crate::users::give_tree(&self.scratch, uid, gid)?;
                crate::users::give_tree(&self.out, uid, gid)?;
            }
            sandbox.apply(&mut command, dir)?;
        }
        let program = PathBuf::from(command.get_program());
        command.spawn().map_err(|e| match &self.sandbox {
            Some(_) => StoreError::Sandbox(format!(
                "part `{}`: {}: {e}",
                self.part(),
                crate::sandbox::failed_step(&self.log_path)
            )),
            None => io_error(&program, e),
        })
    }

    /// Fetches `source` into `dest`.
    fn fetch(&mut self, source: &Source, dest: &Path) -> Result<()> {
        let checksum = match &source.checksum {
            Some(c) => Some(
                c.parse::<Checksum>()
                    .map_err(|e| self.bad_option(&source.role, e.to_string()))?,
            ),
            None => None,
        };
        let urls: Vec<&str> = source.urls.iter().map(String::as_str).collect();
        self.note(&format!("fetching {}", source.urls.join(" or ")))?;
        let outcome = self
            .fetcher
            .fetch(&urls, checksum.as_ref(), dest)
            .map_err(|source| StoreError::Fetch {
                part: self.part(),
                source,
            })?;
        if outcome.from_cache {
            self.note("found in the download cache")?;
        }
        Ok(())
    }

    /// The source of role `role`.
    fn source(&self, role: &str) -> Option<&Source> {
        self.drv.build.sources.iter().find(|s| s.role == role)
    }
}

/// A command as an error names it: its first line, cut at 80 characters, `…` marking what is
/// left out (the whole command is at the top of the build log).
fn brief(script: &str) -> String {
    let script = script.trim();
    let first = script.lines().next().unwrap_or_default();
    let mut cut: String = first.chars().take(80).collect();
    if cut.len() < script.len() {
        cut.push_str(" …");
    }
    cut
}

/// Python's `text % options`: `%(key)s` becomes the option's value, `%%` a `%`.
pub fn interpolate(
    text: &str,
    options: &BTreeMap<String, String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after) = after.strip_prefix('%') {
            out.push('%');
            rest = after;
        } else if let Some(after) = after.strip_prefix('(') {
            let end = after
                .find(")s")
                .ok_or_else(|| format!("unterminated `%(` in `{text}`"))?;
            let key = &after[..end];
            let value = options
                .get(key)
                .ok_or_else(|| format!("`%({key})s` names no option"))?;
            out.push_str(value);
            rest = &after[end + 2..];
        } else {
            // Python would fail on other conversions; SlapOS profiles only use the two above
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The environment of a recipe's commands: the base, then the `environment` option's
/// `KEY=VALUE` lines, whose values may use `%(KEY)s` for the base's values.
fn environment(ctx: &Context) -> Result<BTreeMap<String, String>> {
    let mut env = base_environment(ctx);
    if let Some(lines) = ctx.option("environment") {
        let base = env.clone();
        for line in lines.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| {
                ctx.bad_option("environment", format!("line `{line}` has no `=`"))
            })?;
            let v =
                interpolate(v.trim_start(), &base).map_err(|m| ctx.bad_option("environment", m))?;
            env.insert(k.trim_end().to_owned(), v);
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_commands() {
        assert_eq!(brief("make -j4\n"), "make -j4");
        assert_eq!(brief("a\nb"), "a …");
        assert_eq!(brief(&"x".repeat(90)), format!("{} …", "x".repeat(80)));
    }

    #[test]
    fn python_interpolation() {
        let o: BTreeMap<String, String> = [("location".to_owned(), "/s/x".to_owned())].into();
        assert_eq!(
            interpolate("a %(location)s/b 100%%", &o).as_deref(),
            Ok("a /s/x/b 100%")
        );
        assert!(interpolate("%(nope)s", &o).is_err());
        assert!(interpolate("%(location", &o).is_err());
    }
}
