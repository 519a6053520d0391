//! What the store lets go of, and what it holds: ended clocks' issues
//! once they are older than the retention, applied deliveries (their
//! payload at once, their key once GitLab can no longer redeliver them),
//! and the sizes `/metrics` and `labelwarden store stats` show.

use chrono::{DateTime, TimeDelta, Utc};

/// How long `serve` keeps what it no longer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Issues whose clocks all ended (met, missed, withdrawn, gone) or
    /// never ran, with nothing waiting to be sent, are forgotten this long
    /// after their last change; `None` keeps everything.
    pub ended: Option<TimeDelta>,
    /// A delivery's key is kept this long, so that GitLab's redelivery of
    /// it is recognised; its payload goes as soon as it is applied.
    pub delivery_keys: TimeDelta,
    /// How often a round of letting go starts.
    pub every: std::time::Duration,
}

impl Default for Retention {
    /// 90 days of ended clocks; a week of delivery keys (GitLab retries a
    /// failed webhook within minutes, and its "Resend request" is a
    /// person's click on a recent delivery).
    fn default() -> Self {
        Retention {
            ended: Some(TimeDelta::days(90)),
            delivery_keys: TimeDelta::days(7),
            every: std::time::Duration::from_secs(10 * 60),
        }
    }
}

impl Retention {
    /// Before when an ended issue's last change must be to be forgotten at `now`.
    pub fn forget_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.ended.map(|keep| now - keep)
    }
}

/// Rows per table and bytes on disk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreSize {
    /// (table, rows), in the schema's order.
    pub tables: Vec<(String, i64)>,
    /// The database's size: both SQLite files with their write-ahead
    /// logs, or PostgreSQL's `pg_database_size`.
    pub bytes: u64,
}
