//! What the store holds, as people read it: each clock with its status,
//! deadline, next step and who acknowledged it, worked out by the pure
//! core from the issue's stored timeline as of now. `labelwarden clocks`
//! and the admin API show these; both work while `serve` runs.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::clock::{self, SlaStatus};
use crate::engine::{self, Ledger};
use crate::gitlab::from_slack;
use crate::issue::IssueRef;
use crate::policy::{PolicyName, PolicySet};
use crate::store::{Store, StoreError};

pub mod story;

/// Issues loaded from the store at once.
const LOAD_CHUNK: usize = 500;

/// One clock, as of now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockView {
    #[serde(serialize_with = "crate::issue::as_reference")]
    pub issue: IssueRef,
    pub policy: PolicyName,
    /// [`SlaStatus::kind`]: `running`, `paused`, `breached`, `met`, …
    pub status: String,
    /// The status in words (`breached, 2h overdue`).
    pub status_text: String,
    pub deadline: Option<DateTime<Utc>>,
    /// The next step and when it falls due (now, if it is due already).
    pub next_step: Option<NextStep>,
    /// Who acknowledged the current cycle's alert in Slack.
    pub acknowledged_by: Option<String>,
    /// Left empty for confidential issues: readers outside the project
    /// may see this.
    pub title: String,
    pub confidential: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextStep {
    pub step: String,
    pub at: DateTime<Utc>,
}

/// Which clocks to show.
#[derive(Debug, Clone, Default)]
pub struct ClockFilter {
    pub policy: Option<String>,
    /// A status kind; matched against the status as of now.
    pub status: Option<String>,
    /// Only these issues' clocks; all if `None`. Only they are loaded.
    pub issues: Option<std::collections::BTreeSet<IssueRef>>,
}

/// The clocks the store holds that `filter` picks, by issue then policy.
/// Clocks of policies no longer in the files are left out.
pub async fn clocks<S: Store>(
    store: &S,
    policies: &PolicySet,
    filter: &ClockFilter,
    now: DateTime<Utc>,
) -> Result<Vec<ClockView>, StoreError> {
    let mut loaded = BTreeMap::new();
    let stored: Vec<(IssueRef, PolicyName)> = match &filter.issues {
        // A few issues: their clocks come with them, no listing needed.
        Some(wanted) => {
            let issues: Vec<IssueRef> = wanted.iter().cloned().collect();
            load_into(store, &issues, &mut loaded).await?;
            clocks_of(&loaded, filter.policy.as_deref())
        }
        None => {
            let stored = store.stored_clocks(filter.policy.as_deref(), None).await?;
            let mut issues: Vec<IssueRef> =
                stored.iter().map(|(issue, _, _)| issue.clone()).collect();
            issues.dedup();
            load_into(store, &issues, &mut loaded).await?;
            stored
                .into_iter()
                .map(|(issue, policy, _)| (issue, policy))
                .collect()
        }
    };
    views(store, policies, &loaded, stored, filter, now).await
}

/// The (issue, policy) of each clock `loaded` issues hold, of `policy` if
/// given.
fn clocks_of(
    loaded: &BTreeMap<IssueRef, crate::store::Loaded>,
    policy: Option<&str>,
) -> Vec<(IssueRef, PolicyName)> {
    loaded
        .iter()
        .flat_map(|(issue, found)| {
            found
                .statuses
                .iter()
                .filter(|(name, _)| policy.is_none_or(|p| p == name.0))
                .map(|(name, _)| (issue.clone(), name.clone()))
        })
        .collect()
}

/// The views of the `stored` clocks of `loaded` issues that `filter`'s
/// status picks, as of `now`.
async fn views<S: Store>(
    store: &S,
    policies: &PolicySet,
    loaded: &BTreeMap<IssueRef, crate::store::Loaded>,
    stored: Vec<(IssueRef, PolicyName)>,
    filter: &ClockFilter,
    now: DateTime<Utc>,
) -> Result<Vec<ClockView>, StoreError> {
    let mut views = Vec::new();
    for (reference, policy_name) in stored {
        let (Some(policy), Some(found)) = (policies.get(&policy_name), loaded.get(&reference))
        else {
            continue;
        };
        let Some(record) = &found.record else {
            continue;
        };
        let issue = record.issue(&found.carried);
        let reading = clock::read(&issue, policy, now);
        let status = reading.status();
        if filter
            .status
            .as_deref()
            .is_some_and(|wanted| wanted != status.kind())
        {
            continue;
        }
        let fired = found
            .ledger
            .iter()
            .filter(|(p, _)| p == &policy_name)
            .map(|(_, firing)| firing.clone())
            .collect();
        let acknowledged: Vec<u32> = found
            .acknowledged
            .iter()
            .filter(|(p, _)| p == &policy_name)
            .map(|(_, cycle)| *cycle)
            .collect();
        let ledger = Ledger::new(fired).with_acknowledged(acknowledged.clone());
        let next_step = next_step(&issue, policy, &reading, ledger, now);
        let acknowledged_by = acknowledgement_of(
            store,
            policies,
            found,
            &reference,
            &policy_name,
            reading.cycle,
        )
        .await?
        .map(|(by, _)| by);
        let deadline = reading.deadline().or(match &status {
            SlaStatus::Breached { deadline, .. } | SlaStatus::Missed { deadline, .. } => {
                Some(*deadline)
            }
            _ => None,
        });
        let confidential = record.facts.confidential;
        views.push(ClockView {
            issue: reference,
            policy: policy_name,
            status: status.kind().to_owned(),
            status_text: status.to_string(),
            deadline,
            next_step,
            acknowledged_by,
            title: if confidential {
                String::new()
            } else {
                record.title.clone()
            },
            confidential,
        });
    }
    Ok(views)
}

/// Who acknowledged `policy`'s cycle `cycle` of `issue` (named as people
/// read it) and when, if `found` says somebody did: the store is asked
/// only then.
pub(crate) async fn acknowledgement_of<S: Store>(
    store: &S,
    policies: &PolicySet,
    found: &crate::store::Loaded,
    issue: &IssueRef,
    policy: &PolicyName,
    cycle: u32,
) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
    if !found
        .acknowledged
        .iter()
        .any(|(p, acknowledged)| p == policy && *acknowledged == cycle)
    {
        return Ok(None);
    }
    Ok(store
        .acknowledgement(issue, policy, cycle)
        .await?
        .map(|(by, at)| (from_slack::person(&policies.people, &by), at)))
}

/// Loads `issues` from the store into `loaded`, a chunk at a time.
pub(crate) async fn load_into<S: Store>(
    store: &S,
    issues: &[IssueRef],
    loaded: &mut BTreeMap<IssueRef, crate::store::Loaded>,
) -> Result<(), StoreError> {
    for chunk in issues.chunks(LOAD_CHUNK) {
        for (issue, found) in chunk.iter().zip(store.load_issues(chunk).await?) {
            loaded.insert(issue.clone(), found);
        }
    }
    Ok(())
}

/// One issue's stored story as of `now` (see [`story`]); none if the
/// store has never heard of the issue.
pub async fn issue_story<S: Store>(
    store: &S,
    policies: &PolicySet,
    issue: &IssueRef,
    now: DateTime<Utc>,
) -> Result<Option<story::IssueStory>, StoreError> {
    let mut loaded = BTreeMap::new();
    load_into(store, std::slice::from_ref(issue), &mut loaded).await?;
    let Some(record) = loaded.get(issue).and_then(|found| found.record.as_ref()) else {
        return Ok(None);
    };
    // The issue loaded once, for its clocks and its story.
    let stored = clocks_of(&loaded, None);
    let clocks = views(
        store,
        policies,
        &loaded,
        stored,
        &ClockFilter::default(),
        now,
    )
    .await?;
    let told = store.issue_story(issue).await?;
    let stored = story::StoredIssue {
        issue,
        title: &record.title,
        url: &record.url,
        confidential: record.facts.confidential,
        events: &record.events,
    };
    Ok(Some(story::story(&stored, clocks, &told, &policies.people)))
}

/// The step due now, or the first the engine schedules next.
fn next_step(
    issue: &crate::issue::Issue,
    policy: &crate::policy::Policy,
    reading: &clock::ClockReading,
    mut ledger: Ledger,
    now: DateTime<Utc>,
) -> Option<NextStep> {
    let decision = engine::decide(policy, reading, &ledger);
    if let Some(due) = decision.actions.first() {
        return Some(NextStep {
            step: due.firing.step.0.clone(),
            at: due.due_at,
        });
    }
    let wake = decision.next_wake?;
    for action in &decision.actions {
        ledger.record(action.firing.clone());
    }
    let later = clock::read(issue, policy, wake.max(now) + TimeDelta::milliseconds(1));
    engine::decide(policy, &later, &ledger)
        .actions
        .first()
        .map(|action| NextStep {
            step: action.firing.step.0.clone(),
            at: wake,
        })
}
