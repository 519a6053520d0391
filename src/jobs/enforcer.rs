//! The enforcer: one task that applies webhook deliveries and keeps every
//! deadline. Each pass takes the pending deliveries and the issues whose
//! wake-up has come, evaluates each issue once (after all its new
//! deliveries, in the order received), and commits the whole pass in one
//! transaction. Then it sleeps until the earliest stored wake-up, or until
//! a delivery arrives. Not one timer per issue, not a polling interval: the
//! store holds the timers, so they survive restarts, and after a restart the
//! first pass finds everything that came due meanwhile; the engine fires
//! each missed step once and its notice says it is late.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

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
    let mut work: Vec<(IssueRef, Vec<IssueDelivery>)> = Vec::new();
    let mut handled = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let rejected = match serde_json::from_str::<IssueDelivery>(&delivery.payload) {
            Ok(read) => {
                deliveries_of(&mut work, &read.facts.reference).push(read);
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
    for issue in &due {
        deliveries_of(&mut work, issue);
    }
    if work.is_empty() && handled.is_empty() {
        return Ok(false);
    }

    let issues: Vec<IssueRef> = work.iter().map(|(issue, _)| issue.clone()).collect();
    let loaded = context.store.load_issues(&issues).await?;
    let mut commits: Vec<IssueCommit> = Vec::with_capacity(work.len());
    for ((issue, deliveries), loaded) in work.into_iter().zip(loaded) {
        let span = tracing::info_span!("enforce", issue = %issue);
        let _entered = span.enter();
        if let Some(commit) = prepare(&context.policies, loaded, deliveries, now) {
            commits.push(commit);
        }
    }
    let outcome = context.store.commit(&commits, &handled).await?;
    // Counted once committed, so a retried pass does not count twice.
    for fired in commits.iter().flat_map(|c| &c.fired) {
        let policy = fired.policy.0.clone();
        metrics::counter!("labelwarden_steps_fired_total", "policy" => policy.clone(), "step" => fired.notice.step_kind.clone())
            .increment(1);
        if fired.notice.step_kind == "breach" {
            metrics::counter!("labelwarden_breaches_total", "policy" => policy).increment(1);
        }
    }
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

/// The deliveries gathered for `issue` in this pass, adding the issue at the
/// end if it is new. Passes are small, so a scan beats a map.
fn deliveries_of<'w>(
    work: &'w mut Vec<(IssueRef, Vec<IssueDelivery>)>,
    issue: &IssueRef,
) -> &'w mut Vec<IssueDelivery> {
    let index = match work.iter().position(|(known, _)| known == issue) {
        Some(index) => index,
        None => {
            work.push((issue.clone(), Vec::new()));
            work.len() - 1
        }
    };
    &mut work[index].1
}
