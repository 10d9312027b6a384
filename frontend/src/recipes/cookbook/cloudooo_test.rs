//! `slapos.cookbook:cloudooo.test` (`slapos.recipe.erp5_test:CloudoooRecipe`), natively: the
//! two test runners of a cloudooo instance, as the cookbook's `runTestSuite` runs them.
//! `run-unit-test` runs `run-unit-test-binary --paster_path <ooo-paster> <configuration-file>`
//! and `run-test-suite` runs `run-test-suite-binary`, each with its own arguments after, and
//! `prepend-path` before the `PATH`. As the cookbook's (which avoids the kernel's limit on a
//! `#!` line's length), a binary starting with `#!` is run by the interpreter that line names
//! (the whole rest of the line, trimmed), given the binary's path first. POSIX shell scripts,
//! every value quoted.

use crate::error::Result;
use crate::recipes::instance::{add_file, FileSpec};
use crate::recipes::wrapper::quote;
use crate::recipes::Part;

/// `cloudooo.test`.
pub fn cloudooo_test(part: &mut Part) -> Result<()> {
    let prepend = part.require("prepend-path")?;
    let paster = part.require("ooo-paster")?;
    let configuration = part.require("configuration-file")?;
    let unit = part.require("run-unit-test-binary")?;
    let suite = part.require("run-test-suite-binary")?;
    let text = runner(&prepend, &[&unit, "--paster_path", &paster, &configuration]);
    let path = part.require("run-unit-test")?;
    add_file(
        part,
        "run-unit-test",
        &path,
        FileSpec::Text { text, mode: 0o755 },
    )?;
    let text = runner(&prepend, &[&suite]);
    let path = part.require("run-test-suite")?;
    add_file(
        part,
        "run-test-suite",
        &path,
        FileSpec::Text { text, mode: 0o755 },
    )
}

/// The cookbook's `runTestSuite(args, {'prepend_path': prepend})`.
fn runner(prepend: &str, args: &[&str]) -> String {
    let rest: Vec<String> = args[1..].iter().map(|a| quote(a)).collect();
    let rest = rest.iter().map(|a| format!(" {a}")).collect::<String>();
    format!(
        "#!/bin/sh\n\
         PATH={prepend}${{PATH+:$PATH}}\n\
         export PATH\n\
         exe={exe}\n\
         IFS= read -r line < \"$exe\" || :\n\
         case $line in\n\
         '#!'*)\n\
         \x20 interpreter=$(printf '%s\\n' \"${{line#??}}\" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')\n\
         \x20 exec \"$interpreter\" \"$exe\"{rest} \"$@\" ;;\n\
         esac\n\
         exec \"$exe\"{rest} \"$@\"\n",
        prepend = quote(prepend),
        exe = quote(args[0]),
    )
}
