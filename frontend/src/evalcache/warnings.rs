//! The warnings about unpinned inputs accepted as the profile names them (`plan` prints them),
//! kept in a cache entry so that a cached run prints exactly what the evaluation printed: each
//! warning's message, notes and spans, and the text of every file a span points into (a warning
//! is rendered with a snippet of it; the file's text is kept as the evaluation read it, which
//! may be text no file holds, such as `<command line>`). A restored warning renders as the
//! original: rendering uses only the message, the spans and the notes (`cli::report`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::lock::Unpinned;
use crate::source::{FileId, Sources, Span};

/// The warnings of one evaluation and the files they point into.
#[derive(Default, Serialize, Deserialize)]
pub struct Kept {
    /// Name and text of each file a span points into, in order of first use.
    files: Vec<(String, String)>,
    warnings: Vec<Warning>,
}

#[derive(Serialize, Deserialize)]
struct Warning {
    part: String,
    message: String,
    span: Option<KeptSpan>,
    related: Vec<(KeptSpan, String)>,
    notes: Vec<String>,
}

/// A span whose file is an index into [`Kept::files`].
#[derive(Serialize, Deserialize)]
struct KeptSpan {
    file: usize,
    start: u32,
    end: u32,
}

impl Kept {
    /// What to keep of `unpinned`, whose spans point into `sources`.
    pub fn keep(sources: &Sources, unpinned: &[Unpinned]) -> Kept {
        let mut kept = Kept::default();
        let mut ids: Vec<FileId> = Vec::new();
        let mut span = |span: &Span, files: &mut Vec<(String, String)>| {
            let file = ids
                .iter()
                .position(|id| *id == span.file)
                .unwrap_or_else(|| {
                    let source = sources.get(span.file);
                    ids.push(span.file);
                    files.push((source.name.clone(), source.text.clone()));
                    ids.len() - 1
                });
            KeptSpan {
                file,
                start: span.start,
                end: span.end,
            }
        };
        for u in unpinned {
            let e = &u.warning;
            let warning = Warning {
                part: u.part.clone(),
                message: e.to_string(),
                span: e.span.as_ref().map(|s| span(s, &mut kept.files)),
                related: e
                    .related
                    .iter()
                    .map(|(s, label)| (span(s, &mut kept.files), label.clone()))
                    .collect(),
                notes: e.notes.clone(),
            };
            kept.warnings.push(warning);
        }
        kept
    }

    /// Whether there is no warning.
    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty()
    }

    /// The warnings again, with the files they point into; `None` if the entry is
    /// inconsistent (a span into a file it does not have).
    pub fn restore(self) -> Option<(Sources, Vec<Unpinned>)> {
        let mut sources = Sources::default();
        let ids: Vec<FileId> = self
            .files
            .into_iter()
            .map(|(name, text)| sources.add(name, text))
            .collect();
        let span = |s: &KeptSpan| -> Option<Span> {
            let file = *ids.get(s.file)?;
            let text = &sources.get(file).text;
            let (start, end) = (s.start as usize, s.end as usize);
            (start <= end && text.is_char_boundary(start) && text.is_char_boundary(end)).then_some(
                Span {
                    file,
                    start: s.start,
                    end: s.end,
                },
            )
        };
        let mut unpinned = Vec::new();
        for w in self.warnings {
            let mut e = Error::new(ErrorKind::Buildout { message: w.message });
            e.span = match &w.span {
                Some(s) => Some(span(s)?),
                None => None,
            };
            for (s, label) in &w.related {
                e.related.push((span(s)?, label.clone()));
            }
            e.notes = w.notes;
            unpinned.push(Unpinned {
                part: w.part,
                warning: e,
            });
        }
        Some((sources, unpinned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_comes_back_with_its_text_and_places() {
        let mut sources = Sources::default();
        sources.add("<command line>".into(), "unrelated".into());
        let file = sources.add("/p/software.cfg".into(), "[a]\nbranch = main\n".into());
        let warning = Error::new(ErrorKind::Recipe {
            section: "a".into(),
            recipe: "r".into(),
            message: "unpinned".into(),
        });
        let mut warning = warning
            .related(Span::new(file, 0..3), "here")
            .note("while planning");
        warning.span = Some(Span::new(file, 4..15));
        let kept = Kept::keep(
            &sources,
            &[Unpinned {
                part: "a".into(),
                warning: warning.clone(),
            }],
        );
        let json = serde_json::to_string(&kept).expect("json");
        let kept: Kept = serde_json::from_str(&json).expect("back");
        let (restored, back) = kept.restore().expect("restored");
        assert_eq!(restored.len(), 1, "only the file a span points into");
        let e = &back[0].warning;
        assert_eq!(
            (back[0].part.as_str(), e.to_string()),
            ("a", warning.to_string())
        );
        assert_eq!(restored.slice(e.span.expect("span")), "branch = ma");
        assert_eq!(restored.get(e.related[0].0.file).name, "/p/software.cfg");
        assert_eq!(e.notes, warning.notes);
    }

    #[test]
    fn a_span_past_its_file_is_refused() {
        let kept: Kept = serde_json::from_str(
            r#"{"files":[["f","ab"]],"warnings":[{"part":"a","message":"m",
               "span":{"file":0,"start":0,"end":9},"related":[],"notes":[]}]}"#,
        )
        .expect("json");
        assert!(kept.restore().is_none());
        let kept: Kept = serde_json::from_str(
            r#"{"files":[],"warnings":[{"part":"a","message":"m",
               "span":{"file":3,"start":0,"end":1},"related":[],"notes":[]}]}"#,
        )
        .expect("json");
        assert!(kept.restore().is_none());
    }
}
