//! `POST /webhooks/slack`: Slack's Events API. The signature is checked
//! before anything else; the `url_verification` challenge is answered; an
//! event is remembered by its id (Slack retries under the same id when it
//! got no answer in 3 seconds) and acknowledged at once, then acted on in
//! the background.
//!
//! What it acts on, on the first message of an alert thread labelwarden
//! posted and in its thread:
//! - the acknowledgement reaction (`--ack-reaction`, default `eyes`) added
//!   or removed, recorded as who acknowledged the clock cycle and when;
//!   `labelwarden_time_to_acknowledge_seconds` measures it;
//! - the resolve and false-positive reactions, written on the GitLab issue
//!   with the person's last reply ([`crate::gitlab::from_slack`]);
//! - replies, mirrored as internal notes where the policy asks.
//!
//! GitLab writes are retried a few times with backoff while the failure is
//! temporary; one that still fails is logged with the issue and counted in
//! `labelwarden_slack_to_gitlab_failed_total`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::App;
use crate::gitlab::from_slack::{FromSlackError, Outcome, Said, SlackToGitLab};
use crate::notify::Thread;
use crate::slack::events::{self, Event, Request};
use crate::store::{AlertThread, Recorded, Store};

/// How `serve` listens to Slack's Events API.
#[derive(Clone)]
pub struct SlackEventsConfig {
    pub signing_secret: SecretString,
    /// The reaction that acknowledges an alert (a name without colons).
    pub ack_reaction: String,
    /// The reaction that says the alert is resolved.
    pub resolve_reaction: String,
    /// The reaction that says the alert was a false positive.
    pub false_positive_reaction: String,
    /// Writes on GitLab what was said in Slack; `None` without a Slack
    /// bot token and a GitLab token.
    pub to_gitlab: Option<SlackToGitLab>,
}

/// Waits between attempts at a GitLab write that failed for now.
const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

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
    let app = Arc::clone(&app);
    tokio::spawn(async move {
        if let Some(config) = &app.slack_events {
            act(&app, config, event).await;
        }
    });
    StatusCode::OK.into_response()
}

async fn act<S: Store>(app: &App<S>, config: &SlackEventsConfig, event: Event) {
    match event {
        Event::Reaction {
            added,
            user,
            reaction,
            channel,
            ts,
            at,
        } if reaction == config.ack_reaction => {
            acknowledgement(app, config, added, user, channel, ts, at).await;
        }
        Event::Reaction {
            added: true,
            user,
            reaction,
            channel,
            ts,
            ..
        } => {
            let said = if reaction == config.resolve_reaction {
                Said::Resolved
            } else if reaction == config.false_positive_reaction {
                Said::FalsePositive
            } else {
                return;
            };
            let parent = Thread {
                channel_id: channel,
                ts,
            };
            let Some(alert) = alert_thread(app, &parent).await else {
                return;
            };
            let Some(to_gitlab) = &config.to_gitlab else {
                tracing::warn!(issue = %alert.issue, "a resolve or false-positive reaction is not written to GitLab: serve needs SLACK_BOT_TOKEN and GITLAB_TOKEN (api) for that");
                return;
            };
            let written = retried(&alert, "reaction", || {
                to_gitlab.reaction(&alert, &parent, said, &user)
            })
            .await;
            if written == Some(Outcome::Written) {
                let said = said.as_str();
                tracing::info!(issue = %alert.issue, policy = %alert.policy, user = %user, said, "written on the issue from Slack");
                metrics::counter!("labelwarden_slack_resolutions_total", "policy" => alert.policy.0.clone(), "said" => said)
                    .increment(1);
            }
        }
        Event::Reply {
            user,
            channel,
            thread_ts,
            ts,
            text,
        } => {
            let parent = Thread {
                channel_id: channel,
                ts: thread_ts,
            };
            let (Some(to_gitlab), Some(alert)) =
                (&config.to_gitlab, alert_thread(app, &parent).await)
            else {
                return;
            };
            retried(&alert, "reply", || {
                to_gitlab.reply(&alert, &parent, &user, &ts, &text)
            })
            .await;
        }
        Event::Reaction { .. } | Event::Other => {}
    }
}

/// The clock cycle of an alert thread labelwarden posted, if it is one.
async fn alert_thread<S: Store>(app: &App<S>, parent: &Thread) -> Option<AlertThread> {
    match app
        .context
        .store
        .alert_thread(&parent.channel_id, &parent.ts)
        .await
    {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "cannot look up a Slack thread");
            None
        }
    }
}

/// Runs a GitLab write, again after a pause while it fails for now. A
/// failure that stays is logged and counted; `None` then.
async fn retried<F, Fut>(alert: &AlertThread, what: &'static str, mut write: F) -> Option<Outcome>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Outcome, FromSlackError>>,
{
    let mut delays = RETRY_DELAYS.iter();
    loop {
        match write().await {
            Ok(outcome) => return Some(outcome),
            Err(error) => match delays.next() {
                Some(delay) if error.is_temporary() => {
                    tracing::warn!(issue = %alert.issue, error = %error, retry_in = ?delay, "writing a Slack {what} on GitLab failed for now");
                    tokio::time::sleep(*delay).await;
                }
                _ => {
                    tracing::error!(issue = %alert.issue, policy = %alert.policy, error = %error, "a Slack {what} could not be written on GitLab");
                    metrics::counter!("labelwarden_slack_to_gitlab_failed_total", "policy" => alert.policy.0.clone())
                        .increment(1);
                    return None;
                }
            },
        }
    }
}

/// Writes an acknowledgement, or its withdrawal, on the issue (when
/// `serve` can write to GitLab), so `audit` and `explain` know of it.
async fn tell_gitlab(
    config: &SlackEventsConfig,
    alert: &AlertThread,
    parent: &Thread,
    said: Said,
    user: &str,
    at: DateTime<Utc>,
) {
    if let Some(to_gitlab) = &config.to_gitlab {
        retried(alert, "acknowledgement", || {
            to_gitlab.acknowledgement(alert, parent, said, user, at)
        })
        .await;
    }
}

/// The acknowledgement reaction added or taken off.
async fn acknowledgement<S: Store>(
    app: &App<S>,
    config: &SlackEventsConfig,
    added: bool,
    user: String,
    channel: String,
    ts: String,
    at: DateTime<Utc>,
) {
    let store = &app.context.store;
    let parent = Thread {
        channel_id: channel,
        ts,
    };
    let gitlab_user = app.context.policies.people.gitlab_username(&user);
    if !added {
        match store
            .withdraw_acknowledgement(&parent.channel_id, &parent.ts, &user, Utc::now())
            .await
        {
            Ok(withdrawal) if withdrawal.removed => {
                tracing::info!(
                    user = %user,
                    gitlab_user,
                    still_acknowledged = withdrawal.still_acknowledged,
                    "acknowledgement withdrawn"
                );
                if !withdrawal.still_acknowledged {
                    // A step held back by it may be due: look now.
                    app.context.deliveries_waiting.notify_one();
                }
                if let Some(alert) = alert_thread(app, &parent).await {
                    tell_gitlab(config, &alert, &parent, Said::Unacknowledged, &user, at).await;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot withdraw an acknowledgement"),
        }
        return;
    }
    match store
        .acknowledge(&parent.channel_id, &parent.ts, &user, at)
        .await
    {
        Ok(Some(acknowledged)) if acknowledged.recorded => {
            if acknowledged.first {
                let waited =
                    events::ts_instant(&parent.ts).map(|posted| (at - posted).num_milliseconds());
                tracing::info!(
                    issue = %acknowledged.issue,
                    policy = %acknowledged.policy,
                    cycle = acknowledged.cycle,
                    user = %user,
                    gitlab_user,
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
            // Every person's, so that GitLab's record matches when the
            // first takes theirs back.
            let alert = AlertThread {
                issue: acknowledged.issue,
                policy: acknowledged.policy,
                cycle: acknowledged.cycle,
            };
            tell_gitlab(config, &alert, &parent, Said::Acknowledged, &user, at).await;
        }
        Ok(Some(_)) => {}
        // Not an alert thread labelwarden posted: none of its business.
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot record an acknowledgement"),
    }
}
