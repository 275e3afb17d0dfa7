//! `gateway.toml` parsing and validation on arbitrary text: never panics, and every
//! refusal names at least one problem.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problems) = gatehouse::config::parse(text) {
        assert!(!problems.is_empty());
    }
});
