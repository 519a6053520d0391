//! Slack incoming webhooks: the simple alternative to a bot token for a
//! channel configured with `webhook_env`. No threads, no reactions: every
//! step is a message of its own that repeats the link.
//!
//! Slack answers `ok` (HTTP 200) or a short plain-text error code with a
//! 4xx status (`invalid_payload`, `action_prohibited`, `channel_not_found`,
//! `channel_is_archived`, `no_service`); 429 carries `Retry-After`. The URL
//! is itself the secret: it never appears in logs or errors.

use secrecy::{ExposeSecret, SecretString};

use super::SlackError;
use super::api::retry_after;
use super::message::Message;

const METHOD: &str = "incoming-webhook";

/// One incoming webhook URL.
#[derive(Debug, Clone)]
pub struct IncomingWebhook {
    http: reqwest::Client,
    url: SecretString,
}

impl IncomingWebhook {
    pub fn new(http: reqwest::Client, url: SecretString) -> Self {
        IncomingWebhook { http, url }
    }

    pub async fn post(&self, message: &Message) -> Result<(), SlackError> {
        let result = self.request(message).await;
        super::count_request(METHOD, &result);
        result
    }

    async fn request(&self, message: &Message) -> Result<(), SlackError> {
        let request = self.http.post(self.url.expose_secret()).json(message);
        let response = super::api::claimed(METHOD, request)
            .await?
            .send()
            .await
            .map_err(|e| SlackError::network(METHOD, e))?;
        let status = response.status();
        if status.as_u16() == 429 {
            return Err(SlackError::RateLimited {
                method: METHOD,
                retry_after: retry_after(response.headers())
                    .unwrap_or(std::time::Duration::from_secs(5)),
            });
        }
        if status.is_server_error() {
            return Err(SlackError::Unavailable {
                method: METHOD,
                status: status.as_u16(),
            });
        }
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let code = body.trim();
        Err(SlackError::Refused {
            method: METHOD,
            code: if code.is_empty() || code.len() > 64 || code.contains(char::is_whitespace) {
                format!("http_{}", status.as_u16())
            } else {
                code.to_owned()
            },
        })
    }
}
