//! `slapstore completions SHELL` and `slapstore man`: shell completion scripts and manual pages
//! generated from the clap definition of the command line, so they never disagree with it.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use clap_complete::Shell;

use super::report;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write `slapstore.1` and one page per command (`slapstore-instance-create.1`, ...) into
    /// this directory instead of printing `slapstore.1`.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completion script of `C` for a shell.
pub fn completions<C: CommandFactory>(args: CompletionsArgs) -> i32 {
    let mut command = super::help::command::<C>(Some(super::report::ColorMode::Never));
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "slapstore", &mut out);
    super::print(&String::from_utf8_lossy(&out))
}

/// Prints the manual page of `C`, or writes every page into `--dir`.
pub fn man<C: CommandFactory>(args: ManArgs) -> i32 {
    let command = super::help::command::<C>(Some(super::report::ColorMode::Never));
    match args.dir {
        Some(dir) => {
            let written = std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(command, &dir));
            match written {
                Ok(()) => super::print(&format!("wrote the manual pages into {}\n", dir.display())),
                Err(e) => report::failure(&format!("cannot write into `{}`: {e}", dir.display())),
            }
        }
        None => {
            let mut out = Vec::new();
            match clap_mangen::Man::new(command).render(&mut out) {
                Ok(()) => super::print(&String::from_utf8_lossy(&out)),
                Err(e) => report::failure(&format!("cannot render the manual page: {e}")),
            }
        }
    }
}
