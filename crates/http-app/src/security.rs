//! Security headers on every response (pages, errors, static files, probes).

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// A host as the browser addressed us, if it is plainly a host name or address (with an
/// optional port): it goes into the CSP, so nothing else may pass.
fn clean_host(host: &str) -> Option<&str> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then_some(host)
}

/// The Content-Security-Policy: nothing inline, nothing from elsewhere; WebSockets only
/// to the host the page came from (`'self'` does not cover ws: in every browser).
pub fn content_security_policy(host: Option<&str>, https: bool) -> String {
    let connect = match host.and_then(clean_host) {
        Some(h) if https => format!("'self' wss://{h}"),
        Some(h) => format!("'self' ws://{h} wss://{h}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob:; font-src 'self'; connect-src {connect}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Sets every security header, replacing any a handler set.
pub fn apply(headers: &mut HeaderMap, host: Option<&str>, https: bool) {
    let csp = content_security_policy(host, https);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_allows_only_our_own_socket() {
        let csp = content_security_policy(Some("chat.example:8443"), true);
        assert!(
            csp.contains("connect-src 'self' wss://chat.example:8443;"),
            "{csp}"
        );
        assert!(!csp.contains("ws://"));
        assert!(!csp.contains("unsafe-inline"));
        let csp = content_security_policy(Some("evil.example; script-src *"), false);
        assert!(csp.contains("connect-src 'self';"), "{csp}");
    }
}
