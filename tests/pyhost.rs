//! End-to-end tests of build-time Python: `slapos.recipe.build`'s `install` code built as a
//! `script` derivation in the build's Python host (the corpus' `[randomsleep]`, a part in the
//! corpus' maturin-bin style fetching its source by checksum), its failures, and cmmi's hooks
//! served by one host per build.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{have, repo_root, Root, TestEnv};

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SLAPSTORE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/corpus/slapos"));
    if dir.join("component/randomsleep/buildout.cfg").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: no SlapOS corpus at {}", dir.display());
        None
    }
}

fn md5_of(file: &Path) -> String {
    let out = std::process::Command::new("md5sum")
        .arg(file)
        .output()
        .expect("md5sum");
    String::from_utf8_lossy(&out.stdout)[..32].to_owned()
}

fn built(r: &Root, profile: &str) -> Value {
    let out = r.run(&["build", "--json", profile]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("build --json")
}

fn part_path(r: &Root, profile: &str, part: &str) -> String {
    let plan: Value = serde_json::from_str(&r.ok(&["plan", "--json", profile])).expect("json");
    plan.as_array()
        .expect("list")
        .iter()
        .find(|d| d["part"] == part)
        .unwrap_or_else(|| panic!("no {part} in {plan}"))["path"]
        .as_str()
        .expect("path")
        .to_owned()
}

fn log_of(r: &Root, part: &str) -> String {
    let log = r.run(&["log", part]);
    format!("{}{}", log.stdout, log.stderr)
}

#[test]
fn the_corpus_randomsleep_is_compiled_by_its_install_code() {
    let Some(corpus) = corpus() else { return };
    if !have(
        "the_corpus_randomsleep_is_compiled_by_its_install_code",
        &["gcc"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    // SlapOS's component/randomsleep unchanged (as stack/monitor and helloworld use it), and a
    // part that uses its location the way stack/monitor does (`{{ randomsleep }} 20 && ...`)
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nextends = {}\nparts = randomsleep user\n\n\
             [user]\nrecipe = slapos.recipe.template\noutput = ${{:location}}/run\n\
             location = ${{buildout:parts-directory}}/${{:_buildout_section_name_}}\n\
             inline = ${{randomsleep:location}} 0 && echo ran\n",
            corpus.join("component/randomsleep/buildout.cfg").display()
        ),
    );
    let out = built(&r, "software.cfg");
    let store_path = PathBuf::from(out["parts"]["randomsleep"].as_str().expect("randomsleep"));
    // `location = ${buildout:bin-directory}/randomsleep` is the file `randomsleep` of the output
    let program = store_path.join("randomsleep");
    let bytes = std::fs::read(&program).expect("the compiled program");
    assert_eq!(&bytes[..4], b"\x7fELF");
    let ran = std::process::Command::new(&program)
        .arg("0")
        .output()
        .expect("run");
    assert!(ran.status.success());
    let usage = std::process::Command::new(&program).output().expect("run");
    assert_eq!(usage.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&usage.stdout).starts_with("usage: "));
    // dependents see the program's path in the store
    let user = out["parts"]["user"].as_str().expect("user");
    let run = std::fs::read_to_string(format!("{user}/run")).expect("run");
    assert_eq!(run, format!("{} 0 && echo ran", program.display()));
    let log = log_of(&r, "randomsleep");
    assert_eq!(log.matches("starting the Python host").count(), 1, "{log}");
    // the code is an input: changing the C source (an option the code reads) is another path
    let before = part_path(&r, "software.cfg", "randomsleep");
    let mut text = std::fs::read_to_string(env.path().join("software.cfg")).expect("read");
    text.push_str("\n[randomsleep]\nsource += /* changed */\n");
    env.write("software.cfg", &text);
    assert_ne!(part_path(&r, "software.cfg", "randomsleep"), before);
}

/// A tool tarball at a local file URL, and a profile whose `[tool-bin]` installs it with code in
/// the style of the corpus' `[maturin-bin]` (pathlib, a `textwrap.dedent` wrapper, `chmod`), the
/// tarball fetched by its MD5, a section read through `self.buildout[options['part']]`.
fn tool_project(env: &TestEnv, install_extra: &str) -> String {
    let src = env.path().join("src/tool-1.0");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("tool"), "#!/bin/sh\necho \"tool says $*\"\n").expect("write");
    std::fs::set_permissions(src.join("tool"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let status = std::process::Command::new("tar")
        .args(["czf", "tool-1.0.tar.gz", "-C", "src", "tool-1.0"])
        .current_dir(env.path())
        .status()
        .expect("tar");
    assert!(status.success());
    let tarball = env.path().join("tool-1.0.tar.gz");
    let md5 = md5_of(&tarball);
    format!(
        "[buildout]\nparts = tool-bin\n\n\
         [tool-config]\ngreeting = hello\n\n\
         [unrelated]\nvalue = 1\n\n\
         [tool-bin]\nrecipe = slapos.recipe.build\n\
         url = file://{}\nmd5sum = {md5}\npart = tool-config\n\
         install =\n\
         \x20 def get_tool_script_path():\n\
         \x20   import pathlib\n\
         \x20   extracted = guessworkdir(self.extract(self.download()))\n\
         \x20   self.copyTree(extracted, str(location / 'dist'))\n\
         \x20   tool_script = location / 'dist' / 'tool'\n\
         \x20   assert tool_script.is_file()\n\
         \x20   return tool_script\n\
         \x20 import pathlib\n\
         \x20 import textwrap\n\
         \x20 location = pathlib.Path(location)\n\
         \x20 (location / 'bin').mkdir(parents=True, exist_ok=True)\n\
         \x20 script = get_tool_script_path()\n\
         \x20 wrapper = (location / 'bin' / 'tool')\n\
         \x20 wrapper.write_text(\n\
         \x20   textwrap.dedent(\n\
         \x20     \"\"\"\\\n\
         \x20       #!/bin/sh\n\
         \x20       exec {{}} {{}} \"$@\"\n\
         \x20     \"\"\"\n\
         \x20     ).format(script, self.buildout[options['part']]['greeting']))\n\
         \x20 wrapper.chmod(0o755)\n{install_extra}",
        tarball.display()
    )
}

#[test]
fn install_code_downloads_by_checksum_and_reads_captured_sections() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // a section the profile does not have, named literally: absent, as in buildout
    let absent = "\x20 assert self.buildout.get('no-such-section', 7) == 7\n\
                  \x20 assert 'no-such-section' not in self.buildout\n";
    env.write("software.cfg", &tool_project(&env, absent));
    let out = built(&r, "software.cfg");
    let tool = PathBuf::from(out["parts"]["tool-bin"].as_str().expect("tool-bin"));
    let ran = std::process::Command::new(tool.join("tool-bin/bin/tool"))
        .arg("world")
        .output()
        .expect("run the wrapper");
    assert!(ran.status.success(), "{ran:?}");
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "tool says hello world\n"
    );
    // the wrapper names the copy in the store, not a scratch directory
    let wrapper = std::fs::read_to_string(tool.join("tool-bin/bin/tool")).expect("wrapper");
    assert!(
        wrapper.contains(&format!("exec {}/tool-bin/dist/tool hello", tool.display())),
        "{wrapper}"
    );
    // the extracted tree (in the scratch directory) is not left anywhere in the output
    assert_eq!(
        std::fs::read_dir(&tool).expect("read").count(),
        1,
        "only `tool-bin` in the output"
    );
    let log = log_of(&r, "tool-bin");
    assert!(log.contains("fetching file://"), "{log}");

    // what the code reads is an input: the captured section, not an unrelated one
    let before = part_path(&r, "software.cfg", "tool-bin");
    let text = std::fs::read_to_string(env.path().join("software.cfg")).expect("read");
    env.write("software.cfg", &text.replace("value = 1", "value = 2"));
    assert_eq!(part_path(&r, "software.cfg", "tool-bin"), before);
    env.write(
        "software.cfg",
        &text.replace("greeting = hello", "greeting = hi"),
    );
    assert_ne!(part_path(&r, "software.cfg", "tool-bin"), before);
    env.write("software.cfg", &text.replace("0o755", "0o750"));
    assert_ne!(part_path(&r, "software.cfg", "tool-bin"), before);
}

#[test]
fn reads_and_downloads_nothing_captured_are_clear_errors_that_build_nothing() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let base = tool_project(&env, "");
    // a section named only at run time
    env.write(
        "software.cfg",
        &base.replace(
            "self.buildout[options['part']]['greeting']",
            "self.buildout['tool-' + 'config']['greeting']",
        ),
    );
    let out = r.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("section [tool-config] is not one the build-time code can read"),
        "{}",
        out.stderr
    );
    assert!(r.entries().is_empty(), "{:?}", r.entries());
    // a download that is not the part's `url` with its checksum
    env.write(
        "software.cfg",
        &base.replace("self.download()", "self.download('file:///etc/hostname')"),
    );
    let out = r.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("download of 'file:///etc/hostname' at build time"),
        "{}",
        out.stderr
    );
    assert!(r.entries().is_empty(), "{:?}", r.entries());
    // and a remote `url` without a checksum is not built (`plan` plans it with a warning)
    env.write(
        "software.cfg",
        &base
            .replace("url = file://", "url = https://example.invalid/x#")
            .replace("md5sum = ", "unused = "),
    );
    let out = r.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("has no checksum"), "{}", out.stderr);
    assert!(r.entries().is_empty(), "{:?}", r.entries());
}

#[test]
fn failing_install_code_shows_its_traceback_and_leaves_nothing_in_the_store() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = fails\n\n\
         [fails]\nrecipe = slapos.recipe.build\n\
         install =\n\
         \x20 import os\n\
         \x20 os.makedirs(location)\n\
         \x20 def check(n):\n\
         \x20   raise ValueError('no %s here' % n)\n\
         \x20 check('frobnicator')\n",
    );
    let out = r.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    for expected in [
        "part `fails` failed: its install code raised an exception",
        "Traceback (most recent call last):",
        "File \"fails\", line 5, in <module>",
        "check('frobnicator')",
        "File \"fails\", line 4, in check",
        "ValueError: no frobnicator here",
    ] {
        assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
    }
    assert!(r.entries().is_empty(), "{:?}", r.entries());
    assert!(log_of(&r, "fails").contains("ValueError: no frobnicator here"));
    // code that makes no `location` fails as slapos.recipe.build does
    env.write(
        "software.cfg",
        "[buildout]\nparts = lazy\n\n[lazy]\nrecipe = slapos.recipe.build\ninstall = pass\n",
    );
    let out = r.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("was not created"), "{}", out.stderr);
    assert!(r.entries().is_empty(), "{:?}", r.entries());
}

#[test]
fn one_python_host_serves_every_cmmi_hook_of_a_build_and_none_starts_without_hooks() {
    if !have(
        "one_python_host_serves_every_cmmi_hook_of_a_build_and_none_starts_without_hooks",
        &["cc", "make", "patch"],
    ) {
        return;
    }
    let example = repo_root().join("examples/patched-c");
    let profile = std::fs::read_to_string(example.join("software.cfg")).expect("read");
    let project = || {
        let env = TestEnv::new();
        for f in ["greet-1.0.tar.gz", "fix-greeting.patch"] {
            std::fs::copy(example.join(f), env.path().join(f)).expect("copy");
        }
        env
    };
    let plain = project();
    let r = Root::new(&plain);
    plain.write("plain.cfg", &profile);
    built(&r, "plain.cfg");
    let log = log_of(&r, "greet");
    assert!(log.contains("make install"), "{log}");
    assert!(!log.contains("Python host"), "{log}");

    let env = project();
    let r = Root::new(&env);

    let hooks = "import os\n\
        def first(options, buildout, environment):\n\
        \x20   with open(os.path.join(environment['TMPDIR'], 'pid'), 'w') as f:\n\
        \x20       f.write(str(os.getpid()))\n\
        def second(options, buildout):\n\
        \x20   pid = open(os.path.join(os.environ['TMPDIR'], 'pid')).read()\n\
        \x20   same = pid == str(os.getpid())\n\
        \x20   with open(os.path.join(options['location'], 'same-host'), 'w') as f:\n\
        \x20       f.write(str(same))\n";
    let file = env.write("hooks.py", hooks);
    let md5 = md5_of(&file);
    env.write(
        "hooks.cfg",
        &format!(
            "{profile}pre-configure-hook = ${{:_profile_base_location_}}/hooks.py#{md5}:first\n\
             pre-make-hook = ${{:_profile_base_location_}}/hooks.py#{md5}:first\n\
             post-make-hook = ${{:_profile_base_location_}}/hooks.py#{md5}:second\n"
        ),
    );
    let out = built(&r, "hooks.cfg");
    let greet = out["parts"]["greet"].as_str().expect("greet");
    assert_eq!(
        std::fs::read_to_string(format!("{greet}/same-host")).expect("same-host"),
        "True"
    );
    let log = log_of(&r, "greet");
    assert_eq!(log.matches("starting the Python host").count(), 1, "{log}");
    assert_eq!(log.matches(": in the Python host").count(), 3, "{log}");
}
