//! Parsed names: once a value has one of these types it is known to be valid.

use crate::error::{DomainError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

pub const USERNAME_MAX: usize = 32;
pub const DISPLAY_NAME_MAX: usize = 64;
pub const SLUG_MAX: usize = 64;
pub const ROOM_NAME_MAX: usize = 80;
pub const TOPIC_MAX: usize = 250;
pub const PASSWORD_MIN_CHARS: usize = 8;
/// bcrypt reads at most 72 bytes; longer passwords are refused rather than cut silently.
pub const PASSWORD_MAX_BYTES: usize = 72;

/// A username as typed: 2-32 characters of letters, digits, `.`, `_` or `-`. Unique
/// regardless of case ([`Username::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Username> {
        let s = raw.trim();
        let n = s.chars().count();
        if n < 2 {
            return Err(DomainError::invalid(
                "username",
                "must be at least 2 characters",
            ));
        }
        if n > USERNAME_MAX {
            return Err(DomainError::invalid(
                "username",
                format!("must be at most {USERNAME_MAX} characters"),
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(DomainError::invalid(
                "username",
                "may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Username(s.to_owned()))
    }

    /// The case-insensitive key that must be unique.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self> {
        Username::parse(&s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Free text shown to people (display names, room names, topics): trimmed, bounded, no
/// control characters.
pub fn parse_label(field: &'static str, raw: &str, min: usize, max: usize) -> Result<String> {
    let s = raw.trim();
    let n = s.chars().count();
    if n < min {
        return Err(DomainError::invalid(
            field,
            if min == 1 {
                "must not be empty".into()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if n > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(s.to_owned())
}

/// A room's URL name: 1-64 of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomSlug(String);

impl RoomSlug {
    pub fn parse(raw: &str) -> Result<RoomSlug> {
        let s = raw.trim();
        if s.is_empty() || s.len() > SLUG_MAX {
            return Err(DomainError::invalid(
                "slug",
                format!("must be 1-{SLUG_MAX} characters"),
            ));
        }
        let mut chars = s.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok
            || !s
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(DomainError::invalid(
                "slug",
                "must be lowercase letters, digits, '-' or '_', starting with a letter or digit",
            ));
        }
        Ok(RoomSlug(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomSlug {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self> {
        RoomSlug::parse(&s)
    }
}

impl From<RoomSlug> for String {
    fn from(s: RoomSlug) -> String {
        s.0
    }
}

impl fmt::Display for RoomSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a new password before it is hashed. (The fuller policy, with a common-password
/// list, lives in [`crate::auth`].)
pub fn check_password_shape(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(DomainError::invalid("password", "must not be empty"));
    }
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(DomainError::invalid(
            "password",
            format!("must be at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(DomainError::invalid(
            "password",
            format!("must be at most {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(
            Username::parse("  Ana.B_1-x ").unwrap().as_str(),
            "Ana.B_1-x"
        );
        assert_eq!(Username::parse("Ana").unwrap().key(), "ana");
        assert!(Username::parse("a").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert!(Username::parse("ana b").is_err());
        assert!(Username::parse("ana<script>").is_err());
        assert!(Username::parse("ñandú").is_err());
    }

    #[test]
    fn slugs() {
        assert!(RoomSlug::parse("general").is_ok());
        assert!(RoomSlug::parse("team-2_b").is_ok());
        assert!(RoomSlug::parse("-x").is_err());
        assert!(RoomSlug::parse("General").is_err());
        assert!(RoomSlug::parse("").is_err());
        assert!(RoomSlug::parse(&"a".repeat(65)).is_err());
        assert!(RoomSlug::parse("a/b").is_err());
    }

    #[test]
    fn labels_and_passwords() {
        assert_eq!(parse_label("name", "  Ana  ", 1, 10).unwrap(), "Ana");
        assert!(parse_label("name", "   ", 1, 10).is_err());
        assert!(parse_label("name", "a\u{0007}b", 1, 10).is_err());
        assert!(parse_label("name", &"é".repeat(11), 1, 10).is_err());
        assert!(check_password_shape("").is_err());
        assert!(check_password_shape("short").is_err());
        assert!(check_password_shape(&"x".repeat(73)).is_err());
        assert!(check_password_shape("long enough").is_ok());
    }
}
