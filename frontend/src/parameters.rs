//! Instance parameter files, in the two forms SlapOS takes them: a JSON object, or SlapOS's
//! XML (`<instance><parameter id="key">value</parameter>...</instance>`, what the master
//! stores and `slapos request` sends).
//!
//! Parameters are text, as a SlapOS master passes them. A JSON object of strings, numbers
//! and booleans gives one parameter per key; a JSON object holding a list, an object or
//! `null` is kept whole, serialised under the single key `_` — SlapOS's "JSON in XML" that
//! `slapconfiguration.serialised` unwraps (`<parameter id="_">{...}</parameter>` in XML).

use std::path::Path;

use slapstore_store::master::Parameters;

/// Reads a parameter file, JSON or XML (by its first character); the error names the file,
/// and the line and column of bad syntax.
pub fn read(file: &Path) -> Result<Parameters, String> {
    let shown = file.display();
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if text.trim_start().starts_with('<') {
        from_xml(&text).map_err(|m| format!("`{shown}`{m}"))
    } else {
        from_json(&text).map_err(|m| format!("`{shown}`{m}"))
    }
}

/// Parameters of a JSON object; errors start with `:line:column: ` or `: `.
pub fn from_json(text: &str) -> Result<Parameters, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!(":{}:{}: not JSON: {e}", e.line(), e.column()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(": expected an object of parameters, `{\"key\": \"value\"}`".to_owned());
    };
    let nested = map.values().any(|v| {
        matches!(
            v,
            serde_json::Value::Array(_) | serde_json::Value::Object(_) | serde_json::Value::Null
        )
    });
    if nested {
        let mut out = Parameters::new();
        out.insert("_".to_owned(), serde_json::Value::Object(map).to_string());
        return Ok(out);
    }
    let mut out = Parameters::new();
    for (k, v) in map {
        if k.trim().is_empty() {
            return Err(": a parameter has an empty name".to_owned());
        }
        let text = match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        out.insert(k, text);
    }
    Ok(out)
}

/// Parameters of SlapOS's XML; errors start with `:line:column: ` or `: `.
pub fn from_xml(text: &str) -> Result<Parameters, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        let pos = e.pos();
        format!(":{}:{}: not XML: {e}", pos.row, pos.col)
    })?;
    let root = doc.root_element();
    let at = |node: roxmltree::Node| {
        let pos = doc.text_pos_at(node.range().start);
        format!(":{}:{}", pos.row, pos.col)
    };
    if root.tag_name().name() != "instance" {
        return Err(format!(
            "{}: expected `<instance>` holding `<parameter id=\"key\">value</parameter>` \
             elements, not `<{}>`",
            at(root),
            root.tag_name().name()
        ));
    }
    let mut out = Parameters::new();
    for node in root.children().filter(|n| n.is_element()) {
        if node.tag_name().name() != "parameter" {
            return Err(format!(
                "{}: `<{}>` in `<instance>`: only `<parameter id=\"key\">` elements are allowed",
                at(node),
                node.tag_name().name()
            ));
        }
        let Some(id) = node.attribute("id").filter(|id| !id.trim().is_empty()) else {
            return Err(format!("{}: a `<parameter>` without an `id`", at(node)));
        };
        // the text of the element, as SlapOS reads it (`element.text`, or empty)
        let value: String = node
            .children()
            .filter(|c| c.is_text())
            .filter_map(|c| c.text())
            .collect();
        out.insert(id.to_owned(), value);
    }
    Ok(out)
}

/// SlapOS's XML for `parameters` (what `instance show` can hand to a real master).
pub fn to_xml(parameters: &Parameters) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<instance>\n");
    for (k, v) in parameters {
        out.push_str(&format!(
            "<parameter id=\"{}\">{}</parameter>\n",
            escape(k),
            escape(v)
        ));
    }
    out.push_str("</instance>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_parameters_and_json_in_xml() {
        let p = from_xml(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<instance>\n\
             <parameter id=\"port\">8080</parameter>\n\
             <parameter id=\"title\">a &amp; b</parameter>\n\
             <parameter id=\"empty\"/>\n</instance>",
        )
        .expect("parse");
        assert_eq!(p["port"], "8080");
        assert_eq!(p["title"], "a & b");
        assert_eq!(p["empty"], "");
        assert_eq!(from_xml(&to_xml(&p)).expect("again"), p);
        let p = from_xml(r#"<instance><parameter id="_">{"a": [1, 2]}</parameter></instance>"#)
            .expect("parse");
        assert_eq!(p["_"], r#"{"a": [1, 2]}"#);
        let e = from_xml("<instance>\n  <param id=\"a\">1</param>\n</instance>").expect_err("bad");
        assert!(e.starts_with(":2:3:"), "{e}");
        let e = from_xml("<instance><parameter>1</parameter></instance>").expect_err("bad");
        assert!(e.contains("without an `id`"), "{e}");
        assert!(from_xml("<instance>").expect_err("bad").contains("not XML"));
    }

    #[test]
    fn json_parameters_flat_or_serialised() {
        let p = from_json(r#"{"port": 8080, "on": true, "name": "x"}"#).expect("parse");
        assert_eq!((p["port"].as_str(), p["on"].as_str()), ("8080", "true"));
        let p = from_json(r#"{"list": [1], "name": "x"}"#).expect("parse");
        assert_eq!(p.len(), 1);
        let back: serde_json::Value = serde_json::from_str(&p["_"]).expect("json");
        assert_eq!(back["list"][0], 1);
        assert!(from_json("[1]").expect_err("bad").contains("object"));
        assert!(from_json("{\n\"a\": }")
            .expect_err("bad")
            .starts_with(":2:"));
    }
}
