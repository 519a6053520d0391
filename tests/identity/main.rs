//! The clock follows the issue, not its path: a project renamed or
//! transferred keeps its issues' clocks, ledgers and Slack threads, and a
//! store written by the release before this keeps them through the
//! upgrade. Deliveries are GitLab's documented issue hook with the ids it
//! carries (`project.id`).

#[path = "../common/mod.rs"]
mod common;
mod duplicates;
mod moves;
mod renames;
mod upgrade;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{HIGHEST, Options, fixture_policies, issue_event, sqlite, start_server, wait_until};
use labelwarden::notice::{Delivered, Notice, Thread};
use labelwarden::notify::{Notifier, NotifyError};
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
    assert!(wait_until(Duration::from_secs(20), || sent.sent().len() == 1).await);
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

/// GitLab's global id of issue `iid` of `project`, as the fake gives it.
fn global_id(project: &str, iid: u64) -> u64 {
    common::fake_gitlab::project_id(project) * 100_000 + iid
}
