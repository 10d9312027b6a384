//! The profile parser: buildout's INI dialect (`zc.buildout.configparser.parse`) read line by
//! line, keeping a [`Span`] for every section header and option.
//!
//! rust-ini cannot be used here: it loses the relative indentation of block values, keeps the
//! first of repeated keys where buildout keeps the last, has no source positions and misreads
//! `[a] # comment`. This is a small purpose-built reader of exactly buildout's rules:
//! comment lines (`#`/`;` in column 0), continuation lines (any line starting with whitespace,
//! blank lines included), inline values (stripped continuation lines, blank ones dropped) and
//! block values (dedented, leading blank lines removed), conditional headers `[name:expr]`,
//! `x += v` / `x -= v` kept as keys `x +` / `x -`, and `=>` as `<part-dependencies>`.
//!
//! Invariant: a parsed option's span covers its key and every continuation line of its value.

use crate::config::Map;
use crate::pystr::{dedent, is_space, remove_leading_blank_lines, rstrip, strip};
use crate::source::{FileId, Span};

/// One option as written in a file (after continuation lines are joined and blocks dedented).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedOption {
    pub value: String,
    pub span: Span,
}

pub type ParsedSection = Map<String, ParsedOption>;

/// A parsed file: sections in order of first appearance; a section repeated in the file is
/// merged into its first occurrence, later keys overriding earlier ones.
#[derive(Debug, Clone, Default)]
pub struct ParsedFile {
    pub sections: Map<String, ParsedSection>,
    /// Span of the first (kept) header of each section.
    pub headers: Map<String, Span>,
}

/// Why a file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Lines that are neither comments, headers, options nor continuations (all of them).
    BadLines(Vec<Span>),
    /// An option (or other text) before the first section header.
    NoSectionHeader(Span),
    /// The expression of a conditional header could not be evaluated.
    Condition { span: Span, message: String },
}

/// The verdict of a conditional header's expression.
pub struct ConditionFailure {
    pub message: String,
    /// Byte offset in the expression text, when known.
    pub offset: Option<usize>,
}

/// Parses `text` (newlines already normalised), evaluating conditional headers with `condition`.
pub fn parse(
    text: &str,
    file: FileId,
    condition: &mut dyn FnMut(&str) -> Result<bool, ConditionFailure>,
) -> Result<ParsedFile, ParseError> {
    let mut parsed = ParsedFile::default();
    let mut bad_lines = Vec::new();
    // the section options go into, the option continuation lines extend, and whether the
    // current header's condition holds
    let mut current: Option<String> = None;
    let mut option: Option<String> = None;
    let mut block_mode = false;
    let mut enabled = true;

    let mut offset = 0;
    for raw_line in text.split_inclusive('\n') {
        let start = offset;
        offset += raw_line.len();
        let line = raw_line.strip_suffix('\n').unwrap_or(raw_line);
        let line_span = Span::new(file, start..start + line.len());
        let first = raw_line.chars().next().unwrap_or('\n');
        if first == '#' || first == ';' {
            continue;
        }
        if is_space(first) && current.is_some() && option.is_some() {
            if !enabled {
                continue;
            }
            let piece = if block_mode {
                rstrip(line)
            } else {
                strip(line)
            };
            if !block_mode && piece.is_empty() {
                continue;
            }
            if let (Some(sect), Some(opt)) = (&current, &option) {
                if let Some(o) = parsed
                    .sections
                    .get_mut(sect)
                    .and_then(|s| s.get_mut(opt.as_str()))
                {
                    o.value.push('\n');
                    o.value.push_str(piece);
                    o.span.end = line_span.end;
                }
            }
            continue;
        }
        if let Some(header) = match_header(line) {
            enabled = true;
            if let Some((expr, expr_offset)) = header.expression {
                if !expr.is_empty() {
                    match condition(expr) {
                        Ok(true) => {}
                        Ok(false) => {
                            enabled = false;
                            continue;
                        }
                        Err(failure) => {
                            let at = start + expr_offset + failure.offset.unwrap_or(0);
                            let end = if failure.offset.is_some() {
                                at
                            } else {
                                start + expr_offset + expr.len()
                            };
                            return Err(ParseError::Condition {
                                span: Span::new(file, at..end.max(at)),
                                message: failure.message,
                            });
                        }
                    }
                }
            }
            let name = header.name.to_owned();
            parsed.sections.entry(name.clone()).or_default();
            parsed.headers.entry(name.clone()).or_insert(line_span);
            current = Some(name);
            option = None;
            continue;
        }
        let Some(section) = &current else {
            if strip(line).is_empty() {
                continue;
            }
            return Err(ParseError::NoSectionHeader(line_span));
        };
        let rewritten;
        let line = match line.strip_prefix("=>") {
            Some(rest) => {
                rewritten = format!("<part-dependencies> = {rest}");
                rewritten.as_str()
            }
            None => line,
        };
        if let Some((name, value)) = match_option(line) {
            if !enabled {
                continue;
            }
            let key = rstrip(name).to_owned();
            let value = strip(value).to_owned();
            block_mode = value.is_empty();
            if let Some(s) = parsed.sections.get_mut(section) {
                let span = line_span;
                s.insert(key.clone(), ParsedOption { value, span });
            }
            option = Some(key);
        } else if option.is_none() && strip(line).is_empty() {
            continue;
        } else {
            bad_lines.push(line_span);
        }
    }
    if !bad_lines.is_empty() {
        return Err(ParseError::BadLines(bad_lines));
    }
    for section in parsed.sections.values_mut() {
        for opt in section.values_mut() {
            if opt.value.starts_with(is_space) {
                let dedented = dedent(rstrip(&opt.value));
                opt.value = remove_leading_blank_lines(&dedented).to_owned();
            }
        }
    }
    Ok(parsed)
}

/// A matched section header: its name and, for `[name:expr]`, the expression with its byte
/// offset in the line.
struct Header<'a> {
    name: &'a str,
    expression: Option<(&'a str, usize)>,
}

fn is_name_char(c: char) -> bool {
    !is_space(c) && !matches!(c, '#' | '[' | ']' | ':' | ';' | '{' | '}')
}

/// `section_header` of zc.buildout's configparser:
/// `\[\s*NAME\s*(:EXPR)?\s*]\s*([#;].*)?$` where EXPR has no `#` or `;` and is greedy.
fn match_header(line: &str) -> Option<Header<'_>> {
    let rest = line.strip_prefix('[')?;
    let after_ws = rest.trim_start_matches(is_space);
    let name_len = after_ws
        .find(|c| !is_name_char(c))
        .unwrap_or(after_ws.len());
    if name_len == 0 {
        return None;
    }
    let name = &after_ws[..name_len];
    let after_name = &after_ws[name_len..];
    let trimmed = after_name.trim_start_matches(is_space);
    if let Some(expr_text) = trimmed.strip_prefix(':') {
        let expr_start = line.len() - expr_text.len();
        // EXPR is [^#;]*, greedy: take the longest prefix after which the tail matches
        let limit = expr_text.find(['#', ';']).unwrap_or(expr_text.len());
        let mut end = limit;
        loop {
            if expr_text.is_char_boundary(end) && tail_matches(&expr_text[end..]) {
                return Some(Header {
                    name,
                    expression: Some((&expr_text[..end], expr_start)),
                });
            }
            if end == 0 {
                break;
            }
            end -= 1;
        }
        // skipping the optional `(:EXPR)?` group cannot help: `:` does not match `\s*]`
        None
    } else if tail_matches(after_name) {
        Some(Header {
            name,
            expression: None,
        })
    } else {
        None
    }
}

/// `\s*]\s*([#;].*)?$`
fn tail_matches(s: &str) -> bool {
    let s = s.trim_start_matches(is_space);
    let Some(s) = s.strip_prefix(']') else {
        return false;
    };
    let s = s.trim_start_matches(is_space);
    s.is_empty() || s.starts_with(['#', ';'])
}

/// `option_start`: `NAME\s*[-+]?=VALUE` with NAME made of characters other than whitespace and
/// `{}[]=:`. Returns the name part (operator included, not yet right-stripped) and the value.
fn match_option(line: &str) -> Option<(&str, &str)> {
    let name_len = line
        .find(|c: char| is_space(c) || matches!(c, '{' | '}' | '[' | ']' | '=' | ':'))
        .unwrap_or(line.len());
    if name_len == 0 {
        return None;
    }
    let after = line[name_len..].trim_start_matches(is_space);
    let after = after.strip_prefix(['+', '-']).unwrap_or(after);
    let value = after.strip_prefix('=')?;
    let name_end = line.len() - value.len() - 1;
    Some((&line[..name_end], value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> ParsedFile {
        parse(text, FileId(0), &mut |e: &str| Ok(e.trim() == "true"))
            .ok()
            .unwrap()
    }

    fn values(p: &ParsedFile, section: &str) -> Vec<(String, String)> {
        p.sections[section]
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    }

    #[test]
    fn inline_and_block_values() {
        let p = parse_ok("[a]\nx = 1\n  2\n\n  3\ny =\n  l1\n    l2\n\n  l3\n");
        assert_eq!(
            values(&p, "a"),
            [
                ("x".into(), "1\n2\n3".into()),
                ("y".into(), "l1\n  l2\n\nl3".into())
            ]
        );
    }

    #[test]
    fn operators_and_comments() {
        let p = parse_ok("[a] # c\n# x\nx += 1\nx-=2\ny= a ; b # c\n=> p q\n");
        assert_eq!(
            values(&p, "a"),
            [
                ("x +".into(), "1".into()),
                ("x-".into(), "2".into()),
                ("y".into(), "a ; b # c".into()),
                ("<part-dependencies>".into(), "p q".into())
            ]
        );
    }

    #[test]
    fn conditional_sections() {
        let p = parse_ok("[b]\nw = 0\n[a:false]\nx = 1\n  2\n[a: true ]\ny = 2\n[b]\nz = 3\n");
        assert_eq!(values(&p, "a"), [("y".into(), "2".into())]);
        assert_eq!(
            values(&p, "b"),
            [("w".into(), "0".into()), ("z".into(), "3".into())]
        );
    }

    #[test]
    fn errors() {
        let e = parse("x = 1\n", FileId(0), &mut |_| Ok(true)).err();
        assert!(matches!(e, Some(ParseError::NoSectionHeader(_))));
        let e = parse("[a]\nx: 1\n[b] junk\n", FileId(0), &mut |_| Ok(true)).err();
        match e {
            Some(ParseError::BadLines(lines)) => assert_eq!(lines.len(), 2),
            other => panic!("{other:?}"),
        }
        let e = parse("[a]\n  x = 1\n", FileId(0), &mut |_| Ok(true)).err();
        assert!(matches!(e, Some(ParseError::BadLines(_))));
    }

    #[test]
    fn header_shapes() {
        assert!(match_header("[a]").is_some());
        assert!(match_header("[ a ] ; c").is_some());
        assert!(match_header("[a] x").is_none());
        assert!(match_header("[a b]").is_none());
        let h = match_header("[a:[x]<[4]] # c").map(|h| h.expression);
        assert_eq!(h, Some(Some(("[x]<[4]", 3))));
    }
}
