//! Moves and duplicates, as `audit` reads them, by the rules `serve`
//! follows, so that both report the same statuses:
//! - GitLab closes a moved issue naming the new one (`moved_to_id`), and
//!   that close is not a resolution. When the new issue is among those
//!   read, the two are one issue: the new one, with the old one's history
//!   before its own (GitLab copies most of it; what is in both counts
//!   once), from the old one's creation. When it is not (moved out of what
//!   is audited), the old one is read as still open, as `serve` keeps its
//!   clock running.
//! - An issue closed as a duplicate (`_links.closed_as_duplicate_of`) is
//!   withdrawn, not resolved, under policies that follow duplicates (see
//!   [`crate::clock`]); where the canonical issue is read and its clock
//!   runs under the policy, it counts from the earlier of the two starts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::clock;
use crate::gitlab::history::FetchedIssue;
use crate::issue::{Event, Issue, IssueState, TimedEvent};
use crate::policy::{DuplicateRule, PolicySet};

/// `fetched` read as one story per issue: moves folded, duplicates marked
/// and their starts carried.
pub fn follow(
    fetched: Vec<FetchedIssue>,
    policies: &PolicySet,
    now: DateTime<Utc>,
) -> Vec<FetchedIssue> {
    follow_duplicates(follow_moves(fetched), policies, now)
}

/// Marks each issue closed as a duplicate, and carries its clock starts to
/// its canonical issue where that one's clock runs under the policy.
fn follow_duplicates(
    mut fetched: Vec<FetchedIssue>,
    policies: &PolicySet,
    now: DateTime<Utc>,
) -> Vec<FetchedIssue> {
    let mut carried = Vec::new();
    for index in 0..fetched.len() {
        let Some((project_id, iid)) = fetched[index].ids.duplicate_of else {
            continue;
        };
        let duplicate = fetched[index].issue.clone();
        fetched[index].issue = duplicate.clone().closed_as_duplicate();
        let Some(canonical) = fetched
            .iter()
            .position(|f| f.ids.project_id == Some(project_id) && f.issue.reference().iid.0 == iid)
        else {
            continue;
        };
        for policy in &policies.policies {
            if policy.clock.duplicates != DuplicateRule::Follow {
                continue;
            }
            let started = clock::read(&duplicate, policy, now);
            let runs_there = clock::read(&fetched[canonical].issue, policy, now).is_live();
            if started.cycle > 0 && runs_there {
                carried.push((canonical, policy.name.0.clone(), started.started_at));
            }
        }
    }
    for (canonical, policy, started_at) in carried {
        let issue = fetched[canonical].issue.clone();
        fetched[canonical].issue = issue.with_carried_start(&policy, started_at);
    }
    fetched
}

/// `fetched`, with each moved issue folded into the issue it moved to.
fn follow_moves(fetched: Vec<FetchedIssue>) -> Vec<FetchedIssue> {
    let by_id: HashMap<u64, usize> = fetched
        .iter()
        .enumerate()
        .filter_map(|(index, f)| Some((f.ids.issue_id?, index)))
        .collect();
    // Where each moved issue went, when it is here: (old, new) indexes.
    let mut folded: Vec<(usize, usize)> = Vec::new();
    for (index, issue) in fetched.iter().enumerate() {
        if let Some(to) = issue.ids.moved_to_id.and_then(|id| by_id.get(&id)) {
            folded.push((index, *to));
        }
    }
    let mut issues: Vec<Option<FetchedIssue>> = fetched.into_iter().map(Some).collect();
    // Every moved issue first reads as open: the moving close is no close.
    for issue in issues.iter_mut().flatten() {
        if issue.ids.moved_to_id.is_some() {
            reopen(issue);
        }
    }
    for (old, new) in folded {
        let (Some(from), Some(mut to)) = (issues[old].take(), issues[new].take()) else {
            continue;
        };
        let mut facts = to.issue.facts().clone();
        facts.created_at = facts.created_at.min(from.issue.facts().created_at);
        let mut events: Vec<TimedEvent> = from.issue.timeline().events().to_vec();
        events.extend(to.issue.timeline().events().iter().cloned());
        to.issue = Issue::new(facts, events);
        issues[new] = Some(to);
    }
    issues.into_iter().flatten().collect()
}

/// Drops the close that moved `issue`, its latest, and reads it as open.
fn reopen(issue: &mut FetchedIssue) {
    let mut facts = issue.issue.facts().clone();
    let mut events = issue.issue.timeline().events().to_vec();
    if let Some(last_close) = events.iter().rposition(|e| e.event == Event::Closed) {
        events.remove(last_close);
    }
    facts.state = IssueState::Opened;
    facts.closed_at = None;
    issue.issue = Issue::new(facts, events);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use crate::issue::GitLabIds;
    use crate::test_support::{fetched, issue, policy_set, t};

    fn with_ids(mut issue: FetchedIssue, id: u64, moved_to: Option<u64>) -> FetchedIssue {
        issue.ids = GitLabIds {
            issue_id: Some(id),
            moved_to_id: moved_to,
            ..GitLabIds::default()
        };
        issue
    }

    #[test]
    fn a_moved_issue_is_one_clock_from_its_first_label_and_not_a_resolution() {
        let set = policy_set(concat!(
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
        ));
        let policy = &set.policies[0];
        // Labelled at minute 0, moved at minute 600 to a new issue created
        // then with the label (GitLab copies labels, not always their
        // events).
        let old = with_ids(
            fetched(issue(&[]).added(0, "priority::highest").closed(600).build()),
            1,
            Some(2),
        );
        let new = with_ids(fetched(issue(&["priority::highest"]).build()), 2, None);
        let mut new = new;
        let mut facts = new.issue.facts().clone();
        facts.created_at = t(600);
        facts.reference.iid = crate::issue::IssueIid(12);
        new.issue = Issue::new(facts, vec![]);

        let read = follow_moves(vec![old.clone(), new]);
        assert_eq!(read.len(), 1, "one issue");
        assert_eq!(read[0].issue.reference().iid.0, 12);
        let reading = clock::read(&read[0].issue, policy, t(25 * 60));
        assert_eq!(
            reading.status().kind(),
            "breached",
            "the clock from minute 0 passed its 24 h at minute 1440"
        );

        // Moved out of what is audited: the old one goes on, open.
        let alone = follow_moves(vec![old]);
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].issue.facts().state, IssueState::Opened);
        assert_eq!(
            clock::read(&alone[0].issue, policy, t(25 * 60))
                .status()
                .kind(),
            "breached"
        );
    }
}
