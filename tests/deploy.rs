//! A SlapOS-style release deployed end to end, as issue 15 asks: its instance profile reads its
//! parameters through `slapconfiguration.serialised` (SlapOS's XML with JSON under `_`), makes
//! directories, generates a password, renders a page with Jinja2, wraps a service and publishes
//! its URL and password with `publish.serialised`; the service answers on 127.0.0.1, an upgrade
//! with a new parameter serves the new page and keeps the password, `stop` stops it.

use std::net::TcpStream;

use serde_json::Value;

use crate::common::{have, Root, TestEnv};
use crate::services::{free_port, page, state, Supervisord};

/// The release: its instance profile is rendered at software time, as SlapOS releases do.
const SOFTWARE: &str = r#"[buildout]
parts = instance-profile

[instance-profile]
recipe = slapos.recipe.template
url = ${:_profile_base_location_}/instance.cfg.in
output = ${buildout:directory}/instance.cfg
"#;

/// The instance profile, in the shape of the corpus's (software/helloworld, stack/slapos).
const INSTANCE: &str = r#"[buildout]
parts =
  directory
  page
  server
  publish-connection-parameter

[instance-parameter]
recipe = slapos.cookbook:slapconfiguration.serialised
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
url = $${slap-connection:server-url}
key = $${slap-connection:key-file}
cert = $${slap-connection:cert-file}

[directory]
recipe = slapos.cookbook:mkdirectory
var = $${buildout:directory}/var
log = $${:var}/log

[password]
recipe = slapos.cookbook:generate.password
bytes = 12

[page]
recipe = slapos.recipe.template:jinja2
output = $${buildout:directory}/etc/www/index.html
context =
  key parameters instance-parameter:configuration
  key partition slap-connection:partition-id
inline =
  {{ parameters.get('greeting', 'Hello') }} from {{ partition }}

[server]
recipe = slapos.cookbook:wrapper
command-line =
  python3 -m http.server --bind 127.0.0.1
    --directory $${buildout:directory}/etc/www $${instance-parameter:configuration.port}
wrapper-path = $${buildout:directory}/etc/service/server

[publish-connection-parameter]
recipe = slapos.cookbook:publish.serialised
url = http://127.0.0.1:$${instance-parameter:configuration.port}/
password = $${password:passwd}
"#;

/// SlapOS's parameter XML, the parameters as JSON under `_` (what `.serialised` reads).
fn parameters(env: &TestEnv, name: &str, port: u16, greeting: &str) -> String {
    let json = serde_json::json!({"port": port, "greeting": greeting}).to_string();
    let xml = format!(
        "<?xml version='1.0' encoding='utf-8'?>\n<instance>\n  <parameter id=\"_\">{}</parameter>\n</instance>\n",
        json.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;")
    );
    env.write(name, &xml).to_string_lossy().into_owned()
}

/// The connection parameters `publish.serialised` published, decoded from `_`.
fn published(r: &Root, name: &str) -> Value {
    let shown: Value =
        serde_json::from_str(&r.ok(&["instance", "show", name, "--json"])).expect("json");
    let serialised = shown["connection"]["_"]
        .as_str()
        .unwrap_or_else(|| panic!("no `_` in {shown}"));
    serde_json::from_str(serialised).expect("published JSON")
}

#[test]
fn a_slapos_style_release_deploys_serves_publishes_and_keeps_its_password() {
    let name = "a_slapos_style_release_deploys_serves_publishes_and_keeps_its_password";
    if !have(name, &["supervisord", "python3"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let _guard = Supervisord(r.root.clone());
    env.write("web/instance.cfg.in", INSTANCE);
    let software = env
        .write("web/software.cfg", SOFTWARE)
        .to_string_lossy()
        .into_owned();
    let port = free_port();
    let first = parameters(&env, "params-1.xml", port, "Hello");
    r.ok(&[
        "instance",
        "create",
        "web",
        "--software",
        &software,
        "--parameters",
        &first,
    ]);
    r.ok(&["instance", "start", "web"]);
    let answer = page(port, "Hello from slappart0");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");

    let connection = published(&r, "web");
    assert_eq!(connection["url"], format!("http://127.0.0.1:{port}/"));
    let password = connection["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no password in {connection}"))
        .to_owned();
    assert_eq!(password.len(), 12, "{password}");
    assert!(r.partition("web").join("var/log").is_dir());

    // a new parameter: the new page is served, the password is the one generated at first
    let second = parameters(&env, "params-2.xml", port, "Bonjour");
    let out = r.ok(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &software,
        "--parameters",
        &second,
    ]);
    assert!(!out.starts_with("unchanged"), "{out}");
    page(port, "Bonjour from slappart0");
    let connection = published(&r, "web");
    assert_eq!(connection["password"], password.as_str());
    // and a rollback keeps it too
    r.ok(&["instance", "rollback", "web"]);
    page(port, "Hello from slappart0");
    assert_eq!(published(&r, "web")["password"], password.as_str());

    r.ok(&["instance", "stop", "web"]);
    state(&r, "web", "web-server", "STOPPED");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still answers after stop"
    );
}
