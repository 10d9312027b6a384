//! `slapstore eval PROFILE`: the resolved configuration, as JSON (`--json`) or annotated with
//! where every value came from.

use std::io::Write;

use clap::Args;

use crate::condition::Target;
use crate::config::Origin;
use crate::evaluate::{evaluate, EvalOptions, Evaluation};
use crate::load::Assignment;
use crate::source::Sources;

use super::report;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    profile: ProfileArgs,
    /// Print `{section: {option: value}}` as JSON.
    #[arg(long)]
    json: bool,
    /// Also resolve the sections that no part reaches.
    #[arg(long)]
    all_sections: bool,
}

/// The profile to evaluate and how: shared by `eval`, `plan` and `build`.
#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// The profile (`software.cfg`, `buildout.cfg`, ...).
    pub profile: String,
    /// Override an option, like buildout's `section:option=value` (`+=`, `-=` too).
    #[arg(short = 'O', long = "option", value_name = "SECTION:OPTION=VALUE")]
    options: Vec<String>,
    /// Evaluate conditional sections for this target (`python=3.12`, `machine=aarch64`,
    /// `bits=32`, `platform=linux`, `implementation=pypy`, `endian=big`, `os-name=nt`).
    #[arg(long, value_name = "KEY=VALUE")]
    target: Vec<String>,
    /// The Python interpreter that runs profile code (default: `$SLAPSTORE_PYTHON` or `python3`).
    #[arg(long, value_name = "PATH")]
    python: Option<String>,
}

impl ProfileArgs {
    /// The arguments for `profile` evaluated with the defaults.
    pub fn from_profile(profile: &str) -> ProfileArgs {
        ProfileArgs {
            profile: profile.to_owned(),
            options: Vec::new(),
            target: Vec::new(),
            python: None,
        }
    }

    /// The evaluation options these arguments give, or the exit status of their error.
    pub fn eval_options(&self, sources: &Sources) -> Result<EvalOptions, i32> {
        let mut options = EvalOptions {
            python: self
                .python
                .clone()
                .or_else(|| std::env::var("SLAPSTORE_PYTHON").ok())
                .unwrap_or_else(default_python),
            ..EvalOptions::default()
        };
        for text in &self.options {
            match Assignment::parse(text) {
                Ok(a) => options.assignments.push(a),
                Err(e) => return Err(report::error(sources, &e)),
            }
        }
        let mut target = Target::default();
        for setting in &self.target {
            let result = match setting.split_once('=') {
                Some((k, v)) => target.set(k, v),
                None => Err(format!("`--target {setting}`: expected KEY=VALUE")),
            };
            if let Err(message) = result {
                return Err(report::usage(&message));
            }
        }
        options.target = target;
        Ok(options)
    }
}

pub fn run(args: EvalArgs) -> i32 {
    let mut sources = Sources::default();
    let mut options = match args.profile.eval_options(&sources) {
        Ok(o) => o,
        Err(code) => return code,
    };
    options.all_sections = args.all_sections;
    match evaluate(&mut sources, &args.profile.profile, &options) {
        Ok(evaluation) => {
            for (name, e) in &evaluation.failed {
                report::warning(&sources, &format!("section [{name}] not resolved"), e);
            }
            let out = if args.json {
                json(&evaluation)
            } else {
                human(&sources, &evaluation).into_bytes()
            };
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&out).and_then(|_| stdout.flush()) {
                Ok(()) => 0,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
                Err(e) => report::usage(&format!("cannot write the output: {e}")),
            }
        }
        Err(e) => report::error(&sources, &e),
    }
}

/// `python3` as found on `PATH` (buildout's `executable` is an absolute path), past a shim
/// (`python::interpreter`).
pub fn default_python() -> String {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("python3"))
                .find(|p| p.is_file())
        })
        .map(|p| {
            crate::python::interpreter::resolve(&p)
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_else(|| "python3".into())
}

/// `{section: {option: value}}`, keys sorted, written straight from the evaluation.
fn json(evaluation: &Evaluation) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    let mut names: Vec<&String> = evaluation.sections.keys().collect();
    names.sort();
    out.push(b'{');
    for (i, name) in names.into_iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
        string(&mut out, name);
        out.extend_from_slice(b": {");
        let mut options: Vec<_> = evaluation.sections[name].iter().collect();
        options.sort_by(|a, b| a.0.cmp(b.0));
        for (j, (key, value)) in options.iter().enumerate() {
            out.extend_from_slice(if j == 0 { b"\n    " } else { b",\n    " });
            string(&mut out, key);
            out.extend_from_slice(b": ");
            string(&mut out, &value.text);
        }
        out.extend_from_slice(if options.is_empty() { b"}" } else { b"\n  }" });
    }
    out.extend_from_slice(b"\n}\n");
    out
}

/// A JSON string literal.
fn string(out: &mut Vec<u8>, s: &str) {
    // writing to a Vec cannot fail, and a str always serialises
    let _ = serde_json::to_writer(&mut *out, s);
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
        Origin::Parameter => "instance parameter".into(),
        Origin::Recipe(r) => format!("set by recipe {r}"),
        Origin::Code(s) => format!("set by the init code of [{s}]"),
    }
}
