//! End-to-end tests of what makes real SlapOS releases plan and build: the instance profile a
//! release carries (`instance.cfg`, then `template.cfg`, slapgrid's order), remote patches,
//! references into other parts' outputs, and the options real profiles write.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{repo_root, Root, TestEnv};

/// The SlapOS corpus (`../shared/corpus/slapos`, or `$SLAPSTORE_CORPUS`), if this machine has
/// it: tests on real profiles say they are skipped without it.
fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SLAPSTORE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/corpus/slapos"));
    if dir.join("stack/slapos.cfg").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: no SlapOS corpus at {}", dir.display());
        None
    }
}

fn plan(r: &Root, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["plan", "--json"];
    all.extend(args);
    let text = r.ok(&all);
    serde_json::from_str::<Value>(&text)
        .expect("plan --json")
        .as_array()
        .expect("a list")
        .clone()
}

/// Where the release of a plan takes its instance profile from.
fn instance_profile(plan: &[Value]) -> Value {
    plan.iter()
        .find(|d| d["recipe"] == "release")
        .expect("a release")["instance-profile"]
        .clone()
}

#[test]
fn jinja2_instance_cfg_is_the_instance_profile_end_to_end() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let profile = repo_root().join("examples/jinja-instance/software.cfg");
    let profile = profile.to_string_lossy();
    assert_eq!(
        instance_profile(&plan(&r, &[&profile])),
        "[instance-profile] (instance.cfg)"
    );
    r.ok(&[
        "instance",
        "create",
        "hi",
        "--software",
        &profile,
        "-p",
        "name=you",
    ]);
    assert_eq!(r.serve("hi"), "Hello, you!\n");
    // the release carries the file the jinja2 part rendered, software values filled in
    let wrapper = std::fs::read_to_string(r.partition("hi").join("bin/run")).expect("wrapper");
    let greeter = r
        .entries()
        .into_iter()
        .find(|n| n.ends_with("-greeter"))
        .expect("greeter built");
    assert!(wrapper.contains(&greeter), "{wrapper}");
    r.ok(&[
        "instance",
        "upgrade",
        "hi",
        "--software",
        &profile,
        "-p",
        "name=me",
    ]);
    assert_eq!(r.serve("hi"), "Hello, me!\n");
}

#[test]
fn instance_cfg_comes_before_template_cfg_then_instance_profile() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let part = |name: &str, file: &str, says: &str| {
        format!(
            "[{name}]\nrecipe = slapos.recipe.template\noutput = ${{buildout:directory}}/{file}\n\
             inline =\n  [buildout]\n  parts = t\n  [t]\n  recipe = slapos.recipe.template\n  \
             output = $${{buildout:directory}}/says\n  inline = {says}\n"
        )
    };
    env.write("other.cfg", "[buildout]\nparts =\n");
    // `template.cfg` is listed, and installed, first: `instance.cfg` still wins
    let both = env.write(
        "both/software.cfg",
        &format!(
            "[buildout]\nparts = old new\ninstance-profile = ../other.cfg\n{}{}",
            part("old", "template.cfg", "template"),
            part("new", "instance.cfg", "instance")
        ),
    );
    let both = both.to_string_lossy();
    assert_eq!(
        instance_profile(&plan(&r, &[&both])),
        "[new] (instance.cfg)"
    );
    r.ok(&["instance", "create", "a", "--software", &both]);
    let says = r.partition("a").join("says");
    assert_eq!(std::fs::read_to_string(&says).expect("says"), "instance");
    // without it, `template.cfg`
    let old = ["-O", "buildout:parts=old"];
    assert_eq!(
        instance_profile(&plan(&r, &[&both, old[0], old[1]])),
        "[old] (template.cfg)"
    );
    // without either, `[buildout] instance-profile`; with nothing, none
    let none = ["-O", "buildout:parts="];
    let from = instance_profile(&plan(&r, &[&both, none[0], none[1]]));
    assert!(
        from.as_str().is_some_and(|f| f.ends_with("other.cfg`")),
        "{from}"
    );
    let bare = env.write("bare/software.cfg", "[buildout]\nparts =\n");
    assert_eq!(
        instance_profile(&plan(&r, &[&bare.to_string_lossy()])),
        Value::Null
    );
}

#[test]
fn a_real_release_finds_its_instance_cfg() {
    let Some(corpus) = corpus() else { return };
    let env = TestEnv::new();
    let r = Root::new(&env);
    // mosquitto's release renders instance.cfg with jinja2, as 36 of the corpus's 72 releases
    // do; its own parts plan (the stack's eggs are another matter)
    let profile = corpus.join("software/mosquitto/software.cfg");
    let planned = plan(
        &r,
        &[
            &profile.to_string_lossy(),
            "-O",
            "buildout:parts=instance-profile",
        ],
    );
    assert_eq!(
        instance_profile(&planned),
        "[instance-profile] (instance.cfg)"
    );
    let parts: Vec<&str> = planned.iter().filter_map(|d| d["part"].as_str()).collect();
    assert!(parts.contains(&"mosquitto"), "{parts:?}");
}

/// The patched-c example with its patch at a remote URL: `(profile, patch md5)`.
fn remote_patch_project(env: &TestEnv, url: &str) -> (String, String) {
    let example = repo_root().join("examples/patched-c");
    for f in ["greet-1.0.tar.gz", "fix-greeting.patch"] {
        std::fs::copy(example.join(f), env.path().join(f)).expect("copy");
    }
    let profile = std::fs::read_to_string(example.join("software.cfg")).expect("read");
    let md5 = "82cb7d66f16975696e80f25afc1c388f".to_owned();
    let profile = profile.replace(
        "${:_profile_base_location_}/fix-greeting.patch#",
        &format!("{url}#"),
    );
    assert!(profile.contains(url), "{profile}");
    (profile, md5)
}

fn greet_path(r: &Root, profile: &str) -> String {
    plan(r, &[profile])
        .iter()
        .find(|d| d["part"] == "greet")
        .expect("greet")["path"]
        .as_str()
        .expect("path")
        .to_owned()
}

#[test]
fn remote_patches_are_fetched_by_checksum_from_the_download_cache() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // nothing listens there: the patch can only come from the download cache
    let url = "https://patches.invalid/debian/patches/fix-greeting.patch?full_index=1";
    let (profile, md5) = remote_patch_project(&env, url);
    env.write("software.cfg", &profile);

    // plan reads nothing remote; the patch's checksum is its identity, not its URL
    let planned = greet_path(&r, "software.cfg");
    env.write(
        "mirror/software.cfg",
        &profile
            .replace(url, "http://mirror.invalid/p.diff")
            .replace("${:_profile_base_location_}", &env.path().to_string_lossy()),
    );
    assert_eq!(greet_path(&r, "mirror/software.cfg"), planned);
    env.write(
        "other/software.cfg",
        &profile
            .replace(&md5, "0123456789abcdef0123456789abcdef")
            .replace("${:_profile_base_location_}", &env.path().to_string_lossy()),
    );
    assert_ne!(greet_path(&r, "other/software.cfg"), planned);

    // offline and not in the cache: the build fails, naming the patch, and builds nothing
    let out = r.run(&["build", "--offline", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("greet") && out.stderr.contains("fix-greeting.patch"),
        "{}",
        out.stderr
    );
    assert!(
        !r.entries().iter().any(|n| n.ends_with("-greet")),
        "{:?}",
        r.entries()
    );

    // `add-source` puts it in the cache; the offline build then applies it
    let added = r.ok(&["add-source", "fix-greeting.patch"]);
    assert!(added.contains(&format!("md5:{md5}")), "{added}");
    let out = r.run(&["build", "--offline", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let greet = built["parts"]["greet"].as_str().expect("greet");
    assert_eq!(greet, planned);
    let run = std::process::Command::new(format!("{greet}/bin/greet"))
        .arg("remote")
        .output()
        .expect("run greet");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "Hello, remote! (patched)\n"
    );
}

#[test]
fn a_remote_patch_without_checksum_is_refused_unless_allowed() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let url = "https://patches.invalid/fix-greeting.patch";
    let (profile, md5) = remote_patch_project(&env, url);
    env.write("software.cfg", &profile.replace(&format!("#{md5}"), ""));
    let out = r.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("patches")
            && out.stderr.contains("has no checksum")
            && out.stderr.contains("software.cfg:11"),
        "{}",
        out.stderr
    );
    // `plan` plans it by its URL, with a warning pointing at it
    let out = r.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("is an unpinned input") && out.stderr.contains("software.cfg:11"),
        "{}",
        out.stderr
    );
    let out = r.run(&["plan", "--allow-unpinned", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("unpinned"), "{}", out.stderr);
    // a malformed checksum is a profile error too
    env.write("software.cfg", &profile.replace(&md5, "xyz"));
    let out = r.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("patches"), "{}", out.stderr);
    assert!(r.entries().is_empty());
}

#[test]
fn an_explicit_default_location_is_the_default() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let (profile, _) = remote_patch_project(&env, "${:_profile_base_location_}/fix-greeting.patch");
    // as cryptopp's and qt's profiles write it, used by another option; a tarball beside it
    // unpacked to buildout's default `destination`
    let explicit = format!(
        "{profile}location = ${{buildout:parts-directory}}/${{:_buildout_section_name_}}\n\
         post-install = test -x ${{:location}}/bin/greet\n\
         [buildout]\nparts += tree\n\
         [tree]\nrecipe = slapos.recipe.build:download-unpacked\n\
         url = ${{:_profile_base_location_}}/greet-1.0.tar.gz\n\
         destination = ${{buildout:parts-directory}}//tree/\n"
    );
    env.write("software.cfg", &explicit);
    // the same without them (cmmi's own spelling of its location)
    let with_post_install = format!(
        "{profile}post-install = test -x @@LOCATION@@/bin/greet\n\
         [buildout]\nparts += tree\n\
         [tree]\nrecipe = slapos.recipe.build:download-unpacked\n\
         url = ${{:_profile_base_location_}}/greet-1.0.tar.gz\n"
    );
    env.write("implicit/software.cfg", &with_post_install);
    for f in ["greet-1.0.tar.gz", "fix-greeting.patch"] {
        std::fs::copy(env.path().join(f), env.path().join("implicit").join(f)).expect("copy");
    }
    let parts = |profile: &str| {
        let mut p = plan(&r, &[profile]);
        p.retain(|d| d["recipe"] != "release");
        p
    };
    assert_eq!(parts("software.cfg"), parts("implicit/software.cfg"));
    // built: `${:location}` in post-install was the store path
    let out = r.run(&["build", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let tree = built["parts"]["tree"].as_str().expect("tree");
    assert!(
        std::path::Path::new(tree).join("configure").exists(),
        "{tree}"
    );

    // any other location is refused, naming the option and its line (cmmi's own words)
    let elsewhere = format!("{profile}location = ${{buildout:parts-directory}}/greet/src\n");
    env.write("software.cfg", &elsewhere);
    let out = r.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("software.cfg:14") && out.stderr.contains("invalid 'location'"),
        "{}",
        out.stderr
    );
}

#[test]
fn another_location_is_refused_with_the_option_to_change() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = src\n[src]\nrecipe = slapos.recipe.build:download-unpacked\n\
         url = ${:_profile_base_location_}/a.tar.gz\nmd5sum = 0123456789abcdef0123456789abcdef\n\
         destination = ${buildout:parts-directory}/elsewhere/src\n",
    );
    let out = r.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("software.cfg:7")
            && out.stderr.contains("remove `destination`")
            && out.stderr.contains("${buildout:parts-directory}/src"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_archive_unpacked_directly_in_the_parts_directory_under_another_name_is_the_store_path() {
    // as component/cython-zstd's `[cython-zstd-source]` (erp5, neoppod, wendelin): other parts
    // reach it as `${cython-zstd-source:location}`
    let env = TestEnv::new();
    let r = Root::new(&env);
    std::fs::copy(
        repo_root().join("examples/patched-c/greet-1.0.tar.gz"),
        env.path().join("greet-1.0.tar.gz"),
    )
    .expect("copy");
    env.write(
        "software.cfg",
        "[buildout]\nparts = user\n[src]\nrecipe = slapos.recipe.build:download-unpacked\n\
         url = ${:_profile_base_location_}/greet-1.0.tar.gz\n\
         destination = ${buildout:parts-directory}/greet\n\
         [user]\nrecipe = slapos.recipe.template\ninline = ${src:location}\n\
         output = ${buildout:parts-directory}/user/where\n",
    );
    let out = r.run(&["build", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let src = built["parts"]["src"].as_str().expect("src");
    let user = built["parts"]["user"].as_str().expect("user");
    assert!(Path::new(src).join("configure").exists(), "{src}");
    assert_eq!(
        std::fs::read_to_string(Path::new(user).join("where")).expect("where"),
        src
    );
}

#[test]
fn options_pointing_into_another_parts_output_are_read_when_it_is_built() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    std::fs::copy(
        repo_root().join("examples/patched-c/greet-1.0.tar.gz"),
        env.path().join("greet-1.0.tar.gz"),
    )
    .expect("copy");
    // a cmmi `path` into an unpacked tree; jinja2 templates that a shell part makes and that a
    // template part renders (as firefox's fonts.conf is made from fontconfig's template)
    let made = "{{ greeting }} from a made template\n";
    let md5 = md5_hex(made);
    let profile = format!(
        "[buildout]\nparts = greet made rendered\n\
         [src]\nrecipe = slapos.recipe.build:download-unpacked\n\
         url = ${{:_profile_base_location_}}/greet-1.0.tar.gz\n\
         [greet]\nrecipe = slapos.recipe.cmmi\npath = ${{src:location}}\n\
         configure-options = --with-greeting=Hi\n\
         [maker]\nrecipe = plone.recipe.command\ncommand = printf '{{{{ greeting }}}} from a made template\\n' > $out/t.in\n\
         [made]\nrecipe = slapos.recipe.template:jinja2\nurl = ${{maker:location}}/t.in\n\
         md5sum = {md5}\noutput = ${{buildout:directory}}/made\ncontext = raw greeting Hello\n\
         [tpl]\nrecipe = slapos.recipe.template\ninline = {{{{ word }}}} rendered twice\n\
         output = ${{buildout:parts-directory}}/tpl/t.in\n\
         [rendered]\nrecipe = slapos.recipe.template:jinja2\nurl = ${{tpl:output}}\n\
         output = ${{buildout:directory}}/rendered\ncontext = raw word Once\n"
    );
    env.write("software.cfg", &profile);
    let planned = plan(&r, &["software.cfg"]);
    let deps = |part: &str| planned.iter().find(|d| d["part"] == part).expect(part)["deps"].clone();
    assert_eq!(deps("greet"), serde_json::json!(["src"]));
    assert_eq!(deps("made"), serde_json::json!(["maker"]));
    assert_eq!(deps("rendered"), serde_json::json!(["tpl"]));
    let out = r.run(&["build", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let part = |name: &str| built["parts"][name].as_str().expect(name).to_owned();
    let run = std::process::Command::new(format!("{}/bin/greet", part("greet")))
        .output()
        .expect("run greet");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "Hi, world\n");
    let read = |name: &str, file: &str| {
        std::fs::read_to_string(format!("{}/{file}", part(name))).expect(file)
    };
    assert_eq!(read("made", "made"), "Hello from a made template\n");
    assert_eq!(read("rendered", "rendered"), "Once rendered twice");

    // what the maker makes is an input: another command, another template and store path
    let changed = profile.replace("from a made", "from another made");
    env.write("software.cfg", &changed);
    let made_path = |r: &Root| {
        plan(r, &["software.cfg"])
            .iter()
            .find(|d| d["part"] == "made")
            .expect("made")["path"]
            .clone()
    };
    assert_ne!(made_path(&r), serde_json::json!(part("made")));
    // and the template's MD5 is checked when it is read, at build time
    let out = r.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("made") && out.stderr.contains("MD5"),
        "{}",
        out.stderr
    );

    // slapos.recipe.template renders when the profile is read: it cannot wait for a build
    let plain = profile.replace(
        "[made]\nrecipe = slapos.recipe.template:jinja2\n",
        "[made]\nrecipe = slapos.recipe.template\n",
    );
    env.write("software.cfg", &plain);
    let out = r.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("made by part [maker]") && out.stderr.contains(":jinja2"),
        "{}",
        out.stderr
    );
}

/// The MD5 of `text`, in hex, by `md5sum`.
fn md5_hex(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("md5sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("md5sum");
    String::from_utf8_lossy(&out.stdout)[..32].to_owned()
}

#[test]
fn slashes_in_part_names_collective_templates_and_software_time_directories() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // as stack/lamp writes its composer wrapper, and simpleran its `[cell/common.json]`;
    // collective.recipe.template's `${x}` is `${<its part>:x}`
    env.write("composer.in", "#!/bin/sh\necho ${greeting} from $0\n");
    env.write(
        "software.cfg",
        "[buildout]\nparts = cell/common.json user\n\
         [cell/common.json]\nrecipe = slapos.recipe.template\ninline = {\"cell\": 1}\n\
         output = ${buildout:directory}/common.json\n\
         [composer]\nrecipe = collective.recipe.template\n\
         location = ${buildout:parts-directory}/${:_buildout_section_name_}\n\
         greeting = hello\ninput = ${:_profile_base_location_}/composer.in\n\
         output = ${:location}/bin/composer\nmode = 755\n\
         [user]\nrecipe = slapos.recipe.template\ninline = ${composer:output}\n\
         output = ${buildout:directory}/user\n",
    );
    let out = r.run(&["build", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let cell = built["parts"]["cell+common.json"].as_str().expect("cell");
    assert!(cell.ends_with("-cell+common.json"), "{cell}");
    assert_eq!(
        std::fs::read_to_string(format!("{cell}/common.json")).expect("common.json"),
        "{\"cell\": 1}"
    );
    // the collective template is rendered with its short references, below its location
    let composer = built["parts"]["composer"].as_str().expect("composer");
    let script = format!("{composer}/bin/composer");
    let run = std::process::Command::new(&script).output().expect("run");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        format!("hello from {script}\n")
    );
    let user = built["parts"]["user"].as_str().expect("user");
    assert_eq!(
        std::fs::read_to_string(format!("{user}/user")).expect("user"),
        script
    );

    // software-time mkdirectory makes its directories in its own output, where downloads put
    // their files by name (as SlapOS releases give their JSON schemas a place)
    env.write("dirs/schema.json", "{}\n");
    env.write(
        "dirs/software.cfg",
        "[buildout]\nparts = directory schema\n[directory]\n\
         recipe = slapos.recipe.build:mkdirectory\njson-schema = ${buildout:directory}/json\n\
         deep = ${buildout:parts-directory}/a b/c\n\
         [schema]\nrecipe = slapos.recipe.build:download\n\
         url = ${:_profile_base_location_}/schema.json\n\
         destination = ${directory:json-schema}/schema.json\n",
    );
    let out = r.run(&["build", "--json", "dirs/software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let directory = built["parts"]["directory"].as_str().expect("directory");
    assert!(Path::new(directory).join("json").is_dir(), "{directory}");
    assert!(Path::new(directory).join("a b/c").is_dir(), "{directory}");
    let schema = built["parts"]["schema"].as_str().expect("schema");
    assert_eq!(
        std::fs::read_to_string(format!("{schema}/schema.json")).expect("schema.json"),
        "{}\n"
    );
    // a directory outside the buildout directory is refused, naming its line
    env.write(
        "dirs/software.cfg",
        "[buildout]\nparts = directory\n[directory]\n\
         recipe = slapos.recipe.build:mkdirectory\nelsewhere = /var/tmp/x\n",
    );
    let out = r.run(&["plan", "dirs/software.cfg"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("software.cfg:5") && out.stderr.contains("`/var/tmp/x` does not"),
        "{}",
        out.stderr
    );
}

#[test]
fn cmmi_python_hooks_run_with_options_buildout_and_environment() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let (profile, _) = remote_patch_project(&env, "${:_profile_base_location_}/fix-greeting.patch");
    let hooks = "import os\n\
        def before(options, buildout, environment):\n\
        \x20   # in the unpacked source, before configure\n\
        \x20   assert os.path.exists('configure'), os.listdir('.')\n\
        \x20   with open(os.path.join(environment['TMPDIR'], 'seen'), 'w') as f:\n\
        \x20       f.write(buildout['greet']['configure-options'])\n\
        def after(options, buildout):\n\
        \x20   seen = open(os.path.join(os.environ['TMPDIR'], 'seen')).read()\n\
        \x20   with open(os.path.join(options['location'], 'hooks.txt'), 'w') as f:\n\
        \x20       f.write('%s|%s|%s' % (seen, os.path.isdir(buildout['buildout']['directory']), os.path.exists('greet')))\n";
    env.write("hooks.py", hooks);
    let md5 = md5_hex(hooks);
    let with_hooks = format!(
        "{profile}pre-configure-hook = ${{:_profile_base_location_}}/hooks.py#{md5}:before\n\
         post-make-hook = ${{:_profile_base_location_}}/hooks.py#{md5}:after\n"
    );
    env.write("software.cfg", &with_hooks);
    let out = r.run(&["build", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let greet = built["parts"]["greet"].as_str().expect("greet");
    assert_eq!(
        std::fs::read_to_string(format!("{greet}/hooks.txt")).expect("hooks.txt"),
        "--with-greeting=Hello|True|True"
    );

    // the hook's file is an input: another hook, another store path
    let before = greet_path(&r, "software.cfg");
    let changed = hooks.replace("'%s|%s|%s'", "'%s/%s/%s'");
    env.write("hooks.py", &changed);
    let out = r.run(&["plan", "software.cfg"]);
    assert_eq!(out.code, 2, "a hook whose MD5 changed must be refused");
    assert!(
        out.stderr.contains("post-make-hook") || out.stderr.contains("pre-configure-hook"),
        "{}",
        out.stderr
    );
    env.write(
        "software.cfg",
        &with_hooks.replace(&md5, &md5_hex(&changed)),
    );
    assert_ne!(greet_path(&r, "software.cfg"), before);

    // a hook that raises fails the build, with its traceback in the log, and builds nothing
    let failing = "def before(options, buildout):\n    raise ValueError('no way')\n";
    env.write("hooks.py", failing);
    env.write(
        "software.cfg",
        &format!(
            "{profile}pre-configure-hook = ${{:_profile_base_location_}}/hooks.py#{}:before\n",
            md5_hex(failing)
        ),
    );
    let entries = r.entries();
    let out = r.run(&["build", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("pre-configure-hook"), "{}", out.stderr);
    assert_eq!(r.entries(), entries);
    let log = r.run(&["log", "greet"]);
    let text = format!("{}{}", log.stdout, log.stderr);
    assert!(text.contains("ValueError: no way"), "{text}");
}

#[test]
fn bzip2_builds_its_shared_library_in_a_python_hook_from_the_genuine_tarball() {
    let Some(corpus) = corpus() else { return };
    let env = TestEnv::new();
    let r = Root::new(&env);
    // SlapOS's component/bzip2 unchanged: its url is fossies.org, its tarball comes from
    // Debian's bzip2_1.0.8.orig.tar.gz (the same bytes) through the download cache
    let dir = repo_root().join("target/test-sources");
    let fetched = std::process::Command::new("bash")
        .arg(repo_root().join("tests/fixtures/debian-orig.sh"))
        .args(["bzip2", &dir.to_string_lossy()])
        .output()
        .expect("bash");
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let tarball = String::from_utf8_lossy(&fetched.stdout).trim().to_owned();
    let added = r.ok(&["add-source", &tarball]);
    assert!(
        added.contains("md5:67e051268d0c475ea773822f7500d0e5"),
        "{added}"
    );
    let profile = corpus.join("component/bzip2/buildout.cfg");
    let out = r.run(&["build", "--offline", "--json", &profile.to_string_lossy()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let bzip2 = PathBuf::from(built["parts"]["bzip2"].as_str().expect("bzip2"));
    // the post-make-hook made the shared library and its links
    let so = std::fs::read(bzip2.join("lib/libbz2.so.1.0.8")).expect("libbz2.so.1.0.8");
    assert_eq!(&so[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([so[16], so[17]]),
        3,
        "ET_DYN: a shared object"
    );
    for link in ["libbz2.so", "libbz2.so.1", "libbz2.so.1.0"] {
        assert_eq!(
            std::fs::read_link(bzip2.join("lib").join(link)).expect(link),
            PathBuf::from("libbz2.so.1.0.8")
        );
    }
    let version = std::process::Command::new(bzip2.join("bin/bzip2"))
        .arg("--help")
        .output()
        .expect("run bzip2");
    assert!(String::from_utf8_lossy(&version.stderr).contains("Version 1.0.8"));
}

#[test]
fn a_download_destination_lands_in_the_parts_output_and_target_says_where() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write("schema.json", "{}\n");
    // as SlapOS releases download their software.json schemas
    env.write(
        "software.cfg",
        &format!(
            "[buildout]\nparts = schema user\n\
             [schema]\nrecipe = slapos.recipe.build:download\n\
             url = ${{:_profile_base_location_}}/schema.json\nmd5sum = {}\n\
             destination = ${{buildout:directory}}/json-schema/software.json\n\
             [user]\nrecipe = slapos.recipe.template\ninline = ${{schema:target}}\n\
             output = ${{buildout:directory}}/user\n",
            md5_hex("{}\n")
        ),
    );
    let out = r.run(&["build", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let schema = built["parts"]["schema"].as_str().expect("schema");
    let user = built["parts"]["user"].as_str().expect("user");
    let target = std::fs::read_to_string(format!("{user}/user")).expect("user");
    assert_eq!(target, format!("{schema}/software.json"));
    assert_eq!(std::fs::read_to_string(&target).expect("target"), "{}\n");
    assert!(!env.path().join("json-schema").exists());
}

#[test]
fn slapos_recipe_build_with_init_only_has_no_output_and_install_code_is_a_script() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    // as component/defaults.cfg's [gcc] picks a compiler in `init`
    env.write(
        "software.cfg",
        "[buildout]\nparts = pick user\n\
         [pick]\nrecipe = slapos.recipe.build\ninit =\n  options['cc'] = 'c' + 'c'\n\
         [user]\nrecipe = slapos.recipe.template\ninline = ${pick:cc}\n\
         output = ${buildout:directory}/user\n",
    );
    let planned = plan(&r, &["software.cfg"]);
    let parts: Vec<&str> = planned
        .iter()
        .filter(|d| d["recipe"] != "release")
        .filter_map(|d| d["part"].as_str())
        .collect();
    assert_eq!(parts, ["user"], "an init-only part has no derivation");
    let out = r.run(&["build", "--json", "software.cfg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    let user = built["parts"]["user"].as_str().expect("user");
    assert_eq!(
        std::fs::read_to_string(format!("{user}/user")).expect("user"),
        "cc"
    );
    env.write(
        "install/software.cfg",
        "[buildout]\nparts = inst\n[inst]\nrecipe = slapos.recipe.build\n\
         install =\n  os.mkdir(location)\n",
    );
    // with `install` code it is a derivation, built in the Python host (tests/pyhost.rs)
    let planned = plan(&r, &["install/software.cfg"]);
    assert!(
        planned
            .iter()
            .any(|d| d["part"] == "inst" && d["recipe"] == "script"),
        "{planned:?}"
    );
}

#[test]
fn recipes_that_cannot_be_built_here_plan_and_their_build_says_why() {
    // fluentd's `rubygemsrecipe` and notepod's `vm.install-ubuntu`
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = gems vm office\n\
         [gems]\nrecipe = rubygemsrecipe\ngems = fluentd==1.16.2\n\
         [office]\nrecipe = z3c.recipe.openoffice\nbase-url = http://openoffice.invalid/%s.tar.gz\n\
         [vm]\nrecipe = slapos.recipe.build:vm.install-ubuntu\ndists = ubuntu-server-2510\n\
         size = 6Gi\nvm = ${qemu:location}\n\
         [qemu]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out/bin\n\
         [ubuntu-server-2510]\nx86_64.iso = ubuntu-amd64-server-2510.iso\n\
         x86_64.kernel = casper/vmlinuz\nx86_64.initrd = casper/initrd\n\
         [ubuntu-amd64-server-2510.iso]\nrecipe = slapos.recipe.build:download\n\
         url = ${:_profile_base_location_}/server.iso\nfilename = server.iso\n",
    );
    env.write("server.iso", "an installer image\n");
    let planned = plan(&r, &["software.cfg"]);
    let recipes: Vec<(&str, &str)> = planned
        .iter()
        .filter_map(|d| Some((d["part"].as_str()?, d["recipe"].as_str()?)))
        .collect();
    assert!(
        ["gems", "vm", "office"]
            .iter()
            .all(|p| recipes.contains(&(*p, "unbuildable"))),
        "{planned:?}"
    );
    // their options are their identity
    env.write(
        "other/software.cfg",
        "[buildout]\nparts = gems\n[gems]\nrecipe = rubygemsrecipe\ngems = fluentd==1.16.3\n",
    );
    assert_ne!(
        plan(&r, &["other/software.cfg"])[0]["path"],
        planned[0]["path"]
    );
    let out = r.run(&["build", "--keep-going", "software.cfg"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("part `gems`: slapstore cannot build recipe `rubygemsrecipe`")
            && out.stderr.contains("rubygems.org")
            && out.stderr.contains(
                "part `vm`: slapstore cannot build recipe `slapos.recipe.build:vm.install-ubuntu`"
            )
            && out
                .stderr
                .contains("part `office`: slapstore cannot build recipe"),
        "{}",
        out.stderr
    );
    let entries = r.entries();
    assert!(
        entries
            .iter()
            .all(|e| !e.ends_with("-gems") && !e.ends_with("-vm")),
        "{entries:?}"
    );
}

#[test]
fn a_command_that_adds_a_file_to_another_parts_output_is_refused_naming_it() {
    // software/proftpd's `[proftpd-mod_auth_web]`: `prxs -i` installs the module into
    // proftpd's `libexec`, `location = ${proftpd:location}/libexec/mod_auth_web.so`
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = module\n\
         [server]\nrecipe = plone.recipe.command\ncommand = mkdir -p $out/libexec\n\
         [module]\nrecipe = plone.recipe.command\ncommand = touch ${:location}\n\
         location = ${server:location}/libexec/mod.so\n",
    );
    for cmd in ["plan", "build"] {
        let out = r.run(&[cmd, "software.cfg"]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("[module]")
                && out.stderr.contains("is inside the output of part `server`")
                && out.stderr.contains("software.cfg:9"),
            "{}",
            out.stderr
        );
    }
    assert!(r.entries().is_empty(), "{:?}", r.entries());
}

#[test]
fn a_jinja2_import_context_of_any_module_plans_and_python_imports_it_when_rendering() {
    // component/cythonplus (`import os os`, `import easy_install zc.buildout.easy_install`):
    // a module minijinja does not have makes Python's Jinja2 render, which imports it
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "software.cfg",
        "[buildout]\nparts = env.sh\n\
         [env.sh]\nrecipe = slapos.recipe.template:jinja2\noutput = ${buildout:directory}/env.sh\n\
         inline = {{ os.path.split('/a/b')[1] }}\n\
         context =\n  raw x y\n  import easy_install zc.buildout.easy_install\n",
    );
    r.ok(&["plan", "software.cfg"]);
    // a module the host Python does not have: the build fails naming the part and the module
    let missing = std::fs::read_to_string(env.path().join("software.cfg"))
        .expect("software.cfg")
        .replace("zc.buildout.easy_install", "no_such_module_here");
    env.write("software.cfg", &missing);
    let out = r.run(&["build", "software.cfg"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("env.sh")
            && out.stderr.contains("No module named 'no_such_module_here'"),
        "{}",
        out.stderr
    );
    // `os` is one minijinja's renderer has
    let profile = std::fs::read_to_string(env.path().join("software.cfg"))
        .expect("software.cfg")
        .replace("import easy_install no_such_module_here", "import os os");
    env.write("software.cfg", &profile);
    let built: Value =
        serde_json::from_str(&r.ok(&["build", "--json", "software.cfg"])).expect("json");
    let out = PathBuf::from(built["parts"]["env.sh"].as_str().expect("env.sh"));
    assert_eq!(
        std::fs::read_to_string(out.join("env.sh"))
            .expect("env.sh")
            .trim(),
        "b"
    );
}

/// Builds corpus component `component` unchanged, offline, from the Debian orig tarballs that
/// tests/fixtures/real-sources.tsv maps its sources to; the part's output.
fn build_from_debian(r: &Root, corpus: &Path, component: &str, part: &str) -> PathBuf {
    let table = std::fs::read_to_string(repo_root().join("tests/fixtures/real-sources.tsv"))
        .expect("real-sources.tsv");
    let dir = repo_root().join("target/test-sources");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[0] == component)
        .collect();
    assert!(!rows.is_empty(), "{component} is not in real-sources.tsv");
    for row in rows {
        let (md5, package, version) = (row[3], row[4], row[5]);
        let fetched = std::process::Command::new("bash")
            .arg(repo_root().join("tests/fixtures/debian-orig.sh"))
            .args([&format!("{package}={version}"), &*dir.to_string_lossy()])
            .env("DEBIAN_ORIG_SUITES", "trixie sid")
            .output()
            .expect("bash");
        assert!(
            fetched.status.success(),
            "{}",
            String::from_utf8_lossy(&fetched.stderr)
        );
        let tarball = String::from_utf8_lossy(&fetched.stdout).trim().to_owned();
        let added = r.ok(&["add-source", &tarball]);
        assert!(added.contains(&format!("md5:{md5}")), "{added}");
    }
    let profile = corpus.join(format!("component/{component}/buildout.cfg"));
    let out = r.run(&["build", "--offline", "--json", &profile.to_string_lossy()]);
    assert_eq!(out.code, 0, "{component}: {}", out.stderr);
    let built: Value = serde_json::from_str(&out.stdout).expect("json");
    PathBuf::from(built["parts"][part].as_str().expect(part))
}

#[test]
fn corpus_components_build_unchanged_from_debians_genuine_tarballs() {
    let Some(corpus) = corpus() else { return };
    let env = TestEnv::new();
    let r = Root::new(&env);
    // the fast ones of tests/real-components.sh (which builds them all)
    let unzip = build_from_debian(&r, &corpus, "unzip", "unzip");
    let version = std::process::Command::new(unzip.join("bin/unzip"))
        .arg("-v")
        .output()
        .expect("run unzip");
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("UnZip 6.00"),
        "{}",
        String::from_utf8_lossy(&version.stdout)
    );
    let libestr = build_from_debian(&r, &corpus, "libestr", "libestr");
    let so = std::fs::read(libestr.join("lib/libestr.so.0.0.0")).expect("libestr.so");
    assert_eq!(&so[..4], b"\x7fELF");
    assert!(libestr.join("include/libestr.h").is_file());
    // a Perl program: the unpacked release itself
    let postgrey = build_from_debian(&r, &corpus, "postgrey", "postgrey");
    let script = std::fs::read_to_string(postgrey.join("postgrey")).expect("postgrey");
    assert!(script.starts_with("#!/usr/bin/perl"), "{}", &script[..40]);
}
