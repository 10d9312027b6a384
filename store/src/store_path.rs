//! Store path names: `<32 base32 characters>-<part name>`, the first 160 bits of a derivation's
//! BLAKE3 hash in lowercase RFC 4648 base32 without padding, then the part name.
//!
//! Invariant: a [`PartName`] or [`StorePath`] that exists is valid (no `/`, no `..`, no control
//! characters, not empty), so code that holds one never re-checks it.

use std::fmt;

/// How many bytes of the hash name a store path (160 bits).
pub const HASH_BYTES: usize = 20;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// RFC 4648 base32, lowercase, without padding.
pub fn encode_base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u64 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Why a part name cannot name a store path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartNameError {
    #[error("a part name cannot be empty")]
    Empty,
    #[error("part name `{0}` contains `/`")]
    Slash(String),
    #[error("part name `{0}` is `.` or `..`")]
    Dots(String),
    #[error("part name {0:?} contains a control character")]
    Control(String),
}

/// A part name that can appear in a store path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartName(String);

impl PartName {
    pub fn new(name: &str) -> Result<PartName, PartNameError> {
        if name.is_empty() {
            return Err(PartNameError::Empty);
        }
        if name.contains('/') {
            return Err(PartNameError::Slash(name.into()));
        }
        if name == "." || name == ".." {
            return Err(PartNameError::Dots(name.into()));
        }
        if name.chars().any(char::is_control) {
            return Err(PartNameError::Control(name.into()));
        }
        Ok(PartName(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of a store path: hash part and part name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    hash: [u8; HASH_BYTES],
    name: PartName,
}

impl StorePath {
    /// The store path of a derivation whose BLAKE3 hash is `hash`.
    pub fn new(hash: &blake3::Hash, name: PartName) -> StorePath {
        let mut truncated = [0; HASH_BYTES];
        truncated.copy_from_slice(&hash.as_bytes()[..HASH_BYTES]);
        StorePath {
            hash: truncated,
            name,
        }
    }

    /// The 32-character base32 hash part.
    pub fn hash_part(&self) -> String {
        encode_base32(&self.hash)
    }

    pub fn name(&self) -> &PartName {
        &self.name
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.hash_part(), self.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        // RFC 4648 §10, lowercased, padding removed
        assert_eq!(encode_base32(b""), "");
        assert_eq!(encode_base32(b"f"), "my");
        assert_eq!(encode_base32(b"fo"), "mzxq");
        assert_eq!(encode_base32(b"foo"), "mzxw6");
        assert_eq!(encode_base32(b"foob"), "mzxw6yq");
        assert_eq!(encode_base32(b"fooba"), "mzxw6ytb");
        assert_eq!(encode_base32(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn store_path_shape() {
        let hash = blake3::hash(b"zlib");
        let path = StorePath::new(&hash, PartName::new("zlib").expect("valid"));
        let text = path.to_string();
        assert_eq!(text.len(), 32 + 1 + 4);
        assert!(text.ends_with("-zlib"));
        assert_eq!(path.hash_part().len(), 32);
    }

    #[test]
    fn bad_part_names() {
        assert_eq!(PartName::new(""), Err(PartNameError::Empty));
        assert!(matches!(PartName::new("a/b"), Err(PartNameError::Slash(_))));
        assert!(matches!(PartName::new(".."), Err(PartNameError::Dots(_))));
        assert!(matches!(
            PartName::new("a\nb"),
            Err(PartNameError::Control(_))
        ));
        assert!(PartName::new("gcc-10.5").is_ok());
    }
}
