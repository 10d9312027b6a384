//! `slapstore node` as a node of a real SlapOS master: slapproxy from slapos.core 1.22.1 (a venv
//! made once into `~/.cache/slapstore/test-venvs/`, or the one `SLAPSTORE_SLAPOS_VENV` names),
//! driven with the real `slapos supply` and `slapos request`. Without the package index and
//! without that venv the test is skipped loudly (and fails in CI).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{have, repo_root, Output, Root, TestEnv};

/// The slapos.core every node test and `bench/node.sh` run.
const SLAPOS_CORE: &str = "slapos.core==1.22.1";

/// A venv holding slapos.core, made on first use; `None` (the test skipped) when it cannot be
/// made outside CI.
pub fn slapos_venv(test: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SLAPSTORE_SLAPOS_VENV") {
        return Some(PathBuf::from(dir));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("slapstore/test-venvs");
    // made in place (a venv's scripts name its own path), complete once `.complete` exists
    let venv = cache.join("slapos.core-1.22.1");
    let complete = venv.join(".complete");
    if complete.is_file() {
        return Some(venv);
    }
    std::fs::create_dir_all(&cache).expect("cache directory");
    let lock = std::fs::File::create(cache.join(".lock")).expect("lock file");
    lock.lock().expect("lock");
    if complete.is_file() {
        return Some(venv);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", SLAPOS_CORE])
            .status()
            .is_ok_and(|s| s.success());
    if made && std::fs::write(&complete, SLAPOS_CORE).is_ok() {
        return Some(venv);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{test}: cannot install {SLAPOS_CORE} into a venv");
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: cannot install {SLAPOS_CORE} from the package index into a venv \
         (or set SLAPSTORE_SLAPOS_VENV to one that has it)"
    );
    None
}

/// A slapproxy on 127.0.0.1, killed when dropped, with the configuration `slapos` commands use.
pub struct Proxy {
    child: Child,
    pub url: String,
    pub config: PathBuf,
    pub slapos: PathBuf,
}

impl Proxy {
    pub fn start(venv: &Path, dir: &Path, computer: &str) -> Proxy {
        let port = free_port();
        let config = dir.join("slapos.cfg");
        std::fs::write(
            &config,
            format!(
                "[slapos]\nmaster_url = http://127.0.0.1:{port}\ncomputer_id = {computer}\n\
                 [slapproxy]\nhost = 127.0.0.1\nport = {port}\ndatabase_uri = {}\n\
                 [slapconsole]\n",
                dir.join("proxy.db").display()
            ),
        )
        .expect("proxy configuration");
        let slapos = venv.join("bin/slapos");
        let child = Command::new(&slapos)
            .args(["proxy", "start", "--cfg"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("proxy.log")).expect("log"))
            .spawn()
            .expect("start slapproxy");
        let proxy = Proxy {
            child,
            url: format!("http://127.0.0.1:{port}"),
            config,
            slapos,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(port_of(&proxy.url), "/").is_none() {
            assert!(Instant::now() < deadline, "slapproxy did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        proxy
    }

    /// Runs `slapos ARGS --cfg CONFIG`; its output (stdout and the log lines on stderr).
    pub fn slapos(&self, args: &[&str]) -> String {
        let out = Command::new(&self.slapos)
            .args(args)
            .arg("--cfg")
            .arg(&self.config)
            .output()
            .expect("run slapos");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "slapos {args:?}: {text}");
        text
    }

    /// The proxy's `getFullComputerInformation` for `computer`, as text.
    pub fn computer_information(&self, computer: &str) -> String {
        http_get(
            port_of(&self.url),
            &format!("/getFullComputerInformation?computer_id={computer}"),
        )
        .expect("slapproxy answers")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the root's supervisord (and so its programs) when the test ends, however it ends.
struct Supervisord(PathBuf);

impl Drop for Supervisord {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("var/supervisor/supervisord.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// The body of `GET path` on 127.0.0.1:`port`, if something answers there.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// Waits (up to 15 s) for 127.0.0.1:`port` to serve a page holding `want`.
fn served(port: u16, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if http_get(port, "/").is_some_and(|b| b.contains(want)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The release of the node tests: `tests/fixtures/node-release/software.cfg`.
pub fn release() -> String {
    repo_root()
        .join("tests/fixtures/node-release/software.cfg")
        .display()
        .to_string()
}

fn pass(r: &Root, proxy: &Proxy, computer: &str) -> Output {
    r.run(&[
        "node",
        "--master",
        &proxy.url,
        "--computer",
        computer,
        "--partition-count",
        "3",
    ])
}

fn pass_ok(r: &Root, proxy: &Proxy, computer: &str) -> String {
    let out = pass(r, proxy, computer);
    assert_eq!(out.code, 0, "node pass: {}{}", out.stdout, out.stderr);
    out.stdout
}

#[test]
fn node_deploys_what_slapproxy_requests_and_reports_back() {
    let test = "node_deploys_what_slapproxy_requests_and_reports_back";
    if !have(test, &["supervisord", "python3"]) {
        return;
    }
    let Some(venv) = slapos_venv(test) else {
        return;
    };
    let env = TestEnv::new();
    let r = Root::new(&env);
    let _guard = Supervisord(r.root.clone());
    let computer = "COMP-42";
    let proxy = Proxy::start(&venv, env.path(), computer);
    let release = release();

    // the first pass registers the partitions; nothing is supplied yet
    let first = pass_ok(&r, &proxy, computer);
    assert!(first.contains("registered 3 partitions"), "{first}");
    let info = proxy.computer_information(computer);
    assert_eq!(
        info.matches("class=\"ComputerPartition\"").count(),
        3,
        "{info}"
    );

    proxy.slapos(&["supply", &release, computer]);
    let port = free_port();
    let request = |extra: &[&str]| {
        let mut args = vec![
            "request",
            "web",
            &release,
            "--node",
            "computer_guid=COMP-42",
            "--parameters",
        ];
        let p = format!("port={port}");
        args.push(&p);
        args.push("greeting=Bonjour");
        args.extend_from_slice(extra);
        proxy.slapos(&args)
    };
    request(&[]);
    // one pass installs the release, deploys `web` on the partition slapproxy chose and starts
    // its service
    let out = pass_ok(&r, &proxy, computer);
    assert!(out.contains(&format!("{release}: installed ")), "{out}");
    assert!(out.contains("slappart0: created web"), "{out}");
    assert!(out.contains("slappart0: started (1 services)"), "{out}");
    assert!(served(port, "Bonjour from slappart0"), "the service runs");
    assert!(
        out.contains("slappart0: published 3 connection parameters"),
        "{out}"
    );
    // the next request prints the connection parameters the instance published
    let again = request(&[]);
    assert!(
        again.contains(&format!("'url': 'http://127.0.0.1:{port}/'"))
            && again.contains("'greeting': 'Bonjour'")
            && again.contains("'title': 'web'"),
        "{again}"
    );
    let installed = r.ok(&["software", "list"]);
    assert!(installed.contains(&release), "{installed}");

    // nothing changed: the next pass touches nothing
    let again = pass_ok(&r, &proxy, computer);
    assert!(
        again.contains("0 changes, 3 partitions unchanged, 0 failures"),
        "{again}"
    );
    let generations = r.ok(&["instance", "generations", "slappart0", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&generations).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{generations}");

    // stopped: a pass stops the service, and says so to the master
    let stopped = request(&["--state", "stopped"]);
    assert!(stopped.contains("State is : stopped"), "{stopped}");
    let out = pass_ok(&r, &proxy, computer);
    assert!(out.contains("slappart0: stopped"), "{out}");
    assert!(http_get(port, "/").is_none(), "the service is stopped");

    // destroyed: a pass removes the instance and its partition, and the master frees it
    proxy.slapos(&[
        "request",
        "web",
        &release,
        "--node",
        "computer_guid=COMP-42",
        "--state",
        "destroyed",
    ]);
    let out = pass_ok(&r, &proxy, computer);
    assert!(out.contains("slappart0: destroyed"), "{out}");
    assert!(!r.partition("slappart0").exists());
    let list = r.ok(&["instance", "list", "--json"]);
    assert_eq!(list.trim(), "[]", "{list}");
    let info = proxy.computer_information(computer);
    let free = info
        .matches("<string>_software_release_document</string><none/>")
        .count();
    assert_eq!(free, 3, "every partition is free again: {info}");
    let out = pass_ok(&r, &proxy, computer);
    assert!(out.contains("0 changes, 3 partitions unchanged"), "{out}");
}

#[test]
fn node_reports_what_it_cannot_install() {
    let test = "node_reports_what_it_cannot_install";
    let Some(venv) = slapos_venv(test) else {
        return;
    };
    let env = TestEnv::new();
    let r = Root::new(&env);
    let computer = "COMP-7";
    let proxy = Proxy::start(&venv, env.path(), computer);
    let broken = env.write(
        "broken/software.cfg",
        "[buildout]\nparts = x\n\n[x]\nrecipe = slapos.recipe.template\ninline = ${missing:option}\noutput = ${buildout:directory}/x\n",
    );
    let broken = broken.display().to_string();
    proxy.slapos(&["supply", &broken, computer]);
    // nobody serves there
    let unserved = format!("http://127.0.0.1:{}/software.cfg", free_port());
    proxy.slapos(&["supply", &unserved, computer]);
    let out = pass(&r, &proxy, computer);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    // the error names the file, line and option; the pass went on with the other release
    assert!(
        out.stderr.contains(&format!("{broken}: ")) && out.stderr.contains("software.cfg:6:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("`missing`"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cannot read remote profile `{unserved}`")),
        "{}",
        out.stderr
    );
    assert_eq!(r.ok(&["software", "list"]), "");
}

#[test]
fn node_needs_a_master_it_can_reach() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let out = r.run(&["node", "--computer", "COMP-1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("`master-url`"), "{}", out.stderr);
    let out = r.run(&["node", "--master", "ftp://x", "--computer", "COMP-1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("neither `http://`"), "{}", out.stderr);
    // nobody listens on that port: exit 1, nothing deployed
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = r.run(&["node", "--master", &url, "--computer", "COMP-1"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot reach the master"),
        "{}",
        out.stderr
    );
    // the configuration file serves as well as the options; a key without a certificate is
    // refused before anything is sent
    env.write(
        "root/etc/slapstore.toml",
        &format!("master-url = \"https://127.0.0.1:{port}\"\ncomputer-id = \"COMP-1\"\nkey-file = \"/nonexistent.key\"\n"),
    );
    let out = r.run(&["node"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("give both"), "{}", out.stderr);
}

#[test]
fn node_loop_passes_again_until_sigterm() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let url = format!("http://127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .arg("--root")
        .arg(&r.root)
        .args([
            "node",
            "--master",
            &url,
            "--computer",
            "COMP-1",
            "--loop",
            "--interval",
            "1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start slapstore node --loop");
    // a pass that fails (nobody listens) does not end the loop
    std::thread::sleep(Duration::from_millis(2500));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.matches("cannot reach the master").count() >= 2,
        "two passes at least: {stderr}"
    );
}

/// A static HTTP server (`python3 -m http.server`) on 127.0.0.1 serving `dir`, killed when
/// dropped.
struct Served {
    child: Child,
    port: u16,
}

impl Served {
    fn start(dir: &Path) -> Served {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let served = Served { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(port, "/").is_none() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn node_installs_a_release_served_over_http() {
    let test = "node_installs_a_release_served_over_http";
    if !have(test, &["supervisord", "python3", "md5sum"]) {
        return;
    }
    let Some(venv) = slapos_venv(test) else {
        return;
    };
    let env = TestEnv::new();
    let r = Root::new(&env);
    let _guard = Supervisord(r.root.clone());
    let computer = "COMP-9";
    let proxy = Proxy::start(&venv, env.path(), computer);
    // the release on a web server: its profile extends a file beside it and one a level up,
    // and renders an instance profile fetched from beside it (with its checksum, as SlapOS's
    // releases give it)
    let fixture = repo_root().join("tests/fixtures/node-release");
    let instance = std::fs::read_to_string(fixture.join("instance.cfg.in")).expect("fixture");
    let web = env.path().join("web");
    env.write("web/sr/web/instance.cfg.in", &instance);
    let md5 = Command::new("md5sum")
        .arg(web.join("sr/web/instance.cfg.in"))
        .output()
        .expect("md5sum");
    let md5 = String::from_utf8_lossy(&md5.stdout)
        .split_whitespace()
        .next()
        .expect("a checksum")
        .to_owned();
    env.write(
        "web/sr/web/software.cfg",
        "[buildout]\nextends = instance.cfg ../stack/base.cfg\n",
    );
    env.write(
        "web/sr/web/instance.cfg",
        &format!(
            "[instance-profile]\nrecipe = slapos.recipe.template\n\
             url = ${{:_profile_base_location_}}/instance.cfg.in\nmd5sum = {md5}\n\
             output = ${{buildout:directory}}/instance.cfg\n"
        ),
    );
    env.write(
        "web/sr/stack/base.cfg",
        "[buildout]\nparts = instance-profile\n",
    );
    let server = Served::start(&web);
    let release = format!("http://127.0.0.1:{}/sr/web/software.cfg", server.port);
    pass_ok(&r, &proxy, computer);
    proxy.slapos(&["supply", &release, computer]);
    let port = free_port();
    let p = format!("port={port}");
    proxy.slapos(&[
        "request",
        "web",
        &release,
        "--node",
        "computer_guid=COMP-9",
        "--parameters",
        &p,
        "greeting=Servus",
    ]);
    let out = pass_ok(&r, &proxy, computer);
    assert!(out.contains(&format!("{release}: installed ")), "{out}");
    assert!(out.contains("slappart0: started (1 services)"), "{out}");
    assert!(served(port, "Servus from slappart0"), "the service runs");
    // the release is installed under its URL, its `[slap-connection]` names the URL
    let installed = r.ok(&["software", "list"]);
    assert!(installed.contains(&release), "{installed}");
    let again = pass_ok(&r, &proxy, computer);
    assert!(
        again.contains("0 changes, 3 partitions unchanged"),
        "{again}"
    );

    // `eval` of the same URL reads local profiles only, and says so
    let out = r.run(&["eval", &release]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("read local profiles only"),
        "{}",
        out.stderr
    );

    // a release whose profile is missing on the server: the master gets the error, naming
    // the URL and the answer
    let missing = format!("http://127.0.0.1:{}/sr/gone/software.cfg", server.port);
    proxy.slapos(&["supply", &missing, computer]);
    let out = pass(&r, &proxy, computer);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cannot read remote profile `{missing}`"))
            && out.stderr.contains("404"),
        "{}",
        out.stderr
    );
}

#[test]
fn node_registers_the_users_its_partitions_take_from_the_pool() {
    let test = "node_registers_the_users_its_partitions_take_from_the_pool";
    // users are made by `useradd`: root only, as tests/isolation.rs (the same pool)
    let root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !root {
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs root");
        return;
    }
    if !have(test, &["supervisord", "python3", "useradd"]) {
        return;
    }
    let Some(venv) = slapos_venv(test) else {
        return;
    };
    let env = TestEnv::new();
    let r = Root::new(&env);
    let _guard = Supervisord(r.root.clone());
    env.write(
        "root/etc/slapstore.toml",
        "[instance-users]\nprefix = \"slapiso\"\ncount = 4\nfirst-uid = 61000\n",
    );
    let computer = "COMP-11";
    let proxy = Proxy::start(&venv, env.path(), computer);
    let release = release();
    let first = pass_ok(&r, &proxy, computer);
    assert!(first.contains("registered 3 partitions"), "{first}");
    proxy.slapos(&["supply", &release, computer]);
    let port = free_port();
    let p = format!("port={port}");
    proxy.slapos(&[
        "request",
        "web",
        &release,
        "--node",
        "computer_guid=COMP-11",
        "--parameters",
        &p,
    ]);
    // the instance created took a user of the pool: the partitions are registered again
    // with it, and its service runs as that user
    let out = pass_ok(&r, &proxy, computer);
    assert!(out.contains("slappart0: created web"), "{out}");
    assert!(out.contains("format: registered 3 partitions"), "{out}");
    assert!(served(port, "Hello from slappart0"), "the service runs");
    let owner = std::fs::metadata(r.partition("slappart0").join("var/log"))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .expect("the partition's log directory");
    assert!((61000..61004).contains(&owner), "owned by {owner}");
    // nothing changed: nothing registered again
    let again = pass_ok(&r, &proxy, computer);
    assert!(
        again.contains("0 changes, 3 partitions unchanged"),
        "{again}"
    );
}

/// The release whose instances request others through the master:
/// `tests/fixtures/node-request-release/software.cfg`.
fn requesting_release() -> String {
    repo_root()
        .join("tests/fixtures/node-request-release/software.cfg")
        .display()
        .to_string()
}

#[test]
fn node_requests_what_its_instances_request_through_the_master() {
    let test = "node_requests_what_its_instances_request_through_the_master";
    if !have(test, &["supervisord", "python3"]) {
        return;
    }
    let Some(venv) = slapos_venv(test) else {
        return;
    };
    let env = TestEnv::new();
    let r = Root::new(&env);
    let _guard = Supervisord(r.root.clone());
    let computer = "COMP-21";
    let proxy = Proxy::start(&venv, env.path(), computer);
    let release = requesting_release();
    pass_ok(&r, &proxy, computer);
    proxy.slapos(&["supply", &release, computer]);
    let request = |parameters: &[&str]| {
        let mut args = vec![
            "request",
            "parent",
            &release,
            "--node",
            "computer_guid=COMP-21",
            "--parameters",
        ];
        args.extend_from_slice(parameters);
        proxy.slapos(&args)
    };
    request(&["greeting=Salut"]);

    // one pass: the parent asks the master for `child` and `spare`, which the master places
    // on this computer's free partitions; the pass deploys them, then the parent with what
    // they published
    let out = pass_ok(&r, &proxy, computer);
    assert!(out.contains("slappart1: created child"), "{out}");
    assert!(out.contains("slappart2: created spare"), "{out}");
    assert!(out.contains("slappart0: created parent"), "{out}");
    assert!(!out.contains("waiting"), "{out}");
    assert!(out.contains("0 partitions unchanged, 0 failures"), "{out}");
    assert_eq!(
        std::fs::read_to_string(r.partition("slappart1").join("etc/page")).expect("page"),
        "Salut from child"
    );
    let info = proxy.computer_information(computer);
    assert!(info.contains("<string>child</string>"), "{info}");
    // the parent's connection, as the master gives it: the child's values in it
    let again = request(&["greeting=Salut"]);
    assert!(
        again.contains("'child-url': 'http://127.0.0.1/slappart1/'")
            && again.contains("'child-greeting': 'Salut'")
            && again.contains("'spare-url': 'http://127.0.0.1/slappart2/'"),
        "{again}"
    );
    // the parent was deployed once, complete
    let generations = r.ok(&["instance", "generations", "slappart0", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&generations).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{generations}");
    let out = pass_ok(&r, &proxy, computer);
    assert!(
        out.contains("0 changes, 3 partitions unchanged, 0 failures"),
        "{out}"
    );

    // the master refuses a request (no partition left for `extra`): the pass says which part
    // asked for what and what the master answered, and the parent stays as it was
    request(&["greeting=Salut", "spare-name=extra"]);
    let out = pass(&r, &proxy, computer);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "slappart0: part `spare` requests `extra` (software type `child`, started) from \
             the master: the master answered 404 to `requestComputerPartition`: No free \
             computer partition found for: extra"
        ),
        "{}",
        out.stderr
    );
    let generations = r.ok(&["instance", "generations", "slappart0", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&generations).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{generations}");
    let again = request(&["greeting=Salut", "spare-name=extra"]);
    assert!(
        again.contains("'spare-url': 'http://127.0.0.1/slappart2/'"),
        "{again}"
    );
}
