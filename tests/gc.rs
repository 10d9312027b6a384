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
    // installed software is a root: nothing to collect until it is removed
    assert_eq!(
        gc_json(&r, &["--dry-run"])["deleted"],
        serde_json::json!([])
    );
    let installed: Value =
        serde_json::from_str(&r.ok(&["software", "list", "--json"])).expect("json");
    assert_eq!(installed.as_array().expect("list").len(), 3, "{installed}");
    r.ok(&[
        "software",
        "remove",
        &repo_root()
            .join("examples/patched-c/software.cfg")
            .to_string_lossy(),
    ]);

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

    // drop them (and release 1's installation): release 1, its server and the old
    // generations go; everything live stays
    r.ok(&["software", "remove", &v1]);
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
    assert_eq!(r.run(&["unpin", "linked"]).code, 3);
    // the build installed the release: that root keeps it now
    let why = r.ok(&["why-alive", &format!("{}/store/{lib}", r.root.display())]);
    assert!(why.contains("the software installed from"), "{why}");
    r.ok(&["software", "remove", &release]);
    assert_eq!(
        r.run(&["software", "remove", &release]).code,
        2,
        "removed already"
    );
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
        3,
        "a path that is gone cannot be pinned (not found)"
    );
}

#[test]
fn gc_removes_what_killed_builds_left() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = slow\n[slow]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out/x; sleep 60\n",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(["--root", &r.root.to_string_lossy(), "build", "software.cfg"])
        .current_dir(env.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    crate::common::wait_for_output(&r.root, "x");
    child.kill().expect("kill");
    child.wait().expect("wait");
    // a sandboxed build's partial output is in its scratch directory, not in `store/`
    assert!(r.entries().is_empty(), "{:?}", r.entries());
    let gc = gc_json(&r, &[]);
    assert_eq!(gc["leftovers"].as_array().expect("list").len(), 1, "{gc}");
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
        r.ok(&["software", "remove", &format!("b{i}/software.cfg")]);
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

/// Base names of `gc --json`'s deleted paths.
fn deleted(gc: &Value) -> Vec<String> {
    gc["deleted"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| {
            let p = v.as_str().expect("str");
            p.rsplit('/').next().unwrap_or(p).to_owned()
        })
        .collect()
}

#[test]
fn outputs_that_refer_to_themselves_and_each_other_are_collected() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // as compiled outputs do: each embeds its own prefix, `app` an rpath to `lib`, `lib` a
    // path back to `app`'s sibling `data` (a cycle between parts is impossible, a cycle of
    // self-references is not)
    env.write(
        "software.cfg",
        "[buildout]\nparts = lib app\n\
         [lib]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out/lib && echo \"prefix=$out\" > $out/lib/libx.pc\n\
         [app]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out/bin && echo \"rpath=${lib:location}/lib self=$out\" > $out/bin/app\n",
    );
    let release = r.ok(&["build", "software.cfg"]).trim().to_owned();
    let info: Value =
        serde_json::from_str(&r.ok(&["path-info", "--json", "--closure", &release])).expect("json");
    let text = info.to_string();
    let refers_to_itself = info["paths"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|p| {
            let me = p["path"].as_str().expect("path");
            p["references"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r.as_str() == Some(me)))
        })
        .count();
    assert!(refers_to_itself >= 2, "self-references recorded: {text}");
    let lib = r
        .entries()
        .into_iter()
        .find(|e| e.ends_with("-lib"))
        .expect("lib");
    r.ok(&["software", "remove", "software.cfg"]);
    let why = r.ok(&["why-alive", &lib]);
    assert!(why.contains("not reachable"), "{why}");
    let dry = gc_json(&r, &["--dry-run"]);
    assert_eq!(deleted(&dry).len(), 3, "{dry}");
    let gc = gc_json(&r, &[]);
    let mut gone = deleted(&gc);
    gone.sort();
    let mut would = deleted(&dry);
    would.sort();
    assert_eq!(gone, would, "the collection deletes what the dry run said");
    assert_eq!(gc["kept"], serde_json::json!([]));
    assert!(r.entries().is_empty(), "{:?}", r.entries());
    // nothing more, and no build log or lock file of the deleted paths is left
    assert_eq!(deleted(&gc_json(&r, &[])), Vec::<String>::new());
    let logs: Vec<_> = std::fs::read_dir(r.root.join("var/log"))
        .expect("logs")
        .collect();
    assert!(logs.is_empty(), "{logs:?}");
    let locks: Vec<String> = std::fs::read_dir(r.root.join("var/lock"))
        .expect("locks")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 32 + 5)
        .collect();
    assert!(locks.is_empty(), "{locks:?}");
    assert_eq!(r.run(&["verify"]).code, 0);
}

#[test]
fn software_is_installed_by_build_and_instance_create_until_removed() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    r.ok(&["instance", "create", "web", "--software", &v1]);
    let list: Value = serde_json::from_str(&r.ok(&["software", "list", "--json"])).expect("json");
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["profile"], v1.as_str());
    let release = list[0]["release"].as_str().expect("release").to_owned();
    assert!(release.ends_with("-multi-instance-release"), "{release}");
    assert!(r.ok(&["software", "list"]).contains(&release));
    // a build of a profile installs its release; a gc right after keeps it
    env.write(
        "tool/software.cfg",
        "[buildout]\nparts = t\n[t]\nrecipe = plone.recipe.command\ncommand = echo tool > $out/x\n",
    );
    let tool = r.ok(&["build", "tool/software.cfg"]).trim().to_owned();
    assert_eq!(deleted(&gc_json(&r, &[])), Vec::<String>::new());
    assert!(std::path::Path::new(&tool).exists());
    // building the profile again after a change replaces its installation
    env.write(
        "tool/software.cfg",
        "[buildout]\nparts = t\n[t]\nrecipe = plone.recipe.command\ncommand = echo tool 2 > $out/x\n",
    );
    let tool2 = r.ok(&["build", "tool/software.cfg"]).trim().to_owned();
    let gc = gc_json(&r, &[]);
    let gone = deleted(&gc);
    assert_eq!(gone.len(), 2, "the old tool and its part: {gc}");
    assert!(tool.ends_with(&gone[0]) || tool.ends_with(&gone[1]), "{gc}");
    // removed by release path: only what the instance keeps stays
    r.ok(&["software", "remove", &tool2]);
    assert_eq!(deleted(&gc_json(&r, &[])).len(), 2);
    // removing the instance's software does not touch what its generation keeps
    r.ok(&["software", "remove", &v1]);
    assert_eq!(deleted(&gc_json(&r, &[])), Vec::<String>::new());
    assert!(r.serve("web").contains("server 1.0"));
    assert_eq!(r.ok(&["software", "list", "--json"]).trim(), "[]");
    let bad = r.run(&["software", "remove", "nothing.cfg"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("nothing.cfg"), "{}", bad.stderr);
}

#[test]
fn read_only_commands_on_a_missing_root_create_nothing() {
    let env = TestEnv::new();
    let missing = env.path().join("typo");
    for args in [
        &["verify"][..],
        &["gc", "--dry-run"],
        &["gc"],
        &["why-alive", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"],
        &["path-info", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"],
        &["instance", "list"],
        &["instance", "show", "web"],
        &["software", "list"],
        &["optimise"],
    ] {
        let out = crate::common::run_root(&missing, env.path(), args);
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("is not a slapstore root") && out.stderr.contains("typo"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!missing.exists(), "{args:?} created the root");
    }
}

#[test]
fn optimise_never_links_a_file_to_other_bytes() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // X: a build whose output is the bytes of `data` (same derivation, other bytes later)
    let data = env.path().join("data");
    let old = "a".repeat(8192);
    std::fs::write(&data, &old).expect("write");
    env.write(
        "x/software.cfg",
        &format!(
            "[buildout]\nparts = x\n[x]\nrecipe = plone.recipe.command\ncommand = cp {} $out/f\n",
            data.display()
        ),
    );
    // the same derivation with other bytes: only a build without the sandbox reads the host file
    r.ok(&["--no-sandbox", "build", "x/software.cfg"]);
    r.ok(&["optimise"]);
    // gc deletes X; X is rebuilt under the same name with other bytes of the same size
    r.ok(&["software", "remove", "x/software.cfg"]);
    assert_eq!(deleted(&gc_json(&r, &[])).len(), 2);
    std::fs::write(&data, "b".repeat(8192)).expect("write");
    // the same derivation with other bytes: only a build without the sandbox reads the host file
    r.ok(&["--no-sandbox", "build", "x/software.cfg"]);
    // W holds X's old bytes
    env.write("w/f", &old);
    r.ok(&["store", "add", "w"]);
    r.ok(&["optimise"]);
    let verify = r.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    let w = r
        .entries()
        .into_iter()
        .find(|e| e.ends_with("-w"))
        .expect("w");
    assert_eq!(
        std::fs::read_to_string(r.root.join("store").join(w).join("f")).expect("read"),
        old
    );
}

#[test]
fn optimise_leaves_no_temporary_link_in_a_store_path() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let big = "z".repeat(16 * 1024);
    for copy in ["one", "two"] {
        env.write(&format!("{copy}/d/data.bin"), &big);
    }
    r.ok(&["store", "add", "one", "two"]);
    // what a run killed between its link and its rename left
    let leftover = r.root.join("var/tmp/.slapstore-optimise-99999");
    std::fs::write(&leftover, "x").expect("leftover");
    let report: Value = serde_json::from_str(&r.ok(&["optimise", "--json"])).expect("json");
    assert_eq!(report["linked"], 1, "{report}");
    assert!(!leftover.exists(), "the rerun removes it");
    // nothing of optimise's in the store paths, which verify
    for e in r.entries() {
        for f in walk(&r.root.join("store").join(e)) {
            assert!(!f.contains(".slapstore-optimise"), "{f}");
        }
    }
    let verify = r.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir") {
        let e = e.expect("entry");
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().expect("type").is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn var_stays_bounded_over_many_commands() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let release = r.ok(&["build", &demo("software.cfg")]).trim().to_owned();
    // a few hundred commands: creates, upgrades, queries, collections
    for i in 0..60 {
        let name = format!("i{i}");
        r.ok(&["-q", "instance", "create", &name, "--software", &release]);
        r.ok(&[
            "-q",
            "instance",
            "upgrade",
            &name,
            "--software",
            &release,
            "-p",
            "port=9",
        ]);
        r.ok(&["instance", "show", &name]);
        if i % 3 == 0 {
            r.ok(&["instance", "delete-generations", &name, "--keep", "1"]);
            r.ok(&["-q", "gc"]);
        }
        if i % 5 == 0 {
            r.ok(&["verify"]);
        }
    }
    for i in 0..60 {
        r.ok(&["instance", "destroy", &format!("i{i}")]);
    }
    r.ok(&["-q", "gc"]);
    let count = |sub: &str| {
        std::fs::read_dir(r.root.join(sub))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // no temporary-roots file of a process that exited
    assert_eq!(count("var/temproots"), 0);
    // logs only of paths that exist (the release and its parts; generations log nothing)
    let valid = r.entries().len();
    assert!(count("var/log") <= valid, "{} logs", count("var/log"));
    // locks: gc, db-open, partitions (`instance create`), the instances' (one per name) and
    // those of valid paths
    assert!(
        count("var/lock") <= 3 + 60 + valid,
        "{} locks",
        count("var/lock")
    );
    let wal = std::fs::metadata(r.root.join("var/db.sqlite-wal")).map_or(0, |m| m.len());
    assert!(wal <= 2 << 20, "WAL of {wal} bytes");
}

#[test]
fn modes_are_explicit_under_a_zero_umask() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let root = env.path().join("root");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000 && exec \"$0\" --root {} instance create web --software {}",
            root.display(),
            demo("software.cfg")
        ))
        .arg(env!("CARGO_BIN_EXE_slapstore"))
        .current_dir(env.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut checked = 0;
    for dir in [
        "",
        "store",
        "var",
        "var/tmp",
        "var/log",
        "var/lock",
        "var/gcroots",
        "var/temproots",
        "partitions",
        "partitions/web",
    ] {
        let Ok(meta) = std::fs::metadata(root.join(dir)) else {
            continue;
        };
        checked += 1;
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o022, 0, "`{dir}` is {mode:o}");
    }
    assert!(checked >= 8, "{checked}");
    for sub in ["var/lock", "var/log"] {
        for e in std::fs::read_dir(root.join(sub)).expect("dir") {
            let e = e.expect("entry");
            let mode = e.metadata().expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode & 0o022, 0, "`{}` is {mode:o}", e.path().display());
        }
    }
}
