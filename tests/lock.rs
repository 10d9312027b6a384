//! `slapstore lock` end to end, without the internet: a git repository in the test's directory
//! and a file served over HTTP from the test itself. A branch and a file without checksum are
//! planned with a warning and refused by `build`, then pinned by the lock (written beside the profile), built from the pins, kept as
//! the upstream moves, re-resolved by `lock --update`, and locked again offline from the
//! mirror; `--frozen` refuses a missing, out-of-date or stale lock, naming the part and input.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::common::{git, have, Root, TestEnv};

/// Commits `README` with `text` on the current branch of `repo`; the commit.
fn commit(repo: &Path, text: &str) -> String {
    std::fs::write(repo.join("README"), text).expect("write");
    git(repo, &["add", "."]);
    git(repo, &["commit", "--quiet", "-m", text.trim()]);
    git(repo, &["rev-parse", "HEAD"])
}

/// A repository `repo` with one commit on `main`.
fn repository(env: &TestEnv) -> (std::path::PathBuf, String) {
    let repo = env.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    let first = commit(&repo, "first\n");
    (repo, first)
}

fn git_profile(env: &TestEnv, repo: &Path, branch: &str) {
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = src\n\n[src]\nrecipe = slapos.recipe.build:gitclone\n\
             repository = {}\nbranch = {branch}\n",
            repo.display()
        ),
    );
}

/// The store path `plan --json` gives part `part`.
fn planned(store: &Root, args: &[&str], part: &str) -> String {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    all.push("software.cfg");
    let out = store.ok(&all);
    let v: Value = serde_json::from_str(&out).expect("plan --json");
    v.as_array()
        .and_then(|a| a.iter().find(|d| d["part"] == part))
        .and_then(|d| d["path"].as_str())
        .unwrap_or_else(|| panic!("no part {part} in {out}"))
        .to_owned()
}

/// The store path `build --json` gives part `part`.
fn built(store: &Root, args: &[&str], part: &str) -> String {
    let mut all = vec!["build", "--json"];
    all.extend_from_slice(args);
    all.push("software.cfg");
    let out = store.ok(&all);
    let v: Value = serde_json::from_str(&out).expect("build --json");
    v["parts"][part]
        .as_str()
        .unwrap_or_else(|| panic!("no part {part} in {out}"))
        .to_owned()
}

fn lock_text(env: &TestEnv) -> String {
    std::fs::read_to_string(env.path().join("software.cfg.lock")).expect("the lock file")
}

#[test]
fn a_branch_is_locked_to_its_commit_and_built_at_it() {
    if !have("lock", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, first) = repository(&env);
    git_profile(&env, &repo, "main");
    // `plan` translates it by its repository and branch, warning (the part, file and line, and
    // what pins it), and marks it unpinned; `build` refuses it, naming the part
    let out = store.run(&["plan", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("warning")
            && out.stderr.contains("[src]")
            && out.stderr.contains("branch `main` of")
            && out
                .stderr
                .contains("is an unpinned input, planned by its repository and branch")
            && out.stderr.contains("software.cfg:7")
            && out.stderr.contains("`slapstore lock` pins it"),
        "{}",
        out.stderr
    );
    let unpinned = |stdout: &str| -> Vec<bool> {
        let v: Value = serde_json::from_str(stdout).expect("plan --json");
        let rows = v.as_array().expect("a list");
        rows.iter().map(|d| d["unpinned"] == true).collect()
    };
    assert_eq!(
        unpinned(&out.stdout),
        [true, false],
        "src unpinned, the release not"
    );
    let unlocked = planned(&store, &[], "src");
    assert_eq!(planned(&store, &["--allow-unpinned"], "src"), unlocked);
    let out = store.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error")
            && out.stderr.contains("[src]")
            && out.stderr.contains("branch `main` is an unpinned input")
            && out.stderr.contains("`slapstore lock` pins it"),
        "{}",
        out.stderr
    );
    assert!(store.entries().iter().all(|e| !e.ends_with("-src")));
    let out = store.run(&["plan", "--frozen", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);

    let out = store.run(&["lock", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.trim().ends_with("software.cfg.lock"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("locked `src` git"), "{}", out.stderr);
    let text = lock_text(&env);
    assert!(
        text.contains("version = 1")
            && text.contains("[parts.src.git]")
            && text.contains("branch = \"main\"")
            && text.contains(&format!("commit = \"{first}\"")),
        "{text}"
    );
    // locked: no warning, nothing unpinned, another derivation (the commit is its input)
    let out = store.run(&["plan", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("unpinned"), "{}", out.stderr);
    assert_eq!(unpinned(&out.stdout), [false, false]);
    let path = built(&store, &[], "src");
    assert_ne!(path, unlocked);
    assert_eq!(
        std::fs::read_to_string(Path::new(&path).join("README")).expect("README"),
        "first\n"
    );
    assert!(store
        .ok(&["log", &path])
        .contains(&format!("at commit {first}")));

    // the branch moves on: the lock keeps the build where it was, and `lock` keeps its entry
    let second = commit(&repo, "second\n");
    assert_eq!(planned(&store, &[], "src"), path);
    let out = store.run(&["lock", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(lock_text(&env), text, "an entry that applies is kept");
    assert_eq!(built(&store, &["--frozen"], "src"), path);

    // `--update` resolves it again: a new commit, a new derivation
    let out = store.run(&["lock", "--update", "software.cfg", "src"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("updated `src` git: {first} -> {second}")),
        "{}",
        out.stderr
    );
    assert!(lock_text(&env).contains(&second));
    let newer = built(&store, &["--frozen"], "src");
    assert_ne!(newer, path);
    assert_eq!(
        std::fs::read_to_string(Path::new(&newer).join("README")).expect("README"),
        "second\n"
    );
    // an unknown part is named, with those that can be updated
    let out = store.run(&["lock", "--update", "software.cfg", "nope"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("part `nope`") && out.stderr.contains("`src`"),
        "{}",
        out.stderr
    );

    // offline, from the mirror alone: the repository gone, its last commit there locks
    let third = commit(&repo, "third\n");
    std::fs::write(env.path().join("software.cfg.lock"), "version = 1\n").expect("empty lock");
    let out = store.run(&["lock", "--offline", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(lock_text(&env).contains(&second), "the mirror's commit");
    std::fs::remove_dir_all(&repo).expect("remove the repository");
    let out = store.run(&["lock", "--update", "software.cfg"]);
    assert_eq!(
        out.code, 1,
        "online, the repository is gone: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("part `src`: cannot lock branch `main`"),
        "{}",
        out.stderr
    );
    assert!(!lock_text(&env).contains(&third));
    assert_eq!(built(&store, &["--offline", "--frozen"], "src"), newer);
}

/// A server of one file whose content the test may change; its port.
fn serve(content: Arc<Mutex<Vec<u8>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let body = content.lock().expect("content").clone();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    port
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().expect("stdin").write_all(bytes)?;
            child.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

#[test]
fn a_file_without_checksum_is_locked_by_its_sha256_and_builds_offline() {
    if !have("lock", &["sha256sum"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let content = Arc::new(Mutex::new(b"version one\n".to_vec()));
    let port = serve(content.clone());
    let url = format!("http://127.0.0.1:{port}/data.txt");
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = data\n\n[data]\nrecipe = slapos.recipe.build:download\n\
             url = {url}\n"
        ),
    );
    let out = store.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("has no checksum"), "{}", out.stderr);
    let out = store.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("`{url}` is an unpinned input, planned by its URL"))
            && out.stderr.contains("software.cfg:6"),
        "{}",
        out.stderr
    );
    store.ok(&["lock", "software.cfg"]);
    let out = store.run(&["plan", "software.cfg"]);
    assert!(!out.stderr.contains("unpinned"), "{}", out.stderr);
    let one = sha256_hex(b"version one\n");
    let text = lock_text(&env);
    assert!(
        text.contains("[parts.data.sources.url]")
            && text.contains(&format!("url = \"{url}\""))
            && text.contains(&format!("sha256 = \"{one}\"")),
        "{text}"
    );
    // the lock's checksum is the input, and the file is in the cache under it: the build is
    // offline (the server changed meanwhile)
    *content.lock().expect("content") = b"version two\n".to_vec();
    let path = built(&store, &["--offline", "--frozen"], "data");
    assert_eq!(
        std::fs::read_to_string(Path::new(&path).join("data")).expect("the file"),
        "version one\n"
    );
    // an update follows the server; it is another derivation
    let out = store.run(&["lock", "--update", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let two = sha256_hex(b"version two\n");
    assert!(lock_text(&env).contains(&two));
    let newer = built(&store, &["--offline"], "data");
    assert_ne!(newer, path);
    assert_eq!(
        std::fs::read_to_string(Path::new(&newer).join("data")).expect("the file"),
        "version two\n"
    );
    // a new URL offline cannot be locked, and says why
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = data\n\n[data]\nrecipe = slapos.recipe.build:download\n\
             url = {url}?v=3\n"
        ),
    );
    let out = store.run(&["lock", "--offline", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("part `data`: cannot lock") && out.stderr.contains("offline"),
        "{}",
        out.stderr
    );
}

#[test]
fn frozen_refuses_a_lock_that_is_missing_out_of_date_or_stale() {
    if !have("lock", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, _) = repository(&env);
    git(&repo, &["branch", "dev"]);
    git_profile(&env, &repo, "main");
    let out = store.run(&["build", "--frozen", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--frozen: the profile has no lock file")
            && out.stderr.contains("software.cfg.lock"),
        "{}",
        out.stderr
    );
    let out = store.run(&["build", "--frozen", "--allow-unpinned", "software.cfg"]);
    assert_eq!(out.code, 2, "the two contradict: {}", out.stderr);
    store.ok(&["lock", "software.cfg"]);
    let locked = planned(&store, &["--frozen"], "src");

    // another branch: the entry is out of date, which names the part, the option and the fix
    git_profile(&env, &repo, "dev");
    for args in [
        &["plan", "software.cfg"][..],
        &["plan", "--frozen", "software.cfg"],
    ] {
        let out = store.run(args);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("[src]")
                && out.stderr.contains("software.cfg:7")
                && out.stderr.contains("out of date")
                && out.stderr.contains("branch `main`")
                && out.stderr.contains("slapstore lock --update src"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // with --allow-unpinned it plans, as the branch unpinned (not as the lock's commit)
    assert_ne!(planned(&store, &["--allow-unpinned"], "src"), locked);

    // a part gone: its entry is stale, reported (and with --frozen refused)
    git_profile(&env, &repo, "main");
    let lock = lock_text(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = x\n\n[x]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out\n",
    );
    let out = store.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("stale entry, `git` of part `src`"),
        "{}",
        out.stderr
    );
    let out = store.run(&["plan", "--frozen", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--frozen: the lock file"),
        "{}",
        out.stderr
    );
    let out = store.run(&["lock", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("dropped `src` git (stale)"),
        "{}",
        out.stderr
    );
    assert!(
        !lock_text(&env).contains("[parts.src"),
        "{}",
        lock_text(&env)
    );
    store.ok(&["plan", "--frozen", "software.cfg"]);

    // a lock file that does not read: its name and the line, nothing else done
    std::fs::write(
        env.path().join("software.cfg.lock"),
        lock.replace("commit", "comit"),
    )
    .expect("write");
    let out = store.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("software.cfg.lock") && out.stderr.contains("line"),
        "{}",
        out.stderr
    );
}

/// A profile with one egg part, `app` (pycodestyle), and the `[versions]` given.
fn egg_profile(env: &TestEnv, versions: &str) {
    let links = crate::common::repo_root().join("tests/fixtures/eggs");
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = app\nversions = versions\nfind-links = {}\n\n[versions]\n\
             {versions}\n\n[app]\nrecipe = zc.recipe.egg\neggs = pycodestyle\n",
            links.display()
        ),
    );
}

#[test]
fn an_egg_part_is_locked_to_its_closure_and_only_its_pins_matter() {
    if !have("lock", &["python3", "sha256sum"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let wheel = crate::common::repo_root()
        .join("tests/fixtures/eggs/pycodestyle-2.11.1-py2.py3-none-any.whl");
    let sha = sha256_hex(&std::fs::read(&wheel).expect("the wheel"));
    egg_profile(&env, "pycodestyle = 2.11.1\nsix = 1.16.0");
    // without a lock, the whole versions section is the identity: an unrelated pin counts
    let unlocked = planned(&store, &[], "app");
    egg_profile(&env, "pycodestyle = 2.11.1\nsix = 1.15.0");
    assert_ne!(planned(&store, &[], "app"), unlocked);

    // locked offline from the local find-links: the closure, by file and SHA-256
    let out = store.run(&["lock", "--offline", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = lock_text(&env);
    assert!(
        text.contains("[parts.app.eggs]")
            && text.contains("requirements = \"pycodestyle\"")
            && text.contains("[[parts.app.eggs.dists]]")
            && text.contains("name = \"pycodestyle\"")
            && text.contains("version = \"2.11.1\"")
            && text.contains("file = \"pycodestyle-2.11.1-py2.py3-none-any.whl\"")
            && text.contains(&format!("sha256 = \"{sha}\""))
            && !text.contains("six"),
        "{text}"
    );
    // with the lock, the closure is the identity: an unrelated pin changes nothing
    let locked = planned(&store, &["--frozen"], "app");
    assert_ne!(locked, unlocked);
    egg_profile(
        &env,
        "pycodestyle = 2.11.1\nsix = 1.14.0\nzope.interface = 6.0",
    );
    assert_eq!(planned(&store, &["--frozen"], "app"), locked);
    // a pin that applies makes the entry out of date, naming the part and the distribution
    egg_profile(&env, "pycodestyle = 2.11.0\nsix = 1.16.0");
    let out = store.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("[app]")
            && out
                .stderr
                .contains("`pycodestyle 2.11.1`, where `[versions]` now pins 2.11.0")
            && out.stderr.contains("slapstore lock --update app"),
        "{}",
        out.stderr
    );
    // built offline and frozen, the locked distribution installed
    egg_profile(&env, "pycodestyle = 2.11.1\nsix = 1.16.0");
    let path = built(&store, &["--offline", "--frozen"], "app");
    assert_eq!(path, locked);
    let version = Command::new(Path::new(&path).join("bin/pycodestyle"))
        .arg("--version")
        .output()
        .expect("run pycodestyle");
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "2.11.1");
}

#[test]
fn an_instance_of_a_locked_profile_is_created_and_frozen_insists_on_the_lock() {
    if !have("lock", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, first) = repository(&env);
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = src instance-profile\n\n[src]\n\
             recipe = slapos.recipe.build:gitclone\nrepository = {}\nbranch = main\n\n\
             [instance-profile]\nrecipe = slapos.recipe.template\n\
             output = ${{buildout:directory}}/instance.cfg\ninline =\n  [buildout]\n  parts =\n\
             \x20 # ${{src:location}}\n",
            repo.display()
        ),
    );
    let create = |name: &str, frozen: bool| {
        let mut args = vec!["instance", "create", name, "--software", "software.cfg"];
        if frozen {
            args.push("--frozen");
        }
        store.run(&args)
    };
    let out = create("a", false);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("branch `main` is an unpinned input"),
        "{}",
        out.stderr
    );
    let out = create("a", true);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--frozen: the profile has no lock file"),
        "{}",
        out.stderr
    );
    store.ok(&["lock", "software.cfg"]);
    let out = create("a", true);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let src = planned(&store, &["--frozen"], "src");
    assert!(store
        .ok(&["log", &src])
        .contains(&format!("at commit {first}")));
}
