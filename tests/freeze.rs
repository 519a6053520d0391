//! A replica that freezes past its lease and then resumes: two `serve`
//! processes on one PostgreSQL database with a 3-second lease, 60 issues
//! on a 20-second clock (warned 8 seconds before, one thread per issue),
//! a Slack that answers in 0.15 s. One replica is frozen with SIGSTOP for
//! 7 seconds (a GC pause, a stopped VM, a stalled host), then thawed with
//! SIGCONT: the enforcer as its first start reaches Slack (the rest of its
//! claimed starts in flight), with half the starts out, and as its first
//! warning reaches Slack; and the replica that is only sending, as its
//! first start reaches Slack.
//! The other replica takes over; the thawed one must not act on what it
//! held before. Every step the store's ledger says fired reaches Slack
//! exactly once, and every message is a step the ledger has.
//!
//! Needs `LABELWARDEN_TEST_POSTGRES_URL` (`.ci/run` sets it); skipped
//! otherwise.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use common::fake_slack::{self, FakeSlack, step_of};
use common::process::{
    Running, deliver_hook, free_port, label_spread, serve_replica_with_lease, terminate,
};
use common::{HIGHEST, issue_event};

const ISSUES: u64 = 60;
const LEASE: &str = "3s";
/// Longer than the lease: the other replica takes over meanwhile.
const FREEZE: Duration = Duration::from_secs(7);
/// Each step of every issue.
const STEPS: [&str; 3] = ["start", "warning", "breach"];

/// Two replicas, PostgreSQL and this test on two cores: one story at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Which replica freezes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frozen {
    /// The one holding the enforcer lease (found in the `leases` table).
    Enforcer,
    /// The other one: it only sends what it claims from the outbox.
    SenderOnly,
}

/// When it freezes: as soon as the fake Slack shows the moment, with the
/// frozen replica's sends in flight and more of its claims waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// Its first start is out.
    FirstStart,
    /// Its first message of any step is out.
    FirstPost,
    /// Half the starts are out.
    HalfTheStarts,
    /// Its first warning is out (12 s after the labels).
    FirstWarning,
}

impl Moment {
    /// Whether `messages` show the moment, for the replica posting `via`.
    fn reached(self, messages: &[fake_slack::Message], via: &str) -> bool {
        let by = |step: &str| {
            messages
                .iter()
                .filter(|m| m.via.as_deref() == Some(via) && step_of(&m.text) == step)
                .count()
        };
        match self {
            Moment::FirstStart => by("start") >= 1,
            Moment::FirstPost => messages.iter().any(|m| m.via.as_deref() == Some(via)),
            Moment::HalfTheStarts => {
                let starts = messages.iter().filter(|m| step_of(&m.text) == "start");
                starts.count() >= ISSUES as usize / 2
            }
            Moment::FirstWarning => by("warning") >= 1,
        }
    }
}

/// (issue, step) a message says: one issue and one step each, as this
/// policy never groups.
fn said(message: &fake_slack::Message) -> (u64, &'static str) {
    let issues = common::issues_named(&message.shown(), "acme/backend");
    assert_eq!(issues.len(), 1, "one issue a message: {}", message.shown());
    (issues[0], step_of(&message.text))
}

async fn story(moment: Moment, frozen: Frozen) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let slack = FakeSlack::start().await;
    slack.slack.latency(Duration::from_millis(150));
    let ports = [free_port(), free_port()];
    let names = ["r0", "r1"];
    let replicas: Vec<Running> = ports
        .iter()
        .zip(names)
        .map(|(port, name)| {
            serve_replica_with_lease(
                &database.url,
                &slack.api_url_for(name),
                *port,
                "policies-freeze",
                LEASE,
            )
        })
        .collect();
    let http = labelwarden::http_client::builder().build().unwrap();
    for port in ports {
        common::process::wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;
    }
    let enforcer = database
        .wait_for_lease_holder("enforcer", Duration::from_secs(10))
        .await
        .expect("one replica holds the enforcer lease");
    let victim = replicas
        .iter()
        .position(|r| (r.pid() == enforcer) == (frozen == Frozen::Enforcer))
        .expect("the replica to freeze");
    if frozen == Frozen::SenderOnly {
        // The enforcer's worker hears of new notices at once and claims
        // them first; on a slow path to Slack it leaves some for the
        // other replica, which looks every 2 s.
        let enforcing = names[1 - victim];
        slack
            .slack
            .latency_via(enforcing, Duration::from_millis(600));
    }

    // 60 issues labelled at once, half through each replica.
    let labelled_at = Utc::now();
    label_spread(&http, &ports, ISSUES, "freeze", 16).await;

    let mut waited = 0;
    while !moment.reached(&slack.slack.messages(), names[victim]) {
        waited += 1;
        assert!(
            waited < 2_000,
            "{frozen:?} never reached {moment:?}: {} messages",
            slack.slack.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let freeze_began = Utc::now();
    let frozen_at = freeze_began - labelled_at;
    replicas[victim].freeze();
    // `kill -STOP` takes a few milliseconds to run: the replica may still
    // confirm a claim between `freeze_began` and here, and is stopped by
    // the time it returns.
    let stopped_by = Utc::now();
    tokio::time::sleep(FREEZE).await;
    // Likewise it may go on before `thaw` returns.
    let thaw_began = Utc::now();
    replicas[victim].thaw();

    // Until every step is said and a thawed replica has had time to act on
    // anything it held: the last breach falls due 20 s after the labels.
    let expected = ISSUES as usize * STEPS.len();
    let last_due = labelled_at + chrono::TimeDelta::seconds(20);
    for _ in 0..300 {
        let messages = slack.slack.messages();
        if messages.len() >= expected && Utc::now() > last_due {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut seen: BTreeMap<(u64, &str), usize> = BTreeMap::new();
    for message in &slack.slack.messages() {
        *seen.entry(said(message)).or_default() += 1;
    }
    // The one window no check can close: the frozen replica confirmed its
    // claim before the freeze and its request's bytes left only after the
    // thaw (the claim confirmation a post carries says when). A step said
    // twice that way is that window, not a lost fence; any other is a bug.
    let messages = slack.slack.messages();
    assert!(
        messages.iter().all(|m| m.confirmed_at.is_some()),
        "every post was made under a claim confirmed just before it"
    );
    let in_the_window = |key: &(u64, &str)| {
        let copies: Vec<_> = messages.iter().filter(|m| said(m) == *key).collect();
        let late: Vec<_> = copies
            .iter()
            .filter(|m| {
                m.via.as_deref() == Some(names[victim])
                    && m.confirmed_at.is_some_and(|at| at < stopped_by)
                    && m.posted_at >= thaw_began
            })
            .collect();
        copies.len() == 2 && late.len() == 1
    };
    let windowed: Vec<(u64, &str)> = seen
        .iter()
        .filter(|(key, n)| **n > 1 && in_the_window(key))
        .map(|(key, _)| *key)
        .collect();
    let twice: Vec<_> = seen
        .iter()
        .filter(|(key, n)| **n > 1 && !windowed.contains(key))
        .collect();
    // At most what one replica has in flight at once.
    assert!(
        windowed.len() <= 16,
        "{} steps repeated by requests left in the window: {windowed:?}",
        windowed.len()
    );
    if !windowed.is_empty() {
        println!(
            "{} step(s) repeated by a request that was past its last check when the freeze came: {windowed:?}",
            windowed.len()
        );
    }
    // Who posted each copy of a step said twice, and when.
    let copies: Vec<String> = slack
        .slack
        .messages()
        .iter()
        .filter(|m| {
            twice
                .iter()
                .any(|((iid, step), _)| said(m) == (*iid, *step))
        })
        .map(|m| {
            let (iid, step) = said(m);
            format!(
                "#{iid} {step} by {} at {} (claim confirmed at {:?})",
                m.via.as_deref().unwrap_or("?"),
                (m.posted_at - labelled_at).num_milliseconds(),
                m.confirmed_at
                    .map(|at| (at - labelled_at).num_milliseconds())
            )
        })
        .collect();
    let missing: Vec<(u64, &str)> = (1..=ISSUES)
        .flat_map(|iid| STEPS.map(|step| (iid, step)))
        .filter(|key| !seen.contains_key(key))
        .collect();
    // The store's own account: every fired step said once, nothing said
    // that did not fire.
    let mut fired: Vec<(u64, &str)> = database
        .fired_steps()
        .await
        .iter()
        .map(|(iid, step)| (*iid, common::step_kind(step)))
        .collect();
    fired.sort_unstable();
    let said_steps: Vec<(u64, &str)> = seen.keys().copied().collect();

    let mut logs = Vec::new();
    for replica in replicas {
        let (code, log) = terminate(replica).await;
        assert!(!log.contains("panicked"), "{log}");
        assert_eq!(code, Some(0), "{log}");
        logs.push(log);
    }
    database.drop().await;
    assert!(
        twice.is_empty(),
        "{frozen:?} frozen at {moment:?} ({} ms after the labels): {} steps said more than once, e.g. {:?}; copies {:?}\n{}",
        frozen_at.num_milliseconds(),
        twice.len(),
        &twice[..twice.len().min(5)],
        copies,
        logs.join("\n----\n")
    );
    assert!(
        missing.is_empty(),
        "{frozen:?} frozen at {moment:?}: {} steps never said, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(fired, said_steps, "the ledger and Slack agree");
    println!(
        "{frozen:?} frozen at {moment:?} ({} ms after the labels) for {FREEZE:?}: {} steps exactly once",
        frozen_at.num_milliseconds(),
        said_steps.len()
    );
}

/// Frozen as its first start reaches Slack, with the rest of the starts
/// it claimed in flight or waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enforcer_frozen_during_the_starts_sends_nothing_twice_when_it_thaws() {
    story(Moment::FirstStart, Frozen::Enforcer).await;
}

/// Frozen with half the starts out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enforcer_frozen_during_the_sends_sends_nothing_twice_when_it_thaws() {
    story(Moment::HalfTheStarts, Frozen::Enforcer).await;
}

/// Frozen as its first warning reaches Slack (12 s after the labels).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enforcer_frozen_at_the_warnings_sends_nothing_twice_when_it_thaws() {
    story(Moment::FirstWarning, Frozen::Enforcer).await;
}

/// The replica that is not the enforcer, frozen as its first message
/// reaches Slack, with the rest of what it claimed in flight or waiting.
/// The enforcer's worker hears of new notices first; its path to Slack is
/// slow, so the other replica, looking every 2 s, claims some of the
/// starts, warnings or breaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sender_frozen_with_its_claims_sends_nothing_twice_when_it_thaws() {
    story(Moment::FirstPost, Frozen::SenderOnly).await;
}

/// A request under a claim is given a third of the lease (1 s here): a
/// Slack slower than that has posted the message by the time the request
/// times out. The retry looks for it first, finds it, and does not post
/// it again; while Slack is too slow to answer the look, it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_that_timed_out_after_slack_took_it_is_not_posted_again() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("slow.db").display());
    let slack = FakeSlack::start().await;
    slack.slack.latency(Duration::from_millis(1_500));
    let port = free_port();
    let replica =
        serve_replica_with_lease(&database, &slack.api_url, port, "policies-freeze", LEASE);
    let http = labelwarden::http_client::builder().build().unwrap();
    common::process::wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;
    let at = Utc::now();
    let payload = issue_event(1, at, at, &[], &[HIGHEST], false);
    assert_eq!(deliver_hook(&http, port, "slow-1", &payload).await, 200);
    let looked = || {
        slack
            .slack
            .requests()
            .iter()
            .filter(|r| r.method == "conversations.history")
            .count()
    };
    // The post times out; the retry's look times out too: nothing more.
    let mut waited = 0;
    while looked() == 0 {
        waited += 1;
        assert!(waited < 100, "the retry looks first");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(slack.slack.messages().len(), 1, "posted once so far");
    // Slack answers in time again: the next look finds the start.
    slack.slack.latency(Duration::ZERO);
    let seen = looked();
    let mut waited = 0;
    while looked() == seen {
        waited += 1;
        assert!(waited < 100, "looked again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let starts = slack
        .slack
        .messages()
        .into_iter()
        .filter(|m| step_of(&m.text) == "start")
        .count();
    let store = labelwarden::store::sql::SqlStore::connect(&database)
        .await
        .unwrap();
    let stats = labelwarden::store::Store::stats(&store, Utc::now())
        .await
        .unwrap();
    let (code, log) = terminate(replica).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("timed out"),
        "the first attempt timed out: {log}"
    );
    assert_eq!(starts, 1, "posted once\n{log}");
    assert_eq!(stats.outbox_pending, 0, "recorded as sent: {stats:?}");
}
