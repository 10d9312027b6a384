//! End-to-end tests of what a build or a download must never touch or wait for: files outside
//! its output, the modes that let an unprivileged user own a root, stalled servers, unpinned
//! local files.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::{Root, TestEnv};

/// The output directory of the one part `name` in the store.
fn output(r: &Root, name: &str) -> std::path::PathBuf {
    let entry = r
        .entries()
        .into_iter()
        .find(|e| e.ends_with(&format!("-{name}")))
        .expect("the part's output");
    r.root.join("store").join(entry)
}

#[test]
fn a_hard_link_to_an_outside_file_is_copied_not_changed() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let outside = env.write("outside/file", "secret\n");
    std::fs::set_permissions(
        &outside,
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .expect("chmod");
    let before = std::fs::metadata(&outside).expect("stat");
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = x\n[x]\nrecipe = plone.recipe.command\ncommand =\n  mkdir -p $out/d\n  ln {o} $out/v\n  ln {o} $out/d/w\n  chmod 555 $out/d\n",
            o = outside.display()
        ),
    );
    // the sandbox hides the outside file from the build: without it the build can link it
    r.ok(&["--no-sandbox", "build", "software.cfg"]);
    let after = std::fs::metadata(&outside).expect("stat");
    assert_eq!(
        after.mode(),
        before.mode(),
        "the outside file's mode changed"
    );
    assert_eq!(
        after.mtime(),
        before.mtime(),
        "the outside file's mtime changed"
    );
    assert_eq!(
        after.nlink(),
        1,
        "the store still shares the outside file's inode"
    );
    let out = output(&r, "x");
    for file in ["v", "d/w"] {
        let meta = std::fs::metadata(out.join(file)).expect("stat");
        assert_eq!(meta.nlink(), 1, "{file}");
        assert_eq!(meta.mode() & 0o7777, 0o444, "{file}");
        assert_ne!(meta.ino(), before.ino(), "{file}");
        assert_eq!(
            std::fs::read_to_string(out.join(file)).expect("read"),
            "secret\n"
        );
    }
    assert!(
        std::fs::read_dir(out.join("d")).expect("dir").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .starts_with(".slapstore")),
        "a temporary copy was left"
    );
    // the outside file changes later: the store does not
    std::fs::write(&outside, "changed\n").expect("write");
    let verify = r.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert!(Path::new(&out.join("v")).exists());
}

/// The MD5 of a file, in hex (`md5sum`).
fn md5_hex(file: &Path) -> String {
    let out = std::process::Command::new("md5sum")
        .arg(file)
        .output()
        .expect("md5sum");
    String::from_utf8_lossy(&out.stdout)[..32].to_owned()
}

/// Whether this process runs as root (and so can run the binary as another user).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `slapstore --root ROOT ARGS` as the unprivileged user 65534 (`setpriv`).
fn run_as_nobody(root: &Path, dir: &Path, args: &[&str]) -> crate::common::Output {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_slapstore"))
        .arg("--root")
        .arg(root)
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .expect("run setpriv");
    crate::common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn an_unprivileged_user_builds_and_deploys_on_their_own_root() {
    if !is_root() {
        eprintln!("skipped: needs root to run the binary as another user");
        return;
    }
    let env = TestEnv::new();
    let home = env.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::set_permissions(
        env.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let archive = env.write("home/data.txt", "payload\n");
    let md5 = md5_hex(&archive);
    env.write(
        "home/software.cfg",
        &format!(
            "[buildout]\nextends = {demo}\nparts += page file\n\
             [page]\nrecipe = slapos.recipe.template\ninline = hello\noutput = ${{buildout:directory}}/page.txt\n\
             [file]\nrecipe = slapos.recipe.build:download\nurl = file://{a}\nmd5sum = {md5}\n",
            demo = crate::common::demo("software.cfg"),
            a = archive.display(),
        ),
    );
    let status = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&home)
        .status()
        .expect("chown");
    assert!(status.success());
    let root = home.join("root");
    // the build sandbox needs namespaces, which an unprivileged user may not make: a clear
    // error that says how to build without it, and nothing in the store
    let out = run_as_nobody(&root, &home, &["build", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot create namespaces") && out.stderr.contains("--no-sandbox"),
        "{}",
        out.stderr
    );
    let out = run_as_nobody(&root, &home, &["--no-sandbox", "build", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_as_nobody(
        &root,
        &home,
        &[
            "--no-sandbox",
            "instance",
            "create",
            "web",
            "--software",
            "software.cfg",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_as_nobody(&root, &home, &["verify", "--check-contents"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // every top directory of the store is read-only again (a generation's private), and owned
    // by the user
    for entry in std::fs::read_dir(root.join("store")).expect("store") {
        let path = entry.expect("entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        assert_eq!(meta.uid(), 65534);
        if meta.is_dir() {
            let expected = if path.to_string_lossy().ends_with("-instance") {
                0o500
            } else {
                0o555
            };
            assert_eq!(meta.mode() & 0o7777, expected, "{}", path.display());
        }
    }
    let run = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(root.join("partitions/web/bin/run"))
        .output()
        .expect("run the service");
    assert!(
        String::from_utf8_lossy(&run.stdout).starts_with("web: Hello"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// A server on a loopback port that answers every request with a 100-byte body sent one byte a
/// second (a stalled mirror that beats any idle timeout); its port.
fn slow_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for _ in 0..100 {
                    if stream
                        .write_all(b"x")
                        .and_then(|()| stream.flush())
                        .is_err()
                    {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            });
        }
    });
    port
}

#[test]
fn a_download_that_drips_is_cut_off_at_its_deadline() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let port = slow_server();
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = file\n[file]\nrecipe = slapos.recipe.build:download\n\
             url = http://127.0.0.1:{port}/slow.tar.gz\nmd5sum = 0123456789abcdef0123456789abcdef\n"
        ),
    );
    let started = std::time::Instant::now();
    let out = r.run(&["--download-timeout", "2", "build", "software.cfg"]);
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("deadline of 2 s"), "{}", out.stderr);
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    assert!(r.entries().is_empty(), "{:?}", r.entries());
    // the environment variable sets it too
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(["--root"])
        .arg(&r.root)
        .args(["build", "software.cfg"])
        .env("SLAPSTORE_DOWNLOAD_TIMEOUT", "1")
        .current_dir(env.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("deadline of 1 s"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_substituter_that_drips_is_cut_off_and_the_build_goes_on() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let port = slow_server();
    env.write(
        "software.cfg",
        "[buildout]\nparts = x\n[x]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out && echo built > $out/x\n",
    );
    let started = std::time::Instant::now();
    let out = r.run(&[
        "--download-timeout",
        "2",
        "--substituter",
        &format!("http://127.0.0.1:{port}"),
        "--trusted-key",
        "k:IiF+kvZfdYB6YJZFFbDfmEwl0awND7kSiynfmjauZBw=",
        "build",
        "software.cfg",
    ]);
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    // the cache is said unusable once, then the build goes on without it
    assert_eq!(
        out.stderr.matches("deadline of 2 s").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
    assert_eq!(r.entries().len(), 2, "{:?}", r.entries());
}

#[test]
fn an_unpinned_local_file_outside_the_profile_is_refused() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let secret = env.write("secret/shadow", "root:x:0:0\n");
    env.write("proj/beside.txt", "part of the profile\n");
    std::os::unix::fs::symlink(&secret, env.path().join("proj/link-out")).expect("symlink");
    let profile = |url: &str| {
        format!(
            "[buildout]\nparts = file\n[file]\nrecipe = slapos.recipe.build:download\nurl = {url}\n"
        )
    };
    for url in [
        format!("file://{}", secret.display()),
        secret.display().to_string(),
        format!("file://{}/proj/link-out", env.path().display()),
        format!("file://{}/proj/../secret/shadow", env.path().display()),
    ] {
        env.write("proj/software.cfg", &profile(&url));
        let out = r.run(&["build", "proj/software.cfg"]);
        assert_eq!(out.code, 2, "{url}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("lies outside the profile's directories")
                && out.stderr.contains("software.cfg:5"),
            "{}",
            out.stderr
        );
        assert!(r.entries().is_empty(), "{:?}", r.entries());
    }
    // with --allow-unpinned it is taken; a file beside the profile needs no checksum
    r.ok(&["build", "--allow-unpinned", "proj/software.cfg"]);
    env.write(
        "proj/software.cfg",
        &profile(&format!("file://{}/proj/beside.txt", env.path().display())),
    );
    r.ok(&["build", "proj/software.cfg"]);
}

#[test]
fn instance_parameters_are_readable_by_the_owner_only() {
    if !is_root() {
        eprintln!("skipped: needs root to try reading as another user");
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    std::fs::set_permissions(
        env.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let secret = "s3cret-Password-42";
    r.ok(&[
        "instance",
        "create",
        "web",
        "--software",
        &crate::common::demo("software.cfg"),
        "-p",
        &format!("greeting={secret}"),
    ]);
    assert!(r.serve("web").contains(secret), "the owner runs it");
    let generation = output(&r, "web-instance");
    let mode = std::fs::metadata(&generation).expect("stat").mode() & 0o7777;
    assert_eq!(mode, 0o500, "the generation output is the owner's only");
    for name in ["db.sqlite", "db.sqlite-wal"] {
        let path = r.root.join("var").join(name);
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.mode() & 0o077, 0, "{name} is readable by others");
        }
    }
    // another user finds the secret nowhere under the root
    let grep = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["grep", "-rl", secret])
        .arg(&r.root)
        .output()
        .expect("grep");
    let found = String::from_utf8_lossy(&grep.stdout);
    assert!(found.trim().is_empty(), "readable by others: {found}");
    // and the same grep as the owner does find it (the test can fail)
    let grep = std::process::Command::new("grep")
        .args(["-rl", secret])
        .arg(&r.root)
        .output()
        .expect("grep");
    assert!(!String::from_utf8_lossy(&grep.stdout).trim().is_empty());
    let verify = r.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}
