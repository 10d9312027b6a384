//! Python's own Jinja2 as a renderer, for the templates minijinja cannot render (`jinja2.rs`
//! decides which): one `python3 -I` child per slapstore process, started on the first such
//! template and serving every later one (instance renders, dry runs and builds alike), so a
//! process that renders none never starts it.
//!
//! `jinja2py.py` is the Python side: its first line gives Jinja2's version (a software-time
//! output's hash covers it), then one JSON request a line (template, context, `import-list`
//! templates) gets one JSON reply (the text, or the template's error).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

/// The Python program of the renderer.
const PROGRAM: &str = include_str!("jinja2py.py");

/// A running renderer.
struct Renderer {
    child: Child,
    requests: ChildStdin,
    replies: BufReader<ChildStdout>,
    /// `jinja2.__version__`.
    version: String,
}

impl Drop for Renderer {
    fn drop(&mut self) {
        // a renderer that failed an exchange (the process's own ends with the process)
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process's renderer, once started (a failed exchange drops it: the next starts anew).
static RENDERER: Mutex<Option<Renderer>> = Mutex::new(None);

/// The version of the Jinja2 that renders (`Jinja2 3.1.6`), starting the renderer if need be.
pub fn version() -> Result<String, String> {
    with_renderer(|r| Ok(format!("Jinja2 {}", r.version)))
}

/// Renders `source` with `context` (JSON, modules marked as for minijinja) and the
/// `import-list` templates `imports`.
pub fn render(
    source: &str,
    context: &serde_json::Value,
    imports: &BTreeMap<String, String>,
) -> Result<String, String> {
    let request = serde_json::json!({"source": source, "context": context, "imports": imports});
    let reply = with_renderer(|r| exchange(r, &format!("{request}\n")))?;
    match (reply.get("text"), reply.get("error")) {
        (Some(serde_json::Value::String(text)), _) => Ok(text.clone()),
        (_, Some(serde_json::Value::String(error))) => Err(error.clone()),
        _ => Err(format!("the Jinja2 renderer replied `{reply}`")),
    }
}

fn with_renderer<T>(f: impl FnOnce(&mut Renderer) -> Result<T, String>) -> Result<T, String> {
    let mut guard = RENDERER
        .lock()
        .map_err(|_| "the Jinja2 renderer failed in another thread".to_owned())?;
    let renderer = match guard.take() {
        Some(r) => r,
        None => start()?,
    };
    let renderer = guard.insert(renderer);
    let result = f(renderer);
    // only the pipes fail here (a template's error is a reply): the next render starts anew
    if result.is_err() {
        guard.take();
    }
    result
}

fn start() -> Result<Renderer, String> {
    let mut child = Command::new("python3")
        .arg("-I")
        .arg("-c")
        .arg(PROGRAM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start python3 to render with Jinja2: {e}"))?;
    let (Some(requests), Some(replies)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the Jinja2 renderer has no pipes".into());
    };
    let mut renderer = Renderer {
        child,
        requests,
        replies: BufReader::new(replies),
        version: String::new(),
    };
    let hello = read_reply(&mut renderer)?;
    match (hello.get("version"), hello.get("error")) {
        (Some(serde_json::Value::String(v)), _) => renderer.version = v.clone(),
        (_, Some(serde_json::Value::String(e))) => return Err(e.clone()),
        _ => return Err(format!("the Jinja2 renderer said `{hello}`")),
    }
    Ok(renderer)
}

fn exchange(renderer: &mut Renderer, line: &str) -> Result<serde_json::Value, String> {
    renderer
        .requests
        .write_all(line.as_bytes())
        .and_then(|()| renderer.requests.flush())
        .map_err(|e| format!("the Jinja2 renderer does not listen: {e}"))?;
    read_reply(renderer)
}

fn read_reply(renderer: &mut Renderer) -> Result<serde_json::Value, String> {
    let mut reply = String::new();
    match renderer.replies.read_line(&mut reply) {
        Ok(0) => Err("the Jinja2 renderer (python3) exited".into()),
        Ok(_) => serde_json::from_str(&reply)
            .map_err(|e| format!("the Jinja2 renderer's reply is not JSON: {e}")),
        Err(e) => Err(format!("the Jinja2 renderer does not answer: {e}")),
    }
}
