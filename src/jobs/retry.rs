//! How a send attempt turns out: how failed sends are spaced
//! ([`RetryPolicy`]), and what an attempt came to ([`outcome`]), counted
//! and logged. Shared by the outbox worker and the mute summaries, which
//! send through the same notifier.

use std::time::Duration;

use chrono::{TimeDelta, Utc};

use crate::notice::Delivered;
use crate::notice::digest::DigestKey;
use crate::notify::NotifyError;
use crate::store::{OutboxEntry, SendResult};

/// How failed sends are spaced: `first` after the first failure, doubling
/// up to `longest`. Production uses [`RetryPolicy::default`] (1 s to
/// 5 min); tests shrink both to play a long outage in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub longest: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first: Duration::from_secs(1),
            longest: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): `first`, twice that,
    /// four times, … capped at `longest`, each shortened by up to a fifth
    /// at random so that many failed notices do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .first
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = doubled.min(self.longest);
        let jitter = random_fraction() * 0.2;
        capped.mul_f64(1.0 - jitter)
    }
}

/// A number in [0, 1) from the standard library's randomly keyed hasher.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// What an attempt at `entry` came to, counted and logged.
pub(super) fn outcome(
    entry: &OutboxEntry,
    retry: RetryPolicy,
    sent: Result<Delivered, NotifyError>,
) -> SendResult {
    let attempt = entry.attempts + 1;
    let policy = entry.key.policy.0.clone();
    let later = |delay: Duration| {
        Utc::now() + TimeDelta::from_std(delay).unwrap_or(TimeDelta::seconds(300))
    };
    match sent {
        Ok(delivered) => {
            record_delay(&entry.notice);
            metrics::counter!("labelwarden_actions_sent_total", "policy" => policy).increment(1);
            SendResult::Sent {
                at: Utc::now(),
                thread: delivered.thread,
            }
        }
        Err(NotifyError::Deferred { retry_after }) => {
            tracing::debug!(retry_in = ?retry_after, "notice deferred by the rate limit");
            SendResult::Deferred {
                retry_at: later(retry_after.max(Duration::from_millis(5))),
            }
        }
        Err(NotifyError::Temporary {
            message,
            retry_after,
        }) => {
            let delay = retry_after.unwrap_or_else(|| retry.backoff(attempt));
            tracing::warn!(attempt, retry_in = ?delay, error = %message, "notice not sent; will retry");
            metrics::counter!("labelwarden_actions_failed_total", "policy" => policy, "kind" => "temporary").increment(1);
            SendResult::Retry {
                error: message,
                retry_at: later(delay),
            }
        }
        Err(NotifyError::ClaimLost(lost)) => SendResult::ClaimLost { reason: lost.0 },
        Err(NotifyError::Permanent(message) | NotifyError::Refused { message, .. }) => {
            tracing::error!(attempt, error = %message, "notice cannot be sent; kept in the outbox as failed");
            metrics::counter!("labelwarden_actions_failed_total", "policy" => policy, "kind" => "permanent").increment(1);
            SendResult::Failed { error: message }
        }
    }
}

/// Counts how long a Slack message took from falling due to Slack
/// accepting it: what a storm, an outage or a slow enforcer cost the
/// people waiting. Steps with nothing for Slack, and adopted ones (never
/// due to be sent), are not messages anyone waited for.
pub(super) fn record_delay(notice: &crate::notice::Notice) {
    let digest = DigestKey::from_outbox(&notice.issue, &notice.policy).is_some();
    if digest
        || notice.slack.is_none()
        || notice.late_because == Some(crate::notice::Lateness::Adopted)
    {
        return;
    }
    let waited = (Utc::now() - notice.due_at).num_milliseconds().max(0);
    metrics::histogram!("labelwarden_notice_delay_seconds", "policy" => notice.policy.0.clone())
        .record(waited as f64 / 1000.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_with_some_jitter() {
        let retry = RetryPolicy::default();
        for (attempt, full) in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 300.0), (40, 300.0)] {
            let delay = retry.backoff(attempt).as_secs_f64();
            assert!(
                delay <= full && delay >= full * 0.8,
                "attempt {attempt}: {delay}s"
            );
        }
        // Jitter: many notices failing together do not retry in lockstep.
        // 64 draws of a uniform fifth all within 1% of each other would
        // happen about once in 20^63 runs.
        let draws: Vec<f64> = (0..64).map(|_| retry.backoff(3).as_secs_f64()).collect();
        let lowest = draws.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = draws.iter().copied().fold(0.0, f64::max);
        assert!(highest - lowest > 0.04, "no jitter: {draws:?}");
    }
}
