//! What slapos.cookbook's `DefaultValidator` does to parameters besides validating them:
//! along the schemas that apply to each (sub)object (`$ref`, `allOf`, the `anyOf`/`oneOf`
//! branches and the `if`/`then`/`else` side it validates, `properties`, `items`, schema-valued
//! `additionalProperties`), a missing property takes its `default` (found behind `$ref`s too,
//! itself walked for nested defaults; two different defaults for one key are an error), and a
//! text given where the property's `type` says `integer` or `boolean` (`True`/`False`) is made
//! one (`unstringify`). The caller validates the result again, as the real recipe does.

use serde_json::{Map, Value};

use super::documents::Documents;

/// Schema nesting followed through `$ref`s before giving up (a reference cycle).
const MAX_DEPTH: usize = 64;

/// Which changes the walk makes.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Defaults,
    Unstringify,
}

/// A place in a document: its path and a JSON pointer.
#[derive(Debug, Clone)]
struct At {
    doc: String,
    pointer: String,
}

pub struct Walk<'a> {
    pub docs: &'a Documents,
    /// Whether the schema at a place validates a value (for the conditional branches).
    pub is_valid: &'a dyn Fn(&str, &str, &Value) -> bool,
    pub mode: Mode,
    /// Defaults applied so far: the instance's JSON path with the key → the value.
    applied: Map<String, Value>,
}

impl<'a> Walk<'a> {
    pub fn new(
        docs: &'a Documents,
        is_valid: &'a dyn Fn(&str, &str, &Value) -> bool,
        mode: Mode,
    ) -> Self {
        Walk {
            docs,
            is_valid,
            mode,
            applied: Map::new(),
        }
    }

    /// Walks the root schema over `instance`, changing it in place.
    pub fn run(&mut self, instance: &mut Value) -> Result<(), String> {
        let at = At {
            doc: self.docs.root.clone(),
            pointer: String::new(),
        };
        self.walk(&at, instance, "$", 0)
    }

    fn schema(&self, at: &At) -> Option<&'a Value> {
        self.docs.get(&at.doc)?.pointer(&at.pointer)
    }

    fn walk(
        &mut self,
        at: &At,
        instance: &mut Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "{path}: the schema's references at `{}` loop",
                at.pointer
            ));
        }
        let Some(Value::Object(schema)) = self.schema(at) else {
            return Ok(());
        };
        // `tail`: pointer tokens, already escaped
        let child = |tail: &str| At {
            doc: at.doc.clone(),
            pointer: format!("{}/{tail}", at.pointer),
        };
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            if let Some(target) = self.reference(at, reference) {
                self.walk(&target, instance, path, depth + 1)?;
            }
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            let count = schema
                .get(keyword)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..count {
                let branch = child(&format!("{keyword}/{i}"));
                if keyword == "allOf" || self.valid(&branch, instance) {
                    self.walk(&branch, instance, path, depth + 1)?;
                }
            }
        }
        if schema.contains_key("if") {
            let side = if self.valid(&child("if"), instance) {
                "then"
            } else {
                "else"
            };
            if schema.contains_key(side) {
                self.walk(&child(side), instance, path, depth + 1)?;
            }
        }
        if let Some(items) = instance.as_array_mut() {
            if schema.get("items").is_some_and(Value::is_object) {
                for (i, item) in items.iter_mut().enumerate() {
                    self.walk(&child("items"), item, &format!("{path}[{i}]"), depth + 1)?;
                }
            }
            return Ok(());
        }
        let Some(object) = instance.as_object_mut() else {
            return Ok(());
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        for key in properties.into_iter().flat_map(|p| p.keys()) {
            let property = child(&format!("properties/{}", escape(key)));
            let key_path = format!("{path}.{key}");
            match self.mode {
                Mode::Defaults => self.default(&property, object, key, &key_path)?,
                Mode::Unstringify => self.unstringify(&property, object, key),
            }
            if let Some(value) = object.get_mut(key) {
                self.walk(&property, value, &key_path, depth + 1)?;
            }
        }
        if schema
            .get("additionalProperties")
            .is_some_and(Value::is_object)
        {
            let others = object
                .iter_mut()
                .filter(|(k, _)| !properties.is_some_and(|p| p.contains_key(*k)));
            for (key, value) in others {
                let at = child("additionalProperties");
                self.walk(&at, value, &format!("{path}.{key}"), depth + 1)?;
            }
        }
        Ok(())
    }

    fn valid(&self, at: &At, instance: &Value) -> bool {
        (self.is_valid)(&at.doc, &at.pointer, instance)
    }

    fn reference(&self, at: &At, reference: &str) -> Option<At> {
        let (doc, pointer) = self.docs.resolve(&at.doc, reference)?;
        Some(At { doc, pointer })
    }

    /// `key` of a property's schema at `at`, or behind its `$ref`s.
    fn keyword(&self, at: &At, key: &str, depth: usize) -> Option<&'a Value> {
        let schema = self.schema(at)?;
        match schema.get(key) {
            Some(found) => Some(found),
            None if depth < MAX_DEPTH => {
                let target = self.reference(at, schema.get("$ref")?.as_str()?)?;
                self.keyword(&target, key, depth + 1)
            }
            None => None,
        }
    }

    fn default(
        &mut self,
        property: &At,
        object: &mut Map<String, Value>,
        key: &str,
        key_path: &str,
    ) -> Result<(), String> {
        let Some(default) = self.keyword(property, "default", 0) else {
            return Ok(());
        };
        match (object.get(key), self.applied.get(key_path)) {
            (None, _) => {
                object.insert(key.to_owned(), default.clone());
                self.applied.insert(key_path.to_owned(), default.clone());
            }
            (Some(_), Some(earlier)) if earlier != default => {
                return Err(format!(
                    "Conflicting defaults for key {key_path}: {earlier} and {default}"
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn unstringify(&self, property: &At, object: &mut Map<String, Value>, key: &str) {
        let Some(Value::String(text)) = object.get(key) else {
            return;
        };
        let types = match self.keyword(property, "type", 0) {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => return,
        };
        let made = types.iter().find_map(|t| match *t {
            "integer" => text.trim().parse::<i64>().ok().map(Value::from),
            "boolean" => match text.as_str() {
                "True" => Some(Value::Bool(true)),
                "False" => Some(Value::Bool(false)),
                _ => None,
            },
            _ => None,
        });
        if let Some(value) = made {
            object.insert(key.to_owned(), value);
        }
    }
}

/// A key as a JSON pointer's token.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
