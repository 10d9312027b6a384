//! The slapos.cookbook recipes an instance profile uses, end to end through the binary, on
//! snippets of the corpus's real instance profiles (their origin in a comment above each).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{Root, TestEnv};

/// A release whose instance profile is `instance` (rendered by a jinja2 part, as 36 of the
/// corpus's releases do: `${...}` reaches the instance as it is written).
fn release(env: &TestEnv, instance: &str) -> String {
    env.write("instance.cfg.in", instance);
    env.write(
        "software.cfg",
        "[buildout]\nparts = instance-profile\n\n[instance-profile]\n\
         recipe = slapos.recipe.template:jinja2\n\
         url = ${:_profile_base_location_}/instance.cfg.in\n\
         output = ${buildout:directory}/instance.cfg\n",
    )
    .to_string_lossy()
    .into_owned()
}

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
    let software = release(&env, GENERATORS);
    r.ok(&["instance", "create", "db", "--software", &software]);
    let first = values(&r, "db");
    for key in ["monitor", "mariadb", "gen"] {
        let p = &first[key];
        assert_eq!(p.len(), 8, "{key}: {p}");
        assert!(p.chars().all(|c| c.is_ascii_lowercase()), "{key}: {p}");
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
        assert_eq!(
            std::fs::read_to_string(p.join(file)).expect(file),
            first[value],
            "{file}"
        );
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
    let software = release(
        &env,
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
        "given"
    );
}

#[test]
fn bad_generator_options_are_errors_naming_the_option_and_change_nothing() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    for (section, option, needle) in [
        (
            "[pw]\nrecipe = slapos.cookbook:generate.password\nbytes = 30\n",
            "bytes",
            "at most 26",
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
        let software = release(&env, &format!("[buildout]\nparts = pw\n\n{section}"));
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
    let software = release(&env, GENERATORS);
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
