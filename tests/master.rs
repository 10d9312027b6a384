//! slapstore as the local master, end to end through the binary: the computer and its
//! partitions, `[slap-connection]`, `slapconfiguration` (`.serialised`, `.jsonschema`),
//! parameters as JSON or SlapOS's XML, software types and `switch-softwaretype`, published
//! connection parameters (recorded with the generation, restored by rollback), and requested
//! child instances.

use serde_json::Value;

use crate::common::{Root, TestEnv};

/// A release whose instance profile (`instance.cfg.in` beside it) is rendered at software time.
fn release(env: &TestEnv, dir: &str, instance: &str, extra: &str) -> String {
    env.write(&format!("{dir}/instance.cfg.in"), instance);
    env.write(
        &format!("{dir}/software.cfg"),
        &format!(
            "[buildout]\nparts = instance-profile\n\n[instance-profile]\n\
             recipe = slapos.recipe.template\n\
             url = ${{:_profile_base_location_}}/instance.cfg.in\n\
             output = ${{buildout:directory}}/instance.cfg\n{extra}"
        ),
    )
    .to_string_lossy()
    .into_owned()
}

fn show(r: &Root, name: &str) -> Value {
    serde_json::from_str(&r.ok(&["instance", "show", name, "--json"])).expect("json")
}

fn read(r: &Root, name: &str, file: &str) -> String {
    std::fs::read_to_string(r.partition(name).join(file))
        .unwrap_or_else(|e| panic!("{name}/{file}: {e}"))
}

/// From software/helloworld/instance.cfg.in (the corpus): slapconfiguration with the
/// connection's options, a default under `configuration.`, a wrapper on `ipv6-random`, and
/// `publish` of a URL and the name.
const HELLO: &str = r#"[buildout]
parts =
  directory
  helloweb-python
  slap-info
  publish-connection-parameter

[instance-parameter]
recipe = slapos.cookbook:slapconfiguration
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
url = $${slap-connection:server-url}
key = $${slap-connection:key-file}
cert = $${slap-connection:cert-file}
configuration.name = John Doe

[directory]
recipe = slapos.cookbook:mkdirectory
home = $${buildout:directory}
etc = $${:home}/etc
var = $${:home}/var
service = $${:etc}/service
log = $${:var}/log

[helloweb-python]
ipv6 = $${instance-parameter:ipv6-random}
port = 7777
url = http://[$${:ipv6}]:$${:port}
logfile = $${directory:log}/helloweb-python.log
recipe = slapos.cookbook:wrapper
command-line =
    /bin/helloweb-python --logfile $${:logfile}
        $${:ipv6} $${:port} $${instance-parameter:configuration.name}
wrapper-path = $${directory:service}/helloweb-python

[slap-info]
recipe = slapos.recipe.template
output = $${buildout:directory}/etc/slap.txt
inline =
  computer=$${slap-connection:computer-id}
  partition=$${slap-connection:partition-id}
  software=$${slap-connection:software-release-url}
  type=$${instance-parameter:slap-software-type}
  title=$${instance-parameter:instance-title}
  root=$${instance-parameter:root-instance-title}
  ipv4=$${instance-parameter:ipv4-random}
  state=$${instance-parameter:instance-state}

[publish-connection-parameter]
recipe = slapos.cookbook:publish
name = Hello $${instance-parameter:configuration.name}!
url.python = $${helloweb-python:url}
"#;

#[test]
fn slapconfiguration_and_publish_from_the_local_master() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env, "hello", HELLO, "");
    env.write(
        "root/etc/slapstore.toml",
        "computer-id = \"COMP-42\"\nipv6 = [\"2001:db8::7\", \"2001:db8::3\"]\n",
    );
    r.ok(&[
        "instance",
        "create",
        "hello",
        "--software",
        &software,
        "-p",
        "name=Alice",
    ]);
    r.ok(&["instance", "create", "anon", "--software", &software]);

    let wrapper = read(&r, "hello", "etc/service/helloweb-python");
    // `min` of the address set, and the parameter over the profile's default
    assert!(wrapper.contains("2001:db8::3 7777 Alice"), "{wrapper}");
    let info = read(&r, "hello", "etc/slap.txt");
    for line in [
        "computer=COMP-42",
        "partition=slappart0",
        &format!("software={software}"),
        "type=default",
        "title=hello",
        "root=hello",
        "ipv4=127.0.0.1",
        "state=started",
    ] {
        assert!(info.contains(line), "`{line}` in {info}");
    }
    let shown = show(&r, "hello");
    assert_eq!(
        shown["connection"],
        serde_json::json!({"name": "Hello Alice!", "url.python": "http://[2001:db8::3]:7777"})
    );
    assert_eq!(shown["partition_id"], "slappart0");
    assert_eq!(shown["software_type"], "default");
    assert_eq!(shown["requested_state"], "started");
    assert_eq!(shown["parent"], Value::Null);
    // the second instance is on the next partition, with the profile's default
    let anon = show(&r, "anon");
    assert_eq!(anon["partition_id"], "slappart1");
    assert_eq!(anon["connection"]["name"], "Hello John Doe!");
    let text = r.ok(&["instance", "show", "hello"]);
    assert!(text.contains("published   name = Hello Alice!"), "{text}");

    // the published set belongs to the generation: an upgrade changes it, a rollback
    // restores it, an upgrade that changes nothing keeps it
    r.ok(&[
        "instance",
        "upgrade",
        "hello",
        "--software",
        &software,
        "-p",
        "name=Bob",
    ]);
    assert_eq!(show(&r, "hello")["connection"]["name"], "Hello Bob!");
    r.ok(&["instance", "rollback", "hello"]);
    assert_eq!(show(&r, "hello")["connection"]["name"], "Hello Alice!");
    let out = r.ok(&["instance", "upgrade", "hello", "--software", &software]);
    assert!(out.starts_with("unchanged"), "{out}");

    // a partition freed by destroy is taken again
    r.ok(&["instance", "destroy", "hello"]);
    r.ok(&["instance", "create", "again", "--software", &software]);
    assert_eq!(show(&r, "again")["partition_id"], "slappart0");
}

#[test]
fn the_computer_configuration_is_checked() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env, "hello", HELLO, "");
    env.write("root/etc/slapstore.toml", "ipv4 = [\"127.0.0.300\"]\n");
    let out = r.run(&["instance", "create", "a", "--software", &software]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("slapstore.toml") && out.stderr.contains("127.0.0.300"),
        "{}",
        out.stderr
    );
    // a computer of two partitions hosts two instances
    env.write("root/etc/slapstore.toml", "partition-count = 2\n");
    r.ok(&["instance", "create", "a", "b", "--software", &software]);
    let out = r.run(&["instance", "create", "c", "--software", &software]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no free partition"), "{}", out.stderr);
    assert!(!r.partition("c").exists());
}

/// `software/mail-server/instance.cfg.in`'s `key user_name slap-configuration:user-name`:
/// what slapconfiguration takes from the partition's resource file (slapformat's
/// `.slapos-resource`), read by Jinja2.
const RESOURCES: &str = r#"[buildout]
parts = page

[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
url = $${slap-connection:server-url}
key = $${slap-connection:key-file}
cert = $${slap-connection:cert-file}

[page]
recipe = slapos.recipe.template:jinja2
output = $${buildout:directory}/page
inline =
  user={{ user_name }} home={{ user_path }} shell={{ shell }}
  path={{ path }} reference={{ reference }} storage={{ storage | length }}
context =
  key user_name slap-configuration:user-name
  key user_path slap-configuration:user-path
  key shell slap-configuration:user-shell
  key path slap-configuration:path
  key reference slap-configuration:reference
  key storage slap-configuration:external-storage-list
"#;

#[test]
fn slapconfiguration_gives_the_partition_and_its_user() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env, "res", RESOURCES, "");
    r.ok(&["instance", "create", "mail", "--software", &software]);
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id");
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let partition = r.partition("mail").display().to_string();
    let page = read(&r, "mail", "page");
    let want = format!(
        "user={user} home={partition} shell=/bin/sh\npath={partition} reference=slappart0 \
         storage=0"
    );
    assert_eq!(page.trim(), want);
}

/// `.serialised` with JSON-in-XML parameters, read by Jinja2 through `key` and `section`
/// contexts as values (a list stays a list; `key slapparameter_dict
/// slap-configuration:configuration` is how 48 profiles of the corpus read them), and
/// `publish.serialised`.
const SERIALISED: &str = r#"[buildout]
parts = page publish

[slap-configuration]
recipe = slapos.cookbook:slapconfiguration.serialised
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
url = $${slap-connection:server-url}
key = $${slap-connection:key-file}
cert = $${slap-connection:cert-file}

[page]
recipe = slapos.recipe.template:jinja2
output = $${buildout:directory}/etc/page.txt
context =
  section slap slap-configuration
  key slapparameter_dict slap-configuration:configuration
inline =
  {% set p = slapparameter_dict -%}
  name={{ p['name'] }}
  {% for port in p['ports'] %}port={{ port }}
  {% endfor %}ipv6={{ slap['ipv6'] | join(',') }}

[publish]
recipe = slapos.cookbook:publish.serialised
name = $${slap-configuration:configuration.name}
"#;

#[test]
fn serialised_parameters_from_xml_or_json_files() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env, "ser", SERIALISED, "");
    let xml = env.write(
        "params.xml",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<instance>\n\
         <parameter id=\"_\">{\"name\": \"Bob &amp; co\", \"ports\": [8080, 8081]}</parameter>\n\
         </instance>\n",
    );
    r.ok(&[
        "instance",
        "create",
        "x",
        "--software",
        &software,
        "--parameters",
        &xml.to_string_lossy(),
    ]);
    let page = read(&r, "x", "etc/page.txt");
    assert_eq!(
        page, "name=Bob & co\nport=8080\nport=8081\nipv6=::1",
        "{page}"
    );
    let shown = show(&r, "x");
    assert_eq!(
        shown["current"]["parameters"]["_"]
            .as_str()
            .map(|s| s.contains("8081")),
        Some(true)
    );
    let published: Value =
        serde_json::from_str(shown["connection"]["_"].as_str().expect("`_`")).expect("json");
    assert_eq!(published, serde_json::json!({"name": "Bob & co"}));

    // a JSON file holding a list is passed whole as `_`, the same parameters
    let json = env.write(
        "params.json",
        r#"{"name": "Bob & co", "ports": [8080, 8081]}"#,
    );
    r.ok(&[
        "instance",
        "create",
        "y",
        "--software",
        &software,
        "--parameters",
        &json.to_string_lossy(),
    ]);
    assert_eq!(read(&r, "y", "etc/page.txt"), page);

    // bad XML names the file and line, and makes nothing
    let bad = env.write(
        "bad.xml",
        "<instance>\n<parameter>1</parameter>\n</instance>\n",
    );
    let out = r.run(&[
        "instance",
        "create",
        "z",
        "--software",
        &software,
        "--parameters",
        &bad.to_string_lossy(),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("bad.xml`:2:1") && out.stderr.contains("without an `id`"),
        "{}",
        out.stderr
    );
    assert!(!r.partition("z").exists());
}

/// `.jsonschema` (as software/npm-project's instance.cfg.in uses it): defaults set from the
/// schema, integers unstringified, bad parameters refused with the schema's reason.
#[test]
fn jsonschema_sets_defaults_and_validates() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "js/software.cfg.json",
        r#"{"name": "x", "serialisation": "json-in-xml",
            "software-type": {"default": {"title": "Default", "software-type": "default",
              "request": "instance-input-schema.json", "response": "out.json"}}}"#,
    );
    env.write(
        "js/instance-input-schema.json",
        r#"{"type": "object", "required": ["repo-url"], "properties": {
             "repo-url": {"type": "string"},
             "branch": {"type": "string", "default": "master"},
             "port": {"type": "integer", "default": 3000}}}"#,
    );
    let instance = format!(
        "[buildout]\nparts = conf\n\n[slap-configuration]\n<= slap-connection\n\
         recipe = slapos.cookbook:slapconfiguration.jsonschema\n\
         jsonschema = {}/js/software.cfg.json\nset-default = main\n\
         validate-parameters = all\nunstringify = main\n\n[conf]\n\
         recipe = slapos.recipe.template:jinja2\noutput = $${{buildout:directory}}/etc/conf\n\
         context = section s slap-configuration\ninline =\n  \
         {{{{ s['configuration.repo-url'] }}}} {{{{ s['configuration.branch'] }}}} \
         {{{{ s['configuration']['port'] + 1 }}}} \
         {{{{ s['valid-shared-instance-list'] | length }}}}\n",
        env.path().display()
    );
    let software = release(&env, "js", &instance, "");
    r.ok(&[
        "instance",
        "create",
        "ok",
        "--software",
        &software,
        "-p",
        r#"_={"repo-url": "https://x/r.git", "port": "8000"}"#,
    ]);
    assert_eq!(read(&r, "ok", "etc/conf"), "https://x/r.git master 8001 0");
    let out = r.run(&[
        "instance",
        "create",
        "bad",
        "--software",
        &software,
        "-p",
        r#"_={"port": 1}"#,
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(r#"$: "repo-url" is a required property"#),
        "{}",
        out.stderr
    );
    assert!(!r.partition("bad").exists());
}

/// A release with two software types (`switch-softwaretype`, as 41 releases of the corpus
/// use it); the default type requests a child of type `front` on another partition and
/// publishes what the child published.
fn typed_release(env: &TestEnv) -> String {
    env.write(
        "typed/instance-front.cfg.in",
        r#"[buildout]
parts = page publish
[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
configuration.greeting = hello
[page]
recipe = slapos.recipe.template
output = $${buildout:directory}/etc/page
inline = front $${slap-configuration:configuration.greeting} for $${slap-configuration:root-instance-title}
[publish]
recipe = slapos.cookbook:publish
url = http://front/$${slap-configuration:configuration.greeting}
"#,
    );
    env.write(
        "typed/instance-default.cfg.in",
        r#"[buildout]
parts = front publish optional
[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
configuration.greeting = hi
configuration.front-state = started
[front]
recipe = slapos.cookbook:request
name = Front End
software-url = $${slap-connection:software-release-url}
software-type = front
config-greeting = $${slap-configuration:configuration.greeting}
return = url
state = $${slap-configuration:configuration.front-state}
[optional]
recipe = slapos.cookbook:requestoptional
name = spare
software-url = $${slap-connection:software-release-url}
software-type = front
return = url nothing
[publish]
recipe = slapos.cookbook:publish
front-url = $${front:connection-url}
spare-nothing = $${optional:connection-nothing}
"#,
    );
    let instance = r#"[buildout]
parts = switch
[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
[dynamic-default]
output = ${instance-default:output}
[dynamic-front]
output = ${instance-front:output}
[switch]
recipe = slapos.cookbook:switch-softwaretype
default = dynamic-default:output
front = dynamic-front:output
"#;
    release(
        env,
        "typed",
        instance,
        "\n[instance-default]\nrecipe = slapos.recipe.template\n\
         url = ${:_profile_base_location_}/instance-default.cfg.in\n\
         output = ${buildout:directory}/instance-default.cfg\n\n[instance-front]\n\
         recipe = slapos.recipe.template\n\
         url = ${:_profile_base_location_}/instance-front.cfg.in\n\
         output = ${buildout:directory}/instance-front.cfg\n\n[buildout]\n\
         parts += instance-default instance-front\n",
    )
}

#[test]
fn switch_softwaretype_renders_the_profile_of_the_instance_type() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = typed_release(&env);
    r.ok(&[
        "instance",
        "create",
        "f",
        "--software",
        &software,
        "--software-type",
        "front",
        "-p",
        "greeting=yo",
    ]);
    assert_eq!(read(&r, "f", "etc/page"), "front yo for f");
    let shown = show(&r, "f");
    assert_eq!(shown["software_type"], "front");
    assert_eq!(shown["connection"]["url"], "http://front/yo");
    // the type is kept on upgrade; a type no option maps is refused, changing nothing
    r.ok(&[
        "instance",
        "upgrade",
        "f",
        "--software",
        &software,
        "-p",
        "greeting=ho",
    ]);
    assert_eq!(read(&r, "f", "etc/page"), "front ho for f");
    let out = r.run(&[
        "instance",
        "upgrade",
        "f",
        "--software",
        &software,
        "--software-type",
        "nope",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("software type (nope) isn't mapped"),
        "{}",
        out.stderr
    );
    assert_eq!(show(&r, "f")["software_type"], "front");
}

#[test]
fn requested_instances_are_deployed_and_their_connection_flows_back() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = typed_release(&env);
    let out = r.ok(&["instance", "create", "root", "--software", &software]);
    assert!(out.contains("created root"), "{out}");
    // the child, named by its title where that is a valid name, else after its parent
    let list: Value = serde_json::from_str(&r.ok(&["instance", "list", "--json"])).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["root", "root.Front-End", "spare"]);
    let child = show(&r, "root.Front-End");
    assert_eq!(child["parent"], "root");
    assert_eq!(child["title"], "Front End");
    assert_eq!(child["software_type"], "front");
    assert_eq!(
        child["current"]["parameters"],
        serde_json::json!({"greeting": "hi"})
    );
    assert_eq!(read(&r, "root.Front-End", "etc/page"), "front hi for root");
    // its published URL is the requester's, in the same command; requestoptional tolerates
    // a parameter the child does not publish
    let root = show(&r, "root");
    assert_eq!(root["connection"]["front-url"], "http://front/hi");
    assert_eq!(root["connection"]["spare-nothing"], "");
    assert_ne!(root["partition_id"], child["partition_id"]);

    // new parameters for the child through the requester
    r.ok(&[
        "instance",
        "upgrade",
        "root",
        "--software",
        &software,
        "-p",
        "greeting=salut",
    ]);
    assert_eq!(
        read(&r, "root.Front-End", "etc/page"),
        "front salut for root"
    );
    assert_eq!(
        show(&r, "root")["connection"]["front-url"],
        "http://front/salut"
    );
    // requested `destroyed`: the child is gone, the requester publishes an empty value...
    let out = r.run(&[
        "instance",
        "upgrade",
        "root",
        "--software",
        &software,
        "-p",
        "front-state=destroyed",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!r.partition("root.Front-End").exists());
    // ... and destroying the requester destroys what it requested
    let out = r.ok(&["instance", "destroy", "root"]);
    assert!(out.contains("destroyed spare"), "{out}");
    let list: Value = serde_json::from_str(&r.ok(&["instance", "list", "--json"])).expect("json");
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn a_requester_that_no_longer_requests_drops_its_children() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = typed_release(&env);
    r.ok(&["instance", "create", "root", "--software", &software]);
    assert_eq!(show(&r, "spare")["parent"], "root");
    // as type `front`, the requester renders a profile that requests nothing
    r.ok(&[
        "instance",
        "upgrade",
        "root",
        "--software",
        &software,
        "--software-type",
        "front",
    ]);
    for child in ["spare", "root.Front-End"] {
        assert_eq!(
            r.run(&["instance", "show", child]).code,
            3,
            "{child} is gone"
        );
        assert!(!r.partition(child).exists());
    }
    assert_eq!(show(&r, "root")["connection"]["url"], "http://front/hello");
}

#[test]
fn a_request_whose_child_does_not_publish_what_it_returns_fails() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(
        &env,
        "req",
        r#"[buildout]
parts = $${slap-parameter:parts}
[slap-parameter]
parts = child
[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
[child]
recipe = slapos.cookbook:request
name = child
software-url = $${slap-connection:software-release-url}
software-type = default
config-parts = slap-configuration
return = missing
"#,
        "",
    );
    let out = r.run(&["instance", "create", "parent", "--software", &software]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("published no connection parameter `missing`"),
        "{}",
        out.stderr
    );
    assert_eq!(r.run(&["instance", "show", "parent"]).code, 3);
    // what its requests made for it went with it
    assert_eq!(r.run(&["instance", "show", "child"]).code, 3);
    assert!(!r.partition("child").exists());
}

/// `publish-early` (as stack/monitor uses it for generated secrets): a value published once
/// is given back to its section at the next render.
#[test]
fn publish_early_gives_back_what_was_published() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(
        &env,
        "early",
        r#"[buildout]
parts = publish-early publish
[publish-early]
recipe = slapos.cookbook:publish-early
-init =
  secret gen:value
fixed = yes
[gen]
value = made-from-$${slap-parameter:seed}
[publish]
recipe = slapos.cookbook:publish.serialised
-extends = publish-early
shown = $${publish-early:secret}
"#,
        "",
    );
    r.ok(&[
        "instance",
        "create",
        "e",
        "--software",
        &software,
        "-p",
        "seed=1",
    ]);
    let published = |r: &Root| -> Value {
        serde_json::from_str(show(r, "e")["connection"]["_"].as_str().expect("`_`")).expect("json")
    };
    assert_eq!(
        published(&r),
        serde_json::json!({"secret": "made-from-1", "fixed": "yes", "shown": "made-from-1"})
    );
    r.ok(&[
        "instance",
        "upgrade",
        "e",
        "--software",
        &software,
        "-p",
        "seed=2",
    ]);
    assert_eq!(published(&r)["secret"], "made-from-1");
    assert_eq!(published(&r)["shown"], "made-from-1");
}

/// A requester that generates a password and gives it to its child: rendered again with the
/// child's connection, it keeps the password it generated first (not a new one each render).
#[test]
fn a_password_the_requester_generates_is_the_one_its_child_gets() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "pw/instance-backend.cfg.in",
        r#"[buildout]
parts = publish
[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
[publish]
recipe = slapos.cookbook:publish
password-echo = $${slap-configuration:configuration.password}
"#,
    );
    env.write(
        "pw/instance-default.cfg.in",
        r#"[buildout]
parts = backend publish
[password]
recipe = slapos.cookbook:generate.password
bytes = 10
[backend]
recipe = slapos.cookbook:request
name = backend
software-url = $${slap-connection:software-release-url}
software-type = backend
config-password = $${password:passwd}
return = password-echo
[publish]
recipe = slapos.cookbook:publish
mine = $${password:passwd}
theirs = $${backend:connection-password-echo}
"#,
    );
    let instance = r#"[buildout]
parts = switch
[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
[dynamic-default]
output = ${instance-default:output}
[dynamic-backend]
output = ${instance-backend:output}
[switch]
recipe = slapos.cookbook:switch-softwaretype
default = dynamic-default:output
backend = dynamic-backend:output
"#;
    let software = release(
        &env,
        "pw",
        instance,
        "\n[instance-default]\nrecipe = slapos.recipe.template\n\
         url = ${:_profile_base_location_}/instance-default.cfg.in\n\
         output = ${buildout:directory}/instance-default.cfg\n\n[instance-backend]\n\
         recipe = slapos.recipe.template\n\
         url = ${:_profile_base_location_}/instance-backend.cfg.in\n\
         output = ${buildout:directory}/instance-backend.cfg\n\n[buildout]\n\
         parts += instance-default instance-backend\n",
    );
    r.ok(&["instance", "create", "app", "--software", &software]);
    let connection = show(&r, "app")["connection"].clone();
    let mine = connection["mine"].as_str().expect("mine").to_owned();
    assert_eq!(mine.len(), 10, "{connection}");
    assert_eq!(connection["theirs"], mine.as_str(), "{connection}");
    // kept where the cookbook keeps it: `storage-path`, by default `parts/<section>`
    let kept: Value = serde_json::from_str(&read(&r, "app", "parts/password")).expect("JSON");
    assert_eq!(kept[""], mine.as_str());
    // and it stays the same afterwards
    let out = r.ok(&["instance", "upgrade", "app", "--software", &software]);
    assert!(out.starts_with("unchanged"), "{out}");
    assert_eq!(show(&r, "app")["connection"]["mine"], mine.as_str());
}

fn reconcile(r: &Root) -> Value {
    serde_json::from_str(&r.ok(&["instance", "reconcile", "--json"])).expect("json")
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|v| v["name"].as_str().or(v.as_str()).expect("name"))
        .collect()
}

fn generation(r: &Root, name: &str) -> i64 {
    show(r, name)["current"]["number"].as_i64().expect("number")
}

#[test]
fn reconcile_deploys_only_what_was_requested_or_changed() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // the demo's software, copied so that the test can change it
    let demo = std::fs::read_to_string(crate::common::demo("software.cfg")).expect("demo");
    let software = env.write("sw/software.cfg", &demo);
    let software = software.to_string_lossy().into_owned();
    r.ok(&[
        "instance",
        "create",
        "web-1",
        "web-2",
        "web-3",
        "--software",
        &software,
        "-p",
        "greeting=Hi",
    ]);
    let current = |n: &str| std::fs::read_link(r.partition(n).join("current")).expect("link");
    let links: Vec<_> = ["web-1", "web-2", "web-3"].map(current).into();
    // the first reconciliation renders each (nothing remembered yet): all as they are
    let done = reconcile(&r);
    assert_eq!(done["upgraded"], serde_json::json!([]), "{done}");
    assert_eq!(names(&done["unchanged"]).len(), 3, "{done}");
    // then nothing is even rendered, and the partitions are not touched
    let done = reconcile(&r);
    assert_eq!(done["untouched"], 3, "{done}");
    assert_eq!(done["unchanged"], serde_json::json!([]), "{done}");
    assert_eq!(links, ["web-1", "web-2", "web-3"].map(current));

    // a request deploys nothing by itself ...
    let out = r.ok(&["instance", "request", "web-2", "-p", "greeting=Hola"]);
    assert!(out.contains("requested web-2"), "{out}");
    assert_eq!(generation(&r, "web-2"), 1);
    // ... reconcile deploys it, and only it
    let done = reconcile(&r);
    assert_eq!(
        done["upgraded"],
        serde_json::json!([{"name": "web-2", "generation": 2}]),
        "{done}"
    );
    assert_eq!(done["untouched"], 2, "{done}");
    assert_eq!((generation(&r, "web-1"), generation(&r, "web-3")), (1, 1));
    assert_eq!(
        show(&r, "web-2")["current"]["parameters"],
        serde_json::json!({"greeting": "Hola"})
    );
    assert!(r.serve("web-2").starts_with("web-2: Hola on port 8080"));
    assert_eq!(reconcile(&r)["untouched"], 3);

    // the software changed: one evaluation, every instance of it upgraded
    std::fs::write(&software, demo.replace("version = 1.0", "version = 1.1")).expect("edit");
    let done = reconcile(&r);
    assert_eq!(
        names(&done["upgraded"]),
        ["web-1", "web-2", "web-3"],
        "{done}"
    );
    assert!(r.serve("web-3").contains("(server 1.1)"));
    // a broken software fails its instances, naming them, and changes nothing
    std::fs::write(&software, "[buildout]\nparts = nope\n").expect("break");
    let out = r.run(&["instance", "reconcile"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("`web-1` could not be reconciled"),
        "{}",
        out.stderr
    );
    assert_eq!(generation(&r, "web-1"), 2);
    std::fs::write(&software, demo.replace("version = 1.0", "version = 1.1")).expect("fix");
    // what failed is rendered again, and was as it is
    let done = reconcile(&r);
    assert_eq!(names(&done["unchanged"]).len(), 3, "{done}");
    assert_eq!(reconcile(&r)["untouched"], 3);

    // a request that an upgrade made since supersedes is dropped, not deployed
    r.ok(&["instance", "request", "web-1", "-p", "greeting=Stale"]);
    r.ok(&[
        "instance",
        "upgrade",
        "web-1",
        "--software",
        &software,
        "-p",
        "port=9001",
    ]);
    let done = reconcile(&r);
    assert_eq!(done["superseded"], serde_json::json!(["web-1"]), "{done}");
    assert_eq!(done["upgraded"], serde_json::json!([]), "{done}");
    assert!(r.serve("web-1").starts_with("web-1: Hi on port 9001"));
    // a new release by request
    r.ok(&[
        "instance",
        "request",
        "web-3",
        "--software",
        &crate::common::demo("software-v2.cfg"),
    ]);
    let done = reconcile(&r);
    assert_eq!(names(&done["upgraded"]), ["web-3"], "{done}");
    assert!(r.serve("web-3").contains("(server 2.0)"));

    // refusals change nothing
    let out = r.run(&[
        "instance",
        "request",
        "web-1",
        "--software",
        "/nope/software.cfg",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("/nope/software.cfg"), "{}", out.stderr);
    assert_eq!(r.run(&["instance", "reconcile", "nope"]).code, 3);
    assert_eq!(r.run(&["instance", "request", "nope", "-p", "a=b"]).code, 3);
    assert_eq!(reconcile(&r)["untouched"], 3);
}

#[test]
fn reconcile_deploys_a_requester_with_what_it_requests() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = typed_release(&env);
    r.ok(&["instance", "create", "root", "--software", &software]);
    assert_eq!(names(&reconcile(&r)["unchanged"]).len(), 3);
    r.ok(&["instance", "request", "root", "-p", "greeting=salut"]);
    let done = reconcile(&r);
    assert_eq!(names(&done["upgraded"]), ["root"], "{done}");
    assert_eq!(
        read(&r, "root.Front-End", "etc/page"),
        "front salut for root"
    );
    assert_eq!(
        show(&r, "root")["connection"]["front-url"],
        "http://front/salut"
    );
    let done = reconcile(&r);
    assert_eq!(done["untouched"], 3, "{done}");
}

/// A host: its `slave-instance-list` rendered as a line per shared instance.
const HOST: &str = r#"[buildout]
parts = slaves
[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
[slaves]
recipe = slapos.recipe.template:jinja2
output = $${buildout:directory}/etc/slaves
context = key slaves slap-configuration:slave-instance-list
inline =
  {% for s in slaves %}{{ s.slave_reference }} {{ s.slap_software_type }} {{ s.url }}
  {% endfor %}
"#;

#[test]
fn a_host_renders_the_shared_instances_it_hosts() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env, "host", HOST, "");
    r.ok(&["instance", "create", "front", "--software", &software]);
    assert_eq!(read(&r, "front", "etc/slaves").trim(), "");
    let out = r.ok(&[
        "instance",
        "request",
        "shop-1",
        "--shared",
        "--host",
        "front",
        "-p",
        "url=http://shop-1/${x:y}",
    ]);
    assert!(out.contains("requested shared shop-1 on front"), "{out}");
    r.ok(&[
        "instance",
        "request",
        "shop-2",
        "--shared",
        "--host",
        "front",
        "--software-type",
        "custom",
        "-p",
        "url=http://shop-2",
    ]);
    // not a partition, not an instance of its own; its host renders it at reconciliation
    assert!(!r.partition("shop-1").exists());
    assert_eq!(generation(&r, "front"), 1);
    let done = reconcile(&r);
    assert_eq!(names(&done["upgraded"]), ["front"], "{done}");
    assert_eq!(done["untouched"], 0, "{done}");
    // the parameters verbatim (a `${...}` in them is text)
    assert_eq!(
        read(&r, "front", "etc/slaves").trim_end(),
        "shop-1 default http://shop-1/${x:y}\nshop-2 custom http://shop-2"
    );
    assert_eq!(reconcile(&r)["untouched"], 1);
    let list: Value = serde_json::from_str(&r.ok(&["instance", "list", "--json"])).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    // a shared instance destroyed leaves its host at the next reconciliation
    let out = r.ok(&["instance", "destroy", "shop-1"]);
    assert!(
        out.contains("destroyed shared shop-1 (hosted by front)"),
        "{out}"
    );
    reconcile(&r);
    assert_eq!(
        read(&r, "front", "etc/slaves").trim_end(),
        "shop-2 custom http://shop-2"
    );
    assert_eq!(generation(&r, "front"), 3);
    // refusals change nothing
    let bad = |args: &[&str], code: i32| {
        let out = r.run(args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
    };
    bad(
        &["instance", "request", "s", "--shared", "--host", "nope"],
        3,
    );
    bad(
        &[
            "instance", "request", "front", "--shared", "--host", "front",
        ],
        2,
    );
    bad(&["instance", "request", "s", "--shared"], 2);
    bad(&["instance", "request", "s", "--host", "front"], 2);
    assert_eq!(reconcile(&r)["untouched"], 1);
    // the host destroyed, what it hosted goes with it
    r.ok(&["instance", "destroy", "front"]);
    assert_eq!(r.run(&["instance", "destroy", "shop-2"]).code, 3);
}
