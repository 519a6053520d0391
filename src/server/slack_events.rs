//! `POST /webhooks/slack`: Slack's Events API. The signature is checked
//! before anything else; the `url_verification` challenge is answered; an
//! event is stored by its id (Slack retries under the same id when it got
//! no answer in 3 seconds) and acknowledged at once. The
//! [`crate::jobs::slack_events`] job acts on it from the store.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::json;

use super::App;
use crate::slack::events::{self, Event, Request};
use crate::store::{Recorded, Store};

pub use crate::jobs::slack_events::SlackEventsConfig;

fn refused(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

pub async fn receive<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(config) = &app.slack_events else {
        return refused(StatusCode::NOT_FOUND, "Slack events are not configured");
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(error) = events::verify(
        config.signing_secret.expose_secret().as_bytes(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        Utc::now(),
    ) {
        metrics::counter!("labelwarden_slack_events_total", "result" => "refused").increment(1);
        tracing::warn!(error = %error, "Slack event refused");
        return refused(StatusCode::UNAUTHORIZED, &error.to_string());
    }
    let request = match events::parse(&body) {
        Ok(request) => request,
        Err(error) => return refused(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let (event_id, event) = match request {
        Request::UrlVerification { challenge } => {
            return Json(json!({ "challenge": challenge })).into_response();
        }
        Request::Event {
            event: Event::Other,
            ..
        } => {
            metrics::counter!("labelwarden_slack_events_total", "result" => "ignored").increment(1);
            return StatusCode::OK.into_response();
        }
        Request::Event { event_id, event } => (event_id, event),
    };
    let stored = match serde_json::to_string(&event) {
        Ok(stored) => stored,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match app
        .context
        .store
        .record_slack_event(&event_id, &stored, Utc::now())
        .await
    {
        Ok(Recorded::Duplicate) => {
            // Slack retries (X-Slack-Retry-Num) under the same event id.
            tracing::debug!(
                event_id = %event_id,
                retry = header("x-slack-retry-num"),
                reason = header("x-slack-retry-reason"),
                "Slack event seen before; ignored"
            );
            metrics::counter!("labelwarden_slack_events_total", "result" => "duplicate")
                .increment(1);
            return StatusCode::OK.into_response();
        }
        Ok(Recorded::New) => {}
        Err(e) => {
            // Slack retries: nothing is lost by saying so.
            tracing::error!(error = %e, "cannot remember a Slack event");
            return refused(StatusCode::SERVICE_UNAVAILABLE, "cannot store the event");
        }
    }
    metrics::counter!("labelwarden_slack_events_total", "result" => "accepted").increment(1);
    app.context.slack_events_waiting.notify_one();
    StatusCode::OK.into_response()
}
