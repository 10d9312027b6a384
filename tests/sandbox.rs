//! End-to-end tests of the build sandbox (`store/src/sandbox.rs`, issue 16): what a build's
//! commands cannot reach, outputs that appear in `store/` only when complete, and the settings
//! that turn the sandbox off. They need root (or the namespaces root has), as CI runs them.

use std::net::TcpListener;
use std::path::Path;

use crate::common::{have, wait_for_output, Root, TestEnv};

/// A profile whose part `attack` tries what a build must not do, writing to `$out/report` what
/// worked; `victim` is another store path to damage. `marker` names the files it tries to leave.
fn attack_profile(
    store_dir: &Path,
    test_dir: &Path,
    home: &str,
    marker: &str,
    port: u16,
) -> String {
    let tries = [
        ("tmp-written", format!("echo x > /tmp/{marker}")),
        ("home-written", format!("echo x > {home}/{marker}")),
        (
            "test-dir-written",
            format!("echo x > {}/{marker}", test_dir.display()),
        ),
        (
            "victim-written",
            "echo x > ${victim:location}/evil".to_owned(),
        ),
        (
            "store-written",
            format!("mkdir {}/evil", store_dir.display()),
        ),
        (
            "connected",
            format!(
                "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 5)\""
            ),
        ),
        // what the build may do: its own HOME, a private /tmp
        ("own-home-written", "echo x > $HOME/h".to_owned()),
        (
            "private-tmp-written",
            "echo x > /tmp/t && test -s /tmp/t".to_owned(),
        ),
    ];
    let mut command = String::from("command =\n  mkdir -p $out\n");
    for (what, script) in tries {
        command.push_str(&format!(
            "  if ( {script} ) 2>/dev/null; then echo {what} >> $out/report; fi\n"
        ));
    }
    command.push_str("  echo $$ > $out/pid\n  hostname > $out/hostname\n");
    format!(
        "[buildout]\nparts = victim attack\n\
         [victim]\nrecipe = plone.recipe.command\ncommand = echo v > $out/v\n\
         [attack]\nrecipe = plone.recipe.command\nvictim = ${{victim:location}}\n{command}"
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The store path of part `part` in `build --json`'s output.
fn part_path(json: &str, part: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).expect("build --json");
    v["parts"][part].as_str().expect("part path").to_owned()
}

#[test]
fn a_build_cannot_write_outside_its_output_or_connect() {
    if !have(
        "a_build_cannot_write_outside_its_output_or_connect",
        &["python3"],
    ) {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned());
    let marker = format!("slapstore-sandbox-test-{}", std::process::id());
    let leftovers = [
        Path::new("/tmp").join(&marker),
        Path::new(&home).join(&marker),
    ];

    let env = TestEnv::new();
    let store = Root::new(&env);
    let store_dir = store.root.join("store");
    env.write(
        "software.cfg",
        &attack_profile(&store_dir, env.path(), &home, &marker, port),
    );
    let out = store.run(&["build", "--json", "software.cfg"]);
    let reached: Vec<bool> = leftovers.iter().map(|f| f.exists()).collect();
    for f in &leftovers {
        let _ = std::fs::remove_file(f);
    }
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        reached,
        [false, false],
        "the host's /tmp and HOME are untouched"
    );
    let attack = part_path(&out.stdout, "attack");
    let victim = part_path(&out.stdout, "victim");
    let report = lines(&Path::new(&attack).join("report"));
    // writes under /tmp (the test's directory is there too) land in the build's private /tmp
    let refused = [
        "home-written",
        "victim-written",
        "store-written",
        "connected",
    ];
    for what in refused {
        assert!(!report.iter().any(|l| l == what), "{what}: {report:?}");
    }
    for what in ["own-home-written", "private-tmp-written"] {
        assert!(report.iter().any(|l| l == what), "{what}: {report:?}");
    }
    assert_eq!(lines(&Path::new(&attack).join("pid")), ["1"]);
    assert_eq!(lines(&Path::new(&attack).join("hostname")), ["localhost"]);
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the build connected to the host's port"
    );
    assert!(!env.path().join(&marker).exists());
    assert!(!Path::new(&victim).join("evil").exists());
    assert!(!store_dir.join("evil").exists());
    let verify = store.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);

    // the same build without the sandbox reaches all of it: the checks above can fail
    let env2 = TestEnv::new();
    let store2 = Root::new(&env2);
    let store_dir2 = store2.root.join("store");
    env2.write(
        "software.cfg",
        &attack_profile(&store_dir2, env2.path(), &home, &marker, port),
    );
    let out = store2.run(&["--no-sandbox", "build", "--json", "software.cfg"]);
    let reached: Vec<bool> = leftovers.iter().map(|f| f.exists()).collect();
    for f in &leftovers {
        let _ = std::fs::remove_file(f);
    }
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(reached, [true, true]);
    let report = lines(&Path::new(&part_path(&out.stdout, "attack")).join("report"));
    for what in [
        "tmp-written",
        "home-written",
        "test-dir-written",
        "victim-written",
        "store-written",
        "connected",
    ] {
        assert!(report.iter().any(|l| l == what), "{what}: {report:?}");
    }
    assert!(listener.accept().is_ok());
}

/// The live processes of process group `pgid`.
fn live_in_group(pgid: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            fields.get(2) == Some(&pgid) && fields.first() != Some(&"Z")
        })
        .count()
}

#[test]
fn an_output_is_in_the_store_only_once_complete_even_after_sigkill() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = slow\n[slow]\nrecipe = plone.recipe.command\ncommand =\n  \
         mkdir -p $out/bin\n  echo partial > $out/bin/x\n  sleep 1000 &\n  sleep 1000\n",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args([
            "--root",
            &store.root.to_string_lossy(),
            "build",
            "software.cfg",
        ])
        .current_dir(env.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let scratch = wait_for_output(&store.root, "bin/x");
    // while it runs: the output is in its scratch directory, the store has no path for it
    assert_eq!(store.entries(), Vec::<String>::new());
    let name = scratch
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(!store.root.join("store").join(&name).exists());
    let pgid = std::fs::read_to_string(scratch.join("process-group")).expect("pgid");
    let pgid = pgid.trim().to_owned();
    assert!(live_in_group(&pgid) > 0);
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    // its commands die with it, the one in the background too (the PID namespace ends)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while live_in_group(&pgid) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the build's commands outlived it"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(store.entries(), Vec::<String>::new());
    // gc removes the scratch directory the killed build left
    let gc = store.run(&["gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(std::fs::read_dir(store.root.join("var/tmp"))
        .expect("var/tmp")
        .next()
        .is_none());
}

#[test]
fn the_sandbox_is_on_unless_turned_off() {
    let profile = "[buildout]\nparts = p\n[p]\nrecipe = plone.recipe.command\n\
                   command = echo $$ > $out/pid\n";
    let pid = |args: &[&str], env_var: Option<&str>, config: Option<&str>| -> String {
        let env = TestEnv::new();
        let store = Root::new(&env);
        env.write("software.cfg", profile);
        if let Some(text) = config {
            env.write("root/etc/slapstore.toml", text);
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"));
        cmd.arg("--root").arg(&store.root).args(args);
        cmd.args(["build", "--json", "software.cfg"]);
        cmd.current_dir(env.path());
        if let Some(v) = env_var {
            cmd.env("SLAPSTORE_SANDBOX", v);
        }
        let out = cmd.output().expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines(&Path::new(&part_path(&stdout, "p")).join("pid")).join("")
    };
    assert_eq!(pid(&[], None, None), "1");
    assert_ne!(pid(&["--no-sandbox"], None, None), "1");
    assert_ne!(pid(&[], Some("0"), None), "1");
    assert_ne!(pid(&[], None, Some("sandbox = false\n")), "1");
    assert_eq!(pid(&[], None, Some("sandbox = true\n")), "1");

    // a bad setting is refused, naming the file
    let env = TestEnv::new();
    let store = Root::new(&env);
    env.write("software.cfg", profile);
    env.write("root/etc/slapstore.toml", "sandbox = \"maybe\"\n");
    let out = store.run(&["build", "software.cfg"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("slapstore.toml"), "{}", out.stderr);
    assert!(out.stderr.contains("sandbox"), "{}", out.stderr);
    assert_eq!(store.entries(), Vec::<String>::new());
}

#[test]
fn without_namespaces_the_error_says_how_to_build_unsandboxed() {
    use std::os::unix::fs::PermissionsExt;
    if !have(
        "without_namespaces_the_error_says_how_to_build_unsandboxed",
        &["setpriv"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = p\n[p]\nrecipe = plone.recipe.command\ncommand = echo hi > $out/x\n",
    );
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir_all(&store.root).expect("mkdir");
    std::os::unix::fs::chown(&store.root, Some(65534), Some(65534)).expect("chown");
    // an unprivileged user may not create namespaces (without a user namespace)
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        cmd.arg(env!("CARGO_BIN_EXE_slapstore"));
        cmd.arg("--root").arg(&store.root).args(extra);
        cmd.args(["build", "software.cfg"]).current_dir(env.path());
        cmd.output().expect("setpriv")
    };
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the build sandbox cannot be set up") && stderr.contains("--no-sandbox"),
        "{stderr}"
    );
    assert_eq!(store.entries(), Vec::<String>::new());
    let out = run(&["--no-sandbox"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
