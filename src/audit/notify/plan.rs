//! What one `audit --notify` run will do, decided before anything is
//! sent (pure): every issue's due steps, and which of their Slack parts
//! a group message says instead, the way `serve` groups them
//! ([`crate::jobs::grouping`]).
//!
//! The run is one storm window per channel and policy: the first
//! `group_after` new alerts keep a thread each, the rest share one group
//! alert whose thread carries their later steps, notices of one kind
//! together. A run also finds the groups earlier runs (or `serve`) formed,
//! from the threads the issues' ledgers share, and says the later steps of
//! their members falling due together in one message in that thread.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::StepReport;
use crate::clock::{self, SlaStatus};
use crate::engine::{self, Action, Firing, Ledger};
use crate::gitlab::actions::IssueLedger;
use crate::gitlab::history::FetchedIssue;
use crate::issue::IssueRef;
use crate::jobs::adoption::Windows;
use crate::jobs::grouping;
use crate::notice::digest::{Digest, DigestItem, DigestKey, DigestKind, DigestNotice};
use crate::notice::{IssueView, Notice, Thread};
use crate::policy::{Policy, PolicyName, PolicySet};
use crate::store::{Fired, Loaded};

/// One issue's due steps, in the order they go out.
#[derive(Debug)]
pub(super) struct IssuePlan<'a> {
    pub fetched: &'a FetchedIssue,
    pub ledger: IssueLedger,
    pub policies: Vec<PolicySteps<'a>>,
    /// Steps a maintenance window holds, with the window's name: not
    /// carried out nor recorded, so the first run after it goes out.
    pub held: Vec<(StepReport, String)>,
}

/// One policy's due steps on an issue: they go in order, and stop at the
/// first failure.
#[derive(Debug)]
pub(super) struct PolicySteps<'a> {
    pub policy: &'a Policy,
    pub steps: Vec<PlannedStep>,
    /// How many are carried out (or failed).
    pub done: usize,
    pub halted: bool,
}

/// One step: its notice as the engine decided it, and the group message
/// that says its Slack part, if one does.
#[derive(Debug)]
pub(super) struct PlannedStep {
    pub notice: Notice,
    pub report: StepReport,
    pub grouped: Option<DigestKey>,
}

/// A group message this run sends: a new group (alerts or reminders), or
/// an earlier group's thread that this run's later steps go to.
#[derive(Debug)]
pub(super) struct RunDigest {
    pub digest: Digest,
    /// The thread of a group formed earlier; `None` for a new one.
    pub thread: Option<Thread>,
}

/// The due steps of `fetched` under every policy, as of `now`.
pub(super) fn plan_issue<'a>(
    fetched: &'a FetchedIssue,
    ledger: IssueLedger,
    policies: &'a PolicySet,
    now: DateTime<Utc>,
) -> IssuePlan<'a> {
    let issue = &fetched.issue;
    let reference = issue.reference();
    let mut planned = Vec::new();
    let mut held = Vec::new();
    // Readings are kept only for the due-date plan, if a policy needs one.
    let keeps_due_dates = policies.policies.iter().any(engine::due_date::kept_by);
    let mut readings = Vec::new();
    let view = IssueView {
        facts: issue.facts(),
        title: &fetched.title,
        url: &fetched.url,
    };
    for policy in &policies.policies {
        let reading = clock::read(issue, policy, now);
        if keeps_due_dates {
            readings.push((policy, reading.clone()));
        }
        let fired: Vec<_> = ledger
            .markers
            .iter()
            .filter(|m| m.policy == policy.name)
            .map(|m| m.firing.clone())
            .collect();
        if reading.status() == SlaStatus::NotMatching && fired.is_empty() {
            continue;
        }
        // Acknowledged in Slack, as `serve` wrote it on the issue.
        let acknowledged = ledger
            .acknowledgements(&policy.name)
            .into_iter()
            .map(|a| a.cycle)
            .collect();
        let decision = engine::decide(
            policy,
            &reading,
            &Ledger::new(fired).with_acknowledged(acknowledged),
        );
        let mut steps: Vec<PlannedStep> = decision
            .actions
            .iter()
            .map(|action| PlannedStep {
                notice: Notice::new(view, &policy.name, action, &reading, now),
                report: StepReport {
                    issue: reference.to_string(),
                    policy: policy.name.0.clone(),
                    step: action.firing.step.0.clone(),
                    actions: describe(action),
                    error: None,
                },
                grouped: None,
            })
            .collect();
        // Steps go in order: the first one a window holds holds the rest.
        if let Some((first, window)) = steps
            .iter()
            .enumerate()
            .find_map(|(index, step)| held_by(policies, &step.notice, now).map(|w| (index, w)))
        {
            held.extend(
                steps
                    .drain(first..)
                    .map(|step| (step.report, window.name.clone())),
            );
        }
        if !steps.is_empty() {
            planned.push(PolicySteps {
                policy,
                steps,
                done: 0,
                halted: false,
            });
        }
    }
    let due_date = keeps_due_dates
        .then(|| due_date_step(&readings, &ledger, &planned, view, now))
        .flatten();
    if let Some(step) = due_date {
        let lane = policies.get(&step.notice.policy);
        match planned
            .iter_mut()
            .find(|p| p.policy.name == step.notice.policy)
        {
            Some(steps) => steps.steps.push(step),
            None => planned.extend(lane.map(|policy| PolicySteps {
                policy,
                steps: vec![step],
                done: 0,
                halted: false,
            })),
        }
    }
    IssuePlan {
        fetched,
        ledger,
        policies: planned,
        held,
    }
}

/// The write the issue's GitLab due date needs (see
/// [`engine::due_date`]), given what its ledger and this run's steps say.
fn due_date_step(
    readings: &[(&Policy, clock::ClockReading)],
    ledger: &IssueLedger,
    planned: &[PolicySteps<'_>],
    view: IssueView<'_>,
    now: DateTime<Utc>,
) -> Option<PlannedStep> {
    let clocks: Vec<_> = readings
        .iter()
        .map(|(policy, reading)| (*policy, reading))
        .collect();
    let mut fired: Vec<(PolicyName, Firing)> = ledger
        .markers
        .iter()
        .map(|m| (m.policy.clone(), m.firing.clone()))
        .collect();
    fired.extend(planned.iter().flat_map(|p| {
        p.steps
            .iter()
            .map(|s| (p.policy.name.clone(), s.notice.firing.clone()))
    }));
    let open = view.facts.state == crate::issue::IssueState::Opened;
    let due = engine::due_date::plan(&clocks, &fired, view.facts.due_date, open)?;
    let notice = Notice::due_date_write(view, due, now);
    Some(PlannedStep {
        report: StepReport {
            issue: notice.issue.to_string(),
            policy: notice.policy.0.clone(),
            step: notice.firing.step.0.clone(),
            actions: notice.status.clone(),
            error: None,
        },
        notice,
        grouped: None,
    })
}

/// The maintenance window of the policy files holding `notice` at `now`,
/// if any. A confidentiality redaction is never held.
fn held_by<'a>(
    policies: &'a PolicySet,
    notice: &Notice,
    now: DateTime<Utc>,
) -> Option<&'a crate::policy::maintenance::Maintenance> {
    if notice.step_kind == "redact" {
        return None;
    }
    let channel = notice.slack.as_ref().map(|s| s.channel.as_str());
    policies
        .maintenance
        .iter()
        .find(|window| window.holds(&notice.policy.0, channel, &notice.issue.project.0, now))
}

/// Groups the run's steps, issue by issue in the order given: marks each
/// step whose Slack part a group message says, and returns those
/// messages, new groups first, in the order they formed.
pub(super) fn group_run(
    plans: &mut [IssuePlan<'_>],
    policies: &PolicySet,
    now: DateTime<Utc>,
) -> Vec<RunDigest> {
    let earlier = earlier_groups(plans);
    let mut windows = Windows::default();
    let mut digests: Vec<RunDigest> = Vec::new();
    for plan in plans.iter_mut() {
        let reference = plan.fetched.issue.reference();
        let loaded = Loaded {
            ledger: plan
                .ledger
                .markers
                .iter()
                .map(|m| (m.policy.clone(), m.firing.clone()))
                .collect(),
            ..Loaded::default()
        };
        let listed: Vec<(DigestKey, u32)> = earlier
            .iter()
            .flat_map(|(key, group)| {
                group
                    .members
                    .iter()
                    .filter(|(issue, _)| issue == reference)
                    .map(|(_, cycle)| (key.clone(), *cycle))
            })
            .collect();
        let mut fired: Vec<Fired> = plan
            .policies
            .iter()
            .flat_map(|p| {
                p.steps.iter().map(|step| Fired {
                    policy: p.policy.name.clone(),
                    notice: step.notice.clone(),
                })
            })
            .collect();
        let grouped = grouping::group(policies, &loaded, &listed, &mut fired, &mut windows, now);
        let mut said_in: HashMap<(PolicyName, Firing), DigestKey> = HashMap::new();
        for entry in grouped.admitted {
            let Some(notice) = entry.notice else {
                continue;
            };
            said_in.insert(
                (notice.policy.clone(), notice.firing.clone()),
                entry.key.clone(),
            );
            digest_of(&mut digests, &entry.key, None)
                .items
                .push(DigestItem {
                    seq: entry.seq,
                    notice,
                });
        }
        for (key, notice) in grouped.notices {
            said_in.insert((notice.policy.clone(), notice.firing.clone()), key.clone());
            let thread = earlier.get(&key).map(|group| group.thread.clone());
            digest_of(&mut digests, &key, thread)
                .notices
                .push(DigestNotice {
                    notice,
                    posted: false,
                    planned: None,
                });
        }
        for steps in &mut plan.policies {
            for step in &mut steps.steps {
                let id = (step.notice.policy.clone(), step.notice.firing.clone());
                step.grouped = said_in.get(&id).cloned();
            }
        }
    }
    // A lone later step in an earlier group's thread is a reply like any
    // other: only steps falling due together are said together.
    let lone: Vec<DigestKey> = digests
        .iter()
        .filter(|d| d.thread.is_some() && d.digest.notices.len() < 2)
        .map(|d| d.digest.key.clone())
        .collect();
    digests.retain(|d| !lone.contains(&d.digest.key));
    // New groups before the later steps of earlier ones, in the order
    // they formed.
    digests.sort_by_key(|d| (d.thread.is_some(), d.digest.key.opened_at));
    for step in plans
        .iter_mut()
        .flat_map(|p| p.policies.iter_mut())
        .flat_map(|p| p.steps.iter_mut())
    {
        if step.grouped.as_ref().is_some_and(|key| lone.contains(key)) {
            step.grouped = None;
        }
        if let Some(key) = &step.grouped
            && let Some(run) = digests.iter().find(|d| &d.digest.key == key)
        {
            let mut issues: Vec<&IssueRef> = (run.digest.items.iter().map(|i| &i.notice.issue))
                .chain(run.digest.notices.iter().map(|n| &n.notice.issue))
                .collect();
            issues.sort();
            issues.dedup();
            step.report.actions.push_str(&format!(
                " (said in a group message of {} issues)",
                issues.len()
            ));
        }
    }
    digests
}

/// The run's digest under `key`, made empty when first needed.
fn digest_of<'d>(
    digests: &'d mut Vec<RunDigest>,
    key: &DigestKey,
    thread: Option<Thread>,
) -> &'d mut Digest {
    let index = match digests.iter().position(|d| &d.digest.key == key) {
        Some(index) => index,
        None => {
            let mut digest = Digest {
                key: key.clone(),
                items: Vec::new(),
                progress: Default::default(),
                notices: Vec::new(),
            };
            if thread.is_some() {
                // An earlier group: its parent is out and is not this
                // run's to rewrite (the run does not know all its members).
                digest.progress.summarised = u32::MAX;
            }
            digests.push(RunDigest { digest, thread });
            digests.len() - 1
        }
    };
    &mut digests[index].digest
}

/// A thread several issues' clocks share: a group an earlier run or
/// `serve` formed.
#[derive(Debug)]
struct EarlierGroup {
    thread: Thread,
    members: Vec<(IssueRef, u32)>,
}

/// The groups earlier runs formed, by the digest key this run says their
/// members' later steps under: a thread the ledgers of two or more issues
/// name, for a policy's cycle in one channel.
fn earlier_groups(plans: &[IssuePlan<'_>]) -> HashMap<DigestKey, EarlierGroup> {
    let mut by_thread: BTreeMap<(String, String, PolicyName, String), EarlierGroup> =
        BTreeMap::new();
    for plan in plans {
        let reference = plan.fetched.issue.reference();
        for marker in &plan.ledger.markers {
            let (Some(channel), Some(thread)) = (&marker.channel, &marker.thread) else {
                continue;
            };
            let id = (
                thread.channel_id.clone(),
                thread.ts.clone(),
                marker.policy.clone(),
                channel.clone(),
            );
            let group = by_thread.entry(id).or_insert_with(|| EarlierGroup {
                thread: thread.clone(),
                members: Vec::new(),
            });
            let member = (reference.clone(), marker.firing.cycle);
            if !group.members.contains(&member) {
                group.members.push(member);
            }
        }
    }
    by_thread
        .into_iter()
        .filter(|(_, group)| {
            let mut issues: Vec<&IssueRef> = group.members.iter().map(|(i, _)| i).collect();
            issues.dedup();
            issues.len() > 1
        })
        .map(|((_, ts, policy, channel), group)| {
            let key = DigestKey {
                kind: DigestKind::Alerts,
                channel,
                policy,
                opened_at: opened_at(&ts),
            };
            (key, group)
        })
        .collect()
}

/// When a thread's parent was posted, from its Slack `ts` (seconds since
/// the epoch): tells apart the keys of groups in one channel.
fn opened_at(ts: &str) -> DateTime<Utc> {
    let (seconds, micros) = ts.split_once('.').unwrap_or((ts, "0"));
    let seconds: i64 = seconds.parse().unwrap_or(0);
    let micros: u32 = format!("{micros:0<6}")[..6].parse().unwrap_or(0);
    DateTime::from_timestamp(seconds, micros * 1_000).unwrap_or_default()
}

/// The actions of a step, in words.
fn describe(action: &Action) -> String {
    let mut parts = Vec::new();
    if let Some(slack) = &action.slack {
        let mut text = format!("slack {}", slack.channel);
        if slack.broadcast {
            text.push_str(" (broadcast)");
        }
        if let Some(react) = &slack.react {
            text.push_str(&format!(" :{react}:"));
        }
        parts.push(text);
    }
    if let Some(gitlab) = &action.gitlab {
        let mut labels: Vec<String> = gitlab.add_labels.iter().map(|l| format!("+{l}")).collect();
        labels.extend(gitlab.remove_labels.iter().map(|l| format!("-{l}")));
        if !labels.is_empty() {
            parts.push(format!("labels {}", labels.join(" ")));
        }
        if !gitlab.assign.is_empty() {
            let people: Vec<String> = gitlab.assign.iter().map(|u| format!("@{u}")).collect();
            parts.push(format!("assign {} if nobody is", people.join(" ")));
        }
        if gitlab.comment {
            parts.push(if gitlab.internal {
                "internal note".to_owned()
            } else {
                "comment".to_owned()
            });
        }
        if gitlab.set_due_date {
            parts.push("due date follows the deadline".to_owned());
        }
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fetched, issue, policy_set, t};

    const POLICY: &str = r#"
channels:
  alerts: { slack_channel: "C0ALERTS01" }
  status: { slack_channel: "C0STATUS01" }
policies:
  - name: critical
    match: { labels_any: ["priority::highest"] }
    clock: { target: 1h }
    escalation:
      - on: start
        slack: { channel: alerts }
      - on: breach
        slack: { channel: alerts }
        gitlab: { add_labels: ["missed::SLA"] }
"#;

    fn planned(windows: &str, now: DateTime<Utc>) -> (Vec<String>, Vec<(String, String)>) {
        let set = policy_set(&format!("{POLICY}{windows}"));
        let bug = fetched(issue(&[]).added(0, "priority::highest").build());
        let plan = plan_issue(&bug, IssueLedger::default(), &set, now);
        let due = plan
            .policies
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| s.report.step.clone()))
            .collect();
        let held = plan
            .held
            .into_iter()
            .map(|(report, window)| (report.step, window))
            .collect();
        (due, held)
    }

    #[test]
    fn a_maintenance_window_holds_the_steps_it_covers_for_the_run_after_it() {
        // 09:00 to 11:00 UTC on the tests' day; the breach is due at 10:00.
        let window = |what: &str| {
            format!(
                "maintenance:\n  - name: drill\n    reason: failover drill\n    {what}\n    \
                 once: {{ from: \"2026-11-02T09:00:00Z\", until: \"2026-11-02T11:00:00Z\" }}\n"
            )
        };
        let during = t(61);
        let after = t(121);
        assert_eq!(
            planned("", during),
            (vec!["start".to_owned(), "breach".to_owned()], vec![]),
            "no window: both due"
        );
        for what in ["policy: critical", "channel: alerts", "project: acme/app"] {
            let (due, held) = planned(&window(what), during);
            assert!(due.is_empty(), "{what}: {due:?}");
            assert_eq!(
                held,
                [
                    ("start".to_owned(), "drill".to_owned()),
                    ("breach".to_owned(), "drill".to_owned())
                ],
                "{what}"
            );
        }
        let (due, held) = planned(&window("channel: status"), during);
        assert_eq!((due.len(), held.len()), (2, 0), "another channel's window");
        let (due, held) = planned(&window("policy: critical"), after);
        assert_eq!(
            (due, held.len()),
            (vec!["start".to_owned(), "breach".to_owned()], 0),
            "the first run after the window sends them"
        );
    }
}
