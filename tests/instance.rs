//! End-to-end tests of `slapstore instance ...` through the real binary: partitions over shared
//! binaries, generations, upgrades and rollbacks, and refusals that change nothing.

use std::path::Path;

use serde_json::Value;

use crate::common::{demo, Root, TestEnv};

fn generations(r: &Root, name: &str) -> Vec<Value> {
    let text = r.ok(&["instance", "generations", "--json", name]);
    serde_json::from_str::<Value>(&text)
        .expect("json")
        .as_array()
        .expect("list")
        .clone()
}

fn current(r: &Root, name: &str) -> i64 {
    let gens = generations(r, name);
    gens.iter()
        .find(|g| g["current"] == true)
        .expect("a current generation")["number"]
        .as_i64()
        .expect("number")
}

#[test]
fn instances_share_binaries_upgrade_and_roll_back_with_their_data() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    let v2 = demo("software-v2.cfg");
    r.ok(&[
        "instance",
        "create",
        "web-1",
        "--software",
        &v1,
        "-p",
        "port=8081",
    ]);
    r.ok(&[
        "instance",
        "create",
        "web-2",
        "--software",
        &v1,
        "-p",
        "port=8082",
        "-p",
        "greeting=Hi",
    ]);
    assert_eq!(
        r.serve("web-1"),
        "web-1: Hello on port 8081 (server 1.0), visit 1\n"
    );
    assert_eq!(
        r.serve("web-2"),
        "web-2: Hi on port 8082 (server 1.0), visit 1\n"
    );
    // the server exists once in the store, and both instances' wrappers run that copy
    let servers: Vec<_> = std::fs::read_dir(r.root.join("store"))
        .expect("store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-server"))
        .collect();
    assert_eq!(servers.len(), 1, "{servers:?}");
    for name in ["web-1", "web-2"] {
        let wrapper = std::fs::read_to_string(r.partition(name).join("bin/run")).expect("wrapper");
        assert!(wrapper.contains(&servers[0]), "{wrapper}");
    }
    // the release passed as a store path works too
    let gens = generations(&r, "web-1");
    let release = gens[0]["release"].as_str().expect("release").to_owned();
    r.ok(&["instance", "create", "web-3", "--software", &release]);
    assert_eq!(
        r.serve("web-3"),
        "web-3: Hello on port 8080 (server 1.0), visit 1\n"
    );

    // upgrade: new software, old parameters (port) plus the new one, data kept
    r.ok(&[
        "instance",
        "upgrade",
        "web-1",
        "--software",
        &v2,
        "-p",
        "greeting=Bonjour",
    ]);
    assert_eq!(
        r.serve("web-1"),
        "web-1: Bonjour on port 8081 (server 2.0), visit 2\n"
    );
    let gens = generations(&r, "web-1");
    assert_eq!(gens.len(), 2);
    assert_eq!(gens[1]["current"], true);
    assert_eq!(gens[1]["parent"], 1);
    assert_eq!(
        gens[1]["parameters"],
        serde_json::json!({"greeting": "Bonjour", "port": "8081"})
    );
    assert_ne!(gens[0]["release"], gens[1]["release"]);
    // web-2 is untouched
    assert_eq!(
        r.serve("web-2"),
        "web-2: Hi on port 8082 (server 1.0), visit 2\n"
    );

    // rollback: the old software and parameters, the data intact
    r.ok(&["instance", "rollback", "web-1"]);
    assert_eq!(
        r.serve("web-1"),
        "web-1: Hello on port 8081 (server 1.0), visit 3\n"
    );
    assert_eq!(current(&r, "web-1"), 1);
    // forward again to a given generation
    r.ok(&["instance", "rollback", "web-1", "--to", "2"]);
    assert_eq!(
        r.serve("web-1"),
        "web-1: Bonjour on port 8081 (server 2.0), visit 4\n"
    );

    let verify = r.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[test]
fn rollback_follows_the_parent_not_the_previous_number() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    r.ok(&[
        "instance",
        "create",
        "a",
        "--software",
        &v1,
        "-p",
        "greeting=A",
    ]);
    r.ok(&[
        "instance",
        "upgrade",
        "a",
        "--software",
        &v1,
        "-p",
        "greeting=B",
    ]);
    r.ok(&["instance", "rollback", "a"]);
    assert_eq!(current(&r, "a"), 1);
    r.ok(&[
        "instance",
        "upgrade",
        "a",
        "--software",
        &v1,
        "-p",
        "greeting=C",
    ]);
    assert_eq!(current(&r, "a"), 3);
    assert!(r.serve("a").starts_with("a: C "));
    // C's parent is A: rolling back lands on A, not on B (NixOS/nix#311)
    r.ok(&["instance", "rollback", "a"]);
    assert_eq!(current(&r, "a"), 1);
    assert!(r.serve("a").starts_with("a: A "));
    // and A has no parent
    let out = r.run(&["instance", "rollback", "a"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no earlier generation"),
        "{}",
        out.stderr
    );
    assert_eq!(current(&r, "a"), 1);
}

#[test]
fn bad_input_changes_nothing() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    for bad in ["../escape", "a/b", "..", ".hidden"] {
        let out = r.run(&["instance", "create", bad, "--software", &v1]);
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("cannot name an instance"),
            "{}",
            out.stderr
        );
    }
    assert!(
        !r.root.join("partitions").exists()
            || std::fs::read_dir(r.root.join("partitions"))
                .expect("dir")
                .next()
                .is_none()
    );
    assert!(!env.path().join("escape").exists());

    r.ok(&["instance", "create", "web", "--software", &v1]);
    let before = std::fs::read_link(r.partition("web").join("current")).expect("current");
    let out = r.run(&["instance", "create", "web", "--software", &v1]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("exists already"), "{}", out.stderr);

    // an upgrade whose build fails: still on generation 1
    env.write(
        "broken-build/software.cfg",
        &format!("[buildout]\nextends = {v1}\n[server]\ncommand = exit 3\n"),
    );
    let out = r.run(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        "broken-build/software.cfg",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("server"), "{}", out.stderr);
    // an upgrade whose instance profile does not render: still on generation 1
    env.write(
        "broken-instance/software.cfg",
        &format!(
            "[buildout]\nextends = {v1}\n[instance-profile]\ninline =\n  [buildout]\n  parts = run\n  [run]\n  recipe = slapos.cookbook:wrapper\n  wrapper-path = $${{buildout:directory}}/bin/run\n"
        ),
    );
    let out = r.run(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        "broken-instance/software.cfg",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("command-line"), "{}", out.stderr);
    // an instance profile that writes outside its partition
    env.write(
        "escaping/software.cfg",
        &format!(
            "[buildout]\nextends = {v1}\n[instance-profile]\ninline =\n  [buildout]\n  parts = t\n  [t]\n  recipe = slapos.recipe.template\n  inline = x\n  output = /tmp/outside-the-partition\n"
        ),
    );
    let out = r.run(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        "escaping/software.cfg",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("not inside the partition"),
        "{}",
        out.stderr
    );
    // an unknown recipe at instance time
    env.write(
        "unknown/software.cfg",
        &format!(
            "[buildout]\nextends = {v1}\n[instance-profile]\ninline =\n  [buildout]\n  parts = t\n  [t]\n  recipe = slapos.cookbook:apache.zope.backend\n"
        ),
    );
    let out = r.run(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        "unknown/software.cfg",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot run in an instance"),
        "{}",
        out.stderr
    );

    assert_eq!(generations(&r, "web").len(), 1);
    assert_eq!(
        std::fs::read_link(r.partition("web").join("current")).expect("current"),
        before
    );
    assert!(r.serve("web").starts_with("web: Hello"));
    let out = r.run(&["instance", "rollback", "nope"]);
    assert_eq!(out.code, 3, "not found");
    assert!(out.stderr.contains("no instance"), "{}", out.stderr);
}

#[test]
fn delete_generations_and_destroy() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    r.ok(&["instance", "create", "web", "--software", &v1]);
    for g in ["B", "C", "D"] {
        r.ok(&[
            "instance",
            "upgrade",
            "web",
            "--software",
            &v1,
            "-p",
            &format!("greeting={g}"),
        ]);
    }
    r.ok(&["instance", "rollback", "web", "--to", "2"]);
    // the current generation is never deleted
    let out = r.run(&["instance", "delete-generations", "web", "2"]);
    assert_eq!(out.code, 2);
    // nothing is that old; a bad duration is refused
    r.ok(&[
        "instance",
        "delete-generations",
        "web",
        "--older-than",
        "1000d",
    ]);
    assert_eq!(generations(&r, "web").len(), 4);
    assert_eq!(
        r.run(&[
            "instance",
            "delete-generations",
            "web",
            "--older-than",
            "soon"
        ])
        .code,
        2
    );
    r.ok(&["instance", "delete-generations", "web", "--keep", "1"]);
    let numbers: Vec<i64> = generations(&r, "web")
        .iter()
        .map(|g| g["number"].as_i64().expect("n"))
        .collect();
    assert_eq!(numbers, [2, 4], "the newest and the current one stay");
    // rollback from 2 skips deleted 1: there is nothing before
    assert_eq!(r.run(&["instance", "rollback", "web"]).code, 2);
    r.ok(&["instance", "rollback", "web", "--to", "4"]);
    // rollback from 4 walks 4 → 3 (deleted) → 2
    r.ok(&["instance", "rollback", "web"]);
    assert_eq!(current(&r, "web"), 2);

    r.serve("web");
    r.ok(&["instance", "destroy", "web", "--keep-data"]);
    assert!(
        r.partition("web").join("srv/visits").exists(),
        "--keep-data keeps the data"
    );
    assert!(!r.partition("web").join("current").exists());
    assert!(r.ok(&["instance", "list"]).is_empty());
    r.ok(&["instance", "create", "other", "--software", &v1]);
    r.ok(&["instance", "destroy", "other"]);
    assert!(!r.partition("other").exists());
}

#[test]
fn many_instances_in_one_command_cost_one_copy_of_the_binaries() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let names: Vec<String> = (1..=50).map(|i| format!("w{i}")).collect();
    let mut args: Vec<&str> = vec!["instance", "create"];
    args.extend(names.iter().map(String::as_str));
    let software = demo("software.cfg");
    args.extend(["--software", &software, "--json"]);
    let out: Value = serde_json::from_str(&r.ok(&args)).expect("json");
    assert_eq!(out.as_array().expect("list").len(), 50);
    assert!(r.serve("w37").starts_with("w37: Hello on port 8080"));
    let store: Vec<String> = std::fs::read_dir(r.root.join("store"))
        .expect("store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(store.iter().filter(|n| n.ends_with("-server")).count(), 1);
    assert_eq!(
        store.iter().filter(|n| n.ends_with("-instance")).count(),
        50
    );
    // a partition is a handful of links and its data directories
    let p = r.partition("w1");
    let mut names: Vec<String> = std::fs::read_dir(&p)
        .expect("partition")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["bin", "current", "etc", "srv", "var"]);
    assert!(Path::new(&p.join("bin")).is_symlink());
}

/// A software profile whose instance profile is `instance` (indented under `inline =`).
fn software_with_instance(env: &TestEnv, dir: &str, instance: &str) -> String {
    let inline: String = instance.lines().map(|l| format!("  {l}\n")).collect();
    env.write(
        &format!("{dir}/software.cfg"),
        &format!(
            "[buildout]\nextends = {}\n[instance-profile]\ninline =\n{inline}",
            demo("software.cfg")
        ),
    )
    .to_string_lossy()
    .into_owned()
}

#[test]
fn parameters_and_names_never_run_as_shell_code() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let marker = env.path().join("MARKER");
    let m = marker.display().to_string();
    let software = software_with_instance(
        &env,
        "sw",
        "[buildout]\nparts = run\n[slap-parameter]\nport = 8080\ngreeting = Hello\nextra = x\n\
         [run]\nrecipe = slapos.cookbook:wrapper\n\
         command-line = /bin/sh -c 'echo \"port=$1 greeting=$2 X=$X\"' sh \"$${slap-parameter:port}\" \"$${slap-parameter:greeting}\" \"it's ok\"\n\
         environment =\n  X = $${slap-parameter:extra}\n\
         wrapper-path = $${buildout:directory}/bin/run\n",
    );
    // a legitimate command with spaces and quotes runs as written
    r.ok(&[
        "instance",
        "create",
        "ok",
        "--software",
        &software,
        "-p",
        "greeting=Good day",
    ]);
    assert_eq!(r.serve("ok"), "port=8080 greeting=Good day X=x\n");

    // command substitution in a parameter reaching an argument and an environment value
    r.ok(&[
        "instance",
        "create",
        "inj",
        "--software",
        &software,
        "-p",
        &format!("port=$(touch {m})"),
        "-p",
        &format!("greeting=`touch {m}`;touch {m}"),
        "-p",
        &format!("extra=$(touch {m})'\"; touch {m}"),
    ]);
    let out = r.serve("inj");
    assert!(out.starts_with(&format!("port=$(touch {m}) ")), "{out}");
    assert!(
        out.contains(&format!("greeting=`touch {m}`;touch {m}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("X=$(touch {m})'\"; touch {m}")),
        "{out}"
    );
    assert!(!marker.exists(), "a parameter ran as shell code");

    // a newline in a value that reaches `environment` would make a new key: refused
    let out = r.run(&[
        "instance",
        "create",
        "nl",
        "--software",
        &software,
        "-p",
        &format!("extra=1\nX$(touch {m})=1"),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("environment"), "{}", out.stderr);
    assert!(
        out.stderr.contains("is not a variable name"),
        "{}",
        out.stderr
    );
    assert!(!r.partition("nl").exists());

    // a value is verbatim: no `${}` substitution inside it
    r.ok(&[
        "instance",
        "create",
        "sub",
        "--software",
        &software,
        "-p",
        "greeting=${run:command-line}",
    ]);
    assert_eq!(
        r.serve("sub"),
        "port=8080 greeting=${run:command-line} X=x\n"
    );

    // instance names with shell metacharacters are refused before anything is made
    for bad in ["a$(touch$IFS\"X\")", "a;b", "a`b`", "a|b", "a'b", "a..b"] {
        let out = r.run(&["instance", "create", bad, "--software", &software]);
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("cannot name an instance"),
            "{}",
            out.stderr
        );
    }
    assert!(!marker.exists());
    assert!(!env.path().join("X").exists());
    let listed: serde_json::Value =
        serde_json::from_str(&r.ok(&["instance", "list", "--json"])).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
}

#[test]
fn an_upgrade_that_changes_nothing_adds_no_generation() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    r.ok(&[
        "instance",
        "create",
        "web",
        "--software",
        &v1,
        "-p",
        "port=8081",
    ]);
    let before = std::fs::read_link(r.partition("web").join("current")).expect("current");
    for params in [&[][..], &["-p", "port=8081"][..]] {
        let mut args = vec!["instance", "upgrade", "web", "--software", &v1];
        args.extend_from_slice(params);
        let out = r.ok(&args);
        assert_eq!(
            out,
            "unchanged: web stays at generation 1 (same release and parameters)\n"
        );
        args.push("--json");
        let json: Value = serde_json::from_str(&r.ok(&args)).expect("json");
        assert_eq!(json["changed"], false, "{json}");
        assert_eq!(json["number"], 1, "{json}");
    }
    assert_eq!(generations(&r, "web").len(), 1);
    assert_eq!(
        std::fs::read_link(r.partition("web").join("current")).expect("current"),
        before
    );
    // a real change still makes a generation, and says so
    let json: Value = serde_json::from_str(&r.ok(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &v1,
        "-p",
        "greeting=Hi",
        "--json",
    ]))
    .expect("json");
    assert_eq!(json["changed"], true, "{json}");
    assert_eq!(json["number"], 2, "{json}");
    assert_eq!(generations(&r, "web").len(), 2);
    assert!(r.serve("web").starts_with("web: Hi on port 8081"));
}

/// Runs `verify`; its exit code and output.
fn verify(r: &Root) -> (i32, String) {
    let out = r.run(&["verify"]);
    (out.code, out.stdout + &out.stderr)
}

#[test]
fn a_switch_left_undone_is_reported_and_finished_by_the_next_command() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    let v2 = demo("software-v2.cfg");
    let p = r.partition("web");
    // the state a SIGKILL at `instance create`'s first symlink leaves: committed, no links
    let killed_at_first_symlink = |p: &Path| {
        for link in ["current", "bin", "etc"] {
            std::fs::remove_file(p.join(link)).expect("remove a link");
        }
    };
    r.ok(&["instance", "create", "web", "--software", &v1]);
    assert_eq!(verify(&r).0, 0);
    let commands: [&[&str]; 5] = [
        &["instance", "create", "web", "--software", &v1],
        &["instance", "list"],
        &["instance", "show", "web"],
        &["instance", "generations", "web"],
        &["instance", "delete-generations", "web", "--keep", "5"],
    ];
    for command in commands {
        killed_at_first_symlink(&p);
        let (code, text) = verify(&r);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("does not show its generation 1") && text.contains("no `current`"),
            "{text}"
        );
        let _ = r.run(command); // `create` still says "exists already"
        assert!(r.serve("web").starts_with("web: Hello"), "{command:?}");
        assert_eq!(verify(&r).0, 0, "{command:?}: {}", verify(&r).1);
    }

    // an upgrade killed after its commit: the partition still shows generation 1, with a link
    // generation 2 does not have
    let old = std::fs::read_link(p.join("current")).expect("current");
    r.ok(&["instance", "upgrade", "web", "--software", &v2]);
    let next = p.join(".current.new");
    std::os::unix::fs::symlink(&old, &next).expect("symlink");
    std::fs::rename(&next, p.join("current")).expect("rename");
    std::os::unix::fs::symlink("current/old-only", p.join("old-only")).expect("symlink");
    let (code, text) = verify(&r);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("not to the current generation's output"),
        "{text}"
    );
    assert!(
        text.contains("`old-only` is a link of another generation"),
        "{text}"
    );
    r.ok(&["instance", "show", "web"]);
    assert!(r.serve("web").contains("(server 2.0)"));
    assert!(std::fs::symlink_metadata(p.join("old-only")).is_err());
    assert_eq!(verify(&r).0, 0, "{}", verify(&r).1);
}

#[test]
fn a_symlink_in_a_partition_never_makes_anything_in_the_store() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let v1 = demo("software.cfg");
    r.ok(&["instance", "create", "web", "--software", &v1]);
    let p = r.partition("web");
    // `var` replaced by a link to a store path (the release)
    let release = generations(&r, "web")[0]["release"]
        .as_str()
        .expect("release")
        .to_owned();
    std::fs::remove_dir_all(p.join("var")).expect("remove var");
    std::os::unix::fs::symlink(&release, p.join("var")).expect("symlink");
    let before: Vec<_> = std::fs::read_dir(&release)
        .expect("release")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let out = r.run(&[
        "instance",
        "upgrade",
        "web",
        "--software",
        &v1,
        "-p",
        "greeting=Hi",
    ]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("var/log"), "{}", out.stderr);
    assert!(out.stderr.contains("symlink"), "{}", out.stderr);
    let after: Vec<_> = std::fs::read_dir(&release)
        .expect("release")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(before, after, "a directory was made inside the store");
    assert!(!Path::new(&release).join("log").exists());
    let verify = r.run(&["verify", "--check-contents"]);
    assert!(
        !verify.stdout.contains("modified") && !verify.stdout.contains("writable"),
        "{}",
        verify.stdout
    );
}
