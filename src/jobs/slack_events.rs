//! Acts on the Slack events `POST /webhooks/slack` stored, oldest first,
//! on the first message of an alert thread labelwarden posted and in its
//! thread:
//! - the acknowledgement reaction (`--ack-reaction`, default `eyes`) added
//!   or removed: recorded per person, with the time to acknowledge in
//!   `labelwarden_time_to_acknowledge_seconds`, and noted on the issue;
//! - the resolve and false-positive reactions, written on the GitLab issue
//!   with the person's last reply ([`crate::gitlab::from_slack`]);
//! - replies, mirrored as internal notes where the policy asks;
//! - the raise reaction on a person's message in a channel that opens
//!   issues: the message becomes a GitLab issue ([`super::raise`]).
//!
//! An event stays in the store until it was acted on: a restart, or GitLab
//! failing for a while, loses nothing. A failure for now is tried again
//! with the outbox's backoff; one that stays (or can never work) is kept
//! with its error, logged with the issue and counted in
//! `labelwarden_slack_to_gitlab_failed_total`. Events are claimed like
//! outbox entries, so replicas sharing a database act on each once: each
//! request while acting on one confirms the claim first, and its outcome
//! is recorded only under it (see [`crate::notify::claim`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::raise::{self, RaiseOutcome};
use super::slack_to_gitlab::{FromSlackError, Outcome, SlackToGitLab};
use crate::gitlab::from_slack::Said;
use crate::notice::Thread;
use crate::notice::digest::DigestKey;
use crate::notify::claim;
use crate::slack::events::{self, Event};
use crate::store::{AlertThread, SlackEventOutcome, Store, StoreError};

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
    /// The reaction that makes a person's message in a channel with
    /// `opens_issues` a GitLab issue ([`super::raise`]).
    pub raise_reaction: String,
    /// Writes on GitLab what was said in Slack; `None` without a Slack
    /// bot token and a GitLab token.
    pub to_gitlab: Option<SlackToGitLab>,
}

/// Events acted on per pass.
const BATCH: u32 = 16;
/// Attempts before an event that keeps failing is given up (about 20
/// minutes with the default backoff).
const MAX_ATTEMPTS: u32 = 12;
/// Sleep at most this long between looks at the store.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

/// Why acting on an event failed.
struct Failure {
    message: String,
    temporary: bool,
    /// The issue it was about, for the log, if known.
    alert: Option<AlertThread>,
}

impl Failure {
    fn store(error: StoreError) -> Failure {
        Failure {
            message: format!("store: {error}"),
            temporary: true,
            alert: None,
        }
    }

    fn writing(alert: &AlertThread, error: FromSlackError) -> Failure {
        Failure {
            temporary: error.is_temporary(),
            message: error.to_string(),
            alert: Some(alert.clone()),
        }
    }
}

pub async fn run<S: Store>(
    context: &Context<S>,
    config: &SlackEventsConfig,
    shutdown: CancellationToken,
) {
    loop {
        let waiting = context.slack_events_waiting.notified();
        let busy = match pass(context, config).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the stored Slack events; retrying in 1s");
                false
            }
        };
        if busy {
            continue;
        }
        let sleep = match context.store.next_slack_event().await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(LONGEST_SLEEP),
            Ok(None) => LONGEST_SLEEP,
            Err(_) => Duration::from_secs(1),
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = waiting => {}
            _ = tokio::time::sleep(sleep.max(Duration::from_millis(10))) => {}
        }
    }
}

/// One batch; true when it was full and another should follow at once.
async fn pass<S: Store>(
    context: &Context<S>,
    config: &SlackEventsConfig,
) -> Result<bool, StoreError> {
    let claimed = context
        .store
        .claim_slack_events(Utc::now(), BATCH, context.lease)
        .await?;
    for stored in &claimed {
        // Every request while acting on it confirms the claim first.
        let claim = super::claims::StoreClaim::slack_event(
            context.store.clone(),
            stored.event_id.clone(),
            stored.claim.clone(),
            context.lease,
        );
        let outcome = match serde_json::from_str::<Event>(&stored.event) {
            Err(e) => SlackEventOutcome::Failed {
                error: format!("stored event cannot be read: {e}"),
            },
            Ok(event) => {
                match claim::under(claim, act(context, config, event, stored.attempts > 0)).await {
                    Ok(()) => SlackEventOutcome::Done,
                    Err(failure) => {
                        let attempt = stored.attempts + 1;
                        let (issue, policy) = failure
                            .alert
                            .as_ref()
                            .map(|a| (a.issue.to_string(), a.policy.0.clone()))
                            .unwrap_or_default();
                        if failure.temporary && attempt < MAX_ATTEMPTS {
                            let wait = context.retry.backoff(attempt);
                            tracing::warn!(event_id = %stored.event_id, issue, error = %failure.message, retry_in = ?wait, "acting on a Slack event failed for now");
                            SlackEventOutcome::Retry {
                                error: failure.message,
                                retry_at: Utc::now()
                                    + chrono::TimeDelta::from_std(wait).unwrap_or_default(),
                            }
                        } else {
                            tracing::error!(event_id = %stored.event_id, issue, policy, attempts = attempt, error = %failure.message, "a Slack event could not be acted on; given up");
                            metrics::counter!("labelwarden_slack_to_gitlab_failed_total", "policy" => policy)
                            .increment(1);
                            SlackEventOutcome::Failed {
                                error: failure.message,
                            }
                        }
                    }
                }
            }
        };
        let recorded = context
            .store
            .finish_slack_event(&stored.event_id, &stored.claim, &outcome, Utc::now())
            .await?;
        if !recorded {
            tracing::warn!(event_id = %stored.event_id, "not recorded: this process lost its claim on the Slack event (it stalled past it); the process that claimed it since acts on it");
        }
    }
    Ok(claimed.len() == BATCH as usize)
}

/// Acts on one event; `retrying` after an earlier attempt failed part way.
async fn act<S: Store>(
    context: &Context<S>,
    config: &SlackEventsConfig,
    event: Event,
    retrying: bool,
) -> Result<(), Failure> {
    match event {
        Event::Reaction {
            added,
            user,
            reaction,
            channel,
            ts,
            at,
        } if reaction == config.ack_reaction => {
            let parent = Thread {
                channel_id: channel,
                ts,
            };
            acknowledgement(context, config, added, &user, &parent, at, retrying).await
        }
        Event::Reaction {
            added: true,
            user,
            reaction,
            channel,
            ts,
            ..
        } if reaction == config.raise_reaction => {
            let message = Thread {
                channel_id: channel,
                ts,
            };
            raise_message(context, config, &message, &user, None).await
        }
        Event::Mention {
            user,
            channel,
            thread_ts,
            text,
        } => {
            let Some(labels) = raise::issue_command(&text) else {
                tracing::info!(user = %user, "a mention that is not an `issue` command is not acted on");
                return Ok(());
            };
            let message = Thread {
                channel_id: channel,
                ts: thread_ts,
            };
            let labels = (!labels.is_empty()).then_some(labels.as_slice());
            raise_message(context, config, &message, &user, labels).await
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
                return Ok(());
            };
            let parent = Thread {
                channel_id: channel,
                ts,
            };
            let Some(alert) = alert_thread(context, &parent).await? else {
                return Ok(());
            };
            let Some(to_gitlab) = &config.to_gitlab else {
                tracing::warn!(issue = %alert.issue, "a resolve or false-positive reaction is not written to GitLab: serve needs SLACK_BOT_TOKEN and GITLAB_TOKEN (api) for that");
                return Ok(());
            };
            let written = to_gitlab
                .reaction(&alert, &parent, said, &user)
                .await
                .map_err(|e| Failure::writing(&alert, e))?;
            if written == Outcome::Written {
                let said = said.as_str();
                tracing::info!(issue = %alert.issue, policy = %alert.policy, user = %user, said, "written on the issue from Slack");
                metrics::counter!("labelwarden_slack_resolutions_total", "policy" => alert.policy.0.clone(), "said" => said)
                    .increment(1);
            }
            Ok(())
        }
        Event::Reply {
            user,
            channel,
            thread_ts,
            ts,
            text,
        } => {
            let Some(to_gitlab) = &config.to_gitlab else {
                return Ok(());
            };
            let parent = Thread {
                channel_id: channel,
                ts: thread_ts,
            };
            let Some(alert) = alert_thread(context, &parent).await? else {
                return Ok(());
            };
            to_gitlab
                .reply(&alert, &parent, &user, &ts, &text)
                .await
                .map(drop)
                .map_err(|e| Failure::writing(&alert, e))
        }
        Event::Reaction { .. } | Event::Other => Ok(()),
    }
}

/// `user` raised `message` (a reaction, or an `issue` command in its
/// thread, whose labels replace the channel's): it becomes an issue.
async fn raise_message<S: Store>(
    context: &Context<S>,
    config: &SlackEventsConfig,
    message: &Thread,
    user: &str,
    labels: Option<&[String]>,
) -> Result<(), Failure> {
    let Some(to_gitlab) = &config.to_gitlab else {
        tracing::warn!(channel = %message.channel_id, "a raised message makes no issue: serve needs SLACK_BOT_TOKEN and GITLAB_TOKEN (api) for that");
        return Ok(());
    };
    match raise::raise(context, to_gitlab, message, user, labels, Utc::now()).await {
        Ok(RaiseOutcome::Created(raised)) => {
            tracing::info!(issue = %raised.issue, user = %user, "a message raised in Slack became an issue");
            metrics::counter!("labelwarden_raised_in_slack_total", "outcome" => "created")
                .increment(1);
            Ok(())
        }
        Ok(RaiseOutcome::Adopted(raised)) => {
            tracing::info!(issue = %raised.issue, user = %user, "a message raised in Slack adopted its issue");
            metrics::counter!("labelwarden_raised_in_slack_total", "outcome" => "adopted")
                .increment(1);
            Ok(())
        }
        Ok(RaiseOutcome::Already | RaiseOutcome::NotHere) => Ok(()),
        Err(e) => Err(Failure {
            temporary: e.is_temporary(),
            message: e.to_string(),
            alert: None,
        }),
    }
}

/// The clock cycle of an alert thread labelwarden posted, if it is one.
/// A group alert's thread stands for many issues: a resolution or reply
/// there is written on none of them (its parent says so).
async fn alert_thread<S: Store>(
    context: &Context<S>,
    parent: &Thread,
) -> Result<Option<AlertThread>, Failure> {
    let alert = context
        .store
        .alert_thread(&parent.channel_id, &parent.ts)
        .await
        .map_err(Failure::store)?;
    Ok(alert.filter(|alert| {
        let group = DigestKey::from_outbox(&alert.issue, &alert.policy).is_some();
        if group {
            tracing::info!(policy = %alert.policy, "a reaction or reply on a group alert is written on no issue: resolve each issue in GitLab");
        }
        !group
    }))
}

/// The acknowledgement reaction added or taken off: recorded per person,
/// then noted on the issue (when `serve` can write to GitLab) so that
/// `audit` and `explain` know of it. A retry finds the store part done and
/// writes the note it could not write before (once: notes carry markers).
/// On a group alert's parent it stands for every member, recorded and
/// noted per issue.
async fn acknowledgement<S: Store>(
    context: &Context<S>,
    config: &SlackEventsConfig,
    added: bool,
    user: &str,
    parent: &Thread,
    at: DateTime<Utc>,
    retrying: bool,
) -> Result<(), Failure> {
    let reaction = Acknowledging {
        added,
        user,
        parent,
        at,
        retrying,
    };
    // Not a message labelwarden posted: none of its business.
    for alert in cycles_of(context, parent).await? {
        acknowledge_cycle(context, config, reaction, &alert).await?;
    }
    Ok(())
}

/// The acknowledgement reaction as it came: added or taken off, by whom,
/// on which message, when; `retrying` after an earlier attempt failed.
#[derive(Clone, Copy)]
struct Acknowledging<'a> {
    added: bool,
    user: &'a str,
    parent: &'a Thread,
    at: DateTime<Utc>,
    retrying: bool,
}

/// The clock cycles a message labelwarden posted stands for: its alert
/// thread's, or every member of the group (or digest) it is the parent
/// of; none for a message labelwarden did not post.
async fn cycles_of<S: Store>(
    context: &Context<S>,
    parent: &Thread,
) -> Result<Vec<AlertThread>, Failure> {
    let Some(alert) = context
        .store
        .alert_thread(&parent.channel_id, &parent.ts)
        .await
        .map_err(Failure::store)?
    else {
        return Ok(Vec::new());
    };
    let Some(key) = DigestKey::from_outbox(&alert.issue, &alert.policy) else {
        return Ok(vec![alert]);
    };
    let digest = context.store.digest(&key).await.map_err(Failure::store)?;
    Ok(digest
        .map(|digest| {
            digest
                .items
                .into_iter()
                .map(|item| AlertThread {
                    issue: item.notice.issue,
                    policy: key.policy.clone(),
                    cycle: item.notice.firing.cycle,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// One clock cycle's acknowledgement, added or taken off.
async fn acknowledge_cycle<S: Store>(
    context: &Context<S>,
    config: &SlackEventsConfig,
    reaction: Acknowledging<'_>,
    alert: &AlertThread,
) -> Result<(), Failure> {
    let Acknowledging {
        added,
        user,
        parent,
        at,
        retrying,
    } = reaction;
    let store = &context.store;
    let gitlab_user = context.policies.people.gitlab_username(user);
    let said = if added {
        let acknowledged = store
            .acknowledge(alert, user, at)
            .await
            .map_err(Failure::store)?;
        if !acknowledged.recorded && !retrying {
            return Ok(());
        }
        if acknowledged.recorded && acknowledged.first {
            let waited =
                events::ts_instant(&parent.ts).map(|posted| (at - posted).num_milliseconds());
            tracing::info!(
                issue = %alert.issue,
                policy = %alert.policy,
                cycle = alert.cycle,
                user = %user,
                gitlab_user,
                after_ms = waited,
                "alert acknowledged in Slack"
            );
            metrics::counter!("labelwarden_acknowledgements_total", "policy" => alert.policy.0.clone())
                .increment(1);
            if let Some(waited) = waited {
                metrics::histogram!("labelwarden_time_to_acknowledge_seconds", "policy" => alert.policy.0.clone())
                    .record(waited.max(0) as f64 / 1000.0);
            }
        }
        Said::Acknowledged
    } else {
        let withdrawal = store
            .withdraw_acknowledgement(alert, user, Utc::now())
            .await
            .map_err(Failure::store)?;
        if !withdrawal.removed && !retrying {
            return Ok(());
        }
        if withdrawal.removed {
            tracing::info!(
                issue = %alert.issue,
                user = %user,
                gitlab_user,
                still_acknowledged = withdrawal.still_acknowledged,
                "acknowledgement withdrawn"
            );
        }
        if withdrawal.removed && !withdrawal.still_acknowledged {
            // A step held back by it may be due: look now.
            context.deliveries_waiting.notify_one();
        }
        Said::Unacknowledged
    };
    // Every person's, so that GitLab's record matches when the first takes
    // theirs back.
    let Some(to_gitlab) = &config.to_gitlab else {
        return Ok(());
    };
    to_gitlab
        .acknowledgement(alert, parent, said, user, at)
        .await
        .map(drop)
        .map_err(|e| Failure::writing(alert, e))
}
