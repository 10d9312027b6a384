//! `instance create NAME --dry-run --software PROFILE`: the release is planned (never built,
//! never downloaded: these runs have no network when `unshare --net` can make one), its instance
//! profile rendered in memory against the planned store paths, templates that parts render at
//! build time included, and nothing is written: no partition, generation, database row or store
//! path.

use std::process::Command;

use serde_json::Value;

use crate::common::{Output, Root, TestEnv};

/// The release, in the corpus's shape: the instance profile is a `jinja2` part's output (as
/// software/helloworld's), given the planned store path of a template that a `download` part
/// copies and of another that a `template` part renders; a tool part's location is only text.
const SOFTWARE: &str = r#"[buildout]
parts = instance-profile

[tool]
recipe = slapos.recipe.build:download-unpacked
url = ${:_profile_base_location_}/tool.tar.gz

[template-page]
recipe = slapos.recipe.build:download
url = ${:_profile_base_location_}/page.in

[template-server]
recipe = slapos.recipe.template
url = ${:_profile_base_location_}/server.cfg.in
output = ${buildout:parts-directory}/${:_buildout_section_name_}/server.cfg

[instance-profile]
recipe = slapos.recipe.template:jinja2
url = ${:_profile_base_location_}/instance.cfg.in
output = ${buildout:directory}/instance.cfg
context =
  raw template_page ${template-page:target}
  raw template_server ${template-server:output}
  raw tool ${tool:location}
  raw broken ${tool:location}/share/broken.in
"#;

/// The instance profile: its service is switched to a profile that another part renders.
const INSTANCE: &str = r#"[buildout]
parts =
  switch-softwaretype

[slap-configuration]
recipe = slapos.cookbook:slapconfiguration.serialised
computer = ${slap-connection:computer-id}
partition = ${slap-connection:partition-id}
url = ${slap-connection:server-url}
key = ${slap-connection:key-file}
cert = ${slap-connection:cert-file}

[instance-default]
recipe = slapos.recipe.template:jinja2
url = {{ template_server }}
output = ${buildout:directory}/instance-default.cfg
context =
  raw page_template {{ template_page }}
  raw tool {{ tool }}
  raw broken {{ broken }}

[switch-softwaretype]
recipe = slapos.cookbook:switch-softwaretype
default = instance-default:output
"#;

/// The profile of software type `default`, rendered by `[template-server]` at build time.
const SERVER: &str = r#"[buildout]
parts =
  directory
  page
  server
  publish

[slap-configuration]
recipe = slapos.cookbook:slapconfiguration.serialised
computer = $${slap-connection:computer-id}
partition = $${slap-connection:partition-id}
url = $${slap-connection:server-url}
key = $${slap-connection:key-file}
cert = $${slap-connection:cert-file}

[directory]
recipe = slapos.cookbook:mkdirectory
etc = $${buildout:directory}/etc
log = $${buildout:directory}/var/log

[password]
recipe = slapos.cookbook:generate.password
bytes = 10

[page]
recipe = slapos.recipe.template:jinja2
url = {{ page_template }}
output = $${directory:etc}/page.html
context =
  key parameters slap-configuration:configuration
  key password password:passwd

[server]
recipe = slapos.cookbook:wrapper
command-line = {{ tool }}/bin/serve --page $${page:output}
wrapper-path = $${buildout:directory}/etc/service/web

[publish]
recipe = slapos.cookbook:publish.serialised
url = http://127.0.0.1:8080/
password = $${password:passwd}
"#;

/// A Jinja2 template copied by `[template-page]`.
const PAGE: &str = "{{ parameters.get('greeting', 'Hello') }}, {{ len(password) }} letters\n";

/// `slapstore --root ROOT ARGS`, without a network when a namespace can be made.
fn offline(r: &Root, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_slapstore");
    let isolated = Command::new("unshare")
        .args(["--net", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut command = if isolated {
        let mut c = Command::new("unshare");
        c.args(["--net", "--", bin]);
        c
    } else {
        Command::new(bin)
    };
    let out = command
        .arg("--root")
        .arg(&r.root)
        .args(args)
        .current_dir(&r.dir)
        .output()
        .expect("run slapstore");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A release in `env`'s `web/`; its `software.cfg`. `server` is the switched-to profile.
fn release(env: &TestEnv, server: &str) -> String {
    env.write("web/instance.cfg.in", INSTANCE);
    env.write("web/server.cfg.in", server);
    env.write("web/page.in", PAGE);
    env.write("web/bin/serve", "#!/bin/sh\n");
    let status = Command::new("tar")
        .args(["czf", "tool.tar.gz", "bin"])
        .current_dir(env.path().join("web"))
        .status()
        .expect("tar");
    assert!(status.success());
    env.write("web/software.cfg", SOFTWARE)
        .to_string_lossy()
        .into_owned()
}

/// What a root holds that a dry run must not add to: store entries, partitions, instances.
fn footprint(r: &Root) -> (Vec<String>, bool, String) {
    let instances = r.ok(&["instance", "list", "--json"]);
    (r.entries(), r.root.join("partitions").exists(), instances)
}

#[test]
fn a_dry_run_renders_the_instance_profile_against_planned_paths_and_writes_nothing() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env, SERVER);
    let out = offline(
        &r,
        &[
            "instance",
            "create",
            "web",
            "--dry-run",
            "--software",
            &software,
            "-p",
            "greeting=Bonjour",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let d = &list[0];
    assert_eq!(d["name"], "web");
    assert_eq!(d["partition_id"], "slappart0");
    assert_eq!(d["software_type"], "default");
    assert_eq!(
        d["instance_profile_from"],
        "[instance-profile] (instance.cfg)"
    );
    let to_build: Vec<&str> = d["to_build"]
        .as_array()
        .expect("to_build")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for part in [
        "tool",
        "template-page",
        "template-server",
        "instance-profile",
    ] {
        assert!(to_build.contains(&part), "{part} not in {to_build:?}");
    }
    // the switched-to profile's parts, in install order, then the switch
    let parts: Vec<(String, String)> = d["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| {
            (
                p["part"].as_str().unwrap_or_default().to_owned(),
                p["recipe"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let names: Vec<&str> = parts.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "slap-configuration",
            "instance-default",
            "directory",
            "slap-configuration",
            "password",
            "page",
            "server",
            "publish",
            "switch-softwaretype"
        ],
        "{parts:?}"
    );
    assert!(parts.contains(&(
        "password".into(),
        "slapos.cookbook:generate.password".into()
    )));
    // the page: a template copied by a part not built, rendered with the parameters and the
    // generated password
    let files = d["files"].as_array().expect("files");
    let file = |path: &str| {
        files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no {path} in {files:?}"))
    };
    assert_eq!(file("etc/page.html")["text"], "Bonjour, 10 letters\n");
    let wrapper = file("etc/service/web")["text"].as_str().unwrap_or_default();
    let store = r.root.join("store").to_string_lossy().into_owned();
    assert!(
        wrapper.contains(&format!("{store}/")) && wrapper.contains("-tool/bin/serve"),
        "{wrapper}"
    );
    assert_eq!(file("etc/service/web")["mode"], "0755");
    assert_eq!(d["services"], serde_json::json!(["etc/service/web"]));
    assert!(
        d["directories"]["var/log"].is_string(),
        "{}",
        d["directories"]
    );
    let published: Value =
        serde_json::from_str(d["connection"]["_"].as_str().unwrap_or("{}")).expect("JSON");
    assert_eq!(published["url"], "http://127.0.0.1:8080/");
    assert_eq!(published["password"].as_str().map(str::len), Some(10));
    assert!(d["generation"]
        .as_str()
        .is_some_and(|g| g.starts_with(&store) && g.ends_with("-web-instance")));

    // nothing was built, made or recorded (the store's root is made, empty)
    let before = footprint(&r);
    assert_eq!(before, (Vec::new(), false, "[]\n".to_owned()));
    assert!(!r.partition("web").exists());

    // the text form says the same, shortly
    let out = offline(
        &r,
        &[
            "instance",
            "create",
            "web",
            "--dry-run",
            "--software",
            &software,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for line in [
        "would create web on slappart0 (software type `default`); nothing changed (dry run)",
        "  profile      [instance-profile] (instance.cfg)",
        "parts (9, in install order):",
        &format!("  {:19}  slapos.cookbook:generate.password", "password"),
        "services (1):",
        "  etc/service/web",
    ] {
        assert!(out.stdout.contains(line), "no `{line}` in\n{}", out.stdout);
    }
    assert_eq!(footprint(&r), before);
}

#[test]
fn a_dry_run_says_which_part_makes_a_file_known_only_once_built() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // a template inside the unpacked archive: what it holds is known only after unpacking
    let server = SERVER.replace("url = {{ page_template }}", "url = {{ broken }}");
    let software = release(&env, &server);
    let out = offline(
        &r,
        &[
            "instance",
            "create",
            "web",
            "--dry-run",
            "--software",
            &software,
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("-tool/share/broken.in` is made by part [tool] (recipe `download-unpacked`) when it is built, and a dry run builds nothing"),
        "{}",
        out.stderr
    );
    // blamed on the option, in the switched-to profile
    assert!(out.stderr.contains("[page]"), "{}", out.stderr);
    assert!(
        out.stderr.contains("instance-default.cfg"),
        "{}",
        out.stderr
    );
    assert!(r.entries().is_empty(), "{:?}", r.entries());
}

#[test]
fn a_dry_run_names_the_file_line_and_recipe_an_instance_cannot_run() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let server = SERVER.replace(
        "[password]\nrecipe = slapos.cookbook:generate.password",
        "[password]\nrecipe = slapos.cookbook:postgres",
    );
    let software = release(&env, &server);
    let out = offline(
        &r,
        &[
            "instance",
            "create",
            "web",
            "--dry-run",
            "--software",
            &software,
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("recipe `slapos.cookbook:postgres` cannot run in an instance"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("instance-default.cfg:22:"),
        "{}",
        out.stderr
    );
    assert!(!r.partition("web").exists());
}

/// An instance profile using what SlapOS's buildout and templates give: `slapos.recipe.build`'s
/// `init` code (importing `six`, as stack/monitor's does), serialised values (`!py!`), the
/// template builtins (`dumps`, `len`), an imported module and `[slap-network-information]`.
const PYTHONIC: &str = r#"[buildout]
parts = page

[conf]
recipe = slapos.recipe.build
url = https://example.com:8443/x
init =
  from six.moves.urllib.parse import urlparse
  options['domain'] = urlparse(options['url']).netloc

[typed]
text = !py!'x y'
list = !py!['a', 1]

[page]
recipe = slapos.recipe.template:jinja2
output = $${buildout:directory}/page
context =
  key domain conf:domain
  key t typed:text
  key l typed:list
  key v6 slap-network-information:global-ipv6
  import re_module re
inline =
  {{ domain }}|{{ t }}|{{ l[1] }}|{{ dumps(l) }}|{{ re_module.escape('a.b') }}|{{ v6 }}|{{ len(l) }}
"#;

#[test]
fn instance_profiles_get_init_code_serialised_values_builtins_and_modules() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write("p/instance.cfg.in", PYTHONIC);
    let software = env
        .write(
            "p/software.cfg",
            "[buildout]\nparts = instance-profile\n\n[instance-profile]\n\
             recipe = slapos.recipe.template\nurl = ${:_profile_base_location_}/instance.cfg.in\n\
             output = ${buildout:directory}/instance.cfg\n",
        )
        .to_string_lossy()
        .into_owned();
    let out = offline(
        &r,
        &[
            "instance",
            "create",
            "p",
            "--dry-run",
            "--software",
            &software,
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let page = list[0]["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["path"] == "page"))
        .unwrap_or_else(|| panic!("no page in {}", list[0]));
    assert_eq!(
        page["text"],
        "example.com:8443|x y|1|!py!['a', 1]|a\\.b|::1|2"
    );
    // install code runs at deploy, after the render (`recipes/deploy.rs`): an option only it
    // would set is missing when a later part reads it
    let install = PYTHONIC.replace("init =", "install =");
    env.write("p/instance.cfg.in", &install);
    let out = offline(
        &r,
        &[
            "instance",
            "create",
            "p",
            "--dry-run",
            "--software",
            &software,
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("missing option `conf:domain`"),
        "{}",
        out.stderr
    );
}
