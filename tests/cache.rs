//! End-to-end tests of the binary cache: `key generate`, `cache push`, substituters over plain
//! HTTP (a real nginx on a loopback port) and `file://`, and every kind of bad cache refused
//! with a fallback to building.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::common::{repo_root, run_root as run, Output, TestEnv};

fn ok(root: &Path, dir: &Path, args: &[&str]) -> Output {
    let out = run(root, dir, args);
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    out
}

/// nginx serving `dir` on a free loopback port, stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn serve(dir: &Path, scratch: &Path) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        std::fs::create_dir_all(scratch.join("logs")).expect("mkdir");
        let conf = scratch.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{ access_log {p}/logs/access.log; \
                 client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fastcgi; \
                 uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi; \
                 server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }} }}\n",
                p = scratch.display(),
                root = dir.display()
            ),
        )
        .expect("write nginx.conf");
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is installed (`bash .ci/deps.sh` installs it)");
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(scratch)
            .arg("-c")
            .arg(&conf)
            .spawn()
            .expect("start nginx");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Nginx { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "nginx did not start: {:?}",
            std::fs::read_to_string(scratch.join("logs/error.log"))
        );
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn logs(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("var/log"))
        .map(|d| {
            d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Root A builds and pushes; the same root path is then a fresh machine B.
fn pushed_cache(env: &TestEnv) -> (PathBuf, PathBuf, String) {
    let dir = env.path().to_owned();
    let root = dir.join("root");
    let cache = dir.join("cache");
    let public = ok(&root, &dir, &["key", "generate", "--name", "node-a"])
        .stdout
        .trim()
        .to_owned();
    let software = repo_root().join("examples/multi-instance/software.cfg");
    let c = repo_root().join("examples/patched-c/software.cfg");
    for profile in [&software, &c] {
        ok(&root, &dir, &["build", &profile.to_string_lossy()]);
    }
    let pushed = ok(
        &root,
        &dir,
        &[
            "cache",
            "push",
            &cache.to_string_lossy(),
            &software.to_string_lossy(),
            &c.to_string_lossy(),
        ],
    );
    assert!(
        pushed.stdout.contains("pushed 5 paths"),
        "{}",
        pushed.stdout
    );
    let again = ok(
        &root,
        &dir,
        &[
            "cache",
            "push",
            &format!("file://{}", cache.display()),
            &c.to_string_lossy(),
        ],
    );
    assert!(
        again.stdout.contains("pushed 0 paths") && again.stdout.contains("2 already"),
        "{}",
        again.stdout
    );
    std::fs::remove_dir_all(&root).expect("machine A goes away");
    (root, cache, public)
}

#[test]
fn a_second_machine_installs_from_an_http_cache_without_building() {
    if !crate::common::have(
        "a_second_machine_installs_from_an_http_cache_without_building",
        &["cc", "make", "patch", "nginx"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let dir = env.path().to_owned();
    let (root, cache, public) = pushed_cache(&env);
    let nginx = Nginx::serve(&cache, &dir.join("nginx"));
    let url = nginx.url();
    let software = repo_root().join("examples/multi-instance/software.cfg");
    let out = ok(
        &root,
        &dir,
        &[
            "--substituter",
            &url,
            "--trusted-key",
            &public,
            "instance",
            "create",
            "web",
            "--software",
            &software.to_string_lossy(),
        ],
    );
    assert!(out.stderr.contains("fetched server"), "{}", out.stderr);
    assert!(!out.stderr.contains("building server"), "{}", out.stderr);
    // the C program: fetched, no compiler run (no build log at all)
    let c = repo_root().join("examples/patched-c/software.cfg");
    let out = ok(
        &root,
        &dir,
        &[
            "--substituter",
            &url,
            "--trusted-key",
            &public,
            "build",
            &c.to_string_lossy(),
        ],
    );
    assert!(out.stderr.contains("fetched greet"), "{}", out.stderr);
    assert!(
        logs(&root).iter().all(|l| l.ends_with("-instance.log")),
        "only the instance's own generation was made here: {:?}",
        logs(&root)
    );
    let greet = std::fs::read_dir(root.join("store"))
        .expect("store")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with("-greet"))
        .expect("greet");
    let run = Command::new(greet.join("bin/greet"))
        .arg("B")
        .output()
        .expect("run greet");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "Hello, B! (patched)\n"
    );
    let served = Command::new(root.join("partitions/web/bin/run"))
        .output()
        .expect("run web");
    assert!(String::from_utf8_lossy(&served.stdout).starts_with("web: Hello"));
    let verify = ok(&root, &dir, &["verify", "--check-contents"]);
    assert!(verify.stdout.contains("0 problems"), "{}", verify.stdout);
    // the same through a config file
    std::fs::remove_dir_all(&root).expect("reset");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(
        root.join("etc/slapstore.toml"),
        format!("substituters = [\"{url}\"]\ntrusted-keys = [\"{public}\"]\n"),
    )
    .expect("write config");
    let out = ok(&root, &dir, &["build", &c.to_string_lossy()]);
    assert!(out.stderr.contains("fetched greet"), "{}", out.stderr);
    let release = out.stdout.trim().to_owned();
    // `cache pull` copies a closure without any profile
    std::fs::remove_dir_all(&root).expect("reset");
    let out = ok(
        &root,
        &dir,
        &[
            "cache",
            "pull",
            &release,
            "--from",
            &url,
            "--trusted-key",
            &public,
        ],
    );
    assert!(out.stdout.contains("fetched 2 paths"), "{}", out.stdout);
    assert!(logs(&root).is_empty(), "{:?}", logs(&root));
    let verify = ok(&root, &dir, &["verify", "--check-contents"]);
    assert!(
        verify
            .stdout
            .contains("2 paths checked with their contents, 0 problems"),
        "{}",
        verify.stdout
    );
}

#[test]
fn bad_caches_are_refused_and_the_build_goes_on() {
    if !crate::common::have(
        "bad_caches_are_refused_and_the_build_goes_on",
        &["cc", "make", "patch"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let dir = env.path().to_owned();
    let (root, cache, public) = pushed_cache(&env);
    let c = repo_root().join("examples/patched-c/software.cfg");
    let c = c.to_string_lossy().into_owned();
    let file_url = format!("file://{}", cache.display());
    let build = |extra: &[&str]| {
        let _ = std::fs::remove_dir_all(&root);
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["build", c.as_str()]);
        let out = run(&root, &dir, &args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("built greet"),
            "it was built: {}",
            out.stderr
        );
        let verify = run(&root, &dir, &["verify", "--check-contents"]);
        assert_eq!(verify.code, 0, "{}", verify.stdout);
        out.stderr
    };
    // no trusted key: unsigned as far as this machine knows
    let stderr = build(&["--substituter", &file_url]);
    assert!(stderr.contains("no signature by a trusted key"), "{stderr}");
    // another key of the same name
    let other = run(
        &dir.join("other-root"),
        &dir,
        &["key", "generate", "--name", "node-a"],
    )
    .stdout
    .trim()
    .to_owned();
    let stderr = build(&["--substituter", &file_url, "--trusted-key", &other]);
    assert!(stderr.contains("no signature by a trusted key"), "{stderr}");
    // a tampered archive, then a truncated one
    let greet_info = std::fs::read_dir(&cache)
        .expect("cache")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v["path"].as_str().is_some_and(|p| p.ends_with("-greet")))
        })
        .expect("greet's metadata");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&greet_info).expect("read")).expect("json");
    let archive = cache.join(info["archive"].as_str().expect("archive"));
    let original = std::fs::read(&archive).expect("read archive");
    let mut tampered = original.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    std::fs::write(&archive, &tampered).expect("write");
    let stderr = build(&["--substituter", &file_url, "--trusted-key", &public]);
    assert!(stderr.contains("archive's hash"), "{stderr}");
    std::fs::write(&archive, &original[..original.len() / 2]).expect("truncate");
    let stderr = build(&["--substituter", &file_url, "--trusted-key", &public]);
    assert!(stderr.contains("archive's hash"), "{stderr}");
    std::fs::write(&archive, &original).expect("restore");
    // metadata whose signed fields were changed
    let text = std::fs::read_to_string(&greet_info).expect("read");
    std::fs::write(&greet_info, text.replace("\"size\": ", "\"size\": 1")).expect("write");
    let stderr = build(&["--substituter", &file_url, "--trusted-key", &public]);
    assert!(stderr.contains("no signature by a trusted key"), "{stderr}");
    std::fs::write(&greet_info, &text).expect("restore");
    // an unreachable server: fall back to building, and say so
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let stderr = build(&[
        "--substituter",
        &format!("http://127.0.0.1:{port}"),
        "--trusted-key",
        &public,
    ]);
    assert!(stderr.contains("binary cache passed over"), "{stderr}");
    // and after all that, the good cache still serves
    let _ = std::fs::remove_dir_all(&root);
    let out = ok(
        &root,
        &dir,
        &[
            "--substituter",
            &file_url,
            "--trusted-key",
            &public,
            "build",
            &c,
        ],
    );
    assert!(out.stderr.contains("fetched greet"), "{}", out.stderr);
    // push refuses what is not built, and needs a key
    let fresh = dir.join("fresh");
    let out = run(
        &fresh,
        &dir,
        &["cache", "push", &cache.to_string_lossy(), &c],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("key generate"), "{}", out.stderr);
}

#[test]
fn unusable_substituters_are_refused_or_said_once() {
    let env = TestEnv::new();
    let dir = env.path().to_owned();
    let profile = env.write(
        "software.cfg",
        "[buildout]\nparts = a b\n\
         [a]\nrecipe = slapos.recipe.template\ninline = a\noutput = ${buildout:directory}/a\n\
         [b]\nrecipe = slapos.recipe.template\ninline = b\noutput = ${buildout:directory}/b\n",
    );
    let profile = profile.to_string_lossy().into_owned();
    let root = dir.join("b");
    let stored = |root: &Path| {
        std::fs::read_dir(root.join("store"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // an unknown scheme is a usage error naming the option, and nothing is built
    for url in ["ftp://cache.example.net", "htps://cache.example.net"] {
        let out = run(&root, &dir, &["--substituter", url, "build", &profile]);
        assert_eq!(out.code, 2, "{url}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("`--substituter {url}`"))
                && out.stderr.contains("unknown scheme"),
            "{}",
            out.stderr
        );
        assert_eq!(stored(&root), 0);
    }
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(
        root.join("etc/slapstore.toml"),
        "substituters = [\"htps://x\"]\n",
    )
    .expect("write");
    let out = run(&root, &dir, &["build", &profile]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("slapstore.toml`: `substituters`: `htps://x`"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(root.join("etc/slapstore.toml")).expect("rm");
    // a cache for another store directory, made by root `a`
    let root_a = dir.join("a");
    let cache = dir.join("cache");
    let public = ok(&root_a, &dir, &["key", "generate"])
        .stdout
        .trim()
        .to_owned();
    ok(&root_a, &dir, &["build", &profile]);
    ok(
        &root_a,
        &dir,
        &["cache", "push", &cache.to_string_lossy(), &profile],
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let cache_url = cache.to_string_lossy().into_owned();
    for (url, said) in [
        (
            cache_url.clone(),
            format!(
                "`{cache_url}` serves `{}/store`, this store is `{}/store`",
                root_a.display(),
                root.display()
            ),
        ),
        (
            dir.join("missing").to_string_lossy().into_owned(),
            "no such directory".into(),
        ),
        (
            dir.to_string_lossy().into_owned(),
            "has no `slapstore-cache.json`".into(),
        ),
        (format!("http://127.0.0.1:{port}"), "cannot reach".into()),
    ] {
        let _ = std::fs::remove_dir_all(&root);
        let out = ok(
            &root,
            &dir,
            &[
                "--substituter",
                &url,
                "--trusted-key",
                &public,
                "build",
                &profile,
            ],
        );
        assert_eq!(
            out.stderr.matches(&said).count(),
            1,
            "said once: {}",
            out.stderr
        );
        assert_eq!(out.stderr.matches("warning").count(), 1, "{}", out.stderr);
        assert_eq!(stored(&root), 3, "built instead: {}", out.stderr);
    }
}
