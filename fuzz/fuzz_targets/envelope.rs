//! The envelope decoder and `Cipher::open` take stored bytes: any input gives a value or an
//! error, never a panic, and a decoded envelope re-encodes to the same bytes.
#![no_main]

use credvault::crypto::{Cipher, Envelope, MasterKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        assert_eq!(
            Envelope::encode(env.key_id, &env.nonce, env.ciphertext),
            data,
            "decode/encode must round-trip"
        );
    }
    let cipher = Cipher::new(&MasterKey::from_bytes([7; 32]));
    // Random bytes never authenticate; all that matters is an error instead of a panic.
    assert!(cipher.open(b"cred/owner/label", data).is_err());
});
