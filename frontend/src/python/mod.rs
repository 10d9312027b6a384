//! The bridge to Python for profile code: `slapos.recipe.build` sections whose `init` option is
//! Python run it when buildout initialises them, and the values it computes are read by other
//! sections. slapstore runs that code in one `python3` child process per evaluation, started
//! only when a profile has such code, with the API the code expects (`bridge.py`). Every access
//! to buildout data from Python is a request answered by the resolver, lazily, so sections are
//! initialised in exactly the order buildout would initialise them.
//!
//! Protocol: one `marshal` object at a time each way (see `marshal`). slapstore sends `init`;
//! Python answers with requests (`section`, `get`, `del`, `keys`, `items`, `copy`, `sections`,
//! `parse`, `eggs`),
//! each answered by `ok` or `err`, and `set`, which cannot fail and is not answered; it finishes
//! with `done` (listing what it read of the machine: `Bridge::touched`), `fail`, or `defer`
//! (code that needs distributions of egg parts a dry run has not built: `eggs`). A request
//! may cause a nested `init`,
//! which Python serves before reading the answer. Option values that are not text cross it
//! serialised as SlapOS's buildout stores them (`!py!<repr>`, `Resolver::serialised`): Python
//! sends them so and decodes them when it reads them.

pub mod eggs;
pub mod interpreter;
mod marshal;

use std::io::BufReader;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use marshal::Value;

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
    /// What the code read of the machine, as `bridge.py` reports it with each `done`
    /// (`file:PATH`, `dir:PATH`, `exec:PROGRAM`): the cache of evaluations keys on it.
    pub touched: Vec<String>,
}

fn bridge_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Bridge {
        message: message.into(),
    })
}

/// What a dry run names as not made yet when code fails on a file of the partition.
pub(crate) const PARTITION_PENDING: &str = "the partition, made by the deploy";

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
            touched: Vec::new(),
        })
    }

    fn send(&mut self, message: &Value) -> Result<()> {
        marshal::write(&mut self.stdin, message)
            .map_err(|e| bridge_error(format!("cannot write to Python: {e}")))
    }

    fn recv(&mut self) -> Result<Value> {
        marshal::read(&mut self.stdout).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                bridge_error("the Python process exited unexpectedly")
            }
            _ => bridge_error(format!("cannot read from Python: {e}")),
        })
    }

    fn wait_ready(&mut self) -> Result<()> {
        if !self.ready {
            let hello = self.recv()?;
            if hello.text("t") != "ready" {
                return Err(bridge_error(format!("unexpected greeting {hello:?}")));
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
        let message = Value::dict([
            ("t", Value::str("init")),
            ("section", Value::str(name.clone())),
            ("code", Value::str(code)),
            ("location", location.map_or(Value::None, Value::str)),
        ]);
        self.bridge()?.send(&message)?;
        loop {
            let message = self.bridge()?.recv()?;
            match message.text("t") {
                "done" => {
                    if let Some(Value::List(items)) = message.get("r") {
                        let bridge = self.bridge()?;
                        for item in items {
                            if let Some(text) = item.as_str() {
                                bridge.touched.push(text.to_owned());
                            }
                        }
                    }
                    return Ok(());
                }
                "fail" => {
                    if let Some(deferred) = self.reads_unbuilt(&name, &message) {
                        self.instance_output.deferred.push(deferred);
                        return Ok(());
                    }
                    return Err(self.init_failure(idx, &message));
                }
                "defer" => {
                    let texts = |key: &str| match message.get(key) {
                        Some(Value::List(items)) => items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect(),
                        _ => Vec::new(),
                    };
                    let deferred = eggs::Deferred {
                        section: name,
                        needs: texts("needs"),
                        pending: texts("pending"),
                    };
                    self.instance_output.deferred.push(deferred);
                    return Ok(());
                }
                "set" => self.assign(&name, &message)?,
                _ => {
                    let reply = match self.answer(&name, &message) {
                        Ok(reply) => reply,
                        Err(e) => self.stash(e),
                    };
                    self.bridge()?.send(&reply)?;
                }
            }
        }
    }

    fn stash(&mut self, error: Error) -> Value {
        let strs = |items: &[&str]| Value::List(items.iter().map(|s| Value::str(*s)).collect());
        let (kind, args) = match &error.kind {
            ErrorKind::MissingSection { section } => ("MissingSection", strs(&[section])),
            ErrorKind::RequiredOption { section, option } => (
                "MissingOption",
                strs(&[&format!("Missing option: {section}:{option}")]),
            ),
            ErrorKind::MissingOption { section, option } => (
                "MissingOption",
                strs(&["Referenced option does not exist:", section, option]),
            ),
            other => ("UserError", strs(&[&other.to_string()])),
        };
        let id = match self.bridge.as_mut() {
            Some(bridge) => {
                bridge.raised.push(error);
                Value::Int(bridge.raised.len() as i64 - 1)
            }
            None => Value::None,
        };
        Value::dict([
            ("t", Value::str("err")),
            ("kind", Value::str(kind)),
            ("args", args),
            ("id", id),
        ])
    }

    /// `options[key] = value` from Python: it cannot fail, so Python does not wait for an answer.
    fn assign(&mut self, by: &str, request: &Value) -> Result<()> {
        let section = request.text("s");
        let idx = self
            .sections
            .get_index_of(section)
            .ok_or_else(|| bridge_error(format!("section `{section}` was not asked for first")))?;
        let (option, text) = (request.text("o"), request.text("v"));
        let origin = Origin::Code(by.to_owned());
        // a value that is not text comes serialised (`!py!<repr>`, as SlapOS's buildout
        // stores it); one the resolver reads back (a literal) is kept as the value itself
        match text
            .strip_prefix("!py!")
            .and_then(crate::condition::literal)
        {
            Some(value) if !value.is_string() => self.set_typed(idx, option, value, origin),
            _ => {
                // text now, whatever it was
                self.typed.remove(&(section.to_owned(), option.to_owned()));
                self.set(idx, option, text.to_owned(), origin);
            }
        }
        Ok(())
    }

    fn answer(&mut self, by: &str, request: &Value) -> Result<Value> {
        let text = |key: &str| request.text(key).to_owned();
        let ok = |v: Value| Value::dict([("t", Value::str("ok")), ("v", v)]);
        let strings = |items: Vec<String>| Value::List(items.into_iter().map(Value::Str).collect());
        let existing = |r: &Resolver, section: &str| {
            r.sections
                .get_index_of(section)
                .ok_or_else(|| bridge_error(format!("section `{section}` was not asked for first")))
        };
        match request.text("t") {
            "section" => {
                self.section(&text("s"))?;
                Ok(ok(Value::None))
            }
            "get" => {
                let (idx, option) = (existing(self, &text("s"))?, text("o"));
                let value = self.get(idx, &option, None)?;
                let value = value
                    .map(|v| self.serialised(idx, &option).unwrap_or(v))
                    .or_else(|| self.deferred_value(&text("s"), &option));
                Ok(ok(value.map_or(Value::None, Value::Str)))
            }
            "del" => {
                let idx = existing(self, &text("s"))?;
                let found = self.delete(idx, &text("o"));
                Ok(Value::dict([
                    ("t", Value::str("ok")),
                    ("missing", Value::Bool(!found)),
                ]))
            }
            "keys" => {
                let idx = existing(self, &text("s"))?;
                Ok(ok(strings(self.sections[idx].keys())))
            }
            "items" => {
                let idx = existing(self, &text("s"))?;
                let items = self
                    .items(idx)?
                    .into_iter()
                    .map(|(k, v)| {
                        let v = self.serialised(idx, &k).unwrap_or(v);
                        Value::List(vec![Value::Str(k), Value::Str(v)])
                    })
                    .collect();
                Ok(ok(Value::List(items)))
            }
            "copy" => {
                let idx = existing(self, &text("s"))?;
                let items = self
                    .raw_copy(idx)
                    .into_iter()
                    .map(|(k, v)| (Value::Str(k), Value::Str(v)))
                    .collect();
                Ok(ok(Value::Dict(items)))
            }
            "sections" => Ok(ok(strings(self.raw.keys().cloned().collect()))),
            "eggs" => Ok(ok(match &self.settings.eggs {
                None => Value::None,
                Some(eggs) => Value::dict([
                    (
                        "dists",
                        Value::List(
                            eggs.dists
                                .iter()
                                .map(|d| {
                                    strings(vec![
                                        d.name.clone(),
                                        d.version.clone(),
                                        d.location.clone(),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                    ("pending", strings(eggs.pending.clone())),
                ]),
            })),
            "parse" => {
                self.parse_sections(&text("text"), by)?;
                Ok(ok(Value::None))
            }
            other => Err(bridge_error(format!("unknown request `{other}`"))),
        }
    }

    /// The placeholder of a missing option of a section deferred to the deploy.
    pub(crate) fn deferred_value(&self, section: &str, option: &str) -> Option<String> {
        self.instance_output
            .deferred
            .iter()
            .any(|d| d.section == section)
            .then(|| eggs::placeholder(section, option))
    }

    /// A failure of code that read a file of an output a dry run has not built (`notepod`'s
    /// `[init]` reads `${installer:location}/SHA512SUMS`), or a file of the partition, which a
    /// dry run does not make (stack/caucase's `[<prefix>-init-certificate]` makes `etc/` and
    /// touches the certificate there): the section is deferred.
    fn reads_unbuilt(&mut self, section: &str, message: &Value) -> Option<eggs::Deferred> {
        let file = message.get("filename").and_then(Value::as_str)?;
        let planned = self.settings.planned.clone()?;
        if let Some((part, _)) = planned.made_by(file) {
            return Some(eggs::Deferred {
                section: section.to_owned(),
                needs: vec![file.to_owned()],
                pending: vec![part.to_owned()],
            });
        }
        let buildout = self.section("buildout").ok()?;
        let partition = self.get(buildout, "directory", None).ok()??;
        let partition = crate::pystr::normpath(&partition);
        let file = crate::pystr::normpath(file);
        let inside =
            file == partition || file.starts_with(&format!("{}/", partition.trim_end_matches('/')));
        inside.then(|| eggs::Deferred {
            section: section.to_owned(),
            needs: vec![file],
            pending: vec![PARTITION_PENDING.to_owned()],
        })
    }

    fn init_failure(&mut self, idx: usize, message: &Value) -> Error {
        let name = self.name(idx).to_owned();
        // the line of the init code that raised
        let span = self.span_of(idx, "init").map(|span| {
            match message.get("text").and_then(Value::as_str).map(str::trim) {
                Some(line) if !line.is_empty() => self.find_in(span, line),
                _ => span,
            }
        });
        if let Some(id) = message.get("id").and_then(Value::as_int) {
            if let Some(original) = self.bridge.as_mut().and_then(|b| {
                let id = id as usize;
                (id < b.raised.len()).then(|| b.raised[id].clone())
            }) {
                let label = format!("raised through this line of [{name}]'s `init` code");
                let original = match (original.span, span) {
                    // blame the file the user can edit, rather than a text made by code
                    (Some(at), Some(line)) if self.sources.get(at.file).name.starts_with('<') => {
                        let mut e = original.related(at, "in this text");
                        e.span = Some(line);
                        e
                    }
                    (Some(_), Some(line)) => original.related(line, label),
                    _ => original.or_at(span),
                };
                return original.note(format!("raised through the Python `init` code of [{name}]"));
            }
        }
        let exception = format!("{}: {}", message.text("type"), message.text("message"));
        let mut err = Error::new(ErrorKind::Python {
            section: name,
            exception,
        })
        .or_at(span);
        if let Some(line) = message.get("line").and_then(Value::as_int) {
            err = err.note(format!("at line {line} of the `init` code"));
        }
        err
    }
}
