//! PEP 508 environment markers, as `packaging.markers.Marker` (packaging
//! 26.3, the version zc.buildout 3.0.1 runs with) parses and evaluates them.
//!
//! zc.buildout first tries a section condition as a marker; only a text that
//! is *not* a marker ([`NotAMarker`]) is evaluated as Python. So [`parse`]
//! must accept exactly what packaging accepts:
//!
//! ```text
//! marker      := atom (BOOLOP atom)*        BOOLOP := \b(or|and)\b
//! atom        := WS? '(' WS? marker WS? ')' WS? | WS? item WS?
//! item        := var WS? op WS? var         WS := [ \t]+
//! var         := VARIABLE | QUOTED_STRING
//! op          := \bin\b | \bnot\b WS \bin\b | === | == | ~= | != | <= | >= | < | >
//! ```
//!
//! `VARIABLE` also matches the dotted aliases `os.name`, `sys.platform`,
//! `platform.version`, `platform.machine`, `platform.python_implementation`
//! and `python_implementation` (mapped to the underscore names), plus
//! `extra`, `extras` and `dependency_groups`. Quoted strings are `'...'` or
//! `"..."` without the quote inside, decoded as Python literals (escapes).
//!
//! Evaluation follows packaging, including its quirks: every comparison is
//! evaluated (no short-circuit, so an error anywhere is an error); `and`
//! binds tighter than `or`; for `python_version`, `python_full_version`,
//! `implementation_version` and `platform_release`, a comparison whose
//! `op + value` is a valid PEP 440 specifier is a version match (an invalid
//! version on the left never matches); otherwise `==`/`!=`/`in`/`not in`
//! compare strings, `<=`/`>=` mean `==`, `<`/`>` are always false, and
//! `~=`/`===` are an error. The environment is packaging's "metadata"
//! context: `extra` is `""`, and `extras`/`dependency_groups` are undefined.
//!
//! Invariants: parsing is linear and bounded in nesting ([`MAX_DEPTH`]);
//! nothing here panics on any input.

use super::{python, ConditionError};

/// Deepest parenthesis nesting accepted; deeper texts are not markers.
pub(super) const MAX_DEPTH: usize = 100;

/// Why a text is not a PEP 508 marker (packaging's `InvalidMarker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NotAMarker {
    pub message: String,
    pub offset: usize,
}

/// A parsed marker: `or`-separated groups of `and`-joined atoms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Marker {
    groups: Vec<Vec<Atom>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Nested(Marker),
    Compare(Comparison),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparison {
    lhs: Operand,
    op: Op,
    rhs: Operand,
    offset: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    /// An environment variable, by its canonical (underscore) name.
    Variable(String),
    /// A decoded quoted string.
    Value(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Ne,
    Eq,
    Ge,
    Gt,
    Compatible,
    Arbitrary,
    In,
    NotIn,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Ne => "!=",
            Op::Eq => "==",
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Compatible => "~=",
            Op::Arbitrary => "===",
            Op::In => "in",
            Op::NotIn => "not in",
        }
    }
}

/// Variables whose comparisons may be PEP 440 version matches.
const VERSION_VARIABLES: [&str; 4] = [
    "implementation_version",
    "platform_release",
    "python_full_version",
    "python_version",
];

/// Variables holding sets in packaging (never defined in our environment).
const SET_VARIABLES: [&str; 2] = ["extras", "dependency_groups"];

/// `VARIABLE` alternatives as written in the source, with their names.
const VARIABLES: [(&str, &str); 19] = [
    ("python_version", "python_version"),
    ("python_full_version", "python_full_version"),
    ("os_name", "os_name"),
    ("os.name", "os_name"),
    ("sys_platform", "sys_platform"),
    ("sys.platform", "sys_platform"),
    ("platform_release", "platform_release"),
    ("platform_system", "platform_system"),
    ("platform_version", "platform_version"),
    ("platform.version", "platform_version"),
    ("platform_machine", "platform_machine"),
    ("platform.machine", "platform_machine"),
    (
        "platform_python_implementation",
        "platform_python_implementation",
    ),
    (
        "platform.python_implementation",
        "platform_python_implementation",
    ),
    ("python_implementation", "platform_python_implementation"),
    ("implementation_name", "implementation_name"),
    ("implementation_version", "implementation_version"),
    ("extra", "extra"),
    ("extras", "extras"),
];

/// Parses `text` as a PEP 508 marker, or says why it is not one.
pub(super) fn parse(text: &str) -> Result<Marker, NotAMarker> {
    let mut parser = Parser {
        text,
        pos: 0,
        depth: 0,
    };
    let marker = parser.marker()?;
    if parser.pos != text.len() {
        return Err(parser.error("Expected end of marker expression"));
    }
    Ok(marker)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Parser<'_> {
    fn error(&self, message: &str) -> NotAMarker {
        NotAMarker {
            message: message.to_owned(),
            offset: self.pos,
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    /// `WS := [ \t]+`, optional.
    fn skip_ws(&mut self) -> bool {
        let skipped = self.rest().len() - self.rest().trim_start_matches([' ', '\t']).len();
        self.pos += skipped;
        skipped > 0
    }

    /// Regex `\b` at byte offset `at`.
    fn boundary_at(&self, at: usize) -> bool {
        let before = self.text[..at]
            .chars()
            .next_back()
            .is_some_and(is_word_char);
        let after = self.text[at..].chars().next().is_some_and(is_word_char);
        before != after
    }

    /// Matches `\bword\b` at the current position without consuming it.
    fn check_word(&self, word: &str) -> bool {
        self.rest().starts_with(word)
            && self.boundary_at(self.pos)
            && self.boundary_at(self.pos + word.len())
    }

    fn marker(&mut self) -> Result<Marker, NotAMarker> {
        let mut groups = vec![vec![self.atom()?]];
        loop {
            if self.check_word("or") {
                self.pos += 2;
                groups.push(vec![self.atom()?]);
            } else if self.check_word("and") {
                self.pos += 3;
                let atom = self.atom()?;
                if let Some(group) = groups.last_mut() {
                    group.push(atom);
                }
            } else {
                return Ok(Marker { groups });
            }
        }
    }

    fn atom(&mut self) -> Result<Atom, NotAMarker> {
        self.skip_ws();
        let atom = if self.rest().starts_with('(') {
            let open = self.pos;
            if self.depth >= MAX_DEPTH {
                return Err(self.error("marker nested too deeply"));
            }
            self.pos += 1;
            self.depth += 1;
            self.skip_ws();
            let inner = self.marker()?;
            self.skip_ws();
            self.depth -= 1;
            if !self.rest().starts_with(')') {
                return Err(NotAMarker {
                    message: "Expected matching RIGHT_PARENTHESIS for LEFT_PARENTHESIS, after \
                              marker expression"
                        .to_owned(),
                    offset: open,
                });
            }
            self.pos += 1;
            Atom::Nested(inner)
        } else {
            Atom::Compare(self.item()?)
        };
        self.skip_ws();
        Ok(atom)
    }

    fn item(&mut self) -> Result<Comparison, NotAMarker> {
        let offset = self.pos;
        let lhs = self.operand()?;
        self.skip_ws();
        let op = self.op()?;
        self.skip_ws();
        let rhs = self.operand()?;
        self.skip_ws();
        Ok(normalize_extras(Comparison {
            lhs,
            op,
            rhs,
            offset,
        }))
    }

    fn operand(&mut self) -> Result<Operand, NotAMarker> {
        if let Some((spelling, name)) = VARIABLES
            .iter()
            .chain(&[("dependency_groups", "dependency_groups")])
            .find(|(spelling, _)| self.check_word(spelling))
        {
            self.pos += spelling.len();
            return Ok(Operand::Variable((*name).to_owned()));
        }
        let quote = match self.rest().chars().next() {
            Some(quote @ ('\'' | '"')) => quote,
            _ => return Err(self.error("Expected a marker variable or quoted string")),
        };
        let Some(length) = self.rest()[1..].find(quote) else {
            return Err(self.error("Expected a marker variable or quoted string"));
        };
        let body = &self.rest()[1..1 + length];
        let value = decode_literal(body).ok_or_else(|| self.error("Invalid quoted string"))?;
        self.pos += length + 2;
        Ok(Operand::Value(value))
    }

    fn op(&mut self) -> Result<Op, NotAMarker> {
        if self.check_word("in") {
            self.pos += 2;
            return Ok(Op::In);
        }
        if self.check_word("not") {
            self.pos += 3;
            if !self.skip_ws() {
                return Err(self.error("Expected whitespace after 'not'"));
            }
            if !self.check_word("in") {
                return Err(self.error("Expected 'in' after 'not'"));
            }
            self.pos += 2;
            return Ok(Op::NotIn);
        }
        let ops = [
            ("===", Op::Arbitrary),
            ("==", Op::Eq),
            ("~=", Op::Compatible),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        match ops
            .iter()
            .find(|(spelling, _)| self.rest().starts_with(spelling))
        {
            Some((spelling, op)) => {
                self.pos += spelling.len();
                Ok(*op)
            }
            None => Err(self.error(
                "Expected marker operator, one of <=, <, !=, ==, >=, >, ~=, ===, in, not in",
            )),
        }
    }
}

/// `ast.literal_eval` of a quoted string body: Python escapes; a raw newline
/// or NUL makes the literal invalid.
fn decode_literal(body: &str) -> Option<String> {
    if body.contains(['\n', '\r', '\0']) {
        return None;
    }
    python::decode_escapes(body).ok()
}

/// `canonicalize_name`: lower case, runs of `-_.` become one `-`.
fn canonicalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.to_lowercase().chars() {
        let c = if matches!(c, '_' | '.') { '-' } else { c };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

/// packaging's `_normalize_extras`, applied at parse time.
fn normalize_extras(mut comparison: Comparison) -> Comparison {
    let canonicalize = |operand: &mut Operand| {
        if let Operand::Value(value) = operand {
            *value = canonicalize_name(value);
        }
    };
    match (&comparison.lhs, &comparison.rhs) {
        (Operand::Variable(name), Operand::Value(_)) if name == "extra" => {
            canonicalize(&mut comparison.rhs);
        }
        (Operand::Value(_), Operand::Variable(name))
            if name == "extra" || SET_VARIABLES.contains(&name.as_str()) =>
        {
            canonicalize(&mut comparison.lhs);
        }
        _ => {}
    }
    comparison
}

impl Marker {
    /// Evaluates the marker; `environment` gives a variable's value, `None`
    /// when undefined. Every comparison is evaluated, left to right.
    pub(super) fn evaluate(
        &self,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<bool, ConditionError> {
        let mut any_group = false;
        for group in &self.groups {
            let mut all_atoms = true;
            for atom in group {
                let value = match atom {
                    Atom::Nested(marker) => marker.evaluate(environment)?,
                    Atom::Compare(comparison) => comparison.evaluate(environment)?,
                };
                all_atoms &= value;
            }
            any_group |= all_atoms;
        }
        Ok(any_group)
    }
}

impl Comparison {
    fn evaluate(
        &self,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<bool, ConditionError> {
        let lookup = |key: &str| {
            environment(key).ok_or_else(|| ConditionError {
                message: format!(
                    "UndefinedEnvironmentName: {} is not defined in the marker environment",
                    python::repr_str(key)
                ),
                offset: Some(self.offset),
            })
        };
        // As packaging: a variable on the left is looked up and the right
        // side is taken literally (even if it is a variable: its name);
        // otherwise the right side names the variable.
        let (key, lhs, rhs) = match (&self.lhs, &self.rhs) {
            (Operand::Variable(key), rhs) => {
                (key.as_str(), lookup(key)?, operand_text(rhs).to_owned())
            }
            (Operand::Value(lhs), rhs) => {
                let key = operand_text(rhs);
                (key, lhs.clone(), lookup(key)?)
            }
        };
        if VERSION_VARIABLES.contains(&key) {
            if let Some(specifier) = pep440::Specifier::parse(&format!("{}{rhs}", self.op.as_str()))
            {
                return Ok(specifier.contains(&lhs));
            }
        }
        match self.op {
            Op::In => Ok(rhs.contains(lhs.as_str())),
            Op::NotIn => Ok(!rhs.contains(lhs.as_str())),
            Op::Lt | Op::Gt => Ok(false),
            Op::Le | Op::Eq | Op::Ge => Ok(lhs == rhs),
            Op::Ne => Ok(lhs != rhs),
            Op::Compatible | Op::Arbitrary => Err(ConditionError {
                message: format!(
                    "UndefinedComparison: Undefined <Op('{}')> on {} and {}.",
                    self.op.as_str(),
                    python::repr_str(&lhs),
                    python::repr_str(&rhs)
                ),
                offset: Some(self.offset),
            }),
        }
    }
}

fn operand_text(operand: &Operand) -> &str {
    match operand {
        Operand::Variable(text) | Operand::Value(text) => text,
    }
}

/// PEP 440 versions and single specifiers, as far as markers need them.
pub(super) mod pep440 {
    use std::cmp::Ordering;

    /// A non-negative integer of any size, as normalized decimal digits.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Number(String);

    impl Number {
        fn new(digits: &str) -> Number {
            let trimmed = digits.trim_start_matches('0');
            Number(if trimmed.is_empty() {
                "0".to_owned()
            } else {
                trimmed.to_owned()
            })
        }

        fn zero() -> Number {
            Number("0".to_owned())
        }

        fn is_zero(&self) -> bool {
            self.0 == "0"
        }
    }

    impl Ord for Number {
        fn cmp(&self, other: &Self) -> Ordering {
            self.0
                .len()
                .cmp(&other.0.len())
                .then_with(|| self.0.cmp(&other.0))
        }
    }

    impl PartialOrd for Number {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }

    /// A local version segment: strings sort before numbers.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum LocalPart {
        Text(String),
        Number(Number),
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum PreKind {
        Alpha,
        Beta,
        Candidate,
    }

    /// A parsed PEP 440 version.
    #[derive(Debug, Clone)]
    pub(crate) struct Version {
        epoch: Number,
        release: Vec<Number>,
        pre: Option<(PreKind, Number)>,
        post: Option<Number>,
        dev: Option<Number>,
        local: Option<Vec<LocalPart>>,
    }

    /// packaging's `_cmpkey`, as an ordered tuple.
    type Key<'a> = (
        &'a Number,
        &'a [Number],
        (i8, Option<&'a Number>),
        (bool, Option<&'a Number>),
        (bool, Option<&'a Number>),
        Option<&'a [LocalPart]>,
    );

    impl Version {
        /// Parses like `packaging.version.Version` (surrounding whitespace,
        /// `v` prefix, case-insensitive spellings, implicit numbers).
        pub(crate) fn parse(text: &str) -> Option<Version> {
            let text = text.trim().to_ascii_lowercase();
            let mut cursor = Cursor {
                text: &text,
                pos: 0,
            };
            cursor.eat("v");
            let version = cursor.version(true)?;
            cursor.at_end().then_some(version)
        }

        fn key(&self) -> Key<'_> {
            let mut release = self.release.as_slice();
            while let [rest @ .., last] = release {
                if !last.is_zero() || rest.is_empty() {
                    break;
                }
                release = rest;
            }
            let pre = match (&self.pre, &self.post, &self.dev) {
                (None, None, Some(_)) => (-1, None),
                (None, _, _) => (3, None),
                (Some((kind, n)), _, _) => (*kind as i8, Some(n)),
            };
            (
                &self.epoch,
                release,
                pre,
                (self.post.is_some(), self.post.as_ref()),
                (self.dev.is_none(), self.dev.as_ref()),
                self.local.as_deref(),
            )
        }

        fn is_prerelease(&self) -> bool {
            self.pre.is_some() || self.dev.is_some()
        }

        /// The version without its local segment.
        fn public(&self) -> Version {
            Version {
                local: None,
                ..self.clone()
            }
        }

        /// `epoch!release` only.
        fn base(&self) -> Version {
            Version {
                epoch: self.epoch.clone(),
                release: self.release.clone(),
                pre: None,
                post: None,
                dev: None,
                local: None,
            }
        }

        /// `==V.*` matching: same epoch, and the release (zero-padded) starts
        /// with `prefix`.
        fn matches_prefix(&self, epoch: &Number, prefix: &[Number]) -> bool {
            let zero = Number::zero();
            self.epoch == *epoch
                && prefix
                    .iter()
                    .enumerate()
                    .all(|(i, part)| self.release.get(i).unwrap_or(&zero) == part)
        }
    }

    impl PartialEq for Version {
        fn eq(&self, other: &Self) -> bool {
            self.key() == other.key()
        }
    }

    impl Eq for Version {}

    impl Ord for Version {
        fn cmp(&self, other: &Self) -> Ordering {
            self.key().cmp(&other.key())
        }
    }

    impl PartialOrd for Version {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }

    /// Byte cursor over an ASCII-lowercased version text.
    struct Cursor<'a> {
        text: &'a str,
        pos: usize,
    }

    impl Cursor<'_> {
        fn rest(&self) -> &str {
            &self.text[self.pos..]
        }

        fn at_end(&self) -> bool {
            self.pos == self.text.len()
        }

        fn eat(&mut self, token: &str) -> bool {
            let found = self.rest().starts_with(token);
            if found {
                self.pos += token.len();
            }
            found
        }

        fn eat_any(&mut self, tokens: &[&str]) -> Option<usize> {
            let index = tokens
                .iter()
                .position(|token| self.rest().starts_with(token))?;
            self.pos += tokens[index].len();
            Some(index)
        }

        fn separator(&mut self) -> bool {
            self.eat_any(&[".", "_", "-"]).is_some()
        }

        fn digits(&mut self) -> Option<Number> {
            let length = self.rest().bytes().take_while(u8::is_ascii_digit).count();
            if length == 0 {
                return None;
            }
            let number = Number::new(&self.rest()[..length]);
            self.pos += length;
            Some(number)
        }

        /// `[0-9]+(\.[0-9]+)*`
        fn release(&mut self) -> Option<Vec<Number>> {
            let mut release = vec![self.digits()?];
            while self.rest().starts_with('.')
                && self.rest()[1..].starts_with(|c: char| c.is_ascii_digit())
            {
                self.pos += 1;
                release.extend(self.digits());
            }
            Some(release)
        }

        /// An optional group: runs `parse`, rewinding when it fails.
        fn optional<T>(&mut self, parse: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
            let start = self.pos;
            let result = parse(self);
            if result.is_none() {
                self.pos = start;
            }
            result
        }

        fn pre(&mut self) -> Option<(PreKind, Number)> {
            self.optional(|c| {
                c.separator();
                let spellings = ["alpha", "a", "beta", "b", "preview", "pre", "c", "rc"];
                let kind = match c.eat_any(&spellings)? {
                    0 | 1 => PreKind::Alpha,
                    2 | 3 => PreKind::Beta,
                    _ => PreKind::Candidate,
                };
                c.separator();
                Some((kind, c.digits().unwrap_or_else(Number::zero)))
            })
        }

        fn post(&mut self) -> Option<Number> {
            if let Some(number) = self.optional(|c| {
                c.eat("-").then_some(())?;
                c.digits()
            }) {
                return Some(number);
            }
            self.optional(|c| {
                c.separator();
                c.eat_any(&["post", "rev", "r"])?;
                c.separator();
                Some(c.digits().unwrap_or_else(Number::zero))
            })
        }

        fn dev(&mut self) -> Option<Number> {
            self.optional(|c| {
                c.separator();
                c.eat("dev").then_some(())?;
                c.separator();
                Some(c.digits().unwrap_or_else(Number::zero))
            })
        }

        /// `\+[a-z0-9]+([._-][a-z0-9]+)*`
        fn local(&mut self) -> Option<Vec<LocalPart>> {
            self.optional(|c| {
                c.eat("+").then_some(())?;
                let mut parts = vec![c.local_part()?];
                while let Some(part) = c.optional(|c| {
                    c.separator().then_some(())?;
                    c.local_part()
                }) {
                    parts.push(part);
                }
                Some(parts)
            })
        }

        fn local_part(&mut self) -> Option<LocalPart> {
            let length = self
                .rest()
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                .count();
            if length == 0 {
                return None;
            }
            let part = self.rest()[..length].to_owned();
            self.pos += length;
            Some(if part.bytes().all(|b| b.is_ascii_digit()) {
                LocalPart::Number(Number::new(&part))
            } else {
                LocalPart::Text(part)
            })
        }

        /// Epoch, release, pre, post, dev and (when allowed) local segments.
        fn version(&mut self, allow_local: bool) -> Option<Version> {
            let epoch = self
                .optional(|c| {
                    let epoch = c.digits()?;
                    c.eat("!").then_some(epoch)
                })
                .unwrap_or_else(Number::zero);
            let release = self.release()?;
            let pre = self.pre();
            let post = self.post();
            let dev = self.dev();
            let local = if allow_local { self.local() } else { None };
            Some(Version {
                epoch,
                release,
                pre,
                post,
                dev,
                local,
            })
        }
    }

    /// One `packaging.specifiers.Specifier`.
    #[derive(Debug, Clone)]
    pub(crate) struct Specifier {
        op: &'static str,
        /// The version text after the operator, stripped.
        version: String,
    }

    impl Specifier {
        /// Parses `op version` as packaging's specifier regex accepts it.
        pub(crate) fn parse(text: &str) -> Option<Specifier> {
            let text = text.trim();
            let ops = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"];
            let op = ops.into_iter().find(|op| text.starts_with(op))?;
            let version = text[op.len()..].trim_start();
            let valid = match op {
                "===" => !version.contains(|c: char| c.is_whitespace() || c == ';' || c == ')'),
                _ => Self::valid_version(op, version),
            };
            valid.then(|| Specifier {
                op,
                version: version.to_owned(),
            })
        }

        fn valid_version(op: &str, version: &str) -> bool {
            let lower = version.to_ascii_lowercase();
            let mut cursor = Cursor {
                text: &lower,
                pos: 0,
            };
            cursor.eat("v");
            let wildcard_allowed = matches!(op, "==" | "!=");
            if wildcard_allowed {
                let start = cursor.pos;
                let epoch_ok = cursor
                    .optional(|c| {
                        c.digits()?;
                        c.eat("!").then_some(())
                    })
                    .is_some()
                    || cursor.pos == start;
                if epoch_ok && cursor.release().is_some() && cursor.eat(".*") && cursor.at_end() {
                    return true;
                }
                cursor.pos = start;
            }
            let Some(parsed) = cursor.version(wildcard_allowed) else {
                return false;
            };
            cursor.at_end() && (op != "~=" || parsed.release.len() >= 2)
        }

        /// `Specifier.contains(version, prereleases=True)`.
        pub(crate) fn contains(&self, candidate: &str) -> bool {
            if self.op == "===" {
                return candidate.to_lowercase() == self.version.to_lowercase();
            }
            let Some(candidate) = Version::parse(candidate) else {
                return false;
            };
            if let Some(prefix) = self.version.strip_suffix(".*") {
                let Some(spec) = Version::parse(prefix) else {
                    return false;
                };
                let matches = candidate.matches_prefix(&spec.epoch, &spec.release);
                return if self.op == "!=" { !matches } else { matches };
            }
            let Some(spec) = Version::parse(&self.version) else {
                return false;
            };
            match self.op {
                "==" => equal(&candidate, &spec),
                "!=" => !equal(&candidate, &spec),
                "<=" => candidate.public() <= spec,
                ">=" => candidate.public() >= spec,
                "<" => {
                    candidate < spec
                        && !(!spec.is_prerelease()
                            && candidate.is_prerelease()
                            && candidate.base() == spec.base())
                }
                ">" => {
                    candidate > spec
                        && !(spec.post.is_none()
                            && candidate.post.is_some()
                            && candidate.base() == spec.base())
                        && !(candidate.local.is_some() && candidate.base() == spec.base())
                }
                "~=" => {
                    let prefix = &spec.release[..spec.release.len().saturating_sub(1)];
                    candidate.public() >= spec && candidate.matches_prefix(&spec.epoch, prefix)
                }
                _ => false,
            }
        }
    }

    fn equal(candidate: &Version, spec: &Version) -> bool {
        if spec.local.is_some() {
            candidate == spec
        } else {
            candidate.public() == *spec
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::Target;

    fn eval(text: &str) -> Result<bool, String> {
        let target = Target::default();
        let marker = parse(text).map_err(|e| format!("not a marker: {}", e.message))?;
        marker
            .evaluate(&|name| target.marker_variable(name))
            .map_err(|e| e.message)
    }

    /// Results given by packaging 26.3 on CPython 3.11.7, Linux x86-64 (the
    /// default target) with a kernel release that is not a PEP 440 version.
    #[test]
    fn agrees_with_packaging() {
        let cases: &[(&str, bool)] = &[
            (r#"python_version < "3.8""#, false),
            (
                r#"python_version >= "3.8" and platform_system == "Linux""#,
                true,
            ),
            (r#"python_version < "abc""#, false),
            (r#"os_name < "z""#, false),
            (r#"os_name <= "posix""#, true),
            (r#"os.name == "posix""#, true),
            (r#"sys.platform == "linux""#, true),
            (r#"platform.machine == "x86_64""#, true),
            (r#"python_implementation == "CPython""#, true),
            (r#"platform.python_implementation == "CPython""#, true),
            (r#""3.8" < python_version"#, true),
            (r#"python_version == python_full_version"#, false),
            (r#""3.8" <= "python_version""#, true),
            (r#"extra == "foo""#, false),
            (r#"python_version ~= "3.1""#, true),
            (r#"python_version === "3.11""#, true),
            (r#"python_full_version < "3.11.7rc1""#, false),
            (r#"python_version == "3.11.*""#, true),
            (r#"python_version in "3.10 3.11""#, true),
            (r#"python_version not in "3.10 3.11""#, false),
            (r#"python_version=="3.11"and os_name=="posix""#, true),
            (r#"(python_version=="3.11")"#, true),
            (r#"python_version == '\x33.11'"#, true),
            (
                r#"implementation_name == "cpython" or python_version < "3""#,
                true,
            ),
            (
                r#"python_version < "3" or os_name == "nt" and sys_platform == "linux""#,
                false,
            ),
            (
                r#"(python_version < "3" or os_name == "posix") and sys_platform == "linux""#,
                true,
            ),
            (
                r#"python_full_version >= "3.11.7" and python_full_version < "3.12""#,
                true,
            ),
            (r#"python_version != "3.11.0""#, false),
            (r#"python_version > "3.10""#, true),
            (r#"python_version > "3.11""#, false),
            (r#"python_version <= "3.11.0""#, true),
            (r#""linux" in sys_platform"#, true),
            (r#"python_version == " 3.11 ""#, true),
            (r#"python_version == "v3.11""#, true),
            (r#"python_version == "3.11+local""#, false),
        ];
        for (text, expected) in cases {
            assert_eq!(eval(text), Ok(*expected), "{text}");
        }
    }

    #[test]
    fn evaluation_errors_as_packaging() {
        // `~=3` is no valid specifier, and `~=` has no string fallback
        assert!(eval(r#"python_version ~= "3""#).is_err());
        for (text, message) in [
            (r#""a" == "b""#, "UndefinedEnvironmentName: 'b'"),
            (r#"extras == "x""#, "UndefinedEnvironmentName: 'extras'"),
            (
                r#""x" in dependency_groups"#,
                "UndefinedEnvironmentName: 'dependency_groups'",
            ),
            (r#"python_version > "1" or extras == "x""#, "'extras'"),
            (
                r#"os_name ~= "3.1""#,
                "UndefinedComparison: Undefined <Op('~=')> on 'posix'",
            ),
            (r#"os_name === "posix""#, "UndefinedComparison"),
            (r#"python_version === "a b""#, "UndefinedComparison"),
        ] {
            let error = eval(text).unwrap_err();
            assert!(error.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn not_markers() {
        for text in [
            "python3",
            " python2",
            "sys.version_info < (3,8)",
            r#"linux and platform.machine() == "x86_64""#,
            "platform.machine() == 'aarch64'",
            r#"python_version == "3.11" and"#,
            r#"python_version == "3.11" # x"#,
            r#"python_version <> "3""#,
            r#"python_versions == "3""#,
            r#"python_version == "a\""#,
            r#"python_version not  "x""#,
            r#"python_version notin "x""#,
            r#"(python_version == "3""#,
            r#"python_version == "3")"#,
            "python_version\n== '3'",
            r#""a" == 'b"#,
            "",
            " ",
            r#"python_version == "\N{DIGIT THREE}""#,
            r#"python_version == "\xZZ""#,
            r#"1 == "1""#,
        ] {
            assert!(parse(text).is_err(), "{text:?} parsed as a marker");
        }
    }

    #[test]
    fn not_marker_messages() {
        let error = parse("python3").unwrap_err();
        assert_eq!(error.message, "Expected a marker variable or quoted string");
        assert_eq!(error.offset, 0);
        let error = parse(r#"platform.machine() == "x""#).unwrap_err();
        assert!(error.message.starts_with("Expected marker operator"));
        assert_eq!(error.offset, 16);
        let error = parse(r#"(os_name == "posix""#).unwrap_err();
        assert!(error.message.contains("RIGHT_PARENTHESIS"));
        assert_eq!(error.offset, 0);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = format!("{}os_name == 'posix'{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(eval(&deep), Ok(true));
        let too_deep = format!("{}os_name == 'posix'{}", "(".repeat(101), ")".repeat(101));
        assert!(parse(&too_deep).is_err());
        let huge = format!("{}os_name == 'posix'", "(".repeat(100_000));
        assert!(parse(&huge).is_err());
    }

    #[test]
    fn extra_names_are_canonicalized() {
        let marker = parse(r#"extra == "Foo__Bar.baz""#).unwrap();
        let Atom::Compare(comparison) = &marker.groups[0][0] else {
            panic!()
        };
        assert_eq!(comparison.rhs, Operand::Value("foo-bar-baz".to_owned()));
        let env = |name: &str| (name == "extra").then(|| "foo-bar-baz".to_owned());
        assert_eq!(marker.evaluate(&env), Ok(true));
    }

    #[test]
    fn no_short_circuit() {
        // packaging evaluates every comparison, so the undefined name errors.
        assert!(eval(r#"os_name == "posix" or extras == "x""#).is_err());
        assert!(eval(r#"os_name == "nt" and extras == "x""#).is_err());
    }

    #[test]
    fn kernel_release_comparisons() {
        let env = |release: &'static str| {
            move |name: &str| {
                if name == "platform_release" {
                    Some(release.to_owned())
                } else {
                    Target::default().marker_variable(name)
                }
            }
        };
        let run = |release: &'static str, text: &str| parse(text).unwrap().evaluate(&env(release));
        assert_eq!(
            run("6.1.0-18-amd64", r#"platform_release >= "5""#),
            Ok(false)
        );
        assert_eq!(
            run("6.1.0-18-amd64", r#"platform_release != "5""#),
            Ok(false)
        );
        // not a valid version, so not a specifier: compared as strings (packaging 26.3)
        assert_eq!(
            run("6.1.0-18-amd64", r#"platform_release == "6.1.0-18-amd64""#),
            Ok(true)
        );
        assert_eq!(
            run("6.1.0-18-amd64", r#"platform_release == "6.1.0-18-amd64-""#),
            Ok(false)
        );
        assert_eq!(
            run("6.1.0-18-amd64", r#"platform_release === "6.1.0-18-AMD64""#),
            Ok(true)
        );
        assert_eq!(
            run("6.1.0-18-amd64", r#""amd64" in platform_release"#),
            Ok(true)
        );
        assert_eq!(run("6.1.0", r#"platform_release >= "5.4""#), Ok(true));
        assert_eq!(run("6.1.0", r#"platform_release < "5.4""#), Ok(false));
    }

    mod versions {
        use super::super::pep440::{Specifier, Version};

        fn contains(spec: &str, version: &str) -> bool {
            Specifier::parse(spec)
                .unwrap_or_else(|| panic!("{spec}"))
                .contains(version)
        }

        #[test]
        fn version_parsing() {
            for valid in [
                "1",
                "1.0",
                " v1.0 ",
                "1!2.0",
                "1.0a",
                "1.0a-",
                "1.0.alpha1",
                "1.0-1",
                "1.0.post",
                "1.0-r1",
                "1.0rev2",
                "1.0.dev",
                "1.0DEV3",
                "1.0+ubuntu.1",
                "1.0a1.post2.dev3+x",
                "1.0c1",
                "1.0pre",
                "1.0preview2",
                "99999999999999999999999999",
            ] {
                assert!(Version::parse(valid).is_some(), "{valid}");
            }
            for invalid in [
                "",
                "a",
                "1.",
                ".1",
                "1..2",
                "1.0+",
                "1.0+a.",
                "1.0-",
                "6.1.0-18-amd64",
                "1 0",
            ] {
                assert!(Version::parse(invalid).is_none(), "{invalid}");
            }
        }

        #[test]
        fn version_ordering() {
            let ordered = [
                "1.0.dev0",
                "1.0a1.dev1",
                "1.0a1",
                "1.0b2",
                "1.0rc1",
                "1.0",
                "1.0+abc",
                "1.0+5",
                "1.0.post1.dev0",
                "1.0.post1",
                "1.1",
                "99999999999999999999",
                "1!0.1",
            ];
            for pair in ordered.windows(2) {
                let (a, b) = (
                    Version::parse(pair[0]).unwrap(),
                    Version::parse(pair[1]).unwrap(),
                );
                assert!(a < b, "{} < {}", pair[0], pair[1]);
            }
            assert_eq!(Version::parse("1.0.0"), Version::parse("1"));
            assert_eq!(Version::parse("1.0alpha1"), Version::parse("1.0a1"));
            assert_eq!(Version::parse("1.0-1"), Version::parse("1.0.post1"));
        }

        #[test]
        fn specifier_validity() {
            for valid in [
                "==3.8",
                "== 3.8.*",
                "!=3.8.*",
                "~=3.8",
                ">=1!3.8rc1",
                "<3",
                "===anything",
                "===",
                "==3.8+local",
                " <= 3.8 ",
                "==v3",
            ] {
                assert!(Specifier::parse(valid).is_some(), "{valid}");
            }
            for invalid in [
                "~=3",
                "<3.8.*",
                ">=3.8+local",
                "==3.8a1.*",
                "=3",
                "in3.8",
                "==abc",
                "=== a b",
            ] {
                assert!(Specifier::parse(invalid).is_none(), "{invalid}");
            }
        }

        #[test]
        fn specifier_matching() {
            assert!(contains("~=3.8", "3.11"));
            assert!(!contains("~=3.8.1", "3.9"));
            assert!(contains("~=3.8.1", "3.8.5"));
            assert!(contains("==3.8.*", "3.8.0rc1"));
            assert!(contains("==3.*", "3"));
            assert!(!contains("==3.8.*", "3.9"));
            assert!(contains("!=3.8.*", "3.9"));
            assert!(contains("==3.8", "3.8+local"));
            assert!(!contains("==3.8+a", "3.8"));
            assert!(!contains("<3.8", "3.8rc1"));
            assert!(contains("<3.8rc2", "3.8rc1"));
            assert!(!contains(">3.8", "3.8.post1"));
            assert!(contains(">3.8.post0", "3.8.post1"));
            assert!(!contains(">3.8", "3.8+local"));
            assert!(contains("<=3.8", "3.8+local"));
            assert!(contains(">3.8", "3.9.dev0"));
            assert!(contains("===3.8", "3.8"));
            assert!(!contains("===3.8", "3.8.0"));
            assert!(!contains(">=1", "not a version"));
        }
    }
}
