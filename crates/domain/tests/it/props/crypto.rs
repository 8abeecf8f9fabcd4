//! The message envelope (`nonce || ciphertext || tag`, the room as AAD): whatever the
//! plaintext and the room, sealing then opening gives the plaintext back, and any change
//! to the envelope or its context is refused.

use domain::crypto::{CryptoError, MessageKeys};
use proptest::prelude::*;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The AAD a message in `room` is sealed with (`repo::message::aad`).
fn room_aad(room: i64) -> Vec<u8> {
    format!("confab:message:v1:room:{room}").into_bytes()
}

fn keys() -> MessageKeys {
    crate::keys()
}

fn plaintext() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1024),
        ".{0,200}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_then_open_round_trips(body in plaintext(), room in any::<i64>()) {
        let k = keys();
        let sealed = k.seal(&body, &room_aad(room)).expect("seal");
        prop_assert_eq!(&sealed.key_id, "k1");
        prop_assert_eq!(sealed.bytes.len(), NONCE_LEN + body.len() + TAG_LEN);
        prop_assert_eq!(k.open(&sealed.key_id, &sealed.bytes, &room_aad(room)), Ok(body));
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused(body in plaintext(), room in any::<i64>(), bit in any::<prop::sample::Index>()) {
        let k = keys();
        let mut sealed = k.seal(&body, &room_aad(room)).expect("seal");
        // Anywhere: nonce, ciphertext or tag.
        let i = bit.index(sealed.bytes.len() * 8);
        sealed.bytes[i / 8] ^= 1 << (i % 8);
        prop_assert_eq!(k.open("k1", &sealed.bytes, &room_aad(room)), Err(CryptoError::Authentication));
    }

    #[test]
    fn a_truncated_or_extended_envelope_is_refused(body in plaintext(), room in any::<i64>(), cut in any::<prop::sample::Index>(), extra in proptest::collection::vec(any::<u8>(), 1..32)) {
        let k = keys();
        let sealed = k.seal(&body, &room_aad(room)).expect("seal");
        let len = cut.index(sealed.bytes.len());
        let expected = if len < NONCE_LEN + TAG_LEN { CryptoError::Truncated } else { CryptoError::Authentication };
        prop_assert_eq!(k.open("k1", &sealed.bytes[..len], &room_aad(room)), Err(expected));
        let mut longer = sealed.bytes.clone();
        longer.extend_from_slice(&extra);
        prop_assert_eq!(k.open("k1", &longer, &room_aad(room)), Err(CryptoError::Authentication));
    }

    #[test]
    fn another_rooms_aad_is_refused(body in plaintext(), room in any::<i64>(), other in any::<i64>()) {
        prop_assume!(room != other);
        let k = keys();
        let sealed = k.seal(&body, &room_aad(room)).expect("seal");
        prop_assert_eq!(k.open("k1", &sealed.bytes, &room_aad(other)), Err(CryptoError::Authentication));
        prop_assert_eq!(k.open("k1", &sealed.bytes, b""), Err(CryptoError::Authentication));
    }

    #[test]
    fn arbitrary_aad_binds_exactly(body in plaintext(), aad in proptest::collection::vec(any::<u8>(), 0..64), other in proptest::collection::vec(any::<u8>(), 0..64)) {
        let k = keys();
        let sealed = k.seal(&body, &aad).expect("seal");
        let opened = k.open("k1", &sealed.bytes, &other);
        if other == aad {
            prop_assert_eq!(opened, Ok(body));
        } else {
            prop_assert_eq!(opened, Err(CryptoError::Authentication));
        }
    }

    #[test]
    fn arbitrary_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..256), room in any::<i64>()) {
        let k = keys();
        let opened = k.open("k1", &bytes, &room_aad(room));
        prop_assert!(opened.is_err());
        prop_assert_eq!(k.open("k9", &bytes, &room_aad(room)), Err(CryptoError::UnknownKey("k9".into())));
    }

    #[test]
    fn rotated_keys_still_open_and_a_different_key_never_does(body in plaintext(), room in any::<i64>()) {
        let old = keys();
        let sealed = old.seal(&body, &room_aad(room)).expect("seal");
        let rotated = MessageKeys::parse(&format!(
            "{},k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            MessageKeys::generate_line("k2")
        )).expect("keys");
        prop_assert_eq!(rotated.open("k1", &sealed.bytes, &room_aad(room)), Ok(body.clone()));
        prop_assert_eq!(rotated.seal(&body, b"").expect("seal").key_id, "k2");
        // Same id, different key material: refused, never garbled.
        let impostor = MessageKeys::parse(&MessageKeys::generate_line("k1")).expect("keys");
        prop_assert_eq!(impostor.open("k1", &sealed.bytes, &room_aad(room)), Err(CryptoError::Authentication));
    }
}
