//! End-to-end tests of `gc`, `why-alive`, `pin`/`unpin` and `optimise` through the real binary.

use serde_json::Value;

use crate::common::{demo, repo_root, Root, TestEnv};

fn gc_json(r: &Root, extra: &[&str]) -> Value {
    let mut args = vec!["gc", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&r.ok(&args)).expect("gc --json")
}

#[test]
fn gc_removes_old_releases_and_keeps_every_live_path() {
    if !crate::common::have(
        "gc_removes_old_releases_and_keeps_every_live_path",
        &["cc", "make", "patch"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let (v1, v2) = (demo("software.cfg"), demo("software-v2.cfg"));
    r.ok(&["instance", "create", "a", "b", "--software", &v1]);
    r.ok(&["instance", "upgrade", "a", "--software", &v2]);
    r.ok(&["instance", "upgrade", "b", "--software", &v2]);
    // a software build that nothing uses
    r.ok(&[
        "build",
        &repo_root()
            .join("examples/patched-c/software.cfg")
            .to_string_lossy(),
    ]);
    let before = r.entries();

    // the dry run names the unused build, deletes nothing
    let dry = gc_json(&r, &["--dry-run"]);
    let would: Vec<&str> = dry["deleted"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_str().expect("str"))
        .collect();
    assert_eq!(would.len(), 2, "{would:?}");
    assert!(
        would.iter().any(|p| p.ends_with("-greet"))
            && would.iter().any(|p| p.ends_with("-patched-c-release"))
    );
    assert_eq!(r.entries(), before);

    // old generations still hold release 1
    let gc = gc_json(&r, &[]);
    assert_eq!(gc["deleted"].as_array().expect("list").len(), 2);
    assert!(gc["freed_bytes"].as_u64().expect("n") > 0);
    assert!(
        r.entries()
            .iter()
            .filter(|e| e.ends_with("-server"))
            .count()
            == 2
    );

    // drop them: release 1, its server and the old generations go; everything live stays
    r.ok(&["instance", "delete-generations", "a", "--keep", "1"]);
    r.ok(&["instance", "delete-generations", "b", "1"]);
    let gc = gc_json(&r, &[]);
    let deleted: Vec<&str> = gc["deleted"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_str().expect("str"))
        .collect();
    assert!(
        deleted.iter().any(|p| p.ends_with("-server")),
        "{deleted:?}"
    );
    assert!(
        deleted.iter().filter(|p| p.ends_with("-instance")).count() == 2,
        "{deleted:?}"
    );
    assert_eq!(
        r.entries()
            .iter()
            .filter(|e| e.ends_with("-server"))
            .count(),
        1
    );
    assert!(r.serve("a").contains("server 2.0"));
    assert!(r.serve("b").contains("server 2.0"));
    let verify = r.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    // nothing more to collect
    assert_eq!(gc_json(&r, &[])["deleted"], serde_json::json!([]));
    // a rollback to a deleted generation is refused
    assert_eq!(r.run(&["instance", "rollback", "a", "--to", "1"]).code, 2);
}

#[test]
fn pins_keep_closures_and_why_alive_explains() {
    if !crate::common::have(
        "pins_keep_closures_and_why_alive_explains",
        &["cc", "make", "patch"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let release = r.ok(&[
        "build",
        &repo_root()
            .join("examples/linked/software.cfg")
            .to_string_lossy(),
    ]);
    let release = release.trim().to_owned();
    r.ok(&["pin", &release, "--name", "linked"]);
    assert_eq!(gc_json(&r, &[])["deleted"], serde_json::json!([]));
    let lib = r
        .entries()
        .into_iter()
        .find(|e| e.ends_with("-libgreet"))
        .expect("libgreet");
    let why = r.ok(&["why-alive", &format!("{}/store/{lib}", r.root.display())]);
    assert!(why.contains("pin `linked`"), "{why}");
    assert!(
        why.contains("-linked-release") && why.contains("-libgreet"),
        "{why}"
    );
    r.ok(&["unpin", "linked"]);
    assert_eq!(r.run(&["unpin", "linked"]).code, 2);
    let why = r.ok(&["why-alive", &format!("{}/store/{lib}", r.root.display())]);
    assert!(why.contains("not reachable"), "{why}");
    let gc = gc_json(&r, &["--max-freed", "1"]);
    assert_eq!(
        gc["deleted"].as_array().expect("list").len(),
        1,
        "--max-freed stops early"
    );
    let gc = gc_json(&r, &[]);
    assert_eq!(
        gc["deleted"].as_array().expect("list").len(),
        2,
        "the rest of the closure"
    );
    assert!(r.entries().is_empty());
    assert_eq!(
        r.run(&["pin", &release]).code,
        2,
        "a path that is gone cannot be pinned"
    );
}

#[test]
fn gc_removes_what_killed_builds_left() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let marker = env.path().join("started");
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = slow\n[slow]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out/x; touch {}; sleep 60\n",
            marker.display()
        ),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(["--root", &r.root.to_string_lossy(), "build", "software.cfg"])
        .current_dir(env.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    while !marker.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(r.entries().len(), 1, "the killed build's partial output");
    let gc = gc_json(&r, &[]);
    assert_eq!(gc["leftovers"].as_array().expect("list").len(), 2, "{gc}");
    assert!(r.entries().is_empty());
    assert!(std::fs::read_dir(r.root.join("var/tmp"))
        .expect("tmp")
        .next()
        .is_none());
}

#[test]
fn gc_never_deletes_what_concurrent_builds_and_upgrades_use() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    r.ok(&["instance", "create", "web", "--software", &v1]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rounds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let root = r.root.to_string_lossy().into_owned();
    let collector = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        let root = root.clone();
        let dir = env.path().to_owned();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
                    .args(["--root", &root, "-q", "gc"])
                    .current_dir(&dir)
                    .output()
                    .expect("gc");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    // at least 12 rounds of work, and on until 50 collections ran alongside
    let mut i = 0;
    while i < 12 || (rounds.load(std::sync::atomic::Ordering::Relaxed) < 50 && i < 200) {
        // a new software build each round, used right away by an upgrade
        env.write(
            &format!("v{i}/software.cfg"),
            &format!("[buildout]\nextends = {v1}\n[server]\nversion = 1.{i}\n"),
        );
        r.ok(&[
            "instance",
            "upgrade",
            "web",
            "--software",
            &format!("v{i}/software.cfg"),
            "-p",
            &format!("greeting=g{i}"),
        ]);
        assert!(r.serve("web").contains(&format!("server 1.{i})")));
        // and a build whose outputs nothing roots: built, then fair game
        env.write(
            &format!("b{i}/software.cfg"),
            &format!("[buildout]\nparts = t\n[t]\nrecipe = plone.recipe.command\ncommand = echo {i} > $out/x\n"),
        );
        let out = r.run(&["build", &format!("b{i}/software.cfg")]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        r.ok(&["instance", "delete-generations", "web", "--keep", "2"]);
        i += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    collector.join().expect("collector");
    let rounds = rounds.load(std::sync::atomic::Ordering::Relaxed);
    assert!(rounds >= 50, "only {rounds} collections ran");
    let last = i - 1;
    let verify = r.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert!(r.serve("web").contains(&format!("server 1.{last})")));
    r.ok(&["instance", "rollback", "web"]);
    assert!(r.serve("web").contains(&format!("server 1.{})", last - 1)));
}

#[test]
fn optimise_shares_identical_files() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let big = "x".repeat(64 * 1024);
    for copy in ["one", "two", "three"] {
        env.write(&format!("{copy}/data.bin"), &big);
        env.write(&format!("{copy}/small"), "tiny");
        env.write(
            &format!("{copy}/unique"),
            &format!("{copy}{}", "y".repeat(4096)),
        );
    }
    r.ok(&["store", "add", "one", "two", "three"]);
    let report: Value = serde_json::from_str(&r.ok(&["optimise", "--json"])).expect("json");
    assert_eq!(report["linked"], 2, "{report}");
    assert_eq!(report["bytes_saved"], 2 * 64 * 1024);
    use std::os::unix::fs::MetadataExt;
    let inodes: std::collections::HashSet<u64> = r
        .entries()
        .iter()
        .map(|e| {
            std::fs::metadata(r.root.join("store").join(e).join("data.bin"))
                .expect("meta")
                .ino()
        })
        .collect();
    assert_eq!(inodes.len(), 1);
    // again: nothing new to do
    let again: Value = serde_json::from_str(&r.ok(&["optimise", "--json"])).expect("json");
    assert_eq!(again["linked"], 0);
    let verify = r.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    // gc of a path holding the shared copy leaves the others intact
    let gc = gc_json(&r, &[]);
    assert_eq!(gc["deleted"].as_array().expect("list").len(), 3);
    env.write("four/data.bin", &big);
    r.ok(&["store", "add", "four"]);
    r.ok(&["optimise"]);
    assert_eq!(r.run(&["verify", "--check-contents"]).code, 0);
}
