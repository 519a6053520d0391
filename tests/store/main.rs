//! The `Store` contract, written once against the trait so that every
//! backend runs the same checks. SQLite runs here on a real file.

#[path = "../common/mod.rs"]
mod common;
mod digests;
mod fencing;
mod outbox;
mod retention;

use digests::*;
use fencing::*;
use outbox::*;
use retention::*;

use std::future::Future;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use labelwarden::engine::Firing;
use labelwarden::issue::{
    Event, IssueFacts, IssueIid, IssueRef, IssueState, ProjectPath, TimedEvent,
};
use labelwarden::notice::digest::{DigestKey, DigestKind, DigestProgress};
use labelwarden::notice::{Notice, SlaFacts, Thread};
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
        due_date: None,
        details: Default::default(),
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
        due_date: None,
        comment: None,
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
        .commit(&[commit(1, at(5), &[], None)], &[first], None)
        .await
        .unwrap();
    assert_eq!(pending_keys(&store).await, vec!["a"]);

    // An unreadable one is set aside with its reason, and not handed out again.
    let second = Handled {
        key: "a".into(),
        seq: pending[1].seq,
        rejected: Some("unreadable".into()),
    };
    store.commit(&[], &[second], None).await.unwrap();
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
        .commit(&[commit(7, at(2), &["start"], Some(at(60)))], &[], None)
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
        .commit(&[commit(3, at(2), &["start"], None)], &[], None)
        .await
        .unwrap();
    let second = store
        .commit(&[commit(3, at(3), &["start", "breach"], None)], &[], None)
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
        .commit(&[commit(4, at(10), &[], None)], &[], None)
        .await
        .unwrap();
    let mut stale = commit(4, at(5), &[], None);
    stale.facts.labels = vec![];
    store.commit(&[stale], &[], None).await.unwrap();
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
            None,
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
            None,
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

async fn data_survives_reopening(dir: &std::path::Path) {
    let url = format!("sqlite://{}", dir.join("reopen.db").display());
    {
        let store = SqlStore::connect(&url).await.unwrap();
        store
            .commit(&[commit(9, at(1), &["start"], Some(at(60)))], &[], None)
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
        .commit(&[commit(7, at(2), &["start"], Some(at(60)))], &[], None)
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
            claim: claimed[0].claim.clone(),
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
        .commit(&[commit(7, at(3), &["breach"], Some(at(60)))], &[], None)
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
            claim: sending[0].claim.clone(),
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
    records_nothing_under_a_lost_claim => a_lost_claim_confirms_nothing_and_records_nothing;
    keeps_slack_events_until_acted_on => slack_events_are_kept_until_acted_on_and_remembered_for_a_day;
    follows_a_renamed_project => a_renamed_project_s_rows_follow_it_to_its_new_path;
    keeps_storm_windows_and_sends_each_digest_from_one_row => a_digest_gathers_its_window_and_one_outbox_row_sends_it;
    keeps_every_member_of_windows_that_disagree => windows_that_disagree_on_a_place_keep_every_member;
    forgets_ended_issues_after_the_retention_never_running_ones => ended_issues_are_forgotten_after_the_retention_and_running_ones_never;
    lets_applied_deliveries_go => applied_deliveries_lose_their_payload_then_their_key;
}

#[tokio::test]
async fn sqlite_data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    data_survives_reopening(dir.path()).await;
}
