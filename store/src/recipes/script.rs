//! `script` (`slapos.recipe.build` with Python `install` code): the code runs in the build's
//! Python host (`pyhost.rs`), in the scratch directory, with `options`, `location` (inside the
//! output, which the code makes), `self.buildout` (the sections captured when the profile was
//! read, `buildout-sections`) and the helpers of slapos.recipe.build's `Script`. Every source of
//! the derivation is fetched first, by checksum through the download cache, outside the sandbox
//! (which has no network): `self.download` finds them there, and nothing else.

use std::fs;

use super::Context;
use crate::error::{io_error, Result};

pub fn build(ctx: &mut Context) -> Result<()> {
    ctx.prepare_scratch()?;
    let code = ctx
        .option("install")
        .ok_or_else(|| ctx.bad_option("install", "a `script` part needs `install` code"))?
        .to_owned();
    let mut downloads = Vec::new();
    let dir = ctx.scratch.join("downloads");
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    for (i, source) in ctx.drv.build.sources.clone().into_iter().enumerate() {
        let dest = dir.join(format!("{i}"));
        ctx.fetch(&source, &dest)?;
        downloads.push(serde_json::json!({
            "checksum": source.checksum,
            "urls": source.urls,
            "path": dest,
        }));
    }
    fs::create_dir_all(&ctx.out).map_err(|e| io_error(&ctx.out, e))?;
    let buildout: serde_json::Value =
        serde_json::from_str(ctx.drv.option("buildout-sections").unwrap_or("{}"))
            .map_err(|e| ctx.bad_option("buildout-sections", e.to_string()))?;
    let options: serde_json::Map<String, serde_json::Value> = ctx
        .drv
        .build
        .options
        .iter()
        .filter(|(k, _)| k.as_str() != "buildout-sections")
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let request = serde_json::json!({
        "op": "install",
        "part": ctx.drv.name(),
        "code": code,
        "options": options,
        "buildout": buildout,
        "downloads": downloads,
        "files": ctx.drv.build.files.values().collect::<Vec<_>>(),
    });
    let env = super::base_environment(ctx);
    let scratch = ctx.scratch.clone();
    ctx.python("install code", request, &scratch, &env)
}
