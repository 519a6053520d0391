//! Retention, run by the enforcer between passes (so it never races an
//! evaluation, and on several replicas only the lease holder runs it,
//! under its fence): ended issues older than `--retain` are forgotten, a
//! small batch per transaction; applied deliveries lose their payload,
//! then their key after `--keep-delivery-keys`; SQLite gives the space
//! back; and `/metrics` learns the store's rows per table and size.
//!
//! A round starts every `Retention::every` (10 minutes), and goes on in turns of at most
//! [`TURN`] between passes until nothing is left, so that webhooks and
//! deadlines never wait behind it for long.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::Context;
use crate::store::{LeaseFence, Store, StoreError};

/// The most one turn takes before the enforcer looks at its work again.
const TURN: Duration = Duration::from_millis(200);
/// Issues forgotten, and deliveries pruned, per transaction.
const BATCH: u32 = 200;
/// SQLite pages (4 KiB) given back per step.
const PAGES: u32 = 2_000;

/// Where retention stands between the enforcer's passes.
#[derive(Debug, Default)]
pub struct RetentionState {
    last_round: Option<Instant>,
    /// A round still going: more turns follow at once.
    going: bool,
}

impl RetentionState {
    /// A round is under way: the enforcer comes back for its next turn soon.
    pub fn going(&self) -> bool {
        self.going
    }
}

/// One turn, if one is due. Errors are logged; the next round tries again.
pub async fn tend<S: Store>(context: &Context<S>, fence: &LeaseFence, state: &mut RetentionState) {
    let every = context.retention.every;
    let due = state.going || state.last_round.is_none_or(|at| at.elapsed() >= every);
    if !due {
        return;
    }
    if !state.going {
        state.last_round = Some(Instant::now());
    }
    match turn(context, fence).await {
        Ok(more) => state.going = more,
        Err(e) => {
            state.going = false;
            tracing::warn!(error = %e, "retention could not finish; the next round tries again");
        }
    }
}

/// Forgets and prunes for at most [`TURN`]; true when there is more.
async fn turn<S: Store>(context: &Context<S>, fence: &LeaseFence) -> Result<bool, StoreError> {
    let started = Instant::now();
    let now = Utc::now();
    let retention = context.retention;
    let mut forgotten = 0;
    if let Some(before) = retention.forget_before(now) {
        loop {
            let batch = context
                .store
                .forget_ended(before, BATCH, Some(fence))
                .await?;
            forgotten += batch;
            if batch < u64::from(BATCH) {
                break;
            }
            if started.elapsed() >= TURN {
                record(forgotten, 0);
                return Ok(true);
            }
        }
    }
    let mut pruned = 0;
    loop {
        let batch = context
            .store
            .prune_deliveries(now - retention.delivery_keys, BATCH)
            .await?;
        pruned += batch;
        if batch == 0 {
            break;
        }
        if started.elapsed() >= TURN {
            record(forgotten, pruned);
            return Ok(true);
        }
    }
    record(forgotten, pruned);
    let pages = context.store.compact(PAGES).await?;
    let size = context.store.size().await?;
    for (table, rows) in &size.tables {
        metrics::gauge!("labelwarden_store_rows", "table" => table.clone()).set(*rows as f64);
    }
    metrics::gauge!("labelwarden_store_bytes").set(size.bytes as f64);
    tracing::debug!(pages, bytes = size.bytes, "retention round done");
    Ok(false)
}

fn record(forgotten: u64, pruned: u64) {
    if forgotten > 0 {
        tracing::info!(
            issues = forgotten,
            "forgot issues whose clocks ended before the retention"
        );
        metrics::counter!("labelwarden_store_issues_forgotten_total").increment(forgotten);
    }
    if pruned > 0 {
        metrics::counter!("labelwarden_store_deliveries_pruned_total").increment(pruned);
    }
}
