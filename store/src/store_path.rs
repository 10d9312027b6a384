//! Store path names: `<32 base32 characters>-<part name>`, the first 160 bits of a derivation's
//! BLAKE3 hash in lowercase RFC 4648 base32 without padding, then the part name.
//!
//! Invariant: a [`PartName`] or [`StorePath`] that exists is valid (no `/`, no `..`, no control
//! characters, not empty), so code that holds one never re-checks it.

use std::fmt;

/// How many bytes of the hash name a store path (160 bits).
pub const HASH_BYTES: usize = 20;

/// RFC 4648 base32 with the lowercase alphabet, no padding, non-zero trailing bits refused (so
/// that two texts never decode to the same bytes).
static BASE32: std::sync::LazyLock<data_encoding::Encoding> = std::sync::LazyLock::new(|| {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.check_trailing_bits = true;
    // a constant specification: it is valid, as the unit tests show
    spec.encoding()
        .unwrap_or_else(|e| panic!("base32 specification: {e}"))
});

/// RFC 4648 base32, lowercase, without padding.
pub fn encode_base32(bytes: &[u8]) -> String {
    BASE32.encode(bytes)
}

/// Decodes RFC 4648 base32 (lowercase, no padding) of exactly `N` bytes.
pub fn decode_base32<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != (N * 8).div_ceil(5) {
        return None;
    }
    BASE32.decode(text.as_bytes()).ok()?.try_into().ok()
}

/// Whether `c` is a character of the base32 alphabet.
pub fn is_base32(c: u8) -> bool {
    c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)
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

    /// The raw 160-bit hash.
    pub fn hash_bytes(&self) -> &[u8; HASH_BYTES] {
        &self.hash
    }

    /// Parses `<hash>-<name>` (the base name of a store path, not a full path).
    pub fn parse(text: &str) -> Result<StorePath, StorePathError> {
        let bad = || StorePathError(text.to_owned());
        let (hash, name) = text.split_at_checked(32).ok_or_else(bad)?;
        let name = name.strip_prefix('-').ok_or_else(bad)?;
        let hash = decode_base32::<HASH_BYTES>(hash).ok_or_else(bad)?;
        let name = PartName::new(name).map_err(|_| bad())?;
        Ok(StorePath { hash, name })
    }
}

/// A text that is not the name of a store path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a store path name (`<32 base32 characters>-<name>`)")]
pub struct StorePathError(pub String);

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
        // trailing bits must be zero; the alphabet is lowercase only
        assert_eq!(decode_base32::<4>("mzxw6yq"), Some(*b"foob"));
        assert_eq!(decode_base32::<4>("mzxw6yr"), None);
        assert_eq!(decode_base32::<4>("MZXW6YQ"), None);
        assert_eq!(decode_base32::<4>("mzxw6y"), None);
        assert_eq!(decode_base32::<4>("mzxw6y1"), None);
    }

    #[test]
    fn base32_keeps_the_hashes_of_existing_store_paths() {
        // hash parts of real store paths (the README's), against their bytes as Python's
        // `base64.b32decode` reads them
        for (text, hex) in [
            (
                "6dpjamnyw3eyuqzxoq4fwycunulek7w3",
                "f0de9031b8b6c98a433774385b60546d16457edb",
            ),
            (
                "rv7wpwk5l6yj26oqythvgge3uwghx2nj",
                "8d7f67d95d5fb09d79d0c4cf53189ba58c7be9a9",
            ),
            (
                "7n6vbij4blt2uqv7ko5mnqjra6otjbva",
                "fb7d50a13c0ae7aa42bf53bac6c131079d3486a0",
            ),
        ] {
            let bytes = hex::decode(hex).expect("hex");
            assert_eq!(encode_base32(&bytes), text);
            assert_eq!(
                decode_base32::<HASH_BYTES>(text).map(|b| b.to_vec()),
                Some(bytes)
            );
        }
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
    fn store_path_round_trip() {
        let path = StorePath::new(&blake3::hash(b"x"), PartName::new("lua").expect("valid"));
        assert_eq!(StorePath::parse(&path.to_string()), Ok(path.clone()));
        assert!(StorePath::parse("short-lua").is_err());
        assert!(StorePath::parse(&path.to_string().replace('-', "_")).is_err());
        let upper = path.to_string().to_uppercase();
        assert!(StorePath::parse(&upper).is_err());
        assert!(StorePath::parse(&format!("{}-a/b", path.hash_part())).is_err());
        assert_eq!(decode_base32::<5>("mzxw6ytb"), Some(*b"fooba"));
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
