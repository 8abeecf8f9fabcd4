//! Encryption at rest and on the bus: XChaCha20-Poly1305 with a random 192-bit nonce per
//! message. Keys come from configuration only; each sealed value records the id of the
//! key that sealed it, so keys can be rotated while old rows stay readable.
//!
//! Layout of a sealed value: `nonce (24 bytes) || ciphertext || tag (16 bytes)`.

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use std::fmt;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;

/// A sealed value and the id of the key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    #[error("ciphertext is too short")]
    Truncated,
    #[error("authentication failed (wrong key or corrupted data)")]
    Authentication,
    #[error("random number generator failed")]
    Rng,
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The configured keys; the first one encrypts, all of them decrypt.
#[derive(Clone)]
pub struct MessageKeys {
    keys: std::sync::Arc<Vec<Key>>,
}

impl fmt::Debug for MessageKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("MessageKeys")
            .field("ids", &self.ids())
            .finish()
    }
}

impl MessageKeys {
    /// Parses `ID:BASE64KEY[,ID:BASE64KEY…]`.
    pub fn parse(spec: &str) -> Result<MessageKeys, String> {
        let mut keys: Vec<Key> = Vec::new();
        for (n, item) in spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            let (id, b64) = item
                .split_once(':')
                .ok_or_else(|| format!("entry {} is not of the form ID:BASE64KEY", n + 1))?;
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "entry {}: key id must be 1-32 letters, digits, '-' or '_'",
                    n + 1
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("key id {id:?} appears twice"));
            }
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| format!("key {id:?} is not valid base64"))?;
            if raw.len() != KEY_LEN {
                return Err(format!(
                    "key {id:?} is {} bytes; it must be {KEY_LEN}",
                    raw.len()
                ));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&raw)
                .map_err(|_| format!("key {id:?} is unusable"))?;
            keys.push(Key {
                id: id.to_owned(),
                cipher,
            });
        }
        if keys.is_empty() {
            return Err("no keys given".into());
        }
        Ok(MessageKeys {
            keys: std::sync::Arc::new(keys),
        })
    }

    /// A fresh `ID:BASE64KEY` line for a new key.
    pub fn generate_line(id: &str) -> String {
        let mut raw = [0u8; KEY_LEN];
        // A machine without an entropy source cannot run Confab safely at all.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut raw).expect("the operating system's random number generator failed");
        format!("{id}:{}", STANDARD.encode(raw))
    }

    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Encrypts with the current key. `aad` binds the ciphertext to its context (for a
    /// message, its room), so a row copied elsewhere does not decrypt.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Rng)?;
        let ct = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Authentication)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ct.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ct);
        Ok(Sealed {
            key_id: key.id.clone(),
            bytes,
        })
    }

    pub fn open(&self, key_id: &str, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        key.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| CryptoError::Authentication)
    }

    /// Whether a row sealed with `key_id` should be re-encrypted by `rotate-keys`.
    pub fn is_current(&self, key_id: &str) -> bool {
        self.current_id() == key_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(spec: &str) -> MessageKeys {
        MessageKeys::parse(spec).expect("valid keys")
    }

    #[test]
    fn parse_errors_are_specific() {
        assert!(MessageKeys::parse("").unwrap_err().contains("no keys"));
        assert!(
            MessageKeys::parse("nocolon")
                .unwrap_err()
                .contains("ID:BASE64KEY")
        );
        assert!(
            MessageKeys::parse("k1:AAAA")
                .unwrap_err()
                .contains("must be 32")
        );
        assert!(
            MessageKeys::parse("k 1:AAAA")
                .unwrap_err()
                .contains("key id")
        );
        let line = MessageKeys::generate_line("k1");
        assert!(
            MessageKeys::parse(&format!("{line},{line}"))
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn old_keys_decrypt_and_the_first_encrypts() {
        let old = keys(&MessageKeys::generate_line("old"));
        let sealed = old.seal(b"secret", b"room:1").expect("seal");
        let both = keys(&format!(
            "{},{}",
            MessageKeys::generate_line("new"),
            MessageKeys::generate_line("old")
        ));
        // Different random key under the same id: authentication must fail, not garble.
        assert_eq!(
            both.open("old", &sealed.bytes, b"room:1"),
            Err(CryptoError::Authentication)
        );
        assert_eq!(both.seal(b"x", b"").expect("seal").key_id, "new");
        assert_eq!(
            both.open("gone", &sealed.bytes, b""),
            Err(CryptoError::UnknownKey("gone".into()))
        );
    }

    #[test]
    fn tampering_and_wrong_context_are_detected() {
        let k = keys(&MessageKeys::generate_line("k1"));
        let mut sealed = k.seal(b"hello", b"room:1").expect("seal");
        assert_eq!(
            k.open("k1", &sealed.bytes, b"room:2"),
            Err(CryptoError::Authentication)
        );
        assert_eq!(
            k.open("k1", &sealed.bytes[..10], b"room:1"),
            Err(CryptoError::Truncated)
        );
        let last = sealed.bytes.len() - 1;
        sealed.bytes[last] ^= 1;
        assert_eq!(
            k.open("k1", &sealed.bytes, b"room:1"),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn debug_never_shows_key_material() {
        let line = MessageKeys::generate_line("k1");
        let shown = format!("{:?}", keys(&line));
        assert!(!shown.contains(line.split_once(':').expect("colon").1));
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(body in proptest::collection::vec(any::<u8>(), 0..2048), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let k = keys("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
            let sealed = k.seal(&body, &aad).expect("seal");
            prop_assert_eq!(sealed.bytes.len(), body.len() + NONCE_LEN + TAG_LEN);
            prop_assert_eq!(k.open(&sealed.key_id, &sealed.bytes, &aad).expect("open"), body);
        }

        #[test]
        fn any_single_bit_flip_is_rejected(body in proptest::collection::vec(any::<u8>(), 1..256), bit in any::<usize>()) {
            let k = keys("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
            let mut sealed = k.seal(&body, b"").expect("seal");
            let i = bit % (sealed.bytes.len() * 8);
            sealed.bytes[i / 8] ^= 1 << (i % 8);
            prop_assert!(k.open("k1", &sealed.bytes, b"").is_err());
        }
    }
}
