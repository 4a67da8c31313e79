//! List page tokens come from callers: any string parses to a token or an error, never a panic,
//! and an accepted token re-encodes to one that parses to the same position.
#![no_main]

use credvault::domain::{Owner, PageToken};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let owner = Owner::parse("fuzz").expect("valid owner");
    if let Ok(Some(token)) = PageToken::parse(s, &owner) {
        assert_eq!(PageToken::parse(&token.encode(&owner), &owner), Ok(Some(token)));
    }
});
