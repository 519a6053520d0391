//! The `Store` contract, written once against the trait so that every
//! backend runs the same checks. SQLite runs here on a real file.

mod common;

use std::future::Future;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use labelwarden::engine::Firing;
use labelwarden::issue::{
    Event, IssueFacts, IssueIid, IssueRef, IssueState, ProjectPath, TimedEvent,
};
use labelwarden::notify::digest::{DigestKey, DigestKind, DigestProgress};
use labelwarden::notify::{Notice, SlaFacts, Thread};
use labelwarden::policy::{PolicyName, SlackStep, StepId};
use labelwarden::store::sql::SqlStore;
use labelwarden::store::{
    ClockState, Delivery, DigestEntry, Fired, Handled, IssueCommit, Loaded, OutboxKey,
    OutboxOutcome, Recorded, SendResult, Store,
};

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + TimeDelta::minutes(minute)
}

fn issue(iid: u64) -> IssueRef {
    IssueRef {
        project: ProjectPath("acme/backend".into()),
        iid: IssueIid(iid),
    }
}

fn facts(iid: u64, labels: &[&str]) -> IssueFacts {
    IssueFacts {
        reference: issue(iid),
        created_at: at(0),
        state: IssueState::Opened,
        closed_at: None,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        confidential: false,
        issue_type: "issue".into(),
        assignees: vec!["jdoe".into()],
    }
}

fn firing(step: &str, occurrence: u32) -> Firing {
    Firing {
        step: StepId(step.into()),
        cycle: 1,
        occurrence,
    }
}

fn notice(iid: u64, step: &str) -> Notice {
    Notice {
        issue: issue(iid),
        title: format!("Issue {iid}"),
        url: format!("https://gitlab.example.com/acme/backend/-/issues/{iid}"),
        confidential: false,
        labels: vec!["priority::highest".into()],
        assignees: vec!["jdoe".into()],
        policy: PolicyName("critical".into()),
        firing: firing(step, 0),
        step_kind: step.into(),
        due_at: at(1),
        decided_at: at(1),
        late_by_ms: None,
        late_because: None,
        undelivered: None,
        status: "running, 1d left".into(),
        deadline: Some(at(60 * 24)),
        sla: SlaFacts::default(),
        slack: Some(SlackStep {
            channel: "alerts".into(),
            mentions: vec![],
            broadcast: false,
            post: true,
            react: None,
            text: None,
        }),
        gitlab: None,
    }
}

fn commit(
    iid: u64,
    now: DateTime<Utc>,
    steps: &[&str],
    next_wake: Option<DateTime<Utc>>,
) -> IssueCommit {
    IssueCommit {
        facts: facts(iid, &["priority::highest"]),
        title: format!("Issue {iid}"),
        url: String::new(),
        updated_at: now,
        new_events: vec![TimedEvent {
            at: at(1),
            event: Event::LabelAdded("priority::highest".into()),
        }],
        clocks: vec![
            ClockState {
                policy: PolicyName("critical".into()),
                status: "running",
                next_wake,
            },
            ClockState {
                policy: PolicyName("outage".into()),
                status: "not_matching",
                next_wake: None,
            },
        ],
        fired: steps
            .iter()
            .map(|step| Fired {
                policy: PolicyName("critical".into()),
                notice: notice(iid, step),
            })
            .collect(),
        now,
        became_confidential: false,
        ids: Default::default(),
        carried: Vec::new(),
        digests: Vec::new(),
        digest_notices: Vec::new(),
    }
}

fn delivery(key: &str, minute: i64) -> Delivery {
    Delivery {
        seq: 0,
        key: key.into(),
        kind: "Issue Hook".into(),
        received_at: at(minute),
        payload: format!("{{\"key\":\"{key}\"}}"),
    }
}

/// The keys of the deliveries waiting to be applied, in the order handed out.
async fn pending_keys(store: &impl Store) -> Vec<String> {
    store
        .pending_deliveries(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect()
}

/// One issue as the store loads it for an evaluation.
async fn load(store: &impl Store, iid: u64) -> Loaded {
    store.load_issues(&[issue(iid)]).await.unwrap().remove(0)
}

/// Runs `check` against a fresh SQLite store in a temporary file.
async fn with_sqlite<F, Fut>(check: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("store.db").display()
    ))
    .await
    .unwrap();
    check(store).await;
}

/// Runs `check` on a fresh PostgreSQL database (created for it, dropped
/// after) when `LABELWARDEN_TEST_POSTGRES_URL` names a server; says it was
/// skipped otherwise. `.ci/run` sets it.
async fn with_postgres<F, Fut>(check: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let store = SqlStore::connect(&database.url).await.unwrap();
    check(store).await;
    database.drop().await;
}

async fn deliveries_are_kept_once_and_handed_out_in_order(store: impl Store) {
    assert_eq!(
        store.record_delivery(&delivery("b", 2)).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        store.record_delivery(&delivery("a", 1)).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        store.record_delivery(&delivery("a", 3)).await.unwrap(),
        Recorded::Duplicate
    );
    let pending = store.pending_deliveries(10).await.unwrap();
    let keys: Vec<&str> = pending.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, vec!["b", "a"], "in order of arrival");
    assert!(pending[0].seq < pending[1].seq);
    assert_eq!(store.stats(at(5)).await.unwrap().deliveries_pending, 2);

    // A pass handles a prefix: "b" applied; "a" stays pending.
    let first = Handled {
        key: "b".into(),
        seq: pending[0].seq,
        rejected: None,
    };
    store
        .commit(&[commit(1, at(5), &[], None)], &[first])
        .await
        .unwrap();
    assert_eq!(pending_keys(&store).await, vec!["a"]);

    // An unreadable one is set aside with its reason, and not handed out again.
    let second = Handled {
        key: "a".into(),
        seq: pending[1].seq,
        rejected: Some("unreadable".into()),
    };
    store.commit(&[], &[second]).await.unwrap();
    assert!(store.pending_deliveries(10).await.unwrap().is_empty());
    assert_eq!(store.stats(at(5)).await.unwrap().deliveries_pending, 0);
    assert_eq!(
        store.record_delivery(&delivery("a", 9)).await.unwrap(),
        Recorded::Duplicate,
        "dedup outlives processing"
    );
    // The same delivery twice at once (likely in one group commit): one is new.
    let twice = delivery("x", 11);
    let (first, second) =
        tokio::join!(store.record_delivery(&twice), store.record_delivery(&twice));
    let mut outcomes = vec![first.unwrap(), second.unwrap()];
    outcomes.sort_by_key(|r| *r == Recorded::Duplicate);
    assert_eq!(outcomes, vec![Recorded::New, Recorded::Duplicate]);
    let later = store.record_delivery(&delivery("c", 10)).await.unwrap();
    assert_eq!(later, Recorded::New);
    assert_eq!(pending_keys(&store).await, vec!["x", "c"]);
}

async fn a_commit_keeps_facts_timeline_clocks_ledger_and_outbox(store: impl Store) {
    store
        .commit(&[commit(7, at(2), &["start"], Some(at(60)))], &[])
        .await
        .unwrap();
    let record = load(&store, 7).await.record.expect("issue stored");
    assert_eq!(record.facts, facts(7, &["priority::highest"]));
    assert_eq!(record.events.len(), 1);
    assert_eq!(
        load(&store, 7).await.ledger,
        vec![(PolicyName("critical".into()), firing("start", 0))]
    );
    assert_eq!(store.earliest_wake().await.unwrap(), Some(at(60)));
    let stats = store.stats(at(2)).await.unwrap();
    assert_eq!(
        stats.clocks,
        vec![("critical".to_owned(), "running".to_owned(), 1)],
        "not_matching clocks are not kept"
    );
    assert_eq!(stats.outbox_pending, 1);
    let outbox = store
        .claim_outbox(at(2), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].notice, notice(7, "start"));
    assert!(load(&store, 8).await.record.is_none());
}

async fn a_step_recorded_twice_is_sent_once(store: impl Store) {
    let first = store
        .commit(&[commit(3, at(2), &["start"], None)], &[])
        .await
        .unwrap();
    let second = store
        .commit(&[commit(3, at(3), &["start", "breach"], None)], &[])
        .await
        .unwrap();
    assert_eq!((first.newly_fired, second.newly_fired), (1, 1));
    assert_eq!(store.stats(at(3)).await.unwrap().outbox_pending, 2);
    let steps: Vec<String> = store
        .claim_outbox(at(3), 10, TimeDelta::zero())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key.firing.step.0)
        .collect();
    assert_eq!(
        steps,
        vec!["start"],
        "the breach waits until the start is sent"
    );
    // Events already known are not duplicated either.
    assert_eq!(load(&store, 3).await.record.unwrap().events.len(), 1);
}

async fn older_facts_never_replace_newer_ones(store: impl Store) {
    store
        .commit(&[commit(4, at(10), &[], None)], &[])
        .await
        .unwrap();
    let mut stale = commit(4, at(5), &[], None);
    stale.facts.labels = vec![];
    store.commit(&[stale], &[]).await.unwrap();
    let record = load(&store, 4).await.record.unwrap();
    assert_eq!(record.facts.labels, vec!["priority::highest".to_owned()]);
    assert_eq!(record.updated_at, at(10));
}

async fn several_issues_load_in_the_order_asked(store: impl Store) {
    store
        .commit(
            &[
                commit(11, at(1), &["start"], None),
                commit(12, at(1), &[], None),
            ],
            &[],
        )
        .await
        .unwrap();
    let loaded = store
        .load_issues(&[issue(12), issue(13), issue(11)])
        .await
        .unwrap();
    let found: Vec<Option<u64>> = loaded
        .iter()
        .map(|l| l.record.as_ref().map(|r| r.facts.reference.iid.0))
        .collect();
    assert_eq!(found, vec![Some(12), None, Some(11)]);
    assert_eq!((loaded[0].ledger.len(), loaded[2].ledger.len()), (0, 1));
    assert_eq!(loaded[2].record.as_ref().unwrap().events.len(), 1);
}

async fn due_issues_come_by_wake_up_time(store: impl Store) {
    store
        .commit(
            &[
                commit(1, at(0), &[], Some(at(30))),
                commit(2, at(0), &[], Some(at(10))),
                commit(3, at(0), &[], None),
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(store.due_issues(at(5), 10).await.unwrap(), vec![]);
    assert_eq!(store.due_issues(at(20), 10).await.unwrap(), vec![issue(2)]);
    assert_eq!(
        store.due_issues(at(40), 10).await.unwrap(),
        vec![issue(2), issue(1)]
    );
    assert_eq!(
        store.stats(at(40)).await.unwrap().oldest_due_wake,
        Some(at(10))
    );
}

async fn a_failing_notice_holds_back_its_thread_until_it_is_sent(store: impl Store) {
    store
        .commit(&[commit(5, at(1), &["start", "breach"], None)], &[])
        .await
        .unwrap();
    store
        .commit(&[commit(6, at(1), &["start"], None)], &[])
        .await
        .unwrap();
    let first = store
        .claim_outbox(at(1), 10, TimeDelta::zero())
        .await
        .unwrap();
    let keys: Vec<OutboxKey> = first.iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys.len(), 2, "the breach of #5 waits behind its start");

    store
        .record_outbox(&[
            OutboxOutcome {
                key: keys[0].clone(),
                result: SendResult::Retry {
                    error: "503".into(),
                    retry_at: at(10),
                },
            },
            OutboxOutcome {
                key: keys[1].clone(),
                result: SendResult::Sent {
                    at: at(1),
                    thread: None,
                },
            },
        ])
        .await
        .unwrap();
    assert!(
        store
            .claim_outbox(at(5), 10, TimeDelta::zero())
            .await
            .unwrap()
            .is_empty(),
        "nothing overtakes the retry"
    );
    assert_eq!(store.next_outbox_attempt().await.unwrap(), Some(at(10)));

    let retried = store
        .claim_outbox(at(10), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(
        (retried[0].key.firing.step.0.as_str(), retried[0].attempts),
        ("start", 1)
    );
    store
        .record_outbox(&[OutboxOutcome {
            key: retried[0].key.clone(),
            result: SendResult::Sent {
                at: at(10),
                thread: None,
            },
        }])
        .await
        .unwrap();
    let next = store
        .claim_outbox(at(10), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].key.firing.step.0, "breach");
    store
        .record_outbox(&[OutboxOutcome {
            key: next[0].key.clone(),
            result: SendResult::Failed {
                error: "channel_not_found".into(),
            },
        }])
        .await
        .unwrap();
    let stats = store.stats(at(10)).await.unwrap();
    assert_eq!(
        (stats.outbox_pending, stats.outbox_failed),
        (0, 1),
        "a hopeless notice stays visible"
    );
}

/// A notice refused for good with a fallback route is failed, and its
/// fallback queued in the same write as a notice of its own: claimed like
/// any other (by whichever process comes next), in its issue's order, and
/// retried if the route is busy, never dropped.
async fn a_refused_notice_s_fallback_is_queued_with_its_failure(store: impl Store) {
    store
        .commit(&[commit(11, at(1), &["start"], None)], &[])
        .await
        .unwrap();
    let start = store
        .claim_outbox(at(1), 10, TimeDelta::zero())
        .await
        .unwrap();
    let mut instead = notice(11, "start");
    instead.slack.as_mut().unwrap().channel = "backup".into();
    store
        .record_outbox(&[OutboxOutcome {
            key: start[0].key.clone(),
            result: SendResult::FellBack {
                error: "is_archived".into(),
                instead: Box::new(instead),
                step: "start>backup".into(),
                channel: Some("backup".into()),
            },
        }])
        .await
        .unwrap();
    let now = Utc::now() + TimeDelta::seconds(1);
    let stats = store.stats(now).await.unwrap();
    assert_eq!(
        (stats.outbox_pending, stats.outbox_failed),
        (1, 1),
        "the original failed, its fallback waiting"
    );
    let fallback = store
        .claim_outbox(now, 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(fallback.len(), 1);
    assert_eq!(fallback[0].key.firing.step.0, "start>backup");
    assert_eq!(fallback[0].key.issue, issue(11));
    assert_eq!(fallback[0].notice.slack.as_ref().unwrap().channel, "backup");
    // The route is busy: retried, not lost.
    store
        .record_outbox(&[OutboxOutcome {
            key: fallback[0].key.clone(),
            result: SendResult::Retry {
                error: "ratelimited".into(),
                retry_at: now + TimeDelta::seconds(1),
            },
        }])
        .await
        .unwrap();
    let again = store
        .claim_outbox(now + TimeDelta::seconds(2), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the fallback is tried again");
    assert_eq!(again[0].attempts, 1);
}

/// A sent notice's thread is handed out with the later notices of its
/// clock cycle in the same channel, and only those; a rate-limit deferral
/// does not count as an attempt.
async fn a_sent_notice_s_thread_goes_with_the_rest_of_its_cycle(store: impl Store) {
    let mut fired = commit(8, at(1), &["start", "warning", "breach"], None);
    fired.fired[2].notice.slack.as_mut().unwrap().channel = "managers".into();
    store.commit(&[fired], &[]).await.unwrap();
    let start = store
        .claim_outbox(at(1), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].thread, None, "nothing started a thread yet");

    let parent = Thread {
        channel_id: "C0ALERTS".into(),
        ts: "1700000000.000100".into(),
    };
    store
        .record_outbox(&[OutboxOutcome {
            key: start[0].key.clone(),
            result: SendResult::Sent {
                at: at(1),
                thread: Some(parent.clone()),
            },
        }])
        .await
        .unwrap();
    let warning = store
        .claim_outbox(at(1), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(warning[0].key.firing.step.0, "warning");
    assert_eq!(warning[0].thread.as_ref(), Some(&parent));

    store
        .record_outbox(&[OutboxOutcome {
            key: warning[0].key.clone(),
            result: SendResult::Deferred { retry_at: at(2) },
        }])
        .await
        .unwrap();
    assert!(
        store
            .claim_outbox(at(1), 10, TimeDelta::zero())
            .await
            .unwrap()
            .is_empty()
    );
    let deferred = store
        .claim_outbox(at(2), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(
        (deferred[0].key.firing.step.0.as_str(), deferred[0].attempts),
        ("warning", 0),
        "a deferral is not an attempt"
    );
    store
        .record_outbox(&[OutboxOutcome {
            key: deferred[0].key.clone(),
            result: SendResult::Sent {
                at: at(2),
                thread: Some(parent.clone()),
            },
        }])
        .await
        .unwrap();
    let breach = store
        .claim_outbox(at(2), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(breach[0].key.firing.step.0, "breach");
    assert_eq!(breach[0].thread, None, "another channel has its own thread");

    // Slack events on the parent find their way back to the issue's cycle.
    let found = store
        .alert_thread(&parent.channel_id, &parent.ts)
        .await
        .unwrap()
        .expect("labelwarden posted this parent");
    assert_eq!(
        (found.issue.iid.0, found.policy.0.as_str(), found.cycle),
        (8, breach[0].key.policy.0.as_str(), 1)
    );
    assert_eq!(
        store
            .alert_thread(&parent.channel_id, "1700000000.999999")
            .await
            .unwrap(),
        None,
        "not a message labelwarden posted"
    );
}

/// A Slack event is kept until it was acted on, retried when acting failed
/// for now, recognised when Slack retries it, and forgotten a day after it
/// was handled, so the table does not grow forever.
async fn slack_events_are_kept_until_acted_on_and_remembered_for_a_day(store: impl Store) {
    use labelwarden::store::{Recorded, SlackEventOutcome};
    let lease = TimeDelta::minutes(1);
    let event = r#"{"kind":"other"}"#;
    assert_eq!(
        store.record_slack_event("Ev1", event, at(0)).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        store.record_slack_event("Ev1", event, at(5)).await.unwrap(),
        Recorded::Duplicate,
        "Slack's retry minutes later"
    );
    let claimed = store.claim_slack_events(at(0), 10, lease).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].event.as_str(), claimed[0].attempts), (event, 0));
    assert!(
        store
            .claim_slack_events(at(0), 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "claimed by this process"
    );
    let retry = SlackEventOutcome::Retry {
        error: "GitLab: 502".into(),
        retry_at: at(2),
    };
    store
        .finish_slack_event("Ev1", &retry, at(0))
        .await
        .unwrap();
    assert!(
        store
            .claim_slack_events(at(1), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_slack_event().await.unwrap(), Some(at(2)));
    let again = store.claim_slack_events(at(2), 10, lease).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    store
        .finish_slack_event("Ev1", &SlackEventOutcome::Done, at(2))
        .await
        .unwrap();
    assert!(
        store
            .claim_slack_events(at(3), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_slack_event().await.unwrap(), None);

    // Not yet acted on: kept however old.
    store
        .record_slack_event("Ev2", event, at(10))
        .await
        .unwrap();
    store
        .record_slack_event("Ev3", event, at(25 * 60))
        .await
        .unwrap();
    assert_eq!(
        store
            .record_slack_event("Ev1", event, at(25 * 60 + 1))
            .await
            .unwrap(),
        Recorded::New,
        "handled and a day old: forgotten"
    );
    assert_eq!(
        store
            .record_slack_event("Ev2", event, at(25 * 60 + 1))
            .await
            .unwrap(),
        Recorded::Duplicate,
        "never handled: still there"
    );
}

/// Two processes sharing the database never hold the same entry: a claim
/// hides it until it is recorded or the claim runs out.
async fn a_claimed_notice_is_nobody_else_s_until_its_claim_runs_out(store: impl Store) {
    store
        .commit(
            &[
                commit(21, at(1), &["start"], None),
                commit(22, at(1), &["start"], None),
            ],
            &[],
        )
        .await
        .unwrap();
    let lease = TimeDelta::minutes(1);
    let first = store.claim_outbox(at(1), 1, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    let second = store.claim_outbox(at(1), 10, lease).await.unwrap();
    assert_eq!(second.len(), 1, "only the unclaimed one");
    assert_ne!(first[0].key, second[0].key);
    assert!(
        store
            .claim_outbox(at(1), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.next_outbox_attempt().await.unwrap(),
        Some(at(2)),
        "claimed entries are due again when their claim runs out"
    );

    store
        .record_outbox(&[OutboxOutcome {
            key: first[0].key.clone(),
            result: SendResult::Sent {
                at: at(1),
                thread: None,
            },
        }])
        .await
        .unwrap();
    // The claimant of the second died: its claim runs out, someone else takes it.
    let taken_over = store.claim_outbox(at(2), 10, lease).await.unwrap();
    assert_eq!(taken_over.len(), 1);
    assert_eq!(taken_over[0].key, second[0].key);
}

/// Work one process does at a time: a lease is held until it runs out or
/// is given up, and renewing it is free for its holder.
async fn a_lease_has_one_holder_at_a_time(store: impl Store, other: impl Store) {
    let lease = TimeDelta::seconds(10);
    assert!(store.hold_lease("enforcer", at(0), lease).await.unwrap());
    assert!(
        store.hold_lease("enforcer", at(0), lease).await.unwrap(),
        "renewed"
    );
    assert!(!other.hold_lease("enforcer", at(0), lease).await.unwrap());
    assert!(
        other.hold_lease("reconcile", at(0), lease).await.unwrap(),
        "another lease"
    );
    assert!(
        other.hold_lease("enforcer", at(1), lease).await.unwrap(),
        "the first holder stopped renewing"
    );
    assert!(!store.hold_lease("enforcer", at(1), lease).await.unwrap());
    other.release_lease("enforcer").await.unwrap();
    assert!(
        store.hold_lease("enforcer", at(1), lease).await.unwrap(),
        "given up"
    );
}

async fn data_survives_reopening(dir: &std::path::Path) {
    let url = format!("sqlite://{}", dir.join("reopen.db").display());
    {
        let store = SqlStore::connect(&url).await.unwrap();
        store
            .commit(&[commit(9, at(1), &["start"], Some(at(60)))], &[])
            .await
            .unwrap();
        store.record_delivery(&delivery("kept", 1)).await.unwrap();
    }
    let store = SqlStore::connect(&url).await.unwrap();
    assert!(load(&store, 9).await.record.is_some());
    assert_eq!(store.earliest_wake().await.unwrap(), Some(at(60)));
    assert_eq!(store.pending_deliveries(10).await.unwrap().len(), 1);
}

async fn a_renamed_project_s_rows_follow_it_to_its_new_path(store: impl Store) {
    let backend = ProjectPath("acme/backend".into());
    let renamed = ProjectPath("acme/checkout".into());
    let followed = store.follow_project(1, &backend, at(0)).await.unwrap();
    assert_eq!(
        (followed.path, followed.renamed_from),
        (backend.clone(), None)
    );
    store
        .commit(&[commit(7, at(2), &["start"], Some(at(60)))], &[])
        .await
        .unwrap();
    let thread = Thread {
        channel_id: "C0ALERTS".into(),
        ts: "1764000000.000100".into(),
    };
    let claimed = store
        .claim_outbox(at(2), 10, TimeDelta::zero())
        .await
        .unwrap();
    store
        .record_outbox(&[OutboxOutcome {
            key: claimed[0].key.clone(),
            result: SendResult::Sent {
                at: at(2),
                thread: Some(thread.clone()),
            },
        }])
        .await
        .unwrap();

    // While a notice of the project is being sent, its rows stay: the
    // sender records the outcome under the key it claimed.
    store
        .commit(&[commit(7, at(3), &["breach"], Some(at(60)))], &[])
        .await
        .unwrap();
    let sending = store
        .claim_outbox(Utc::now(), 10, TimeDelta::minutes(1))
        .await
        .unwrap();
    assert_eq!(sending.len(), 1);
    assert!(matches!(
        store.follow_project(1, &renamed, at(5)).await,
        Err(labelwarden::store::StoreError::Sending(_))
    ));
    store
        .record_outbox(&[OutboxOutcome {
            key: sending[0].key.clone(),
            result: SendResult::Sent {
                at: at(4),
                thread: Some(thread.clone()),
            },
        }])
        .await
        .unwrap();

    // A delivery from before the rename, read late, changes nothing.
    let followed = store.follow_project(1, &renamed, at(5)).await.unwrap();
    assert_eq!(followed.renamed_from, Some(backend.clone()));
    let stale = store.follow_project(1, &backend, at(3)).await.unwrap();
    assert_eq!((stale.path, stale.renamed_from), (renamed.clone(), None));

    let moved = IssueRef {
        project: renamed.clone(),
        iid: IssueIid(7),
    };
    let loaded = store.load_issues(&[moved.clone(), issue(7)]).await.unwrap();
    let record = loaded[0]
        .record
        .as_ref()
        .expect("the issue moved with its project");
    assert_eq!(record.facts.reference, moved, "its facts name the new path");
    assert_eq!(record.events.len(), 1);
    let mut ledger = loaded[0].ledger.clone();
    ledger.sort_by(|a, b| a.1.step.0.cmp(&b.1.step.0));
    assert_eq!(
        ledger,
        vec![
            (PolicyName("critical".into()), firing("breach", 0)),
            (PolicyName("critical".into()), firing("start", 0)),
        ]
    );
    assert_eq!(loaded[0].statuses.len(), 1);
    assert!(
        loaded[1].record.is_none(),
        "nothing is left under the old path"
    );
    assert_eq!(store.due_issues(at(60), 10).await.unwrap(), vec![moved]);
    let alert = store
        .alert_thread(&thread.channel_id, &thread.ts)
        .await
        .unwrap()
        .expect("the thread moved too");
    assert_eq!(alert.issue.project, renamed);
}

/// The contract, once per backend: `sqlite::name` and `postgres::name`.
macro_rules! contract {
    ($($name:ident => $check:ident;)*) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_sqlite(super::$check).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_postgres(super::$check).await;
                }
            )*
        }
    };
}

contract! {
    keeps_deliveries_once_and_in_order => deliveries_are_kept_once_and_handed_out_in_order;
    commits_everything_an_evaluation_changes => a_commit_keeps_facts_timeline_clocks_ledger_and_outbox;
    sends_a_step_recorded_twice_once => a_step_recorded_twice_is_sent_once;
    never_rolls_facts_back => older_facts_never_replace_newer_ones;
    loads_several_issues_in_order => several_issues_load_in_the_order_asked;
    hands_out_due_issues_by_wake_up => due_issues_come_by_wake_up_time;
    outbox_keeps_each_thread_in_order => a_failing_notice_holds_back_its_thread_until_it_is_sent;
    queues_a_refused_notice_s_fallback_durably => a_refused_notice_s_fallback_is_queued_with_its_failure;
    hands_each_notice_the_thread_of_its_cycle_and_channel => a_sent_notice_s_thread_goes_with_the_rest_of_its_cycle;
    claims_a_notice_for_one_process_at_a_time => a_claimed_notice_is_nobody_else_s_until_its_claim_runs_out;
    keeps_slack_events_until_acted_on => slack_events_are_kept_until_acted_on_and_remembered_for_a_day;
    follows_a_renamed_project => a_renamed_project_s_rows_follow_it_to_its_new_path;
    keeps_storm_windows_and_sends_each_digest_from_one_row => a_digest_gathers_its_window_and_one_outbox_row_sends_it;
}

/// Issue `iid`'s start, said in a digest instead of a thread of its own:
/// its notice has nothing left to send.
fn grouped_start(iid: u64, now: DateTime<Utc>) -> IssueCommit {
    let mut commit = commit(iid, now, &["start"], None);
    commit.fired[0].notice.slack = None;
    commit
}

/// Sends the grouped starts' own rows due at `now` (nothing for Slack),
/// and says whose they were.
async fn send_starts(store: &impl Store, now: DateTime<Utc>) -> Vec<u64> {
    let starts = store
        .claim_outbox(now, 10, TimeDelta::minutes(1))
        .await
        .unwrap();
    assert!(
        starts
            .iter()
            .all(|e| e.notice.slack.is_none() && e.key.firing.step.0 == "start")
    );
    let issues = starts.iter().map(|e| e.key.issue.iid.0).collect();
    let outcomes: Vec<OutboxOutcome> = starts
        .into_iter()
        .map(|e| OutboxOutcome {
            key: e.key,
            result: SendResult::Sent {
                at: now,
                thread: None,
            },
        })
        .collect();
    store.record_outbox(&outcomes).await.unwrap();
    issues
}

/// Admission `seq` of issue `iid` into `key`'s window: listed when `listed`.
fn admitted(key: &DigestKey, iid: u64, seq: u32, listed: bool) -> DigestEntry {
    let mut listed_notice = notice(iid, "start");
    listed_notice.step_kind = "adopted".into();
    DigestEntry {
        key: key.clone(),
        closes_at: key.opened_at + TimeDelta::minutes(1),
        seq,
        issue: issue(iid),
        cycle: 1,
        notice: listed.then_some(listed_notice),
    }
}

async fn a_digest_gathers_its_window_and_one_outbox_row_sends_it(store: impl Store) {
    let key = DigestKey {
        kind: DigestKind::Adopted,
        channel: "alerts".into(),
        policy: PolicyName("critical".into()),
        opened_at: at(10),
    };
    // A pass admits two issues alone and two listed, each with its start.
    let mut first = commit(31, at(10), &[], None);
    first.digests = vec![admitted(&key, 31, 1, false), admitted(&key, 32, 2, false)];
    let mut second = grouped_start(33, at(10));
    second.digests = vec![admitted(&key, 33, 3, true)];
    let mut also = grouped_start(34, at(10));
    also.digests = vec![admitted(&key, 34, 4, true)];
    store.commit(&[first, second, also], &[]).await.unwrap();
    // Another evaluation of #33's start (it lost the race for the firing)
    // lists it nowhere again.
    let mut again = grouped_start(33, at(10));
    again.digests = vec![admitted(&key, 33, 9, true)];
    store.commit(&[again], &[]).await.unwrap();

    let open = store.open_digests(at(10)).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].key.clone(), open[0].members), (key.clone(), 4));
    assert!(
        store.open_digests(at(11)).await.unwrap().is_empty(),
        "the window closed after a minute"
    );
    let digest = store.digest(&key).await.unwrap().expect("kept");
    let listed: Vec<(u32, u64)> = digest
        .items
        .iter()
        .map(|i| (i.seq, i.notice.issue.iid.0))
        .collect();
    assert_eq!(listed, [(3, 33), (4, 34)], "only the listed, in order");
    assert_eq!(digest.progress, DigestProgress::default());

    // The listed starts have nothing left to send: no outbox row of their
    // own (the enforcer lists them on the issue's ledger note); the digest
    // has the only one.
    assert!(send_starts(&store, at(10)).await.is_empty());
    // One row sends it, once the window has been quiet for 3 seconds.
    let settled = at(10) + TimeDelta::seconds(3);
    assert_eq!(store.next_outbox_attempt().await.unwrap(), Some(settled));
    assert!(
        store
            .claim_outbox(at(10), 10, TimeDelta::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
    // A later pass adds one: the unclaimed row waits for it, no second row.
    let mut third = grouped_start(35, at(10) + TimeDelta::seconds(2));
    third.digests = vec![admitted(&key, 35, 5, true)];
    store.commit(&[third], &[]).await.unwrap();
    assert!(
        send_starts(&store, at(10) + TimeDelta::seconds(2))
            .await
            .is_empty()
    );
    let later = at(10) + TimeDelta::seconds(5);
    assert_eq!(store.next_outbox_attempt().await.unwrap(), Some(later));
    let claimed = store
        .claim_outbox(later, 10, TimeDelta::minutes(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "one row for the whole digest");
    assert_eq!(
        DigestKey::from_outbox(&claimed[0].key.issue, &claimed[0].key.policy),
        Some(key.clone())
    );

    // Progress is kept; the summary's thread goes with the row.
    let progress = DigestProgress {
        summarised: 3,
        batch_from: 0,
        batch_through: 5,
        batch_posted: 3,
    };
    store.record_digest(&key, &progress, &[]).await.unwrap();
    let thread = Thread {
        channel_id: "C0ALERTS".into(),
        ts: "1764000000.000100".into(),
    };
    store
        .record_outbox(&[OutboxOutcome {
            key: claimed[0].key.clone(),
            result: SendResult::Progress {
                thread: Some(thread.clone()),
                retry_at: later,
            },
        }])
        .await
        .unwrap();
    let again = store
        .claim_outbox(later, 10, TimeDelta::minutes(1))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "more to send: the row stays");
    assert_eq!(again[0].attempts, 0, "progress is no failed attempt");
    assert_eq!(
        again[0].thread.as_ref(),
        Some(&thread),
        "the rest goes in the summary's thread"
    );
    assert_eq!(
        store.digest(&key).await.unwrap().map(|d| d.progress),
        Some(progress)
    );

    // A month later, a new storm lets the old digest go.
    let next = DigestKey {
        opened_at: at(10) + TimeDelta::days(31),
        ..key.clone()
    };
    let mut fourth = commit(36, next.opened_at, &[], None);
    fourth.digests = vec![admitted(&next, 36, 1, false)];
    store.commit(&[fourth], &[]).await.unwrap();
    assert_eq!(store.digest(&key).await.unwrap(), None);
    assert!(store.digest(&next).await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_lease_has_one_holder_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lease.db").display());
    let first = SqlStore::connect(&url).await.unwrap();
    let second = SqlStore::connect(&url).await.unwrap();
    a_lease_has_one_holder_at_a_time(first, second).await;
}

#[tokio::test]
async fn postgres_lease_has_one_holder_at_a_time() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let first = SqlStore::connect(&database.url).await.unwrap();
    let second = SqlStore::connect(&database.url).await.unwrap();
    a_lease_has_one_holder_at_a_time(first, second).await;
    database.drop().await;
}

#[tokio::test]
async fn sqlite_data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    data_survives_reopening(dir.path()).await;
}
