//! End-to-end tests of what a build or a download must never touch or wait for: files outside
//! its output, the modes that let an unprivileged user own a root, stalled servers, unpinned
//! local files.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::{Root, TestEnv};

/// The output directory of the one part `name` in the store.
fn output(r: &Root, name: &str) -> std::path::PathBuf {
    let entry = r
        .entries()
        .into_iter()
        .find(|e| e.ends_with(&format!("-{name}")))
        .expect("the part's output");
    r.root.join("store").join(entry)
}

#[test]
fn a_hard_link_to_an_outside_file_is_copied_not_changed() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let outside = env.write("outside/file", "secret\n");
    std::fs::set_permissions(
        &outside,
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .expect("chmod");
    let before = std::fs::metadata(&outside).expect("stat");
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = x\n[x]\nrecipe = plone.recipe.command\ncommand =\n  mkdir -p $out/d\n  ln {o} $out/v\n  ln {o} $out/d/w\n  chmod 555 $out/d\n",
            o = outside.display()
        ),
    );
    r.ok(&["build", "software.cfg"]);
    let after = std::fs::metadata(&outside).expect("stat");
    assert_eq!(
        after.mode(),
        before.mode(),
        "the outside file's mode changed"
    );
    assert_eq!(
        after.mtime(),
        before.mtime(),
        "the outside file's mtime changed"
    );
    assert_eq!(
        after.nlink(),
        1,
        "the store still shares the outside file's inode"
    );
    let out = output(&r, "x");
    for file in ["v", "d/w"] {
        let meta = std::fs::metadata(out.join(file)).expect("stat");
        assert_eq!(meta.nlink(), 1, "{file}");
        assert_eq!(meta.mode() & 0o7777, 0o444, "{file}");
        assert_ne!(meta.ino(), before.ino(), "{file}");
        assert_eq!(
            std::fs::read_to_string(out.join(file)).expect("read"),
            "secret\n"
        );
    }
    assert!(
        std::fs::read_dir(out.join("d")).expect("dir").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .starts_with(".slapstore")),
        "a temporary copy was left"
    );
    // the outside file changes later: the store does not
    std::fs::write(&outside, "changed\n").expect("write");
    let verify = r.run(&["verify", "--check-contents"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert!(Path::new(&out.join("v")).exists());
}
