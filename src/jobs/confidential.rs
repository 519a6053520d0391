//! An issue made confidential after labelwarden wrote about it: what it
//! posted in channels not marked `private` still shows the title and
//! labels. This decides, purely, which threads to redact: one `redact`
//! notice per clock cycle and channel that something was sent to, which
//! the outbox hands to the notifier with the notices sent there before
//! (see [`crate::notify::Notifier::redact`]). Notices still waiting in the
//! outbox are made confidential where they wait (the store does that), so
//! nothing is posted unredacted after the change.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::engine::Firing;
use crate::notify::{IssueView, Notice, SlaFacts};
use crate::policy::{Destination, PolicyName, PolicySet, SlackStep, StepId};
use crate::store::Fired;

/// The step a redaction is recorded under, per channel.
pub fn redact_step(channel: &str) -> StepId {
    StepId(format!("redact:{channel}"))
}

/// The redactions due when the issue of `view` became confidential, given
/// what its `ledger` says was sent.
pub fn redactions(
    policies: &PolicySet,
    ledger: &[(PolicyName, Firing)],
    view: IssueView<'_>,
    now: DateTime<Utc>,
) -> Vec<Fired> {
    let mut threads: BTreeSet<(&PolicyName, u32, &str)> = BTreeSet::new();
    for (name, firing) in ledger {
        let Some(policy) = policies.get(name) else {
            continue;
        };
        let Some(slack) = policy
            .steps
            .iter()
            .find(|step| step.id == firing.step)
            .and_then(|step| step.slack.as_ref())
        else {
            continue;
        };
        let editable = policies
            .channels
            .get(&slack.channel)
            .is_some_and(|channel| {
                !channel.private && matches!(channel.destination, Destination::SlackChannel(_))
            });
        if editable {
            threads.insert((name, firing.cycle, slack.channel.as_str()));
        }
    }
    threads
        .into_iter()
        .map(|(policy, cycle, channel)| {
            let step = redact_step(channel);
            let earlier = ledger
                .iter()
                .filter(|(name, firing)| {
                    name == policy && firing.cycle == cycle && firing.step == step
                })
                .count() as u32;
            Fired {
                policy: policy.clone(),
                notice: Notice {
                    issue: view.facts.reference.clone(),
                    title: view.title.to_owned(),
                    url: view.url.to_owned(),
                    confidential: true,
                    labels: view.facts.labels.clone(),
                    assignees: view.facts.assignees.clone(),
                    policy: policy.clone(),
                    firing: Firing {
                        step,
                        cycle,
                        occurrence: earlier + 1,
                    },
                    step_kind: "redact".to_owned(),
                    due_at: now,
                    decided_at: now,
                    late_by_ms: None,
                    status: "made confidential".to_owned(),
                    deadline: None,
                    sla: SlaFacts::default(),
                    slack: Some(SlackStep {
                        channel: channel.to_owned(),
                        mentions: Vec::new(),
                        broadcast: false,
                        post: false,
                        react: None,
                        text: None,
                    }),
                    gitlab: None,
                },
            }
        })
        .collect()
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
}
