//! Injected time.
//!
//! Every component asks a [`Clock`] for the time instead of calling `SystemTime::now()`,
//! so that tests can drive clock skew, session expiry, key rotation and hourly digests.

use parking_lot::Mutex;
use std::sync::Arc;
use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current UTC time.
    fn now(&self) -> OffsetDateTime;
}

/// The real clock, optionally shifted by a fixed offset (used to simulate skew).
#[derive(Debug, Default, Clone)]
pub struct SystemClock {
    offset: time::Duration,
}

impl SystemClock {
    /// A clock shifted by `offset` from the system time.
    pub fn with_offset(offset: time::Duration) -> Self {
        Self { offset }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A manual clock starting at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: time::Duration) {
        *self.now.lock() += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock() = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock()
    }
}

/// Formats a time as AWS's ISO 8601 form without fraction: `2024-01-02T03:04:05Z`.
pub fn iso8601(t: OffsetDateTime) -> String {
    Iso8601(t).to_string()
}

/// A time written as [`iso8601`] writes it, for formatting straight into an output (no `String`).
pub struct Iso8601(pub OffsetDateTime);

impl std::fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

/// Epoch seconds with millisecond precision, as the JSON protocols send timestamps.
pub fn epoch_seconds(t: OffsetDateTime) -> f64 {
    (t.unix_timestamp_nanos() / 1_000_000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(time::Duration::hours(1));
        assert_eq!(clock.now().unix_timestamp(), 1_700_003_600);
        assert_eq!(iso8601(clock.now()), "2023-11-14T23:13:20Z");
    }
}
