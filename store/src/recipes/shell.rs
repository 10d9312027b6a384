//! `shell` (`plone.recipe.command`): runs the part's `command` (then `update-command` is
//! ignored: outputs never change) with `$out` and every option in the environment, option
//! names with characters other than letters, digits and `_` spelt with `_`.

use std::fs;

use super::{environment, Context};
use crate::error::{io_error, Result};

pub fn build(ctx: &mut Context) -> Result<()> {
    ctx.prepare_scratch()?;
    let command = ctx
        .option("command")
        .ok_or_else(|| ctx.bad_option("command", "a `shell` part needs a `command`"))?
        .to_owned();
    let mut env = environment(ctx)?;
    for (k, v) in &ctx.drv.build.options {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        env.entry(name).or_insert_with(|| v.clone());
    }
    fs::create_dir_all(&ctx.out).map_err(|e| io_error(&ctx.out, e))?;
    let work = ctx.scratch.join("work");
    fs::create_dir_all(&work).map_err(|e| io_error(&work, e))?;
    ctx.shell("command", &command, &work, &env)
}
