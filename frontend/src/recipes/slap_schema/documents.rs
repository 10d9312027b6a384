//! The JSON documents a request schema is made of: the schema file and every file its `$ref`s
//! name, read once (from disk, or a dry run's planned outputs) and keyed by their path, so the
//! validator (`jsonschema`'s `Retrieve`) and the defaults' walk resolve references alike.
//! Like slapos.core's `SoftwareReleaseSchema`, the schema's `$id` is its `file://` URL, which
//! relative references resolve against; a referenced file missing there is looked for at the
//! same relative path beside the software release's profile, where SlapOS releases keep the
//! JSON files they download into one directory (each download is its own store path here).

use crate::lock::resolve::percent_decode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::pystr::normpath;

/// A schema and the documents its references reach, by normalised absolute path.
#[derive(Debug, Clone)]
pub struct Documents {
    /// The request schema's path: its document is the root.
    pub root: String,
    docs: BTreeMap<String, Value>,
}

/// How a file's text is read: `Err` says why it cannot be.
pub type Read<'a> = dyn Fn(&Path) -> Result<String, String> + 'a;

impl Documents {
    /// Reads `file` (at `relative`, from `software.cfg.json`), then every file its references
    /// (and theirs) name; `release_dir` is where a file missing there is looked for.
    pub fn load(
        file: &Path,
        relative: &str,
        release_dir: Option<&Path>,
        read: &Read,
    ) -> Result<Self, String> {
        let root = normpath(&file.to_string_lossy());
        let mut documents = Documents {
            root: root.clone(),
            docs: BTreeMap::new(),
        };
        let mut pending = vec![(root, Some(normpath(relative)))];
        while let Some((path, relative)) = pending.pop() {
            if documents.docs.contains_key(&path) {
                continue;
            }
            let mut doc = match read_json(Path::new(&path), read) {
                Ok(doc) => doc,
                Err(e) => {
                    // where the release keeps it, at the same relative path
                    let beside = release_dir
                        .zip(relative.as_deref())
                        .map(|(dir, rel)| dir.join(rel))
                        .filter(|f| f.is_file());
                    match beside {
                        Some(beside) => read_json(&beside, read)?,
                        None => return Err(e),
                    }
                }
            };
            if let Some(map) = doc.as_object_mut() {
                map.entry("$id")
                    .or_insert_with(|| Value::String(format!("file://{path}")));
            }
            let mut refs = Vec::new();
            references(&doc, &mut refs);
            for reference in refs {
                if let Some((target, relative)) = file_of(&path, reference) {
                    pending.push((target, relative));
                }
            }
            documents.docs.insert(path, doc);
        }
        Ok(documents)
    }

    /// The root document: the request schema.
    pub fn schema(&self) -> &Value {
        &self.docs[&self.root]
    }

    /// The document at `path` (normalised, absolute).
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.docs.get(path)
    }

    /// Where `reference`, met in the document at `from`, points: a document's path and a JSON
    /// pointer in it (`None` for a remote document, which none of these is).
    pub fn resolve(&self, from: &str, reference: &str) -> Option<(String, String)> {
        let (file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let path = match file {
            "" => from.to_owned(),
            _ => file_of(from, file)?.0,
        };
        Some((path, percent_decode(fragment)))
    }

    /// The `jsonschema` retriever serving these documents by their `file://` URL.
    pub fn retriever(&self) -> Retriever {
        Retriever(self.docs.clone())
    }
}

/// Serves the loaded documents to `jsonschema`; any other URL is an error naming it.
pub struct Retriever(BTreeMap<String, Value>);

impl jsonschema::Retrieve for Retriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let text = uri.as_str();
        let path = text
            .strip_prefix("file://")
            .map(|p| normpath(&percent_decode(p.split('#').next().unwrap_or(p))));
        path.and_then(|p| self.0.get(&p).cloned())
            .ok_or_else(|| format!("`{text}` is not a local file of the schema").into())
    }
}

fn read_json(path: &Path, read: &Read) -> Result<Value, String> {
    let text = read(path)?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "`{}`:{}:{}: not JSON: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

/// Every `$ref` string in `value`.
fn references<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => references(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// The local file a reference's document part names, seen from the document at `from`, and
/// the reference's relative path when it has one; `None` for a fragment alone or a remote URL.
fn file_of(from: &str, reference: &str) -> Option<(String, Option<String>)> {
    let file = reference.split('#').next().unwrap_or_default();
    if file.is_empty() {
        return None;
    }
    if let Some(path) = file.strip_prefix("file://") {
        return Some((normpath(&percent_decode(path)), None));
    }
    if file.contains("://") {
        return None;
    }
    let file = percent_decode(file);
    if file.starts_with('/') {
        return Some((normpath(&file), None));
    }
    let dir = Path::new(from).parent().map(Path::to_owned);
    let joined = dir.unwrap_or_else(|| PathBuf::from("/")).join(&file);
    Some((normpath(&joined.to_string_lossy()), Some(normpath(&file))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_load_their_files_and_resolve_to_pointers() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.json");
        std::fs::write(
            &main,
            r##"{"properties": {"a": {"$ref": "./defs.json#/$defs/a"}}}"##,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("defs.json"),
            r#"{"$defs": {"a": {"default": 1}}}"#,
        )
        .unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| e.to_string());
        let docs = Documents::load(&main, "main.json", None, &read).unwrap();
        let root = docs.root.clone();
        assert_eq!(docs.schema()["$id"], format!("file://{root}"));
        let (path, pointer) = docs.resolve(&root, "./defs.json#/$defs/a").unwrap();
        assert_eq!(pointer, "/$defs/a");
        assert_eq!(
            docs.get(&path).unwrap().pointer(&pointer).unwrap()["default"],
            1
        );
        assert_eq!(
            docs.resolve(&root, "#/x").unwrap(),
            (root.clone(), "/x".into())
        );
    }

    #[test]
    fn a_missing_referenced_file_is_read_beside_the_release() {
        let store = tempfile::tempdir().unwrap();
        let release = tempfile::tempdir().unwrap();
        let main = store.path().join("main.json");
        std::fs::write(&main, r#"{"$ref": "defs.json"}"#).unwrap();
        std::fs::write(release.path().join("defs.json"), r#"{"type": "object"}"#).unwrap();
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let docs = Documents::load(&main, "main.json", Some(release.path()), &read).unwrap();
        let (path, _) = docs.resolve(&docs.root, "defs.json").unwrap();
        assert_eq!(docs.get(&path).unwrap()["type"], "object");
        let none = Documents::load(&main, "main.json", None, &read).unwrap_err();
        assert!(none.contains("defs.json"), "{none}");
    }
}
