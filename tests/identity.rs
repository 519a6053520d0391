//! The clock follows the issue, not its path: a project renamed or
//! transferred keeps its issues' clocks, ledgers and Slack threads, and a
//! store written by the release before this keeps them through the
//! upgrade. Deliveries are GitLab's documented issue hook with the ids it
//! carries (`project.id`).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{HIGHEST, Options, fixture_policies, issue_event, sqlite, start_server, wait_until};
use labelwarden::notify::{Delivered, Notice, Notifier, NotifyError, Thread};
use serde_json::{Value, json};
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

/// A notice as sent: issue, step, and the thread it was handed.
type Sent = (String, String, Option<Thread>);

/// A notice as sent, when, its status words, and the deadline it carried.
type Record = (Sent, DateTime<Utc>, String, Option<DateTime<Utc>>);

/// Every notice sent. A notice with no thread starts one, numbered in order.
#[derive(Clone, Default)]
struct Threads(Arc<Mutex<Vec<Record>>>);

impl Notifier for Threads {
    async fn send(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> Result<Delivered, NotifyError> {
        let mut sent = self.0.lock().unwrap();
        let issue = notice.issue.to_string();
        let step = notice.firing.step.0.clone();
        sent.push((
            (issue, step, thread.cloned()),
            Utc::now(),
            notice.status.clone(),
            notice.deadline,
        ));
        let thread = thread.cloned().unwrap_or_else(|| Thread {
            channel_id: "C0ALERTS01".into(),
            ts: format!("1800000000.{:06}", sent.len()),
        });
        Ok(Delivered {
            thread: Some(thread),
        })
    }
}

impl Threads {
    fn sent(&self) -> Vec<Sent> {
        let sent = self.0.lock().unwrap();
        sent.iter().map(|(notice, ..)| notice.clone()).collect()
    }

    /// The deadline the notice of `step` for `issue` carried.
    fn deadline(&self, issue: &str, step: &str) -> DateTime<Utc> {
        let sent = self.0.lock().unwrap();
        sent.iter()
            .find(|((i, s, _), ..)| i == issue && s == step)
            .and_then(|(.., deadline)| *deadline)
            .expect("sent, with a deadline")
    }

    /// The status words of each notice, in order.
    fn statuses(&self) -> Vec<String> {
        let sent = self.0.lock().unwrap();
        sent.iter()
            .map(|(_, _, status, _)| status.clone())
            .collect()
    }
}

fn thread(ts: &str) -> Option<Thread> {
    Some(Thread {
        channel_id: "C0ALERTS01".into(),
        ts: ts.into(),
    })
}

/// The same delivery, with its project (the same id) now at `path`.
fn at_path(mut payload: Value, path: &str) -> Value {
    payload["project"]["path_with_namespace"] = json!(path);
    let iid = payload["object_attributes"]["iid"].clone();
    payload["object_attributes"]["url"] =
        json!(format!("https://gitlab.example.com/{path}/-/issues/{iid}"));
    payload
}

#[tokio::test]
async fn a_renamed_project_keeps_one_clock_and_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-room"),
        &sqlite(&dir.path().join("db.sqlite")),
        sent.clone(),
        Options::default(),
    )
    .await;
    let labelled = Utc::now();
    let label = issue_event(5, labelled, labelled, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("rename-1", &label).await, 200);
    assert!(wait_until(Duration::from_secs(1), || sent.sent().len() == 1).await);

    // The project is renamed; the next delivery (an edit) names the new path.
    let edited = at_path(
        issue_event(5, labelled, Utc::now(), &[HIGHEST], &[HIGHEST], false),
        "acme/checkout",
    );
    assert_eq!(server.deliver("rename-2", &edited).await, 200);
    assert!(
        wait_until(Duration::from_secs(12), || sent.sent().len() >= 3).await,
        "{:?}",
        sent.sent()
    );
    server.assert_outbox_empty().await;
    let first = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#5".into(), "start".into(), None),
            (
                "acme/checkout#5".into(),
                "before_deadline:4s".into(),
                first.clone()
            ),
            ("acme/checkout#5".into(), "breach".into(), first),
        ],
        "one clock, one thread; later messages show the new path"
    );
    // The clock is the one the first label started: 8 s from it.
    let deadline = labelled + chrono::TimeDelta::seconds(8);
    for step in ["before_deadline:4s", "breach"] {
        let carried = sent.deadline("acme/checkout#5", step);
        assert!(
            (carried - deadline).num_milliseconds().abs() <= 1,
            "{step}: {carried} for {deadline}"
        );
    }
    server.stop().await;
}

/// `serve` with the identity policies over a fresh SQLite file, reconciling
/// every 200 ms with `gitlab`, where issue `iid` of acme/backend is
/// labelled now; the label's webhook delivered, its start sent.
async fn reconciling(
    gitlab: &common::fake_gitlab::Running,
    iid: u64,
) -> (common::Server, Threads, tempfile::TempDir) {
    reconciling_in(gitlab, iid, vec![]).await
}

/// The same, reconciling `scopes` (empty: the projects the store knows).
async fn reconciling_in(
    gitlab: &common::fake_gitlab::Running,
    iid: u64,
    scopes: Vec<labelwarden::gitlab::history::Scope>,
) -> (common::Server, Threads, tempfile::TempDir) {
    use common::fake_gitlab::FakeIssue;

    let labelled = Utc::now();
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", iid, labelled).add_label(labelled, HIGHEST));
    let dir = tempfile::tempdir().unwrap();
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-identity"),
        &sqlite(&dir.path().join("db.sqlite")),
        sent.clone(),
        Options {
            reconcile: Some(gitlab.reconcile(Duration::from_millis(200), scopes)),
            ..Options::default()
        },
    )
    .await;
    let label = issue_event(iid, labelled, labelled, &[], &[HIGHEST], false);
    assert_eq!(server.deliver(&format!("label-{iid}"), &label).await, 200);
    assert!(wait_until(Duration::from_secs(1), || sent.sent().len() == 1).await);
    (server, sent, dir)
}

/// Waits for `passes` more reconcile passes to finish well.
async fn reconcile_passes(server: &common::Server, passes: f64) {
    let ok_runs = "labelwarden_reconcile_runs_total{outcome=\"ok\"} ";
    let runs = server.metric(ok_runs).await.unwrap_or(0.0);
    let mut now = runs;
    for _ in 0..150 {
        now = server.metric(ok_runs).await.unwrap_or(0.0);
        if now >= runs + passes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(now >= runs + passes, "{passes} more reconcile passes");
}

#[tokio::test]
async fn a_rename_no_webhook_told_of_is_found_by_reconcile() {
    let gitlab = common::fake_gitlab::FakeGitLab::start().await;
    let (server, sent, _dir) = reconciling(&gitlab, 60).await;
    // As the API tells it, #60 last changed before labelwarden first saw
    // the project: what reconcile reads of it is older than what the store
    // knows of the project, yet the path it reads is news.
    gitlab.gitlab.update("acme/backend", 60, |mut issue| {
        issue.updated_at -= chrono::TimeDelta::hours(1);
        issue
    });

    // Renamed, then closed, and no webhook says either.
    gitlab
        .gitlab
        .rename_project("acme/backend", "acme/checkout");
    reconcile_passes(&server, 2.0).await;
    // The rename alone was followed: the clock is kept under the new path.
    {
        use labelwarden::store::Store;
        let store = labelwarden::store::sql::SqlStore::connect(&server.database_url)
            .await
            .unwrap();
        let paths: Vec<String> = store
            .known_projects()
            .await
            .unwrap()
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(paths, vec!["acme/checkout"]);
    }
    gitlab
        .gitlab
        .update("acme/checkout", 60, |issue| issue.close(Utc::now()));
    assert!(
        wait_until(Duration::from_secs(3), || sent.sent().len() >= 2).await,
        "{:?}",
        sent.sent()
    );
    server.assert_outbox_empty().await;
    let first = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#60".into(), "start".into(), None),
            ("acme/checkout#60".into(), "resolved".into(), first),
        ],
        "the close reconcile found resolves the one clock, in its thread"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_issue_ends_its_clock_once() {
    let gitlab = common::fake_gitlab::FakeGitLab::start().await;
    let (server, sent, _dir) = reconciling(&gitlab, 62).await;
    gitlab.gitlab.delete("acme/backend", 62);
    assert!(
        wait_until(Duration::from_secs(3), || sent.sent().len() >= 2).await,
        "{:?}",
        sent.sent()
    );
    // More passes read it again and get 404 again: nothing more is said.
    reconcile_passes(&server, 3.0).await;
    server.assert_outbox_empty().await;
    let first = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#62".into(), "start".into(), None),
            ("acme/backend#62".into(), "gone:alerts".into(), first),
        ],
        "said once, in the thread"
    );
    assert_eq!(
        server.stats().await.clocks,
        vec![("critical-1h".to_owned(), "gone".to_owned(), 1)],
        "the clock ended"
    );
    server.stop().await;
}

/// GitLab's global id of issue `iid` of `project`, as the fake gives it.
fn global_id(project: &str, iid: u64) -> u64 {
    common::fake_gitlab::project_id(project) * 100_000 + iid
}

/// The old issue's close when it was moved to `to#to_iid`.
fn moved_close(iid: u64, labelled: DateTime<Utc>, to: &str, to_iid: u64) -> Value {
    let mut close = issue_event(iid, labelled, Utc::now(), &[HIGHEST], &[HIGHEST], true);
    close["object_attributes"]["moved_to_id"] = json!(global_id(to, to_iid));
    close
}

/// The new issue of a move: created now in `project`, with the labels.
fn opened_by_move(project: &str, iid: u64) -> Value {
    let now = Utc::now();
    let mut open = at_path(
        issue_event(iid, now, now, &[HIGHEST], &[HIGHEST], false),
        project,
    );
    let project_id = common::fake_gitlab::project_id(project);
    open["project"]["id"] = json!(project_id);
    open["object_attributes"]["project_id"] = json!(project_id);
    open["object_attributes"]["id"] = json!(global_id(project, iid));
    open["object_attributes"]["action"] = json!("open");
    open
}

/// A move of #5 to acme/other#12, its two hooks in `order`: the clock and
/// the thread go with it, no resolution is said, and the warning and the
/// breach come when the first label said they would.
async fn a_move_carries_the_clock(new_issue_first: bool) {
    let dir = tempfile::tempdir().unwrap();
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-room"),
        &sqlite(&dir.path().join("db.sqlite")),
        sent.clone(),
        Options::default(),
    )
    .await;
    let labelled = Utc::now();
    let label = issue_event(5, labelled, labelled, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("move-label", &label).await, 200);
    assert!(wait_until(Duration::from_secs(1), || sent.sent().len() == 1).await);

    let close = moved_close(5, labelled, "acme/other", 12);
    let open = opened_by_move("acme/other", 12);
    let (first, second) = if new_issue_first {
        (open, close)
    } else {
        (close, open)
    };
    assert_eq!(server.deliver("move-1", &first).await, 200);
    assert_eq!(server.deliver("move-2", &second).await, 200);
    assert!(
        wait_until(Duration::from_secs(12), || sent.sent().len() >= 4).await,
        "{:?}",
        sent.sent()
    );
    server.assert_outbox_empty().await;
    let thread = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#5".into(), "start".into(), None),
            (
                "acme/other#12".into(),
                "moved:alerts".into(),
                thread.clone()
            ),
            (
                "acme/other#12".into(),
                "before_deadline:4s".into(),
                thread.clone()
            ),
            ("acme/other#12".into(), "breach".into(), thread),
        ],
        "one clock from the first label, one thread, no resolution"
    );
    let deadline = labelled + chrono::TimeDelta::seconds(8);
    for step in ["before_deadline:4s", "breach"] {
        let carried = sent.deadline("acme/other#12", step);
        assert!(
            (carried - deadline).num_milliseconds().abs() <= 1,
            "{step}: {carried} for {deadline}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_moved_issue_keeps_its_clock_and_thread_when_the_close_comes_first() {
    a_move_carries_the_clock(false).await;
}

#[tokio::test]
async fn a_moved_issue_keeps_its_clock_and_thread_when_the_new_issue_comes_first() {
    a_move_carries_the_clock(true).await;
}

/// The close of `iid` as a duplicate of `canonical` (same project).
fn duplicate_close(iid: u64, labelled: DateTime<Utc>, canonical: u64) -> Value {
    let mut close = issue_event(iid, labelled, Utc::now(), &[HIGHEST], &[HIGHEST], true);
    close["object_attributes"]["duplicated_to_id"] = json!(global_id("acme/backend", canonical));
    close
}

#[tokio::test]
async fn a_duplicate_close_hands_its_earlier_start_to_the_canonical_issue() {
    let dir = tempfile::tempdir().unwrap();
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-room"),
        &sqlite(&dir.path().join("db.sqlite")),
        sent.clone(),
        Options::default(),
    )
    .await;
    // #20 is labelled first; #21, the same bug, half a second later; then
    // #20 is closed as a duplicate of #21.
    let first = Utc::now();
    let label = issue_event(20, first, first, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("dup-label-20", &label).await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = Utc::now();
    let label = issue_event(21, second, second, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("dup-label-21", &label).await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let close = duplicate_close(20, first, 21);
    assert_eq!(server.deliver("dup-close-20", &close).await, 200);
    assert!(
        wait_until(Duration::from_secs(12), || {
            sent.sent()
                .iter()
                .any(|(issue, step, _)| issue == "acme/backend#21" && step == "breach")
        })
        .await,
        "{:?}",
        sent.sent()
    );
    server.assert_outbox_empty().await;
    let of = |iid: &str| -> Vec<String> {
        sent.sent()
            .into_iter()
            .filter(|(issue, _, _)| issue == iid)
            .map(|(_, step, _)| step)
            .collect()
    };
    assert_eq!(
        of("acme/backend#20"),
        vec!["start", "duplicate:alerts"],
        "no resolution, no warning after the close: the clock went on on #21"
    );
    assert_eq!(
        of("acme/backend#21"),
        vec!["start", "before_deadline:4s", "breach"]
    );
    // #21's deadline came from #20's start: 8 s after `first`, not after
    // `second` (at least half a second later).
    let carried = sent.deadline("acme/backend#21", "breach");
    let deadline = first + chrono::TimeDelta::seconds(8);
    assert!(
        (carried - deadline).num_milliseconds().abs() <= 1,
        "the breach's deadline {carried}, for {deadline} (#20's label); #21 was labelled at {second}"
    );
    let mut clocks = server.stats().await.clocks;
    clocks.sort();
    assert_eq!(
        clocks,
        vec![
            ("roomy-critical".to_owned(), "breached".to_owned(), 1),
            ("roomy-critical".to_owned(), "withdrawn".to_owned(), 1),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_duplicate_of_an_issue_the_policy_does_not_cover_is_withdrawn_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-identity"),
        &sqlite(&dir.path().join("db.sqlite")),
        sent.clone(),
        Options::default(),
    )
    .await;
    let now = Utc::now();
    let canonical = issue_event(23, now, now, &[], &["type::feature"], false);
    assert_eq!(server.deliver("dup-other-23", &canonical).await, 200);
    let label = issue_event(22, now, now, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("dup-label-22", &label).await, 200);
    assert!(wait_until(Duration::from_secs(1), || sent.sent().len() == 1).await);
    let close = duplicate_close(22, now, 23);
    assert_eq!(server.deliver("dup-close-22", &close).await, 200);
    assert!(wait_until(Duration::from_secs(2), || sent.sent().len() >= 2).await);
    server.assert_outbox_empty().await;
    let steps: Vec<(String, String)> = sent
        .sent()
        .into_iter()
        .map(|(issue, step, _)| (issue, step))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("acme/backend#22".into(), "start".into()),
            ("acme/backend#22".into(), "duplicate:alerts".into()),
        ],
        "said once, instead of the policy's withdrawn step; no resolution"
    );
    assert_eq!(
        sent.statuses()[1],
        "closed as a duplicate of acme/backend#23, which this policy does not cover: escalation withdrawn"
    );
    assert_eq!(
        server.stats().await.clocks,
        vec![("critical-1h".to_owned(), "withdrawn".to_owned(), 1)]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_duplicate_close_no_webhook_told_of_is_found_by_reconcile() {
    use common::fake_gitlab::FakeIssue;
    let gitlab = common::fake_gitlab::FakeGitLab::start().await;
    let (server, sent, _dir) = reconciling(&gitlab, 64).await;
    let now = Utc::now();
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 65, now).add_label(now, HIGHEST));
    let label = issue_event(65, now, now, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("label-65", &label).await, 200);
    assert!(wait_until(Duration::from_secs(1), || sent.sent().len() == 2).await);

    // Closed as a duplicate of #65 in GitLab; the webhook is lost.
    let canonical = gitlab.gitlab.issue("acme/backend", 65);
    gitlab.gitlab.update("acme/backend", 64, |issue| {
        issue.closed_as_duplicate_of(&canonical, Utc::now())
    });
    assert!(
        wait_until(Duration::from_secs(3), || sent.sent().len() >= 3).await,
        "{:?}",
        sent.sent()
    );
    reconcile_passes(&server, 2.0).await;
    server.assert_outbox_empty().await;
    let steps: Vec<(String, String)> = sent
        .sent()
        .into_iter()
        .map(|(issue, step, _)| (issue, step))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("acme/backend#64".into(), "start".into()),
            ("acme/backend#65".into(), "start".into()),
            ("acme/backend#64".into(), "duplicate:alerts".into()),
        ],
        "the close reconcile found is no resolution"
    );
    assert_eq!(
        sent.statuses()[2],
        "closed as a duplicate of acme/backend#65: the SLA clock goes on there, from this issue's start"
    );
    let mut clocks = server.stats().await.clocks;
    clocks.sort();
    assert_eq!(
        clocks,
        vec![
            ("critical-1h".to_owned(), "running".to_owned(), 1),
            ("critical-1h".to_owned(), "withdrawn".to_owned(), 1),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_move_no_webhook_told_of_is_followed_by_reconcile() {
    use labelwarden::gitlab::history::Scope;
    let gitlab = common::fake_gitlab::FakeGitLab::start().await;
    let scopes = vec![Scope::Group("acme".into())];
    let (server, sent, _dir) = reconciling_in(&gitlab, 66, scopes).await;
    // Moved to acme/other; neither hook reaches labelwarden.
    gitlab
        .gitlab
        .move_issue("acme/backend", 66, "acme/other", 13, Utc::now());
    assert!(
        wait_until(Duration::from_secs(3), || sent.sent().len() >= 2).await,
        "{:?}",
        sent.sent()
    );
    reconcile_passes(&server, 2.0).await;
    server.assert_outbox_empty().await;
    let first = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#66".into(), "start".into(), None),
            ("acme/other#13".into(), "moved:alerts".into(), first),
        ],
        "no resolution, no second start: the clock moved"
    );
    assert_eq!(
        server.stats().await.clocks,
        vec![("critical-1h".to_owned(), "running".to_owned(), 1)]
    );
    server.stop().await;
}

/// Creates, at `url`, the schema of migrations 1 to 7 and records them as
/// applied, as labelwarden's own migration step does.
async fn migrate_to_v7(
    pool: &sqlx::AnyPool,
    table: &str,
    migrations: &[labelwarden::store::migrations::Migration],
) {
    pool.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )))
    .await
    .unwrap();
    for migration in migrations.iter().filter(|m| m.version <= 7) {
        for statement in migration.statements {
            pool.execute(*statement).await.unwrap();
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (version, name, applied_at) VALUES ($1, $2, 0)"
        )))
        .bind(migration.version)
        .bind(migration.name)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// The rows of one section of `fixtures/upgrade/v7.sql`.
fn v7_rows(section: &str) -> Vec<String> {
    let text = std::fs::read_to_string(common::fixtures().join("upgrade/v7.sql")).unwrap();
    let mut current = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- section: ") {
            current = Some(name.to_owned());
        } else if line.starts_with("INSERT") && current.as_deref() == Some(section) {
            rows.push(line.to_owned());
        }
    }
    assert!(!rows.is_empty(), "section {section}");
    rows
}

async fn insert_rows(pool: &sqlx::AnyPool, section: &str) {
    for row in v7_rows(section) {
        pool.execute(sqlx::AssertSqlSafe(row)).await.unwrap();
    }
}

/// Starts `serve` on a store as release v7 left it (#5's clock running
/// and long past its deadline, with a thread; #6 met), then renames the
/// project and closes #5 under the new path.
async fn upgraded_store_story(url: &str) {
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-fast"),
        url,
        sent.clone(),
        Options::default(),
    )
    .await;
    // The first pass finds #5 due: its breach, late, in its v7 thread.
    assert!(wait_until(Duration::from_secs(2), || !sent.sent().is_empty()).await);
    // v7 stored no project ids: the first delivery after the upgrade (an
    // edit) names project 1 at the path the store knows it by.
    let created: DateTime<Utc> = "2026-11-29T03:03:02.479Z".parse().unwrap();
    let edit = issue_event(5, created, Utc::now(), &[HIGHEST], &[HIGHEST], false);
    assert_eq!(server.deliver("upgrade-edit-5", &edit).await, 200);
    let close = at_path(
        issue_event(5, created, Utc::now(), &[HIGHEST], &[HIGHEST], true),
        "acme/checkout",
    );
    assert_eq!(server.deliver("upgrade-close-5", &close).await, 200);
    assert!(wait_until(Duration::from_secs(2), || sent.sent().len() >= 2).await);
    server.assert_outbox_empty().await;
    let v7_thread = thread("1764000000.000200");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#5".into(), "breach".into(), v7_thread.clone()),
            ("acme/checkout#5".into(), "resolved".into(), v7_thread),
        ],
        "the v7 clock and thread go on, across the upgrade and the rename"
    );
    let mut clocks = server.stats().await.clocks;
    clocks.sort();
    assert_eq!(
        clocks,
        vec![
            ("fast-critical".to_owned(), "met".to_owned(), 1),
            ("fast-critical".to_owned(), "missed".to_owned(), 1),
        ],
        "#6's clock is still met; #5's missed"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_upgraded_sqlite_store_keeps_every_clock_and_thread() {
    let dir = tempfile::tempdir().unwrap();
    upgraded_store_story(&v7_sqlite(dir.path()).await).await;
}

/// A SQLite store in `dir` as release v7 left it; its URL.
async fn v7_sqlite(dir: &Path) -> String {
    sqlx::any::install_default_drivers();
    let main = dir.join("labelwarden.db");
    let intake = dir.join("labelwarden.intake.db");
    let open = |path: &Path| {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        async move { AnyPoolOptions::new().max_connections(1).connect(&url).await }
    };
    let pool = open(&main).await.unwrap();
    migrate_to_v7(
        &pool,
        "labelwarden_migrations",
        labelwarden::store::migrations::MIGRATIONS,
    )
    .await;
    insert_rows(&pool, "main").await;
    pool.close().await;
    let pool = open(&intake).await.unwrap();
    migrate_to_v7(
        &pool,
        "labelwarden_migrations",
        labelwarden::store::migrations::INTAKE_MIGRATIONS,
    )
    .await;
    insert_rows(&pool, "intake").await;
    pool.close().await;
    sqlite(&main)
}

#[tokio::test]
async fn a_project_renamed_before_its_id_was_known_is_followed_by_reconcile() {
    use common::fake_gitlab::{FakeGitLab, FakeIssue};

    // The v7 store knows acme/backend by its path only; GitLab renamed the
    // project to acme/checkout meanwhile (its old path redirects).
    let dir = tempfile::tempdir().unwrap();
    let url = v7_sqlite(dir.path()).await;
    let gitlab = FakeGitLab::start().await;
    let labelled: DateTime<Utc> = "2026-11-29T03:03:02.479Z".parse().unwrap();
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 5, labelled).add_label(labelled, HIGHEST));
    gitlab
        .gitlab
        .rename_project("acme/backend", "acme/checkout");
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-fast"),
        &url,
        sent.clone(),
        Options {
            reconcile: Some(gitlab.reconcile(Duration::from_secs(3600), vec![])),
            ..Options::default()
        },
    )
    .await;
    assert!(wait_until(Duration::from_secs(2), || !sent.sent().is_empty()).await);
    // Closed in GitLab: the restart's reconcile finds it under the new path.
    gitlab
        .gitlab
        .update("acme/checkout", 5, |issue| issue.close(Utc::now()));
    server.stop().await;
    let server = start_server(
        fixture_policies("policies-fast"),
        &url,
        sent.clone(),
        Options {
            reconcile: Some(gitlab.reconcile(Duration::from_secs(3600), vec![])),
            ..Options::default()
        },
    )
    .await;
    assert!(wait_until(Duration::from_secs(2), || sent.sent().len() >= 2).await);
    server.assert_outbox_empty().await;
    let v7_thread = thread("1764000000.000200");
    let steps: Vec<(String, String, Option<Thread>)> = sent.sent();
    assert_eq!(
        steps,
        vec![
            ("acme/backend#5".into(), "breach".into(), v7_thread.clone()),
            ("acme/checkout#5".into(), "resolved".into(), v7_thread),
        ],
        "found under its new path, in its v7 thread, with no second start"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_upgraded_postgres_store_keeps_every_clock_and_thread() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&database.url)
        .await
        .unwrap();
    use labelwarden::store::migrations::{
        INTAKE_TABLE, MAIN_TABLE, MIGRATIONS, POSTGRES_INTAKE_MIGRATIONS,
    };
    migrate_to_v7(&pool, MAIN_TABLE, MIGRATIONS).await;
    migrate_to_v7(&pool, INTAKE_TABLE, POSTGRES_INTAKE_MIGRATIONS).await;
    insert_rows(&pool, "main").await;
    insert_rows(&pool, "intake").await;
    // The rows name their `seq`; the sequence goes on after them.
    pool.execute("SELECT setval(pg_get_serial_sequence('deliveries', 'seq'), (SELECT MAX(seq) FROM deliveries))")
        .await
        .unwrap();
    pool.close().await;

    upgraded_store_story(&database.url).await;
    database.drop().await;
}
