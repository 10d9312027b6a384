//! What SlapOS's `stack/monitor` (included by 55 releases of the corpus) needs of an instance,
//! end to end through the binary, on its real sections (their origin in a comment): a profile
//! `switch-softwaretype` renders takes the switching profile's `[slap-configuration]`,
//! `requestoptional` of a shared frontend the local master cannot host, and the certificate
//! authority, whose service makes a CA and signs the requested certificate with openssl.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{have, Root, TestEnv};

/// A release whose instance profile `instance.cfg.in` switches to `instance-default.cfg.in`
/// (both rendered at software time, as galene's and htmlvalidatorserver's are).
fn switching_release(env: &TestEnv, default: &str) -> String {
    env.write(
        "sw/instance.cfg.in",
        "[buildout]\nparts = switch\n\
         [slap-configuration]\nrecipe = slapos.cookbook:slapconfiguration\n\
         computer = $${slap-connection:computer-id}\n\
         partition = $${slap-connection:partition-id}\n\
         [dynamic-default]\noutput = ${instance-default:output}\n\
         [switch]\nrecipe = slapos.cookbook:switch-softwaretype\n\
         default = dynamic-default:output\n",
    );
    env.write("sw/instance-default.cfg.in", default);
    env.write(
        "sw/software.cfg",
        "[buildout]\nparts = instance-profile instance-default\n\n\
         [instance-profile]\nrecipe = slapos.recipe.template\n\
         url = ${:_profile_base_location_}/instance.cfg.in\n\
         output = ${buildout:directory}/instance.cfg\n\n\
         [instance-default]\nrecipe = slapos.recipe.template\n\
         url = ${:_profile_base_location_}/instance-default.cfg.in\n\
         output = ${buildout:directory}/instance-default.cfg\n",
    )
    .to_string_lossy()
    .into_owned()
}

/// The switched-to profile has no `[slap-configuration]` recipe of its own, only
/// stack/monitor's defaults (instance-monitor.cfg.jinja2.in, top), and stack/monitor's
/// `[monitor-frontend]`: a shared apache-frontend asked with `requestoptional`.
const MONITORED: &str = r#"[buildout]
parts = page frontend-page

[slap-configuration]
# XXX Default values if doesn't exists
root-instance-title = UNKNOWN H-S
instance-title = UNKNOWN Instance
configuration.monitor-interface-url = https://monitor.app.officejs.com/#page=ojsm_landing

[page]
recipe = slapos.recipe.template
output = $${buildout:directory}/etc/page
inline = $${slap-configuration:ipv6-random} $${slap-configuration:instance-title} $${slap-configuration:slap-software-type} $${slap-configuration:configuration.name} $${slap-configuration:configuration.monitor-interface-url}

[monitor-frontend]
<= slap-connection
recipe = slapos.cookbook:requestoptional
name = Monitor Frontend $${slap-configuration:instance-title}
# XXX We have hardcoded SR URL here.
software-url = http://git.erp5.org/gitweb/slapos.git/blob_plain/HEAD:/software/apache-frontend/software.cfg
shared = true
config-url = https://[$${slap-configuration:ipv6-random}]:8196
config-https-only = true
return = domain secure_access

[frontend-page]
recipe = collective.recipe.template
input = inline:frontend [$${monitor-frontend:connection-secure_access}] [$${monitor-frontend:connection-domain}]
output = $${buildout:directory}/etc/frontend
mode = 600
"#;

#[test]
fn a_switched_to_profile_takes_the_switching_slap_configuration() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write(
        "root/etc/slapstore.toml",
        "computer-id = \"COMP-7\"\nipv6 = [\"2001:db8::9\", \"2001:db8::4\"]\n",
    );
    let software = switching_release(&env, MONITORED);
    r.ok(&[
        "instance",
        "create",
        "web",
        "--software",
        &software,
        "-p",
        "name=Alice",
    ]);
    let p = r.partition("web");
    // the switching profile's values over stack/monitor's defaults; a default it does not
    // set stays
    assert_eq!(
        std::fs::read_to_string(p.join("etc/page")).expect("page"),
        "2001:db8::4 web default Alice https://monitor.app.officejs.com/#page=ojsm_landing"
    );
    // the shared frontend has no host here: no connection values, no instance made
    assert_eq!(
        std::fs::read_to_string(p.join("etc/frontend")).expect("frontend"),
        "frontend [] []"
    );
    let list = r.ok(&["instance", "list"]);
    assert_eq!(
        list.lines().filter(|l| l.contains("Monitor")).count(),
        0,
        "{list}"
    );
    let made: Vec<_> = std::fs::read_dir(r.root.join("partitions"))
        .expect("partitions")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(made, ["web"]);
}

#[test]
fn a_shared_request_that_is_not_optional_is_refused() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let strict = MONITORED.replace("slapos.cookbook:requestoptional", "slapos.cookbook:request");
    let software = switching_release(&env, &strict);
    let out = r.run(&[
        "instance",
        "create",
        "web",
        "--software",
        &software,
        "-p",
        "name=Bob",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("[monitor-frontend]") && out.stderr.contains("no host for shared"),
        "{}",
        out.stderr
    );
    assert!(!r.partition("web").exists());
}

/// stack/monitor's certificate authority and the request of its httpd's certificate
/// (instance-monitor.cfg.jinja2.in: [ca-directory] to [ca-monitor-httpd-service]), with the
/// system's openssl and a stand-in for the httpd wrapper.
const CA: &str = r#"[buildout]
parts = certificate-authority-service ca-monitor-httpd-service

[directory]
recipe = slapos.cookbook:mkdirectory
bin = $${buildout:directory}/bin
etc = $${buildout:directory}/etc
srv = $${buildout:directory}/srv
services = $${:etc}/service

[ca-directory]
recipe = slapos.cookbook:mkdirectory
root = $${directory:srv}/ssl
requests = $${:root}/requests
private = $${:root}/private
certs = $${:root}/certs
newcerts = $${:root}/newcerts
crl = $${:root}/crl

[certificate-authority]
recipe = slapos.cookbook:certificate_authority
openssl-binary = /usr/bin/openssl
ca-dir = $${ca-directory:root}
requests-directory = $${ca-directory:requests}
wrapper = $${directory:bin}/certificate_authority
ca-private = $${ca-directory:private}
ca-certs = $${ca-directory:certs}
ca-newcerts = $${ca-directory:newcerts}
ca-crl = $${ca-directory:crl}

[certificate-authority-service]
recipe = slapos.cookbook:wrapper
command-line = $${certificate-authority:wrapper}
wrapper-path = $${directory:services}/certificate_authority
hash-existing-files = $${buildout:directory}/software_release/buildout.cfg

[ca-monitor-httpd]
<= certificate-authority
recipe = slapos.cookbook:certificate_authority.request
key-file = $${ca-directory:certs}/monitor-httpd.key
cert-file = $${ca-directory:certs}/monitor-httpd.crt
executable = $${httpd:output}
wrapper = $${directory:bin}/ca-monitor-httpd

[httpd]
recipe = slapos.recipe.template
output = $${directory:bin}/httpd
mode = 755
inline =
  #!/bin/sh
  echo "serving with $1"

[ca-monitor-httpd-service]
recipe = slapos.cookbook:wrapper
command-line = $${ca-monitor-httpd:wrapper}
wrapper-path = $${directory:services}/monitor-httpd
hash-existing-files = $${buildout:directory}/software_release/buildout.cfg
"#;

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_certificate_authority_signs_the_requested_certificate() {
    if !have(
        "the_certificate_authority_signs_the_requested_certificate",
        &["openssl"],
    ) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    env.write("ca/instance.cfg", CA);
    let software = env.write(
        "ca/software.cfg",
        "[buildout]\nparts = instance-profile\n\n[instance-profile]\n\
         recipe = slapos.recipe.template\n\
         url = ${:_profile_base_location_}/instance.cfg\n\
         output = ${buildout:directory}/instance.cfg\n",
    );
    let software = software.to_string_lossy().into_owned();
    r.ok(&["instance", "create", "mon", "--software", &software]);
    let p = r.partition("mon");
    let d = p.to_string_lossy().into_owned();
    let ssl = p.join("srv/ssl");
    // the CA's database, kept in the partition; its configuration, in the generation
    assert_eq!(text(&ssl.join("serial")), "01");
    assert_eq!(text(&ssl.join("crlnumber")), "01");
    assert_eq!(text(&ssl.join("index.txt")), "");
    assert!(text(&ssl.join("openssl.cnf")).contains(&format!("dir = {d}/srv/ssl\n")));
    // the request: its file named by the sha512 of the section's name, the links
    let requests: Vec<_> = std::fs::read_dir(ssl.join("requests"))
        .expect("requests")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(requests.len(), 1);
    let name = requests[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    // sha512("ca-monitor-httpd"), as `sha512sum` gives it
    assert_eq!(
        name,
        "b172c009f1845a081db84825ae4935f2f4b66571e3ab9dc0f1b2128828a8f209c26db072cb9feb9f9e423a1ef1c223b3e800027eb25cb98c33e424ea2d24c6eb"
    );
    let key = format!("{d}/srv/ssl/private/{name}.key");
    let crt = format!("{d}/srv/ssl/certs/{name}.crt");
    assert_eq!(
        text(&requests[0]),
        format!("[certificate]\nname = ca-monitor-httpd\nkey_file = {key}\ncertificate_file = {crt}\n\n")
    );
    assert_eq!(
        std::fs::read_link(p.join("current/srv/ssl/certs/monitor-httpd.crt")).expect("link"),
        Path::new(&crt)
    );
    assert_eq!(
        std::fs::read_link(p.join("current/srv/ssl/certs/monitor-httpd.key")).expect("link"),
        Path::new(&key)
    );
    // the service makes the CA and the certificate (its first pass; it then sleeps)
    let mut service = std::process::Command::new(p.join("etc/service/certificate_authority"))
        .current_dir(&p)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the CA");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(Path::new(&crt).exists() && Path::new(&key).exists()) {
        assert!(Instant::now() < deadline, "no certificate made");
        std::thread::sleep(Duration::from_millis(100));
    }
    // written by `openssl ca`: wait for the file to be whole
    std::thread::sleep(Duration::from_millis(500));
    let _ = service.kill();
    let _ = service.wait();
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ssl.join("cacert.pem"))
        .arg(ssl.join("certs/monitor-httpd.crt"))
        .output()
        .expect("openssl verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert_eq!(text(&ssl.join("serial")), "02\n");
    // the httpd runs once both exist, with the service's arguments
    let served = std::process::Command::new(p.join("etc/service/monitor-httpd"))
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&served.stdout), "serving with \n");
    // an upgrade keeps the CA's database (openssl's), the key and the certificate
    r.ok(&[
        "instance",
        "upgrade",
        "mon",
        "--software",
        &software,
        "-p",
        "x=1",
    ]);
    assert_eq!(text(&ssl.join("serial")), "02\n");
    assert!(Path::new(&crt).exists() && Path::new(&key).exists());
    assert_ne!(text(&ssl.join("index.txt")), "");
}
