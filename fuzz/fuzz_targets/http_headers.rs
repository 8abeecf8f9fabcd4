//! Request headers the http-app parses by hand: `X-Real-IP`/`X-Forwarded-For` behind
//! nginx (`ClientInfo`, the sign-in throttle's key), `Accept-Language` and the language
//! cookie (`i18n::negotiate`), the `User-Agent` device name, and the `Host` that goes into
//! the Content-Security-Policy.
//!
//! Invariants: nothing panics; the client address is always an IP address; the language
//! is a supported one; the `Host` can never add to or change the CSP's directives.

#![no_main]

use actix_web::{
    http::header::{HeaderName, HeaderValue},
    test::TestRequest,
};
use http_app::{device, extract::ClientInfo, i18n, security};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

const HEADERS: &[&str] = &[
    "x-real-ip",
    "x-forwarded-for",
    "accept-language",
    "user-agent",
    "cookie",
    "host",
];

fuzz_target!(|data: &[u8]| {
    // One header value per line, in the order of HEADERS; the first byte picks the peer.
    let (peer, rest) = match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => ("203.0.113.7:443", rest),
        Some((_, rest)) => ("127.0.0.1:40000", rest),
        None => ("127.0.0.1:40000", data),
    };
    let mut req = TestRequest::default().peer_addr(peer.parse().expect("peer address"));
    let mut host = None;
    for (name, value) in HEADERS.iter().zip(rest.split(|&b| b == b'\n')) {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        if *name == "host" {
            host = value.to_str().ok().map(str::to_owned);
        }
        req = req.insert_header((HeaderName::from_static(name), value));
    }
    let req = req.to_http_request();

    let info = ClientInfo::of(&req);
    assert!(info.ip.parse::<IpAddr>().is_ok(), "{:?}", info.ip);
    if !peer.starts_with("127.") {
        assert_eq!(
            info.ip, "203.0.113.7",
            "forwarded headers believed from afar"
        );
    }
    let _ = device::describe(&info.user_agent);

    let lang = i18n::negotiate(None, &req);
    assert!(i18n::LANGUAGES.iter().any(|l| l.code == lang), "{lang:?}");
    if let Ok(text) = std::str::from_utf8(rest) {
        if let Some(l) = i18n::from_accept_language(text) {
            assert!(i18n::LANGUAGES.iter().any(|x| x.code == l));
        }
        let _ = device::describe(text);
    }

    let base = security::content_security_policy(None, false);
    for https in [false, true] {
        let csp = security::content_security_policy(host.as_deref(), https);
        assert!(HeaderValue::from_str(&csp).is_ok(), "{csp:?}");
        assert_eq!(
            csp.matches(';').count(),
            base.matches(';').count(),
            "{csp:?}"
        );
        assert_eq!(
            csp.matches('\'').count(),
            base.matches('\'').count(),
            "{csp:?}"
        );
        assert!(csp.contains("connect-src 'self'"), "{csp:?}");
    }
});
