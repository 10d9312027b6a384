//! Python string behaviour that buildout's semantics depend on: what counts as whitespace,
//! `str.strip`/`str.split()`, `textwrap.dedent`, `os.path.join`/`normpath`, and `repr`.
//!
//! Buildout is written in Python and its observable results (values, error texts) follow these
//! functions exactly, so they are reproduced here rather than approximated with Rust's own.

/// `str.isspace()` for one character: Unicode whitespace plus the ASCII separators
/// `\x1c`..`\x1f`, which Python counts and Rust's `char::is_whitespace` does not.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `str.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `str.rstrip()`.
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// `str.split()` without arguments: runs of whitespace separate, no empty items.
pub fn split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|w| !w.is_empty())
}

/// `textwrap.dedent` (Python 3.11): lines made only of spaces and tabs are emptied, then the
/// longest common leading run of spaces/tabs of the non-blank lines is removed.
pub fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| {
            if l.bytes().all(|b| b == b' ' || b == b'\t') {
                ""
            } else {
                l
            }
        })
        .collect();
    let mut margin: Option<&str> = None;
    for line in &lines {
        let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
        if indent_len == line.len() {
            continue; // empty line (or the rest is a newline): no indent recorded
        }
        let indent = &line[..indent_len];
        margin = Some(match margin {
            None => indent,
            Some(m) if indent.starts_with(m) => m,
            Some(m) if m.starts_with(indent) => indent,
            Some(m) => {
                let common = m
                    .bytes()
                    .zip(indent.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                &m[..common]
            }
        });
    }
    let margin = margin.unwrap_or("");
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line.strip_prefix(margin).unwrap_or(line));
    }
    out
}

/// The regex `^(\s*\n)+` removed: everything up to the last newline of the leading
/// whitespace run.
pub fn remove_leading_blank_lines(s: &str) -> &str {
    let ws_end = s.find(|c: char| !is_space(c)).unwrap_or(s.len());
    match s[..ws_end].rfind('\n') {
        Some(i) => &s[i + 1..],
        None => s,
    }
}

/// `os.path.join(a, b)` for POSIX paths.
pub fn path_join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_owned()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// `os.path.dirname`.
pub fn dirname(p: &str) -> &str {
    match p.rfind('/') {
        Some(i) => {
            let head = &p[..i + 1];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head
            } else {
                trimmed
            }
        }
        None => "",
    }
}

/// `os.path.basename`.
pub fn basename(p: &str) -> &str {
    match p.rfind('/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

/// `os.path.normpath` for POSIX paths.
pub fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let initial = if p.starts_with("//") && !p.starts_with("///") {
        2
    } else if p.starts_with('/') {
        1
    } else {
        0
    };
    let mut out = String::with_capacity(p.len());
    out.push_str(&"//"[..initial]);
    // lengths of `out` before each component kept, to drop the last one on `..`
    let mut marks: Vec<usize> = Vec::new();
    let mut leading_dotdots = 0;
    for comp in p.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp == ".." {
            if let Some(mark) = marks.pop() {
                out.truncate(mark);
                continue;
            }
            if initial > 0 {
                continue; // `/..` is `/`
            }
            if leading_dotdots > 0 || out.is_empty() {
                leading_dotdots += 1;
            }
        }
        let mark = out.len();
        if out.len() > initial {
            out.push('/');
        }
        out.push_str(comp);
        if comp != ".." {
            marks.push(mark);
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out
    }
}

/// `os.path.expanduser` (only `~` and `~/...`, from `$HOME`).
pub fn expanduser(p: &str) -> String {
    if p == "~" || p.starts_with("~/") {
        if let Ok(home) = std::env::var("HOME") {
            let home = home.trim_end_matches('/');
            let home = if home.is_empty() { "/" } else { home };
            return format!("{home}{}", &p[1..]);
        }
    }
    p.to_owned()
}

/// Python's `repr()` of a `str` (the store's, which renders templates with it too).
pub use slapstore_store::pyrepr::repr;

/// `str.lstrip()`.
pub fn strip_start(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedent_keeps_relative_indentation() {
        assert_eq!(dedent("\n  a\n    b\n\n  c"), "\na\n  b\n\nc");
        assert_eq!(dedent("\n\ta\n  b"), "\n\ta\n  b");
        assert_eq!(dedent("  \n  a"), "\na");
    }

    #[test]
    fn leading_blank_lines() {
        assert_eq!(remove_leading_blank_lines("\n\n  a\n"), "  a\n");
        assert_eq!(remove_leading_blank_lines("a\n"), "a\n");
    }

    #[test]
    fn paths() {
        assert_eq!(normpath("/a/b/../c/./d/"), "/a/c/d");
        assert_eq!(normpath("a/../../b"), "../b");
        assert_eq!(normpath("/.."), "/");
        assert_eq!(path_join("/a", "b"), "/a/b");
        assert_eq!(path_join("/a", "/b"), "/b");
        assert_eq!(dirname("/a/b"), "/a");
        assert_eq!(dirname("/a"), "/");
        assert_eq!(dirname("a"), "");
    }

    #[test]
    fn normpath_agrees_with_python() {
        // posixpath.normpath on 300 random paths made of `a`, `b`, `..`, `.` and empty components
        for (path, want) in [
            ("", "."),
            (".", "."),
            ("../", ".."),
            ("../.", ".."),
            ("../../..", "../../.."),
            ("../../x/..", "../.."),
            (".././a", "../a"),
            ("..//a//b/a", "../a/b/a"),
            ("..//a/a", "../a/a"),
            ("../a", "../a"),
            ("../a/a//c/..", "../a/a"),
            ("../c/c/c", "../c/c/c"),
            ("./", "."),
            ("./..", ".."),
            ("./../", ".."),
            ("././b/c/", "b/c"),
            (".//.././/b", "../b"),
            (".////c/", "c"),
            ("./a/../..", ".."),
            ("./a/..//./..", ".."),
            ("./c/../", "."),
            ("/", "/"),
            ("/.", "/"),
            ("/..", "/"),
            ("/../..//a", "/a"),
            ("/../../a/b/./", "/a/b"),
            ("/.././b//a/", "/b/a"),
            ("/../a", "/a"),
            ("/../a//c", "/a/c"),
            ("/../b/.", "/b"),
            ("/../b//a/./..", "/b"),
            ("/./", "/"),
            ("/./..", "/"),
            ("/./../..//a", "/a"),
            ("/./../a/.", "/a"),
            ("/.//a//a", "/a/a"),
            ("/.//b", "/b"),
            ("/.//b//b/a", "/b/b/a"),
            ("/./a/../a/c/a", "/a/c/a"),
            ("/./b", "/b"),
            ("/./b/.//c", "/b/c"),
            ("/./c", "/c"),
            ("/./c/.././..", "/"),
            ("/./c//.", "/c"),
            ("//", "//"),
            ("//.", "//"),
            ("//..", "//"),
            ("//../..", "//"),
            ("//../../..", "//"),
            ("//../../../", "//"),
            ("//.././b/a/a/a", "//b/a/a/a"),
            ("//..//.//b/a", "//b/a"),
            ("//../a", "//a"),
            ("//../a/b", "//a/b"),
            ("//../b///c", "//b/c"),
            ("//../c", "//c"),
            ("//../c/..//./", "//"),
            ("//./..", "//"),
            ("//./../../c", "//c"),
            ("//./../a/../b", "//b"),
            ("//./../b/c//..", "//b"),
            ("//.//.", "//"),
            ("//.//./../../b", "//b"),
            ("//.///b", "//b"),
            ("//.//c/b/", "//c/b"),
            ("//./a/../c/", "//c"),
            ("//./a//b/b/.", "//a/b/b"),
            ("//./a/a/", "//a/a"),
            ("//./b/./a", "//b/a"),
            ("//./b///", "//b"),
            ("//./b/a/a/c", "//b/a/a/c"),
            ("//./b/c/../..", "//"),
            ("//./c///", "//c"),
            ("//./c/b/../.", "//c"),
            ("///", "/"),
            ("///..", "/"),
            ("///.././b", "/b"),
            ("///.././b/b/a/", "/b/b/a"),
            ("///../a", "/a"),
            ("///../a/c", "/a/c"),
            ("///../b", "/b"),
            ("///../b/./a/c", "/b/a/c"),
            ("///../c", "/c"),
            ("///../c/./..", "/"),
            ("///../c/./c", "/c/c"),
            ("///../c//../.", "/"),
            ("///./..///", "/"),
            ("///./../c/b/.", "/c/b"),
            ("///././..", "/"),
            ("///./././a", "/a"),
            ("///.//./a/.", "/a"),
            ("///.///b/c", "/b/c"),
            ("///./a", "/a"),
            ("///./a/b", "/a/b"),
            ("///./b/./", "/b"),
            ("///./b//a/b/b", "/b/a/b/b"),
            ("///./b//b/b/a", "/b/b/b/a"),
            ("///./c/a", "/c/a"),
            ("////", "/"),
            ("////..", "/"),
            ("////.//../.", "/"),
            ("////./a/a/.", "/a/a"),
            ("/////", "/"),
            ("/////a", "/a"),
            ("/////a/", "/a"),
            ("/////c", "/c"),
            ("/////c/..//b", "/b"),
            ("////a/", "/a"),
            ("////b/./..", "/"),
            ("////b//.", "/b"),
            ("////b/a/.", "/b/a"),
            ("////b/c/", "/b/c"),
            ("///a", "/a"),
            ("///a/../b", "/b"),
            ("///a/../c/c/.", "/c/c"),
            ("///a/./a/", "/a/a"),
            ("///a/./a/./a/", "/a/a/a"),
            ("///a///a/a", "/a/a/a"),
            ("///a//a/.././c", "/a/c"),
            ("///a//c/c", "/a/c/c"),
            ("///a/a/c/./b/..", "/a/a/c"),
            ("///a/b/a", "/a/b/a"),
            ("///a/b/a/", "/a/b/a"),
            ("///a/b/c/b", "/a/b/c/b"),
            ("///b", "/b"),
            ("///b/..", "/"),
            ("///b/../../c", "/c"),
            ("///b/./b/a//c", "/b/b/a/c"),
            ("///b//b/a/./", "/b/b/a"),
            ("///c/.///.", "/c"),
            ("///c/./b", "/c/b"),
            ("///c//a/a", "/c/a/a"),
            ("///c//a/a/a", "/c/a/a/a"),
            ("///c//b/a//a", "/c/b/a/a"),
            ("///c/a/.", "/c/a"),
            ("///c/c///b", "/c/c/b"),
            ("//a", "//a"),
            ("//a/", "//a"),
            ("//a/..//..//.", "//"),
            ("//a/../a", "//a"),
            ("//a/../b", "//b"),
            ("//a/./b/b/..", "//a/b"),
            ("//a//.", "//a"),
            ("//a//../.", "//"),
            ("//a///b/a/..", "//a/b"),
            ("//a/a/b", "//a/a/b"),
            ("//a/c", "//a/c"),
            ("//a/c/../b", "//a/b"),
            ("//b", "//b"),
            ("//b/", "//b"),
            ("//b/..//b", "//b"),
            ("//b/../b/./b", "//b/b"),
            ("//b/././a/c/a", "//b/a/c/a"),
            ("//b/./a/a", "//b/a/a"),
            ("//b//", "//b"),
            ("//b//../a/b", "//a/b"),
            ("//b//./", "//b"),
            ("//b//./c/", "//b/c"),
            ("//b/a/../..", "//"),
            ("//b/a/../b", "//b/b"),
            ("//b/b", "//b/b"),
            ("//b/c", "//b/c"),
            ("//b/c//a", "//b/c/a"),
            ("//b/c/b/././", "//b/c/b"),
            ("//c", "//c"),
            ("//c/./..//b/.", "//b"),
            ("//c/./../c", "//c"),
            ("//c//a/c//..", "//c/a"),
            ("//c//b/b", "//c/b/b"),
            ("//c/a/a", "//c/a/a"),
            ("//c/b/./c/./b", "//c/b/c/b"),
            ("//c/b//", "//c/b"),
            ("//c/b/b/..", "//c/b"),
            ("/a", "/a"),
            ("/a/", "/a"),
            ("/a/..", "/"),
            ("/a/../b/..//b", "/b"),
            ("/a/../b/./.", "/b"),
            ("/a/../c/", "/c"),
            ("/a//..", "/"),
            ("/a////", "/a"),
            ("/a///c/", "/a/c"),
            ("/a//c/b", "/a/c/b"),
            ("/a/a/a/b/c", "/a/a/a/b/c"),
            ("/a/b/../../..", "/"),
            ("/a/c//././.", "/a/c"),
            ("/b", "/b"),
            ("/b/.././/..", "/"),
            ("/b/././c", "/b/c"),
            ("/b/.//b/b", "/b/b/b"),
            ("/b/./b/..//..", "/"),
            ("/b///a/a", "/b/a/a"),
            ("/b//a/c/c/..", "/b/a/c"),
            ("/b/a/b", "/b/a/b"),
            ("/b/b/a/b/", "/b/b/a/b"),
            ("/c", "/c"),
            ("/c/.././", "/"),
            ("/c//", "/c"),
            ("/c//./a", "/c/a"),
            ("/c//a", "/c/a"),
            ("/c//b/a//..", "/c/b"),
            ("/c//c/b/a/", "/c/c/b/a"),
            ("/c/a/./", "/c/a"),
            ("/c/a/a", "/c/a/a"),
            ("/c/b/.//b", "/c/b/b"),
            ("a", "a"),
            ("a/..", "."),
            ("a/../..", ".."),
            ("a//./b", "a/b"),
            ("a//b/./c/..", "a/b"),
            ("a//b/a/.", "a/b/a"),
            ("a/a", "a/a"),
            ("a/a/.", "a/a"),
            ("a/a//b", "a/a/b"),
            ("a/b/..", "a"),
            ("a/b/../../../c", "../c"),
            ("a/b/../b/b", "a/b/b"),
            ("a/c", "a/c"),
            ("a/c/b/a", "a/c/b/a"),
            ("a/c/c/../c", "a/c/c"),
            ("b", "b"),
            ("b/.", "b"),
            ("b/./.", "b"),
            ("b/././c/..", "b"),
            ("b/./b/../", "b"),
            ("b/a", "b/a"),
            ("b/a/", "b/a"),
            ("b/b", "b/b"),
            ("b/b/./..", "b"),
            ("c", "c"),
            ("c/../../../a", "../../a"),
            ("c/./b", "c/b"),
            ("c//../a", "a"),
            ("c///a/c/", "c/a/c"),
            ("c/a/.", "c/a"),
            ("c/a/c", "c/a/c"),
            ("c/b", "c/b"),
        ] {
            assert_eq!(normpath(path), want, "{path:?}");
        }
    }

    #[test]
    fn python_repr() {
        assert_eq!(repr("a b"), "'a b'");
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(repr("x\ny"), "'x\\ny'");
    }

    #[test]
    fn whitespace() {
        assert!(is_space('\x1c'));
        assert_eq!(strip(" \t a \x0b"), "a");
        assert_eq!(
            split_whitespace(" a  b\nc ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
