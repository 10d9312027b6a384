//! The command line's conventions: completions and manual pages, per-command help, exit codes
//! and error rendering, the query commands, and every `--json` output against the schema that
//! `docs/cli.md` documents.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::{demo, repo_root, Root, TestEnv};

/// A root with the multi-instance demo: `web` upgraded once (generation 2, current) then a
/// second instance `other`; returns the root and the store paths of both `server` builds.
fn demo_root(env: &TestEnv) -> Root {
    let r = Root::new(env);
    r.ok(&[
        "instance",
        "create",
        "web",
        "--software",
        &demo("software.cfg"),
        "-p",
        "port=8081",
    ]);
    r.ok(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &demo("software-v2.cfg"),
        "-p",
        "greeting=Bonjour",
    ]);
    r
}

/// The store path of the generation `number` of `name`, and of its release.
fn generation(r: &Root, name: &str, number: i64) -> (String, String) {
    let list: Value =
        serde_json::from_str(&r.ok(&["instance", "generations", name, "--json"])).expect("json");
    let g = list
        .as_array()
        .expect("list")
        .iter()
        .find(|g| g["number"] == number)
        .expect("generation");
    (
        g["path"].as_str().expect("path").to_owned(),
        g["release"].as_str().expect("release").to_owned(),
    )
}

/// The store paths whose name ends in `-suffix`.
fn named(r: &Root, suffix: &str) -> Vec<String> {
    r.entries()
        .into_iter()
        .filter(|e| e.ends_with(&format!("-{suffix}")))
        .map(|e| r.root.join("store").join(e).to_string_lossy().into_owned())
        .collect()
}

#[test]
fn completions_and_manual_pages_come_from_the_definition() {
    let env = TestEnv::new();
    let out = env.run(&["completions", "bash"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for word in [
        "why-depends",
        "delete-generations",
        "--parameters",
        "--dry-run",
    ] {
        assert!(out.stdout.contains(word), "bash completion lacks {word}");
    }
    let zsh = env.run(&["completions", "zsh"]);
    assert!(
        zsh.stdout.starts_with("#compdef slapstore"),
        "{}",
        zsh.stdout
    );
    assert_eq!(env.run(&["completions", "tcsh"]).code, 2);

    let man = env.run(&["man"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(man.stdout.contains(".TH slapstore 1"), "{}", man.stdout);
    assert!(man.stdout.contains("why\\-alive"), "{}", man.stdout);
    let dir = env.path().join("man1");
    let out = env.run(&["man", "--dir", &dir.to_string_lossy()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page = std::fs::read_to_string(dir.join("slapstore-instance-upgrade.1")).expect("page");
    assert!(page.contains("dry\\-run"), "{page}");
}

#[test]
fn each_help_lists_the_options_that_apply() {
    let env = TestEnv::new();
    let help = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--help");
        let out = env.run(&all);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        out.stdout
    };
    let why = help(&["why-alive"]);
    assert!(
        why.contains("--json") && why.contains("Global options:"),
        "{why}"
    );
    assert!(why.contains("--root <DIR>"), "{why}");
    for absent in ["--jobs", "--substituter", "--partitions", "--keep"] {
        assert!(
            !why.contains(absent),
            "why-alive --help shows {absent}: {why}"
        );
    }
    let eval = help(&["eval"]);
    assert!(!eval.contains("--root"), "eval uses no store: {eval}");
    let create = help(&["instance", "create"]);
    for present in [
        "--jobs",
        "--substituter",
        "--partitions",
        "--parameters",
        "--json",
    ] {
        assert!(
            create.contains(present),
            "instance create --help lacks {present}"
        );
    }
    // every argument has its line of help
    let upgrade = help(&["instance", "upgrade"]);
    assert!(
        upgrade.contains("--dry-run\n          Say what would change"),
        "{upgrade}"
    );
    // global options stay accepted where their help is hidden
    let r = Root::new(&env);
    r.ok(&["store", "register"]);
    assert_eq!(r.run(&["-j", "2", "instance", "list"]).code, 0);
    assert_eq!(r.run(&["instance", "list", "-j", "2"]).code, 0);
    // a command that prints data takes --json
    for cmd in [
        &["plan"][..],
        &["build"],
        &["path-info"],
        &["verify"],
        &["gc"],
        &["why-alive"],
        &["optimise"],
        &["why-depends"],
        &["referrers"],
        &["roots"],
        &["key", "show"],
        &["instance", "list"],
        &["instance", "show"],
        &["instance", "generations"],
        &["instance", "diff"],
        &["cache", "push"],
        &["cache", "pull"],
    ] {
        assert!(help(cmd).contains("--json"), "{cmd:?} --help lacks --json");
    }
}

#[test]
fn errors_say_what_kind_and_colour_on_request() {
    let env = TestEnv::new();
    let r = demo_root(&env);
    let missing = r
        .root
        .join("store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nothing")
        .to_string_lossy()
        .into_owned();
    // not found: 3; bad input: 2
    let out = r.run(&["path-info", &missing]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert_eq!(r.run(&["path-info", "/elsewhere/x"]).code, 2);
    assert_eq!(r.run(&["path-info", "not-a-path"]).code, 2);
    let out = r.run(&["instance", "show", "nope"]);
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("hint: `slapstore instance list`"),
        "{}",
        out.stderr
    );
    assert_eq!(r.run(&["instance", "diff", "web", "7"]).code, 3);
    assert_eq!(r.run(&["unpin", "nothing"]).code, 3);
    assert_eq!(r.run(&["log", "no-such-part"]).code, 3);
    let out = r.run(&["key", "show"]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("key generate"), "{}", out.stderr);
    assert_eq!(r.run(&["instance", "list", "--bogus"]).code, 2);
    let usage = r.run(&["--color", "always", "instance", "list", "--bogus"]);
    assert_eq!(usage.code, 2);
    assert!(
        usage.stderr.contains("\x1b["),
        "clap's errors follow --color: {:?}",
        usage.stderr
    );
    let usage = r.run(&["--color=never", "instance", "list", "--bogus"]);
    assert!(!usage.stderr.contains('\x1b'), "{:?}", usage.stderr);

    // colour: never when piped, always on request, never with NO_COLOR under auto
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);
    let coloured = r.run(&["--color", "always", "path-info", &missing]);
    assert!(coloured.stderr.contains("\x1b["), "{:?}", coloured.stderr);
    assert_eq!(coloured.code, 3);
    let plain = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(["--root", &r.root.to_string_lossy(), "path-info", &missing])
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    assert!(!String::from_utf8_lossy(&plain.stderr).contains('\x1b'));
    // profile errors go through the same renderer
    env.write(
        "bad.cfg",
        "[buildout]\nparts = x\n[x]\nrecipe = y\nz = ${nowhere:k}\n",
    );
    let out = r.run(&["--color", "always", "eval", "bad.cfg"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("\x1b[") && out.stderr.contains("bad.cfg:5"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_permission_error_hints_at_the_root() {
    let env = TestEnv::new();
    // as an unprivileged user on a root owned by another, when setpriv can switch users
    let Ok(probe) = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status()
    else {
        eprintln!("skipped: no setpriv");
        return;
    };
    if !probe.success() {
        eprintln!("skipped: setpriv cannot switch users here");
        return;
    }
    let root = env.path().join("root");
    // a root made by its owner, read by another user
    let made = crate::common::run_root(&root, env.path(), &["store", "register"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_slapstore"))
        .args(["--root", &root.to_string_lossy(), "instance", "list"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--root DIR") && stderr.contains("SLAPSTORE_ROOT"),
        "{stderr}"
    );
}

#[test]
fn queries_nix_users_reach_for() {
    let env = TestEnv::new();
    let r = demo_root(&env);
    let (gen2, release2) = generation(&r, "web", 2);
    let (gen1, _) = generation(&r, "web", 1);
    let servers = named(&r, "server");
    assert_eq!(servers.len(), 2);
    let server2 = servers
        .iter()
        .find(|s| {
            std::fs::read_to_string(format!("{s}/bin/server"))
                .expect("server")
                .contains("2.0")
        })
        .expect("server 2.0")
        .clone();

    // path-info --tree: each path once, then [...]
    let tree = r.ok(&["path-info", "--tree", &gen2]);
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines[0], gen2);
    assert!(tree.contains(&format!("───{release2}\n")), "{tree}");
    assert!(tree.contains(&format!("───{server2}")), "{tree}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with("-instance-profile"))
            .count(),
        1,
        "{tree}"
    );

    // why-depends: the chain, or that there is none
    let chain = r.ok(&["why-depends", &gen2, &server2]);
    assert_eq!(chain, format!("{gen2}\n└───{server2}\n"));
    let none = r.ok(&["why-depends", &server2, &gen2]);
    assert!(none.contains("does not depend on"), "{none}");
    let profile = named(&r, "instance-profile")
        .into_iter()
        .find(|p| r.ok(&["why-depends", &release2, p]).lines().count() == 2)
        .expect("the release refers to its instance profile");
    let json: Value =
        serde_json::from_str(&r.ok(&["why-depends", "--json", &profile, &server2])).expect("json");
    assert_eq!(json["chain"], serde_json::json!([profile, server2]));

    // referrers: direct, or all that reach it
    let direct = r.ok(&["referrers", &server2]);
    assert!(
        direct.contains(&gen2) && direct.contains(&release2),
        "{direct}"
    );
    assert!(!direct.contains(&gen1), "{direct}");
    let all = r.ok(&["referrers", "--closure", &profile]);
    assert!(all.contains(&release2) && all.contains(&gen2), "{all}");

    // roots: every generation, as gc sees them
    let roots = r.ok(&["roots"]);
    assert!(roots.starts_with("root"), "{roots}");
    assert!(
        roots.contains("generation 1 of instance `web`") && roots.contains(&gen1),
        "{roots}"
    );
    assert!(
        roots.contains("generation 2 of instance `web`") && roots.contains(&gen2),
        "{roots}"
    );
    r.ok(&["instance", "delete-generations", "web", "1"]);
    assert!(!r.ok(&["roots"]).contains(&gen1));

    // graph: DOT of a profile's derivations (nothing built) and of a closure
    let dot = r.ok(&["graph", &demo("software-v2.cfg")]);
    assert!(dot.starts_with("digraph slapstore {"), "{dot}");
    let base = |p: &str| p.rsplit('/').next().expect("base").to_owned();
    assert!(
        dot.contains(&format!(
            "\"{}\" -> \"{}\";",
            base(&release2),
            base(&server2)
        )),
        "{dot}"
    );
    assert!(dot.contains("[label = \"server\"]"), "{dot}");
    let dot = r.ok(&["graph", &gen2]);
    assert!(
        dot.contains(&format!("\"{}\" -> \"{}\";", base(&gen2), base(&server2))),
        "{dot}"
    );
    assert_eq!(dot.matches("[label = ").count(), 4, "{dot}");
    let before = r.entries();
    env.write(
        "p/software.cfg",
        "[buildout]\nparts = x\n[x]\nrecipe = plone.recipe.command\ncommand = true\n",
    );
    let dot = r.ok(&["graph", "p/software.cfg"]);
    assert!(dot.contains("[label = \"x\"]"), "{dot}");
    assert_eq!(r.entries(), before, "graph builds nothing");
}

#[test]
fn instance_diff_upgrade_dry_run_and_parameter_files() {
    let env = TestEnv::new();
    let r = demo_root(&env);
    let diff = r.ok(&["instance", "diff", "web", "1", "2"]);
    assert!(
        diff.starts_with("web generation 1 → 2: 4 parts differ"),
        "{diff}"
    );
    assert!(
        diff.contains("server") && diff.contains("changed"),
        "{diff}"
    );
    assert!(
        diff.contains("parameter greeting: (unset) → `Bonjour`"),
        "{diff}"
    );
    let same: Value =
        serde_json::from_str(&r.ok(&["instance", "diff", "web", "2", "--json"])).expect("json");
    assert_eq!(
        same["parts"],
        serde_json::json!([]),
        "2 against the current one, 2"
    );

    // dry run: says what would change, changes nothing
    let v1 = demo("software.cfg");
    let before = (
        r.entries(),
        r.ok(&["instance", "generations", "web", "--json"]),
    );
    let link = std::fs::read_link(r.partition("web").join("current")).expect("current");
    let out = r.run(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &v1,
        "-p",
        "greeting=Hi",
        "--dry-run",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("would upgrade web from generation 2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("parameter   greeting: `Bonjour` -> `Hi`"),
        "{}",
        out.stdout
    );
    assert_eq!(
        (
            r.entries(),
            r.ok(&["instance", "generations", "web", "--json"])
        ),
        before,
        "nothing built, nothing recorded"
    );
    assert_eq!(
        std::fs::read_link(r.partition("web").join("current")).expect("current"),
        link
    );
    // a change of software that is not built yet lists what it would build
    let v3 = env.write(
        "v3/software.cfg",
        &std::fs::read_to_string(demo("software-v2.cfg"))
            .expect("v2")
            .replace("version = 2.0", "version = 3.0")
            .replace("extends = software.cfg", &format!("extends = {v1}")),
    );
    let out = r.ok(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &v3.to_string_lossy(),
        "--dry-run",
        "--json",
    ]);
    let plan: Value = serde_json::from_str(&out).expect("json");
    assert!(
        plan["to_build"]
            .as_array()
            .expect("list")
            .iter()
            .any(|p| p == "server"),
        "{out}"
    );
    assert_eq!(plan["unchanged"], false);
    assert_eq!(r.entries(), before.0);
    let out = r.ok(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &demo("software-v2.cfg"),
        "--dry-run",
    ]);
    assert!(out.contains("would change nothing"), "{out}");
    let (_, release2) = generation(&r, "web", 2);
    let out = r.ok(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &release2,
        "--dry-run",
    ]);
    assert!(
        out.contains("would change nothing"),
        "a release path too: {out}"
    );

    // --parameters FILE, under -p
    env.write(
        "params.json",
        "{\"port\": 9090, \"greeting\": \"Salut\", \"debug\": true}",
    );
    r.ok(&[
        "instance",
        "create",
        "p1",
        "--software",
        &v1,
        "--parameters",
        "params.json",
        "-p",
        "greeting=Hej",
    ]);
    let show: Value =
        serde_json::from_str(&r.ok(&["instance", "show", "p1", "--json"])).expect("json");
    assert_eq!(
        show["current"]["parameters"],
        serde_json::json!({"port": "9090", "greeting": "Hej", "debug": "true"})
    );
    assert!(r.serve("p1").starts_with("p1: Hej on port 9090"));
    // bad files name the file (and the line), and change nothing
    env.write("bad.json", "{\n  \"port\": 1,\n  oops\n}");
    env.write("list.json", "[1, 2]");
    env.write("bad.xml", "<instance>\n<parameter id=\"a\">1</instance>\n");
    let entries = r.entries();
    for (file, says) in [
        ("bad.json", "`bad.json`:3:"),
        ("list.json", "expected an object"),
        ("bad.xml", "`bad.xml`:2:"),
        ("missing.json", "cannot read `missing.json`"),
    ] {
        let out = r.run(&[
            "instance",
            "create",
            "p2",
            "--software",
            &v1,
            "--parameters",
            file,
        ]);
        assert_eq!(out.code, 2, "{file}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{file}: {}", out.stderr);
    }
    assert_eq!(r.entries(), entries);
    assert_eq!(r.run(&["instance", "show", "p2"]).code, 3);
}

#[test]
fn why_alive_takes_several_paths_and_key_show_prints_the_public_key() {
    let env = TestEnv::new();
    let r = demo_root(&env);
    let servers = named(&r, "server");
    let mut args = vec!["why-alive"];
    args.extend(servers.iter().map(String::as_str));
    let out = r.ok(&args);
    assert_eq!(out.matches(" is alive: generation ").count(), 2, "{out}");
    args.push("--json");
    let list: Value = serde_json::from_str(&r.ok(&args)).expect("json");
    assert_eq!(list.as_array().expect("list").len(), 2);
    r.ok(&["instance", "destroy", "web"]);
    // the releases stay installed, and keep their parts, until removed
    let list: Value = serde_json::from_str(&r.ok(&args)).expect("json");
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .all(|p| p["alive"] == true && p["root"].as_str().is_some_and(|r| r.contains("software"))));
    for profile in ["software.cfg", "software-v2.cfg"] {
        r.ok(&["software", "remove", &demo(profile)]);
    }
    let list: Value = serde_json::from_str(&r.ok(&args)).expect("json");
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .all(|p| p["alive"] == false && p["root"].is_null()));

    let public = r.ok(&["key", "generate", "--name", "node-a"]);
    assert_eq!(r.ok(&["key", "show"]), public);
    let shown: Value = serde_json::from_str(&r.ok(&["key", "show", "--json"])).expect("json");
    assert_eq!(shown["public_key"], public.trim());
    assert_eq!(shown["name"], "node-a");
}

/// The documented example of each `<!-- schema: NAME -->` in `docs/cli.md`.
fn documented_schemas() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(repo_root().join("docs/cli.md")).expect("docs/cli.md");
    let mut out = BTreeMap::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("<!-- schema: ") {
        rest = &rest[at + "<!-- schema: ".len()..];
        let (name, after) = rest.split_once(" -->").expect("end of marker");
        let body = after
            .split_once("```json\n")
            .and_then(|(_, b)| b.split_once("```"))
            .map(|(b, _)| b)
            .expect("a json block after the marker");
        let value: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("schema `{name}` in docs/cli.md is not JSON: {e}"));
        out.insert(name.to_owned(), value);
        rest = after;
    }
    out
}

/// Checks `actual` against a documented example: the same keys (`<...>`: any key; `key?`:
/// optional), recursively; `null`, `{}` and `[]` in the example accept anything of their kind.
fn check(doc: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (doc, actual) {
        (Value::Null, _) | (_, Value::Null) => Ok(()),
        (Value::Object(d), Value::Object(a)) => {
            if d.is_empty() {
                return Ok(());
            }
            if let Some((key, value)) = d.iter().find(|(k, _)| k.starts_with('<')) {
                let _ = key;
                return a
                    .iter()
                    .try_for_each(|(k, v)| check(value, v, &format!("{at}.{k}")));
            }
            for (k, v) in d {
                let (name, optional) = match k.strip_suffix('?') {
                    Some(n) => (n, true),
                    None => (k.as_str(), false),
                };
                match a.get(name) {
                    Some(actual) => check(v, actual, &format!("{at}.{name}"))?,
                    None if optional => {}
                    None => return Err(format!("{at}: key `{name}` is missing")),
                }
            }
            for k in a.keys() {
                if !d.contains_key(k) && !d.contains_key(&format!("{k}?")) {
                    return Err(format!("{at}: key `{k}` is not documented"));
                }
            }
            Ok(())
        }
        (Value::Array(d), Value::Array(a)) => match d.first() {
            None => Ok(()),
            Some(first) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| check(first, v, &format!("{at}[{i}]"))),
        },
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => Ok(()),
        _ => Err(format!("{at}: documented as {doc}, got {actual}")),
    }
}

#[test]
fn every_documented_json_output_has_its_documented_keys() {
    let env = TestEnv::new();
    let r = demo_root(&env);
    let (gen2, _) = generation(&r, "web", 2);
    let server = named(&r, "server").remove(0);
    let v1 = demo("software.cfg");
    let v2 = demo("software-v2.cfg");
    let cache = env.path().join("cache").to_string_lossy().into_owned();
    r.ok(&["key", "generate", "--name", "t"]);
    let public = r.ok(&["key", "show"]).trim().to_owned();
    let json = |args: &[&str]| -> Value {
        let out = r.run(args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.stdout))
    };
    let profile = env
        .write(
            "e/buildout.cfg",
            "[buildout]\nparts = a\n[a]\nrecipe = x\nk = v\n",
        )
        .to_string_lossy()
        .into_owned();
    // an instance with a service, never started: its status needs no supervisord
    let services = env
        .write(
            "svc/software.cfg",
            "[buildout]\nparts = i\n[i]\nrecipe = slapos.recipe.template\n\
             output = ${buildout:directory}/instance.cfg\ninline =\n  [buildout]\n  parts = s p\n\
             \x20 [s]\n  recipe = slapos.cookbook:wrapper\n  command-line = sleep 1\n\
             \x20 wrapper-path = $${buildout:directory}/etc/service/s\n\
             \x20 [p]\n  recipe = slapos.cookbook:wrapper\n  command-line = true\n\
             \x20 wrapper-path = $${buildout:directory}/etc/promise/p\n",
        )
        .to_string_lossy()
        .into_owned();
    r.ok(&["instance", "create", "svc", "--software", &services]);
    let status = json(&["instance", "status", "svc", "--json"]);
    assert_eq!(
        status["services"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    assert_eq!(status["promises"][0]["state"], "ok", "{status}");
    let mut runs: Vec<(&str, Vec<Value>)> = vec![
        ("instance status", vec![status]),
        ("eval", vec![json(&["eval", "--json", &profile])]),
        ("plan", vec![json(&["plan", "--json", &v1])]),
        ("build", vec![json(&["build", "--json", &v1])]),
        (
            "path-info",
            vec![
                json(&["path-info", "--json", &gen2]),
                json(&["path-info", "--json", "--closure", &gen2]),
            ],
        ),
        ("verify", vec![json(&["verify", "--json"])]),
        (
            "instance generations",
            vec![json(&["instance", "generations", "web", "--json"])],
        ),
        (
            "instance create",
            vec![json(&[
                "instance",
                "create",
                "x",
                "y",
                "--software",
                &v1,
                "--json",
            ])],
        ),
        (
            "instance create --dry-run",
            vec![json(&[
                "instance",
                "create",
                "z",
                "--dry-run",
                "--software",
                &v2,
                "--json",
            ])],
        ),
        (
            "instance upgrade --dry-run",
            vec![
                json(&[
                    "instance",
                    "upgrade",
                    "x",
                    "--software",
                    &v2,
                    "--dry-run",
                    "--json",
                ]),
                json(&[
                    "instance",
                    "upgrade",
                    "x",
                    "--software",
                    &v1,
                    "--dry-run",
                    "--json",
                ]),
            ],
        ),
        (
            "instance upgrade",
            vec![json(&[
                "instance",
                "upgrade",
                "x",
                "--software",
                &v2,
                "-p",
                "a=b",
                "--json",
            ])],
        ),
        (
            "instance rollback",
            vec![json(&["instance", "rollback", "x", "--json"])],
        ),
        ("instance list", vec![json(&["instance", "list", "--json"])]),
        (
            "instance show",
            vec![json(&["instance", "show", "web", "--json"])],
        ),
        (
            "instance diff",
            vec![json(&["instance", "diff", "web", "1", "--json"])],
        ),
        (
            "why-alive",
            vec![json(&["why-alive", "--json", &server, &gen2])],
        ),
        (
            "why-depends",
            vec![json(&["why-depends", "--json", &gen2, &server])],
        ),
        ("referrers", vec![json(&["referrers", "--json", &server])]),
        ("roots", vec![json(&["roots", "--json"])]),
        ("key show", vec![json(&["key", "show", "--json"])]),
        (
            "cache push",
            vec![json(&["cache", "push", &cache, &gen2, "--json"])],
        ),
        ("optimise", vec![json(&["optimise", "--json"])]),
        ("gc", vec![json(&["gc", "--dry-run", "--json"])]),
        ("software list", vec![json(&["software", "list", "--json"])]),
    ];
    // pulling what is here already: `present`
    let pull = json(&[
        "--trusted-key",
        &public,
        "cache",
        "pull",
        "--from",
        &cache,
        "--json",
        &server,
    ]);
    runs.push(("cache pull", vec![pull]));
    // requested stopped, its service is not started by the reconciliation (no supervisord)
    r.ok(&["instance", "stop", "svc"]);
    runs.push((
        "instance reconcile",
        vec![json(&["instance", "reconcile", "--json"])],
    ));
    let schemas = documented_schemas();
    let ran: std::collections::BTreeSet<&str> = runs.iter().map(|(n, _)| *n).collect();
    let documented: std::collections::BTreeSet<&str> = schemas.keys().map(String::as_str).collect();
    assert_eq!(
        ran, documented,
        "every documented schema is checked, every output documented"
    );
    for (name, outputs) in &runs {
        for actual in outputs {
            if let Err(e) = check(&schemas[*name], actual, name) {
                panic!("`{name} --json` does not match docs/cli.md: {e}\n{actual:#}");
            }
        }
    }
    // the checker itself can fail
    let doc = serde_json::json!({"a": 1, "b?": [{"c": true}], "m": {"<k>": "v"}});
    assert!(check(&doc, &serde_json::json!({"a": 2, "m": {"x": "y"}}), "t").is_ok());
    assert!(
        check(&doc, &serde_json::json!({"m": {}}), "t").is_err(),
        "missing a"
    );
    assert!(
        check(&doc, &serde_json::json!({"a": 1, "m": {}, "z": 0}), "t").is_err(),
        "extra z"
    );
    assert!(check(
        &doc,
        &serde_json::json!({"a": 1, "m": {}, "b": [{"d": 1}]}),
        "t"
    )
    .is_err());
    assert!(
        check(&doc, &serde_json::json!({"a": "1", "m": {}}), "t").is_err(),
        "type"
    );
}

/// The README's tour of instances and reclaiming disk, in its order, with its claims.
#[test]
fn the_readme_tour_does_what_it_says() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    let out = r.run(&[
        "instance",
        "create",
        "web-1",
        "web-2",
        "--software",
        &v1,
        "-p",
        "port=8081",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("building server (shell)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.starts_with("created web-1 (generation 1) in "),
        "{}",
        out.stdout
    );
    r.ok(&[
        "instance",
        "upgrade",
        "web-1",
        "--software",
        &demo("software-v2.cfg"),
        "-p",
        "greeting=Bonjour",
    ]);
    r.ok(&["instance", "rollback", "web-1"]);

    // generations: one aligned column per field, under its header
    let table = r.ok(&["instance", "generations", "web-1"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let column = |line: &str, what: &str| line.find(what).expect("column");
    let release = column(lines[0], "release");
    let parent = column(lines[0], "parent");
    for line in &lines[1..] {
        assert_eq!(column(line, "/"), release, "{table}");
        assert!(line[parent..].starts_with(['-', '1']), "{table}");
    }
    assert!(lines[1].trim_start().starts_with("1  *"), "{table}");
    let list = r.ok(&["instance", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    let partition = column(lines[0], "partition");
    assert!(
        lines[1..].iter().all(|l| l[partition..].starts_with('/')),
        "{list}"
    );

    // why-alive with a glob that matches both servers
    let servers = named(&r, "server");
    let mut args = vec!["why-alive"];
    args.extend(servers.iter().map(String::as_str));
    assert_eq!(r.ok(&args).matches(" is alive: ").count(), 2);

    // after the rollback, --keep 1 keeps the newest (2) and the current (1): nothing goes
    let out = r.ok(&["instance", "delete-generations", "web-1", "--keep", "1"]);
    assert!(out.starts_with("deleted 0 generations of web-1"), "{out}");
    assert!(
        out.contains("keeps the N newest and the current one"),
        "{out}"
    );
    let (gen2, _) = generation(&r, "web-1", 2);
    assert!(r.ok(&["roots"]).contains(&gen2));
    let out = r.ok(&["instance", "delete-generations", "web-1", "2"]);
    assert_eq!(out, "deleted 1 generation of web-1\n");
    assert!(
        !r.ok(&["roots"]).contains(&gen2),
        "generation 2 is no root any more"
    );
    let gc: Value = serde_json::from_str(&r.ok(&["gc", "--json"])).expect("json");
    assert!(
        gc["deleted"]
            .as_array()
            .expect("list")
            .iter()
            .any(|p| *p == *gen2),
        "gc reclaims generation 2: {gc}"
    );
}

#[test]
fn a_source_missing_offline_hints_at_add_source() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = x\n[x]\nrecipe = slapos.recipe.cmmi\n\
         url = https://example.invalid/x-1.0.tar.gz\nmd5sum = 0123456789abcdef0123456789abcdef\n",
    );
    let out = r.run(&["build", "--offline", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("offline"), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "hint: put the file into the download cache with `slapstore add-source FILE`"
        ),
        "{}",
        out.stderr
    );
}
