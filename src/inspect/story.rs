//! One issue's stored story, as people read it: where each of its clocks
//! stands now, then, oldest first, what the store received (label and
//! state changes), which steps fired, and what became of each notice
//! (sent, held by a mute, refused for good, resent, still waiting), with
//! what was said of it in group messages and who acknowledged it. Like
//! `explain`, but from the store alone, so it works while `serve` runs and
//! shows what GitLab cannot: what labelwarden itself did. Pure: built from
//! what the store returned.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ClockView;
use crate::issue::{Event, IssueRef, TimedEvent};
use crate::policy::{People, PolicyName};
use crate::store::story::{StoredNotice, StoredStory};

/// The story of one issue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssueStory {
    #[serde(serialize_with = "crate::issue::as_reference")]
    pub issue: IssueRef,
    /// Left empty for a confidential issue.
    pub title: String,
    pub confidential: bool,
    pub url: String,
    pub clocks: Vec<ClockView>,
    pub entries: Vec<StoryEntry>,
}

/// One thing that happened, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StoryEntry {
    pub at: DateTime<Utc>,
    pub kind: EntryKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyName>,
    /// What happened, in words.
    pub what: String,
}

/// The kinds of entries, in the order they are listed within one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Received,
    Fired,
    Grouped,
    Sent,
    Muted,
    Waiting,
    Failed,
    Resent,
    Acknowledged,
}

impl EntryKind {
    fn word(self) -> &'static str {
        match self {
            EntryKind::Received => "received",
            EntryKind::Fired => "fired",
            EntryKind::Grouped => "grouped",
            EntryKind::Sent => "sent",
            EntryKind::Muted => "muted",
            EntryKind::Waiting => "waiting",
            EntryKind::Failed => "failed",
            EntryKind::Resent => "resent",
            EntryKind::Acknowledged => "acknowledged",
        }
    }
}

/// What the issue looks like to the story: the stored record's parts.
pub struct StoredIssue<'a> {
    pub issue: &'a IssueRef,
    pub title: &'a str,
    pub url: &'a str,
    pub confidential: bool,
    pub events: &'a [TimedEvent],
}

/// Puts the story together.
pub fn story(
    stored: &StoredIssue<'_>,
    clocks: Vec<ClockView>,
    told: &StoredStory,
    people: &People,
) -> IssueStory {
    let mut entries = Vec::new();
    let mut add = |at, kind, policy: Option<&PolicyName>, what: String| {
        entries.push(StoryEntry {
            at,
            kind,
            policy: policy.cloned(),
            what,
        });
    };
    for event in stored.events {
        let what = match &event.event {
            Event::LabelAdded(label) => format!("labelled {label}"),
            Event::LabelRemoved(label) => format!("unlabelled {label}"),
            Event::Closed => "closed".to_owned(),
            Event::Reopened => "reopened".to_owned(),
        };
        add(event.at, EntryKind::Received, None, what);
    }
    for fired in &told.fired {
        let firing = &fired.firing;
        if crate::jobs::thread_notices::is_fallback(&firing.step) {
            // A fallback is no step of the policy: its notice says it.
            continue;
        }
        let repeat = if firing.occurrence > 1 {
            format!(", repeat {}", firing.occurrence)
        } else {
            String::new()
        };
        add(
            fired.at,
            EntryKind::Fired,
            Some(&fired.policy),
            format!("{} (cycle {}{repeat})", firing.step, firing.cycle),
        );
    }
    for notice in &told.notices {
        for (at, kind, what) in notice_entries(notice) {
            add(at, kind, Some(&notice.policy), what);
        }
    }
    for grouped in &told.grouped {
        let (at, what) = match (grouped.step_kind.as_str(), grouped.posted_at) {
            ("start", _) => (
                grouped.at,
                format!(
                    "alert listed in the group alert in `{}` (cycle {})",
                    grouped.channel, grouped.cycle
                ),
            ),
            (kind, Some(posted)) => (
                posted,
                format!(
                    "{kind} said in the group message in `{}` (cycle {})",
                    grouped.channel, grouped.cycle
                ),
            ),
            (kind, None) => (
                grouped.at,
                format!(
                    "{kind} waits to be said in the group message in `{}` (cycle {})",
                    grouped.channel, grouped.cycle
                ),
            ),
        };
        add(at, EntryKind::Grouped, Some(&grouped.policy), what);
    }
    for ack in &told.acknowledgements {
        add(
            ack.at,
            EntryKind::Acknowledged,
            Some(&ack.policy),
            format!(
                "by {} (cycle {})",
                crate::gitlab::from_slack::person(people, &ack.by),
                ack.cycle
            ),
        );
    }
    entries.sort();
    IssueStory {
        issue: stored.issue.clone(),
        title: if stored.confidential {
            String::new()
        } else {
            stored.title.to_owned()
        },
        confidential: stored.confidential,
        url: stored.url.to_owned(),
        clocks,
        entries,
    }
}

/// What became of one notice: its send, hold or failure, then a resend
/// and what became of that.
fn notice_entries(notice: &StoredNotice) -> Vec<(DateTime<Utc>, EntryKind, String)> {
    let mut to = match (&notice.channel, notice.acts_on_gitlab) {
        (Some(channel), false) => format!("to `{channel}`"),
        (Some(channel), true) => format!("to `{channel}` and GitLab"),
        (None, _) if notice.instead_of.is_some() => "as a comment on the issue".to_owned(),
        (None, _) => "on GitLab".to_owned(),
    };
    if let Some(refused) = &notice.instead_of {
        to.push_str(&format!(", instead of `{refused}`"));
    }
    let step = format!("{} {to}", notice.step_kind);
    let mut entries = Vec::new();
    let error = notice.error.as_deref().unwrap_or("no error recorded");
    if let Some(failed_at) = notice.failed_at {
        let number = notice
            .id
            .map(|id| format!(" (notice {id})"))
            .unwrap_or_default();
        entries.push((
            failed_at,
            EntryKind::Failed,
            format!("{step}: refused for good: {error}{number}"),
        ));
    }
    if let Some(resent_at) = notice.resent_at {
        entries.push((
            resent_at,
            EntryKind::Resent,
            format!("{step}, queued again"),
        ));
    }
    match (notice.sent_at, notice.muted_by, notice.next_attempt_at) {
        (Some(at), Some(mute), _) => entries.push((
            at,
            EntryKind::Muted,
            format!("{step}: held by mute {mute}, said in its summary"),
        )),
        (Some(at), None, _) => {
            let tries = if notice.attempts > 1 {
                format!(" after {} attempts", notice.attempts)
            } else {
                String::new()
            };
            entries.push((at, EntryKind::Sent, format!("{step}{tries}")));
        }
        (None, _, Some(next)) => {
            let last = notice
                .error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            entries.push((
                notice.queued_at,
                EntryKind::Waiting,
                format!(
                    "{step}: not sent yet, next attempt {} ({} attempts{last})",
                    next.format("%Y-%m-%d %H:%M:%S UTC"),
                    notice.attempts
                ),
            ));
        }
        (None, _, None) => {
            if notice.failed_at.is_none() {
                // Refused before failures were timed: at its queueing.
                entries.push((
                    notice.queued_at,
                    EntryKind::Failed,
                    format!("{step}: refused for good: {error}"),
                ));
            }
        }
    }
    entries
}

/// The story as text: the issue, its clocks, then a line per entry.
pub fn render(story: &IssueStory, now: DateTime<Utc>) -> String {
    let time = |at: DateTime<Utc>| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let title = if story.confidential {
        "(confidential)"
    } else {
        story.title.as_str()
    };
    let mut out = format!(
        "{}: {title}\n  {}\n  as of {}, from the store\n\n",
        story.issue,
        story.url,
        time(now)
    );
    if story.clocks.is_empty() {
        out.push_str("no clocks in the store for this issue\n");
    }
    for clock in &story.clocks {
        out.push_str(&format!("{}: {}", clock.policy, clock.status_text));
        if let Some(deadline) = clock.deadline {
            out.push_str(&format!("; deadline {}", time(deadline)));
        }
        if let Some(next) = &clock.next_step {
            out.push_str(&format!("; next: {} at {}", next.step, time(next.at)));
        }
        if let Some(by) = &clock.acknowledged_by {
            out.push_str(&format!("; acknowledged by {by}"));
        }
        out.push('\n');
    }
    out.push('\n');
    for entry in &story.entries {
        let policy = entry
            .policy
            .as_ref()
            .map(|p| format!("{p}: "))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}  {:<12}  {policy}{}\n",
            time(entry.at),
            entry.kind.word(),
            entry.what
        ));
    }
    if story.entries.is_empty() {
        out.push_str("nothing stored for this issue yet\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;
    use crate::engine::Firing;
    use crate::issue::{IssueIid, ProjectPath};
    use crate::policy::StepId;
    use crate::store::story::{GroupedNotice, StoredAcknowledgement, StoredFiring};

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 16, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    fn firing(step: &str) -> Firing {
        Firing {
            step: StepId(step.into()),
            cycle: 1,
            occurrence: 1,
        }
    }

    fn notice(step: &str, queued: i64) -> StoredNotice {
        StoredNotice {
            policy: PolicyName("critical".into()),
            firing: firing(step),
            step_kind: step.into(),
            channel: Some("alerts".into()),
            acts_on_gitlab: false,
            instead_of: None,
            queued_at: at(queued),
            attempts: 1,
            sent_at: None,
            muted_by: None,
            failed_at: None,
            resent_at: None,
            next_attempt_at: None,
            error: None,
            id: None,
        }
    }

    fn told() -> StoredStory {
        let policy = PolicyName("critical".into());
        StoredStory {
            fired: ["start", "warning", "breach"]
                .iter()
                .zip([0, 2, 3])
                .map(|(step, s)| StoredFiring {
                    policy: policy.clone(),
                    firing: firing(step),
                    at: at(s),
                })
                .collect(),
            notices: vec![
                StoredNotice {
                    sent_at: Some(at(30)),
                    failed_at: Some(at(1)),
                    resent_at: Some(at(29)),
                    error: Some("channel_not_found".into()),
                    id: Some(4),
                    attempts: 1,
                    ..notice("start", 0)
                },
                StoredNotice {
                    sent_at: Some(at(3)),
                    muted_by: Some(2),
                    ..notice("warning", 2)
                },
                StoredNotice {
                    next_attempt_at: Some(at(40)),
                    attempts: 3,
                    error: Some("ratelimited".into()),
                    ..notice("breach", 3)
                },
            ],
            grouped: vec![GroupedNotice {
                policy: policy.clone(),
                channel: "alerts".into(),
                step_kind: "reminder".into(),
                cycle: 1,
                at: at(10),
                posted_at: Some(at(11)),
            }],
            acknowledgements: vec![StoredAcknowledgement {
                policy,
                cycle: 1,
                by: "U0ALICE".into(),
                at: at(20),
            }],
        }
    }

    #[test]
    fn the_story_says_each_notice_s_fate_in_the_order_it_happened() {
        let issue = IssueRef {
            project: ProjectPath("acme/backend".into()),
            iid: IssueIid(7),
        };
        let events = [TimedEvent {
            at: at(0),
            event: Event::LabelAdded("priority::highest".into()),
        }];
        let stored = StoredIssue {
            issue: &issue,
            title: "Checkout fails",
            url: "https://gitlab.example.com/acme/backend/-/issues/7",
            confidential: false,
            events: &events,
        };
        let story = story(&stored, Vec::new(), &told(), &People::default());
        let lines: Vec<(EntryKind, &str)> = story
            .entries
            .iter()
            .map(|e| (e.kind, e.what.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (EntryKind::Received, "labelled priority::highest"),
                (EntryKind::Fired, "start (cycle 1)"),
                (
                    EntryKind::Failed,
                    "start to `alerts`: refused for good: channel_not_found (notice 4)"
                ),
                (EntryKind::Fired, "warning (cycle 1)"),
                (EntryKind::Fired, "breach (cycle 1)"),
                (
                    EntryKind::Muted,
                    "warning to `alerts`: held by mute 2, said in its summary"
                ),
                (
                    EntryKind::Waiting,
                    "breach to `alerts`: not sent yet, next attempt 2026-11-29 16:00:40 UTC (3 attempts; last error: ratelimited)"
                ),
                (
                    EntryKind::Grouped,
                    "reminder said in the group message in `alerts` (cycle 1)"
                ),
                (EntryKind::Acknowledged, "by Slack user `U0ALICE` (cycle 1)"),
                (EntryKind::Resent, "start to `alerts`, queued again"),
                (EntryKind::Sent, "start to `alerts`"),
            ]
        );
        let text = render(&story, at(60));
        assert!(
            text.starts_with("acme/backend#7: Checkout fails\n"),
            "{text}"
        );
        assert!(
            text.contains("2026-11-29 16:00:30 UTC  sent          critical: start to `alerts`\n"),
            "{text}"
        );
    }

    #[test]
    fn a_confidential_issue_s_title_stays_out_of_its_story() {
        let issue = IssueRef {
            project: ProjectPath("acme/backend".into()),
            iid: IssueIid(8),
        };
        let stored = StoredIssue {
            issue: &issue,
            title: "Token leak in billing",
            url: "https://gitlab.example.com/acme/backend/-/issues/8",
            confidential: true,
            events: &[],
        };
        let story = story(
            &stored,
            Vec::new(),
            &StoredStory::default(),
            &People::default(),
        );
        assert_eq!(story.title, "");
        let text = render(&story, at(0));
        assert!(!text.contains("Token leak"), "{text}");
        assert!(text.starts_with("acme/backend#8: (confidential)"), "{text}");
        let json = serde_json::to_string(&story).unwrap();
        assert!(!json.contains("Token leak"), "{json}");
    }
}
