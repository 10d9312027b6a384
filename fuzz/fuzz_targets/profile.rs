//! Fuzzes the parser and the resolver: any text, taken as a root profile, must give a resolved
//! configuration or an error, never a panic, a hang or a crash. Profile Python code is not run
//! (the interpreter path does not exist, so such code is an error like any other).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slapstore_frontend::evaluate::{evaluate, EvalOptions};
use slapstore_frontend::source::Sources;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = Sources::default();
    let options = EvalOptions {
        python: "/nonexistent/python3".into(),
        text: Some(text.to_owned()),
        all_sections: true,
        ..EvalOptions::default()
    };
    let _ = evaluate(&mut sources, "/nonexistent/fuzz/buildout.cfg", &options);
});
