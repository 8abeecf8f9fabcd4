//! What this gateway's sockets are told about presence: the roster of users online or
//! away (the `hello` snapshot), and the changes since, sent as coalesced `presence`
//! frames.
//!
//! Every presence event from the bus is recorded here ([`Roster::record`]): the roster
//! changes at once, so a `hello` built now already shows it, and the change is queued.
//! With one gateway the roster is the `hello` snapshot; with several (Redis) `hello` reads
//! the shared store, in reads shared by the sockets asking at once
//! ([`crate::presence::Presence::fresh_snapshot`]), and names its users from here.
//! [`run`] sends the queued changes to every socket: at once when the gateway was quiet,
//! then at most one frame per [`PRESENCE_TICK`]. N users arriving together (a reconnect
//! storm) cost each socket a few frames, not N: the outbound queues do not overflow (a
//! full queue closes the socket) and the frame count stops growing as N².
//!
//! Guarantees:
//! - Building `hello` costs no database query per online user: memory work with one
//!   gateway; with Redis one store read shared by every socket asking meanwhile (and the
//!   database only for a user this gateway never heard of).
//! - A socket registered in the hub before it reads the roster gets every change recorded
//!   after that read in a later frame, in order, so it ends on the current state. A change
//!   `hello` already showed may come again; applying a status twice is harmless.
//! - Within one frame a user appears once, with the status they ended the tick in: a
//!   frame carries every user whose status changed since the previous frame.

use crate::{hub::Hub, protocol::ServerFrame};
use domain::{bus::PresenceStatus, db::Db, ids::UserId, repo};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};
use tokio::sync::Notify;

/// The least time between two `presence` frames from one gateway.
pub const PRESENCE_TICK: Duration = Duration::from_millis(100);

/// Presence as this gateway's sockets see it.
#[derive(Debug, Default)]
pub struct Roster {
    // std Mutex: the critical sections never await.
    inner: Mutex<Inner>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Users online or away, by id (so `hello` lists them in a stable order).
    present: BTreeMap<UserId, (String, PresenceStatus)>,
    /// Changes not sent yet: user → (username, latest status).
    pending: BTreeMap<UserId, (String, PresenceStatus)>,
    /// Usernames heard of (events, this gateway's sockets), for naming the store's
    /// snapshot; emptied when it grows past [`NAMES_MAX`].
    names: HashMap<UserId, String>,
}

/// Usernames the roster keeps at most.
const NAMES_MAX: usize = 100_000;

impl Inner {
    fn remember(&mut self, user: UserId, username: &str) {
        if self.names.get(&user).is_some_and(|n| n == username) {
            return;
        }
        if self.names.len() >= NAMES_MAX {
            self.names.clear();
        }
        self.names.insert(user, username.to_owned());
    }
}

impl Roster {
    pub fn new() -> Roster {
        Roster::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A user's status changed (an event from the bus).
    pub fn record(&self, user: UserId, username: &str, status: PresenceStatus) {
        {
            let mut inner = self.lock();
            if status == PresenceStatus::Offline {
                inner.present.remove(&user);
            } else {
                inner.present.insert(user, (username.to_owned(), status));
            }
            inner.pending.insert(user, (username.to_owned(), status));
            inner.remember(user, username);
        }
        // Stores a permit if the sender is not waiting: no change is ever left behind.
        self.changed.notify_one();
    }

    /// Makes the roster match `now` (every user online or away, with their username),
    /// recording a change for each user whose status differs, so sockets are corrected
    /// too. For the start-up snapshot and after the bus lost events.
    pub fn reset(&self, now: Vec<(UserId, String, PresenceStatus)>) {
        let changes: Vec<(UserId, String, PresenceStatus)> = {
            let inner = self.lock();
            let now_ids: std::collections::HashSet<UserId> =
                now.iter().map(|(u, _, _)| *u).collect();
            let gone = inner
                .present
                .iter()
                .filter(|(u, _)| !now_ids.contains(u))
                .map(|(u, (name, _))| (*u, name.clone(), PresenceStatus::Offline));
            let differ = now
                .iter()
                .filter(|(u, _, s)| inner.present.get(u).map(|(_, was)| was) != Some(s))
                .cloned();
            gone.chain(differ).collect()
        };
        for (user, name, status) in changes {
            self.record(user, &name, status);
        }
    }

    /// The username this gateway last heard for a present user.
    pub fn username(&self, user: UserId) -> Option<String> {
        self.lock().present.get(&user).map(|(name, _)| name.clone())
    }

    /// Remembers a username (a socket of this gateway).
    pub fn learn(&self, user: UserId, username: &str) {
        self.lock().remember(user, username);
    }

    /// Names a store snapshot (sorted by id) for `hello`: at most `max` users, who is
    /// online and who is away, and the users whose name is not known here.
    pub fn name(
        &self,
        present: &[(UserId, PresenceStatus)],
        max: usize,
    ) -> (Vec<String>, Vec<String>, Vec<(UserId, PresenceStatus)>) {
        let inner = self.lock();
        let (mut online, mut away, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
        for &(user, status) in present.iter().take(max) {
            match (inner.names.get(&user), status) {
                (None, _) => unknown.push((user, status)),
                (Some(name), PresenceStatus::Away) => away.push(name.clone()),
                (Some(name), _) => online.push(name.clone()),
            }
        }
        (online, away, unknown)
    }

    /// Who is online and who is away, at most `max` names in all (lowest ids first).
    pub fn lists(&self, max: usize) -> (Vec<String>, Vec<String>) {
        let inner = self.lock();
        let (mut online, mut away) = (Vec::new(), Vec::new());
        for (name, status) in inner.present.values().take(max) {
            match status {
                PresenceStatus::Away => away.push(name.clone()),
                _ => online.push(name.clone()),
            }
        }
        (online, away)
    }

    /// The queued changes as one frame (the single-user form when there is one change).
    pub fn take_frame(&self) -> Option<ServerFrame> {
        let pending = std::mem::take(&mut self.lock().pending);
        if pending.len() == 1 {
            let (_, (user, status)) = pending.into_iter().next()?;
            return Some(ServerFrame::Presence { user, status });
        }
        if pending.is_empty() {
            return None;
        }
        let (mut online, mut away, mut offline) = (Vec::new(), Vec::new(), Vec::new());
        for (name, status) in pending.into_values() {
            match status {
                PresenceStatus::Online => online.push(name),
                PresenceStatus::Away => away.push(name),
                PresenceStatus::Offline => offline.push(name),
            }
        }
        Some(ServerFrame::PresenceBatch {
            online,
            away,
            offline,
        })
    }
}

/// Makes the roster match the presence store: at start-up (users of other gateways) and
/// after the bus lost events (a Redis reconnect). Usernames the roster knows are reused,
/// the others read in one database call. A change recorded while this runs may be undone
/// until that user's next change; it runs rarely.
pub async fn resync(hub: &Hub, db: &Db) {
    let present = match hub.presence().snapshot().await {
        Ok(present) => present,
        Err(e) => {
            tracing::warn!(error = %e, "presence snapshot failed");
            return;
        }
    };
    let roster = hub.roster().clone();
    if present.is_empty() && roster.lock().present.is_empty() {
        return;
    }
    let found = db
        .run(move |c| {
            let mut now = Vec::with_capacity(present.len());
            for (user, status) in present {
                let name = match roster.username(user) {
                    Some(name) => name,
                    None => match repo::user::find(c, user) {
                        Ok(u) if u.is_active => u.username,
                        _ => continue,
                    },
                };
                now.push((user, name, status));
            }
            Ok(now)
        })
        .await;
    match found {
        Ok(now) => hub.roster().reset(now),
        Err(e) => tracing::warn!(error = %e, "presence names could not be read"),
    }
}

/// Sends the roster's changes to every socket of the hub, one frame per tick at most.
/// Ends when the hub is gone.
pub async fn run(roster: Arc<Roster>, hub: Weak<Hub>) {
    loop {
        tokio::select! {
            () = roster.changed.notified() => {}
            // Wake now and then to notice a dropped hub.
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                if hub.strong_count() == 0 {
                    return;
                }
                continue;
            }
        }
        let Some(hub) = hub.upgrade() else { return };
        if let Some(frame) = roster.take_frame() {
            hub.deliver_all(&frame.to_text());
        }
        drop(hub);
        tokio::time::sleep(PRESENCE_TICK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_carries_every_user_with_their_last_status() {
        let r = Roster::new();
        assert!(r.take_frame().is_none(), "nothing changed");
        r.record(UserId(1), "ann", PresenceStatus::Online);
        assert_eq!(
            r.take_frame(),
            Some(ServerFrame::Presence {
                user: "ann".into(),
                status: PresenceStatus::Online
            })
        );
        r.record(UserId(2), "bob", PresenceStatus::Online);
        r.record(UserId(3), "cy", PresenceStatus::Online);
        r.record(UserId(2), "bob", PresenceStatus::Away);
        r.record(UserId(1), "ann", PresenceStatus::Offline);
        assert_eq!(
            r.take_frame(),
            Some(ServerFrame::PresenceBatch {
                online: vec!["cy".into()],
                away: vec!["bob".into()],
                offline: vec!["ann".into()],
            })
        );
        assert_eq!(r.lists(10), (vec!["cy".into()], vec!["bob".into()]));
        assert_eq!(r.lists(1), (vec![], vec!["bob".into()]), "capped, by id");
        assert_eq!(
            r.take_frame()
                .map(|f| f.to_text().to_string())
                .unwrap_or_default(),
            ""
        );
    }

    #[test]
    fn a_batch_frame_lists_names_by_status() {
        let f = ServerFrame::PresenceBatch {
            online: vec!["ann".into()],
            away: vec![],
            offline: vec!["bob".into(), "cy".into()],
        };
        assert_eq!(
            f.to_text().to_string(),
            r#"{"type":"presence","online":["ann"],"offline":["bob","cy"]}"#
        );
    }

    #[test]
    fn a_store_snapshot_is_named_from_what_the_roster_heard() {
        let r = Roster::new();
        r.learn(UserId(1), "ann");
        r.record(UserId(2), "bob", PresenceStatus::Online);
        // Offline since, but still a known name.
        r.record(UserId(2), "bob", PresenceStatus::Offline);
        let present = [
            (UserId(1), PresenceStatus::Away),
            (UserId(2), PresenceStatus::Online),
            (UserId(3), PresenceStatus::Online),
        ];
        assert_eq!(
            r.name(&present, 10),
            (
                vec!["bob".into()],
                vec!["ann".into()],
                vec![(UserId(3), PresenceStatus::Online)]
            )
        );
        assert_eq!(r.name(&present, 1).1, vec!["ann".to_owned()], "capped");
    }

    #[test]
    fn reset_records_only_differences() {
        let r = Roster::new();
        r.record(UserId(1), "ann", PresenceStatus::Online);
        r.record(UserId(2), "bob", PresenceStatus::Away);
        r.take_frame();
        r.reset(vec![
            (UserId(2), "bob".into(), PresenceStatus::Away),
            (UserId(3), "cy".into(), PresenceStatus::Online),
        ]);
        assert_eq!(
            r.take_frame(),
            Some(ServerFrame::PresenceBatch {
                online: vec!["cy".into()],
                away: vec![],
                offline: vec!["ann".into()],
            })
        );
        assert_eq!(r.username(UserId(2)).as_deref(), Some("bob"));
        assert_eq!(r.username(UserId(1)), None);
    }
}
