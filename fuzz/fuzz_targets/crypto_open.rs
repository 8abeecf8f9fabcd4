//! Opening a sealed message (`domain::crypto::MessageKeys::open`) and parsing a key
//! specification (`MessageKeys::parse`).
//!
//! Invariants: arbitrary bytes never open (no forgery, no panic), the error says
//! `Truncated` exactly when the value is shorter than nonce + tag, and an unknown key id
//! is reported as such whatever the bytes.

#![no_main]

use domain::crypto::{CryptoError, MessageKeys};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// 24-byte nonce + 16-byte tag.
const MIN_SEALED: usize = 40;

static KEYS: LazyLock<MessageKeys> = LazyLock::new(|| {
    MessageKeys::parse(
        "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,\
         k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
    )
    .expect("fixed test keys")
});

fuzz_target!(|data: &[u8]| {
    // First byte: how many of the following bytes are the AAD (the room binding).
    let (aad, sealed) = match data.split_first() {
        Some((&n, rest)) => rest.split_at((n as usize).min(rest.len())),
        None => (&[][..], data),
    };
    for key_id in ["k1", "k2"] {
        match KEYS.open(key_id, sealed, aad) {
            Ok(plain) => panic!("forged a message: {plain:?}"),
            Err(CryptoError::Truncated) => assert!(sealed.len() < MIN_SEALED),
            Err(CryptoError::Authentication) => assert!(sealed.len() >= MIN_SEALED),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(
        KEYS.open("nope", sealed, aad),
        Err(CryptoError::UnknownKey("nope".into()))
    );

    // The same bytes as a key specification (configuration, but parsed by hand).
    if let Ok(spec) = std::str::from_utf8(data)
        && let Ok(keys) = MessageKeys::parse(spec)
    {
        let ids = keys.ids();
        assert!(!ids.is_empty());
        assert_eq!(ids[0], keys.current_id());
        let sealed = keys.seal(b"hello", b"room").expect("seal");
        assert_eq!(
            keys.open(keys.current_id(), &sealed.bytes, b"room")
                .as_deref(),
            Ok(&b"hello"[..])
        );
    }
});
