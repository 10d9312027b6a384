//! What `slapos.recipe.build`'s Python `install` code can read at build time, made inputs of
//! its derivation: the `[buildout]` sections the code names literally (`self.buildout['name']`,
//! `self.buildout.get('name')`, or `self.buildout[options['key']]` for the section an option
//! names), resolved now, and the
//! profile's local files that an option names (their content). A read of anything else at
//! build time is an error of the Python host, never a silent read of something unhashed.

use std::path::PathBuf;

use slapstore_store::derivation::{Build, Inputs};

use super::StoreMode;
use crate::error::Result;
use crate::recipes::Part;

/// The `[buildout]` options build-time code sees in `self.buildout['buildout']`: its
/// directories and interpreter, as cmmi's hooks do (the rest of `[buildout]` — `parts`,
/// `extends` — describes the whole profile, not this part).
pub(super) const BUILDOUT_KEYS: [&str; 6] = [
    "directory",
    "parts-directory",
    "bin-directory",
    "eggs-directory",
    "develop-eggs-directory",
    "executable",
];

/// The sections `code` names in `self.buildout[...]`, resolved, as a JSON object
/// `{section: {option: value}}` (the part's own section is `options`, not repeated). A named
/// section that does not exist is `null`: at build time reading it fails as in buildout, and
/// `self.buildout.get(name)` gives the default.
pub(crate) fn captured_sections(part: &mut Part, code: &str) -> Result<String> {
    let mut names = Vec::new();
    for reference in section_references(code) {
        let name = match reference {
            SectionRef::Literal(name) => name,
            SectionRef::Option(key) => match part.get(&key)? {
                Some(value) => value.trim().to_owned(),
                None => continue,
            },
        };
        if name != part.name && !names.contains(&name) {
            names.push(name);
        }
    }
    let mut sections = serde_json::Map::new();
    for name in names {
        if !part.r.raw.contains_key(&name) {
            sections.insert(name, serde_json::Value::Null);
            continue;
        }
        let idx = part.r.section(&name)?;
        let mut items = serde_json::Map::new();
        if name == "buildout" {
            for key in BUILDOUT_KEYS {
                if let Some(v) = part.r.get(idx, key, None)? {
                    items.insert(key.to_owned(), v.into());
                }
            }
        } else {
            for (k, v) in part.r.items(idx)? {
                items.insert(k, v.into());
            }
        }
        sections.insert(name, items.into());
    }
    Ok(serde_json::Value::Object(sections).to_string())
}

/// The profile's files that options name (the whole value is the path of a file under a
/// directory of the profile, as `${:_profile_base_location_}/fix.patch`): identified by content
/// and visible, read-only, in the build's sandbox.
pub(super) fn local_files(
    part: &mut Part,
    mode: &StoreMode,
    inputs: &mut Inputs,
    build: &mut Build,
) -> Result<()> {
    for (key, value) in part.r.items(part.idx)? {
        let path = value.trim();
        if !path.starts_with('/') || path.contains('\n') {
            continue;
        }
        if !mode
            .profile_dirs
            .iter()
            .any(|d| path.starts_with(d.as_str()))
        {
            continue;
        }
        let file = PathBuf::from(path);
        if !file.is_file() {
            continue;
        }
        let bytes = std::fs::read(&file)
            .map_err(|e| part.option_error(&key, format!("cannot read `{path}`: {e}")))?;
        let role = format!("file:{key}");
        inputs.files.insert(
            role.clone(),
            format!("blake3:{}", blake3::hash(&bytes).to_hex()),
        );
        build.files.insert(role, file);
    }
    Ok(())
}

/// A section named in `self.buildout[...]`.
#[derive(Debug, PartialEq)]
enum SectionRef {
    /// `self.buildout['name']`
    Literal(String),
    /// `self.buildout[options['key']]` (or `self.options['key']`)
    Option(String),
}

/// Every `self.buildout[...]` (and `self.buildout.get(...)`) of `code` whose subscript (first
/// argument) is a string literal or an option.
fn section_references(code: &str) -> Vec<SectionRef> {
    let mut found = Vec::new();
    for (start, closing) in [("self.buildout[", "]"), ("self.buildout.get(", ",)")] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            rest = &rest[i + start.len()..];
            let inner = rest.trim_start();
            if let Some((name, _)) =
                string_literal(inner).filter(|(_, after)| closes(after, closing))
            {
                found.push(SectionRef::Literal(name));
                continue;
            }
            let inner = inner.strip_prefix("self.").unwrap_or(inner);
            if let Some(after) = inner.strip_prefix("options[") {
                if let Some((key, after)) = string_literal(after.trim_start()) {
                    if let Some(after) = after.trim_start().strip_prefix(']') {
                        if closes(after, closing) {
                            found.push(SectionRef::Option(key));
                        }
                    }
                }
            }
        }
    }
    found
}

/// The Python string literal `'...'` or `"..."` (without escapes) that `text` starts with, and
/// what follows it.
fn string_literal(text: &str) -> Option<(String, &str)> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &text[1..];
    let end = body.find(quote)?;
    let value = &body[..end];
    (!value.contains('\\') && !value.contains('\n')).then(|| (value.to_owned(), &body[end + 1..]))
}

/// Whether `text` starts with one of `closing` (what ends the subscript or first argument).
fn closes(text: &str, closing: &str) -> bool {
    text.trim_start()
        .chars()
        .next()
        .is_some_and(|c| closing.contains(c))
}

#[cfg(test)]
mod tests {
    use super::{section_references, SectionRef};

    #[test]
    fn sections_named_literally_or_by_an_option() {
        let code = "a = self.buildout['bazel']['patch-binary']\n\
                    b = self.buildout[\"buildout\"]\n\
                    part = self.buildout[options['part']]\n\
                    c = self.buildout[self.options[\"other\"] ]\n\
                    d = self.buildout['gcc-' + version]\n\
                    e = self.buildout[name]\n\
                    f = self.buildout.get('maybe', {})";
        assert_eq!(
            section_references(code),
            vec![
                SectionRef::Literal("bazel".into()),
                SectionRef::Literal("buildout".into()),
                SectionRef::Option("part".into()),
                SectionRef::Option("other".into()),
                SectionRef::Literal("maybe".into()),
            ]
        );
        assert!(section_references("self.buildout['unterminated").is_empty());
    }
}
