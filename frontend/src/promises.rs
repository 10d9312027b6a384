//! Promises: what `instance status` checks to tell whether an instance works, as slapgrid
//! checks them. Each executable of the partition's `etc/promise/` (a legacy promise) is run in
//! the partition, stdin closed, for at most [`TIMEOUT`] (its process group is killed then): it
//! holds when it exits 0, and its output (stdout and stderr) says why not. Each file of
//! `etc/plugin/` written by `slapos.cookbook:promise.plugin` names a slapos.toolbox plugin and
//! its configuration; the ones used most are checked natively (`check_socket_listening`,
//! `check_url_available`, `check_file_state`, `check_command_execute`), the others reported
//! `unsupported` (their code needs slapos.core's promise launcher). Promises of an instance run
//! in parallel.

use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::recipes::cookbook::promise::read_plugin;

/// How long a promise may run (slapgrid's default `promise_timeout`).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The most output of a promise that is kept.
const MAX_OUTPUT: usize = 4096;

/// Where a promise comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An executable of `etc/promise/`.
    Promise,
    /// A plugin of `etc/plugin/`.
    Plugin,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Promise => "promise",
            Kind::Plugin => "plugin",
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    Failing,
    /// A plugin slapstore cannot check.
    Unsupported,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Failing => "failing",
            State::Unsupported => "unsupported",
        }
    }
}

/// One promise of an instance and what its check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promise {
    pub name: String,
    pub kind: Kind,
    pub state: State,
    /// Its output, or why it fails or cannot be checked.
    pub output: String,
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// Checks every promise of the partition.
pub fn check(partition: &Path) -> Result<Vec<Promise>, String> {
    let read = |d: &str| {
        let dir = partition.join(d);
        files(&dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))
    };
    let mut todo: Vec<(Kind, PathBuf)> = Vec::new();
    for p in read("etc/promise")? {
        use std::os::unix::fs::PermissionsExt;
        let executable = std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
        if executable {
            todo.push((Kind::Promise, p));
        }
    }
    for p in read("etc/plugin")? {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".py") && name != "__init__.py" {
            todo.push((Kind::Plugin, p));
        }
    }
    Ok(todo
        .par_iter()
        .map(|(kind, path)| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (state, output) = match kind {
                Kind::Promise => run(Command::new(path), partition),
                Kind::Plugin => plugin(path, partition),
            };
            Promise {
                name,
                kind: *kind,
                state,
                output: output.trim().to_owned(),
            }
        })
        .collect())
}

/// Runs `cmd` in `partition` for at most [`TIMEOUT`]: ok when it exits 0; its output.
fn run(mut cmd: Command, partition: &Path) -> (State, String) {
    let out = match tempfile::tempfile() {
        Ok(f) => f,
        Err(e) => {
            return (
                State::Failing,
                format!("cannot make a file for its output: {e}"),
            )
        }
    };
    let (Ok(o1), Ok(o2)) = (out.try_clone(), out.try_clone()) else {
        return (State::Failing, "cannot share its output file".into());
    };
    cmd.current_dir(partition)
        .stdin(Stdio::null())
        .stdout(o1)
        .stderr(o2)
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (State::Failing, format!("cannot run it: {e}")),
    };
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => break None,
        }
    };
    let status = match status {
        Some(s) => s,
        None => {
            // SAFETY: a plain syscall on the process group the child leads.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            return (
                State::Failing,
                format!(
                    "{} timed out after {} s",
                    cmd.get_program().to_string_lossy(),
                    TIMEOUT.as_secs()
                ),
            );
        }
    };
    let mut text = String::new();
    let mut out = out;
    let _ = out.rewind();
    let _ = out.take(MAX_OUTPUT as u64).read_to_string(&mut text);
    if status.success() {
        (State::Ok, text)
    } else {
        if text.trim().is_empty() {
            text = format!("exited with {status}");
        }
        (State::Failing, text)
    }
}

fn config<'a>(c: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    c.get(key).and_then(Value::as_str).filter(|v| !v.is_empty())
}

/// Checks a plugin natively, when it is one slapstore knows.
fn plugin(path: &Path, partition: &Path) -> (State, String) {
    let Some((module, c)) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| read_plugin(&t))
    else {
        return (
            State::Unsupported,
            "not a plugin of `slapos.cookbook:promise.plugin`: slapstore does not run plugin code"
                .into(),
        );
    };
    let name = module.rsplit('.').next().unwrap_or(&module);
    let timeout = config(&c, "timeout")
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0 && *t < 3600.0)
        .map_or(TIMEOUT, Duration::from_secs_f64);
    match name {
        "check_socket_listening" => socket(&c, timeout),
        "check_url_available" => url(&c, timeout),
        "check_file_state" => file_state(&c, partition),
        "check_command_execute" => match config(&c, "command") {
            // the profile's own shell code, as the plugin runs it
            Some(command) => {
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c").arg(command);
                run(cmd, partition)
            }
            None => (State::Failing, "no `config-command`".into()),
        },
        _ => (
            State::Unsupported,
            format!("plugin `{module}` is not one slapstore checks natively"),
        ),
    }
}

/// `check_socket_listening`: `host` and `port`, or `pathname`, or `abstract` accept a connection.
fn socket(c: &Map<String, Value>, timeout: Duration) -> (State, String) {
    use std::os::unix::net::UnixStream;
    let result = if let Some(path) = config(c, "pathname") {
        UnixStream::connect(path)
            .map(|_| ())
            .map_err(|e| format!("{path}: {e}"))
    } else if let Some(name) = config(c, "abstract") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| UnixStream::connect_addr(&a))
            .map(|_| ())
            .map_err(|e| format!("@{name}: {e}"))
    } else {
        let (Some(host), Some(port)) = (config(c, "host"), config(c, "port")) else {
            return (
                State::Failing,
                "no `config-host` and `config-port`, `config-pathname` or `config-abstract`".into(),
            );
        };
        let Ok(port) = port.trim().parse::<u16>() else {
            return (State::Failing, format!("`{port}` is not a port"));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        use std::net::ToSocketAddrs;
        match (host, port).to_socket_addrs() {
            Ok(addrs) => {
                let mut last = format!("{host}:{port}: no address");
                let mut ok = false;
                for a in addrs {
                    match std::net::TcpStream::connect_timeout(&a, timeout) {
                        Ok(_) => {
                            ok = true;
                            break;
                        }
                        Err(e) => last = format!("{host}:{port}: {e}"),
                    }
                }
                if ok {
                    Ok(())
                } else {
                    Err(last)
                }
            }
            Err(e) => Err(format!("{host}:{port}: {e}")),
        }
    };
    match result {
        Ok(()) => (State::Ok, String::new()),
        Err(e) => (State::Failing, e),
    }
}

/// `check_url_available`: `url` answers `http-code` (200), any code with `ignore-code = 1`.
fn url(c: &Map<String, Value>, timeout: Duration) -> (State, String) {
    let Some(url) = config(c, "url") else {
        return (State::Failing, "no `config-url`".into());
    };
    let expected: u16 = config(c, "http-code")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(200);
    let ignore = config(c, "ignore-code") == Some("1");
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .build();
    let code = match agent.get(url).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => {
            return (
                State::Failing,
                format!("ERROR connection not possible while accessing {url}: {e}"),
            )
        }
    };
    if ignore || code == expected {
        (State::Ok, format!("{url}: OK {code}"))
    } else {
        (
            State::Failing,
            format!("{url}: returned status code {code}, expected {expected}"),
        )
    }
}

/// `check_file_state`: `filename` is `empty` or not (`state = not-empty`), and exists.
fn file_state(c: &Map<String, Value>, partition: &Path) -> (State, String) {
    let Some(file) = config(c, "filename") else {
        return (State::Failing, "no `config-filename`".into());
    };
    let state = config(c, "state").unwrap_or("empty");
    let path = partition.join(file);
    match std::fs::metadata(&path) {
        Err(e) => (
            State::Failing,
            format!("ERROR {e} during opening and reading file {file:?}"),
        ),
        Ok(m) => match (state, m.len()) {
            ("empty", 0) | ("not-empty", 1..) => {
                (State::Ok, format!("OK {file:?} state {state:?}"))
            }
            ("empty", _) => (State::Failing, format!("ERROR {file:?} not empty")),
            ("not-empty", _) => (State::Failing, format!("ERROR {file:?} empty")),
            (other, _) => (State::Failing, format!("unknown `config-state` {other:?}")),
        },
    }
}
