//! `spawn`: a fresh database and a running http-app per test; a client that keeps
//! cookies and does not follow redirects, so tests see every 303.

use actix_web::{
    cookie::{Cookie, CookieJar, Key},
    dev::ServerHandle,
};
use domain::{
    bus::{SharedBus, memory::MemoryBus},
    crypto::MessageKeys,
    db::Backend,
    model::User,
    repo::user::NewUser,
    settings::Settings,
    testing::TestDb,
};
use http_app::{AppState, Application, Deps, Options};
use reqwest::{Client, Response, StatusCode, redirect::Policy};
use std::sync::{Arc, Once};

pub const PASSWORD: &str = "correct horse battery";
pub const UA_FIREFOX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
pub const UA_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";

/// Runs an async test body on SQLite and on PostgreSQL, as two tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(domain::db::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name(domain::db::Backend::Postgres).await
                }
            }
        )*
    };
}

pub struct TestApp {
    pub address: String,
    pub app_state: AppState,
    pub bus: SharedBus,
    pub setup_url: Option<String>,
    handle: ServerHandle,
    // Dropped last: the server must not outlive its database.
    pub test_db: TestDb,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn settings(&self) -> &Settings {
        &self.app_state.settings
    }

    pub async fn create_user(&self, username: &str, display_name: &str) -> User {
        let new = NewUser {
            username: username.into(),
            display_name: display_name.into(),
            password: PASSWORD.into(),
            is_staff: false,
            is_superuser: false,
        };
        let cost = self.settings().bcrypt_cost;
        self.test_db
            .db
            .run(move |c| domain::repo::user::create(c, &new, cost))
            .await
            .expect("create user")
    }

    /// A signed session cookie for `value`, as the server would make it.
    pub fn signed_cookie(&self, name: &str, value: &str) -> String {
        let key = Key::from(&domain::auth::cookie_key_material(
            &self.settings().secret_key,
        ));
        let mut jar = CookieJar::new();
        jar.signed_mut(&key)
            .add(Cookie::new(name.to_owned(), value.to_owned()));
        let cookie = jar.get(name).expect("just added");
        format!("{}={}", cookie.name(), cookie.value())
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, |_, _| {}).await
}

/// Like [`spawn`], letting the test change settings and options first.
pub async fn spawn_with(
    backend: Backend,
    tweak: impl FnOnce(&mut Settings, &mut Options),
) -> TestApp {
    install_crypto_provider();
    let test_db = tokio::task::spawn_blocking(move || {
        let t = TestDb::new(backend);
        let mut c = t.db.get().expect("connection");
        domain::repo::room::ensure_general(&mut c).expect("general room");
        drop(c);
        t
    })
    .await
    .expect("test database");
    let mut settings = domain::testing::settings(&test_db.url);
    let mut options = Options {
        workers: Some(1),
        shutdown_timeout_secs: 1,
        ..Options::default()
    };
    tweak(&mut settings, &mut options);
    let keys = settings.message_keys().expect("message keys");
    spawn_on(test_db, settings, options, keys).await
}

pub async fn spawn_on(
    test_db: TestDb,
    settings: Settings,
    options: Options,
    keys: MessageKeys,
) -> TestApp {
    let bus: SharedBus = Arc::new(MemoryBus::new());
    let mut deps = Deps::new(test_db.db.clone(), bus.clone(), keys);
    deps.options = options;
    let app = Application::build(settings, deps).await.expect("build");
    let address = format!("http://127.0.0.1:{}", app.port());
    let setup_url = app.setup_url();
    let app_state = app.state().clone();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        app_state,
        bus,
        setup_url,
        handle,
        test_db,
    }
}

/// A browser-like client: keeps cookies, never follows redirects.
pub fn client() -> Client {
    client_with_agent(UA_FIREFOX)
}

pub fn client_with_agent(ua: &str) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .user_agent(ua)
        .build()
        .expect("client")
}

/// A client without a cookie store, for hand-made `Cookie` headers.
pub fn bare_client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// The value of the first `name="csrf_token"` field on a page.
pub fn csrf_from(html: &str) -> String {
    let at = html
        .find("name=\"csrf_token\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in:\n{html}"));
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

pub async fn get_csrf(client: &Client, app: &TestApp, path: &str) -> String {
    let html = client
        .get(app.url(path))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    csrf_from(&html)
}

pub async fn post_login(
    client: &Client,
    app: &TestApp,
    username: &str,
    password: &str,
    token: Option<&str>,
) -> Response {
    let mut form = vec![("username", username), ("password", password)];
    if let Some(t) = token {
        form.push(("csrf_token", t));
    }
    client
        .post(app.url("/login"))
        .form(&form)
        .send()
        .await
        .expect("POST /login")
}

/// Signs in through the form and checks it worked.
pub async fn sign_in(client: &Client, app: &TestApp, username: &str) {
    let token = get_csrf(client, app, "/login").await;
    let res = post_login(client, app, username, PASSWORD, Some(&token)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "sign-in of {username}");
    assert_eq!(location(&res), "/");
}

pub fn location(res: &Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The value of the cookie `name` set by this response, if any.
pub fn set_cookie(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// Is this client signed in? (`/` shows the app rather than redirecting to sign-in.)
pub async fn is_signed_in(client: &Client, app: &TestApp) -> bool {
    let res = client.get(app.url("/")).send().await.expect("GET /");
    match res.status() {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => {
            assert_eq!(location(&res), "/login");
            false
        }
        other => panic!("GET / answered {other}"),
    }
}

/// The `name=value` part of a `Set-Cookie` header.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or("").to_owned()
}
