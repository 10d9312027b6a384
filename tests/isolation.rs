//! Users (issue 16, `store/src/users.rs`): each instance runs as its own user from the pool of
//! `[instance-users]`, owns its partition's mutable directories, and cannot read another's;
//! each sandboxed build runs as a build user of `[build-users]`, two at once as two users. The
//! tests need root, as CI runs them; they create system users `slapisoN` (uids 61000–61003) and
//! `slapisobN` (61100–61103), and use them as they are on later runs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{have, Root, TestEnv};

const INSTANCE_USERS: &str =
    "[instance-users]\nprefix = \"slapiso\"\ncount = 4\nfirst-uid = 61000\n";

/// A release whose instance's one service writes `srv/data` (a secret) and `srv/uid`, then
/// sleeps.
const SOFTWARE: &str = r#"[buildout]
parts = instance-profile

[instance-profile]
recipe = slapos.recipe.template
output = ${buildout:directory}/instance.cfg
inline =
  [buildout]
  parts = directories script daemon
  [directories]
  recipe = slapos.cookbook:mkdirectory
  srv = $${buildout:directory}/srv
  log = $${buildout:directory}/var/log
  [script]
  recipe = slapos.recipe.template
  output = $${buildout:directory}/etc/daemon.sh
  inline =
    echo secret-of-$${slap-partition:name} > $${buildout:directory}/srv/data
    id -u > $${buildout:directory}/srv/uid
    exec sleep 1000
  [daemon]
  recipe = slapos.cookbook:wrapper
  command-line = /bin/sh $${buildout:directory}/etc/daemon.sh
  wrapper-path = $${buildout:directory}/etc/service/daemon
"#;

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Kills the root's supervisord (and so its programs) when the test ends, however it ends.
struct Supervisord(PathBuf);

impl Drop for Supervisord {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("var/supervisor/supervisord.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// Runs `args` as `uid`:`gid` without supplementary groups; whether it succeeded, and stderr.
fn as_user(uid: u32, gid: u32, args: &[&str]) -> (bool, String) {
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--"])
        .args(args)
        .output()
        .expect("run setpriv");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits up to 20 s for `path` to exist.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "`{}` never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The real, effective, saved and filesystem uids of process `pid`.
fn uids(pid: u64) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line")
        .split_whitespace()
        .map(|n| n.parse().expect("uid"))
        .collect()
}

fn service_pid(r: &Root, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let json = r.ok(&["instance", "status", "--json", name]);
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        let service = &v["services"][0];
        if let Some(pid) = service["pid"]
            .as_u64()
            .filter(|_| service["state"] == "RUNNING")
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "{name}'s service never ran: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn each_instance_runs_as_its_own_user_and_cannot_read_another() {
    if !is_root() {
        eprintln!("skipped: instance users need root");
        return;
    }
    if !have(
        "each_instance_runs_as_its_own_user_and_cannot_read_another",
        &["supervisord", "setpriv", "useradd", "groupadd"],
    ) {
        return;
    }
    let env = TestEnv::new();
    // the instances' users reach their partitions through the test's directory
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).expect("chmod");
    let r = Root::new(&env);
    let _guard = Supervisord(r.root.clone());
    env.write("root/etc/slapstore.toml", INSTANCE_USERS);
    let software = env
        .write("p/software.cfg", SOFTWARE)
        .to_string_lossy()
        .into_owned();
    r.ok(&["instance", "create", "a", "b", "--software", &software]);
    r.ok(&["instance", "start", "a", "b"]);
    let (pa, pb) = (r.partition("a"), r.partition("b"));
    wait_for(&pa.join("srv/uid"));
    wait_for(&pb.join("srv/uid"));
    let owner = |p: &Path| {
        let m = std::fs::metadata(p).expect("srv");
        (m.uid(), m.gid(), m.mode() & 0o7777)
    };
    let (ua, ga, mode_a) = owner(&pa.join("srv"));
    let (ub, gb, mode_b) = owner(&pb.join("srv"));
    assert!(ua >= 61000 && ub >= 61000, "{ua} {ub}");
    assert_ne!(ua, ub, "two instances, two users");
    assert_eq!(mode_a & 0o027, 0, "srv is 0750 or stricter: {mode_a:o}");
    assert_eq!(mode_b & 0o027, 0, "{mode_b:o}");
    assert_eq!(owner(&pa.join("var/log")).0, ua);
    // the partition: root's, the instance's group, closed to others
    let top = std::fs::metadata(&pa).expect("partition");
    assert_eq!((top.uid(), top.gid(), top.mode() & 0o777), (0, ga, 0o750));
    // their services run as them: the process, and what it wrote
    for (name, uid) in [("a", ua), ("b", ub)] {
        let pid = service_pid(&r, name);
        assert_eq!(uids(pid), vec![uid; 4], "{name}'s service");
        let wrote = std::fs::read_to_string(r.partition(name).join("srv/uid")).expect("uid");
        assert_eq!(wrote.trim(), uid.to_string());
        assert_eq!(
            std::fs::metadata(r.partition(name).join("srv/data"))
                .expect("data")
                .uid(),
            uid
        );
    }
    // one cannot read the other's data, nor even enter its partition; its own it reads (so
    // the check can fail)
    let data_a = pa.join("srv/data").to_string_lossy().into_owned();
    let data_b = pb.join("srv/data").to_string_lossy().into_owned();
    let (ok, err) = as_user(ub, gb, &["cat", &data_a]);
    assert!(!ok && err.contains("Permission denied"), "{err}");
    let (ok, _) = as_user(ub, gb, &["ls", &pa.to_string_lossy()]);
    assert!(!ok, "b lists a's partition");
    assert!(as_user(ub, gb, &["cat", &data_b]).0, "b reads its own data");
    assert!(as_user(ua, ga, &["cat", &data_a]).0, "a reads its own data");
    // a reads its own configuration (the generation, root's with a's group) but not b's
    let conf_a = pa.join("etc/daemon.sh").to_string_lossy().into_owned();
    let conf_b = pb.join("etc/daemon.sh").to_string_lossy().into_owned();
    assert!(as_user(ua, ga, &["cat", &conf_a]).0);
    assert!(
        !as_user(ua, ga, &["cat", &conf_b]).0,
        "a reads b's configuration"
    );
    // the store: readable by all, writable by none, the generations' included
    let current = std::fs::read_link(pa.join("current")).expect("current");
    let (ok, _) = as_user(ua, ga, &["touch", &current.join("x").to_string_lossy()]);
    assert!(!ok, "a writes into its generation");
    let gen = std::fs::metadata(&current).expect("generation");
    assert_eq!((gen.uid(), gen.gid(), gen.mode() & 0o777), (0, ga, 0o550));
    for entry in std::fs::read_dir(r.root.join("store")).expect("store") {
        let path = entry.expect("entry").path();
        let (ok, _) = as_user(ua, ga, &["touch", &path.join("x").to_string_lossy()]);
        assert!(!ok, "a writes into `{}`", path.display());
    }
    // the users are the instances' for good: recorded, kept across an upgrade, verified
    r.ok(&["instance", "stop", "a", "b"]);
    r.ok(&[
        "instance",
        "upgrade",
        "a",
        "--software",
        &software,
        "-p",
        "x=1",
    ]);
    assert_eq!(owner(&pa.join("srv")).0, ua);
    assert_eq!(
        std::fs::metadata(std::fs::read_link(pa.join("current")).expect("current"))
            .expect("generation 2")
            .gid(),
        ga
    );
    r.ok(&["verify"]);
    // ownership drifted (a root-owned srv): verify says so, the next command repairs it
    std::os::unix::fs::chown(pb.join("srv"), Some(0), Some(0)).expect("chown");
    let out = r.run(&["verify"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("srv"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    r.ok(&["instance", "show", "b"]);
    assert_eq!(owner(&pb.join("srv")).0, ub);
    r.ok(&["verify"]);
}

#[test]
fn instance_users_without_root_or_with_a_bad_pool_are_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to run the binary as another user");
        return;
    }
    let env = TestEnv::new();
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).expect("chmod");
    let r = Root::new(&env);
    let software = env
        .write("p/software.cfg", SOFTWARE)
        .to_string_lossy()
        .into_owned();
    // a bad pool: refused naming the file and the section, nothing made
    env.write(
        "root/etc/slapstore.toml",
        "[instance-users]\nprefix = \"Bad User\"\ncount = 4\nfirst-uid = 61000\n",
    );
    let out = r.run(&["instance", "create", "a", "--software", &software]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("slapstore.toml") && out.stderr.contains("[instance-users]"),
        "{}",
        out.stderr
    );
    assert!(!r.partition("a").exists());
    // as an unprivileged user, a pool is refused with what to do; without one, it works
    env.write("root/etc/slapstore.toml", INSTANCE_USERS);
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(env.path())
        .status()
        .expect("chown");
    assert!(chown.success());
    let nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_slapstore"))
            .arg("--root")
            .arg(&r.root)
            .args(args)
            .current_dir(env.path())
            .env("HOME", env.path())
            .output()
            .expect("setpriv");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = nobody(&[
        "--no-sandbox",
        "instance",
        "create",
        "a",
        "--software",
        &software,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("only when slapstore runs as root"), "{err}");
    assert!(r
        .partition("a")
        .read_dir()
        .map_or(true, |mut d| d.next().is_none()));
    std::fs::remove_file(r.root.join("etc/slapstore.toml")).expect("rm");
    let (code, err) = nobody(&["--no-sandbox", "instance", "show", "a"]);
    assert_eq!(
        code,
        Some(0),
        "the instance, recorded, is finished without a pool: {err}"
    );
    assert_eq!(
        std::fs::metadata(r.partition("a").join("srv"))
            .expect("srv")
            .uid(),
        65534
    );
}

/// `dir` and everything under it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    if dir.is_dir() && !dir.is_symlink() {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            out.extend(tree(&entry.expect("entry").path()));
        }
    }
    out
}

#[test]
fn builds_run_as_build_users_two_at_once_as_two() {
    if !is_root() {
        eprintln!("skipped: build users need root");
        return;
    }
    if !have(
        "builds_run_as_build_users_two_at_once_as_two",
        &["useradd", "groupadd"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "root/etc/slapstore.toml",
        "[build-users]\nprefix = \"slapisob\"\ncount = 4\nfirst-uid = 61100\n",
    );
    let part = |name: &str| {
        format!(
            "[{name}]\nrecipe = plone.recipe.command\ncommand =\n  mkdir -p $out\n  \
             date +%s.%N > $out/start\n  id -u > $out/uid\n  id -G > $out/groups\n  \
             echo x > $HOME/h\n  sleep 2\n  date +%s.%N > $out/end\n"
        )
    };
    let profile = env.write(
        "software.cfg",
        &format!("[buildout]\nparts = a b\n{}{}", part("a"), part("b")),
    );
    let json = r.ok(&["-j", "2", "build", "--json", &profile.to_string_lossy()]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let out = |part: &str| PathBuf::from(v["parts"][part].as_str().expect("path"));
    let number = |part: &str, file: &str| -> f64 {
        std::fs::read_to_string(out(part).join(file))
            .expect(file)
            .trim()
            .parse()
            .expect("number")
    };
    let (ua, ub) = (number("a", "uid") as u32, number("b", "uid") as u32);
    assert!((61100..61104).contains(&ua), "{ua}");
    assert!((61100..61104).contains(&ub), "{ub}");
    // both ran at once (each sleeps 2 s; -j 2), as two users
    let overlap =
        number("a", "start") < number("b", "end") && number("b", "start") < number("a", "end");
    assert!(overlap, "the two builds did not run at once");
    assert_ne!(ua, ub, "two builds at once shared a build user");
    for part in ["a", "b"] {
        let groups = std::fs::read_to_string(out(part).join("groups")).expect("groups");
        assert!(!groups.split_whitespace().any(|g| g == "0"), "{groups}");
        // the output is root's and read-only
        for path in tree(&out(part)) {
            let m = path.symlink_metadata().expect("meta");
            assert_eq!((m.uid(), m.gid()), (0, 0), "{}", path.display());
            assert_eq!(m.mode() & 0o222, 0, "{}", path.display());
        }
    }
    r.ok(&["verify", "--check-contents"]);
}

#[test]
fn builds_run_as_the_default_build_users_as_root_unless_turned_off() {
    if !is_root() {
        eprintln!("skipped: build users need root");
        return;
    }
    if !have(
        "builds_run_as_the_default_build_users_as_root_unless_turned_off",
        &["useradd", "groupadd"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let profile = |tag: &str| {
        env.write(
            &format!("{tag}.cfg"),
            &format!(
                "[buildout]\nparts = p\n[p]\nrecipe = plone.recipe.command\ncommand =\n  \
                 mkdir -p $out\n  echo {tag} > $out/tag\n  id -u > $out/uid\n  \
                 id -un > $out/name\n"
            ),
        )
        .to_string_lossy()
        .into_owned()
    };
    let built = |cfg: &str, extra: &[&str]| -> (u32, String) {
        let mut args = extra.to_vec();
        args.extend(["build", "--json", cfg]);
        let v: serde_json::Value = serde_json::from_str(&r.ok(&args)).expect("json");
        let out = PathBuf::from(v["parts"]["p"].as_str().expect("path"));
        let read = |f: &str| std::fs::read_to_string(out.join(f)).expect(f);
        for path in tree(&out) {
            let m = path.symlink_metadata().expect("meta");
            assert_eq!((m.uid(), m.gid()), (0, 0), "{}", path.display());
        }
        (read("uid").trim().parse().expect("uid"), read("name"))
    };
    // no configuration: the default pool, created when missing
    let (uid, name) = built(&profile("default"), &[]);
    assert!((34000..34032).contains(&uid), "{uid}");
    assert!(name.starts_with("slapbld"), "{name}");
    assert_eq!(
        Command::new("id")
            .args(["-u", name.trim()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .expect("id"),
        uid.to_string(),
        "the user exists on the host"
    );
    // `true` is the default; `false` builds as root in the sandbox; --no-sandbox as root too
    env.write("root/etc/slapstore.toml", "build-users = true\n");
    assert!((34000..34032).contains(&built(&profile("on"), &[]).0));
    env.write("root/etc/slapstore.toml", "build-users = false\n");
    assert_eq!(built(&profile("off"), &[]).0, 0);
    std::fs::remove_file(r.root.join("etc/slapstore.toml")).expect("rm");
    assert_eq!(built(&profile("unsandboxed"), &["--no-sandbox"]).0, 0);
    // a bad value: exit 2 naming the file and the key, nothing built
    env.write("root/etc/slapstore.toml", "build-users = 3\n");
    let out = r.run(&["build", &profile("bad")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("slapstore.toml") && out.stderr.contains("build-users"),
        "{}",
        out.stderr
    );
    r.ok(&["verify", "--check-contents"]);
}

#[test]
fn egg_installs_and_gitclone_checkouts_run_as_build_users() {
    if !is_root() {
        eprintln!("skipped: build users need root");
        return;
    }
    if !have(
        "egg_installs_and_gitclone_checkouts_run_as_build_users",
        &["useradd", "groupadd", "git"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    // a develop egg whose setup.py, run by the installer in the sandbox, records its uid
    env.write(
        "src/setup.py",
        "import os\nhere = os.path.dirname(os.path.abspath(__file__))\n\
         open(os.path.join(here, 'whoami_uid.py'), 'w').write('UID = %d\\n' % os.getuid())\n\
         from setuptools import setup\nsetup(name='whoami', version='0.1', \
         py_modules=['whoami_uid'])\n",
    );
    // a repository, and a git that says who runs it (on its stderr: the build log)
    let repo = env.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    crate::common::git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.join("README"), "hello\n").expect("write");
    crate::common::git(&repo, &["add", "."]);
    crate::common::git(&repo, &["commit", "--quiet", "-m", "one"]);
    let commit = crate::common::git(&repo, &["rev-parse", "HEAD"]);
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = dev src\n\
             [dev]\nrecipe = zc.recipe.egg:develop\nsetup = ${{buildout:directory}}/src\n\
             [git]\nrecipe = plone.recipe.command\ncommand =\n  mkdir -p $out/bin\n  \
             printf '#!/bin/sh\\necho \"git as uid $(id -u)\" >&2\\nexec git \"$@\"\\n' \
             > $out/bin/git\n  chmod +x $out/bin/git\n\
             [src]\nrecipe = slapos.recipe.build:gitclone\nrepository = file://{}\n\
             revision = {}\ngit-executable = ${{git:location}}/bin/git\n",
            repo.display(),
            commit.trim()
        ),
    );
    let v: serde_json::Value =
        serde_json::from_str(&r.ok(&["build", "--json", "software.cfg"])).expect("json");
    // the egg: installed as a build user
    let dev = v["parts"]["dev"].as_str().expect("dev");
    let manifest = std::fs::read_to_string(format!("{dev}/.slapstore-eggs")).expect("manifest");
    let dist = manifest
        .lines()
        .find(|l| l.starts_with("whoami 0.1 "))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("{manifest}"))
        .to_owned();
    let recorded = tree(Path::new(&dist))
        .into_iter()
        .find(|p| p.ends_with("whoami_uid.py"))
        .unwrap_or_else(|| panic!("no whoami_uid.py in {dist}"));
    let text = std::fs::read_to_string(&recorded).expect("uid");
    let uid: u32 = text
        .trim()
        .trim_start_matches("UID = ")
        .parse()
        .expect("a uid");
    assert!((34000..34032).contains(&uid), "the install ran as {uid}");
    // the checkout: as a build user (the mirror's clone and fetch, outside, as root)
    let log = r.ok(&["log", "src"]);
    let uids: Vec<u32> = log
        .lines()
        .filter_map(|l| l.strip_prefix("git as uid "))
        .map(|n| n.trim().parse().expect("uid"))
        .collect();
    assert!(uids.contains(&0), "the mirror is made as root: {log}");
    assert!(
        uids.iter().any(|u| (34000..34032).contains(u)),
        "the checkout ran as root: {log}"
    );
    let src = PathBuf::from(v["parts"]["src"].as_str().expect("src"));
    assert_eq!(
        std::fs::read_to_string(src.join("README")).expect("README"),
        "hello\n"
    );
    assert!(!src.join(".git").exists());
    for path in tree(&src).into_iter().chain(tree(Path::new(&dist))) {
        let m = path.symlink_metadata().expect("meta");
        assert_eq!((m.uid(), m.gid()), (0, 0), "{}", path.display());
        assert_eq!(m.mode() & 0o222, 0, "{}", path.display());
    }
    r.ok(&["verify", "--check-contents"]);
}

/// A release whose instance generates a password and renders it into `etc/conf`.
const PASSWORD_SOFTWARE: &str = r#"[buildout]
parts = instance-profile

[instance-profile]
recipe = slapos.recipe.template
output = ${buildout:directory}/instance.cfg
inline =
  [buildout]
  parts = dirs pw conf
  [dirs]
  recipe = slapos.cookbook:mkdirectory
  srv = $${buildout:directory}/srv
  [pw]
  recipe = slapos.cookbook:generate.password
  [conf]
  recipe = slapos.recipe.template
  output = $${buildout:directory}/etc/conf
  inline =
    password=$${pw:passwd}
"#;

#[test]
fn a_generated_password_is_readable_by_its_instance_only() {
    if !is_root() {
        eprintln!("skipped: needs root to read as other users");
        return;
    }
    if !have(
        "a_generated_password_is_readable_by_its_instance_only",
        &["setpriv", "useradd", "groupadd"],
    ) {
        return;
    }
    let env = TestEnv::new();
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).expect("chmod");
    let software = env
        .write("p/software.cfg", PASSWORD_SOFTWARE)
        .to_string_lossy()
        .into_owned();
    let password = |p: &Path| {
        let conf = std::fs::read_to_string(p.join("etc/conf")).expect("conf");
        let pw = conf.trim().trim_start_matches("password=").to_owned();
        assert!(pw.len() >= 8, "{conf}");
        pw
    };
    // without instance users: root's alone (its services run as root); nobody finds it
    let plain = TestEnv::new();
    std::fs::set_permissions(plain.path(), PermissionsExt::from_mode(0o755)).expect("chmod");
    let r = Root::new(&plain);
    r.ok(&["instance", "create", "web", "--software", &software]);
    let pw = password(&r.partition("web"));
    let conf = r.partition("web").join("etc/conf");
    let (ok, err) = as_user(65534, 65534, &["cat", &conf.to_string_lossy()]);
    assert!(!ok && err.contains("Permission denied"), "{err}");
    let grep = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["grep", "-rl", &pw])
        .arg(plain.path())
        .output()
        .expect("grep");
    let found = String::from_utf8_lossy(&grep.stdout);
    assert!(found.trim().is_empty(), "readable by others: {found}");
    // software outputs stay readable by all
    let profile = r
        .entries()
        .into_iter()
        .find(|e| e.ends_with("-instance-profile"))
        .expect("instance-profile");
    let profile = r.root.join("store").join(profile).join("instance.cfg");
    assert!(as_user(65534, 65534, &["cat", &profile.to_string_lossy()]).0);
    // with instance users: the instance's user reads its password, another instance's does not
    let r = Root::new(&env);
    env.write("root/etc/slapstore.toml", INSTANCE_USERS);
    r.ok(&["instance", "create", "a", "b", "--software", &software]);
    let (pa, pb) = (r.partition("a"), r.partition("b"));
    let owner_of = |p: &Path| std::fs::metadata(p.join("srv")).expect("srv").uid();
    let (ua, ub) = (owner_of(&pa), owner_of(&pb));
    assert!(ua >= 61000 && ub >= 61000 && ua != ub, "{ua} {ub}");
    let ga = std::fs::metadata(&pa).expect("a").gid();
    let gb = std::fs::metadata(&pb).expect("b").gid();
    let conf_a = pa.join("etc/conf").to_string_lossy().into_owned();
    let (ok, out) = {
        let out = Command::new("setpriv")
            .arg(format!("--reuid={ua}"))
            .arg(format!("--regid={ga}"))
            .args(["--clear-groups", "--", "cat", &conf_a])
            .output()
            .expect("cat");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(
        ok && out.contains(&password(&pa)),
        "a cannot read its own password"
    );
    let (ok, err) = as_user(ub, gb, &["cat", &conf_a]);
    assert!(
        !ok && err.contains("Permission denied"),
        "b reads a's password: {err}"
    );
    let grep = Command::new("setpriv")
        .arg(format!("--reuid={ub}"))
        .arg(format!("--regid={gb}"))
        .args(["--clear-groups", "--", "grep", "-rl", &password(&pa)])
        .arg(env.path())
        .output()
        .expect("grep");
    let found = String::from_utf8_lossy(&grep.stdout);
    assert!(found.trim().is_empty(), "b finds a's password in: {found}");
}
