//! `slapos.cookbook:slapconfiguration.jsonschema`'s parameters: read as the release's
//! `software.cfg.json` says (`serialisation`: JSON in XML or plain), then, for the instance's
//! software type's request schema, integers given as text made integers (`unstringify`),
//! missing properties given their `default` (`set-default`), and the result checked
//! (`validate-parameters`). The checks are those of the schema's top level: `required`,
//! `type` and `enum` of each property (a property behind a `$ref` is not checked), which is
//! what instance parameters' mistakes break in practice.

use std::path::Path;

use super::slap::Slap;
use super::Part;
use crate::error::Result;

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
pub fn parameters(part: &mut Part, slap: &Slap) -> Result<serde_json::Value> {
    let (validate, validate_shared) = applies_to(part, "validate-parameters", "all")?;
    let set_default = applies_to(part, "set-default", "none")?.0;
    let unstringify = applies_to(part, "unstringify", "none")?.0;
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
    let mut instance = match description.get("serialisation").and_then(|s| s.as_str()) {
        Some("json-in-xml") => super::slap::unwrap_parameters(part, &slap.parameters)?,
        _ => super::slap::text_object(&slap.parameters),
    };
    if !validate {
        return Ok(instance);
    }
    let entry = description
        .get("software-type")
        .and_then(|t| t.as_object())
        .and_then(|types| {
            // an entry's software type is its `software-type`, else its key (slapos.core's
            // `SoftwareReleaseSchema`)
            types.iter().find_map(|(key, t)| {
                let software_type = t
                    .get("software-type")
                    .and_then(|s| s.as_str())
                    .unwrap_or(key);
                (software_type == slap.software_type
                    && t.get("shared").and_then(|s| s.as_bool()) != Some(true))
                .then_some(t)
            })
        })
        .and_then(|t| t.get("request"))
        .and_then(|r| r.as_str())
        .ok_or_else(|| {
            part.option_error(
                "jsonschema",
                format!(
                    "requested software-type '{}' seems to have no JSON schema entry in the \
                     software.cfg.json",
                    slap.software_type
                ),
            )
        })?;
    let schema_file = file.parent().unwrap_or(Path::new("/")).join(entry);
    // SlapOS releases download their JSON files into one directory (`destination`), each its
    // own store path here: a request schema not beside `software.cfg.json` is read where they
    // come from, beside the software release's profile
    let beside_release = Path::new(&slap.software_url)
        .parent()
        .map(|dir| dir.join(entry))
        .filter(|f| f.is_file());
    let schema = match read_json(part, "jsonschema", &schema_file) {
        Err(e) => match beside_release {
            Some(file) => read_json(part, "jsonschema", &file)?,
            None => return Err(e),
        },
        found => found?,
    };
    if !instance.is_object() {
        instance = serde_json::json!({});
    }
    let mut errors = Vec::new();
    if let (Some(map), Some(properties)) = (
        instance.as_object_mut(),
        schema.get("properties").and_then(|p| p.as_object()),
    ) {
        for (key, property) in properties {
            if property.get("$ref").is_some() {
                continue;
            }
            let kinds = types(property);
            if unstringify && kinds.contains(&"integer") {
                if let Some(n) = map
                    .get(key)
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.trim().parse::<i64>().ok())
                {
                    map.insert(key.clone(), n.into());
                }
            }
            if set_default && !map.contains_key(key) {
                if let Some(default) = property.get("default") {
                    map.insert(key.clone(), default.clone());
                }
            }
            let Some(value) = map.get(key) else { continue };
            if !kinds.is_empty() && !kinds.iter().any(|k| is_type(value, k)) {
                errors.push(format!(
                    "{key}: {value} is not of type {}",
                    kinds.join(" or ")
                ));
            }
            if let Some(allowed) = property.get("enum").and_then(|e| e.as_array()) {
                if !allowed.contains(value) {
                    errors.push(format!("{key}: {value} is not one of {allowed:?}"));
                }
            }
        }
        for key in schema
            .get("required")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str())
        {
            if !map.contains_key(key) {
                errors.push(format!("'{key}' is a required property"));
            }
        }
    }
    if !errors.is_empty() {
        return Err(part.error(format!(
            "Invalid parameters (`{}`):\n  {}",
            schema_file.display(),
            errors.join("\n  ")
        )));
    }
    Ok(instance)
}

fn types(property: &serde_json::Value) -> Vec<&str> {
    match property.get("type") {
        Some(serde_json::Value::String(t)) => vec![t.as_str()],
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(|t| t.as_str()).collect(),
        _ => Vec::new(),
    }
}

fn is_type(value: &serde_json::Value, kind: &str) -> bool {
    match kind {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => true,
    }
}
