//! `download` and `download-unpacked` (`slapos.recipe.build:download[-unpacked]`): fetch the
//! `url` (checked against its checksum) into `<out>/<filename or part name>`, or unpack it as
//! the output, its single top-level directory stripped unless `strip-top-level-dir = false`.

use std::fs;
use std::path::Path;

use super::Context;
use crate::error::{io_error, Result, StoreError};
use crate::unpack::{self, StripTopLevel, UnpackOptions};

pub fn file(ctx: &mut Context) -> Result<()> {
    let source = ctx
        .source("url")
        .cloned()
        .ok_or_else(|| ctx.bad_option("url", "a download needs a `url`"))?;
    let name = ctx
        .option("filename")
        .map(|f| Path::new(f.trim()).file_name().map(|n| n.to_owned()))
        .unwrap_or(None)
        .unwrap_or_else(|| ctx.drv.name().into());
    fs::create_dir_all(&ctx.out).map_err(|e| io_error(&ctx.out, e))?;
    let dest = ctx.out.join(name);
    ctx.fetch(&source, &dest)
}

pub fn unpacked(ctx: &mut Context) -> Result<()> {
    let source = ctx
        .source("url")
        .cloned()
        .ok_or_else(|| ctx.bad_option("url", "a download needs a `url`"))?;
    let strip = match ctx.option("strip-top-level-dir").map(str::trim) {
        None => StripTopLevel::Auto,
        Some("true") => StripTopLevel::Yes,
        Some("false") => StripTopLevel::No,
        Some(other) => {
            return Err(ctx.bad_option(
                "strip-top-level-dir",
                format!("must be `true` or `false`, not `{other}`"),
            ))
        }
    };
    fs::create_dir_all(&ctx.scratch).map_err(|e| io_error(&ctx.scratch, e))?;
    let archive = ctx.scratch.join("archive");
    ctx.fetch(&source, &archive)?;
    unpack::unpack(
        &archive,
        &ctx.out,
        &UnpackOptions {
            strip_top_level: strip,
            ..UnpackOptions::default()
        },
    )
    .map_err(|source| StoreError::Unpack {
        part: ctx.part(),
        source,
    })
}
