//! What slapgrid and the master give an instance, natively (no Python): `[slap-connection]`
//! comes with the render (`instance.rs`); here are the cookbook's recipes that talk to the
//! master — `slapconfiguration` (`.serialised`, `.jsonschema`, `.jsondump`), which reads the
//! instance's parameters, software type, titles and addresses from the local master,
//! `switch-softwaretype` (`slap_switch.rs`), which renders the instance profile of the
//! instance's software type,
//! `publish` (`.serialised`, `publish-early`), which record connection parameters with the
//! generation, and `request` (`.serialised`, `requestoptional[.serialised]`), which ask for a
//! child instance and read its connection parameters back.
//!
//! What the master knows is a [`Slap`] in the resolver's settings, fixed before the render
//! starts, so a render stays a pure function of its inputs: everything these recipes read is
//! in the generation's identity (`instance.rs`).

use std::collections::BTreeMap;

use slapstore_store::master::{Computer, Parameters};

use super::Part;
use crate::config::{Origin, Value};
use crate::error::Result;
use crate::evaluate::EvalOptions;

/// What the local master tells one instance's render.
#[derive(Debug, Clone, Default)]
pub struct Slap {
    pub computer: Computer,
    /// `slappartN`.
    pub partition_id: String,
    pub software_type: String,
    pub software_url: String,
    pub instance_title: String,
    pub root_instance_title: String,
    /// The requested state (`started`, `stopped`).
    pub state: String,
    pub parameters: Parameters,
    /// What the instance's current generation published (`publish-early` keeps it).
    pub published: Parameters,
    /// The connection parameters each instance it requested published, by requested title.
    pub children: BTreeMap<String, Parameters>,
    /// Values an earlier render of the same operation generated, by path in the partition
    /// (`cookbook/random.rs` uses them rather than generating again).
    pub generated: BTreeMap<String, String>,
    /// How a profile of this render is evaluated (`switch-softwaretype`'s sub-profile).
    pub eval: EvalOptions,
    /// The shared instances it hosts: each one's `slave_instance_list` entry
    /// (`master::Shared::entry`).
    pub shared: Vec<serde_json::Value>,
    /// In a profile `switch-softwaretype` renders: the options of the switching profile's
    /// `[slap-configuration]`, which that profile's `[slap-configuration]` takes
    /// (`slap_switch.rs`); empty otherwise.
    pub inherited: Vec<super::slap_switch::Inherited>,
}

/// A child instance a render requests (`request` recipes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The part that requested it.
    pub part: String,
    pub title: String,
    pub software_url: String,
    pub software_type: String,
    pub parameters: Parameters,
    /// `started`, `stopped` or `destroyed`.
    pub state: String,
    /// Where the instance should go (`sla-KEY` options: the master's `filter_kw`, such as
    /// `computer_guid`); the local master has one computer and ignores them.
    pub filter: Parameters,
    /// `requestoptional`: the render stands without what the instance did not publish.
    pub optional: bool,
    /// The keys of `return` waited for: all those of an instance that has published nothing
    /// yet (not deployed yet).
    pub missing: Vec<String>,
}

/// The recipes of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Configuration(Flavour),
    SwitchSoftwareType,
    /// `switch-softwaretype.noop`: what the switched-to profile's `[slap-configuration]` runs.
    SwitchNoop,
    Publish {
        serialised: bool,
    },
    PublishEarly,
    Request {
        serialised: bool,
        optional: bool,
    },
}

/// How `slapconfiguration` gives the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// As text, one `configuration.KEY` each.
    Plain,
    /// JSON in XML (`_`) unwrapped.
    Serialised,
    /// Checked against, and completed by, the release's JSON schema.
    JsonSchema,
    /// Written as JSON to `json-output`.
    JsonDump,
}

/// The recipe of `slapos.cookbook:ENTRY`, if it is one of this module's.
pub fn lookup(egg: &str, entry: &str) -> Option<Kind> {
    if egg != "slapos-cookbook" {
        return None;
    }
    Some(match entry {
        "slapconfiguration" => Kind::Configuration(Flavour::Plain),
        "slapconfiguration.serialised" => Kind::Configuration(Flavour::Serialised),
        "slapconfiguration.jsonschema" => Kind::Configuration(Flavour::JsonSchema),
        "slapconfiguration.jsondump" => Kind::Configuration(Flavour::JsonDump),
        "switch-softwaretype" => Kind::SwitchSoftwareType,
        "switch-softwaretype.noop" => Kind::SwitchNoop,
        "publish" => Kind::Publish { serialised: false },
        "publish.serialised" => Kind::Publish { serialised: true },
        "publish-early" => Kind::PublishEarly,
        "request" => Kind::Request {
            serialised: false,
            optional: false,
        },
        "request.serialised" => Kind::Request {
            serialised: true,
            optional: false,
        },
        "requestoptional" => Kind::Request {
            serialised: false,
            optional: true,
        },
        "requestoptional.serialised" => Kind::Request {
            serialised: true,
            optional: true,
        },
        _ => return None,
    })
}

/// Initialises a part of one of these recipes.
pub fn init(part: &mut Part, kind: Kind) -> Result<()> {
    let Some(slap) = part.r.settings.slap.clone() else {
        return Err(part.option_error(
            "recipe",
            "this recipe talks to the master: it runs only in an instance (`slapstore instance`)",
        ));
    };
    match kind {
        Kind::Configuration(flavour) => configuration(part, &slap, flavour),
        Kind::SwitchSoftwareType => super::slap_switch::switch(part, &slap),
        Kind::SwitchNoop => super::slap_switch::noop(part, &slap),
        Kind::Publish { serialised } => publish(part, serialised),
        Kind::PublishEarly => publish_early(part, &slap),
        Kind::Request {
            serialised,
            optional,
        } => request(part, &slap, serialised, optional),
    }
}

/// slapconfiguration's `unwrap`: the JSON of parameter `_` if there is one, else the
/// parameters as they are.
pub(super) fn unwrap_parameters(part: &Part, parameters: &Parameters) -> Result<serde_json::Value> {
    match parameters.get("_") {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            part.error(format!(
                "instance parameter `_` (JSON in XML) is not JSON: {e}"
            ))
        }),
        None => Ok(text_object(parameters)),
    }
}

pub(super) fn text_object(parameters: &Parameters) -> serde_json::Value {
    serde_json::Value::Object(
        parameters
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

/// `slapos.cookbook:slapconfiguration[.serialised|.jsonschema|.jsondump]`: the options
/// slapconfiguration's `fetch_parameter_dict` sets, from the local master.
fn configuration(part: &mut Part, slap: &Slap, flavour: Flavour) -> Result<()> {
    let idx = part.idx;
    let recipe = Origin::Recipe(part.recipe.clone());
    let asked = match part.get("partition-id")? {
        Some(p) => Some(p),
        None => part.get("partition")?,
    };
    if let Some(asked) = asked.filter(|a| a.trim() != slap.partition_id) {
        return Err(part.option_error(
            "partition-id",
            format!(
                "partition `{asked}` is not this instance's (`{}`): the local master tells an \
                 instance about its own partition only",
                slap.partition_id
            ),
        ));
    }
    let text = |part: &mut Part, key: &str, value: &str| part.set(key, value.to_owned());
    text(part, "instance-state", &slap.state);
    text(part, "slap-software-type", &slap.software_type);
    text(part, "slap-computer-partition-id", &slap.partition_id);
    text(part, "slap-computer-id", &slap.computer.id);
    text(part, "slap-software-release-url", &slap.software_url);
    text(part, "instance-title", &slap.instance_title);
    text(part, "root-instance-title", &slap.root_instance_title);
    text(part, "root-instance-short-title", &slap.root_instance_title);
    let guid = format!("{}-{}", slap.computer.id, slap.partition_id);
    text(part, "instance-guid", &guid);
    let set = |list: &[String]| {
        let mut sorted = list.to_vec();
        sorted.sort();
        sorted.dedup();
        sorted
    };
    let (ipv4, ipv6) = (set(&slap.computer.ipv4), set(&slap.computer.ipv6));
    for (key, list) in [("ipv4", &ipv4), ("ipv6", &ipv6)] {
        // a set in SlapOS's buildout: its text here is the addresses, one per line
        let value = serde_json::Value::Array(
            list.iter()
                .map(|a| serde_json::Value::String(a.clone()))
                .collect(),
        );
        part.r
            .typed
            .insert((part.name.clone(), key.to_owned()), value);
        part.r.set(idx, key, list.join("\n"), recipe.clone());
        // `min(set)`, as the cookbook picks it
        if let Some(first) = list.first() {
            part.set(&format!("{key}-random"), first.clone());
        }
    }
    part.r
        .set_typed(idx, "tap", serde_json::json!([]), recipe.clone());
    // the shared instances' parameters: text from outside, never substituted, as the
    // instance's own parameters
    let shared = serde_json::Value::Array(slap.shared.clone());
    part.r
        .set_parameter(idx, "slave-instance-list", shared.to_string());
    part.r.typed.insert(
        (part.name.clone(), "slave-instance-list".to_owned()),
        shared,
    );
    for key in ["storage-dict", "tap-network-information-dict"] {
        part.r
            .set_typed(idx, key, serde_json::json!({}), recipe.clone());
    }
    resources(part, slap)?;
    let parameters = match flavour {
        Flavour::Plain | Flavour::JsonDump => text_object(&slap.parameters),
        Flavour::Serialised => match unwrap_parameters(part, &slap.parameters)? {
            object @ serde_json::Value::Object(_) => object,
            _ => serde_json::json!({}),
        },
        Flavour::JsonSchema => super::slap_schema::parameters(part, slap)?,
    };
    part.r.typed.insert(
        (part.name.clone(), "configuration".to_owned()),
        parameters.clone(),
    );
    part.r
        .set_parameter(idx, "configuration", parameters.to_string());
    if let serde_json::Value::Object(map) = &parameters {
        for (key, value) in map {
            // SlapOS skips a key that buildout would read as `option = value` or `option:`
            if key.contains([':', '=']) || key.trim().is_empty() {
                continue;
            }
            let option = format!("configuration.{key}");
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            part.r
                .typed
                .insert((part.name.clone(), option.clone()), value.clone());
            part.r.set_parameter(idx, &option, text);
        }
    }
    if flavour == Flavour::JsonDump {
        let output = part.require("json-output")?;
        let text = serde_json::to_string_pretty(&parameters).unwrap_or_default();
        super::instance::add_file(
            part,
            "json-output",
            &output,
            super::instance::FileSpec::Text { text, mode: 0o600 },
        )?;
    }
    Ok(())
}

/// What slapconfiguration adds from the partition's resource file (slapformat's
/// `.slapos-resource`, its keys flattened with `-`), for the options not set already: the
/// partition (`reference`, `path`), its user (`user-name`, `user-path`, `user-shell`, which
/// slapformat gives every partition user) and `external-storage-list` (slapstore has none).
/// slapformat's tap, tun and addresses with their netmasks have no counterpart here.
fn resources(part: &mut Part, slap: &Slap) -> Result<()> {
    let partition = part.buildout("directory")?;
    let reference = Some(slap.partition_id.clone());
    let user = super::cookbook::userinfo::user_name();
    let texts = [
        ("reference", reference),
        ("path", Some(partition.clone())),
        ("user-name", user),
        ("user-path", Some(partition)),
        ("user-shell", Some("/bin/sh".to_owned())),
    ];
    for (key, value) in texts {
        if let Some(value) = value {
            if part.get(key)?.is_none() {
                part.set(key, value);
            }
        }
    }
    if part.get("external-storage-list")?.is_none() {
        let recipe = Origin::Recipe(part.recipe.clone());
        let idx = part.idx;
        part.r
            .set_typed(idx, "external-storage-list", serde_json::json!([]), recipe);
    }
    Ok(())
}

/// `slapos.cookbook:publish[.serialised]`: the options of this section and of the sections
/// `-extends` names (transitively; `-publish` lists which of a section's to take, else all but
/// `recipe` and `-...`) become the instance's connection parameters, recorded with its
/// generation; `.serialised` publishes them as JSON under `_`.
fn publish(part: &mut Part, serialised: bool) -> Result<()> {
    let mut done = vec![part.name.clone()];
    let mut todo = vec![part.name.clone()];
    let mut published = BTreeMap::new();
    while let Some(name) = todo.pop() {
        let idx = part.r.section(&name)?;
        let extends = part.r.get(idx, "-extends", None)?.unwrap_or_default();
        for e in extends.split_whitespace() {
            if !done.iter().any(|d| d == e) {
                done.push(e.to_owned());
                todo.push(e.to_owned());
            }
        }
        let keys: Vec<String> = match part.r.get(idx, "-publish", None)? {
            Some(list) => list.split_whitespace().map(str::to_owned).collect(),
            None => part
                .r
                .items(idx)?
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k != "recipe" && !k.starts_with('-'))
                .collect(),
        };
        for key in keys {
            let value = part.r.require(idx, &key)?;
            published.insert(key, value);
        }
    }
    if part.get("-slave-reference")?.is_some() {
        // a shared instance's parameters: the local master has no shared instances
        return Ok(());
    }
    let connection = &mut part.r.instance_output.connection;
    if serialised {
        let object: serde_json::Map<String, serde_json::Value> = published
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        connection.insert(
            "_".to_owned(),
            serde_json::Value::Object(object).to_string(),
        );
    } else {
        connection.extend(published);
    }
    Ok(())
}

/// `slapos.cookbook:publish-early`: for each `-init` line `KEY SECTION:OPTION` (KEY not given
/// here), OPTION of SECTION is first set to the value this instance published under KEY, if
/// it did, then read; its value becomes this section's KEY, and `-publish` lists what a
/// `publish` that `-extends` this section takes.
fn publish_early(part: &mut Part, slap: &Slap) -> Result<()> {
    let init = part.require("-init")?;
    let published = match slap.published.get("_") {
        Some(text) => text_values(text),
        None => slap.published.clone(),
    };
    let mut keys: Vec<String> = part
        .r
        .items(part.idx)?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k != "recipe" && !k.starts_with('-'))
        .collect();
    for line in init.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((key, reference)) = line
            .split_once(char::is_whitespace)
            .map(|(k, r)| (k, r.trim()))
        else {
            return Err(part.option_error("-init", format!("`{line}` is not `KEY SECTION:OPTION`")));
        };
        if part.get(key)?.is_some() {
            continue;
        }
        let Some((section, option)) = reference.split_once(':') else {
            return Err(
                part.option_error("-init", format!("`{reference}` is not `SECTION:OPTION`"))
            );
        };
        if let Some(previous) = published.get(key) {
            if part.r.sections.contains_key(section) {
                return Err(part.option_error(
                    "-init",
                    format!(
                        "[{section}] was used before [{}] could set `{option}`",
                        part.name
                    ),
                ));
            }
            let raw = part.r.raw.entry(section.to_owned()).or_default();
            raw.insert(
                option.to_owned(),
                Value::new(previous.clone(), Origin::Parameter),
            );
        }
        let idx = part.r.section(section)?;
        let value = part.r.require(idx, option)?;
        part.set(key, value);
        keys.push(key.to_owned());
    }
    part.set("-publish", keys.join(" "));
    Ok(())
}

/// `slapos.cookbook:request[.serialised]`, `requestoptional[.serialised]`: asks the master for
/// an instance titled `name` of `software-url` (`software-type`, `config-*` parameters or, for
/// `.serialised`, all of them as JSON under `_`; `state`; `sla-*`, where it should go), and
/// sets `connection-KEY` for each KEY of `return` from what that instance published. Missing
/// ones are an error for `request`, empty for `requestoptional`. A shared (slave) instance
/// (`shared` or `slave` true) has no host at the local master: `requestoptional` gets empty
/// values, `request` fails.
fn request(part: &mut Part, slap: &Slap, serialised: bool, optional: bool) -> Result<()> {
    let title = part.require("name")?.trim().to_owned();
    let software_url = part.require("software-url")?.trim().to_owned();
    let software_type = part
        .get("software-type")?
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| slapstore_store::master::DEFAULT_SOFTWARE_TYPE.to_owned());
    let state = part
        .get("state")?
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "started".to_owned());
    if !matches!(state.as_str(), "started" | "stopped" | "destroyed") {
        return Err(part.option_error(
            "state",
            format!("`{state}` is not a state: `started`, `stopped` or `destroyed`"),
        ));
    }
    let shared = part.get("slave")?.as_deref().map(str::trim) == Some("true")
        || part.get("shared")?.as_deref().map(str::trim) == Some("true");
    if shared {
        if !optional {
            return Err(part.option_error(
                "shared",
                "the local master has no host for shared (slave) instances: only \
                 `requestoptional` asks for one (and gets no connection parameters)",
            ));
        }
        // the request fails at the local master, which `requestoptional` tolerates as the
        // cookbook's does: each returned parameter empty, no instance state
        for key in part.get("return")?.unwrap_or_default().split_whitespace() {
            part.set(&format!("connection-{key}"), String::new());
        }
        part.set("requested-state", state);
        return Ok(());
    }
    let mut config = serde_json::Map::new();
    let mut filter = Parameters::new();
    for (key, value) in part.r.items(part.idx)? {
        if let Some(name) = key.strip_prefix("config-") {
            config.insert(name.to_owned(), serde_json::Value::String(value));
        } else if let Some(name) = key.strip_prefix("sla-").filter(|_| !value.is_empty()) {
            filter.insert(name.to_owned(), value);
        }
    }
    let mut parameters = Parameters::new();
    if serialised {
        parameters.insert(
            "_".to_owned(),
            serde_json::Value::Object(config).to_string(),
        );
    } else {
        for (k, v) in config {
            if let serde_json::Value::String(v) = v {
                parameters.insert(k, v);
            }
        }
    }
    let requests = &part.r.instance_output.requests;
    if requests.iter().any(|r| r.title == title) {
        return Err(part.option_error(
            "name",
            format!("instance `{title}` is requested by another part too"),
        ));
    }
    let deployed = slap.children.contains_key(&title);
    let published = slap.children.get(&title).cloned().unwrap_or_default();
    let published = if serialised {
        match published.get("_") {
            Some(text) => text_values(text),
            None => published,
        }
    } else {
        published
    };
    let returned = part.get("return")?.unwrap_or_default();
    let mut missing = Vec::new();
    for key in returned.split_whitespace() {
        let value = match published.get(key) {
            Some(v) => v.clone(),
            None => {
                missing.push(key.to_owned());
                String::new()
            }
        };
        part.r
            .set_parameter(part.idx, &format!("connection-{key}"), value);
    }
    part.set("instance-state", state.clone());
    part.r.instance_output.requests.push(Request {
        part: part.name.clone(),
        title,
        software_url,
        software_type,
        parameters,
        state,
        filter,
        optional,
        missing: if deployed {
            Vec::new()
        } else {
            missing.clone()
        },
    });
    // a child not deployed yet publishes nothing: the render is done again once it is
    // (`instance.rs`); a missing parameter is an error only then
    if !missing.is_empty() && !optional && deployed {
        return Err(part.option_error(
            "return",
            format!(
                "the requested instance published no connection parameter {}",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}

/// A JSON object's values as text (strings as they are, the rest as their JSON); empty when
/// `text` is not a JSON object.
fn text_values(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str::<BTreeMap<String, serde_json::Value>>(text)
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect()
        })
        .unwrap_or_default()
}
