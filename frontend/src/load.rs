//! Loading a profile: `Buildout.__init__` up to `_raw` — buildout's defaults and `directory`,
//! the profile's linearisation (`extends`), command-line extends and `-O` assignments, the
//! versions section and absolute cache directories — into one raw configuration.

use crate::condition::Target;
use crate::config::{HashMap, Origin, RawConfig, RawSection, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::extends::{is_url, resolve_extends, Loader};
use crate::merge::update;
use crate::pystr::{self, dirname, expanduser, normpath, path_join, split_whitespace};
use crate::python::Bridge;
use crate::source::{Sources, Span};

/// The zc.buildout release whose semantics are reproduced (SlapOS's fork is based on it).
pub const BUILDOUT_VERSION: &str = "3.0.1";

/// A command-line assignment `section:option=value` (`option+=value`, `option-=value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub section: String,
    /// The option as written before `=`, operator included (`x+`).
    pub option: String,
    pub value: String,
}

impl Assignment {
    /// Parses `[section:]option=value` exactly as `bin/buildout` does.
    pub fn parse(text: &str) -> Result<Assignment> {
        let bad = |message: &str| {
            Error::new(ErrorKind::BadAssignment {
                assignment: text.to_owned(),
                message: message.to_owned(),
            })
        };
        let (lhs, value) = text
            .split_once('=')
            .ok_or_else(|| bad("expected `section:option=value`"))?;
        let parts: Vec<&str> = lhs.split(':').collect();
        let (section, option) = match parts.as_slice() {
            [option] => ("buildout", *option),
            [section, option] => (*section, *option),
            _ => return Err(bad("more than one `:` before `=`")),
        };
        Ok(Assignment {
            section: pystr::strip(section).to_owned(),
            option: pystr::strip(option).to_owned(),
            value: pystr::strip(value).to_owned(),
        })
    }
}

/// The `[buildout]` defaults of zc.buildout 3.0.1 plus the SlapOS fork's two, in buildout's order.
pub fn default_options(executable: &str) -> RawSection {
    [
        ("allow-hosts", "*"),
        ("allow-picked-versions", "true"),
        ("bin-directory", "bin"),
        ("develop-eggs-directory", "develop-eggs"),
        ("eggs-directory", "eggs"),
        ("executable", executable),
        ("find-links", ""),
        ("install-from-cache", "false"),
        ("installed", ".installed.cfg"),
        ("log-format", ""),
        ("log-level", "INFO"),
        ("newest", "true"),
        ("offline", "false"),
        ("parts-directory", "parts"),
        ("prefer-final", "true"),
        ("python", "buildout"),
        ("show-picked-versions", "false"),
        ("socket-timeout", ""),
        ("update-versions-file", ""),
        ("use-dependency-links", "true"),
        ("allow-unknown-extras", "false"),
        ("dry-run", "false"),
        ("check-signature", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Value::new(v, Origin::Default)))
    .collect()
}

/// What loading a profile produced.
pub struct Loaded {
    /// The first header of each section.
    pub headers: HashMap<String, Span>,
    pub raw: RawConfig,
    /// The files of the linearisation, in merge order.
    pub files: Vec<String>,
    /// The Python interpreter, if the profile has code for it.
    pub bridge: Option<Bridge>,
}

/// Settings of one evaluation besides the profile itself.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub assignments: Vec<Assignment>,
    /// Values set after the assignments and taken verbatim (`${}` in them is not substituted):
    /// an instance's parameters, `(section, option, value)`.
    pub verbatim: Vec<(String, String, String)>,
    /// `[buildout] executable`'s default: the Python that buildout would run with, which also
    /// runs profile code.
    pub executable: String,
    /// The root profile's text, when it is given in memory rather than read from its path.
    pub text: Option<String>,
    /// The download cache through which a profile and the files it extends are fetched when
    /// they are `http(s)://` URLs (`slapstore node`'s releases); `None`: such a file is an
    /// error.
    pub remote_cache: Option<std::path::PathBuf>,
    /// The files of outputs planned but not built (`instance create --dry-run`).
    pub planned: Option<std::sync::Arc<crate::planned::Planned>>,
    /// The files an enclosing render writes in the partition (`EvalOptions::written`).
    pub written: Written,
    /// The release's files by their buildout paths (`EvalOptions::software_paths`).
    pub software_paths: std::sync::Arc<crate::software_paths::SoftwarePaths>,
}

/// Files a render writes in the partition, by absolute path, not on disk yet: what a
/// switched-to profile (`recipes/slap_switch.rs`) reads of the switching profile's.
pub type Written = std::sync::Arc<std::collections::BTreeMap<String, String>>;

/// `Buildout.__init__` up to `_raw`: defaults, `directory`, the profile's linearisation,
/// command-line extends and assignments, the versions section and absolute cache directories.
pub fn load(
    sources: &mut Sources,
    target: &Target,
    profile: &str,
    options: &LoadOptions,
) -> Result<Loaded> {
    let root = if is_url(profile) {
        profile.to_owned()
    } else {
        absolute(profile)
    };
    if options.text.is_none() && !is_url(&root) && !std::path::Path::new(&root).exists() {
        return Err(Error::new(ErrorKind::CannotOpen {
            path: root,
            reason: "no such file".into(),
        }));
    }
    let mut loader = Loader {
        sources,
        target,
        python: Some(&options.executable),
        bridge: None,
        text: options.text.as_deref().map(|t| (root.as_str(), t)),
        remote_cache: options.remote_cache.as_deref(),
        planned: options.planned.as_deref(),
        written: &options.written,
        software_paths: &options.software_paths,
        headers: HashMap::default(),
    };
    let mut data = RawConfig::default();
    let mut buildout = default_options(&options.executable);
    // buildout's `_buildout_dir`: the profile's directory, or for a URL the current one
    let directory = if is_url(&root) {
        std::env::current_dir()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/".into())
    } else {
        dirname(&root).to_owned()
    };
    buildout.insert("directory".into(), Value::new(directory, Origin::Computed));
    data.insert("buildout".into(), buildout);

    let loaded = loader.linearise(&root, &options.executable)?;
    let mut files = loaded.files;
    update(&mut data, loaded.raw);

    let mut cloptions = RawConfig::default();
    let mut sorted: Vec<&Assignment> = options.assignments.iter().collect();
    sorted
        .sort_by(|a, b| (&a.section, &a.option, &a.value).cmp(&(&b.section, &b.option, &b.value)));
    for a in sorted {
        cloptions.entry(a.section.clone()).or_default().insert(
            a.option.clone(),
            Value::new(a.value.clone(), Origin::CommandLine),
        );
    }
    for (section, option, value) in &options.verbatim {
        cloptions
            .entry(section.clone())
            .or_default()
            .insert(option.clone(), Value::new(value.clone(), Origin::Parameter));
    }
    if let Some(cl_extends) = cloptions
        .get_mut("buildout")
        .and_then(|b| b.shift_remove("extends"))
    {
        for name in split_whitespace(&cl_extends.text) {
            let path = resolve_extends(dirname(name), pystr::basename(name));
            let more = loader.linearise(&path, &options.executable)?;
            files.extend(more.files);
            update(&mut data, more.raw);
        }
    }
    update(&mut data, cloptions);

    let buildout = data.entry("buildout".into()).or_default();
    if !buildout.contains_key("versions") {
        buildout.insert("versions".into(), Value::new("versions", Origin::Default));
        data.entry("versions".into()).or_default();
    }
    let versions_name = data["buildout"]["versions"].text.clone();
    if !versions_name.is_empty() {
        let span = data["buildout"]["versions"].origin.span();
        let versions = data.get_mut(&versions_name).ok_or_else(|| {
            Error::new(ErrorKind::MissingSection {
                section: versions_name.clone(),
            })
            .or_at(span)
            .note("`[buildout] versions` names the section of version pins")
        })?;
        for (egg, pin) in [
            ("zc.buildout", format!(">={BUILDOUT_VERSION}")),
            ("zc.recipe.egg", ">=2.0.6".to_owned()),
        ] {
            if !versions.contains_key(egg) {
                versions.insert(egg.into(), Value::new(pin, Origin::Computed));
            }
        }
    }
    absolutise_cache_dirs(loader.sources, &mut data)?;
    Ok(Loaded {
        raw: data,
        files,
        bridge: loader.bridge,
        headers: loader.headers,
    })
}

/// `download-cache`, `eggs-directory` and `extends-cache` are made absolute against the
/// directory of the file that set them (or `directory` for defaults and the command line).
fn absolutise_cache_dirs(sources: &Sources, data: &mut RawConfig) -> Result<()> {
    let Some(buildout) = data.get_mut("buildout") else {
        return Ok(());
    };
    let directory = buildout.get("directory").map(|v| v.text.clone());
    for name in ["download-cache", "eggs-directory", "extends-cache"] {
        let Some(value) = buildout.get_mut(name) else {
            continue;
        };
        if value.text.contains("${") || value.text.starts_with('/') {
            continue;
        }
        let basedir = match &value.origin {
            Origin::File(span) => {
                let file = &sources.get(span.file).name;
                if is_url(file) {
                    return Err(Error::buildout(format!(
                        "setting `{name}` to a non absolute location (`{}`) within a remote \
                         configuration file (`{file}`) is ambiguous",
                        value.text
                    ))
                    .or_at(Some(*span)));
                }
                dirname(file).to_owned()
            }
            _ => directory.clone().unwrap_or_else(current_dir),
        };
        let mut abs = expanduser(&value.text);
        if !abs.starts_with('/') {
            abs = path_join(&basedir, &abs);
        }
        value.text = normpath(&absolute(&abs));
    }
    Ok(())
}

/// `os.path.abspath`.
pub fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        normpath(path)
    } else {
        normpath(&path_join(&current_dir(), path))
    }
}

fn current_dir() -> String {
    std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments() {
        let a = Assignment::parse("x:y+= v ").ok();
        assert_eq!(
            a,
            Some(Assignment {
                section: "x".into(),
                option: "y+".into(),
                value: "v".into()
            })
        );
        assert_eq!(
            Assignment::parse("parts=a")
                .map(|a| a.section)
                .ok()
                .as_deref(),
            Some("buildout")
        );
        assert!(Assignment::parse("a:b:c=d").is_err());
        assert!(Assignment::parse("novalue").is_err());
    }
}
