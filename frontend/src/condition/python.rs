//! The Python subset of conditional section headers: `[x:linux and platform.machine() == "x86_64"]`,
//! `[x:sys.version_info < (3,10)]`, `[x:[int(q) for q in platform.release().split(".")[:2]]<[4,14]]`.
//!
//! zc.buildout evaluates `"[" + expression + "]"` with Python's `eval` and takes element 0 of the
//! list. This module does the same with a tokenizer, a recursive-descent parser to a small AST
//! and an evaluator over Python-like values, with the globals buildout provides (`sys`, `os`,
//! `platform`, `python3`, `linux`, `bits64`, ...) computed from the [`Target`].
//!
//! Invariants: nothing panics on any input; nesting is bounded ([`MAX_DEPTH`]), so is the size of
//! any value built ([`MAX_ITEMS`], [`MAX_STR`]); unsupported syntax or operations are errors that
//! say what failed, in Python's words where Python has them.

use super::target::host;
use super::{ConditionError, Target};

/// Deepest nesting of the expression accepted.
pub(super) const MAX_DEPTH: usize = 100;
/// Most items a list, tuple or comprehension may have.
const MAX_ITEMS: usize = 100_000;
/// Longest string an operation may build.
const MAX_STR: usize = 1 << 20;

type Result<T> = std::result::Result<T, ConditionError>;

fn error(message: impl Into<String>, offset: usize) -> ConditionError {
    ConditionError {
        message: message.into(),
        offset: Some(offset),
    }
}

// ---------------------------------------------------------------- tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Int(i64),
    Str(String),
    Op(&'static str),
    End,
}

const OPS: [&str; 22] = [
    "**", "==", "!=", "<=", ">=", "//", "(", ")", "[", "]", "{", "}", ",", ":", ".", "+", "-", "*",
    "%", "<", ">", "/",
];

fn tokenize(code: &str) -> Result<Vec<(Tok, usize)>> {
    let mut tokens = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let c = code[i..].chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '#' {
            break; // a comment runs to the end (the header's trailing comment)
        }
        let start = i;
        if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let text = code[start..i].replace('_', "");
            let value = if let Some(hex) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
                i64::from_str_radix(hex, 16)
            } else {
                text.parse::<i64>()
            };
            let value =
                value.map_err(|_| error("SyntaxError: invalid or unsupported number", start))?;
            tokens.push((Tok::Int(value), start));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            while i < code.len() {
                let d = code[i..].chars().next().unwrap_or(' ');
                if d.is_alphanumeric() || d == '_' {
                    i += d.len_utf8();
                } else {
                    break;
                }
            }
            let word = &code[start..i];
            let rest = &code[i..];
            if matches!(
                word,
                "r" | "R" | "b" | "B" | "u" | "U" | "f" | "F" | "rb" | "br"
            ) && rest.starts_with(['\'', '"'])
            {
                if word.eq_ignore_ascii_case("f") {
                    return Err(error("SyntaxError: f-strings are not supported", start));
                }
                let raw = word.to_ascii_lowercase().contains('r');
                let (s, len) = string_literal(rest, raw, i)?;
                i += len;
                tokens.push((Tok::Str(s), start));
            } else {
                tokens.push((Tok::Name(word.to_owned()), start));
            }
            continue;
        }
        if c == '\'' || c == '"' {
            let (s, len) = string_literal(&code[i..], false, i)?;
            i += len;
            tokens.push((Tok::Str(s), start));
            continue;
        }
        match OPS.iter().find(|op| code[i..].starts_with(**op)) {
            Some(op) => {
                tokens.push((Tok::Op(op), start));
                i += op.len();
            }
            None => {
                return Err(error(
                    format!("SyntaxError: invalid character '{c}'"),
                    start,
                ))
            }
        }
    }
    tokens.push((Tok::End, code.len()));
    Ok(tokens)
}

/// A quoted string at the start of `text`: its value and its length in bytes.
fn string_literal(text: &str, raw: bool, offset: usize) -> Result<(String, usize)> {
    let quote = if text.starts_with("'''") {
        "'''"
    } else if text.starts_with("\"\"\"") {
        "\"\"\""
    } else if text.starts_with('\'') {
        "'"
    } else {
        "\""
    };
    let body_start = quote.len();
    let mut j = body_start;
    while j < text.len() {
        if text[j..].starts_with('\\') {
            j += 1 + text[j + 1..].chars().next().map_or(0, char::len_utf8);
            continue;
        }
        if text[j..].starts_with(quote) {
            let body = &text[body_start..j];
            let value = if raw {
                body.to_owned()
            } else {
                decode_escapes(body).map_err(|m| error(m, offset))?
            };
            return Ok((value, j + quote.len()));
        }
        if quote.len() == 1 && text[j..].starts_with('\n') {
            break;
        }
        j += text[j..].chars().next().map_or(1, char::len_utf8);
    }
    Err(error("SyntaxError: unterminated string literal", offset))
}

/// Decodes the escapes of a Python string literal's body.
pub(super) fn decode_escapes(body: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            // the closing quote was escaped
            return Err("SyntaxError: unterminated string literal".into());
        };
        let simple = match e {
            '\n' => Some(None),
            '\\' => Some(Some('\\')),
            '\'' => Some(Some('\'')),
            '"' => Some(Some('"')),
            'a' => Some(Some('\x07')),
            'b' => Some(Some('\x08')),
            'f' => Some(Some('\x0c')),
            'n' => Some(Some('\n')),
            'r' => Some(Some('\r')),
            't' => Some(Some('\t')),
            'v' => Some(Some('\x0b')),
            _ => None,
        };
        if let Some(decoded) = simple {
            out.extend(decoded);
            continue;
        }
        let (digits, radix, escape) = match e {
            '0'..='7' => {
                let mut d = e.to_string();
                while d.len() < 3 && chars.peek().is_some_and(|c| ('0'..='7').contains(c)) {
                    d.extend(chars.next());
                }
                (d, 8, "octal")
            }
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let d: String = (0..n).filter_map(|_| chars.next()).collect();
                if d.len() != n || !d.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("SyntaxError: truncated \\{e} escape"));
                }
                (d, 16, "hex")
            }
            'N' => return Err("SyntaxError: \\N{...} escapes are not supported".into()),
            other => {
                out.push('\\');
                out.push(other);
                continue;
            }
        };
        let code =
            u32::from_str_radix(&digits, radix).map_err(|_| format!("bad {escape} escape"))?;
        out.push(
            char::from_u32(code).ok_or_else(|| format!("SyntaxError: invalid {escape} escape"))?,
        );
    }
    Ok(out)
}

/// Python's `repr()` of a string.
pub(super) fn repr_str(s: &str) -> String {
    crate::pystr::repr(s)
}

// ---------------------------------------------------------------- syntax tree

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    In,
    NotIn,
    Is,
    IsNot,
}

#[derive(Debug, Clone)]
enum Expr {
    Const(Value),
    Name(String),
    Attr(Box<Expr>, String),
    Call(Box<Expr>, Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, Vec<(Cmp, Expr)>),
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    /// A dict display, `{key: value, ...}` (what zc.buildout's `dumps` writes of a dict).
    Dict(Vec<(Expr, Expr)>),
    Comprehension {
        element: Box<Expr>,
        variable: String,
        iterable: Box<Expr>,
        condition: Option<Box<Expr>>,
    },
    IfElse(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// An expression with the offset of its first token.
type Node = (Expr, usize);

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).map_or(&Tok::End, |t| &t.0)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(0, |t| t.1)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Name(n) if n == word)
    }

    fn expect_op(&mut self, op: &str) -> Result<()> {
        if self.is_op(op) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax_error(&format!("expected '{op}'")))
        }
    }

    fn syntax_error(&self, what: &str) -> ConditionError {
        error(
            format!("SyntaxError: invalid syntax ({what})"),
            self.offset(),
        )
    }

    /// Parses with `parse` one level deeper; nesting beyond [`MAX_DEPTH`] is an error.
    fn nested<T>(&mut self, parse: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_DEPTH {
            return Err(error(
                "SyntaxError: expression nested too deeply",
                self.offset(),
            ));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    fn expr(&mut self) -> Result<Expr> {
        self.nested(Self::expr_inner)
    }

    fn expr_inner(&mut self) -> Result<Expr> {
        if self.is_word("lambda") || self.is_word("yield") || self.is_word("await") {
            return Err(self.syntax_error("unsupported syntax"));
        }
        let body = self.or_test()?;
        if self.is_word("if") {
            self.pos += 1;
            let condition = self.or_test()?;
            if !self.is_word("else") {
                return Err(self.syntax_error("expected 'else'"));
            }
            self.pos += 1;
            let orelse = self.expr()?;
            return Ok(Expr::IfElse(
                Box::new(condition),
                Box::new(body),
                Box::new(orelse),
            ));
        }
        Ok(body)
    }

    /// Counts the operands of a left-associative chain, whose tree grows as deep as it is long.
    fn chain(&self, n: &mut usize) -> Result<()> {
        *n += 1;
        if *n + self.depth > MAX_DEPTH {
            return Err(error("SyntaxError: expression too long", self.offset()));
        }
        Ok(())
    }

    fn or_test(&mut self) -> Result<Expr> {
        self.left_chain(&["or"], Self::and_test)
    }

    fn and_test(&mut self) -> Result<Expr> {
        self.left_chain(&["and"], Self::not_test)
    }

    /// `operand (OP operand)*` for the operators `ops`, associating to the left.
    fn left_chain(
        &mut self,
        ops: &[&'static str],
        operand: fn(&mut Self) -> Result<Expr>,
    ) -> Result<Expr> {
        let mut left = operand(self)?;
        let mut n = 0;
        loop {
            let op = match self.peek() {
                Tok::Op(o) => ops.iter().find(|op| *op == o),
                Tok::Name(w) => ops.iter().find(|op| **op == w.as_str()),
                _ => None,
            };
            let Some(&op) = op else {
                return Ok(left);
            };
            self.chain(&mut n)?;
            self.pos += 1;
            let right = Box::new(operand(self)?);
            left = match op {
                "or" => Expr::Or(Box::new(left), right),
                "and" => Expr::And(Box::new(left), right),
                _ => Expr::Binary(op, Box::new(left), right),
            };
        }
    }

    fn not_test(&mut self) -> Result<Expr> {
        if self.is_word("not") {
            self.pos += 1;
            let inner = self.nested(Self::not_test)?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr> {
        let first = self.arith()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::Op("<") => Cmp::Lt,
                Tok::Op("<=") => Cmp::Le,
                Tok::Op(">") => Cmp::Gt,
                Tok::Op(">=") => Cmp::Ge,
                Tok::Op("==") => Cmp::Eq,
                Tok::Op("!=") => Cmp::Ne,
                Tok::Name(n) if n == "in" => Cmp::In,
                Tok::Name(n) if n == "is" => Cmp::Is,
                Tok::Name(n) if n == "not" => Cmp::NotIn,
                _ => break,
            };
            self.pos += 1;
            let op = match op {
                Cmp::NotIn if self.is_word("in") => {
                    self.pos += 1;
                    Cmp::NotIn
                }
                Cmp::NotIn => return Err(self.syntax_error("expected 'in'")),
                Cmp::Is if self.is_word("not") => {
                    self.pos += 1;
                    Cmp::IsNot
                }
                op => op,
            };
            rest.push((op, self.arith()?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Expr::Compare(Box::new(first), rest)
        })
    }

    fn arith(&mut self) -> Result<Expr> {
        self.left_chain(&["+", "-"], Self::term)
    }

    fn term(&mut self) -> Result<Expr> {
        self.left_chain(&["*", "%", "/", "//"], Self::factor)
    }

    fn factor(&mut self) -> Result<Expr> {
        if let Tok::Op(op @ ("-" | "+")) = *self.peek() {
            self.pos += 1;
            let inner = self.nested(Self::factor)?;
            return Ok(if op == "-" {
                Expr::Neg(Box::new(inner))
            } else {
                inner
            });
        }
        if self.is_op("**") {
            return Err(self.syntax_error("unsupported operator '**'"));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.atom()?;
        let mut n = 0;
        loop {
            if self.is_op(".") || self.is_op("(") || self.is_op("[") {
                self.chain(&mut n)?;
            }
            if self.is_op(".") {
                self.pos += 1;
                match self.next() {
                    Tok::Name(n) => e = Expr::Attr(Box::new(e), n),
                    _ => return Err(self.syntax_error("expected a name after '.'")),
                }
            } else if self.is_op("(") {
                self.pos += 1;
                let args = self.items(")")?;
                e = Expr::Call(Box::new(e), args.into_iter().map(|(a, _)| a).collect());
            } else if self.is_op("[") {
                self.pos += 1;
                e = self.subscript(e)?;
            } else {
                if self.is_op("**") {
                    return Err(self.syntax_error("unsupported operator '**'"));
                }
                return Ok(e);
            }
        }
    }

    fn subscript(&mut self, target: Expr) -> Result<Expr> {
        let lower = if self.is_op(":") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        if self.is_op(":") {
            self.pos += 1;
            let upper = if self.is_op("]") {
                None
            } else {
                Some(Box::new(self.expr()?))
            };
            self.expect_op("]")?;
            return Ok(Expr::Slice(Box::new(target), lower, upper));
        }
        self.expect_op("]")?;
        match lower {
            Some(index) => Ok(Expr::Index(Box::new(target), index)),
            None => Err(self.syntax_error("empty subscript")),
        }
    }

    /// Comma-separated expressions up to `close`; the flag tells a trailing comma.
    fn items(&mut self, close: &str) -> Result<Vec<(Expr, bool)>> {
        let mut items = Vec::new();
        while !self.is_op(close) {
            if matches!(self.peek(), Tok::End) {
                return Err(self.syntax_error(&format!("'{close}' was never closed")));
            }
            items.push((self.expr()?, false));
            if self.is_op(",") {
                self.pos += 1;
                if let Some(last) = items.last_mut() {
                    last.1 = true;
                }
            } else if !self.is_op(close) {
                return Err(self.syntax_error(&format!("expected ',' or '{close}'")));
            }
        }
        self.pos += 1;
        Ok(items)
    }

    fn atom(&mut self) -> Result<Expr> {
        self.nested(Self::atom_inner)
    }

    fn atom_inner(&mut self) -> Result<Expr> {
        let offset = self.offset();
        match self.next() {
            Tok::Int(i) => Ok(Expr::Const(Value::Int(i))),
            Tok::Str(mut s) => {
                while let Tok::Str(more) = self.peek().clone() {
                    self.pos += 1;
                    s.push_str(&more);
                }
                Ok(Expr::Const(Value::Str(s)))
            }
            Tok::Name(n) => match n.as_str() {
                "True" => Ok(Expr::Const(Value::Bool(true))),
                "False" => Ok(Expr::Const(Value::Bool(false))),
                "None" => Ok(Expr::Const(Value::None)),
                "and" | "or" | "not" | "in" | "is" | "if" | "else" | "for" | "lambda" => {
                    Err(error("SyntaxError: invalid syntax", offset))
                }
                _ => Ok(Expr::Name(n)),
            },
            Tok::Op("(") => {
                let items = self.items(")")?;
                if items.len() == 1 && !items[0].1 {
                    let mut items = items;
                    return Ok(items.remove(0).0);
                }
                Ok(Expr::Tuple(items.into_iter().map(|(e, _)| e).collect()))
            }
            Tok::Op("[") => self.list(),
            Tok::Op("{") => self.dict(),
            Tok::End => Err(error("SyntaxError: unexpected end of expression", offset)),
            _ => Err(error("SyntaxError: invalid syntax", offset)),
        }
    }

    /// After `{`: a dict display (set displays and comprehensions are not supported).
    fn dict(&mut self) -> Result<Expr> {
        let mut entries = Vec::new();
        while !self.is_op("}") {
            if matches!(self.peek(), Tok::End) {
                return Err(self.syntax_error("'{' was never closed"));
            }
            let key = self.expr()?;
            if !self.is_op(":") {
                return Err(self.syntax_error("set displays are not supported, only dicts"));
            }
            self.pos += 1;
            entries.push((key, self.expr()?));
            if self.is_op(",") {
                self.pos += 1;
            } else if !self.is_op("}") {
                return Err(self.syntax_error("expected ',' or '}'"));
            }
        }
        self.pos += 1;
        Ok(Expr::Dict(entries))
    }

    /// After `[`: a list display or a list comprehension.
    fn list(&mut self) -> Result<Expr> {
        if self.is_op("]") {
            self.pos += 1;
            return Ok(Expr::List(Vec::new()));
        }
        let first = self.expr()?;
        if self.is_word("for") {
            self.pos += 1;
            let variable = match self.next() {
                Tok::Name(n) => n,
                _ => return Err(self.syntax_error("expected a name after 'for'")),
            };
            if !self.is_word("in") {
                return Err(self.syntax_error("expected 'in'"));
            }
            self.pos += 1;
            let iterable = self.or_test()?;
            let condition = if self.is_word("if") {
                self.pos += 1;
                Some(Box::new(self.or_test()?))
            } else {
                None
            };
            self.expect_op("]")?;
            return Ok(Expr::Comprehension {
                element: Box::new(first),
                variable,
                iterable: Box::new(iterable),
                condition,
            });
        }
        let mut items = vec![first];
        if self.is_op(",") {
            self.pos += 1;
            items.extend(self.items("]")?.into_iter().map(|(e, _)| e));
        } else {
            self.expect_op("]")?;
        }
        Ok(Expr::List(items))
    }
}

fn parse(code: &str) -> Result<Node> {
    let tokens = tokenize(code)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let offset = parser.offset();
    let e = parser.expr()?;
    if !matches!(parser.peek(), Tok::End) {
        return Err(parser.syntax_error("unexpected text"));
    }
    Ok((e, offset))
}

// ---------------------------------------------------------------- values

#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `sys.version_info`: a tuple with named fields.
    VersionInfo(Vec<Value>),
    Module(&'static str),
    Function(&'static str),
    /// A bound method: receiver and name.
    Method(Box<Value>, String),
    /// What `open(path)` returns.
    File(String),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::VersionInfo(_) => "sys.version_info",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Module(_) => "module",
            Value::Function(_) => "builtin_function_or_method",
            Value::Method(..) => "builtin_function_or_method",
            Value::File(_) => "_io.TextIOWrapper",
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Str(s) => !s.is_empty(),
            Value::Tuple(v) | Value::List(v) | Value::VersionInfo(v) => !v.is_empty(),
            Value::Dict(d) => !d.is_empty(),
            _ => true,
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    fn items(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) | Value::VersionInfo(v) => Some(v),
            _ => None,
        }
    }

    fn is_tuple(&self) -> bool {
        matches!(self, Value::Tuple(_) | Value::VersionInfo(_))
    }
}

fn py_eq(a: &Value, b: &Value) -> bool {
    match (a.as_int(), b.as_int()) {
        (Some(x), Some(y)) => return x == y,
        (Some(_), None) | (None, Some(_)) => return false,
        _ => {}
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::None, Value::None) => true,
        (Value::List(x), Value::List(y)) => seq_eq(x, y),
        _ if a.is_tuple() && b.is_tuple() => {
            seq_eq(a.items().unwrap_or(&[]), b.items().unwrap_or(&[]))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| py_eq(k, k2) && py_eq(v, v2)))
        }
        _ => a == b,
    }
}

fn seq_eq(x: &[Value], y: &[Value]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b))
}

/// `a < b` as Python orders ints, strings, tuples and lists.
fn py_lt(a: &Value, b: &Value, op: &str, offset: usize) -> Result<bool> {
    if let (Some(x), Some(y)) = (a.as_int(), b.as_int()) {
        return Ok(x < y);
    }
    let same_sequence =
        matches!((a, b), (Value::List(_), Value::List(_))) || (a.is_tuple() && b.is_tuple());
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ if same_sequence => {
            let (x, y) = (a.items().unwrap_or(&[]), b.items().unwrap_or(&[]));
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q) {
                    return py_lt(p, q, op, offset);
                }
            }
            Ok(x.len() < y.len())
        }
        _ => Err(error(
            format!(
                "TypeError: '{op}' not supported between instances of '{}' and '{}'",
                a.type_name(),
                b.type_name()
            ),
            offset,
        )),
    }
}

fn compare(op: Cmp, a: &Value, b: &Value, offset: usize) -> Result<bool> {
    Ok(match op {
        Cmp::Eq => py_eq(a, b),
        Cmp::Ne => !py_eq(a, b),
        Cmp::Lt => py_lt(a, b, "<", offset)?,
        Cmp::Gt => py_lt(b, a, ">", offset)?,
        Cmp::Le => py_eq(a, b) || py_lt(a, b, "<=", offset)?,
        Cmp::Ge => py_eq(a, b) || py_lt(b, a, ">=", offset)?,
        Cmp::In => contains(b, a, offset)?,
        Cmp::NotIn => !contains(b, a, offset)?,
        Cmp::Is => is_same(a, b),
        Cmp::IsNot => !is_same(a, b),
    })
}

fn is_same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Module(x), Value::Module(y)) => x == y,
        _ => false,
    }
}

fn contains(container: &Value, item: &Value, offset: usize) -> Result<bool> {
    match container {
        Value::Str(s) => match item {
            Value::Str(i) => Ok(s.contains(i.as_str())),
            other => Err(error(
                format!(
                    "TypeError: 'in <string>' requires string as left operand, not {}",
                    other.type_name()
                ),
                offset,
            )),
        },
        Value::Dict(d) => Ok(d.iter().any(|(k, _)| py_eq(k, item))),
        other => match other.items() {
            Some(items) => Ok(items.iter().any(|v| py_eq(v, item))),
            None => Err(error(
                format!(
                    "TypeError: argument of type '{}' is not iterable",
                    other.type_name()
                ),
                offset,
            )),
        },
    }
}

// ---------------------------------------------------------------- evaluation

struct Evaluator<'t> {
    target: &'t Target,
    /// Comprehension variables, innermost last.
    locals: Vec<(String, Value)>,
}

impl Evaluator<'_> {
    fn eval(&mut self, e: &Expr, offset: usize) -> Result<Value> {
        match e {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Name(n) => self.name(n, offset),
            Expr::Attr(target, name) => {
                let target = self.eval(target, offset)?;
                self.attribute(target, name, offset)
            }
            Expr::Call(f, args) => {
                let f = self.eval(f, offset)?;
                let args = args
                    .iter()
                    .map(|a| self.eval(a, offset))
                    .collect::<Result<Vec<_>>>()?;
                self.call(f, args, offset)
            }
            Expr::Index(target, index) => {
                let target = self.eval(target, offset)?;
                let index = self.eval(index, offset)?;
                index_value(&target, &index, offset)
            }
            Expr::Slice(target, lower, upper) => {
                let target = self.eval(target, offset)?;
                let lower = lower.as_ref().map(|l| self.eval(l, offset)).transpose()?;
                let upper = upper.as_ref().map(|u| self.eval(u, offset)).transpose()?;
                slice_value(&target, lower.as_ref(), upper.as_ref(), offset)
            }
            Expr::And(a, b) => {
                let a = self.eval(a, offset)?;
                if a.truthy() {
                    self.eval(b, offset)
                } else {
                    Ok(a)
                }
            }
            Expr::Or(a, b) => {
                let a = self.eval(a, offset)?;
                if a.truthy() {
                    Ok(a)
                } else {
                    self.eval(b, offset)
                }
            }
            Expr::Not(a) => Ok(Value::Bool(!self.eval(a, offset)?.truthy())),
            Expr::Neg(a) => match self.eval(a, offset)?.as_int() {
                Some(i) => i
                    .checked_neg()
                    .map(Value::Int)
                    .ok_or_else(|| error("OverflowError: integer too large", offset)),
                None => Err(error("TypeError: bad operand type for unary -", offset)),
            },
            Expr::Binary(op, a, b) => {
                let a = self.eval(a, offset)?;
                let b = self.eval(b, offset)?;
                binary(op, a, b, offset)
            }
            Expr::Compare(first, rest) => {
                let mut left = self.eval(first, offset)?;
                for (op, right) in rest {
                    let right = self.eval(right, offset)?;
                    if !compare(*op, &left, &right, offset)? {
                        return Ok(Value::Bool(false));
                    }
                    left = right;
                }
                Ok(Value::Bool(true))
            }
            Expr::Tuple(items) => Ok(Value::Tuple(self.eval_all(items, offset)?)),
            Expr::List(items) => Ok(Value::List(self.eval_all(items, offset)?)),
            Expr::Dict(entries) => {
                // a later equal key replaces an earlier one's value, in its place
                let mut dict: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let (k, v) = (self.eval(k, offset)?, self.eval(v, offset)?);
                    match dict.iter_mut().find(|(e, _)| py_eq(e, &k)) {
                        Some(entry) => entry.1 = v,
                        None => dict.push((k, v)),
                    }
                }
                Ok(Value::Dict(dict))
            }
            Expr::Comprehension {
                element,
                variable,
                iterable,
                condition,
            } => {
                let iterable = self.eval(iterable, offset)?;
                let items = iterate(&iterable, offset)?;
                let mut out = Vec::new();
                for item in items {
                    self.locals.push((variable.clone(), item));
                    let keep = match condition {
                        Some(c) => self.eval(c, offset).map(|v| v.truthy()),
                        None => Ok(true),
                    };
                    let value = match keep {
                        Ok(true) => self.eval(element, offset).map(Some),
                        Ok(false) => Ok(None),
                        Err(e) => Err(e),
                    };
                    self.locals.pop();
                    out.extend(value?);
                }
                Ok(Value::List(out))
            }
            Expr::IfElse(condition, body, orelse) => {
                if self.eval(condition, offset)?.truthy() {
                    self.eval(body, offset)
                } else {
                    self.eval(orelse, offset)
                }
            }
        }
    }

    fn eval_all(&mut self, items: &[Expr], offset: usize) -> Result<Vec<Value>> {
        items.iter().map(|e| self.eval(e, offset)).collect()
    }

    fn name(&self, name: &str, offset: usize) -> Result<Value> {
        if let Some((_, v)) = self.locals.iter().rev().find(|(n, _)| n == name) {
            return Ok(v.clone());
        }
        let t = self.target;
        let (major, minor, _) = t.python;
        let platform = t.sys_platform.to_lowercase();
        let flag = |b: bool| Ok(Value::Bool(b));
        match name {
            "sys" | "os" | "platform" | "re" => Ok(Value::Module(match name {
                "sys" => "sys",
                "os" => "os",
                "platform" => "platform",
                _ => "re",
            })),
            "python2" => flag(major == 2),
            "python3" => flag(major == 3),
            "cpython" => flag(t.implementation.name() == "cpython"),
            "pypy" => flag(t.implementation.name() == "pypy"),
            "jython" => flag(t.implementation.name() == "jython"),
            "ironpython" => flag(t.implementation.name() == "ironpython"),
            "linux" => flag(platform.contains("linux")),
            "windows" => flag(platform.contains("win32")),
            "cygwin" => flag(platform.contains("cygwin")),
            "solaris" => flag(platform.contains("sunos")),
            "macosx" => flag(platform.contains("darwin")),
            "posix" => flag(t.os_name.to_lowercase().contains("posix")),
            "bits32" => flag(t.pointer_bits == 32),
            "bits64" => flag(t.pointer_bits == 64),
            "little_endian" => flag(t.little_endian),
            "big_endian" => flag(!t.little_endian),
            "int" | "str" | "len" | "bool" | "tuple" | "list" | "any" | "all" | "min" | "max"
            | "open" | "isinstance" | "sorted" | "chr" | "ord" => {
                Ok(Value::Function(builtin_name(name)))
            }
            _ => {
                if let Some(v) = name.strip_prefix("python") {
                    const KNOWN: [&str; 20] = [
                        "24", "25", "26", "27", "30", "31", "32", "33", "34", "35", "36", "37",
                        "38", "39", "310", "311", "312", "313", "314", "315",
                    ];
                    if KNOWN.contains(&v) {
                        return flag(format!("{major}{minor}") == v);
                    }
                }
                Err(error(
                    format!("NameError: name '{name}' is not defined"),
                    offset,
                ))
            }
        }
    }

    fn attribute(&self, target: Value, name: &str, offset: usize) -> Result<Value> {
        let t = self.target;
        let missing = |target: &Value| {
            error(
                format!(
                    "AttributeError: '{}' object has no attribute '{name}'",
                    target.type_name()
                ),
                offset,
            )
        };
        match (&target, name) {
            (Value::Module("sys"), "version_info") => {
                let (major, minor, micro) = t.python;
                Ok(Value::VersionInfo(vec![
                    Value::Int(i64::from(major)),
                    Value::Int(i64::from(minor)),
                    Value::Int(i64::from(micro)),
                    Value::Str("final".into()),
                    Value::Int(0),
                ]))
            }
            (Value::Module("sys"), "platform") => Ok(Value::Str(t.sys_platform.clone())),
            (Value::Module("sys"), "byteorder") => Ok(Value::Str(t.byteorder().into())),
            (Value::Module("sys"), "maxsize") => Ok(Value::Int(t.maxsize())),
            (Value::Module("sys"), "version") => Ok(Value::Str(t.sys_version())),
            (Value::Module("sys"), "hexversion") => Ok(Value::Int(t.hexversion())),
            (Value::Module("os"), "name") => Ok(Value::Str(t.os_name.clone())),
            (Value::Module("os"), "sep") => Ok(Value::Str("/".into())),
            (Value::Module("os"), "R_OK") => Ok(Value::Int(4)),
            (Value::Module("os"), "W_OK") => Ok(Value::Int(2)),
            (Value::Module("os"), "X_OK") => Ok(Value::Int(1)),
            (Value::Module("os"), "F_OK") => Ok(Value::Int(0)),
            (Value::Module("os"), "path") => Ok(Value::Module("os.path")),
            (Value::Module("os"), "environ") => Ok(Value::Module("os.environ")),
            (Value::Module(module), function) => match qualified(module, function) {
                Some(f) => Ok(Value::Function(f)),
                None => Err(error(
                    format!("AttributeError: module '{module}' has no attribute '{function}'"),
                    offset,
                )),
            },
            (Value::VersionInfo(items), field) => {
                let i = ["major", "minor", "micro", "releaselevel", "serial"]
                    .iter()
                    .position(|f| *f == field)
                    .ok_or_else(|| missing(&target))?;
                Ok(items.get(i).cloned().unwrap_or(Value::None))
            }
            (Value::Str(_) | Value::Dict(_) | Value::File(_) | Value::List(_), method) => {
                if is_method(&target, method) {
                    Ok(Value::Method(Box::new(target.clone()), method.to_owned()))
                } else {
                    Err(missing(&target))
                }
            }
            _ => Err(missing(&target)),
        }
    }

    fn call(&self, f: Value, args: Vec<Value>, offset: usize) -> Result<Value> {
        match f {
            Value::Function(name) => call_function(self.target, name, args, offset),
            Value::Method(receiver, name) => call_method(*receiver, &name, args, offset),
            other => Err(error(
                format!("TypeError: '{}' object is not callable", other.type_name()),
                offset,
            )),
        }
    }
}

fn builtin_name(name: &str) -> &'static str {
    const BUILTINS: [&str; 15] = [
        "int",
        "str",
        "len",
        "bool",
        "tuple",
        "list",
        "any",
        "all",
        "min",
        "max",
        "open",
        "isinstance",
        "sorted",
        "chr",
        "ord",
    ];
    BUILTINS
        .iter()
        .find(|b| **b == name)
        .copied()
        .unwrap_or("len")
}

fn qualified(module: &str, function: &str) -> Option<&'static str> {
    const FUNCTIONS: [&str; 14] = [
        "platform.machine",
        "platform.system",
        "platform.release",
        "platform.version",
        "platform.python_version",
        "platform.python_implementation",
        "platform.freedesktop_os_release",
        "os.path.isdir",
        "os.path.isfile",
        "os.path.exists",
        "os.path.join",
        "os.access",
        "os.getenv",
        "os.environ.get",
    ];
    let full = format!("{module}.{function}");
    FUNCTIONS.iter().find(|f| **f == full).copied()
}

fn is_method(receiver: &Value, name: &str) -> bool {
    match receiver {
        Value::Str(_) => matches!(
            name,
            "split"
                | "rsplit"
                | "strip"
                | "lstrip"
                | "rstrip"
                | "startswith"
                | "endswith"
                | "lower"
                | "upper"
                | "replace"
                | "splitlines"
                | "isdigit"
                | "find"
                | "count"
        ),
        Value::Dict(_) => matches!(name, "get" | "keys" | "values" | "items"),
        Value::File(_) => name == "read",
        Value::List(_) => matches!(name, "count" | "index"),
        _ => false,
    }
}

fn arity(name: &str, args: &[Value], min: usize, max: usize, offset: usize) -> Result<()> {
    if args.len() < min || args.len() > max {
        return Err(error(
            format!(
                "TypeError: {name}() takes from {min} to {max} arguments ({} given)",
                args.len()
            ),
            offset,
        ));
    }
    Ok(())
}

fn str_arg<'a>(name: &str, v: &'a Value, offset: usize) -> Result<&'a str> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(error(
            format!(
                "TypeError: {name}() argument must be str, not {}",
                other.type_name()
            ),
            offset,
        )),
    }
}

fn call_function(target: &Target, name: &str, args: Vec<Value>, offset: usize) -> Result<Value> {
    let no_args = |args: &[Value]| arity(name, args, 0, 0, offset);
    match name {
        "platform.machine" => no_args(&args).map(|_| Value::Str(target.machine.clone())),
        "platform.system" => no_args(&args).map(|_| Value::Str(target.platform_system())),
        "platform.release" => no_args(&args).map(|_| Value::Str(host::kernel_release())),
        "platform.version" => no_args(&args).map(|_| Value::Str(host::kernel_version())),
        "platform.python_version" => {
            no_args(&args).map(|_| Value::Str(target.python_full_version()))
        }
        "platform.python_implementation" => {
            no_args(&args).map(|_| Value::Str(target.implementation.display_name().into()))
        }
        "platform.freedesktop_os_release" => {
            no_args(&args)?;
            let info = host::os_release().map_err(|m| error(format!("OSError: {m}"), offset))?;
            Ok(Value::Dict(
                info.into_iter()
                    .map(|(k, v)| (Value::Str(k), Value::Str(v)))
                    .collect(),
            ))
        }
        "os.path.isdir" | "os.path.isfile" | "os.path.exists" => {
            arity(name, &args, 1, 1, offset)?;
            let path = str_arg(name, &args[0], offset)?;
            let meta = std::fs::metadata(path);
            Ok(Value::Bool(match name {
                "os.path.isdir" => meta.is_ok_and(|m| m.is_dir()),
                "os.path.isfile" => meta.is_ok_and(|m| m.is_file()),
                _ => meta.is_ok(),
            }))
        }
        "os.path.join" => {
            let mut out = String::new();
            for a in &args {
                out = crate::pystr::path_join(&out, str_arg(name, a, offset)?);
            }
            Ok(Value::Str(out))
        }
        "os.access" => {
            arity(name, &args, 2, 2, offset)?;
            let path = str_arg(name, &args[0], offset)?;
            let mode = args[1]
                .as_int()
                .ok_or_else(|| error("TypeError: mode must be an int", offset))?;
            Ok(Value::Bool(host::access(path, mode)))
        }
        "os.getenv" | "os.environ.get" => {
            arity(name, &args, 1, 2, offset)?;
            let key = str_arg(name, &args[0], offset)?;
            Ok(match std::env::var(key) {
                Ok(v) => Value::Str(v),
                Err(_) => args.get(1).cloned().unwrap_or(Value::None),
            })
        }
        "open" => {
            arity(name, &args, 1, 2, offset)?;
            let path = str_arg(name, &args[0], offset)?;
            if let Some(mode) = args.get(1) {
                if str_arg(name, mode, offset)? != "r" {
                    return Err(error(
                        "ValueError: only open(path) for reading is supported",
                        offset,
                    ));
                }
            }
            host::read_regular_file(path)
                .map(|_| Value::File(path.to_owned()))
                .map_err(|m| error(format!("FileNotFoundError: {m}"), offset))
        }
        _ => builtin(name, args, offset),
    }
}

fn builtin(name: &str, args: Vec<Value>, offset: usize) -> Result<Value> {
    match name {
        "int" => {
            arity(name, &args, 0, 2, offset)?;
            let base = match args.get(1) {
                Some(b) => b
                    .as_int()
                    .ok_or_else(|| error("TypeError: base must be an int", offset))?,
                None => 10,
            };
            match args.first() {
                None => Ok(Value::Int(0)),
                Some(Value::Str(s)) => {
                    let t = s.trim().replace('_', "");
                    let radix = u32::try_from(base).ok().filter(|b| (2..=36).contains(b));
                    radix
                        .and_then(|r| i64::from_str_radix(&t, r).ok())
                        .map(Value::Int)
                        .ok_or_else(|| {
                            error(
                                format!(
                                    "ValueError: invalid literal for int() with base {base}: {}",
                                    repr_str(s)
                                ),
                                offset,
                            )
                        })
                }
                Some(v) => v.as_int().map(Value::Int).ok_or_else(|| {
                    error(
                        format!(
                            "TypeError: int() argument must be a string or a number, not '{}'",
                            v.type_name()
                        ),
                        offset,
                    )
                }),
            }
        }
        "chr" => {
            arity(name, &args, 1, 1, offset)?;
            args[0]
                .as_int()
                .and_then(|i| u32::try_from(i).ok())
                .and_then(char::from_u32)
                .map(|c| Value::Str(c.to_string()))
                .ok_or_else(|| error("ValueError: chr() arg not in range(0x110000)", offset))
        }
        "ord" => {
            arity(name, &args, 1, 1, offset)?;
            let s = str_arg(name, &args[0], offset)?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Value::Int(i64::from(u32::from(c)))),
                _ => Err(error("TypeError: ord() expected a character", offset)),
            }
        }
        "str" => {
            arity(name, &args, 0, 1, offset)?;
            Ok(Value::Str(args.first().map(to_str).unwrap_or_default()))
        }
        "bool" => {
            arity(name, &args, 0, 1, offset)?;
            Ok(Value::Bool(args.first().is_some_and(Value::truthy)))
        }
        "len" => {
            arity(name, &args, 1, 1, offset)?;
            let n = match &args[0] {
                Value::Str(s) => s.chars().count(),
                Value::Dict(d) => d.len(),
                other => iterate(other, offset)?.len(),
            };
            Ok(Value::Int(n as i64))
        }
        "tuple" | "list" | "sorted" => {
            arity(name, &args, 0, 1, offset)?;
            let mut items = match args.first() {
                Some(v) => iterate(v, offset)?,
                None => Vec::new(),
            };
            if name == "sorted" {
                let mut failure = None;
                items.sort_by(|a, b| match py_lt(a, b, "<", offset) {
                    Ok(true) => std::cmp::Ordering::Less,
                    Ok(false) => match py_lt(b, a, "<", offset) {
                        Ok(true) => std::cmp::Ordering::Greater,
                        _ => std::cmp::Ordering::Equal,
                    },
                    Err(e) => {
                        failure.get_or_insert(e);
                        std::cmp::Ordering::Equal
                    }
                });
                if let Some(e) = failure {
                    return Err(e);
                }
            }
            Ok(if name == "tuple" {
                Value::Tuple(items)
            } else {
                Value::List(items)
            })
        }
        "any" | "all" => {
            arity(name, &args, 1, 1, offset)?;
            let items = iterate(&args[0], offset)?;
            Ok(Value::Bool(if name == "any" {
                items.iter().any(Value::truthy)
            } else {
                items.iter().all(Value::truthy)
            }))
        }
        "min" | "max" => {
            let items = if args.len() == 1 {
                iterate(&args[0], offset)?
            } else {
                args
            };
            let mut best: Option<Value> = None;
            for item in items {
                best = Some(match best {
                    None => item,
                    Some(b) => {
                        let better = if name == "min" {
                            py_lt(&item, &b, "<", offset)?
                        } else {
                            py_lt(&b, &item, ">", offset)?
                        };
                        if better {
                            item
                        } else {
                            b
                        }
                    }
                });
            }
            best.ok_or_else(|| {
                error(
                    format!("ValueError: {name}() arg is an empty sequence"),
                    offset,
                )
            })
        }
        _ => Err(error(
            format!("TypeError: {name}() is not supported"),
            offset,
        )),
    }
}

fn to_str(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => s.clone(),
        Value::Tuple(items) | Value::VersionInfo(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            if items.len() == 1 {
                format!("({},)", inner[0])
            } else {
                format!("({})", inner.join(", "))
            }
        }
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Dict(items) => format!(
            "{{{}}}",
            items
                .iter()
                .map(|(k, v)| format!("{}: {}", repr(k), repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("<{}>", other.type_name()),
    }
}

fn repr(v: &Value) -> String {
    match v {
        Value::Str(s) => repr_str(s),
        other => to_str(other),
    }
}

fn iterate(v: &Value, offset: usize) -> Result<Vec<Value>> {
    match v {
        Value::Str(s) => Ok(s.chars().map(|c| Value::Str(c.to_string())).collect()),
        Value::Dict(d) => Ok(d.iter().map(|(k, _)| k.clone()).collect()),
        other => other.items().map(<[Value]>::to_vec).ok_or_else(|| {
            error(
                format!("TypeError: '{}' object is not iterable", other.type_name()),
                offset,
            )
        }),
    }
}

fn call_method(receiver: Value, name: &str, args: Vec<Value>, offset: usize) -> Result<Value> {
    let strs = |items: Vec<&str>| {
        Value::List(
            items
                .into_iter()
                .map(|s| Value::Str(s.to_owned()))
                .collect(),
        )
    };
    match receiver {
        Value::File(path) => {
            arity(name, &args, 0, 0, offset)?;
            let bytes = host::read_regular_file(&path)
                .map_err(|m| error(format!("OSError: {m}"), offset))?;
            Ok(Value::Str(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Value::Dict(items) => match name {
            "get" => {
                arity(name, &args, 1, 2, offset)?;
                Ok(items
                    .iter()
                    .find(|(k, _)| py_eq(k, &args[0]))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| args.get(1).cloned().unwrap_or(Value::None)))
            }
            "keys" => Ok(Value::List(items.into_iter().map(|(k, _)| k).collect())),
            "values" => Ok(Value::List(items.into_iter().map(|(_, v)| v).collect())),
            _ => Ok(Value::List(
                items
                    .into_iter()
                    .map(|(k, v)| Value::Tuple(vec![k, v]))
                    .collect(),
            )),
        },
        Value::List(items) => {
            arity(name, &args, 1, 1, offset)?;
            let position = items.iter().position(|v| py_eq(v, &args[0]));
            match name {
                "count" => Ok(Value::Int(
                    items.iter().filter(|v| py_eq(v, &args[0])).count() as i64,
                )),
                _ => position
                    .map(|p| Value::Int(p as i64))
                    .ok_or_else(|| error("ValueError: item is not in list", offset)),
            }
        }
        Value::Str(s) => {
            let arg = |i: usize| -> Result<Option<&str>> {
                match args.get(i) {
                    None | Some(Value::None) => Ok(None),
                    Some(v) => str_arg(name, v, offset).map(Some),
                }
            };
            match name {
                "split" | "rsplit" => {
                    arity(name, &args, 0, 2, offset)?;
                    let max = match args.get(1) {
                        Some(v) => v
                            .as_int()
                            .ok_or_else(|| error("TypeError: maxsplit must be an int", offset))?,
                        None => -1,
                    };
                    let max = usize::try_from(max).ok();
                    let parts: Vec<&str> = match (arg(0)?, max, name) {
                        (Some(""), _, _) => {
                            return Err(error("ValueError: empty separator", offset))
                        }
                        (Some(sep), None, _) => s.split(sep).collect(),
                        (Some(sep), Some(n), "split") => s.splitn(n + 1, sep).collect(),
                        (Some(sep), Some(n), _) => {
                            let mut v: Vec<&str> = s.rsplitn(n + 1, sep).collect();
                            v.reverse();
                            v
                        }
                        (None, _, _) => crate::pystr::split_whitespace(&s).collect(),
                    };
                    Ok(strs(parts))
                }
                "strip" | "lstrip" | "rstrip" => {
                    arity(name, &args, 0, 1, offset)?;
                    let chars: Option<Vec<char>> = arg(0)?.map(|c| c.chars().collect());
                    let pat = |c: char| match &chars {
                        Some(set) => set.contains(&c),
                        None => crate::pystr::is_space(c),
                    };
                    Ok(Value::Str(
                        match name {
                            "strip" => s.trim_matches(pat),
                            "lstrip" => s.trim_start_matches(pat),
                            _ => s.trim_end_matches(pat),
                        }
                        .to_owned(),
                    ))
                }
                "startswith" | "endswith" => {
                    arity(name, &args, 1, 1, offset)?;
                    let prefixes: Vec<String> = match &args[0] {
                        Value::Tuple(items) => items.iter().map(to_str).collect(),
                        v => vec![str_arg(name, v, offset)?.to_owned()],
                    };
                    Ok(Value::Bool(prefixes.iter().any(|p| {
                        if name == "startswith" {
                            s.starts_with(p.as_str())
                        } else {
                            s.ends_with(p.as_str())
                        }
                    })))
                }
                "lower" => Ok(Value::Str(s.to_lowercase())),
                "upper" => Ok(Value::Str(s.to_uppercase())),
                "isdigit" => Ok(Value::Bool(
                    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()),
                )),
                "splitlines" => Ok(strs(s.lines().collect())),
                "replace" => {
                    arity(name, &args, 2, 2, offset)?;
                    let (from, to) = (arg(0)?.unwrap_or(""), arg(1)?.unwrap_or(""));
                    let out = s.replace(from, to);
                    if out.len() > MAX_STR {
                        return Err(error("MemoryError: string too long", offset));
                    }
                    Ok(Value::Str(out))
                }
                "find" => {
                    arity(name, &args, 1, 1, offset)?;
                    let needle = arg(0)?.unwrap_or("");
                    Ok(Value::Int(
                        s.find(needle).map_or(-1, |i| s[..i].chars().count() as i64),
                    ))
                }
                _ => {
                    arity(name, &args, 1, 1, offset)?;
                    Ok(Value::Int(s.matches(arg(0)?.unwrap_or("")).count() as i64))
                }
            }
        }
        other => Err(error(
            format!("TypeError: '{}' has no method {name}", other.type_name()),
            offset,
        )),
    }
}

fn binary(op: &str, a: Value, b: Value, offset: usize) -> Result<Value> {
    let overflow = || error("OverflowError: integer too large", offset);
    let unsupported = |a: &Value, b: &Value| {
        error(
            format!(
                "TypeError: unsupported operand type(s) for {op}: '{}' and '{}'",
                a.type_name(),
                b.type_name()
            ),
            offset,
        )
    };
    if let (Some(x), Some(y)) = (a.as_int(), b.as_int()) {
        let zero = || error("ZeroDivisionError: division by zero", offset);
        return match op {
            "+" => x.checked_add(y).map(Value::Int).ok_or_else(overflow),
            "-" => x.checked_sub(y).map(Value::Int).ok_or_else(overflow),
            "*" => x.checked_mul(y).map(Value::Int).ok_or_else(overflow),
            "%" if y == 0 => Err(zero()),
            "%" => Ok(Value::Int(
                x.rem_euclid(y) + if y < 0 && x.rem_euclid(y) != 0 { y } else { 0 },
            )),
            "//" if y == 0 => Err(zero()),
            "//" => Ok(Value::Int(
                x.div_euclid(y) - if y < 0 && x.rem_euclid(y) != 0 { 1 } else { 0 },
            )),
            _ => Err(error(
                format!("TypeError: operator '{op}' is not supported"),
                offset,
            )),
        };
    }
    let sized = |len: usize| {
        if len > MAX_STR.max(MAX_ITEMS) {
            Err(error("MemoryError: value too large", offset))
        } else {
            Ok(())
        }
    };
    match (op, a, b) {
        ("+", Value::Str(x), Value::Str(y)) => {
            sized(x.len() + y.len())?;
            Ok(Value::Str(x + &y))
        }
        ("+", Value::List(mut x), Value::List(y)) => {
            sized(x.len() + y.len())?;
            x.extend(y);
            Ok(Value::List(x))
        }
        ("+", Value::Tuple(mut x), Value::Tuple(y)) => {
            sized(x.len() + y.len())?;
            x.extend(y);
            Ok(Value::Tuple(x))
        }
        ("*", Value::Str(x), n) | ("*", n @ Value::Int(_), Value::Str(x)) => match n.as_int() {
            Some(k) => {
                let k = usize::try_from(k).unwrap_or(0);
                sized(x.len().saturating_mul(k))?;
                Ok(Value::Str(x.repeat(k)))
            }
            None => Err(unsupported(&Value::Str(x), &n)),
        },
        (_, a, b) => Err(unsupported(&a, &b)),
    }
}

fn normalise_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { i + len } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

fn index_value(target: &Value, index: &Value, offset: usize) -> Result<Value> {
    if let Value::Dict(items) = target {
        return items
            .iter()
            .find(|(k, _)| py_eq(k, index))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| error(format!("KeyError: {}", repr(index)), offset));
    }
    let i = index.as_int().ok_or_else(|| {
        error(
            format!(
                "TypeError: {} indices must be integers, not {}",
                target.type_name(),
                index.type_name()
            ),
            offset,
        )
    })?;
    match target {
        Value::Str(s) => {
            let chars: Vec<char> = s.chars().collect();
            normalise_index(i, chars.len())
                .map(|i| Value::Str(chars[i].to_string()))
                .ok_or_else(|| error("IndexError: string index out of range", offset))
        }
        other => match other.items() {
            Some(items) => normalise_index(i, items.len())
                .map(|i| items[i].clone())
                .ok_or_else(|| {
                    error(
                        format!("IndexError: {} index out of range", other.type_name()),
                        offset,
                    )
                }),
            None => Err(error(
                format!(
                    "TypeError: '{}' object is not subscriptable",
                    other.type_name()
                ),
                offset,
            )),
        },
    }
}

fn slice_bounds(
    lower: Option<&Value>,
    upper: Option<&Value>,
    len: usize,
    offset: usize,
) -> Result<(usize, usize)> {
    let bound = |v: Option<&Value>, default: usize| -> Result<usize> {
        match v {
            None | Some(Value::None) => Ok(default),
            Some(v) => {
                let i = v
                    .as_int()
                    .ok_or_else(|| error("TypeError: slice indices must be integers", offset))?;
                let n = len as i64;
                Ok((if i < 0 { (i + n).max(0) } else { i.min(n) }) as usize)
            }
        }
    };
    let (lo, hi) = (bound(lower, 0)?, bound(upper, len)?);
    Ok((lo, hi.max(lo)))
}

fn slice_value(
    target: &Value,
    lower: Option<&Value>,
    upper: Option<&Value>,
    offset: usize,
) -> Result<Value> {
    match target {
        Value::Str(s) => {
            let chars: Vec<char> = s.chars().collect();
            let (lo, hi) = slice_bounds(lower, upper, chars.len(), offset)?;
            Ok(Value::Str(chars[lo..hi].iter().collect()))
        }
        Value::List(items) => {
            let (lo, hi) = slice_bounds(lower, upper, items.len(), offset)?;
            Ok(Value::List(items[lo..hi].to_vec()))
        }
        other => match other.items() {
            Some(items) => {
                let (lo, hi) = slice_bounds(lower, upper, items.len(), offset)?;
                Ok(Value::Tuple(items[lo..hi].to_vec()))
            }
            None => Err(error(
                format!(
                    "TypeError: '{}' object is not subscriptable",
                    other.type_name()
                ),
                offset,
            )),
        },
    }
}

/// A Python literal (what `ast.literal_eval` reads: `None`, booleans, integers, strings, lists,
/// tuples, dicts) as JSON: SlapOS buildout's serialised option values (`!py!<repr>`). `None`
/// when `text` is not one.
pub fn literal(text: &str) -> Option<serde_json::Value> {
    let (ast, offset) = parse(text).ok()?;
    let target = Target::default();
    let mut evaluator = Evaluator {
        target: &target,
        locals: Vec::new(),
    };
    to_json(&evaluator.eval(&ast, offset).ok()?)
}

fn to_json(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::None => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Str(s) => s.clone().into(),
        Value::Tuple(items) | Value::List(items) => {
            serde_json::Value::Array(items.iter().map(to_json).collect::<Option<Vec<_>>>()?)
        }
        Value::Dict(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| match k {
                    Value::Str(k) => Some((k.clone(), to_json(v)?)),
                    _ => None,
                })
                .collect::<Option<serde_json::Map<_, _>>>()?,
        ),
        _ => return None,
    })
}

/// Evaluates `"[" + expression + "]"` and returns the truth of its first element.
pub(super) fn evaluate(expression: &str, target: &Target) -> Result<bool> {
    let code = format!("[{expression}]");
    let shift = |mut e: ConditionError| {
        e.offset = e.offset.map(|o| o.saturating_sub(1).min(expression.len()));
        e
    };
    let (ast, offset) = parse(&code).map_err(shift)?;
    let mut evaluator = Evaluator {
        target,
        locals: Vec::new(),
    };
    let value = evaluator.eval(&ast, offset).map_err(shift)?;
    match value {
        Value::List(items) => match items.first() {
            Some(first) => Ok(first.truthy()),
            None => Err(ConditionError {
                message: "IndexError: list index out of range".into(),
                offset: None,
            }),
        },
        _ => Ok(value.truthy()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expr: &str) -> std::result::Result<bool, String> {
        evaluate(expr, &Target::default()).map_err(|e| e.message)
    }

    fn eval_for(expr: &str, key: &str, value: &str) -> std::result::Result<bool, String> {
        let mut t = Target::default();
        t.set(key, value).map_err(|e| e.to_string())?;
        evaluate(expr, &t).map_err(|e| e.message)
    }

    #[test]
    fn serialised_dicts_read_back_as_zc_buildout_dumps_writes_them() {
        // `dumps(section dict)` in cloudooo's instance profile
        assert_eq!(
            literal("{'port': '8000', 'ssl': {}, 'list': [1, None], 'port': '9'}"),
            Some(serde_json::json!({"port": "9", "ssl": {}, "list": [1, null]}))
        );
        assert_eq!(literal("{1, 2}"), None);
        assert_eq!(literal("{'a': 1"), None);
    }

    #[test]
    fn corpus_expressions_on_the_default_target() {
        assert_eq!(eval("python2"), Ok(false));
        assert_eq!(eval("python3"), Ok(true));
        assert_eq!(eval("python27"), Ok(false));
        assert_eq!(eval("python311"), Ok(true));
        assert_eq!(eval("pypy"), Ok(false));
        assert_eq!(eval("posix"), Ok(true));
        assert_eq!(eval("bits32"), Ok(false));
        assert_eq!(
            eval(r#"linux and platform.machine() == "x86_64""#),
            Ok(true)
        );
        assert_eq!(eval("linux and platform.machine() == 'i686'"), Ok(false));
        assert_eq!(
            eval(r#"not (linux and platform.machine() == "x86_64")"#),
            Ok(false)
        );
        assert_eq!(
            eval("not linux or platform.machine() != 'riscv64'"),
            Ok(true)
        );
        assert_eq!(eval("platform.machine() == 'aarch64'"), Ok(false));
        assert_eq!(eval("pypy or sys.version_info >= (3,13)"), Ok(false));
        assert_eq!(eval("sys.version_info < (3,8)"), Ok(false));
        assert_eq!(eval("sys.version_info < (3,11,8)"), Ok(true));
        assert!(eval("supervisor").is_err_and(|m| m.contains("NameError")));
    }

    #[test]
    fn host_dependent_expressions_evaluate() {
        let release: Vec<i64> = host::kernel_release()
            .split('.')
            .take(2)
            .filter_map(|q| q.parse().ok())
            .collect();
        let want = release < vec![4, 14];
        assert_eq!(
            eval(r#"[int(q) for q in platform.release().split(".")[:2]]<[4,14]"#),
            Ok(want)
        );
        assert!(eval(
            "os.path.isdir('/usr/lib/arm-linux-gnueabihf') and os.access('/proc/device-tree/model', os.R_OK) and 'OLinuXino' in open('/proc/device-tree/model').read()"
        )
        .is_ok());
        assert!(eval("sys.version_info < (3, 10) or (platform.freedesktop_os_release()['ID'] == 'debian' and int(platform.freedesktop_os_release()['VERSION_ID']) < 12)").is_ok());
    }

    #[test]
    fn other_targets() {
        assert_eq!(eval_for("python2", "python", "2.7"), Ok(true));
        assert_eq!(eval_for("python27", "python", "2.7"), Ok(true));
        assert_eq!(
            eval_for("sys.version_info < (3,8)", "python", "2.7"),
            Ok(true)
        );
        assert_eq!(eval_for("bits32", "bits", "32"), Ok(true));
        assert_eq!(
            eval_for("platform.machine() == 'aarch64'", "machine", "aarch64"),
            Ok(true)
        );
        assert_eq!(eval_for("pypy", "implementation", "pypy"), Ok(true));
    }

    #[test]
    fn truthiness_and_first_element() {
        assert_eq!(eval("0"), Ok(false));
        assert_eq!(eval("''"), Ok(false));
        assert_eq!(eval("'a'"), Ok(true));
        assert_eq!(eval("[]"), Ok(false));
        assert_eq!(eval("python2, python3"), Ok(false));
        assert_eq!(eval("python3, python2"), Ok(true));
        assert!(eval(" ").is_err_and(|m| m.contains("IndexError")));
        assert_eq!(eval("1 if python3 else 0"), Ok(true));
    }

    #[test]
    fn python_semantics() {
        assert_eq!(eval("1 < 2 < 3"), Ok(true));
        assert_eq!(eval("3 > 2 > 2"), Ok(false));
        assert_eq!(eval("(3,) == (3,)"), Ok(true));
        assert_eq!(eval("[1, 2] < [1, 2, 0]"), Ok(true));
        assert_eq!(eval("'b' in 'abc' and 'd' not in 'abc'"), Ok(true));
        assert_eq!(eval("None is None"), Ok(true));
        assert_eq!(eval("'a\\x23b'[1] == '#'"), Ok(true));
        assert_eq!(eval("sys.version_info.major == 3"), Ok(true));
        assert_eq!(eval("'a.b.c'.split('.')[-1] == 'c'"), Ok(true));
        assert_eq!(eval("len('abc') - 3"), Ok(false));
        assert_eq!(eval("True == 1"), Ok(true));
    }

    #[test]
    fn errors_not_panics() {
        assert!(eval("1 < 'a'").is_err_and(|m| m.contains("TypeError")));
        assert!(eval("(1").is_err_and(|m| m.contains("SyntaxError")));
        assert!(eval("lambda: 1").is_err());
        assert!(eval("2 ** 3").is_err());
        assert!(eval("'unterminated").is_err());
        // a dict literal is read (serialised `!py!{...}` values); a set literal is not
        assert_eq!(eval("{1: 2}"), Ok(true));
        assert!(eval("{1, 2}").is_err());
        assert!(
            eval("open('/nonexistent/x').read()").is_err_and(|m| m.contains("FileNotFoundError"))
        );
        assert!(eval("9223372036854775807 + 1").is_err_and(|m| m.contains("OverflowError")));
        assert!(eval("'a' * 100000000").is_err_and(|m| m.contains("MemoryError")));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(eval(&deep).is_err());
        let sums = format!("1{}", "+1".repeat(10_000));
        assert!(eval(&sums).is_err());
        let calls = format!("'a'{}", ".lower()".repeat(10_000));
        assert!(eval(&calls).is_err());
        let nots = format!("{}1", "not ".repeat(10_000));
        assert!(eval(&nots).is_err());
        let negs = format!("{}1", "-".repeat(10_000));
        assert!(eval(&negs).is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(
            decode_escapes(r"a\x23b\n\'").ok().as_deref(),
            Some("a#b\n'")
        );
        assert_eq!(decode_escapes(r"\q").ok().as_deref(), Some("\\q"));
        assert!(decode_escapes("a\\").is_err());
        assert!(decode_escapes(r"\x2").is_err());
    }
}
