//! `explain`: one issue under every policy, in words. Whether each policy
//! matches and, if not, why; the clock (cycle, start, time counted and
//! paused, deadline); the status; the steps already fired; what is due now
//! and what comes next, when. Pure: the issue and its markers are read by
//! the caller and `now` is a parameter.

use chrono::{DateTime, TimeDelta, Utc};

use crate::clock::{self, SlaStatus};
use crate::engine::{self, Ledger};
use crate::gitlab::actions::IssueLedger;
use crate::gitlab::from_slack;
use crate::gitlab::history::FetchedIssue;
use crate::gitlab::markers::Marker;
use crate::issue::{IssueFacts, IssueState};
use crate::policy::duration::human;
use crate::policy::{Confidentiality, Pattern, People, Policy, PolicySet, Selector};

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn patterns(list: &[Pattern]) -> String {
    list.iter()
        .map(Pattern::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why the selector does not match the issue as it is at `now`, or `None`
/// if it does.
pub fn why_not(selector: &Selector, facts: &IssueFacts, now: DateTime<Utc>) -> Option<String> {
    let mut reasons = Vec::new();
    match selector.confidential {
        Confidentiality::Only if !facts.confidential => {
            reasons.push("only confidential issues".to_owned())
        }
        Confidentiality::Never if facts.confidential => {
            reasons.push("not for confidential issues".to_owned())
        }
        _ => {}
    }
    if !selector.issue_types.is_empty() && !selector.issue_types.contains(&facts.issue_type) {
        reasons.push(format!(
            "type is {}, needs {}",
            facts.issue_type,
            selector.issue_types.join(" or ")
        ));
    }
    if !selector.projects.is_empty()
        && !selector
            .projects
            .iter()
            .any(|p| p.matches(&facts.reference.project.0))
    {
        reasons.push(format!(
            "project {} is not {}",
            facts.reference.project.0,
            patterns(&selector.projects)
        ));
    }
    let labels = || facts.labels.iter().map(String::as_str);
    if !selector.labels_any.is_empty()
        && !selector.labels_any.iter().any(|p| p.matches_any(labels()))
    {
        reasons.push(format!(
            "needs a label {}",
            selector
                .labels_any
                .iter()
                .map(Pattern::as_str)
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    let missing: Vec<&Pattern> = selector
        .labels_all
        .iter()
        .filter(|p| !p.matches_any(labels()))
        .collect();
    if !missing.is_empty() {
        reasons.push(format!(
            "needs the label{} {}",
            if missing.len() == 1 { "" } else { "s" },
            missing
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let excluding: Vec<&Pattern> = selector
        .labels_none
        .iter()
        .filter(|p| p.matches_any(labels()))
        .collect();
    if !excluding.is_empty() {
        reasons.push(format!(
            "excluded by {}",
            excluding
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for pattern in &selector.labels_several {
        let carried = labels().filter(|l| pattern.matches(l)).count();
        if carried < 2 {
            reasons.push(format!(
                "needs two or more {} labels (has {carried})",
                pattern.as_str()
            ));
        }
    }
    reasons.extend(why_not_beyond_labels(selector, facts, now));
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// The reasons from conditions beyond labels: assignees, author,
/// milestone, weight, state and age.
fn why_not_beyond_labels(
    selector: &Selector,
    facts: &IssueFacts,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let details = &facts.details;
    if !selector.assignees_hold(facts) {
        reasons.push(format!(
            "assignees {}, needs {}",
            if facts.assignees.is_empty() {
                "none".to_owned()
            } else {
                facts.assignees.join(", ")
            },
            selector.assignees.describe().unwrap_or_default()
        ));
    }
    if !selector.author_holds(facts) {
        reasons.push(format!(
            "author {}, needs {}",
            details.author.as_deref().unwrap_or("not known yet"),
            selector
                .authors
                .iter()
                .map(Pattern::as_str)
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    if !selector.milestone_holds(facts) {
        let milestone = match &details.milestone {
            None => "none".to_owned(),
            Some(milestone) => milestone
                .title
                .clone()
                .unwrap_or_else(|| "not known by name yet".to_owned()),
        };
        reasons.push(format!(
            "milestone {milestone}, needs {}",
            selector.milestone.describe().unwrap_or_default()
        ));
    }
    if !selector.weight_holds(facts) {
        reasons.push(format!(
            "weight {}, needs {}",
            details
                .weight
                .map_or_else(|| "none".to_owned(), |w| w.to_string()),
            selector.weight.describe().unwrap_or_default()
        ));
    }
    if !selector.matches_state(facts.state == IssueState::Opened) {
        reasons.push(match facts.state {
            IssueState::Opened => "open, needs closed".to_owned(),
            IssueState::Closed => "closed, needs open".to_owned(),
        });
    }
    let window = selector.window(facts);
    if let Some(from) = window.from.filter(|from| now < *from) {
        reasons.push(format!("not old enough until {}", time(from)));
    }
    if let Some(until) = window.until.filter(|until| now >= *until) {
        reasons.push(format!("too old since {}", time(until)));
    }
    reasons
}

/// The whole explanation.
pub fn explain(
    fetched: &FetchedIssue,
    ledger: &IssueLedger,
    policies: &PolicySet,
    now: DateTime<Utc>,
) -> String {
    let facts = fetched.issue.facts();
    let mut out = format!(
        "{}{}\n  {}, labels: {}, assignees: {}, type: {}{}\n  {}\n  as of {}\n",
        facts.reference,
        if facts.confidential {
            " (confidential)".to_owned()
        } else {
            format!(": {}", fetched.title)
        },
        match facts.state {
            IssueState::Opened => "open",
            IssueState::Closed => "closed",
        },
        if facts.labels.is_empty() {
            "none".to_owned()
        } else {
            facts.labels.join(", ")
        },
        if facts.assignees.is_empty() {
            "nobody".to_owned()
        } else {
            facts.assignees.join(", ")
        },
        facts.issue_type,
        if facts.confidential {
            ", confidential"
        } else {
            ""
        },
        fetched.url,
        time(now)
    );
    for policy in &policies.policies {
        out.push('\n');
        out.push_str(&explain_policy(
            fetched,
            ledger,
            &policies.people,
            policy,
            now,
        ));
    }
    out
}

fn explain_policy(
    fetched: &FetchedIssue,
    ledger: &IssueLedger,
    people: &People,
    policy: &Policy,
    now: DateTime<Utc>,
) -> String {
    let markers = &ledger.markers;
    let facts = fetched.issue.facts();
    let reading = clock::read(&fetched.issue, policy, now);
    let status = reading.status();
    let matching = why_not(&policy.selector, facts, now);
    let mut out = format!(
        "{} ({}): {}\n",
        policy.name,
        policy.source,
        match &matching {
            None => "matches".to_owned(),
            Some(reason) => format!("does not match now: {reason}"),
        }
    );
    if reading.cycle == 0 {
        return out;
    }
    out.push_str(&format!(
        "  clock: cycle {}, started {}, counted {} of {}, paused {}\n",
        reading.cycle,
        time(reading.started_at),
        human(reading.active),
        human(reading.target),
        human(reading.paused)
    ));
    if let Some(calendar) = &reading.calendar {
        out.push_str(&format!(
            "  counts: working time of calendar {} ({}); `labelwarden calendar {}` shows it\n",
            calendar.name, calendar.time_zone, calendar.name
        ));
    }
    if let Some(deadline) = reading.deadline().or(match &status {
        SlaStatus::Breached { deadline, .. } | SlaStatus::Missed { deadline, .. } => {
            Some(*deadline)
        }
        _ => None,
    }) {
        match &reading.calendar {
            Some(calendar) => out.push_str(&format!(
                "  deadline: {} ({} {})\n",
                time(deadline),
                calendar.local(deadline).format("%a %H:%M"),
                calendar.time_zone
            )),
            None => out.push_str(&format!("  deadline: {}\n", time(deadline))),
        }
    } else if matches!(status, SlaStatus::Paused { .. }) {
        out.push_str("  deadline: moves while the clock is paused\n");
    }
    out.push_str(&format!("  status: {status}\n"));
    let fired: Vec<&Marker> = markers.iter().filter(|m| m.policy == policy.name).collect();
    out.push_str(&format!(
        "  fired: {}\n",
        if fired.is_empty() {
            "nothing recorded on the issue".to_owned()
        } else {
            fired
                .iter()
                .map(|m| {
                    let mut text = format!("{} (cycle {}", m.firing.step, m.firing.cycle);
                    if m.firing.occurrence > 1 {
                        text.push_str(&format!(", #{}", m.firing.occurrence));
                    }
                    text.push(')');
                    text
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let acknowledgements = ledger.acknowledgements(&policy.name);
    match acknowledgements.iter().find(|a| a.cycle == reading.cycle) {
        Some(acknowledged) => out.push_str(&format!(
            "  acknowledged in Slack: by {} at {}, {} after the clock started\n",
            from_slack::person(people, &acknowledged.by),
            time(acknowledged.at),
            human(acknowledged.at - reading.started_at)
        )),
        None if policy.steps.iter().any(|s| s.unless_acknowledged) => {
            out.push_str("  acknowledged in Slack: not by anyone on record\n");
        }
        None => {}
    }
    let ledger = Ledger::new(fired.iter().map(|m| m.firing.clone()).collect())
        .with_acknowledged(acknowledgements.iter().map(|a| a.cycle).collect());
    let decision = engine::decide(policy, &reading, &ledger);
    if !decision.actions.is_empty() {
        let due: Vec<String> = decision
            .actions
            .iter()
            .map(|a| format!("{} (due {})", a.firing.step, time(a.due_at)))
            .collect();
        out.push_str(&format!(
            "  due now, not yet carried out: {}\n",
            due.join(", ")
        ));
    }
    if let Some(wake) = decision.next_wake {
        // What fires then, were everything due now carried out.
        let mut after = ledger;
        for action in &decision.actions {
            after.record(action.firing.clone());
        }
        let later = clock::read(
            &fetched.issue,
            policy,
            wake.max(now) + TimeDelta::milliseconds(1),
        );
        let next: Vec<String> = engine::decide(policy, &later, &after)
            .actions
            .iter()
            .map(|a| a.firing.step.0.clone())
            .collect();
        let what = if !next.is_empty() {
            next.join(", ")
        } else if reading.pause_runs_out_at() == Some(wake) {
            "the pause runs out (max_pause) and the clock runs again".to_owned()
        } else {
            "the clock is looked at again".to_owned()
        };
        out.push_str(&format!("  next: {what} at {}\n", time(wake)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fetched, issue, policy_set, start_marker, t};

    fn set() -> PolicySet {
        policy_set(concat!(
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
            "    escalation:\n      - on: start\n        gitlab: { comment: true }\n",
            "      - on: { before_deadline: 6h }\n        gitlab: { comment: true }\n",
            "      - on: breach\n        gitlab: { comment: true }\n",
            "  - name: incidents\n    match: { issue_types: [incident], labels_none: [security] }\n    clock: { target: 4h }\n",
        ))
    }

    #[test]
    fn a_running_clock_is_explained_with_what_fired_and_what_comes_next() {
        let fetched = fetched(issue(&[]).added(60, "priority::highest").build());
        let start = start_marker();
        let ledger = IssueLedger {
            markers: vec![start],
            ..IssueLedger::default()
        };
        let text = explain(&fetched, &ledger, &set(), t(60 + 10 * 60));
        for expected in [
            "acme/app#42: Checkout broken",
            "open, labels: priority::highest, assignees: jdoe, type: issue",
            "critical (test.yml:",
            "): matches",
            "clock: cycle 1, started 2026-11-02 10:00 UTC, counted 10h of 1d, paused 0s",
            "deadline: 2026-11-03 10:00 UTC",
            "status: running, 14h left",
            "fired: start (cycle 1)",
            "next: before_deadline:6h at 2026-11-03 04:00 UTC",
            "incidents (test.yml:",
            "does not match now: type is issue, needs incident",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in\n{text}");
        }
    }

    #[test]
    fn conditions_beyond_labels_say_what_the_issue_has_and_what_they_need() {
        let set = policy_set(concat!(
            "policies:\n",
            "  - name: owned\n    match:\n      labels_any: [\"priority::highest\"]\n",
            "      assignees: none\n      milestone: [\"17.*\"]\n      weight: { at_most: 3 }\n",
            "      authors: [ada]\n      created: { older_than: 2d }\n",
            "    clock: { target: 1h }\n",
        ));
        let fetched = fetched(issue(&["priority::highest"]).weight(5).build());
        let text = explain(&fetched, &IssueLedger::default(), &set, t(60));
        let expected = "does not match now: assignees jdoe, needs none; author not known yet, \
                        needs ada; milestone none, needs 17.*; weight 5, needs at most 3; \
                        not old enough until 2026-11-04 09:00 UTC";
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }

    #[test]
    fn a_step_due_but_not_recorded_is_called_out() {
        let fetched = fetched(issue(&[]).added(60, "priority::highest").build());
        let text = explain(&fetched, &IssueLedger::default(), &set(), t(60 + 25 * 60));
        assert!(
            text.contains("fired: nothing recorded on the issue"),
            "{text}"
        );
        assert!(
            text.contains("due now, not yet carried out: start"),
            "{text}"
        );
        assert!(text.contains("status: breached, 1h overdue"), "{text}");
    }

    #[test]
    fn an_acknowledgement_in_slack_is_shown_and_holds_back_its_escalation() {
        use crate::gitlab::from_slack::{Said, SlackMarker};
        use crate::notice::Thread;
        let set = policy_set(concat!(
            "people:\n  gitlab_users: { jdoe: U0JDOE001 }\n",
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
            "    escalation:\n      - on: start\n        gitlab: { comment: true }\n",
            "      - on: { after_start: 30m, unless: acknowledged }\n        gitlab: { comment: true }\n",
        ));
        let fetched = fetched(issue(&[]).added(60, "priority::highest").build());
        let mut start = start_marker();
        start.firing.occurrence = 0;
        let unanswered = IssueLedger {
            markers: vec![start],
            ..IssueLedger::default()
        };
        let text = explain(&fetched, &unanswered, &set, t(120));
        assert!(
            text.contains("acknowledged in Slack: not by anyone on record"),
            "{text}"
        );
        assert!(
            text.contains(
                "due now, not yet carried out: after_start:30m:unless:acknowledged (due 2026-11-02 10:30 UTC)"
            ),
            "{text}"
        );

        let acknowledged = IssueLedger {
            from_slack: vec![SlackMarker {
                said: Said::Acknowledged,
                policy: start_marker().policy,
                cycle: 1,
                thread: Thread {
                    channel_id: "C0ALERTS".into(),
                    ts: "1.1".into(),
                },
                by: "U0JDOE001".into(),
                reply: None,
                at: Some(t(70)),
            }],
            ..unanswered
        };
        let text = explain(&fetched, &acknowledged, &set, t(120));
        assert!(
            text.contains("acknowledged in Slack: by @jdoe at 2026-11-02 10:10 UTC, 10m after the clock started"),
            "{text}"
        );
        assert!(!text.contains("due now"), "{text}");
    }
}
