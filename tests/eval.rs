//! `slapstore eval` end to end: output forms, options, exit codes and error reports, on profiles
//! written into a temporary directory.

use serde_json::Value;

use crate::common::TestEnv;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

const PROFILE: &str = "\
[buildout]
extends = base.cfg
parts += app

[app]
recipe = slapos.recipe.cmmi
url = https://example.org/app-1.0.tar.gz
md5sum = 0123456789abcdef0123456789abcdef
configure-options = --with-zlib=${zlib:location}
";

const BASE: &str = "\
[buildout]
parts = zlib

[zlib]
recipe = slapos.recipe.cmmi
url = https://zlib.net/fossils/zlib-1.3.1.tar.gz
md5sum = 9855b6d802d7fe5b7bd5b196a2271655
";

fn env_with_profile() -> TestEnv {
    let env = TestEnv::new();
    env.write("software.cfg", PROFILE);
    env.write("base.cfg", BASE);
    env
}

#[test]
fn json_output_resolves_references_and_recipe_options() {
    let env = env_with_profile();
    let out = env.run(&["eval", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = json(&out.stdout);
    let dir = env.path().to_string_lossy().into_owned();
    assert_eq!(v["buildout"]["parts"], "zlib\napp");
    assert_eq!(v["zlib"]["location"], format!("{dir}/parts/zlib"));
    assert_eq!(
        v["app"]["configure-options"],
        format!("--with-zlib={dir}/parts/zlib")
    );
    assert_eq!(
        v["app"]["compile-directory"],
        format!("{dir}/parts/app/.build")
    );
    assert!(v["buildout"].get("extends").is_none());
}

#[test]
fn human_output_names_where_values_come_from() {
    let env = env_with_profile();
    let out = env.run(&["eval", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("# parts, in install order: zlib app\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("md5sum = 9855b6d802d7fe5b7bd5b196a2271655  # base.cfg:7"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("location = "), "{}", out.stdout);
    assert!(
        out.stdout.contains("# set by recipe slapos.recipe.cmmi"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("allow-hosts = *  # buildout default"),
        "{}",
        out.stdout
    );
}

#[test]
fn command_line_options_override_and_extend() {
    let env = env_with_profile();
    let out = env.run(&[
        "eval",
        "--json",
        "-O",
        "zlib:md5sum=ffff",
        "-O",
        "app:configure-options+=--enable-x",
        "software.cfg",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = json(&out.stdout);
    assert_eq!(v["zlib"]["md5sum"], "ffff");
    assert!(v["app"]["configure-options"]
        .as_str()
        .is_some_and(|s| s.ends_with("\n--enable-x")));
}

#[test]
fn all_sections_includes_unreached_ones() {
    let env = TestEnv::new();
    env.write(
        "buildout.cfg",
        "[buildout]\nparts =\n\n[lonely]\nx = 1\n\n[broken]\ny = ${nowhere:z}\n",
    );
    let out = env.run(&["eval", "--json", "buildout.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(json(&out.stdout).get("lonely").is_none());
    let out = env.run(&["eval", "--json", "--all-sections", "buildout.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = json(&out.stdout);
    assert_eq!(v["lonely"]["x"], "1");
    assert!(v.get("broken").is_none());
    assert!(
        out.stderr.contains("section [broken] not resolved"),
        "{}",
        out.stderr
    );
}

#[test]
fn target_changes_conditional_sections() {
    let env = TestEnv::new();
    env.write(
        "buildout.cfg",
        "[buildout]\nparts =\n[versions]\n[versions:python2]\nsix = 1.0\n[versions:bits32]\nold = 1\n",
    );
    let v = json(&env.run(&["eval", "--json", "buildout.cfg"]).stdout);
    assert!(v["versions"].get("six").is_none());
    let out = env.run(&[
        "eval",
        "--json",
        "--target",
        "python=2.7",
        "--target",
        "bits=32",
        "buildout.cfg",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = json(&out.stdout);
    assert_eq!(v["versions"]["six"], "1.0");
    assert_eq!(v["versions"]["old"], "1");
    let out = env.run(&["eval", "--target", "python=three", "buildout.cfg"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("python"), "{}", out.stderr);
}

#[test]
fn profiles_without_code_never_start_python() {
    let env = env_with_profile();
    let out = env.run(&[
        "eval",
        "--json",
        "--python",
        "/nonexistent/python3",
        "software.cfg",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    env.write(
        "code.cfg",
        "[buildout]\nparts = c\n[c]\nrecipe = slapos.recipe.build\ninit = options['x'] = 'y'\n",
    );
    let out = env.run(&[
        "eval",
        "--json",
        "--python",
        "/nonexistent/python3",
        "code.cfg",
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("cannot start `/nonexistent/python3`"),
        "{}",
        out.stderr
    );
    let out = env.run(&["eval", "--json", "code.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json(&out.stdout)["c"]["x"], "y");
}

#[test]
fn reference_cycle_shows_the_whole_chain() {
    let env = TestEnv::new();
    env.write(
        "buildout.cfg",
        "[buildout]\nparts = a\n\n[a]\nrecipe = r\nx = ${b:y}\n\n[b]\ny = ${c:z}\n\n[c]\nz = ${a:x}\n",
    );
    let out = env.run(&["eval", "buildout.cfg"]);
    assert_eq!(out.code, 2);
    // the chain is shown whole, starting wherever buildout's evaluation noticed it
    let chain = out
        .stderr
        .lines()
        .next()
        .and_then(|l| l.rsplit_once(": "))
        .map(|(_, c)| c.split(" -> ").collect::<Vec<_>>())
        .unwrap_or_default();
    assert_eq!(chain.len(), 4, "{}", out.stderr);
    assert_eq!(chain.first(), chain.last());
    for link in ["a:x", "b:y", "c:z"] {
        assert!(chain.contains(&link), "{}", out.stderr);
    }
    assert!(out.stderr.contains("buildout.cfg:"), "{}", out.stderr);
}

#[test]
fn bad_input_is_exit_status_two_with_a_location() {
    let env = TestEnv::new();
    env.write("buildout.cfg", "[buildout]\nparts = a\n[a]\nx: 1\n");
    let out = env.run(&["eval", "buildout.cfg"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("buildout.cfg:4:1"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    let out = env.run(&["eval", "missing.cfg"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("missing.cfg"), "{}", out.stderr);

    let out = env.run(&["eval", "-O", "a:b:c=d", "buildout.cfg"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("a:b:c=d"), "{}", out.stderr);

    let out = env.run(&["frobnicate"]);
    assert_eq!(out.code, 2);
}

#[test]
fn python_errors_point_into_the_init_code() {
    let env = TestEnv::new();
    env.write(
        "buildout.cfg",
        "[buildout]\nparts = c\n[c]\nrecipe = slapos.recipe.build\ninit =\n  x = 1\n  raise ValueError('bad %d' % x)\n",
    );
    let out = env.run(&["eval", "buildout.cfg"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("ValueError: bad 1"), "{}", out.stderr);
    assert!(out.stderr.contains("buildout.cfg:7:"), "{}", out.stderr);
}

#[test]
fn profile_code_cannot_disturb_the_bridge() {
    let env = TestEnv::new();
    env.write(
        "buildout.cfg",
        "[buildout]\nparts = c\n[c]\nrecipe = slapos.recipe.build\ninit =\n  import sys\n  print('to stdout')\n  options['stdin'] = repr(sys.stdin.read())\n  options['other'] = self.buildout['d']['x']\n[d]\nx = 1\n",
    );
    let out = env.run(&["eval", "--json", "buildout.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = json(&out.stdout);
    assert_eq!(v["c"]["stdin"], "''");
    assert_eq!(v["c"]["other"], "1");
    assert!(out.stderr.contains("to stdout"), "{}", out.stderr);
}

/// A `python3` shim (pyenv-like: a script that execs the real interpreter) in `dir`, counting its
/// runs in `dir/count`.
fn counting_shim(dir: &std::path::Path) {
    let real = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    let real = String::from_utf8_lossy(&real.stdout).trim().to_owned();
    std::fs::create_dir_all(dir).expect("mkdir");
    let shim = dir.join("python3");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\necho run >> '{}/count'\nexec '{real}' \"$@\"\n",
            dir.display()
        ),
    )
    .expect("write shim");
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
}

fn shim_runs(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("count"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_python_shim_is_resolved_once_and_again_when_path_changes() {
    let env = TestEnv::new();
    env.write(
        "software.cfg",
        "[buildout]\nparts = c\n[c]\nrecipe = slapos.recipe.build\ninit = options['x'] = str(6 * 7)\n",
    );
    let (one, two) = (env.path().join("shim-1"), env.path().join("shim-2"));
    counting_shim(&one);
    counting_shim(&two);
    let eval = |shims: &std::path::Path| {
        let path = format!(
            "{}:{}",
            shims.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
            .args(["eval", "--json", "software.cfg"])
            .current_dir(env.path())
            .env("PATH", path)
            .env("XDG_CACHE_HOME", env.path().join("cache"))
            .env_remove("SLAPSTORE_PYTHON")
            .output()
            .expect("run slapstore");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(v["c"]["x"], "42");
        v["buildout"]["executable"]
            .as_str()
            .expect("executable")
            .to_owned()
    };
    let executable = eval(&one);
    assert!(
        !executable.contains("shim-1"),
        "the real interpreter: {executable}"
    );
    for _ in 0..3 {
        assert_eq!(eval(&one), executable);
    }
    assert_eq!(shim_runs(&one), 1, "the shim ran once for 4 evaluations");
    // another PATH: its shim is asked, once
    eval(&two);
    eval(&two);
    assert_eq!((shim_runs(&one), shim_runs(&two)), (1, 1));
    // the shim changed: asked again
    let shim = one.join("python3");
    let text = std::fs::read_to_string(&shim).expect("read");
    std::fs::write(&shim, format!("{text}# changed\n")).expect("write");
    eval(&one);
    eval(&one);
    assert_eq!(shim_runs(&one), 2);
}
