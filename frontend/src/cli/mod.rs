//! The `slapstore` command line: argument parsing, printing, and the mapping of errors to exit
//! codes (0 ok, 1 failed, 2 bad usage or bad profile). The only module that prints.

mod eval;
mod report;

use clap::{Parser, Subcommand};

/// Nix-style store for SlapOS buildout profiles.
#[derive(Parser, Debug)]
#[command(
    name = "slapstore",
    version,
    about = "Nix-style store for SlapOS buildout profiles",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the resolved configuration of a profile, as zc.buildout resolves it.
    Eval(eval::EvalArgs),
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Eval(args) => eval::run(args),
    }
}
