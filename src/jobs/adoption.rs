//! Adoption: what the enforcer does with a clock it learns of only well
//! after it started (switched on over a backlog, a new policy matching old
//! issues, a webhook lost for long).
//!
//! Such a clock's steps that came due before labelwarden learned of it
//! are *adopted*: recorded in the ledger as done, so that none is sent one
//! by one, and said once, as the policy's `adopt:` asks:
//! - `digest` (default): the first `group_after` clocks a channel adopts
//!   within its `group_window` keep an alert each (their first missed step
//!   with a Slack message, worded as what happened); the rest are listed
//!   in one digest per channel and policy (see [`crate::notice::digest`]);
//! - `individual`: every adopted clock keeps its one alert;
//! - `silent`: recorded only.
//!
//! Adopted steps keep their label changes (a breach label says the truth
//! on the issue) and the start's comment (the note with the deadline, the
//! marker `audit --watchdog` looks for), and drop the later steps'
//! comments, which would notify every participant of every old issue
//! several times over. Steps that fall due after
//! labelwarden learned of the clock fire as usual. A clock whose start
//! labelwarden missed because it was not running is not adopted: that is
//! a late run, and its messages say so.
//!
//! Pure: the enforcer hands in the open windows it read from the store and
//! commits the admissions with the pass.

use chrono::{DateTime, TimeDelta, Utc};

use crate::notice::Lateness;
use crate::notice::digest::{DigestKey, DigestKind};
use crate::policy::{AdoptMode, Audience, Channel, PolicyName, PolicySet};
use crate::store::{DigestEntry, Downtime, Fired, Loaded, OpenDigest};

/// Issues one digest lists at most (ten list messages): a storm beyond
/// that goes on in another digest, so that a send never reads an
/// unbounded list.
pub const MOST_PER_DIGEST: u32 = 1_000;

/// Each channel's open storm windows, counted as the pass admits issues.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    open: Vec<OpenDigest>,
}

/// Where an adopted clock is said.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// In an alert of its own: the window is still quiet.
    Alone { key: DigestKey, seq: u32 },
    /// In the window's digest.
    Listed { key: DigestKey, seq: u32 },
}

impl Windows {
    pub fn new(open: Vec<OpenDigest>) -> Self {
        Windows { open }
    }

    /// The same, without the windows closed by `now`.
    pub fn without_closed(mut self, now: DateTime<Utc>) -> Self {
        self.open.retain(|window| window.closes_at > now);
        self
    }

    /// Admits one clock of `policy` into `channel`'s window of `kind` at
    /// `now`, opening a window if none is open.
    pub fn admit(
        &mut self,
        kind: DigestKind,
        channel: &Channel,
        policy: &PolicyName,
        now: DateTime<Utc>,
    ) -> (Admission, DateTime<Utc>) {
        let same = |window: &&OpenDigest| {
            window.key.kind == kind
                && window.key.channel == channel.name
                && &window.key.policy == policy
                && window.closes_at > now
        };
        let index = match self
            .open
            .iter()
            .position(|window| same(&window) && window.members < MOST_PER_DIGEST)
        {
            Some(index) => index,
            None => {
                // Stored to the millisecond: keep the key as it reads back.
                let mut opened_at =
                    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
                // A full digest of this window: the storm goes on, and the
                // next digest lists every issue that joins (the window's
                // first few had their alerts); its key is a new one.
                let full = self.open.iter().filter(same).map(|w| w.key.opened_at).max();
                if let Some(full) = full {
                    opened_at = opened_at.max(full + TimeDelta::milliseconds(1));
                }
                self.open.push(OpenDigest {
                    key: DigestKey {
                        kind,
                        channel: channel.name.clone(),
                        policy: policy.clone(),
                        opened_at,
                    },
                    closes_at: opened_at + channel.group_window,
                    members: if full.is_some() {
                        channel.group_after
                    } else {
                        0
                    },
                });
                self.open.len() - 1
            }
        };
        let window = &mut self.open[index];
        window.members += 1;
        let (key, seq) = (window.key.clone(), window.members);
        let admission = if channel.group_after == 0 || seq <= channel.group_after {
            Admission::Alone { key, seq }
        } else {
            Admission::Listed { key, seq }
        };
        (admission, window.closes_at)
    }
}

/// Adopts the clocks of one issue that labelwarden learns of only now:
/// rewrites their `fired` steps that came due before `learned_at` (no
/// Slack part, no comment), and returns the issue's admissions into storm
/// windows. Clocks it knew of (a stored live status, or something already
/// fired in the cycle) and clocks that started within the policy's grace
/// or while labelwarden was down are left as they are.
pub fn adopt(
    policies: &PolicySet,
    loaded: &Loaded,
    fired: &mut [Fired],
    learned_at: DateTime<Utc>,
    downtimes: &[Downtime],
    windows: &mut Windows,
    now: DateTime<Utc>,
) -> Vec<DigestEntry> {
    let mut admitted = Vec::new();
    for policy in &policies.policies {
        let mut adopted: Vec<usize> = fired
            .iter()
            .enumerate()
            .filter(|(_, f)| f.policy == policy.name && f.notice.due_at < learned_at)
            .map(|(index, _)| index)
            .collect();
        let Some(&first) = adopted.first() else {
            continue;
        };
        let notice = &fired[first].notice;
        let cycle = notice.firing.cycle;
        let Some(started_at) = notice.sla.started_at else {
            continue;
        };
        let known = loaded.was_live(&policy.name)
            || loaded
                .ledger
                .iter()
                .any(|(name, firing)| name == &policy.name && firing.cycle == cycle);
        let missed_while_down = downtimes.iter().any(|d| d.covers(started_at));
        if known || missed_while_down || started_at + policy.adoption.grace >= learned_at {
            continue;
        }
        adopted.sort_by_key(|&index| fired[index].notice.due_at);
        // The step that speaks for the clock, if it gets an alert: its
        // first adopted step with a Slack message (normally `start`).
        let speaker = adopted
            .iter()
            .copied()
            .find(|&index| fired[index].notice.slack.is_some());
        let channel = speaker
            .and_then(|index| fired[index].notice.slack.as_ref())
            .and_then(|slack| policies.channels.get(&slack.channel));
        let keep = match (policy.adoption.mode, channel) {
            (AdoptMode::Silent, _) | (_, None) => None,
            (AdoptMode::Individual, Some(_)) => speaker,
            // Users are not told about old issues all at once.
            (AdoptMode::Digest, Some(channel)) if channel.audience == Audience::Users => None,
            (AdoptMode::Digest, Some(channel)) => {
                let issue = notice.issue.clone();
                let (admission, closes_at) =
                    windows.admit(DigestKind::Adopted, channel, &policy.name, now);
                match admission {
                    Admission::Alone { key, seq } => {
                        admitted.push(DigestEntry {
                            key,
                            closes_at,
                            seq,
                            issue,
                            cycle,
                            notice: None,
                        });
                        speaker
                    }
                    Admission::Listed { key, seq } => {
                        // The latest adopted step's notice: the clock's
                        // facts as of now, and the speaker's channel.
                        let last = adopted[adopted.len() - 1];
                        let mut listed = fired[last].notice.clone();
                        listed.step_kind = "adopted".to_owned();
                        listed.slack = speaker.and_then(|index| fired[index].notice.slack.clone());
                        listed.gitlab = None;
                        listed.late_because = Some(Lateness::Adopted);
                        admitted.push(DigestEntry {
                            key,
                            closes_at,
                            seq,
                            issue,
                            cycle,
                            notice: Some(listed),
                        });
                        None
                    }
                }
            }
        };
        let silent = policy.adoption.mode == AdoptMode::Silent;
        for index in adopted {
            let notice = &mut fired[index].notice;
            // Its alert, if it keeps one, says what happened, not "sent late".
            notice.late_because = Some(Lateness::Adopted);
            if Some(index) != keep {
                notice.slack = None;
            }
            // A clock's comment is said once, at its start; a rule's
            // comment is what the rule does.
            let start = matches!(notice.step_kind.as_str(), "start" | "rule");
            notice.gitlab = notice
                .gitlab
                .take()
                .filter(|_| !silent)
                .and_then(|mut gitlab| {
                    gitlab.comment &= start;
                    (gitlab.comment
                        || !gitlab.add_labels.is_empty()
                        || !gitlab.remove_labels.is_empty())
                    .then_some(gitlab)
                });
        }
    }
    admitted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use crate::engine::{self, Ledger};
    use crate::issue::Issue;
    use crate::notice::{IssueView, Notice};
    use crate::test_support::{issue, policy_set, slack_steps, t};

    const POLICY: &str = concat!(
        "channels:\n  alerts: { slack_channel: \"#alerts\", group_after: 2 }\n",
        "people:\n  contacts: [\"<@U0123ABCD>\"]\n",
        "policies:\n",
        "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
        "    ADOPT\n",
        "    escalation:\n",
        "      - on: start\n        slack: { channel: alerts, mention: [contacts] }\n        gitlab: { comment: true }\n",
        "      - on: { before_deadline: 6h }\n        slack: { channel: alerts }\n",
        "      - on: breach\n        slack: { channel: alerts }\n        gitlab: { add_labels: [\"missed::SLA\"], comment: true }\n",
    );

    fn set(adopt: &str) -> PolicySet {
        policy_set(&POLICY.replace("ADOPT", adopt))
    }

    #[test]
    fn a_storm_beyond_a_full_digest_goes_on_in_another_with_no_alerts_of_its_own() {
        let set = set("");
        let alerts = &set.channels["alerts"];
        let policy = &set.policies[0].name;
        let mut windows = Windows::default();
        let admitted: Vec<Admission> = (0..MOST_PER_DIGEST + 3)
            .map(|_| windows.admit(DigestKind::Adopted, alerts, policy, t(0)).0)
            .collect();
        let (first, second) = match (&admitted[0], admitted.last().unwrap()) {
            (Admission::Alone { key: first, .. }, Admission::Listed { key: second, seq }) => {
                // The new digest's places follow the full one's first two.
                assert_eq!(*seq, 2 + 3, "places go on after group_after");
                (first.clone(), second.clone())
            }
            other => panic!("{other:?}"),
        };
        assert_ne!(first, second, "another digest");
        assert!(second.opened_at > first.opened_at, "a key of its own");
        let in_first = admitted
            .iter()
            .filter(|a| matches!(a, Admission::Alone { key, .. } | Admission::Listed { key, .. } if *key == first))
            .count();
        assert_eq!(in_first as u32, MOST_PER_DIGEST);
        let alone = admitted
            .iter()
            .filter(|a| matches!(a, Admission::Alone { .. }))
            .count();
        assert_eq!(alone, 2, "only the window's first two keep an alert");
    }

    /// What the engine fires for `labelled` (minutes) at `now` (minutes),
    /// as the enforcer would before adoption.
    fn fired(set: &PolicySet, labelled: i64, now: i64) -> Vec<Fired> {
        let labelled = issue(&[]).added(labelled, "priority::highest").build();
        fired_for(set, &labelled, now)
    }

    fn fired_for(set: &PolicySet, issue: &Issue, now: i64) -> Vec<Fired> {
        let policy = &set.policies[0];
        let reading = clock::read(issue, policy, t(now));
        let decision = engine::decide(policy, &reading, &Ledger::default());
        let view = IssueView {
            facts: issue.facts(),
            title: "Checkout fails",
            url: "https://gitlab.example.com/acme/app/-/issues/1",
        };
        decision
            .actions
            .iter()
            .map(|action| Fired {
                policy: policy.name.clone(),
                notice: Notice::new(view, &policy.name, action, &reading, t(now)),
            })
            .collect()
    }

    /// Adopts what fired for a clock labelwarden learned of at `now` (minutes).
    fn adopt_now(
        set: &PolicySet,
        fired: &mut [Fired],
        windows: &mut Windows,
        now: i64,
    ) -> Vec<DigestEntry> {
        adopt(set, &Loaded::default(), fired, t(now), &[], windows, t(now))
    }

    #[test]
    fn a_backlog_keeps_its_first_alerts_then_is_listed_and_nothing_is_sent_late() {
        let set = set("adopt: digest");
        let mut windows = Windows::default();
        let now = 3 * 24 * 60;
        let mut said = Vec::new();
        for _ in 0..4 {
            // Labelled two days ago: start, warning and breach all missed.
            let mut fired = fired(&set, 0, now);
            assert_eq!(
                slack_steps(&fired),
                ["start", "breach"],
                "the engine's late run"
            );
            let admitted = adopt_now(&set, &mut fired, &mut windows, now);
            assert_eq!(fired.len(), 2, "every missed step is still recorded");
            assert!(
                fired
                    .iter()
                    .all(|f| f.notice.late_because == Some(Lateness::Adopted))
            );
            let breach = &fired[1].notice;
            assert_eq!(
                breach
                    .gitlab
                    .as_ref()
                    .map(|g| (g.add_labels.clone(), g.comment)),
                Some((vec!["missed::SLA".to_owned()], false)),
                "the breach label stays, its comment goes"
            );
            assert_eq!(
                fired[0].notice.gitlab.as_ref().map(|g| g.comment),
                Some(true),
                "the start's note with the deadline stays: the watchdog looks for it"
            );
            said.push((slack_steps(&fired), admitted));
        }
        // group_after: 2, so the first two keep their start alert (no
        // comment), the next two are listed in one digest.
        assert_eq!(said[0].0, ["start"]);
        assert_eq!(said[1].0, ["start"]);
        assert!(said[2].0.is_empty() && said[3].0.is_empty());
        let seqs: Vec<(u32, bool)> = said
            .iter()
            .flat_map(|(_, admitted)| admitted.iter().map(|a| (a.seq, a.notice.is_some())))
            .collect();
        assert_eq!(seqs, [(1, false), (2, false), (3, true), (4, true)]);
        let keys: Vec<&DigestKey> = said
            .iter()
            .flat_map(|(_, a)| a.iter().map(|e| &e.key))
            .collect();
        assert!(keys.windows(2).all(|pair| pair[0] == pair[1]), "one window");
        let listed = said[2].1[0]
            .notice
            .as_ref()
            .map(|n| (n.step_kind.as_str(), n.sla.kind.as_str()));
        assert_eq!(listed, Some(("adopted", "breached")));
    }

    #[test]
    fn a_new_window_opens_when_the_last_one_closed() {
        let set = set("adopt: digest");
        let channel = &set.channels["alerts"];
        let policy = &set.policies[0].name;
        let mut windows = Windows::default();
        let (first, closes) = windows.admit(DigestKind::Adopted, channel, policy, t(0));
        assert_eq!(closes, t(1), "the default window is a minute");
        let (later, _) = windows.admit(DigestKind::Adopted, channel, policy, t(1));
        let key = |a: &Admission| match a {
            Admission::Alone { key, seq } | Admission::Listed { key, seq } => (key.opened_at, *seq),
        };
        assert_eq!(key(&first), (t(0), 1));
        assert_eq!(key(&later), (t(1), 1), "counting starts again");
    }

    #[test]
    fn a_clock_learned_of_within_its_grace_or_known_before_is_not_adopted() {
        let set = set("adopt: digest");
        let mut windows = Windows::default();
        // Labelled 10 minutes before labelwarden heard: within 15m.
        let mut fired_soon = fired(&set, 0, 10);
        let admitted = adopt(
            &set,
            &Loaded::default(),
            &mut fired_soon,
            t(10),
            &[],
            &mut windows,
            t(10),
        );
        assert!(admitted.is_empty());
        assert_eq!(slack_steps(&fired_soon), ["start"]);
        assert_eq!(
            fired_soon[0].notice.gitlab.as_ref().map(|g| g.comment),
            Some(true)
        );
        assert_eq!(fired_soon[0].notice.late_because, Some(Lateness::Learned));

        // Known running (its start was out), now late for a breach.
        let known = Loaded {
            statuses: vec![(set.policies[0].name.clone(), "running".to_owned())],
            ..Loaded::default()
        };
        let mut late_breach = fired(&set, 0, 2 * 24 * 60);
        adopt(
            &set,
            &known,
            &mut late_breach,
            t(2 * 24 * 60),
            &[],
            &mut windows,
            t(2 * 24 * 60),
        );
        assert_eq!(
            slack_steps(&late_breach),
            ["start", "breach"],
            "left as the engine said"
        );
        assert!(
            late_breach
                .iter()
                .all(|f| f.notice.late_because != Some(Lateness::Adopted))
        );

        // Started while labelwarden was down: a late run, not an adoption.
        let down = [Downtime {
            from: t(-5),
            to: t(2 * 24 * 60),
        }];
        let mut missed = fired(&set, 0, 2 * 24 * 60);
        let admitted = adopt(
            &set,
            &Loaded::default(),
            &mut missed,
            t(2 * 24 * 60),
            &down,
            &mut windows,
            t(2 * 24 * 60),
        );
        assert!(admitted.is_empty());
        assert_eq!(slack_steps(&missed), ["start", "breach"]);
    }

    #[test]
    fn steps_due_after_labelwarden_learned_of_the_clock_fire_as_usual() {
        let set = set("adopt: digest");
        let mut windows = Windows::default();
        // Learned of at 60 minutes (the delivery's arrival), evaluated at
        // the warning's time (18h): the start is adopted, the warning is not.
        let warning_at = 18 * 60;
        let mut fired = fired(&set, 0, warning_at);
        assert_eq!(slack_steps(&fired), ["start", "before_deadline"]);
        adopt(
            &set,
            &Loaded::default(),
            &mut fired,
            t(60),
            &[],
            &mut windows,
            t(warning_at),
        );
        let adopted: Vec<bool> = fired
            .iter()
            .map(|f| f.notice.late_because == Some(Lateness::Adopted))
            .collect();
        assert_eq!(adopted, [true, false]);
    }

    #[test]
    fn individual_keeps_one_alert_each_and_silent_keeps_none() {
        let now = 3 * 24 * 60;
        for (adopt_mode, expected) in [
            ("adopt: individual", vec!["start"]),
            ("adopt: silent", vec![]),
        ] {
            let set = set(adopt_mode);
            let mut windows = Windows::default();
            for _ in 0..4 {
                let mut fired = fired(&set, 0, now);
                let admitted = adopt_now(&set, &mut fired, &mut windows, now);
                assert!(admitted.is_empty(), "{adopt_mode}: no digest");
                assert_eq!(slack_steps(&fired), expected, "{adopt_mode}");
                let labels = fired[1].notice.gitlab.as_ref().map(|g| g.add_labels.len());
                let expected_labels = if adopt_mode.ends_with("silent") {
                    None
                } else {
                    Some(1)
                };
                assert_eq!(labels, expected_labels, "{adopt_mode}: the breach label");
            }
        }
    }
}
