//! The golden cases of `tests/cases/`: each profile is evaluated by the real binary and compared
//! with what zc.buildout (the oracle) resolved it to; error cases must fail with exit status 2
//! and a message that points at the right file and line.

use std::path::Path;

use serde_json::Value;

use crate::common::{repo_root, run_in};

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one case; returns a description of what differs, if anything.
fn check(case: &Path) -> Option<String> {
    let profile = case.join("buildout.cfg");
    let mut args: Vec<String> = vec![
        "eval".into(),
        "-O".into(),
        "buildout:executable=@PYTHON@".into(),
    ];
    for a in lines(&case.join("args")) {
        args.push("-O".into());
        args.push(a);
    }
    args.extend(lines(&case.join("flags")));
    args.push(profile.to_string_lossy().into_owned());
    let case_dir = case.to_string_lossy().into_owned();

    let expected_json = case.join("expected.json");
    if expected_json.exists() {
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_json).ok()?).ok()?;
        let mut json_args = args.clone();
        json_args.insert(1, "--json".into());
        let argv: Vec<&str> = json_args.iter().map(String::as_str).collect();
        let out = run_in(case, &argv);
        if out.code != 0 {
            return Some(format!("exit {}: {}", out.code, out.stderr));
        }
        let got: Value = match serde_json::from_str(&out.stdout.replace(&case_dir, "@CASE@")) {
            Ok(v) => v,
            Err(e) => return Some(format!("output is not JSON: {e}")),
        };
        if got != expected["sections"] {
            return Some(diff(&expected["sections"], &got));
        }
        // the install order, from the annotated output's first line
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let human = run_in(case, &argv);
        let parts: Vec<&str> = expected["install_parts"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let want = format!("# parts, in install order: {}", parts.join(" "));
        if human.stdout.lines().next() != Some(want.trim_end())
            && human.stdout.lines().next() != Some(want.as_str())
        {
            return Some(format!(
                "install order: want `{want}`, got `{}`",
                human.stdout.lines().next().unwrap_or("")
            ));
        }
        return None;
    }

    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_in(case, &argv);
    if out.code != 2 {
        return Some(format!(
            "expected exit 2, got {}: {}{}",
            out.code, out.stdout, out.stderr
        ));
    }
    let mut problems = Vec::new();
    for requirement in lines(&case.join("expect-error")) {
        if let Some(at) = requirement.strip_prefix("at ") {
            let (file, line) = at.rsplit_once(':').unwrap_or((at, ""));
            let want = format!("{}:{}:", case.join(file).to_string_lossy(), line);
            if !out.stderr.contains(&want) {
                problems.push(format!("does not point at {file}:{line}"));
            }
        } else if let Some(text) = requirement.strip_prefix("mentions ") {
            if !out.stderr.contains(text) {
                problems.push(format!("does not mention `{text}`"));
            }
        }
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!("{}\n{}", problems.join("; "), out.stderr))
    }
}

fn diff(expected: &Value, got: &Value) -> String {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let exp = expected.as_object().unwrap_or(&empty);
    let got = got.as_object().unwrap_or(&empty);
    for (section, options) in exp {
        match got.get(section) {
            None => out.push(format!("[{section}] missing")),
            Some(g) if g != options => {
                for (k, v) in options.as_object().unwrap_or(&empty) {
                    if g.get(k) != Some(v) {
                        out.push(format!(
                            "[{section}] {k}: want {v} got {}",
                            g.get(k).unwrap_or(&Value::Null)
                        ));
                    }
                }
                for k in g.as_object().unwrap_or(&empty).keys() {
                    if options.get(k).is_none() {
                        out.push(format!("[{section}] {k}: unexpected"));
                    }
                }
            }
            _ => {}
        }
    }
    for section in got.keys() {
        if !exp.contains_key(section) {
            out.push(format!("[{section}] unexpected section"));
        }
    }
    out.join("\n")
}

#[test]
fn golden_cases_agree_with_zc_buildout() {
    let root = repo_root().join("tests/cases");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/cases")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("buildout.cfg").exists())
        .collect();
    cases.sort();
    assert!(cases.len() > 100, "only {} cases found", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            check(c).map(|why| {
                format!(
                    "--- {}\n{why}",
                    c.file_name().unwrap_or_default().to_string_lossy()
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
