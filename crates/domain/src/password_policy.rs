//! The password policy, modelled on Django's default validators, in one place for every
//! way a password is set (first-run setup, account page, admin, the `confab` command).
//!
//! A password is refused when it is:
//! - shorter than `CONFAB_PASSWORD_MIN_LENGTH` characters (default 10), or longer than
//!   bcrypt reads (72 bytes: refused rather than cut silently);
//! - on Django's list of 20 000 common passwords (compared lower-cased and trimmed, as
//!   Django does); the list is `data/common-passwords.txt.gz` from Django (BSD licence,
//!   `data/common-passwords.LICENSE`), embedded and decompressed once;
//! - too similar to the username or the display name: Django's
//!   `UserAttributeSimilarityValidator`, i.e. `SequenceMatcher.quick_ratio() >= 0.7`
//!   against the whole attribute and each of its parts split on non-word characters;
//! - entirely numeric.
//!
//! Every rule is checked and every failure reported, so a form can list them all. The
//! violations carry a Fluent message id and arguments for the services to translate; their
//! `Display` is the English text, for the command line.

use crate::model::PASSWORD_MAX_BYTES;
use crate::settings::Settings;
use std::{
    collections::{HashMap, HashSet},
    fmt,
    io::Read,
    sync::OnceLock,
};

/// Django's default: a quick ratio at or above this is "too similar".
const MAX_SIMILARITY: f64 = 0.7;

/// What the user is known by, compared with the password.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserAttributes<'a> {
    pub username: &'a str,
    /// Empty when not set (the display name then defaults to the username).
    pub display_name: &'a str,
}

/// Which attribute a password resembles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    Username,
    DisplayName,
}

/// One rule a password broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyViolation {
    TooShort { min: usize },
    TooLong { max_bytes: usize },
    TooCommon,
    TooSimilar(Attribute),
    EntirelyNumeric,
}

impl PolicyViolation {
    /// The Fluent message id (`locales/*/main.ftl`).
    pub fn message_id(&self) -> &'static str {
        match self {
            PolicyViolation::TooShort { .. } => "password-too-short",
            PolicyViolation::TooLong { .. } => "password-too-long",
            PolicyViolation::TooCommon => "password-too-common",
            PolicyViolation::TooSimilar(Attribute::Username) => "password-too-similar-username",
            PolicyViolation::TooSimilar(Attribute::DisplayName) => {
                "password-too-similar-display-name"
            }
            PolicyViolation::EntirelyNumeric => "password-entirely-numeric",
        }
    }

    /// The message's arguments.
    pub fn args(&self) -> Vec<(&'static str, String)> {
        match self {
            PolicyViolation::TooShort { min } => vec![("min", min.to_string())],
            PolicyViolation::TooLong { max_bytes } => vec![("max", max_bytes.to_string())],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyViolation::TooShort { min } => {
                write!(
                    f,
                    "This password is too short. It must contain at least {min} characters."
                )
            }
            PolicyViolation::TooLong { max_bytes } => {
                write!(
                    f,
                    "This password is too long. It can be at most {max_bytes} bytes."
                )
            }
            PolicyViolation::TooCommon => f.write_str("This password is too common."),
            PolicyViolation::TooSimilar(Attribute::Username) => {
                f.write_str("The password is too similar to the username.")
            }
            PolicyViolation::TooSimilar(Attribute::DisplayName) => {
                f.write_str("The password is too similar to the display name.")
            }
            PolicyViolation::EntirelyNumeric => f.write_str("This password is entirely numeric."),
        }
    }
}

/// The configured policy; build it from the settings with [`PasswordPolicy::from_settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: 10 }
    }
}

impl PasswordPolicy {
    pub fn from_settings(settings: &Settings) -> PasswordPolicy {
        PasswordPolicy {
            min_length: settings.password_min_length,
        }
    }

    /// Checks every rule; `Err` lists each one broken, in a stable order.
    pub fn validate(
        &self,
        password: &str,
        user: &UserAttributes<'_>,
    ) -> Result<(), Vec<PolicyViolation>> {
        let mut broken = Vec::new();
        if let Some(attribute) = too_similar(password, user) {
            broken.push(PolicyViolation::TooSimilar(attribute));
        }
        if password.chars().count() < self.min_length {
            broken.push(PolicyViolation::TooShort {
                min: self.min_length,
            });
        }
        if password.len() > PASSWORD_MAX_BYTES {
            broken.push(PolicyViolation::TooLong {
                max_bytes: PASSWORD_MAX_BYTES,
            });
        }
        if is_common(password) {
            broken.push(PolicyViolation::TooCommon);
        }
        if !password.is_empty() && password.chars().all(char::is_numeric) {
            broken.push(PolicyViolation::EntirelyNumeric);
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken)
        }
    }
}

/// The violations as one English sentence list (for the command line and logs).
pub fn describe(violations: &[PolicyViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn common_passwords() -> &'static HashSet<String> {
    static LIST: OnceLock<HashSet<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        const GZ: &[u8] = include_bytes!("../data/common-passwords.txt.gz");
        let mut text = String::new();
        // The list is part of the binary and a unit test decompresses it; failing here
        // means a corrupt build, and accepting every password instead would be worse.
        #[allow(clippy::expect_used)]
        flate2::read::GzDecoder::new(GZ)
            .read_to_string(&mut text)
            .expect("the embedded common-password list is valid gzip'd UTF-8");
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn is_common(password: &str) -> bool {
    common_passwords().contains(&password.trim().to_lowercase())
}

/// Python's `difflib.SequenceMatcher(a, b).quick_ratio()`: twice the size of the
/// multiset intersection of the characters over the total length.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in b.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    let mut len_a = 0usize;
    for c in a.chars() {
        len_a += 1;
        if let Some(n) = counts.get_mut(&c)
            && *n > 0
        {
            *n -= 1;
            matches += 1;
        }
    }
    let total = len_a + b.chars().count();
    if total == 0 {
        1.0
    } else {
        2.0 * matches as f64 / total as f64
    }
}

/// Django's shortcut: a value far shorter than the password cannot reach the ratio.
fn exceeds_maximum_length_ratio(password_len: usize, value_len: usize) -> bool {
    let bound = MAX_SIMILARITY / 2.0 * password_len as f64;
    password_len >= 10 * value_len && (value_len as f64) < bound
}

fn too_similar(password: &str, user: &UserAttributes<'_>) -> Option<Attribute> {
    let password = password.to_lowercase();
    let password_len = password.chars().count();
    for (attribute, value) in [
        (Attribute::Username, user.username),
        (Attribute::DisplayName, user.display_name),
    ] {
        if value.is_empty() {
            continue;
        }
        let value = value.to_lowercase();
        // Python's `re.split(r"\W+", value) + [value]`; `\W` is "not a letter, digit or _".
        let parts = value
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .chain(std::iter::once(value.as_str()));
        for part in parts {
            if exceeds_maximum_length_ratio(password_len, part.chars().count()) {
                continue;
            }
            if quick_ratio(&password, part) >= MAX_SIMILARITY {
                return Some(attribute);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: UserAttributes<'static> = UserAttributes {
        username: "",
        display_name: "",
    };

    fn check(password: &str, user: &UserAttributes<'_>) -> Vec<PolicyViolation> {
        PasswordPolicy::default()
            .validate(password, user)
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn minimum_length_counts_characters_and_is_configurable() {
        assert_eq!(
            check("vq8#Lm2rT", &NOBODY),
            vec![PolicyViolation::TooShort { min: 10 }]
        );
        assert!(check("vq8#Lm2rTx", &NOBODY).is_empty(), "exactly 10 passes");
        // Ten characters, more bytes: characters are counted, as Django does.
        assert!(check("ñandú-kéq9", &NOBODY).is_empty());
        let strict = PasswordPolicy { min_length: 16 };
        assert!(strict.validate("vq8#Lm2rTx", &NOBODY).is_err());
        assert!(strict.validate("vq8#Lm2rTx-zz7Wp", &NOBODY).is_ok());
        assert!(check("", &NOBODY).contains(&PolicyViolation::TooShort { min: 10 }));
        assert_eq!(
            check(&"vq8#Lm2rTx".repeat(8), &NOBODY),
            vec![PolicyViolation::TooLong { max_bytes: 72 }]
        );
    }

    #[test]
    fn django_common_passwords_are_refused_whatever_the_case() {
        assert_eq!(common_passwords().len(), 19_640, "Django's whole list");
        for pw in ["password123", "Password123", " qwertyuiop ", "iloveyou12"] {
            assert!(
                check(pw, &NOBODY).contains(&PolicyViolation::TooCommon),
                "{pw:?}"
            );
        }
        // Near misses: not on the list.
        for pw in [
            "password123-horse",
            "qwertyuiop!7x",
            "correct horse battery",
        ] {
            assert!(
                !check(pw, &NOBODY).contains(&PolicyViolation::TooCommon),
                "{pw:?}"
            );
        }
    }

    #[test]
    fn entirely_numeric_passwords_are_refused() {
        assert!(check("73920518466", &NOBODY).contains(&PolicyViolation::EntirelyNumeric));
        assert!(
            check("7392051846a", &NOBODY).is_empty(),
            "one letter is enough"
        );
        assert!(
            check("73920 518466", &NOBODY).is_empty(),
            "a space is not a digit"
        );
    }

    #[test]
    fn quick_ratio_matches_python_difflib() {
        // Values from `difflib.SequenceMatcher(a=a, b=b).quick_ratio()` in CPython.
        let cases = [
            ("annabelle", "annabelle", 1.0),
            ("annabelle1", "annabelle", 0.947_368_421_052_631_5),
            ("xyz", "abc", 0.0),
            ("elleb-anna", "annabelle", 0.947_368_421_052_631_5),
            ("", "", 1.0),
        ];
        for (a, b, want) in cases {
            assert!((quick_ratio(a, b) - want).abs() < 1e-12, "{a} {b}");
        }
    }

    #[test]
    fn passwords_like_the_username_or_display_name_are_refused() {
        let ann = UserAttributes {
            username: "annabelle.lee",
            display_name: "Annabelle Lee-Marsh",
        };
        // The username's part "annabelle", whatever the case.
        assert_eq!(
            check("AnnaBelle2024", &ann),
            vec![PolicyViolation::TooSimilar(Attribute::Username)]
        );
        // The whole username, rearranged.
        assert!(
            check("lee.annabelle", &ann)
                .contains(&PolicyViolation::TooSimilar(Attribute::Username))
        );
        let display = UserAttributes {
            username: "al",
            display_name: "Marshmallow Queen",
        };
        assert_eq!(
            check("marshmallow!!", &display),
            vec![PolicyViolation::TooSimilar(Attribute::DisplayName)]
        );
        // Near misses: sharing a few letters is fine.
        assert!(check("grey-otter-canoe", &ann).is_empty());
        assert!(check("ann plus nine words", &ann).is_empty());
        // A short name inside a long password is fine.
        let short = UserAttributes {
            username: "ab",
            display_name: "",
        };
        assert!(check("ab-quiet-river-77", &short).is_empty());
    }

    #[test]
    fn every_broken_rule_is_reported_and_described() {
        let v = check("12345", &NOBODY);
        assert_eq!(
            v,
            vec![
                PolicyViolation::TooShort { min: 10 },
                PolicyViolation::TooCommon,
                PolicyViolation::EntirelyNumeric,
            ]
        );
        let text = describe(&v);
        assert!(text.contains("at least 10 characters") && text.contains("too common"));
        assert_eq!(v[0].message_id(), "password-too-short");
        assert_eq!(v[0].args(), vec![("min", "10".to_owned())]);
    }
}
