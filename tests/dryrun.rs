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
        "[password]\nrecipe = slapos.cookbook:re6stnet.registry",
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
            .contains("recipe `slapos.cookbook:re6stnet.registry` cannot run in an instance"),
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

/// A release in `env`'s `p/` whose instance profile is `instance` (a `template` part's output,
/// so `$${` in it is a `${` of the instance profile); its `software.cfg`.
fn plain_release(env: &TestEnv, instance: &str) -> String {
    env.write("p/instance.cfg.in", instance);
    env.write(
        "p/software.cfg",
        "[buildout]\nparts = instance-profile\n\n[instance-profile]\n\
         recipe = slapos.recipe.template\nurl = ${:_profile_base_location_}/instance.cfg.in\n\
         output = ${buildout:directory}/instance.cfg\n",
    )
    .to_string_lossy()
    .into_owned()
}

/// The text of the file `page` that a dry run of `software` would deploy.
fn dry_run_page(r: &Root, software: &str) -> String {
    let out = offline(
        r,
        &[
            "instance",
            "create",
            "p",
            "--dry-run",
            "--software",
            software,
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let page = list[0]["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["path"] == "page"))
        .unwrap_or_else(|| panic!("no page in {}", list[0]));
    page["text"].as_str().unwrap_or_default().to_owned()
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
    let software = plain_release(&env, PYTHONIC);
    assert_eq!(
        dry_run_page(&r, &software),
        "example.com:8443|x y|1|!py!['a', 1]|a\\.b|::1|2"
    );
    // install code runs at deploy, in the partition: a part that reads an option only that
    // run sets cannot render in a dry run, and the error names it
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

/// stack/erp5-zope2's (and wendelin's, slapos-master's) `[default-cloudooo-url-list]`, verbatim
/// but for the URLs its software-time template writes: `init` code stores a list, another
/// section refers to it, and the list comes back as a list to Python code, to a Jinja2 `key`
/// and `section` context and to `dumps` (instance-erp5.cfg.in's `config-cloudooo-url-list`),
/// an `int` as an int.
const CLOUDOOO: &str = r#"[buildout]
parts = page

[default-cloudooo-url-list]
recipe = slapos.recipe.build
default-url-list =
  https://cloudooo1.erp5.net/
  https://cloudooo.erp5.net/
init =
  # Expose the default cloudooo URLs, sorted using a pseudo-random seed,
  # so that the same instance keep the same order
  import six, random
  seed = repr(sorted(six.iteritems(self.buildout['slap-connection'])))
  default_cloudooo_url_list = [url.strip() for url in self.options['default-url-list'].splitlines()]
  random.Random(seed).shuffle(default_cloudooo_url_list)
  self.options['url-list'] = default_cloudooo_url_list

[dynamic-template-erp5-parameters]
default-cloudooo-url-list = $${default-cloudooo-url-list:url-list}
text = urls: $${default-cloudooo-url-list:url-list}

[reader]
recipe = slapos.recipe.build
init =
  urls = self.buildout['dynamic-template-erp5-parameters']['default-cloudooo-url-list']
  options['kind'] = type(urls).__name__
  options['count'] = len(urls)
  options['sorted'] = ' '.join(sorted(urls))
  options['items'] = type(dict(self.buildout['dynamic-template-erp5-parameters'].items())['default-cloudooo-url-list']).__name__

[page]
recipe = slapos.recipe.template:jinja2
output = $${buildout:directory}/page
context =
  key default_cloudooo_url_list dynamic-template-erp5-parameters:default-cloudooo-url-list
  key text dynamic-template-erp5-parameters:text
  key kind reader:kind
  key count reader:count
  key ordered reader:sorted
  key items reader:items
  section params dynamic-template-erp5-parameters
inline =
  {{ default_cloudooo_url_list | sort | join(' ') }}|{{ kind }} {{ items }} {{ count + 1 }}|{{ ordered }}|{{ dumps(default_cloudooo_url_list | sort) }}|{{ params['default-cloudooo-url-list'] | length }}|{{ text[:11] }}
"#;

#[test]
fn init_code_stores_lists_that_read_back_as_lists_as_slapos_buildout_does() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = plain_release(&env, CLOUDOOO);
    let urls = "https://cloudooo.erp5.net/ https://cloudooo1.erp5.net/";
    assert_eq!(
        dry_run_page(&r, &software),
        format!(
            "{urls}|list list 3|{urls}|!py!['https://cloudooo.erp5.net/', \
             'https://cloudooo1.erp5.net/']|2|urls: !py!["
        )
    );
    // a value with no literal form is refused, naming the option's section and line
    let opaque = CLOUDOOO.replace(
        "self.options['url-list'] = default_cloudooo_url_list",
        "self.options['url-list'] = len",
    );
    let software = plain_release(&env, &opaque);
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
        out.stderr.contains("[default-cloudooo-url-list]")
            && out
                .stderr
                .contains("Option values must be strings or Python literals"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_dry_run_defers_code_needing_eggs_not_built_and_shows_a_placeholder_for_what_it_sets() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = crate::eggs::uritemplate_release(&env, "pass");
    let args = [
        "instance",
        "create",
        "mon",
        "--dry-run",
        "--software",
        &software,
    ];
    let out = offline(&r, &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let placeholder = "<deferred-to-deploy:expand-monitor-uri-template:uri>";
    assert!(
        out.stdout.contains(
            "  [expand-monitor-uri-template] needs uritemplate (parts not built: uritemplate-eggs)"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("  monitor-setup-url = {placeholder}")),
        "{}",
        out.stdout
    );
    let json = offline(&r, &[&args[..], &["--json"]].concat());
    assert_eq!(json.code, 0, "{}", json.stderr);
    let list: Value = serde_json::from_str(&json.stdout).expect("JSON");
    let d = &list[0];
    assert_eq!(
        d["deferred"],
        serde_json::json!([{
            "section": "expand-monitor-uri-template",
            "needs": ["uritemplate"],
            "parts_not_built": ["uritemplate-eggs"],
        }])
    );
    assert_eq!(d["connection"]["monitor-setup-url"], placeholder);
    let page = d["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["path"] == "etc/monitor-setup-url"))
        .unwrap_or_else(|| panic!("no page in {d}"));
    assert_eq!(page["text"].as_str().map(str::trim_end), Some(placeholder));
    assert!(!r.partition("mon").exists());
}

#[test]
fn a_dry_run_defers_code_reading_a_file_of_a_part_not_built() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // software/notepod's `[init]`, reading what its `[installer]` part writes when built
    env.write(
        "n/SHA512SUMS",
        "0123456789abcdef0123456789abcdef  disk.img\n",
    );
    let status = Command::new("tar")
        .args(["czf", "installer.tar.gz", "SHA512SUMS"])
        .current_dir(env.path().join("n"))
        .status()
        .expect("tar");
    assert!(status.success());
    env.write(
        "n/instance.cfg.in",
        "[buildout]\nparts = publish\n\n[init]\nrecipe = slapos.recipe.build\ninit =\n  \
         options['early'] = 'set before the read'\n  \
         with open('${installer:location}/SHA512SUMS') as f:\n    \
         options['hash'] = f.read(32)\n\n\
         [publish]\nrecipe = slapos.cookbook:publish\nhash = $${init:hash}\nearly = $${init:early}\n",
    );
    let software = env
        .write(
            "n/software.cfg",
            "[buildout]\nparts = instance-profile\n\n[installer]\n\
             recipe = slapos.recipe.build:download-unpacked\n\
             url = ${:_profile_base_location_}/installer.tar.gz\n\n[instance-profile]\n\
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
            "n",
            "--dry-run",
            "--json",
            "--software",
            &software,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let d = &list[0];
    let deferred = &d["deferred"][0];
    assert_eq!(deferred["section"], "init", "{d}");
    assert_eq!(
        deferred["parts_not_built"],
        serde_json::json!(["installer"])
    );
    let needs = deferred["needs"][0].as_str().unwrap_or_default();
    assert!(needs.ends_with("-installer/SHA512SUMS"), "{needs}");
    assert_eq!(d["connection"]["hash"], "<deferred-to-deploy:init:hash>");
    assert_eq!(d["connection"]["early"], "set before the read");
}

#[test]
fn a_dry_run_defers_code_making_files_in_the_partition_it_does_not_make() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // software/restic-rest-server's `[rest-server-certificate-init-certificate]` (as dufs's,
    // grafana's): init code making `etc/` and a file there, in the partition
    let software = plain_release(
        &env,
        "[buildout]\nparts = publish\n\
         [directory]\nhome = $${buildout:directory}\netc = $${:home}/etc\n\
         [cert]\ncert-file = $${directory:etc}/cert.crt\n\
         [init-certificate]\nrecipe = slapos.recipe.build\ninit =\n  \
         import pathlib\n  \
         cert_file = pathlib.Path(self.buildout['cert']['cert-file'])\n  \
         if not cert_file.parent.exists():\n    cert_file.parent.mkdir()\n  \
         if not cert_file.exists():\n    cert_file.touch()\n  \
         options['made'] = str(cert_file)\n\
         [publish]\nrecipe = slapos.cookbook:publish\nmade = $${init-certificate:made}\n",
    );
    let out = offline(
        &r,
        &[
            "instance",
            "create",
            "c",
            "--dry-run",
            "--json",
            "--software",
            &software,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let d = &list[0];
    let partition = r.partition("c").display().to_string();
    assert_eq!(
        d["deferred"],
        serde_json::json!([{
            "section": "init-certificate",
            "needs": [format!("{partition}/etc")],
            "parts_not_built": ["the partition, made by the deploy"],
        }]),
        "{d}"
    );
    assert_eq!(
        d["connection"]["made"],
        "<deferred-to-deploy:init-certificate:made>"
    );
    // nothing was made, the partition least of all
    assert!(!r.partition("c").exists());
    // a file outside the partition and any output is still the code's own error
    let software = plain_release(
        &env,
        "[buildout]\nparts = x\n[x]\nrecipe = slapos.recipe.build\ninit =\n  \
         open('/nonexistent/slapstore-test')\n",
    );
    let out = offline(
        &r,
        &[
            "instance",
            "create",
            "d",
            "--dry-run",
            "--software",
            &software,
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("FileNotFoundError"), "{}", out.stderr);
}
