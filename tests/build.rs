//! End-to-end tests of `plan`, `build`, `path-info`, `verify` and `log` through the real binary,
//! on stores in temporary directories.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{repo_root, Root, TestEnv};

fn build_json(store: &Root, profile: &str) -> Value {
    let out = store.run(&["build", "--json", profile]);
    assert_eq!(out.code, 0, "build failed: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("build --json")
}

fn plan(store: &Root, profile: &str) -> Vec<Value> {
    let out = store.run(&["plan", "--json", profile]);
    assert_eq!(out.code, 0, "plan failed: {}", out.stderr);
    serde_json::from_str::<Value>(&out.stdout)
        .expect("plan --json")
        .as_array()
        .expect("a list")
        .clone()
}

/// The store path of part `part` in a plan.
fn path_of(plan: &[Value], part: &str) -> String {
    plan.iter()
        .find(|d| d["part"] == part)
        .unwrap_or_else(|| panic!("no part {part} in {plan:?}"))["path"]
        .as_str()
        .expect("path")
        .to_owned()
}

/// A self-contained C program with a configure script, packed as a tarball, and a patch.
fn c_project(env: &TestEnv) -> (String, String) {
    let example = repo_root().join("examples/patched-c");
    for f in ["greet-1.0.tar.gz", "fix-greeting.patch"] {
        std::fs::copy(example.join(f), env.path().join(f)).expect("copy");
    }
    let profile = std::fs::read_to_string(example.join("software.cfg")).expect("read");
    (profile, "30a4e67629e7b75514433cff6fa1c945".to_owned())
}

#[test]
fn build_is_read_only_registered_and_not_repeated() {
    if !crate::common::have(
        "build_is_read_only_registered_and_not_repeated",
        &["cc", "make", "patch"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let (profile, _) = c_project(&env);
    env.write("software.cfg", &profile);
    let store = Root::new(&env);
    let first = build_json(&store, "software.cfg");
    let release = first["release"].as_str().expect("release");
    let greet = first["parts"]["greet"].as_str().expect("greet");
    assert_eq!(first["built"].as_array().expect("built").len(), 2);
    // hash part: 32 base32 characters
    let base = Path::new(greet)
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let (hash, name) = base.split_at(32);
    assert!(
        hash.bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)),
        "{hash}"
    );
    assert_eq!(name, "-greet");
    // it runs, patched
    let out = std::process::Command::new(format!("{greet}/bin/greet"))
        .arg("test")
        .output()
        .expect("run greet");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, test! (patched)\n"
    );
    // read-only, fixed mtime
    for p in [
        greet.to_owned(),
        format!("{greet}/bin"),
        format!("{greet}/bin/greet"),
    ] {
        let meta = std::fs::symlink_metadata(&p).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o222, 0, "{p} is writable");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.mtime(), 1, "{p}");
    }
    // the release links the part
    let link = std::fs::read_link(format!("{release}/parts/greet")).expect("link");
    assert_eq!(link, Path::new(greet));

    // a second build builds nothing, and prints the same release
    let start = Instant::now();
    let second = build_json(&store, "software.cfg");
    let elapsed = start.elapsed();
    assert_eq!(second["built"].as_array().expect("built").len(), 0);
    assert_eq!(second["release"], first["release"]);
    assert!(
        elapsed < Duration::from_secs(5),
        "a no-op build took {elapsed:?}"
    );
    assert!(plan(&store, "software.cfg")
        .iter()
        .all(|d| d["built"] == true));

    // path-info, closure, log, verify
    let info = store.run(&["path-info", "--closure", "--json", release]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    let info: Value = serde_json::from_str(&info.stdout).expect("json");
    let paths = info["paths"].as_array().expect("paths");
    assert_eq!(paths.len(), 2);
    let rel = paths
        .iter()
        .find(|p| p["path"] == release)
        .expect("release info");
    assert_eq!(rel["references"], serde_json::json!([greet]));
    assert_eq!(rel["deriver"]["recipe"], "release");
    let log = store.run(&["log", "greet"]);
    assert_eq!(log.code, 0);
    assert!(
        log.stdout.contains("patching file greet.c"),
        "{}",
        log.stdout
    );
    let verify = store.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stdout
            .contains("2 paths checked with their contents, 0 problems"),
        "{}",
        verify.stdout
    );

    // tampering is found by --check-contents, not by the fast tier's existence check
    let file = PathBuf::from(format!("{greet}/bin/greet"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(&file, "tampered").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let verify = store.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 1);
    assert!(verify.stdout.contains("was modified"), "{}", verify.stdout);
    // the fast tier sees the size change without reading contents
    let fast = store.run(&["verify"]);
    assert_eq!(fast.code, 1);
    assert!(fast.stdout.contains("bytes, not the"), "{}", fast.stdout);
    // --repair rebuilds it from its recorded derivation
    let repair = store.run(&["verify", "--check-contents", "--repair"]);
    assert_eq!(repair.code, 0, "{}{}", repair.stdout, repair.stderr);
    assert!(repair.stdout.contains("repaired"), "{}", repair.stdout);
    let out = std::process::Command::new(format!("{greet}/bin/greet"))
        .output()
        .expect("run greet");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, world! (patched)\n"
    );
    let verify = store.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[test]
fn hashes_follow_inputs_not_urls_or_places() {
    if !crate::common::have(
        "hashes_follow_inputs_not_urls_or_places",
        &["cc", "make", "patch"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let (profile, _) = c_project(&env);
    env.write("a/software.cfg", &profile);
    for f in ["greet-1.0.tar.gz", "fix-greeting.patch"] {
        std::fs::copy(env.path().join(f), env.path().join("a").join(f)).expect("copy");
    }
    let store = Root::new(&env);
    let base = path_of(&plan(&store, "a/software.cfg"), "greet");

    // the same profile tree elsewhere: same hashes
    std::fs::create_dir_all(env.path().join("elsewhere/deeper")).expect("mkdir");
    std::fs::rename(env.path().join("a"), env.path().join("elsewhere/deeper/b")).expect("move");
    assert_eq!(
        path_of(&plan(&store, "elsewhere/deeper/b/software.cfg"), "greet"),
        base
    );

    // the same source from another URL with the same checksum: same hash
    let moved = profile.replace(
        "${:_profile_base_location_}/greet-1.0.tar.gz",
        &format!("file://{}/mirror/greet.tgz", env.path().display()),
    );
    std::fs::create_dir_all(env.path().join("mirror")).expect("mkdir");
    std::fs::copy(
        env.path().join("greet-1.0.tar.gz"),
        env.path().join("mirror/greet.tgz"),
    )
    .expect("copy");
    env.write("software.cfg", &moved);
    assert_eq!(path_of(&plan(&store, "software.cfg"), "greet"), base);

    // a changed patch: a new hash (and the profile must give the patch's new MD5)
    let patch = std::fs::read_to_string(env.path().join("fix-greeting.patch")).expect("read");
    let new_patch = patch.replace("(patched)", "(patched again)");
    std::fs::write(env.path().join("fix-greeting.patch"), &new_patch).expect("write");
    let out = store.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "a patch whose MD5 changed must be refused");
    assert!(
        out.stderr.contains("patches") && out.stderr.contains("MD5"),
        "{}",
        out.stderr
    );
    let md5 = format!("{:x}", md5_of(new_patch.as_bytes()));
    let with_md5 = moved.replace("82cb7d66f16975696e80f25afc1c388f", &md5);
    env.write("software.cfg", &with_md5);
    let changed = path_of(&plan(&store, "software.cfg"), "greet");
    assert_ne!(changed, base);
    // and a changed option too
    env.write("software.cfg", &format!("{with_md5}make-options = V=1\n"));
    assert_ne!(path_of(&plan(&store, "software.cfg"), "greet"), changed);
}

fn md5_of(bytes: &[u8]) -> u128 {
    let out = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(bytes)?;
            c.wait_with_output()
        })
        .expect("md5sum");
    u128::from_str_radix(&String::from_utf8_lossy(&out.stdout)[..32], 16).expect("hex")
}

#[test]
fn wrong_checksum_is_refused_and_changes_nothing() {
    let env = TestEnv::new();
    let (profile, md5) = c_project(&env);
    let store = Root::new(&env);
    // a first, good build so that the store is not empty
    env.write("good/software.cfg", "[buildout]\nparts = t\n[t]\nrecipe = slapos.recipe.template\ninline = x\noutput = ${buildout:directory}/t\n");
    build_json(&store, "good/software.cfg");
    let before = store.entries();
    let bad = profile.replace(&md5, "0123456789abcdef0123456789abcdef");
    env.write("software.cfg", &bad);
    let out = store.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("greet") && out.stderr.to_lowercase().contains("checksum"),
        "{}",
        out.stderr
    );
    assert_eq!(
        store.entries(),
        before,
        "a failed build left something in store/"
    );
    let cache = store
        .root
        .join("var/cache/sources/md5/0123456789abcdef0123456789abcdef");
    assert!(!cache.exists(), "a mismatching download was cached");
    let verify = store.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert!(
        !verify.stdout.contains("not registered"),
        "{}",
        verify.stdout
    );
}

#[test]
fn killed_build_leaves_nothing_valid_and_next_build_succeeds() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    // the second run, without the sandbox, sees the host file `second-run` and does not sleep
    let profile = format!(
        "[buildout]\nparts = slow\n[slow]\nrecipe = plone.recipe.command\ncommand =\n  mkdir -p $out/bin\n  echo partial > $out/bin/x\n  if [ ! -e {done} ]; then sleep 60; fi\n  echo done > $out/bin/x\n",
        done = env.path().join("second-run").display(),
    );
    env.write("software.cfg", &profile);
    let root = store.root.to_string_lossy().into_owned();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(["--root", &root, "build", "software.cfg"])
        .current_dir(env.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    crate::common::wait_for_output(&store.root, "bin/x");
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    // the sandboxed build wrote its output in `var/tmp/`: `store/` never held it
    assert_eq!(store.entries(), Vec::<String>::new());
    let plan = plan(&store, "software.cfg");
    let slow = path_of(&plan, "slow");
    assert!(plan.iter().all(|d| d["built"] == false), "{plan:?}");
    let info = store.run(&["path-info", &slow]);
    assert_ne!(info.code, 0, "a killed build's output is valid");
    // nothing valid is damaged; the killed output is named as not registered
    let verify = store.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);

    std::fs::write(env.path().join("second-run"), "").expect("write");
    let out = store.run(&["--no-sandbox", "build", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "build failed: {}", out.stderr);
    let second: Value = serde_json::from_str(&out.stdout).expect("build --json");
    assert_eq!(second["parts"]["slow"], slow.as_str());
    assert_eq!(
        std::fs::read_to_string(format!("{slow}/bin/x")).expect("read"),
        "done\n"
    );
    let verify = store.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert!(
        !verify.stdout.contains("not registered"),
        "{}",
        verify.stdout
    );
    // and no scratch directory is left
    let tmp: Vec<_> = std::fs::read_dir(store.root.join("var/tmp"))
        .expect("tmp")
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn concurrent_builds_build_each_derivation_once() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    let counter = env.path().join("runs");
    let profile = format!(
        "[buildout]\nparts = a b\n[a]\nrecipe = plone.recipe.command\ncommand = echo a >> {c}; sleep 1; echo a > $out/a\n[b]\nrecipe = plone.recipe.command\ncommand = echo b >> {c}; echo ${{a:location}} > $out/b\n",
        c = counter.display()
    );
    env.write("software.cfg", &profile);
    let root = store.root.to_string_lossy().into_owned();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
            .args(["--root", &root, "build", "software.cfg"])
            // the counter is a host file, which only builds without the sandbox can write
            .env("SLAPSTORE_SANDBOX", "0")
            .current_dir(env.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let children: Vec<_> = (0..4).map(|_| spawn()).collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let releases: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect();
    assert!(
        releases.iter().all(|r| r == &releases[0] && !r.is_empty()),
        "{releases:?}"
    );
    let runs = std::fs::read_to_string(&counter).expect("runs");
    assert_eq!(runs, "a\nb\n", "each command runs once");
    // b refers to a at run time, found by scanning its output
    let plan = plan(&store, "software.cfg");
    let b = path_of(&plan, "b");
    let info: Value =
        serde_json::from_str(&store.run(&["path-info", "--json", &b]).stdout).expect("json");
    assert_eq!(
        info["paths"][0]["references"],
        serde_json::json!([path_of(&plan, "a")])
    );
}

#[test]
fn bad_profiles_are_refused_with_the_part_and_recipe() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = x\n[x]\nrecipe = slapos.recipe.build:vm.run\nvm = v\n",
    );
    let out = store.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("slapos.recipe.build:vm.run") && out.stderr.contains("[x]"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("software.cfg:4"), "{}", out.stderr);
    env.write("software.cfg", "[buildout]\nparts = x\n[x]\nrecipe = slapos.recipe.cmmi\nurl = https://example.invalid/x.tar.gz\n");
    // (`plan` accepts it with a warning, `build` refuses it)
    let out = store.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no checksum") && out.stderr.contains("software.cfg:5"),
        "{}",
        out.stderr
    );
    env.write("software.cfg", "[buildout]\nparts = x\n[x]\nrecipe = plone.recipe.command\nlocation = /tmp/elsewhere\ncommand = true\n");
    let out = store.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("location"), "{}", out.stderr);
    // nothing was written for any of them
    assert!(store.entries().is_empty());
}

#[test]
fn examples_build_and_run() {
    if !crate::common::have("examples_build_and_run", &["cc", "make", "patch"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let examples = repo_root().join("examples");
    let linked = build_json(
        &store,
        &examples.join("linked/software.cfg").to_string_lossy(),
    );
    let hello = linked["parts"]["hello"].as_str().expect("hello");
    let lib = linked["parts"]["libgreet"].as_str().expect("libgreet");
    let out = std::process::Command::new(format!("{hello}/bin/hello"))
        .arg("e2e")
        .output()
        .expect("run hello");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, e2e, from libgreet\n"
    );
    let info: Value =
        serde_json::from_str(&store.run(&["path-info", "--json", hello]).stdout).expect("json");
    assert_eq!(
        info["paths"][0]["references"],
        serde_json::json!([lib]),
        "the rpath is a runtime reference"
    );
}

#[test]
fn lua_builds_from_its_upstream_tarball_through_the_download_cache() {
    if !crate::common::have(
        "lua_builds_from_its_upstream_tarball_through_the_download_cache",
        &["cc", "make", "patch"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    let tarball = lua_tarball();
    let out = store.run(&["add-source", &tarball.to_string_lossy()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("md5:bd8ce7069ff99a400efd14cf339a727b"),
        "{}",
        out.stdout
    );
    let profile = repo_root().join("examples/lua/software.cfg");
    let out = store.run(&["build", "--offline", "--json", &profile.to_string_lossy()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let lua = built["parts"]["lua"].as_str().expect("lua");
    let version = std::process::Command::new(format!("{lua}/bin/lua"))
        .arg("-v")
        .output()
        .expect("run lua");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("Lua 5.4.4"));
    let release = built["release"].as_str().expect("release");
    let instance =
        std::fs::read_to_string(format!("{release}/instance.cfg")).expect("instance.cfg");
    assert!(
        instance.contains(&format!("command-line = {lua}/bin/lua")),
        "{instance}"
    );
    assert!(
        !instance.contains("$${buildout:directory}")
            && instance.contains("${buildout:directory}/bin/hello"),
        "{instance}"
    );
}

/// dash's release tarball (autotools `make dist`: v7 headers, no `ustar` magic) unpacks, as
/// every genuine upstream tarball GNU tar reads must.
#[test]
fn a_v7_upstream_tarball_unpacks() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    let dir = repo_root().join("target/test-sources");
    let out = run_script(
        &repo_root().join("tests/fixtures/debian-orig.sh"),
        &["dash=0.5.12-2", &dir.to_string_lossy()],
    );
    let tarball = PathBuf::from(out.trim());
    assert!(tarball.exists(), "debian-orig.sh printed {out:?}");
    let head = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"gzip -dc "$1" | head -c 512 | tail -c 255 | head -c 5"#)
        .arg("sh")
        .arg(&tarball)
        .output()
        .expect("gzip");
    assert_ne!(head.stdout, b"ustar", "dash's tarball has v7 headers");
    let out = store.run(&["add-source", &tarball.to_string_lossy()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let profile = env.write(
        "dash.cfg",
        "[buildout]\nparts = dash\n\n[dash]\nrecipe = slapos.recipe.build:download-unpacked\n\
         url = http://gondor.apana.org.au/~herbert/dash/files/dash-0.5.12.tar.gz\n\
         md5sum = 57222b768b84003ea4b801e5d5e0e52b\n",
    );
    let built = {
        let out = store.run(&["build", "--offline", "--json", &profile.to_string_lossy()]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str::<Value>(&out.stdout).expect("json")
    };
    let dash = PathBuf::from(built["parts"]["dash"].as_str().expect("dash"));
    assert!(dash.join("configure").is_file());
    let main = std::fs::read_to_string(dash.join("src/main.c")).expect("src/main.c");
    assert!(main.contains("Kenneth Almquist"), "{}", &main[..200]);
}

/// lua.org's lua-5.4.4.tar.gz, which Debian carries unchanged as `lua5.4_5.4.4.orig.tar.gz`:
/// fetched once by `tests/fixtures/debian-orig.sh` into `target/test-sources/`.
fn lua_tarball() -> PathBuf {
    let dir = repo_root().join("target/test-sources");
    let out = run_script(
        &repo_root().join("tests/fixtures/debian-orig.sh"),
        &["lua5.4", &dir.to_string_lossy()],
    );
    let path = PathBuf::from(out.trim());
    assert!(path.exists(), "debian-orig.sh printed {out:?}");
    path
}

fn run_script(script: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn store_add_and_register_fill_the_store_in_batches() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    env.write("files/a.txt", "a\n");
    env.write("files/b.txt", "b\n");
    env.write("tree/bin/tool", "#!/bin/sh\necho tool\n");
    let out = store.run(&["store", "add", "files/a.txt", "files/b.txt", "tree"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let added: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(added.len(), 3);
    assert!(
        added[0].ends_with("-a.txt") && added[2].ends_with("-tree"),
        "{added:?}"
    );
    assert_eq!(std::fs::read_to_string(added[0]).expect("read"), "a\n");
    // the same content again: the same paths, nothing new
    let again = store.run(&["store", "add", "files/a.txt", "files/b.txt", "tree"]);
    assert_eq!(again.stdout, out.stdout);
    assert_eq!(store.entries().len(), 3);
    // other content under the same name: another path
    env.write("files/a.txt", "changed\n");
    let changed = store.run(&["store", "add", "files/a.txt"]);
    assert_ne!(changed.stdout.trim(), added[0]);

    // register trees written straight into store/, with references
    let dir = store.root.join("store");
    let lib = dir.join("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-lib");
    let app = dir.join("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-app");
    std::fs::create_dir_all(lib.join("lib")).expect("mkdir");
    std::fs::write(lib.join("lib/x.so"), "x").expect("write");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::write(app.join("refs"), lib.display().to_string()).expect("write");
    let info = format!(
        "{}\n\n0\n{}\n\n1\n{}\n",
        lib.display(),
        app.display(),
        lib.display()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(["--root", &store.root.to_string_lossy(), "store", "register"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(info.as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success());
    let closure = store.run(&["path-info", "--closure", "--json", &app.to_string_lossy()]);
    assert_eq!(closure.code, 0, "{}", closure.stderr);
    let v: Value = serde_json::from_str(&closure.stdout).expect("json");
    assert_eq!(v["paths"].as_array().expect("paths").len(), 2);
    let mode = std::fs::metadata(lib.join("lib/x.so"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444, "registration canonicalises");
    let verify = store.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert!(
        verify.stdout.contains("6 paths checked"),
        "{}",
        verify.stdout
    );
    // a reference to a path that is not valid is refused, and nothing is registered
    let bad = format!(
        "{}\n\n1\n{}/cccccccccccccccccccccccccccccccc-missing\n",
        app.display(),
        dir.display()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(["--root", &store.root.to_string_lossy(), "store", "register"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bad.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

/// The live processes whose process group is `pgid`, from `/proc` (zombies, dead and waiting
/// for their reaper, are not counted).
fn processes_in_group(pgid: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: after the last `)`
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid) && fields.first() != Some(&"Z") {
            found.push(stat);
        }
    }
    found
}

#[test]
fn an_interrupted_build_kills_its_commands_and_leaves_nothing() {
    let build: &[&str] = &["build", "software.cfg"];
    // `instance create` builds the release first: it stops the same way
    let create: &[&str] = &["instance", "create", "x", "--software", "software.cfg"];
    for (command, signal, code) in [
        (build, "INT", 130),
        (build, "TERM", 143),
        (create, "INT", 130),
    ] {
        let env = TestEnv::new();
        let store = Root::new(&env);
        env.write(
            "software.cfg",
            "[buildout]\nparts = slow\n[slow]\nrecipe = plone.recipe.command\ncommand =\n  \
             mkdir -p $out/bin\n  echo partial > $out/bin/x\n  sleep 1000\n",
        );
        let root = store.root.to_string_lossy().into_owned();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
            .args(["--root", &root])
            .args(command)
            .current_dir(env.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        crate::common::wait_for_output(&store.root, "bin/x");
        let scratch: Vec<PathBuf> = std::fs::read_dir(store.root.join("var/tmp"))
            .expect("var/tmp")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(scratch.len(), 1, "{scratch:?}");
        let pgid =
            std::fs::read_to_string(scratch[0].join("process-group")).expect("process-group");
        let pgid = pgid.trim();
        // `echo` has run; the shell may not have started `sleep` yet
        let deadline = Instant::now() + Duration::from_secs(20);
        while !processes_in_group(pgid)
            .iter()
            .any(|p| p.contains("(sleep)"))
        {
            assert!(
                Instant::now() < deadline,
                "the build's sleep never ran in group {pgid}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "SIG{signal} did not stop the build"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
            .expect("stderr");
        assert_eq!(status.code(), Some(code), "SIG{signal}: {stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert_eq!(
            processes_in_group(pgid),
            Vec::<String>::new(),
            "SIG{signal}"
        );
        let stored: Vec<_> = std::fs::read_dir(store.root.join("store"))
            .expect("store")
            .collect();
        assert!(stored.is_empty(), "no partial output: {stored:?}");
        let tmp: Vec<_> = std::fs::read_dir(store.root.join("var/tmp"))
            .expect("tmp")
            .collect();
        assert!(tmp.is_empty(), "no scratch: {tmp:?}");
    }
}

#[test]
fn a_failed_build_shows_its_log_once_and_counts_what_was_done() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = ok bad after after2\n\
         [ok]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out && echo fine\n\
         [bad]\nrecipe = plone.recipe.command\ncommand =\n  for i in $(seq 1 30); do echo \"line $i\"; done\n  \
         echo 'error: this is the failure' >&2\n  exit 3\n\
         [after]\nrecipe = plone.recipe.command\ncommand = echo ${bad:location}\n\
         [after2]\nrecipe = plone.recipe.command\ncommand = echo ${after:location}\n",
    );
    let out = store.run(&["build", "--keep-going", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let err = &out.stderr;
    // the error once, with the command's first line only, and the log's last 20 lines
    assert_eq!(err.matches("part `bad` failed").count(), 1, "{err}");
    assert_eq!(err.matches("for i in $(seq 1 30)").count(), 1, "{err}");
    assert!(err.contains("done …` exited with status 3"), "{err}");
    assert!(
        err.contains("  | line 12\n") && err.contains("  | line 30\n"),
        "{err}"
    );
    assert!(
        !err.contains("| line 11\n"),
        "only the last 20 lines: {err}"
    );
    assert!(err.contains("  | error: this is the failure\n"), "{err}");
    assert_eq!(
        err.matches("= hint: the whole log: `slapstore log bad`")
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("error: 1 failed, 3 skipped (dependencies failed), 1 built\n"),
        "{err}"
    );
    assert!(
        !err.contains("fine"),
        "logs are not streamed by default: {err}"
    );
    // what the hint says works
    let log = store.run(&["log", "bad"]);
    assert!(log.stdout.contains("line 1\n"), "{}", log.stdout);
    // again: `ok` is there already; without --keep-going the others are not started
    let out = store.run(&["build", "software.cfg"]);
    assert!(
        out.stderr.contains(
            "error: 1 failed, 3 skipped (dependencies failed), 0 built, 1 already built\n"
        ),
        "{}",
        out.stderr
    );
    // -L streams every build's log, prefixed with its part, and does not repeat the tail
    env.write(
        "two.cfg",
        "[buildout]\nparts = ok bad\n\
         [ok]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out && echo fine again\n\
         [bad]\nrecipe = plone.recipe.command\ncommand = echo one; echo two; exit 1\n",
    );
    let out = store.run(&["build", "-L", "--keep-going", "two.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("ok> fine again\n"), "{}", out.stderr);
    let (one, two) = (out.stderr.find("bad> one\n"), out.stderr.find("bad> two\n"));
    assert!(one.is_some() && one < two, "{}", out.stderr);
    assert!(!out.stderr.contains("  | two"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("1 failed, 1 skipped (dependencies failed), 1 built"),
        "{}",
        out.stderr
    );
}

/// On a terminal (a pseudo-terminal made by util-linux's `script`), the progress bar shows each
/// running build's time so far and the last line of its log.
#[test]
fn progress_on_a_terminal_shows_elapsed_time_and_the_last_log_line() {
    if !crate::common::have(
        "progress_on_a_terminal_shows_elapsed_time_and_the_last_log_line",
        &["script"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = slow\n[slow]\nrecipe = plone.recipe.command\ncommand =\n  \
         echo first line\n  sleep 1.5\n  echo second line\n  sleep 1\n  mkdir -p $out\n",
    );
    let command = format!(
        "'{}' --root '{}' build software.cfg",
        env!("CARGO_BIN_EXE_slapstore"),
        store.root.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .current_dir(env.path())
        .env("TERM", "xterm")
        .output()
        .expect("script");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains(" s): first line"), "{screen}");
    assert!(screen.contains("building slow (1 s)"), "{screen}");
    assert!(screen.contains("): second line"), "{screen}");
    assert!(screen.contains("built slow in"), "{screen}");
}

#[test]
fn a_command_may_make_its_location_below_its_own_parts_directory() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    // as the corpus' `[chromium-source]`: the checkout in `src`, beside a file in its parent
    env.write(
        "software.cfg",
        "[buildout]\nparts = checkout user\n\n\
         [checkout]\nrecipe = plone.recipe.command\n\
         location = ${:parent}/${:name}\n\
         parent = ${buildout:parts-directory}/${:_buildout_section_name_}\nname = src\n\
         command =\n  mkdir -p ${:location}\n  echo hi > ${:location}/file\n  \
         echo ${:parent} > ${:parent}/parent\n\n\
         [user]\nrecipe = slapos.recipe.template\noutput = ${buildout:directory}/user\n\
         inline = ${checkout:location}/file\n",
    );
    let built = build_json(&store, "software.cfg");
    let out = PathBuf::from(built["parts"]["checkout"].as_str().expect("checkout"));
    assert_eq!(
        std::fs::read_to_string(out.join("src/file")).expect("file"),
        "hi\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("parent")).expect("parent"),
        format!("{}\n", out.display())
    );
    let user = built["parts"]["user"].as_str().expect("user");
    assert_eq!(
        std::fs::read_to_string(format!("{user}/user")).expect("user"),
        format!("{}/src/file", out.display())
    );
    // elsewhere than below its own directory is still refused
    env.write(
        "software.cfg",
        "[buildout]\nparts = checkout\n[checkout]\nrecipe = plone.recipe.command\n\
         location = ${buildout:parts-directory}/other/src\ncommand = true\n",
    );
    let out = store.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("a part's location is its store path"),
        "{}",
        out.stderr
    );
}
