//! `POST /webhooks/slack`: Slack's Events API. The signature is checked
//! before anything else; the `url_verification` challenge is answered; an
//! event is remembered by its id (Slack retries under the same id when it
//! got no answer in 3 seconds) and acknowledged at once, then acted on in
//! the background.
//!
//! What it acts on today: the acknowledgement reaction (`--ack-reaction`,
//! default `eyes`) added to or removed from the first message of an alert
//! thread labelwarden posted, recorded as who acknowledged the clock cycle
//! and when; `labelwarden_time_to_acknowledge_seconds` measures it.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::App;
use crate::slack::events::{self, Event, Request};
use crate::store::{Recorded, Store};

/// How `serve` listens to Slack's Events API.
#[derive(Clone)]
pub struct SlackEventsConfig {
    pub signing_secret: SecretString,
    /// The reaction that acknowledges an alert (a name without colons).
    pub ack_reaction: String,
}

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
    match app
        .context
        .store
        .record_slack_event(&event_id, Utc::now())
        .await
    {
        Ok(Recorded::Duplicate) => {
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
    let app = Arc::clone(&app);
    tokio::spawn(async move {
        let ack = app
            .slack_events
            .as_ref()
            .map(|c| c.ack_reaction.clone())
            .unwrap_or_default();
        act(&app, &ack, event).await;
    });
    StatusCode::OK.into_response()
}

async fn act<S: Store>(app: &App<S>, ack_reaction: &str, event: Event) {
    let Event::Reaction {
        added,
        user,
        reaction,
        channel,
        ts,
        at,
    } = event
    else {
        return;
    };
    if reaction != ack_reaction {
        return;
    }
    let store = &app.context.store;
    if !added {
        match store.withdraw_acknowledgement(&channel, &ts, &user).await {
            Ok(true) => tracing::info!(user = %user, "acknowledgement withdrawn"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "cannot withdraw an acknowledgement"),
        }
        return;
    }
    match store.acknowledge(&channel, &ts, &user, at).await {
        Ok(Some(acknowledged)) if acknowledged.first => {
            let waited = events::ts_instant(&ts).map(|posted| (at - posted).num_milliseconds());
            tracing::info!(
                issue = %acknowledged.issue,
                policy = %acknowledged.policy,
                cycle = acknowledged.cycle,
                user = %user,
                after_ms = waited,
                "alert acknowledged in Slack"
            );
            metrics::counter!("labelwarden_acknowledgements_total", "policy" => acknowledged.policy.0.clone())
                .increment(1);
            if let Some(waited) = waited {
                metrics::histogram!("labelwarden_time_to_acknowledge_seconds", "policy" => acknowledged.policy.0.clone())
                    .record(waited.max(0) as f64 / 1000.0);
            }
        }
        Ok(Some(_)) => {}
        // Not an alert thread labelwarden posted: none of its business.
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot record an acknowledgement"),
    }
}
