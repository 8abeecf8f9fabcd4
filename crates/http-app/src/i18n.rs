//! Languages: every user-visible string comes from the Fluent files in `locales/`,
//! embedded at build time. The language is the user's preference, else the `lang`
//! cookie (the switcher, for signed-out visitors), else `Accept-Language`, else English.

use actix_web::HttpRequest;
use fluent_templates::{Loader, static_loader};
use serde::Serialize;
use std::{borrow::Cow, collections::HashMap};

static_loader! {
    pub static LOCALES = {
        locales: "../../locales",
        fallback_language: "en",
        // Bidi isolation marks would end up inside attributes and plain-text exports.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Language {
    pub code: &'static str,
    /// In the language itself, as the switcher shows it.
    pub name: &'static str,
}

pub const LANGUAGES: &[Language] = &[
    Language {
        code: "en",
        name: "English",
    },
    Language {
        code: "es",
        name: "Español",
    },
    Language {
        code: "fr",
        name: "Français",
    },
    Language {
        code: "de",
        name: "Deutsch",
    },
    Language {
        code: "pt",
        name: "Português",
    },
];

pub const DEFAULT: &str = "en";
pub const COOKIE: &str = "confab_lang";

/// The supported code for `tag` (`pt-BR` → `pt`), if any.
pub fn supported(tag: &str) -> Option<&'static str> {
    let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    LANGUAGES.iter().find(|l| l.code == primary).map(|l| l.code)
}

/// Picks from an `Accept-Language` value by quality, then order.
pub fn from_accept_language(header: &str) -> Option<&'static str> {
    let mut candidates: Vec<(f32, usize, &'static str)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?;
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (q > 0.0).then_some(())?;
            Some((q, i, supported(tag)?))
        })
        .collect();
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    candidates.first().map(|c| c.2)
}

/// The language for this request; `user_pref` is the signed-in user's choice.
pub fn negotiate(user_pref: Option<&str>, req: &HttpRequest) -> &'static str {
    user_pref
        .and_then(supported)
        .or_else(|| req.cookie(COOKIE).and_then(|c| supported(c.value())))
        .or_else(|| {
            req.headers()
                .get(actix_web::http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(from_accept_language)
        })
        .unwrap_or(DEFAULT)
}

fn langid(lang: &str) -> fluent_templates::LanguageIdentifier {
    lang.parse()
        .or_else(|_| DEFAULT.parse())
        .unwrap_or_default()
}

/// A message in `lang` (falling back to English).
pub fn t(lang: &str, key: &str) -> String {
    LOCALES.lookup(&langid(lang), key)
}

/// A message with arguments (names as in the `.ftl` file).
pub fn t_args(lang: &str, key: &str, args: &[(&'static str, String)]) -> String {
    let args: HashMap<Cow<'static, str>, fluent_templates::fluent_bundle::FluentValue> = args
        .iter()
        .map(|(k, v)| (Cow::Borrowed(*k), v.clone().into()))
        .collect();
    LOCALES.lookup_with_args(&langid(lang), key, &args)
}

/// Minimal HTML escaping for the last-resort error page (templates escape by themselves).
pub fn escape_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_is_ranked_by_quality() {
        assert_eq!(
            from_accept_language("fr-CH, fr;q=0.9, en;q=0.8"),
            Some("fr")
        );
        assert_eq!(
            from_accept_language("xx, de;q=0.5, pt-BR;q=0.7"),
            Some("pt")
        );
        assert_eq!(from_accept_language("es;q=0, en;q=0.1"), Some("en"));
        assert_eq!(from_accept_language("zh, ja"), None);
        assert_eq!(from_accept_language(""), None);
    }

    #[test]
    fn lookups_fall_back_to_english() {
        assert_ne!(t("de", "login-title"), t("en", "login-title"));
        assert_eq!(t("xx", "login-title"), t("en", "login-title"));
    }
}
