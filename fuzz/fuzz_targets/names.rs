//! The domain's "parse, don't validate" types for what users type: usernames, room
//! slugs, free-text labels, and the enums read back from forms and the database.
//!
//! Invariants: nothing panics; a parsed value re-parses to itself (parsing is
//! idempotent) and honours its documented limits.

#![no_main]

use domain::{
    db::DatabaseUrl,
    model::{RoomKind, RoomRole, RoomSlug, SLUG_MAX, USERNAME_MAX, Username, parse_label},
    permissions::Permission,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = Username::parse(s) {
        let n = u.as_str().chars().count();
        assert!((2..=USERNAME_MAX).contains(&n), "{u:?}");
        assert_eq!(Username::parse(u.as_str()).ok().as_ref(), Some(&u));
        assert_eq!(u.key(), u.key().to_ascii_lowercase());
    }
    if let Ok(slug) = RoomSlug::parse(s) {
        assert!((1..=SLUG_MAX).contains(&slug.as_str().len()), "{slug:?}");
        assert_eq!(RoomSlug::parse(slug.as_str()).ok().as_ref(), Some(&slug));
    }
    for (min, max) in [(0, 64), (1, 80), (2, 250)] {
        if let Ok(label) = parse_label("label", s, min, max) {
            let n = label.chars().count();
            assert!((min..=max).contains(&n), "{label:?}");
            assert!(!label.chars().any(char::is_control), "{label:?}");
            assert_eq!(
                parse_label("label", &label, min, max).ok().as_ref(),
                Some(&label)
            );
        }
    }
    if let Some(p) = Permission::parse(s) {
        assert_eq!(p.as_str(), s);
    }
    if let Some(k) = RoomKind::parse(s) {
        assert_eq!(k.as_str(), s);
    }
    if let Some(r) = RoomRole::parse(s) {
        assert_eq!(r.as_str(), s);
    }
    if let Ok(url) = DatabaseUrl::parse(s) {
        assert!(!url.target.is_empty());
    }
});
