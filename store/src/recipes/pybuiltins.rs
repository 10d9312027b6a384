//! The Python builtins that `slapos.recipe.template:jinja2` puts in every template's context
//! (its `DEFAULT_CONTEXT`: `int`, `str`, `len`, `enumerate`, `sorted`, ...) and zc.buildout's
//! `dumps` (SlapOS's fork: a value serialised as `!py!<repr>`, which the fork's buildout reads
//! back as that value), as minijinja functions. Values follow Python's rules where templates
//! rely on them (`str(True)` is `True`, `repr` quotes as Python does); `isinstance`, `six` and
//! the rest that need Python's types are absent: a template calling them fails naming them.
//! A part's `import NAME MODULE` context entries get the modules of [`MODULES`]: `json`
//! (`dumps` as Python's, ASCII-only, `sort_keys` and `indent`; `loads`) and `os` (`os.path`'s
//! `join`, `basename`, `dirname`, `split`, `os.sep`, `os.pathsep`) and `re` (`escape`, as stack/monitor's CORS
//! template calls it).

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{from_args, Kwargs, Object, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

/// The modules an `import` context entry may name.
pub const MODULES: &[&str] = &["json", "os", "os.path", "re"];

/// How a context (JSON) marks an entry that is a module: `{"$python-module": "json"}`.
pub const MODULE_KEY: &str = "$python-module";

/// Adds the builtins to `env`.
pub fn add(env: &mut Environment) {
    env.add_function("int", int);
    env.add_function("float", float);
    env.add_function("str", |v: Value| Value::from(py_str(&v)));
    env.add_function("repr", |v: Value| Value::from(repr(&v)));
    env.add_function("bool", |v: Value| v.is_true());
    env.add_function("len", |v: Value| {
        v.len()
            .ok_or_else(|| bad(format!("object of type {} has no len()", v.kind())))
    });
    env.add_function("list", |v: Option<Value>| items(v).map(Value::from));
    env.add_function("tuple", |v: Option<Value>| items(v).map(Value::from));
    env.add_function("set", |v: Option<Value>| {
        let mut all = items(v)?;
        all.sort();
        all.dedup();
        Ok::<_, Error>(Value::from(all))
    });
    env.add_function("sorted", |v: Value| {
        let mut all = items(Some(v))?;
        all.sort();
        Ok::<_, Error>(Value::from(all))
    });
    env.add_function("reversed", |v: Value| {
        let mut all = items(Some(v))?;
        all.reverse();
        Ok::<_, Error>(Value::from(all))
    });
    env.add_function("enumerate", |v: Value, start: Option<i64>| {
        let start = start.unwrap_or(0);
        let all = items(Some(v))?;
        Ok::<_, Error>(Value::from(
            all.into_iter()
                .zip(start..)
                .map(|(item, i)| Value::from(vec![Value::from(i), item]))
                .collect::<Vec<_>>(),
        ))
    });
    env.add_function("zip", |lists: Rest<Value>| {
        let lists = lists
            .0
            .into_iter()
            .map(|l| items(Some(l)))
            .collect::<Result<Vec<_>, _>>()?;
        let n = lists.iter().map(Vec::len).min().unwrap_or(0);
        Ok::<_, Error>(Value::from(
            (0..n)
                .map(|i| Value::from(lists.iter().map(|l| l[i].clone()).collect::<Vec<_>>()))
                .collect::<Vec<_>>(),
        ))
    });
    env.add_function("min", |args: Rest<Value>| extreme(args.0, false));
    env.add_function("max", |args: Rest<Value>| extreme(args.0, true));
    env.add_function("any", |v: Value| {
        Ok::<_, Error>(items(Some(v))?.iter().any(Value::is_true))
    });
    env.add_function("all", |v: Value| {
        Ok::<_, Error>(items(Some(v))?.iter().all(Value::is_true))
    });
    env.add_function("sum", |v: Value, start: Option<i64>| {
        let mut total = start.unwrap_or(0);
        for item in items(Some(v))? {
            let n = item
                .as_i64()
                .ok_or_else(|| bad(format!("sum() of a {}", item.kind())))?;
            total = total.checked_add(n).ok_or_else(|| bad("sum() overflows"))?;
        }
        Ok::<_, Error>(total)
    });
    env.add_function("abs", |v: i64| {
        v.checked_abs().ok_or_else(|| bad("abs() overflows"))
    });
    env.add_function("hex", |v: i64| {
        if v < 0 {
            format!("-0x{:x}", v.unsigned_abs())
        } else {
            format!("0x{v:x}")
        }
    });
    env.add_function("oct", |v: i64| {
        if v < 0 {
            format!("-0o{:o}", v.unsigned_abs())
        } else {
            format!("0o{v:o}")
        }
    });
    env.add_function("chr", |v: u32| {
        char::from_u32(v)
            .map(String::from)
            .ok_or_else(|| bad(format!("chr() arg not in range: {v}")))
    });
    env.add_function("ord", |v: String| {
        let mut chars = v.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(u32::from(c)),
            _ => Err(bad("ord() expected a character")),
        }
    });
    env.add_function("dumps", |v: Value| format!("!py!{}", repr(&v)));
}

/// The context of a template: the JSON object's entries, those marked [`MODULE_KEY`] made
/// modules.
pub fn context(json: &serde_json::Value) -> Value {
    let serde_json::Value::Object(map) = json else {
        return Value::from_serialize(json);
    };
    let entries: BTreeMap<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let module = v
                .get(MODULE_KEY)
                .and_then(serde_json::Value::as_str)
                .and_then(|name| MODULES.iter().find(|m| **m == name));
            let value = match module {
                Some(name) => Value::from_object(Module(name)),
                None => Value::from_serialize(v),
            };
            (k.clone(), value)
        })
        .collect();
    Value::from(entries)
}

/// A Python module, by name.
/// Python's `os.path.split`: the head (trailing slashes removed unless it is all slashes) and
/// the part after the last slash.
fn path_split(p: &str) -> (&str, &str) {
    let (head, tail) = match p.rfind('/') {
        Some(i) => (&p[..=i], &p[i + 1..]),
        None => ("", p),
    };
    let trimmed = head.trim_end_matches('/');
    (if trimmed.is_empty() { head } else { trimmed }, tail)
}

#[derive(Debug)]
struct Module(&'static str);

impl Object for Module {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match (self.0, key.as_str()?) {
            ("os", "path") => Some(Value::from_object(Module("os.path"))),
            ("os" | "os.path", "sep") => Some(Value::from("/")),
            ("os" | "os.path", "pathsep") => Some(Value::from(":")),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match (self.0, method) {
            ("json", "dumps") => {
                let (value, kwargs): (Value, Kwargs) = from_args(args)?;
                let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
                let indent: Option<usize> = kwargs.get("indent")?;
                kwargs.assert_all_used()?;
                let json = serde_json::to_value(&value).map_err(|e| bad(e.to_string()))?;
                let mut out = String::new();
                json_dumps(&json, sort_keys.unwrap_or(false), indent, 0, &mut out);
                Ok(Value::from(out))
            }
            ("json", "loads") => {
                let (text,): (String,) = from_args(args)?;
                serde_json::from_str::<serde_json::Value>(&text)
                    .map(Value::from_serialize)
                    .map_err(|e| bad(format!("json.loads: {e}")))
            }
            ("os.path", "join") => {
                let (parts,): (Rest<String>,) = from_args(args)?;
                let mut path = String::new();
                for p in parts.0 {
                    if p.starts_with('/') {
                        path = p;
                    } else {
                        if !path.is_empty() && !path.ends_with('/') {
                            path.push('/');
                        }
                        path.push_str(&p);
                    }
                }
                Ok(Value::from(path))
            }
            ("os.path", "basename") => {
                let (p,): (String,) = from_args(args)?;
                Ok(Value::from(path_split(&p).1))
            }
            ("os.path", "dirname") => {
                let (p,): (String,) = from_args(args)?;
                Ok(Value::from(path_split(&p).0))
            }
            ("os.path", "split") => {
                let (p,): (String,) = from_args(args)?;
                let (head, tail) = path_split(&p);
                Ok(Value::from(vec![Value::from(head), Value::from(tail)]))
            }
            ("re", "escape") => {
                let (text,): (String,) = from_args(args)?;
                // Python 3.7's `re.escape`: its special characters only
                let mut out = String::with_capacity(text.len());
                for c in text.chars() {
                    if "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}".contains(c) {
                        out.push('\\');
                    }
                    out.push(c);
                }
                Ok(Value::from(out))
            }
            (module, _) => Err(bad(format!(
                "module `{module}` has no function `{method}` in slapstore's templates"
            ))),
        }
    }
}

/// Python's `json.dumps(v, sort_keys=sort)`, as recipes write JSON files.
pub fn dumps_json(v: &serde_json::Value, sort: bool) -> String {
    let mut out = String::new();
    json_dumps(v, sort, None, 0, &mut out);
    out
}

/// Python's `json.dumps` (`ensure_ascii`, separators `, ` and `: `, or `,` and newlines with
/// `indent`).
fn json_dumps(
    v: &serde_json::Value,
    sort: bool,
    indent: Option<usize>,
    depth: usize,
    out: &mut String,
) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let separator = if indent.is_some() { "," } else { ", " };
    match v {
        serde_json::Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
                    c => {
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                }
            }
            out.push('"');
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                json_dumps(item, sort, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        serde_json::Value::Object(map) if !map.is_empty() => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            if sort {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                json_dumps(
                    &serde_json::Value::String(k.clone()),
                    sort,
                    indent,
                    depth,
                    out,
                );
                out.push_str(": ");
                json_dumps(item, sort, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// `int(x)` and `int(text, base)`.
fn int(v: Value, base: Option<u32>) -> Result<Value, Error> {
    match v.kind() {
        ValueKind::Bool => Ok(Value::from(i64::from(v.is_true()))),
        ValueKind::Number => match v.as_i64() {
            Some(i) => Ok(Value::from(i)),
            None => f64::try_from(v.clone())
                .map(|f| Value::from(f.trunc() as i64))
                .map_err(|_| bad(format!("int() of {v}"))),
        },
        ValueKind::String => {
            let text = v.as_str().unwrap_or_default().trim().replace('_', "");
            let base = base.unwrap_or(10);
            let digits = match base {
                16 => text.trim_start_matches("0x").trim_start_matches("0X"),
                8 => text.trim_start_matches("0o").trim_start_matches("0O"),
                2 => text.trim_start_matches("0b").trim_start_matches("0B"),
                _ => text.as_str(),
            };
            i64::from_str_radix(digits, base)
                .map(Value::from)
                .map_err(|_| bad(format!("invalid literal for int() with base {base}: {v:?}")))
        }
        _ => Err(bad(format!(
            "int() argument must be a string or a number, not {}",
            v.kind()
        ))),
    }
}

fn float(v: Value) -> Result<Value, Error> {
    if let Some(text) = v.as_str() {
        return text
            .trim()
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| bad(format!("could not convert string to float: {text:?}")));
    }
    if v.kind() == ValueKind::Bool {
        return Ok(Value::from(if v.is_true() { 1.0 } else { 0.0 }));
    }
    f64::try_from(v.clone())
        .map(Value::from)
        .map_err(|_| bad(format!("float() of {}", v.kind())))
}

/// The items of an iterable (a map's keys, a string's characters); none for `None`.
fn items(v: Option<Value>) -> Result<Vec<Value>, Error> {
    match v {
        None => Ok(Vec::new()),
        Some(v) if v.kind() == ValueKind::String => Ok(v
            .as_str()
            .unwrap_or_default()
            .chars()
            .map(|c| Value::from(c.to_string()))
            .collect()),
        Some(v) => Ok(v.try_iter()?.collect()),
    }
}

/// `min`/`max` of the arguments, or of the one iterable given.
fn extreme(args: Vec<Value>, max: bool) -> Result<Value, Error> {
    let all = match <[Value; 1]>::try_from(args) {
        Ok([one]) => items(Some(one))?,
        Err(args) => args,
    };
    let pick = if max {
        all.into_iter().max()
    } else {
        all.into_iter().min()
    };
    pick.ok_or_else(|| bad("min()/max() of an empty sequence"))
}

/// Python's `str()`.
fn py_str(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_owned(),
        _ => repr(v),
    }
}

/// Python's `repr()` of JSON data (what SlapOS's buildout serialises as `!py!<repr>`).
pub fn repr_json(v: &serde_json::Value) -> String {
    repr(&Value::from_serialize(v))
}

/// Python's `repr()` of the value (JSON-like data: None, bools, numbers, strings, lists, dicts).
pub fn repr(v: &Value) -> String {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => "None".into(),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.into(),
        ValueKind::Number => match v.as_i64() {
            Some(i) => i.to_string(),
            None => f64::try_from(v.clone())
                .map(|f| format!("{f:?}"))
                .unwrap_or_else(|_| v.to_string()),
        },
        ValueKind::String => crate::pyrepr::repr(v.as_str().unwrap_or_default()),
        ValueKind::Map => {
            let entries: Vec<String> = v
                .try_iter()
                .map(|keys| {
                    keys.map(|k| {
                        let value = v.get_item(&k).unwrap_or_default();
                        format!("{}: {}", repr(&k), repr(&value))
                    })
                    .collect()
                })
                .unwrap_or_default();
            format!("{{{}}}", entries.join(", "))
        }
        _ => match v.try_iter() {
            Ok(iter) => format!(
                "[{}]",
                iter.map(|x| repr(&x)).collect::<Vec<_>>().join(", ")
            ),
            Err(_) => v.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, context: serde_json::Value) -> String {
        let mut env = Environment::new();
        add(&mut env);
        env.render_str(source, context).unwrap()
    }

    #[test]
    fn builtins_behave_as_pythons() {
        let ctx = serde_json::json!({"d": {"b": [1, true, null], "a": "it's"}, "n": "42"});
        assert_eq!(render("{{ int(n) + 1 }}", ctx.clone()), "43");
        assert_eq!(render("{{ int('ff', 16) }}", ctx.clone()), "255");
        assert_eq!(
            render("{{ str(true) }}|{{ len(d) }}", ctx.clone()),
            "True|2"
        );
        assert_eq!(
            render("{{ dumps(d) }}", ctx.clone()),
            r#"!py!{'a': "it's", 'b': [1, True, None]}"#
        );
        assert_eq!(
            render(
                "{% for i, x in enumerate(['a', 'b'], 1) %}{{ i }}{{ x }}{% endfor %}",
                ctx.clone()
            ),
            "1a2b"
        );
        assert_eq!(
            render("{{ sorted(d) }}|{{ max(3, 9, 2) }}", ctx.clone()),
            r#"["a", "b"]|9"#
        );
        assert_eq!(render("{{ repr('a\\nb') }}", ctx), r"'a\nb'");
    }

    #[test]
    fn imported_modules_behave_as_pythons() {
        let mut env = Environment::new();
        add(&mut env);
        let ctx = context(&serde_json::json!({
            "json_module": {MODULE_KEY: "json"},
            "os": {MODULE_KEY: "os"},
            "d": {"a": null, "b": ["é", 1]},
        }));
        let render = |s: &str| env.render_str(s, ctx.clone()).unwrap();
        assert_eq!(
            render("{{ json_module.dumps(d) }}"),
            r#"{"a": null, "b": ["\u00e9", 1]}"#
        );
        assert_eq!(
            render("{{ json_module.dumps(d, sort_keys=True, indent=1) }}"),
            "{\n \"a\": null,\n \"b\": [\n  \"\\u00e9\",\n  1\n ]\n}"
        );
        assert_eq!(render("{{ json_module.loads('[1]')[0] }}"), "1");
        assert_eq!(
            render("{{ os.path.join('/a', 'b', 'c') }}|{{ os.path.join('a', '/b') }}"),
            "/a/b/c|/b"
        );
        assert_eq!(
            render("{{ os.path.dirname('/a/b') }}|{{ os.path.basename('/a/b') }}"),
            "/a|b"
        );
        assert_eq!(
            render("{{ os.path.split('/a/b')[0] }}|{{ os.path.split('/a//b')[1] }}|{{ os.path.split('/')[0] }}|{{ os.pathsep }}"),
            "/a|b|/|:"
        );
        assert!(env.render_str("{{ os.getcwd() }}", ctx.clone()).is_err());
        let ctx = context(&serde_json::json!({"re_module": {MODULE_KEY: "re"}}));
        assert_eq!(
            env.render_str("{{ re_module.escape('a.b-c d_e') }}", ctx)
                .unwrap(),
            r"a\.b\-c\ d_e"
        );
    }
}
