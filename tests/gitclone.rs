//! `slapos.recipe.build:gitclone` end to end, without the internet: a repository made in the
//! test's directory, planned and built at a revision, rebuilt offline from the download cache's
//! mirror once the repository is gone; unpinned branches refused by `build`, then accepted with
//! `--allow-unpinned`; a wrong revision fails and registers nothing.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{git, have, Root, TestEnv};

/// A repository `repo` with two commits on `main`; the commits' hashes, oldest first.
fn repository(env: &TestEnv) -> (String, String, String) {
    let repo = env.path().join("repo");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.join("README"), "first\n").expect("write");
    std::fs::write(repo.join("src/a.txt"), "a\n").expect("write");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "one"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("README"), "second\n").expect("write");
    git(&repo, &["commit", "--quiet", "-am", "two"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    (repo.display().to_string(), first, second)
}

fn profile(env: &TestEnv, repository: &str, pin: &str) {
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = src\n\n[src]\nrecipe = slapos.recipe.build:gitclone\n\
             repository = {repository}\n{pin}\n"
        ),
    );
}

/// The store path of part `src` that `build --json` printed.
fn built_path(store: &Root, args: &[&str]) -> String {
    let mut all = vec!["build", "--json"];
    all.extend_from_slice(args);
    all.push("software.cfg");
    let out = store.ok(&all);
    let v: Value = serde_json::from_str(&out).expect("build --json");
    v["parts"]["src"]
        .as_str()
        .or_else(|| {
            v["parts"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["part"] == "src"))
                .and_then(|p| p["path"].as_str())
        })
        .unwrap_or_else(|| panic!("no part src in {out}"))
        .to_owned()
}

#[test]
fn a_revision_builds_and_rebuilds_offline_from_the_mirror() {
    if !have("gitclone", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, first, _second) = repository(&env);
    profile(
        &env,
        &format!("file://{repo}"),
        &format!("revision = {first}"),
    );
    let out = store.ok(&["plan", "software.cfg"]);
    assert!(out.contains("-src"), "{out}");
    let path = built_path(&store, &[]);
    let out_dir = Path::new(&path);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("README")).expect("README"),
        "first\n"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("src/a.txt")).expect("a.txt"),
        "a\n"
    );
    assert!(!out_dir.join(".git").exists(), "the output keeps no .git");
    let mirrors: Vec<_> = std::fs::read_dir(store.root.join("var/cache/git"))
        .expect("mirrors")
        .collect();
    assert_eq!(mirrors.len(), 1);
    let log = store.ok(&["log", &path]);
    assert!(log.contains(&format!("at commit {first}")), "{log}");

    // the repository gone, a new store root with only the download cache's mirrors: served
    // offline from the mirror, as the same derivation
    std::fs::remove_dir_all(&repo).expect("remove the repository");
    let other = Root {
        dir: env.path().to_owned(),
        root: env.path().join("other"),
    };
    std::fs::create_dir_all(other.root.join("var/cache")).expect("mkdir");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(store.root.join("var/cache/git"))
        .arg(other.root.join("var/cache/git"))
        .status()
        .expect("cp");
    assert!(copied.success());
    let again = built_path(&other, &["--offline"]);
    assert_eq!(
        Path::new(&again).file_name(),
        out_dir.file_name(),
        "same derivation"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&again).join("README")).expect("README"),
        "first\n"
    );
}

#[test]
fn offline_without_a_mirror_is_a_clear_error() {
    if !have("gitclone", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, first, _) = repository(&env);
    profile(&env, &repo, &format!("revision = {first}"));
    let out = store.run(&["build", "--offline", "software.cfg"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("no mirror in the download cache") && out.stderr.contains("offline"),
        "{}",
        out.stderr
    );
    assert!(store.entries().iter().all(|e| !e.ends_with("-src")));
}

#[test]
fn a_branch_is_refused_unless_unpinned_inputs_are_allowed() {
    if !have("gitclone", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, _, second) = repository(&env);
    profile(&env, &repo, "branch = main");
    let out = store.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("[src]")
            && out.stderr.contains("branch `main` is an unpinned input")
            && out.stderr.contains("software.cfg:7"),
        "{}",
        out.stderr
    );
    assert!(store.entries().iter().all(|e| !e.ends_with("-src")));
    let path = built_path(&store, &["--allow-unpinned"]);
    assert_eq!(
        std::fs::read_to_string(Path::new(&path).join("README")).expect("README"),
        "second\n"
    );
    let log = store.ok(&["log", &path]);
    assert!(log.contains(&format!("at commit {second}")), "{log}");
    // another branch is another derivation
    profile(&env, &repo, "branch = other");
    let plan = store.ok(&["plan", "--allow-unpinned", "software.cfg"]);
    assert!(!plan.contains(&path), "{plan}");
}

#[test]
fn a_wrong_revision_fails_and_registers_nothing() {
    if !have("gitclone", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, _, _) = repository(&env);
    profile(
        &env,
        &repo,
        &format!("revision = {}", "0123456789".repeat(4)),
    );
    let out = store.run(&["build", "software.cfg"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("is not a commit of") && out.stderr.contains("revision"),
        "{}",
        out.stderr
    );
    assert!(store.entries().iter().all(|e| !e.ends_with("-src")));
    let plan: Value =
        serde_json::from_str(&store.ok(&["plan", "--json", "software.cfg"])).expect("json");
    let path = plan[0]["path"].as_str().expect("path");
    assert_ne!(store.run(&["path-info", path]).code, 0, "not registered");
    profile(&env, &repo, "revision = --upload-pack=touch");
    let out = store.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("cannot start with `-`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_checkout_named_otherwise_in_the_parts_directory_is_the_store_path() {
    if !have("gitclone", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, first, _) = repository(&env);
    let text = format!(
        "[buildout]\nparts = user\n\n[src]\nrecipe = slapos.recipe.build:gitclone\n\
         repository = {repo}\nrevision = {first}\nlocation = ${{buildout:parts-directory}}/checkout\n\n\
         [user]\nrecipe = plone.recipe.command\ncommand = cat ${{src:location}}/README > $out/copy\n"
    );
    env.write("software.cfg", &text);
    let path = {
        let out = store.ok(&["build", "--json", "software.cfg"]);
        let v: Value = serde_json::from_str(&out).expect("json");
        v["parts"]["user"].as_str().expect("user").to_owned()
    };
    assert_eq!(
        std::fs::read_to_string(Path::new(&path).join("copy")).expect("copy"),
        "first\n"
    );
    assert!(!env.path().join("parts/checkout").exists());
    // a relative location: refused, naming the line
    env.write(
        "software.cfg",
        &text.replace("${buildout:parts-directory}/checkout", "checkout"),
    );
    let out = store.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("not `checkout`") && out.stderr.contains("software.cfg:8"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_checkout_into_a_go_workspace_is_a_store_path_of_its_own() {
    if !have("gitclone", &["git"]) {
        return;
    }
    // component/golang's shape: `[gowork.dir]` names the workspace, `go-git-package` checks out
    // into `${gowork.dir:src}/${:go.importpath}`, and `${mod:location}` is used by others
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, first, _) = repository(&env);
    let text = format!(
        "[buildout]\nparts = user\n\n\
         [gowork.dir]\ndirectory = ${{buildout:directory}}/go.work\nsrc = ${{:directory}}/src\n\
         recipe = plone.recipe.command\ncommand = mkdir -p $out\n\n\
         [go-git-package]\nrecipe = slapos.recipe.build:gitclone\n\
         location = ${{gowork.dir:src}}/${{:go.importpath}}\n\n\
         [mod]\n<= go-git-package\ngo.importpath = example.com/mod\n\
         repository = {repo}\nrevision = {first}\n\n\
         [user]\nrecipe = plone.recipe.command\ncommand = cat ${{mod:location}}/src/a.txt > $out/copy\n"
    );
    env.write("software.cfg", &text);
    let out = store.ok(&["plan", "--json", "software.cfg"]);
    let plan: Value = serde_json::from_str(&out).expect("json");
    let rows = plan.as_array().expect("list");
    let row = |part: &str| {
        rows.iter()
            .find(|d| d["part"] == part)
            .unwrap_or_else(|| panic!("no {part} in {out}"))
    };
    assert_eq!(row("mod")["recipe"], "gitclone");
    assert_eq!(row("user")["deps"], serde_json::json!(["mod"]));
    let out = store.ok(&["build", "--json", "software.cfg"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    let module = v["parts"]["mod"].as_str().expect("mod");
    let user = v["parts"]["user"].as_str().expect("user");
    assert_eq!(module, row("mod")["path"].as_str().expect("path"));
    assert_eq!(
        std::fs::read_to_string(Path::new(module).join("README")).expect("README"),
        "first\n"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(user).join("copy")).expect("copy"),
        "a\n"
    );
    assert!(
        !env.path().join("go.work").exists(),
        "nothing outside the store"
    );
}

#[test]
fn sparse_checkout_and_submodules() {
    if !have("gitclone", &["git"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let (repo, first, _) = repository(&env);
    profile(
        &env,
        &repo,
        &format!("revision = {first}\nsparse-checkout = src/"),
    );
    let path = built_path(&store, &[]);
    assert!(Path::new(&path).join("src/a.txt").exists());
    assert!(
        !Path::new(&path).join("README").exists(),
        "outside the patterns"
    );

    // a repository with a submodule: refused unless its submodules are ignored
    let outer = env.path().join("outer");
    std::fs::create_dir_all(&outer).expect("mkdir");
    git(&outer, &["init", "--quiet", "--initial-branch=main"]);
    git(
        &outer,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "--quiet",
            &repo,
            "inner",
        ],
    );
    git(&outer, &["commit", "--quiet", "-m", "with a submodule"]);
    let head = git(&outer, &["rev-parse", "HEAD"]);
    let outer = outer.display().to_string();
    profile(&env, &outer, &format!("revision = {head}"));
    let out = store.run(&["build", "software.cfg"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("ignore-cloning-submodules") && out.stderr.contains("submodules"),
        "{}",
        out.stderr
    );
    profile(
        &env,
        &outer,
        &format!("revision = {head}\nignore-cloning-submodules = true"),
    );
    let path = built_path(&store, &[]);
    assert!(Path::new(&path).join(".gitmodules").exists());
}
