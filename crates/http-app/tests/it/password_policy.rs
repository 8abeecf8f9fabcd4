//! The password policy (`domain::password_policy`) at every page that sets a password:
//! first-run setup, the account page, and the admin's create-user and reset-password
//! forms. Each refuses a weak password with the reason next to the field, in the
//! visitor's language, and changes nothing.

#![allow(clippy::unwrap_used)] // tests may panic: that is how they fail

use crate::{both_backends, helpers::*};
use domain::{
    db::Backend,
    repo::{self, user::NewUser},
};
use reqwest::{Client, StatusCode};

async fn post_form(
    c: &Client,
    app: &TestApp,
    path: &str,
    lang: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let res = c
        .post(app.url(path))
        .header("accept-language", lang)
        .form(fields)
        .send()
        .await
        .expect("POST");
    (res.status(), res.text().await.expect("body"))
}

/// The text of the error paragraph next to the field whose error id is `id`.
fn field_error(body: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {body}"))
        + marker.len();
    let end = body[start..].find("</p>").expect("closing tag") + start;
    body[start..end].to_owned()
}

async fn setup_refuses_a_weak_password(backend: Backend) {
    let app = spawn(backend).await;
    let link = app.setup_url.clone().expect("setup link");
    let c = client();
    let token = csrf_from(&c.get(&link).send().await.unwrap().text().await.unwrap());
    for (password, lang, expected) in [
        ("password123", "en", "This password is too common."),
        (
            "Administrator1",
            "es",
            "La contraseña se parece demasiado al nombre de usuario.",
        ),
        (
            "83920174652",
            "de",
            "Dieses Passwort besteht nur aus Ziffern.",
        ),
        ("xq7#Lm2", "fr", "au minimum"),
    ] {
        let (status, body) = post_form(
            &c,
            &app,
            link.strip_prefix(&app.address).unwrap(),
            lang,
            &[
                ("csrf_token", &token),
                ("username", "administrator"),
                ("password", password),
                ("password_confirm", password),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{password}");
        let error = field_error(&body, "password-error");
        assert!(error.contains(expected), "{password}: {error}");
        assert!(!body.contains(password), "passwords are never echoed");
    }
    // Nothing was created, and the link still works for a good password.
    let users = app.test_db.db.run(repo::user::count).await.unwrap();
    assert_eq!(users, 0);
    let (status, _) = post_form(
        &c,
        &app,
        link.strip_prefix(&app.address).unwrap(),
        "en",
        &[
            ("csrf_token", &token),
            ("username", "administrator"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn the_account_page_refuses_a_weak_new_password(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("mdx", "Marguerite Duras").await;
    let c = client();
    sign_in(&c, &app, "mdx").await;
    let token = get_csrf(&c, &app, "/account").await;
    for (password, lang, expected) in [
        (
            "Duras Marguerite",
            "pt",
            "A palavra-passe é demasiado parecida com o nome apresentado.",
        ),
        ("iloveyou12", "en", "This password is too common."),
        ("short1!", "en", "at least 10 characters"),
    ] {
        let (status, body) = post_form(
            &c,
            &app,
            "/account",
            lang,
            &[
                ("csrf_token", &token),
                ("form", "password"),
                ("current_password", PASSWORD),
                ("new_password", password),
                ("confirm_password", password),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{password}");
        let error = field_error(&body, "new_password-error");
        assert!(error.contains(expected), "{password}: {error}");
    }
    // The old password still signs in.
    sign_in(&client(), &app, "mdx").await;
}

async fn admin_forms_refuse_weak_passwords(backend: Backend) {
    let app = spawn(backend).await;
    let new = NewUser {
        username: "boss".into(),
        display_name: String::new(),
        password: PASSWORD.into(),
        is_staff: true,
        is_superuser: true,
    };
    let cost = app.settings().bcrypt_cost;
    app.test_db
        .db
        .run(move |c| repo::user::create(c, &new, cost))
        .await
        .unwrap();
    let victim = app.create_user("victor", "Victor Hugo").await;
    let c = client();
    sign_in(&c, &app, "boss").await;
    let token = get_csrf(&c, &app, "/admin/users/new").await;

    // Create: too similar to the new user's own name, and all digits.
    let (status, body) = post_form(
        &c,
        &app,
        "/admin/users/new",
        "fr",
        &[
            ("csrf_token", &token),
            ("username", "juliette"),
            ("password", "Juliette1985"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = field_error(&body, "err-password");
    assert!(
        error.contains("trop semblable au nom d’utilisateur"),
        "{error}"
    );
    let (status, body) = post_form(
        &c,
        &app,
        "/admin/users/new",
        "en",
        &[
            ("csrf_token", &token),
            ("username", "juliette"),
            ("password", "48213957602"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(field_error(&body, "err-password").contains("entirely numeric"));
    let found = app
        .test_db
        .db
        .run(|c| repo::user::find_by_username(c, "juliette"))
        .await
        .unwrap();
    assert!(found.is_none(), "nothing was created");

    // Reset: like the display name.
    let path = format!("/admin/users/{}/password", victim.id);
    let (status, body) = post_form(
        &c,
        &app,
        &path,
        "en",
        &[("csrf_token", &token), ("password", "HugoVictorHugo")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        field_error(&body, "err-password").contains("too similar to the display name"),
        "{body}"
    );
    // The victim's password is unchanged: they still sign in with it.
    sign_in(&client(), &app, "victor").await;
    // A strong one is accepted.
    let (status, _) = post_form(
        &c,
        &app,
        &path,
        "en",
        &[("csrf_token", &token), ("password", "plum tart at noon")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn the_minimum_length_follows_the_setting(backend: Backend) {
    let app = spawn_with(backend, |s, _| s.password_min_length = 24).await;
    app.create_user("ana", "").await;
    let c = client();
    sign_in(&c, &app, "ana").await;
    let token = get_csrf(&c, &app, "/account").await;
    let (status, body) = post_form(
        &c,
        &app,
        "/account",
        "en",
        &[
            ("csrf_token", &token),
            ("form", "password"),
            ("current_password", PASSWORD),
            ("new_password", "plum tart at noon"),
            ("confirm_password", "plum tart at noon"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(field_error(&body, "new_password-error").contains("at least 24 characters"));
    // The form says so up front too.
    let page = c
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("minlength=\"24\""), "{page}");
}

both_backends!(
    setup_refuses_a_weak_password,
    the_account_page_refuses_a_weak_new_password,
    admin_forms_refuse_weak_passwords,
    the_minimum_length_follows_the_setting,
);
