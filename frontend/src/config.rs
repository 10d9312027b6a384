//! The raw configuration: sections of options whose values are still unsubstituted text, each
//! value carrying where it came from. Files, defaults and command-line assignments are all
//! turned into this shape, then merged (see `merge`) into the one raw configuration the resolver
//! evaluates.

use indexmap::IndexMap;

use crate::source::Span;

/// Where a value was last assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An option line of a profile file (the span covers key and value).
    File(Span),
    /// One of buildout's hard-coded `[buildout]` defaults.
    Default,
    /// Computed by buildout itself (`directory`, directories made absolute, version pins).
    Computed,
    /// A `-O section:option=value` assignment.
    CommandLine,
    /// Set by the initialisation of the named recipe.
    Recipe(String),
    /// Set by Python `init` code of the named section.
    Code(String),
}

/// How a value was obtained from the one below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set,
    Add,
    Remove,
}

/// An option value before substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub origin: Origin,
    pub op: Op,
}

impl Value {
    pub fn new(text: impl Into<String>, origin: Origin) -> Value {
        Value {
            text: text.into(),
            origin,
            op: Op::Set,
        }
    }

    /// buildout's `addToValue`: the lines of `added` appended to this value's lines.
    pub fn add(&mut self, added: &Value) {
        self.text.push('\n');
        self.text.push_str(&added.text);
        self.origin = added.origin.clone();
        self.op = Op::Add;
    }

    /// buildout's `removeFromValue`: drop every line equal to one of `removed`'s lines.
    pub fn remove(&mut self, removed: &Value) {
        let drop: Vec<&str> = removed.text.split('\n').collect();
        let kept: Vec<&str> = self
            .text
            .split('\n')
            .filter(|l| !drop.contains(l))
            .collect();
        self.text = kept.join("\n");
        self.origin = removed.origin.clone();
        self.op = Op::Remove;
    }
}

pub type RawSection = IndexMap<String, Value>;

/// Sections by name, in order of first definition.
pub type RawConfig = IndexMap<String, RawSection>;
