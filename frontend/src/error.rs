//! Everything that can go wrong while reading a profile, with the spans needed to show the
//! offending text. Rendering (source snippets, colours) is the CLI's job (`cli::report`).

use crate::source::Span;

/// A profile error (boxed: errors are rare, results are everywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<Diagnosis>);

/// What an [`Error`] says: `span` is where the blame lies; `notes` say what slapstore was doing
/// (innermost first), like buildout's `While:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub kind: ErrorKind,
    pub span: Option<Span>,
    /// Secondary places worth showing, each with a label.
    pub related: Vec<(Span, String)>,
    pub notes: Vec<String>,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("couldn't open `{path}`: {reason}")]
    CannotOpen { path: String, reason: String },
    #[error("`{path}` is not valid UTF-8")]
    NotUtf8 { path: String },
    #[error("cannot read remote profile `{url}`: {reason}")]
    RemoteProfile { url: String, reason: String },
    #[error("line is neither a section header, an option nor a continuation")]
    BadLine,
    #[error("option found before any section header")]
    NoSectionHeader,
    #[error("cannot evaluate the condition of this section header: {message}")]
    Condition { message: String },
    #[error("no-longer supported option `extended-by` found")]
    ExtendedBy,
    #[error("the referenced section `{section}` is not defined")]
    MissingSection { section: String },
    #[error("referenced option does not exist: `{section}:{option}`")]
    MissingOption { section: String, option: String },
    #[error("missing option `{section}:{option}`")]
    RequiredOption { section: String, option: String },
    #[error("the substitution `{token}` {problem}")]
    Substitution {
        token: String,
        problem: &'static str,
    },
    #[error("circular reference in substitutions: {}", chain.join(" -> "))]
    Circular { chain: Vec<String> },
    #[error("no section named `{section}` (used as a macro by `[{user}]`)")]
    NoMacro { section: String, user: String },
    #[error("infinite macro extending loop: {}", chain.join(" -> "))]
    MacroLoop { chain: Vec<String> },
    #[error("invalid value for option `{option}`: `{value}` (expected `true` or `false`)")]
    InvalidBool { option: String, value: String },
    #[error("{message}")]
    Buildout { message: String },
    #[error("[{section}] recipe `{recipe}`: {message}")]
    Recipe {
        section: String,
        recipe: String,
        message: String,
    },
    #[error("[{section}] Python code raised {exception}")]
    Python { section: String, exception: String },
    #[error("python bridge: {message}")]
    Bridge { message: String },
    #[error("`-O {assignment}`: {message}")]
    BadAssignment { assignment: String, message: String },
}

impl std::ops::Deref for Error {
    type Target = Diagnosis;

    fn deref(&self) -> &Diagnosis {
        &self.0
    }
}

impl std::ops::DerefMut for Error {
    fn deref_mut(&mut self) -> &mut Diagnosis {
        &mut self.0
    }
}

impl Error {
    pub fn new(kind: ErrorKind) -> Error {
        Error(Box::new(Diagnosis {
            kind,
            span: None,
            related: Vec::new(),
            notes: Vec::new(),
        }))
    }

    pub fn at(kind: ErrorKind, span: Span) -> Error {
        let mut e = Error::new(kind);
        e.span = Some(span);
        e
    }

    /// A buildout `UserError` raised by buildout's own logic.
    pub fn buildout(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Buildout {
            message: message.into(),
        })
    }

    /// Blames `span` if nothing more precise is known yet.
    pub fn or_at(mut self, span: Option<Span>) -> Error {
        if self.span.is_none() {
            self.span = span;
        }
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Error {
        self.notes.push(note.into());
        self
    }

    pub fn related(mut self, span: Span, label: impl Into<String>) -> Error {
        self.related.push((span, label.into()));
        self
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
