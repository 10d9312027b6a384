//! `slapos.cookbook:slapconfiguration.jsonschema`'s parameters: read as the release's
//! `software.cfg.json` says (`serialisation`: JSON in XML or plain), then checked against the
//! request schema of the instance's software type (the entry of that key; `RootSoftwareInstance`
//! is `default`) by a JSON Schema validator (`validate-parameters`), texts made integers or
//! booleans where the schema says so (`unstringify`) and missing properties given their
//! `default` (`set-default`) along the schemas that apply (`walk.rs`), and checked again. Each
//! error names the parameter (its JSON path), what is wrong, and the schema's rule.

mod documents;
mod walk;

use std::path::Path;

use serde_json::Value;

use super::slap::Slap;
use super::Part;
use crate::error::Result;
use documents::Documents;
use walk::{Mode, Walk};

/// `none`, `main`, `shared` or `all`: whether it applies to the main instance, and to shared
/// ones.
fn applies_to(part: &mut Part, key: &str, default: &str) -> Result<(bool, bool)> {
    let value = part.get(key)?.unwrap_or_else(|| default.to_owned());
    match value.trim() {
        "none" => Ok((false, false)),
        "shared" => Ok((false, true)),
        "main" => Ok((true, false)),
        "all" => Ok((true, true)),
        other => Err(part.option_error(
            key,
            format!(
                "'{other}' is not a valid value for option '{key}'. Accepted values are \
                 ('none', 'main', 'shared', 'all')"
            ),
        )),
    }
}

fn read_json(part: &Part, option: &str, path: &Path) -> Result<serde_json::Value> {
    // a dry run's planned output is read from its derivation (`planned.rs`)
    let planned = part.r.settings.planned.as_ref();
    let text = match planned.and_then(|p| p.read(&path.to_string_lossy())) {
        Some(known) => known.map_err(|m| part.option_error(option, m))?,
        None => std::fs::read_to_string(path).map_err(|e| {
            part.option_error(option, format!("cannot read `{}`: {e}", path.display()))
        })?,
    };
    serde_json::from_str(&text).map_err(|e| {
        part.option_error(
            option,
            format!(
                "`{}`:{}:{}: not JSON: {e}",
                path.display(),
                e.line(),
                e.column()
            ),
        )
    })
}

/// The instance's parameters as the schema makes them.
pub fn parameters(part: &mut Part, slap: &Slap) -> Result<Value> {
    let (validate, validate_shared) = applies_to(part, "validate-parameters", "all")?;
    let set_default = applies_to(part, "set-default", "none")?.0;
    let unstringify = applies_to(part, "unstringify", "none")?.0;
    // errors are reported to the master too; the local one keeps none but the instance's
    applies_to(part, "report-error", "all")?;
    if validate_shared {
        // the local master has no shared instances: none valid, none invalid
        let recipe = crate::config::Origin::Recipe(part.recipe.clone());
        for key in ["valid-shared-instance-list", "invalid-shared-instance-list"] {
            part.r
                .set_typed(part.idx, key, serde_json::json!([]), recipe.clone());
        }
    }
    let location = part.require("jsonschema")?;
    let location = location.trim();
    let file = Path::new(location.strip_prefix("file://").unwrap_or(location)).to_owned();
    let description = read_json(part, "jsonschema", &file)?;
    // slapos.core's `SoftwareReleaseSchema`: the entry of the software type's key
    let software_type = match slap.software_type.as_str() {
        "" | "RootSoftwareInstance" => "default",
        other => other,
    };
    let entry = description
        .get("software-type")
        .and_then(|types| types.get(software_type));
    let serialisation = entry
        .and_then(|e| e.get("serialisation"))
        .or_else(|| description.get("serialisation"))
        .and_then(Value::as_str);
    let instance = match serialisation {
        Some("json-in-xml") => super::slap::unwrap_parameters(part, &slap.parameters)?,
        _ => super::slap::text_object(&slap.parameters),
    };
    if !validate {
        return Ok(instance);
    }
    let request = entry
        .and_then(|t| t.get("request"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            part.option_error(
                "jsonschema",
                format!(
                    "requested software-type '{software_type}' seems to have no JSON schema \
                     entry in the software.cfg.json"
                ),
            )
        })?;
    let schema_file = file.parent().unwrap_or(Path::new("/")).join(request);
    let release_dir = Path::new(&slap.software_url).parent();
    let planned = part.r.settings.planned.as_ref();
    let read = |path: &Path| match planned.and_then(|p| p.read(&path.to_string_lossy())) {
        Some(known) => known,
        None => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display())),
    };
    let docs = Documents::load(&schema_file, request, release_dir, &read)
        .map_err(|e| part.option_error("jsonschema", e))?;
    let checked = Checked::new(part, &docs)?;
    let mut instance = match instance {
        Value::Object(map) => Value::Object(map),
        _ => Value::Object(Default::default()),
    };
    let invalid = |part: &Part, errors: Vec<String>| {
        part.error(format!(
            "Invalid parameters (`{}`):\n  {}",
            docs.root,
            errors.join("\n  ")
        ))
    };
    let is_valid = |doc: &str, pointer: &str, value: &Value| checked.at(doc, pointer, value);
    if unstringify {
        Walk::new(&docs, &is_valid, Mode::Unstringify)
            .run(&mut instance)
            .map_err(|e| invalid(part, vec![e]))?;
    }
    let errors = checked.errors(&instance);
    if !errors.is_empty() {
        return Err(invalid(part, errors));
    }
    if set_default {
        Walk::new(&docs, &is_valid, Mode::Defaults)
            .run(&mut instance)
            .map_err(|e| invalid(part, vec![e]))?;
        // the defaults are checked too, as the real recipe does
        let errors = checked.errors(&instance);
        if !errors.is_empty() {
            return Err(invalid(part, errors));
        }
    }
    Ok(instance)
}

/// The request schema's validator, and validators of its parts made on demand.
struct Checked<'d> {
    docs: &'d Documents,
    root: jsonschema::Validator,
}

impl<'d> Checked<'d> {
    fn new(part: &Part, docs: &'d Documents) -> Result<Self> {
        let root = build(docs, docs.schema()).map_err(|e| {
            part.option_error(
                "jsonschema",
                format!("`{}`: not a valid JSON schema: {e}", docs.root),
            )
        })?;
        Ok(Checked { docs, root })
    }

    /// Each error as `<JSON path>: <what is wrong> (schema <rule's place>)`.
    fn errors(&self, instance: &Value) -> Vec<String> {
        self.root
            .iter_errors(instance)
            .map(|e| {
                format!(
                    "{}: {e} (schema `{}`)",
                    json_path(e.instance_path()),
                    e.schema_path()
                )
            })
            .collect()
    }

    /// Whether the schema at `pointer` in the document `doc` validates `value` (a schema that
    /// cannot be built validates nothing).
    fn at(&self, doc: &str, pointer: &str, value: &Value) -> bool {
        let mut reference = serde_json::json!({ "$ref": format!("file://{doc}#{pointer}") });
        if let Some(draft) = self.docs.schema().get("$schema") {
            reference["$schema"] = draft.clone();
        }
        build(self.docs, &reference).is_ok_and(|v| v.is_valid(value))
    }
}

fn build(
    docs: &Documents,
    schema: &Value,
) -> std::result::Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    jsonschema::options()
        // Python's `jsonschema`, which the real recipe uses, checks no `format` by default
        .should_validate_formats(false)
        .with_retriever(docs.retriever())
        .build(schema)
}

/// A JSON pointer into the instance as Python's `jsonschema` writes it: `$`, `$.key`, `$[0]`.
fn json_path(location: &jsonschema::paths::Location) -> String {
    let mut path = String::from("$");
    for segment in location.segments() {
        match segment {
            jsonschema::paths::LocationSegment::Index(i) => path.push_str(&format!("[{i}]")),
            jsonschema::paths::LocationSegment::Property(key) => {
                path.push('.');
                path.push_str(&key);
            }
        }
    }
    path
}
