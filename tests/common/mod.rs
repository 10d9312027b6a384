//! The test environment shared by the end-to-end tests: runs the real `slapstore` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run of the binary produced.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A scratch directory plus the means to run `slapstore` in it.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (parents created) under the scratch directory.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A release whose instance profile is `instance` (rendered by a jinja2 part, as 36 of the
    /// corpus's releases do: `${...}` reaches the instance as it is written); its profile's path.
    pub fn jinja2_release(&self, instance: &str) -> String {
        self.write("instance.cfg.in", instance);
        self.write(
            "software.cfg",
            "[buildout]\nparts = instance-profile\n\n[instance-profile]\n\
             recipe = slapos.recipe.template:jinja2\n\
             url = ${:_profile_base_location_}/instance.cfg.in\n\
             output = ${buildout:directory}/instance.cfg\n",
        )
        .to_string_lossy()
        .into_owned()
    }

    /// Runs `slapstore ARGS` in the scratch directory.
    pub fn run(&self, args: &[&str]) -> Output {
        run_in(self.dir.path(), args)
    }
}

/// Runs `slapstore ARGS` with `dir` as the working directory.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run slapstore");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A file of the multi-instance demo (`examples/multi-instance/FILE`), as a path argument.
pub fn demo(file: &str) -> String {
    repo_root()
        .join("examples/multi-instance")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A store root under a test's directory, and commands run on it from that directory.
pub struct Root {
    pub dir: PathBuf,
    pub root: PathBuf,
}

impl Root {
    /// `<test dir>/root`, commands run in the test's directory.
    pub fn new(env: &TestEnv) -> Root {
        Root {
            dir: env.path().to_owned(),
            root: env.path().join("root"),
        }
    }

    /// Runs `slapstore --root ROOT ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        run_root(&self.root, &self.dir, args)
    }

    /// Runs it and insists that it succeeds; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        out.stdout
    }

    /// Entries of `store/`, sorted (none if there is no store yet).
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join("store"))
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn partition(&self, name: &str) -> PathBuf {
        self.root.join("partitions").join(name)
    }

    /// Runs an instance's service (`bin/run`) once; its output.
    pub fn serve(&self, name: &str) -> String {
        let out = Command::new(self.partition(name).join("bin/run"))
            .output()
            .expect("run the service");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Runs `slapstore --root ROOT ARGS` in `dir`.
pub fn run_root(root: &Path, dir: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = vec!["--root".as_ref(), root.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    let out = Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .args(all)
        .current_dir(dir)
        .output()
        .expect("run slapstore");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether the programs `test` needs are installed (on `PATH`, or in `/usr/sbin` and `/sbin`).
/// A missing one fails the test in CI (`CI` set and not `false` or `0`), and elsewhere skips it
/// with a message on stderr that test output capture does not hide; `bash .ci/deps.sh` installs
/// them all. `SLAPSTORE_TEST_MISSING=nginx,make` pretends those are missing (to see a skip).
pub fn have(test: &str, tools: &[&str]) -> bool {
    use std::io::Write;
    let pretend = std::env::var("SLAPSTORE_TEST_MISSING").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            pretend.split(',').any(|p| p == *t) || !dirs.iter().any(|d| d.join(t).is_file())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "`{}` not installed (`bash .ci/deps.sh` installs what the tests need)",
        missing.join("`, `")
    );
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{test}: {message}; in CI a missing tool is a failure");
    // straight to the file descriptor: the test harness captures only `print!`/`eprint!`
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {message}");
    false
}

/// Waits (up to 30 s) until a running build's output holds `relative`, and returns that build's
/// scratch directory (`var/tmp/<path>`): a sandboxed build can write nothing else the host sees,
/// its output being that scratch directory's `out/` until it is complete.
pub fn wait_for_output(root: &Path, relative: &str) -> PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(entries) = std::fs::read_dir(root.join("var/tmp")) {
            for entry in entries.flatten() {
                if entry.path().join("out").join(relative).exists() {
                    return entry.path();
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no build started writing `{relative}`"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs git in `dir` with a fixed identity, insisting that it succeeds; its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
