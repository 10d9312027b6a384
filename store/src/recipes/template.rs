//! `template` and `jinja2` (`slapos.recipe.template[:jinja2]`). The frontend already rendered a
//! `template` (only it knows `${}`): its text is the `rendered-text` option, written here to
//! `<out>/<file>`. A `jinja2` part carries its template text and its context as JSON
//! (`template-text`, `context-json`), rendered here with minijinja; a template that another part
//! makes is read here from that part's output (`template-file`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use super::Context;
use crate::checksum::{Algorithm, Checksum};
use crate::error::{io_error, Result, StoreError};

pub fn template(ctx: &mut Context) -> Result<()> {
    let text = ctx.drv.option("rendered-text").unwrap_or("").to_owned();
    write_output(ctx, &text)
}

pub fn jinja2(ctx: &mut Context) -> Result<()> {
    let source = match ctx.drv.option("template-file") {
        Some(file) => built_template(ctx, file)?,
        None => ctx.drv.option("template-text").unwrap_or("").to_owned(),
    };
    let context: serde_json::Value =
        serde_json::from_str(ctx.drv.option("context-json").unwrap_or("{}"))
            .map_err(|e| ctx.bad_option("context", e.to_string()))?;
    let rendered = render_jinja2(&source, &context).map_err(|message| StoreError::Recipe {
        part: ctx.part(),
        message,
    })?;
    write_output(ctx, &rendered)
}

/// A template in another part's output (which this one refers to, so it is built and rooted):
/// read now, checked against the part's `md5sum` when it gives one.
fn built_template(ctx: &Context, file: &str) -> Result<String> {
    let path = std::path::Path::new(file);
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    if let Some(hex) = ctx.option("md5sum") {
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

/// Renders a Jinja2 template with minijinja (undefined names are errors, trailing newlines
/// kept), as slapos.recipe.template:jinja2 renders with Jinja2. Python's methods on values
/// (`parameters.get('k', default)`, `.items()`, `.keys()`, `.split()`, ...), which SlapOS's
/// templates call everywhere, come from minijinja-contrib's pycompat; the builtins
/// slapos.recipe.template gives every template (`int`, `len`, `enumerate`, `dumps`, ...) from
/// `pybuiltins.rs`.
pub fn render_jinja2(source: &str, context: &serde_json::Value) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    super::pybuiltins::add(&mut env);
    env.render_str(source, super::pybuiltins::context(context))
        .map_err(|e| format!("the jinja2 template does not render: {e:#}"))
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

#[cfg(test)]
mod tests {
    use super::render_jinja2;

    #[test]
    fn python_methods_on_values_render_as_jinja2_renders_them() {
        // as SlapOS's templates read their parameters: dict.get with a default, items, split
        let context = serde_json::json!({"p": {"port": 8080, "names": "a b"}});
        let source = "{{ p.get('port', 1) }} {{ p.get('missing', 'dflt') }} \
            {% for k, v in p.items() %}{{ k }}{% endfor %} {{ p['names'].split() | length }}";
        assert_eq!(
            render_jinja2(source, &context).expect("renders"),
            "8080 dflt namesport 2"
        );
        // an unknown name is still an error (Strict, as the recipe's StrictUndefined)
        assert!(render_jinja2("{{ nothing }}", &context).is_err());
    }
}
