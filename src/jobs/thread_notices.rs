//! Notices labelwarden sends on its own about the threads it started,
//! beside the policies' steps; each goes through the outbox, one per clock
//! cycle and channel that something was sent to, recorded in the ledger
//! under a step of its own so that it is said once:
//! - `redact:CHANNEL`: the issue was made confidential after labelwarden
//!   wrote about it. The outbox hands the notifier the notices sent there
//!   before, to edit into the redacted form (see
//!   [`crate::notify::Notifier::redact`]); channels marked `private` and
//!   incoming webhooks (which cannot edit) are left alone. Notices still
//!   waiting in the outbox are made confidential where they wait (the
//!   store does that), so nothing is posted unredacted after the change.
//! - `gone:CHANNEL`: reconcile was told (404) that the issue of a live
//!   clock was deleted or is no longer visible: the clock ends, and its
//!   thread says so.
//! - `moved:CHANNEL`: the issue was moved to another project; its clocks
//!   went with it (see [`super::identity`]) and its threads say where.
//!
//! Pure: the enforcer calls these with what the store holds.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::engine::Firing;
use crate::issue::IssueRef;
use crate::notice::{IssueView, Notice, SlaFacts};
use crate::policy::{Destination, Fallback, PolicyName, PolicySet, SlackStep, StepId};
use crate::store::{ClockState, Fired};

/// The step a redaction is recorded under, per channel.
pub fn redact_step(channel: &str) -> StepId {
    StepId(format!("redact:{channel}"))
}

/// The step a notice's fallback is queued and recorded under: the
/// refused step's, then `>` and the route (a channel, or `gitlab_comment`).
/// Policy step ids cannot hold `>`, so the two never meet.
pub fn fallback_step(step: &StepId, route: &str) -> StepId {
    StepId(format!("{step}>{route}"))
}

/// Whether `step` is a fallback's (see [`fallback_step`]).
pub fn is_fallback(step: &StepId) -> bool {
    step.0.contains('>')
}

/// The policy channel a fallback step posted to; none for a step that is
/// not a fallback, or one that went to a GitLab comment.
pub fn fallback_channel(step: &StepId) -> Option<&str> {
    let (_, route) = step.0.rsplit_once('>')?;
    (route != Fallback::GITLAB_COMMENT).then_some(route)
}

/// Statuses of a clock still going.
const LIVE: &[&str] = &["running", "paused", "breached"];

/// The redactions due when the issue of `view` became confidential, given
/// what its `ledger` says was sent.
pub fn redactions(
    policies: &PolicySet,
    ledger: &[(PolicyName, Firing)],
    view: IssueView<'_>,
    now: DateTime<Utc>,
) -> Vec<Fired> {
    let threads = threads(policies, ledger, |_, _, channel| {
        policies.channels.get(channel).is_some_and(|channel| {
            !channel.private && matches!(channel.destination, Destination::SlackChannel(_))
        })
    });
    say(threads, ledger, view, now, "redact", "made confidential")
}

/// The issue of `view` is gone (deleted, or hidden from labelwarden's
/// token): every clock still going ends, and each channel its current
/// cycle wrote to is told. `statuses` are the stored ones, by policy.
pub fn gone(
    policies: &PolicySet,
    ledger: &[(PolicyName, Firing)],
    statuses: &[(PolicyName, String)],
    view: IssueView<'_>,
    now: DateTime<Utc>,
) -> (Vec<ClockState>, Vec<Fired>) {
    let live: Vec<&PolicyName> = statuses
        .iter()
        .filter(|(_, status)| LIVE.contains(&status.as_str()))
        .map(|(policy, _)| policy)
        .collect();
    let clocks = live
        .iter()
        .map(|policy| ClockState {
            policy: (*policy).clone(),
            status: "gone",
            next_wake: None,
        })
        .collect();
    let threads = current_threads(policies, ledger, &live);
    let fired = say(
        threads,
        ledger,
        view,
        now,
        "gone",
        "deleted or no longer visible",
    );
    (clocks, fired)
}

/// The issue of `view` was moved here from `from`: each channel the
/// current cycle of a live clock wrote to is told where it went (the
/// thread goes on here).
pub fn moved(
    policies: &PolicySet,
    ledger: &[(PolicyName, Firing)],
    clocks: &[ClockState],
    view: IssueView<'_>,
    now: DateTime<Utc>,
    from: &IssueRef,
) -> Vec<Fired> {
    let live: Vec<&PolicyName> = clocks
        .iter()
        .filter(|clock| LIVE.contains(&clock.status))
        .map(|clock| &clock.policy)
        .collect();
    let status = format!("moved to {} (from {from})", view.facts.reference);
    let threads = current_threads(policies, ledger, &live);
    say(threads, ledger, view, now, "moved", &status)
}

/// The issue of `view` was closed as a duplicate: each channel the current
/// cycle of `policy` wrote to is told, in `status`'s words, that its clock
/// ended here.
pub fn closed_as_duplicate(
    policies: &PolicySet,
    ledger: &[(PolicyName, Firing)],
    policy: &PolicyName,
    view: IssueView<'_>,
    now: DateTime<Utc>,
    status: &str,
) -> Vec<Fired> {
    let threads = current_threads(policies, ledger, &[policy]);
    say(threads, ledger, view, now, "duplicate", status)
}

/// The threads of the current cycle (the latest the ledger names) of each
/// of `policies_of`.
fn current_threads<'a>(
    policies: &'a PolicySet,
    ledger: &'a [(PolicyName, Firing)],
    policies_of: &[&PolicyName],
) -> BTreeSet<(&'a PolicyName, u32, &'a str)> {
    let current = |policy: &PolicyName| {
        ledger
            .iter()
            .filter(|(name, _)| name == policy)
            .map(|(_, firing)| firing.cycle)
            .max()
    };
    threads(policies, ledger, |policy, cycle, _| {
        policies_of.contains(&policy) && current(policy) == Some(cycle)
    })
}

/// The (policy, cycle, channel) each Slack step in the ledger went to,
/// fallbacks included, kept where `keep` says so.
fn threads<'a>(
    policies: &'a PolicySet,
    ledger: &'a [(PolicyName, Firing)],
    keep: impl Fn(&PolicyName, u32, &str) -> bool,
) -> BTreeSet<(&'a PolicyName, u32, &'a str)> {
    let mut threads = BTreeSet::new();
    for (name, firing) in ledger {
        let Some(policy) = policies.get(name) else {
            continue;
        };
        let channel = match fallback_channel(&firing.step) {
            Some(channel) => channel,
            None => {
                let Some(slack) = policy
                    .steps
                    .iter()
                    .find(|step| step.id == firing.step)
                    .and_then(|step| step.slack.as_ref())
                else {
                    continue;
                };
                slack.channel.as_str()
            }
        };
        if keep(name, firing.cycle, channel) {
            threads.insert((name, firing.cycle, channel));
        }
    }
    threads
}

/// A notice of `kind` for each of `threads`, saying `status`.
fn say(
    threads: BTreeSet<(&PolicyName, u32, &str)>,
    ledger: &[(PolicyName, Firing)],
    view: IssueView<'_>,
    now: DateTime<Utc>,
    kind: &str,
    status: &str,
) -> Vec<Fired> {
    threads
        .into_iter()
        .map(|thread| notice(ledger, view, now, thread, kind, status))
        .collect()
}

/// A notice of `kind` for one cycle's thread in a channel, recorded under
/// `KIND:CHANNEL`, numbered after the ones the ledger already has.
fn notice(
    ledger: &[(PolicyName, Firing)],
    view: IssueView<'_>,
    now: DateTime<Utc>,
    (policy, cycle, channel): (&PolicyName, u32, &str),
    kind: &str,
    status: &str,
) -> Fired {
    let step = StepId(format!("{kind}:{channel}"));
    let earlier = ledger
        .iter()
        .filter(|(name, firing)| name == policy && firing.cycle == cycle && firing.step == step)
        .count() as u32;
    Fired {
        policy: policy.clone(),
        notice: Notice {
            issue: view.facts.reference.clone(),
            title: view.title.to_owned(),
            url: view.url.to_owned(),
            confidential: view.facts.confidential || kind == "redact",
            labels: view.facts.labels.clone(),
            assignees: view.facts.assignees.clone(),
            policy: policy.clone(),
            firing: Firing {
                step,
                cycle,
                occurrence: earlier + 1,
            },
            step_kind: kind.to_owned(),
            due_at: now,
            decided_at: now,
            late_by_ms: None,
            late_because: None,
            undelivered: None,
            status: status.to_owned(),
            deadline: None,
            sla: SlaFacts::default(),
            slack: Some(SlackStep {
                channel: channel.to_owned(),
                mentions: Vec::new(),
                broadcast: false,
                // Only a redaction edits instead of posting.
                post: kind != "redact",
                react: None,
                text: None,
            }),
            gitlab: None,
            due_date: None,
            comment: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{issue, policy_set, t};

    #[test]
    fn each_cycle_and_channel_that_was_written_to_is_redacted_once_per_change() {
        let set = policy_set(concat!(
            "channels:\n",
            "  alerts: { slack_channel: \"C0ALERTS01\" }\n",
            "  secret: { slack_channel: \"C0SECRET01\", private: true }\n",
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
            "    escalation:\n",
            "      - on: start\n        slack: { channel: alerts }\n",
            "      - on: breach\n        slack: { channel: secret }\n",
            "      - on: resolved\n        gitlab: { comment: true }\n",
        ));
        let made = issue(&["priority::highest"]).build();
        let view = IssueView {
            facts: made.facts(),
            title: "Checkout broken",
            url: "https://gitlab.example.com/acme/app/-/issues/42",
        };
        let critical = PolicyName("critical".into());
        let fired = |step: &str, cycle| {
            (
                critical.clone(),
                Firing {
                    step: StepId(step.into()),
                    cycle,
                    occurrence: 0,
                },
            )
        };
        // Cycle 1 posted to alerts and the private channel, and commented;
        // cycle 2 posted its start to alerts.
        let ledger = vec![
            fired("start", 1),
            fired("breach", 1),
            fired("resolved", 1),
            fired("start", 2),
        ];
        let due = redactions(&set, &ledger, view, t(90));
        let keys: Vec<(String, u32, u32)> = due
            .iter()
            .map(|f| {
                (
                    f.notice.firing.step.0.clone(),
                    f.notice.firing.cycle,
                    f.notice.firing.occurrence,
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("redact:alerts".into(), 1, 1),
                ("redact:alerts".into(), 2, 1)
            ],
            "not the private channel, not GitLab"
        );
        assert!(due.iter().all(|f| f.notice.confidential));

        // Made public and confidential again: a second redaction.
        let mut again = ledger.clone();
        again.push((critical.clone(), due[0].notice.firing.clone()));
        let due = redactions(&set, &again, view, t(120));
        assert_eq!(due[0].notice.firing.occurrence, 2);
        assert_eq!(due[1].notice.firing.occurrence, 1);
    }

    #[test]
    fn a_fallback_channel_a_notice_went_to_is_redacted_too() {
        let set = policy_set(concat!(
            "channels:\n",
            "  alerts: { slack_channel: \"C0ALERTS01\", fallback: backup }\n",
            "  backup: { slack_channel: \"C0BACKUP01\", fallback: gitlab_comment }\n",
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
            "    escalation:\n",
            "      - on: start\n        slack: { channel: alerts }\n",
        ));
        let made = issue(&["priority::highest"]).build();
        let view = IssueView {
            facts: made.facts(),
            title: "Checkout broken",
            url: "https://gitlab.example.com/acme/app/-/issues/42",
        };
        let start = StepId("start".into());
        let critical = PolicyName("critical".into());
        let fired = |step: StepId| {
            (
                critical.clone(),
                Firing {
                    step,
                    cycle: 1,
                    occurrence: 0,
                },
            )
        };
        // #alerts refused the start; #backup took it, then refused the
        // warning's, which went to a comment.
        let to_backup = fallback_step(&start, "backup");
        let to_comment = fallback_step(&to_backup, Fallback::GITLAB_COMMENT);
        assert_eq!(fallback_channel(&to_backup), Some("backup"));
        assert_eq!(fallback_channel(&to_comment), None);
        assert!(is_fallback(&to_comment) && !is_fallback(&start));
        let ledger = vec![fired(start), fired(to_backup), fired(to_comment)];
        let channels: Vec<String> = redactions(&set, &ledger, view, t(90))
            .iter()
            .map(|f| f.notice.firing.step.0.clone())
            .collect();
        assert_eq!(channels, ["redact:alerts", "redact:backup"]);
    }
}
