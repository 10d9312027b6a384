//! Templates an instance reads that are not files of the profile's directory, end to end
//! through the binary, deployed and dry-run: a `:jinja2` template that another part makes in
//! the partition at deploy (read then, `render_at_deploy.rs`), a profile that one part renders
//! and a switched-to profile extends (`slap_switch.rs`), and the software's files named by
//! their buildout paths (`${buildout:parts-directory}/<part>/...`, a template part's
//! `${buildout:directory}/<file>`: `software_paths.rs`).

use crate::common::{Root, TestEnv};

fn dry_run(r: &Root, name: &str, software: &str) -> crate::common::Output {
    r.run(&[
        "instance",
        "create",
        name,
        "--dry-run",
        "--software",
        software,
    ])
}

#[test]
fn a_jinja2_template_a_command_makes_is_rendered_at_deploy_after_it() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // software/clammit/instance.cfg.in's `[frontend-certificate-prepare-csr]` (openssl replaced
    // by a printf) and stack/caucase/caucase.jinja2.library's `[<prefix>-provided-csr]` with
    // `template_csr`, for the prefix `frontend-certificate`
    let software = env.jinja2_release(
        "[buildout]\nparts = frontend-certificate-provided-csr\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\nsrv = ${buildout:directory}/srv\n\n\
         [frontend-certificate-directory]\nrecipe = slapos.cookbook:mkdirectory\n\
         data-dir = ${directory:srv}/caucase-updater\n\n\
         [frontend-certificate-prepare-csr]\nrecipe = plone.recipe.command\n\
         command =\n  if [ ! -f '${:csr}' ] ; then\n\
         \x20  printf 'CSR for {{ '{{' }} name }}\\n' > '${:csr}'\n  fi\n\
         stop-on-error = true\n\
         csr = ${directory:srv}/${:_buildout_section_name_}.csr.pem\n\n\
         [frontend-certificate-provided-csr-content]\n\
         content = ${frontend-certificate-prepare-csr:csr}\n\n\
         [frontend-certificate-provided-csr]\nrecipe = slapos.recipe.template:jinja2\n\
         url = ${frontend-certificate-provided-csr-content:content}\n\
         output = ${frontend-certificate-directory:data-dir}/provided.csr.pem\n\
         context = raw name frontend\n",
    );
    let out = dry_run(&r, "c", &software);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let listed = out
        .stdout
        .lines()
        .find(|l| l.contains("frontend-certificate-provided-csr (renders"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        listed.contains("srv/frontend-certificate-prepare-csr.csr.pem`, read at deploy"),
        "{listed}"
    );
    assert!(!r.partition("c").exists(), "a dry run makes nothing");
    r.ok(&["instance", "create", "c", "--software", &software]);
    let p = r.partition("c");
    let csr = p.join("srv/caucase-updater/provided.csr.pem");
    assert_eq!(
        std::fs::read_to_string(&csr).expect("rendered"),
        "CSR for frontend\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(&csr).expect("stat");
    assert!(meta.is_file(), "a file of the partition, not a link");
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    // rendered again after each switch, from the file as it is then
    std::fs::write(
        p.join("srv/frontend-certificate-prepare-csr.csr.pem"),
        "renewed {{ name }}",
    )
    .expect("write");
    r.ok(&["instance", "upgrade", "c", "--software", &software]);
    assert_eq!(
        std::fs::read_to_string(&csr).expect("rendered"),
        "renewed frontend"
    );
}

#[test]
fn a_template_of_the_partition_nothing_makes_fails_the_deploy_and_template_refuses_it() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(
        "[buildout]\nparts = conf\n\n\
         [conf]\nrecipe = slapos.recipe.template:jinja2\n\
         url = ${buildout:directory}/srv/missing.in\n\
         output = ${buildout:directory}/etc/conf\n",
    );
    let out = r.run(&["instance", "create", "m", "--software", &software]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("[conf] cannot render `") && out.stderr.contains("srv/missing.in"),
        "{}",
        out.stderr
    );
    // `slapos.recipe.template` reads its template when the profile is read: it cannot wait
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(
        "[buildout]\nparts = conf\n\n\
         [conf]\nrecipe = slapos.recipe.template\n\
         url = ${buildout:directory}/srv/made.in\n\
         output = ${buildout:directory}/etc/conf\n",
    );
    let out = dry_run(&r, "t", &software);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("[conf]")
            && out
                .stderr
                .contains("render it with `slapos.recipe.template:jinja2`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_switched_to_profile_extends_a_profile_the_switching_render_writes() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // software/gitlab/instance.cfg.in: `[switch-softwaretype]` maps the default type to
    // `instance-gitlab-export.cfg:output`, a profile that extends `instance-gitlab.cfg`, which
    // another part of the same render writes in the partition
    let software = env.jinja2_release(
        "[buildout]\nparts = switch-softwaretype\n\n\
         [slap-configuration]\nrecipe = slapos.cookbook:slapconfiguration\n\
         computer = ${slap-connection:computer-id}\n\
         partition = ${slap-connection:partition-id}\n\n\
         [switch-softwaretype]\nrecipe = slapos.cookbook:switch-softwaretype\n\
         gitlab = instance-gitlab.cfg:output\n\
         gitlab-export = instance-gitlab-export.cfg:output\n\
         default = ${:gitlab-export}\n\n\
         [instance-cfg]\nrecipe = slapos.recipe.template:jinja2\n\
         output = ${buildout:directory}/${:_buildout_section_name_}\n\n\
         [instance-gitlab.cfg]\n<= instance-cfg\n\
         inline =\n  [buildout]\n  parts = page\n  [page]\n\
         \x20 recipe = slapos.recipe.template\n  output = ${buildout:directory}/etc/page\n\
         \x20 inline = {{ '{{' }} kind }} page\n\
         context = raw kind gitlab\n\n\
         [instance-gitlab-export.cfg]\n<= instance-cfg\n\
         inline =\n  [buildout]\n  extends = {{ '{{' }} instance_gitlab_cfg }}\n  parts += export\n\
         \x20 [export]\n  recipe = slapos.recipe.template\n\
         \x20 output = ${buildout:directory}/etc/export\n  inline = export of {{ '{{' }} kind }}\n\
         context =\n  raw instance_gitlab_cfg ${instance-gitlab.cfg:output}\n  raw kind gitlab\n",
    );
    let out = dry_run(&r, "g", &software);
    assert_eq!(out.code, 0, "{}", out.stderr);
    r.ok(&["instance", "create", "g", "--software", &software]);
    let p = r.partition("g");
    let read = |f: &str| std::fs::read_to_string(p.join(f)).expect(f);
    assert_eq!(read("etc/page"), "gitlab page");
    assert_eq!(read("etc/export"), "export of gitlab");
    assert!(read("instance-gitlab.cfg").contains("parts = page"));
}

#[test]
fn an_instance_reads_the_software_s_files_by_their_buildout_paths() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // software/grafana: `[influxdb-config-file]` downloads the template into its part
    // directory, and the instance reads `{{ buildout_parts_directory }}/<part>/<file>`;
    // stack/monitor's `[monitor2-template]` renders `${buildout:directory}/template-monitor.cfg`,
    // which software/jupyter's instance extends by that path
    env.write(
        "influxdb-config-file.cfg.in",
        "bind = {{ influxdb['ip'] }}\n",
    );
    env.write(
        "instance-monitor.cfg.in",
        "[monitor]\nrecipe = slapos.recipe.template\n\
         output = ${buildout:directory}/etc/monitor\ninline = monitored by {{ who }}\n",
    );
    env.write(
        "instance.cfg.in",
        "[buildout]\nextends = {{ buildout['directory'] }}/template-monitor.cfg\n\
         parts = influxdb-config-file monitor\n\n\
         [influxdb]\nip = 10.0.0.1\n\n\
         [influxdb-config-file]\nrecipe = slapos.recipe.template:jinja2\n\
         url = {{ buildout['parts-directory'] }}/${:_buildout_section_name_}/${:_buildout_section_name_}.cfg.in\n\
         output = ${buildout:directory}/etc/influxdb.cfg\n\
         context = section influxdb influxdb\n",
    );
    let software = env
        .write(
            "software.cfg",
            "[buildout]\nparts = influxdb-config-file monitor2-template instance-profile\n\n\
             [influxdb-config-file]\nrecipe = slapos.recipe.build:download\n\
             url = ${:_profile_base_location_}/${:filename}\n\
             filename = influxdb-config-file.cfg.in\n\n\
             [monitor2-template]\nrecipe = slapos.recipe.template:jinja2\n\
             url = ${:_profile_base_location_}/instance-monitor.cfg.in\n\
             output = ${buildout:directory}/template-monitor.cfg\n\
             context = raw who monitor2\n\n\
             [instance-profile]\nrecipe = slapos.recipe.template:jinja2\n\
             url = ${:_profile_base_location_}/instance.cfg.in\n\
             output = ${buildout:directory}/instance.cfg\n\
             context = section buildout buildout\n",
        )
        .to_string_lossy()
        .into_owned();
    let out = dry_run(&r, "f", &software);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("etc/influxdb.cfg"), "{}", out.stdout);
    r.ok(&["instance", "create", "f", "--software", &software]);
    let p = r.partition("f");
    let read = |f: &str| std::fs::read_to_string(p.join(f)).expect(f);
    assert_eq!(read("etc/influxdb.cfg"), "bind = 10.0.0.1\n");
    assert_eq!(read("etc/monitor"), "monitored by monitor2");
}
