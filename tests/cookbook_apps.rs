//! The slapos.cookbook recipes that lay out a whole service in the partition
//! (`generic.cloudooo`, `cloudooo.test`, `zabbixagent`) and rapid-cdn's `software`, end to end:
//! a real deploy of a small release made of the corpus's real sections, its files checked and
//! its scripts run.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{have, Root, TestEnv};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether process `pid` runs (a zombie does not: the container's init may never reap it).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn executable(env: &TestEnv, name: &str, text: &str) -> String {
    let path = env.write(name, text);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_string_lossy().into_owned()
}

// software/zabbix-agent/instance.cfg, whole (the binaries' paths given)
const ZABBIX: &str = "[buildout]\nparts =\n  instance\n\n\
    [instance]\nrecipe = slapos.cookbook:zabbixagent\n\
    dcrond_binary = /opt/dcron/sbin/crond\n\
    logrotate_binary = /opt/logrotate/usr/sbin/logrotate\n\
    zabbix_agentd_binary = /opt/zabbix/sbin/zabbix_agentd\n";

#[test]
fn zabbixagent_lays_out_the_agent_cron_and_logrotate_and_publishes_the_agent() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(ZABBIX);
    // the agent needs the requester's `hostname` and `server`: nothing is made without them
    let out = r.run(&["instance", "create", "z", "--software", &software]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("[instance]") && out.stderr.contains("instance parameter `hostname`"),
        "{}",
        out.stderr
    );
    assert!(!r.partition("z").exists());
    let out = r.run(&[
        "instance",
        "create",
        "z",
        "--software",
        &software,
        "-p",
        "hostname=h1",
        "-p",
        "server=10.0.0.1\nUserParameter=x,touch /tmp/owned",
    ]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("`server` holds a newline"),
        "{}",
        out.stderr
    );

    r.ok(&[
        "instance",
        "create",
        "z",
        "--software",
        &software,
        "-p",
        "hostname=h1",
        "-p",
        "server=10.0.0.1",
        "-p",
        "custom-user-parameter=UserParameter=a.b,echo 1",
    ]);
    let p = r.partition("z");
    let at = |rel: &str| p.join(rel);
    let ps = p.to_string_lossy().into_owned();
    for dir in [
        "bin",
        "sbin",
        "srv/backup/logrotate",
        "srv/cronstamps",
        "etc/cron.d",
        "etc/crontabs",
        "etc/logrotate.d",
        "etc/promise",
        "etc/report",
        "var/log/cron-output",
        "var/run",
        "tmp",
    ] {
        assert!(at(dir).is_dir(), "{dir}");
        assert_eq!(mode(&at(dir)), 0o700, "{dir}");
    }
    let conf = read(&at("etc/zabbix_agentd.conf"));
    let show = r.ok(&["instance", "show", "z"]);
    let ip = show
        .lines()
        .find_map(|l| l.strip_prefix("published   ip = "))
        .expect("ip published")
        .to_owned();
    assert!(ip.contains(':'), "an IPv6 address: {ip}");
    assert!(show.contains("published   name = h1"), "{show}");
    assert!(show.contains("published   port = 10050"), "{show}");
    for line in [
        format!("PidFile={ps}/var/run/zabbix_agentd.pid"),
        format!("LogFile={ps}/var/log/zabbix_agentd.log"),
        format!("SourceIP={ip}"),
        format!("ListenIP={ip}"),
        "Server=10.0.0.1".into(),
        "Hostname=h1".into(),
        "ListenPort=10050".into(),
        "Timeout=15".into(),
        "UserParameter=a.b,echo 1".into(),
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} in\n{conf}");
    }
    assert_eq!(
        read(&at("bin/zabbixagentd")),
        format!("#!/bin/sh\nexec /opt/zabbix/sbin/zabbix_agentd -c {ps}/etc/zabbix_agentd.conf\n")
    );
    assert_eq!(
        read(&at("etc/run/crond")),
        format!(
            "#!/bin/sh\nexec /opt/dcron/sbin/crond -s {ps}/etc/cron.d -c {ps}/etc/crontabs \
             -t {ps}/srv/cronstamps -f -l 5 -M {ps}/bin/catchcron\n"
        )
    );
    assert_eq!(
        read(&at("etc/cron.d/logrotate")),
        format!(
            "0 0 * * * /opt/logrotate/usr/sbin/logrotate -s {ps}/srv/logrotate.status \
             {ps}/etc/logrotate.conf"
        )
    );
    assert_eq!(
        read(&at("etc/logrotate.conf")),
        format!("include {ps}/etc/logrotate.d")
    );
    let entry = read(&at("etc/logrotate.d/zabbix_agentd"));
    assert!(
        entry.starts_with(&format!("\"{ps}/var/log/zabbix_agentd.log\" {{\n")),
        "{entry}"
    );
    assert!(
        entry.contains(&format!("  olddir {ps}/srv/backup/logrotate\n")),
        "{entry}"
    );
    // the cron catcher keeps what a job printed in a dated file
    let mut child = Command::new(at("bin/catchcron"))
        .stdin(Stdio::piped())
        .spawn()
        .expect("run catchcron");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"job said hi\n")
        .expect("write");
    assert!(child.wait().expect("wait").success());
    let caught: Vec<_> = std::fs::read_dir(at("var/log/cron-output"))
        .expect("cron-output")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(caught.len(), 1, "{caught:?}");
    assert!(caught[0].to_string_lossy().ends_with(".log"));
    assert_eq!(read(&caught[0]), "job said hi\n");
    // the service starts the agent (which forks), then watches the process of its pid file;
    // SIGTERM stops that process
    let agent = executable(
        &env,
        "agentd",
        "#!/bin/sh\n[ \"$1\" = -c ] || exit 2\n\
         pid=$(sed -n 's/^PidFile=//p' \"$2\")\n\
         sleep 300 > /dev/null 2>&1 &\necho $! > \"$pid\"\n",
    );
    let software = env.jinja2_release(&ZABBIX.replace("/opt/zabbix/sbin/zabbix_agentd", &agent));
    r.ok(&[
        "instance",
        "create",
        "z2",
        "--software",
        &software,
        "-p",
        "hostname=h2",
        "-p",
        "server=10.0.0.1",
    ]);
    let p = r.partition("z2");
    let mut service = Command::new(p.join("etc/run/zabbixagentd"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the service");
    let pidfile = p.join("var/run/zabbix_agentd.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pidfile.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = read(&pidfile).trim().to_owned();
    assert!(alive(&pid));
    assert!(
        service.try_wait().expect("wait").is_none(),
        "the service keeps running"
    );
    let status = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = service.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Killing on signal TERM") && text.contains("done."),
        "{text}"
    );
    assert!(!alive(&pid), "the agent is stopped");
}

// software/cloudooo/instance-cloudooo.cfg.in: [cloudooo-base], one [cloudooo-N] and
// [cloudooo-test-runner], the Jinja2 values given (`{{ ... }}` as the release renders them)
const CLOUDOOO: &str = "[buildout]\nparts = directory cloudooo-1 cloudooo-test-runner\n\n\
    [directory]\nrecipe = slapos.cookbook:mkdirectory\netc = ${buildout:directory}/etc\n\
    srv = ${buildout:directory}/srv\nservices = ${:etc}/service\n\
    bin = ${buildout:directory}/bin\n\n\
    [cloudooo-base]\nrecipe = slapos.cookbook:generic.cloudooo\nip = 10.0.0.7\n\
    environment =\n  LD_LIBRARY_PATH = /opt/avahi/lib:/opt/cairo/lib\n\
    \x20 FONTCONFIG_FILE = ${directory:etc}/fonts.conf\n  PATH = ${directory:bin}\n\
    \x20 LANG = C.UTF-8\n\
    mimetype_entry_addition =\n  text/x-custom * ooo\n\
    ooo-binary-path = /opt/libreoffice/program\nooo-paster = PASTER\n\
    ooo-uno-path = /opt/libreoffice/basis-link/program\nooo_enable_scripting = false\n\n\
    [cloudooo-1]\n< = cloudooo-base\nport = 23000\nopenoffice-port = 23060\n\
    configuration-file = ${directory:etc}/cloudooo-1.cfg\n\
    data-directory = ${directory:srv}/cloudooo-1\nwrapper = ${directory:services}/cloudooo-1\n\n\
    [cloudooo-test-runner]\nrecipe = slapos.cookbook:cloudooo.test\n\n\
    prepend-path = ${buildout:bin-directory}\n\
    run-unit-test = ${buildout:bin-directory}/runUnitTest\n\
    run-test-suite = ${buildout:bin-directory}/runTestSuite\n\n\
    ooo-paster = ${cloudooo-1:ooo-paster}\n\
    configuration-file = ${cloudooo-1:configuration-file}\n\n\
    run-unit-test-binary = UNIT\nrun-test-suite-binary = SUITE\n";

#[test]
fn generic_cloudooo_writes_the_servers_configuration_and_a_service_that_stops_it() {
    if !have(
        "generic_cloudooo_writes_the_servers_configuration_and_a_service_that_stops_it",
        &["setsid"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let dir = env.path().to_string_lossy().into_owned();
    let paster = executable(
        &env,
        "paster",
        &format!("#!/bin/sh\necho \"$@\" > {dir}/paster.args\necho $$ > {dir}/paster.pid\nexec sleep 300\n"),
    );
    // a `#!` line run by the runner as the interpreter it names, the binary's path first
    let unit = executable(&env, "unit", "#!/bin/sh\necho \"unit $0 $* PATH=$PATH\"\n");
    let suite = executable(&env, "suite", "#!/bin/sh\necho \"suite $*\"\n");
    let profile = CLOUDOOO
        .replace("PASTER", &paster)
        .replace("UNIT", &unit)
        .replace("SUITE", &suite);
    let software = env.jinja2_release(&profile);
    r.ok(&["instance", "create", "c", "--software", &software]);
    let p = r.partition("c");
    let ps = p.to_string_lossy().into_owned();
    let conf = read(&p.join("etc/cloudooo-1.cfg"));
    for line in [
        format!("working_path = {ps}/srv/cloudooo-1"),
        "uno_path = /opt/libreoffice/basis-link/program".into(),
        "office_binary_path = /opt/libreoffice/program".into(),
        "ooo_enable_scripting = false".into(),
        "application_hostname = 10.0.0.7".into(),
        "openoffice_port = 23060".into(),
        "env-LD_LIBRARY_PATH = /opt/avahi/lib:/opt/cairo/lib".into(),
        format!("env-FONTCONFIG_FILE = {ps}/etc/fonts.conf"),
        format!("env-PATH = {ps}/bin"),
        "env-LANG = C.UTF-8".into(),
        "host = 10.0.0.7".into(),
        "port = 23000".into(),
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} in\n{conf}");
    }
    // the addition sorted in among the cookbook's defaults: before `text/*`, as `*` is last
    let registry: Vec<&str> = conf
        .split("mimetype_registry =\n")
        .nth(1)
        .expect("registry")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(registry.len(), 38, "{registry:?}");
    assert_eq!(registry[0], "  application/csv * ooo");
    let custom = registry.iter().position(|l| *l == "  text/x-custom * ooo");
    let text = registry.iter().position(|l| *l == "  text/* * ooo");
    assert_eq!(custom.map(|c| c + 1), text, "{registry:?}");
    assert_eq!(
        registry.last(),
        Some(&"  * application/vnd.oasis.opendocument* ooo")
    );

    // the service runs `paster serve CONF`; SIGTERM ends the server's whole process group
    let mut service = Command::new(p.join("etc/service/cloudooo-1"))
        .stdout(Stdio::null())
        .spawn()
        .expect("run the service");
    let pidfile = env.path().join("paster.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pidfile.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        read(&env.path().join("paster.args")).trim(),
        format!("serve {ps}/etc/cloudooo-1.cfg")
    );
    let pid = read(&pidfile).trim().to_owned();
    assert!(alive(&pid));
    Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .expect("kill");
    assert!(service.wait().expect("wait").success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!alive(&pid), "the server is stopped");

    let out = Command::new(p.join("bin/runUnitTest"))
        .arg("-v")
        .output()
        .expect("runUnitTest");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "unit {unit} --paster_path {paster} {ps}/etc/cloudooo-1.cfg -v PATH={ps}/bin:"
        )),
        "{text}"
    );
    let out = Command::new(p.join("bin/runTestSuite"))
        .args(["--a", "b c"])
        .output()
        .expect("runTestSuite");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "suite --a b c\n");
}

#[test]
fn generic_cloudooo_refuses_bad_options_naming_them() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    for (from, to, needle) in [
        (
            "port = 23000",
            "port = twenty",
            "`twenty` is not an integer",
        ),
        (
            "  LANG = C.UTF-8",
            "  LANG = C=UTF-8",
            "is not `KEY = value`",
        ),
    ] {
        let software = env.jinja2_release(&CLOUDOOO.replace(from, to));
        let out = r.run(&["instance", "create", "c", "--software", &software]);
        assert_ne!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
        assert!(out.stderr.contains("[cloudooo-1]"), "{}", out.stderr);
        assert!(!r.partition("c").exists());
    }
}

// software/rapid-cdn/instance.cfg.in: the part that puts the release's `software` egg on
// buildout's path; it sets and writes nothing
#[test]
fn rapid_cdns_software_recipe_does_nothing() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(
        "[buildout]\nparts =\n  software-py\n  page\n\n[software-py]\nrecipe = software\n\n\
         [page]\nrecipe = slapos.recipe.template\noutput = ${buildout:directory}/page\n\
         depends = ${software-py:recipe}\ninline = done\n",
    );
    r.ok(&["instance", "create", "s", "--software", &software]);
    let p = r.partition("s");
    assert_eq!(read(&p.join("page")).trim(), "done");
    let mut names: Vec<String> = std::fs::read_dir(&p)
        .expect("partition")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert_eq!(names, ["current", "page"]);
}
