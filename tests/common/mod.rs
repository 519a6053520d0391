//! What the end-to-end tests share: the real server started on a random
//! port over a SQLite file, and GitLab deliveries shaped as GitLab
//! documents them (timestamps moved to now).

#![allow(dead_code)] // each test binary uses its own part

pub mod fake_gitlab;
pub mod fake_slack;
pub mod notes;
pub mod postgres;
pub mod process;
pub mod slack_server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use labelwarden::jobs::Context;
use labelwarden::jobs::reconcile::ReconcileConfig;
use labelwarden::jobs::retry::RetryPolicy;
use labelwarden::jobs::slack_to_gitlab::SlackToGitLab;
use labelwarden::notify::Notifier;
use labelwarden::server::slack_events::SlackEventsConfig;
use labelwarden::server::{self, ServerConfig};
use labelwarden::store::sql::SqlStore;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret";
/// The admin API's bearer token in the in-process server.
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The Slack signing secret of the test servers.
pub const SLACK_SIGNING_SECRET: &str = "8f742231b10e8888abcd99test0secret";

/// Slack events as `serve` takes them by default; `to_gitlab` writes what
/// is said in Slack on a (fake) GitLab.
pub fn slack_events(to_gitlab: Option<SlackToGitLab>) -> SlackEventsConfig {
    SlackEventsConfig {
        signing_secret: SecretString::from(SLACK_SIGNING_SECRET.to_owned()),
        ack_reaction: "eyes".to_owned(),
        resolve_reaction: "white_check_mark".to_owned(),
        false_positive_reaction: "x".to_owned(),
        raise_reaction: "rotating_light".to_owned(),
        to_gitlab,
    }
}
pub const HIGHEST: &str = "priority::highest";

/// Polls `done` every 20 ms until it holds or `within` has passed; whether
/// it held, for a test that must fail loudly when it never did.
pub async fn wait_until(within: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    true
}

/// (issue, step) of every notice sent: a notifier that records, for tests
/// that only ask what was sent about which issue.
#[derive(Clone, Default)]
pub struct Sent(Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl labelwarden::notify::Notifier for Sent {
    async fn send(
        &self,
        notice: &labelwarden::notice::Notice,
        _: Option<&labelwarden::notice::Thread>,
    ) -> Result<labelwarden::notice::Delivered, labelwarden::notify::NotifyError> {
        self.0
            .lock()
            .unwrap()
            .push((notice.issue.to_string(), notice.firing.step.0.clone()));
        Ok(labelwarden::notice::Delivered::default())
    }
}

impl Sent {
    /// The steps sent about `issue`, in order.
    pub fn of(&self, issue: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(i, _)| i == issue)
            .map(|(_, step)| step.clone())
            .collect()
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The real server, running.
pub struct Server {
    pub address: String,
    pub http: reqwest::Client,
    /// The database it runs on.
    pub database_url: String,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

/// What a test server is given beyond its policies, database and notifier.
pub struct Options {
    /// Largest webhook body accepted.
    pub max_body_bytes: usize,
    /// How the outbox (and the Slack events job) space retries.
    pub retry: RetryPolicy,
    pub reconcile: Option<ReconcileConfig>,
    pub slack_events: SlackEventsConfig,
    /// What the store lets go of; `serve`'s default unless set.
    pub retention: Option<labelwarden::store::retention::Retention>,
    /// The status page at `/` and `/status`; off unless set.
    pub status_page: Option<labelwarden::server::status::StatusPageConfig>,
}

impl Default for Options {
    /// 1 MiB bodies, production retries, no reconcile, Slack events heard
    /// but nothing written to GitLab.
    fn default() -> Self {
        Options {
            max_body_bytes: 1024 * 1024,
            retry: RetryPolicy::default(),
            reconcile: None,
            slack_events: slack_events(None),
            retention: None,
            status_page: None,
        }
    }
}

/// The policies in `fixtures/{name}`.
pub fn fixture_policies(name: &str) -> Arc<labelwarden::policy::PolicySet> {
    Arc::new(labelwarden::policy::load(&fixtures().join(name)).expect("test policies load"))
}

/// The URL of a SQLite database in the file `database`.
pub fn sqlite(database: &Path) -> String {
    format!("sqlite://{}", database.display())
}

/// Starts the real server on a random port over the database at `url`
/// (SQLite or PostgreSQL).
pub async fn start_server<N: Notifier>(
    policies: Arc<labelwarden::policy::PolicySet>,
    url: &str,
    notifier: N,
    options: Options,
) -> Server {
    let Options {
        max_body_bytes,
        retry,
        reconcile,
        slack_events: events,
        retention,
        status_page,
    } = options;
    let store = SqlStore::connect(url).await.expect("store opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let config = ServerConfig {
        secrets: vec![SecretString::from(SECRET.to_owned())],
        max_body_bytes,
        reconcile,
        slack_events: Some(events),
        admin_token: Some(SecretString::from(ADMIN_TOKEN.to_owned())),
        status_page,
    };
    let mut context = Context::new(store, policies).with_retry(retry);
    if let Some(retention) = retention {
        context.retention = retention;
    }
    let context = Arc::new(context);
    let task = tokio::spawn(server::run(
        listener,
        config,
        context,
        Arc::new(notifier),
        shutdown.clone(),
    ));
    Server {
        address,
        database_url: url.to_owned(),
        http: labelwarden::http_client::builder().build().unwrap(),
        shutdown,
        task,
    }
}

impl Server {
    /// Posts a Slack event signed now with the test app's secret, as Slack
    /// sends it; Slack must get 200.
    pub async fn slack_event_now(&self, body: &Value) {
        let (status, answer) = self
            .slack_event(body, Utc::now().timestamp(), SLACK_SIGNING_SECRET)
            .await;
        assert_eq!(status, 200, "{answer}");
    }

    /// Posts a Slack Events API request signed as Slack signs it, at
    /// `signed_at`, with `secret`; the status and body of the answer.
    pub async fn slack_event(&self, body: &Value, signed_at: i64, secret: &str) -> (u16, String) {
        let body = body.to_string();
        let signature =
            labelwarden::slack::events::sign(secret.as_bytes(), signed_at, body.as_bytes());
        let answer = self
            .http
            .post(format!("{}/webhooks/slack", self.address))
            .header("Content-Type", "application/json")
            .header("X-Slack-Request-Timestamp", signed_at.to_string())
            .header("X-Slack-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap())
    }

    pub async fn post(&self, headers: &[(&str, &str)], body: String) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/webhooks/gitlab", self.address))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("server answers")
    }

    /// Posts an issue delivery as GitLab does, with its UUID.
    pub async fn deliver(&self, uuid: &str, payload: &Value) -> u16 {
        let headers = [
            ("X-Gitlab-Token", SECRET),
            ("X-Gitlab-Event", "Issue Hook"),
            ("X-Gitlab-Event-UUID", uuid),
            ("Content-Type", "application/json"),
        ];
        self.post(&headers, payload.to_string())
            .await
            .status()
            .as_u16()
    }

    /// The value of the first `/metrics` line that starts with `series`
    /// (a name with its labels, as Prometheus text writes them).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, metrics) = self.get("/metrics").await;
        metrics
            .lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }

    /// What the server's store holds now, read from the database itself:
    /// `/metrics` gauges are process-wide, and tests run side by side.
    pub async fn stats(&self) -> labelwarden::store::StoreStats {
        use labelwarden::store::Store;
        let store = SqlStore::connect(&self.database_url)
            .await
            .expect("store opens");
        store.stats(chrono::Utc::now()).await.expect("stats")
    }

    /// Every notice was sent and none failed for good, as the store says.
    pub async fn assert_outbox_empty(&self) {
        let stats = self.stats().await;
        assert_eq!(
            (stats.outbox_pending, stats.outbox_failed),
            (0, 0),
            "notices pending and failed"
        );
    }

    /// GETs `path`: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("server answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

pub fn gitlab_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn label(title: &str) -> Value {
    json!({ "id": 900, "title": title, "color": "#dc143c", "project_id": 7, "type": "GroupLabel", "group_id": 3 })
}

/// A delivery built on GitLab's documented issue event: issue `iid`, now
/// labelled `after`, previously `before`, optionally closing it.
pub fn issue_event(
    iid: u64,
    created: DateTime<Utc>,
    at: DateTime<Utc>,
    before: &[&str],
    after: &[&str],
    closing: bool,
) -> Value {
    let mut payload: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("gitlab/issue_hook_documented.json")).unwrap(),
    )
    .unwrap();
    let labels: Vec<Value> = after.iter().map(|l| label(l)).collect();
    payload["project"]["path_with_namespace"] = json!("acme/backend");
    // The id the fake GitLab's API gives the same project.
    let project_id = fake_gitlab::project_id("acme/backend");
    payload["project"]["id"] = json!(project_id);
    let attributes = &mut payload["object_attributes"];
    attributes["project_id"] = json!(project_id);
    attributes["id"] = json!(project_id * 100_000 + iid);
    attributes["iid"] = json!(iid);
    attributes["title"] = json!(format!("Checkout broken #{iid}"));
    attributes["created_at"] = json!(gitlab_time(created));
    attributes["updated_at"] = json!(gitlab_time(at));
    attributes["labels"] = json!(labels);
    attributes["action"] = json!(if closing { "close" } else { "update" });
    attributes["state"] = json!(if closing { "closed" } else { "opened" });
    if closing {
        attributes["closed_at"] = json!(gitlab_time(at));
    }
    payload["labels"] = json!(labels);
    let mut changes = json!({ "updated_at": { "previous": null, "current": gitlab_time(at) } });
    if before != after {
        changes["labels"] = json!({
            "previous": before.iter().map(|l| label(l)).collect::<Vec<_>>(),
            "current": labels,
        });
    }
    if closing {
        changes["state_id"] = json!({ "previous": 1, "current": 2 });
    }
    payload["changes"] = changes;
    payload
}

/// The issue numbers of `project` a text names (`acme/backend#12`), in
/// order, each once.
pub fn issues_named(shown: &str, project: &str) -> Vec<u64> {
    let marker = format!("{project}#");
    let mut issues: Vec<u64> = shown
        .split(marker.as_str())
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    issues.sort_unstable();
    issues.dedup();
    issues
}

/// A copy of the shipped `policies/` (and its `tests/`), each policy file
/// passed through `edit` first: for tests that change one thing about
/// the shipped setup.
pub fn shipped_policies_copy(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.is_dir() {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            for test in std::fs::read_dir(&path).unwrap() {
                let test = test.unwrap().path();
                std::fs::copy(&test, dir.path().join(name).join(test.file_name().unwrap()))
                    .unwrap();
            }
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(dir.path().join(name), edit(&text)).unwrap();
        }
    }
    dir
}

/// The issue numbers whose label histories were read among `requests`
/// (the fake GitLab's request log), sorted.
pub fn histories_read(requests: &[String]) -> Vec<u64> {
    let mut read: Vec<u64> = requests
        .iter()
        .filter_map(|r| {
            let rest = r.split("/issues/").nth(1)?;
            let (iid, what) = rest.split_once('/')?;
            what.starts_with("resource_label_events")
                .then(|| iid.parse().ok())
                .flatten()
        })
        .collect();
    read.sort_unstable();
    read
}

/// The binary run from the repository's root on `args`, with no policy
/// folder from the environment.
pub fn labelwarden_in_repo(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("LABELWARDEN_POLICIES")
        .output()
        .expect("the binary runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A step id of the ledger (`start`, `before_deadline:8s`, `breach`) as
/// the step labelwarden's messages tell of (see `fake_slack::step_of`).
pub fn step_kind(step: &str) -> &'static str {
    match step {
        "start" => "start",
        "breach" => "breach",
        s if s.starts_with("before_deadline") => "warning",
        other => panic!("a step these policies do not have: {other}"),
    }
}
