//! `POST /webhooks/gitlab`: GitLab project and group webhooks.
//!
//! Bad input never gets a 5xx: GitLab disables a hook that keeps failing,
//! and an enforcer whose hook is disabled is blind. So: wrong or missing
//! token 401, wrong content type 415, too large 413, unreadable 400, an
//! event kind we do not handle 204. Comments (`Note Hook`) go to the
//! issue's alert threads where a policy asks ([`crate::jobs::comments`]). A 5xx means only "the delivery could
//! not be stored", which GitLab should retry. An accepted delivery is
//! stored before the 200 and processed after it.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::App;
use crate::gitlab::note_hook::{CommentEvent, parse_note_hook};
use crate::gitlab::webhook::{WebhookError, parse_issue_hook};
use crate::jobs::comments::Mirrored;
use crate::store::{Delivery, Recorded, Store};

/// `X-Gitlab-Event` values that carry issue and work item events.
const ISSUE_EVENTS: &[&str] = &["Issue Hook", "Confidential Issue Hook"];
/// `X-Gitlab-Event` values that carry comments (`Confidential Note Hook`:
/// internal notes, and comments on confidential issues).
const NOTE_EVENTS: &[&str] = &["Note Hook", "Confidential Note Hook"];

pub async fn receive<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = std::time::Instant::now();
    let event = header_str(&headers, "x-gitlab-event")
        .unwrap_or("")
        .to_owned();
    let reply = |status: StatusCode, result: &'static str, message: String| {
        metrics::counter!("labelwarden_webhook_deliveries_total", "event" => event_label(&event), "result" => result)
            .increment(1);
        metrics::histogram!("labelwarden_webhook_intake_seconds", "result" => result)
            .record(received.elapsed().as_secs_f64());
        (
            status,
            Json(json!({ "status": result, "message": message })),
        )
            .into_response()
    };

    if !token_accepted(&app.secrets, header_str(&headers, "x-gitlab-token")) {
        // The token itself is never logged.
        tracing::warn!(event = %event, "webhook refused: missing or wrong X-Gitlab-Token");
        return reply(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong X-Gitlab-Token".into(),
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let result = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "unreadable"
            };
            return reply(status, result, rejection.body_text());
        }
    };
    let is_json = header_str(&headers, header::CONTENT_TYPE.as_str()).is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json".into(),
        );
    }
    if NOTE_EVENTS.contains(&event.as_str()) {
        let (status, result, message) = comment(&app, &body, &event).await;
        return reply(status, result, message);
    }
    if !ISSUE_EVENTS.contains(&event.as_str()) {
        return reply(StatusCode::NO_CONTENT, "ignored", String::new());
    }
    let delivery = match parse_issue_hook(&body) {
        Ok(delivery) => delivery,
        Err(WebhookError::NotAnIssue(kind)) => {
            return reply(
                StatusCode::NO_CONTENT,
                "ignored",
                format!("object_kind {kind} is not handled"),
            );
        }
        Err(e @ WebhookError::Malformed(_)) => {
            tracing::warn!(event = %event, error = %e, "webhook refused: malformed payload");
            return reply(StatusCode::BAD_REQUEST, "malformed", e.to_string());
        }
    };
    let payload = match serde_json::to_string(&delivery) {
        Ok(payload) => payload,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a delivery");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_stored",
                "the delivery could not be stored; retry".into(),
            );
        }
    };
    let key = delivery_key(&headers, &body);
    let record = Delivery {
        seq: 0,
        key: key.clone(),
        kind: event.clone(),
        received_at: Utc::now(),
        payload,
    };
    match app.context.store.record_delivery(&record).await {
        Ok(Recorded::New) => {
            tracing::info!(issue = %delivery.facts.reference, delivery = %key, "delivery accepted");
            app.context.deliveries_waiting.notify_one();
            reply(StatusCode::OK, "accepted", String::new())
        }
        Ok(Recorded::Duplicate) => {
            tracing::info!(issue = %delivery.facts.reference, delivery = %key, "duplicate delivery ignored");
            reply(StatusCode::OK, "duplicate", String::new())
        }
        Err(e) => {
            tracing::error!(issue = %delivery.facts.reference, error = %e, "delivery could not be stored; GitLab will retry");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_stored",
                "the delivery could not be stored; retry".into(),
            )
        }
    }
}

/// A comment delivery: mirrored to the issue's alert threads where a
/// policy asks (queued in the store before the answer), otherwise
/// acknowledged and dropped.
async fn comment<S: Store>(
    app: &App<S>,
    body: &[u8],
    event: &str,
) -> (StatusCode, &'static str, String) {
    let comment = match parse_note_hook(body, event == "Confidential Note Hook") {
        Ok(CommentEvent::New(comment)) => comment,
        Ok(CommentEvent::Skipped(why)) => return (StatusCode::OK, "ignored", why.to_owned()),
        Err(WebhookError::NotAnIssue(kind)) => {
            return (
                StatusCode::NO_CONTENT,
                "ignored",
                format!("object_kind {kind} is not handled"),
            );
        }
        Err(e @ WebhookError::Malformed(_)) => {
            tracing::warn!(event = %event, error = %e, "webhook refused: malformed payload");
            return (StatusCode::BAD_REQUEST, "malformed", e.to_string());
        }
    };
    match crate::jobs::comments::mirror(&app.context, &comment, Utc::now()).await {
        Ok(Mirrored::Queued(threads)) => {
            tracing::info!(issue = %comment.issue, note = comment.note_id, threads, "comment queued for its alert threads");
            (StatusCode::OK, "accepted", String::new())
        }
        Ok(Mirrored::Not(why)) => (StatusCode::OK, "ignored", why.to_owned()),
        Err(e) => {
            tracing::error!(issue = %comment.issue, error = %e, "comment could not be queued; GitLab will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_stored",
                "the delivery could not be stored; retry".into(),
            )
        }
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The event kind as a metric label: known kinds by name, anything else as
/// `other`, so a sender cannot create unbounded label values.
fn event_label(event: &str) -> &'static str {
    match event {
        "Issue Hook" => "issue",
        "Confidential Issue Hook" => "confidential_issue",
        "Note Hook" => "note",
        "Confidential Note Hook" => "confidential_note",
        "" => "none",
        _ => "other",
    }
}

/// Compares the token with every configured secret in constant time. With
/// no secrets configured (`--insecure-no-secret`) every request passes.
fn token_accepted(secrets: &[SecretString], token: Option<&str>) -> bool {
    if secrets.is_empty() {
        return true;
    }
    let Some(token) = token else { return false };
    let mut accepted = false;
    for secret in secrets {
        let secret = secret.expose_secret().as_bytes();
        // Every secret is compared, so timing does not tell which one matched.
        accepted |= secret.len() == token.len() && bool::from(secret.ct_eq(token.as_bytes()));
    }
    accepted
}

/// GitLab's own delivery id where it sends one; otherwise the body itself
/// identifies the delivery (a retry of the same event has the same body).
fn delivery_key(headers: &HeaderMap, body: &[u8]) -> String {
    for name in ["x-gitlab-event-uuid", "idempotency-key"] {
        if let Some(value) = header_str(headers, name).filter(|v| !v.is_empty()) {
            return value.to_owned();
        }
    }
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("body-{:016x}-{}", hasher.finish(), body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Vec<SecretString> {
        values
            .iter()
            .map(|v| SecretString::from(v.to_string()))
            .collect()
    }

    #[test]
    fn any_configured_secret_is_accepted_to_allow_rotation() {
        let configured = secrets(&["old-secret", "new-secret"]);
        assert!(token_accepted(&configured, Some("old-secret")));
        assert!(token_accepted(&configured, Some("new-secret")));
        assert!(!token_accepted(&configured, Some("new-secre")));
        assert!(!token_accepted(&configured, Some("")));
        assert!(!token_accepted(&configured, None));
    }

    #[test]
    fn the_delivery_key_prefers_gitlabs_uuid() {
        let mut headers = HeaderMap::new();
        assert!(delivery_key(&headers, b"{}").starts_with("body-"));
        headers.insert("idempotency-key", "idem-1".parse().unwrap());
        assert_eq!(delivery_key(&headers, b"{}"), "idem-1");
        headers.insert("x-gitlab-event-uuid", "uuid-1".parse().unwrap());
        assert_eq!(delivery_key(&headers, b"{}"), "uuid-1");
    }
}
