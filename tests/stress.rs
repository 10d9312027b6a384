//! Bounded stress tests of the collector against busy writers (issue 11.1): instances created
//! in two loops while a third loop collects, on one root. `SLAPSTORE_STRESS_SECS` (default 20)
//! sets how long the loops run. The collector pauses between its reads of the root sources
//! (`SLAPSTORE_TEST_ROOTS_PAUSE_MS`), so that writers finish between two reads often: with the
//! reads in the wrong order (generations before temporary roots) instances lose their output
//! in every run.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{demo, run_root, Root, TestEnv};

#[test]
fn gc_beside_instance_creation_loses_no_generation() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let secs: u64 = std::env::var("SLAPSTORE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    // the release is built once; every create then renders and records one generation
    let release = r.ok(&["build", &demo("software.cfg")]).trim().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let collections = Arc::new(AtomicUsize::new(0));
    let collector = {
        let (stop, collections) = (stop.clone(), collections.clone());
        let (root, dir) = (r.root.clone(), r.dir.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // a pause between the reads of each root source: a writer that finishes in one
                // must still be seen (the order of the reads is what this tests)
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_slapstore"))
                    .args(["-q", "gc"])
                    .arg("--root")
                    .arg(&root)
                    .env("SLAPSTORE_TEST_ROOTS_PAUSE_MS", "15")
                    .current_dir(&dir)
                    .output()
                    .expect("gc");
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "gc: {stderr}");
                assert!(!stderr.contains("warning"), "gc: {stderr}");
                collections.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let creators: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|prefix| {
            let (root, dir) = (r.root.clone(), r.dir.clone());
            let release = release.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while Instant::now() < deadline {
                    let name = format!("{prefix}{n}");
                    let out = run_root(
                        &root,
                        &dir,
                        &["-q", "instance", "create", &name, "--software", &release],
                    );
                    assert_eq!(out.code, 0, "create {name}: {}", out.stderr);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let created: usize = creators
        .into_iter()
        .map(|c| c.join().expect("creator"))
        .sum();
    stop.store(true, Ordering::Relaxed);
    collector.join().expect("collector");
    let collections = collections.load(Ordering::Relaxed);
    eprintln!("{created} instances created beside {collections} collections");
    assert!(
        created >= 20 && collections >= 10,
        "too little ran: {created} creates, {collections} collections"
    );
    // one more collection with nothing running: it must not find anything live to delete
    r.ok(&["gc"]);
    let list: Value = serde_json::from_str(&r.ok(&["instance", "list", "--json"])).expect("json");
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), created);
    let mut broken = Vec::new();
    for i in list {
        let name = i["name"].as_str().expect("name");
        let run = r.partition(name).join("bin/run");
        let ok = std::process::Command::new(&run)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            broken.push(name.to_owned());
        }
    }
    assert!(
        broken.is_empty(),
        "{} of {created} instances lost their generation's output: {broken:?}",
        broken.len()
    );
    let verify = r.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}
