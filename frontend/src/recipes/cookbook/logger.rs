//! `slapos.cookbook:simplelogger`: the executable `wrapper` that appends what it reads on
//! stdin to `log`, each line after a `%Y-%m-%d.%H:%M.%s:` prefix taken when it starts, then a
//! `------------------------` line (the cookbook's `simplelogger.log`, byte for byte: Python's
//! `print(prefix, line, end=' ')` leaves a space after each newline). dcron's `-M` catcher
//! (`cron.rs`) is such a logger. Written as a POSIX shell script, no Python; `log` quoted.

use crate::error::Result;
use crate::recipes::instance::{add_file, FileSpec};
use crate::recipes::wrapper::quote;
use crate::recipes::Part;

/// `simplelogger`: the logger script at `wrapper`.
pub fn simplelogger(part: &mut Part) -> Result<()> {
    let wrapper = part.require("wrapper")?;
    let log = part.require("log")?;
    let text = format!(
        "#!/bin/sh\n\
         prefix=$(date +%Y-%m-%d.%H:%M.%s:)\n\
         {{\n\
         \x20 while IFS= read -r line; do printf '%s %s\\n ' \"$prefix\" \"$line\"; done\n\
         \x20 [ -z \"$line\" ] || printf '%s %s ' \"$prefix\" \"$line\"\n\
         \x20 printf '%s %s\\n' \"$prefix\" ------------------------\n\
         }} >> {log}\n",
        log = quote(log.trim())
    );
    add_file(
        part,
        "wrapper",
        &wrapper,
        FileSpec::Text { text, mode: 0o755 },
    )
}
