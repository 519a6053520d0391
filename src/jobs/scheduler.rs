//! The deadline timer: one task for all issues. It sleeps until the
//! earliest wake-up stored for any clock (not one timer per issue, not a
//! polling interval), evaluates every issue that is due, and goes back to
//! sleep. An evaluation that moves a wake-up earlier rings `wake_changed`.
//! After a restart the first pass finds everything that came due while the
//! process was down; the engine fires each missed step once and the notice
//! says it is late.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Context, enforce};
use crate::store::Store;

const BATCH: u32 = 200;
/// Sleep at most this long, so a clock change made outside this process
/// (another replica, a manual fix) is noticed eventually.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

pub async fn run<S: Store>(context: &Context<S>, shutdown: CancellationToken) {
    loop {
        let changed = context.wake_changed.notified();
        let now = Utc::now();
        let due = match context.store.due_issues(now, BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "cannot read due clocks; retrying in 1s");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        for issue in &due {
            let span = tracing::info_span!("scheduler", issue = %issue);
            if let Err(e) = enforce(context, issue, None, now)
                .instrument(span.clone())
                .await
            {
                let _entered = span.enter();
                tracing::error!(error = %e, "due issue not evaluated; retried on the next pass");
            }
        }
        if due.len() == BATCH as usize {
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
        if sleep.is_zero() && !due.is_empty() {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = changed => {}
            // Never spin: a wake-up that is due but whose issue evaluates to
            // the same wake-up (clock skew) is looked at again after 50 ms.
            _ = tokio::time::sleep(sleep.max(Duration::from_millis(50))) => {}
        }
    }
}
