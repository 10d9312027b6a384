//! `release`: the output that groups a software profile's parts (design §6): `parts/<name>`
//! symlinks to each part's output, `release.json` (`{"parts": {name: path}}`), and the instance
//! profile as `instance.cfg` when the software profile has one: given as text
//! (`instance-profile-text`), or as the file a part rendered in its output
//! (`instance-profile-file`, a `jinja2` part's output, which the release refers to).

use std::fs;

use super::Context;
use crate::error::{io_error, Result};

pub fn build(ctx: &mut Context) -> Result<()> {
    let parts_dir = ctx.out.join("parts");
    fs::create_dir_all(&parts_dir).map_err(|e| io_error(&parts_dir, e))?;
    let parts: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(ctx.drv.option("parts-json").unwrap_or("{}"))
            .map_err(|e| ctx.bad_option("parts", e.to_string()))?;
    for (name, path) in &parts {
        let target = path.as_str().unwrap_or_default();
        let link = parts_dir.join(name);
        std::os::unix::fs::symlink(target, &link).map_err(|e| io_error(&link, e))?;
    }
    let json = serde_json::json!({ "parts": parts });
    let release = ctx.out.join("release.json");
    fs::write(&release, format!("{json:#}\n")).map_err(|e| io_error(&release, e))?;
    if let Some(text) = ctx.drv.option("instance-profile-text") {
        let dest = ctx.out.join("instance.cfg");
        fs::write(&dest, text).map_err(|e| io_error(&dest, e))?;
    } else if let Some(file) = ctx.drv.option("instance-profile-file") {
        let dest = ctx.out.join("instance.cfg");
        fs::copy(file, &dest).map_err(|e| io_error(std::path::Path::new(file), e))?;
    }
    Ok(())
}
