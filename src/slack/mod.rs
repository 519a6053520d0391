//! Slack: the [`Notifier`] that `serve` (and `audit --notify`) escalate
//! with.
//!
//! - [`message`]: what a notice looks like (pure);
//! - [`api`]: the Web API for a bot token (`chat.postMessage`,
//!   `chat.update`, `reactions.add`);
//! - [`webhook`]: incoming webhooks, for channels with `webhook_env`;
//! - `digest` and `group`: digests (a summary and its list) and group
//!   alerts (one thread for many issues) for storms; `retaken`:
//!   looking for a notice another process may have posted already;
//! - [`SlackNotifier`] (here): the Slack part of a notice (the GitLab
//!   part is [`crate::jobs::escalation`]'s); one thread per clock cycle and channel, the
//!   per-channel rate limit, and what each Slack error means for the
//!   outbox.
//!
//! A cycle's story in a channel: the first step sent posts the parent
//! message (normally `start`); later steps reply in its thread
//! (`broadcast: true` also shows the reply in the channel); on
//! resolution the parent is updated to show the outcome and gets the
//! step's reaction. The calls that can be repeated safely come first, the
//! one that cannot (posting) last, so a retry after a failure never posts
//! twice; what follows a successful post (a reaction on a new parent) is
//! best-effort and logged. A parent deleted in Slack makes the next step
//! start a new one.

pub mod api;
mod digest;
mod error;
pub mod events;
mod group;
pub mod message;
mod redact;
mod retaken;
mod summary;
pub mod webhook;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::SecretString;

use crate::notice::{Delivered, Notice, Thread};
use crate::notify::{DestinationHealth, Notifier, NotifyError};
use crate::policy::{Destination, PolicySet, SlackStep};
use api::WebApi;
use message::Rendering;
use webhook::IncomingWebhook;

pub use error::SlackError;
use error::excerpt;

/// The environment variable with the bot token (`xoxb-…`).
pub const TOKEN_ENV: &str = "SLACK_BOT_TOKEN";
/// The environment variable overriding the Web API's base URL.
pub const API_URL_ENV: &str = "SLACK_API_URL";
/// Messages per second per channel (default 1, as Slack asks); for a
/// workspace with a higher limit, or a test double.
pub const RATE_ENV: &str = "LABELWARDEN_SLACK_PER_CHANNEL_PER_SECOND";

/// How the notifier reaches Slack.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// The Web API's base URL.
    pub api_url: String,
    /// Needed if any channel posts with the bot token.
    pub token: Option<SecretString>,
    /// Incoming webhook URLs, by environment variable name.
    pub webhook_urls: BTreeMap<String, SecretString>,
    /// Messages per second each channel gets (Slack allows about one).
    pub per_channel_per_second: NonZeroU32,
    /// Messages a quiet channel may take at once before the limit applies.
    pub per_channel_burst: NonZeroU32,
}

impl SlackSettings {
    /// Reads `SLACK_API_URL`, `SLACK_BOT_TOKEN` and every `webhook_env`
    /// the channels name, and says everything that is missing at once.
    pub fn from_env(policies: &PolicySet) -> Result<Self, SlackError> {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        let mut problems = Vec::new();
        let bot_channels: Vec<&str> = policies
            .channels
            .values()
            .filter(|c| matches!(c.destination, Destination::SlackChannel(_)))
            .map(|c| c.name.as_str())
            .collect();
        if token.is_none() && !bot_channels.is_empty() {
            problems.push(format!(
                "set {TOKEN_ENV} to the Slack app's bot token (xoxb-…): channels {} post with it",
                bot_channels.join(", ")
            ));
        }
        let mut webhook_urls = BTreeMap::new();
        for channel in policies.channels.values() {
            if let Destination::IncomingWebhook { env_var } = &channel.destination {
                match std::env::var(env_var) {
                    Ok(url) if url.starts_with("https://") || url.starts_with("http://") => {
                        webhook_urls.insert(env_var.clone(), SecretString::from(url));
                    }
                    Ok(_) => problems.push(format!(
                        "{env_var} (incoming webhook of channel `{}`) is not an http(s) URL",
                        channel.name
                    )),
                    Err(_) => problems.push(format!(
                        "set {env_var} to the incoming webhook URL of channel `{}`",
                        channel.name
                    )),
                }
            }
        }
        if !problems.is_empty() {
            return Err(SlackError::Config(problems.join("; ")));
        }
        Ok(SlackSettings {
            api_url: std::env::var(API_URL_ENV)
                .ok()
                .filter(|u| !u.trim().is_empty())
                .unwrap_or_else(|| api::DEFAULT_API_URL.to_owned()),
            token,
            webhook_urls,
            per_channel_per_second: std::env::var(RATE_ENV)
                .ok()
                .and_then(|rate| rate.trim().parse().ok())
                .unwrap_or(NonZeroU32::MIN),
            per_channel_burst: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
        })
    }
}

/// Sends notices to Slack. One per process; safe to share.
pub struct SlackNotifier {
    policies: Arc<PolicySet>,
    api: Option<WebApi>,
    webhooks: BTreeMap<String, IncomingWebhook>,
    limiter: DefaultKeyedRateLimiter<String>,
    /// Channels Slack told to slow down (429), until when.
    slowed: Mutex<HashMap<String, Instant>>,
    health: Arc<DestinationHealth>,
    /// GitLab users already reported as unmapped.
    unmapped_reported: Mutex<HashSet<String>>,
}

impl SlackNotifier {
    pub fn new(policies: Arc<PolicySet>, settings: SlackSettings) -> Result<Self, SlackError> {
        let http = crate::http_client::builder()
            .build()
            .map_err(|e| SlackError::Config(format!("cannot build the HTTP client: {e}")))?;
        let quota = Quota::per_second(settings.per_channel_per_second)
            .allow_burst(settings.per_channel_burst);
        Ok(SlackNotifier {
            api: settings
                .token
                .map(|token| WebApi::new(http.clone(), &settings.api_url, token)),
            webhooks: settings
                .webhook_urls
                .into_iter()
                .map(|(env_var, url)| (env_var, IncomingWebhook::new(http.clone(), url)))
                .collect(),
            policies,
            limiter: RateLimiter::keyed(quota),
            slowed: Mutex::default(),
            health: Arc::default(),
            unmapped_reported: Mutex::default(),
        })
    }

    /// Waits for nobody: says how long to wait if the channel is over its
    /// rate or Slack asked it to slow down.
    fn wait_for_turn(&self, channel: &str) -> Result<(), NotifyError> {
        {
            let mut slowed = self.slowed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(until) = slowed.get(channel) {
                let now = Instant::now();
                if *until > now {
                    return Err(NotifyError::Deferred {
                        retry_after: *until - now,
                    });
                }
                slowed.remove(channel);
            }
        }
        let key = channel.to_owned();
        self.limiter.check_key(&key).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(DefaultClock::default().now());
            NotifyError::Deferred { retry_after }
        })
    }

    /// Logs each GitLab user without a Slack id once.
    fn report_unmapped(&self, usernames: &[String]) {
        if usernames.is_empty() {
            return;
        }
        let mut reported = self
            .unmapped_reported
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for username in usernames {
            if reported.insert(username.clone()) {
                tracing::warn!(
                    gitlab_user = %username,
                    "assignee has no Slack id under people.gitlab_users: shown as plain @{username}, not tagged"
                );
            }
        }
    }

    async fn via_api(
        &self,
        channel: &str,
        step: &SlackStep,
        rendering: &Rendering<'_>,
        thread: Option<&Thread>,
    ) -> Result<Option<Thread>, SlackError> {
        let Some(api) = &self.api else {
            return Err(SlackError::Config(format!(
                "{TOKEN_ENV} is not set and this channel posts with the bot token"
            )));
        };
        let resolved = rendering.notice.step_kind == "resolved";
        let mut parent = thread.cloned();
        // Safe to repeat: update the parent, react on it.
        if resolved && let Some(at) = &parent {
            match api.update(at, &rendering.resolved_parent()).await {
                Err(e) if e.parent_gone() => parent = None,
                // A person's message raised in Slack: the reaction and the
                // reply below say it is resolved.
                Err(e) if e.not_the_bots() => {}
                other => other?,
            }
        }
        let mut reacted = false;
        if let (Some(emoji), Some(at)) = (&step.react, &parent) {
            match api.add_reaction(at, emoji).await {
                Err(e) if e.parent_gone() => parent = None,
                other => {
                    other?;
                    reacted = true;
                }
            }
        }
        // Not safe to repeat: post, once, last.
        if step.post || parent.is_none() {
            let reply = match &parent {
                Some(at) => {
                    let rendered = rendering.reply();
                    self.report_unmapped(&rendered.unmapped);
                    match api
                        .post_message(
                            channel,
                            &rendered.message,
                            Some(at),
                            step.broadcast,
                            &message_key(rendering.notice),
                        )
                        .await
                    {
                        Err(e) if e.parent_gone() => None,
                        other => Some(other?),
                    }
                }
                None => None,
            };
            if reply.is_none() {
                let rendered = rendering.parent();
                self.report_unmapped(&rendered.unmapped);
                let posted = api
                    .post_message(
                        channel,
                        &rendered.message,
                        None,
                        false,
                        &message_key(rendering.notice),
                    )
                    .await?;
                parent = Some(Thread {
                    channel_id: posted.channel_id,
                    ts: posted.ts,
                });
                reacted = false;
            }
        }
        // The message is out: a reaction on a new parent is best-effort.
        if !reacted
            && let (Some(emoji), Some(at)) = (&step.react, &parent)
            && let Err(e) = api.add_reaction(at, emoji).await
        {
            tracing::warn!(error = %e, "message sent, but its reaction could not be added");
        }
        Ok(parent)
    }

    async fn via_webhook(
        &self,
        env_var: &str,
        rendering: &Rendering<'_>,
    ) -> Result<Option<Thread>, SlackError> {
        let Some(webhook) = self.webhooks.get(env_var) else {
            return Err(SlackError::Config(format!(
                "{env_var} was not set when labelwarden started"
            )));
        };
        let rendered = rendering.parent();
        self.report_unmapped(&rendered.unmapped);
        webhook.post(&rendered.message).await?;
        Ok(None)
    }

    /// What a failure means for the outbox, after logging and counting it.
    fn failed(&self, notice: &Notice, channel: &str, error: SlackError) -> NotifyError {
        // Nothing was tried: not the channel's failure.
        if let SlackError::ClaimLost { lost, .. } = error {
            return NotifyError::ClaimLost(lost);
        }
        if let SlackError::RateLimited { retry_after, .. } = &error {
            self.slowed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(channel.to_owned(), Instant::now() + *retry_after);
            return NotifyError::Temporary {
                message: error.to_string(),
                retry_after: Some(*retry_after),
            };
        }
        if error.is_temporary() {
            return NotifyError::Temporary {
                message: error.to_string(),
                retry_after: None,
            };
        }
        let code = error.code();
        tracing::error!(
            channel,
            policy = %notice.policy,
            issue = %notice.issue,
            error = %error,
            "Slack refused the notice for good; fix the channel or token, then resend"
        );
        metrics::counter!(
            "labelwarden_slack_permanent_errors_total",
            "channel" => channel.to_owned(),
            "error" => code.clone()
        )
        .increment(1);
        self.health
            .failed(channel, &notice.policy.0, &code, Utc::now());
        NotifyError::Refused {
            channel: channel.to_owned(),
            message: error.to_string(),
        }
    }
}

/// What identifies a notice's message in Slack's metadata: issue, policy,
/// step, cycle, occurrence.
pub fn message_key(notice: &Notice) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        notice.issue,
        notice.policy,
        notice.firing.step,
        notice.firing.cycle,
        notice.firing.occurrence
    )
}

/// Counts a call to Slack by method and outcome, for `/metrics`.
fn count_request<T>(method: &'static str, result: &Result<T, SlackError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(SlackError::RateLimited { .. }) => "rate_limited",
        Err(e) if e.is_temporary() => "temporary",
        Err(_) => "refused",
    };
    metrics::counter!("labelwarden_slack_requests_total", "method" => method, "outcome" => outcome)
        .increment(1);
}

impl Notifier for SlackNotifier {
    async fn send(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> Result<Delivered, NotifyError> {
        let Some(step) = &notice.slack else {
            // Nothing for Slack in this step.
            return Ok(Delivered {
                thread: thread.cloned(),
            });
        };
        let Some(channel) = self.policies.channels.get(&step.channel) else {
            return Err(NotifyError::Permanent(format!(
                "channel `{}` is no longer defined in the policy files",
                step.channel
            )));
        };
        self.wait_for_turn(&step.channel)?;
        let rendering = Rendering {
            notice,
            channel,
            people: &self.policies.people,
            now: Utc::now(),
        };
        let sent = match &channel.destination {
            Destination::SlackChannel(target) => {
                self.via_api(target, step, &rendering, thread).await
            }
            Destination::IncomingWebhook { env_var } => self.via_webhook(env_var, &rendering).await,
        };
        match sent {
            Ok(thread) => {
                metrics::counter!("labelwarden_slack_messages_total", "channel" => channel.name.clone())
                    .increment(1);
                self.health.succeeded(&step.channel);
                Ok(Delivered { thread })
            }
            Err(error) => Err(self.failed(notice, &step.channel, error)),
        }
    }

    async fn send_retaken(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> Result<Delivered, NotifyError> {
        let channel = notice.slack.as_ref().map_or("", |s| s.channel.as_str());
        match self.already_posted(notice, thread).await {
            retaken::Looked::Found(found) => {
                tracing::info!(issue = %notice.issue, step = %notice.firing.step, "the notice was out already; not posting it twice");
                Ok(found)
            }
            retaken::Looked::Send => self.send(notice, thread).await,
            retaken::Looked::TryLater(error) => Err(self.failed(notice, channel, error)),
        }
    }

    async fn redact(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
        earlier: &[Notice],
    ) -> Result<Delivered, NotifyError> {
        let channel = notice
            .slack
            .as_ref()
            .map(|s| s.channel.as_str())
            .unwrap_or_default();
        self.redact_thread(thread, earlier)
            .await
            .map_err(|error| self.failed(notice, channel, error))?;
        Ok(Delivered {
            thread: thread.cloned(),
        })
    }

    async fn send_digest(
        &self,
        digest: &crate::notice::digest::Digest,
        thread: Option<&Thread>,
        retaken: bool,
    ) -> Result<crate::notice::digest::DigestSent, NotifyError> {
        self.digest_message(digest, thread, retaken).await
    }

    fn health(&self) -> Option<Arc<DestinationHealth>> {
        Some(Arc::clone(&self.health))
    }

    async fn send_summary(&self, channel: &str, text: &str, key: &str) -> Result<(), NotifyError> {
        self.post_summary(channel, text, key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> SlackError {
        SlackError::Refused {
            method: "chat.postMessage",
            code: code.to_owned(),
        }
    }

    #[test]
    fn slack_s_errors_are_sorted_into_retry_give_up_and_new_parent() {
        for code in [
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "ratelimited",
        ] {
            assert!(refused(code).is_temporary(), "{code}");
        }
        for code in [
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "msg_too_long",
            "invalid_blocks",
        ] {
            assert!(!refused(code).is_temporary(), "{code}");
            assert!(!refused(code).parent_gone(), "{code}");
        }
        assert!(refused("thread_not_found").parent_gone());
        assert!(refused("message_not_found").parent_gone());
        assert!(
            SlackError::Unavailable {
                method: "chat.update",
                status: 503
            }
            .is_temporary()
        );
        assert!(
            !SlackError::Unreadable {
                method: "chat.update",
                status: 404,
                detail: "Not Found".into()
            }
            .is_temporary(),
            "a wrong SLACK_API_URL does not fix itself"
        );
    }
}
