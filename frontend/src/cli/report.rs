//! Rendering errors: the message, the offending text with file, line and column, related places
//! and what slapstore was doing, in the style of compiler diagnostics.

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term::{
    self,
    termcolor::{ColorChoice, StandardStream},
};

use crate::error::Error;
use crate::source::{FileId, Sources};

/// Exit status for bad usage or a bad profile.
pub const BAD_INPUT: i32 = 2;

struct View<'a>(&'a Sources);

impl<'a> Files<'a> for View<'a> {
    type FileId = FileId;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: FileId) -> Result<&'a str, FilesError> {
        Ok(&self.0.get(id).name)
    }

    fn source(&'a self, id: FileId) -> Result<&'a str, FilesError> {
        Ok(&self.0.get(id).text)
    }

    fn line_index(&'a self, id: FileId, byte_index: usize) -> Result<usize, FilesError> {
        let starts = self.0.get(id).line_starts();
        Ok(match starts.binary_search(&byte_index) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        })
    }

    fn line_range(
        &'a self,
        id: FileId,
        line_index: usize,
    ) -> Result<std::ops::Range<usize>, FilesError> {
        let file = self.0.get(id);
        let starts = file.line_starts();
        let start = *starts.get(line_index).ok_or(FilesError::LineTooLarge {
            given: line_index,
            max: starts.len().saturating_sub(1),
        })?;
        let end = starts
            .get(line_index + 1)
            .copied()
            .unwrap_or(file.text.len());
        Ok(start..end)
    }
}

fn diagnostic(base: Diagnostic<FileId>, e: &Error) -> Diagnostic<FileId> {
    let mut labels = Vec::new();
    if let Some(span) = e.span {
        labels.push(Label::primary(span.file, span.range()));
    }
    for (span, label) in &e.related {
        labels.push(Label::secondary(span.file, span.range()).with_message(label.clone()));
    }
    let notes = e.notes.iter().map(|n| format!("note: {n}")).collect();
    base.with_message(e.to_string())
        .with_labels(labels)
        .with_notes(notes)
}

fn emit(sources: &Sources, d: &Diagnostic<FileId>) {
    use std::io::IsTerminal;
    let color = if std::io::stderr().is_terminal() {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    };
    let writer = StandardStream::stderr(color);
    let config = term::Config::default();
    let mut lock = writer.lock();
    if term::emit(&mut lock, &config, &View(sources), d).is_err() {
        eprintln!("error: {}", d.message);
    }
}

/// Reports a profile error; returns the exit status.
pub fn error(sources: &Sources, e: &Error) -> i32 {
    emit(sources, &diagnostic(Diagnostic::error(), e));
    BAD_INPUT
}

/// Reports a problem that does not stop the command.
pub fn warning(sources: &Sources, context: &str, e: &Error) {
    let d = diagnostic(Diagnostic::warning(), e);
    let message = format!("{context}: {}", d.message);
    emit(sources, &d.with_message(message));
}

/// Reports bad usage; returns the exit status.
pub fn usage(message: &str) -> i32 {
    eprintln!("error: {message}");
    BAD_INPUT
}

/// Exit status for a failure (a build, a verification).
pub const FAILED: i32 = 1;

/// Reports a failure that is not the input's fault; returns the exit status.
pub fn failure(message: &str) -> i32 {
    eprintln!("error: {message}");
    FAILED
}

/// Reports a store error: bad usage (a path that is not in the store) or a failure.
pub fn store_error(e: &slapstore_store::StoreError) -> i32 {
    use slapstore_store::StoreError as E;
    eprintln!("error: {e}");
    match e {
        E::NotValid(_)
        | E::NotInStore(..)
        | E::StorePath(_)
        | E::BadOption { .. }
        | E::InstanceExists(_)
        | E::NoStore(_) => BAD_INPUT,
        _ => FAILED,
    }
}
