//! Route patterns: compiling any string never panics; matching any normalized path against
//! any compiled pattern never panics and `/**` matches everything.
#![no_main]

use gatehouse::routing::path::normalize;
use gatehouse::routing::pattern::Pattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern_text, path_text) = text.split_once('\n').unwrap_or((text, "/"));
    let Ok(path) = normalize(path_text) else {
        return;
    };
    if let Ok(pattern) = Pattern::compile(pattern_text) {
        let _ = pattern.matches(&path);
        let _ = pattern.covers(&pattern);
    }
    let everything = Pattern::compile("/**").expect("/** compiles");
    assert!(everything.matches(&path));
});
