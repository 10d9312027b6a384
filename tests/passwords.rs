//! `generate.password`'s hashed forms (`passwd-<scheme>`), end to end through the binary: a
//! deployed instance's rendered file holds hashes that the system's `crypt(3)` (and Python's
//! `hashlib` for the LDAP one) verify against the password, kept with it in the cookbook's
//! JSON so that upgrades render the same hashes.

use std::process::Command;

use crate::common::{have, Root, TestEnv};

/// An instance profile with the corpus's hashed passwords: theia's and seleniumserver's
/// `passwd-sha256-crypt` (`software/theia/instance-theia.cfg.jinja.in`), kvm's and dufs's
/// `passwd-sha512-crypt`, restic-rest-server's `passwd-bcrypt` and ERP5's
/// `passwd-ldap-salted-sha1` of a password kept nowhere but slapstore's slot
/// (`stack/erp5/instance-erp5.cfg.in`'s `[gen-password]`, `storage-path` empty). `EXTRA` is
/// where a later version of the profile asks for one more hash.
const PROFILE: &str = r#"[buildout]
parts = directory frontend-instance-password gen-password config

[slap-parameter]
greeting = Hello

[directory]
recipe = slapos.cookbook:mkdirectory
etc = ${buildout:directory}/etc

[frontend-instance-password]
recipe = slapos.cookbook:generate.password
username = admin
storage-path = ${directory:etc}/.frontend-password

[gen-password]
recipe = slapos.cookbook:generate.password
storage-path =

{% raw %}
[config]
recipe = slapos.recipe.template:jinja2
inline =
  greeting {{ greeting }}
  user {{ user }}
  passwd {{ passwd }}
  sha256 {{ sha256 }}
  sha512 {{ sha512 }}
  bcrypt {{ bcrypt }}
  gen {{ gen }}
  ssha {{ ssha }}
  EXTRA
context =
  key greeting slap-parameter:greeting
  key user frontend-instance-password:username
  key passwd frontend-instance-password:passwd
  key sha256 frontend-instance-password:passwd-sha256-crypt
  key sha512 frontend-instance-password:passwd-sha512-crypt
  key bcrypt frontend-instance-password:passwd-bcrypt
  key gen gen-password:passwd
  key ssha gen-password:passwd-ldap-salted-sha1
  EXTRA_KEY
output = ${directory:etc}/config
{% endraw %}
"#;

fn release(env: &TestEnv, extra: bool) -> String {
    let (line, key) = match extra {
        true => (
            "ssha512 {{ ssha512 }}",
            "key ssha512 frontend-instance-password:passwd-ldap-salted-sha512",
        ),
        false => ("", ""),
    };
    env.jinja2_release(&PROFILE.replace("EXTRA_KEY", key).replace("EXTRA", line))
}

/// The rendered config's values, by name.
fn config(r: &Root) -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string(r.partition("i").join("etc/config")).expect("config");
    text.lines()
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Whether `hash` is `password`'s: by the system's crypt(3) (libxcrypt), or for RFC 2307's
/// salted digests by recomputing them.
fn verifies(password: &str, hash: &str) -> bool {
    const CHECK: &str = r#"
import base64, ctypes, ctypes.util, hashlib, sys
pw, h = sys.argv[1].encode(), sys.argv[2]
for label, digest in (("{SSHA}", hashlib.sha1), ("{SSHA512}", hashlib.sha512)):
    if h.startswith(label):
        raw = base64.b64decode(h[len(label):])
        n = digest().digest_size
        print(digest(pw + raw[n:]).digest() == raw[:n])
        sys.exit()
lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
lib.crypt.restype = ctypes.c_char_p
print(lib.crypt(pw, h.encode()) == h.encode())
"#;
    let out = Command::new("python3")
        .args(["-c", CHECK, password, hash])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

fn kept(r: &Root, file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(r.partition("i").join(file)).expect(file);
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn hashed_passwords_verify_and_stay_the_same_across_upgrades() {
    if !have("hashed_passwords_verify", &["python3"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = release(&env, false);
    r.ok(&["instance", "create", "i", "--software", &software]);
    let first = config(&r);
    let passwd = &first["passwd"];
    assert!(
        first["sha256"].starts_with("$5$rounds=535000$"),
        "{first:?}"
    );
    assert!(
        first["sha512"].starts_with("$6$rounds=656000$"),
        "{first:?}"
    );
    assert!(first["bcrypt"].starts_with("$2b$12$"), "{first:?}");
    assert!(first["ssha"].starts_with("{SSHA}"), "{first:?}");
    for key in ["sha256", "sha512", "bcrypt"] {
        assert!(verifies(passwd, &first[key]), "{key}: {first:?}");
        assert!(!verifies("wrong", &first[key]), "{key}");
    }
    assert!(verifies(&first["gen"], &first["ssha"]), "{first:?}");
    // kept as the cookbook keeps them, the hashes asked for beside the password
    let file = kept(&r, "etc/.frontend-password");
    assert_eq!(file[""], passwd.as_str());
    assert_eq!(file["passwd-sha256-crypt"], first["sha256"].as_str());
    assert_eq!(file["passwd-bcrypt"], first["bcrypt"].as_str());
    let slot = kept(&r, ".slapstore/gen-password.passwd");
    assert_eq!(slot["passwd-ldap-salted-sha1"], first["ssha"].as_str());

    // an upgrade renders the same hashes (new salts would change the generation every time)
    r.ok(&[
        "instance",
        "upgrade",
        "i",
        "--software",
        &software,
        "-p",
        "greeting=Hi",
    ]);
    let second = config(&r);
    assert_eq!(second["greeting"], "Hi");
    for key in ["passwd", "sha256", "sha512", "bcrypt", "gen", "ssha"] {
        assert_eq!(second[key], first[key], "{key}");
    }

    // a profile that asks for one more hash: it is kept too, the others stay
    let software = release(&env, true);
    r.ok(&["instance", "upgrade", "i", "--software", &software]);
    let third = config(&r);
    assert!(verifies(passwd, &third["ssha512"]), "{third:?}");
    assert_eq!(third["sha256"], first["sha256"]);
    let file = kept(&r, "etc/.frontend-password");
    assert_eq!(file["passwd-ldap-salted-sha512"], third["ssha512"].as_str());
    assert_eq!(file["passwd-sha256-crypt"], first["sha256"].as_str());

    // the older format, the password alone in the file, is read as the password
    std::fs::write(
        r.partition("i").join("etc/.frontend-password"),
        "plain-old-password\n",
    )
    .expect("write");
    r.ok(&[
        "instance",
        "upgrade",
        "i",
        "--software",
        &software,
        "-p",
        "greeting=Again",
    ]);
    let fourth = config(&r);
    assert_eq!(fourth["passwd"], "plain-old-password");
    assert!(
        verifies("plain-old-password", &fourth["sha256"]),
        "{fourth:?}"
    );
    let file = kept(&r, "etc/.frontend-password");
    assert_eq!(file[""], "plain-old-password");
    assert_eq!(file["passwd-sha256-crypt"], fourth["sha256"].as_str());
}
