//! Content checksums: the `md5sum = <hex>` of SlapOS profiles, and the `sha256` and `blake3`
//! options our design also accepts, written `<algorithm>:<hex>` (`md5:…`, `sha256:…`,
//! `blake3:…`).
//!
//! Invariant: a [`Checksum`] that exists is well formed: its digest has exactly the length of its
//! algorithm's output, so its hex form is lowercase and of the right length. Code holding one never
//! re-checks it. A [`Hasher`] computes a checksum of the same algorithm from streamed bytes.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use md5::Digest as _;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Md5,
    Sha256,
    Blake3,
}

impl Algorithm {
    /// Every algorithm, in the order of their names.
    pub const ALL: [Algorithm; 3] = [Algorithm::Blake3, Algorithm::Md5, Algorithm::Sha256];

    /// The name used in `<name>:<hex>` and in profile options: `md5`, `sha256` or `blake3`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
        }
    }

    /// The length of a digest in bytes (twice that in hex digits).
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha256 | Algorithm::Blake3 => 32,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = ChecksumError;

    /// Parses `md5`, `sha256` or `blake3`; `md5sum` (the buildout option name) is taken as `md5`.
    fn from_str(s: &str) -> Result<Algorithm, ChecksumError> {
        match s {
            "md5" | "md5sum" => Ok(Algorithm::Md5),
            "sha256" => Ok(Algorithm::Sha256),
            "blake3" => Ok(Algorithm::Blake3),
            _ => Err(ChecksumError::UnknownAlgorithm(s.into())),
        }
    }
}

/// Why a text is not a checksum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("unknown checksum algorithm `{0}` (expected `md5`, `sha256` or `blake3`)")]
    UnknownAlgorithm(String),
    #[error("checksum `{0}` has no algorithm (expected `<algorithm>:<hex>`)")]
    MissingAlgorithm(String),
    #[error("{algorithm} checksum `{hex}` has {actual} hex digits instead of {expected}")]
    BadLength {
        algorithm: Algorithm,
        hex: String,
        expected: usize,
        actual: usize,
    },
    #[error("{algorithm} checksum `{hex}` is not hexadecimal")]
    NotHex { algorithm: Algorithm, hex: String },
}

/// A digest together with its algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum {
    algorithm: Algorithm,
    digest: Vec<u8>,
}

impl Checksum {
    /// Parses the hex form of a digest (either case; surrounding whitespace is ignored).
    pub fn parse(algorithm: Algorithm, hex: &str) -> Result<Checksum, ChecksumError> {
        let text = hex.trim();
        let expected = algorithm.digest_len() * 2;
        // text that is not hex at all (a placeholder left in a profile) is said to be so first
        if !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ChecksumError::NotHex {
                algorithm,
                hex: text.into(),
            });
        }
        if text.len() != expected {
            return Err(ChecksumError::BadLength {
                algorithm,
                hex: text.into(),
                expected,
                actual: text.chars().count(),
            });
        }
        let digest = hex::decode(text).map_err(|_| ChecksumError::NotHex {
            algorithm,
            hex: text.into(),
        })?;
        Ok(Checksum { algorithm, digest })
    }

    /// The checksum of a digest computed elsewhere, if its length is that of `algorithm`.
    pub fn from_digest(algorithm: Algorithm, digest: &[u8]) -> Option<Checksum> {
        (digest.len() == algorithm.digest_len()).then(|| Checksum {
            algorithm,
            digest: digest.to_vec(),
        })
    }

    /// The checksum of `bytes`.
    pub fn of_bytes(algorithm: Algorithm, bytes: &[u8]) -> Checksum {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finalize()
    }

    /// The checksum of the content of the file at `path`, read in a streaming fashion.
    pub fn of_file(algorithm: Algorithm, path: &Path) -> io::Result<Checksum> {
        let mut hasher = Hasher::new(algorithm);
        hasher.update_from(&mut File::open(path)?)?;
        Ok(hasher.finalize())
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw digest, of [`Algorithm::digest_len`] bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// The digest in lowercase hex, without the algorithm.
    pub fn hex(&self) -> String {
        hex::encode(&self.digest)
    }

    /// A fresh hasher of this checksum's algorithm, to check content against it.
    pub fn hasher(&self) -> Hasher {
        Hasher::new(self.algorithm)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex())
    }
}

impl FromStr for Checksum {
    type Err = ChecksumError;

    /// Parses `<algorithm>:<hex>`, the form written by [`Display`](fmt::Display).
    fn from_str(s: &str) -> Result<Checksum, ChecksumError> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| ChecksumError::MissingAlgorithm(s.into()))?;
        Checksum::parse(algorithm.trim().parse()?, hex)
    }
}

impl serde::Serialize for Checksum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Checksum {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Checksum, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A streaming digest computation; [`Hasher::finalize`] gives a [`Checksum`] of its algorithm.
#[derive(Clone)]
pub enum Hasher {
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Blake3 => Hasher::Blake3(Box::default()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Md5(_) => Algorithm::Md5,
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Blake3(_) => Algorithm::Blake3,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    /// Feeds everything `reader` gives until its end; returns how many bytes that was.
    pub fn update_from(&mut self, reader: &mut impl Read) -> io::Result<u64> {
        for_each_chunk(reader, 64 * 1024, |chunk| self.update(chunk))
    }

    pub fn finalize(self) -> Checksum {
        let algorithm = self.algorithm();
        let digest = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
        };
        Checksum { algorithm, digest }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algorithm())
    }
}

/// Writing to a hasher feeds it, so that `io::copy` can hash what it copies.
impl io::Write for Hasher {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads `reader` to its end in chunks of up to `buffer_size` bytes, handing each to `f`
/// (retrying interrupted reads); returns how many bytes there were.
pub(crate) fn for_each_chunk(
    mut reader: impl Read,
    buffer_size: usize,
    mut f: impl FnMut(&[u8]),
) -> io::Result<u64> {
    let mut buffer = vec![0; buffer_size];
    let mut total = 0;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                f(&buffer[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5_ABC: &str = "900150983cd24fb0d6963f7d28e17f72";
    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const BLAKE3_ABC: &str = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";

    #[test]
    fn known_digests() {
        for (algorithm, hex) in [
            (Algorithm::Md5, MD5_ABC),
            (Algorithm::Sha256, SHA256_ABC),
            (Algorithm::Blake3, BLAKE3_ABC),
        ] {
            let sum = Checksum::of_bytes(algorithm, b"abc");
            assert_eq!(sum.hex(), hex);
            assert_eq!(sum, Checksum::parse(algorithm, hex).unwrap());
            assert_eq!(sum.digest().len(), algorithm.digest_len());
            // Streaming in pieces gives the same digest.
            let mut hasher = sum.hasher();
            hasher.update(b"a");
            hasher.update(b"");
            hasher.update(b"bc");
            assert_eq!(hasher.finalize(), sum);
        }
    }

    #[test]
    fn parse_lowercases_and_trims() {
        let sum =
            Checksum::parse(Algorithm::Md5, &format!(" {} ", MD5_ABC.to_uppercase())).unwrap();
        assert_eq!(sum.to_string(), format!("md5:{MD5_ABC}"));
    }

    #[test]
    fn parse_refuses_bad_hex() {
        assert!(matches!(
            Checksum::parse(Algorithm::Md5, "abc"),
            Err(ChecksumError::BadLength {
                expected: 32,
                actual: 3,
                ..
            })
        ));
        assert!(matches!(
            Checksum::parse(Algorithm::Sha256, MD5_ABC),
            Err(ChecksumError::BadLength {
                expected: 64,
                actual: 32,
                ..
            })
        ));
        let not_hex = "z".repeat(32);
        assert!(matches!(
            Checksum::parse(Algorithm::Md5, &not_hex),
            Err(ChecksumError::NotHex { .. })
        ));
        // Multi-byte characters are counted as characters in the message, and refused.
        let err = Checksum::parse(Algorithm::Md5, &"é".repeat(16)).unwrap_err();
        assert!(matches!(
            err,
            ChecksumError::NotHex { .. } | ChecksumError::BadLength { .. }
        ));
    }

    #[test]
    fn display_from_str_round_trip() {
        for text in [
            format!("md5:{MD5_ABC}"),
            format!("sha256:{SHA256_ABC}"),
            format!("blake3:{BLAKE3_ABC}"),
        ] {
            let sum: Checksum = text.parse().unwrap();
            assert_eq!(sum.to_string(), text);
            let json = serde_json::to_string(&sum).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Checksum>(&json).unwrap(), sum);
        }
        assert_eq!(
            "md5sum:900150983CD24FB0D6963F7D28E17F72"
                .parse::<Checksum>()
                .unwrap()
                .to_string(),
            format!("md5:{MD5_ABC}")
        );
        assert!(matches!(
            MD5_ABC.parse::<Checksum>(),
            Err(ChecksumError::MissingAlgorithm(_))
        ));
        assert!(matches!(
            format!("sha1:{MD5_ABC}").parse::<Checksum>(),
            Err(ChecksumError::UnknownAlgorithm(name)) if name == "sha1"
        ));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            Checksum::parse(Algorithm::Md5, "abc")
                .unwrap_err()
                .to_string(),
            "md5 checksum `abc` has 3 hex digits instead of 32"
        );
        assert_eq!(
            Checksum::parse(Algorithm::Md5, "student may put here md5sum")
                .unwrap_err()
                .to_string(),
            "md5 checksum `student may put here md5sum` is not hexadecimal"
        );
        assert_eq!(
            "x".parse::<Checksum>().unwrap_err().to_string(),
            "checksum `x` has no algorithm (expected `<algorithm>:<hex>`)"
        );
    }

    #[test]
    fn of_file_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        for algorithm in Algorithm::ALL {
            assert_eq!(
                Checksum::of_file(algorithm, &path).unwrap(),
                Checksum::of_bytes(algorithm, &content)
            );
        }
        assert!(Checksum::of_file(Algorithm::Md5, &dir.path().join("missing")).is_err());
    }

    #[test]
    fn from_digest_checks_length() {
        assert!(Checksum::from_digest(Algorithm::Md5, &[0; 16]).is_some());
        assert!(Checksum::from_digest(Algorithm::Md5, &[0; 32]).is_none());
    }
}
