//! The http-app's form bodies and query strings, and the hand-written parsing around them.
//!
//! actix's `web::Form` and `web::Query` decode with `serde_urlencoded` into per-route
//! structs. Those structs are private to their route modules, so the ones below copy their
//! field names and types (keep them in step): the sign-in and setup forms, and the admin
//! list queries with their keyset cursors (`after`/`before`). Also fuzzed, as the
//! services call them: the CSRF field lookup of the CSRF middleware, the sign-in
//! redirect's `safe_next`, the admin's date filter `parse_date`, `UserSort::parse`.
//!
//! Invariants: nothing panics; `safe_next` only ever answers a local path; a date that
//! parses is a real calendar day between 1970 and 9999 and matches the `time` crate.

#![no_main]

use actix_web::web;
use domain::repo::admin::UserSort;
use http_app::{admin::parse_date, csrf, extract::safe_next};
use libfuzzer_sys::fuzz_target;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

// --- copies of the route structs (see the module docs) ------------------------------

/// routes/auth.rs `LoginForm`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct LoginForm {
    username: String,
    password: SecretString,
    next: Option<String>,
}

/// routes/setup.rs `SetupForm`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct SetupForm {
    username: String,
    #[serde(default)]
    display_name: String,
    password: SecretString,
    password_confirm: SecretString,
}

/// admin/users.rs `ListQuery`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct UsersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    active: String,
    #[serde(default)]
    staff: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    after: String,
}

/// admin/rooms.rs `ListQuery`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct RoomsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    archived: String,
    after: Option<i64>,
}

/// admin/messages.rs `ListQuery`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct MessagesQuery {
    #[serde(default)]
    room: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    before: Option<i64>,
}

/// admin/sessions.rs `ListQuery`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct SessionsQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    all: String,
    before: Option<i64>,
}

/// admin/audit.rs and admin/attachments.rs `Query`; routes/rooms.rs `ListQuery`
/// (`after`) has the same shape.
#[derive(Deserialize)]
#[allow(dead_code)]
struct BeforeQuery {
    before: Option<i64>,
}

/// routes/api.rs `UsersQuery` (the user picker).
#[derive(Deserialize)]
#[allow(dead_code)]
struct PickerQuery {
    q: Option<String>,
    after: Option<String>,
}

fn form<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Option<T> {
    // What `web::Form` does with a body once it has read it.
    serde_urlencoded::from_bytes(body).ok()
}

fn query<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    web::Query::<T>::from_query(text)
        .ok()
        .map(web::Query::into_inner)
}

fn check_safe_next(next: &str) {
    let chosen = safe_next(Some(next));
    assert!(chosen == "/" || chosen == next, "{chosen:?} from {next:?}");
    assert!(chosen.starts_with('/'), "{chosen:?}");
    assert!(!chosen.starts_with("//"), "protocol-relative {chosen:?}");
    assert!(!chosen.contains('\\'), "backslash in {chosen:?}");
}

fn check_date(s: &str) {
    let Some(t) = parse_date(s) else { return };
    let mut parts = s.trim().splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (Some(Some(y)), Some(Some(m)), Some(Some(d))) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("{s:?} parsed without three numbers");
    };
    assert!((1970..=9999).contains(&y), "{s:?}");
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .unwrap_or_else(|| panic!("{s:?}: bad month accepted"));
    let day = u8::try_from(d).unwrap_or_else(|_| panic!("{s:?}: bad day accepted"));
    let date = time::Date::from_calendar_date(y as i32, month, day)
        .unwrap_or_else(|e| panic!("{s:?} is not a date ({e}) but parsed"));
    let expected = date.midnight().assume_utc().unix_timestamp() * 1_000_000;
    assert_eq!(t.0, expected, "{s:?}");
}

fuzz_target!(|data: &[u8]| {
    // Form bodies: raw bytes, as posted.
    if let Some(f) = form::<LoginForm>(data) {
        let _ = f.password.expose_secret().len();
        if let Some(next) = &f.next {
            check_safe_next(next);
        }
    }
    let _ = form::<SetupForm>(data);

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // The CSRF middleware's look-up of the `csrf_token` field in a form body.
    let token = web::Query::<Vec<(String, String)>>::from_query(text)
        .ok()
        .and_then(|pairs| {
            pairs
                .into_inner()
                .into_iter()
                .find(|(k, _)| k == csrf::FIELD)
                .map(|(_, v)| v)
        });
    if let Some(token) = token {
        let expected = "A".repeat(43);
        assert_eq!(
            csrf::constant_time_eq(token.as_bytes(), expected.as_bytes()),
            token == expected
        );
    }

    // Query strings of the admin lists and the API.
    if let Some(q) = query::<UsersQuery>(text) {
        let sort = UserSort::parse(&q.sort);
        assert_eq!(UserSort::parse(sort.as_str()), sort);
        // The `after` cursor of the id orders is an integer; anything else is refused.
        let _ = q.after.parse::<i64>();
    }
    let _ = query::<RoomsQuery>(text);
    if let Some(q) = query::<MessagesQuery>(text) {
        check_date(&q.from);
        check_date(&q.until);
    }
    let _ = query::<SessionsQuery>(text);
    let _ = query::<BeforeQuery>(text);
    let _ = query::<PickerQuery>(text);

    // The bare values too: the fuzzer need not learn URL encoding to reach these.
    check_safe_next(text);
    check_date(text);
});
