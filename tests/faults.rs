//! Reliability under faults and hostile input (`docs/reliability.md`): processes killed with
//! SIGKILL at random moments, a full disk, hostile archives. After each fault the store must
//! verify (contents and SQLite integrity), no generation may be lost, and the next operation must
//! succeed. `SLAPSTORE_FAULT_TRIALS` (default 40) sets the number of kill trials;
//! `SLAPSTORE_FAULT_SEED` replays a run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{demo, run_root as run, TestEnv};

/// A small deterministic generator (xorshift), so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The store is sound: every valid path verifies, SQLite's checks pass.
fn assert_sound(root: &Path, dir: &Path, context: &str) {
    let out = run(root, dir, &["verify", "--check-contents", "--json"]);
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.code, 0,
        "{context}: verify failed: {}{}",
        out.stdout, out.stderr
    );
    assert_eq!(report["problems"], serde_json::json!([]), "{context}");
}

/// Every generation recorded so far, as `(instance, number, path)`.
fn generations(root: &Path, dir: &Path, instances: &[&str]) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for name in instances {
        let o = run(root, dir, &["instance", "generations", "--json", name]);
        if o.code != 0 {
            continue;
        }
        let list: Value = serde_json::from_str(&o.stdout).expect("json");
        for g in list.as_array().expect("list") {
            out.push((
                name.to_string(),
                g["number"].as_i64().expect("number"),
                g["path"].as_str().expect("path").to_owned(),
            ));
        }
    }
    out
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let env = TestEnv::new();
    let dir = env.path().to_owned();
    let root = dir.join("root");
    let trials: usize = std::env::var("SLAPSTORE_FAULT_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("SLAPSTORE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    eprintln!("fault trials: {trials}, seed {seed} (SLAPSTORE_FAULT_SEED replays it)");
    let mut rng = Rng(seed);
    let v1 = demo("software.cfg");
    let instances = ["web-a", "web-b"];
    let mut recorded: Vec<(String, i64, String)> = Vec::new();
    // the root exists from the start: `verify` and `gc` do not make one
    assert_eq!(run(&root, &dir, &["store", "register"]).code, 0);
    let mut survived = 0;
    // how many of the processes are killed before they finish depends on the machine's load
    // (a delay that interrupts a build on a busy machine lets it finish on a quiet one): the
    // trials go on past `trials`, up to three times as many, until a quarter were killed
    let wanted = trials / 4 + 1;
    let mut trial = 0;
    while trial < trials || (survived < wanted && trial < 3 * trials) {
        // a software profile with several parts doing real work, new each trial
        let profile = format!("s{trial}/software.cfg");
        let text = format!(
            "[buildout]\nextends = {v1}\nparts += work1 work2 page\n\
             [server]\nversion = 3.{trial}\n\
             [work1]\nrecipe = plone.recipe.command\ncommand =\n  for i in 1 2 3 4 5 6 7 8; do head -c 200000 /dev/urandom > $out/blob$i; done\n  sleep 0.0{d}\n\
             [work2]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out/bin && echo ${{work1:location}} > $out/bin/ref && sleep 0.0{d}\n\
             [page]\nrecipe = slapos.recipe.template\noutput = ${{buildout:directory}}/page.html\ninline = <p>${{work2:location}}</p>\n",
            d = rng.below(9) + 1
        );
        std::fs::create_dir_all(dir.join(format!("s{trial}"))).expect("mkdir");
        std::fs::write(dir.join(&profile), text).expect("write");
        let op = rng.below(6);
        let instance = instances[rng.below(2) as usize];
        let exists = run(&root, &dir, &["instance", "show", instance]).code == 0;
        let args: Vec<String> = match op {
            0 | 1 => vec!["build".into(), profile.clone()],
            2 if exists => vec![
                "instance".into(),
                "upgrade".into(),
                instance.into(),
                "--software".into(),
                profile.clone(),
                "-p".into(),
                format!("greeting=t{trial}"),
            ],
            3 if exists => vec!["instance".into(), "rollback".into(), instance.into()],
            4 => vec!["gc".into()],
            _ if !exists => vec![
                "instance".into(),
                "create".into(),
                instance.into(),
                "--software".into(),
                profile.clone(),
            ],
            _ => vec![
                "instance".into(),
                "upgrade".into(),
                instance.into(),
                "--software".into(),
                profile.clone(),
            ],
        };
        let delay = Duration::from_micros(rng.below(100_000));
        let mut child = Command::new(env!("CARGO_BIN_EXE_slapstore"))
            .arg("--root")
            .arg(&root)
            .args(&args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let start = Instant::now();
        let mut finished = false;
        while start.elapsed() < delay {
            if child.try_wait().expect("wait").is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        if !finished {
            let _ = child.kill();
            survived += 1;
        }
        let _ = child.wait();
        let context = format!("trial {trial} (seed {seed}): {args:?} killed after {delay:?}");
        // killed between its commit and its switch, an instance operation leaves a partition
        // that `verify` reports and that the next instance command finishes (`instance list`)
        let out = run(&root, &dir, &["verify", "--check-contents", "--json"]);
        let report: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        let pending = report["problems"].as_array().is_some_and(|p| {
            !p.is_empty()
                && p.iter().all(|p| {
                    p.as_str()
                        .is_some_and(|p| p.contains("does not show its generation"))
                })
        });
        if pending {
            assert_eq!(run(&root, &dir, &["instance", "list"]).code, 0, "{context}");
        }
        assert_sound(&root, &dir, &context);
        // no generation recorded before is lost
        let now = generations(&root, &dir, &instances);
        for g in &recorded {
            assert!(now.contains(g), "{context}: generation {g:?} lost");
        }
        recorded = now;
        // the operation, run again to the end, succeeds
        let again = run(
            &root,
            &dir,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        // a killed rollback may have landed already; a killed create may have passed its commit
        // point (the next operation on the instance then finishes its partition)
        let expected_refusal = (op == 3 && again.stderr.contains("no earlier generation"))
            || (args.get(1).map(String::as_str) == Some("create")
                && again.stderr.contains("exists already"));
        assert!(
            again.code == 0 || expected_refusal,
            "{context}: rerun failed: {}",
            again.stderr
        );
        assert_sound(&root, &dir, &format!("{context}, rerun"));
        for name in instances {
            let partition = root.join("partitions").join(name);
            if partition.join("bin/run").exists() {
                let out = Command::new(partition.join("bin/run"))
                    .output()
                    .expect("run");
                assert!(out.status.success(), "{context}: {name} does not run");
            }
        }
        trial += 1;
    }
    eprintln!("{trial} trials, {survived} processes killed mid-operation, nothing lost");
    assert!(
        survived >= wanted,
        "too few kills landed mid-operation ({survived} of {trial} trials)"
    );
}

/// Mounts a small tmpfs (root only), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(at.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_full_disk_fails_builds_cleanly() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small filesystem needs root");
        return;
    }
    let env = TestEnv::new();
    let dir = env.path().to_owned();
    let disk = SmallDisk::mount(&dir.join("disk"), "6m").expect("mount a tmpfs (as root)");
    let root = disk.0.join("root");
    env.write("small/software.cfg", "[buildout]\nparts = small\n[small]\nrecipe = plone.recipe.command\ncommand = echo small > $out/x\n");
    env.write("big/software.cfg", "[buildout]\nparts = big\n[big]\nrecipe = plone.recipe.command\ncommand = head -c 20000000 /dev/zero > $out/big\n");
    let out = run(&root, &dir, &["build", "small/software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&root, &dir, &["build", "big/software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("big"), "{}", out.stderr);
    assert_sound(&root, &dir, "after running out of space");
    let entries: Vec<_> = std::fs::read_dir(root.join("store"))
        .expect("store")
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "only the small build's outputs: {entries:?}"
    );
    // and the space is back: more builds work
    env.write("small2/software.cfg", "[buildout]\nparts = small2\n[small2]\nrecipe = plone.recipe.command\ncommand = echo again > $out/x\n");
    let out = run(&root, &dir, &["build", "small2/software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // a store that is full to the last block still answers and verifies
    let filler = disk.0.join("filler");
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 100000000 /dev/zero > {}",
            filler.display()
        ))
        .status();
    let out = run(&root, &dir, &["build", "big/software.cfg"]);
    assert_ne!(out.code, 0);
    let _ = std::fs::remove_file(&filler);
    assert_sound(&root, &dir, "after a build on a full disk");
}

#[test]
fn hostile_archives_are_refused_and_write_nothing_outside() {
    let env = TestEnv::new();
    let dir = env.path().to_owned();
    let root = dir.join("root");
    // archives made with Python's tarfile, which writes what it is told
    let script = r#"
import io, sys, tarfile
def tar(name, entries):
    with tarfile.open(name, "w:gz") as t:
        for kind, path, arg in entries:
            info = tarfile.TarInfo(path)
            if kind == "file":
                data = arg.encode(); info.size = len(data); t.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE; info.linkname = arg; t.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE; info.linkname = arg; t.addfile(info)
            elif kind == "device":
                info.type = tarfile.CHRTYPE; info.devmajor = 1; info.devminor = 3; t.addfile(info)
tar("dotdot.tar.gz", [("file", "pkg/../../escaped", "x")])
tar("absolute.tar.gz", [("file", "/tmp/slapstore-absolute-escape", "x")])
tar("symlink.tar.gz", [("symlink", "pkg/link", "../../.."), ("file", "pkg/link/escaped", "x")])
tar("hardlink.tar.gz", [("hardlink", "pkg/passwd", "/etc/passwd")])
tar("device.tar.gz", [("device", "pkg/null", None)])
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(&dir)
        .status()
        .expect("python3");
    assert!(status.success());
    // a zip bomb-like expansion: 300 MiB of zeros in a small gzip
    let status = Command::new("sh")
        .arg("-c")
        .arg("mkdir -p bomb && head -c 314572800 /dev/zero > bomb/zeros && tar -czf bomb.tar.gz bomb && rm -r bomb")
        .current_dir(&dir)
        .status()
        .expect("sh");
    assert!(status.success());
    for (archive, why) in [
        ("dotdot", ".."),
        ("absolute", "absolute"),
        ("symlink", "link"),
        ("hardlink", "link"),
        ("device", "device"),
        ("bomb", "expan"),
    ] {
        let file = dir.join(format!("{archive}.tar.gz"));
        let md5 = Command::new("md5sum").arg(&file).output().expect("md5sum");
        let md5 = String::from_utf8_lossy(&md5.stdout)[..32].to_owned();
        env.write(
            &format!("{archive}/software.cfg"),
            &format!(
                "[buildout]\nparts = unpacked\n[unpacked]\nrecipe = slapos.recipe.build:download-unpacked\nurl = {}\nmd5sum = {md5}\n",
                file.display()
            ),
        );
        let out = run(&root, &dir, &["build", &format!("{archive}/software.cfg")]);
        assert_eq!(out.code, 1, "{archive}: {}", out.stderr);
        assert!(
            out.stderr.to_lowercase().contains(why),
            "{archive}: {}",
            out.stderr
        );
        assert_sound(&root, &dir, archive);
    }
    assert!(
        !dir.join("escaped").exists()
            && !env
                .path()
                .parent()
                .expect("parent")
                .join("escaped")
                .exists()
    );
    assert!(!Path::new("/tmp/slapstore-absolute-escape").exists());
    let store: Vec<_> = std::fs::read_dir(root.join("store"))
        .expect("store")
        .collect();
    assert!(store.is_empty(), "{store:?}");
}

#[test]
fn many_processes_at_once_on_one_root() {
    let env = TestEnv::new();
    let dir = env.path().to_owned();
    let root = dir.join("root");
    let v1 = demo("software.cfg");
    // `gc`, `verify` and `instance list` below need the root to exist already
    assert_eq!(run(&root, &dir, &["store", "register"]).code, 0);
    for i in 0..4 {
        env.write(
            &format!("p{i}/software.cfg"),
            &format!("[buildout]\nextends = {v1}\n[server]\nversion = 9.{i}\n"),
        );
    }
    // the same instance names twice: one create of each wins, the other is refused cleanly
    let mut commands: Vec<Vec<String>> = Vec::new();
    for i in 0..8 {
        let name = format!("i{}", i % 6);
        commands.push(vec![
            "instance".into(),
            "create".into(),
            name,
            "--software".into(),
            format!("p{}/software.cfg", i % 4),
        ]);
    }
    for i in 0..4 {
        commands.push(vec!["build".into(), format!("p{i}/software.cfg")]);
    }
    for _ in 0..3 {
        commands.push(vec!["gc".into()]);
        commands.push(vec!["verify".into()]);
        commands.push(vec!["instance".into(), "list".into()]);
    }
    let children: Vec<_> = commands
        .iter()
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_slapstore"))
                .arg("--root")
                .arg(&root)
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut created = 0;
    for (args, child) in commands.iter().zip(children) {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("locked") && !stderr.contains("busy"),
            "{args:?}: {stderr}"
        );
        let is_create = args.get(1).map(String::as_str) == Some("create");
        let refused = is_create && stderr.contains("exists already");
        assert!(out.status.success() || refused, "{args:?}: {stderr}");
        if is_create && out.status.success() {
            created += 1;
        }
    }
    assert_eq!(created, 6, "each instance created once");
    assert_sound(&root, &dir, "after many processes at once");
    for i in 0..6 {
        let run = root
            .join("partitions")
            .join(format!("i{i}"))
            .join("bin/run");
        let out = Command::new(&run).output().expect("run");
        assert!(out.status.success(), "i{i} does not run");
    }
}

#[test]
fn destroy_on_a_full_disk_keeps_the_data_or_finishes() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small filesystem needs root");
        return;
    }
    let env = TestEnv::new();
    let dir = env.path().to_owned();
    let disk = SmallDisk::mount(&dir.join("disk"), "8m").expect("mount a tmpfs (as root)");
    let root = disk.0.join("root");
    let software = demo("software.cfg");
    let out = run(
        &root,
        &dir,
        &["instance", "create", "web", "--software", &software],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let data = root.join("partitions/web/srv/data");
    std::fs::write(&data, "precious").expect("write data");
    // fill the disk to the last block, then grow the database's WAL as far as it goes
    let filler = disk.0.join("filler");
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 100000000 /dev/zero > {}",
            filler.display()
        ))
        .status();
    let out = run(&root, &dir, &["instance", "destroy", "web"]);
    let listed = run(&root, &dir, &["instance", "list"]);
    if out.code == 0 {
        assert!(!listed.stdout.contains("web"), "{}", listed.stdout);
        assert!(!root.join("partitions/web").exists());
    } else {
        // nothing was destroyed: still listed, the data intact
        assert!(
            listed.stdout.contains("web"),
            "{}{}",
            out.stderr,
            listed.stdout
        );
        assert_eq!(
            std::fs::read_to_string(&data).expect("the data is kept"),
            "precious"
        );
    }
    eprintln!(
        "destroy on a full disk: exit {} ({})",
        out.code,
        out.stderr.trim()
    );
    let _ = std::fs::remove_file(&filler);
    let out = run(&root, &dir, &["instance", "destroy", "web"]);
    let listed = run(&root, &dir, &["instance", "list"]);
    assert!(
        !listed.stdout.contains("web"),
        "{}{}",
        out.stderr,
        listed.stdout
    );
}
