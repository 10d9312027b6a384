//! `generation`: the output of one generation of an instance — the files its instance profile
//! renders under the partition (`files-json`: relative path → `{"text", "mode"}` or
//! `{"link"}`), written at those relative paths. Mutable directories are not in it: they live
//! in the partition.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use super::Context;
use crate::error::{io_error, Result};

pub fn build(ctx: &mut Context) -> Result<()> {
    let files: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(ctx.drv.option("files-json").unwrap_or("{}"))
            .map_err(|e| ctx.bad_option("files-json", e.to_string()))?;
    fs::create_dir_all(&ctx.out).map_err(|e| io_error(&ctx.out, e))?;
    for (rel, spec) in &files {
        let relative = Path::new(rel);
        if relative.as_os_str().is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(ctx.bad_option(
                "files-json",
                format!("`{rel}` is not a relative path inside the partition"),
            ));
        }
        let dest = ctx.out.join(relative);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        if let Some(target) = spec.get("link").and_then(|t| t.as_str()) {
            std::os::unix::fs::symlink(target, &dest).map_err(|e| io_error(&dest, e))?;
            continue;
        }
        let text = spec.get("text").and_then(|t| t.as_str()).unwrap_or("");
        fs::write(&dest, text).map_err(|e| io_error(&dest, e))?;
        if let Some(mode) = spec.get("mode").and_then(|m| m.as_u64()) {
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode as u32 & 0o777))
                .map_err(|e| io_error(&dest, e))?;
        }
    }
    Ok(())
}
