//! The enforcer: one task that applies webhook deliveries and keeps every
//! deadline. Each pass takes the pending deliveries and the issues whose
//! wake-up has come, evaluates each issue once (after all its new
//! deliveries, in the order received), and commits the whole pass in one
//! transaction. Then it sleeps until the earliest stored wake-up, or until
//! a delivery arrives. Not one timer per issue, not a polling interval: the
//! store holds the timers, so they survive restarts, and after a restart the
//! first pass finds everything that came due meanwhile; the engine fires
//! each missed step once and its notice says it is late.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Context, prepare};
use crate::gitlab::webhook::IssueDelivery;
use crate::issue::IssueRef;
use crate::store::{Handled, IssueCommit, Store, StoreError};

/// Deliveries and due issues one pass takes at most, each. A pass is one
/// transaction on the store's single writer, and webhook acknowledgements
/// wait behind it: small passes keep that wait to a few milliseconds while
/// still sharing one commit among many issues.
const BATCH: u32 = 16;
/// Sleep at most this long, so a clock changed outside this process (another
/// replica, a manual fix) is noticed eventually.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

pub async fn run<S: Store>(context: &Context<S>, shutdown: CancellationToken) {
    loop {
        let delivered = context.deliveries_waiting.notified();
        let busy = match pass(context).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::error!(error = %e, "enforcer pass failed; retrying in 1s");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if busy {
            continue;
        }
        let sleep = match context.store.earliest_wake().await {
            Ok(Some(wake)) => (wake - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(LONGEST_SLEEP),
            Ok(None) => LONGEST_SLEEP,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the next wake-up");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = delivered => {}
            // Never spin: a wake-up that evaluates to itself again (clock
            // skew) is looked at after 10 ms at the soonest.
            _ = tokio::time::sleep(sleep.max(Duration::from_millis(10))) => {}
        }
    }
}

/// One pass; true when a batch was full and another pass should follow at once.
async fn pass<S: Store>(context: &Context<S>) -> Result<bool, StoreError> {
    let now = Utc::now();
    let deliveries = context.store.pending_deliveries(BATCH).await?;
    let due = context.store.due_issues(now, BATCH).await?;
    let full = deliveries.len() == BATCH as usize || due.len() == BATCH as usize;

    // Each issue once, with its deliveries in the order they were received.
    let mut order: Vec<IssueRef> = Vec::new();
    let mut by_issue: HashMap<IssueRef, Vec<IssueDelivery>> = HashMap::new();
    let mut handled = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let rejected = match serde_json::from_str::<IssueDelivery>(&delivery.payload) {
            Ok(read) => {
                let issue = read.facts.reference.clone();
                if !by_issue.contains_key(&issue) {
                    order.push(issue.clone());
                }
                by_issue.entry(issue).or_default().push(read);
                None
            }
            // Written by this program, so only a change of the stored form
            // between versions can get here: keep it aside, say why, move on.
            Err(e) => {
                tracing::error!(delivery = %delivery.key, error = %e, "stored delivery cannot be read; set aside");
                metrics::counter!("labelwarden_deliveries_rejected_total").increment(1);
                Some(e.to_string())
            }
        };
        handled.push(Handled {
            key: delivery.key,
            seq: delivery.seq,
            rejected,
        });
    }
    for issue in due {
        if let std::collections::hash_map::Entry::Vacant(slot) = by_issue.entry(issue) {
            order.push(slot.key().clone());
            slot.insert(Vec::new());
        }
    }
    if order.is_empty() && handled.is_empty() {
        return Ok(false);
    }

    let mut commits: Vec<IssueCommit> = Vec::with_capacity(order.len());
    for issue in order {
        let deliveries = by_issue.remove(&issue).unwrap_or_default();
        let span = tracing::info_span!("enforce", issue = %issue);
        if let Some(commit) = prepare(context, &issue, deliveries, now)
            .instrument(span)
            .await?
        {
            commits.push(commit);
        }
    }
    let outcome = context.store.commit(&commits, &handled).await?;
    tracing::debug!(
        issues = commits.len(),
        fired = outcome.newly_fired,
        "pass committed"
    );
    if outcome.newly_fired > 0 {
        context.notices_waiting.notify_one();
    }
    Ok(full)
}
