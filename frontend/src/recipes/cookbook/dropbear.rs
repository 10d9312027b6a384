//! `slapos.cookbook:dropbear.add_authorized_key`: `<home>/.ssh/authorized_keys` holding `key`,
//! exactly as given (the cookbook writes the option's text, replacing the file when it
//! differs), in `<home>/.ssh`, made with mode 0700 when it does not exist (the cookbook's
//! `createDirectory`).

use crate::error::Result;
use crate::recipes::instance::{add_file, relative, FileSpec};
use crate::recipes::Part;

/// `dropbear.add_authorized_key`.
pub fn add_authorized_key(part: &mut Part) -> Result<()> {
    let key = part.require("key")?;
    let home = part.require("home")?;
    let ssh = crate::pystr::path_join(home.trim(), ".ssh");
    let rel = relative(part, "home", &ssh)?;
    part.r.instance_output.dirs.entry(rel).or_insert(0o700);
    let file = crate::pystr::path_join(&ssh, "authorized_keys");
    // as Python's `open(filename, 'w')` makes it, under the usual umask 022
    let spec = FileSpec::Text {
        text: key,
        mode: 0o644,
    };
    add_file(part, "home", &file, spec)
}
