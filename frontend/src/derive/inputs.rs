//! The inputs of a part that enter by checksum or content: its `url` source, cmmi's `patches`
//! (local files, or remote ones by their MD5) and cmmi's Python hooks.

use std::path::PathBuf;

use md5::Digest as _;
use slapstore_store::derivation::{Build, Inputs, Source};

use super::StoreMode;
use crate::error::Result;
use crate::extends::is_url;
use crate::recipes::Part;

/// The part's `url` (and `alternate-url`): a source identified by its declared checksum, or a
/// local file by its content.
pub(super) fn source(
    part: &mut Part,
    mode: &StoreMode,
    inputs: &mut Inputs,
    build: &mut Build,
) -> Result<()> {
    let url = part.require("url")?.trim().to_owned();
    let mut urls = vec![url.clone()];
    if let Some(alt) = part.get("alternate-url")?.filter(|a| !a.trim().is_empty()) {
        urls.push(alt.trim().to_owned());
    }
    let mut checksum = None;
    for (option, algorithm) in [
        ("md5sum", "md5"),
        ("sha256", "sha256"),
        ("blake3", "blake3"),
    ] {
        if let Some(hex) = part.get(option)?.filter(|h| !h.trim().is_empty()) {
            let hex = hex.trim().to_lowercase();
            let text = format!("{algorithm}:{hex}");
            text.parse::<slapstore_store::checksum::Checksum>()
                .map_err(|e| part.option_error(option, e.to_string()))?;
            checksum = Some(text);
            break;
        }
    }
    match &checksum {
        Some(c) => {
            inputs.sources.insert("url".into(), c.clone());
        }
        None if is_url(&url) && !url.starts_with("file://") => {
            if !mode.allow_unpinned {
                return Err(part.option_error(
                    "url",
                    format!(
                        "`{url}` has no checksum: add `md5sum` (or `sha256`, `blake3`), or build \
                         with `--allow-unpinned`"
                    ),
                ));
            }
            inputs.options.insert("url".into(), url.clone());
        }
        None => {
            let path = url.strip_prefix("file://").unwrap_or(&url);
            // a local file without checksum is part of the profile only if it lies beside the
            // profile's files (`file:///etc/shadow` would otherwise land in a world-readable
            // store path): elsewhere it needs a checksum, as remote sources do
            if !mode.allow_unpinned && !inside_profile_dirs(mode, path) {
                return Err(part.option_error(
                    "url",
                    format!(
                        "`{url}` has no checksum and lies outside the profile's directories: add \
                         `md5sum` (or `sha256`, `blake3`), or build with `--allow-unpinned`"
                    ),
                ));
            }
            let bytes = std::fs::read(path)
                .map_err(|e| part.option_error("url", format!("cannot read `{path}`: {e}")))?;
            inputs.files.insert(
                "url".into(),
                format!("blake3:{}", blake3::hash(&bytes).to_hex()),
            );
        }
    }
    build.sources.push(Source {
        role: "url".into(),
        urls,
        checksum,
    });
    Ok(())
}

/// Whether the local file `path` (symlinks resolved) lies under a directory of the profile's
/// files.
fn inside_profile_dirs(mode: &StoreMode, path: &str) -> bool {
    let Ok(real) = std::fs::canonicalize(path) else {
        return true; // missing: reading it says so
    };
    mode.profile_dirs
        .iter()
        .any(|dir| std::fs::canonicalize(dir).is_ok_and(|d| real.starts_with(&d)))
}

/// cmmi's `patches`: `FILE[#md5]` words. A local file is checked against its MD5 now and
/// identified by content; a remote one (`https://...#md5`) is a source identified by its
/// checksum, fetched at build time through the download cache as `url` is.
pub(super) fn patches(
    part: &mut Part,
    mode: &StoreMode,
    inputs: &mut Inputs,
    build: &mut Build,
) -> Result<()> {
    let Some(text) = part.get("patches")? else {
        return Ok(());
    };
    for (i, word) in text.split_whitespace().enumerate() {
        let (file, md5sum) = match word.split_once('#') {
            Some((f, m)) => (f, Some(m.to_lowercase()).filter(|m| !m.is_empty())),
            None => (word, None),
        };
        let role = format!("patch:{i}");
        if is_url(file) && !file.starts_with("file://") {
            remote_patch(part, mode, inputs, build, role, file, md5sum)?;
            continue;
        }
        let path = file.strip_prefix("file://").unwrap_or(file);
        let bytes = std::fs::read(path).map_err(|e| {
            part.option_error("patches", format!("cannot read patch `{path}`: {e}"))
        })?;
        if let Some(expected) = md5sum {
            let actual = format!("{:x}", md5::Md5::digest(&bytes));
            if actual != expected {
                return Err(part.option_error(
                    "patches",
                    format!(
                        "patch `{path}` has MD5 {actual}, not the {expected} the profile gives"
                    ),
                ));
            }
        }
        inputs.files.insert(
            role.clone(),
            format!("blake3:{}", blake3::hash(&bytes).to_hex()),
        );
        build.files.insert(role, PathBuf::from(path));
    }
    Ok(())
}

/// cmmi's Python hooks, `FILE[#md5]:FUNCTION` (`pre-configure-hook`, `pre-make-hook`,
/// `post-make-hook`): the file is checked against its MD5 now and identified by content; the
/// builder calls the function with the part's options, a `buildout` mapping (`[buildout]`'s
/// directories and the part's own section, as `hook-buildout`) and the build's environment.
pub(super) fn hooks(
    part: &mut Part,
    inputs: &mut Inputs,
    build: &mut Build,
    extra: &mut Vec<(String, String)>,
) -> Result<()> {
    let mut any = false;
    for key in HOOKS {
        let Some(value) = part.get(key)?.filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let value = value.trim();
        let Some((file, _function)) = value
            .rsplit_once(':')
            .filter(|(f, function)| !f.is_empty() && !function.trim().is_empty())
        else {
            return Err(part.option_error(key, format!("`{value}` is not `FILE#MD5:FUNCTION`")));
        };
        let (file, md5sum) = match file.split_once('#') {
            Some((f, m)) => (f, Some(m.trim().to_lowercase()).filter(|m| !m.is_empty())),
            None => (file, None),
        };
        if is_url(file) && !file.starts_with("file://") {
            return Err(part.option_error(
                key,
                format!("`{file}`: slapstore runs local hook scripts only"),
            ));
        }
        let path = file.strip_prefix("file://").unwrap_or(file);
        let bytes = std::fs::read(path)
            .map_err(|e| part.option_error(key, format!("cannot read hook `{path}`: {e}")))?;
        if let Some(expected) = md5sum {
            let actual = format!("{:x}", md5::Md5::digest(&bytes));
            if actual != expected {
                return Err(part.option_error(
                    key,
                    format!("hook `{path}` has MD5 {actual}, not the {expected} the profile gives"),
                ));
            }
        }
        let role = format!("hook:{key}");
        inputs.files.insert(
            role.clone(),
            format!("blake3:{}", blake3::hash(&bytes).to_hex()),
        );
        build.files.insert(role, PathBuf::from(path));
        any = true;
    }
    if any {
        let b = part.r.section("buildout")?;
        let mut directories = serde_json::Map::new();
        for key in super::script::BUILDOUT_KEYS {
            if let Some(v) = part.r.get(b, key, None)? {
                directories.insert(key.to_owned(), v.into());
            }
        }
        extra.push((
            "hook-buildout".into(),
            serde_json::Value::Object(directories).to_string(),
        ));
    }
    Ok(())
}

/// cmmi's Python hook options, in the order the build calls them.
const HOOKS: [&str; 3] = ["pre-configure-hook", "pre-make-hook", "post-make-hook"];

/// A patch at a remote URL: its `#md5` is its identity (a mirror with the same content gives
/// the same hash); without one it is an unpinned input, refused unless `--allow-unpinned`.
fn remote_patch(
    part: &Part,
    mode: &StoreMode,
    inputs: &mut Inputs,
    build: &mut Build,
    role: String,
    url: &str,
    md5sum: Option<String>,
) -> Result<()> {
    let checksum = match md5sum {
        Some(hex) => {
            let text = format!("md5:{hex}");
            text.parse::<slapstore_store::checksum::Checksum>()
                .map_err(|e| part.option_error("patches", format!("patch `{url}`: {e}")))?;
            inputs.sources.insert(role.clone(), text.clone());
            Some(text)
        }
        None if mode.allow_unpinned => {
            inputs.options.insert(role.clone(), url.to_owned());
            None
        }
        None => {
            return Err(part.option_error(
                "patches",
                format!(
                    "patch `{url}` has no checksum: write it `{url}#MD5`, or build with \
                     `--allow-unpinned`"
                ),
            ))
        }
    };
    build.sources.push(Source {
        role,
        urls: vec![url.to_owned()],
        checksum,
    });
    Ok(())
}
