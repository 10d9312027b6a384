//! The bridge to Python for profile code: `slapos.recipe.build` sections whose `init` option is
//! Python run it when buildout initialises them, and the values it computes are read by other
//! sections. slapstore runs that code in one `python3` child process per evaluation, started
//! only when a profile has such code, with the API the code expects (`bridge.py`). Every access
//! to buildout data from Python is a request answered by the resolver, lazily, so sections are
//! initialised in exactly the order buildout would initialise them.
//!
//! Protocol: one JSON object per line each way. slapstore sends `init`; Python answers with
//! requests (`section`, `get`, `set`, `del`, `keys`, `copy`, `sections`, `parse`), each answered
//! by `ok` or `err`, and finishes with `done` or `fail`. A request may cause a nested `init`,
//! which Python serves before reading the answer.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{json, Value as Json};

use crate::config::Origin;
use crate::error::{Error, ErrorKind, Result};
use crate::resolver::Resolver;

const BRIDGE_SOURCE: &str = include_str!("bridge.py");

/// A running Python interpreter serving `init` code.
pub struct Bridge {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Errors raised by slapstore while answering requests, by id: if the Python code lets
    /// one propagate, the original error (with its span) is reported.
    raised: Vec<Error>,
    ready: bool,
}

fn bridge_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Bridge {
        message: message.into(),
    })
}

impl Bridge {
    /// Starts the interpreter; it boots while the caller goes on.
    pub fn start(python: &str) -> Result<Bridge> {
        let mut child = Command::new(python)
            .args(["-S", "-c", BRIDGE_SOURCE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| bridge_error(format!("cannot start `{python}`: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(bridge_error("no pipes to the Python process"));
        };
        Ok(Bridge {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            raised: Vec::new(),
            ready: false,
        })
    }

    fn send(&mut self, message: &Json) -> Result<()> {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.flush())
            .map_err(|e| bridge_error(format!("cannot write to Python: {e}")))
    }

    fn recv(&mut self) -> Result<Json> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| bridge_error(format!("cannot read from Python: {e}")))?;
        if n == 0 {
            return Err(bridge_error("the Python process exited unexpectedly"));
        }
        serde_json::from_str(&line).map_err(|e| bridge_error(format!("bad message {line:?}: {e}")))
    }

    fn wait_ready(&mut self) -> Result<()> {
        if !self.ready {
            let hello = self.recv()?;
            if hello["t"] != "ready" {
                return Err(bridge_error(format!("unexpected greeting {hello}")));
            }
            self.ready = true;
        }
        Ok(())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Resolver<'_> {
    /// Starts Python ahead of need, so that its start-up overlaps the resolution of the
    /// sections that come before the first `init` code.
    pub fn prestart_python(&mut self) {
        if self.bridge.is_none() {
            self.bridge = Bridge::start(&self.settings.python).ok();
        }
    }

    fn bridge(&mut self) -> Result<&mut Bridge> {
        if self.bridge.is_none() {
            self.bridge = Some(Bridge::start(&self.settings.python)?);
        }
        match self.bridge.as_mut() {
            Some(b) => {
                b.wait_ready()?;
                Ok(b)
            }
            None => Err(bridge_error("no Python process")),
        }
    }

    /// Runs the `init` code of section `idx` (slapos.recipe.build's `Script._exec`).
    pub fn run_init(&mut self, idx: usize, code: &str, location: Option<&str>) -> Result<()> {
        let name = self.name(idx).to_owned();
        let message = json!({"t": "init", "section": name, "code": code, "location": location});
        self.bridge()?.send(&message)?;
        loop {
            let message = self.bridge()?.recv()?;
            match message["t"].as_str() {
                Some("done") => return Ok(()),
                Some("fail") => return Err(self.init_failure(idx, &message)),
                Some(_) => {
                    let reply = match self.answer(&name, &message) {
                        Ok(reply) => reply,
                        Err(e) => self.stash(e),
                    };
                    self.bridge()?.send(&reply)?;
                }
                None => return Err(bridge_error(format!("bad message {message}"))),
            }
        }
    }

    fn stash(&mut self, error: Error) -> Json {
        let (kind, args) = match &error.kind {
            ErrorKind::MissingSection { section } => ("MissingSection", json!([section])),
            ErrorKind::RequiredOption { section, option } => {
                ("MissingOption", json!([format!("Missing option: {section}:{option}")]))
            }
            ErrorKind::MissingOption { section, option } => (
                "MissingOption",
                json!(["Referenced option does not exist:", section, option]),
            ),
            other => ("UserError", json!([other.to_string()])),
        };
        let Some(bridge) = self.bridge.as_mut() else {
            return json!({"t": "err", "kind": kind, "args": args, "id": null});
        };
        bridge.raised.push(error);
        json!({"t": "err", "kind": kind, "args": args, "id": bridge.raised.len() - 1})
    }

    fn answer(&mut self, by: &str, request: &Json) -> Result<Json> {
        let text = |key: &str| request[key].as_str().unwrap_or_default().to_owned();
        let existing = |r: &Resolver, section: &str| {
            r.sections
                .get_index_of(section)
                .ok_or_else(|| bridge_error(format!("section `{section}` was not asked for first")))
        };
        match request["t"].as_str().unwrap_or_default() {
            "section" => {
                self.section(&text("s"))?;
                Ok(json!({"t": "ok"}))
            }
            "get" => {
                let idx = existing(self, &text("s"))?;
                let value = self.get(idx, &text("o"), None)?;
                Ok(json!({"t": "ok", "v": value}))
            }
            "set" => {
                let idx = existing(self, &text("s"))?;
                self.set(idx, &text("o"), text("v"), Origin::Code(by.to_owned()));
                Ok(json!({"t": "ok"}))
            }
            "del" => {
                let idx = existing(self, &text("s"))?;
                let found = self.delete(idx, &text("o"));
                Ok(json!({"t": "ok", "missing": !found}))
            }
            "keys" => {
                let idx = existing(self, &text("s"))?;
                Ok(json!({"t": "ok", "v": self.sections[idx].keys()}))
            }
            "copy" => {
                let idx = existing(self, &text("s"))?;
                Ok(json!({"t": "ok", "v": self.raw_copy(idx)}))
            }
            "sections" => Ok(json!({"t": "ok", "v": self.raw.keys().collect::<Vec<_>>()})),
            "parse" => {
                self.parse_sections(&text("text"), by)?;
                Ok(json!({"t": "ok"}))
            }
            other => Err(bridge_error(format!("unknown request `{other}`"))),
        }
    }

    fn init_failure(&mut self, idx: usize, message: &Json) -> Error {
        let name = self.name(idx).to_owned();
        if let Some(id) = message["id"].as_u64() {
            if let Some(original) = self.bridge.as_mut().and_then(|b| {
                let id = id as usize;
                (id < b.raised.len()).then(|| b.raised[id].clone())
            }) {
                return original.note(format!("raised through the Python `init` code of [{name}]"));
            }
        }
        let exception = format!(
            "{}: {}",
            message["type"].as_str().unwrap_or("Exception"),
            message["message"].as_str().unwrap_or_default()
        );
        let span = self.span_of(idx, "init").map(|span| {
            match message["text"].as_str().map(str::trim) {
                Some(line) if !line.is_empty() => self.find_in(span, line),
                _ => span,
            }
        });
        let mut err = Error::new(ErrorKind::Python {
            section: name,
            exception,
        })
        .or_at(span);
        if let Some(line) = message["line"].as_u64() {
            err = err.note(format!("at line {line} of the `init` code"));
        }
        err
    }
}
