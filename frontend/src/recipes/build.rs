//! `slapos.recipe.build` entry points other than the downloads: the generic recipe whose
//! `init` option is Python run at initialisation (through `crate::python`), `gitclone`,
//! `mkdirectory` and the `vm.*` recipes. In a build, the generic recipe with only `init` has no
//! output ([`script_in_build`]).

use super::{environment, Part, Shared};
use crate::error::Result;
use crate::pystr::split_whitespace;
use slapstore_store::Recipe;

/// The generic recipe (`Script`): needs one of `init`, `install`, `update`; runs `init`.
pub fn script(part: &mut Part) -> Result<()> {
    let init = part.get("init")?.filter(|s| !s.is_empty());
    let install = part.get("install")?.filter(|s| !s.is_empty());
    let update = part.get("update")?.filter(|s| !s.is_empty());
    if init.is_none() && install.is_none() && update.is_none() {
        return Err(
            part.error("at least one of the following option is required: init, install, update")
        );
    }
    if part.get("keep-on-error")?.is_some() {
        part.is_true("keep-on-error")?;
    }
    environment(part)?;
    let shared = Shared::new(part)?;
    if update.is_some() {
        shared.assert_not_shared(part, "option 'update' can't be set")?;
    }
    if install.is_some() {
        if part.get("location")?.filter(|l| !l.is_empty()).is_none() {
            part.set("location", shared.location.clone());
        }
        if let Some(code) = init {
            run(part, &code)?;
        }
        if part.require("location")? != shared.location {
            shared.assert_not_shared(part, "option 'location' can't be set")?;
        }
    } else {
        shared.assert_not_shared(part, "option 'install' must be set")?;
        if let Some(code) = init {
            run(part, &code)?;
        }
    }
    Ok(())
}

/// The generic recipe in a build: with only `init` (and `update`, which a first install does not
/// run), installing does nothing, so the part runs its `init` and has no output (no
/// derivation). With `install` code it is a `script` derivation: the code runs at build time in
/// the build's Python host (`init` ran when the profile was read, and the options it set are
/// what `install` sees). Its `location`, which the code makes (a file or a directory), lies in
/// the part's store path: `<store path>/<name>`, or the last component of an explicit
/// `location` (`${buildout:bin-directory}/randomsleep` → `<store path>/randomsleep`), every
/// mention of the old value in the part's options following.
pub fn script_in_build(part: &mut Part) -> Result<()> {
    if part.get("install")?.is_none_or(|s| s.is_empty()) {
        return script(part);
    }
    crate::derive::default_location(part, Recipe::Script)?;
    script(part)?;
    let Some(mode) = part.r.settings.store.clone() else {
        return Ok(());
    };
    let placeholder = mode.placeholder(&part.name);
    let location = part.require("location")?;
    let file = if location == placeholder {
        crate::derive::store_name(&part.name)
    } else {
        let normal = crate::pystr::normpath(location.trim());
        match normal.rsplit('/').next() {
            Some(name) if !name.is_empty() && name != ".." && name != "." => name.to_owned(),
            _ => {
                return Err(part.option_error(
                    "location",
                    format!("`{location}` names no file or directory for the code to make"),
                ))
            }
        }
    };
    let inside = format!("{placeholder}/{file}");
    for (key, value) in part.r.items(part.idx)? {
        let replaced = crate::derive::replace_path(&value, &location, &inside);
        if replaced != value {
            part.set(&key, replaced);
        }
    }
    crate::derive::derive(part, Recipe::Script)
}

fn run(part: &mut Part, code: &str) -> Result<()> {
    let location = part.get("location")?;
    part.r.run_init(part.idx, code, location.as_deref())
}

/// `gitclone`: `location` defaults to `<parts>/<name>`; `repository` is required. The
/// revision of a branch is not looked up (that needs the network).
pub fn gitclone(part: &mut Part) -> Result<()> {
    if part.get("location")?.is_none() {
        let location = part.parts_location()?;
        part.set("location", location);
    }
    for key in [
        "branch",
        "revision",
        "location",
        "git-executable",
        "sparse-checkout",
    ] {
        part.get(key)?;
    }
    if let Some(depth) = part.get("depth")?.filter(|d| !d.is_empty()) {
        if depth.trim().parse::<i64>().is_err() {
            return Err(part.option_error(
                "depth",
                format!("`depth` must be an integer, not `{depth}`"),
            ));
        }
    }
    for key in [
        "develop",
        "shared",
        "use-cache",
        "ignore-ssl-certificate",
        "ignore-cloning-submodules",
    ] {
        part.get(key)?;
    }
    if part.r.raw.contains_key("networkcache") {
        part.r.section("networkcache")?;
    }
    if part.get("repository")?.filter(|r| !r.is_empty()).is_none() {
        return Err(part.error("repository parameter is mandatory."));
    }
    Ok(())
}

/// `gitclone` in a build: its `revision` is the pin that makes the derivation's identity (with
/// the other options, `repository` included); a part with no `revision` follows a branch, an
/// unpinned input that the translation pins from the lock or refuses (`derive::inputs::git`).
/// Neither may start with `-` (git would read an option).
pub fn gitclone_in_build(part: &mut Part) -> Result<()> {
    gitclone(part)?;
    for key in ["repository", "revision", "branch"] {
        if let Some(value) = part.get(key)? {
            if value.trim().starts_with('-') {
                return Err(
                    part.option_error(key, format!("`{}` cannot start with `-`", value.trim()))
                );
            }
        }
    }
    Ok(())
}

/// `mkdirectory`: copies its options; `mode` must be octal.
pub fn mkdirectory(part: &mut Part) -> Result<()> {
    let mode = part.r.raw_copy(part.idx).get("mode").cloned();
    if let Some(mode) = mode {
        if i64::from_str_radix(mode.trim(), 8).is_err() {
            return Err(part.option_error("mode", format!("`mode` must be octal, not `{mode}`")));
        }
    }
    Ok(())
}

/// `vm.*`'s `BaseRecipe`: `location` (stripped) defaults to `<parts>/<name>`.
fn vm_base(part: &mut Part) -> Result<()> {
    let location = match part.get("location")? {
        Some(l) => crate::pystr::strip(&l).to_owned(),
        None => part.parts_location()?,
    };
    part.set("location", location);
    environment(part)?;
    part.get("vnc-sock")?;
    part.get("ssh-addr")?;
    Ok(())
}

/// `vm.install-debian` / `vm.install-ubuntu`: reads the sections of its `dists` and their ISOs.
pub fn vm_install(part: &mut Part) -> Result<()> {
    vm_base(part)?;
    // the recipe's default is the machine buildout runs on (`os.uname()[4]`): the target's
    let machine = part.r.settings.target.machine.clone();
    let arch = part
        .get("arch")?
        .filter(|a| !a.is_empty())
        .unwrap_or(machine);
    let dists = part.require("dists")?;
    for dist in split_whitespace(&dists) {
        let d = part.r.section(dist)?;
        let iso_name = part.r.require(d, &format!("{arch}.iso"))?;
        let iso = part.r.section(&iso_name)?;
        part.r.require(iso, "location")?;
        part.r.require(iso, "filename")?;
        part.r.require(d, &format!("{arch}.kernel"))?;
        part.r.require(d, &format!("{arch}.initrd"))?;
    }
    part.get("early-command")?;
    part.get("late-command")?;
    part.require("size")?;
    Ok(())
}

/// `vm.run`: needs `vm`; reads every option (for `mount.*`).
pub fn vm_run(part: &mut Part) -> Result<()> {
    vm_base(part)?;
    part.require("vm")?;
    part.buildout("directory")?;
    for (key, _) in part.r.items(part.idx)? {
        if key == "mount.buildout" {
            return Err(part.option_error(&key, format!("option '{key}' can not be overridden")));
        }
    }
    Ok(())
}
