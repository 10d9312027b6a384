//! `slapos.cookbook:cron` and `cron.d` (`slapos.recipe.dcron`), the cookbook's approach: the
//! release builds dcron (SlapOS's `component/dcron`), `cron` writes the wrapper that runs it in
//! the foreground on the partition's directories (`crond -s cron-entries -c crontabs -t
//! cronstamps -f -l 5 -M catcher`), to be run as a service, and each `cron.d` part writes one
//! entry, `<periodicity> <command>`, into `cron-entries`. `time` takes a systemd calendar spec
//! (`systemd.time(7)`), converted as the cookbook converts it; `once-a-day` picks a random time
//! once and keeps it in the partition (`state.rs`), as the cookbook keeps its previous run's.

use super::random;
use super::state;
use crate::error::Result;
use crate::recipes::instance::{add_file, FileSpec};
use crate::recipes::wrapper::quote;
use crate::recipes::Part;

/// The cookbook's `GenericBaseRecipe.isTrueValue`.
pub fn is_true(value: &str) -> bool {
    matches!(value.to_lowercase().as_str(), "y" | "yes" | "1" | "true")
}

/// `cron`: the wrapper at `binary` that runs `dcrond-binary` on the partition's directories.
pub fn cron(part: &mut Part) -> Result<()> {
    let binary = part.require("binary")?;
    let dcrond = part.require("dcrond-binary")?;
    let entries = part.require("cron-entries")?;
    let crontabs = part.require("crontabs")?;
    let stamps = part.require("cronstamps")?;
    let catcher = part.require("catcher")?;
    let text = crond_script(dcrond.trim(), &entries, &crontabs, &stamps, &catcher);
    add_file(
        part,
        "binary",
        &binary,
        FileSpec::Text { text, mode: 0o755 },
    )
}

/// The script that runs dcron's `crond` in the foreground on these directories, mailing what
/// a job prints to `catcher`; every path quoted.
pub fn crond_script(
    crond: &str,
    entries: &str,
    crontabs: &str,
    stamps: &str,
    catcher: &str,
) -> String {
    let args = [
        crond, "-s", entries, "-c", crontabs, "-t", stamps, "-f", "-l", "5", "-M", catcher,
    ];
    let line: Vec<String> = args.iter().map(|a| quote(a)).collect();
    format!("#!/bin/sh\nexec {}\n", line.join(" "))
}

/// `cron.d`: `cron-entries/<name>` holding `<periodicity> <command>`; `periodicity` set.
pub fn cron_d(part: &mut Part) -> Result<()> {
    let periodicity = periodicity(part)?;
    part.set("periodicity", periodicity.clone());
    let dir = part.require("cron-entries")?;
    let name = part.require("name")?;
    let command = part.require("command")?;
    // one entry per part: a newline would add entries that nobody wrote as such
    for (option, value) in [("command", &command), ("name", &name)] {
        if value.contains('\n') {
            return Err(part.option_error(option, "a cron entry is one line: it holds a newline"));
        }
    }
    if name.contains('/') || name.is_empty() || name == "." || name == ".." {
        return Err(part.option_error("name", format!("`{name}` is not a file name")));
    }
    let path = crate::pystr::path_join(dir.trim(), &name);
    let text = format!("{periodicity} {command}\n");
    add_file(part, "name", &path, FileSpec::Text { text, mode: 0o644 })
}

fn periodicity(part: &mut Part) -> Result<String> {
    if let Some(f) = part.get("frequency")?.filter(|f| !f.is_empty()) {
        if f.contains('\n') {
            return Err(
                part.option_error("frequency", "a cron entry is one line: it holds a newline")
            );
        }
        return Ok(f);
    }
    if let Some(time) = part.get("time")? {
        return systemd_to_cron(&time).ok_or_else(|| {
            part.option_error(
                "time",
                format!(
                    "invalid systemd calendar spec {}",
                    crate::pystr::repr(&time)
                ),
            )
        });
    }
    if part.get("once-a-day")?.is_some_and(|v| is_true(&v)) {
        let rel = state::slot(&part.name, "periodicity");
        return random::keep(part, "once-a-day", &rel, |part| {
            let minute = random::uniform(part, 0, 59)?;
            let hour = random::uniform(part, 0, 23)?;
            Ok(format!("{minute} {hour} * * *"))
        });
    }
    Err(part.error("Missing one of 'frequency', 'once-a-day' or 'time' parameter"))
}

/// The cookbook's `systemd_to_cron`: a systemd calendar spec as a crontab spec, `None` where
/// the cookbook raises.
pub fn systemd_to_cron(spec: &str) -> Option<String> {
    let symbolic = match spec {
        "minutely" => Some("* * * * *"),
        "hourly" => Some("0 * * * *"),
        "daily" => Some("0 0 * * *"),
        "weekly" => Some("0 0 * * 0"),
        "monthly" => Some("0 0 1 * *"),
        "yearly" => Some("0 0 1 1 *"),
        _ => None,
    };
    if let Some(s) = symbolic {
        return Some(s.to_owned());
    }
    if spec.trim().is_empty() {
        return None;
    }
    let mut words: Vec<&str> = spec.split(' ').collect();
    let day_of_week = |name: &str| -> Option<usize> {
        let name = name.to_lowercase();
        [
            "sunday",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
        ]
        .iter()
        .position(|d| *d == name || d[..3] == name)
    };
    let dows: Option<Vec<String>> = words[0]
        .split(',')
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.splitn(2, '-')
                .map(|d| day_of_week(d).map(|n| n.to_string()))
                .collect::<Option<Vec<_>>>()
                .map(|v| v.join("-"))
        })
        .collect();
    let dow = match dows {
        Some(mut d) => {
            d.sort();
            words.remove(0);
            d.join(",")
        }
        None => "*".to_owned(),
    };
    let mut day = if words.is_empty() {
        "*-*".to_owned()
    } else {
        words.remove(0).to_owned()
    };
    let time = match words.len() {
        0 if day.contains(':') => std::mem::replace(&mut day, "*-*".to_owned()),
        0 => "0:0".to_owned(),
        1 => words[0].to_owned(),
        _ => return None,
    };
    let mut day: Vec<&str> = day.split('-').collect();
    let mut time: Vec<&str> = time.split(':').collect();
    if day.len() > 2 && day.remove(0) != "*" {
        return None;
    }
    if dow != "*" && *day.get(1)? != "*" {
        return None;
    }
    if time.len() > 2 && python_int(time.pop()?)? != 0 {
        return None;
    }
    let [month, day] = day[..] else { return None };
    let [hour, minute] = time[..] else {
        return None;
    };
    let mut spec: Vec<String> = [minute, hour, day, month, &dow]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (i, (y, z)) in [(0, 60), (0, 24), (1, 31), (1, 12)].into_iter().enumerate() {
        if spec[i] == "*" {
            continue;
        }
        let field = spec[i].clone();
        for x in field.split(',') {
            let x: Vec<i64> = x
                .splitn(2, '/')
                .map(python_int)
                .collect::<Option<Vec<_>>>()?;
            let a = x[0] - y;
            if (0..z).contains(&a) {
                if x.len() == 1 {
                    continue;
                }
                let b = x[1];
                if b > 0 {
                    let a = (z - a - 1).div_euclid(b) * b;
                    if a != 0 {
                        spec[i] = format!("{}-{}/{}", x[0], x[0] + a, b);
                        continue;
                    }
                }
            }
            return None;
        }
    }
    Some(spec.join(" "))
}

/// Python's `int(text)` for decimal text (surrounding whitespace allowed).
fn python_int(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() || t.contains(|c: char| c.is_whitespace()) {
        return None;
    }
    t.replace('_', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_specs_convert_as_the_cookbook_converts_them() {
        for (spec, cron) in [
            ("daily", Some("0 0 * * *")),
            ("weekly", Some("0 0 * * 0")),
            ("*-*-* 00:00:00", Some("00 00 * * *")),
            ("Mon,Fri 12:30", Some("30 12 * * 1,5")),
            ("mon-fri *-* 8:00", Some("00 8 * * 1-5")),
            ("*:0/15", Some("0-45/15 * * * *")),
            ("2:30", Some("30 2 * * *")),
            ("*-*-1 3:00", Some("00 3 1 * *")),
            ("Mon *-*-1", None),
            ("25:00", None),
            ("2020-*-* 1:00", None),
            ("1:00:30", None),
            ("", None),
            ("a b c", None),
            ("Sun", Some("0 0 * * 0")),
            ("Mon", Some("0 0 * * 1")),
            ("*-*-* 1:2:3", None),
            ("*-* 1", None),
            ("1", None),
            ("*:*", Some("* * * * *")),
        ] {
            assert_eq!(systemd_to_cron(spec).as_deref(), cron, "{spec}");
        }
    }
}
