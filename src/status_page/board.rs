//! What the status page shows, read from the store: every live clock and
//! every clock whose status changed inside the window, as the audit's
//! rows (so the page and `audit` count the same way), with who
//! acknowledged each cycle and the Slack threads its notices went to.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::audit::{self, Row};
use crate::gitlab::api_issue::FetchedIssue;
use crate::gitlab::from_slack;
use crate::inspect::LOAD_CHUNK;
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
    let mut loaded: HashMap<String, Loaded> = HashMap::with_capacity(issues.len());
    let mut fetched = Vec::with_capacity(issues.len());
    for chunk in issues.chunks(LOAD_CHUNK) {
        for (issue, found) in chunk.iter().zip(store.load_issues(chunk).await?) {
            let Some(record) = &found.record else {
                continue;
            };
            fetched.push(FetchedIssue {
                issue: record.issue(&found.carried),
                title: record.title.clone(),
                url: record.url.clone(),
                updated_at: record.updated_at,
                ids: record.ids,
            });
            loaded.insert(issue.to_string(), found);
        }
    }
    let mut rows = audit::evaluate(&fetched, policies, now);
    rows.retain(|row| row.is_live() || row.ended_at().is_some_and(|at| at >= now - window));
    let mut live_cycles = Vec::new();
    for row in &mut rows {
        let Some(found) = loaded.get(&row.issue) else {
            continue;
        };
        let policy = PolicyName(row.policy.clone());
        let issue = found.record.as_ref().map(|r| r.facts.reference.clone());
        let Some(issue) = issue else { continue };
        if found
            .acknowledged
            .iter()
            .any(|(p, cycle)| p == &policy && *cycle == row.cycle)
        {
            row.acknowledged = store
                .acknowledgement(&issue, &policy, row.cycle)
                .await?
                .map(|(by, at)| (from_slack::person(&policies.people, &by), at));
        }
        if row.is_live() {
            live_cycles.push(AlertThread {
                issue,
                policy,
                cycle: row.cycle,
            });
        }
    }
    let threads = store.cycle_threads(&live_cycles).await?;
    Ok(Board { now, rows, threads })
}
