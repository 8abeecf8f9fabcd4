//! Passwords and session keys.
//!
//! Passwords are bcrypt hashes. Signing in as an unknown user still costs one bcrypt
//! verification (against a dummy hash of the same cost), so response time does not
//! reveal which usernames exist. Session keys are 256 random bits; the cookie carries
//! the key, the database only its SHA-256.

use crate::{
    db::Db,
    error::{DomainError, Result},
    model::{User, Username, check_password_shape},
    repo,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

/// Hashes a new password after checking its shape.
pub fn hash_password(password: &str, cost: u32) -> Result<String> {
    check_password_shape(password)?;
    bcrypt::non_truncating_hash(password, cost)
        .map_err(|e| DomainError::Internal(format!("bcrypt: {e}")))
}

/// Constant-work check of a password against a stored hash. Any malformed hash counts as
/// a mismatch.
pub fn verify_password(password: &str, hash: &str) -> bool {
    bcrypt::non_truncating_verify(password, hash).unwrap_or(false)
}

/// A hash of a random password at `cost`, computed once per cost and kept.
fn dummy_hash(cost: u32) -> String {
    static CACHE: OnceLock<Mutex<HashMap<u32, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(h) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&cost) {
        return h.clone();
    }
    let h = bcrypt::hash(SessionKey::generate().0.expose_secret(), cost).unwrap_or_default();
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(cost, h.clone());
    h
}

/// Checks a username and password. Unknown user, wrong password and inactive account all
/// give [`DomainError::InvalidCredentials`], after the same amount of bcrypt work.
pub async fn authenticate(
    db: &Db,
    cost: u32,
    username: &str,
    password: &SecretString,
) -> Result<User> {
    let found = match Username::parse(username) {
        Ok(name) => {
            db.run(move |c| repo::user::find_with_hash(c, &name))
                .await?
        }
        Err(_) => None,
    };
    let password = password.clone();
    let (user, ok) = tokio::task::spawn_blocking(move || {
        let pw = password.expose_secret();
        match found {
            Some((user, hash)) => {
                let ok = verify_password(pw, &hash);
                (Some(user), ok)
            }
            None => {
                verify_password(pw, &dummy_hash(cost));
                (None, false)
            }
        }
    })
    .await
    .map_err(|e| DomainError::Internal(format!("password check failed: {e}")))?;
    match user {
        Some(user) if ok && user.is_active => Ok(user),
        _ => Err(DomainError::InvalidCredentials),
    }
}

/// The secret a session cookie carries. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct SessionKey(SecretString);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    pub fn generate() -> SessionKey {
        let mut raw = [0u8; 32];
        // Without an entropy source no session can be safe; failing loudly is right.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut raw).expect("the operating system's random number generator failed");
        SessionKey(SecretString::from(URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Wraps a key read from a cookie. Anything that is not the shape of a key we issue
    /// is refused before it reaches the database.
    pub fn from_cookie(value: &str) -> Option<SessionKey> {
        let ok = value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| SessionKey(SecretString::from(value)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// What the database stores: hex SHA-256 of the key.
    pub fn hash(&self) -> String {
        let digest = Sha256::digest(self.0.expose_secret().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The session cookie's name. Over HTTPS it carries the `__Host-` prefix, which browsers
/// accept only with `Secure`, `Path=/` and no `Domain` (OWASP ASVS 3.3).
pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-confab_session"
    } else {
        "confab_session"
    }
}

/// 64 bytes for signing cookies, derived from the secret key, so http-app (which sets the
/// session cookie) and ws-gateway (which checks it) agree without sharing anything else.
pub fn cookie_key_material(secret: &SecretString) -> [u8; 64] {
    let mut h = sha2::Sha512::new();
    h.update(b"confab cookie signing key v1\0");
    h.update(secret.expose_secret().as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse", 4).unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(hash_password("", 4).is_err());
        assert!(hash_password(&"x".repeat(80), 4).is_err());
    }

    #[test]
    fn session_keys_are_random_and_hashed() {
        let a = SessionKey::generate();
        let b = SessionKey::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 43);
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), a.expose());
        assert!(SessionKey::from_cookie(a.expose()).is_some());
        assert!(SessionKey::from_cookie("garbage").is_none());
        assert!(SessionKey::from_cookie(&"a".repeat(42)).is_none());
        assert!(SessionKey::from_cookie(&format!("{}=", &a.expose()[..42])).is_none());
        assert_eq!(format!("{a:?}"), "SessionKey(..)");
    }
}
