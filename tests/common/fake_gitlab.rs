//! A local stand-in for GitLab's REST API v4 that answers with the
//! documented shapes: issues (project and group listings with `state`,
//! `labels` (AND), `updated_after`, `search`; creation and edits), resource label and state events,
//! notes, label edits and hooks; repository files and merge-request notes
//! ([`repository`]); offset pagination with `X-Page`,
//! `X-Per-Page`, `X-Total`, `X-Total-Pages`, `X-Next-Page` and `Link`;
//! `PRIVATE-TOKEN` auth with GitLab's 401 body; 404 bodies; 429 with
//! `Retry-After`; and an optional delay on every answer.

#[path = "fake_gitlab/accounts.rs"]
mod accounts;
#[path = "fake_gitlab/issue.rs"]
mod issue;
pub use issue::{FakeIssue, project_id};
#[path = "fake_gitlab/limits.rs"]
mod limits;
#[path = "fake_gitlab/pages.rs"]
mod pages;
use pages::page;
#[path = "fake_gitlab/repository.rs"]
mod repository;
#[path = "fake_gitlab/routes.rs"]
mod routes;
use routes::*;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub const TOKEN: &str = "glpat-test-token";

#[derive(Default)]
struct Inner {
    issues: Vec<FakeIssue>,
    /// Projects that exist, as (path, id): once an issue was added to one,
    /// it stays when its issues are deleted.
    projects: Vec<(String, u64)>,
    /// Paths projects had before a rename, and the id each leads to, as
    /// GitLab keeps redirect routes.
    redirects: Vec<(String, u64)>,
    /// (project or group path, hook JSON)
    hooks: Vec<(String, Value)>,
    requests: Vec<String>,
    delay: Duration,
    rate_limited_calls: u32,
    retry_after_seconds: u32,
    failing_calls: u32,
    /// The id of the last note created through the API.
    next_note_id: u64,
    accounts: accounts::Accounts,
    repositories: repository::Repositories,
    announced: Option<limits::Announced>,
    /// Listings longer than this are served without totals (GitLab:
    /// 10 000); tests lower it to see a client cope.
    counted_up_to: Option<usize>,
    /// Requests being answered now (waiting out the delay), and the most
    /// at once.
    in_flight: usize,
    peak_in_flight: usize,
}

#[derive(Clone, Default)]
pub struct FakeGitLab {
    inner: Arc<Mutex<Inner>>,
}

/// The fake, listening.
pub struct Running {
    pub gitlab: FakeGitLab,
    /// What `GITLAB_URL` would be.
    pub url: String,
}

impl Running {
    /// `serve` reconciling with this fake every `every` over `scopes`
    /// (empty: the projects the store knows), closed issues of the last
    /// day included.
    pub fn reconcile(
        &self,
        every: std::time::Duration,
        scopes: Vec<labelwarden::gitlab::history::Scope>,
    ) -> labelwarden::jobs::reconcile::ReconcileConfig {
        labelwarden::jobs::reconcile::ReconcileConfig {
            reader: self.reader(),
            every,
            scopes,
            closed_within: chrono::TimeDelta::hours(24),
            // Every pass full unless a test asks otherwise.
            full_every: std::time::Duration::ZERO,
        }
    }

    /// The real GitLab reader, pointed at this fake (see [`Self::client`]).
    pub fn reader(&self) -> labelwarden::gitlab::history::IssueReader {
        labelwarden::gitlab::history::IssueReader::new(self.client(10))
    }

    /// The real GitLab writer, pointed at this fake (see [`Self::client`]).
    pub fn writer(&self) -> labelwarden::gitlab::actions::IssueWriter {
        labelwarden::gitlab::actions::IssueWriter::new(self.client(5))
    }

    /// The real client, pointed at this fake with its token: 4 requests
    /// at a time, retries `first_retry_ms` apart to begin with.
    fn client(&self, first_retry_ms: u64) -> labelwarden::gitlab::client::GitLabClient {
        use labelwarden::gitlab::client::{GitLabClient, GitLabSettings};
        GitLabClient::new(GitLabSettings {
            url: self.url.clone(),
            token: secrecy::SecretString::from(TOKEN.to_owned()),
            concurrency: 4,
            first_retry: std::time::Duration::from_millis(first_retry_ms),
        })
        .unwrap()
    }
}

impl FakeGitLab {
    pub async fn start() -> Running {
        let gitlab = FakeGitLab::default();
        let router = Router::new()
            .route(
                "/api/v4/projects/{project}/issues",
                get(project_issues).post(create_issue),
            )
            .route("/api/v4/groups/{group}/issues", get(group_issues))
            .route(
                "/api/v4/projects/{project}/issues/{iid}/resource_label_events",
                get(label_events),
            )
            .route(
                "/api/v4/projects/{project}/issues/{iid}/resource_state_events",
                get(state_events),
            )
            .route(
                "/api/v4/projects/{project}/issues/{iid}/notes",
                get(list_notes).post(create_note),
            )
            .route(
                "/api/v4/projects/{project}/issues/{iid}/notes/{note}",
                put(edit_note),
            )
            .route(
                "/api/v4/projects/{project}/issues/{iid}",
                get(single_issue).put(edit_issue),
            )
            .route("/api/v4/projects/{project}", get(single_project))
            .route("/api/v4/projects/{project}/hooks", get(hooks))
            .route("/api/v4/groups/{group}/hooks", get(hooks))
            .route(
                "/api/v4/personal_access_tokens/self",
                get(accounts::token_self),
            )
            .route("/api/v4/users", get(accounts::users))
            .route(
                "/api/v4/projects/{project}/repository/tree",
                get(repository::tree),
            )
            .route(
                "/api/v4/projects/{project}/repository/files/{file_path}/raw",
                get(repository::raw_file),
            )
            .route(
                "/api/v4/projects/{project}/merge_requests/{iid}/notes",
                get(repository::list_merge_request_notes)
                    .post(repository::create_merge_request_note),
            )
            .route(
                "/api/v4/projects/{project}/merge_requests/{iid}/notes/{note}",
                put(repository::edit_merge_request_note),
            )
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                gitlab.clone(),
                limits::announce,
            ))
            .with_state(gitlab.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Running {
            gitlab,
            url: format!("http://{address}"),
        }
    }

    /// A webhook on a project or group, as the hooks API lists it.
    pub fn add_hook(
        &self,
        path: &str,
        url: &str,
        alert_status: &str,
        disabled_until: Option<DateTime<Utc>>,
    ) {
        let mut inner = self.lock();
        let id = inner.hooks.len() + 1;
        inner.hooks.push((
            path.to_owned(),
            json!({
                "id": id,
                "url": url,
                "created_at": "2026-01-01T00:00:00Z",
                "push_events": false,
                "issues_events": true,
                "confidential_issues_events": true,
                "merge_requests_events": false,
                "enable_ssl_verification": true,
                "alert_status": alert_status,
                "disabled_until": disabled_until,
            }),
        ));
    }

    pub fn add(&self, issue: FakeIssue) {
        let mut inner = self.lock();
        let project = (issue.project.clone(), issue.project_id);
        if !inner.projects.contains(&project) {
            inner.projects.push(project);
        }
        inner.issues.push(issue);
    }

    /// Every answer waits this long first.
    pub fn delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// The next `calls` calls answer 429 with `Retry-After: seconds`.
    pub fn rate_limit(&self, calls: u32, seconds: u32) {
        let mut inner = self.lock();
        inner.rate_limited_calls = calls;
        inner.retry_after_seconds = seconds;
    }

    /// Issue listings with more than `most` results are served without
    /// `X-Total`, `X-Total-Pages` and `rel="last"`, as GitLab does above
    /// 10 000.
    pub fn count_totals_up_to(&self, most: usize) {
        self.lock().counted_up_to = Some(most);
    }

    /// The most requests that were being answered at once.
    pub fn peak_in_flight(&self) -> usize {
        self.lock().peak_in_flight
    }

    /// The next `calls` calls answer 502.
    pub fn fail(&self, calls: u32) {
        self.lock().failing_calls = calls;
    }

    /// Changes an issue as someone in GitLab would (no webhook is sent).
    pub fn update(&self, project: &str, iid: u64, change: impl FnOnce(FakeIssue) -> FakeIssue) {
        let mut inner = self.lock();
        let slot = inner
            .issues
            .iter_mut()
            .find(|i| i.project == project && i.iid == iid)
            .expect("issue exists");
        *slot = change(slot.clone());
    }

    /// Deletes an issue, as an admin or its project's owner may: the API
    /// answers 404 for it from now on.
    pub fn delete(&self, project: &str, iid: u64) {
        self.lock()
            .issues
            .retain(|i| !(i.project == project && i.iid == iid));
    }

    /// Moves an issue to another project, as GitLab does: a new issue there
    /// (created `at`, with the labels, label history and notes copied),
    /// and the old one closed naming it.
    pub fn move_issue(&self, project: &str, iid: u64, to: &str, to_iid: u64, at: DateTime<Utc>) {
        let old = self.issue(project, iid);
        let mut new = FakeIssue::new(to, to_iid, at);
        new.labels = old.labels.clone();
        new.label_events = old.label_events.clone();
        new.notes = old.notes.clone();
        new.assignees = old.assignees.clone();
        new.title = old.title.clone();
        let new_id = new.id();
        self.add(new);
        self.update(project, iid, |issue| {
            let mut closed = issue.close(at);
            closed.moved_to = Some(new_id);
            closed
        });
    }

    /// Renames (or transfers) a project, as its owner would: its issues,
    /// with their ids, histories and notes, are now under `to`.
    pub fn rename_project(&self, from: &str, to: &str) {
        let mut inner = self.lock();
        for issue in inner.issues.iter_mut().filter(|i| i.project == from) {
            issue.project = to.to_owned();
        }
        let mut renamed = Vec::new();
        for project in inner.projects.iter_mut().filter(|p| p.0 == from) {
            project.0 = to.to_owned();
            renamed.push((from.to_owned(), project.1));
        }
        inner.redirects.extend(renamed);
    }

    /// Every issue of a project as the fake holds it now, by iid.
    pub fn issues_of(&self, project: &str) -> Vec<FakeIssue> {
        let mut found: Vec<FakeIssue> = self
            .lock()
            .issues
            .iter()
            .filter(|i| i.project == project)
            .cloned()
            .collect();
        found.sort_by_key(|i| i.iid);
        found
    }

    /// The issue as the fake holds it now.
    pub fn issue(&self, project: &str, iid: u64) -> FakeIssue {
        find(&self.lock(), project, iid)
            .cloned()
            .expect("issue exists")
    }

    /// `METHOD path?query` of every request, in order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Logs the request and says how it must be answered before the route
    /// looks at it: auth, scripted failures, the delay.
    /// A request about one issue: the front door first, then `answer` with
    /// the issue, or `404 Project Not Found` as GitLab says when the
    /// project or issue is not there.
    async fn on_issue(
        &self,
        (method, uri, headers): (&str, &Uri, &HeaderMap),
        project: &str,
        iid: u64,
        answer: impl FnOnce(&mut FakeIssue, &mut u64) -> Response,
    ) -> Response {
        if let Some(refused) = self.front_door(method, uri, headers).await {
            return refused;
        }
        let mut inner = self.lock();
        let Inner {
            issues,
            next_note_id,
            ..
        } = &mut *inner;
        match issues.iter_mut().find(|i| i.is_in(project) && i.iid == iid) {
            Some(issue) => answer(issue, next_note_id),
            None => project_not_found(),
        }
    }

    async fn front_door(&self, method: &str, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        let delay = {
            let mut inner = self.lock();
            inner.requests.push(format!("{method} {uri}"));
            inner.in_flight += 1;
            inner.peak_in_flight = inner.peak_in_flight.max(inner.in_flight);
            inner.delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut inner = self.lock();
        inner.in_flight -= 1;
        if inner.rate_limited_calls > 0 {
            inner.rate_limited_calls -= 1;
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"message": "429 Too Many Requests"})),
            )
                .into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(inner.retry_after_seconds));
            return Some(response);
        }
        if inner.failing_calls > 0 {
            inner.failing_calls -= 1;
            return Some((StatusCode::BAD_GATEWAY, "502 Bad Gateway").into_response());
        }
        if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"message": "401 Unauthorized"})),
                )
                    .into_response(),
            );
        }
        None
    }
}
