//! `slapos.cookbook:zero-knowledge.read`: when buildout initialises the part, the INI file at
//! `file-path` (or `filename`, relative to the partition) is read, if it exists, and every key
//! of every section becomes an option of the part; when it does not exist, the options stay as
//! written. Profiles pair it with code that writes the file at deploy (turnserver's
//! `[gen-secret]` writes `[turnserver] secret = …`), so the first render sees the option as
//! written (`secret =`, empty) and later renders the secret: buildout's first run and its
//! next ones, the same. A dry run, which has no partition, is such a first render. The file is
//! read as Python's `configparser.ConfigParser` reads it: keys lower-cased, `=` or `:`,
//! indented continuation lines, `DEFAULT`'s keys in every section; a `%` (which its
//! interpolation would expand) is an error rather than a value it might not give, and the file
//! is never read through a link (`state::read`).

use std::path::Path;

use super::state;
use crate::error::Result;
use crate::recipes::instance::relative;
use crate::recipes::Part;

/// `zero-knowledge.read`.
pub fn read(part: &mut Part) -> Result<()> {
    let (option, path) = match part.get("filename")?.filter(|f| !f.trim().is_empty()) {
        Some(name) => ("filename", name.trim().to_owned()),
        None => match part.get("file-path")? {
            Some(path) => ("file-path", path.trim().to_owned()),
            None => {
                return Err(part
                    .error("You have to provide the parameter either \"filename\" or file-path"))
            }
        },
    };
    let rel = relative(part, option, &path)?;
    let partition = part.buildout("directory")?;
    let text = state::read(Path::new(&partition), Path::new(&rel))
        .map_err(|e| part.option_error(option, format!("cannot read `{path}`: {e}")))?;
    let Some(text) = text else {
        return Ok(());
    };
    let items = items(&text).map_err(|m| part.option_error(option, format!("`{path}`: {m}")))?;
    for (key, value) in items {
        part.set(&key, value);
    }
    Ok(())
}

/// Every `(key, value)` of every section but `DEFAULT`, in order, `DEFAULT`'s keys after each
/// section's own (`ConfigParser.items(section)`), a later section's overriding an earlier's.
fn items(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    // the option continuation lines extend, its indentation, and blank lines seen since
    let mut current: Option<(usize, usize)> = None;
    let mut blanks = 0;
    for (n, line) in text.lines().enumerate() {
        let stripped = line.trim();
        let indent = line.len() - line.trim_start().len();
        if stripped.is_empty() {
            blanks += 1;
            continue;
        }
        if stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        if let Some((s, indent_of)) = current {
            if indent > indent_of {
                let value = &mut sections[s].1.last_mut().ok_or("no option")?.1;
                for _ in 0..blanks {
                    value.push('\n');
                }
                value.push('\n');
                value.push_str(stripped);
                blanks = 0;
                continue;
            }
        }
        blanks = 0;
        if let Some(name) = stripped.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            sections.push((name.to_owned(), Vec::new()));
            current = None;
            continue;
        }
        let Some(at) = stripped.find(['=', ':']) else {
            return Err(format!("line {}: `{stripped}` is not `key = value`", n + 1));
        };
        let Some(last) = sections.len().checked_sub(1) else {
            return Err(format!(
                "line {}: an option before any section header",
                n + 1
            ));
        };
        let key = stripped[..at].trim().to_lowercase();
        let value = stripped[at + 1..].trim().to_owned();
        let options = &mut sections[last].1;
        options.retain(|(k, _)| *k != key);
        options.push((key, value));
        current = Some((last, indent));
    }
    let defaults: Vec<(String, String)> = sections
        .iter()
        .filter(|(name, _)| name == "DEFAULT")
        .flat_map(|(_, o)| o.clone())
        .collect();
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, options) in sections.iter().filter(|(name, _)| name != "DEFAULT") {
        let own = options.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>();
        let inherited = defaults.iter().filter(|(k, _)| !own.contains(&k.as_str()));
        for (key, value) in options.iter().chain(inherited) {
            if value.contains('%') {
                return Err(format!(
                    "[{name}] `{key}` holds `%`, which configparser's interpolation would expand"
                ));
            }
            out.retain(|(k, _)| k != key);
            out.push((key.clone(), value.trim_end().to_owned()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::items;

    #[test]
    fn reads_as_configparser_does() {
        let text =
            "# written at deploy\n[turnserver]\nSecret = ab12\nlong: one\n  two\n\n  three\n\
                    [DEFAULT]\nshared = d\n";
        let got = items(text).expect("items");
        let pairs: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("secret", "ab12"),
                ("long", "one\ntwo\n\nthree"),
                ("shared", "d")
            ]
        );
    }

    #[test]
    fn refuses_what_configparser_would_read_otherwise() {
        assert!(items("key = v\n")
            .unwrap_err()
            .contains("before any section"));
        assert!(items("[s]\njunk\n")
            .unwrap_err()
            .contains("not `key = value`"));
        assert!(items("[s]\nk = 50%(x)s\n")
            .unwrap_err()
            .contains("interpolation"));
    }
}
