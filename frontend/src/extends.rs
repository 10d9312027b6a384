//! The extends graph: reading and parsing a profile and every file it `extends`, and putting
//! them in the SlapOS fork's linearisation (depth-first, children in `extends` order, each file
//! once, post-order) merged on top of buildout's defaults.
//!
//! Files are read and parsed wave by wave (one level of the graph at a time, a wave's files in
//! parallel); errors are kept until the linearisation meets them, so the error reported is the
//! first one in buildout's order. Invariant: every file read is registered in [`Sources`], so
//! that all spans resolve.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::condition::{self, Target};
use crate::config::{HashMap, Map, Origin, RawConfig, RawSection, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::load::default_options;
use crate::merge::merge_file;
use crate::parser::{self, ConditionFailure, ParseError};
use crate::pystr::{dirname, expanduser, normpath, path_join, split_whitespace};
use crate::python::Bridge;
use crate::source::{normalise_newlines, FileId, Sources, Span};

/// The text SlapOS's buildout looks for to define `_profile_base_location_`.
pub const BASE_LOCATION_MARKER: &str = "${:_profile_base_location_}";

/// `_isurl`: `scheme://`.
pub fn is_url(s: &str) -> bool {
    match s.find("://") {
        Some(i) if i > 0 => s[..i]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')),
        _ => false,
    }
}

/// Reads and parses profile files, evaluating conditional headers for a target.
pub struct Loader<'a> {
    pub sources: &'a mut Sources,
    pub target: &'a Target,
    /// The interpreter for profile code: started as soon as a file with such code is read, so
    /// that it boots while the rest is read and resolved.
    pub python: Option<&'a str>,
    pub bridge: Option<Bridge>,
    /// A text to use instead of reading the file of that path (the root profile given in
    /// memory, as the fuzzer does).
    pub text: Option<(&'a str, &'a str)>,
    /// The download cache `http(s)://` files are fetched through; `None`: they are an error.
    pub remote_cache: Option<&'a std::path::Path>,
    /// The files of outputs planned but not built (`instance create --dry-run`), read from
    /// their derivations instead of the disk.
    pub planned: Option<&'a crate::planned::Planned>,
    /// The files an enclosing render writes in the partition, by absolute path
    /// (`load::Written`), read instead of the disk.
    pub written: &'a std::collections::BTreeMap<String, String>,
    /// The release's files by their buildout paths (`software_paths.rs`): read where they are.
    pub software_paths: &'a crate::software_paths::SoftwarePaths,
    /// The first header read of each section, to point at when a section is to blame.
    pub headers: HashMap<String, Span>,
}

/// True if a section runs Python code when initialised (`slapos.recipe.build` with `init`).
fn has_python_code(section: &RawSection) -> bool {
    section.contains_key("init")
        && section
            .get("recipe")
            .is_some_and(|r| r.text.contains("slapos.recipe.build") || r.text.contains("${"))
}

/// A profile and everything it extends, merged in the linearisation's order.
pub struct Linearised {
    pub raw: RawConfig,
    /// The files, in merge order.
    pub files: Vec<String>,
}

/// A file of the extends graph, read and parsed before its place in the linearisation is
/// known, or why it could not be had.
type Unit = Result<Parsed>;

/// A parsed file: its configuration, its section headers, and the paths of the files its
/// `extends` names (in order).
struct Parsed {
    config: RawConfig,
    headers: Map<String, Span>,
    extends: Vec<String>,
}

impl Loader<'_> {
    /// Parses a registered file; `base` is its `_profile_base_location_`.
    pub fn parse_file(&mut self, file: FileId, base: &str) -> Result<RawConfig> {
        let (config, headers) = parse_text(&self.sources.get(file).text, file, base, self.target)?;
        for (name, span) in headers {
            self.headers.entry(name).or_insert(span);
        }
        self.start_python_for(&config);
        Ok(config)
    }

    /// Starts the interpreter for profile code as soon as a file with such code is read.
    fn start_python_for(&mut self, config: &RawConfig) {
        if let (None, Some(python)) = (&self.bridge, self.python) {
            if config.values().any(has_python_code) {
                self.bridge = Bridge::start(python).ok();
            }
        }
    }

    /// The SlapOS linearisation of `root` and its extends, merged on top of buildout's
    /// defaults.
    pub fn linearise(&mut self, root: &str, executable: &str) -> Result<Linearised> {
        let mut units = self.read_all(root);
        let mut visited = rustc_hash::FxHashSet::default();
        let mut collected = Vec::new();
        let mut files = Vec::new();
        self.visit(
            root,
            None,
            &mut units,
            &mut visited,
            &mut collected,
            &mut files,
        )?;
        let mut merged = RawConfig::default();
        merged.insert("buildout".into(), default_options(executable));
        for config in collected {
            merge_file(&mut merged, config);
        }
        Ok(Linearised { raw: merged, files })
    }

    /// Reads and parses `root` and every file it extends, transitively: one wave per level of
    /// the extends graph, the files of a wave in parallel. Errors are kept, not raised: the
    /// linearisation raises the first one it meets, in buildout's order.
    fn read_all(&mut self, root: &str) -> FxHashMap<String, Unit> {
        let mut units = FxHashMap::default();
        let mut queued = rustc_hash::FxHashSet::default();
        queued.insert(root.to_owned());
        let mut wave = vec![root.to_owned()];
        while !wave.is_empty() {
            let first = self.sources.len();
            let (text, target, remote, planned) =
                (self.text, self.target, self.remote_cache, self.planned);
            let (written, software_paths) = (self.written, self.software_paths);
            let read = |(i, path): (usize, &String)| {
                let file = FileId((first + i) as u32);
                // a file an enclosing render writes, the root's given text, or the file read
                // (where the release has it, for a buildout path of the software)
                let given = (written
                    .get(&crate::pystr::normpath(path))
                    .map(String::as_str))
                .or(text.filter(|(p, _)| *p == path.as_str()).map(|(_, t)| t));
                let at = software_paths.map(path);
                let read_at = at.as_deref().unwrap_or(path);
                read_text(read_at, given.map(|t| (read_at, t)), remote, planned).map(|text| {
                    let parsed =
                        parse_text(&text, file, dirname(path), target).map(|(config, headers)| {
                            Parsed {
                                extends: extends_of(&config, path),
                                config,
                                headers,
                            }
                        });
                    (text, parsed)
                })
            };
            let results: Vec<Result<(String, Unit)>> = if wave.len() >= PARALLEL_WAVE {
                wave.par_iter().enumerate().map(read).collect()
            } else {
                wave.iter().enumerate().map(read).collect()
            };
            let mut next = Vec::new();
            for (path, result) in wave.iter().zip(results) {
                let unit = match result {
                    Ok((text, unit)) => {
                        self.sources.add(path.clone(), text);
                        unit
                    }
                    Err(e) => {
                        // keep file ids in step with the wave's numbering
                        self.sources.add(path.clone(), String::new());
                        Err(e)
                    }
                };
                if let Ok(parsed) = &unit {
                    self.start_python_for(&parsed.config);
                    for child in &parsed.extends {
                        if queued.insert(child.clone()) {
                            next.push(child.clone());
                        }
                    }
                }
                units.insert(path.clone(), unit);
            }
            wave = next;
        }
        units
    }

    fn visit(
        &mut self,
        path: &str,
        from: Option<Span>,
        units: &mut FxHashMap<String, Unit>,
        visited: &mut rustc_hash::FxHashSet<String>,
        collected: &mut Vec<RawConfig>,
        files: &mut Vec<String>,
    ) -> Result<()> {
        if !visited.insert(path.to_owned()) {
            return Ok(());
        }
        let unit = units.remove(path).unwrap_or_else(|| {
            Err(Error::new(ErrorKind::CannotOpen {
                path: path.into(),
                reason: "not read".into(),
            }))
        });
        let Parsed {
            mut config,
            headers,
            extends: children,
        } = unit.map_err(|e| e.or_at(from))?;
        for (name, span) in headers {
            self.headers.entry(name).or_insert(span);
        }
        let mut extends = None;
        if let Some(buildout) = config.get_mut("buildout") {
            extends = buildout.shift_remove("extends");
            if let Some(v) = buildout.get("extended-by") {
                return Err(Error::new(ErrorKind::ExtendedBy).or_at(v.origin.span()));
            }
        }
        if let Some(extends) = extends {
            let span = extends.origin.span();
            for (name, child) in split_whitespace(&extends.text).zip(&children) {
                let at = span.map(|s| find_in(self.sources, s, name));
                self.visit(child, at, units, visited, collected, files)
                    .map_err(|e| e.note(format!("while reading the files `{path}` extends")))?;
            }
        }
        files.push(path.to_owned());
        collected.push(config);
        Ok(())
    }
}

/// Waves of fewer files are read on the calling thread: starting threads would cost more.
const PARALLEL_WAVE: usize = 4;

/// The files a configuration's `[buildout] extends` names, resolved against its own path.
fn extends_of(config: &RawConfig, path: &str) -> Vec<String> {
    let Some(extends) = config.get("buildout").and_then(|b| b.get("extends")) else {
        return Vec::new();
    };
    let base = dirname(path);
    split_whitespace(&extends.text)
        .map(|name| resolve_extends(base, name))
        .collect()
}

/// The text of a profile file (or the text given for it), newlines normalised: a planned
/// output's file (a dry run), a local file, a `file://` URL's, or an `http(s)://` one fetched
/// through `remote` (the download cache).
fn read_text(
    path: &str,
    given: Option<(&str, &str)>,
    remote: Option<&std::path::Path>,
    planned: Option<&crate::planned::Planned>,
) -> Result<String> {
    if let Some((_, text)) = given.filter(|(p, _)| *p == path) {
        return Ok(normalise_newlines(text));
    }
    if let Some(known) = planned.and_then(|p| p.read(path)) {
        return known
            .map(|text| normalise_newlines(&text))
            .map_err(|reason| {
                Error::new(ErrorKind::CannotOpen {
                    path: path.into(),
                    reason,
                })
            });
    }
    let bytes = if let Some(local) = path.strip_prefix("file://") {
        read_local(local)?
    } else if is_url(path) {
        fetch_remote(path, remote)?
    } else {
        read_local(path)?
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::new(ErrorKind::NotUtf8 { path: path.into() }))?;
    Ok(normalise_newlines(&text))
}

fn read_local(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::new(ErrorKind::CannotOpen {
            path: path.into(),
            reason: io_reason(&e),
        })
    })
}

/// A remote profile file, downloaded through the download cache `cache` (unpinned: a profile
/// has no checksum; kept there under its BLAKE3, fetched again each time, as buildout does
/// when it is not offline).
fn fetch_remote(url: &str, cache: Option<&std::path::Path>) -> Result<Vec<u8>> {
    let remote = |reason: String| {
        Error::new(ErrorKind::RemoteProfile {
            url: url.into(),
            reason,
        })
    };
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(remote(
            "only `http://`, `https://` and `file://` URLs are read".into(),
        ));
    }
    let Some(cache) = cache else {
        return Err(remote(
            "`slapstore eval` and `build` read local profiles only (`slapstore node` fetches \
             its releases' profiles)"
                .into(),
        ));
    };
    fetch_url(url, cache, None).map_err(remote)
}

/// The content of an `http(s)://` URL, fetched through the download cache `cache`: checked
/// against and cached under `md5` when given (a later fetch is a cache hit), else fetched
/// unpinned (and kept under its BLAKE3).
pub fn fetch_url(
    url: &str,
    cache: &std::path::Path,
    md5: Option<&str>,
) -> std::result::Result<Vec<u8>, String> {
    let checksum = md5
        .map(|hex| format!("md5:{}", hex.trim().to_lowercase()).parse())
        .transpose()
        .map_err(|e: slapstore_store::checksum::ChecksumError| e.to_string())?;
    std::fs::create_dir_all(cache)
        .map_err(|e| format!("cannot make `{}`: {e}", cache.display()))?;
    let dest = tempfile::NamedTempFile::new_in(cache)
        .map_err(|e| format!("cannot write in `{}`: {e}", cache.display()))?;
    slapstore_store::fetch::Fetcher::new(cache)
        .allow_unpinned(true)
        .fetch(&[url], checksum.as_ref(), dest.path())
        .map_err(|e| e.to_string())?;
    std::fs::read(dest.path()).map_err(|e| format!("cannot read what was fetched: {e}"))
}

/// Parses one file's text (registered as `file`), evaluating conditional headers for `target`
/// and adding `_profile_base_location_` = `base` to the sections whose values mention it.
fn parse_text(
    text: &str,
    file: FileId,
    base: &str,
    target: &Target,
) -> Result<(RawConfig, Map<String, Span>)> {
    let mut evaluate = |expr: &str| {
        condition::evaluate(expr, target).map_err(|e| ConditionFailure {
            message: e.message,
            offset: e.offset,
        })
    };
    let parsed = parser::parse(text, file, &mut evaluate).map_err(|e| match e {
        ParseError::BadLines(lines) => {
            let mut err = Error::at(ErrorKind::BadLine, lines[0]);
            for line in &lines[1..] {
                err = err.related(*line, "this line is not valid either");
            }
            err
        }
        ParseError::NoSectionHeader(span) => Error::at(ErrorKind::NoSectionHeader, span),
        ParseError::Condition { span, message } => {
            Error::at(ErrorKind::Condition { message }, span)
        }
    })?;
    let mut config = RawConfig::with_capacity_and_hasher(parsed.sections.len(), Default::default());
    for (name, options) in parsed.sections {
        let marker = options
            .values()
            .find(|o| o.value.contains(BASE_LOCATION_MARKER))
            .map(|o| o.span);
        let mut section: RawSection = options
            .into_iter()
            .map(|(k, o)| (k, Value::new(o.value, Origin::File(o.span))))
            .collect();
        if let Some(span) = marker {
            section.insert(
                "_profile_base_location_".into(),
                Value::new(base, Origin::File(span)),
            );
        }
        config.insert(name, section);
    }
    Ok((config, parsed.headers))
}

/// The first occurrence of `needle` inside `span`, or `span` itself.
pub fn find_in(sources: &Sources, span: Span, needle: &str) -> Span {
    match sources.slice(span).find(needle) {
        Some(i) => Span {
            file: span.file,
            start: span.start + i as u32,
            end: span.start + (i + needle.len()) as u32,
        },
        None => span,
    }
}

/// Where an `extends` entry points, relative to the directory of the extending file.
pub fn resolve_extends(base: &str, name: &str) -> String {
    if is_url(name) {
        return name.to_owned();
    }
    if is_url(base) {
        let mut joined = base.to_owned();
        if !joined.ends_with('/') {
            joined.push('/');
        }
        joined.push_str(name);
        return joined;
    }
    normpath(&path_join(base, &expanduser(name)))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_extends() {
        assert!(is_url("https://x/y.cfg"));
        assert!(!is_url("/a/b.cfg"));
        assert_eq!(resolve_extends("/a/b", "../c.cfg"), "/a/c.cfg");
        assert_eq!(
            resolve_extends("https://h/a", "../c.cfg"),
            "https://h/a/../c.cfg"
        );
    }
}
