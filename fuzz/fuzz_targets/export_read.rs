//! `gatehouse store import`'s reader (`store::snapshot::read`) on arbitrary bytes: never
//! panics; a refusal names a line (or the file) and a problem; what it accepts writes
//! back and reads again as the same snapshot.
#![no_main]

use libfuzzer_sys::fuzz_target;

use gatehouse::store::snapshot;

fuzz_target!(|data: &[u8]| {
    match snapshot::read(data) {
        Err(err) => assert!(!err.problem.is_empty()),
        Ok((header, read)) => {
            let mut out = Vec::new();
            snapshot::write(&mut out, &header, &read).expect("write to memory");
            let (_, again) = snapshot::read(out.as_slice()).expect("reads back");
            let mut sorted = read;
            sorted.sort();
            assert_eq!(again, sorted);
        }
    }
});
