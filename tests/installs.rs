//! Instance parts installed at deploy (`frontend/src/recipes/deploy.rs`), end to end through the
//! binary: `slapos.recipe.build`'s `install` code (software/html5as's `[docroot]`, its code
//! unchanged), a `slapos.recipe.build:gitclone` (software/slapos-testing's `[download-source]`,
//! with a template rendered into the checkout as its `[caucase-test-runner]` is) and a
//! `download-unpacked`: made in the partition after the switch, kept across upgrades and
//! rollbacks that do not change them, installed again when their options change; listed by a dry
//! run, which runs none of them.

use std::path::Path;

use crate::common::{git, have, Root, TestEnv};

/// A repository with two commits; the first one's hash.
fn repository(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("mkdir");
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(dir.join("README"), "first\n").expect("write");
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "one"]);
    let first = git(dir, &["rev-parse", "HEAD"]);
    std::fs::write(dir.join("README"), "second\n").expect("write");
    git(dir, &["commit", "--quiet", "-am", "two"]);
    first
}

/// software/html5as/instance_html5as.cfg.in's `[docroot]` (its `archive` empty, as when no
/// `download_url` is given; `title` added, so that a parameter changes its options) and
/// software/slapos-testing/instance.cfg's `[download-source]` and `[caucase-test-runner]`.
fn profile(repository: &str, revision: &str) -> String {
    format!(
        "[buildout]\nparts = directory docroot caucase-test-runner\n\n\
         [slap-parameter]\ntitle = Hello\ndocroot-title = Hello\nother = x\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\nsrv = ${{buildout:directory}}/srv\n\n\
         [default_index_html]\nrecipe = slapos.recipe.template\n\
         inline = <title>${{slap-parameter:title}}</title>\n\
         output = ${{directory:srv}}/index.html\n\n\
         [docroot]\nrecipe = slapos.recipe.build\n\
         location = ${{directory:srv}}/html5as\narchive =\n\
         default_index_html = ${{default_index_html:output}}\n\
         title = ${{slap-parameter:docroot-title}}\n\
         install =\n  import os, shutil\n  if self.options['archive']:\n\
         \x20   extract_dir = self.extract(self.options['archive'])\n\
         \x20   workdir = guessworkdir(extract_dir)\n\
         \x20   self.copyTree(workdir, location)\n  else:\n\
         \x20   os.makedirs(location)\n\
         \x20   shutil.copy(self.options['default_index_html'], location)\n\
         \x20 with open(os.path.join(location, 'run'), 'w') as f:\n\
         \x20   f.write('%s %s' % (os.getpid(), self.options['title']))\n\n\
         [download-source]\nrecipe = slapos.recipe.build:gitclone\n\n\
         [caucase]\n<= download-source\nrepository = {repository}\nrevision = {revision}\n\n\
         [caucase-test-runner]\nrecipe = slapos.recipe.template\n\
         inline =\n  #!/bin/sh\n  echo ${{slap-parameter:other}}\n\
         output = ${{caucase:location}}/host_setting.sh\n"
    )
}

#[test]
fn install_code_and_a_gitclone_run_in_the_partition_and_are_kept() {
    if !have("installs", &["git", "python3"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let repo = env.path().join("repo");
    let first = repository(&repo);
    let software = env.jinja2_release(&profile(&repo.display().to_string(), &first));
    let p = r.partition("w");
    // a dry run lists them and runs nothing
    let dry = r.ok(&[
        "instance",
        "create",
        "w",
        "--dry-run",
        "--software",
        &software,
    ]);
    let listed = dry
        .split("installed at deploy (run after each switch):")
        .nth(1)
        .unwrap_or_else(|| panic!("{dry}"));
    assert!(
        listed.contains("docroot") && listed.contains("caucase"),
        "{dry}"
    );
    assert!(!p.exists(), "a dry run makes no partition");

    r.ok(&["instance", "create", "w", "--software", &software]);
    let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    // the install code ran after the switch: it copied the file an earlier part rendered
    assert_eq!(read("srv/html5as/index.html"), "<title>Hello</title>");
    let run = read("srv/html5as/run");
    assert!(run.ends_with(" Hello"), "{run}");
    // the clone is at the revision, a real checkout, and the template rendered into it is there
    assert_eq!(read("parts/caucase/README"), "first\n");
    assert_eq!(git(&p.join("parts/caucase"), &["rev-parse", "HEAD"]), first);
    assert_eq!(read("parts/caucase/host_setting.sh"), "#!/bin/sh\necho x");
    std::fs::write(p.join("parts/caucase/local"), "mine").expect("write");

    // an upgrade that changes neither part keeps them as they are
    r.ok(&[
        "instance",
        "upgrade",
        "w",
        "--software",
        &software,
        "-p",
        "other=y",
        "-p",
        "title=T",
    ]);
    assert_eq!(read("srv/html5as/run"), run, "not installed again");
    assert_eq!(read("parts/caucase/local"), "mine");
    assert_eq!(read("parts/caucase/host_setting.sh"), "#!/bin/sh\necho y");
    assert_eq!(read("srv/index.html"), "<title>T</title>");

    // one that changes the part's options installs it again, with them
    r.ok(&[
        "instance",
        "upgrade",
        "w",
        "--software",
        &software,
        "-p",
        "docroot-title=New",
    ]);
    let new = read("srv/html5as/run");
    assert!(new.ends_with(" New") && new != run, "{new}");
    assert_eq!(read("srv/html5as/index.html"), "<title>T</title>");
    assert_eq!(read("parts/caucase/local"), "mine", "the clone is kept");

    // a rollback to the generation before installs it with that generation's options
    r.ok(&["instance", "rollback", "w"]);
    let back = read("srv/html5as/run");
    assert!(back.ends_with(" Hello") && back != run, "{back}");
    // and one to the first changes nothing of the clone
    r.ok(&["instance", "rollback", "w", "--to", "1"]);
    assert_eq!(read("srv/html5as/run"), back);
    assert_eq!(read("parts/caucase/local"), "mine");
    assert_eq!(read("parts/caucase/host_setting.sh"), "#!/bin/sh\necho x");
    assert_eq!(read("srv/index.html"), "<title>Hello</title>");
}

#[test]
fn a_download_unpacked_is_unpacked_at_deploy_and_a_failure_names_its_part() {
    if !have("installs", &["tar", "md5sum"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    // software/beremiz-runtime/instance.cfg.in's `[download-plc]`, its URL and md5sum given as
    // parameters there
    std::fs::create_dir_all(env.path().join("plc-1/bin")).expect("mkdir");
    std::fs::write(env.path().join("plc-1/bin/plc"), "program\n").expect("write");
    let archive = env.path().join("plc.tar.gz");
    let made = std::process::Command::new("tar")
        .args(["czf", &archive.display().to_string(), "-C"])
        .arg(env.path())
        .arg("plc-1")
        .status()
        .expect("tar");
    assert!(made.success());
    let sum = std::process::Command::new("md5sum")
        .arg(&archive)
        .output()
        .expect("md5sum");
    let md5 = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let software = env.jinja2_release(&format!(
        "[buildout]\nparts = download-plc\n\n[slap-parameter]\nmd5 = {md5}\n\n\
             [download-plc]\nrecipe = slapos.recipe.build:download-unpacked\noffline = false\n\
             url = {}\nmd5sum = ${{slap-parameter:md5}}\n",
        archive.display()
    ));
    r.ok(&["instance", "create", "plc", "--software", &software]);
    let p = r.partition("plc");
    let unpacked = p.join("parts/download-plc/bin/plc");
    assert_eq!(
        std::fs::read_to_string(&unpacked).expect("read"),
        "program\n"
    );
    // a wrong checksum fails the deploy (exit 1), naming the part; the files stay as they were
    let out = r.run(&[
        "instance",
        "upgrade",
        "plc",
        "--software",
        &software,
        "-p",
        "md5=0123456789abcdef0123456789abcdef",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("[download-plc]"), "{}", out.stderr);
    // a part rendered from a file that a deploy makes cannot be: the render comes first
    let software = env.jinja2_release(&format!(
        "[buildout]\nparts = download-plc page\n\n\
             [download-plc]\nrecipe = slapos.recipe.build:download-unpacked\n\
             url = {}\nmd5sum = {md5}\n\n\
             [page]\nrecipe = slapos.recipe.template\n\
             url = ${{download-plc:location}}/bin/plc\noutput = ${{buildout:directory}}/page\n",
        archive.display()
    ));
    let out = r.run(&[
        "instance",
        "create",
        "page",
        "--dry-run",
        "--software",
        &software,
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("is made by [download-plc]")
            && out.stderr.contains("when the instance is deployed"),
        "{}",
        out.stderr
    );
}

/// software/mail-server-relay/instance-relay.cfg.jinja2.in's `[inbound-postfix-certificate]`:
/// `init` empties `location`, so that buildout never removes what `install` writes; the code
/// copies a bundle into place.
#[test]
fn install_code_without_a_location_runs_when_its_options_change_and_removes_nothing() {
    if !have("installs", &["python3"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(
        "[buildout]\nparts = bundle\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\nssl = ${buildout:directory}/ssl\n\n\
         [slap-configuration]\nrecipe = slapos.cookbook:slapconfiguration.serialised\n\n\
         [self-signed]\nrecipe = slapos.recipe.template\noutput = ${directory:ssl}/self.pem\n\
         inline = ${slap-configuration:configuration.cert}\n\n\
         [bundle]\nrecipe = slapos.recipe.build\nbundle = ${directory:ssl}/bundle.pem\n\
         selected-bundle = ${self-signed:output}\nserial = ${slap-configuration:configuration.cert}\n\
         init = options['location'] = ''\n\
         install =\n  import os\n  import shutil\n  \
         shutil.copyfile(options['selected-bundle'], options['bundle'] + '.tmp')\n  \
         os.replace(options['bundle'] + '.tmp', options['bundle'])\n",
    );
    let bundle = r.partition("w").join("ssl/bundle.pem");
    r.ok(&[
        "instance",
        "create",
        "w",
        "--software",
        &software,
        "-p",
        "cert=one",
    ]);
    let read = || std::fs::read_to_string(&bundle).expect("bundle");
    assert_eq!(read(), "one");
    // the same options: the code does not run again, and what it wrote is left alone
    std::fs::write(&bundle, "kept").expect("write");
    r.ok(&["instance", "reconcile", "--full"]);
    assert_eq!(read(), "kept");
    // new options: the code runs again (and only then, as buildout runs `install` only when a
    // part's options change), nothing was removed first
    r.ok(&[
        "instance",
        "upgrade",
        "w",
        "--software",
        &software,
        "-p",
        "cert=two",
    ]);
    assert_eq!(read(), "two");
}
