//! End-to-end tests of the cache of evaluations (`frontend/src/evalcache.rs`): `plan` and `build`
//! of an unchanged profile reuse the derivations without evaluating again (Python not started),
//! and any change in what the evaluation read or was given makes it evaluate again; with
//! unpinned inputs and lock files, a cached run says byte for byte what the evaluation said
//! (`plan --json`, warnings, `--frozen`'s and `build`'s refusals), and an edit of the lock is seen.

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

/// Runs `args` twice (a miss then, unless something else ran first, a hit) and insists that
/// both runs say exactly the same, byte for byte: exit status, stdout and stderr.
fn twice(r: &Root, args: &[&str]) -> crate::common::Output {
    let first = r.run(args);
    let second = r.run(args);
    assert_eq!(
        (first.code, &first.stdout, &first.stderr),
        (second.code, &second.stdout, &second.stderr),
        "{args:?}: a cached run says what the evaluation said"
    );
    first
}

/// The `(part, path, unpinned)` rows of `plan --json`.
fn rows(stdout: &str) -> Vec<(String, String, bool)> {
    let plan: serde_json::Value = serde_json::from_str(stdout).expect("plan --json");
    plan.as_array()
        .expect("list")
        .iter()
        .map(|d| {
            (
                d["part"].as_str().expect("part").to_owned(),
                d["path"].as_str().expect("path").to_owned(),
                d["unpinned"].as_bool().expect("unpinned"),
            )
        })
        .collect()
}

fn row<'a>(rows: &'a [(String, String, bool)], part: &str) -> &'a (String, String, bool) {
    rows.iter()
        .find(|r| r.0 == part)
        .unwrap_or_else(|| panic!("no {part}"))
}

#[test]
fn unpinned_inputs_and_lock_files_are_cached_and_say_the_same_as_an_evaluation() {
    if !crate::common::have("evalcache", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let repo = env.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let commit = |text: &str| {
        std::fs::write(repo.join("README"), text).expect("write");
        crate::common::git(&repo, &["add", "."]);
        crate::common::git(&repo, &["commit", "--quiet", "-m", text.trim()]);
        crate::common::git(&repo, &["rev-parse", "HEAD"])
    };
    crate::common::git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    let first = commit("first\n");
    // a branch (unpinned), and Python code that counts the evaluations
    write_profile(&env);
    let profile = std::fs::read_to_string(env.path().join("software.cfg")).expect("profile");
    let profile = profile.replace("parts = user", "parts = user src")
        + &format!(
            "[src]\nrecipe = slapos.recipe.build:gitclone\nrepository = {}\nbranch = main\n",
            repo.display()
        );
    env.write("software.cfg", &profile);
    std::fs::create_dir_all(r.root.join("var")).expect("mkdir");

    // plan: the warning (pointing at the option) and the mark, the same from the cache
    let plan = twice(&r, &["plan", "--json", "software.cfg"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stderr.contains("[src]")
            && plan.stderr.contains("branch `main`")
            && plan.stderr.contains("software.cfg:")
            && plan.stderr.contains("branch = main")
            && plan.stderr.contains("`slapstore lock` pins it"),
        "{}",
        plan.stderr
    );
    let unlocked = rows(&plan.stdout);
    assert!(row(&unlocked, "src").2 && !row(&unlocked, "user").2);
    assert_eq!(runs(&env), 1, "the second plan was a hit");
    assert_eq!(entries(&r).len(), 1);
    // the text form is the same entry (only the output differs), with the same warning
    let text = twice(&r, &["plan", "software.cfg"]);
    assert_eq!(text.stderr, plan.stderr);
    assert_eq!(runs(&env), 1);

    // --allow-unpinned: no warning, the same mark and paths
    let allowed = twice(&r, &["plan", "--json", "--allow-unpinned", "software.cfg"]);
    assert_eq!((allowed.code, allowed.stderr.as_str()), (0, ""));
    assert_eq!(rows(&allowed.stdout), unlocked);
    assert_eq!(runs(&env), 2);

    // `build` refuses the branch every time: plan's entry does not serve it
    let refused = twice(&r, &["build", "software.cfg"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("[src]"), "{}", refused.stderr);
    assert_eq!(runs(&env), 4, "an error is never cached");
    // nor does it serve --frozen, which refuses the missing lock file before evaluating
    let frozen = twice(&r, &["plan", "--frozen", "software.cfg"]);
    assert_eq!(frozen.code, 2);
    assert!(frozen.stderr.contains("no lock file"), "{}", frozen.stderr);

    // a lock file appears: a miss; pinned, no warning, no mark, another path for `src`
    r.ok(&["lock", "software.cfg"]);
    let mut evaluations = runs(&env);
    let locked = twice(&r, &["plan", "--json", "software.cfg"]);
    assert_eq!((locked.code, locked.stderr.as_str()), (0, ""));
    let pinned = rows(&locked.stdout);
    assert!(!row(&pinned, "src").2);
    assert_ne!(row(&pinned, "src").1, row(&unlocked, "src").1);
    assert_eq!(row(&pinned, "user").1, row(&unlocked, "user").1);
    evaluations += 1;
    assert_eq!(runs(&env), evaluations);
    // --frozen accepts it, with the same output, from the same entry
    let frozen = twice(&r, &["plan", "--json", "--frozen", "software.cfg"]);
    assert_eq!((frozen.code, &frozen.stdout), (0, &locked.stdout));
    assert_eq!(runs(&env), evaluations);

    // the branch moves and the lock is updated: the lock's edit is seen
    let second = commit("second\n");
    r.ok(&["lock", "--update", "software.cfg"]);
    evaluations += 1;
    let lock_file = env.path().join("software.cfg.lock");
    let lock_text = std::fs::read_to_string(&lock_file).expect("lock");
    assert!(lock_text.contains(&second) && !lock_text.contains(&first));
    let updated = twice(&r, &["plan", "--json", "software.cfg"]);
    assert_ne!(row(&rows(&updated.stdout), "src").1, row(&pinned, "src").1);
    evaluations += 1;
    assert_eq!(runs(&env), evaluations);
    // and the lock's text back as it was gives the first pin again
    let first_lock = lock_text.replace(&second, &first);
    std::fs::write(&lock_file, &first_lock).expect("write");
    assert_eq!(
        twice(&r, &["plan", "--json", "software.cfg"]).stdout,
        locked.stdout
    );
    evaluations += 1;
    assert_eq!(runs(&env), evaluations);

    // an entry for another branch: plan refuses it every time; --allow-unpinned plans the
    // branch unpinned, as without a lock, from the cache too
    std::fs::write(&lock_file, first_lock.replace("\"main\"", "\"dev\"")).expect("write");
    let out_of_date = twice(&r, &["plan", "software.cfg"]);
    assert_eq!(out_of_date.code, 2);
    assert!(
        out_of_date.stderr.contains("out of date"),
        "{}",
        out_of_date.stderr
    );
    let allowed = twice(&r, &["plan", "--json", "--allow-unpinned", "software.cfg"]);
    assert_eq!((allowed.code, allowed.stderr.as_str()), (0, ""));
    assert_eq!(rows(&allowed.stdout), unlocked);
    evaluations += 3;
    assert_eq!(runs(&env), evaluations);

    // a stale entry: warned about by the cached run too, and refused by --frozen every time
    std::fs::write(
        &lock_file,
        format!(
            "{first_lock}\n[parts.gone.git]\nrepository = \"{}\"\ncommit = \"{first}\"\n",
            repo.display()
        ),
    )
    .expect("write");
    let stale = twice(&r, &["plan", "--json", "software.cfg"]);
    assert_eq!(stale.code, 0);
    assert!(
        stale.stderr.contains("stale entry, `git` of part `gone`"),
        "{}",
        stale.stderr
    );
    assert_eq!(stale.stdout, locked.stdout);
    let frozen = twice(&r, &["plan", "--frozen", "software.cfg"]);
    assert_eq!(frozen.code, 2);
    assert!(
        frozen.stderr.contains("--frozen: the lock file"),
        "{}",
        frozen.stderr
    );
    evaluations += 1;
    assert_eq!(runs(&env), evaluations, "refused from the cache");

    // an edit of the profile is seen with a lock as without
    env.write("base.cfg", "[base]\nvalue = edited\n");
    let edited = twice(&r, &["plan", "--json", "software.cfg"]);
    assert_ne!(row(&rows(&edited.stdout), "user").1, row(&pinned, "user").1);
    evaluations += 1;
    assert_eq!(runs(&env), evaluations);
    // --frozen with an entry missing: refused (the lock pins nothing), never from plan's entry
    std::fs::write(&lock_file, "version = 1\n").expect("write");
    let unlocked_plan = twice(&r, &["plan", "--json", "software.cfg"]);
    assert!(row(&rows(&unlocked_plan.stdout), "src").2);
    assert!(
        unlocked_plan.stderr.contains("has no entry"),
        "{}",
        unlocked_plan.stderr
    );
    let frozen = twice(&r, &["plan", "--frozen", "software.cfg"]);
    assert_eq!(frozen.code, 2);
    assert!(
        frozen.stderr.contains("--frozen: branch `main`"),
        "{}",
        frozen.stderr
    );
    evaluations += 3;
    assert_eq!(runs(&env), evaluations);
}
