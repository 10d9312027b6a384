//! Rendering errors, the one place that does: the message, the offending text with file, line
//! and column, related places, what slapstore was doing and a hint where one helps, in the style
//! of compiler diagnostics; coloured on a terminal unless `NO_COLOR` or `--color` says otherwise.
//! Each function returns the exit status its kind of error maps to (`docs/cli.md`).

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::{Error as FilesError, Files};
use std::io::Write;
use std::sync::OnceLock;

use codespan_reporting::term::{
    self,
    termcolor::{Color, ColorChoice, ColorSpec, StandardStream, WriteColor},
};

use crate::error::Error;
use crate::source::{FileId, Sources};

/// Exit status for bad usage or a bad profile.
pub const BAD_INPUT: i32 = 2;

/// Exit status for something named that does not exist: a store path, an instance, a pin, a log.
pub const NOT_FOUND: i32 = 3;

/// When to colour what goes to stderr (`--color`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorMode {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    Always,
    Never,
}

static COLOR: OnceLock<ColorChoice> = OnceLock::new();

/// The `--color` of the command line, read before clap parses it, so that clap's own usage
/// errors follow it too.
pub fn color_in_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<ColorMode> {
    use clap::ValueEnum;
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut found = None;
    for (i, a) in args.iter().enumerate() {
        let value = match a.strip_prefix("--color=") {
            Some(v) => Some(v),
            None if a == "--color" => args.get(i + 1).map(String::as_str),
            None => None,
        };
        if let Some(mode) = value.and_then(|v| ColorMode::from_str(v, true).ok()) {
            found = Some(mode);
        }
    }
    found
}

/// Chooses colours once, before anything is reported.
pub fn set_color(mode: ColorMode) {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let choice = match mode {
        ColorMode::Always => ColorChoice::Always,
        ColorMode::Never => ColorChoice::Never,
        ColorMode::Auto if no_color || !std::io::stderr().is_terminal() => ColorChoice::Never,
        ColorMode::Auto => ColorChoice::Auto,
    };
    let _ = COLOR.set(choice);
}

fn stderr() -> StandardStream {
    StandardStream::stderr(*COLOR.get().unwrap_or(&ColorChoice::Never))
}

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
    let writer = stderr();
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

/// Writes `level: message` (the level coloured like codespan's diagnostics), then the hint.
fn plain(level: &str, color: Color, message: &str, hint: Option<&str>) {
    let writer = stderr();
    let mut out = writer.lock();
    let mut spec = ColorSpec::new();
    spec.set_fg(Some(color)).set_bold(true);
    let _ = out.set_color(&spec);
    let _ = write!(out, "{level}");
    let _ = out.set_color(ColorSpec::new().set_bold(true));
    let _ = writeln!(out, ": {message}");
    let _ = out.reset();
    if let Some(hint) = hint {
        let _ = out.set_color(ColorSpec::new().set_fg(Some(Color::Cyan)).set_bold(true));
        let _ = write!(out, "  = hint");
        let _ = out.reset();
        let _ = writeln!(out, ": {hint}");
    }
}

/// Reports an error that does not decide the exit status by itself (one of several).
pub fn error_line(message: &str, hint: Option<&str>) {
    plain("error", Color::Red, message, hint);
}

/// Reports a problem that does not stop the command.
pub fn warn(message: &str) {
    plain("warning", Color::Yellow, message, None);
}

/// Reports bad usage; returns the exit status.
pub fn usage(message: &str) -> i32 {
    error_line(message, None);
    BAD_INPUT
}

/// Reports that something named does not exist; returns the exit status.
pub fn not_found(message: &str, hint: Option<&str>) -> i32 {
    error_line(message, hint);
    NOT_FOUND
}

/// Exit status for a failure (a build, a verification).
pub const FAILED: i32 = 1;

/// Reports a failure that is not the input's fault; returns the exit status.
pub fn failure(message: &str) -> i32 {
    error_line(message, None);
    FAILED
}

/// What to do about a store error, where something helps.
pub fn hint(e: &slapstore_store::StoreError) -> Option<String> {
    use slapstore_store::fetch::FetchError;
    use slapstore_store::StoreError as E;
    match e {
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            Some("choose a store you may write to with `--root DIR` or `SLAPSTORE_ROOT`".into())
        }
        E::Database { .. } if e.to_string().contains("readonly") => {
            Some("choose a store you may write to with `--root DIR` or `SLAPSTORE_ROOT`".into())
        }
        E::Fetch {
            source: FetchError::Offline { .. } | FetchError::NoUrls { .. },
            ..
        } => Some("put the file into the download cache with `slapstore add-source FILE`".into()),
        _ => None,
    }
}

/// Reports a store error; returns its exit status: not found (a path not in the store), bad
/// input (a malformed path, a bad option) or failed.
pub fn store_error(e: &slapstore_store::StoreError) -> i32 {
    error_line(&e.to_string(), hint(e).as_deref());
    store_status(e)
}

/// The exit status of a store error.
pub fn store_status(e: &slapstore_store::StoreError) -> i32 {
    use slapstore_store::StoreError as E;
    match e {
        E::NotValid(_) | E::NoStore(_) => NOT_FOUND,
        E::NotInStore(..)
        | E::StorePath(_)
        | E::BadOption { .. }
        | E::InstanceExists(_)
        | E::NoFreePartition { .. } => BAD_INPUT,
        _ => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::{color_in_args, ColorMode};

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(Into::into).collect()
    }

    #[test]
    fn color_is_read_before_parsing() {
        assert_eq!(color_in_args(args(&["slapstore", "gc"])), None);
        assert_eq!(
            color_in_args(args(&["slapstore", "--color", "always", "gc"])),
            Some(ColorMode::Always)
        );
        assert_eq!(
            color_in_args(args(&["slapstore", "gc", "--color=never"])),
            Some(ColorMode::Never)
        );
        assert_eq!(color_in_args(args(&["slapstore", "--color", "pink"])), None);
        assert_eq!(
            color_in_args(args(&["s", "--color=never", "--color", "auto"])),
            Some(ColorMode::Auto),
            "the last one wins, as clap has it"
        );
    }
}
