//! Users, sessions and rooms for a run. The fast path writes them straight into the
//! server's database through `domain` (bcrypt cost 4, a session per user, the signed
//! cookie http-app would have set); `--http-login` signs each user in through the real
//! form instead (CSRF token and all), which is slow and meant for small counts.

use actix_web::cookie::{Cookie, CookieJar, Key};
use anyhow::{Context as _, bail};
use domain::{
    auth::{cookie_key_material, session_cookie_name},
    db::Db,
    error::DomainError,
    model::RoomKind,
    repo::{self, room::NewRoom, session::Lifetimes, user::NewUser},
};
use secrecy::SecretString;

/// How the loadgen gets past the gateway's handshake.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The bare bound: no users, no rooms to create.
    None,
    /// Users and sessions written into the server's database.
    Db {
        database_url: String,
        secret_key: String,
        /// With `--http-login`: the http-app (or `confab serve`) base URL to sign in at.
        http_login: Option<String>,
    },
}

/// One user's way in: a name, and the `Cookie` header for the handshake.
#[derive(Debug, Clone)]
pub struct Ident {
    pub username: String,
    pub cookie: Option<String>,
}

/// The password every loadgen user gets (needed only by `--http-login`).
const PASSWORD: &str = "loadgen password, not secret";

/// Makes `n` users named `{prefix}{i}`.
pub async fn users(auth: &Auth, prefix: &str, n: usize) -> anyhow::Result<Vec<Ident>> {
    let Auth::Db {
        database_url,
        secret_key,
        http_login,
    } = auth
    else {
        return Ok((0..n)
            .map(|i| Ident {
                username: format!("{prefix}{i}"),
                cookie: None,
            })
            .collect());
    };
    let db = Db::connect(database_url, 4).context("opening the server's database")?;
    let signer = Signer::new(secret_key);
    // Two workers: bcrypt is CPU work, and SQLite takes one writer at a time anyway.
    let workers = 2.min(n.max(1));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let db = db.clone();
        let names: Vec<String> = (w..n)
            .step_by(workers)
            .map(|i| format!("{prefix}{i}"))
            .collect();
        let with_session = http_login.is_none();
        tasks.push(tokio::spawn(async move {
            db.run(move |c| {
                let mut out = Vec::with_capacity(names.len());
                for name in names {
                    let user = repo::user::create(
                        c,
                        &NewUser {
                            username: name.clone(),
                            display_name: String::new(),
                            password: PASSWORD.into(),
                            is_staff: false,
                            is_superuser: false,
                        },
                        4,
                    )?;
                    let key = if with_session {
                        let (key, _) = repo::session::create(
                            c,
                            user.id,
                            "confab-loadgen",
                            "127.0.0.1",
                            "",
                            Lifetimes {
                                idle_secs: 24 * 3600,
                                absolute_secs: 48 * 3600,
                            },
                        )?;
                        Some(key.expose().to_owned())
                    } else {
                        None
                    };
                    out.push((name, key));
                }
                Ok(out)
            })
            .await
        }));
    }
    let mut made = Vec::with_capacity(n);
    for t in tasks {
        made.extend(t.await.context("user task")?.context("creating users")?);
    }
    // Back in index order: callers place user i in room i / members.
    made.sort_by_key(|(name, _)| name[prefix.len()..].parse::<usize>().unwrap_or(usize::MAX));
    let mut idents = Vec::with_capacity(n);
    for (username, key) in made {
        let cookie = match (key, http_login) {
            (Some(key), _) => signer.cookie(&key),
            (None, Some(base)) => http_sign_in(base, &username).await?,
            (None, None) => bail!("no session for {username}"),
        };
        idents.push(Ident {
            username,
            cookie: Some(cookie),
        });
    }
    Ok(idents)
}

/// Creates the public rooms (an existing one is fine: reruns share a database).
pub async fn rooms(auth: &Auth, slugs: &[String]) -> anyhow::Result<()> {
    let Auth::Db { database_url, .. } = auth else {
        return Ok(());
    };
    let db = Db::connect(database_url, 2).context("opening the server's database")?;
    let slugs = slugs.to_vec();
    db.run(move |c| {
        for slug in slugs {
            let new = NewRoom {
                slug,
                name: String::new(),
                topic: String::new(),
                kind: RoomKind::Public,
                created_by: None,
            };
            match repo::room::create(c, &new) {
                Ok(_) | Err(DomainError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .await
    .context("creating rooms")
}

/// Signs session keys into cookies exactly as http-app does.
struct Signer {
    key: Key,
    name: &'static str,
}

impl Signer {
    fn new(secret: &str) -> Signer {
        Signer {
            key: Key::from(&cookie_key_material(&SecretString::from(secret.to_owned()))),
            // The loadgen speaks plain ws:// to the services (TLS ends at nginx).
            name: session_cookie_name(false),
        }
    }

    fn cookie(&self, value: &str) -> String {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key)
            .add(Cookie::new(self.name, value.to_owned()));
        jar.get(self.name)
            .map(|c| format!("{}={}", c.name(), c.value()))
            .unwrap_or_default()
    }
}

/// The real sign-in: GET the form for its CSRF token, POST it back, keep the cookie.
async fn http_sign_in(base: &str, username: &str) -> anyhow::Result<String> {
    use reqwest::cookie::CookieStore;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let html = http
        .get(format!("{base}/login"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let marker = "name=\"csrf_token\" value=\"";
    let at = html.find(marker).context("no CSRF field on /login")? + marker.len();
    let token = html[at..]
        .split('"')
        .next()
        .context("unterminated CSRF field")?;
    let r = http
        .post(format!("{base}/login"))
        .header("Origin", base)
        .form(&[
            ("username", username),
            ("password", PASSWORD),
            ("csrf_token", token),
        ])
        .send()
        .await?;
    if r.status() != 303 {
        bail!("sign-in of {username} answered {}", r.status());
    }
    let url: reqwest::Url = base.parse()?;
    let cookie = jar
        .cookies(&url)
        .and_then(|h| h.to_str().ok().map(str::to_owned))
        .context("no session cookie after sign-in")?;
    Ok(cookie)
}
