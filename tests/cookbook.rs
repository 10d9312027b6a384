//! The slapos.cookbook recipes an instance profile uses, end to end through the binary, on
//! snippets of the corpus's real instance profiles (their origin in a comment above each).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{Root, TestEnv};

/// Every file under `dir` (following no link) with its content, for before/after comparisons.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.expect("entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p.strip_prefix(dir).expect("inside").to_owned();
            if meta.is_dir() {
                stack.push(p);
                out.insert(rel, "<dir>".into());
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).expect("readlink");
                out.insert(rel, format!("-> {}", target.display()));
            } else {
                out.insert(rel, std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

const GENERATORS: &str = r#"[buildout]
parts = directory monitor-htpasswd mariadb-password gen-password backup-port replication-id backup-time page

[slap-parameter]
greeting = Hello

[directory]
recipe = slapos.cookbook:mkdirectory
etc = ${buildout:directory}/etc
srv = ${buildout:directory}/srv

# stack/monitor/instance-monitor.cfg.jinja2.in
[monitor-htpasswd]
recipe = slapos.cookbook:generate.password
storage-path = ${directory:etc}/.monitor_pwd

# stack/lamp/instance.cfg.in (storage-path defaults to ${buildout:parts-directory}/<section>)
[mariadb-password]
recipe = slapos.cookbook:generate.password

# stack/erp5-zope2/instance-erp5.cfg.in (no storage-path: slapstore keeps it all the same)
[gen-password]
recipe = slapos.cookbook:generate.password
storage-path =

# stack/resilient/pbsready-export.cfg.in (ip 127.0.0.1 here)
[backup-port]
recipe = slapos.cookbook:free_port
minimum = 22200
maximum = 22209
ip = 127.0.0.1

# stack/erp5-zope2/instance-mariadb.cfg.in
[replication-id]
recipe = slapos.cookbook:random.integer
minimum = 1
maximum = 4294967295

# stack/resilient/pbsready-export.cfg.in
[backup-time]
recipe = slapos.cookbook:random.time

{% raw %}
[page]
recipe = slapos.recipe.template:jinja2
inline =
  {{ greeting }} monitor={{ monitor }} mariadb={{ mariadb }} gen={{ gen }} port={{ port }} id={{ id }} time={{ time }}
context =
  key greeting slap-parameter:greeting
  key monitor monitor-htpasswd:passwd
  key mariadb mariadb-password:passwd
  key gen gen-password:passwd
  key port backup-port:port
  key id replication-id:value
  key time backup-time:time
output = ${buildout:directory}/config/page.txt
{% endraw %}
"#;

/// The password in a `generate.password` file (`{"": password, "passwd-<scheme>": hash}`).
fn kept_password(text: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
    json[""].as_str().expect("a password").to_owned()
}

/// The values the page shows, by name.
fn values(r: &Root, name: &str) -> BTreeMap<String, String> {
    let page = std::fs::read_to_string(r.partition(name).join("config/page.txt")).expect("page");
    page.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn generated_values_are_kept_in_the_partition_across_upgrades_and_rollbacks() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(GENERATORS);
    r.ok(&["instance", "create", "db", "--software", &software]);
    let first = values(&r, "db");
    for key in ["monitor", "mariadb", "gen"] {
        let p = &first[key];
        assert_eq!(p.len(), 16, "{key}: {p}");
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()), "{key}: {p}");
    }
    let port: u16 = first["port"].parse().expect("port");
    assert!((22200..22209).contains(&port), "{port}");
    let id: u64 = first["id"].parse().expect("id");
    assert!((1..=4294967295).contains(&id));
    let (h, m) = first["time"].split_once(':').expect("H:MM");
    assert!(h.parse::<u8>().expect("hour") < 24 && m.len() == 2);
    // kept where the profile says, the instance's alone
    let p = r.partition("db");
    for (file, value) in [
        ("etc/.monitor_pwd", "monitor"),
        ("parts/mariadb-password", "mariadb"),
        (".slapstore/gen-password.passwd", "gen"),
        (".slapstore/backup-port.port", "port"),
        (".slapstore/replication-id.value", "id"),
        (".slapstore/backup-time.time", "time"),
    ] {
        let text = std::fs::read_to_string(p.join(file)).expect(file);
        // passwords are kept as the cookbook keeps them: JSON, the password under `""`
        let kept = match ["monitor", "mariadb", "gen"].contains(&value) {
            true => kept_password(&text),
            false => text,
        };
        assert_eq!(kept, first[value], "{file}");
        assert_eq!(mode(&p.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&p.join(".slapstore")), 0o700);
    // never in the store's generation: the state files are the partition's own
    assert!(!std::fs::symlink_metadata(p.join("etc/.monitor_pwd"))
        .expect("stat")
        .file_type()
        .is_symlink());

    // a dry run renders with the kept values and writes nothing
    let before = tree(&p);
    let out = r.run(&[
        "instance",
        "upgrade",
        "db",
        "--software",
        &software,
        "--dry-run",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("would change nothing"),
        "{}",
        out.stdout
    );
    assert_eq!(tree(&p), before);
    // so does an upgrade that changes nothing
    let out = r.ok(&["instance", "upgrade", "db", "--software", &software]);
    assert!(out.contains("unchanged"), "{out}");

    // a new parameter: a new generation, the same generated values
    r.ok(&[
        "instance",
        "upgrade",
        "db",
        "--software",
        &software,
        "-p",
        "greeting=Hi",
    ]);
    let second = values(&r, "db");
    assert_eq!(second.get("Hi monitor").map(String::as_str), None);
    let page = std::fs::read_to_string(p.join("config/page.txt")).expect("page");
    assert!(page.starts_with("Hi "), "{page}");
    assert_eq!(second, first);
    r.ok(&["instance", "rollback", "db"]);
    let page = std::fs::read_to_string(p.join("config/page.txt")).expect("page");
    assert!(page.starts_with("Hello "), "{page}");
    assert_eq!(values(&r, "db"), first);

    // other instances get their own values, and those rendered together their own ports on
    // the one address they share (ports that no service listens on yet)
    r.ok(&["instance", "create", "db2", "db3", "--software", &software]);
    let (two, three) = (values(&r, "db2"), values(&r, "db3"));
    assert_ne!(two["monitor"], first["monitor"]);
    assert_ne!(two["monitor"], three["monitor"]);
    assert_ne!(
        two["port"], three["port"],
        "two instances rendered on one address"
    );
    // and so do those rendered by other commands: a port kept by a partition is not free
    assert_ne!(
        two["port"], first["port"],
        "a port kept by another partition"
    );
    assert_ne!(
        three["port"], first["port"],
        "a port kept by another partition"
    );
    // a destroyed instance takes its state with it
    r.ok(&["instance", "destroy", "db"]);
    assert!(!p.exists());
    r.ok(&["instance", "create", "db", "--software", &software]);
    assert_ne!(values(&r, "db")["monitor"], first["monitor"]);
}

#[test]
fn a_given_password_is_used_and_written_where_none_is_kept() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // stack/wendelin/instance-mariadb.cfg.in (`passwd` given by the upstream)
    let software = env.jinja2_release(
        "[buildout]\nparts = directory replication-password page\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\netc = ${buildout:directory}/etc\n\n\
         [replication-password]\nrecipe = slapos.cookbook:generate.password\n\
         storage-path = ${directory:etc}/mariadb-replication.password\npasswd = given\n\n\
         [page]\nrecipe = slapos.recipe.template\noutput = ${buildout:directory}/page\n\
         inline = ${replication-password:passwd}\n",
    );
    r.ok(&["instance", "create", "m", "--software", &software]);
    let p = r.partition("m");
    assert_eq!(
        std::fs::read_to_string(p.join("page"))
            .expect("page")
            .trim(),
        "given"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("etc/mariadb-replication.password")).expect("kept"),
        r#"{"": "given"}"#
    );
}

#[test]
fn bad_generator_options_are_errors_naming_the_option_and_change_nothing() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    for (section, option, needle) in [
        (
            "[pwd]\nrecipe = slapos.cookbook:generate.password\n\n[pw]\n\
             recipe = slapos.recipe.template\noutput = ${buildout:directory}/x\n\
             inline = ${pwd:passwd-md5-crypt}\n",
            "passwd-md5-crypt",
            "does not make passlib's `md5_crypt`",
        ),
        (
            "[pw]\nrecipe = slapos.cookbook:generate.password\nbytes = eight\n",
            "bytes",
            "not an integer",
        ),
        (
            "[pw]\nrecipe = slapos.cookbook:random.integer\nminimum = 1\nmaximum = x\n",
            "maximum",
            "not an integer",
        ),
        (
            "[pw]\nrecipe = slapos.cookbook:generate.password\nstorage-path = /etc/passwd\n",
            "storage-path",
            "not inside the partition",
        ),
    ] {
        let software = env.jinja2_release(&format!("[buildout]\nparts = pw\n\n{section}"));
        let out = r.run(&["instance", "create", "bad", "--software", &software]);
        assert_eq!(out.code, 2, "{section}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{section}: {}", out.stderr);
        assert!(out.stderr.contains("instance.cfg"), "{}", out.stderr);
        assert!(out.stderr.contains(option), "{}", out.stderr);
        assert!(!r.partition("bad").exists(), "{section}");
    }
}

#[test]
fn state_is_never_read_or_written_through_a_planted_symlink() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(GENERATORS);
    r.ok(&["instance", "create", "s", "--software", &software]);
    let p = r.partition("s");
    let outside = env.write("outside", "secret of someone else");
    std::fs::remove_file(p.join("etc/.monitor_pwd")).expect("rm");
    std::os::unix::fs::symlink(&outside, p.join("etc/.monitor_pwd")).expect("symlink");
    let out = r.run(&[
        "instance",
        "upgrade",
        "s",
        "--software",
        &software,
        "-p",
        "greeting=x",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("symlink"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&outside).expect("outside"),
        "secret of someone else"
    );
}

/// A release whose instance profile is SlapOS's `stack/logrotate` one, unchanged
/// (`tests/fixtures/cookbook/logrotate/`), its software values given as the stack's
/// `buildout.cfg` gives them (dcron, xz and logrotate at fixed paths here: nothing runs them).
fn logrotate_release(env: &TestEnv) -> String {
    let fixtures = crate::common::repo_root().join("tests/fixtures/cookbook/logrotate");
    for f in [
        "instance-logrotate-base.cfg.in",
        "logrotate.conf.in",
        "logrotate_entry.in",
    ] {
        let text = std::fs::read_to_string(fixtures.join(f)).expect(f);
        env.write(&format!("logrotate/{f}"), &text);
    }
    env.write(
        "logrotate/software.cfg",
        "[buildout]\nparts = instance-profile\n\n\
         [download-base]\nrecipe = slapos.recipe.build:download\n\
         url = ${:_profile_base_location_}/${:filename}\n\n\
         [logrotate-conf-template]\n<= download-base\nfilename = logrotate.conf.in\n\n\
         [logrotate-entry-template]\n<= download-base\nfilename = logrotate_entry.in\n\n\
         [instance-profile]\nrecipe = slapos.recipe.template:jinja2\n\
         url = ${:_profile_base_location_}/instance-logrotate-base.cfg.in\n\
         output = ${buildout:directory}/instance.cfg\n\
         context =\n\
         \x20 raw dcron_location /opt/dcron\n\
         \x20 raw xz_location /opt/xz\n\
         \x20 raw logrotate_location /opt/logrotate\n\
         \x20 key logrotate_conf_template logrotate-conf-template:target\n\
         \x20 key logrotate_entry_template logrotate-entry-template:target\n",
    )
    .to_string_lossy()
    .into_owned()
}

#[test]
fn the_logrotate_stack_renders_its_cron_service_entries_and_logger() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = logrotate_release(&env);
    r.ok(&["instance", "create", "lr", "--software", &software]);
    let p = r.partition("lr");
    let d = p.to_string_lossy().into_owned();
    // the cookbook's dcron wrapper, and the service that runs it
    assert_eq!(
        std::fs::read_to_string(p.join("bin/crond")).expect("crond"),
        format!(
            "#!/bin/sh\nexec /opt/dcron/sbin/crond -s {d}/etc/cron.d -c {d}/etc/crontabs \
             -t {d}/etc/cronstamps -f -l 5 -M {d}/bin/cron_simplelogger\n"
        )
    );
    assert_ne!(mode(&p.join("bin/crond")) & 0o111, 0, "executable");
    assert_eq!(
        std::fs::read_to_string(p.join("etc/service/crond")).expect("service"),
        format!("#!/bin/sh\nexec {d}/bin/crond\n")
    );
    // the cron.d entry, in the mutable cron.d directory dcron reads
    assert_eq!(
        std::fs::read_to_string(p.join("etc/cron.d/logrotate")).expect("entry"),
        format!("0 0 * * * {d}/bin/logrotate\n")
    );
    // the logrotate entry for cron's own log (jinja2 on the stack's template)
    let entry = std::fs::read_to_string(p.join("etc/logrotate.d/crond")).expect("entry");
    assert!(
        entry.starts_with(&format!("{d}/var/log/cron.log {{\n  daily\n")),
        "{entry}"
    );
    assert!(
        entry.contains(&format!("olddir {d}/srv/backup/logrotate")),
        "{entry}"
    );
    // the logger dcron gives jobs' output to: lines after a time prefix, then a separator
    let logger = p.join("bin/cron_simplelogger");
    let mut child = std::process::Command::new(&logger)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run the logger");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        b"job said 'hi' $(x)\nlast",
    )
    .expect("write");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
    let log = std::fs::read_to_string(p.join("var/log/cron.log")).expect("log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    let prefix = lines[0].split(' ').next().expect("prefix");
    assert!(prefix.ends_with(':') && prefix.len() > 20, "{log}");
    assert_eq!(lines[0], format!("{prefix} job said 'hi' $(x)"));
    assert_eq!(
        lines[1],
        format!(" {prefix} last {prefix} ------------------------")
    );
}

#[test]
fn cron_entries_take_systemd_times_and_keep_a_random_time_of_day() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(
        "[buildout]\nparts = at once bad-free\n\n\
         [slap-parameter]\njob = /bin/true\n\n\
         [dirs]\nrecipe = slapos.cookbook:mkdirectory\ncron-entries = ${buildout:directory}/etc/cron.d\n\n\
         [at]\nrecipe = slapos.cookbook:cron.d\ncron-entries = ${dirs:cron-entries}\nname = at\n\
         time = Mon,Fri 12:30\ncommand = ${slap-parameter:job}\n\n\
         # software/kvm/instance-kvm.cfg.jinja2 (once-a-day)\n\
         [once]\nrecipe = slapos.cookbook:cron.d\ncron-entries = ${dirs:cron-entries}\nname = once\n\
         once-a-day = true\ncommand = /bin/true\n\n\
         [bad-free]\nrecipe = slapos.cookbook:cron.d\ncron-entries = ${dirs:cron-entries}\n\
         name = b\nfrequency = daily\ncommand = x\n",
    );
    r.ok(&["instance", "create", "c", "--software", &software]);
    let p = r.partition("c");
    let read = |f: &str| std::fs::read_to_string(p.join(f)).expect(f);
    assert_eq!(read("etc/cron.d/at"), "30 12 * * 1,5 /bin/true\n");
    let once = read("etc/cron.d/once");
    let fields: Vec<&str> = once.split(' ').collect();
    assert!(fields[0].parse::<u8>().expect("minute") < 60, "{once}");
    assert!(fields[1].parse::<u8>().expect("hour") < 24, "{once}");
    assert_eq!(fields[2..], ["*", "*", "*", "/bin/true\n"]);
    r.ok(&[
        "instance",
        "upgrade",
        "c",
        "--software",
        &software,
        "-p",
        "job=/bin/date",
    ]);
    assert_eq!(read("etc/cron.d/at"), "30 12 * * 1,5 /bin/date\n");
    assert_eq!(read("etc/cron.d/once"), once, "the time of day is kept");
    // a parameter cannot add a line to the crontab
    let out = r.run(&[
        "instance",
        "upgrade",
        "c",
        "--software",
        &software,
        "-p",
        "job=/bin/true\n* * * * * /bin/evil",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("one line"), "{}", out.stderr);
    assert!(out.stderr.contains("command"), "{}", out.stderr);
    assert_eq!(read("etc/cron.d/at"), "30 12 * * 1,5 /bin/date\n");
    // an invalid calendar spec names the option
    let bad = env.jinja2_release(
        "[buildout]\nparts = at\n[at]\nrecipe = slapos.cookbook:cron.d\n\
         cron-entries = ${buildout:directory}/etc/cron.d\nname = at\ntime = 25:00\ncommand = x\n",
    );
    let out = r.run(&["instance", "create", "bad", "--software", &bad]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid systemd calendar spec '25:00'"),
        "{}",
        out.stderr
    );
}

#[test]
fn symlinks_userinfo_and_a_port_promise() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = listener.local_addr().expect("addr").port();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let software = env.jinja2_release(
        &format!(
            "[buildout]\nparts = links user page up down\n\n\
             [monitor-directory]\nrecipe = slapos.cookbook:mkdirectory\n\
             public = ${{buildout:directory}}/srv/monitor/public\n\
             promise-result = ${{buildout:directory}}/var/promise\n\n\
             # stack/monitor/instance-monitor.cfg.jinja2.in\n\
             [links]\nrecipe = cns.recipe.symlink\nsymlink =\n\
             \x20 ${{monitor-directory:promise-result}} = ${{monitor-directory:public}}/promise\n\n\
             # software/ssh/instance.cfg\n\
             [user]\nrecipe = slapos.cookbook:userinfo\n\n\
             [page]\nrecipe = slapos.recipe.template\noutput = ${{buildout:directory}}/user\n\
             inline = ${{user:pw-name}} ${{user:pw-uid}} ${{user:gr-name}} ${{user:pw-dir}}\n\n\
             # software/jstestnode/instance.cfg.in\n\
             [up]\nrecipe = slapos.cookbook:check_port_listening\n\
             path = ${{buildout:directory}}/etc/promise/up\nhostname = 127.0.0.1\nport = {open}\n\n\
             [down]\nrecipe = slapos.cookbook:check_port_listening\n\
             path = ${{buildout:directory}}/etc/promise/down\nhostname = 127.0.0.1\nport = {closed}\n"
        ),
    );
    r.ok(&["instance", "create", "m", "--software", &software]);
    let p = r.partition("m");
    std::fs::write(p.join("var/promise/x.json"), "{}").expect("write");
    assert_eq!(
        std::fs::read_to_string(p.join("srv/monitor/public/promise/x.json")).expect("via link"),
        "{}"
    );
    let id = |flag: &str| {
        let out = std::process::Command::new("id")
            .arg(flag)
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let user = std::fs::read_to_string(p.join("user")).expect("user");
    let words: Vec<&str> = user.split_whitespace().collect();
    assert_eq!(words[..3], [id("-un"), id("-u"), id("-gn")]);
    assert!(words[3].starts_with('/'), "{user}");
    let run = |name: &str| {
        std::process::Command::new(p.join("etc/promise").join(name))
            .output()
            .expect("run the promise")
    };
    assert_eq!(run("up").status.code(), Some(0));
    let down = run("down");
    assert_eq!(down.status.code(), Some(127));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("isn't listening"),
        "{down:?}"
    );
    drop(listener);
}

/// Answers every HTTP request on a fresh port with `401 Unauthorized`; the port.
fn http_401() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    port
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn status_checks_promises_and_plugins() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let web = http_401();
    let closed = free_port();
    // the plugins as stack/monitor/instance-monitor.cfg.jinja2.in writes them
    // (`[monitor-promise-base]`, `[monitor-httpd-promise]`)
    let software = env.jinja2_release(
        &format!(
            "[buildout]\nparts = web-up port-down httpd-promise socket-promise file-promise disk-promise\n\n\
             [directory]\nrecipe = slapos.cookbook:mkdirectory\netc = ${{buildout:directory}}/etc\n\
             plugins = ${{:etc}}/plugin\npromise = ${{:etc}}/promise\nsrv = ${{buildout:directory}}/srv\n\n\
             [web-up]\nrecipe = slapos.cookbook:check_port_listening\n\
             path = ${{directory:promise}}/web-up\nhostname = 127.0.0.1\nport = {web}\n\n\
             [port-down]\nrecipe = slapos.cookbook:check_port_listening\n\
             path = ${{directory:promise}}/port-down\nhostname = 127.0.0.1\nport = {closed}\n\n\
             [monitor-promise-base]\nrecipe = slapos.cookbook:promise.plugin\neggs =\n  slapos.toolbox\n\
             module = slapos.promise.plugin.${{:promise}}\noutput = ${{directory:plugins}}/${{:name}}\n\n\
             [httpd-promise]\n<= monitor-promise-base\npromise = check_url_available\n\
             name = monitor-httpd-listening-on-tcp.py\nconfig-url = http://127.0.0.1:{web}/\n\
             config-http-code = 401\n\n\
             [socket-promise]\n<= monitor-promise-base\npromise = check_socket_listening\n\
             name = socket.py\nconfig-host = 127.0.0.1\nconfig-port = {closed}\n\n\
             [file-promise]\n<= monitor-promise-base\npromise = check_file_state\n\
             name = file.py\nconfig-filename = srv/flag\nconfig-state = empty\n\n\
             [disk-promise]\n<= monitor-promise-base\npromise = check_free_disk_space\n\
             name = disk.py\nconfig-collectordb = x\n"
        ),
    );
    r.ok(&["instance", "create", "w", "--software", &software]);
    let p = r.partition("w");
    let plugin = std::fs::read_to_string(p.join("etc/plugin/monitor-httpd-listening-on-tcp.py"))
        .expect("plugin");
    assert!(
        plugin.contains("from slapos.promise.plugin.check_url_available import RunPromise"),
        "{plugin}"
    );
    assert!(plugin.contains("\"http-code\": \"401\""), "{plugin}");
    let check = |r: &Root| -> BTreeMap<String, (String, String, String)> {
        let out = r.ok(&["instance", "status", "w", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["promises"]
            .as_array()
            .expect("promises")
            .iter()
            .map(|p| {
                assert_eq!(p["instance"], "w");
                (
                    p["promise"].as_str().expect("name").to_owned(),
                    (
                        p["kind"].as_str().expect("kind").to_owned(),
                        p["state"].as_str().expect("state").to_owned(),
                        p["output"].as_str().expect("output").to_owned(),
                    ),
                )
            })
            .collect()
    };
    let found = check(&r);
    let state = |name: &str| found[name].1.as_str();
    assert_eq!(found.len(), 6, "{found:?}");
    assert_eq!(found["web-up"].0, "promise");
    assert_eq!(state("web-up"), "ok");
    assert_eq!(state("port-down"), "failing");
    assert!(
        found["port-down"].2.contains("isn't listening"),
        "{found:?}"
    );
    assert_eq!(found["monitor-httpd-listening-on-tcp.py"].0, "plugin");
    assert_eq!(
        state("monitor-httpd-listening-on-tcp.py"),
        "ok",
        "{found:?}"
    );
    assert_eq!(state("socket.py"), "failing");
    assert_eq!(state("file.py"), "failing", "no srv/flag yet");
    assert_eq!(state("disk.py"), "unsupported");
    // the state of the instance changes, and so does what status says
    std::fs::write(p.join("srv/flag"), "").expect("write");
    let _l = std::net::TcpListener::bind(("127.0.0.1", closed)).expect("bind");
    let found = check(&r);
    for name in ["file.py", "socket.py", "port-down"] {
        assert_eq!(found[name].1, "ok", "{name}: {found:?}");
    }
    let table = r.ok(&["instance", "status", "w"]);
    assert!(
        table.contains("promise") && table.contains("unsupported"),
        "{table}"
    );
}

#[test]
fn commands_run_after_the_switch_once_then_their_update_command() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // stack/monitor/instance-monitor.cfg.jinja2.in's `[httpd-monitor-htpasswd]`, its htpasswd
    // call replaced by a counter of runs
    let software = env.jinja2_release(
        "[buildout]\nparts = monitor-htpasswd httpd-monitor-htpasswd gate\n\n\
         [slap-parameter]\ngate = true\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\netc = ${buildout:directory}/etc\n\
         srv = ${buildout:directory}/srv\n\n\
         [monitor-htpasswd]\nrecipe = slapos.cookbook:generate.password\n\
         storage-path = ${directory:etc}/.monitor_pwd\n\n\
         [httpd-monitor-htpasswd]\nrecipe = plone.recipe.command\nstop-on-error = true\n\
         password-file = ${directory:etc}/.monitor-password\n\
         command =\n  echo \"${monitor-htpasswd:passwd}\" >${:password-file}\n\
         \x20 echo install >> ${directory:srv}/runs\n\
         update-command = echo update >> ${directory:srv}/runs\n\n\
         [gate]\nrecipe = plone.recipe.command\nstop-on-error = true\n\
         command = ${slap-parameter:gate}\n",
    );
    r.ok(&["instance", "create", "mon", "--software", &software]);
    let p = r.partition("mon");
    let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
    assert_eq!(
        read("etc/.monitor-password").trim(),
        kept_password(&read("etc/.monitor_pwd"))
    );
    assert_eq!(read("srv/runs"), "install\n");
    // a dry run runs nothing; an upgrade that changes nothing runs the update command
    let out = r.run(&[
        "instance",
        "upgrade",
        "mon",
        "--software",
        &software,
        "--dry-run",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(read("srv/runs"), "install\n");
    r.ok(&["instance", "upgrade", "mon", "--software", &software]);
    assert_eq!(read("srv/runs"), "install\nupdate\n");
    // a failing command with stop-on-error fails the operation; the next one runs it again
    let out = r.run(&[
        "instance",
        "upgrade",
        "mon",
        "--software",
        &software,
        "-p",
        "gate=false",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("[gate] command failed"),
        "{}",
        out.stderr
    );
    let out = r.run(&[
        "instance",
        "upgrade",
        "mon",
        "--software",
        &software,
        "-p",
        "gate=true",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(read("srv/runs"), "install\nupdate\nupdate\nupdate\n");
}

#[test]
fn a_plugin_from_a_file_runs_that_file_and_takes_a_class() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // mail-server-relay's `[outbound-postfix-certificate-served-promise]`: `file` and a class
    let code = env.write("promise/served.py", "class Served: pass\n");
    let plugin = |extra: &str| {
        env.jinja2_release(&format!(
            "[buildout]\nparts = served\n\n\
             [directory]\nrecipe = slapos.cookbook:mkdirectory\nplugins = ${{buildout:directory}}/plugin\n\n\
             [served]\nrecipe = slapos.cookbook:promise.plugin\neggs = slapos.core\n\
             output = ${{directory:plugins}}/served.py\nconfig-port = 25\n{extra}"
        ))
    };
    let software = plugin(&format!("file = {}\nclass = Served\n", code.display()));
    r.ok(&["instance", "create", "w", "--software", &software]);
    let written = r.partition("w").join("plugin/served.py");
    let text = std::fs::read_to_string(&written).expect("plugin");
    assert!(
        text.ends_with(&format!(
            "exec(_('{}'))\n\nRunPromise = Served\n",
            code.display()
        )),
        "{text}"
    );
    // the plugin is Python that runs: the file's code, then its class as RunPromise
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "exec(open({:?}).read()); print(RunPromise.__name__, extra_config_dict['port'])",
            written.display().to_string()
        ))
        .output()
        .expect("python3");
    assert_eq!(String::from_utf8_lossy(&python.stdout).trim(), "Served 25");
    // both or neither of `module` and `file`, or a class that is not a name: errors, no instance
    for (extra, message) in [
        (
            format!("file = {}\nmodule = m\n", code.display()),
            "Either 'module' or 'file' is required but not both",
        ),
        ("".to_owned(), "Either 'module' or 'file' is required"),
        (
            "module = m\nclass = a b\n".to_owned(),
            "'a b' is not a valid class name",
        ),
        (
            "module = m.1x\n".to_owned(),
            "'m.1x' is not a valid module name",
        ),
    ] {
        let software = plugin(&extra);
        let out = r.run(&["instance", "create", "bad", "--software", &software]);
        let err = &out.stderr;
        assert!(out.code != 0 && err.contains(message), "{extra}: {err}");
        assert!(!r.partition("bad").exists());
    }
}

#[test]
fn zero_knowledge_read_takes_the_file_written_at_deploy_on_the_next_render() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // software/turnserver's `[gen-secret]` and `[read-secret]`
    let software = env.jinja2_release(
        "[buildout]\nparts = gen-secret config\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\netc = ${buildout:directory}/etc\n\n\
         [gen-secret]\nrecipe = plone.recipe.command\nsecret-file = ${directory:etc}/.turnsecret\n\
         command =\n  if [ ! -s \"${:secret-file}\" ]; then\n    \
         printf '[turnserver]\\nsecret = s3cr3t\\n' > ${:secret-file}\n  fi\n\n\
         [read-secret]\nrecipe = slapos.cookbook:zero-knowledge.read\n\
         file-path = ${gen-secret:secret-file}\nsecret =\n\n\
         [config]\nrecipe = slapos.recipe.template\noutput = ${directory:etc}/turn.conf\n\
         inline = static-auth-secret=${read-secret:secret}\n",
    );
    let conf = r.partition("w").join("etc/turn.conf");
    let read = || std::fs::read_to_string(&conf).expect("conf");
    // the first render sees the option as written, as buildout's first run does
    r.ok(&["instance", "create", "w", "--software", &software]);
    assert_eq!(read().trim(), "static-auth-secret=");
    assert!(r.partition("w").join("etc/.turnsecret").exists());
    // the next one reads what the deploy wrote
    r.ok(&["instance", "reconcile", "--full"]);
    assert_eq!(read().trim(), "static-auth-secret=s3cr3t");
    // a file it cannot read as INI is an error naming the option, and changes nothing
    std::fs::write(r.partition("w").join("etc/.turnsecret"), "junk\n").expect("write");
    let out = r.run(&[
        "instance",
        "upgrade",
        "w",
        "--software",
        &software,
        "-p",
        "x=1",
    ]);
    assert!(
        out.code != 0 && out.stderr.contains("`junk` is not `key = value`"),
        "{}",
        out.stderr
    );
    assert_eq!(read().trim(), "static-auth-secret=s3cr3t");
}
