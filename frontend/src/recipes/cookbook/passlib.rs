//! The hashed forms of a password that `generate.password` gives as `passwd-<scheme>`: the
//! cookbook's recipe calls `passlib.hash.<scheme>.hash(password)` (`-` read as `_`), so each
//! scheme here makes what passlib's handler makes with its default settings (salt size,
//! rounds, identifier), from a fresh random salt. Verifiable by the system's `crypt(3)`
//! (`*_crypt`, `bcrypt`) or by LDAP servers (`ldap_*`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// The alphabet of crypt's salts (passlib's `HASH64_CHARS`).
const HASH64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// passlib's default rounds of `sha256_crypt` and `sha512_crypt`.
const SHA256_ROUNDS: usize = 535_000;
const SHA512_ROUNDS: usize = 656_000;
/// passlib's default cost of `bcrypt`.
const BCRYPT_COST: u32 = 12;

/// The schemes slapstore makes, by passlib's handler name.
pub const SCHEMES: &[&str] = &[
    "plaintext",
    "ldap_plaintext",
    "hex_md5",
    "hex_sha1",
    "hex_sha256",
    "hex_sha512",
    "ldap_hex_md5",
    "ldap_hex_sha1",
    "ldap_md5",
    "ldap_sha1",
    "ldap_salted_md5",
    "ldap_salted_sha1",
    "ldap_salted_sha256",
    "ldap_salted_sha512",
    "sha256_crypt",
    "sha512_crypt",
    "ldap_sha256_crypt",
    "ldap_sha512_crypt",
    "bcrypt",
    "ldap_bcrypt",
];

/// passlib's other handlers: a `passwd-<one of these>` is a real option of the cookbook's
/// recipe that slapstore does not make (an error saying so, rather than a missing option).
pub const NOT_MADE: &[&str] = &[
    "apr_md5_crypt",
    "argon2",
    "atlassian_pbkdf2_sha1",
    "bcrypt_sha256",
    "bigcrypt",
    "bsd_nthash",
    "bsdi_crypt",
    "cisco_asa",
    "cisco_pix",
    "cisco_type7",
    "crypt16",
    "cta_pbkdf2_sha1",
    "des_crypt",
    "django_argon2",
    "django_bcrypt",
    "django_bcrypt_sha256",
    "django_des_crypt",
    "django_disabled",
    "django_pbkdf2_sha1",
    "django_pbkdf2_sha256",
    "django_salted_md5",
    "django_salted_sha1",
    "dlitz_pbkdf2_sha1",
    "fshp",
    "grub_pbkdf2_sha512",
    "hex_md4",
    "htdigest",
    "ldap_bsdi_crypt",
    "ldap_des_crypt",
    "ldap_md5_crypt",
    "ldap_pbkdf2_sha1",
    "ldap_pbkdf2_sha256",
    "ldap_pbkdf2_sha512",
    "ldap_sha1_crypt",
    "lmhash",
    "md5_crypt",
    "msdcc",
    "msdcc2",
    "mssql2000",
    "mssql2005",
    "mysql323",
    "mysql41",
    "nthash",
    "oracle10",
    "oracle11",
    "pbkdf2_sha1",
    "pbkdf2_sha256",
    "pbkdf2_sha512",
    "phpass",
    "postgres_md5",
    "roundup_plaintext",
    "scram",
    "scrypt",
    "sha1_crypt",
    "sun_md5_crypt",
    "unix_disabled",
    "unix_fallback",
];

/// `scheme`'s hash of `password`, its salt taken from `random` (at most 16 bytes are asked);
/// `None` when slapstore does not make `scheme`, an error message when making it failed.
pub fn hash(
    scheme: &str,
    password: &str,
    random: &mut dyn FnMut(usize) -> Result<Vec<u8>, String>,
) -> Option<Result<String, String>> {
    let pw = password.as_bytes();
    let made = match scheme {
        "plaintext" | "ldap_plaintext" => Ok(password.to_owned()),
        "hex_md5" => Ok(hex::encode(Md5::digest(pw))),
        "hex_sha1" => Ok(hex::encode(Sha1::digest(pw))),
        "hex_sha256" => Ok(hex::encode(Sha256::digest(pw))),
        "hex_sha512" => Ok(hex::encode(Sha512::digest(pw))),
        "ldap_hex_md5" => Ok(format!("{{MD5}}{}", hex::encode(Md5::digest(pw)))),
        "ldap_hex_sha1" => Ok(format!("{{SHA}}{}", hex::encode(Sha1::digest(pw)))),
        "ldap_md5" => Ok(format!("{{MD5}}{}", STANDARD.encode(Md5::digest(pw)))),
        "ldap_sha1" => Ok(format!("{{SHA}}{}", STANDARD.encode(Sha1::digest(pw)))),
        "ldap_salted_md5" => random(4).map(|s| salted::<Md5>("SMD5", pw, &s)),
        "ldap_salted_sha1" => random(4).map(|s| salted::<Sha1>("SSHA", pw, &s)),
        "ldap_salted_sha256" => random(8).map(|s| salted::<Sha256>("SSHA256", pw, &s)),
        "ldap_salted_sha512" => random(8).map(|s| salted::<Sha512>("SSHA512", pw, &s)),
        "sha256_crypt" => random(16).and_then(|s| sha_crypt(5, pw, &s)),
        "sha512_crypt" => random(16).and_then(|s| sha_crypt(6, pw, &s)),
        "ldap_sha256_crypt" => random(16).and_then(|s| sha_crypt(5, pw, &s).map(ldap_crypt)),
        "ldap_sha512_crypt" => random(16).and_then(|s| sha_crypt(6, pw, &s).map(ldap_crypt)),
        "bcrypt" => random(16).and_then(|s| bcrypt(pw, &s)),
        "ldap_bcrypt" => random(16).and_then(|s| bcrypt(pw, &s).map(ldap_crypt)),
        _ => return None,
    };
    Some(made)
}

/// RFC 2307's salted digests: `{LABEL}` and the base64 of the digest of the password and the
/// salt, followed by the salt.
fn salted<D: Digest>(label: &str, password: &[u8], salt: &[u8]) -> String {
    let mut d = D::new();
    d.update(password);
    d.update(salt);
    let mut raw = d.finalize().to_vec();
    raw.extend_from_slice(salt);
    format!("{{{label}}}{}", STANDARD.encode(raw))
}

/// passlib's `ldap_*_crypt`: the crypt string after `{CRYPT}`.
fn ldap_crypt(hash: String) -> String {
    format!("{{CRYPT}}{hash}")
}

/// SHA-crypt (`$5$`, `$6$`) with passlib's default rounds, which it always writes out.
fn sha_crypt(id: u8, password: &[u8], random: &[u8]) -> Result<String, String> {
    let salt: Vec<u8> = random.iter().map(|b| HASH64[(b & 63) as usize]).collect();
    let salt_text = String::from_utf8_lossy(&salt).into_owned();
    let failed = |e: sha_crypt::CryptError| format!("SHA-crypt failed: {e:?}");
    let (rounds, checksum) = if id == 5 {
        let params = sha_crypt::Sha256Params::new(SHA256_ROUNDS).map_err(failed)?;
        let c = sha_crypt::sha256_crypt_b64(password, &salt, &params).map_err(failed)?;
        (SHA256_ROUNDS, c)
    } else {
        let params = sha_crypt::Sha512Params::new(SHA512_ROUNDS).map_err(failed)?;
        let c = sha_crypt::sha512_crypt_b64(password, &salt, &params).map_err(failed)?;
        (SHA512_ROUNDS, c)
    };
    Ok(format!("${id}$rounds={rounds}${salt_text}${checksum}"))
}

/// bcrypt `$2b$` at passlib's default cost (the password cut at 72 bytes, as passlib does).
fn bcrypt(password: &[u8], random: &[u8]) -> Result<String, String> {
    let salt: [u8; 16] = random
        .try_into()
        .map_err(|_| "bcrypt needs a 16-byte salt".to_owned())?;
    let cut = &password[..password.len().min(72)];
    bcrypt::hash_with_salt(cut, BCRYPT_COST, salt)
        .map(|h| h.format_for_version(bcrypt::Version::TwoB))
        .map_err(|e| format!("bcrypt failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `0, 1, 2, ...`: crypt's salt from them is `./0123...`.
    fn counting(n: usize) -> Result<Vec<u8>, String> {
        Ok((0..n as u8).collect())
    }

    fn made(scheme: &str, password: &str) -> String {
        hash(scheme, password, &mut counting)
            .expect("a scheme slapstore makes")
            .expect("hashed")
    }

    // The expected values were computed once with Python: `crypt.crypt` (libxcrypt) for the
    // crypt schemes, `hashlib` and `base64` for the LDAP ones (what passlib writes).

    #[test]
    fn sha_crypt_is_crypt3s() {
        assert_eq!(
            made("sha256_crypt", "hunter2"),
            "$5$rounds=535000$./0123456789ABCD$xtLPjWDPFRZvj7Nxm8uyiooeuWoGF8a6ahyap5SFC3B"
        );
        assert_eq!(
            made("ldap_sha512_crypt", "hunter2"),
            "{CRYPT}$6$rounds=656000$./0123456789ABCD$XXLpqL2oBFX90QZ.jO5ejKMVfrX/i9ULd/j3INH2kJn\
             2yFPJIcu7yRr5c5hQFSjVxTHPyG1HdFNPtUl4BFzpl."
        );
    }

    #[test]
    fn bcrypt_is_crypt3s() {
        assert_eq!(
            made("bcrypt", "hunter2"),
            "$2b$12$..CA.uOD/eaGAOmJB.yMBuF70fo3nJF8UXgwQDtLzsMGXpEJfFWfS"
        );
    }

    #[test]
    fn ldap_digests() {
        assert_eq!(
            made("ldap_salted_sha1", "hunter2"),
            "{SSHA}SkMctjACkbQftJS8r8NOVoUmORwAAQID"
        );
        assert_eq!(
            made("ldap_salted_sha256", "hunter2"),
            "{SSHA256}yMs68VoM4DlQ3UnSYmLz79Vhj/zC5T6b+89Z8kHvosYAAQIDBAUGBw=="
        );
        assert_eq!(
            made("ldap_sha1", "hunter2"),
            "{SHA}87u9ZqY9S/F0eUBXjsPQEDUw4h0="
        );
        assert_eq!(
            made("hex_sha256", "hunter2"),
            "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"
        );
        assert_eq!(made("plaintext", "hunter2"), "hunter2");
    }

    #[test]
    fn other_schemes_are_not_made() {
        assert!(hash("md5_crypt", "x", &mut counting).is_none());
        assert!(hash("nonsense", "x", &mut counting).is_none());
        for s in SCHEMES {
            assert!(!NOT_MADE.contains(s), "{s}");
        }
    }
}
