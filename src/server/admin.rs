//! The admin API under `/admin/`: the clocks the store holds, the notices
//! waiting or failed, resending failed ones, and mutes, for operators and
//! their tools. Off unless `LABELWARDEN_ADMIN_TOKEN` is set; every request must
//! carry it as `Authorization: Bearer …` (401 otherwise, compared in
//! constant time). Every action that changes something is logged with
//! what it did. Confidential issues' titles are never in an answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::App;
use crate::inspect::ClockFilter;
use crate::issue::IssueRef;
use crate::store::Store;
use crate::store::mutes::MuteScope;
use crate::store::queued::{QueueFilter, QueuedNotice, ResendSelection};

/// The environment variable holding the admin API's bearer token.
pub const TOKEN_ENV: &str = "LABELWARDEN_ADMIN_TOKEN";

/// Whether the request carries the admin token.
fn authorized<S>(app: &App<S>, headers: &HeaderMap) -> bool {
    let Some(token) = &app.admin_token else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = token.expose_secret().as_bytes();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({ "error": "the admin API needs `Authorization: Bearer` with LABELWARDEN_ADMIN_TOKEN" })),
    )
        .into_response()
}

fn failed(what: &str, error: impl std::fmt::Display) -> Response {
    tracing::error!(error = %error, "admin API: {what}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": format!("{what}: the store did not answer") })),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct ClocksQuery {
    policy: Option<String>,
    status: Option<String>,
}

/// `GET /admin/clocks?policy=&status=`
pub async fn clocks<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    Query(query): Query<ClocksQuery>,
) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    tracing::info!(policy = ?query.policy, status = ?query.status, "admin API: clocks listed");
    let filter = ClockFilter {
        policy: query.policy,
        status: query.status,
        issues: None,
    };
    let policies = &app.context.policies;
    match crate::inspect::clocks(&app.context.store, policies, &filter, Utc::now()).await {
        Ok(clocks) => Json(clocks).into_response(),
        Err(e) => failed("cannot read the clocks", e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ClockQuery {
    issue: String,
}

/// `GET /admin/clock?issue=group/project%23123`: one issue's stored story.
pub async fn clock<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    Query(query): Query<ClockQuery>,
) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    let issue = match IssueRef::parse(&query.issue) {
        Ok(issue) => issue,
        Err(message) => return unprocessable(&message),
    };
    tracing::info!(%issue, "admin API: an issue's story read");
    let policies = &app.context.policies;
    match crate::inspect::issue_story(&app.context.store, policies, &issue, Utc::now()).await {
        Ok(Some(story)) => Json(story).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("{issue} is not in the store") })),
        )
            .into_response(),
        Err(e) => failed("cannot read the issue's story", e),
    }
}

#[derive(Debug, Deserialize)]
pub struct OutboxQuery {
    #[serde(default)]
    failed: bool,
    channel: Option<String>,
    policy: Option<String>,
}

/// `GET /admin/outbox?failed=true&channel=&policy=`
pub async fn outbox<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    Query(query): Query<OutboxQuery>,
) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    tracing::info!(failed = query.failed, channel = ?query.channel, policy = ?query.policy, "admin API: outbox listed");
    let filter = QueueFilter {
        failed_only: query.failed,
        channel: query.channel,
        policy: query.policy,
    };
    match app.context.store.queued_notices(&filter, Utc::now()).await {
        Ok(notices) => {
            let shown: Vec<QueuedNotice> =
                notices.into_iter().map(QueuedNotice::redacted).collect();
            Json(shown).into_response()
        }
        Err(e) => failed("cannot read the outbox", e),
    }
}

/// What `POST /admin/outbox/resend` takes: one of the three.
#[derive(Debug, Deserialize)]
pub struct ResendRequest {
    channel: Option<String>,
    id: Option<i64>,
    #[serde(default)]
    all_failed: bool,
}

/// `POST /admin/outbox/resend` with `{"channel": …}`, `{"id": …}` or
/// `{"all_failed": true}`.
pub async fn resend<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    Json(request): Json<ResendRequest>,
) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    let selection = match (request.channel, request.id, request.all_failed) {
        (Some(channel), None, false) => ResendSelection::Channel(channel),
        (None, Some(id), false) => ResendSelection::Id(id),
        (None, None, true) => ResendSelection::AllFailed,
        _ => return unprocessable("give one of `channel`, `id` or `all_failed: true`"),
    };
    match app.context.store.resend(&selection, Utc::now()).await {
        Ok(queued) => {
            tracing::warn!(selection = ?selection, queued, "admin API: failed notices queued again");
            app.context.notices_waiting.notify_one();
            Json(json!({ "queued": queued })).into_response()
        }
        Err(e) => failed("cannot queue the notices again", e),
    }
}

/// `GET /admin/mutes`: those going on, and those ended but not yet said.
pub async fn mutes<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    tracing::info!("admin API: mutes listed");
    match app.context.store.mutes(Utc::now()).await {
        Ok(mutes) => Json(mutes).into_response(),
        Err(e) => failed("cannot read the mutes", e),
    }
}

/// What `POST /admin/mutes` takes: `{"policy" | "channel" | "project":
/// NAME, "until": RFC 3339, "reason": TEXT}`.
#[derive(Debug, Deserialize)]
pub struct MuteRequest {
    policy: Option<String>,
    channel: Option<String>,
    project: Option<String>,
    until: chrono::DateTime<Utc>,
    reason: String,
}

/// `POST /admin/mutes`: mutes a policy, a channel or a project.
pub async fn mute<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    Json(request): Json<MuteRequest>,
) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    let now = Utc::now();
    let (scope, target) = match (request.policy, request.channel, request.project) {
        (Some(policy), None, None) => (MuteScope::Policy, policy),
        (None, Some(channel), None) => (MuteScope::Channel, channel),
        (None, None, Some(project)) => (MuteScope::Project, project),
        _ => return unprocessable("give one of `policy`, `channel` or `project`"),
    };
    if request.until <= now {
        return unprocessable("`until` is in the past");
    }
    if request.reason.trim().is_empty() {
        return unprocessable("give a `reason`: it is shown in /readyz and the summary");
    }
    match app
        .context
        .store
        .add_mute(scope, &target, request.until, &request.reason, now)
        .await
    {
        Ok(mute) => {
            tracing::warn!(mute = mute.id, what = %mute.describe(), until = %mute.until, reason = %mute.reason, "admin API: muted");
            (StatusCode::CREATED, Json(mute)).into_response()
        }
        Err(e) => failed("cannot add the mute", e),
    }
}

/// `DELETE /admin/mutes/{id}`: ends a mute now; its summary follows.
pub async fn unmute<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    match app.context.store.end_mute(id, Utc::now()).await {
        Ok(true) => {
            tracing::warn!(mute = id, "admin API: unmuted");
            Json(json!({ "ended": id })).into_response()
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no mute {id} is going on") })),
        )
            .into_response(),
        Err(e) => failed("cannot end the mute", e),
    }
}

fn unprocessable(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "error": message })),
    )
        .into_response()
}
