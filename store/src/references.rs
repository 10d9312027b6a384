//! Runtime reference scanning: which of a set of candidate store paths an output mentions,
//! found by looking for their 32-character hash parts in its bytes (file contents and symlink
//! targets), as Nix does.
//!
//! One pass per file: the scanner tracks the current run of base32 characters and looks every
//! 32-byte window of a long enough run up in a hash set, so the cost is linear in the size of
//! the output whatever the number of candidates.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::store_path::is_base32;
use crate::StorePath;

/// The store paths an output may refer to, by hash part.
#[derive(Debug, Default, Clone)]
pub struct Candidates {
    by_hash: HashMap<[u8; 32], StorePath>,
}

impl Candidates {
    pub fn new(paths: impl IntoIterator<Item = StorePath>) -> Candidates {
        let mut by_hash = HashMap::new();
        for p in paths {
            let mut key = [0u8; 32];
            key.copy_from_slice(p.hash_part().as_bytes());
            by_hash.insert(key, p);
        }
        Candidates { by_hash }
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Looks for candidates in `bytes`, which follow `carry` (the tail of the previous chunk's
    /// base32 run, at most 31 bytes), and leaves the new tail in `carry`.
    fn scan_chunk(&self, bytes: &[u8], carry: &mut Vec<u8>, found: &mut HashSet<StorePath>) {
        let mut run_start = 0usize; // start of the current run within `bytes`
        for (i, &b) in bytes.iter().enumerate() {
            if !is_base32(b) {
                carry.clear();
                run_start = i + 1;
                continue;
            }
            let run = carry.len() + (i + 1 - run_start);
            if run >= 32 {
                let window = &bytes[..=i];
                let key = if i + 1 >= 32 && i + 1 - 32 >= run_start {
                    let mut k = [0u8; 32];
                    k.copy_from_slice(&window[i + 1 - 32..]);
                    k
                } else {
                    // the window straddles the carry and this chunk
                    let from_chunk = i + 1 - run_start;
                    let from_carry = 32 - from_chunk;
                    let mut k = [0u8; 32];
                    k[..from_carry].copy_from_slice(&carry[carry.len() - from_carry..]);
                    k[from_carry..].copy_from_slice(&bytes[run_start..=i]);
                    k
                };
                if let Some(p) = self.by_hash.get(&key) {
                    found.insert(p.clone());
                }
            }
        }
        // keep the last 31 bytes of the run for the next chunk
        let tail = &bytes[run_start.min(bytes.len())..];
        carry.extend_from_slice(tail);
        if carry.len() > 31 {
            carry.drain(..carry.len() - 31);
        }
    }

    /// The candidates mentioned in `bytes`.
    pub fn scan_bytes(&self, bytes: &[u8], found: &mut HashSet<StorePath>) {
        if self.is_empty() {
            return;
        }
        self.scan_chunk(bytes, &mut Vec::new(), found);
    }

    /// The candidates mentioned in what `reader` yields, read in 256 KiB chunks; `sink` sees
    /// every chunk too (to hash the file in the same pass).
    pub fn scan_reader(
        &self,
        reader: impl Read,
        len_hint: u64,
        found: &mut HashSet<StorePath>,
        mut sink: impl FnMut(&[u8]),
    ) -> std::io::Result<u64> {
        // sized to the file: most outputs are many small files, and a zeroed 256 KiB buffer
        // each would cost more than reading them
        let size = (len_hint as usize + 1).clamp(64, 256 * 1024);
        let mut carry = Vec::with_capacity(32);
        crate::checksum::for_each_chunk(reader, size, |chunk| {
            sink(chunk);
            if !self.is_empty() {
                self.scan_chunk(chunk, &mut carry, found);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PartName;

    fn path(seed: &str) -> StorePath {
        StorePath::new(
            &blake3::hash(seed.as_bytes()),
            PartName::new(seed).expect("valid"),
        )
    }

    #[test]
    fn finds_hash_parts_anywhere_and_across_chunks() {
        let (a, b, c) = (path("a"), path("b"), path("c"));
        let candidates = Candidates::new([a.clone(), b.clone(), c.clone()]);
        let text = format!(
            "rpath=/opt/slapstore/store/{a}/lib\0junk{}zz and x{}",
            b.hash_part(),
            &c.hash_part()[..31]
        );
        let mut found = HashSet::new();
        candidates.scan_bytes(text.as_bytes(), &mut found);
        assert!(found.contains(&a));
        // `b`'s hash part is followed by more base32 characters: still a match (like Nix)
        assert!(found.contains(&b));
        assert!(
            !found.contains(&c),
            "a truncated hash part is not a reference"
        );

        // the same through a reader with 1-byte reads: windows straddle every chunk boundary
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut found2 = HashSet::new();
        let n = candidates
            .scan_reader(Slow(text.as_bytes()), 0, &mut found2, |_| {})
            .expect("read");
        assert_eq!(n as usize, text.len());
        assert_eq!(found, found2);
    }
}
