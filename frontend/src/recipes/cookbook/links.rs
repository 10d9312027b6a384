//! `cns.recipe.symlink`: symbolic links the generation carries. Each line of `symlink` is
//! `source = link` (a link at `link` to `source`), or `source` alone, linked as
//! `<symlink_target>/<basename>` (its source under `symlink_base` when relative). Every link
//! lies inside the partition; its source may be anywhere (often a mutable directory).

use crate::error::Result;
use crate::pystr::{basename, path_join};
use crate::recipes::instance::{add_file, FileSpec};
use crate::recipes::Part;

/// `cns.recipe.symlink`.
pub fn symlinks(part: &mut Part) -> Result<()> {
    let lines = part.require("symlink")?;
    let base = part.get("symlink_base")?;
    let target = part.get("symlink_target")?;
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (source, link) = match line.split_once('=') {
            Some((s, l)) => (s.trim().to_owned(), l.trim().to_owned()),
            None => {
                let Some(dir) = target.as_deref() else {
                    return Err(part.option_error(
                        "symlink",
                        format!("`{line}` has no `= link` and there is no `symlink_target`"),
                    ));
                };
                let source = match base.as_deref() {
                    Some(b) if !line.starts_with('/') => path_join(b.trim(), line),
                    _ => line.to_owned(),
                };
                let link = path_join(dir.trim(), basename(line));
                (source, link)
            }
        };
        if source.is_empty() || link.is_empty() {
            return Err(part.option_error("symlink", format!("`{line}` is not `source = link`")));
        }
        add_file(part, "symlink", &link, FileSpec::Link { target: source })?;
    }
    Ok(())
}
