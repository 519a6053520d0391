//! The background work of `serve`, two tasks around one store:
//!
//! - [`enforcer`]: applies stored webhook deliveries and wakes up for
//!   deadlines (one timer for all issues: the earliest wake-up any clock
//!   stored), evaluates every policy on each issue concerned, and commits
//!   clocks, ledger and outbox together. One task does both, so within a
//!   process no two evaluations of one issue race.
//! - [`outbox`]: sends the notices the enforcer recorded, in order per
//!   issue and policy, retrying until each is sent or known to be hopeless.
//! - [`reconcile`] (with a GitLab token): reads the GitLab API every so
//!   often and hands the enforcer what lost webhooks did not tell it.
//! - [`slack_events`] (with a Slack signing secret): acts on the reactions
//!   and replies Slack sent on alert threads.
//!
//! For example, a `priority::highest` label arrives by webhook: the enforcer
//! records the `start` notice and a wake-up 18 hours later; the outbox sends
//! the notice; 18 hours later the enforcer wakes, the engine says the 6-hour
//! warning is due, and the outbox sends it. A restart in between loses
//! nothing: every step is in the store.

pub mod adoption;
mod claims;
pub mod comments;
pub mod enforcer;
pub mod escalation;
mod fallback;
pub mod grouping;
pub mod identity;
pub mod mutes;
pub mod outbox;
pub mod raise;
pub mod reconcile;
pub mod retention;
pub mod retry;
pub mod slack_events;
pub mod slack_to_gitlab;
pub mod thread_notices;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::clock;
use crate::engine::{self, Ledger};
use crate::gitlab::webhook::IssueDelivery;
use crate::issue::ProjectPath;
use crate::notice::{IssueView, Lateness, Notice};
use crate::policy::{PolicyName, PolicySet};
use crate::store::{ClockState, Downtime, Fired, IssueCommit, IssueRecord, Loaded, Store};

/// What the jobs share.
pub struct Context<S> {
    pub store: S,
    pub policies: Arc<PolicySet>,
    /// Rung when a delivery was stored.
    pub deliveries_waiting: Notify,
    /// Rung when a notice was added to the outbox.
    pub notices_waiting: Notify,
    /// Rung when a Slack event was stored.
    pub slack_events_waiting: Notify,
    /// How the outbox spaces retries of failed sends.
    pub retry: retry::RetryPolicy,
    /// How long the enforcer lease and outbox claims last: how soon a
    /// replica takes over from one that died. Sending one batch must take
    /// less, or another replica may send it again.
    pub lease: chrono::TimeDelta,
    /// Queue a channel's failed notices again by itself once the channel
    /// takes a notice again (`serve --resend-when-healthy`); otherwise the
    /// log and `/readyz` say the command that does.
    pub resend_when_healthy: bool,
    /// What the store lets go of, and when (`serve --retain`).
    pub retention: crate::store::retention::Retention,
    /// The path each project id was last followed to by this process, so
    /// that the store is asked only when a delivery names another one.
    project_paths: Mutex<HashMap<u64, ProjectPath>>,
    /// When labelwarden was not running, as the store recorded it; read
    /// when this process becomes the enforcer.
    downtimes: Mutex<Vec<Downtime>>,
    /// The open storm windows as of the last committed pass: only the
    /// enforcer writes them, so it reads them from the store once when it
    /// becomes the enforcer (or after a failed pass), not every pass.
    windows: Mutex<Option<adoption::Windows>>,
}

impl<S: Store> Context<S> {
    pub fn new(store: S, policies: Arc<PolicySet>) -> Self {
        Context {
            store,
            policies,
            deliveries_waiting: Notify::new(),
            notices_waiting: Notify::new(),
            slack_events_waiting: Notify::new(),
            retry: retry::RetryPolicy::default(),
            lease: chrono::TimeDelta::seconds(15),
            resend_when_healthy: false,
            retention: crate::store::retention::Retention::default(),
            project_paths: Mutex::default(),
            downtimes: Mutex::default(),
            windows: Mutex::default(),
        }
    }

    /// The downtimes this process knows of.
    pub fn downtimes(&self) -> Vec<Downtime> {
        self.downtimes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The open storm windows this process knows of, if it knows.
    fn take_windows(&self) -> Option<adoption::Windows> {
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Keeps the windows as a committed pass left them; `None` forgets
    /// them, so the next pass reads them from the store.
    fn keep_windows(&self, windows: Option<adoption::Windows>) {
        *self.windows.lock().unwrap_or_else(|e| e.into_inner()) = windows;
    }

    fn set_downtimes(&self, downtimes: Vec<Downtime>) {
        *self.downtimes.lock().unwrap_or_else(|e| e.into_inner()) = downtimes;
    }

    /// The path this process last followed project `project_id` to.
    pub fn project_path(&self, project_id: u64) -> Option<ProjectPath> {
        let paths = self.project_paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.get(&project_id).cloned()
    }

    fn remember_project_path(&self, project_id: u64, path: ProjectPath) {
        let mut paths = self.project_paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.insert(project_id, path);
    }

    /// The same context with another enforcer lease length.
    pub fn with_lease(mut self, lease: chrono::TimeDelta) -> Self {
        self.lease = lease;
        self
    }

    /// The same context with another retry policy (tests use short ones).
    pub fn with_retry(mut self, retry: retry::RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// A clock cycle that reached its stop condition in this evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub policy: PolicyName,
    /// Within the target.
    pub met: bool,
    /// Counted time from the clock's start to the stop condition.
    pub took: chrono::TimeDelta,
}

/// Evaluates every policy on one issue, after applying what its new
/// deliveries say (in the order they were received) to what the store had,
/// and returns what to commit, with the cycles it resolved; `None` for an
/// issue the store does not know and nothing says. Pure.
pub fn prepare(
    policies: &PolicySet,
    mut loaded: Loaded,
    deliveries: Vec<IssueDelivery>,
    downtimes: &[Downtime],
    windows: &mut adoption::Windows,
    now: DateTime<Utc>,
) -> Option<(IssueCommit, Vec<Resolution>)> {
    let was_confidential = loaded.record.as_ref().map(|r| r.facts.confidential);
    // Gone, unless a later delivery says the issue is there after all.
    let gone = deliveries.last().is_some_and(|d| d.gone);
    // When what the deliveries tell reached labelwarden.
    let received_at = deliveries.iter().filter_map(|d| d.received_at).min();
    let just_opened = loaded.record.is_none()
        && deliveries.iter().any(|d| {
            d.action.as_deref() == Some("open")
                && d.ids.issue_id.is_some()
                && now < d.facts.created_at + identity::MOVE_GRACE
        });
    let mut record = loaded.record.take();
    let mut new_events = Vec::new();
    for delivery in deliveries.into_iter().filter(|d| !d.gone) {
        let delivery = identity::moved_is_not_closed(delivery);
        new_events.extend(delivery.events.iter().cloned());
        record = Some(merge(record, delivery));
    }
    let record = record?;
    let view = IssueView {
        facts: &record.facts,
        title: &record.title,
        url: &record.url,
    };
    // Only worth waiting for if it would announce something.
    let just_opened = just_opened && {
        let issue = record.issue(&loaded.carried);
        policies
            .policies
            .iter()
            .any(|policy| clock::read(&issue, policy, now).cycle > 0)
    };
    let mut digests = Vec::new();
    let mut due_date_fired = None;
    let evaluated = !just_opened && !gone;
    let (clocks, mut fired, resolved) = if just_opened {
        // GitLab moves an issue by creating the new one, then closing the
        // old one naming it: its hook may come second. A new issue is
        // looked at a moment after its creation, so that a move is known
        // before anything is announced twice.
        let wake = record.facts.created_at + identity::MOVE_GRACE;
        let clocks = policies
            .policies
            .iter()
            .map(|policy| ClockState {
                policy: policy.name.clone(),
                status: "not_matching",
                next_wake: Some(wake),
            })
            .collect();
        (clocks, Vec::new(), Vec::new())
    } else if gone {
        let (clocks, fired) =
            thread_notices::gone(policies, &loaded.ledger, &loaded.statuses, view, now);
        (clocks, fired, Vec::new())
    } else {
        let Evaluated {
            clocks,
            mut fired,
            stopped: outcomes,
            due_date,
        } = evaluate(&record, policies, &loaded, as_of(&record, now));
        due_date_fired = due_date;
        // Clocks learned of only well after they started are adopted.
        let learned_at = received_at.unwrap_or(now);
        digests = adoption::adopt(
            policies, &loaded, &mut fired, learned_at, downtimes, windows, now,
        );

        // Resolved now: stopped in this evaluation, live before it.
        let resolved = outcomes
            .into_iter()
            .filter(|resolution| loaded.was_live(&resolution.policy))
            .collect();
        (clocks, fired, resolved)
    };
    // Made confidential after something was posted about it: redact.
    let became_confidential = !gone && was_confidential == Some(false) && record.facts.confidential;
    if became_confidential {
        fired.extend(thread_notices::redactions(
            policies,
            &loaded.ledger,
            view,
            now,
        ));
    }
    // Moved here from another project: its threads say where it went.
    if let Some(from) = &loaded.moved_from {
        fired.extend(thread_notices::moved(
            policies,
            &loaded.ledger,
            &clocks,
            view,
            now,
            from,
        ));
    }
    // Closed as a duplicate: the clocks it ended say where they went on.
    let mut carried = Vec::new();
    if !gone && !just_opened && record.ids.is_duplicate() {
        let issue = record.issue(&loaded.carried);
        let (notices, carries) =
            identity::duplicate_close(policies, &issue, &loaded, &clocks, view, now);
        if !notices.is_empty() {
            // Said by the duplicate notice instead, with the reason.
            let ended: Vec<&PolicyName> = notices.iter().map(|f| &f.policy).collect();
            fired.retain(|f| !(f.notice.step_kind == "withdrawn" && ended.contains(&&f.policy)));
        }
        fired.extend(notices);
        carried = carries;
    }
    // Why a step is late: labelwarden was down when it was due (its own
    // record says); or what made it due reached labelwarden only after
    // that (a lost webhook reconcile repaired, an issue it never saw); or
    // it knew in time and was behind with its work.
    for fired in &mut fired {
        let notice = &mut fired.notice;
        if notice.late_by_ms.is_none()
            || matches!(
                notice.late_because,
                Some(Lateness::Adopted | Lateness::QuietHours)
            )
        {
            continue;
        }
        let tolerance = crate::notice::late_tolerance(notice.sla.target());
        let learned_late = received_at.is_some_and(|at| at > notice.due_at + tolerance);
        notice.late_because = Some(if downtimes.iter().any(|d| d.covers(notice.due_at)) {
            Lateness::Down
        } else if learned_late {
            Lateness::Learned
        } else {
            Lateness::Behind
        });
    }
    // Many new alerts at once in a channel share a group; later steps of
    // listed cycles are said in their digest's thread. Last, so that what
    // a digest says carries why it is late.
    let mut digest_notices = Vec::new();
    if evaluated {
        let mut listed = loaded.digests.clone();
        listed.extend(
            digests
                .iter()
                .filter(|entry| entry.notice.is_some())
                .map(|entry| (entry.key.clone(), entry.cycle)),
        );
        let grouped = grouping::group(policies, &loaded, &listed, &mut fired, windows, now);
        digests.extend(grouped.admitted);
        digest_notices = grouped.notices;
    }
    // The due date goes last: nothing above groups or delays it.
    fired.extend(due_date_fired);
    // A clock that does not match and waits for nothing is not tracked:
    // its row, if it had one, goes; if it had none, nothing is written.
    let mut clocks = clocks;
    clocks.retain(|clock| {
        clock.status != "not_matching"
            || clock.next_wake.is_some()
            || loaded
                .statuses
                .iter()
                .any(|(policy, _)| *policy == clock.policy)
    });
    let commit = IssueCommit {
        became_confidential,
        ids: record.ids,
        carried,
        digests,
        digest_notices,
        facts: record.facts,
        title: record.title,
        url: record.url,
        updated_at: record.updated_at,
        new_events,
        clocks,
        fired,
        now,
    };
    Some((commit, resolved))
}

/// How far ahead of this host's clock GitLab's timestamps may be trusted.
pub const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// The instant to evaluate an issue at: now, or the issue's latest event if
/// that is later (GitLab's clock ahead of ours, or another replica's): a
/// label added "in the future" would otherwise not match yet, and nothing
/// would look at the issue again. Trusted up to [`MAX_CLOCK_SKEW`].
fn as_of(record: &IssueRecord, now: DateTime<Utc>) -> DateTime<Utc> {
    let latest = record.events.iter().map(|e| e.at).max().unwrap_or(now);
    if latest > now + chrono::TimeDelta::seconds(1) {
        tracing::warn!(
            issue = %record.facts.reference,
            ahead_ms = (latest - now).num_milliseconds(),
            "an event is later than this host's clock: are the clocks in sync?"
        );
    }
    now.max(latest.min(now + MAX_CLOCK_SKEW))
}

/// The stored issue updated by a delivery: its events join the timeline;
/// its facts replace the stored ones unless those are newer.
fn merge(stored: Option<IssueRecord>, delivery: IssueDelivery) -> IssueRecord {
    match stored {
        None => IssueRecord {
            facts: delivery.facts,
            title: delivery.title,
            url: delivery.url,
            updated_at: delivery.updated_at,
            events: delivery.events,
            ids: delivery.ids,
        },
        Some(mut record) => {
            record.ids = record.ids.updated(delivery.ids);
            if delivery.updated_at >= record.updated_at {
                // A moved issue is new in its project: its story (and the
                // clock's) began with the one it was moved from.
                let created_at = record.facts.created_at.min(delivery.facts.created_at);
                let known = std::mem::replace(&mut record.facts, delivery.facts).details;
                record.facts.created_at = created_at;
                record.facts.details.keep_known(&known);
                record.title = delivery.title;
                record.url = delivery.url;
                record.updated_at = delivery.updated_at;
            } else {
                // An older delivery may still name what the newer did not
                // (the author, on an `open` that arrived late).
                record.facts.details.keep_known(&delivery.facts.details);
            }
            record.events.extend(delivery.events);
            record
        }
    }
}

/// What evaluating every policy on one issue decided.
struct Evaluated {
    clocks: Vec<ClockState>,
    fired: Vec<Fired>,
    /// The clocks that stand stopped (met or missed), with how long they took.
    stopped: Vec<Resolution>,
    /// The write the issue's GitLab due date needs, if any.
    due_date: Option<Fired>,
}

/// Every policy's clock and due steps for one issue, and what its due
/// date needs. Pure.
fn evaluate(
    record: &IssueRecord,
    policies: &PolicySet,
    loaded: &Loaded,
    now: DateTime<Utc>,
) -> Evaluated {
    let (ledger, acknowledged) = (&loaded.ledger, &loaded.acknowledged);
    let issue = record.issue(&loaded.carried);
    let view = IssueView {
        facts: issue.facts(),
        title: &record.title,
        url: &record.url,
    };
    let mut clocks = Vec::with_capacity(policies.policies.len());
    let mut fired = Vec::new();
    let mut stopped = Vec::new();
    let future_event = record
        .events
        .iter()
        .map(|e| e.at)
        .filter(|at| *at > now)
        .min();
    let mut readings = Vec::with_capacity(policies.policies.len());
    for policy in &policies.policies {
        let reading = clock::read(&issue, policy, now);
        let status = reading.status();
        let policy_ledger = Ledger::new(
            ledger
                .iter()
                .filter(|(name, _)| name == &policy.name)
                .map(|(_, firing)| firing.clone())
                .collect(),
        )
        .with_acknowledged(
            acknowledged
                .iter()
                .filter(|(name, _)| name == &policy.name)
                .map(|(_, cycle)| *cycle)
                .collect(),
        );
        let decision = engine::decide(policy, &reading, &policy_ledger);
        let span =
            tracing::info_span!("evaluate", issue = %issue.reference(), policy = %policy.name);
        let _entered = span.enter();
        for action in &decision.actions {
            tracing::info!(step = %action.firing.step, cycle = action.firing.cycle, due_at = %action.due_at, "step due");
            fired.push(Fired {
                policy: policy.name.clone(),
                notice: Notice::new(view, &policy.name, action, &reading, now),
            });
        }
        // An event still ahead of `now` (beyond the trusted skew) is looked
        // at again when it is due.
        let next_wake = match (decision.next_wake, future_event) {
            (Some(wake), Some(event)) => Some(wake.min(event)),
            (wake, event) => wake.or(event),
        };
        if let Some((met, took)) = status.resolution(reading.target) {
            stopped.push(Resolution {
                policy: policy.name.clone(),
                met,
                took,
            });
        }
        clocks.push(ClockState {
            policy: policy.name.clone(),
            status: status.kind(),
            next_wake,
        });
        readings.push((policy, reading));
    }
    let due_date = due_date_write(&issue, view, &readings, ledger, &fired, now);
    Evaluated {
        clocks,
        fired,
        stopped,
        due_date,
    }
}

/// The notice that keeps the issue's GitLab due date at its deadline, if
/// the date needs writing (see [`engine::due_date`]).
fn due_date_write(
    issue: &crate::issue::Issue,
    view: IssueView<'_>,
    readings: &[(&crate::policy::Policy, clock::ClockReading)],
    ledger: &[(PolicyName, engine::Firing)],
    fired: &[Fired],
    now: DateTime<Utc>,
) -> Option<Fired> {
    // The common case, on every evaluation: no policy keeps due dates.
    if !readings
        .iter()
        .any(|(policy, _)| engine::due_date::kept_by(policy))
    {
        return None;
    }
    let clocks: Vec<_> = readings
        .iter()
        .map(|(policy, reading)| (*policy, reading))
        .collect();
    let mut known = ledger.to_vec();
    known.extend(
        fired
            .iter()
            .map(|f| (f.policy.clone(), f.notice.firing.clone())),
    );
    let facts = issue.facts();
    let open = facts.state == crate::issue::IssueState::Opened;
    let planned = engine::due_date::plan(&clocks, &known, facts.due_date, open)?;
    tracing::info!(issue = %facts.reference, step = %planned.firing.step, "due date to write");
    Some(Fired {
        policy: planned.policy.clone(),
        notice: Notice::due_date_write(view, planned, now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{issue, policy_set, t};

    #[test]
    fn an_event_slightly_ahead_of_this_clock_still_starts_the_clock() {
        let set = policy_set(concat!(
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
            "    escalation:\n      - on: start\n        gitlab: { comment: true }\n",
        ));
        let labelled = issue(&[]).added(10, "priority::highest").build();
        let record = IssueRecord {
            facts: labelled.facts().clone(),
            title: String::new(),
            url: String::new(),
            updated_at: t(10),
            events: labelled.timeline().events().to_vec(),
            ids: crate::issue::GitLabIds::default(),
        };
        // This host's clock is 200 ms behind the label's timestamp.
        let now = t(10) - chrono::TimeDelta::milliseconds(200);
        let Evaluated { clocks, fired, .. } =
            evaluate(&record, &set, &Loaded::default(), as_of(&record, now));
        assert_eq!(clocks[0].status, "running");
        assert_eq!(fired.len(), 1, "the start fires at once");
        // Far ahead is not trusted.
        let way_behind = t(10) - chrono::TimeDelta::hours(2);
        assert_eq!(as_of(&record, way_behind), way_behind + MAX_CLOCK_SKEW);
        let Evaluated { clocks, fired, .. } = evaluate(
            &record,
            &set,
            &Loaded::default(),
            as_of(&record, way_behind),
        );
        assert_eq!(clocks[0].status, "not_matching");
        assert_eq!(
            clocks[0].next_wake,
            Some(t(10)),
            "looked at again when the label is due"
        );
        assert!(fired.is_empty());
    }
}
