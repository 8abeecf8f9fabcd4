//! Who is online, who is away, across every gateway.
//!
//! Each socket is *active* or *away* (the client says so with a `presence` frame; a new
//! socket is active). This gateway keeps that per socket; what it tells the shared store
//! is one state per user: active if any of the user's sockets here is, away if all are,
//! absent if there are none. A user's aggregate status is `online` if some gateway has
//! them active, `away` if every gateway that has them has them away, `offline` if none.
//!
//! With the in-process bus there is one gateway, so its own sockets are the whole truth.
//! With Redis, each gateway (node) records its users in sorted sets scored by an expiry
//! time that a heartbeat keeps pushing forward; a gateway that dies stops refreshing, and
//! the next heartbeat of any surviving gateway finds the expired entries, removes them
//! (exactly one gateway wins each entry) and announces the user's new status.
//!
//! Guarantees:
//! - A status is announced only when the aggregate changes: the last announced status is
//!   stored next to the entries, and every change is compared with it and recorded in the
//!   same Lua script, so two gateways never both announce one change.
//! - One gateway's changes for one user are applied and announced in order (a per-user
//!   lock, sharded, held across the store update and the publication).
//!
//! Keys, under the deployment prefix:
//! - `{prefix}:presence:user:{id}`: nodes where the user has sockets, score = expiry (ms);
//! - `{prefix}:presence:active:{id}`: the subset of those where a socket is active;
//! - `{prefix}:presence:status:{id}`: the last announced aggregate (`online`/`away`;
//!   absent = offline);
//! - `{prefix}:presence:all` / `{prefix}:presence:all_active`: `{id}:{node}` for every
//!   entry of the two sets above, for the sweep and the `hello` snapshot.

use crate::hub::ConnId;
use domain::{bus::PresenceStatus, bus::redis::RedisBus, ids::UserId};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Coalesced snapshot reads: how many have started, the last one finished (its number and
/// result), and whose turn it is to read.
struct SharedReads {
    started: AtomicU64,
    done: tokio::sync::watch::Sender<(u64, SnapshotResult)>,
    turn: tokio::sync::Mutex<()>,
}

type SnapshotResult = Arc<Result<Vec<(UserId, PresenceStatus)>, String>>;

impl Default for SharedReads {
    fn default() -> Self {
        SharedReads {
            started: AtomicU64::new(0),
            done: tokio::sync::watch::Sender::new((0, Arc::new(Ok(Vec::new())))),
            turn: tokio::sync::Mutex::new(()),
        }
    }
}

/// The presence of this gateway's sockets, and the store that combines gateways.
pub struct Presence {
    /// user → (socket → away). std `Mutex`: the critical sections never await.
    local: Mutex<HashMap<UserId, HashMap<ConnId, bool>>>,
    /// Snapshot reads shared by the sockets that ask at once (see [`Presence::fresh_snapshot`]).
    reads: SharedReads,
    /// Per-user ordering of store updates and announcements (sharded by user id). tokio's
    /// `Mutex`, because it is held across the Redis call and the bus publication.
    order: Vec<tokio::sync::Mutex<()>>,
    store: Store,
}

enum Store {
    /// One gateway: the last announced status per user.
    Local(Mutex<HashMap<UserId, PresenceStatus>>),
    Redis(RedisPresence),
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = match &self.store {
            Store::Local(_) => "local",
            Store::Redis(r) => r.node.as_str(),
        };
        f.debug_struct("Presence").field("store", &store).finish()
    }
}

struct RedisPresence {
    commands: domain::bus::redis::Commands,
    prefix: String,
    node: String,
    ttl: Duration,
}

/// What this gateway reports for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Active,
    Away,
    Absent,
}

impl NodeState {
    fn of(conns: Option<&HashMap<ConnId, bool>>) -> NodeState {
        match conns {
            None => NodeState::Absent,
            Some(c) if c.is_empty() => NodeState::Absent,
            Some(c) if c.values().any(|away| !away) => NodeState::Active,
            Some(_) => NodeState::Away,
        }
    }

    fn as_arg(self) -> &'static str {
        match self {
            NodeState::Active => "online",
            NodeState::Away => "away",
            NodeState::Absent => "none",
        }
    }

    fn status(self) -> PresenceStatus {
        match self {
            NodeState::Active => PresenceStatus::Online,
            NodeState::Away => PresenceStatus::Away,
            NodeState::Absent => PresenceStatus::Offline,
        }
    }
}

fn parse_status(s: &str) -> Option<PresenceStatus> {
    match s {
        "online" => Some(PresenceStatus::Online),
        "away" => Some(PresenceStatus::Away),
        "offline" => Some(PresenceStatus::Offline),
        _ => None,
    }
}

/// How many expired entries one heartbeat cleans up at most.
const SWEEP_BATCH: isize = 200;
/// Lock shards for per-user ordering.
const ORDER_SHARDS: usize = 64;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Presence {
    /// Presence from this process's sockets alone (the in-process bus).
    pub fn local() -> Presence {
        Presence::with_store(Store::Local(Mutex::new(HashMap::new())))
    }

    /// Presence in the bus's Redis. `ttl` is how long an entry outlives a silent gateway.
    pub fn redis(bus: &RedisBus, ttl: Duration) -> Presence {
        Presence::with_store(Store::Redis(RedisPresence {
            commands: bus.commands().clone(),
            prefix: bus.prefix().to_owned(),
            node: format!("{:016x}", rand::random::<u64>()),
            ttl,
        }))
    }

    fn with_store(store: Store) -> Presence {
        Presence {
            local: Mutex::new(HashMap::new()),
            reads: SharedReads::default(),
            order: (0..ORDER_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            store,
        }
    }

    fn local_lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, HashMap<ConnId, bool>>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A socket of `user` opened here; it starts active. Call [`Presence::sync`] next.
    pub fn attach(&self, conn: ConnId, user: UserId) {
        self.local_lock()
            .entry(user)
            .or_default()
            .insert(conn, false);
    }

    /// The socket closed. Call [`Presence::sync`] next.
    pub fn detach(&self, conn: ConnId, user: UserId) {
        let mut local = self.local_lock();
        if let Some(conns) = local.get_mut(&user) {
            conns.remove(&conn);
            if conns.is_empty() {
                local.remove(&user);
            }
        }
    }

    /// The socket says it is away (or back). Returns whether its state changed; call
    /// [`Presence::sync`] then.
    pub fn set_away(&self, conn: ConnId, user: UserId, away: bool) -> bool {
        let mut local = self.local_lock();
        match local.get_mut(&user).and_then(|c| c.get_mut(&conn)) {
            Some(state) if *state != away => {
                *state = away;
                true
            }
            _ => false,
        }
    }

    fn node_state(&self, user: UserId) -> NodeState {
        NodeState::of(self.local_lock().get(&user))
    }

    /// Brings the store in line with this gateway's sockets of `user`, and, if the user's
    /// aggregate status changed, runs `announce` with the new one (still in order with
    /// this gateway's other changes for the user). Errors are logged.
    pub async fn sync<F, Fut>(&self, user: UserId, announce: F)
    where
        F: FnOnce(PresenceStatus) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let _turn = self.order[user.0.rem_euclid(ORDER_SHARDS as i64) as usize]
            .lock()
            .await;
        // Read under the turn, so the last sync of a burst writes the latest state.
        let state = self.node_state(user);
        let changed = match &self.store {
            Store::Local(announced) => {
                let status = state.status();
                let mut announced = announced.lock().unwrap_or_else(|p| p.into_inner());
                let was = announced
                    .get(&user)
                    .copied()
                    .unwrap_or(PresenceStatus::Offline);
                if status == PresenceStatus::Offline {
                    announced.remove(&user);
                } else {
                    announced.insert(user, status);
                }
                (was != status).then_some(status)
            }
            Store::Redis(r) => match r.apply(user, state).await {
                Ok(changed) => changed,
                Err(e) => {
                    tracing::warn!(error = %e, user_id = %user, "presence update failed");
                    None
                }
            },
        };
        if let Some(status) = changed {
            announce(status).await;
        }
    }

    /// Refreshes this gateway's entries and expires those of dead gateways. Returns the
    /// users whose aggregate status changed, with the new status, to announce.
    pub async fn heartbeat(&self) -> Result<Vec<(UserId, PresenceStatus)>, String> {
        let Store::Redis(r) = &self.store else {
            return Ok(Vec::new());
        };
        let states: Vec<(UserId, NodeState)> = self
            .local_lock()
            .iter()
            .map(|(u, c)| (*u, NodeState::of(Some(c))))
            .filter(|(_, s)| *s != NodeState::Absent)
            .collect();
        let missing = r.refresh(&states).await.map_err(|e| e.to_string())?;
        let mut changes = r.sweep().await.map_err(|e| e.to_string())?;
        // Entries another gateway swept while this one stalled: write them back whole,
        // and announce what that changes.
        for user in missing {
            let _turn = self.order[user.0.rem_euclid(ORDER_SHARDS as i64) as usize]
                .lock()
                .await;
            let state = self.node_state(user);
            if let Some(status) = r.apply(user, state).await.map_err(|e| e.to_string())? {
                changes.push((user, status));
            }
        }
        Ok(changes)
    }

    /// Everyone online or away anywhere, with their status.
    pub async fn snapshot(&self) -> Result<Vec<(UserId, PresenceStatus)>, String> {
        match &self.store {
            Store::Local(_) => {
                let mut all: Vec<(UserId, PresenceStatus)> = self
                    .local_lock()
                    .iter()
                    .map(|(u, c)| (*u, NodeState::of(Some(c)).status()))
                    .filter(|(_, s)| *s != PresenceStatus::Offline)
                    .collect();
                all.sort_by_key(|(u, _)| *u);
                Ok(all)
            }
            Store::Redis(r) => r.snapshot().await.map_err(|e| e.to_string()),
        }
    }

    /// Whether the store spans gateways (Redis): then only it knows the whole truth.
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Redis(_))
    }

    /// A snapshot read that *started after* this call: it shows every change completed
    /// before the call, like [`Presence::snapshot`], but sockets asking at once share
    /// reads: while one read runs, every caller that arrives waits for the next, so a
    /// reconnect storm of N sockets costs a few store reads, not N.
    pub async fn fresh_snapshot(&self) -> SnapshotResult {
        let reads = &self.reads;
        let ticket = reads.started.load(Ordering::SeqCst);
        let mut done = reads.done.subscribe();
        loop {
            {
                let last = done.borrow_and_update();
                if last.0 > ticket {
                    return last.1.clone();
                }
            }
            if let Ok(_turn) = reads.turn.try_lock() {
                // Numbered before it starts: a later number means a later start.
                let number = reads.started.fetch_add(1, Ordering::SeqCst) + 1;
                let result = Arc::new(self.snapshot().await);
                reads.done.send_replace((number, result.clone()));
                return result;
            }
            // A reader whose task was dropped mid-read never reports: look again soon.
            let _ = tokio::time::timeout(Duration::from_millis(50), done.changed()).await;
        }
    }

    /// How often [`Presence::heartbeat`] should run.
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        match &self.store {
            Store::Local(_) => None,
            Store::Redis(r) => Some(r.ttl / 3),
        }
    }
}

/// Recomputes a user's aggregate after the caller's change and compares it with the last
/// announced one. KEYS: user, active, status. ARGV: now, key ttl. Returns the new status,
/// or nil when it did not change.
const ANNOUNCE_LUA: &str = r"
local function announce(u, a, s, now, keyttl)
  redis.call('ZREMRANGEBYSCORE', u, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', a, '-inf', now)
  local status = 'offline'
  if redis.call('ZCARD', a) > 0 then
    status = 'online'
  elseif redis.call('ZCARD', u) > 0 then
    status = 'away'
  end
  local was = redis.call('GET', s)
  if not was then was = 'offline' end
  if was == status then return false end
  if status == 'offline' then
    redis.call('DEL', s)
  else
    redis.call('SET', s, status, 'PX', keyttl)
  end
  return status
end
";

/// Sets one node's state for one user. KEYS: user, active, status, all, all_active.
/// ARGV: node, member (`{id}:{node}`), state (`online`/`away`/`none`), now, expiry, key ttl.
const APPLY_LUA: &str = r"
local u, a, s, all, act = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local node, member, state = ARGV[1], ARGV[2], ARGV[3]
local now, exp, keyttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if state == 'none' then
  redis.call('ZREM', u, node)
  redis.call('ZREM', all, member)
else
  redis.call('ZADD', u, exp, node)
  redis.call('PEXPIRE', u, keyttl)
  redis.call('ZADD', all, exp, member)
end
if state == 'online' then
  redis.call('ZADD', a, exp, node)
  redis.call('PEXPIRE', a, keyttl)
  redis.call('ZADD', act, exp, member)
else
  redis.call('ZREM', a, node)
  redis.call('ZREM', act, member)
end
return announce(u, a, s, now, keyttl)
";

/// Removes one expired entry, unless its gateway refreshed it meanwhile or another
/// gateway already removed it. KEYS and ARGV as for the apply script (no state/expiry).
const SWEEP_LUA: &str = r"
local u, a, s, all, act = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local node, member = ARGV[1], ARGV[2]
local now, keyttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local score = redis.call('ZSCORE', all, member)
if not score or tonumber(score) > now then return false end
redis.call('ZREM', all, member)
redis.call('ZREM', act, member)
redis.call('ZREM', u, node)
redis.call('ZREM', a, node)
return announce(u, a, s, now, keyttl)
";

impl RedisPresence {
    fn key(&self, kind: &str, user: UserId) -> String {
        format!("{}:presence:{kind}:{user}", self.prefix)
    }

    fn all_key(&self) -> String {
        format!("{}:presence:all", self.prefix)
    }

    fn all_active_key(&self) -> String {
        format!("{}:presence:all_active", self.prefix)
    }

    fn member(&self, user: UserId, node: &str) -> String {
        format!("{user}:{node}")
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    /// Per-user keys live a while longer than their entries, so a sweep always finds the
    /// announced status.
    fn key_ttl_ms(&self) -> i64 {
        self.ttl_ms() * 3
    }

    fn script(&self, body: &str, user: UserId) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(format!("{ANNOUNCE_LUA}{body}"))
            .arg(5)
            .arg(self.key("user", user))
            .arg(self.key("active", user))
            .arg(self.key("status", user))
            .arg(self.all_key())
            .arg(self.all_active_key());
        cmd
    }

    async fn apply(
        &self,
        user: UserId,
        state: NodeState,
    ) -> redis::RedisResult<Option<PresenceStatus>> {
        let now = now_ms();
        let mut cmd = self.script(APPLY_LUA, user);
        cmd.arg(&self.node)
            .arg(self.member(user, &self.node))
            .arg(state.as_arg())
            .arg(now)
            .arg(now + self.ttl_ms())
            .arg(self.key_ttl_ms());
        let mut c = self.commands.clone();
        let status: Option<String> = cmd.query_async(&mut c).await?;
        Ok(status.as_deref().and_then(parse_status))
    }

    /// Pushes the expiry of this gateway's entries forward, in one round trip. Never
    /// creates an `active` entry (a socket that went away meanwhile must stay away); returns
    /// the users whose entry had vanished (swept while this gateway stalled).
    async fn refresh(&self, states: &[(UserId, NodeState)]) -> redis::RedisResult<Vec<UserId>> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let exp = now_ms() + self.ttl_ms();
        let key_ttl = self.key_ttl_ms();
        let mut pipe = redis::pipe();
        for &(user, state) in states {
            let member = self.member(user, &self.node);
            // The one reply kept: 0 if the entry was there (updated), 1 if it was missing.
            pipe.cmd("ZADD")
                .arg(self.key("user", user))
                .arg(exp)
                .arg(&self.node);
            pipe.cmd("PEXPIRE")
                .arg(self.key("user", user))
                .arg(key_ttl)
                .ignore()
                .cmd("PEXPIRE")
                .arg(self.key("status", user))
                .arg(key_ttl)
                .ignore()
                .cmd("ZADD")
                .arg(self.all_key())
                .arg(exp)
                .arg(&member)
                .ignore();
            if state == NodeState::Active {
                pipe.cmd("ZADD")
                    .arg(self.key("active", user))
                    .arg("XX")
                    .arg(exp)
                    .arg(&self.node)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(self.key("active", user))
                    .arg(key_ttl)
                    .ignore()
                    .cmd("ZADD")
                    .arg(self.all_active_key())
                    .arg("XX")
                    .arg(exp)
                    .arg(&member)
                    .ignore();
            }
        }
        let mut c = self.commands.clone();
        let added: Vec<i64> = pipe.query_async(&mut c).await?;
        Ok(states
            .iter()
            .zip(added)
            .filter(|(_, n)| *n > 0)
            .map(|((u, _), _)| *u)
            .collect())
    }

    /// Removes expired entries (dead gateways) and returns the status changes that caused.
    async fn sweep(&self) -> redis::RedisResult<Vec<(UserId, PresenceStatus)>> {
        let now = now_ms();
        let mut c = self.commands.clone();
        let stale: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.all_key())
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(SWEEP_BATCH)
            .query_async(&mut c)
            .await?;
        let mut changes = Vec::new();
        for member in stale {
            let Some((user, node)) = member.split_once(':') else {
                continue;
            };
            let Ok(user) = user.parse::<i64>().map(UserId) else {
                continue;
            };
            let mut cmd = self.script(SWEEP_LUA, user);
            cmd.arg(node).arg(&member).arg(now).arg(self.key_ttl_ms());
            let status: Option<String> = cmd.query_async(&mut c).await?;
            if let Some(status) = status.as_deref().and_then(parse_status) {
                changes.push((user, status));
            }
        }
        Ok(changes)
    }

    async fn snapshot(&self) -> redis::RedisResult<Vec<(UserId, PresenceStatus)>> {
        let now = now_ms();
        let mut c = self.commands.clone();
        let (all, active): (Vec<String>, Vec<String>) = redis::pipe()
            .cmd("ZRANGEBYSCORE")
            .arg(self.all_key())
            .arg(now)
            .arg("+inf")
            .cmd("ZRANGEBYSCORE")
            .arg(self.all_active_key())
            .arg(now)
            .arg("+inf")
            .query_async(&mut c)
            .await?;
        let user_of = |m: &String| m.split_once(':')?.0.parse().ok().map(UserId);
        let active: std::collections::HashSet<UserId> = active.iter().filter_map(user_of).collect();
        let mut users: Vec<UserId> = all.iter().filter_map(user_of).collect();
        users.sort();
        users.dedup();
        Ok(users
            .into_iter()
            .map(|u| {
                let status = if active.contains(&u) {
                    PresenceStatus::Online
                } else {
                    PresenceStatus::Away
                };
                (u, status)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_state_here_is_active_if_any_socket_is() {
        let p = Presence::local();
        let u = UserId(7);
        assert_eq!(p.node_state(u), NodeState::Absent);
        p.attach(1, u);
        p.attach(2, u);
        assert_eq!(p.node_state(u), NodeState::Active);
        assert!(p.set_away(1, u, true));
        assert!(!p.set_away(1, u, true), "no change, nothing to sync");
        assert_eq!(p.node_state(u), NodeState::Active);
        assert!(p.set_away(2, u, true));
        assert_eq!(p.node_state(u), NodeState::Away);
        p.detach(2, u);
        assert_eq!(p.node_state(u), NodeState::Away);
        assert!(p.set_away(1, u, false));
        assert_eq!(p.node_state(u), NodeState::Active);
        p.detach(1, u);
        assert_eq!(p.node_state(u), NodeState::Absent);
        assert!(!p.set_away(1, u, true), "an unknown socket changes nothing");
    }

    async fn sync(p: &Presence, u: UserId, said: &Mutex<Vec<PresenceStatus>>) {
        p.sync(u, |s| {
            said.lock().expect("lock").push(s);
            async {}
        })
        .await;
    }

    #[tokio::test]
    async fn a_shared_snapshot_shows_every_change_made_before_the_call() {
        let p = Arc::new(Presence::local());
        let mut readers = Vec::new();
        for i in 0..20 {
            p.attach(i, UserId(i as i64));
            let p = p.clone();
            readers.push(tokio::spawn(async move {
                let seen = p.fresh_snapshot().await;
                (i, seen.as_ref().clone().expect("snapshot"))
            }));
        }
        for r in readers {
            let (i, seen) = r.await.expect("reader");
            for j in 0..=i {
                assert!(seen.contains(&(UserId(j as i64), PresenceStatus::Online)));
            }
        }
    }

    #[tokio::test]
    async fn the_local_store_announces_only_changes() {
        let p = Presence::local();
        let u = UserId(3);
        let said = Mutex::new(Vec::new());
        p.attach(1, u);
        sync(&p, u, &said).await;
        p.attach(2, u);
        sync(&p, u, &said).await;
        p.set_away(1, u, true);
        sync(&p, u, &said).await;
        p.set_away(2, u, true);
        sync(&p, u, &said).await;
        assert_eq!(
            p.snapshot().await.expect("snapshot"),
            vec![(u, PresenceStatus::Away)]
        );
        p.detach(1, u);
        sync(&p, u, &said).await;
        p.detach(2, u);
        sync(&p, u, &said).await;
        assert_eq!(
            *said.lock().expect("lock"),
            vec![
                PresenceStatus::Online,
                PresenceStatus::Away,
                PresenceStatus::Offline
            ]
        );
        assert!(p.snapshot().await.expect("snapshot").is_empty());
    }
}
