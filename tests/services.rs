//! Instances' services under supervisord: `instance start|stop|restart|status`, restarts of
//! what an upgrade changed, `destroy` stopping them; the supervisord a test starts is always
//! killed (`Supervisord`'s Drop).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{have, Root, TestEnv};

/// A release whose instance serves `etc/www/` with `python3 -m http.server` on the parameter
/// `port` (`etc/service/server`) and runs `etc/run/ticker` (a sleep) once.
const SOFTWARE: &str = r#"[buildout]
parts = instance-profile

[instance-profile]
recipe = slapos.recipe.template
output = ${buildout:directory}/instance.cfg
inline =
  [buildout]
  parts = directories page server ticker
  [slap-parameter]
  port = 8080
  greeting = Hello
  [directories]
  recipe = slapos.cookbook:mkdirectory
  log = $${buildout:directory}/var/log
  [page]
  recipe = slapos.recipe.template
  output = $${buildout:directory}/etc/www/index.html
  inline =
    $${slap-parameter:greeting} from $${slap-partition:name}
  [server]
  recipe = slapos.cookbook:wrapper
  command-line = python3 -m http.server --bind 127.0.0.1 --directory $${buildout:directory}/etc/www $${slap-parameter:port}
  wrapper-path = $${buildout:directory}/etc/service/server
  [ticker]
  recipe = slapos.cookbook:wrapper
  command-line = sleep 1000
  wrapper-path = $${buildout:directory}/etc/run/ticker
"#;

/// Kills the root's supervisord (and so its programs) when the test ends, however it ends.
pub struct Supervisord(pub PathBuf);

impl Drop for Supervisord {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("var/supervisor/supervisord.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The page served on `port`, waiting up to 15 s for the server to answer `want`.
pub fn page(port: u16, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            last.clear();
            let _ = s.read_to_string(&mut last);
            if last.contains(want) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("port {port} never served `{want}`; last answer: {last:?}")
}

fn status(r: &Root, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["instance", "status", "--json"];
    all.extend(args);
    let v: Value = serde_json::from_str(&r.ok(&all)).expect("json");
    v["services"].as_array().expect("list").clone()
}

/// (state, pid) of `program`, waiting up to 15 s for it to be `want`.
pub fn state(r: &Root, name: &str, program: &str, want: &str) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = status(r, &[name]);
        let s = list
            .iter()
            .find(|s| s["program"] == program)
            .unwrap_or_else(|| panic!("no {program} in {list:?}"));
        if s["state"] == want {
            return s["pid"].as_u64();
        }
        assert!(Instant::now() < deadline, "{program} never {want}: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn services_start_restart_on_change_and_stop() {
    if !have(
        "services_start_restart_on_change_and_stop",
        &["supervisord", "python3"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let _guard = Supervisord(r.root.clone());
    let software = env
        .write("p/software.cfg", SOFTWARE)
        .to_string_lossy()
        .into_owned();
    let port = free_port().to_string();
    r.ok(&[
        "instance",
        "create",
        "web",
        "--software",
        &software,
        "-p",
        &format!("port={port}"),
    ]);
    let port: u16 = port.parse().expect("port");
    // nothing runs before start; status says so without a supervisord
    let before = status(&r, &["web"]);
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before
        .iter()
        .all(|s| s["state"] == "STOPPED" && s["pid"].is_null()));
    assert!(r.ok(&["instance", "start", "web"]).contains("2 services"));
    let dir = r.root.join("var/supervisor");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the supervisor's directory is private");
    assert!(page(port, "Hello from web").contains("200"));
    let server = state(&r, "web", "web-server", "RUNNING").expect("pid");
    let ticker = state(&r, "web", "web-ticker", "RUNNING").expect("pid");
    assert!(PathBuf::from(format!("/proc/{server}")).exists());
    let table = r.ok(&["instance", "status", "--all"]);
    assert!(
        table.contains("web-") || table.contains("server"),
        "{table}"
    );
    // the page changes: the server's wrapper does not, the ticker's neither: both keep running,
    // and the server serves the new file from the switched partition
    r.ok(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &software,
        "-p",
        "greeting=Bonjour",
    ]);
    page(port, "Bonjour from web");
    assert_eq!(state(&r, "web", "web-server", "RUNNING"), Some(server));
    // a new port changes the server's wrapper: it alone is restarted
    let port2 = free_port();
    r.ok(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &software,
        "-p",
        &format!("port={port2}"),
    ]);
    page(port2, "Bonjour from web");
    let server2 = state(&r, "web", "web-server", "RUNNING").expect("pid");
    assert_ne!(server2, server, "the changed service was restarted");
    assert_eq!(
        state(&r, "web", "web-ticker", "RUNNING"),
        Some(ticker),
        "the other was not"
    );
    // rollback restarts it again, on the old port
    r.ok(&["instance", "rollback", "web"]);
    page(port, "Bonjour from web");
    // restart gives new processes
    r.ok(&["instance", "restart", "web"]);
    let server3 = state(&r, "web", "web-server", "RUNNING").expect("pid");
    assert_ne!(server3, server2);
    assert!(
        std::fs::read_to_string(r.root.join("var/log/services/web-server.log"))
            .expect("log")
            .contains("GET /")
    );
    // stop stops: the port is closed and the process gone
    r.ok(&["instance", "stop", "web"]);
    assert_eq!(state(&r, "web", "web-server", "STOPPED"), None);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
    // destroy of a started instance stops its services first
    r.ok(&["instance", "start", "--all"]);
    page(port, "Bonjour from web");
    r.ok(&["instance", "destroy", "web"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "destroy left the service running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // errors name the instance and change nothing
    let out = r.run(&["instance", "start", "nope"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("nope"));
    assert_eq!(r.run(&["instance", "start"]).code, 2, "a name or --all");
}

fn requested_state(r: &Root, name: &str) -> String {
    let v: Value =
        serde_json::from_str(&r.ok(&["instance", "show", name, "--json"])).expect("json");
    v["requested_state"].as_str().expect("state").to_owned()
}

#[test]
fn reconcile_keeps_the_requested_state_of_services() {
    if !have(
        "reconcile_keeps_the_requested_state_of_services",
        &["supervisord", "python3"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let _guard = Supervisord(r.root.clone());
    let software = env
        .write("p/software.cfg", SOFTWARE)
        .to_string_lossy()
        .into_owned();
    let port = free_port();
    r.ok(&[
        "instance",
        "create",
        "web",
        "--software",
        &software,
        "-p",
        &format!("port={port}"),
    ]);
    // created, the instance is requested started: reconcile starts its services
    assert_eq!(requested_state(&r, "web"), "started");
    let out = r.ok(&["instance", "reconcile"]);
    assert!(out.contains("started web (2 services)"), "{out}");
    page(port, "Hello from web");
    let server = state(&r, "web", "web-server", "RUNNING").expect("pid");
    // stopped, it is recorded so: reconcile leaves it stopped
    r.ok(&["instance", "stop", "web"]);
    assert_eq!(requested_state(&r, "web"), "stopped");
    let out = r.ok(&["instance", "reconcile"]);
    assert!(!out.contains("started"), "{out}");
    assert_eq!(state(&r, "web", "web-server", "STOPPED"), None);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    // started again, it stays running across reconciliations, and a requested change that
    // leaves its wrapper as it was does not restart it
    r.ok(&["instance", "start", "web"]);
    assert_eq!(requested_state(&r, "web"), "started");
    let server = {
        let pid = state(&r, "web", "web-server", "RUNNING").expect("pid");
        assert_ne!(pid, server);
        pid
    };
    r.ok(&["instance", "reconcile"]);
    assert_eq!(state(&r, "web", "web-server", "RUNNING"), Some(server));
    r.ok(&["instance", "request", "web", "-p", "greeting=Bonjour"]);
    let out = r.ok(&["instance", "reconcile"]);
    assert!(out.contains("upgraded web to generation 2"), "{out}");
    page(port, "Bonjour from web");
    assert_eq!(state(&r, "web", "web-server", "RUNNING"), Some(server));
    // destroyed, its services are gone with it
    r.ok(&["instance", "destroy", "web"]);
    assert!(!r.root.join("var/supervisor/programs/web.conf").exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "destroy left the service running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    r.ok(&["instance", "reconcile"]);
}
