//! What can go wrong talking to Slack, sorted by what the notifier does
//! about it: retry later (rate limits, Slack's own trouble), start a new
//! thread (the parent is gone), or stop and say so (the channel or token
//! refuses for good).

use std::time::Duration;

/// What went wrong talking to Slack.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlackError {
    #[error("{method}: rate limited (HTTP 429), retry after {retry_after:?}")]
    RateLimited {
        method: &'static str,
        retry_after: Duration,
    },
    #[error("{method}: Slack answered HTTP {status}")]
    Unavailable { method: &'static str, status: u16 },
    #[error("{method}: {message}")]
    Network {
        method: &'static str,
        message: String,
    },
    /// Slack refused the call: `"ok": false` with this `error` code, or an
    /// incoming webhook's error text.
    #[error("{method}: Slack said `{code}`")]
    Refused { method: &'static str, code: String },
    #[error("{method}: unreadable answer (HTTP {status}): {detail}")]
    Unreadable {
        method: &'static str,
        status: u16,
        detail: String,
    },
    /// Settings missing or wrong at start-up.
    #[error("{0}")]
    Config(String),
    /// Not sent: the outbox claim the call was made under is lost.
    #[error("{method}: {lost}")]
    ClaimLost {
        method: &'static str,
        lost: crate::notify::claim::ClaimLost,
    },
}

/// Error codes that say Slack had a problem, not the request.
const TEMPORARY_CODES: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Error codes that say the message a thread hangs on is gone.
const PARENT_GONE_CODES: &[&str] = &["thread_not_found", "invalid_thread_ts", "message_not_found"];

impl SlackError {
    /// A network error, without the URL (an incoming webhook's URL is a
    /// secret, and reqwest puts it in its messages).
    pub(super) fn network(method: &'static str, error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        let detail = crate::http_client::describe(error);
        SlackError::Network {
            method,
            message: format!("{kind}: {detail}"),
        }
    }

    /// Worth trying again later.
    pub fn is_temporary(&self) -> bool {
        match self {
            SlackError::RateLimited { .. }
            | SlackError::Unavailable { .. }
            | SlackError::Network { .. } => true,
            // A 2xx that is not Slack's JSON: a proxy in the way, for now.
            SlackError::Unreadable { status, .. } => *status < 300,
            SlackError::Refused { code, .. } => TEMPORARY_CODES.contains(&code.as_str()),
            SlackError::Config(_) => false,
            // Nothing was tried: the claim's new owner acts, or (if it
            // was only stale) this process tries again later.
            SlackError::ClaimLost { .. } => true,
        }
    }

    /// The message the thread hangs on was deleted.
    pub fn parent_gone(&self) -> bool {
        matches!(self, SlackError::Refused { code, .. } if PARENT_GONE_CODES.contains(&code.as_str()))
    }

    /// The message is not the bot's to edit (`cant_update_message`): a
    /// person's message raised in Slack that the thread hangs on.
    pub fn not_the_bots(&self) -> bool {
        matches!(self, SlackError::Refused { code, .. } if code == "cant_update_message")
    }

    /// A short code for metrics and `/readyz`.
    pub fn code(&self) -> String {
        match self {
            SlackError::RateLimited { .. } => "rate_limited".to_owned(),
            SlackError::Unavailable { status, .. } => format!("http_{status}"),
            SlackError::Network { .. } => "network".to_owned(),
            SlackError::Refused { code, .. } => code.clone(),
            SlackError::Unreadable { status, .. } => format!("unreadable_http_{status}"),
            SlackError::Config(_) => "config".to_owned(),
            SlackError::ClaimLost { .. } => "claim_lost".to_owned(),
        }
    }
}

/// The start of an unexpected answer, for an error message.
pub(super) fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(120).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}
