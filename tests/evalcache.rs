//! End-to-end tests of the cache of evaluations (`frontend/src/evalcache.rs`): `plan` and `build`
//! of an unchanged profile reuse the derivations without evaluating again (Python not started),
//! and any change in what the evaluation read or was given makes it evaluate again.

use crate::common::{Root, TestEnv};

/// A profile that extends `base.cfg` and whose Python `init` code reads `data.txt` and counts its
/// runs in `runs` (a file it opens to append: written, so not an input).
fn write_profile(env: &TestEnv) {
    env.write("base.cfg", "[base]\nvalue = one\n");
    env.write("data.txt", "from-python");
    env.write(
        "software.cfg",
        "[buildout]\nextends = base.cfg\nparts = user\n\
         [pick]\nrecipe = slapos.recipe.build\ninit =\n  \
         open('runs', 'a').write('x')\n  \
         options['cc'] = open('data.txt').read()\n\
         [user]\nrecipe = slapos.recipe.template\ninline = ${pick:cc} ${base:value}\n\
         output = ${buildout:directory}/user\n",
    );
}

fn user_path(r: &Root, extra: &[&str]) -> String {
    let mut args = vec!["plan", "--json"];
    args.extend(extra);
    args.push("software.cfg");
    let plan: serde_json::Value = serde_json::from_str(&r.ok(&args)).expect("json");
    plan.as_array()
        .expect("list")
        .iter()
        .find(|d| d["part"] == "user")
        .expect("user")["path"]
        .as_str()
        .expect("path")
        .to_owned()
}

fn runs(env: &TestEnv) -> usize {
    std::fs::read_to_string(env.path().join("runs"))
        .map(|s| s.len())
        .unwrap_or(0)
}

fn entries(r: &Root) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(r.root.join("var/cache/eval"))
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default()
}

#[test]
fn an_unchanged_profile_is_not_evaluated_again_and_every_change_is_seen() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    write_profile(&env);
    // planning on a root that does not exist yet creates nothing, cache included
    let first = user_path(&r, &[]);
    assert!(!r.root.exists());
    assert_eq!(runs(&env), 1);
    r.ok(&["build", "software.cfg"]);
    assert_eq!(runs(&env), 2);
    assert_eq!(entries(&r).len(), 1, "one entry for the profile");

    // unchanged: the same derivations, Python not run again, by plan and by a no-op build
    assert_eq!(user_path(&r, &[]), first);
    r.ok(&["build", "software.cfg"]);
    assert_eq!(runs(&env), 2, "a hit starts no Python");

    // an edit of the extended file is seen
    env.write("base.cfg", "[base]\nvalue = two\n");
    let edited = user_path(&r, &[]);
    assert_ne!(edited, first);
    assert_eq!(runs(&env), 3);
    assert_eq!(user_path(&r, &[]), edited);
    assert_eq!(runs(&env), 3);
    // and going back is another evaluation, giving the first result again
    env.write("base.cfg", "[base]\nvalue = one\n");
    assert_eq!(user_path(&r, &[]), first);
    assert_eq!(runs(&env), 4);

    // a file that profile Python code read
    env.write("data.txt", "changed");
    let by_python = user_path(&r, &[]);
    assert_ne!(by_python, first);
    assert_eq!(runs(&env), 5);

    // an override, and the interpreter, are part of the key
    let overridden = user_path(&r, &["-O", "base:value=three"]);
    assert_ne!(overridden, by_python);
    assert_eq!(runs(&env), 6);
    assert_eq!(user_path(&r, &[]), by_python);
    let python = String::from_utf8(
        std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3")
            .stdout,
    )
    .expect("utf-8");
    // the same interpreter under another name is another interpreter for the key
    let link = env.path().join("py3");
    std::os::unix::fs::symlink(python.trim(), &link).expect("symlink");
    assert_eq!(
        user_path(&r, &["--python", &link.to_string_lossy()]),
        by_python
    );
    assert_eq!(runs(&env), 7);
    user_path(&r, &["--python", &link.to_string_lossy()]);
    assert_eq!(runs(&env), 7);

    // a damaged entry is a miss, then replaced
    for entry in entries(&r) {
        std::fs::write(entry, "{not json").expect("write");
    }
    assert_eq!(user_path(&r, &[]), by_python);
    assert_eq!(runs(&env), 8);
    assert_eq!(user_path(&r, &[]), by_python);
    assert_eq!(runs(&env), 8);

    // SLAPSTORE_EVAL_CACHE=0 evaluates every time
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(["--root", &r.root.to_string_lossy(), "plan", "software.cfg"])
        .current_dir(env.path())
        .env("SLAPSTORE_EVAL_CACHE", "0")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(runs(&env), 9);
}

#[test]
fn concurrent_evaluations_share_the_cache_safely() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    write_profile(&env);
    r.ok(&["build", "software.cfg"]);
    env.write("base.cfg", "[base]\nvalue = concurrent\n");
    // four misses at once: each writes its entry atomically, all agree
    let paths: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| user_path(&r, &[]))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("plan"))
            .collect()
    });
    assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
    let before = runs(&env);
    assert_eq!(user_path(&r, &[]), paths[0]);
    assert_eq!(runs(&env), before, "the entry left behind is whole");
    let left: Vec<_> = std::fs::read_dir(r.root.join("var/cache/eval"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| n.ends_with(".json")), "{left:?}");
}

#[test]
fn a_plan_with_unpinned_inputs_is_not_cached_so_it_warns_each_time_and_lock_sees_them() {
    if !crate::common::have("evalcache", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let repo = env.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    crate::common::git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.join("README"), "first\n").expect("write");
    crate::common::git(&repo, &["add", "."]);
    crate::common::git(&repo, &["commit", "--quiet", "-m", "first"]);
    let commit = crate::common::git(&repo, &["rev-parse", "HEAD"]);
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = src\n\n[src]\nrecipe = slapos.recipe.build:gitclone\n\
             repository = {}\nbranch = main\n",
            repo.display()
        ),
    );
    std::fs::create_dir_all(r.root.join("var")).expect("mkdir");
    // the warning and the `unpinned` mark come from the evaluation: each plan evaluates
    for _ in 0..2 {
        let out = r.run(&["plan", "software.cfg"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stderr.contains("[src]") && out.stderr.contains("slapstore lock"),
            "{}",
            out.stderr
        );
        r.ok(&["plan", "--allow-unpinned", "software.cfg"]);
    }
    assert_eq!(
        entries(&r).len(),
        0,
        "a plan with unpinned inputs is not cached"
    );
    // `lock` evaluates for itself: the branch is seen and pinned
    let out = r.run(&["lock", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(env.path().join("software.cfg.lock")).expect("lock");
    assert!(text.contains(&format!("commit = \"{commit}\"")), "{text}");
    // with a lock file, plan evaluates (its pins are checked as the evaluation asks for them)
    r.ok(&["plan", "software.cfg"]);
}
