//! `slapos.cookbook:slapconfiguration.jsonschema` end to end: a release in the corpus's shape
//! (software/asterisk's and software/mail-server-relay's: `software.cfg.json` and its request
//! schemas downloaded by the software, schemas referring to one another) deployed for real
//! and as a dry run; defaults applied along the schemas that apply (behind `$ref`s, in the
//! `anyOf` branch that validates, nested in defaults), texts unstringified, the software
//! type's entry found by its key, and bad parameters refused naming the parameter and rule.

use serde_json::Value;

use crate::common::{Root, TestEnv};

/// From software/mail-server-relay/software.cfg.json: two software types, none `default`.
const SOFTWARE_JSON: &str = r#"{
  "name": "Mail Server", "serialisation": "json-in-xml",
  "software-type": {
    "cluster": {"title": "Cluster", "software-type": "cluster",
      "request": "instance-cluster-input-schema.json", "response": "out.json", "index": 0},
    "relay": {"title": "Relay", "software-type": "relay",
      "request": "instance-relay-input-schema.json", "response": "out.json", "index": 1}
  }
}"#;

/// Cut from software/mail-server-relay/instance-relay-input-schema.json: its properties are
/// behind an `allOf` and `$ref`s into the cluster's schema.
const RELAY: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "allOf": [
    {"$ref": "./instance-cluster-input-schema.json#/definitions/relay-config"},
    {"type": "object", "properties": {
      "mail-domains": {"type": "array", "default": [],
        "items": {"$ref": "./instance-cluster-input-schema.json#/definitions/domain"}},
      "fqdn": {"$ref": "./instance-cluster-input-schema.json#/definitions/fqdn"}
    }}
  ]
}"#;

const CLUSTER: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["topology"],
  "definitions": {
    "fqdn": {"type": "string", "default": "relay.example.com"},
    "domain": {"type": "object", "additionalProperties": false,
      "properties": {"name": {"type": "string"}, "port": {"type": "integer", "default": 25}}},
    "relay-config": {"type": "object", "properties": {
      "proxy": {"type": "object", "default": {}, "properties": {
        "host": {"type": "string", "default": "localhost"},
        "tls": {"type": "boolean", "default": false}}},
      "mode": {"anyOf": [
        {"type": "string", "enum": ["auto"]},
        {"type": "object", "properties": {"level": {"type": "integer", "default": 3}}}
      ], "default": "auto"},
      "max-size": {"type": "integer", "default": 10}
    }}
  },
  "properties": {"topology": {"type": "object"}}
}"#;

/// software/asterisk/software.cfg's way: the JSON files downloaded by the software, each its
/// own `download` part; the instance profile (software/mail-server-relay/instance.cfg.in's
/// `[slap-configuration]`) points at the downloaded `software.cfg.json`.
fn release(env: &TestEnv) -> String {
    env.write("rel/software.cfg.json", SOFTWARE_JSON);
    env.write("rel/instance-relay-input-schema.json", RELAY);
    env.write("rel/instance-cluster-input-schema.json", CLUSTER);
    env.write(
        "rel/instance.cfg.in",
        "[buildout]\nparts = conf\n\n[slap-configuration]\n<= slap-connection\n\
         recipe = slapos.cookbook:slapconfiguration.jsonschema\n\
         jsonschema = ${software.cfg.json:target}\n\
         depends =\n  ${instance-relay-input-schema.json:target}\n  \
         ${instance-cluster-input-schema.json:target}\n\
         set-default = all\nvalidate-parameters = all\nunstringify = main\n\n\
         [conf]\nrecipe = slapos.recipe.template:jinja2\n\
         output = $${buildout:directory}/etc/conf.json\n\
         context =\n  import json_module json\n  section s slap-configuration\n\
         inline = {{ json_module.dumps(s['configuration'], sort_keys=True) }}\n",
    );
    env.write(
        "rel/software.cfg",
        "[buildout]\nparts = instance-profile\n\n[instance-profile]\n\
         recipe = slapos.recipe.template\n\
         url = ${:_profile_base_location_}/instance.cfg.in\n\
         output = ${buildout:directory}/instance.cfg\n\n\
         [copy-to-instance]\nrecipe = slapos.recipe.build:download\n\
         url = ${:_profile_base_location_}/${:_buildout_section_name_}\n\
         filename = ${:_buildout_section_name_}\n\n\
         [software.cfg.json]\n<= copy-to-instance\n\n\
         [instance-relay-input-schema.json]\n<= copy-to-instance\n\n\
         [instance-cluster-input-schema.json]\n<= copy-to-instance\n",
    )
    .to_string_lossy()
    .into_owned()
}

fn create(r: &Root, name: &str, software: &str, extra: &[&str]) -> crate::common::Output {
    let mut args = vec!["instance", "create", name, "--software", software];
    args.extend_from_slice(extra);
    r.run(&args)
}

fn configuration(r: &Root, name: &str) -> Value {
    let text = std::fs::read_to_string(r.partition(name).join("etc/conf.json")).expect("conf");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn defaults_follow_references_and_the_branch_that_validates() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env);
    let out = create(
        &r,
        "relay",
        &software,
        &[
            "--software-type",
            "relay",
            "-p",
            r#"_={"proxy": {"tls": "True"}, "mode": {}, "max-size": "20", "mail-domains": [{"name": "a.lan"}]}"#,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        configuration(&r, "relay"),
        serde_json::json!({
            // texts made what the schema's `type` says, nested ones too
            "max-size": 20,
            // a default nested in a given object; the object branch of `anyOf` gets its own
            "proxy": {"tls": true, "host": "localhost"},
            "mode": {"level": 3},
            // defaults behind `items` and `$ref`s into another file
            "mail-domains": [{"name": "a.lan", "port": 25}],
            "fqdn": "relay.example.com"
        })
    );
}

#[test]
fn empty_parameters_take_every_default_when_the_schema_requires_none() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env);
    let out = create(&r, "relay", &software, &["--software-type", "relay"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        configuration(&r, "relay"),
        serde_json::json!({
            "proxy": {"host": "localhost", "tls": false},
            "mode": "auto",
            "max-size": 10,
            "mail-domains": [],
            "fqdn": "relay.example.com"
        })
    );
}

#[test]
fn bad_parameters_name_the_parameter_and_the_rule_and_change_nothing() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env);
    let out = create(
        &r,
        "bad",
        &software,
        &[
            "--software-type",
            "relay",
            "-p",
            r#"_={"max-size": "big", "mail-domains": [{"name": "a.lan", "extra": 1}]}"#,
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    let err = &out.stderr;
    assert!(
        err.contains("[slap-configuration]") && err.contains("Invalid parameters"),
        "{err}"
    );
    assert!(
        err.contains(r#"$.max-size: "big" is not of type "integer""#),
        "{err}"
    );
    assert!(
        err.contains("$.mail-domains[0]: Additional properties"),
        "{err}"
    );
    assert!(err.contains("additionalProperties"), "{err}");
    assert!(!r.partition("bad").exists());
    // the cluster type requires its topology
    let out = create(&r, "cl", &software, &["--software-type", "cluster"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(r#"$: "topology" is a required property"#),
        "{}",
        out.stderr
    );
    // as slapos.core's schema lookup: the entry of the type's key, and there is no `default`
    let out = create(&r, "d", &software, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "requested software-type 'default' seems to have no JSON schema entry in the \
             software.cfg.json"
        ),
        "{}",
        out.stderr
    );
    assert!(!r.partition("cl").exists() && !r.partition("d").exists());
}

/// A dry run reads the schemas the software would download, from their planned derivations,
/// and checks the parameters against them as the deploy does; it builds nothing.
#[test]
fn a_dry_run_reads_the_planned_schemas() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env);
    let out = create(
        &r,
        "dry",
        &software,
        &[
            "--dry-run",
            "--software-type",
            "relay",
            "-p",
            r#"_={"max-size": 5}"#,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("etc/conf.json"), "{}", out.stdout);
    assert!(out.stdout.contains("not built"), "{}", out.stdout);
    assert!(!r.partition("dry").exists());
    let out = create(
        &r,
        "dry",
        &software,
        &[
            "--dry-run",
            "--software-type",
            "relay",
            "-p",
            r#"_={"max-size": "x"}"#,
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("$.max-size"), "{}", out.stderr);
}
