//! Jinja2 templates that minijinja cannot render (`{% do list.append(..) %}`, `import ... with
//! context`) render as SlapOS's Jinja2 renders them, with Python's Jinja2, at software build
//! time, in a dry run and in a real instance; `import-list` libraries (stack/caucase's real
//! `caucase.jinja2.library`, unchanged in tests/fixtures/jinja2) are found by their names in
//! both engines.

use serde_json::Value;

use crate::common::{repo_root, Root, TestEnv};

/// The release, as software/dufs's: its instance profile is a `jinja2` part that imports the
/// caucase library (a `download` part's output) with context and appends to a list.
const SOFTWARE: &str = r#"[buildout]
parts = instance-profile

[caucase-jinja2-library]
recipe = slapos.recipe.build:download
url = ${:_profile_base_location_}/caucase.jinja2.library

[instance-profile]
recipe = slapos.recipe.template:jinja2
url = ${:_profile_base_location_}/instance.cfg.in
output = ${buildout:directory}/instance.cfg
extensions = jinja2.ext.do
context =
  raw bin_directory /opt/caucase/bin
  key caucase_library caucase-jinja2-library:target
import-list =
  file caucase caucase-jinja2-library:target
"#;

/// The instance profile, rendered at build time: parts appended to a list, the caucased
/// sections made by the library's macro; `[page]` and `[plain]` render in the instance, the
/// first with Jinja2 (`append`), the second with minijinja, both importing the library.
const INSTANCE: &str = r#"{% import "caucase" as caucase with context -%}
{% set parts = [] -%}
{% for part in ['caucased', 'page', 'plain'] -%}
{%   do parts.append(part) -%}
{% endfor -%}
[buildout]
parts =
{%- for part in parts %}
  {{ part }}
{%- endfor %}

{{ caucase.caucased(
  prefix='caucased',
  buildout_bin_directory=bin_directory,
  caucased_path='${buildout:directory}/etc/service/caucased',
  data_dir='${buildout:directory}/srv/caucased',
  netloc='[::1]:8890',
  tmp=None,
  promise=False,
) }}

[page]
recipe = slapos.recipe.template:jinja2
output = ${buildout:directory}/etc/page.txt
inline = {% raw %}{% import 'caucase' as c %}{% set names = [] %}{% for n in ['b', 'a'] %}{% do names.append(n.upper()) %}{% endfor %}{{ names | join(',') }}|{{ c.caucased('x', '/b', '/w', '/d', 'n', None, promise=False).splitlines()[0] }}{% endraw %}
import-list =
  rawfile caucase {{ caucase_library }}

[plain]
recipe = slapos.recipe.template:jinja2
output = ${buildout:directory}/etc/plain.txt
inline = {% raw %}{% import 'lib' as c %}{{ c.caucased('y', '/b', '/w', '/d', 'n', None, promise=False).splitlines()[0] }}{% endraw %}
import-list =
  rawfile lib {{ caucase_library }}
"#;

fn release(env: &TestEnv) -> String {
    let library = repo_root().join("tests/fixtures/jinja2/caucase.jinja2.library");
    let text = std::fs::read_to_string(library).expect("the caucase library fixture");
    env.write("sw/caucase.jinja2.library", &text);
    env.write("sw/instance.cfg.in", INSTANCE);
    env.write("sw/software.cfg", SOFTWARE)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn templates_that_append_and_import_caucase_render_in_a_dry_run_and_a_real_instance() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env);
    let args = ["instance", "create", "ca", "--software", &software];
    let out = r.ok(&[&args[..], &["--dry-run", "--json"]].concat());
    let list: Value = serde_json::from_str(&out).expect("JSON");
    let file = |path: &str| -> String {
        let files = list[0]["files"].as_array().expect("files");
        let found = files.iter().find(|f| f["path"] == path);
        let found = found.unwrap_or_else(|| panic!("no {path} in {}", list[0]));
        found["text"].as_str().expect("text").to_owned()
    };
    assert_eq!(file("etc/page.txt"), "B,A|[x-directory]");
    assert_eq!(file("etc/plain.txt"), "[y-directory]");
    let wrapper = file("etc/service/caucased");
    assert!(wrapper.contains("--netloc '[::1]:8890'"), "{wrapper}");
    assert!(
        r.partition("ca").symlink_metadata().is_err(),
        "a dry run writes nothing"
    );

    // the real thing: the release built (its instance profile rendered by Jinja2 in the
    // builder), the instance created
    r.ok(&args);
    let partition = r.partition("ca");
    let read = |path: &str| std::fs::read_to_string(partition.join(path)).expect(path);
    assert_eq!(read("etc/page.txt"), "B,A|[x-directory]");
    assert_eq!(read("etc/plain.txt"), "[y-directory]");
    assert!(read("etc/service/caucased").contains("exec /opt/caucase/bin/caucased --db"));
    assert!(partition.join("srv/caucased").is_dir());
}

#[test]
fn a_jinja2_error_names_the_part_and_the_template_line_and_changes_nothing() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env);
    r.ok(&["instance", "create", "ca", "--software", &software]);
    let before = std::fs::read_to_string(r.partition("ca").join("etc/page.txt")).expect("page");
    // an undefined name in a template Jinja2 renders
    let broken = INSTANCE.replace("n.upper()", "missing_name");
    env.write("sw/instance.cfg.in", &broken);
    let out = r.run(&["instance", "upgrade", "ca", "--software", &software]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("[page]") && out.stderr.contains("'missing_name' is undefined"),
        "{}",
        out.stderr
    );
    let after = std::fs::read_to_string(r.partition("ca").join("etc/page.txt")).expect("page");
    assert_eq!(before, after);
}

#[test]
fn an_inline_template_gets_its_escaped_references_as_buildout_references() {
    // software/system-audit's `[template]`: the instance profile is a `jinja2` part's
    // `inline`, whose `$${` is a `${` of the instance profile (the option's final value), here
    // a section name through macros, as its `[audit-promise]` names its promise
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env
        .write(
            "audit/software.cfg",
            "[buildout]\nparts = template\n\n[template]\nrecipe = slapos.recipe.template:jinja2\n\
             output = ${buildout:directory}/template.cfg\ninline =\n  [buildout]\n  \
             parts = audit_os_version\n\n  [audit-promise]\n  recipe = slapos.cookbook:publish\n  \
             promise = $${:_buildout_section_name_}\n  module = plugin.$${:promise}\n\n  \
             [audit_os_version]\n  <= audit-promise\n",
        )
        .to_string_lossy()
        .into_owned();
    let args = ["instance", "create", "audit", "--software", &software];
    let out = r.ok(&[&args[..], &["--dry-run", "--json"]].concat());
    let list: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(list[0]["connection"]["module"], "plugin.audit_os_version");
    r.ok(&args);
    let shown: Value =
        serde_json::from_str(&r.ok(&["instance", "show", "audit", "--json"])).expect("json");
    assert_eq!(shown["connection"]["module"], "plugin.audit_os_version");
}
