//! A local stand-in for Slack that answers as Slack documents: the Web API
//! methods labelwarden calls (`chat.postMessage`, `chat.update`,
//! `reactions.add`, and `conversations.history` / `conversations.replies`
//! with cursor pagination) with `{"ok": true, ...}` or HTTP 200 with
//! `{"ok": false, "error": "..."}`, 429 with `Retry-After` in seconds, and
//! incoming webhooks answering `ok` or a plain-text error code. An incoming
//! webhook posts to the one channel it was made for; a URL Slack does not
//! know (never made, or removed) answers 404 `no_service`, as Slack does.
//!
//! It keeps what a channel would show (messages with their `ts`, threads,
//! edits, reactions), logs every request, and can be told to misbehave:
//! an outage (HTTP 503), rate limiting, a channel refusing posts, a
//! deleted message.

#[path = "fake_slack/directory.rs"]
mod directory;
#[path = "fake_slack/events.rs"]
mod events;
#[path = "fake_slack/incoming.rs"]
mod incoming;
#[path = "fake_slack/limits.rs"]
mod limits;
#[path = "fake_slack/listing.rs"]
mod listing;

// Not every test crate sends Slack events.
#[allow(unused_imports)]
pub use events::{reaction_event, reply_event};
use incoming::incoming_webhook;
use listing::web_api_read;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const TOKEN: &str = "xoxb-test-token";

/// A message as the channel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub broadcast: bool,
    pub text: String,
    pub blocks: Value,
    /// Times it was edited with `chat.update`.
    pub edits: u32,
    /// When it was posted.
    pub posted_at: chrono::DateTime<chrono::Utc>,
    /// The `metadata` it was posted with.
    pub metadata: Value,
    pub reactions: Vec<String>,
    /// Who wrote it, for people's replies; `None` for the bot's posts.
    pub user: Option<String>,
    /// Which client posted it, for a client given [`Running::api_url_for`].
    pub via: Option<String>,
    /// When the poster last confirmed its claim before this post, from
    /// labelwarden's `x-labelwarden-claim-confirmed` header.
    pub confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The bot user labelwarden posts as.
pub const BOT_USER: &str = "U0LABELWDN";

impl Message {
    /// The text and blocks, as a reader would search them.
    pub fn shown(&self) -> String {
        format!("{}\n{}", self.text, self.blocks)
    }
}

/// One request as received, and how it was answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    /// `chat.postMessage`, `chat.update`, `reactions.add` or `webhook`.
    pub method: String,
    pub body: Value,
    pub status: u16,
    /// Slack's `error`, if it refused.
    pub error: Option<String>,
}

#[derive(Default)]
struct Inner {
    messages: Vec<Message>,
    requests: Vec<Request>,
    next_ts: u64,
    outage_until: Option<Instant>,
    /// Calls still to answer 503, whenever they come.
    unavailable_calls: u32,
    rate_limited_calls: u32,
    retry_after_seconds: u32,
    refusing: HashMap<String, String>,
    /// `host:port` the fake listens on.
    address: String,
    /// Incoming webhook paths (`/services/T…/B…/secret`) and the channel id
    /// each posts to.
    webhooks: HashMap<String, String>,
    /// Slack's per-channel pace, when kept: posts a channel takes within a
    /// second before it answers 429.
    burst: Option<usize>,
    /// Recent posts per channel id, for the pace.
    posted: HashMap<String, Vec<Instant>>,
    directory: directory::Directory,
    /// How long every Web API answer takes (after the call took effect).
    latency: Duration,
    /// The same for one client's calls (see [`Running::api_url_for`]).
    latency_via: HashMap<String, Duration>,
    /// At most this many messages a listing page, whatever `limit` asks
    /// (Slack may return fewer than asked).
    page_cap: Option<usize>,
    /// People's reactions: (channel, ts, reaction, user), for `reactions.get`.
    people_reactions: Vec<(String, String, String, String)>,
}

#[derive(Clone, Default)]
pub struct FakeSlack {
    inner: Arc<Mutex<Inner>>,
}

/// The fake, listening.
pub struct Running {
    pub slack: FakeSlack,
    /// The Web API base URL (what `SLACK_API_URL` would be).
    pub api_url: String,
    /// An incoming webhook URL, made for `#status`.
    pub webhook_url: String,
}

impl Running {
    /// A Web API base URL for one client (a replica), so that each message
    /// says which client posted it (`Message::via`).
    pub fn api_url_for(&self, client: &str) -> String {
        self.api_url.replace("/api", &format!("/via/{client}/api"))
    }
}

impl FakeSlack {
    pub async fn start() -> Running {
        let slack = FakeSlack::default();
        let router = Router::new()
            .route("/api/{method}", post(web_api).get(web_api_read))
            .route(
                "/via/{via}/api/{method}",
                post(web_api_via).get(web_api_read_via),
            )
            .route("/services/{team}/{bot}/{secret}", post(incoming_webhook))
            .with_state(slack.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        slack.lock().address = address.to_string();
        let webhook_url = slack.incoming_webhook("#status", "s3cr3tWebhookPart");
        Running {
            slack,
            api_url: format!("http://{address}/api"),
            webhook_url,
        }
    }

    /// Makes an incoming webhook that posts to `channel` (`#name` or id),
    /// as a workspace admin would; its URL, whose last part is `secret`.
    pub fn incoming_webhook(&self, channel: &str, secret: &str) -> String {
        let mut inner = self.lock();
        let path = format!("/services/T0TEST/B0{:04}/{secret}", inner.webhooks.len());
        inner.webhooks.insert(path.clone(), channel_id(channel));
        format!("http://{}{path}", inner.address)
    }

    /// The next `calls` calls answer HTTP 503, however late they come.
    pub fn unavailable_for(&self, calls: u32) {
        self.lock().unavailable_calls = calls;
    }

    /// Every call answers HTTP 503 for `length`.
    pub fn outage(&self, length: Duration) {
        self.lock().outage_until = Some(Instant::now() + length);
    }

    /// The next `calls` calls answer 429 with `Retry-After: seconds`.
    pub fn rate_limit(&self, calls: u32, seconds: u32) {
        let mut inner = self.lock();
        inner.rate_limited_calls = calls;
        inner.retry_after_seconds = seconds;
    }

    /// Keeps Slack's pace for posting: about one message a second per
    /// channel, `burst` at once; a post beyond it answers 429 with
    /// `Retry-After: 1`, as Slack does.
    pub fn pace(&self, burst: usize) {
        self.lock().burst = Some(burst);
    }

    /// Every Web API call answers `latency` after it took effect, as a
    /// slow Slack would: a posted message is in the channel before its
    /// answer arrives.
    pub fn latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The Web API calls of the client named `via` answer `latency`
    /// after they took effect: a slow path to Slack for one replica.
    pub fn latency_via(&self, via: &str, latency: Duration) {
        self.lock().latency_via.insert(via.to_owned(), latency);
    }

    /// Listing pages hold at most `messages`, however many `limit` asks:
    /// Slack may answer with fewer, and callers must follow the cursor.
    pub fn page_cap(&self, messages: usize) {
        self.lock().page_cap = Some(messages);
    }

    /// Posts to `channel` (as given, `#name` or id) are refused with `error`.
    pub fn refuse(&self, channel: &str, error: &str) {
        self.lock()
            .refusing
            .insert(channel.to_owned(), error.to_owned());
    }

    pub fn stop_refusing(&self, channel: &str) {
        self.lock().refusing.remove(channel);
    }

    /// Deletes a message, as a person in the channel could.
    pub fn delete(&self, ts: &str) {
        self.lock().messages.retain(|m| m.ts != ts);
    }

    /// `user` replies `text` in the thread of `parent`, as a person in the
    /// channel would; the reply's `ts`.
    /// `user` posts `text` in `channel` (a name or id), outside any thread.
    pub fn say(&self, user: &str, channel: &str, text: &str) -> Message {
        self.person_says(user, &channel_id(channel), None, text)
    }

    pub fn reply(&self, user: &str, parent: &Message, text: &str) -> String {
        self.person_says(user, &parent.channel, Some(&parent.ts), text)
            .ts
    }

    fn person_says(&self, user: &str, channel: &str, thread: Option<&str>, text: &str) -> Message {
        let mut inner = self.lock();
        inner.next_ts += 1;
        let message = Message {
            channel: channel.to_owned(),
            ts: format!("1764000000.{:06}", inner.next_ts * 100),
            thread_ts: thread.map(str::to_owned),
            broadcast: false,
            text: text.to_owned(),
            blocks: Value::Null,
            edits: 0,
            posted_at: chrono::Utc::now(),
            metadata: Value::Null,
            reactions: vec![],
            user: Some(user.to_owned()),
            via: None,
            confirmed_at: None,
        };
        inner.messages.push(message.clone());
        message
    }

    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }
}

/// The step a message tells of (`start`, `warning`, `breach`), from
/// labelwarden's default wording.
pub fn step_of(text: &str) -> &'static str {
    if text.contains("SLA clock started") {
        "start"
    } else if text.contains(":hourglass_flowing_sand:") {
        "warning"
    } else if text.contains("SLA breached") {
        "breach"
    } else {
        "other"
    }
}

/// `#alerts` is channel `C0ALERTS`; ids stand for themselves.
pub fn channel_id(channel: &str) -> String {
    match channel.strip_prefix('#') {
        Some(name) => format!("C0{}", name.to_uppercase().replace('-', "")),
        None => channel.to_owned(),
    }
}

fn slack_error(error: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "ok": false, "error": error })),
    )
        .into_response()
}

async fn web_api(
    State(slack): State<FakeSlack>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    called(slack, None, method, headers, body).await
}

/// The Web API, called by the client named `via`.
async fn web_api_via(
    State(slack): State<FakeSlack>,
    Path((via, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    called(slack, Some(via), method, headers, body).await
}

async fn web_api_read_via(
    state: State<FakeSlack>,
    Path((_via, method)): Path<(String, String)>,
    query: Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    web_api_read(state, Path(method), query, headers).await
}

async fn called(
    slack: FakeSlack,
    via: Option<String>,
    method: String,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (response, latency) = {
        let mut inner = slack.lock();
        let now = Instant::now();
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let mut log = Request {
            at: now,
            method: method.clone(),
            body: parsed.clone(),
            status: 200,
            error: None,
        };
        let response = answer(&mut inner, &method, &headers, &parsed, now);
        if let (Answer::Ok(_), "chat.postMessage") = (&response, method.as_str())
            && let Some(posted) = inner.messages.last_mut()
        {
            posted.via = via.clone();
            posted.confirmed_at = headers
                .get("x-labelwarden-claim-confirmed")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .and_then(chrono::DateTime::from_timestamp_millis);
        }
        log.status = response.status().as_u16();
        log.error = response_error(&response);
        inner.requests.push(log);
        let latency = via
            .as_ref()
            .and_then(|via| inner.latency_via.get(via))
            .copied()
            .unwrap_or(inner.latency);
        (response, latency)
    };
    tokio::time::sleep(latency).await;
    response.into_response()
}

/// The `error` a response carries, read back for the log.
fn response_error(response: &Answer) -> Option<String> {
    match response {
        Answer::Refused(error) => Some(error.clone()),
        _ => None,
    }
}

enum Answer {
    Ok(Value),
    Refused(String),
    Status(StatusCode, Vec<(header::HeaderName, String)>),
}

impl Answer {
    fn status(&self) -> StatusCode {
        match self {
            Answer::Status(status, _) => *status,
            _ => StatusCode::OK,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
            Answer::Refused(error) => slack_error(&error),
            Answer::Status(status, headers) => {
                let mut response = (status, "").into_response();
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        }
    }
}

/// Outage and rate limit first, as Slack's front door would.
fn misbehaving(inner: &mut Inner, now: Instant) -> Option<Answer> {
    if inner.outage_until.is_some_and(|until| now < until) {
        return Some(Answer::Status(StatusCode::SERVICE_UNAVAILABLE, vec![]));
    }
    if inner.unavailable_calls > 0 {
        inner.unavailable_calls -= 1;
        return Some(Answer::Status(StatusCode::SERVICE_UNAVAILABLE, vec![]));
    }
    if inner.rate_limited_calls > 0 {
        inner.rate_limited_calls -= 1;
        return Some(Answer::Status(
            StatusCode::TOO_MANY_REQUESTS,
            vec![(header::RETRY_AFTER, inner.retry_after_seconds.to_string())],
        ));
    }
    None
}

fn answer(
    inner: &mut Inner,
    method: &str,
    headers: &HeaderMap,
    body: &Value,
    now: Instant,
) -> Answer {
    if let Some(answer) = misbehaving(inner, now) {
        return answer;
    }
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        None => return Answer::Refused("not_authed".into()),
        Some(value) if value != format!("Bearer {TOKEN}") => {
            return Answer::Refused("invalid_auth".into());
        }
        Some(_) => {}
    }
    if !headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return Answer::Refused("invalid_form_data".into());
    }
    let text = |key: &str| body[key].as_str().map(str::to_owned);
    match method {
        "chat.postMessage" => {
            let Some(channel) = text("channel") else {
                return Answer::Refused("channel_not_found".into());
            };
            if let Some(error) = inner.refusing.get(&channel) {
                return Answer::Refused(error.clone());
            }
            if text("text").unwrap_or_default().is_empty() && body["blocks"].is_null() {
                return Answer::Refused("no_text".into());
            }
            if let Some(error) = limits::over_limits(body) {
                return Answer::Refused(error.into());
            }
            let channel = channel_id(&channel);
            if let Some(burst) = inner.burst {
                let recent = inner.posted.entry(channel.clone()).or_default();
                recent.retain(|at| now.duration_since(*at) < Duration::from_secs(1));
                if recent.len() >= burst {
                    return Answer::Status(
                        StatusCode::TOO_MANY_REQUESTS,
                        vec![(header::RETRY_AFTER, "1".to_owned())],
                    );
                }
                recent.push(now);
            }
            let thread_ts = text("thread_ts");
            if let Some(parent) = &thread_ts
                && !inner
                    .messages
                    .iter()
                    .any(|m| &m.ts == parent && m.channel == channel)
            {
                return Answer::Refused("thread_not_found".into());
            }
            inner.next_ts += 1;
            let ts = format!("1764000000.{:06}", inner.next_ts * 100);
            inner.messages.push(Message {
                channel: channel.clone(),
                ts: ts.clone(),
                thread_ts,
                broadcast: body["reply_broadcast"].as_bool().unwrap_or(false),
                text: text("text").unwrap_or_default(),
                blocks: body["blocks"].clone(),
                edits: 0,
                posted_at: chrono::Utc::now(),
                metadata: body["metadata"].clone(),
                reactions: vec![],
                user: None,
                via: None,
                confirmed_at: None,
            });
            Answer::Ok(json!({
                "ok": true,
                "channel": channel,
                "ts": ts,
                "message": { "type": "message", "text": body["text"], "ts": ts },
            }))
        }
        "chat.update" => {
            let (channel, ts) = (
                text("channel").unwrap_or_default(),
                text("ts").unwrap_or_default(),
            );
            if let Some(error) = limits::over_limits(body) {
                return Answer::Refused(error.into());
            }
            let Some(message) = inner
                .messages
                .iter_mut()
                .find(|m| m.ts == ts && m.channel == channel)
            else {
                return Answer::Refused("message_not_found".into());
            };
            if message.user.is_some() {
                // A person's message: the bot may not edit it.
                return Answer::Refused("cant_update_message".into());
            }
            message.text = text("text").unwrap_or_default();
            message.blocks = body["blocks"].clone();
            message.edits += 1;
            Answer::Ok(json!({ "ok": true, "channel": channel, "ts": ts, "text": body["text"] }))
        }
        "reactions.add" => {
            let (channel, ts) = (
                text("channel").unwrap_or_default(),
                text("timestamp").unwrap_or_default(),
            );
            let name = text("name").unwrap_or_default();
            let Some(message) = inner
                .messages
                .iter_mut()
                .find(|m| m.ts == ts && m.channel == channel)
            else {
                return Answer::Refused("message_not_found".into());
            };
            if message.reactions.contains(&name) {
                return Answer::Refused("already_reacted".into());
            }
            message.reactions.push(name);
            Answer::Ok(json!({ "ok": true }))
        }
        _ => Answer::Refused("unknown_method".into()),
    }
}
