//! The resolver: buildout's lazy evaluation of sections (`Buildout.__getitem__` and `Options`).
//!
//! A section is initialised the first time anything asks for it: its macros (`<=`) are
//! expanded, every option containing `${` is substituted (so errors in unused options still
//! surface), its `<part-dependencies>` are initialised, and if it has a recipe the recipe's
//! initialisation runs (see `recipes`) and the section becomes a part. A `${section:option}`
//! reference initialises the referenced section first, which is how parts pulled in by
//! references come before the parts that reference them.
//!
//! Invariants: a section is initialised at most once and appears in [`Resolver::sections`] in
//! the order initialisation started; an option value, once computed, never changes unless a
//! recipe or profile code sets it; a cycle of references is reported, never followed forever.

use crate::condition::Target;
use crate::config::{HashMap, Map, Origin, RawConfig, RawSection, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::merge::update_section;
use crate::pystr::{self, split_whitespace};
use crate::python::Bridge;
use crate::recipes;
use crate::source::{Sources, Span};

/// A computed option value and where its text was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub text: String,
    pub origin: Origin,
}

/// One section being or having been initialised (buildout's `Options`).
#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    /// Raw values, after macro expansion.
    pub raw: RawSection,
    /// Values substituted during initialisation (`_cooked`).
    cooked: HashMap<String, String>,
    /// Values asked for or set (`_data`).
    pub data: Map<String, Resolved>,
}

impl Options {
    /// `Options.keys()`: raw keys, then keys only set later.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.raw.keys().cloned().collect();
        keys.extend(
            self.data
                .keys()
                .filter(|k| !self.raw.contains_key(*k))
                .cloned(),
        );
        keys
    }

    /// The origin of an option, whichever state it is in.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.data
            .get(key)
            .map(|r| &r.origin)
            .or_else(|| self.raw.get(key).map(|v| &v.origin))
    }
}

/// Settings that change what initialisation computes.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub target: Target,
    /// Set for `plan` and `build`: recipes' locations are store paths.
    pub store: Option<crate::derive::StoreMode>,
    /// Set when rendering an instance profile: instance-time recipes only.
    pub instance: bool,
    /// The interpreter that runs profile Python code.
    pub python: String,
    /// When rendering an instance: what the local master tells it (`recipes/slap.rs`).
    pub slap: Option<std::sync::Arc<crate::recipes::slap::Slap>>,
    /// The download cache remote templates are fetched through (`slapstore node`'s remote
    /// releases); `None`: they are an error.
    pub remote_cache: Option<std::path::PathBuf>,
    /// The files of outputs planned but not built (`instance create --dry-run`).
    pub planned: Option<std::sync::Arc<crate::planned::Planned>>,
    /// When rendering an instance: the distributions of the release's egg parts.
    pub eggs: Option<std::sync::Arc<crate::python::eggs::ReleaseEggs>>,
    /// The files an enclosing render writes in the partition (`EvalOptions::written`).
    pub written: crate::load::Written,
    /// The release's files by their buildout paths (`EvalOptions::software_paths`).
    pub software_paths: std::sync::Arc<crate::software_paths::SoftwarePaths>,
}

type Seen = Vec<(String, String)>;

/// What a recipe answers for an option its section does not have (Python's `__missing__` on
/// the options' dict, as `generate.password`'s `passwd-<scheme>`): the value, or `None`.
pub type Missing = Box<dyn FnMut(&mut Resolver, usize, &str) -> Result<Option<String>>>;

/// One evaluation of a profile.
pub struct Resolver<'s> {
    pub sources: &'s mut Sources,
    pub settings: Settings,
    /// `_raw`: merged raw sections (profile code may add more).
    pub raw: RawConfig,
    /// `_data`: initialised sections, in order.
    pub sections: Map<String, Options>,
    /// Recipe-bearing sections in the order they finished initialising (the install order).
    pub parts: Vec<String>,
    pub(crate) bridge: Option<Bridge>,
    /// Stack of sections being expanded as macros (cycle detection).
    macro_stack: Vec<String>,
    /// The first header of each section, to blame a section as a whole.
    pub headers: HashMap<String, Span>,
    /// In a build, the derivations of the parts initialised so far.
    pub derivations: crate::derive::Derivations,
    /// When rendering an instance: what its parts put in the partition.
    pub instance_output: crate::recipes::instance::InstanceOutput,
    /// Options whose value holds an instance parameter's text (`Origin::Parameter`): final
    /// once computed, never substituted again, so a `${` in a parameter stays text.
    verbatim: std::collections::HashSet<(String, String)>,
    /// Set by [`Resolver::reference`] when the value it returned holds parameter text.
    tainted: bool,
    /// Values that are not text in SlapOS's buildout (slapconfiguration's `configuration`
    /// dict, address sets), by `(section, option)`: a Jinja2 context sees these instead of
    /// their text.
    pub typed: HashMap<(String, String), serde_json::Value>,
    /// By section index: what answers the options the section does not have ([`Missing`]).
    pub missing: HashMap<usize, Missing>,
}

impl<'s> Resolver<'s> {
    pub fn new(
        sources: &'s mut Sources,
        raw: RawConfig,
        settings: Settings,
        bridge: Option<Bridge>,
        headers: HashMap<String, Span>,
    ) -> Resolver<'s> {
        Resolver {
            sources,
            settings,
            raw,
            sections: Map::default(),
            parts: Vec::new(),
            bridge,
            macro_stack: Vec::new(),
            headers,
            derivations: Default::default(),
            instance_output: Default::default(),
            verbatim: Default::default(),
            tainted: false,
            typed: Default::default(),
            missing: Default::default(),
        }
    }

    /// `buildout[name]`: the index of the section, initialising it on first use.
    pub fn section(&mut self, name: &str) -> Result<usize> {
        if let Some(i) = self.sections.get_index_of(name) {
            return Ok(i);
        }
        let Some(raw) = self.raw.get(name).cloned() else {
            return Err(Error::new(ErrorKind::MissingSection {
                section: name.to_owned(),
            }));
        };
        let (idx, _) = self.sections.insert_full(
            name.to_owned(),
            Options {
                name: name.to_owned(),
                raw,
                cooked: HashMap::default(),
                data: Map::default(),
            },
        );
        self.initialize(idx)
            .map_err(|e| e.note(format!("while initialising section [{name}]")))?;
        Ok(idx)
    }

    pub fn name(&self, idx: usize) -> &str {
        &self.sections[idx].name
    }

    /// `Options._initialize`.
    fn initialize(&mut self, idx: usize) -> Result<()> {
        let name = self.sections[idx].name.clone();
        if self.sections[idx].raw.contains_key("<") {
            let raw = std::mem::take(&mut self.sections[idx].raw);
            self.sections[idx].raw = self.extend_raw(&name, raw)?;
        }
        let mut to_sub: Vec<(String, String)> = self.sections[idx]
            .raw
            .iter()
            .filter(|(_, v)| has_reference(&v.text) && v.origin != Origin::Parameter)
            .map(|(k, v)| (k.clone(), v.text.clone()))
            .collect();
        to_sub.sort();
        for (key, text) in to_sub {
            let mut seen = vec![(name.clone(), key.clone())];
            let origin = self.sections[idx].raw.get(&key).map(|v| v.origin.clone());
            let outer = std::mem::take(&mut self.tainted);
            let cooked = self.substitute(idx, &text, &mut seen, origin.as_ref());
            let tainted = std::mem::replace(&mut self.tainted, outer);
            let cooked = cooked?;
            if tainted {
                // `_cooked` values are substituted again when read (buildout's `get`): one
                // holding parameter text is final instead
                self.verbatim.insert((name.clone(), key.clone()));
                let origin = origin.unwrap_or(Origin::Computed);
                self.sections[idx].data.insert(
                    key,
                    Resolved {
                        text: cooked,
                        origin,
                    },
                );
            } else {
                self.sections[idx].cooked.insert(key, cooked);
            }
        }
        if name == "buildout" {
            return Ok(());
        }
        if let Some(deps) = self.get(idx, "<part-dependencies>", None)? {
            let span = self.span_of(idx, "<part-dependencies>");
            for dep in split_whitespace(&deps) {
                self.section(dep).map_err(|e| e.or_at(span))?;
            }
        }
        if let Some(recipe) = self.get(idx, "recipe", None)? {
            if !recipe.is_empty() {
                recipes::initialize(self, idx, &recipe).map_err(|e| {
                    let span = self.span_of(idx, "recipe");
                    e.or_at(span)
                })?;
                self.parts.push(name);
            }
        }
        Ok(())
    }

    /// `_do_extend_raw`: the section's raw options with its macros (`<`) expanded.
    fn extend_raw(&mut self, name: &str, data: RawSection) -> Result<RawSection> {
        if name == "buildout" {
            return Ok(data);
        }
        if self.macro_stack.iter().any(|n| n == name) {
            let mut chain = self.macro_stack.clone();
            chain.push(name.to_owned());
            return Err(Error::new(ErrorKind::MacroLoop { chain }));
        }
        let Some(to_do) = data.get("<").cloned() else {
            return Ok(data);
        };
        self.macro_stack.push(name.to_owned());
        let result = self.expand_macros(name, data, &to_do);
        self.macro_stack.pop();
        result
    }

    fn expand_macros(&mut self, name: &str, data: RawSection, to_do: &Value) -> Result<RawSection> {
        let span = to_do.origin.span();
        let mut result = RawSection::default();
        for macro_name in to_do.text.split('\n') {
            let macro_name = pystr::strip(macro_name);
            if macro_name.is_empty() {
                continue;
            }
            let Some(raw) = self.raw.get(macro_name).cloned() else {
                let span = span.map(|s| self.find_in(s, macro_name));
                return Err(Error::new(ErrorKind::NoMacro {
                    section: macro_name.to_owned(),
                    user: name.to_owned(),
                })
                .or_at(span));
            };
            let expanded = self
                .extend_raw(macro_name, raw)
                .map_err(|e| e.or_at(span))?;
            for (k, v) in expanded {
                result.insert(k, v);
            }
        }
        update_section(&mut result, data);
        result.shift_remove("<");
        Ok(result)
    }

    /// `Options.get(option, None, seen)`: the substituted value, or `None` if the option does
    /// not exist.
    pub fn get(
        &mut self,
        idx: usize,
        option: &str,
        seen: Option<&mut Seen>,
    ) -> Result<Option<String>> {
        let options = &self.sections[idx];
        if let Some(r) = options.data.get(option) {
            return Ok(Some(r.text.clone()));
        }
        let (text, origin) = match (options.cooked.get(option), options.raw.get(option)) {
            (Some(c), raw) => (c.clone(), raw.map(|v| v.origin.clone())),
            (None, Some(v)) => (v.text.clone(), Some(v.origin.clone())),
            (None, None) => return self.ask_missing(idx, option),
        };
        let origin = origin.unwrap_or(Origin::Computed);
        if origin == Origin::Parameter {
            self.verbatim
                .insert((options.name.clone(), option.to_owned()));
        }
        let text = if has_reference(&text) && origin != Origin::Parameter {
            let key = (options.name.clone(), option.to_owned());
            let mut own = Vec::new();
            let seen = match seen {
                Some(seen) => {
                    if seen.contains(&key) {
                        return Err(self.circular(seen, &key));
                    }
                    seen.push(key);
                    seen
                }
                None => {
                    own.push(key);
                    &mut own
                }
            };
            let outer = std::mem::take(&mut self.tainted);
            let result = self.substitute(idx, &text, seen, Some(&origin));
            if std::mem::replace(&mut self.tainted, outer) {
                let name = self.sections[idx].name.clone();
                self.verbatim.insert((name, option.to_owned()));
            }
            seen.pop();
            result?
        } else {
            text
        };
        // SlapOS buildout's serialised values (`!py!<repr>`, what a template's `dumps` writes)
        // are read back as the value: its text when it is a string, else its JSON (and the
        // value itself for Jinja2 contexts)
        let text = match text
            .strip_prefix("!py!")
            .and_then(crate::condition::literal)
        {
            Some(serde_json::Value::String(s)) => s,
            Some(value) => {
                let name = self.sections[idx].name.clone();
                let json = value.to_string();
                self.typed.insert((name, option.to_owned()), value);
                json
            }
            None => text,
        };
        self.sections[idx].data.insert(
            option.to_owned(),
            Resolved {
                text: text.clone(),
                origin,
            },
        );
        Ok(Some(text))
    }

    /// The section's [`Missing`] answer for `option`; `None` without one (an option it asks
    /// for itself while answering is missing).
    fn ask_missing(&mut self, idx: usize, option: &str) -> Result<Option<String>> {
        let Some(mut answer) = self.missing.remove(&idx) else {
            return Ok(None);
        };
        let value = answer(self, idx, option);
        self.missing.insert(idx, answer);
        value
    }

    fn circular(&self, seen: &Seen, key: &(String, String)) -> Error {
        let mut chain: Vec<String> = seen
            .iter()
            .skip_while(|k| *k != key)
            .map(|(s, o)| format!("{s}:{o}"))
            .collect();
        chain.push(format!("{}:{}", key.0, key.1));
        let mut err = Error::new(ErrorKind::Circular { chain });
        let mut first = true;
        for (s, o) in seen.iter().skip_while(|k| *k != key) {
            if let Some(span) = self.span_in(s, o) {
                if first {
                    err.span = Some(span);
                    first = false;
                } else {
                    err = err.related(span, format!("`{s}:{o}` is defined here"));
                }
            }
        }
        err
    }

    /// `Options.__getitem__`: like [`Resolver::get`] but a missing option is an error.
    pub fn require(&mut self, idx: usize, option: &str) -> Result<String> {
        match self.get(idx, option, None)? {
            Some(v) => Ok(v),
            None => {
                let section = self.sections[idx].name.clone();
                let header = self.header(&section);
                Err(Error::new(ErrorKind::RequiredOption {
                    section,
                    option: option.to_owned(),
                })
                .or_at(header))
            }
        }
    }

    /// `Options.__setitem__`.
    pub fn set(&mut self, idx: usize, option: &str, text: String, origin: Origin) {
        self.sections[idx]
            .data
            .insert(option.to_owned(), Resolved { text, origin });
    }

    /// `options[key] = value` for a value that holds parameter text (`Origin::Parameter`):
    /// final, never substituted again, and tainting what references it.
    pub fn set_parameter(&mut self, idx: usize, option: &str, text: String) {
        let name = self.sections[idx].name.clone();
        self.verbatim.insert((name, option.to_owned()));
        self.set(idx, option, text, Origin::Parameter);
    }

    /// True if the value of `section:option` holds parameter text ([`Self::set_parameter`]).
    pub fn is_verbatim(&self, section: &str, option: &str) -> bool {
        self.verbatim
            .contains(&(section.to_owned(), option.to_owned()))
    }

    /// `options[key] = value` for a value that is not text: its text here, the value itself
    /// for Jinja2 contexts.
    pub fn set_typed(
        &mut self,
        idx: usize,
        option: &str,
        value: serde_json::Value,
        origin: Origin,
    ) {
        let text = match &value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let name = self.sections[idx].name.clone();
        self.typed.insert((name, option.to_owned()), value);
        self.set(idx, option, text, origin);
    }

    /// How SlapOS's buildout holds a list or dict: `!py!<repr>` (what a `${}` reference to
    /// it inserts, and what the Python bridge decodes back into the value). `None` for text,
    /// and for numbers and booleans, which references insert as their text (a port number in
    /// a command line).
    pub fn serialised(&self, idx: usize, option: &str) -> Option<String> {
        let key = (self.sections[idx].name.clone(), option.to_owned());
        let value = self
            .typed
            .get(&key)
            .filter(|v| v.is_array() || v.is_object())?;
        Some(format!(
            "!py!{}",
            slapstore_store::recipes::pyrepr_json(value)
        ))
    }

    /// `Options.__delitem__`; false if the option did not exist.
    pub fn delete(&mut self, idx: usize, option: &str) -> bool {
        let key = (self.sections[idx].name.clone(), option.to_owned());
        self.typed.remove(&key);
        let options = &mut self.sections[idx];
        if options.raw.shift_remove(option).is_some() {
            options.data.shift_remove(option);
            options.cooked.remove(option);
            true
        } else {
            options.data.shift_remove(option).is_some()
        }
    }

    /// Every option of a section with its final value (`{k: options[k] for k in keys()}`).
    pub fn items(&mut self, idx: usize) -> Result<Vec<(String, String)>> {
        let keys = self.sections[idx].keys();
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.require(idx, &key)?;
            items.push((key, value));
        }
        Ok(items)
    }

    /// `Options._sub`: substitutes the `${section:option}` references of `template`, split on
    /// `$$` first (the pieces are rejoined with `$$`, so `$${x}` stays as it is).
    pub fn substitute(
        &mut self,
        idx: usize,
        template: &str,
        seen: &mut Seen,
        origin: Option<&Origin>,
    ) -> Result<String> {
        if !has_reference(template) {
            return Ok(template.to_owned());
        }
        let mut out = String::with_capacity(template.len());
        for (i, piece) in template.split("$$").enumerate() {
            if i > 0 {
                out.push_str("$$");
            }
            self.substitute_piece(idx, piece, seen, origin, &mut out)?;
        }
        Ok(out)
    }

    /// `_sub` on one `$$`-free piece, appending the result to `out`.
    pub fn substitute_piece(
        &mut self,
        idx: usize,
        piece: &str,
        seen: &mut Seen,
        origin: Option<&Origin>,
        out: &mut String,
    ) -> Result<()> {
        let mut rest = piece;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let token = &rest[start..start + len + 1];
            out.push_str(&rest[..start]);
            let value = self.reference(idx, token, seen, origin)?;
            out.push_str(&value);
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        Ok(())
    }

    /// The value of one `${section:option}` token.
    fn reference(
        &mut self,
        idx: usize,
        token: &str,
        seen: &mut Seen,
        origin: Option<&Origin>,
    ) -> Result<String> {
        let blame = |r: &Resolver, e: Error| -> Error {
            let span = origin.and_then(Origin::span).map(|s| r.find_in(s, token));
            e.or_at(span)
        };
        let inner = &token[2..token.len() - 1];
        let parts: Vec<&str> = inner.split(':').collect();
        if !is_valid_reference(inner) {
            let problem = if parts.len() < 2 {
                Some("doesn't contain a colon")
            } else if parts.len() > 2 {
                Some("has too many colons")
            } else if !is_simple(parts[0]) {
                Some("has invalid characters in its section name")
            } else if !is_simple(parts[1]) {
                Some("has invalid characters in its option name")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(blame(
                    self,
                    Error::new(ErrorKind::Substitution {
                        token: token.to_owned(),
                        problem,
                    }),
                ));
            }
        }
        let (section, option) = (parts[0], parts[1]);
        let section = if section.is_empty() {
            self.sections[idx].name.clone()
        } else {
            section.to_owned()
        };
        let target = match self.section(&section) {
            Ok(t) => t,
            Err(e) => return Err(blame(self, e)),
        };
        match self.get(target, option, Some(seen)) {
            Ok(Some(v)) => {
                if self.verbatim.contains(&(section, option.to_owned())) {
                    self.tainted = true;
                }
                // a value that is not text is inserted serialised, as SlapOS's buildout
                // holds it: an option that is only this reference has the value itself
                Ok(self.serialised(target, option).unwrap_or(v))
            }
            Ok(None) if option == "_buildout_section_name_" => Ok(self.sections[idx].name.clone()),
            Ok(None) if self.deferred_value(&section, option).is_some() => {
                Ok(crate::python::eggs::placeholder(&section, option))
            }
            Ok(None) => Err(blame(
                self,
                Error::new(ErrorKind::MissingOption {
                    section,
                    option: option.to_owned(),
                }),
            )),
            Err(e) => Err(blame(self, e)),
        }
    }

    /// The span of an option's definition, if it was written in a file.
    pub fn span_of(&self, idx: usize, option: &str) -> Option<Span> {
        self.sections[idx].origin(option).and_then(Origin::span)
    }

    fn span_in(&self, section: &str, option: &str) -> Option<Span> {
        let idx = self.sections.get_index_of(section)?;
        self.span_of(idx, option)
    }

    /// The first occurrence of `needle` inside `span`, or `span` itself.
    pub fn find_in(&self, span: Span, needle: &str) -> Span {
        crate::extends::find_in(self.sources, span, needle)
    }

    /// The header of a section, to blame the section as a whole.
    pub fn header(&self, section: &str) -> Option<Span> {
        self.headers.get(section).copied()
    }

    /// `buildout.parse(text)`: adds the sections of `text` (which must all be new) and
    /// initialises them. Used by profile Python code.
    pub fn parse_sections(&mut self, text: &str, by: &str) -> Result<()> {
        let dedented = pystr::dedent(text);
        let file = self.sources.add(
            format!("<text parsed by [{by}]>"),
            crate::source::normalise_newlines(&dedented),
        );
        let target = self.settings.target.clone();
        let written = crate::load::Written::default();
        let software_paths = crate::software_paths::SoftwarePaths::default();
        let mut loader = crate::extends::Loader {
            sources: self.sources,
            target: &target,
            python: None,
            bridge: None,
            text: None,
            remote_cache: None,
            planned: None,
            written: &written,
            software_paths: &software_paths,
            headers: HashMap::default(),
        };
        let parsed = loader.parse_file(file, "")?;
        for (name, span) in loader.headers {
            self.headers.entry(name).or_insert(span);
        }
        let names: Vec<String> = parsed.keys().cloned().collect();
        for (name, section) in parsed {
            if self.raw.contains_key(&name) {
                return Err(Error::buildout(format!("section `{name}` already exists")));
            }
            self.raw.insert(name, section);
        }
        for name in names {
            self.section(&name)?;
        }
        Ok(())
    }
}

/// True if `text` contains `${` (checked for a `$` first: most values have none).
pub fn has_reference(text: &str) -> bool {
    text.contains('$') && text.contains("${")
}

/// `_simple`: `[-a-zA-Z0-9 ._]+$` (where `$` also matches before a final newline).
fn is_simple(s: &str) -> bool {
    let s = s.strip_suffix('\n').unwrap_or(s);
    !s.is_empty() && s.bytes().all(is_ref_byte)
}

fn is_ref_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b' ' | b'.' | b'_')
}

/// `_valid`: `\${[-a-zA-Z0-9 ._]*:[-a-zA-Z0-9 ._]+}$` on the inside of a token.
fn is_valid_reference(inner: &str) -> bool {
    match inner.split_once(':') {
        Some((s, o)) => s.bytes().all(is_ref_byte) && !o.is_empty() && o.bytes().all(is_ref_byte),
        None => false,
    }
}

impl Resolver<'_> {
    /// `Options.copy()`: raw values overridden by substituted and set ones, no new
    /// substitution.
    pub fn raw_copy(&self, idx: usize) -> Map<String, String> {
        let options = &self.sections[idx];
        let mut copy: Map<String, String> = options
            .raw
            .iter()
            .map(|(k, v)| (k.clone(), v.text.clone()))
            .collect();
        for (k, v) in &options.cooked {
            copy.insert(k.clone(), v.clone());
        }
        for (k, v) in &options.data {
            copy.insert(k.clone(), v.text.clone());
        }
        copy
    }
}
