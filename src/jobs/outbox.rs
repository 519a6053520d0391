//! The outbox worker: sends recorded notices through the [`Notifier`] and
//! marks each sent only after the notifier succeeded (a batch's outcomes in
//! one transaction). Temporary failures
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
use crate::store::{OutboxEntry, OutboxOutcome, SendResult, Store};

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
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in &entries {
            let thread = (entry.key.issue.clone(), entry.key.policy.clone());
            if held_back.contains(&thread) {
                continue;
            }
            let span = tracing::info_span!("outbox", issue = %entry.key.issue, policy = %entry.key.policy, step = %entry.key.firing.step);
            let result = send(notifier, entry).instrument(span).await;
            if matches!(result, SendResult::Retry { .. }) {
                held_back.insert(thread);
            }
            outcomes.push(OutboxOutcome {
                key: entry.key.clone(),
                result,
            });
        }
        if !outcomes.is_empty()
            && let Err(e) = context.store.record_outbox(&outcomes).await
        {
            // Sent but not marked: they would be sent again. Say so loudly,
            // and pause before the next pass.
            tracing::error!(error = %e, count = outcomes.len(), "cannot record what became of sent notices");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
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

/// Sends one notice and says what became of it.
async fn send<N: Notifier>(notifier: &N, entry: &OutboxEntry) -> SendResult {
    let attempt = entry.attempts + 1;
    let policy = entry.key.policy.0.clone();
    match notifier.send(&entry.notice).await {
        Ok(()) => {
            metrics::counter!("labelwarden_actions_sent_total", "policy" => policy).increment(1);
            SendResult::Sent { at: Utc::now() }
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
            SendResult::Retry {
                error: message,
                retry_at,
            }
        }
        Err(NotifyError::Permanent(message)) => {
            tracing::error!(attempt, error = %message, "notice cannot be sent; kept in the outbox as failed");
            metrics::counter!("labelwarden_actions_failed_total", "policy" => policy, "kind" => "permanent").increment(1);
            SendResult::Failed { error: message }
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
