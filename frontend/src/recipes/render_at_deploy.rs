//! `slapos.recipe.template:jinja2` in an instance when its template is a file of the partition
//! that the render does not write: a certificate request that a `plone.recipe.command` part
//! makes (stack/caucase's `[<prefix>-provided-csr]`, `url = ${<prefix>-prepare-csr:csr}`), a
//! file of a checkout. The recipe reads its template when buildout installs the part
//! (`Recipe._render`, called by `install`), after the parts installed before it; a render runs
//! nothing, so the part's context and `import-list` templates are computed when the profile is
//! rendered (as the recipe's `__init__` does) and the generation records a step, in install
//! order with the commands and the parts installed at deploy (`deploy.rs`): after each switch,
//! the template is read in the partition (its `md5sum` checked), rendered, and the output
//! written there (a file of the partition, not of the generation), unless `once`'s file exists.
//! A dry run lists the step, saying which file it reads at deploy.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::deploy::Step;
use super::Part;
use crate::error::Result;

/// One part rendered at deploy, as the generation records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderSpec {
    pub section: String,
    /// The template's path, absolute (in the partition).
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5sum: Option<String>,
    /// The output's path, absolute (in the partition).
    pub output: String,
    /// `mode`, when given: else as the recipe, 0644, or 0755 for a script whose `#!`
    /// interpreter is executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// `once`: a file whose existence skips the render, made after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once: Option<String>,
    pub context: serde_json::Value,
    /// The `import-list` templates, by name.
    pub imports: BTreeMap<String, String>,
}

/// Records the `:jinja2` part `part`, whose template `template` is read at deploy, writing
/// `output` (the value of `option`) with `mode`.
pub fn record(
    part: &mut Part,
    template: String,
    inputs: super::template::Jinja2Inputs,
    (option, output): (&str, &str),
    mode: Option<u32>,
) -> Result<()> {
    let rel = super::instance::relative(part, option, output)?;
    let mut imports = BTreeMap::new();
    for (name, import) in inputs.imports {
        let super::template::Jinja2Template::Text(text) = import else {
            return Err(part.option_error(
                "import-list",
                format!("`{name}`: an imported template made at deploy is not supported"),
            ));
        };
        imports.insert(name, text);
    }
    let out = &part.r.instance_output;
    if out.files.contains_key(&rel) || out.dirs.contains_key(&rel) || out.kept.contains(&rel) {
        return Err(part.option_error(option, format!("`{output}` is written by another part too")));
    }
    // the file is the partition's: its directory is a real one, as the recipe makes it
    if let Some(parent) = Path::new(&rel)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        let parent = parent.to_string_lossy().into_owned();
        part.r.instance_output.dirs.entry(parent).or_insert(0o755);
    }
    part.r.instance_output.kept.insert(rel);
    let md5sum = part.get("md5sum")?.filter(|m| !m.trim().is_empty());
    let once = part.get("once")?.filter(|o| !o.trim().is_empty());
    let spec = RenderSpec {
        section: part.name.clone(),
        template,
        md5sum,
        output: crate::pystr::normpath(output.trim()),
        mode,
        once,
        context: inputs.context,
        imports,
    };
    part.r.instance_output.commands.push(Step::Render(spec));
    Ok(())
}

/// Renders one part in the partition.
pub fn run(partition: &Path, spec: &RenderSpec) -> std::result::Result<(), String> {
    if spec
        .once
        .as_deref()
        .is_some_and(|once| Path::new(once).exists())
    {
        return Ok(());
    }
    let failed = |m: String| format!("[{}] cannot render `{}`: {m}", spec.section, spec.template);
    let bytes = std::fs::read(&spec.template).map_err(|e| failed(e.to_string()))?;
    if let Some(expected) = &spec.md5sum {
        use md5::Digest;
        let actual = format!("{:x}", md5::Md5::digest(&bytes));
        if actual != expected.trim() {
            return Err(failed(format!(
                "MD5 checksum mismatch (expected {expected}, got {actual})"
            )));
        }
    }
    let source = String::from_utf8(bytes).map_err(|_| failed("it is not UTF-8".into()))?;
    let source = crate::source::normalise_newlines(&source);
    let job = slapstore_store::recipes::Jinja2Job {
        source: &source,
        context: &spec.context,
        imports: &spec.imports,
    };
    let text = slapstore_store::recipes::render_jinja2(&job).map_err(&failed)?;
    let output = Path::new(&spec.output);
    let rel = output
        .strip_prefix(partition)
        .map_err(|_| failed(format!("`{}` is not in the partition", spec.output)))?;
    super::cookbook::state::replace(partition, rel, &text)
        .map_err(|e| failed(format!("cannot write `{}`: {e}", spec.output)))?;
    let mode = spec.mode.unwrap_or_else(|| default_mode(&text));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(output, std::fs::Permissions::from_mode(mode))
        .map_err(|e| failed(format!("cannot set the mode of `{}`: {e}", spec.output)))?;
    if let Some(once) = &spec.once {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(once)
            .map_err(|e| failed(format!("cannot make `{once}`: {e}")))?;
    }
    Ok(())
}

/// The recipe's mode without `mode`: 0755 for a script whose `#!` interpreter is executable,
/// else 0644 (its 0666 or 0777 under the usual umask).
fn default_mode(text: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let interpreter = text
        .strip_prefix("#!")
        .and_then(|rest| rest.lines().next())
        .and_then(|line| line.split_whitespace().next());
    let executable = interpreter
        .and_then(|i| std::fs::metadata(i).ok())
        .is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if executable {
        0o755
    } else {
        0o644
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_script_for_an_executable_interpreter_is_executable() {
        assert_eq!(super::default_mode("#!/bin/sh\necho"), 0o755);
        assert_eq!(super::default_mode("#!/no/such/sh\necho"), 0o644);
        assert_eq!(super::default_mode("[buildout]\n"), 0o644);
    }
}
