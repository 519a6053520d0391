//! Compares what a case expects with what its run did: each checkpoint's
//! status, deadline, time left and overdue, and the steps sent since the
//! previous `sent:`. A failure keeps both sides, for the side-by-side view.
//!
//! Pure.

use chrono::{DateTime, TimeDelta, Utc};

use super::compile::{Case, Checkpoint, ExpectedSend};
use super::simulate::{Outcome, Sent};
use crate::clock::SlaStatus;
use crate::policy::duration::human;

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The checkpoint, as the file wrote its time.
    pub at: String,
    pub line: u32,
    /// What was compared: `status`, `deadline`, `remaining`, `overdue`, `sent`.
    pub what: &'static str,
    pub expected: Vec<String>,
    pub actual: Vec<String>,
    /// For `sent`: what differs, row by row.
    pub notes: Vec<String>,
}

/// Every failed expectation of `case`, given its `outcome`.
pub fn judge(case: &Case, outcome: &Outcome) -> Vec<Failure> {
    let created = case.issue.created_at;
    let mut failures = Vec::new();
    let mut sent_since = None;
    for (index, checkpoint) in case.checkpoints.iter().enumerate() {
        let failure = |what, expected: String, actual: String| Failure {
            at: checkpoint.written.clone(),
            line: checkpoint.line,
            what,
            expected: vec![expected],
            actual: vec![actual],
            notes: Vec::new(),
        };
        if let Some(snapshot) = outcome.snapshots.get(index) {
            let status = snapshot.reading.status();
            if let Some(expected) = &checkpoint.status
                && expected != status.kind()
            {
                failures.push(failure("status", expected.clone(), status.to_string()));
            }
            if let Some(expected) = checkpoint.deadline {
                let actual = snapshot.reading.deadline();
                if expected != actual {
                    failures.push(failure(
                        "deadline",
                        instant_text(expected, created),
                        instant_text(actual, created),
                    ));
                }
            }
            if let Some(expected) = checkpoint.remaining {
                let actual = remaining(&status);
                if actual.map(|d| d.num_seconds()) != Some(expected.num_seconds()) {
                    failures.push(failure(
                        "remaining",
                        human(expected),
                        actual.map_or(
                            "none (the clock is not running or paused)".to_owned(),
                            human,
                        ),
                    ));
                }
            }
            if let Some(expected) = checkpoint.overdue {
                let actual = overdue(&status);
                if actual.map(|d| d.num_seconds()) != Some(expected.num_seconds()) {
                    failures.push(failure(
                        "overdue",
                        human(expected),
                        actual.map_or("none (not past its deadline)".to_owned(), human),
                    ));
                }
            }
        }
        if let Some(expected) = &checkpoint.sent {
            let window: Vec<&Sent> = outcome
                .sent
                .iter()
                .filter(|s| s.at <= checkpoint.at && sent_since.is_none_or(|since| s.at > since))
                .filter(|s| outcome.case_is_rule.is_none_or(|rule| s.by_rule == rule))
                .collect();
            sent_since = Some(checkpoint.at);
            if let Some(failure) = compare_sent(checkpoint, expected, &window, created) {
                failures.push(failure);
            }
        }
    }
    failures
}

fn remaining(status: &SlaStatus) -> Option<TimeDelta> {
    match status {
        SlaStatus::Running { remaining, .. } | SlaStatus::Paused { remaining, .. } => {
            Some(*remaining)
        }
        _ => None,
    }
}

fn overdue(status: &SlaStatus) -> Option<TimeDelta> {
    match status {
        SlaStatus::Breached { overdue, .. } => Some(*overdue),
        SlaStatus::Missed { late_by, .. } => Some(*late_by),
        SlaStatus::Withdrawn { overdue, .. } => *overdue,
        _ => None,
    }
}

/// An instant as a test reads it: `24h after creation (2026-01-06 09:00 UTC)`.
fn instant_text(at: Option<DateTime<Utc>>, created: DateTime<Utc>) -> String {
    match at {
        None => "none".to_owned(),
        Some(at) => format!(
            "{} after creation ({})",
            human(at - created),
            at.format("%Y-%m-%d %H:%M UTC")
        ),
    }
}

/// The expected sends against the actual ones, row by row, in order.
fn compare_sent(
    checkpoint: &Checkpoint,
    expected: &[ExpectedSend],
    actual: &[&Sent],
    created: DateTime<Utc>,
) -> Option<Failure> {
    let mut notes = Vec::new();
    for row in 0..expected.len().max(actual.len()) {
        match (expected.get(row), actual.get(row)) {
            (Some(want), Some(got)) => {
                for difference in differences(want, got, created) {
                    notes.push(format!("row {}: {difference}", row + 1));
                }
            }
            (Some(want), None) => {
                notes.push(format!("row {}: `{}` was not sent", row + 1, want.step))
            }
            (None, Some(got)) => notes.push(format!(
                "row {}: `{}` ({}) was sent but not expected",
                row + 1,
                got.step,
                got.policy
            )),
            (None, None) => {}
        }
    }
    if notes.is_empty() {
        return None;
    }
    Some(Failure {
        at: checkpoint.written.clone(),
        line: checkpoint.line,
        what: "sent",
        expected: if expected.is_empty() {
            vec!["(nothing)".to_owned()]
        } else {
            expected
                .iter()
                .map(|e| describe_expected(e, created))
                .collect()
        },
        actual: if actual.is_empty() {
            vec!["(nothing)".to_owned()]
        } else {
            actual.iter().map(|s| describe_sent(s, created)).collect()
        },
        notes,
    })
}

/// What differs between one expected and one actual send.
fn differences(want: &ExpectedSend, got: &Sent, created: DateTime<Utc>) -> Vec<String> {
    let mut found = Vec::new();
    if want.step != got.step {
        found.push(format!("step `{}`, not `{}`", got.step, want.step));
    }
    if let Some(policy) = &want.policy
        && policy != &got.policy.0
    {
        found.push(format!("policy `{}`, not `{policy}`", got.policy));
    }
    if let Some(at) = want.at
        && at != got.at
    {
        found.push(format!(
            "sent {} after creation, not {}",
            human(got.at - created),
            human(at - created)
        ));
    }
    if let Some(channel) = &want.channel
        && channel != &got.channel
    {
        found.push(format!(
            "channel {}, not {}",
            got.channel.as_deref().unwrap_or("none"),
            channel.as_deref().unwrap_or("none")
        ));
    }
    if let Some(mentions) = &want.mentions
        && mentions != &got.mentions
    {
        found.push(format!(
            "tags [{}], not [{}]",
            got.mentions.join(", "),
            mentions.join(", ")
        ));
    }
    if let Some(labels) = &want.labels_added
        && labels != &got.labels_added
    {
        found.push(format!(
            "adds labels [{}], not [{}]",
            got.labels_added.join(", "),
            labels.join(", ")
        ));
    }
    if let Some(assigns) = &want.assigns
        && assigns != &got.assigned
    {
        found.push(format!(
            "assigns [{}], not [{}]",
            got.assigned.join(", "),
            assigns.join(", ")
        ));
    }
    if let Some(comment) = want.comment
        && comment != got.comment
    {
        found.push(if got.comment {
            "comments on the issue, which was not expected".to_owned()
        } else {
            "does not comment on the issue".to_owned()
        });
    }
    if let Some(react) = &want.react
        && Some(react) != got.react.as_ref()
    {
        found.push(format!(
            "reacts with {}, not :{react}:",
            got.react
                .as_ref()
                .map_or("nothing".to_owned(), |r| format!(":{r}:"))
        ));
    }
    for text in &want.contains {
        if !got.message.contains(text.as_str()) {
            found.push(format!(
                "the message does not contain \"{text}\"; it says: {}",
                one_line(&got.message)
            ));
        }
    }
    for text in &want.not_contains {
        if got.message.contains(text.as_str()) {
            found.push(format!(
                "the message contains \"{text}\"; it says: {}",
                one_line(&got.message)
            ));
        }
    }
    found
}

/// A message on one line, for a failure note.
fn one_line(message: &str) -> String {
    let joined = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        "(no Slack message)".to_owned()
    } else {
        joined
    }
}

/// An expected send as one line: only what the test says.
fn describe_expected(want: &ExpectedSend, created: DateTime<Utc>) -> String {
    let mut line = want.step.clone();
    if let Some(policy) = &want.policy {
        line.push_str(&format!(" ({policy})"));
    }
    if let Some(at) = want.at {
        line.push_str(&format!(" at +{}", human(at - created)));
    }
    if let Some(channel) = &want.channel {
        line.push_str(&format!(" → {}", channel.as_deref().unwrap_or("no Slack")));
    }
    if let Some(mentions) = &want.mentions {
        line.push_str(&format!(" tags [{}]", mentions.join(", ")));
    }
    if let Some(labels) = &want.labels_added
        && !labels.is_empty()
    {
        line.push_str(&format!(" +labels [{}]", labels.join(", ")));
    }
    if let Some(assigns) = &want.assigns
        && !assigns.is_empty()
    {
        line.push_str(&format!(" assigns [{}]", assigns.join(", ")));
    }
    if want.comment == Some(true) {
        line.push_str(" +comment");
    }
    if let Some(react) = &want.react {
        line.push_str(&format!(" :{react}:"));
    }
    line
}

/// A sent step as one line, in full.
pub fn describe_sent(sent: &Sent, created: DateTime<Utc>) -> String {
    let mut line = format!(
        "{} ({}) at +{}",
        sent.step,
        sent.policy,
        human(sent.at - created)
    );
    line.push_str(&format!(
        " → {}",
        sent.channel.as_deref().unwrap_or("no Slack")
    ));
    if !sent.mentions.is_empty() {
        line.push_str(&format!(" tags [{}]", sent.mentions.join(", ")));
    }
    if !sent.labels_added.is_empty() {
        line.push_str(&format!(" +labels [{}]", sent.labels_added.join(", ")));
    }
    if !sent.assigned.is_empty() {
        line.push_str(&format!(" assigns [{}]", sent.assigned.join(", ")));
    }
    if sent.comment {
        line.push_str(" +comment");
    }
    if let Some(react) = &sent.react {
        line.push_str(&format!(" :{react}:"));
    }
    if let Some(held) = sent.held_for_quiet_hours {
        line.push_str(&format!(" (held {} for quiet hours)", human(held)));
    }
    line
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::policy::{PolicyName, SourceLocation};
    use crate::scenario::compile::{TestIssue, default_created_at};

    fn sent(minutes: i64, step: &str) -> Sent {
        Sent {
            at: default_created_at() + TimeDelta::minutes(minutes),
            policy: PolicyName("critical".into()),
            by_rule: false,
            step: step.into(),
            channel: Some("alerts".into()),
            mentions: vec!["contacts".into()],
            labels_added: Vec::new(),
            assigned: Vec::new(),
            labels_removed: Vec::new(),
            comment: false,
            react: None,
            message: "Checkout is down".into(),
            held_for_quiet_hours: None,
        }
    }

    #[test]
    fn a_step_held_for_quiet_hours_says_how_long_it_waited() {
        let held = Sent {
            held_for_quiet_hours: Some(TimeDelta::hours(14)),
            ..sent(16 * 60, "breach")
        };
        let line = describe_sent(&held, default_created_at());
        assert!(line.ends_with("(held 14h for quiet hours)"), "{line}");
        assert!(!describe_sent(&sent(0, "start"), default_created_at()).contains("quiet"));
    }

    fn checkpoint(minutes: i64, sent: Option<Vec<ExpectedSend>>) -> Checkpoint {
        Checkpoint {
            at: default_created_at() + TimeDelta::minutes(minutes),
            written: format!("{minutes}m"),
            line: 1,
            status: None,
            deadline: None,
            remaining: None,
            overdue: None,
            sent,
        }
    }

    fn expect(step: &str) -> ExpectedSend {
        ExpectedSend {
            step: step.into(),
            ..ExpectedSend::default()
        }
    }

    fn case(checkpoints: Vec<Checkpoint>) -> Case {
        Case {
            name: "c".into(),
            at: SourceLocation {
                file: std::sync::Arc::new("t.yml".into()),
                line: 1,
                column: 1,
            },
            policy: None,
            issue: TestIssue {
                labels: Vec::new(),
                issue_type: "issue".into(),
                confidential: false,
                assignees: Vec::new(),
                created_at: default_created_at(),
                title: "t".into(),
                author: None,
                milestone: None,
                weight: None,
            },
            history: Vec::new(),
            checkpoints,
        }
    }

    #[test]
    fn sent_counts_from_the_previous_sent_list() {
        let outcome = Outcome {
            sent: vec![sent(0, "start"), sent(30, "reminder"), sent(90, "breach")],
            snapshots: Vec::new(),
            case_is_rule: None,
        };
        let passing = case(vec![
            checkpoint(10, Some(vec![expect("start")])),
            checkpoint(60, None),
            checkpoint(120, Some(vec![expect("reminder"), expect("breach")])),
        ]);
        assert_eq!(judge(&passing, &outcome), []);

        let missing_one = case(vec![checkpoint(
            120,
            Some(vec![expect("start"), expect("breach")]),
        )]);
        let failures = judge(&missing_one, &outcome);
        assert_eq!(failures.len(), 1);
        assert_eq!(
            failures[0].notes,
            [
                "row 2: step `reminder`, not `breach`",
                "row 3: `breach` (critical) was sent but not expected"
            ]
        );
    }

    #[test]
    fn message_text_is_checked_both_ways() {
        let outcome = Outcome {
            sent: vec![sent(0, "start")],
            snapshots: Vec::new(),
            case_is_rule: None,
        };
        let mut want = expect("start");
        want.contains = vec!["Checkout".into()];
        want.not_contains = vec!["down".into()];
        let failures = judge(&case(vec![checkpoint(0, Some(vec![want]))]), &outcome);
        assert_eq!(
            failures[0].notes,
            ["row 1: the message contains \"down\"; it says: Checkout is down"]
        );
    }
}
