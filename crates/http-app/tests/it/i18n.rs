//! Languages: every key in every language, and the choice of language per request.

use crate::{both_backends, helpers::*};
use domain::db::Backend;
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// key → the `$variables` its message uses, for one `.ftl` file.
fn messages(path: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            continue;
        }
        assert!(
            !value.trim().is_empty(),
            "{}: {key} is empty",
            path.display()
        );
        let vars = value
            .split("{ $")
            .skip(1)
            .filter_map(|v| v.split([' ', '}']).next())
            .map(str::to_owned)
            .collect();
        assert!(
            out.insert(key.to_owned(), vars).is_none(),
            "{}: {key} twice",
            path.display()
        );
    }
    out
}

fn keys_used_in(dir: &Path, ext: &str, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            keys_used_in(&path, ext, found);
        } else if path.extension().is_some_and(|e| e == ext) {
            let text = std::fs::read_to_string(&path).expect("utf8");
            let parts: Vec<&str> = text.split('"').collect();
            // In templates only `key="…"` names a message; other quoted text there (ids,
            // CSS classes such as `rooms-heading`) merely shares a prefix.
            let quoted = parts
                .iter()
                .enumerate()
                .skip(1)
                .step_by(2)
                .filter(|(i, _)| ext != "html" || parts[i - 1].ends_with("key="))
                .map(|(_, p)| *p);
            for piece in quoted {
                let prefixes = [
                    "nav-",
                    "language-",
                    "field-",
                    "hint-",
                    "login-",
                    "setup-",
                    "form-",
                    "app-",
                    "rooms-",
                    "room-settings-",
                    "devices-",
                    "error-",
                    "admin-",
                ];
                if prefixes.iter().any(|p| piece.starts_with(p))
                    && piece
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    found.insert(piece.to_owned());
                }
            }
        }
    }
}

/// Every `.ftl` file of a locale folder (fluent-templates loads them all), merged; a key
/// defined in two files is an error.
fn locale(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("locale folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ftl"))
        .collect();
    files.sort();
    let mut out = BTreeMap::new();
    for file in files {
        for (key, vars) in messages(&file) {
            assert!(
                out.insert(key.clone(), vars).is_none(),
                "{}: {key} is defined in another file too",
                file.display()
            );
        }
    }
    out
}

#[test]
fn every_language_has_every_key() {
    let english = locale(&root().join("locales/en"));
    assert!(
        english.contains_key("login-title") && english.contains_key("admin-title"),
        "main.ftl and admin.ftl are both read"
    );
    let mut languages = 0;
    for entry in std::fs::read_dir(root().join("locales")).expect("locales") {
        let dir = entry.expect("entry").path();
        let lang = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let other = locale(&dir);
        let missing: Vec<_> = english.keys().filter(|k| !other.contains_key(*k)).collect();
        let extra: Vec<_> = other.keys().filter(|k| !english.contains_key(*k)).collect();
        assert!(missing.is_empty(), "{lang} lacks {missing:?}");
        assert!(extra.is_empty(), "{lang} has keys English lacks: {extra:?}");
        for (key, vars) in &english {
            assert_eq!(
                &other[key], vars,
                "{lang}/{key} must use the same variables"
            );
        }
        languages += 1;
    }
    assert_eq!(languages, 5, "en, es, fr, de, pt");
    // Every key the templates and the code use exists.
    let mut used = BTreeSet::new();
    keys_used_in(&root().join("templates"), "html", &mut used);
    keys_used_in(&root().join("crates/http-app/src"), "rs", &mut used);
    assert!(used.len() > 40, "the scan found the keys: {used:?}");
    let unknown: Vec<_> = used.iter().filter(|k| !english.contains_key(*k)).collect();
    assert!(unknown.is_empty(), "used but not defined: {unknown:?}");
}

async fn the_language_follows_preference_cookie_and_header(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    for (accept, expect) in [
        ("es-ES,es;q=0.9", "Iniciar sesión"),
        ("de", "Anmelden"),
        ("ja, pt-BR;q=0.5", "Iniciar sessão"),
        ("ja", "Sign in"),
    ] {
        let body = client()
            .get(app.url("/login"))
            .header("accept-language", accept)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        assert!(body.contains(expect), "{accept}: {body}");
    }
    // The switcher, signed out: a cookie.
    let c = client();
    let token = get_csrf(&c, &app, "/login").await;
    let res = c
        .post(app.url("/language"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("lang", "fr"),
            ("next", "/login"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(location(&res), "/login");
    let body = c
        .get(app.url("/login"))
        .header("accept-language", "de")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        body.contains("<html lang=\"fr\">") && body.contains("Connexion"),
        "{body}"
    );
    // Signed in: stored on the account, so it follows the user to a new browser.
    sign_in(&c, &app, "alice").await;
    let token = get_csrf(&c, &app, "/").await;
    c.post(app.url("/language"))
        .form(&[("csrf_token", token.as_str()), ("lang", "pt")])
        .send()
        .await
        .expect("POST");
    let fresh = client();
    sign_in(&fresh, &app, "alice").await;
    let body = fresh
        .get(app.url("/"))
        .header("accept-language", "en")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        body.contains("<html lang=\"pt\">") && body.contains("Terminar sessão"),
        "{body}"
    );
    // Error pages are translated too.
    let body = client()
        .get(app.url("/nope"))
        .header("accept-language", "de")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(body.contains("Seite nicht gefunden"), "{body}");
}

both_backends!(the_language_follows_preference_cookie_and_header);
