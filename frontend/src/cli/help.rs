//! Which global options each command's `--help` shows: all are accepted everywhere (before or
//! after the command's name), but a command's help lists only those that change what it does
//! (`-j` and the substituters for the commands that build, `--partitions` for `instance`, no
//! `--root` for `eval`), so that `--help` describes the command, not the whole tool.

use clap::{Command, CommandFactory};

/// Global options that only some commands use, and those commands (a prefix of the command's
/// path matches: `instance` covers `instance create`).
const NARROW: &[(&str, &[&str])] = &[
    (
        "jobs",
        &["build", "instance create", "instance upgrade", "node"],
    ),
    (
        "substituters",
        &[
            "build",
            "instance create",
            "instance upgrade",
            "cache pull",
            "node",
        ],
    ),
    (
        "trusted_keys",
        &[
            "build",
            "instance create",
            "instance upgrade",
            "cache pull",
            "node",
        ],
    ),
    ("partitions", &["instance", "node"]),
    (
        "download_timeout",
        &["build", "instance create", "instance upgrade", "node"],
    ),
];

/// Commands that do not touch a store.
const STORELESS: &[&str] = &["eval", "completions", "man", "help"];

fn applies(id: &str, path: &str) -> bool {
    let first = path.split(' ').next().unwrap_or("");
    if id == "root" {
        return !STORELESS.contains(&first);
    }
    match NARROW.iter().find(|(narrow, _)| *narrow == id) {
        Some((_, users)) => users
            .iter()
            .any(|u| path == *u || path.starts_with(&format!("{u} ")) || u.starts_with(path)),
        None => true,
    }
}

/// The command line's definition, built, with each command's help narrowed; clap's own
/// messages coloured as `--color` says.
pub fn command<C: CommandFactory>(color: Option<super::report::ColorMode>) -> Command {
    use super::report::ColorMode;
    let choice = match color {
        Some(ColorMode::Always) => clap::ColorChoice::Always,
        Some(ColorMode::Never) => clap::ColorChoice::Never,
        Some(ColorMode::Auto) | None => clap::ColorChoice::Auto,
    };
    let mut command = C::command().color(choice);
    command.build();
    narrow(command, "")
}

fn narrow(mut command: Command, path: &str) -> Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        command = command.mut_subcommand(&name, |sub| {
            // `mut_args` keeps the arguments' order, which the built command's index relies on
            // (`mut_arg` would move the argument to the end)
            let sub = sub.mut_args(|a| {
                if a.is_global_set() && !applies(a.get_id().as_str(), &sub_path) {
                    a.hide(true)
                } else {
                    a
                }
            });
            narrow(sub, &sub_path)
        });
    }
    command
}

#[cfg(test)]
mod tests {
    use super::{applies, command};

    /// Every command and argument of the real definition has its line of help.
    #[test]
    fn every_argument_has_a_help_line() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if c.get_about().is_none() && !path.is_empty() {
                missing.push(format!("`{path}` has no description"));
            }
            for a in c.get_arguments() {
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("`{path}` argument `{}`", a.get_id()));
                }
            }
            for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, format!("{path} {}", sub.get_name()).trim(), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command::<crate::cli::Cli>(None), "", &mut missing);
        assert!(missing.is_empty(), "no help: {missing:#?}");
    }

    #[test]
    fn options_apply_where_they_are_used() {
        assert!(applies("jobs", "build"));
        assert!(applies("jobs", "instance create"));
        assert!(
            applies("jobs", "instance"),
            "`instance --help` lists what its commands take"
        );
        assert!(!applies("jobs", "instance list"));
        assert!(!applies("jobs", "why-alive"));
        assert!(applies("partitions", "instance destroy"));
        assert!(!applies("partitions", "gc"));
        assert!(!applies("root", "eval"));
        assert!(applies("root", "gc"));
        assert!(applies("color", "eval"));
    }
}
