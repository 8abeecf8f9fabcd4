//! Fixed-window limits per account and per client address: sign-in failures
//! (`CONFAB_LOGIN_*`) and uploads (`CONFAB_UPLOADS_*`), each with its own [`Throttle`].
//!
//! Fixed windows counted in memory: after the limit of events (failed sign-ins, uploads)
//! inside `window` the key is refused until that window ends. The account key is the submitted name as
//! typed (normalised), whether or not such a user exists, so being throttled reveals
//! nothing about which accounts exist. State is per process: several http-app instances
//! each allow their own budget, which bounds guessing by a small factor, not opens it.

use domain::settings::Settings;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug, Clone)]
pub struct ThrottleLimits {
    /// Events per account (a submitted user name, a user id) per window.
    pub per_account: u32,
    /// Events per client address per window.
    pub per_address: u32,
    pub window: Duration,
}

impl ThrottleLimits {
    /// Failed sign-ins (`CONFAB_LOGIN_ACCOUNT_FAILURES`, `…_ADDRESS_FAILURES`, `…_WINDOW_SECS`).
    pub fn sign_in(settings: &Settings) -> ThrottleLimits {
        ThrottleLimits {
            per_account: settings.login_account_failures,
            per_address: settings.login_address_failures,
            window: Duration::from_secs(settings.login_window_secs),
        }
    }

    /// Uploads (`CONFAB_UPLOADS_PER_USER`, `…_PER_ADDRESS`, `…_WINDOW_SECS`).
    pub fn uploads(settings: &Settings) -> ThrottleLimits {
        ThrottleLimits {
            per_account: settings.uploads_per_user,
            per_address: settings.uploads_per_address,
            window: Duration::from_secs(settings.uploads_window_secs),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(String),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Above this many tracked keys, expired windows are swept on the next failure.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct Throttle {
    limits: ThrottleLimits,
    // std Mutex: the critical sections are a few map operations and never await.
    windows: Mutex<HashMap<Key, Window>>,
}

impl Throttle {
    pub fn new(limits: ThrottleLimits) -> Throttle {
        Throttle {
            limits,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn account_key(account: &str) -> Key {
        Key::Account(account.trim().to_lowercase())
    }

    /// `Err(seconds)` when either the account or the address must wait.
    pub fn check(&self, account: &str, address: &str) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        self.wait(&windows, account, address, Instant::now())
    }

    /// Counts one event for both keys if neither is at its limit, in one step (two
    /// concurrent requests cannot both take the last slot); else `Err(seconds)` and
    /// nothing is counted.
    pub fn take(&self, account: &str, address: &str) -> Result<(), u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        self.wait(&windows, account, address, now)?;
        self.count(&mut windows, account, address, now);
        Ok(())
    }

    fn wait(
        &self,
        windows: &HashMap<Key, Window>,
        account: &str,
        address: &str,
        now: Instant,
    ) -> Result<(), u64> {
        let mut wait = 0u64;
        for (key, max) in [
            (Self::account_key(account), self.limits.per_account),
            (Key::Address(address.to_owned()), self.limits.per_address),
        ] {
            if let Some(w) = windows.get(&key) {
                let ends = w.started + self.limits.window;
                if w.failures >= max && ends > now {
                    // Round up so "Retry-After: 0" never tells a client to retry at once.
                    let secs = (ends - now).as_millis().div_ceil(1000) as u64;
                    wait = wait.max(secs.max(1));
                }
            }
        }
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    pub fn record_failure(&self, account: &str, address: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        self.count(&mut windows, account, address, Instant::now());
    }

    fn count(
        &self,
        windows: &mut HashMap<Key, Window>,
        account: &str,
        address: &str,
        now: Instant,
    ) {
        let window = self.limits.window;
        if windows.len() > SWEEP_ABOVE {
            windows.retain(|_, w| w.started + window > now);
        }
        for key in [Self::account_key(account), Key::Address(address.to_owned())] {
            let w = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if w.started + window <= now {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn record_success(&self, account: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&Self::account_key(account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(account: u32, address: u32, window_ms: u64) -> ThrottleLimits {
        ThrottleLimits {
            per_account: account,
            per_address: address,
            window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn blocks_an_account_after_its_limit_whatever_the_case() {
        let t = Throttle::new(limits(2, 100, 60_000));
        t.record_failure("Alice", "1.1.1.1");
        assert!(t.check("alice", "2.2.2.2").is_ok());
        t.record_failure("alice ", "2.2.2.2");
        let wait = t.check("ALICE", "3.3.3.3").expect_err("blocked");
        assert!((1..=60).contains(&wait));
        assert!(
            t.check("bob", "3.3.3.3").is_ok(),
            "other accounts are not affected"
        );
    }

    #[test]
    fn blocks_an_address_across_accounts() {
        let t = Throttle::new(limits(100, 3, 60_000));
        for name in ["a", "b", "c"] {
            t.record_failure(name, "9.9.9.9");
        }
        assert!(t.check("d", "9.9.9.9").is_err());
        assert!(t.check("d", "8.8.8.8").is_ok());
    }

    #[test]
    fn take_counts_until_either_limit_then_refuses_without_counting() {
        let t = Throttle::new(limits(2, 3, 60_000));
        assert!(t.take("7", "1.1.1.1").is_ok());
        assert!(t.take("7", "1.1.1.1").is_ok());
        let wait = t.take("7", "1.1.1.1").expect_err("the account's limit");
        assert!((1..=60).contains(&wait));
        assert!(
            t.take("8", "1.1.1.1").is_ok(),
            "another account, same address"
        );
        assert!(t.take("9", "1.1.1.1").is_err(), "the address's limit");
        assert!(t.take("9", "2.2.2.2").is_ok(), "refusals were not counted");
    }

    #[test]
    fn success_clears_the_account_and_windows_expire() {
        let t = Throttle::new(limits(1, 100, 50));
        t.record_failure("a", "x");
        assert!(t.check("a", "y").is_err());
        t.record_success("a");
        assert!(t.check("a", "y").is_ok());
        t.record_failure("b", "x");
        std::thread::sleep(Duration::from_millis(80));
        assert!(t.check("b", "y").is_ok(), "the window ended");
    }
}
