//! Promise recipes: executables that `instance status` runs to tell whether the instance
//! works (`crate::promises`). `slapos.cookbook:check_port_listening` writes the cookbook's
//! script at `path`: exit 0 when `hostname`:`port` accepts a TCP connection, else a message and
//! exit 127. Written for `python3`, as the cookbook writes it for its Python; the host is a
//! Python string literal (`repr`) and the port an integer, so neither is code.

use crate::error::Result;
use crate::pystr::repr;
use crate::recipes::instance::{add_file, FileSpec};
use crate::recipes::Part;

/// `check_port_listening`.
pub fn check_port_listening(part: &mut Part) -> Result<()> {
    let path = part.require("path")?;
    let hostname = part.require("hostname")?;
    let port = part.require("port")?;
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| part.option_error("port", format!("`{port}` is not a port number")))?;
    let text = format!(
        "#!/usr/bin/env python3\n\
         # BEWARE: This file is operated by slapos node\n\
         # BEWARE: It will be overwritten automatically\n\
         import socket\n\
         import sys\n\
         \n\
         addr = {host}, {port}\n\
         \n\
         try:\n\
         \x20 socket.create_connection(addr).close()\n\
         except (socket.error, socket.timeout):\n\
         \x20 sys.stderr.write(\"%s on %s isn't listening\\n\" % addr)\n\
         \x20 sys.exit(127)\n",
        host = repr(hostname.trim()),
    );
    add_file(part, "path", &path, FileSpec::Text { text, mode: 0o755 })
}
