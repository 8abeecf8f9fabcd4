//! Admission: who may open a socket, and for how long it may stay.
//!
//! - Live sockets are counted per user and per client address **in this gateway process**
//!   (`CONFAB_WS_MAX_SOCKETS_PER_USER`, `CONFAB_WS_MAX_SOCKETS_PER_ADDRESS`); a handshake
//!   over either is refused with 429 and `Retry-After` before the upgrade. Several gateway
//!   processes each allow their own budget. A [`SocketPermit`] holds the slot and gives
//!   it back on `Drop`, so a socket that ends any way at all cannot leak one.
//! - [`close_at_expiry`] watches a socket's session and closes the socket with 4001 the
//!   moment the session's idle or absolute expiry passes (the periodic revalidation in
//!   `connection` would only notice up to a minute later).

use crate::{
    Core,
    hub::{CloseFrame, close},
};
use domain::{
    auth::SessionKey,
    ids::{SessionId, UserId},
    repo,
    settings::Settings,
    time::Timestamp,
};
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

/// What a refused handshake tells the client to wait: sockets free up when others close,
/// which the server cannot predict, so a short fixed pause.
pub const RETRY_AFTER_SECS: u64 = 10;

#[derive(Debug, Default)]
struct Counts {
    users: HashMap<UserId, usize>,
    addresses: HashMap<IpAddr, usize>,
}

/// What the handshake checks beyond the session: the socket limits, and whose
/// `X-Forwarded-For` to believe when telling the client's address.
#[derive(Debug)]
pub struct Admission {
    pub sockets: SocketCounter,
    trusted_proxies: Vec<IpAddr>,
}

impl Admission {
    pub fn new(config: &crate::GatewayConfig, settings: &Settings) -> Admission {
        Admission {
            sockets: SocketCounter::new(
                config.max_sockets_per_user,
                config.max_sockets_per_address,
            ),
            trusted_proxies: settings.trusted_proxies.clone(),
        }
    }

    /// The client's address, as http-app tells it (`domain::settings::client_address`).
    pub fn client_address(&self, peer: Option<IpAddr>, forwarded: Option<&str>) -> Option<IpAddr> {
        domain::settings::client_address(&self.trusted_proxies, peer, forwarded)
    }
}

/// The live-socket counts of this process.
#[derive(Debug)]
pub struct SocketCounter {
    per_user: usize,
    per_address: usize,
    // std Mutex: a few map operations, never held across an await.
    counts: Arc<Mutex<Counts>>,
}

/// Which limit a handshake hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    User,
    Address,
}

/// One counted socket; dropping it frees the slot.
#[derive(Debug)]
pub struct SocketPermit {
    user: UserId,
    address: Option<IpAddr>,
    counts: Arc<Mutex<Counts>>,
}

impl SocketCounter {
    pub fn new(per_user: usize, per_address: usize) -> SocketCounter {
        SocketCounter {
            per_user,
            per_address,
            counts: Arc::default(),
        }
    }

    /// Takes a slot for `user` from `address` (unknown address: only the user's limit).
    pub fn admit(&self, user: UserId, address: Option<IpAddr>) -> Result<SocketPermit, Refused> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.users.get(&user).copied().unwrap_or(0) >= self.per_user {
            return Err(Refused::User);
        }
        if let Some(a) = address
            && counts.addresses.get(&a).copied().unwrap_or(0) >= self.per_address
        {
            return Err(Refused::Address);
        }
        *counts.users.entry(user).or_default() += 1;
        if let Some(a) = address {
            *counts.addresses.entry(a).or_default() += 1;
        }
        Ok(SocketPermit {
            user,
            address,
            counts: self.counts.clone(),
        })
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
        release(&mut counts.users, self.user);
        if let Some(a) = self.address {
            release(&mut counts.addresses, a);
        }
    }
}

/// Sleeps until the session's expiry, re-reads it (a page view may have pushed the idle
/// expiry forward), and when it has really passed closes every socket of the session on
/// this gateway with 4001 "session expired". Returns once it has closed them; run it
/// beside the socket's task and drop it when the socket ends.
pub async fn close_at_expiry(
    core: Arc<Core>,
    user: UserId,
    session: SessionId,
    key: SessionKey,
    mut expires_at: Timestamp,
) {
    loop {
        let left_us = expires_at.0.saturating_sub(Timestamp::now().0).max(0) as u64;
        // A little past the instant, so the database agrees it has passed.
        tokio::time::sleep(Duration::from_micros(left_us) + Duration::from_millis(20)).await;
        let key = key.clone();
        // Boxed: this future lives beside every socket, the read only for a moment.
        match Box::pin(core.db.run(move |c| repo::session::find_live(c, &key))).await {
            Ok(Some(live)) => expires_at = live.session.expires_at,
            Ok(None) => {
                let closed = core.hub.kick_sessions(
                    user,
                    &[session],
                    CloseFrame::new(close::SESSION_ENDED, "session expired"),
                );
                if closed > 0 {
                    tracing::info!(session_id = %session, "session expired; its sockets closed");
                    return;
                }
                // Expired in the instant between the handshake and the socket's
                // registration with the hub: try again once it is registered. (When the
                // socket ends first, this future is dropped.)
                expires_at = Timestamp(Timestamp::now().0 + 100_000);
            }
            // An unreachable database is not an expiry; look again shortly.
            Err(e) => {
                tracing::warn!(error = %e, "session expiry check failed");
                expires_at = Timestamp::now().plus_secs(5);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_count_per_user_and_per_address_and_free_on_drop() {
        let c = SocketCounter::new(2, 3);
        let (ann, bob, cat) = (UserId(1), UserId(2), UserId(3));
        let here: IpAddr = "203.0.113.5".parse().unwrap();
        let there: IpAddr = "198.51.100.7".parse().unwrap();
        let a1 = c.admit(ann, Some(here)).unwrap();
        let _a2 = c.admit(ann, Some(there)).unwrap();
        assert_eq!(c.admit(ann, Some(there)).unwrap_err(), Refused::User);
        let _b1 = c.admit(bob, Some(here)).unwrap();
        let _c1 = c.admit(cat, Some(here)).unwrap();
        assert_eq!(c.admit(cat, Some(here)).unwrap_err(), Refused::Address);
        assert!(
            c.admit(cat, None).is_ok(),
            "no address: only the user's limit"
        );
        drop(a1);
        let _a3 = c.admit(ann, Some(there)).expect("a slot was freed");
        let counts = c.counts.lock().unwrap();
        assert_eq!(counts.addresses.get(&here), Some(&2));
    }
}
