//! Incoming webhooks: each posts to the one channel it was made for and
//! answers `ok`, or a plain-text error code (`no_service` for a URL Slack
//! does not know, `invalid_payload`, a limit's error) as Slack does.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{FakeSlack, Message, Request, limits, misbehaving};

pub(super) async fn incoming_webhook(
    State(slack): State<FakeSlack>,
    Path((team, bot, secret)): Path<(String, String, String)>,
    body: String,
) -> Response {
    let mut inner = slack.lock();
    let now = Instant::now();
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let channel = inner
        .webhooks
        .get(&format!("/services/{team}/{bot}/{secret}"))
        .cloned();
    let (status, text) = if let Some(answer) = misbehaving(&mut inner, now) {
        (answer.status(), String::new())
    } else if channel.is_none() {
        (StatusCode::NOT_FOUND, "no_service".to_owned())
    } else if !parsed["text"].is_string() {
        (StatusCode::BAD_REQUEST, "invalid_payload".to_owned())
    } else if let Some(error) = limits::over_limits(&parsed) {
        (StatusCode::BAD_REQUEST, error.to_owned())
    } else {
        inner.next_ts += 1;
        let ts = format!("1764000000.{:06}", inner.next_ts * 100);
        inner.messages.push(Message {
            channel: channel.unwrap_or_default(),
            ts,
            thread_ts: None,
            broadcast: false,
            text: parsed["text"].as_str().unwrap_or_default().to_owned(),
            blocks: parsed["blocks"].clone(),
            edits: 0,
            posted_at: chrono::Utc::now(),
            metadata: Value::Null,
            reactions: vec![],
            user: None,
            via: None,
            confirmed_at: None,
        });
        (StatusCode::OK, "ok".to_owned())
    };
    inner.requests.push(Request {
        at: now,
        method: "webhook".into(),
        body: parsed,
        status: status.as_u16(),
        error: (status != StatusCode::OK).then(|| text.clone()),
    });
    (status, text).into_response()
}
