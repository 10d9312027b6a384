//! Every example profile under `examples/` evaluates to what zc.buildout resolves it to
//! (`expected.json` beside it, made with the oracle; the example's directory is `@EXAMPLE@`).

use serde_json::Value;

use crate::common::{repo_root, run_in};

#[test]
fn examples_agree_with_zc_buildout() {
    let examples = repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).expect("examples/") {
        let dir = entry.expect("entry").path();
        let expected = dir.join("expected.json");
        if !expected.exists() {
            continue;
        }
        let want: Value =
            serde_json::from_str(&std::fs::read_to_string(&expected).expect("read")).expect("json");
        let out = run_in(
            &dir,
            &[
                "eval",
                "--json",
                "-O",
                "buildout:executable=@PYTHON@",
                "software.cfg",
            ],
        );
        assert_eq!(out.code, 0, "{}: {}", dir.display(), out.stderr);
        let text = out.stdout.replace(&*dir.to_string_lossy(), "@EXAMPLE@");
        let got: Value = serde_json::from_str(&text).expect("json output");
        assert_eq!(got, want, "{}", dir.display());
        checked += 1;
    }
    assert!(checked > 0, "no example has an expected.json");
}
