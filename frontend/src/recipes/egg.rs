//! `zc.recipe.egg` and its entry points (`eggs`, `scripts`/`default`, `custom`, `develop`), and
//! `zc.recipe.testrunner` (a `scripts` part whose one script runs zope.testrunner):
//! initialisation records the buildout's egg directories in the part (`eggs-directory`, `_e`,
//! `develop-eggs-directory`, `_d`, `bin-directory`, `_b`) and makes some paths absolute.

use super::Part;
use crate::error::{Error, Result};
use crate::lock::{EggsInput, Input, Pin};
use crate::pystr::{path_join, split_whitespace, strip};

/// `Eggs.__init__`.
pub fn eggs(part: &mut Part) -> Result<()> {
    let default_links = part.buildout("find-links")?;
    let links = part.get("find-links")?.unwrap_or(default_links);
    links_and_index(part, Some(links))?;
    part.buildout("allow-hosts")?;
    let eggs = part.buildout("eggs-directory")?;
    part.set("eggs-directory", eggs.clone());
    part.set("_e", eggs);
    let develop = part.buildout("develop-eggs-directory")?;
    part.set("develop-eggs-directory", develop.clone());
    part.set("_d", develop);
    Ok(())
}

/// `find-links` (one link a line) and `index` (the part's, else the buildout's), as both
/// `Eggs` and `Custom` record them.
fn links_and_index(part: &mut Part, links: Option<String>) -> Result<()> {
    if let Some(links) = links.filter(|l| !l.is_empty()) {
        part.set(
            "find-links",
            split_whitespace(&links).collect::<Vec<_>>().join("\n"),
        );
    }
    let index = match part.get("index")? {
        Some(i) => Some(i),
        None => part.buildout_get("index")?,
    };
    if let Some(index) = index {
        part.set("index", index);
    }
    Ok(())
}

/// `Scripts.__init__` (also `default` and `script`).
pub fn scripts(part: &mut Part) -> Result<()> {
    eggs(part)?;
    let bin = part.buildout("bin-directory")?;
    part.set("bin-directory", bin.clone());
    part.set("_b", bin);
    let directory = part.buildout("directory")?;
    let extra: Vec<String> = part
        .get("extra-paths")?
        .unwrap_or_default()
        .split('\n')
        .filter(|p| !strip(p).is_empty())
        .map(|p| path_join(&directory, strip(p)))
        .collect();
    if !extra.is_empty() {
        part.set("extra-paths", extra.join("\n"));
    }
    let relative = match part.get("relative-paths")? {
        Some(v) => v,
        None => part
            .buildout_get("relative-paths")?
            .unwrap_or_else(|| "false".into()),
    };
    match relative.as_str() {
        "true" => part.set("buildout-directory", directory),
        "false" => {}
        other => {
            return Err(part.option_error(
                "relative-paths",
                format!("`relative-paths` must be `true` or `false`, not `{other}`"),
            ))
        }
    }
    Ok(())
}

/// `zc.recipe.testrunner`'s `TestRunner.__init__`: `script` (default the part's name) in the bin
/// directory, a `location` unless `working-directory` is given (the script runs the tests
/// there), then `Scripts.__init__`.
pub fn testrunner(part: &mut Part) -> Result<()> {
    let bin = part.buildout("bin-directory")?;
    let script = part.get("script")?.unwrap_or_else(|| part.name.clone());
    part.set("script", path_join(&bin, &script));
    if part
        .get("working-directory")?
        .unwrap_or_default()
        .is_empty()
    {
        let location = part.parts_location()?;
        part.set("location", location);
    }
    scripts(part)
}

/// `custom.Base.__init__` and `build_ext`.
fn base(part: &mut Part) -> Result<()> {
    let develop = part.buildout("develop-eggs-directory")?;
    part.set("_d", develop);
    let directory = part.buildout("directory")?;
    for key in ["include-dirs", "library-dirs"] {
        if let Some(value) = part.get(key)? {
            let joined: Vec<String> = strip(&value)
                .split('\n')
                .filter(|v| !strip(v).is_empty())
                .map(|v| path_join(&directory, strip(v)))
                .collect();
            part.set(key, joined.join(":"));
        }
    }
    if let Some(value) = part.get("rpath")? {
        const SPECIAL: [&str; 6] = [
            "$ORIGIN",
            "$LIB",
            "$PLATFORM",
            "${ORIGIN}",
            "${LIB}",
            "${PLATFORM}",
        ];
        let joined: Vec<String> = strip(&value)
            .split('\n')
            .filter(|v| !strip(v).is_empty())
            .map(|v| {
                let v = strip(v);
                if SPECIAL.iter().any(|s| v.starts_with(s)) {
                    v.to_owned()
                } else {
                    path_join(&directory, v)
                }
            })
            .collect();
        part.set("rpath", joined.join(":"));
    }
    if let Some(swig) = part.get("swig")?.filter(|s| !s.is_empty()) {
        part.set("swig", path_join(&directory, &swig));
    }
    Ok(())
}

/// `Custom.__init__`.
pub fn custom(part: &mut Part) -> Result<()> {
    base(part)?;
    let links = match part.get("find-links")? {
        Some(l) => Some(l),
        None => part.buildout_get("find-links")?,
    };
    links_and_index(part, links)?;
    let mut data: Vec<(String, String)> = Vec::new();
    if let Some(env) = part.get("environment")?.filter(|e| !e.is_empty()) {
        let span = part.r.span_of(part.idx, "environment");
        let idx = part.r.section(&env).map_err(|e: Error| e.or_at(span))?;
        data = part.r.items(idx)?;
        data.sort();
    }
    let repr: Vec<String> = data
        .iter()
        .map(|(k, v)| format!("({}, {})", crate::pystr::repr(k), crate::pystr::repr(v)))
        .collect();
    part.set("_environment-data", format!("[{}]", repr.join(", ")));
    let eggs = part.buildout("eggs-directory")?;
    part.set("_e", eggs);
    part.buildout_get("offline")?;
    part.buildout_get("newest")?;
    Ok(())
}

/// `Develop.__init__`: `setup` is made absolute.
pub fn develop(part: &mut Part) -> Result<()> {
    base(part)?;
    let directory = part.buildout("directory")?;
    let setup = part.require("setup")?;
    part.set("setup", path_join(&directory, &setup));
    Ok(())
}

/// The interpreter an egg part uses when its `python` section is `buildout` (the interpreter
/// buildout itself runs with, which slapstore does not have): the first `python3` of the
/// builds' `PATH`, resolved, and its version, both hashed. The version is asked of the
/// interpreter once and kept ([`host_version`]), so that planning an unchanged profile starts
/// no Python.
fn host_python() -> std::result::Result<(String, String), String> {
    static HOST: std::sync::OnceLock<std::result::Result<(String, String), String>> =
        std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let found = slapstore_store::recipes::BUILD_PATH
            .split(':')
            .map(|d| std::path::Path::new(d).join("python3"))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "no `python3` in `{}`: give the part a `python` section with an `executable`",
                    slapstore_store::recipes::BUILD_PATH
                )
            })?;
        let exe = std::fs::canonicalize(&found)
            .map_err(|e| format!("cannot resolve `{}`: {e}", found.display()))?;
        let version = host_version(&exe, version_cache().as_deref())?;
        Ok((exe.display().to_string(), version))
    })
    .clone()
}

/// `$XDG_CACHE_HOME/slapstore/python-versions.json`, or under `~/.cache`: what each host
/// interpreter answered, with the file's identity (device, inode, size, modification time)
/// when it did.
fn version_cache() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .filter(|d| d.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
    Some(dir.join("slapstore/python-versions.json"))
}

/// The version (`sys.version`'s first word) of the interpreter `exe`: the kept answer while
/// `exe` is the same file, else asked (and kept in `cache`, best effort: without it the next
/// plan asks again).
fn host_version(
    exe: &std::path::Path,
    cache: Option<&std::path::Path>,
) -> std::result::Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let metadata =
        std::fs::metadata(exe).map_err(|e| format!("cannot read `{}`: {e}", exe.display()))?;
    let stamp = format!(
        "{} {} {} {}.{:09}",
        metadata.dev(),
        metadata.ino(),
        metadata.size(),
        metadata.mtime(),
        metadata.mtime_nsec()
    );
    let key = exe.display().to_string();
    let mut kept: std::collections::BTreeMap<String, (String, String)> = cache
        .and_then(|c| std::fs::read(c).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    if let Some((s, version)) = kept.get(&key) {
        if *s == stamp {
            return Ok(version.clone());
        }
    }
    let out = std::process::Command::new(exe)
        .args(["-S", "-c", "import sys; print(sys.version.split()[0])"])
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!("`{}` does not tell its version", exe.display()));
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if let Some(cache) = cache {
        kept.insert(key, (stamp, version.clone()));
        let _ = write_atomically(cache, &kept);
    }
    Ok(version)
}

/// `value` as JSON into `file`, through a temporary file renamed over it.
fn write_atomically(file: &std::path::Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut tmp, value)?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

/// What an egg part adds to its derivation (`derive.rs`), computed from the profile alone: the
/// entry point, the interpreter (the `python` section's `executable`, or the host's with its
/// version), the pins, `[buildout]`'s `allow-picked-versions` and, for `:develop`, the content
/// of the `setup` tree. The pins: with the profile's lock file pinning the part's closure
/// (`docs/lock.md`), that closure (`egg-closure`: name, version, file and SHA-256 of each
/// distribution), so that only the pins that apply matter, and the builder's `egg-artifacts`
/// (the same with where each file is); without, the whole versions section (sorted; pin
/// suffixes like `:whl` kept). `hashed` entries enter the hash; `build_only` ones only the
/// builder's options.
pub fn derive_inputs(
    part: &mut Part,
    store_dir: &str,
    hashed: &mut Vec<(String, String)>,
    build_only: &mut Vec<(String, String)>,
    files: &mut Vec<(String, String, std::path::PathBuf)>,
) -> Result<()> {
    let entry = match part.recipe.split_once(':').map(|(_, e)| e.trim()) {
        _ if part.recipe.trim().starts_with("zc.recipe.testrunner") => "testrunner",
        None | Some("default" | "script" | "scripts") => "scripts",
        Some(other) => other,
    }
    .to_owned();
    hashed.push(("egg-entry".into(), entry.clone()));

    let python = match part.get("python")?.filter(|p| !p.trim().is_empty()) {
        Some(p) => p,
        None => part.buildout("python")?,
    };
    let python = python.trim().to_owned();
    if python == "buildout" {
        let (exe, version) = host_python().map_err(|m| part.error(m))?;
        hashed.push(("python-executable".into(), exe));
        hashed.push(("python-version".into(), version));
    } else {
        let span = part.r.span_of(part.idx, "python");
        let idx = part.r.section(&python).map_err(|e: Error| e.or_at(span))?;
        let exe = part.r.get(idx, "executable", None)?.ok_or_else(|| {
            part.option_error(
                "python",
                format!("section `[{python}]` has no `executable` option"),
            )
        })?;
        // a store path (a Python built by the profile) is a reference, found by scanning
        hashed.push(("python-executable".into(), exe.trim().to_owned()));
    }

    let versions = part.buildout("versions")?;
    let mut pins: Vec<(String, String)> = Vec::new();
    if !versions.trim().is_empty() {
        let idx = part.r.section(versions.trim())?;
        pins = part
            .r
            .items(idx)?
            .into_iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .collect();
        pins.sort();
    }
    let text: Vec<String> = pins.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let text = text.join("\n");
    let python_exe = hashed
        .iter()
        .find(|(k, _)| k == "python-executable")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match locked_closure(part, &entry, &python_exe, &pins)? {
        Some(artifacts) => {
            let closure: Vec<String> = artifacts
                .lines()
                .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
                .collect();
            hashed.push(("egg-closure".into(), closure.join("\n")));
            build_only.push(("egg-artifacts".into(), artifacts));
            if !text.is_empty() {
                build_only.push(("versions".into(), text));
            }
        }
        None if !text.is_empty() => hashed.push(("versions".into(), text)),
        None => {}
    }
    for key in ["allow-picked-versions", "show-picked-versions"] {
        if let Some(v) = part.buildout_get(key)? {
            build_only.push((key.into(), v.trim().to_owned()));
        }
    }
    if let Some(v) = part.get("allow-picked-versions")? {
        build_only.push(("allow-picked-versions".into(), v.trim().to_owned()));
    }

    if entry == "develop" {
        let setup = part.require("setup")?.trim().to_owned();
        let tree = std::path::PathBuf::from(&setup);
        let in_store = setup.starts_with(&format!("{store_dir}/"));
        if in_store {
            // in another part's output: that part's store path (hashed as the option) is its
            // identity
            files.push(("setup".into(), String::new(), tree));
        } else if let Some(maker) = made_by_a_part(part, store_dir)? {
            // a tree another part makes when it is built (SlapOS's `python-slip` writes it
            // beside its location): that part's store path is its identity and makes it a
            // dependency; the builder reads the tree then
            hashed.push(("setup-part".into(), maker));
        } else {
            let info = slapstore_store::output::content_hash(&tree).map_err(|e| {
                part.option_error("setup", format!("cannot read the `setup` tree: {e}"))
            })?;
            files.push(("setup".into(), info.content_hash, tree));
        }
    } else {
        // buildout's develop eggs are visible to every part installed after them: the
        // `:develop` parts initialised so far, whose outputs offer their distributions as
        // wheels (`dist/`)
        let develop: Vec<String> = part
            .r
            .derivations
            .list
            .iter()
            .filter(|d| d.build.options.get("egg-entry").map(String::as_str) == Some("develop"))
            .map(|d| format!("{store_dir}/{}", d.path))
            .collect();
        if !develop.is_empty() {
            hashed.push(("develop-eggs".into(), develop.join("\n")));
        }
    }
    Ok(())
}

/// When the part's `setup` does not exist yet and its raw value names an option of another
/// part (`${python-slip:slip}`), that part's store path: the tree is made when that part is
/// built.
fn made_by_a_part(part: &mut Part, store_dir: &str) -> Result<Option<String>> {
    let setup = part.require("setup")?;
    if std::path::Path::new(setup.trim()).exists() {
        return Ok(None);
    }
    let raw = part.r.sections[part.idx]
        .raw
        .get("setup")
        .map(|v| v.text.clone())
        .unwrap_or_default();
    let mut rest = raw.as_str();
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let reference = &after[..end];
        rest = &after[end..];
        let Some((section, _)) = reference.split_once(':') else {
            continue;
        };
        if section.is_empty() || section == part.name || !part.r.parts.iter().any(|p| p == section)
        {
            continue;
        }
        let idx = part.r.section(section)?;
        if let Some(location) = part.r.get(idx, "location", None)? {
            let location = location.trim();
            if location.starts_with(&format!("{store_dir}/")) {
                return Ok(Some(location.to_owned()));
            }
        }
    }
    Ok(None)
}

/// The closure the profile's lock file gives the part (its `egg-artifacts` lines), if it has
/// one that applies; `--frozen` insists on one. A `:develop` part (a local tree, identified by
/// content) has none.
fn locked_closure(
    part: &mut Part,
    entry: &str,
    python: &str,
    pins: &[(String, String)],
) -> Result<Option<String>> {
    let Some(lock) = part.r.settings.store.as_ref().and_then(|s| s.lock.clone()) else {
        return Ok(None);
    };
    if entry == "develop" {
        return Ok(None);
    }
    let mut requirements: Vec<String> = if entry == "custom" {
        let egg = match part.get("egg")?.filter(|e| !e.trim().is_empty()) {
            Some(e) => e,
            None => part.get("eggs")?.unwrap_or_else(|| part.name.clone()),
        };
        vec![egg.trim().to_owned()]
    } else {
        match part.get("eggs")? {
            Some(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            None => vec![part.name.clone()],
        }
    };
    if entry == "testrunner" {
        requirements.push(slapstore_store::recipes::TESTRUNNER.into());
    }
    let pins = pins
        .iter()
        .map(|(name, version)| {
            let version = version.trim();
            let (version, whl) = match version.strip_suffix(":whl") {
                Some(v) => (v.trim(), true),
                None => (version, false),
            };
            (
                crate::lock::normalise(name),
                (name.clone(), version.to_owned(), whl),
            )
        })
        .collect();
    let input = Input::Eggs(Box::new(EggsInput {
        python: python.to_owned(),
        no_binary: (entry == "custom").then(|| {
            let first = requirements.first().map(String::as_str).unwrap_or_default();
            first
                .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
                .next()
                .unwrap_or_default()
                .to_owned()
        }),
        requirements: requirements.join("\n"),
        pins,
        index: part
            .get("index")?
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty()),
        find_links: split_whitespace(&part.get("find-links")?.unwrap_or_default())
            .map(str::to_owned)
            .collect(),
    }));
    let pin = lock.pin(&part.name, &input);
    let option = if part.get("eggs")?.is_some() {
        "eggs"
    } else {
        "recipe"
    };
    match pin {
        Pin::Locked(lines) => Ok(Some(lines)),
        Pin::OutOfDate(_)
            if !part
                .r
                .settings
                .store
                .as_ref()
                .is_some_and(|s| s.allow_unpinned) =>
        {
            Err(part.option_error(option, lock.explain(&part.name, &input, &pin)))
        }
        _ if lock.frozen => Err(part.option_error(
            option,
            format!(
                "--frozen: {} is not locked: {}",
                input.describe(),
                lock.explain(&part.name, &input, &pin)
            ),
        )),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_host_version_is_asked_once_and_again_when_the_interpreter_changes() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("python3");
        let calls = dir.path().join("calls");
        let cache = dir.path().join("cache/python-versions.json");
        let script = |version: &str| {
            format!(
                "#!/bin/sh\necho x >> '{}'\necho {version}\n",
                calls.display()
            )
        };
        std::fs::write(&exe, script("3.11.2")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let count = || {
            std::fs::read_to_string(&calls)
                .unwrap_or_default()
                .lines()
                .count()
        };
        assert_eq!(host_version(&exe, Some(&cache)).unwrap(), "3.11.2");
        assert_eq!(host_version(&exe, Some(&cache)).unwrap(), "3.11.2");
        assert_eq!(count(), 1, "the second answer is the kept one");
        // another file (an upgrade): asked again
        std::fs::remove_file(&exe).unwrap();
        std::fs::write(&exe, script("3.11.10")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(host_version(&exe, Some(&cache)).unwrap(), "3.11.10");
        assert_eq!(count(), 2);
        // without a cache, always asked
        assert_eq!(host_version(&exe, None).unwrap(), "3.11.10");
        assert_eq!(count(), 3);
    }
}
