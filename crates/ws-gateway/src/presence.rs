//! Who is online, across every gateway.
//!
//! With the in-process bus there is one gateway, so its own sockets are the whole truth
//! ([`Presence::Local`]). With Redis, each gateway (node) records its users in sorted sets
//! scored by an expiry time that a heartbeat keeps pushing forward; a gateway that dies
//! stops refreshing, and the next heartbeat of any surviving gateway finds the expired
//! entries, removes them (exactly one gateway wins each `ZREM`) and announces `offline`.
//!
//! Keys, under the deployment prefix:
//! - `{prefix}:presence:user:{id}`: nodes where the user has sockets, score = expiry (ms);
//! - `{prefix}:presence:all`: `{id}:{node}` for every such entry, for the sweep.

use domain::{bus::redis::RedisBus, ids::UserId};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub enum Presence {
    Local,
    Redis(RedisPresence),
}

pub struct RedisPresence {
    pool: deadpool_redis::Pool,
    prefix: String,
    node: String,
    ttl: Duration,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("node", &self.node)
            .finish()
    }
}

/// How many expired entries one heartbeat cleans up at most.
const SWEEP_BATCH: isize = 200;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Presence {
    /// Presence in the bus's Redis. `ttl` is how long an entry outlives a silent gateway.
    pub fn redis(bus: &RedisBus, ttl: Duration) -> Presence {
        Presence::Redis(RedisPresence {
            pool: bus.pool().clone(),
            prefix: bus.prefix().to_owned(),
            node: format!("{:016x}", rand::random::<u64>()),
            ttl,
        })
    }

    /// The user's first socket on this gateway opened; true if they just came online
    /// everywhere.
    pub async fn online(&self, user: UserId) -> Result<bool, String> {
        match self {
            Presence::Local => Ok(true),
            Presence::Redis(r) => r.online(user).await.map_err(|e| e.to_string()),
        }
    }

    /// The user's last socket on this gateway closed; true if they are now offline
    /// everywhere.
    pub async fn offline(&self, user: UserId) -> Result<bool, String> {
        match self {
            Presence::Local => Ok(true),
            Presence::Redis(r) => r.offline(user).await.map_err(|e| e.to_string()),
        }
    }

    /// Refreshes this gateway's users and returns the users whose entries expired
    /// elsewhere (a dead gateway) and who are now offline everywhere.
    pub async fn heartbeat(&self, local: &[UserId]) -> Result<Vec<UserId>, String> {
        match self {
            Presence::Local => Ok(Vec::new()),
            Presence::Redis(r) => r.heartbeat(local).await.map_err(|e| e.to_string()),
        }
    }

    /// Everyone online anywhere, given this gateway's own users.
    pub async fn online_users(&self, local: Vec<UserId>) -> Result<Vec<UserId>, String> {
        match self {
            Presence::Local => Ok(local),
            Presence::Redis(r) => r.online_users().await.map_err(|e| e.to_string()),
        }
    }

    /// How often [`Presence::heartbeat`] should run.
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        match self {
            Presence::Local => None,
            Presence::Redis(r) => Some(r.ttl / 3),
        }
    }
}

impl RedisPresence {
    fn user_key(&self, user: UserId) -> String {
        format!("{}:presence:user:{user}", self.prefix)
    }

    fn all_key(&self) -> String {
        format!("{}:presence:all", self.prefix)
    }

    fn member(&self, user: UserId) -> String {
        format!("{user}:{}", self.node)
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, redis::RedisError> {
        self.pool.get().await.map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Io, "Redis pool", e.to_string()))
        })
    }

    async fn online(&self, user: UserId) -> redis::RedisResult<bool> {
        let now = now_ms();
        let key = self.user_key(user);
        let mut c = self.conn().await?;
        let (before,): (i64,) = redis::pipe()
            .atomic()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now)
            .ignore()
            .cmd("ZCARD")
            .arg(&key)
            .cmd("ZADD")
            .arg(&key)
            .arg(now + self.ttl_ms())
            .arg(&self.node)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(self.ttl_ms() * 2)
            .ignore()
            .cmd("ZADD")
            .arg(self.all_key())
            .arg(now + self.ttl_ms())
            .arg(self.member(user))
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(before == 0)
    }

    async fn offline(&self, user: UserId) -> redis::RedisResult<bool> {
        let key = self.user_key(user);
        let mut c = self.conn().await?;
        let (left,): (i64,) = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(&key)
            .arg(&self.node)
            .ignore()
            .cmd("ZREM")
            .arg(self.all_key())
            .arg(self.member(user))
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now_ms())
            .ignore()
            .cmd("ZCARD")
            .arg(&key)
            .query_async(&mut c)
            .await?;
        Ok(left == 0)
    }

    async fn online_users(&self) -> redis::RedisResult<Vec<UserId>> {
        let mut c = self.conn().await?;
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.all_key())
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut c)
            .await?;
        let mut users: Vec<UserId> = members
            .iter()
            .filter_map(|m| m.split_once(':')?.0.parse().ok().map(UserId))
            .collect();
        users.sort();
        users.dedup();
        Ok(users)
    }

    async fn heartbeat(&self, local: &[UserId]) -> redis::RedisResult<Vec<UserId>> {
        let now = now_ms();
        let exp = now + self.ttl_ms();
        let mut c = self.conn().await?;
        if !local.is_empty() {
            let mut pipe = redis::pipe();
            for &user in local {
                let key = self.user_key(user);
                pipe.cmd("ZADD")
                    .arg(&key)
                    .arg(exp)
                    .arg(&self.node)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(self.ttl_ms() * 2)
                    .ignore()
                    .cmd("ZADD")
                    .arg(self.all_key())
                    .arg(exp)
                    .arg(self.member(user))
                    .ignore();
            }
            let () = pipe.query_async(&mut c).await?;
        }
        let stale: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.all_key())
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(SWEEP_BATCH)
            .query_async(&mut c)
            .await?;
        let mut gone = Vec::new();
        for member in stale {
            let Some((user, node)) = member.split_once(':') else {
                continue;
            };
            let Ok(user) = user.parse::<i64>().map(UserId) else {
                continue;
            };
            // Whoever removes the entry handles it; other gateways see 0 and move on.
            let won: i64 = redis::cmd("ZREM")
                .arg(self.all_key())
                .arg(&member)
                .query_async(&mut c)
                .await?;
            if won == 0 {
                continue;
            }
            let key = self.user_key(user);
            let (left,): (i64,) = redis::pipe()
                .atomic()
                .cmd("ZREM")
                .arg(&key)
                .arg(node)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(now)
                .ignore()
                .cmd("ZCARD")
                .arg(&key)
                .query_async(&mut c)
                .await?;
            if left == 0 {
                gone.push(user);
            }
        }
        Ok(gone)
    }
}
