//! The inputs of a part that enter by checksum or content: its `url` source, cmmi's `patches`
//! (local files, or remote ones by their MD5), cmmi's Python hooks, and a gitclone part's
//! commit. An unpinned input (a remote file without checksum, a branch) takes its pin from the
//! profile's lock file ([`crate::lock`]); without one it is refused, unless `--allow-unpinned`
//! (and always with `--frozen`), except by `plan`, which accepts it as the profile names it (its
//! URL and branch, or its URL, are then its identity) with a warning.

use std::path::PathBuf;

use md5::Digest as _;
use slapstore_store::derivation::{Build, Inputs, Source};

use super::StoreMode;
use crate::error::Result;
use crate::extends::is_url;
use crate::lock::{Input, Pin};
use crate::recipes::Part;

/// The part's `url` (and `alternate-url`): a source identified by its declared checksum, or a
/// local file by its content. A checksum option whose text is no checksum (`lamp-template`'s
/// `md5sum = Student may put here md5sum of this file`, a placeholder) is what zc.buildout's
/// download fails on, not its reading of the profile: the source is then identified by its URL
/// and that text, and why its build is refused is returned.
pub(super) fn source(
    part: &mut Part,
    mode: &StoreMode,
    inputs: &mut Inputs,
    build: &mut Build,
) -> Result<Option<String>> {
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
            if let Err(e) = text.parse::<slapstore_store::checksum::Checksum>() {
                inputs.options.insert("url".into(), url.clone());
                inputs.options.insert(option.into(), hex);
                return Ok(Some(format!(
                    "{} is not a checksum ({e}): zc.buildout's download of `{url}` fails on it \
                     too; write the {algorithm} checksum of the file there",
                    super::written_at(part, option)
                )));
            }
            checksum = Some(text);
            break;
        }
    }
    match &checksum {
        Some(c) => {
            inputs.sources.insert("url".into(), c.clone());
        }
        None if is_url(&url) && !url.starts_with("file://") => {
            let input = Input::Source {
                role: "url".into(),
                url: url.clone(),
            };
            let refusal = format!(
                "`{url}` has no checksum: add `md5sum` (or `sha256`, `blake3`), or build with \
                 `--allow-unpinned`"
            );
            match locked(part, mode, "url", &input, refusal)? {
                Some(pin) => {
                    inputs.sources.insert("url".into(), pin.clone());
                    checksum = Some(pin);
                }
                None => {
                    inputs.options.insert("url".into(), url.clone());
                }
            }
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
    Ok(None)
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
/// the same hash); without one it is an unpinned input, pinned by the lock or refused.
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
        None => {
            let input = Input::Source {
                role: role.clone(),
                url: url.to_owned(),
            };
            let refusal = format!(
                "patch `{url}` has no checksum: write it `{url}#MD5`, or build with \
                 `--allow-unpinned`"
            );
            match locked(part, mode, "patches", &input, refusal)? {
                Some(pin) => {
                    inputs.sources.insert(role.clone(), pin.clone());
                    Some(pin)
                }
                None => {
                    inputs.options.insert(role.clone(), url.to_owned());
                    None
                }
            }
        }
    };
    build.sources.push(Source {
        role,
        urls: vec![url.to_owned()],
        checksum,
    });
    Ok(())
}

/// A gitclone part without `revision` follows a branch (its `branch`, or the repository's
/// default one): the lock's commit becomes its `revision`, which the build checks out and the
/// hash covers.
pub(super) fn git(
    part: &mut Part,
    mode: &StoreMode,
    extra: &mut Vec<(String, String)>,
) -> Result<()> {
    if part.get("revision")?.is_some_and(|r| !r.trim().is_empty()) {
        return Ok(());
    }
    let repository = part.require("repository")?.trim().to_owned();
    let branch = part
        .get("branch")?
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty());
    let option = if branch.is_some() {
        "branch"
    } else {
        "repository"
    };
    let input = Input::Git { repository, branch };
    let refusal = format!(
        "{} is an unpinned input (its commit changes without the profile changing): give the \
         commit as `revision`, or pass --allow-unpinned (the build log records the commit it \
         got)",
        match &input {
            Input::Git {
                branch: Some(b), ..
            } => format!("branch `{b}`"),
            _ => "the repository's default branch".to_owned(),
        }
    );
    if let Some(commit) = locked(part, mode, option, &input, refusal)? {
        extra.push(("revision".into(), commit));
    }
    Ok(())
}

/// The pin of the part's unpinned `input` from the lock; `None` when it has none and
/// `--allow-unpinned` accepts it as it is, or `plan` does (either way noted with its warning); else an error on `option`: `refusal`, and what the
/// lock says (with `--frozen`, that alone).
fn locked(
    part: &Part,
    mode: &StoreMode,
    option: &str,
    input: &Input,
    refusal: String,
) -> Result<Option<String>> {
    let Some(lock) = &mode.lock else {
        return if mode.allow_unpinned {
            Ok(None)
        } else {
            Err(part.option_error(option, refusal))
        };
    };
    let pin = lock.pin(&part.name, input);
    if let Pin::Locked(p) = pin {
        return Ok(Some(p));
    }
    let why = lock.explain(&part.name, input, &pin);
    if lock.frozen {
        return Err(part.option_error(
            option,
            format!("--frozen: {} is not pinned: {why}", input.describe()),
        ));
    }
    // an entry that records another input is the lock's error, which `plan` reports too
    let planned = lock.planning && pin == Pin::Missing;
    if !mode.allow_unpinned && !planned {
        return Err(part.option_error(option, format!("{refusal}; {why}")));
    }
    // noted whether `plan` (which warns) or `build --allow-unpinned` (which does not) accepts
    // it: the cache of evaluations serves one's evaluation to the other
    let warning = part.option_error(
        option,
        format!(
            "{} is an unpinned input, planned by its {}; `build` refuses it without \
             `--allow-unpinned`: {why}",
            input.describe(),
            match input {
                Input::Git {
                    branch: Some(_), ..
                } => "repository and branch",
                Input::Git { .. } => "repository",
                _ => "URL",
            }
        ),
    );
    lock.accept_unpinned(&part.name, warning);
    Ok(None)
}
