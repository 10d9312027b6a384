//! The build-time Python host: one `python3` per build at most, started on the first step that
//! needs Python (a cmmi hook, `slapos.recipe.build`'s `install` code) and serving every later
//! one, inside the build's sandbox like any command, in its own process group.
//!
//! `pyhost.py` is the Python side: it reads one JSON request a line on its standard input and
//! answers each with one JSON line on its standard output (its own output and its children's go
//! to the build log). A failed step's reply carries the Python traceback, which becomes the
//! build's error. A build that runs no Python never starts one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command};

use super::{Context, PROCESS_GROUP_FILE};
use crate::error::{io_error, Result, StoreError};

/// The Python program of the host.
const HOST: &str = include_str!("pyhost.py");

/// A running host: the child, its request and reply pipes, its process group.
pub struct Host {
    child: Child,
    requests: Option<ChildStdin>,
    replies: BufReader<ChildStdout>,
    _group: crate::interrupt::Group,
}

impl Drop for Host {
    fn drop(&mut self) {
        // end of requests: the host exits (and is reaped, so that its resources count as the
        // build's); if it has not within a few seconds (a child of the code holding on), its
        // process group goes
        self.requests.take();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) {
            if std::time::Instant::now() > deadline {
                // SAFETY: kill(2) with a negative pid signals that process group only.
                unsafe {
                    libc::kill(-(self.child.id() as i32), libc::SIGKILL);
                }
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = self.child.wait();
    }
}

impl Context<'_> {
    /// Runs one step in the build's Python host (started now, with environment `env` and in
    /// `dir`, if this is the first): `request` is its JSON request, to which the working
    /// directory `dir` is added; `what` names the step in the log and in errors.
    pub(super) fn python(
        &mut self,
        what: &str,
        mut request: serde_json::Value,
        dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.note(&format!("{what}: in the Python host"))?;
        if self.python.is_none() {
            let host = self.start_python(dir, env)?;
            self.python = Some(host);
        }
        request["cwd"] = dir.display().to_string().into();
        let line = format!("{request}\n");
        let part = self.part();
        let host = self.python.as_mut().ok_or_else(|| StoreError::Recipe {
            part: part.clone(),
            message: "the Python host is not running".into(),
        })?;
        let mut reply = String::new();
        let exchanged = match host.requests.as_mut() {
            Some(pipe) => pipe
                .write_all(line.as_bytes())
                .and_then(|()| pipe.flush())
                .and_then(|()| host.replies.read_line(&mut reply)),
            None => Ok(0),
        };
        if crate::interrupt::interrupted() {
            return Err(StoreError::Interrupted { part });
        }
        let reply: serde_json::Value = match exchanged {
            Ok(n) if n > 0 => serde_json::from_str(&reply).map_err(|e| StoreError::Recipe {
                part: part.clone(),
                message: format!("the Python host answered `{}`: {e}", reply.trim()),
            })?,
            _ => {
                // it died (killed, or the interpreter failed before serving)
                self.python = None;
                return Err(StoreError::BuildFailed {
                    part,
                    what: format!("{what}: the Python host"),
                    status: "ended without answering".into(),
                    log: self.log_path.clone(),
                });
            }
        };
        if reply["ok"].as_bool() == Some(true) {
            return Ok(());
        }
        let traceback = reply["error"]
            .as_str()
            .unwrap_or("(no traceback)")
            .to_owned();
        writeln!(self.log, "{traceback}").map_err(|e| io_error(&self.log_path, e))?;
        Err(StoreError::PythonFailed {
            part,
            what: what.to_owned(),
            traceback: traceback.trim_end().to_owned(),
            log: self.log_path.clone(),
        })
    }

    fn start_python(&mut self, dir: &Path, env: &BTreeMap<String, String>) -> Result<Host> {
        self.note("starting the Python host")?;
        let program = self.scratch.join("slapstore-pyhost.py");
        std::fs::write(&program, HOST).map_err(|e| io_error(&program, e))?;
        let mut command = Command::new("python3");
        // `-u`: what the code prints reaches the log in order with its subprocesses' output
        command.arg("-u").arg(&program);
        let mut child = self.spawn(command, dir, env, true)?;
        let pgid = child.id() as i32;
        let group = crate::interrupt::Group::register(pgid);
        let pgid_file = self.scratch.join(PROCESS_GROUP_FILE);
        std::fs::write(&pgid_file, pgid.to_string()).map_err(|e| io_error(&pgid_file, e))?;
        let (Some(requests), Some(replies)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(StoreError::Recipe {
                part: self.part(),
                message: "the Python host has no pipes".into(),
            });
        };
        Ok(Host {
            child,
            requests: Some(requests),
            replies: BufReader::new(replies),
            _group: group,
        })
    }
}

/// Runs one request (`install` code) in a host of its own, outside any build: at an instance's
/// deploy, in `dir` (the partition), with slapstore's own environment, as `slapos node
/// instance` runs an instance's buildout. What the code prints is returned; a failure is the
/// Python traceback after that output.
pub fn run_alone(
    mut request: serde_json::Value,
    dir: &Path,
) -> std::result::Result<String, String> {
    use std::process::Stdio;
    request["cwd"] = dir.display().to_string().into();
    let mut child = Command::new("python3")
        .arg("-u")
        .arg("-c")
        .arg(HOST)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start python3: {e}"))?;
    if let Some(mut pipe) = child.stdin.take() {
        // the host serves this request and exits at the end of its input
        pipe.write_all(format!("{request}\n").as_bytes())
            .map_err(|e| format!("cannot talk to python3: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("python3 did not end: {e}"))?;
    let printed = String::from_utf8_lossy(&out.stderr).into_owned();
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "the Python host ended ({}) without answering{}",
            out.status,
            if printed.is_empty() {
                String::new()
            } else {
                format!(": {}", printed.trim())
            }
        )
    })?;
    if reply["ok"].as_bool() == Some(true) {
        return Ok(printed);
    }
    Err(format!(
        "{printed}{}",
        reply["error"]
            .as_str()
            .unwrap_or("(no traceback)")
            .trim_end()
    ))
}
