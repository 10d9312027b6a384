//! `slapstore eval PROFILE`: the resolved configuration, as JSON (`--json`) or annotated with
//! where every value came from.

use std::io::Write;

use clap::Args;
use serde_json::{Map, Value as Json};

use crate::condition::Target;
use crate::config::Origin;
use crate::evaluate::{evaluate, EvalOptions, Evaluation};
use crate::load::Assignment;
use crate::source::Sources;

use super::report;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The profile (`software.cfg`, `buildout.cfg`, ...).
    profile: String,
    /// Override an option, like buildout's `section:option=value` (`+=`, `-=` too).
    #[arg(short = 'O', long = "option", value_name = "SECTION:OPTION=VALUE")]
    options: Vec<String>,
    /// Print `{section: {option: value}}` as JSON.
    #[arg(long)]
    json: bool,
    /// Also resolve the sections that no part reaches.
    #[arg(long)]
    all_sections: bool,
    /// Evaluate conditional sections for this target (`python=3.12`, `machine=aarch64`,
    /// `bits=32`, `platform=linux`, `implementation=pypy`, `endian=big`, `os-name=nt`).
    #[arg(long, value_name = "KEY=VALUE")]
    target: Vec<String>,
    /// The Python interpreter that runs profile code (default: `$SLAPSTORE_PYTHON` or `python3`).
    #[arg(long, value_name = "PATH")]
    python: Option<String>,
}

pub fn run(args: EvalArgs) -> i32 {
    let mut sources = Sources::default();
    let mut options = EvalOptions {
        all_sections: args.all_sections,
        python: args
            .python
            .or_else(|| std::env::var("SLAPSTORE_PYTHON").ok())
            .unwrap_or_else(default_python),
        ..EvalOptions::default()
    };
    for text in &args.options {
        match Assignment::parse(text) {
            Ok(a) => options.assignments.push(a),
            Err(e) => return report::error(&sources, &e),
        }
    }
    let mut target = Target::default();
    for setting in &args.target {
        let result = match setting.split_once('=') {
            Some((k, v)) => target.set(k, v),
            None => Err(format!("`--target {setting}`: expected KEY=VALUE")),
        };
        if let Err(message) = result {
            return report::usage(&message);
        }
    }
    options.target = target;
    match evaluate(&mut sources, &args.profile, &options) {
        Ok(evaluation) => {
            for (name, e) in &evaluation.failed {
                report::warning(&sources, &format!("section [{name}] not resolved"), e);
            }
            let out = if args.json {
                json(&evaluation)
            } else {
                human(&sources, &evaluation)
            };
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Ok(()) => 0,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
                Err(e) => report::usage(&format!("cannot write the output: {e}")),
            }
        }
        Err(e) => report::error(&sources, &e),
    }
}

/// `python3` as found on `PATH` (buildout's `executable` is an absolute path).
fn default_python() -> String {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("python3"))
                .find(|p| p.is_file())
        })
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "python3".into())
}

fn json(evaluation: &Evaluation) -> String {
    let mut names: Vec<&String> = evaluation.sections.keys().collect();
    names.sort();
    let mut root = Map::new();
    for name in names {
        let mut options: Vec<_> = evaluation.sections[name].iter().collect();
        options.sort_by(|a, b| a.0.cmp(b.0));
        let section: Map<String, Json> = options
            .into_iter()
            .map(|(k, v)| (k.clone(), Json::String(v.text.clone())))
            .collect();
        root.insert(name.clone(), Json::Object(section));
    }
    let mut out = serde_json::to_string_pretty(&Json::Object(root)).unwrap_or_default();
    out.push('\n');
    out
}

/// The configuration in buildout's syntax, each value followed by where it came from.
fn human(sources: &Sources, evaluation: &Evaluation) -> String {
    let cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!(
        "# parts, in install order: {}\n",
        evaluation.parts.join(" ")
    ));
    for (name, options) in &evaluation.sections {
        out.push_str(&format!("\n[{name}]\n"));
        let mut options: Vec<_> = options.iter().collect();
        options.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in options {
            let origin = describe(sources, &value.origin, &cwd);
            let mut lines = value.text.split('\n');
            let first = lines.next().unwrap_or("");
            out.push_str(&format!("{key} = {first}  # {origin}\n"));
            for line in lines {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

fn describe(sources: &Sources, origin: &Origin, cwd: &str) -> String {
    match origin {
        Origin::File(span) => {
            let file = sources.get(span.file);
            let (line, _) = file.line_col(span.start as usize);
            let name = file
                .name
                .strip_prefix(cwd)
                .and_then(|p| p.strip_prefix('/'))
                .unwrap_or(&file.name);
            format!("{name}:{line}")
        }
        Origin::Default => "buildout default".into(),
        Origin::Computed => "computed by buildout".into(),
        Origin::CommandLine => "command line".into(),
        Origin::Recipe(r) => format!("set by recipe {r}"),
        Origin::Code(s) => format!("set by the init code of [{s}]"),
    }
}
