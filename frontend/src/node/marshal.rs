//! The `xml_marshaller` format in which a SlapOS master and slapgrid exchange Python values
//! (`slapos.util.dumps`/`loads`): `<marshal>` around one value of `<none/>`, `<bool>`, `<int>`,
//! `<long>`, `<float>`, `<string>`, `<tuple>`, `<list>`, `<set>`, `<dictionary>` (keys and
//! values alternating) and `<object module class>` (its `__getinitargs__` tuple, then its state).
//!
//! Two quirks of the Python side are kept: a string's text is escaped twice (`saxutils.escape`
//! before the XML writer escapes it again, so `a<b` travels as `a&amp;lt;b`), and a list,
//! dictionary, set or object met a second time is a `<reference id>` to the first. Tags are
//! matched by local name (a master may use the `marshal:` namespace).

use std::collections::HashMap;
use std::fmt::Write;

/// A Python value as `xml_marshaller` carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// `<int>` and `<long>` (a long beyond `i64` is an error).
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Set(Vec<Value>),
    /// Key/value pairs in the order they were written.
    Dict(Vec<(Value, Value)>),
    /// An instance of `module.class`: its init arguments and its state (usually a dictionary).
    Object {
        module: String,
        class: String,
        args: Vec<Value>,
        state: Box<Value>,
    },
}

impl Value {
    /// A dictionary's value under the string key `key` (or an object's attribute of its state).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            Value::Object { state, .. } => state.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a list, tuple or set.
    pub fn items(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => Some(v),
            _ => None,
        }
    }

    /// A dictionary of strings, `k => v`.
    pub fn string_dict<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::Str(k.to_owned()), Value::Str(v.to_owned())))
                .collect(),
        )
    }

    /// The value as Python's `str()` shows a scalar (`None`, `True`, `3`, text), for parameters
    /// a master sends as something else than text; `None` for containers.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::None => Some("None".into()),
            Value::Bool(b) => Some(if *b { "True" } else { "False" }.into()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// Why a document is not `xml_marshaller` data.
#[derive(Debug, thiserror::Error)]
pub enum MarshalError {
    #[error("not XML: {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("expected `<marshal>` holding one value, found `<{0}>`")]
    Root(String),
    #[error("line {line}: {message}")]
    Bad { line: u32, message: String },
}

/// Reads a `<marshal>` document.
pub fn loads(text: &str) -> Result<Value, MarshalError> {
    let doc = roxmltree::Document::parse(text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "marshal" {
        return Err(MarshalError::Root(root.tag_name().name().to_owned()));
    }
    let mut children = root.children().filter(|n| n.is_element());
    let (Some(value), None) = (children.next(), children.next()) else {
        return Err(MarshalError::Root("marshal".into()));
    };
    Decoder {
        doc: &doc,
        seen: HashMap::new(),
    }
    .value(value)
}

struct Decoder<'a, 'i> {
    doc: &'a roxmltree::Document<'i>,
    /// Finished containers by id, for `<reference>`.
    seen: HashMap<String, Value>,
}

impl Decoder<'_, '_> {
    fn bad(&self, node: roxmltree::Node, message: String) -> MarshalError {
        MarshalError::Bad {
            line: self.doc.text_pos_at(node.range().start).row,
            message,
        }
    }

    fn children(&mut self, node: roxmltree::Node) -> Result<Vec<Value>, MarshalError> {
        node.children()
            .filter(|n| n.is_element())
            .map(|n| self.value(n))
            .collect()
    }

    fn value(&mut self, node: roxmltree::Node) -> Result<Value, MarshalError> {
        let tag = node.tag_name().name();
        let text = || node.text().unwrap_or("");
        let value = match tag {
            "none" => Value::None,
            "bool" => match text().trim() {
                "1" => Value::Bool(true),
                "0" => Value::Bool(false),
                other => return Err(self.bad(node, format!("`<bool>` of `{other}`"))),
            },
            "int" | "long" => Value::Int(
                text()
                    .trim()
                    .parse()
                    .map_err(|_| self.bad(node, format!("`<{tag}>` of `{}`", text())))?,
            ),
            "float" => Value::Float(
                text()
                    .trim()
                    .parse()
                    .map_err(|_| self.bad(node, format!("`<float>` of `{}`", text())))?,
            ),
            "string" | "unicode" => Value::Str(unescape(text())),
            "tuple" => Value::Tuple(self.children(node)?),
            "list" => Value::List(self.children(node)?),
            "set" => Value::Set(self.children(node)?),
            "dictionary" => {
                let items = self.children(node)?;
                if items.len() % 2 != 0 {
                    return Err(self.bad(node, "a `<dictionary>` key has no value".into()));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    pairs.push((k, v));
                }
                Value::Dict(pairs)
            }
            "object" => {
                let mut items = self.children(node)?.into_iter();
                let (Some(Value::Tuple(args)), Some(state), None) =
                    (items.next(), items.next(), items.next())
                else {
                    return Err(self.bad(
                        node,
                        "an `<object>` holds its arguments' `<tuple>` and its state".into(),
                    ));
                };
                Value::Object {
                    module: node.attribute("module").unwrap_or_default().to_owned(),
                    class: node.attribute("class").unwrap_or_default().to_owned(),
                    args,
                    state: Box::new(state),
                }
            }
            "reference" => {
                let id = node.attribute("id").unwrap_or_default();
                return self.seen.get(id).cloned().ok_or_else(|| {
                    self.bad(
                        node,
                        format!("`<reference id=\"{id}\">` to nothing before it (or to itself)"),
                    )
                });
            }
            other => return Err(self.bad(node, format!("unknown element `<{other}>`"))),
        };
        if let Some(id) = node.attribute("id") {
            self.seen.insert(id.to_owned(), value.clone());
        }
        Ok(value)
    }
}

/// `xml.sax.saxutils.unescape`: `&lt;`, `&gt;`, then `&amp;`.
fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Writes `value` as `slapos.util.dumps` does (ids from `i2`, strings escaped twice).
pub fn dumps(value: &Value) -> String {
    let mut out = String::from("<marshal>");
    let mut id = 1;
    write_value(&mut out, value, &mut id);
    out.push_str("</marshal>");
    out
}

fn write_value(out: &mut String, value: &Value, id: &mut u32) {
    let mut next_id = || {
        *id += 1;
        *id
    };
    match value {
        Value::None => out.push_str("<none/>"),
        Value::Bool(b) => out.push_str(if *b {
            "<bool>1</bool>"
        } else {
            "<bool>0</bool>"
        }),
        Value::Int(i) => {
            let _ = write!(out, "<int>{i}</int>");
        }
        Value::Float(f) => {
            let _ = write!(out, "<float>{f:?}</float>");
        }
        Value::Str(s) => {
            out.push_str("<string>");
            // saxutils.escape, then the XML writer's own escaping
            let once = s
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            out.push_str(&xml_text(&once));
            out.push_str("</string>");
        }
        Value::Tuple(items) => {
            out.push_str("<tuple>");
            items.iter().for_each(|v| write_value(out, v, id));
            out.push_str("</tuple>");
        }
        Value::List(items) | Value::Set(items) => {
            let tag = if matches!(value, Value::List(_)) {
                "list"
            } else {
                "set"
            };
            let n = next_id();
            let _ = write!(out, "<{tag} id=\"i{n}\">");
            items.iter().for_each(|v| write_value(out, v, id));
            let _ = write!(out, "</{tag}>");
        }
        Value::Dict(pairs) => {
            let n = next_id();
            let _ = write!(out, "<dictionary id=\"i{n}\">");
            for (k, v) in pairs {
                write_value(out, k, id);
                write_value(out, v, id);
            }
            out.push_str("</dictionary>");
        }
        Value::Object {
            module,
            class,
            args,
            state,
        } => {
            let n = next_id();
            let _ = write!(
                out,
                "<object id=\"i{n}\" module=\"{}\" class=\"{}\">",
                xml_text(module).replace('"', "&quot;"),
                xml_text(class).replace('"', "&quot;")
            );
            write_value(out, &Value::Tuple(args.clone()), id);
            write_value(out, state, id);
            out.push_str("</object>");
        }
    }
}

/// Escapes text for XML content; control characters XML cannot carry become char references
/// where XML 1.0 allows them (tab, newline, carriage return) and are dropped otherwise.
fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What slapproxy 1.22.1 answered to `getFullComputerInformation` after a `slapos supply`
    /// and a `slapos request` (one partition hosts `web`, the other is free).
    const COMPUTER: &str = include_str!("testdata/full-computer-information.xml");

    #[test]
    fn reads_slapproxy_computer_information() {
        let v = loads(COMPUTER).unwrap();
        let Value::Object { class, args, .. } = &v else {
            panic!("{v:?}")
        };
        assert_eq!(class, "Computer");
        assert_eq!(args, &[Value::Str("COMP-1".into())]);
        let partitions = v.get("_computer_partition_list").unwrap().items().unwrap();
        assert_eq!(partitions.len(), 2);
        let p0 = &partitions[0];
        assert_eq!(p0.get("_partition_id").unwrap().as_str(), Some("slappart0"));
        assert_eq!(
            p0.get("_requested_state").unwrap().as_str(),
            Some("started")
        );
        let params = p0.get("_parameter_dict").unwrap();
        assert_eq!(params.get("x").unwrap().as_str(), Some("a b"));
        let ips = params.get("ip_list").unwrap().items().unwrap();
        assert_eq!(
            ips[1],
            Value::Tuple(vec![
                Value::Str("slappart0".into()),
                Value::Str("::1".into())
            ])
        );
        assert_eq!(
            partitions[1].get("_software_release_document"),
            Some(&Value::None)
        );
    }

    #[test]
    fn strings_are_escaped_twice_as_python_does() {
        // from `slapos.util.dumps({'a': 'x<&y"\'', 'u': 'é\n  x'})`
        let python = "<marshal><dictionary id=\"i2\"><string>a</string><string>x&amp;lt;&amp;amp;y\"'</string><string>u</string><string>&#233;\n  x</string></dictionary></marshal>";
        let v = loads(python).unwrap();
        assert_eq!(v.get("a").unwrap().as_str(), Some("x<&y\"'"));
        assert_eq!(v.get("u").unwrap().as_str(), Some("é\n  x"));
        let again = loads(&dumps(&v)).unwrap();
        assert_eq!(again, v);
        assert!(dumps(&v).contains("x&amp;lt;&amp;amp;y"));
    }

    #[test]
    fn dumps_as_python_does() {
        // `slapos.util.dumps({'l': [1, (2, 3)], 'n': None, 't': True, 'f': 1.5})`
        let v = Value::Dict(vec![
            (Value::Str("f".into()), Value::Float(1.5)),
            (
                Value::Str("l".into()),
                Value::List(vec![
                    Value::Int(1),
                    Value::Tuple(vec![Value::Int(2), Value::Int(3)]),
                ]),
            ),
            (Value::Str("n".into()), Value::None),
            (Value::Str("t".into()), Value::Bool(true)),
        ]);
        assert_eq!(
            dumps(&v),
            "<marshal><dictionary id=\"i2\"><string>f</string><float>1.5</float><string>l</string><list id=\"i3\"><int>1</int><tuple><int>2</int><int>3</int></tuple></list><string>n</string><none/><string>t</string><bool>1</bool></dictionary></marshal>"
        );
    }

    #[test]
    fn references_name_an_earlier_container() {
        let text = "<marshal><list id=\"i2\"><dictionary id=\"i3\"><string>k</string><int>1</int></dictionary><reference id=\"i3\"/></list></marshal>";
        let v = loads(text).unwrap();
        let items = v.items().unwrap();
        assert_eq!(items[0], items[1]);
        let cyclic = "<marshal><list id=\"i2\"><reference id=\"i2\"/></list></marshal>";
        assert!(loads(cyclic).unwrap_err().to_string().contains("to itself"));
    }

    #[test]
    fn namespaced_tags_are_read() {
        let text = "<marshal:marshal xmlns:marshal=\"http://www.erp5.org/namespaces/marshaller\"><marshal:string>x</marshal:string></marshal:marshal>";
        assert_eq!(loads(text).unwrap(), Value::Str("x".into()));
    }

    #[test]
    fn bad_documents_say_where() {
        assert!(matches!(loads("<html/>"), Err(MarshalError::Root(t)) if t == "html"));
        let e = loads("<marshal>\n<int>x</int></marshal>").unwrap_err();
        assert_eq!(e.to_string(), "line 2: `<int>` of `x`");
        assert!(
            loads("<marshal><dictionary><string>k</string></dictionary></marshal>")
                .unwrap_err()
                .to_string()
                .contains("no value")
        );
        assert!(loads("not xml").is_err());
    }
}
