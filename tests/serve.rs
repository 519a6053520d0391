//! `serve` end to end: the real server on a random port, a SQLite file,
//! GitLab deliveries shaped as GitLab documents them (timestamps moved to
//! now), and a notifier that records what would have been sent.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{HIGHEST, SECRET, Server, fixture_policies, issue_event, sqlite, start_server};
use labelwarden::notice::{Delivered, Notice, Thread};
use labelwarden::notify::{Notifier, NotifyError};
use serde_json::{Value, json};

/// A notice and when the server sent it.
type Sent = (DateTime<Utc>, Notice);

/// Every notice the server sent.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Sent>>>);

impl Notifier for Recorder {
    async fn send(&self, notice: &Notice, _: Option<&Thread>) -> Result<Delivered, NotifyError> {
        self.0.lock().unwrap().push((Utc::now(), notice.clone()));
        Ok(Delivered::default())
    }
}

impl Recorder {
    fn steps(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| n.firing.step.0.clone())
            .collect()
    }
    fn sent(&self) -> Vec<Sent> {
        self.0.lock().unwrap().clone()
    }
}

/// Fails each notice's first `temporary_failures` attempts with a
/// temporary error asking for a retry after 50 ms (as a 429 with
/// `Retry-After` would), and every `breach` notice for good; records what
/// finally went out.
#[derive(Clone)]
struct Flaky {
    recorder: Recorder,
    temporary_failures: u32,
    attempts: Arc<Mutex<std::collections::HashMap<String, u32>>>,
}

impl Notifier for Flaky {
    async fn send(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> Result<Delivered, NotifyError> {
        let key = format!("{}/{}", notice.issue, notice.firing.step);
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let count = attempts.entry(key).or_default();
            *count += 1;
            *count
        };
        if attempt <= self.temporary_failures {
            return Err(NotifyError::Temporary {
                message: format!("HTTP 503 (attempt {attempt})"),
                retry_after: Some(Duration::from_millis(50)),
            });
        }
        if notice.step_kind == "breach" {
            return Err(NotifyError::Permanent("channel_not_found".into()));
        }
        self.recorder.send(notice, thread).await
    }
}

struct App {
    server: Server,
    notices: Recorder,
}

impl std::ops::Deref for App {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl App {
    async fn stop(self) {
        self.server.stop().await;
    }
}

/// Starts the real server on a random port over the SQLite file `database`.
async fn spawn_app(database: &Path) -> App {
    spawn_app_with_limit(database, 1024 * 1024).await
}

async fn spawn_app_with_limit(database: &Path, max_body_bytes: usize) -> App {
    let notices = Recorder::default();
    spawn(database, max_body_bytes, notices.clone(), notices).await
}

async fn spawn<N: Notifier>(
    database: &Path,
    max_body_bytes: usize,
    notifier: N,
    notices: Recorder,
) -> App {
    let options = common::Options {
        max_body_bytes,
        ..common::Options::default()
    };
    let server = start_server(
        fixture_policies("policies-fast"),
        &sqlite(database),
        notifier,
        options,
    )
    .await;
    App { server, notices }
}

async fn wait_for(notices: &Recorder, count: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while notices.sent().len() < count && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn priority_highest_added_fires_the_start_step_once_even_when_delivered_twice() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir.path().join("db.sqlite")).await;
    let now = Utc::now();
    let payload = issue_event(1, now, now, &["type::bug"], &["type::bug", HIGHEST], false);
    assert_eq!(app.deliver("uuid-1", &payload).await, 200);
    assert_eq!(
        app.deliver("uuid-1", &payload).await,
        200,
        "a redelivery is acknowledged"
    );
    wait_for(&app.notices, 1, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = app.notices.sent();
    assert_eq!(sent.len(), 1, "{:?}", app.notices.steps());
    assert_eq!(sent[0].1.firing.step.0, "start");
    assert_eq!(sent[0].1.issue.to_string(), "acme/backend#1");
    assert!(
        (sent[0].0 - now).num_milliseconds() < 1_000,
        "the start notice goes out at once"
    );
    app.stop().await;
}

#[tokio::test]
async fn warning_then_breach_fire_on_time_with_no_further_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir.path().join("db.sqlite")).await;
    let labelled = Utc::now();
    let payload = issue_event(2, labelled, labelled, &[], &[HIGHEST], false);
    assert_eq!(app.deliver("uuid-2", &payload).await, 200);
    wait_for(&app.notices, 3, Duration::from_secs(5)).await;
    let sent = app.notices.sent();
    let steps: Vec<&str> = sent.iter().map(|(_, n)| n.firing.step.0.as_str()).collect();
    assert_eq!(steps, vec!["start", "before_deadline:1s", "breach"]);
    for (expected_after, (sent_at, notice)) in [(0, &sent[0]), (1_000, &sent[1]), (2_000, &sent[2])]
    {
        let after = (*sent_at - labelled).num_milliseconds();
        assert!(
            (expected_after..expected_after + 700).contains(&after),
            "{} sent {after} ms after the label, expected {expected_after} ms",
            notice.firing.step
        );
        assert_eq!(notice.late_by(), None);
    }
    app.stop().await;
}

#[tokio::test]
async fn on_postgres_warning_then_breach_fire_on_time_and_once() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let notices = Recorder::default();
    let server = common::start_server(
        fixture_policies("policies-fast"),
        &database.url,
        notices.clone(),
        common::Options::default(),
    )
    .await;
    let labelled = Utc::now();
    let payload = issue_event(12, labelled, labelled, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("pg-1", &payload).await, 200);
    assert_eq!(server.deliver("pg-1", &payload).await, 200, "a redelivery");
    wait_for(&notices, 3, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = notices.sent();
    let steps: Vec<&str> = sent.iter().map(|(_, n)| n.firing.step.0.as_str()).collect();
    assert_eq!(steps, vec!["start", "before_deadline:1s", "breach"]);
    for (expected_after, (sent_at, notice)) in [(0, &sent[0]), (1_000, &sent[1]), (2_000, &sent[2])]
    {
        let after = (*sent_at - labelled).num_milliseconds();
        assert!(
            (expected_after..expected_after + 700).contains(&after),
            "{} sent {after} ms after the label, expected {expected_after} ms",
            notice.firing.step
        );
    }
    server.stop().await;
    database.drop().await;
}

#[tokio::test]
async fn closing_before_the_deadline_resolves_and_cancels_the_breach() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir.path().join("db.sqlite")).await;
    let labelled = Utc::now();
    app.deliver(
        "uuid-3a",
        &issue_event(3, labelled, labelled, &[], &[HIGHEST], false),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed = Utc::now();
    assert_eq!(
        app.deliver(
            "uuid-3b",
            &issue_event(3, labelled, closed, &[HIGHEST], &[HIGHEST], true)
        )
        .await,
        200
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(app.notices.steps(), vec!["start", "resolved"]);
    let resolved = &app.notices.sent()[1].1;
    assert!(
        resolved.status.starts_with("met, took"),
        "{}",
        resolved.status
    );
    // The outcome and its time to resolve are exported. (Other tests in
    // this process count too, so these are at least, not exactly, one.)
    let at_least_one = |value: Option<f64>| value.is_some_and(|n| n >= 1.0);
    assert!(at_least_one(
        app.metric("labelwarden_sla_outcomes_total{policy=\"fast-critical\",outcome=\"met\"}")
            .await
    ));
    assert!(at_least_one(
        app.metric("labelwarden_time_to_resolve_seconds_count{policy=\"fast-critical\"}")
            .await
    ));
    assert!(
        app.metric("labelwarden_time_to_resolve_seconds_bucket{policy=\"fast-critical\",le=\"1\"}")
            .await
            .is_some(),
        "histogram buckets, not a summary"
    );
    assert!(
        app.metric("labelwarden_sla_met_ratio{policy=\"fast-critical\"}")
            .await
            .is_some()
    );
    app.stop().await;
}

#[tokio::test]
async fn removing_the_label_withdraws_and_nothing_else_fires() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir.path().join("db.sqlite")).await;
    let labelled = Utc::now();
    app.deliver(
        "uuid-4a",
        &issue_event(4, labelled, labelled, &[], &[HIGHEST], false),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.deliver(
        "uuid-4b",
        &issue_event(4, labelled, Utc::now(), &[HIGHEST], &[], false),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(app.notices.steps(), vec!["start", "withdrawn"]);
    app.stop().await;
}

#[tokio::test]
async fn a_restart_between_label_and_deadline_still_fires_the_breach_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("db.sqlite");
    let first = spawn_app(&database).await;
    let labelled = Utc::now();
    first
        .deliver(
            "uuid-5",
            &issue_event(5, labelled, labelled, &[], &[HIGHEST], false),
        )
        .await;
    wait_for(&first.notices, 1, Duration::from_secs(2)).await;
    assert_eq!(first.notices.steps(), vec!["start"]);
    first.stop().await;

    // Down across both the warning and the deadline, and a second past it.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let second = spawn_app(&database).await;
    wait_for(&second.notices, 1, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = second.notices.sent();
    let steps: Vec<&str> = sent.iter().map(|(_, n)| n.firing.step.0.as_str()).collect();
    assert_eq!(
        steps,
        vec!["breach"],
        "the stale warning is skipped; the breach fires once"
    );
    let late = sent[0].1.late_by().expect("the breach says it is late");
    assert!(late.num_milliseconds() >= 900, "{late:?}");
    assert!(
        sent[0]
            .1
            .summary()
            .contains("late: labelwarden was not running"),
        "labelwarden's own record shows it was down: {}",
        sent[0].1.summary()
    );

    // And a third start finds nothing left to send for #5. "Nothing" counts
    // only once the enforcer provably ran: a control issue labelled after
    // the start gets its own start notice, and the outbox is then empty, so
    // whatever the first pass found was sent by then.
    second.stop().await;
    let third = spawn_app(&database).await;
    let control = Utc::now();
    third
        .deliver(
            "uuid-50",
            &issue_event(50, control, control, &[], &[HIGHEST], false),
        )
        .await;
    wait_for(&third.notices, 1, Duration::from_secs(2)).await;
    assert_outbox_drained(&database).await;
    let sent: Vec<(String, String)> = third
        .notices
        .sent()
        .iter()
        .map(|(_, n)| (n.issue.to_string(), n.firing.step.0.clone()))
        .collect();
    assert_eq!(
        sent,
        vec![("acme/backend#50".to_owned(), "start".to_owned())],
        "the enforcer ran (the control's start went out) and #5 sent nothing again"
    );
    third.stop().await;
}

/// Waits until the store at `database` has nothing left to send, and says
/// so; read from the store itself, not the process-wide `/metrics`.
async fn assert_outbox_drained(database: &Path) {
    use labelwarden::store::Store;
    let store = labelwarden::store::sql::SqlStore::connect(&sqlite(database))
        .await
        .unwrap();
    let mut pending = i64::MAX;
    for _ in 0..100 {
        pending = store.stats(Utc::now()).await.unwrap().outbox_pending;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending, 0, "the outbox drained");
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("db.sqlite");
    let app = spawn_app_with_limit(&database, 4 * 1024).await;
    // The refusal counters are process-wide; only this test refuses
    // anything in this binary, but count from where they stand anyway.
    let refusals = [
        ("issue", "unauthorized", 2.0),
        ("issue", "malformed", 2.0),
        ("issue", "too_large", 1.0),
        ("issue", "unsupported_media_type", 1.0),
        ("other", "ignored", 1.0),
    ];
    let counter = |event: &str, result: &str| {
        format!("labelwarden_webhook_deliveries_total{{event=\"{event}\",result=\"{result}\"}} ")
    };
    let mut before = Vec::new();
    for (event, result, _) in refusals {
        before.push(app.metric(&counter(event, result)).await.unwrap_or(0.0));
    }
    let json_headers = |token: &'static str| {
        vec![
            ("X-Gitlab-Token", token),
            ("X-Gitlab-Event", "Issue Hook"),
            ("Content-Type", "application/json"),
        ]
    };
    // Refused requests carry another issue than the accepted one, so a
    // request refused but applied anyway would show as a notice for #16.
    let refused = issue_event(16, Utc::now(), Utc::now(), &[], &[HIGHEST], false).to_string();

    let wrong_token = app.post(&json_headers("wrong"), refused.clone()).await;
    assert_eq!(wrong_token.status(), 401);
    let missing_token = app
        .post(
            &[
                ("X-Gitlab-Event", "Issue Hook"),
                ("Content-Type", "application/json"),
            ],
            refused.clone(),
        )
        .await;
    assert_eq!(missing_token.status(), 401);

    let malformed = app
        .post(&json_headers(SECRET), "{\"object_kind\": \"issue\",".into())
        .await;
    assert_eq!(malformed.status(), 400);
    let reason: Value = serde_json::from_str(&malformed.text().await.unwrap()).unwrap();
    assert!(
        reason["message"]
            .as_str()
            .unwrap()
            .contains("malformed payload"),
        "{reason}"
    );

    let incomplete = app
        .post(
            &json_headers(SECRET),
            json!({"object_kind": "issue", "project": {"path_with_namespace": "a/b"}}).to_string(),
        )
        .await;
    assert_eq!(incomplete.status(), 400);
    let reason: Value = serde_json::from_str(&incomplete.text().await.unwrap()).unwrap();
    assert!(
        reason["message"]
            .as_str()
            .unwrap()
            .contains("object_attributes"),
        "{reason}"
    );

    let oversized = app
        .post(
            &json_headers(SECRET),
            format!("{{\"pad\": \"{}\"}}", "x".repeat(8 * 1024)),
        )
        .await;
    assert_eq!(oversized.status(), 413);

    let not_json = app
        .post(
            &[
                ("X-Gitlab-Token", SECRET),
                ("X-Gitlab-Event", "Issue Hook"),
                ("Content-Type", "text/plain"),
            ],
            refused.clone(),
        )
        .await;
    assert_eq!(not_json.status(), 415);

    let push = app
        .post(
            &[
                ("X-Gitlab-Token", SECRET),
                ("X-Gitlab-Event", "Push Hook"),
                ("Content-Type", "application/json"),
            ],
            "{}".into(),
        )
        .await;
    assert_eq!(push.status(), 204);

    let valid = issue_event(6, Utc::now(), Utc::now(), &[], &[HIGHEST], false);
    assert_eq!(app.deliver("uuid-6", &valid).await, 200);
    wait_for(&app.notices, 1, Duration::from_secs(2)).await;
    assert_outbox_drained(&database).await;
    let sent: Vec<String> = app
        .notices
        .sent()
        .iter()
        .map(|(_, n)| format!("{} {}", n.issue, n.firing.step))
        .collect();
    assert_eq!(
        sent,
        vec!["acme/backend#6 start"],
        "only the valid delivery had an effect; nothing for the refused #16"
    );

    for ((event, result, expected), before) in refusals.into_iter().zip(before) {
        let now = app.metric(&counter(event, result)).await.unwrap_or(0.0);
        assert_eq!(now - before, expected, "{event} {result}");
    }
    let (_, metrics) = app.get("/metrics").await;
    for line in [
        "labelwarden_clocks{policy=\"fast-critical\",status=\"running\"}",
        "labelwarden_outbox_pending",
        "labelwarden_scheduler_lag_seconds",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn failed_sends_are_retried_until_delivered_once_in_order_and_hopeless_ones_stay_visible() {
    let dir = tempfile::tempdir().unwrap();
    let notices = Recorder::default();
    let flaky = Flaky {
        recorder: notices.clone(),
        temporary_failures: 2,
        attempts: Arc::default(),
    };
    let app = spawn(
        &dir.path().join("db.sqlite"),
        1024 * 1024,
        flaky.clone(),
        notices.clone(),
    )
    .await;
    let labelled = Utc::now();
    app.deliver(
        "uuid-7a",
        &issue_event(7, labelled, labelled, &[], &[HIGHEST], false),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    app.deliver(
        "uuid-7b",
        &issue_event(7, labelled, Utc::now(), &[HIGHEST], &[HIGHEST], true),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    // start, warning and resolution each failed twice, then went out once, in
    // order; the breach failed for good and did not hold the thread back.
    assert_eq!(
        notices.steps(),
        vec!["start", "before_deadline:1s", "resolved"]
    );
    let attempts = flaky.attempts.lock().unwrap().clone();
    assert_eq!(attempts["acme/backend#7/start"], 3);
    assert_eq!(
        attempts["acme/backend#7/breach"], 3,
        "given up after the permanent error"
    );

    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("labelwarden_outbox_failed 1"), "{metrics}");
    assert!(
        metrics.contains("labelwarden_outbox_pending 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "labelwarden_actions_failed_total{policy=\"fast-critical\",kind=\"permanent\"}"
        ),
        "{metrics}"
    );
    app.stop().await;
}
