//! What the status page shows, read from the store: every live clock and
//! every clock whose status changed inside the window, as the audit's
//! rows (so the page and `audit` count the same way), with who
//! acknowledged each cycle and the Slack threads its notices went to.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

use crate::audit::{self, Row};
use crate::gitlab::api_issue::FetchedIssue;
use crate::inspect::{acknowledgement_of, load_into};
use crate::issue::IssueRef;
use crate::policy::{PolicyName, PolicySet};
use crate::store::{AlertThread, CycleThread, Loaded, Store, StoreError};

/// The store's clocks as of `now`, ready to show.
#[derive(Debug, Clone, Default)]
pub struct Board {
    pub now: DateTime<Utc>,
    /// Most urgent first, as `audit` sorts them.
    pub rows: Vec<Row>,
    /// The Slack threads of the live rows' cycles.
    pub threads: Vec<CycleThread>,
}

/// Reads the board: live clocks, and those that changed since `now -
/// window` (so that the last `window`'s breaches and resolutions count).
pub async fn board<S: Store>(
    store: &S,
    policies: &PolicySet,
    now: DateTime<Utc>,
    window: TimeDelta,
) -> Result<Board, StoreError> {
    let stored = store.board_clocks(now - window).await?;
    let mut issues: Vec<IssueRef> = stored.into_iter().map(|(issue, _, _)| issue).collect();
    issues.dedup();
    let mut loaded = BTreeMap::new();
    load_into(store, &issues, &mut loaded).await?;
    // Issues with a record, by the reference the audit's rows name them by.
    let recorded: HashMap<String, (&IssueRef, &Loaded)> = loaded
        .iter()
        .filter(|(_, found)| found.record.is_some())
        .map(|(issue, found)| (issue.to_string(), (issue, found)))
        .collect();
    let fetched: Vec<FetchedIssue> = recorded
        .values()
        .filter_map(|(_, found)| {
            let record = found.record.as_ref()?;
            Some(FetchedIssue {
                issue: record.issue(&found.carried),
                title: record.title.clone(),
                url: record.url.clone(),
                updated_at: record.updated_at,
                ids: record.ids,
            })
        })
        .collect();
    let mut rows = audit::evaluate(&fetched, policies, now);
    rows.retain(|row| row.is_live() || row.ended_at().is_some_and(|at| at >= now - window));
    let mut live_cycles = Vec::new();
    for row in &mut rows {
        let Some((issue, found)) = recorded.get(&row.issue) else {
            continue;
        };
        let policy = PolicyName(row.policy.clone());
        row.acknowledged =
            acknowledgement_of(store, policies, found, issue, &policy, row.cycle).await?;
        if row.is_live() {
            live_cycles.push(AlertThread {
                issue: (*issue).clone(),
                policy,
                cycle: row.cycle,
            });
        }
    }
    let threads = store.cycle_threads(&live_cycles).await?;
    Ok(Board { now, rows, threads })
}
