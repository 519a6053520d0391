//! The outbox worker: sends recorded notices through the [`Notifier`] and
//! marks each sent only after the notifier succeeded. Temporary failures
//! are retried with capped exponential backoff and jitter (or after the
//! `Retry-After` the service asked for); permanent ones are kept, counted
//! and logged, never dropped silently. Notices of one issue and policy go
//! out in the order they were recorded: a failing one holds back the rest of
//! its thread.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Context;
use crate::notify::{Notifier, NotifyError};
use crate::store::{OutboxEntry, Store};

const BATCH: u32 = 50;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(300);

/// Delay before retry number `attempt` (1-based): 1s, 2s, 4s, … capped at
/// five minutes, each shortened by up to a fifth at random so that many
/// failed notices do not retry in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = doubled.min(LONGEST_RETRY);
    let jitter = random_fraction() * 0.2;
    capped.mul_f64(1.0 - jitter)
}

/// A number in [0, 1) from the standard library's randomly keyed hasher.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

pub async fn run<S: Store, N: Notifier>(
    context: &Context<S>,
    notifier: &N,
    shutdown: CancellationToken,
) {
    loop {
        let waiting = context.notices_waiting.notified();
        let now = Utc::now();
        let entries = match context.store.pending_outbox(now, BATCH).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox; retrying in 1s");
                Vec::new()
            }
        };
        let mut held_back = HashSet::new();
        for entry in &entries {
            let thread = (entry.key.issue.clone(), entry.key.policy.clone());
            if held_back.contains(&thread) {
                continue;
            }
            let span = tracing::info_span!("outbox", issue = %entry.key.issue, policy = %entry.key.policy, step = %entry.key.firing.step);
            if !deliver(context, notifier, entry).instrument(span).await {
                held_back.insert(thread);
            }
        }
        if entries.len() == BATCH as usize && held_back.is_empty() {
            continue;
        }
        let sleep = match context.store.next_outbox_attempt().await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(20), Duration::from_secs(60)),
            Ok(None) => Duration::from_secs(60),
            Err(_) => Duration::from_secs(1),
        };
        tokio::select! {
            // Shutdown is looked at only between batches: a notice being sent is finished.
            _ = shutdown.cancelled() => return,
            _ = waiting => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Sends one notice and records the outcome. False when the rest of its
/// thread must wait (a temporary failure, or an outcome not recorded).
async fn deliver<S: Store, N: Notifier>(
    context: &Context<S>,
    notifier: &N,
    entry: &OutboxEntry,
) -> bool {
    let attempt = entry.attempts + 1;
    let policy = entry.key.policy.0.clone();
    let (recorded, in_order) = match notifier.send(&entry.notice).await {
        Ok(()) => {
            metrics::counter!("labelwarden_actions_sent_total", "policy" => policy).increment(1);
            (
                context.store.outbox_sent(&entry.key, Utc::now()).await,
                true,
            )
        }
        Err(NotifyError::Temporary {
            message,
            retry_after,
        }) => {
            let delay = retry_after.unwrap_or_else(|| backoff(attempt));
            tracing::warn!(attempt, retry_in = ?delay, error = %message, "notice not sent; will retry");
            metrics::counter!("labelwarden_actions_failed_total", "policy" => policy, "kind" => "temporary").increment(1);
            let retry_at =
                Utc::now() + TimeDelta::from_std(delay).unwrap_or(TimeDelta::seconds(300));
            (
                context
                    .store
                    .outbox_failed(&entry.key, &message, Some(retry_at))
                    .await,
                false,
            )
        }
        Err(NotifyError::Permanent(message)) => {
            tracing::error!(attempt, error = %message, "notice cannot be sent; kept in the outbox as failed");
            metrics::counter!("labelwarden_actions_failed_total", "policy" => policy, "kind" => "permanent").increment(1);
            (
                context
                    .store
                    .outbox_failed(&entry.key, &message, None)
                    .await,
                true,
            )
        }
    };
    match recorded {
        Ok(()) => in_order,
        Err(e) => {
            // Sent but not marked: it would be sent again. Say so loudly.
            tracing::error!(error = %e, "cannot record the outcome of a notice");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_with_some_jitter() {
        for (attempt, full) in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 300.0), (40, 300.0)] {
            let delay = backoff(attempt).as_secs_f64();
            assert!(
                delay <= full && delay >= full * 0.8,
                "attempt {attempt}: {delay}s"
            );
        }
    }
}
