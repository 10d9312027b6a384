//! `slapos.cookbook:certificate_authority` and `certificate_authority.request`, natively: the
//! same files at the same paths as the cookbook's, its Python service loop done as a POSIX
//! shell script running `openssl-binary`.
//!
//! - `certificate_authority`: `<ca-dir>/openssl.cnf` (the settings the cookbook's
//!   `openssl.cnf.ca.in` gives `openssl req` and `openssl ca`, with `country-code`, `state`,
//!   `city`, `company`, `email` and their defaults), and the CA's database `serial` and
//!   `crlnumber` (`01`) and `index.txt` (empty), which are state: written once, kept in the
//!   partition across upgrades (`state.rs`), as openssl updates them. `wrapper` is the
//!   service: every 60 s, it makes the CA (`<ca-private>/cakey.pem`, `<ca-dir>/cacert.pem`) if
//!   either is missing, then, for each request file of `requests-directory`, the key and
//!   certificate it names if either is missing, signed by the CA (the key material is made by
//!   the running instance, never by the render: it is partition data, never in the store).
//! - `certificate_authority.request` (`name`, default the section's name): the request file
//!   `<requests-directory>/<sha512(name)>` (`[certificate]` `name`, `key_file`,
//!   `certificate_file`), `key-file` and `cert-file` links to `<ca-private>/<hash>.key` and
//!   `<ca-certs>/<hash>.crt`, and `wrapper`, which waits for both and runs `executable`.
//!   `key-content`/`cert-content` (a given certificate) are refused.

use sha2::{Digest, Sha512};

use super::random::keep;
use crate::error::Result;
use crate::recipes::instance::{add_file, relative, FileSpec};
use crate::recipes::wrapper::{quote, script, waiting};
use crate::recipes::Part;

/// A path option, trimmed; refused when it holds a newline (the request file is line-based).
fn path(part: &mut Part, key: &str) -> Result<String> {
    let value = part.require(key)?.trim().to_owned();
    if value.contains('\n') {
        return Err(part.option_error(key, "a path on one line"));
    }
    Ok(value)
}

/// `certificate_authority`.
pub fn authority(part: &mut Part) -> Result<()> {
    let ca_dir = path(part, "ca-dir")?;
    let requests = path(part, "requests-directory")?;
    let private = path(part, "ca-private")?;
    let openssl = path(part, "openssl-binary")?;
    let wrapper = path(part, "wrapper")?;
    for key in ["ca-certs", "ca-newcerts", "ca-crl"] {
        path(part, key)?;
    }
    let field = |part: &mut Part, key: &str, default: &str| -> Result<String> {
        let value = part.get(key)?.unwrap_or_else(|| default.to_owned());
        if value.contains('\n') {
            return Err(part.option_error(key, "a value on one line"));
        }
        Ok(value)
    };
    let country = field(part, "country-code", "XX")?;
    let email = field(part, "email", "xx@example.com")?;
    // the cookbook's default, a mistake it keeps for the CAs made with it
    let state = field(part, "state", "('State',)")?;
    let city = field(part, "city", "City")?;
    let company = field(part, "company", "Company")?;
    for (name, initial) in [("serial", "01"), ("crlnumber", "01"), ("index.txt", "")] {
        let rel = relative(part, "ca-dir", &format!("{ca_dir}/{name}"))?;
        keep(part, "ca-dir", &rel, |_| Ok(initial.to_owned()))?;
    }
    let configuration = format!("{ca_dir}/openssl.cnf");
    let text = openssl_cnf(&ca_dir, &country, &state, &city, &company, &email);
    add_file(
        part,
        "ca-dir",
        &configuration,
        FileSpec::Text { text, mode: 0o644 },
    )?;
    let service = service(
        &openssl,
        &configuration,
        &format!("{ca_dir}/cacert.pem"),
        &format!("{private}/cakey.pem"),
        &requests,
    );
    add_file(
        part,
        "wrapper",
        &wrapper,
        FileSpec::Text {
            text: service,
            mode: 0o755,
        },
    )
}

/// `certificate_authority.request`.
pub fn request(part: &mut Part) -> Result<()> {
    if part.get("key-content")?.is_some() && part.get("cert-content")?.is_some() {
        return Err(part.option_error(
            "key-content",
            "a given key and certificate (`key-content`, `cert-content`) are not supported: \
             slapstore keeps no secret in the store; let the certificate authority make them",
        ));
    }
    let name = match part.get("name")? {
        Some(n) => n,
        None => {
            let n = part.name.clone();
            part.set("name", n.clone());
            n
        }
    };
    if name.contains('\n') {
        return Err(part.option_error("name", "a name on one line"));
    }
    let requests = path(part, "requests-directory")?;
    let private = path(part, "ca-private")?;
    let certs = path(part, "ca-certs")?;
    let key_file = path(part, "key-file")?;
    let cert_file = path(part, "cert-file")?;
    let executable = path(part, "executable")?;
    let wrapper = path(part, "wrapper")?;
    let hash = hex::encode(Sha512::digest(name.as_bytes()));
    let key = format!("{private}/{hash}.key");
    let certificate = format!("{certs}/{hash}.crt");
    // as Python's RawConfigParser writes it
    let text = format!(
        "[certificate]\nname = {name}\nkey_file = {key}\ncertificate_file = {certificate}\n\n"
    );
    add_file(
        part,
        "requests-directory",
        &format!("{requests}/{hash}"),
        FileSpec::Text { text, mode: 0o644 },
    )?;
    add_file(
        part,
        "key-file",
        &key_file,
        FileSpec::Link {
            target: key.clone(),
        },
    )?;
    add_file(
        part,
        "cert-file",
        &cert_file,
        FileSpec::Link {
            target: certificate.clone(),
        },
    )?;
    let run = script(&quote(&executable), None, true)
        .map_err(|e| part.option_error("executable", e.message))?;
    let text = waiting(&run, &[certificate, key]);
    add_file(
        part,
        "wrapper",
        &wrapper,
        FileSpec::Text { text, mode: 0o755 },
    )
}

/// The service loop of the cookbook's `runCertificateAuthority`: the CA made when its key or
/// certificate is missing, then each request's key and certificate; a failure removes what
/// it left half made and stops the service (its supervisor starts it again).
fn service(
    openssl: &str,
    configuration: &str,
    certificate: &str,
    key: &str,
    requests: &str,
) -> String {
    format!(
        "#!/bin/sh\n\
         openssl={openssl}\n\
         config={configuration}\n\
         certificate={certificate}\n\
         key={key}\n\
         requests={requests}\n\
         while :; do\n\
         \x20 if [ ! -e \"$key\" ] || [ ! -e \"$certificate\" ]; then\n\
         \x20   rm -f \"$key\" \"$certificate\"\n\
         \x20   printf 'Certificate Authority %s\\n' \"$(cat /proc/sys/kernel/random/uuid)\" |\n\
         \x20     \"$openssl\" req -utf8 -nodes -config \"$config\" -new -sha256 -x509 \\\n\
         \x20       -extensions v3_ca -keyout \"$key\" -out \"$certificate\" -days 10950 ||\n\
         \x20     {{ rm -f \"$key\" \"$certificate\"; exit 1; }}\n\
         \x20 fi\n\
         \x20 for request in \"$requests\"/*; do\n\
         \x20   [ -f \"$request\" ] || continue\n\
         \x20   name=$(sed -n 's/^name = //p' \"$request\")\n\
         \x20   k=$(sed -n 's/^key_file = //p' \"$request\")\n\
         \x20   c=$(sed -n 's/^certificate_file = //p' \"$request\")\n\
         \x20   [ -e \"$k\" ] && [ -e \"$c\" ] && continue\n\
         \x20   rm -f \"$k\" \"$c\"\n\
         \x20   if printf '%s\\n' \"$name\" | \"$openssl\" req -config \"$config\" -nodes -new \\\n\
         \x20       -sha256 -keyout \"$k\" -out \"$c.csr\" -days 3650 &&\n\
         \x20     \"$openssl\" ca -batch -config \"$config\" -out \"$c\" -infiles \"$c.csr\"; then\n\
         \x20     rm -f \"$c.csr\"\n\
         \x20     printf 'Created certificate %s\\n' \"$name\"\n\
         \x20   else\n\
         \x20     rm -f \"$c.csr\" \"$k\" \"$c\"\n\
         \x20     exit 1\n\
         \x20   fi\n\
         \x20 done\n\
         \x20 sleep 60\n\
         done\n",
        openssl = quote(openssl),
        configuration = quote(configuration),
        certificate = quote(certificate),
        key = quote(key),
        requests = quote(requests),
    )
}

/// The OpenSSL configuration of the CA in `dir`: `openssl ca`'s database and policy (country,
/// state and organisation as the CA's), `openssl req`'s distinguished name with every field
/// fixed but the common name, read on stdin.
fn openssl_cnf(
    dir: &str,
    country: &str,
    state: &str,
    city: &str,
    company: &str,
    email: &str,
) -> String {
    format!(
        "# written by slapstore for slapos.cookbook:certificate_authority\n\
         HOME = .\n\
         [ ca ]\n\
         default_ca = CA_default\n\
         [ CA_default ]\n\
         dir = {dir}\n\
         certs = $dir/certs\n\
         crl_dir = $dir/crl\n\
         database = $dir/index.txt\n\
         unique_subject = no\n\
         new_certs_dir = $dir/newcerts\n\
         certificate = $dir/cacert.pem\n\
         serial = $dir/serial\n\
         crlnumber = $dir/crlnumber\n\
         crl = $dir/crl.pem\n\
         private_key = $dir/private/cakey.pem\n\
         x509_extensions = usr_cert\n\
         name_opt = ca_default\n\
         cert_opt = ca_default\n\
         default_days = 3650\n\
         default_crl_days = 30\n\
         default_md = default\n\
         preserve = no\n\
         policy = policy_match\n\
         [ policy_match ]\n\
         countryName = match\n\
         stateOrProvinceName = match\n\
         organizationName = match\n\
         organizationalUnitName = optional\n\
         commonName = supplied\n\
         emailAddress = optional\n\
         [ req ]\n\
         default_bits = 2048\n\
         default_md = sha256\n\
         distinguished_name = req_distinguished_name\n\
         x509_extensions = v3_ca\n\
         string_mask = utf8only\n\
         [ req_distinguished_name ]\n\
         countryName = Country Name (2 letter code)\n\
         countryName_value = {country}\n\
         countryName_min = 2\n\
         countryName_max = 2\n\
         stateOrProvinceName = State or Province Name (full name)\n\
         stateOrProvinceName_value = {state}\n\
         localityName = Locality Name (eg, city)\n\
         localityName_value = {city}\n\
         0.organizationName = Organization Name (eg, company)\n\
         0.organizationName_value = {company}\n\
         commonName = Common Name (eg, your name or your server's hostname)\n\
         commonName_max = 64\n\
         emailAddress = Email Address\n\
         emailAddress_value = {email}\n\
         emailAddress_max = 64\n\
         [ usr_cert ]\n\
         basicConstraints = CA:FALSE\n\
         subjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid,issuer\n\
         [ v3_ca ]\n\
         subjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid:always,issuer\n\
         basicConstraints = CA:true\n"
    )
}
