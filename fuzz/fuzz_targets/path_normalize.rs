//! Path normalization (SPEC §3.1) on arbitrary bytes: never panics; what it accepts is
//! normal (idempotent, no `//`, no dot segments, no encoded unreserved characters).
#![no_main]

use gatehouse::routing::path::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(normal) = normalize(text) {
        assert!(normal.starts_with('/'));
        assert!(!normal.contains("//"), "{normal}");
        assert!(
            normal
                .split('/')
                .all(|segment| segment != "." && segment != ".."),
            "{normal}"
        );
        let again = normalize(&normal).expect("a normalized path is accepted again");
        assert_eq!(again, normal, "normalization is idempotent");
        assert!(
            again.is_borrowed(),
            "normal input is borrowed"
        );
    }
});
