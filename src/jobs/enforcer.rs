//! The enforcer: one task that applies webhook deliveries and keeps every
//! deadline. Each pass takes the pending deliveries and the issues whose
//! wake-up has come, evaluates each issue once (after all its new
//! deliveries, in the order received), and commits the whole pass in one
//! transaction. Then it sleeps until the earliest stored wake-up, or until
//! a delivery arrives. Not one timer per issue, not a polling interval: the
//! store holds the timers, so they survive restarts, and after a restart the
//! first pass finds everything that came due meanwhile; the engine fires
//! each missed step once and its notice says it is late.
//!
//! With several replicas on one PostgreSQL database, one of them is the
//! enforcer at a time: it holds the `enforcer` lease (see
//! [`crate::store::Store::hold_lease`]) and renews it every third of its
//! length; the others wait. When the holder dies, its lease runs out and
//! another replica takes over, finding everything that came due meanwhile.
//! The active enforcer also looks every 200 ms for deliveries the other
//! replicas stored.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Context, adoption, identity, prepare};
use crate::gitlab::webhook::IssueDelivery;
use crate::issue::IssueRef;
use crate::notify::Notifier;
use crate::store::{Handled, IssueCommit, LeaseFence, Store, StoreError};

/// Deliveries and due issues one pass takes at most, each, on SQLite. A
/// pass is one transaction on the store's single writer; webhook intake
/// has a file of its own and never waits for it, and the outbox's writes
/// queue behind it for a few milliseconds at most. 64 keeps up with the
/// paced load run (BENCHMARKS.md), where 16 fell about a second behind.
const BATCH: u32 = 64;
/// The same on PostgreSQL, where webhook intake does not queue behind the
/// enforcer's transaction: larger passes, fewer round trips.
const SHARED_BATCH: u32 = 256;
/// Sleep at most this long, so a clock changed outside this process (a
/// manual fix) is noticed eventually.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);
/// On a database shared with other replicas, how often to look for the
/// deliveries they stored.
const PEER_POLL: Duration = Duration::from_millis(200);

/// The lease that makes one replica the enforcer at a time.
pub const LEASE_NAME: &str = "enforcer";

/// The enforcer lease as this process holds it: the fence its writes
/// carry, and when it was last renewed.
struct Holding {
    fence: LeaseFence,
    renewed_at: Instant,
}

/// `notifier` lists the steps with nothing to send (adopted, said in a
/// digest) on their issues' ledger notes, where it keeps them.
pub async fn run<S: Store, N: Notifier>(
    context: &Context<S>,
    notifier: &N,
    shutdown: CancellationToken,
) {
    let lease = context.lease;
    let renew_every = renew_every(lease);
    let mut holding: Option<Holding> = None;
    let mut last_beat = Instant::now();
    let mut retention = super::retention::RetentionState::default();
    loop {
        let delivered = context.deliveries_waiting.notified();
        match context
            .store
            .hold_lease(LEASE_NAME, Utc::now(), lease)
            .await
        {
            Ok(Some(fence)) => {
                // A new epoch is a takeover, also of this process's own
                // lease after it ran out (a freeze) or after an error.
                let starting = holding.as_ref().map(|h| h.fence.epoch) != Some(fence.epoch);
                if starting {
                    tracing::info!(epoch = fence.epoch, "this replica is the enforcer");
                    metrics::gauge!("labelwarden_enforcer_active").set(1.0);
                }
                // A beat every renewal period is enough to tell a downtime;
                // passes come far more often under load.
                if starting || last_beat.elapsed() >= renew_every {
                    beat(context, starting).await;
                    last_beat = Instant::now();
                }
                holding = Some(Holding {
                    fence,
                    renewed_at: Instant::now(),
                });
            }
            Ok(None) => {
                if holding.take().is_some() {
                    tracing::warn!("another replica took over as the enforcer");
                }
                metrics::gauge!("labelwarden_enforcer_active").set(0.0);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(renew_every) => continue,
                }
            }
            Err(e) => {
                // Whether the lease still stands is unknown: stop acting
                // as the enforcer at once; holding it again is a takeover.
                if holding.take().is_some() {
                    tracing::error!(error = %e, "cannot renew the enforcer lease: this replica stops enforcing until it holds the lease again; retrying in 1s");
                } else {
                    tracing::error!(error = %e, "cannot hold the enforcer lease; retrying in 1s");
                }
                metrics::gauge!("labelwarden_enforcer_active").set(0.0);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        }
        let Some(held) = holding.as_mut() else {
            continue;
        };
        let busy = match pass(context, notifier, held).await {
            Ok(busy) => busy,
            // A project or issue about to move has a notice in flight: the
            // pass (its deliveries untouched) runs again once it is sent.
            Err(StoreError::Sending(what)) => {
                tracing::debug!(what, "waiting for a notice in flight before moving rows");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
            // The lease ran out or changed hands while the pass ran (this
            // process stalled past it): nothing of the pass was written.
            Err(StoreError::LeaseLost(_)) => {
                tracing::warn!(
                    epoch = held.fence.epoch,
                    "the enforcer lease was lost during a pass (this process stalled past it, or another replica took over): the pass was rolled back"
                );
                metrics::counter!("labelwarden_enforcer_passes_rolled_back_total").increment(1);
                metrics::gauge!("labelwarden_enforcer_active").set(0.0);
                holding = None;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "enforcer pass failed; retrying in 1s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if busy {
            continue;
        }
        super::retention::tend(context, &held.fence, &mut retention).await;
        let mut sleep = match context.store.earliest_wake().await {
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
        // Renew the lease in time; on a shared database, also look for what
        // other replicas stored, since nobody rings this process for it.
        sleep = sleep.min(renew_every);
        if context.store.shared() {
            sleep = sleep.min(PEER_POLL);
        }
        if retention.going() {
            sleep = sleep.min(Duration::from_millis(50));
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = delivered => {}
            // Never spin: a wake-up that evaluates to itself again (clock
            // skew) is looked at after 10 ms at the soonest.
            _ = tokio::time::sleep(sleep.max(Duration::from_millis(10))) => {}
        }
    }
    // Stopping cleanly: another replica need not wait for the lease to run out.
    if holding.is_some()
        && let Err(e) = context.store.release_lease(LEASE_NAME).await
    {
        tracing::warn!(error = %e, "cannot give up the enforcer lease; it runs out by itself");
    }
}

/// How often the enforcer renews its lease: every third of it.
fn renew_every(lease: chrono::TimeDelta) -> Duration {
    (lease / 3).to_std().unwrap_or(Duration::from_secs(1))
}

/// Renews the lease before a pass commits if the pass ran long: a pass
/// slower than a third of the lease would otherwise find it run out. A
/// renewal that finds the lease run out or taken takes a new epoch (or
/// none), so the pass, fenced with the old one, is refused.
async fn renew_if_due<S: Store>(
    context: &Context<S>,
    held: &mut Holding,
) -> Result<(), StoreError> {
    let renew_every = renew_every(context.lease);
    if held.renewed_at.elapsed() < renew_every {
        return Ok(());
    }
    match context
        .store
        .hold_lease(LEASE_NAME, Utc::now(), context.lease)
        .await?
    {
        Some(fence) if fence == held.fence => {
            held.renewed_at = Instant::now();
            Ok(())
        }
        _ => Err(StoreError::LeaseLost(LEASE_NAME.to_owned())),
    }
}

/// How far back downtimes matter: a step due longer ago than this is not
/// decided late any more (its cycle is long over, or was adopted).
const DOWNTIMES_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Records that the enforcer runs; when it is `starting` (a start, a
/// restart, a takeover), the time since the last beat is a downtime, and
/// the downtimes are read again so late steps can say why they are late.
async fn beat<S: Store>(context: &Context<S>, starting: bool) {
    let now = Utc::now();
    match context.store.beat(LEASE_NAME, now, starting).await {
        Ok(Some(down)) => tracing::warn!(
            from = %down.from,
            to = %down.to,
            "labelwarden was not running (no enforcer) from the last beat until now; steps due meanwhile say so"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot record the enforcer's heartbeat"),
    }
    if starting {
        // Another replica may have opened windows meanwhile.
        context.keep_windows(None);
        match context.store.downtimes(now - DOWNTIMES_KEPT).await {
            Ok(downtimes) => context.set_downtimes(downtimes),
            Err(e) => tracing::warn!(error = %e, "cannot read when labelwarden was not running"),
        }
    }
}

/// One pass, written under `held`'s fence; true when a batch was full and
/// another pass should follow at once.
async fn pass<S: Store, N: Notifier>(
    context: &Context<S>,
    notifier: &N,
    held: &mut Holding,
) -> Result<bool, StoreError> {
    let now = Utc::now();
    let batch = if context.store.shared() {
        SHARED_BATCH
    } else {
        BATCH
    };
    let deliveries = context.store.pending_deliveries(batch).await?;
    let mut full = deliveries.len() == batch as usize;

    let mut read = Vec::with_capacity(deliveries.len());
    let mut handled = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let rejected = match serde_json::from_str::<IssueDelivery>(&delivery.payload) {
            Ok(mut read_delivery) => {
                read_delivery.received_at = Some(delivery.received_at);
                read.push(read_delivery);
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
    identity::follow_projects(context, &mut read).await?;
    let moved = identity::follow_moves(context, &mut read, &held.fence).await?;
    let canonicals = identity::canonicals(context, &read, now).await?;
    // Read after projects were followed, so a moved row is found by its
    // new path.
    let due = context.store.due_issues(now, batch).await?;
    full |= due.len() == batch as usize;

    // Each issue once, with its deliveries in the order they were received.
    let mut work: Vec<(IssueRef, Vec<IssueDelivery>)> = Vec::new();
    for delivery in read {
        let reference = delivery.facts.reference.clone();
        deliveries_of(&mut work, &reference).push(delivery);
    }
    for issue in due.iter().chain(moved.iter().map(|(to, _)| to)) {
        deliveries_of(&mut work, issue);
    }
    if work.is_empty() && handled.is_empty() {
        return Ok(false);
    }

    let issues: Vec<IssueRef> = work.iter().map(|(issue, _)| issue.clone()).collect();
    let loaded = context.store.load_issues(&issues).await?;
    let downtimes = context.downtimes();
    // Storm windows still open: admissions go on counting in them.
    let mut windows = match context.take_windows() {
        Some(windows) => windows,
        None => adoption::Windows::new(context.store.open_digests(now).await?),
    };
    let mut commits: Vec<IssueCommit> = Vec::with_capacity(work.len());
    let mut resolved = Vec::new();
    for ((issue, deliveries), mut loaded) in work.into_iter().zip(loaded) {
        loaded.moved_from = moved
            .iter()
            .find(|(to, _)| *to == issue)
            .map(|(_, from)| from.clone());
        loaded.duplicate_of = canonicals
            .iter()
            .find(|(duplicate, _)| *duplicate == issue)
            .map(|(_, canonical)| canonical.clone());
        let span = tracing::info_span!("enforce", issue = %issue);
        let _entered = span.enter();
        if let Some((commit, resolutions)) = prepare(
            &context.policies,
            loaded,
            deliveries,
            &downtimes,
            &mut windows,
            now,
        ) {
            commits.push(commit);
            resolved.extend(resolutions);
        }
    }
    renew_if_due(context, held).await?;
    let outcome = context
        .store
        .commit(&commits, &handled, Some(&held.fence))
        .await?;
    // Committed: the windows stand as this pass left them.
    context.keep_windows(Some(windows.without_closed(now)));
    // Counted once committed, so a retried pass does not count twice.
    for resolution in resolved {
        let policy = resolution.policy.0;
        let outcome = if resolution.met { "met" } else { "missed" };
        metrics::counter!("labelwarden_sla_outcomes_total", "policy" => policy.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("labelwarden_time_to_resolve_seconds", "policy" => policy)
            .record(resolution.took.num_milliseconds().max(0) as f64 / 1000.0);
    }
    for fired in commits.iter().flat_map(|c| &c.fired) {
        if !fired.notice.has_actions() {
            // Nothing to send, so no outbox row: listed here, as done.
            notifier.record_done(&fired.notice);
        }
        let policy = fired.policy.0.clone();
        metrics::counter!("labelwarden_steps_fired_total", "policy" => policy.clone(), "step" => fired.notice.step_kind.clone())
            .increment(1);
        if fired.notice.late_because == Some(crate::notice::Lateness::Adopted) {
            metrics::counter!("labelwarden_steps_adopted_total", "policy" => policy.clone(), "step" => fired.notice.step_kind.clone())
                .increment(1);
        }
        if fired.notice.step_kind == "breach" {
            metrics::counter!("labelwarden_breaches_total", "policy" => policy).increment(1);
        }
    }
    tracing::debug!(
        issues = commits.len(),
        fired = outcome.newly_fired,
        "pass committed"
    );
    // A digest joined is a message to send too.
    let digests_grew = commits
        .iter()
        .any(|c| !c.digests.is_empty() || !c.digest_notices.is_empty());
    if outcome.newly_fired > 0 || digests_grew {
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
