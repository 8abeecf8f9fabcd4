//! actix-session's `SessionStore` over `domain::repo::session`: sessions live in the
//! database (shared with the gateway, listable, revocable); the cookie carries only the
//! opaque key, signed with the key both services derive from the secret.
//!
//! A row exists only for a signed-in user (`sessions.user_id` is NOT NULL), so the first
//! save of a session must carry the user: the sign-in handler puts [`USER_ID`],
//! [`USER_AGENT`] and [`IP`] in the state and the store turns them into columns. Saving
//! also announces the sign-in on the bus and, with `single_session`, ends the user's
//! other sessions. Loading puts [`USER_ID`] and [`SESSION_ID`] from the row (never from
//! stored data) into the state, and refreshes `last_seen` at most once a minute.

use crate::device;
use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use anyhow::anyhow;
use domain::{
    auth::SessionKey as DomainKey,
    bus::{Event, SharedBus, Topic},
    db::Db,
    ids::{SessionId, UserId},
    repo::session::{self, Lifetimes},
    time::Timestamp,
};
use std::collections::HashMap;

pub const USER_ID: &str = "uid";
pub const SESSION_ID: &str = "sid";
pub const USER_AGENT: &str = "ua";
pub const IP: &str = "ip";
const RESERVED: [&str; 4] = [USER_ID, SESSION_ID, USER_AGENT, IP];

/// `last_seen` is written at most this often per session (a write per request would
/// serialise every page view on SQLite's single writer).
const TOUCH_EVERY_SECS: u64 = 60;

type State = HashMap<String, String>;

#[derive(Clone)]
pub struct DbSessionStore {
    db: Db,
    bus: SharedBus,
    lifetimes: Lifetimes,
    single_session: bool,
}

impl DbSessionStore {
    pub fn new(db: Db, bus: SharedBus, lifetimes: Lifetimes, single_session: bool) -> Self {
        DbSessionStore {
            db,
            bus,
            lifetimes,
            single_session,
        }
    }
}

/// The web layer's own entries, without the ones that map to columns.
fn data_json(state: &State) -> Result<String, serde_json::Error> {
    let data: HashMap<&String, &String> = state
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .collect();
    serde_json::to_string(&data)
}

fn json_str(state: &State, key: &str) -> Option<String> {
    state
        .get(key)
        .and_then(|v| serde_json::from_str::<String>(v).ok())
}

/// Publishes "these sessions are gone" so the gateway closes their sockets. A bus
/// failure is logged, not returned: the revocation already happened in the database,
/// which the gateway also checks.
pub async fn announce_revoked(bus: &SharedBus, user: UserId, ids: Vec<SessionId>, reason: &str) {
    if ids.is_empty() {
        return;
    }
    let event = Event::SessionsRevoked {
        user_id: user,
        session_ids: ids,
        reason: reason.to_owned(),
    };
    if let Err(e) = bus.publish(Topic::User(user), &event).await {
        tracing::warn!(error = %e, "could not announce revoked sessions");
    }
}

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let Some(key) = DomainKey::from_cookie(key.as_ref()) else {
            return Ok(None);
        };
        let lifetimes = self.lifetimes;
        let live = self
            .db
            .run(move |c| {
                let Some(live) = session::find_live(c, &key)? else {
                    return Ok(None);
                };
                let stale =
                    live.session.last_seen_at.plus_secs(TOUCH_EVERY_SECS) < Timestamp::now();
                if stale && !session::touch(c, live.session.id, lifetimes)? {
                    return Ok(None);
                }
                Ok(Some(live))
            })
            .await
            .map_err(|e| LoadError::Other(anyhow!(e)))?;
        let Some(live) = live else {
            return Ok(None);
        };
        // Unreadable stored data costs the web state, not the sign-in.
        let mut state: State = serde_json::from_str(&live.data).unwrap_or_default();
        state.retain(|k, _| !RESERVED.contains(&k.as_str()));
        state.insert(USER_ID.into(), live.user.id.0.to_string());
        state.insert(SESSION_ID.into(), live.session.id.0.to_string());
        Ok(Some(state))
    }

    async fn save(&self, state: State, _ttl: &Duration) -> Result<SessionKey, SaveError> {
        let user = state
            .get(USER_ID)
            .and_then(|v| v.parse::<i64>().ok())
            .map(UserId)
            .ok_or_else(|| {
                SaveError::Other(anyhow!("a session can only be saved for a signed-in user"))
            })?;
        let ua = json_str(&state, USER_AGENT).unwrap_or_default();
        let ip = json_str(&state, IP).unwrap_or_default();
        let data = data_json(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let (lifetimes, single) = (self.lifetimes, self.single_session);
        let (ua2, ip2) = (ua.clone(), ip.clone());
        let (key, created, revoked) = self
            .db
            .run(move |c| {
                let (key, created) = session::create(c, user, &ua2, &ip2, &data, lifetimes)?;
                let revoked = if single {
                    session::revoke_others(c, user, created.id)?
                } else {
                    Vec::new()
                };
                Ok((key, created, revoked))
            })
            .await
            .map_err(|e| SaveError::Other(anyhow!(e)))?;
        announce_revoked(&self.bus, user, revoked, "single_session").await;
        let event = Event::SignedIn {
            user_id: user,
            session_id: created.id,
            device: device::describe(&ua),
            ip,
            ts: created.created_at.micros(),
        };
        if let Err(e) = self.bus.publish(Topic::User(user), &event).await {
            tracing::warn!(error = %e, "could not announce a sign-in");
        }
        SessionKey::try_from(key.expose().to_owned()).map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        _ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let Some(dkey) = DomainKey::from_cookie(key.as_ref()) else {
            return Err(UpdateError::Other(anyhow!("not a session key")));
        };
        let data = data_json(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        self.db
            .run(move |c| {
                // A session revoked while this request ran stays revoked: nothing to save.
                if let Some(live) = session::find_live(c, &dkey)? {
                    session::save_data(c, live.session.id, &data)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| UpdateError::Other(anyhow!(e)))?;
        Ok(key)
    }

    async fn update_ttl(&self, key: &SessionKey, _ttl: &Duration) -> Result<(), anyhow::Error> {
        let Some(dkey) = DomainKey::from_cookie(key.as_ref()) else {
            return Ok(());
        };
        let lifetimes = self.lifetimes;
        self.db
            .run(move |c| {
                if let Some(live) = session::find_live(c, &dkey)? {
                    session::touch(c, live.session.id, lifetimes)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        let Some(dkey) = DomainKey::from_cookie(key.as_ref()) else {
            return Ok(());
        };
        let revoked = self
            .db
            .run(move |c| {
                let Some(live) = session::find_live(c, &dkey)? else {
                    return Ok(None);
                };
                Ok(session::revoke(c, live.session.id)?.then_some((live.user.id, live.session.id)))
            })
            .await?;
        if let Some((user, id)) = revoked {
            announce_revoked(&self.bus, user, vec![id], "signed_out").await;
        }
        Ok(())
    }
}
