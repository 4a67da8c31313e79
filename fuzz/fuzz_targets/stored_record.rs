//! A stored record read back from disk may be damaged: decoding it and deriving its metadata
//! gives a value or an error (DATA_LOSS to callers), never a panic.
#![no_main]

use credvault::domain::{Label, Owner};
use credvault::vault::StoredRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = StoredRecord::decode_bytes(data) {
        let owner = Owner::parse("fuzz").expect("valid owner");
        let label = Label::parse("fuzz").expect("valid label");
        let _ = record.metadata(&owner, &label);
    }
});
