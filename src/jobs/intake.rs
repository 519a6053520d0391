//! Intake: turns stored webhook deliveries into evaluated issues. A delivery
//! is marked processed in the same transaction as what it caused, so a
//! crash in between means it is processed again, harmlessly (the ledger
//! makes every step fire once).

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Context, enforce};
use crate::gitlab::webhook::parse_issue_hook;
use crate::store::Store;

/// How many deliveries one pass takes from the store.
const BATCH: u32 = 100;

pub async fn run<S: Store>(context: &Context<S>, shutdown: CancellationToken) {
    loop {
        let waiting = context.deliveries_waiting.notified();
        let processed = match context.store.pending_deliveries(BATCH).await {
            Ok(batch) => {
                let count = batch.len();
                for delivery in batch {
                    process(context, &delivery.key, &delivery.body).await;
                }
                count
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read pending deliveries; retrying in 1s");
                0
            }
        };
        if processed == BATCH as usize {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = waiting => {}
            // A store error above is retried after a pause, not in a tight loop.
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

async fn process<S: Store>(context: &Context<S>, key: &str, body: &str) {
    let now = Utc::now();
    match parse_issue_hook(body.as_bytes()) {
        Err(e) => {
            // Checked before it was accepted, so only a change of this
            // program's parser can get here: keep it, say why, move on.
            tracing::error!(delivery = key, error = %e, "stored delivery cannot be read; set aside");
            metrics::counter!("labelwarden_deliveries_rejected_total").increment(1);
            if let Err(e) = context
                .store
                .reject_delivery(key, &e.to_string(), now)
                .await
            {
                tracing::error!(delivery = key, error = %e, "cannot set the delivery aside");
            }
        }
        Ok(delivery) => {
            let issue = delivery.facts.reference.clone();
            let span = tracing::info_span!("intake", issue = %issue, delivery = key);
            let result = enforce(context, &issue, Some((key, delivery)), now)
                .instrument(span.clone())
                .await;
            let _entered = span.enter();
            match result {
                Ok(outcome) => tracing::debug!(fired = outcome.newly_fired, "delivery processed"),
                Err(e) => {
                    tracing::error!(error = %e, "delivery not processed; it stays pending and is retried")
                }
            }
        }
    }
}
