//! Grouping: what the enforcer does when many new alerts fall due in one
//! channel at once (a bulk relabel, a new policy, a busy triage session).
//!
//! A notice is a *new alert* in a channel when it would start a thread
//! there: nothing was announced for its clock cycle in that channel
//! before. Each channel takes `group_after` new alerts per `group_window`
//! as it always did (one thread each); the rest of the window's new
//! alerts become members of one *group alert* (a digest of kind
//! [`DigestKind::Alerts`]): their own Slack messages are not sent, the
//! group's parent lists them. Every later step of a member's cycle in
//! that channel (warning, breach, reminders, resolution) joins the group
//! as a notice and is said in the group's thread, together with the same
//! kind of step of other members falling due at the same time. The same
//! holds for the later steps of clocks an adoption digest lists.
//!
//! GitLab parts (labels, comments) are untouched: they go out per issue
//! as always. Pure: the enforcer hands in the open windows and commits the
//! admissions with the pass.

use chrono::{DateTime, Utc};

use super::adoption::{Admission, Windows};
use crate::notice::Notice;
use crate::notice::digest::{DigestKey, DigestKind};
use crate::policy::{Audience, Channel, Policy, PolicyName, PolicySet};
use crate::store::{DigestEntry, Fired, Loaded};

/// The steps the engine fires; notices about the thread itself (redact,
/// moved, gone, duplicate) are not grouped.
const ENGINE_STEPS: &[&str] = &[
    "start",
    "before_deadline",
    "after_start",
    "breach",
    "every",
    "resolved",
    "withdrawn",
];

/// What grouping decided for one issue: admissions into windows, and the
/// notices said in a digest's thread instead of on their own.
#[derive(Debug, Default)]
pub struct Grouped {
    pub admitted: Vec<DigestEntry>,
    pub notices: Vec<(DigestKey, Notice)>,
}

/// Groups one issue's `fired` notices: those of cycles a digest lists go
/// to the digest; new alerts beyond their channel's `group_after` join
/// the window's group alert. `listed` are the digests that list this
/// issue's cycles already (stored, or admitted earlier in this evaluation).
pub fn group(
    policies: &PolicySet,
    loaded: &Loaded,
    listed: &[(DigestKey, u32)],
    fired: &mut [Fired],
    windows: &mut Windows,
    now: DateTime<Utc>,
) -> Grouped {
    let mut grouped = Grouped::default();
    let mut memberships: Vec<(DigestKey, u32)> = listed.to_vec();
    // (policy, cycle, channel) announced in this evaluation.
    let mut announced_now: Vec<(PolicyName, u32, String)> = Vec::new();
    for fired in fired.iter_mut() {
        let notice = &mut fired.notice;
        let Some(step) = &notice.slack else {
            continue;
        };
        if !ENGINE_STEPS.contains(&notice.step_kind.as_str()) {
            continue;
        }
        let Some(channel) = policies.channels.get(&step.channel) else {
            continue;
        };
        let cycle = notice.firing.cycle;
        let member_of = memberships.iter().find(|(key, member_cycle)| {
            key.kind.carries_later_steps()
                && key.channel == channel.name
                && key.policy == fired.policy
                && *member_cycle == cycle
        });
        if let Some((key, _)) = member_of {
            let mut said = notice.clone();
            said.gitlab = None;
            grouped.notices.push((key.clone(), said));
            notice.slack = None;
            continue;
        }
        let groupable = channel.group_after > 0 && channel.audience == Audience::Team;
        if notice.step_kind == "every" && groupable {
            // Reminders falling due together: the first few bump their
            // thread, the rest are one list.
            let entry = admit(windows, DigestKind::Reminders, channel, notice, now);
            grouped.admitted.push(entry);
            continue;
        }
        let this = (fired.policy.clone(), cycle, channel.name.clone());
        let new_alert = step.post
            && !announced_now.contains(&this)
            && !announced_before(
                policies.policies.iter().find(|p| p.name == fired.policy),
                loaded,
                &this,
            );
        announced_now.push(this);
        if !new_alert || !groupable {
            continue;
        }
        let entry = admit(windows, DigestKind::Alerts, channel, notice, now);
        if entry.notice.is_some() {
            memberships.push((entry.key.clone(), cycle));
        }
        grouped.admitted.push(entry);
    }
    grouped
}

/// Admits `notice`'s clock into its channel's window of `kind`: alone, it
/// keeps its Slack part; listed, the digest says it instead (its GitLab
/// part still goes out with the notice).
fn admit(
    windows: &mut Windows,
    kind: DigestKind,
    channel: &Channel,
    notice: &mut Notice,
    now: DateTime<Utc>,
) -> DigestEntry {
    let (admission, closes_at) = windows.admit(kind, channel, &notice.policy, now);
    let (key, seq, listed) = match admission {
        Admission::Alone { key, seq } => (key, seq, None),
        Admission::Listed { key, seq } => {
            let mut listed = notice.clone();
            listed.gitlab = None;
            notice.slack = None;
            (key, seq, Some(listed))
        }
    };
    DigestEntry {
        key,
        closes_at,
        seq,
        issue: notice.issue.clone(),
        cycle: notice.firing.cycle,
        notice: listed,
    }
}

/// Something was said for this cycle in this channel before: a step in
/// the ledger whose Slack part goes there.
fn announced_before(
    policy: Option<&Policy>,
    loaded: &Loaded,
    (name, cycle, channel): &(PolicyName, u32, String),
) -> bool {
    let Some(policy) = policy else {
        return false;
    };
    loaded.ledger.iter().any(|(policy_name, firing)| {
        policy_name == name
            && firing.cycle == *cycle
            && policy.steps.iter().any(|step| {
                step.id == firing.step && step.slack.as_ref().is_some_and(|s| &s.channel == channel)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use crate::engine::{self, Ledger};
    use crate::issue::{IssueIid, IssueRef, ProjectPath};
    use crate::notice::IssueView;
    use crate::test_support::{issue, policy_set, slack_steps, t};

    fn set() -> PolicySet {
        policy_set(concat!(
            "channels:\n  alerts: { slack_channel: \"#alerts\", group_after: 2 }\n",
            "  managers: { slack_channel: \"#managers\" }\n",
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
            "    escalation:\n",
            "      - on: start\n        slack: { channel: alerts }\n        gitlab: { comment: true }\n",
            "      - on: { before_deadline: 6h }\n        slack: { channel: alerts }\n",
            "      - on: breach\n        slack: { channel: managers }\n",
        ))
    }

    /// What the engine fires for issue `iid`, labelled at minute
    /// `labelled`, evaluated at `now`, given what `ledger` says was fired.
    fn fired(set: &PolicySet, iid: u64, labelled: i64, now: i64, ledger: &Ledger) -> Vec<Fired> {
        let labelled = issue(&[]).added(labelled, "priority::highest").build();
        let mut facts = labelled.facts().clone();
        facts.reference = IssueRef {
            project: ProjectPath("acme/app".into()),
            iid: IssueIid(iid),
        };
        let policy = &set.policies[0];
        let reading = clock::read(&labelled, policy, t(now));
        let view = IssueView {
            facts: &facts,
            title: "Bug",
            url: "https://gitlab.example.com/acme/app/-/issues/1",
        };
        engine::decide(policy, &reading, ledger)
            .actions
            .iter()
            .map(|action| Fired {
                policy: policy.name.clone(),
                notice: Notice::new(view, &policy.name, action, &reading, t(now)),
            })
            .collect()
    }

    #[test]
    fn the_first_new_alerts_of_a_window_keep_their_thread_the_rest_share_one() {
        let set = set();
        let mut windows = Windows::default();
        let mut outcomes = Vec::new();
        for iid in 1..=4 {
            let mut fired = fired(&set, iid, 0, 0, &Ledger::default());
            let grouped = group(
                &set,
                &Loaded::default(),
                &[],
                &mut fired,
                &mut windows,
                t(0),
            );
            outcomes.push((slack_steps(&fired), grouped));
        }
        assert_eq!(outcomes[0].0, ["start"]);
        assert_eq!(outcomes[1].0, ["start"]);
        assert!(
            outcomes[2].0.is_empty() && outcomes[3].0.is_empty(),
            "grouped"
        );
        let listed: Vec<(u32, bool)> = outcomes
            .iter()
            .flat_map(|(_, g)| g.admitted.iter().map(|a| (a.seq, a.notice.is_some())))
            .collect();
        assert_eq!(listed, [(1, false), (2, false), (3, true), (4, true)]);
        assert!(outcomes.iter().all(|(_, g)| g.notices.is_empty()));
    }

    #[test]
    fn a_member_s_later_steps_in_the_group_s_channel_are_said_in_the_group() {
        let set = set();
        let key = DigestKey {
            kind: DigestKind::Alerts,
            channel: "alerts".into(),
            policy: set.policies[0].name.clone(),
            opened_at: t(0),
        };
        let start = crate::engine::Firing {
            step: crate::policy::StepId("start".into()),
            cycle: 1,
            occurrence: 0,
        };
        let loaded = Loaded {
            ledger: vec![(set.policies[0].name.clone(), start.clone())],
            ..Loaded::default()
        };
        let ledger = Ledger::new(vec![start]);
        // At 18h the warning (alerts) is due; at 24h the breach (managers).
        let mut windows = Windows::default();
        let mut warning = fired(&set, 7, 0, 18 * 60, &ledger);
        let grouped = group(
            &set,
            &loaded,
            &[(key.clone(), 1)],
            &mut warning,
            &mut windows,
            t(18 * 60),
        );
        assert!(slack_steps(&warning).is_empty());
        assert_eq!(grouped.notices.len(), 1);
        assert_eq!(grouped.notices[0].0, key);
        assert_eq!(grouped.notices[0].1.step_kind, "before_deadline");
        assert!(
            grouped.admitted.is_empty(),
            "not a new alert: the group announced it"
        );

        // Another channel is not the group's: a breach there is a new alert
        // of that channel, on its own while the channel is quiet.
        let mut breach = fired(&set, 7, 0, 24 * 60, &ledger);
        let breach_only: Vec<Fired> = breach
            .drain(..)
            .filter(|f| f.notice.step_kind == "breach")
            .collect();
        let mut breach_only = breach_only;
        let grouped = group(
            &set,
            &loaded,
            &[(key, 1)],
            &mut breach_only,
            &mut windows,
            t(24 * 60),
        );
        assert_eq!(slack_steps(&breach_only), ["breach"]);
        assert!(grouped.notices.is_empty());
        assert_eq!(grouped.admitted.len(), 1);
        assert_eq!(grouped.admitted[0].key.channel, "managers");
    }

    #[test]
    fn reminders_falling_due_together_bump_a_few_threads_and_list_the_rest() {
        let set = policy_set(concat!(
            "channels:\n  alerts: { slack_channel: \"#alerts\", group_after: 2 }\n",
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
            "    escalation:\n",
            "      - on: start\n        slack: { channel: alerts }\n",
            "      - on: breach\n        slack: { channel: alerts }\n",
            "      - on: { every: 4h, after: breach }\n        slack: { channel: alerts }\n",
        ));
        let firing = |step: &str| crate::engine::Firing {
            step: crate::policy::StepId(step.into()),
            cycle: 1,
            occurrence: 0,
        };
        let name = set.policies[0].name.clone();
        let loaded = Loaded {
            ledger: vec![
                (name.clone(), firing("start")),
                (name.clone(), firing("breach")),
            ],
            ..Loaded::default()
        };
        let ledger = Ledger::new(vec![firing("start"), firing("breach")]);
        let mut windows = Windows::default();
        let mut said = Vec::new();
        for iid in 1..=4 {
            // 4 hours past the deadline: the first reminder is due.
            let mut fired = fired(&set, iid, 0, 28 * 60, &ledger);
            assert_eq!(slack_steps(&fired), ["every"]);
            let grouped = group(&set, &loaded, &[], &mut fired, &mut windows, t(28 * 60));
            said.push((slack_steps(&fired), grouped.admitted));
        }
        assert_eq!(said[0].0, ["every"]);
        assert_eq!(said[1].0, ["every"]);
        assert!(said[2].0.is_empty() && said[3].0.is_empty());
        let listed: Vec<(DigestKind, bool)> = said
            .iter()
            .flat_map(|(_, admitted)| admitted.iter().map(|a| (a.key.kind, a.notice.is_some())))
            .collect();
        assert_eq!(
            listed,
            [
                (DigestKind::Reminders, false),
                (DigestKind::Reminders, false),
                (DigestKind::Reminders, true),
                (DigestKind::Reminders, true)
            ]
        );
        // A reminder digest lists; it does not carry the cycle's later steps.
        let reminders = said[2].1[0].key.clone();
        let mut reminded_again = fired(&set, 3, 0, 28 * 60, &ledger);
        let grouped = group(
            &set,
            &loaded,
            &[(reminders, 1)],
            &mut reminded_again,
            &mut Windows::default(),
            t(28 * 60),
        );
        assert!(grouped.notices.is_empty());
        assert_eq!(
            slack_steps(&reminded_again),
            ["every"],
            "a fresh window: its own thread"
        );
    }

    #[test]
    fn a_cycle_announced_before_is_no_new_alert() {
        let set = set();
        let start = crate::engine::Firing {
            step: crate::policy::StepId("start".into()),
            cycle: 1,
            occurrence: 0,
        };
        let loaded = Loaded {
            ledger: vec![(set.policies[0].name.clone(), start.clone())],
            ..Loaded::default()
        };
        let mut windows = Windows::default();
        for iid in 1..=5 {
            let mut warning = fired(&set, iid, 0, 18 * 60, &Ledger::new(vec![start.clone()]));
            let grouped = group(&set, &loaded, &[], &mut warning, &mut windows, t(18 * 60));
            assert_eq!(
                slack_steps(&warning),
                ["before_deadline"],
                "its own thread goes on"
            );
            assert!(grouped.admitted.is_empty() && grouped.notices.is_empty());
        }
    }
}
