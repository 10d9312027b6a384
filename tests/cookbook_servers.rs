//! The slapos.cookbook recipes that set up a server or its access in the partition —
//! `postgres`, `redis.server`, `dropbear.add_authorized_key` — and `publishurl`, end to end
//! through the binary, on the corpus's real sections (their origin in a comment above each);
//! the servers are Debian's, run and asked whether they answer.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{have, Output, Root, TestEnv};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether the tests run as root, which PostgreSQL refuses to run as.
fn root_user() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `program args`, as a user other than root when the tests run as root: in a user namespace
/// where the caller is `nobody` (its files are still the caller's outside).
fn unprivileged(program: &Path, args: &[&str]) -> Command {
    let mut command = if root_user() {
        let mut c = Command::new("unshare");
        c.args(["--user", "--map-user=65534", "--map-group=65534", "--"]);
        c.arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args(args);
    command
}

/// `slapstore --root ROOT ARGS`, unprivileged.
fn slapstore(r: &Root, args: &[&str]) -> Output {
    let mut all = vec!["--root", r.root.to_str().expect("utf-8 root")];
    all.extend(args);
    let out = unprivileged(Path::new(env!("CARGO_BIN_EXE_slapstore")), &all)
        .current_dir(&r.dir)
        .output()
        .expect("run slapstore");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The directory of Debian's PostgreSQL programs (`initdb` is not on `PATH` there), else of
/// the `initdb` on `PATH`.
fn postgres_bin() -> Option<PathBuf> {
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .find(|b| b.join("initdb").is_file());
    debian.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("initdb"))
            .find(|i| i.is_file())
            .and_then(|i| std::fs::canonicalize(i).ok())
            .and_then(|i| i.parent().map(Path::to_owned))
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A service started from its wrapper, stopped (and waited for) when dropped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        // the wrappers `exec` the server: this is its pid, and SIGTERM stops it cleanly
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// Runs `check` until it succeeds (up to 30 s).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not after 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `psql` on TCP with `password`: its output, or `None` when it fails.
fn psql(bin: &Path, port: u16, password: &str, sql: &str) -> Option<String> {
    let out = Command::new(bin.join("psql"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "dependency-track-psql", "-d", "dependency-track_db"])
        .args(["-tAc", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn postgres_makes_its_cluster_at_deploy_and_sets_the_password_of_each_deploy() {
    let Some(bin) = postgres_bin() else {
        assert!(
            !have("postgres", &["initdb"]),
            "initdb without its directory"
        );
        return;
    };
    let env = TestEnv::new();
    let r = Root::new(&env);
    let port = free_port();
    let software = env.jinja2_release(&format!(
        "[buildout]\nparts = postgresql url\n\n\
         [slap-parameter]\npassword = first-secret\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\n\
         etc = ${{buildout:directory}}/etc\nservice = ${{:etc}}/service\n\
         srv = ${{buildout:directory}}/srv\n\n\
         # software/dependency-track/instance.cfg.in (the addresses and the port given, the\n\
         # password a parameter)\n\
         [postgresql]\nrecipe = slapos.cookbook:postgres\nbin = {bin}\n\
         services = ${{directory:service}}\ndbname  = dependency-track_db\n\
         superuser = dependency-track-psql\npassword = ${{slap-parameter:password}}\n\
         pgdata-directory = ${{directory:srv}}/postgresql\n\n\
         ipv4 = 127.0.0.1\nipv6 = ::1\nport = {port}\n\n\
         [url]\nrecipe = slapos.recipe.template\noutput = ${{buildout:directory}}/url\n\
         inline = ${{postgresql:url}}\n",
        bin = bin.display(),
    ));
    let out = slapstore(&r, &["instance", "create", "pg", "--software", &software]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let p = r.partition("pg");
    assert_eq!(
        read(&p.join("url")),
        format!("postgresql://dependency-track-psql:first-secret@[::1]:{port}/dependency-track_db")
    );
    let pgdata = p.join("srv/postgresql");
    assert!(
        pgdata.join("PG_VERSION").is_file(),
        "initdb made the cluster"
    );
    let conf = read(&pgdata.join("postgresql.conf"));
    assert!(
        conf.starts_with(&format!(
            "listen_addresses = '127.0.0.1,::1'\nport = {port}\n"
        )),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("unix_socket_directories = '{}'", pgdata.display())),
        "{conf}"
    );
    let hba = read(&pgdata.join("pg_hba.conf"));
    assert!(
        hba.ends_with(
            "host    all             all             127.0.0.1/32                   md5\n\
             host    all             all             ::1/128                   md5"
        ),
        "{hba}"
    );
    let start = p.join("etc/service/postgres-start");
    assert_ne!(mode(&start) & 0o111, 0, "executable");
    assert_eq!(
        read(&start),
        format!(
            "#!/bin/sh\nexec {}/postgres \\\n    -D {}\n",
            bin.display(),
            pgdata.display()
        )
    );

    // the service answers with the password, and the database exists
    let server = Service(
        unprivileged(&start, &[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres"),
    );
    eventually("postgres answers", || {
        psql(&bin, port, "first-secret", "select 1").is_some()
    });
    assert_eq!(
        psql(&bin, port, "first-secret", "select current_database()").as_deref(),
        Some("dependency-track_db")
    );
    assert_eq!(psql(&bin, port, "wrong", "select 1"), None);

    // a deploy with the server running sets the password through it
    let out = slapstore(
        &r,
        &[
            "instance",
            "upgrade",
            "pg",
            "--software",
            &software,
            "-p",
            "password=second-secret",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        psql(&bin, port, "second-secret", "select 2").as_deref(),
        Some("2")
    );
    assert_eq!(psql(&bin, port, "first-secret", "select 1"), None);
    drop(server);

    // and with the server stopped, in single-user mode; the data stays
    let out = slapstore(
        &r,
        &[
            "instance",
            "upgrade",
            "pg",
            "--software",
            &software,
            "-p",
            "password=third-secret",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let _server = Service(
        unprivileged(&start, &[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres"),
    );
    eventually("postgres answers with the third password", || {
        psql(&bin, port, "third-secret", "select 3").is_some()
    });
}

#[test]
fn postgres_refuses_what_would_reach_its_sql_or_configuration() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(
        "[buildout]\nparts = postgresql\n\n\
         [postgresql]\nrecipe = slapos.cookbook:postgres\nbin = /nowhere\n\
         services = ${buildout:directory}/etc/service\ndbname  = db\"; DROP TABLE x; --\n\
         superuser = u\npassword = p\npgdata-directory = ${buildout:directory}/srv/pg\n\
         ipv4 = 127.0.0.1\nipv6 =\nport = 5432\n",
    );
    let out = r.run(&["instance", "create", "bad", "--software", &software]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("[postgresql]") && out.stderr.contains("a database name cannot hold"),
        "{}",
        out.stderr
    );
    assert!(!r.partition("bad").exists(), "nothing changed");
}

#[test]
fn redis_server_writes_its_configuration_service_and_promise_and_answers() {
    if !have("redis", &["redis-server", "redis-cli"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let which = |p: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .expect("sh");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let (server, cli) = (which("redis-server"), which("redis-cli"));
    let software = env.jinja2_release(&format!(
        "[buildout]\nparts = service-redis\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\n\
         etc = ${{buildout:directory}}/etc\nbin = ${{buildout:directory}}/bin\n\
         services = ${{:etc}}/service\nrun = ${{buildout:directory}}/var/run\n\n\
         [redis]\nrecipe = slapos.cookbook:mkdirectory\n\
         srv = ${{buildout:directory}}/srv/redis\nlog = ${{buildout:directory}}/var/log/redis\n\n\
         # software/peertube/instance-peertube.cfg.in (its `depend` on logrotate left out)\n\
         [service-redis]\nrecipe  = slapos.cookbook:redis.server\n\
         wrapper = ${{directory:services}}/redis\n\
         promise-wrapper = ${{directory:bin}}/redis-promise\n\n\
         server-dir  = ${{redis:srv}}\nconfig-file = ${{directory:etc}}/redis.conf\n\
         log-file    = ${{redis:log}}/redis.log\npid-file    = ${{directory:run}}/redis.pid\n\
         use-passwd  = false\nunixsocket  = ${{:server-dir}}/redis.socket\n\
         # port = 0 means \"don't listen on TCP at all\" - listen only on unix socket\n\
         ipv6    = ::1\nport    = 0\n\n\
         server-bin = {server}\ncli-bin  = {cli}\n"
    ));
    r.ok(&["instance", "create", "redis", "--software", &software]);
    let p = r.partition("redis");
    let conf = read(&p.join("etc/redis.conf"));
    let socket = p.join("srv/redis/redis.socket");
    for line in [
        "daemonize no\n".to_owned(),
        format!(
            "pidfile {}\nport 0\n",
            p.join("var/run/redis.pid").display()
        ),
        format!(
            "bind ::1\nunixsocket {}\nunixsocketperm 700\n",
            socket.display()
        ),
        format!(
            "dir {}\n# masterauth <master-password>\n",
            p.join("srv/redis").display()
        ),
        format!("logfile {}\n", p.join("var/log/redis/redis.log").display()),
    ] {
        assert!(conf.contains(&line), "`{line}` in {conf}");
    }
    let wrapper = p.join("etc/service/redis");
    assert_ne!(mode(&wrapper) & 0o111, 0, "executable");
    assert!(
        read(&wrapper).starts_with("#!/bin/sh -e\nexec "),
        "{}",
        read(&wrapper)
    );
    let promise = p.join("bin/redis-promise");
    let ask = || Command::new(&promise).output().expect("run the promise");
    assert!(!ask().status.success(), "no server yet: the promise fails");
    let _server = Service(
        Command::new(&wrapper)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis"),
    );
    eventually("the redis promise succeeds", || ask().status.success());
    assert!(socket.exists());
    assert!(p.join("var/log/redis/redis.log").is_file());
}

#[test]
fn an_authorized_key_and_a_published_url() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBdLbZ5uM9Sg1A7J7bYt5pQk user@host";
    let software = env.jinja2_release(
        "[buildout]\nparts = sshd-add-authorized-key publish-connection-parameter\n\n\
         [slap-parameter]\nuser-authorized-key = KEY\n\n\
         # software/ssh/instance.cfg\n\
         [sshd-add-authorized-key]\nrecipe = slapos.cookbook:dropbear.add_authorized_key\n\
         home = ${buildout:directory}\nkey = ${slap-parameter:user-authorized-key}\n\n\
         # software/dream/instance.cfg\n\
         [dream-platform-parameter]\nurl = http://[2001:db8::1]:4000\n\n\
         [publish-connection-parameter]\nrecipe = slapos.cookbook:publishurl\n\
         url = ${dream-platform-parameter:url}\n"
            .replace("KEY", key)
            .as_str(),
    );
    r.ok(&["instance", "create", "ssh", "--software", &software]);
    let p = r.partition("ssh");
    assert_eq!(read(&p.join(".ssh/authorized_keys")), key);
    assert_eq!(mode(&p.join(".ssh")), 0o700);
    let shown: Value =
        serde_json::from_str(&r.ok(&["instance", "show", "ssh", "--json"])).expect("json");
    assert_eq!(
        shown["connection"],
        serde_json::json!({"url": "http://[2001:db8::1]:4000"})
    );

    // the URL from its parts, the login and password quoted
    let software = env.jinja2_release(
        "[buildout]\nparts = publish\n\n\
         [publish]\nrecipe = slapos.cookbook:publishurl\nscheme = https\nhost = 2001:db8::2\n\
         port = 8443\npath = /admin\nusername = ad min\npassword = p@ss\n",
    );
    r.ok(&["instance", "create", "url", "--software", &software]);
    let shown: Value =
        serde_json::from_str(&r.ok(&["instance", "show", "url", "--json"])).expect("json");
    assert_eq!(
        shown["connection"]["url"],
        "https://ad%20min:p%40ss@[2001:db8::2]:8443/admin"
    );
    let software = env.jinja2_release(
        "[buildout]\nparts = publish\n\n[publish]\nrecipe = slapos.cookbook:publishurl\n\
         host = example.com\n",
    );
    let out = r.run(&["instance", "create", "nourl", "--software", &software]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("[publish]") && out.stderr.contains("No scheme specified."),
        "{}",
        out.stderr
    );
}
