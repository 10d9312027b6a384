//! `cmmi` (`slapos.recipe.cmmi`): unpack the source (or copy `path`), apply `patches` (local
//! files, or remote ones fetched by checksum like the source), run `pre-configure-hook`,
//! `pre-configure`, configure, `pre-make-hook`, `pre-build`, make, `pre-install`, make install,
//! `post-make-hook` and `post-install`, as slapos.recipe.cmmi does, into the output. The
//! `*-hook` options are Python functions (`FILE#MD5:FUNCTION`), run in the build's Python host
//! (`pyhost.rs`: one process serves every hook of the build).
//!
//! As in slapos.recipe.cmmi: without `configure-command`, `./configure --prefix=<prefix>` is run
//! (unless the options already give `--prefix`); with one, `make install` gets `prefix=<prefix>`;
//! commands may use `%(option)s`; the build happens in the only directory of the unpacked tree
//! when there is exactly one.

use std::fs;
use std::path::Path;

use super::{environment, interpolate, Context};
use crate::error::{io_error, Result};
use crate::unpack::{self, StripTopLevel, UnpackOptions};

pub fn build(ctx: &mut Context) -> Result<()> {
    ctx.prepare_scratch()?;
    let options = ctx.drv.build.options.clone();
    let src = ctx.scratch.join("src");
    if let Some(source) = ctx.source("url").cloned() {
        let archive = ctx.scratch.join("source-archive");
        ctx.fetch(&source, &archive)?;
        unpack::unpack(
            &archive,
            &src,
            &UnpackOptions {
                strip_top_level: StripTopLevel::No,
                ..UnpackOptions::default()
            },
        )
        .map_err(|source| crate::error::StoreError::Unpack {
            part: ctx.part(),
            source,
        })?;
    } else if let Some(path) = ctx.drv.build.files.get("path").cloned() {
        ctx.note(&format!("copying the source tree `{}`", path.display()))?;
        copy_tree(&path, &src)?;
    } else {
        return Err(ctx.bad_option("url", "you must provide either \"url\" or \"path\""));
    }
    let mut dir = src.clone();
    let entries: Vec<_> = fs::read_dir(&src)
        .map_err(|e| io_error(&src, e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| io_error(&src, e))?;
    if entries.len() == 1 && entries[0].path().is_dir() {
        dir = entries[0].path();
    }
    fs::create_dir_all(&ctx.out).map_err(|e| io_error(&ctx.out, e))?;
    let env = environment(ctx)?;
    let fmt = |ctx: &Context, key: &str, text: &str| {
        interpolate(text, &options).map_err(|m| ctx.bad_option(key, m))
    };

    let patch_binary = ctx
        .option("patch-binary")
        .unwrap_or("patch")
        .trim()
        .to_owned();
    let patch_options = words(ctx.option("patch-options").unwrap_or("-p0"));
    // local patches by path, remote ones fetched (through the download cache) by checksum
    let mut patches: Vec<(String, std::path::PathBuf)> = ctx
        .drv
        .build
        .files
        .iter()
        .filter(|(role, _)| role.starts_with("patch:"))
        .map(|(role, path)| (role.clone(), path.clone()))
        .collect();
    let remote: Vec<_> = ctx
        .drv
        .build
        .sources
        .iter()
        .filter(|s| s.role.starts_with("patch:"))
        .cloned()
        .collect();
    for source in remote {
        let dest = ctx.scratch.join(source.role.replace(':', "-"));
        ctx.fetch(&source, &dest)?;
        patches.push((source.role, dest));
    }
    patches.sort_by_key(|(role, _)| patch_index(role));
    for (_, patch) in patches {
        let script = format!(
            "{patch_binary} {patch_options} < {}",
            shell_quote(&patch.display().to_string())
        );
        ctx.shell("patch", &script, &dir, &env)?;
    }

    let prefix = options
        .get("prefix")
        .cloned()
        .unwrap_or_else(|| ctx.store_out.display().to_string());
    let make = ctx
        .option("make-binary")
        .unwrap_or("make")
        .trim()
        .to_owned();
    let make_options = words(ctx.option("make-options").unwrap_or(""));
    let mut make_targets = words(ctx.drv.option("make-targets").unwrap_or("install"));
    let mut configure_options = ctx
        .option("configure-options")
        .map(words)
        .unwrap_or_default();
    let configure = match ctx.option("configure-command").map(str::trim) {
        Some(command) => {
            if make == "make" && make_targets == "install" {
                make_targets.push_str(&format!(" prefix=\"{prefix}\""));
            }
            command.to_owned()
        }
        None => {
            if !configure_options.contains("--prefix") {
                configure_options = format!("--prefix=\"{prefix}\" {configure_options}");
            }
            "./configure".to_owned()
        }
    };
    let configure_cmd = fmt(
        ctx,
        "configure-options",
        &format!("{configure} {configure_options}"),
    )?;
    let make_cmd = fmt(ctx, "make-options", &format!("{make} {make_options}"))?;
    let install_cmd = fmt(
        ctx,
        "make-targets",
        &format!("{make} {make_options} {make_targets}"),
    )?;

    let hook = |ctx: &mut Context, key: &str, dir: &Path| -> Result<()> {
        if let Some(text) = ctx.option(key).map(str::to_owned) {
            let script = fmt(ctx, key, text.trim())?;
            ctx.shell(key, &script, dir, &env)?;
        }
        Ok(())
    };
    // slapos.recipe.cmmi's order: each Python hook before the shell command of its step
    python_hook(ctx, "pre-configure-hook", &dir, &env)?;
    hook(ctx, "pre-configure", &dir)?;
    ctx.shell("configure", &configure_cmd, &dir, &env)?;
    python_hook(ctx, "pre-make-hook", &dir, &env)?;
    hook(ctx, "pre-build", &dir)?;
    ctx.shell("make", &make_cmd, &dir, &env)?;
    hook(ctx, "pre-install", &dir)?;
    ctx.shell("make install", &install_cmd, &dir, &env)?;
    python_hook(ctx, "post-make-hook", &dir, &env)?;
    hook(ctx, "post-install", &dir)?;
    Ok(())
}

/// Runs the Python hook `key` (`FILE#MD5:FUNCTION`, its file checked when the profile was read)
/// in the build's Python host, in `dir`, with the build's environment: the first hook starts
/// the host, the others reuse it; only builds with hooks start Python.
fn python_hook(
    ctx: &mut Context,
    key: &str,
    dir: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let Some(value) = ctx.option(key).map(str::to_owned) else {
        return Ok(());
    };
    let file = ctx
        .drv
        .build
        .files
        .get(&format!("hook:{key}"))
        .cloned()
        .ok_or_else(|| ctx.bad_option(key, "the hook's file is not among the inputs"))?;
    let function = value
        .trim()
        .rsplit_once(':')
        .map(|(_, f)| f.trim().to_owned())
        .ok_or_else(|| ctx.bad_option(key, format!("`{value}` is not `FILE#MD5:FUNCTION`")))?;
    let buildout: serde_json::Value =
        serde_json::from_str(ctx.drv.option("hook-buildout").unwrap_or("{}"))
            .map_err(|e| ctx.bad_option(key, e.to_string()))?;
    let options: serde_json::Map<String, serde_json::Value> = ctx
        .drv
        .build
        .options
        .iter()
        .filter(|(k, _)| k.as_str() != "hook-buildout")
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let request = serde_json::json!({
        "op": "hook",
        "file": file,
        "function": function,
        "part": ctx.drv.name(),
        "options": options,
        "buildout": buildout,
    });
    ctx.python(key, request, dir, env)
}

/// The words of an option, joined by single spaces (as `' '.join(value.split())`).
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `patch:<i>` → `i`, so that patches apply in the order the profile lists them.
fn patch_index(role: &str) -> usize {
    role.strip_prefix("patch:")
        .and_then(|i| i.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Quotes `text` for `/bin/sh`.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Copies a source tree (files, directories, symlinks as they are).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.map_err(|e| io_error(from, std::io::Error::other(e.to_string())))?;
        let rel = entry.path().strip_prefix(from).unwrap_or(Path::new(""));
        let dest = to.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            fs::create_dir_all(&dest).map_err(|e| io_error(&dest, e))?;
        } else if kind.is_symlink() {
            let target = fs::read_link(entry.path()).map_err(|e| io_error(entry.path(), e))?;
            std::os::unix::fs::symlink(&target, &dest).map_err(|e| io_error(&dest, e))?;
        } else {
            fs::copy(entry.path(), &dest).map_err(|e| io_error(&dest, e))?;
        }
    }
    Ok(())
}
