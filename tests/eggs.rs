//! End-to-end tests of egg parts (`zc.recipe.egg` and its entry points): they plan offline with
//! an identity computed from the profile alone, and pinned wheels install offline from the
//! download cache into a store path whose console scripts and interpreter work.
//!
//! The distributions are real ones from the package index, kept in `tests/fixtures/eggs`
//! (pycodestyle 2.11.1, six 1.16.0, tomli 2.0.1 as wheel and sdist, flit_core 3.9.0; 130 KiB
//! in all, its README says where from). The tests that need uv skip without it (and fail in
//! CI), `.ci/deps.sh` installs it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::common::{repo_root, Root, TestEnv};

/// `sha256sum tests/fixtures/eggs/six-1.16.0-py2.py3-none-any.whl`
const SIX_SHA256: &str = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";

fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/eggs")
}

fn wheels() -> Vec<String> {
    [
        "pycodestyle-2.11.1-py2.py3-none-any.whl",
        "six-1.16.0-py2.py3-none-any.whl",
    ]
    .iter()
    .map(|w| fixtures().join(w).display().to_string())
    .collect()
}

/// The store path of every part of `plan --json`, by part name.
fn plan(store: &Root, profile: &str) -> serde_json::Map<String, Value> {
    let out = store.run(&["plan", "--json", profile]);
    assert_eq!(out.code, 0, "plan failed: {}", out.stderr);
    let list: Vec<Value> = serde_json::from_str(&out.stdout).expect("plan --json");
    list.into_iter()
        .map(|d| {
            (
                d["part"].as_str().expect("part").to_owned(),
                d["path"].clone(),
            )
        })
        .collect()
}

/// Runs a program, insisting that it succeeds; its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const PLAN_PROFILE: &str = "[buildout]
parts = tools libs ext dev
[versions]
six = 1.16.0
pycodestyle = 2.11.1:whl
[python-a]
executable = /opt/python-a/bin/python3
[tools]
recipe = zc.recipe.egg
eggs = pycodestyle
[libs]
recipe = zc.recipe.egg:eggs
eggs = six
python = python-a
[ext]
recipe = zc.recipe.egg:custom
egg = six
include-dirs = /opt/include
[dev]
recipe = zc.recipe.egg:develop
setup = ${buildout:directory}/src
";

#[test]
fn egg_parts_plan_offline_with_an_identity_from_the_profile() {
    let env = TestEnv::new();
    env.write(
        "src/setup.py",
        "from setuptools import setup\nsetup(name='dev')\n",
    );
    env.write("software.cfg", PLAN_PROFILE);
    let store = Root::new(&env);
    let first = plan(&store, "software.cfg");
    for part in ["tools", "libs", "ext", "dev"] {
        assert!(first.contains_key(part), "{part} in {first:?}");
    }
    // the same profile plans to the same paths
    assert_eq!(plan(&store, "software.cfg"), first);

    // every input moves the hash of the parts it concerns, and only those
    let changed = |from: &str, to: &str| {
        let text = PLAN_PROFILE.replace(from, to);
        assert_ne!(text, PLAN_PROFILE, "{from}");
        env.write("software.cfg", &text);
        let p = plan(&store, "software.cfg");
        env.write("software.cfg", PLAN_PROFILE);
        p
    };
    // a pin enters every egg part (the whole versions section)
    let p = changed("six = 1.16.0", "six = 1.17.0");
    assert_ne!(p["tools"], first["tools"]);
    assert_ne!(p["libs"], first["libs"]);
    // so does a pin's `:whl` suffix
    let p = changed("2.11.1:whl", "2.11.1");
    assert_ne!(p["tools"], first["tools"]);
    // the interpreter of `python`
    let p = changed("/opt/python-a/bin/python3", "/opt/python-b/bin/python3");
    assert_ne!(p["libs"], first["libs"]);
    assert_eq!(p["tools"], first["tools"]);
    // `:custom`'s build options
    let p = changed("include-dirs = /opt/include", "include-dirs = /opt/other");
    assert_ne!(p["ext"], first["ext"]);
    assert_eq!(p["libs"], first["libs"]);
    // `find-links`
    let p = changed(
        "eggs = pycodestyle",
        "eggs = pycodestyle\nfind-links = /opt/links",
    );
    assert_ne!(p["tools"], first["tools"]);
    // `:develop`'s tree, by content
    env.write(
        "src/setup.py",
        "from setuptools import setup\nsetup(name='dev2')\n",
    );
    let p = plan(&store, "software.cfg");
    assert_ne!(p["dev"], first["dev"]);
    assert_eq!(p["tools"], first["tools"]);
}

#[test]
fn a_python_section_without_executable_is_an_error_naming_it() {
    let env = TestEnv::new();
    env.write(
        "software.cfg",
        "[buildout]\nparts = tools\n[py]\nx = 1\n[tools]\nrecipe = zc.recipe.egg\neggs = six\npython = py\n",
    );
    let out = Root::new(&env).run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("[tools]"), "{}", out.stderr);
    assert!(
        out.stderr.contains("section `[py]` has no `executable`"),
        "{}",
        out.stderr
    );
}

const BUILD_PROFILE: &str = "[buildout]
parts = tools
[versions]
pycodestyle = 2.11.1:whl
six = 1.16.0
[tools]
recipe = zc.recipe.egg
eggs =
  pycodestyle
  six
scripts = pycodestyle=check-style
interpreter = py
initialization = import os; os.environ['EGG_INIT'] = 'from-initialization'
";

/// Builds `profile` offline; the `tools` part's output.
fn build_offline(store: &Root, profile: &str) -> String {
    let out = store.run(&["build", "--offline", "--json", profile]);
    assert_eq!(out.code, 0, "build failed: {}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).expect("build --json");
    json["parts"]["tools"].as_str().expect("tools").to_owned()
}

#[test]
fn pinned_wheels_install_offline_from_the_download_cache_with_working_scripts() {
    let env = TestEnv::new();
    env.write("software.cfg", BUILD_PROFILE);
    let store = Root::new(&env);
    let mut args = vec!["add-source"];
    let files = wheels();
    args.extend(files.iter().map(String::as_str));
    store.ok(&args);
    let out = build_offline(&store, "software.cfg");
    let planned = plan(&store, "software.cfg");
    assert_eq!(planned["tools"], out.as_str());

    // the console script, renamed by `scripts`; only that one is made
    let version = run(&format!("{out}/bin/check-style"), &["--version"]);
    assert_eq!(version.trim(), "2.11.1");
    let mut bins: Vec<String> = std::fs::read_dir(format!("{out}/bin"))
        .expect("bin")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    bins.sort();
    assert_eq!(bins, ["check-style", "py"]);
    // the interpreter: the pinned six from the output, `initialization` ran, nothing of the
    // host's site-packages on the path
    let code = "import os, six, sys; print(six.__version__); print(six.__file__); \
                print(os.environ.get('EGG_INIT')); \
                print(any('-packages' in p for p in sys.path))";
    let text = run(&format!("{out}/bin/py"), &["-c", code]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1.16.0");
    // six in a store path of its own
    let store_dir = store.root.join("store").display().to_string();
    assert!(
        lines[1].starts_with(&format!("{store_dir}/")),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("-six-1.16.0/six.py"), "{}", lines[1]);
    assert_eq!(lines[2], "from-initialization");
    assert_eq!(lines[3], "False", "host site-packages on the path");
    // what was installed, from which file, with its SHA-256
    let manifest = std::fs::read_to_string(format!("{out}/.slapstore-eggs")).expect("manifest");
    assert!(
        manifest.contains(&format!(
            "six 1.16.0 six-1.16.0-py2.py3-none-any.whl sha256:{SIX_SHA256} "
        )),
        "{manifest}"
    );
    // the part refers to each distribution's path (found by scanning)
    let refs = store.ok(&["path-info", "--json", &out]);
    assert!(refs.contains("-six-1.16.0"), "{refs}");
    assert!(refs.contains("-pycodestyle-2.11.1"), "{refs}");
    assert!(manifest.contains("pycodestyle 2.11.1 "), "{manifest}");
    // read-only and verified like every output
    store.ok(&["verify"]);
    // a rebuild does nothing
    let again = store.run(&["build", "--offline", "--json", "software.cfg"]);
    let json: Value = serde_json::from_str(&again.stdout).expect("json");
    assert_eq!(json["built"].as_array().map(Vec::len), Some(0), "{json}");
}

#[test]
fn find_links_to_a_local_directory_install_offline() {
    let env = TestEnv::new();
    let profile = BUILD_PROFILE.replace(
        "interpreter = py",
        &format!("interpreter = py\nfind-links = {}", fixtures().display()),
    );
    env.write("software.cfg", &profile);
    let store = Root::new(&env);
    let out = build_offline(&store, "software.cfg");
    let text = run(
        &format!("{out}/bin/py"),
        &["-c", "import pycodestyle; print(pycodestyle.__version__)"],
    );
    assert_eq!(text.trim(), "2.11.1");
}

#[test]
fn a_missing_pin_is_refused_when_picked_versions_are_not_allowed() {
    let env = TestEnv::new();
    let profile = "[buildout]\nparts = tools\nallow-picked-versions = false\n[versions]\n\
                   pycodestyle = 2.11.1\n[tools]\nrecipe = zc.recipe.egg\neggs =\n  pycodestyle\n  six\n";
    env.write("software.cfg", profile);
    let store = Root::new(&env);
    let files = wheels();
    let mut args = vec!["add-source"];
    args.extend(files.iter().map(String::as_str));
    store.ok(&args);
    let out = store.run(&["build", "--offline", "software.cfg"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("part `tools`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("egg `six` has no pin") && out.stderr.contains("allow-picked-versions"),
        "{}",
        out.stderr
    );
    // nothing of the part was registered
    assert!(
        !store.entries().iter().any(|e| e.ends_with("-tools")),
        "{:?}",
        store.entries()
    );
}

#[test]
fn picked_versions_are_shown_in_the_log() {
    let env = TestEnv::new();
    let profile = "[buildout]\nparts = tools\nshow-picked-versions = true\n[versions]\n\
                   pycodestyle = 2.11.1\n[tools]\nrecipe = zc.recipe.egg\neggs =\n  pycodestyle\n  six\n";
    env.write("software.cfg", profile);
    let store = Root::new(&env);
    let files = wheels();
    let mut args = vec!["add-source"];
    args.extend(files.iter().map(String::as_str));
    store.ok(&args);
    build_offline(&store, "software.cfg");
    let log = store.ok(&["log", "tools"]);
    assert!(log.contains("picked versions"), "{log}");
    assert!(log.contains("six = 1.16.0"), "{log}");
    assert!(
        !log.contains("pycodestyle = 2.11.1\n"),
        "a pinned one is not picked: {log}"
    );
}

#[test]
fn a_wrong_pin_fails_the_build_and_registers_nothing() {
    let env = TestEnv::new();
    env.write(
        "software.cfg",
        &BUILD_PROFILE.replace("six = 1.16.0", "six = 9.9.9"),
    );
    let store = Root::new(&env);
    let files = wheels();
    let mut args = vec!["add-source"];
    args.extend(files.iter().map(String::as_str));
    store.ok(&args);
    let out = store.run(&["build", "--offline", "software.cfg"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("part `tools`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("egg `six` is pinned at `9.9.9`"),
        "{}",
        out.stderr
    );
    let log = store.run(&["log", "tools"]).stdout;
    assert!(log.contains("six==9.9.9"), "{log}");
    assert!(!store.entries().iter().any(|e| e.ends_with("-tools")));
}

#[test]
fn parts_and_profiles_share_one_store_path_per_distribution_and_gc_deletes_it_when_unreached() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    let files = wheels();
    let mut args = vec!["add-source"];
    args.extend(files.iter().map(String::as_str));
    store.ok(&args);
    // one profile, two parts, both with six; another profile with six alone
    let two = "[buildout]\nparts = tools other\n[versions]\npycodestyle = 2.11.1\nsix = 1.16.0\n\
               [tools]\nrecipe = zc.recipe.egg\neggs =\n  pycodestyle\n  six\n\
               [other]\nrecipe = zc.recipe.egg:eggs\neggs = six\n";
    env.write("a/software.cfg", two);
    env.write(
        "b/software.cfg",
        "[buildout]\nparts = libs\n[versions]\nsix = 1.16.0\n\
         [libs]\nrecipe = zc.recipe.egg\neggs = six\ninterpreter = py\n",
    );
    for profile in ["a/software.cfg", "b/software.cfg"] {
        let out = store.run(&["build", "--offline", profile]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let sixes: Vec<String> = store
        .entries()
        .into_iter()
        .filter(|e| e.ends_with("-six-1.16.0"))
        .collect();
    assert_eq!(sixes.len(), 1, "{:?}", store.entries());
    let pycodestyle = |store: &Root| {
        store
            .entries()
            .iter()
            .any(|e| e.ends_with("-pycodestyle-2.11.1"))
    };
    assert!(pycodestyle(&store));
    // profile `a` removed: pycodestyle is reached by nothing, six still by `b`
    store.ok(&["software", "remove", "a/software.cfg"]);
    store.ok(&["gc"]);
    assert!(!pycodestyle(&store), "{:?}", store.entries());
    assert!(
        store.entries().iter().any(|e| e.ends_with("-six-1.16.0")),
        "{:?}",
        store.entries()
    );
    let libs = store
        .entries()
        .into_iter()
        .find(|e| e.ends_with("-libs"))
        .expect("libs");
    let py = store.root.join("store").join(libs).join("bin/py");
    let text = run(
        &py.display().to_string(),
        &["-c", "import six; print(six.__version__)"],
    );
    assert_eq!(text.trim(), "1.16.0");
}

#[test]
fn a_develop_part_installs_its_local_tree_as_a_store_path_leaving_the_tree_alone() {
    let env = TestEnv::new();
    env.write(
        "src/setup.py",
        "from setuptools import setup\nsetup(name='hello-dev', version='0.1', \
         py_modules=['hello_dev'])\n",
    );
    env.write(
        "src/hello_dev.py",
        "def main():\n    print('hello from develop')\n",
    );
    env.write(
        "software.cfg",
        "[buildout]\nparts = dev\n[dev]\nrecipe = zc.recipe.egg:develop\n\
         setup = ${buildout:directory}/src\n",
    );
    let store = Root::new(&env);
    let out = store.run(&["build", "--offline", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).expect("json");
    let dev = json["parts"]["dev"].as_str().expect("dev");
    let manifest = std::fs::read_to_string(format!("{dev}/.slapstore-eggs")).expect("manifest");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("hello-dev 0.1 "))
        .unwrap_or_else(|| panic!("{manifest}"));
    let path = line.rsplit(' ').next().expect("path");
    assert!(path.ends_with("-hello-dev-0.1"), "{line}");
    let code =
        format!("import sys; sys.path.insert(0, '{path}'); import hello_dev; hello_dev.main()");
    let text = run("/usr/bin/python3", &["-S", "-c", &code]);
    assert_eq!(text.trim(), "hello from develop");
    // the profile's tree is as it was: built from a copy
    let mut names: Vec<String> = std::fs::read_dir(env.path().join("src"))
        .expect("src")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["hello_dev.py", "setup.py"]);
    // nothing of the scratch copy's location in the shared path
    let record = std::fs::read_dir(path)
        .expect("dist")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with(".dist-info"))
        .expect("dist-info");
    assert!(!record.join("direct_url.json").exists());
    assert!(!record.join("REQUESTED").exists());
}

#[test]
fn a_develop_egg_of_a_tree_another_part_makes_is_installed_by_the_egg_parts_after_it() {
    if !crate::common::have("develop_from_a_part", &["uv", "tar"]) {
        return;
    }
    let env = TestEnv::new();
    env.write(
        "tree/hello-tree/setup.py",
        "from setuptools import setup\nsetup(name='hello-tree', version='0.2', \
         py_modules=['hello_tree'], \
         entry_points={'console_scripts': ['hello-tree = hello_tree:main']})\n",
    );
    env.write(
        "tree/hello-tree/hello_tree.py",
        "def main():\n    print('hello from a tree')\n",
    );
    let status = Command::new("tar")
        .args(["czf", "hello-tree.tar.gz", "-C", "tree", "hello-tree"])
        .current_dir(env.path())
        .status()
        .expect("tar");
    assert!(status.success());
    // the tree is made by a download part; the egg part names the develop egg, unpinned,
    // with picked versions refused: a develop egg needs no pin
    let profile = "[buildout]\nparts = src dev tools\nallow-picked-versions = false\n\
         [versions]\nhello-tree = 9.9\n\
         [src]\nrecipe = slapos.recipe.build:download-unpacked\n\
         url = ${:_profile_base_location_}/hello-tree.tar.gz\n\
         [dev]\nrecipe = zc.recipe.egg:develop\nsetup = ${src:location}\n\
         [tools]\nrecipe = zc.recipe.egg\neggs = hello-tree\n";
    env.write("software.cfg", profile);
    let store = Root::new(&env);
    // the tree does not exist at plan time: plan reads nothing of it
    let planned = plan(&store, "software.cfg");
    assert!(planned.contains_key("dev") && planned.contains_key("tools"));
    let tools = build_offline(&store, "software.cfg");
    let text = run(&format!("{tools}/bin/hello-tree"), &[]);
    assert_eq!(text.trim(), "hello from a tree");
    // one store path for the distribution, the develop part's and the egg part's
    let path_of = |out: &str| {
        let manifest = std::fs::read_to_string(format!("{out}/.slapstore-eggs")).expect("manifest");
        manifest
            .lines()
            .find(|l| l.starts_with("hello-tree 0.2 "))
            .unwrap_or_else(|| panic!("{manifest}"))
            .rsplit(' ')
            .next()
            .expect("path")
            .to_owned()
    };
    let json: Value =
        serde_json::from_str(&store.ok(&["build", "--offline", "--json", "software.cfg"]))
            .expect("json");
    let dev = json["parts"]["dev"].as_str().expect("dev");
    assert_eq!(path_of(dev), path_of(&tools));
    assert!(path_of(dev).ends_with("-hello-tree-0.2"));

    // a tree that a part writes outside its output (as SlapOS's python-slip does): plans, with
    // that part as a dependency, and the build says what is missing
    env.write(
        "outside.cfg",
        "[buildout]\nparts = dev\n\
         [src]\nrecipe = slapos.recipe.build:download-unpacked\n\
         url = ${:_profile_base_location_}/hello-tree.tar.gz\n\
         elsewhere = ${buildout:parts-directory}/elsewhere\n\
         [dev]\nrecipe = zc.recipe.egg:develop\nsetup = ${src:elsewhere}\n",
    );
    let planned = plan(&store, "outside.cfg");
    assert!(planned.contains_key("src"), "{planned:?}");
    let out = store.run(&["build", "--offline", "outside.cfg"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("[dev]") || out.stderr.contains("`dev`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("parts/elsewhere` is not a directory"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_custom_part_compiles_its_c_extension_from_the_sdist_with_its_build_options() {
    let env = TestEnv::new();
    // a real sdist with a C extension that compiles only with `include-dirs` and `define`
    env.write(
        "greet-ext-1.0/setup.py",
        "from setuptools import setup, Extension\nsetup(name='greet-ext', version='1.0', \
         ext_modules=[Extension('greet_ext', ['greet.c'])])\n",
    );
    env.write(
        "greet-ext-1.0/greet.c",
        "#include <Python.h>\n#include \"greeting.h\"\n#ifndef LOUD\n#error LOUD not defined\n#endif\n\
         static PyObject *hello(PyObject *s, PyObject *a) { return PyUnicode_FromString(GREETING); }\n\
         static PyMethodDef m[] = {{\"hello\", hello, METH_NOARGS, 0}, {0}};\n\
         static struct PyModuleDef d = {PyModuleDef_HEAD_INIT, \"greet_ext\", 0, -1, m};\n\
         PyMODINIT_FUNC PyInit_greet_ext(void) { return PyModule_Create(&d); }\n",
    );
    env.write("headers/greeting.h", "#define GREETING \"hello from C\"\n");
    std::fs::create_dir(env.path().join("links")).expect("links");
    let tar = Command::new("tar")
        .args(["czf", "links/greet-ext-1.0.tar.gz", "greet-ext-1.0"])
        .current_dir(env.path())
        .status()
        .expect("tar");
    assert!(tar.success());
    let profile = "[buildout]\nparts = ext\nfind-links = ${buildout:directory}/links\n\
                   [versions]\ngreet-ext = 1.0\n[ext]\nrecipe = zc.recipe.egg:custom\n\
                   egg = greet-ext\ninclude-dirs = headers\ndefine = LOUD\n";
    env.write("software.cfg", profile);
    let store = Root::new(&env);
    let out = store.run(&["build", "--offline", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).expect("json");
    let ext = json["parts"]["ext"].as_str().expect("ext");
    let manifest = std::fs::read_to_string(format!("{ext}/.slapstore-eggs")).expect("manifest");
    let path = manifest
        .lines()
        .find(|l| l.starts_with("greet-ext 1.0 greet-ext-1.0.tar.gz sha256:"))
        .filter(|l| !l.contains("sha256:- "))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("{manifest}"))
        .to_owned();
    let code = format!(
        "import sys; sys.path.insert(0, '{path}'); import greet_ext; print(greet_ext.hello())"
    );
    let text = run("/usr/bin/python3", &["-S", "-c", &code]);
    assert_eq!(text.trim(), "hello from C");

    // without the define the compilation fails, naming the part
    env.write("software.cfg", &profile.replace("define = LOUD\n", ""));
    let out = store.run(&["build", "--offline", "software.cfg"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("part `ext`"), "{}", out.stderr);
    let log = store.run(&["log", "ext"]).stdout;
    assert!(log.contains("LOUD not defined"), "{log}");
}

/// Runs `slapstore --root ROOT ARGS` with `SLAPSTORE_UV` set to `uv`.
fn run_with_uv(store: &Root, uv: &str, args: &[&str]) -> crate::common::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_slapstore"))
        .arg("--root")
        .arg(&store.root)
        .args(args)
        .current_dir(&store.dir)
        .env("SLAPSTORE_UV", uv)
        .output()
        .expect("run slapstore");
    crate::common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Adds fixtures to the download cache.
fn add_fixtures(store: &Root, names: &[&str]) {
    let files: Vec<String> = names
        .iter()
        .map(|n| fixtures().join(n).display().to_string())
        .collect();
    let mut args = vec!["add-source"];
    args.extend(files.iter().map(String::as_str));
    store.ok(&args);
}

#[test]
fn uv_resolves_outside_and_installs_in_the_sandbox_and_pip_is_the_fallback() {
    if !crate::common::have("uv_installs", &["uv"]) {
        return;
    }
    let env = TestEnv::new();
    env.write("software.cfg", BUILD_PROFILE);
    let store = Root::new(&env);
    add_fixtures(
        &store,
        &[
            "pycodestyle-2.11.1-py2.py3-none-any.whl",
            "six-1.16.0-py2.py3-none-any.whl",
        ],
    );
    let out = build_offline(&store, "software.cfg");
    let log = store.ok(&["log", "tools"]);
    // resolved by uv (from the cache, offline), installed by uv with no index and no network
    assert!(
        log.contains("resolve: ") && log.contains(" pip compile "),
        "{log}"
    );
    assert!(
        log.contains(" pip install --offline --no-index --no-deps"),
        "{log}"
    );
    assert!(!log.contains("installing with pip"), "{log}");
    let uv_out = out.clone();
    let text = run(
        &format!("{out}/bin/py"),
        &["-c", "import six; print(six.__version__)"],
    );
    assert_eq!(text.trim(), "1.16.0");

    // pip, when uv is not to be had, says so, and makes a working part too
    let env2 = TestEnv::new();
    env2.write("software.cfg", BUILD_PROFILE);
    let store2 = Root::new(&env2);
    add_fixtures(
        &store2,
        &[
            "pycodestyle-2.11.1-py2.py3-none-any.whl",
            "six-1.16.0-py2.py3-none-any.whl",
        ],
    );
    let built = run_with_uv(
        &store2,
        "pip",
        &["build", "--offline", "--json", "software.cfg"],
    );
    assert_eq!(built.code, 0, "{}", built.stderr);
    let json: Value = serde_json::from_str(&built.stdout).expect("json");
    let out = json["parts"]["tools"].as_str().expect("tools").to_owned();
    let log = store2.ok(&["log", "tools"]);
    assert!(
        log.contains("installing with pip: `SLAPSTORE_UV=pip`"),
        "{log}"
    );
    let version = run(&format!("{out}/bin/check-style"), &["--version"]);
    assert_eq!(version.trim(), "2.11.1");
    // same derivation, whichever installer
    assert_eq!(
        out.rsplit('/').next().map(|n| &n[..32]),
        uv_out.rsplit('/').next().map(|n| &n[..32])
    );
}

const TOMLI_PROFILE: &str = "[buildout]
parts = tools
[versions]
tomli = 2.0.1
[tools]
recipe = zc.recipe.egg
eggs = tomli
interpreter = py
";

#[test]
fn a_pin_without_whl_builds_from_the_sdist_with_its_build_dependencies_from_the_cache() {
    if !crate::common::have("sdist_builds", &["uv"]) {
        return;
    }
    let env = TestEnv::new();
    env.write("software.cfg", TOMLI_PROFILE);
    let store = Root::new(&env);
    add_fixtures(
        &store,
        &[
            "tomli-2.0.1.tar.gz",
            "tomli-2.0.1-py3-none-any.whl",
            "flit_core-3.9.0-py3-none-any.whl",
        ],
    );
    let out = build_offline(&store, "software.cfg");
    let manifest = std::fs::read_to_string(format!("{out}/.slapstore-eggs")).expect("manifest");
    // buildout's choice: the sdist, built (in the sandbox, offline) with flit_core from the cache
    assert!(
        manifest.contains("tomli 2.0.1 tomli-2.0.1.tar.gz sha256:"),
        "{manifest}"
    );
    let flit = manifest
        .lines()
        .find(|l| l.starts_with("flit-core 3.9.0 flit_core-3.9.0-py3-none-any.whl sha256:"))
        .unwrap_or_else(|| panic!("{manifest}"));
    assert!(flit.ends_with(" build"), "{flit}");
    let log = store.ok(&["log", "tools"]);
    assert!(
        log.contains("build dependencies of the sdists: flit_core"),
        "{log}"
    );
    let text = run(
        &format!("{out}/bin/py"),
        &[
            "-c",
            "import tomli; print(tomli.loads('a = 1')['a']); print(tomli.__file__)",
        ],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1");
    assert!(lines[1].contains("-tomli-2.0.1/tomli/"), "{text}");
    // the build dependency is not installed
    let code = "import importlib.util as u; print(u.find_spec('flit_core'))";
    assert_eq!(run(&format!("{out}/bin/py"), &["-c", code]).trim(), "None");

    // `:whl`: from the wheel, no build
    env.write("software.cfg", &TOMLI_PROFILE.replace("2.0.1", "2.0.1:whl"));
    let out = build_offline(&store, "software.cfg");
    let manifest = std::fs::read_to_string(format!("{out}/.slapstore-eggs")).expect("manifest");
    assert!(
        manifest.contains("tomli 2.0.1 tomli-2.0.1-py3-none-any.whl sha256:"),
        "{manifest}"
    );
    assert!(!manifest.contains("flit"), "{manifest}");
}

/// The `tools` part's build dependency line in its manifest (`flit-core VERSION ... build`).
fn flit_line(out: &str) -> String {
    let manifest = std::fs::read_to_string(format!("{out}/.slapstore-eggs")).expect("manifest");
    manifest
        .lines()
        .find(|l| l.starts_with("flit-core ") && l.ends_with(" build"))
        .unwrap_or_else(|| panic!("no flit-core build line: {manifest}"))
        .to_owned()
}

#[test]
fn a_wheel_built_from_an_sdist_is_kept_for_other_parts_and_roots_and_pins_choose_what_builds_it() {
    if !crate::common::have("built_wheel_cache", &["uv"]) {
        return;
    }
    let env = TestEnv::new();
    env.write("software.cfg", TOMLI_PROFILE);
    let store = Root::new(&env);
    add_fixtures(
        &store,
        &[
            "tomli-2.0.1.tar.gz",
            "flit_core-3.9.0-py3-none-any.whl",
            "flit_core-3.8.0-py3-none-any.whl",
        ],
    );
    let tomli = |out: &str| {
        run(
            &format!("{out}/bin/py"),
            &["-c", "import tomli; print(tomli.loads('a = 1')['a'])"],
        )
    };
    // built once (the newest build dependency the cache offers), kept in the cache
    let out = build_offline(&store, "software.cfg");
    assert!(flit_line(&out).starts_with("flit-core 3.9.0 "), "{out}");
    let log = store.ok(&["log", "tools"]);
    assert!(log.contains("build wheels: "), "{log}");
    assert!(
        log.contains(
            "`tomli-2.0.1.tar.gz`: built `tomli-2.0.1-py3-none-any.whl`, kept in the cache"
        ),
        "{log}"
    );
    let cached = store.root.join("var/cache/sources/built-wheels");
    assert_eq!(std::fs::read_dir(&cached).expect("built-wheels").count(), 1);
    assert_eq!(tomli(&out).trim(), "1");

    // another part (another derivation) installs the kept wheel: nothing is built
    env.write(
        "software.cfg",
        &TOMLI_PROFILE.replace(
            "interpreter = py",
            "interpreter = py\ninitialization = pass",
        ),
    );
    let other = build_offline(&store, "software.cfg");
    assert_ne!(other, out);
    let log = store.ok(&["log", "tools"]);
    assert!(!log.contains("build wheels: "), "{log}");
    assert!(
        log.contains("`tomli-2.0.1.tar.gz`: built wheel from the cache"),
        "{log}"
    );
    assert_eq!(tomli(&other).trim(), "1");

    // a root sharing the download cache finds it too
    let second = Root {
        dir: env.path().to_owned(),
        root: env.path().join("root2"),
    };
    std::fs::create_dir_all(second.root.join("var/cache")).expect("mkdir");
    std::os::unix::fs::symlink(
        store.root.join("var/cache/sources"),
        second.root.join("var/cache/sources"),
    )
    .expect("symlink");
    env.write("software.cfg", TOMLI_PROFILE);
    let out2 = build_offline(&second, "software.cfg");
    let log = second.ok(&["log", "tools"]);
    assert!(!log.contains("build wheels: "), "{log}");
    assert_eq!(tomli(&out2).trim(), "1");

    // a pin of the versions section chooses the build dependency: another wheel, built
    env.write(
        "software.cfg",
        &TOMLI_PROFILE.replace("[versions]\n", "[versions]\nflit-core = 3.8.0\n"),
    );
    let pinned = build_offline(&store, "software.cfg");
    assert!(
        flit_line(&pinned).starts_with("flit-core 3.8.0 "),
        "{pinned}"
    );
    let log = store.ok(&["log", "tools"]);
    assert!(log.contains("build wheels: "), "{log}");
    assert_eq!(std::fs::read_dir(&cached).expect("built-wheels").count(), 2);
    assert_eq!(tomli(&pinned).trim(), "1");

    // a pin the sdist does not allow (tomli asks for `flit_core >=3.2.0,<4`): the newest it
    // allows, the log saying why
    env.write(
        "software.cfg",
        &TOMLI_PROFILE.replace("[versions]\n", "[versions]\nflit-core = 2.0\n"),
    );
    let conflict = build_offline(&store, "software.cfg");
    assert!(
        flit_line(&conflict).starts_with("flit-core 3.9.0 "),
        "{conflict}"
    );
    let log = store.ok(&["log", "tools"]);
    assert!(
        log.contains("cannot be resolved at the pins of the versions section"),
        "{log}"
    );
}

#[test]
fn a_locked_artifact_list_is_installed_as_given_and_a_wrong_sha256_is_refused() {
    if !crate::common::have("locked_artifacts", &["uv"]) {
        return;
    }
    let env = TestEnv::new();
    let store = Root::new(&env);
    add_fixtures(&store, &["six-1.16.0-py2.py3-none-any.whl"]);
    let six = store
        .root
        .join("var/cache/sources/dists/six-1.16.0-py2.py3-none-any.whl");
    let profile = |sha: &str| {
        format!(
            "[buildout]\nparts = tools\n[versions]\nsix = 1.16.0\n[tools]\nrecipe = zc.recipe.egg\n\
             eggs = six\ninterpreter = py\negg-artifacts = six 1.16.0 \
             six-1.16.0-py2.py3-none-any.whl sha256:{sha} {}\n",
            six.display()
        )
    };
    env.write("software.cfg", &profile(SIX_SHA256));
    let out = build_offline(&store, "software.cfg");
    let log = store.ok(&["log", "tools"]);
    assert!(
        !log.contains("resolve:"),
        "a locked list is not resolved: {log}"
    );
    let text = run(
        &format!("{out}/bin/py"),
        &["-c", "import six; print(six.__version__)"],
    );
    assert_eq!(text.trim(), "1.16.0");

    let wrong = "0".repeat(64);
    env.write("software.cfg", &profile(&wrong));
    let out = store.run(&["build", "--offline", "software.cfg"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("part `tools`"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("has SHA-256 {SIX_SHA256}, not the {wrong}")),
        "{}",
        out.stderr
    );
}

#[test]
fn a_custom_egg_built_against_a_store_library_refers_to_it_and_gc_keeps_it() {
    if !crate::common::have("custom_store_library", &["uv", "cc"]) {
        return;
    }
    let env = TestEnv::new();
    env.write(
        "greet-store-1.0/setup.py",
        "from setuptools import setup, Extension\nsetup(name='greet-store', version='1.0', \
         ext_modules=[Extension('greet_store', ['g.c'], libraries=['greet'])])\n",
    );
    env.write(
        "greet-store-1.0/g.c",
        "#include <Python.h>\n#include \"greeting.h\"\n\
         static PyObject *hello(PyObject *s, PyObject *a) { return PyUnicode_FromString(greeting()); }\n\
         static PyMethodDef m[] = {{\"hello\", hello, METH_NOARGS, 0}, {0}};\n\
         static struct PyModuleDef d = {PyModuleDef_HEAD_INIT, \"greet_store\", 0, -1, m};\n\
         PyMODINIT_FUNC PyInit_greet_store(void) { return PyModule_Create(&d); }\n",
    );
    std::fs::create_dir(env.path().join("links")).expect("links");
    let tar = Command::new("tar")
        .args(["czf", "links/greet-store-1.0.tar.gz", "greet-store-1.0"])
        .current_dir(env.path())
        .status()
        .expect("tar");
    assert!(tar.success());
    // the library, built into the store by another part
    let profile = "[buildout]\nparts = greetlib ext\nfind-links = ${buildout:directory}/links\n\
        [versions]\ngreet-store = 1.0\n\
        [greetlib]\nrecipe = plone.recipe.command\ncommand =\n  mkdir -p $out/include $out/lib\n  \
        echo 'const char *greeting(void);' > $out/include/greeting.h\n  \
        echo 'const char *greeting(void) { return \"hello from a store library\"; }' > l.c\n  \
        cc -shared -fPIC -o $out/lib/libgreet.so l.c\n\
        [ext]\nrecipe = zc.recipe.egg:custom\negg = greet-store\n\
        include-dirs = ${greetlib:location}/include\nlibrary-dirs = ${greetlib:location}/lib\n\
        rpath = ${greetlib:location}/lib\n";
    env.write("software.cfg", profile);
    let store = Root::new(&env);
    let out = store.run(&["build", "--offline", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).expect("json");
    let ext = json["parts"]["ext"].as_str().expect("ext");
    let lib = json["parts"]["greetlib"]
        .as_str()
        .expect("greetlib")
        .to_owned();
    let manifest = std::fs::read_to_string(format!("{ext}/.slapstore-eggs")).expect("manifest");
    let path = manifest
        .lines()
        .find(|l| l.starts_with("greet-store 1.0 "))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("{manifest}"))
        .to_owned();
    // its own store path, which refers to the library's
    assert!(path.ends_with("-greet-store-1.0"), "{manifest}");
    let info = store.ok(&["path-info", "--json", &path]);
    assert!(info.contains(&lib), "{info}");
    // gc keeps the library while the distribution is reached (here: pinned), and the
    // extension finds it through its rpath
    store.ok(&["pin", &path, "--name", "greet"]);
    store.ok(&["software", "remove", "software.cfg"]);
    store.ok(&["gc"]);
    assert!(std::path::Path::new(&lib).exists(), "{:?}", store.entries());
    assert!(!std::path::Path::new(ext).exists(), "{:?}", store.entries());
    let code = format!(
        "import sys; sys.path.insert(0, '{path}'); import greet_store; print(greet_store.hello())"
    );
    let text = run("/usr/bin/python3", &["-S", "-c", &code]);
    assert_eq!(text.trim(), "hello from a store library");
    store.ok(&["unpin", "greet"]);
    store.ok(&["gc"]);
    assert!(
        !std::path::Path::new(&lib).exists(),
        "{:?}",
        store.entries()
    );
}

#[test]
fn a_fully_pinned_resolution_is_kept_and_a_root_sharing_the_download_cache_installs_without_resolving(
) {
    if !crate::common::have("resolution_cache", &["uv"]) {
        return;
    }
    let env = TestEnv::new();
    env.write("software.cfg", BUILD_PROFILE);
    let store = Root::new(&env);
    add_fixtures(
        &store,
        &[
            "pycodestyle-2.11.1-py2.py3-none-any.whl",
            "six-1.16.0-py2.py3-none-any.whl",
        ],
    );
    // resolved by uv, and kept: every distribution is pinned
    let out = build_offline(&store, "software.cfg");
    let log = store.ok(&["log", "tools"]);
    assert!(log.contains(" pip compile "), "{log}");
    let kept = store.root.join("var/cache/sources/resolutions");
    assert_eq!(std::fs::read_dir(&kept).expect("resolutions").count(), 1);

    // a root with a copy of the download cache (elsewhere: the cache's own files are named
    // relatively) takes the resolution as kept: uv resolves nothing
    let second = Root {
        dir: env.path().to_owned(),
        root: env.path().join("root2"),
    };
    std::fs::create_dir_all(second.root.join("var/cache")).expect("mkdir");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(store.root.join("var/cache/sources"))
        .arg(second.root.join("var/cache/sources"))
        .status()
        .expect("cp");
    assert!(copied.success());
    let out2 = build_offline(&second, "software.cfg");
    let log = second.ok(&["log", "tools"]);
    assert!(
        log.contains("resolve: from the cache of resolutions"),
        "{log}"
    );
    assert!(!log.contains(" pip compile "), "{log}");
    let text = run(
        &format!("{out2}/bin/py"),
        &["-c", "import six; print(six.__version__)"],
    );
    assert_eq!(text.trim(), "1.16.0");
    // the same files, hence the same distribution paths, as the first root's
    let manifest = |o: &str| {
        std::fs::read_to_string(format!("{o}/.slapstore-eggs"))
            .expect("manifest")
            .lines()
            .map(|l| l.rsplit('/').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(manifest(&out), manifest(&out2));
    second.ok(&["verify"]);

    // a picked version is resolved again each time, and not kept
    let picked = BUILD_PROFILE.replace("six = 1.16.0\n", "");
    assert_ne!(picked, BUILD_PROFILE);
    env.write("software.cfg", &picked);
    build_offline(&second, "software.cfg");
    let log = second.ok(&["log", "tools"]);
    assert!(log.contains(" pip compile "), "{log}");
    let kept2 = second.root.join("var/cache/sources/resolutions");
    assert_eq!(std::fs::read_dir(&kept2).expect("resolutions").count(), 1);
}

/// A release whose egg part installs the pinned uritemplate, as SlapOS's releases do through
/// slapos.toolbox, and whose instance profile (a `jinja2` part's output, given the release's
/// egg directories as software/hugo's is) has stack/monitor's `[expand-monitor-uri-template]`
/// and `extra`, more code of the same kind.
pub(crate) const URITEMPLATE_SOFTWARE: &str = "[buildout]
parts = uritemplate-eggs instance-profile

[versions]
uritemplate = 4.1.1:whl

[uritemplate-eggs]
recipe = zc.recipe.egg:eggs
eggs = uritemplate

[instance-profile]
recipe = slapos.recipe.template:jinja2
url = ${:_profile_base_location_}/instance.cfg.in
output = ${buildout:directory}/instance.cfg
context =
  key eggs_directory buildout:eggs-directory
  key develop_eggs_directory buildout:develop-eggs-directory
";

/// The instance profile of [`URITEMPLATE_SOFTWARE`]; `EXTRA` is replaced by `[extra]`'s code.
pub(crate) const URITEMPLATE_INSTANCE: &str = r#"[buildout]
parts = publish page extra
eggs-directory = {{ eggs_directory }}
develop-eggs-directory = {{ develop_eggs_directory }}
offline = true

[monitor-instance-parameter]
interface-url = https://monitor.app.officejs.com/#/?page=ojsm_dispatch&query=portal_type%3A%22Instance%20Tree%22

[monitor-publish-parameters]
monitor-url = https://[::1]:8196/public/feeds
monitor-user = admin
monitor-password = p@ss word

# stack/monitor/instance-monitor.cfg.jinja2.in, as it is
[expand-monitor-uri-template]
recipe = slapos.recipe.build
template = ${monitor-instance-parameter:interface-url}{&url,username,password}
url = ${monitor-publish-parameters:monitor-url}
username = ${monitor-publish-parameters:monitor-user}
password = ${monitor-publish-parameters:monitor-password}
init =
  import zc.buildout
  import pkg_resources
  from six.moves.urllib.parse import unquote

  buildout_options = self.buildout["buildout"]
  zc.buildout.easy_install.install(
    ["uritemplate"],
    dest=None,
    working_set=pkg_resources.working_set,
    path=[
      buildout_options["develop-eggs-directory"],
      buildout_options["eggs-directory"]])

  import uritemplate
  options['uri'] = unquote(uritemplate.URITemplate(options['template']).expand(options))

[publish]
recipe = slapos.cookbook:publish
monitor-setup-url = ${expand-monitor-uri-template:uri}

[page]
recipe = slapos.recipe.template
inline = ${expand-monitor-uri-template:uri}
output = ${buildout:directory}/etc/monitor-setup-url

[extra]
recipe = slapos.recipe.build
init =
  import pkg_resources, sys, zc.buildout.easy_install
  uritemplate = sys.modules.get('uritemplate')
  EXTRA
"#;

/// What `[expand-monitor-uri-template]` computes for [`URITEMPLATE_INSTANCE`] (as the real
/// uritemplate 4.1.1 expands it, then unquoted).
pub(crate) const EXPANDED_URI: &str = "https://monitor.app.officejs.com/#/?page=ojsm_dispatch&\
     query=portal_type:\"Instance Tree\"&url=https://[::1]:8196/public/feeds&username=admin&\
     password=p@ss word";

/// Writes the uritemplate release with `[extra]`'s code; its `software.cfg`.
pub(crate) fn uritemplate_release(env: &TestEnv, extra: &str) -> String {
    env.write(
        "monitor/instance.cfg.in",
        &URITEMPLATE_INSTANCE.replace("EXTRA", extra),
    );
    env.write("monitor/software.cfg", URITEMPLATE_SOFTWARE)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn instance_code_asking_easy_install_for_an_egg_of_the_release_imports_it_from_the_store() {
    let env = TestEnv::new();
    let store = Root::new(&env);
    let wheel = fixtures().join("uritemplate-4.1.1-py2.py3-none-any.whl");
    store.ok(&["add-source", &wheel.display().to_string()]);
    // more of what such code does (software/wendelin's `[pytz-path]`): a working set of its
    // own, `find`, a distribution's location, the global working set after `install`;
    // software/simpleran's `[activate-eggs]`: `WorkingSet.resolve` in an `Environment`
    let extra = "ws = zc.buildout.easy_install.working_set(['uritemplate'], ['/x', '/y'])\n  \
                 dist = ws.find(pkg_resources.Requirement.parse('uritemplate>=4,<5'))\n  \
                 assert dist.location.endswith('-uritemplate-4.1.1'), dist.location\n  \
                 assert uritemplate.__file__.startswith(dist.location + '/'), uritemplate.__file__\n  \
                 assert dist.location in sys.path\n  \
                 assert pkg_resources.get_distribution('uritemplate').version == '4.1.1'\n  \
                 found = pkg_resources.WorkingSet([]).resolve(\n      \
                 [pkg_resources.Requirement.parse('uritemplate')],\n      \
                 pkg_resources.Environment(['/x', '/y']))\n  \
                 assert [(d.project_name, d.version) for d in found] == [('uritemplate', '4.1.1')], found";
    let software = uritemplate_release(&env, extra);
    let built = store.run(&["build", "--offline", "--json", &software]);
    assert_eq!(built.code, 0, "build failed: {}", built.stderr);
    store.ok(&["instance", "create", "mon", "--software", &software]);

    // published and rendered: the URI the real uritemplate expands
    let shown: Value =
        serde_json::from_str(&store.ok(&["instance", "show", "mon", "--json"])).expect("json");
    assert_eq!(
        shown["connection"]["monitor-setup-url"], EXPANDED_URI,
        "{shown}"
    );
    let page = std::fs::read_to_string(store.partition("mon").join("etc/monitor-setup-url"))
        .expect("page");
    assert_eq!(page.trim_end(), EXPANDED_URI);

    // a dry run of the built release runs the code too
    let dry = store.run(&[
        "instance",
        "create",
        "mon2",
        "--dry-run",
        "--json",
        "--software",
        &software,
    ]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let dry: Value = serde_json::from_str(&dry.stdout).expect("json");
    assert_eq!(dry[0]["connection"]["monitor-setup-url"], EXPANDED_URI);
    assert_eq!(dry[0]["deferred"], serde_json::json!([]));

    // the failures name what is at fault, and create nothing
    for (code, expected) in [
        (
            "zc.buildout.easy_install.install(['toml'], dest=None, path=[])",
            "the software release has no distribution `toml`: its egg parts installed uritemplate",
        ),
        (
            "zc.buildout.easy_install.install(['uritemplate'], '/tmp/eggs')",
            "zc.buildout.easy_install.install(dest='/tmp/eggs'): installing distributions",
        ),
        (
            "zc.buildout.easy_install.install(['uritemplate==3.0.0'], None)",
            "the release's egg parts installed uritemplate 4.1.1, which is not uritemplate==3.0.0",
        ),
    ] {
        let software = uritemplate_release(&env, code);
        let built = store.run(&["build", "--offline", &software]);
        assert_eq!(built.code, 0, "build failed: {}", built.stderr);
        let out = store.run(&["instance", "create", "bad", "--software", &software]);
        assert_ne!(out.code, 0, "{code}");
        assert!(out.stderr.contains("[extra]"), "{}", out.stderr);
        assert!(out.stderr.contains(expected), "{}", out.stderr);
        assert!(!store.partition("bad").exists());
    }
}
