//! The wire format of the Python bridge: Python's `marshal` format, version 2 (no references),
//! for the few types messages use. `marshal` is built into the interpreter, so the bridge starts
//! without importing `json` (which costs more than the rest of its start-up).
//!
//! Invariant: what [`write`] produces, Python's `marshal.load` reads, and [`read`] reads what
//! `marshal.dump(obj, file, 2)` writes for `None`, bools, ints, str, list, tuple and dict.

use std::io::{self, Read, Write};

/// A value crossing the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A dict with string keys.
    pub fn dict<const N: usize>(items: [(&str, Value); N]) -> Value {
        Value::Dict(items.into_iter().map(|(k, v)| (Value::str(k), v)).collect())
    }

    /// The value of a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The string at `key`, or "".
    pub fn text(&self, key: &str) -> &str {
        self.get(key).and_then(Value::as_str).unwrap_or_default()
    }
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

fn write_len(out: &mut Vec<u8>, n: usize) -> io::Result<()> {
    let n = i32::try_from(n).map_err(|_| bad("object too large"))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn encode(value: &Value, out: &mut Vec<u8>) -> io::Result<()> {
    match value {
        Value::None => out.push(b'N'),
        Value::Bool(true) => out.push(b'T'),
        Value::Bool(false) => out.push(b'F'),
        Value::Int(i) => match i32::try_from(*i) {
            Ok(small) => {
                out.push(b'i');
                out.extend_from_slice(&small.to_le_bytes());
            }
            Err(_) => return Err(bad("integer out of range")),
        },
        Value::Str(s) => {
            out.push(b'u');
            write_len(out, s.len())?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::List(items) => {
            out.push(b'[');
            write_len(out, items.len())?;
            for item in items {
                encode(item, out)?;
            }
        }
        Value::Dict(items) => {
            out.push(b'{');
            for (k, v) in items {
                encode(k, out)?;
                encode(v, out)?;
            }
            out.push(b'0');
        }
    }
    Ok(())
}

/// Writes one value.
pub fn write(w: &mut impl Write, value: &Value) -> io::Result<()> {
    let mut out = Vec::new();
    encode(value, &mut out)?;
    w.write_all(&out)?;
    w.flush()
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn read_i32(r: &mut impl Read) -> io::Result<i32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(i32::from_le_bytes(b))
}

fn read_len(r: &mut impl Read) -> io::Result<usize> {
    usize::try_from(read_i32(r)?).map_err(|_| bad("negative length"))
}

/// Reads one value (`None` at the top level: `Dict` end marker is an error there).
pub fn read(r: &mut impl Read) -> io::Result<Value> {
    read_depth(r, 0)?.ok_or_else(|| bad("unexpected end marker"))
}

fn read_depth(r: &mut impl Read, depth: usize) -> io::Result<Option<Value>> {
    if depth > 64 {
        return Err(bad("nesting too deep"));
    }
    let code = read_u8(r)? & 0x7f;
    Ok(Some(match code {
        b'0' => return Ok(None),
        b'N' => Value::None,
        b'T' => Value::Bool(true),
        b'F' => Value::Bool(false),
        b'i' => Value::Int(i64::from(read_i32(r)?)),
        b'u' | b't' | b'a' | b'A' => {
            let n = read_len(r)?;
            let mut bytes = vec![0; n];
            r.read_exact(&mut bytes)?;
            Value::Str(String::from_utf8_lossy(&bytes).into_owned())
        }
        b'z' | b'Z' => {
            let n = usize::from(read_u8(r)?);
            let mut bytes = vec![0; n];
            r.read_exact(&mut bytes)?;
            Value::Str(String::from_utf8_lossy(&bytes).into_owned())
        }
        b'[' | b'(' | b'<' | b'>' => {
            let n = read_len(r)?;
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(read_depth(r, depth + 1)?.ok_or_else(|| bad("end marker in list"))?);
            }
            Value::List(items)
        }
        b')' => {
            let n = usize::from(read_u8(r)?);
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read_depth(r, depth + 1)?.ok_or_else(|| bad("end marker in tuple"))?);
            }
            Value::List(items)
        }
        b'{' => {
            let mut items = Vec::new();
            while let Some(k) = read_depth(r, depth + 1)? {
                let v = read_depth(r, depth + 1)?.ok_or_else(|| bad("dict key without value"))?;
                items.push((k, v));
            }
            Value::Dict(items)
        }
        other => {
            return Err(bad(&format!(
                "unsupported marshal type {:?}",
                other as char
            )))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = Value::dict([
            ("t", Value::str("get")),
            (
                "v",
                Value::List(vec![Value::str("é"), Value::None, Value::Int(-3)]),
            ),
            ("b", Value::Bool(true)),
        ]);
        let mut buf = Vec::new();
        write(&mut buf, &v).ok();
        assert_eq!(read(&mut buf.as_slice()).ok(), Some(v));
    }

    #[test]
    fn reads_what_python_writes() {
        // marshal.dumps({'t': 'ok', 'v': None}, 2)
        let bytes = b"{u\x01\x00\x00\x00tu\x02\x00\x00\x00oku\x01\x00\x00\x00vN0";
        let v = read(&mut bytes.as_slice()).ok();
        assert_eq!(v.as_ref().map(|v| v.text("t")), Some("ok"));
    }
}
