//! The Slack Web API methods labelwarden uses, for a bot token:
//! `chat.postMessage`, `chat.update` and `reactions.add` to tell, and
//! `conversations.history` / `conversations.replies` to look back. JSON bodies,
//! `Authorization: Bearer`, and Slack's answers read as Slack documents
//! them: HTTP 200 with `"ok": false` is an error, HTTP 429 carries
//! `Retry-After` in seconds.
//!
//! The base URL is configurable (`SLACK_API_URL`) so that tests and
//! self-hosted proxies can stand in for `https://slack.com/api`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::SlackError;
use super::message::Message;
use crate::notice::Thread;

/// Slack's own Web API.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

/// The metadata event type of labelwarden's messages.
pub const METADATA_EVENT: &str = "labelwarden_step";

/// How long to wait after a 429 that did not say (Slack always does).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A Web API client for one bot token.
#[derive(Debug, Clone)]
pub struct WebApi {
    http: reqwest::Client,
    base_url: String,
    token: SecretString,
}

/// Where a new message is, as Slack reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub channel_id: String,
    pub ts: String,
}

/// A message as `conversations.history` and `conversations.replies` list it.
#[derive(Debug, Deserialize)]
struct Listed {
    ts: String,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    text: String,
}

/// A person's reply in a thread, as `conversations.replies` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadReply {
    pub user: String,
    pub ts: String,
    /// Slack mrkdwn, as written.
    pub text: String,
}

/// How many pages of a listing to read at most (up to 200 messages each).
const MAX_PAGES: usize = 10;

#[derive(Debug, Deserialize)]
struct Metadata {
    event_type: String,
    #[serde(default)]
    event_payload: serde_json::Value,
}

/// What labelwarden reads of Slack's answer once it is `ok`.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    messages: Vec<Listed>,
    #[serde(default)]
    response_metadata: Option<ResponseMetadata>,
}

#[derive(Debug, Deserialize)]
struct ResponseMetadata {
    #[serde(default)]
    next_cursor: String,
}

impl WebApi {
    pub fn new(http: reqwest::Client, base_url: &str, token: SecretString) -> Self {
        WebApi {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// Posts `message` to `channel` (an id, or `#name`), as a reply in
    /// `thread` if given, also shown in the channel if `broadcast`.
    /// `key` goes into the message's metadata, so that a process taking
    /// over an unfinished send can tell whether it went out.
    pub async fn post_message(
        &self,
        channel: &str,
        message: &Message,
        thread: Option<&Thread>,
        broadcast: bool,
        key: &str,
    ) -> Result<Posted, SlackError> {
        let mut body = json!({
            "channel": thread.map_or(channel, |t| t.channel_id.as_str()),
            "text": message.text,
            "blocks": message.blocks,
            "unfurl_links": false,
            "unfurl_media": false,
            "metadata": { "event_type": METADATA_EVENT, "event_payload": { "key": key } },
        });
        if let Some(thread) = thread {
            body["thread_ts"] = json!(thread.ts);
            if broadcast {
                body["reply_broadcast"] = json!(true);
            }
        }
        let method = "chat.postMessage";
        let answer = self.call(method, &body).await?;
        match (answer.channel, answer.ts) {
            (Some(channel_id), Some(ts)) => Ok(Posted { channel_id, ts }),
            _ => Err(SlackError::Unreadable {
                method,
                status: 200,
                detail: "`ok` without `channel` and `ts`".to_owned(),
            }),
        }
    }

    /// Replaces the text and blocks of the message `at`.
    pub async fn update(&self, at: &Thread, message: &Message) -> Result<(), SlackError> {
        let body = json!({
            "channel": at.channel_id,
            "ts": at.ts,
            "text": message.text,
            "blocks": message.blocks,
        });
        self.call("chat.update", &body).await.map(drop)
    }

    /// Adds the reaction `emoji` (a name without colons) to the message
    /// `at`. Already there counts as done.
    pub async fn add_reaction(&self, at: &Thread, emoji: &str) -> Result<(), SlackError> {
        let body = json!({ "channel": at.channel_id, "timestamp": at.ts, "name": emoji });
        match self.call("reactions.add", &body).await {
            Err(SlackError::Refused { code, .. }) if code == "already_reacted" => Ok(()),
            other => other.map(drop),
        }
    }

    /// The `ts` of a message labelwarden posted with `key`: among the
    /// replies of `thread` if given, else among the channel's messages
    /// since `oldest`. Needs the `channels:history` scope (`groups:history`
    /// for private channels).
    pub async fn find_posted(
        &self,
        channel_id: &str,
        thread: Option<&Thread>,
        oldest: chrono::DateTime<chrono::Utc>,
        key: &str,
    ) -> Result<Option<String>, SlackError> {
        let (method, mut query) = match thread {
            Some(thread) => ("conversations.replies", vec![("ts", thread.ts.clone())]),
            None => (
                "conversations.history",
                vec![("oldest", format!("{}.000000", oldest.timestamp()))],
            ),
        };
        query.push(("channel", channel_id.to_owned()));
        query.push(("include_all_metadata", "true".to_owned()));
        Ok(self
            .list(method, query)
            .await?
            .into_iter()
            .find_map(|message| {
                let metadata = message.metadata?;
                (metadata.event_type == METADATA_EVENT && metadata.event_payload["key"] == key)
                    .then_some(message.ts)
            }))
    }

    /// Every message labelwarden posted in the thread of `parent` (the
    /// parent included), as (`ts`, the key in its metadata), oldest first.
    /// Needs `channels:history` (`groups:history` for private channels).
    pub async fn posted_in_thread(
        &self,
        parent: &Thread,
    ) -> Result<Vec<(String, String)>, SlackError> {
        let query = vec![
            ("channel", parent.channel_id.clone()),
            ("ts", parent.ts.clone()),
            ("include_all_metadata", "true".to_owned()),
        ];
        Ok(self
            .list("conversations.replies", query)
            .await?
            .into_iter()
            .filter_map(|message| {
                let metadata = message.metadata?;
                let key = metadata.event_payload["key"].as_str()?.to_owned();
                (metadata.event_type == METADATA_EVENT).then_some((message.ts, key))
            })
            .collect())
    }

    /// People's replies in the thread of `parent`, oldest first. Bots'
    /// messages (labelwarden's own included) are left out. Needs
    /// `channels:history` (`groups:history` for private channels).
    pub async fn replies(&self, parent: &Thread) -> Result<Vec<ThreadReply>, SlackError> {
        let query = vec![
            ("channel", parent.channel_id.clone()),
            ("ts", parent.ts.clone()),
        ];
        Ok(self
            .list("conversations.replies", query)
            .await?
            .into_iter()
            .filter_map(|message| {
                let user = message.user.filter(|_| message.bot_id.is_none())?;
                (message.ts != parent.ts).then_some(ThreadReply {
                    user,
                    ts: message.ts,
                    text: message.text,
                })
            })
            .collect())
    }

    /// A message outside any thread, if a person wrote it: (their user id,
    /// its text). `None` for the bot's and other bots' messages.
    pub async fn persons_message(
        &self,
        at: &Thread,
    ) -> Result<Option<(String, String)>, SlackError> {
        let query = vec![("channel", at.channel_id.clone()), ("ts", at.ts.clone())];
        Ok(self
            .list("conversations.replies", query)
            .await?
            .into_iter()
            .find(|message| message.ts == at.ts)
            .and_then(|message| {
                Some((
                    message.user.filter(|_| message.bot_id.is_none())?,
                    message.text,
                ))
            }))
    }

    /// The message's link, as `chat.getPermalink` gives it.
    pub async fn permalink(&self, at: &Thread) -> Result<String, SlackError> {
        let method = "chat.getPermalink";
        let answer = self
            .get_json(
                method,
                &[
                    ("channel", at.channel_id.clone()),
                    ("message_ts", at.ts.clone()),
                ],
            )
            .await?;
        answer["permalink"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SlackError::Unreadable {
                method,
                status: 200,
                detail: "`ok` without `permalink`".to_owned(),
            })
    }

    /// A channel's name (without `#`), as `conversations.info` gives it.
    pub async fn channel_name(&self, channel_id: &str) -> Result<Option<String>, SlackError> {
        let answer = self
            .get_json("conversations.info", &[("channel", channel_id.to_owned())])
            .await?;
        Ok(answer["channel"]["name"].as_str().map(str::to_owned))
    }

    /// The reactions on a message, each with everyone who reacted, as
    /// `reactions.get` (with `full`) gives them. Needs `reactions:read`.
    pub async fn reactions(&self, at: &Thread) -> Result<Vec<(String, Vec<String>)>, SlackError> {
        let answer = self
            .get_json(
                "reactions.get",
                &[
                    ("channel", at.channel_id.clone()),
                    ("timestamp", at.ts.clone()),
                    ("full", "true".to_owned()),
                ],
            )
            .await?;
        let reactions = answer["message"]["reactions"].as_array().cloned();
        Ok(reactions
            .unwrap_or_default()
            .iter()
            .filter_map(|reaction| {
                let name = reaction["name"].as_str()?.to_owned();
                let users = reaction["users"]
                    .as_array()?
                    .iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect();
                Some((name, users))
            })
            .collect())
    }

    /// Every message a listing method returns, following Slack's cursor:
    /// Slack may return fewer than `limit` with more to come.
    async fn list(
        &self,
        method: &'static str,
        mut query: Vec<(&'static str, String)>,
    ) -> Result<Vec<Listed>, SlackError> {
        query.push(("limit", "200".to_owned()));
        let mut messages = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.get(method, &query).await?;
            messages.extend(answer.messages);
            let cursor = answer
                .response_metadata
                .map(|m| m.next_cursor)
                .unwrap_or_default();
            if cursor.is_empty() {
                break;
            }
            query.retain(|(name, _)| *name != "cursor");
            query.push(("cursor", cursor));
        }
        Ok(messages)
    }

    /// A listing method: GET with its arguments in the query string.
    async fn get(
        &self,
        method: &'static str,
        query: &[(&str, String)],
    ) -> Result<Answer, SlackError> {
        let url = format!("{}/{method}", self.base_url);
        self.send(method, self.http.get(url).query(query)).await
    }

    /// A method that acts: POST with a JSON body.
    async fn call(&self, method: &'static str, body: &Value) -> Result<Answer, SlackError> {
        let url = format!("{}/{method}", self.base_url);
        self.send(method, self.http.post(url).json(body)).await
    }

    /// Sends `request` with the token, reads Slack's answer, and counts it.
    async fn send(
        &self,
        method: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, SlackError> {
        let request = claimed(method, request).await?;
        let result = match request.bearer_auth(self.token.expose_secret()).send().await {
            Ok(response) => self.read(method, response).await,
            Err(e) => Err(SlackError::network(method, e)),
        };
        super::count_request(method, &result);
        result
    }

    /// A reading method's whole answer, for the checks of `labelwarden
    /// doctor` (`auth.test`, `conversations.list`, `users.info`, …).
    pub async fn get_json(
        &self,
        method: &'static str,
        query: &[(&str, String)],
    ) -> Result<Value, SlackError> {
        let url = format!("{}/{method}", self.base_url);
        let request = claimed(method, self.http.get(url).query(query)).await?;
        let result = match request.bearer_auth(self.token.expose_secret()).send().await {
            Ok(response) => self.read_value(method, response).await,
            Err(e) => Err(SlackError::network(method, e)),
        };
        super::count_request(method, &result);
        result
    }

    /// Slack's answer read as Slack documents it.
    async fn read(
        &self,
        method: &'static str,
        response: reqwest::Response,
    ) -> Result<Answer, SlackError> {
        let status = response.status().as_u16();
        let value = self.read_value(method, response).await?;
        serde_json::from_value(value).map_err(|e| SlackError::Unreadable {
            method,
            status,
            detail: e.to_string(),
        })
    }

    /// Slack's answer as JSON: HTTP 429 and 5xx, and `"ok": false`, are
    /// errors.
    async fn read_value(
        &self,
        method: &'static str,
        response: reqwest::Response,
    ) -> Result<Value, SlackError> {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        if status.as_u16() == 429 {
            return Err(SlackError::RateLimited {
                method,
                retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            });
        }
        if status.is_server_error() {
            return Err(SlackError::Unavailable {
                method,
                status: status.as_u16(),
            });
        }
        let text = response
            .text()
            .await
            .map_err(|e| SlackError::network(method, e))?;
        let answer: Value = serde_json::from_str(&text).map_err(|_| SlackError::Unreadable {
            method,
            status: status.as_u16(),
            detail: super::excerpt(&text),
        })?;
        if answer["ok"] == Value::Bool(true) && status.is_success() {
            return Ok(answer);
        }
        Err(SlackError::Refused {
            method,
            code: answer["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("http_{}", status.as_u16())),
        })
    }
}

/// `Retry-After` in whole seconds, as Slack sends it.
/// `request` as it may leave: under an outbox claim (a notice being
/// sent), the claim is confirmed first and bounds the request's timeout;
/// a lost claim stops it (see [`crate::notify::claim`]).
pub(super) async fn claimed(
    method: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::RequestBuilder, SlackError> {
    match crate::notify::claim::before_request().await {
        Ok(Some(confirmed)) => Ok(confirmed.apply(request)),
        Ok(None) => Ok(request),
        Err(lost) => Err(SlackError::ClaimLost { method, lost }),
    }
}

pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
