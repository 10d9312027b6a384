//! `template` and `jinja2` (`slapos.recipe.template[:jinja2]`). The frontend already rendered a
//! `template` (only it knows `${}`): its text is the `rendered-text` option, written here to
//! `<out>/<file>`. A `jinja2` part carries its template text and its context as JSON
//! (`template-text`, `context-json`) and its `import-list` templates (`import-texts`), rendered
//! here (`jinja2.rs` picks minijinja or Python's Jinja2, whose version the plan recorded in
//! `jinja2-engine`); a template that another part makes is read here from that part's output
//! (`template-file`, `import-files`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use super::jinja2::{Engine, Job as Jinja2Job};
use super::Context;
use crate::checksum::{Algorithm, Checksum};
use crate::error::{io_error, Result, StoreError};

pub fn template(ctx: &mut Context) -> Result<()> {
    let text = ctx.drv.option("rendered-text").unwrap_or("").to_owned();
    write_output(ctx, &text)
}

pub fn jinja2(ctx: &mut Context) -> Result<()> {
    let source = match ctx.drv.option("template-file") {
        Some(file) => built_template(ctx, file, ctx.option("md5sum"))?,
        None => ctx.drv.option("template-text").unwrap_or("").to_owned(),
    };
    let context: serde_json::Value =
        serde_json::from_str(ctx.drv.option("context-json").unwrap_or("{}"))
            .map_err(|e| ctx.bad_option("context", e.to_string()))?;
    let mut imports: BTreeMap<String, String> = json_option(ctx, "import-texts")?;
    let files: BTreeMap<String, String> = json_option(ctx, "import-files")?;
    for (name, file) in files {
        let text = built_template(ctx, &file, None)?;
        imports.insert(name, text);
    }
    let job = Jinja2Job {
        source: &source,
        context: &context,
        imports: &imports,
    };
    // the renderer the plan hashed is the one that renders
    if let Engine::Jinja2(construct) = super::jinja2::engine(&job) {
        let planned = ctx.drv.option("jinja2-engine");
        let host = super::jinja2py::version().map_err(|message| StoreError::Recipe {
            part: ctx.part(),
            message: format!("renders with Python's Jinja2 ({construct}): {message}"),
        })?;
        if planned != Some(host.as_str()) {
            return Err(ctx.bad_option(
                "jinja2-engine",
                format!(
                    "the template renders with Python's Jinja2 ({construct}): planned for {}, \
                     this host has {host} (plan again)",
                    planned.unwrap_or("minijinja")
                ),
            ));
        }
    }
    let rendered = super::jinja2::render(&job).map_err(|message| StoreError::Recipe {
        part: ctx.part(),
        message,
    })?;
    write_output(ctx, &rendered)
}

/// A JSON object option (`{}` when absent).
fn json_option(ctx: &Context, option: &str) -> Result<BTreeMap<String, String>> {
    serde_json::from_str(ctx.drv.option(option).unwrap_or("{}"))
        .map_err(|e| ctx.bad_option(option, e.to_string()))
}

/// A template in another part's output (which this one refers to, so it is built and rooted):
/// read now, checked against `md5sum` when given.
fn built_template(ctx: &Context, file: &str, md5sum: Option<&str>) -> Result<String> {
    let path = std::path::Path::new(file);
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    if let Some(hex) = md5sum {
        let expected = Checksum::parse(Algorithm::Md5, hex.trim())
            .map_err(|e| ctx.bad_option("md5sum", e.to_string()))?;
        let actual = Checksum::of_bytes(Algorithm::Md5, &bytes);
        if actual != expected {
            return Err(ctx.bad_option(
                "md5sum",
                format!(
                    "the template `{file}` has MD5 {}, not {}",
                    actual.hex(),
                    expected.hex()
                ),
            ));
        }
    }
    String::from_utf8(bytes).map_err(|_| ctx.bad_option("url", format!("`{file}` is not UTF-8")))
}

/// Writes `text` to `<out>/<file>` with the part's `mode` (octal, default 0644 before the store
/// makes it read-only; only the executable bit survives).
fn write_output(ctx: &mut Context, text: &str) -> Result<()> {
    let file = ctx
        .option("output-file")
        .ok_or_else(|| ctx.bad_option("output", "a template needs an `output`"))?
        .to_owned();
    // `bin/x` when the profile writes the file below the part's location; never outside it
    if Path::new(&file)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(ctx.bad_option("output", format!("`{file}` is not a path in the output")));
    }
    let dest = ctx.out.join(&file);
    let dir = dest.parent().unwrap_or(&ctx.out).to_owned();
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    fs::write(&dest, text).map_err(|e| io_error(&dest, e))?;
    if let Some(mode) = ctx.option("mode") {
        let mode = u32::from_str_radix(mode.trim(), 8)
            .map_err(|_| ctx.bad_option("mode", format!("`{mode}` is not an octal mode")))?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode & 0o777))
            .map_err(|e| io_error(&dest, e))?;
    }
    Ok(())
}
