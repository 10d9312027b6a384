//! Fuzzes the evaluator of conditional section headers (PEP 508 markers and the Python subset):
//! any expression gives a verdict or an error, never a panic or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slapstore_frontend::condition::{evaluate, Target};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = evaluate(text, &Target::default());
    }
});
