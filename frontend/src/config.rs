//! The raw configuration: sections of options whose values are still unsubstituted text, each
//! value carrying where it came from. Files, defaults and command-line assignments are all
//! turned into this shape, then merged (see `merge`) into the one raw configuration the resolver
//! evaluates.

use crate::source::Span;

/// An insertion-ordered map (buildout's dicts keep insertion order) with a fast hasher: keys are
/// section and option names, not attacker-chosen in a way that matters for a one-shot process.
pub type Map<K, V> = indexmap::IndexMap<K, V, rustc_hash::FxBuildHasher>;

/// A hash map with the same fast hasher.
pub type HashMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

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
    /// An instance parameter (`[slap-parameter]`): taken verbatim, never substituted, as
    /// SlapOS's master passes parameters.
    Parameter,
    /// Set by the initialisation of the named recipe.
    Recipe(String),
    /// Set by Python `init` code of the named section.
    Code(String),
}

impl Origin {
    /// The span of the option line, if the value was written in a file.
    pub fn span(&self) -> Option<Span> {
        match self {
            Origin::File(span) => Some(*span),
            _ => None,
        }
    }
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

pub type RawSection = Map<String, Value>;

/// Sections by name, in order of first definition.
pub type RawConfig = Map<String, RawSection>;
