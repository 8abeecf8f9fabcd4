//! Timestamps as stored: Unix microseconds in a BIGINT on both backends.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_datetime(t: OffsetDateTime) -> Self {
        // i128 nanoseconds / 1000 fits i64 microseconds for any date before year 294,000.
        Timestamp((t.unix_timestamp_nanos() / 1_000) as i64)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn plus_secs(self, secs: u64) -> Self {
        Timestamp(
            self.0
                .saturating_add((secs as i64).saturating_mul(1_000_000)),
        )
    }

    pub fn minus_secs(self, secs: u64) -> Self {
        Timestamp(
            self.0
                .saturating_sub((secs as i64).saturating_mul(1_000_000)),
        )
    }

    /// RFC 3339, for logs, exports and the UI.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_datetime() {
        let t = Timestamp(1_764_000_000_123_456);
        assert_eq!(Timestamp::from_datetime(t.to_datetime()), t);
        assert_eq!(t.to_rfc3339(), "2025-11-24T16:00:00.123456Z");
    }
}
