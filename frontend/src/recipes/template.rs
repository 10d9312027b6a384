//! Template recipes. `slapos.recipe.template` reads its template when initialised and
//! substitutes `${...}` in it right away, so the sections a template references are initialised
//! (and become parts) then; `:jinja2` evaluates its `context` and `import-list` lines, whose
//! `key`/`section` entries read other sections; `collective.recipe.template` substitutes its
//! input like the first.

use std::collections::BTreeMap;

use super::Part;
use crate::config::Origin;
use crate::error::{Error, ErrorKind, Result};
use crate::extends::is_url;
use crate::source::{normalise_newlines, Span};

/// `slapos.recipe.template` (default entry point).
pub fn template(part: &mut Part) -> Result<()> {
    let md5sum = part.get("md5sum")?;
    if let Some(mode) = part.get("mode")? {
        check_octal(part, "mode", &mode)?;
    }
    part.require("output")?;
    let md5sum = md5sum.filter(|m| !m.is_empty());
    if let Some(url) = template_source(part, md5sum.is_some())? {
        let (text, span) = match read_template(part, "url", &url, md5sum.as_deref())? {
            Read::Text(text, span) => (text, span),
            Read::Deploy(path) => {
                super::deploy::refuse_deploy_made(part, "url", &path)?;
                return Err(part.option_error(
                    "url",
                    format!(
                        "the template `{path}` is a file of the partition that this render does \
                         not write (another part makes it at deploy), but \
                         `slapos.recipe.template` reads its template when the profile is read: \
                         render it with `slapos.recipe.template:jinja2`, which reads it when the \
                         part is installed"
                    ),
                ));
            }
            Read::Built { path, part: owner } => {
                return Err(part.option_error(
                    "url",
                    format!(
                        "the template `{path}` is made by part [{owner}] when it is built, but \
                         `slapos.recipe.template` renders its template when the profile is read: \
                         render it with `slapos.recipe.template:jinja2`, which reads it at build \
                         time"
                    ),
                ))
            }
        };
        let origin = Origin::File(span);
        let rendered = render(part.r, part.idx, &text, &origin)
            .map_err(|e| e.note(format!("while rendering the template `{url}`")))?;
        part.rendered = Some(rendered);
    } else if let Some(inline) = part.get("inline")? {
        part.rendered = Some(super::handed_out(inline));
    }
    Ok(())
}

/// slapos.recipe.template's rendering: `${...}` substituted as seen from section `idx`, `$$`
/// kept as `$` (so `$${x}` becomes `${x}`, for the instance profile to substitute).
pub fn render(
    r: &mut crate::resolver::Resolver,
    idx: usize,
    text: &str,
    origin: &Origin,
) -> Result<String> {
    let mut seen = Vec::new();
    let mut out = String::with_capacity(text.len());
    for (i, piece) in text.split("$$").enumerate() {
        if i > 0 {
            out.push('$');
        }
        r.substitute_piece(idx, piece, &mut seen, Some(origin), &mut out)?;
    }
    Ok(out)
}

/// `Recipe._template`: exactly one of `url` and `inline`, no `md5sum` with `inline`; the `url`.
fn template_source(part: &mut Part, has_md5sum: bool) -> Result<Option<String>> {
    let inline = part.get("inline")?.filter(|s| !s.is_empty());
    let url = part.get("url")?.filter(|s| !s.is_empty());
    match (url, inline) {
        (Some(_), Some(_)) => Err(part.error("options 'inline' & 'url' conflict")),
        (Some(url), None) => Ok(Some(url)),
        (None, Some(_)) if has_md5sum => Err(part.error("options 'inline' & 'md5sum' conflict")),
        (None, Some(_)) => Ok(None),
        (None, None) => Err(part.error("one of the options 'inline' 'url' is required")),
    }
}

/// `slapos.recipe.template:jinja2`: checks its options and evaluates `import-list` and
/// `context`.
pub fn jinja2(part: &mut Part) -> Result<()> {
    part.get("md5sum")?;
    if let Some(mode) = part.get("mode")? {
        check_octal(part, "mode", &mode)?;
    }
    part.get("once")?;
    part.get("encoding")?;
    if part.get("update")?.is_some() {
        part.is_true("update")?;
    }
    part.get("import-delimiter")?;
    for (kind, _, expression) in entries(part, "import-list", Vec::new())? {
        match kind.as_str() {
            "rawfile" | "rawfolder" => {}
            "file" | "folder" => {
                key(part, "import-list", &expression)?;
            }
            other => {
                return Err(
                    part.option_error("import-list", format!("unknown import-list type `{other}`"))
                )
            }
        }
    }
    if part.get("output")?.is_none() {
        part.require("rendered")?;
        part.require("template")?;
    } else {
        let md5sum = part.get("md5sum")?.filter(|s| !s.is_empty());
        template_source(part, md5sum.is_some())?;
    }
    part.get("extensions")?;
    let taken = DEFAULT_CONTEXT.iter().map(|s| s.to_string()).collect();
    for (kind, _, expression) in entries(part, "context", taken)? {
        match kind.as_str() {
            "raw" | "import" => {}
            "key" => {
                key(part, "context", &expression)?;
            }
            "jsonkey" => {
                let value = key(part, "context", &expression)?;
                json(part, &value)?;
            }
            "json" => json(part, &expression)?,
            "section" => {
                let span = part.r.span_of(part.idx, "context");
                let idx = part.r.section(&expression).map_err(|e| e.or_at(span))?;
                part.r.items(idx)?;
            }
            other => {
                return Err(part.option_error("context", format!("unknown context type `{other}`")))
            }
        }
    }
    Ok(())
}

/// A `:jinja2` part's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jinja2Template {
    /// Its text, read now.
    Text(String),
    /// A file another part makes, read when this part is installed: in a build, a file in the
    /// output of another part (a path in the store), read by the builder; in an instance, a
    /// file of the partition that the render does not write, read at deploy
    /// (`render_at_deploy.rs`).
    Built(String),
}

/// What a `:jinja2` part renders, for the renderer (`slapstore_store::recipes::jinja2`).
pub struct Jinja2Inputs {
    pub template: Jinja2Template,
    /// `key` and `raw` entries as strings, `section` entries as objects, `json`/`jsonkey`
    /// parsed, `import` entries marked as modules.
    pub context: serde_json::Value,
    /// The `import-list` templates (`file` and `rawfile` entries), by name.
    pub imports: BTreeMap<String, Jinja2Template>,
}

/// The template, context and `import-list` templates of a `:jinja2` part.
pub fn jinja2_inputs(part: &mut Part) -> Result<Jinja2Inputs> {
    let md5sum = part.get("md5sum")?.filter(|m| !m.is_empty());
    let read = |part: &mut Part, url: &str| -> Result<Jinja2Template> {
        read_jinja2(part, "url", url, md5sum.as_deref())
    };
    let text = if let Some(url) = part.get("url")?.filter(|s| !s.is_empty()) {
        read(part, &url)?
    } else if let Some(inline) = part.get("inline")? {
        Jinja2Template::Text(super::handed_out(inline))
    } else if let Some(template) = part.get("template")?.filter(|s| !s.is_empty()) {
        match template.strip_prefix("inline:") {
            Some(text) => Jinja2Template::Text(super::handed_out(
                crate::pystr::strip_start(text).to_owned(),
            )),
            None => read(part, &template)?,
        }
    } else {
        return Err(part.error("one of the options 'inline' 'url' is required"));
    };
    let taken = DEFAULT_CONTEXT.iter().map(|s| s.to_string()).collect();
    let mut context = serde_json::Map::new();
    for (kind, name, expression) in entries(part, "context", taken)? {
        let value = match kind.as_str() {
            "raw" => serde_json::Value::String(super::handed_out(expression)),
            "key" => {
                let text = key(part, "context", &expression)?;
                typed(part, &expression).unwrap_or(serde_json::Value::String(text))
            }
            "jsonkey" => {
                let text = key(part, "context", &expression)?;
                parse_json(part, &text)?
            }
            "json" => parse_json(part, &expression)?,
            // a Python module, made by the renderer (`store/src/recipes/pybuiltins.rs`)
            // a Python module: made by minijinja's renderer (`store/src/recipes/pybuiltins.rs`)
            // or imported by Jinja2's (`jinja2.rs` chooses)
            "import" => {
                let module = expression.trim();
                let dotted = module.split('.').all(|w| {
                    w.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
                        && w.chars().all(|c| c.is_alphanumeric() || c == '_')
                });
                if !dotted {
                    return Err(part.option_error(
                        "context",
                        format!("`import {name} {module}`: `{module}` is not a module name"),
                    ));
                }
                serde_json::json!({ slapstore_store::recipes::JINJA2_MODULE_KEY: module })
            }
            "section" => {
                let span = part.r.span_of(part.idx, "context");
                let idx = part.r.section(&expression).map_err(|e| e.or_at(span))?;
                let items = part.r.items(idx)?;
                let section = part.r.name(idx).to_owned();
                serde_json::Value::Object(
                    items
                        .into_iter()
                        .map(|(k, v)| {
                            let typed = part.r.typed.get(&(section.clone(), k.clone())).cloned();
                            let text = super::handed_out(v);
                            (k, typed.unwrap_or(serde_json::Value::String(text)))
                        })
                        .collect(),
                )
            }
            other => {
                return Err(part.option_error(
                    "context",
                    format!("context type `{other}` is not supported in builds (use key, section, raw, json, jsonkey or import)"),
                ))
            }
        };
        context.insert(name, value);
    }
    let imports = import_list(part)?;
    Ok(Jinja2Inputs {
        template: text,
        context: serde_json::Value::Object(context),
        imports,
    })
}

fn read_jinja2(
    part: &mut Part,
    option: &str,
    url: &str,
    md5sum: Option<&str>,
) -> Result<Jinja2Template> {
    Ok(match read_template(part, option, url, md5sum)? {
        Read::Text(text, _) => Jinja2Template::Text(text),
        Read::Built { path, .. } | Read::Deploy(path) => Jinja2Template::Built(path),
    })
}

/// `import-list`: each `file NAME section:option` or `rawfile NAME PATH` entry is the template
/// at that path, imported as NAME (slapos.recipe.template's `FileLoader`).
fn import_list(part: &mut Part) -> Result<BTreeMap<String, Jinja2Template>> {
    let mut imports = BTreeMap::new();
    for (kind, name, expression) in entries(part, "import-list", Vec::new())? {
        let path = match kind.as_str() {
            "file" => key(part, "import-list", &expression)?,
            "rawfile" => expression,
            other => {
                return Err(part.option_error(
                    "import-list",
                    format!(
                    "`{other} {name}`: slapstore imports `file` and `rawfile` entries, not folders"
                ),
                ))
            }
        };
        let template = read_jinja2(part, "import-list", &path, None)?;
        imports.insert(name, template);
    }
    Ok(imports)
}

fn parse_json(part: &Part, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| part.option_error("context", format!("invalid JSON `{text}`: {e}")))
}

/// The names jinja2 templates get without asking (a context entry may not reuse them).
const DEFAULT_CONTEXT: &[&str] = &[
    "abs",
    "all",
    "any",
    "bin",
    "bool",
    "bytes",
    "callable",
    "chr",
    "complex",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "format",
    "frozenset",
    "hex",
    "int",
    "isinstance",
    "iter",
    "len",
    "list",
    "map",
    "max",
    "min",
    "next",
    "oct",
    "ord",
    "pow",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "six",
    "sorted",
    "str",
    "sum",
    "tuple",
    "zip",
    "assert",
    "dumps",
];

/// The `TYPE NAME EXPRESSION` lines of `import-list` or `context`; a NAME may not repeat nor
/// be one of `taken`.
fn entries(
    part: &mut Part,
    option: &str,
    mut taken: Vec<String>,
) -> Result<Vec<(String, String, String)>> {
    let text = part.get(option)?.unwrap_or_default();
    let mut entries = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let words: Vec<&str> = crate::pystr::split_whitespace(line).collect();
        if words.len() < 3 {
            return Err(part.option_error(option, format!("bad `{option}` line `{line}`")));
        }
        let name = words[1].to_owned();
        if taken.contains(&name) {
            return Err(part.option_error(option, format!("duplicate `{option}` entry `{name}`")));
        }
        taken.push(name.clone());
        entries.push((words[0].to_owned(), name, rest_after(line, 2).to_owned()));
    }
    Ok(entries)
}

/// `line.split(None, n)[n]`: the text after the first `n` words.
fn rest_after(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start_matches(crate::pystr::is_space);
    for _ in 0..n {
        let end = rest.find(crate::pystr::is_space).unwrap_or(rest.len());
        rest = rest[end..].trim_start_matches(crate::pystr::is_space);
    }
    crate::pystr::rstrip(rest)
}

/// `getKey`: `section:option` (empty section: this part) read from the buildout.
fn key(part: &mut Part, option: &str, expression: &str) -> Result<String> {
    let Some((section, entry)) = expression.split_once(':').filter(|(_, e)| !e.contains(':'))
    else {
        return Err(part.option_error(option, format!("`{expression}` is not `section:option`")));
    };
    let span = part.r.span_of(part.idx, option);
    if section.is_empty() {
        return part.require(entry).map_err(|e| e.or_at(span));
    }
    let idx = part.r.section(section).map_err(|e| e.or_at(span))?;
    part.r
        .require(idx, entry)
        .map(super::handed_out)
        .map_err(|e| e.or_at(span))
}

/// The value of `section:option` when it is not text (`Resolver::typed`): what SlapOS's
/// buildout hands a Jinja2 `key` context.
fn typed(part: &Part, expression: &str) -> Option<serde_json::Value> {
    let (section, option) = expression.split_once(':')?;
    let section = if section.is_empty() {
        part.name.as_str()
    } else {
        section
    };
    part.r
        .typed
        .get(&(section.to_owned(), option.to_owned()))
        .cloned()
}

fn json(part: &Part, text: &str) -> Result<()> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|_| ())
        .map_err(|e| part.option_error("context", format!("invalid JSON `{text}`: {e}")))
}

fn check_octal(part: &Part, key: &str, value: &str) -> Result<()> {
    let digits = value.trim().trim_start_matches("0o");
    if digits.is_empty() || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(part.option_error(key, format!("invalid octal `{key}`: `{value}`")));
    }
    Ok(())
}

/// A template read by [`read_template`].
enum Read {
    /// Its text, registered as a source file.
    Text(String, Span),
    /// A file that another part of this build makes in its output, which does not exist yet.
    Built { path: String, part: String },
    /// In an instance, a file of the partition that the render does not write: made at deploy,
    /// before the part is installed.
    Deploy(String),
}

/// Reads a template through zc.buildout's `Download`: a local path or `file://` URL, checked
/// against `md5sum` when given. The text is registered as a source file. In a build, a path
/// into the output of a part already translated is not read from disk: a `template` part's file
/// is its rendered text, known now; any other is read by the builder. In an instance, a file of
/// the partition is the text the render writes there (its own, or the switching profile's), or
/// else is read at deploy.
fn read_template(part: &mut Part, option: &str, url: &str, md5sum: Option<&str>) -> Result<Read> {
    let (path, fetched) = match url.strip_prefix("file://") {
        Some(p) => (p.to_owned(), None),
        // a remote release's templates (`slapstore node`), through the download cache
        None if is_url(url) => match part.r.settings.remote_cache.clone() {
            Some(cache) => {
                let bytes = crate::extends::fetch_url(url, &cache, md5sum).map_err(|reason| {
                    part.option_error(option, format!("cannot download `{url}`: {reason}"))
                })?;
                (url.to_owned(), Some(bytes))
            }
            None => {
                return Err(part.option_error(
                    "url",
                    format!("cannot download `{url}`: slapstore reads local templates only"),
                ))
            }
        },
        None => {
            let directory = part.buildout("directory")?;
            (crate::pystr::path_join(&directory, url), None)
        }
    };
    // a buildout path of the software (`${buildout:parts-directory}/<part>/...`): where the
    // release has it
    let path = match fetched {
        None => part.r.settings.software_paths.map(&path).unwrap_or(path),
        Some(_) => path,
    };
    let in_partition = written(part, &path)?;
    let bytes = match (fetched, in_partition) {
        (Some(bytes), _) => bytes,
        (None, Some(Some(text))) => text.into_bytes(),
        (None, Some(None)) => return Ok(Read::Deploy(path)),
        (None, None) => match built_file(part, &path) {
            Some(Built::Text(text)) => text.into_bytes(),
            Some(Built::Later(owner)) => {
                return Ok(Read::Built { path, part: owner });
            }
            // a dry run's planned output: known from its derivation, or an error saying why not
            None => match part.r.settings.planned.as_ref().and_then(|p| p.read(&path)) {
                Some(known) => known
                    .map_err(|m| part.option_error(option, m))?
                    .into_bytes(),
                None => {
                    super::deploy::refuse_deploy_made(part, option, &path)?;
                    std::fs::read(&path).map_err(|e| {
                        part.option_error(option, format!("cannot read template `{path}`: {e}"))
                    })?
                }
            },
        },
    };
    if let Some(expected) = md5sum {
        use md5::Digest;
        let actual = format!("{:x}", md5::Md5::digest(&bytes));
        if actual != expected {
            return Err(part.option_error(
                "md5sum",
                format!("MD5 checksum mismatch for local resource at `{path}` (expected {expected}, got {actual})"),
            ));
        }
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::new(ErrorKind::NotUtf8 { path: path.clone() }))?;
    let text = normalise_newlines(&text);
    let len = text.len();
    let file = part.r.sources.add(path, text.clone());
    Ok(Read::Text(text, Span::new(file, 0..len)))
}

/// In an instance, for a path in the partition: `Some(Some(text))` when this render (or the one
/// that switched to it) writes a text file there, `Some(None)` when it does not; `None` for a
/// path outside the partition, or outside an instance.
fn written(part: &mut Part, path: &str) -> Result<Option<Option<String>>> {
    if !part.r.settings.instance {
        return Ok(None);
    }
    let path = crate::pystr::normpath(path);
    if let Some(text) = part.r.settings.written.get(&path) {
        return Ok(Some(Some(text.clone())));
    }
    let Ok(rel) = super::instance::relative(part, "url", &path) else {
        return Ok(None);
    };
    Ok(Some(match part.r.instance_output.files.get(&rel) {
        Some(super::instance::FileSpec::Text { text, .. }) => Some(text.clone()),
        _ => None,
    }))
}

/// A file in the output of a part of this build.
enum Built {
    /// The file a `template` part renders: its text.
    Text(String),
    /// Anything else, made when the part (named here) is built.
    Later(String),
}

fn built_file(part: &Part, path: &str) -> Option<Built> {
    let store_dir = &part.r.settings.store.as_ref()?.store_dir;
    let drv = part.r.derivations.owner(store_dir, path)?;
    let rendered = drv
        .option("output-file")
        .map(|file| format!("{store_dir}/{}/{file}", drv.path));
    match drv.option("rendered-text") {
        Some(text) if rendered.as_deref() == Some(path) => Some(Built::Text(text.to_owned())),
        _ => Some(Built::Later(drv.name().to_owned())),
    }
}

/// `collective.recipe.template`: `input` (a file or `inline:`), `inline` or `url`, and
/// `output`; the text is substituted with `${x}` meaning `${<this part>:x}`.
pub fn collective(part: &mut Part) -> Result<()> {
    let input = part.get("input")?;
    let inline = part.get("inline")?;
    let url = part.get("url")?;
    if input.is_none() && inline.is_none() && url.is_none() {
        return Err(part.error("No input file, inline template, or URL specified."));
    }
    if part.get("output")?.is_none() {
        return Err(part.error("No output file specified."));
    }
    if input.is_some() && (inline.is_some() || url.is_some()) {
        return Err(part.error("Too many input sources."));
    }
    part.get("input-encoding")?;
    part.get("output-encoding")?;
    if let Some(timeout) = part.get("timeout")? {
        if timeout.trim().parse::<f64>().is_err() {
            return Err(part.option_error("timeout", format!("invalid timeout `{timeout}`")));
        }
    }
    part.get("overwrite")?;
    let (source, origin) = if let Some(inline) = inline {
        let span = part.r.span_of(part.idx, "inline");
        (
            crate::pystr::strip_start(&inline).to_owned(),
            span.map(Origin::File),
        )
    } else if let Some(input) = input {
        let planned = part
            .r
            .settings
            .planned
            .as_ref()
            .and_then(|p| p.read(&input));
        if planned.is_some() || std::path::Path::new(&input).exists() {
            let text = match planned {
                Some(known) => known.map_err(|m| part.option_error("input", m))?,
                None => std::fs::read_to_string(&input).map_err(|e| {
                    part.option_error("input", format!("cannot read `{input}`: {e}"))
                })?,
            };
            let text = normalise_newlines(&text);
            let len = text.len();
            let file = part.r.sources.add(input.clone(), text.clone());
            (text, Some(Origin::File(Span::new(file, 0..len))))
        } else if let Some(rest) = input.strip_prefix("inline:") {
            let span = part.r.span_of(part.idx, "input");
            (
                crate::pystr::strip_start(rest).to_owned(),
                span.map(Origin::File),
            )
        } else {
            return Err(part.option_error("input", format!("Input file '{input}' does not exist.")));
        }
    } else {
        return Err(part.option_error(
            "url",
            "cannot download the template: slapstore reads local templates only",
        ));
    };
    if let Some(mode) = part.get("mode")? {
        check_octal(part, "mode", &mode)?;
    }
    let template = qualify_short_references(&source, &part.name);
    // buildout's `Options._sub`: `$$` is a `$`, the pieces between are substituted
    let mut out = String::new();
    for (i, piece) in template.split("$$").enumerate() {
        if i > 0 {
            out.push('$');
        }
        let mut seen = Vec::new();
        part.r
            .substitute_piece(part.idx, piece, &mut seen, origin.as_ref(), &mut out)?;
    }
    part.rendered = Some(out);
    Ok(())
}

/// `re.sub(r"\$\{([^:]+?)\}", r"${<name>:\1}", text)`: `${x}` becomes `${<name>:x}`.
fn qualify_short_references(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(['}', ':']) {
            Some(end) if after.as_bytes()[end] == b'}' && end > 0 => {
                out.push_str("${");
                out.push_str(name);
                out.push(':');
                out.push_str(&after[..end]);
                out.push('}');
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
