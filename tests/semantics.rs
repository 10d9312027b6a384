//! End-to-end tests of buildout's semantics that instance profiles of the corpus rely on, each
//! through a real deploy (`instance create`) of a small release: relative paths are the
//! partition's, `$${` reaches an instance as `${`, an existing directory outside the partition
//! is left alone by `mkdirectory`, of two parts writing one file the last one installed wins, and
//! a switched-to profile reads the files its render writes.

use std::os::unix::fs::PermissionsExt;

use crate::common::{Root, TestEnv};

/// The release: its instance profile is an `inline` jinja2 template (software/neotest's
/// `[instance.cfg]`), whose `$${...}` the software's buildout hands out as `${...}`; that
/// profile switches to one rendered to a relative `output` (software/llamacpp's
/// `[dynamic-template-llamacpp]`).
const SOFTWARE: &str = r#"[buildout]
parts = instance-profile

[template-default]
recipe = slapos.recipe.build:download
url = ${:_profile_base_location_}/instance-default.cfg.in

[instance-profile]
recipe = slapos.recipe.template:jinja2
output = ${buildout:directory}/instance.cfg
inline =
  [buildout]
  parts =
    directory
    switch-softwaretype

  [slap-configuration]
  recipe = slapos.cookbook:slapconfiguration.serialised
  computer = $${slap-connection:computer-id}
  partition = $${slap-connection:partition-id}
  url = $${slap-connection:server-url}
  key = $${slap-connection:key-file}
  cert = $${slap-connection:cert-file}

  # software/neotest/software.cfg
  [directory]
  recipe = slapos.cookbook:mkdirectory
  home = $${buildout:directory}
  t = $${:home}/t

  # software/gitlab/instance.cfg.in: the switched-to profile extends another file this
  # render writes
  [instance-base]
  recipe = slapos.recipe.template
  output = $${buildout:directory}/instance-base.cfg
  inline =
    [base]
    greeting = from the base

  # software/llamacpp/instance.cfg.in
  [dynamic-template-default]
  recipe = slapos.recipe.template:jinja2
  url = ${template-default:target}
  output = instance-default.cfg
  context =
    raw buildout_directory ${buildout:directory}
    raw instance_base $${instance-base:output}

  [switch-softwaretype]
  recipe = slapos.cookbook:switch-softwaretype
  default = dynamic-template-default:output
"#;

/// The switched-to profile: software/monitor's `[directory]` names the software's own
/// directory; software/backupserver's `[dcron-service]` and stack/logrotate's `[cron-service]`
/// both write `etc/service/crond`; it extends a file the same render writes.
const DEFAULT: &str = r#"[buildout]
extends = {{ instance_base }}
parts =
  dcron-service
  cron-service
  greeting

[greeting]
recipe = slapos.recipe.template
inline = ${base:greeting}
output = ${buildout:directory}/greeting

# software/monitor/instance-node-monitoring.jinja2.cfg
[directory]
recipe = slapos.cookbook:mkdirectory
software = {{ buildout_directory }}
home = ${buildout:directory}
etc = ${:home}/etc
services = ${:etc}/service

# software/backupserver/instance-pullrdiffbackup.cfg.in
[dcron-service]
recipe = slapos.recipe.template
inline = the first writer
output = ${directory:services}/crond

# stack/logrotate/instance-logrotate-base.cfg.in
[cron-service]
recipe = slapos.cookbook:wrapper
command-line = /bin/echo the last writer
wrapper-path = ${directory:services}/crond
"#;

#[test]
fn instance_profiles_get_buildouts_paths_escapes_and_install_order() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write("instance-default.cfg.in", DEFAULT);
    let software = env.write("software.cfg", SOFTWARE);
    r.ok(&[
        "instance",
        "create",
        "sem",
        "--software",
        &software.to_string_lossy(),
    ]);
    let p = r.partition("sem");
    // a relative `output` is written in the partition, and the switch reads it from there
    let rendered = std::fs::read_to_string(p.join("instance-default.cfg")).expect("rendered");
    assert!(
        rendered.contains(&format!("software = {}", env.path().display())),
        "{rendered}"
    );
    // it extended the file written beside it
    let greeting = std::fs::read_to_string(p.join("greeting")).expect("greeting");
    assert_eq!(greeting.trim(), "from the base");
    // `$${:home}/t` reached the instance as `${:home}/t`: the partition's `t`
    assert!(p.join("t").is_dir());
    assert!(!std::fs::read_dir(&p).expect("partition").any(|e| e
        .expect("entry")
        .file_name()
        .to_string_lossy()
        .contains('$')));
    // the last part installed leaves the file: the wrapper
    let crond = p.join("etc/service/crond");
    let text = std::fs::read_to_string(&crond).expect("crond");
    assert!(text.contains("the last writer"), "{text}");
    assert!(!text.contains("the first writer"), "{text}");
    let mode = std::fs::metadata(&crond)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "{mode:o}");
    let run = std::process::Command::new(&crond).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "the last writer\n");
    // the software's directory exists already: nothing is made there, nor refused
    let entries: Vec<_> = std::fs::read_dir(env.path())
        .expect("software directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries.iter().any(|e| e == "etc" || e == "t"),
        "{entries:?}"
    );
}

#[test]
fn a_missing_directory_outside_the_partition_is_still_refused() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let missing = env.path().join("not-there");
    let software = env.jinja2_release(&format!(
        "[buildout]\nparts = directory\n\n[directory]\nrecipe = slapos.cookbook:mkdirectory\n\
         elsewhere = {}\n",
        missing.display()
    ));
    let out = r.run(&["instance", "create", "m", "--software", &software]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("[directory]") && out.stderr.contains("is not inside the partition"),
        "{}",
        out.stderr
    );
    assert!(!missing.exists());
    assert!(!r.partition("m").exists());
}
