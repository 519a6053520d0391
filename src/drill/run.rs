//! Runs a [`Drill`] against Slack: sends its due steps through the same
//! notifier `serve` uses (so they read, tag and thread as real alerts
//! do), reads the alert's reactions every poll (`reactions.get`) for the
//! acknowledgement and the resolution, and at the end posts the summary
//! in every thread the drill started. Nothing here touches GitLab.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;

use super::{Drill, Outcome, Summary};
use crate::notice::Thread;
use crate::notify::{Notifier, NotifyError};
use crate::policy::PolicySet;
use crate::slack::api::WebApi;
use crate::slack::message::{Message, section};
use crate::slack::{SlackError, SlackNotifier};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("Slack refused the drill's alert: {0}")]
    Refused(String),
    #[error("cannot reach Slack: {0}")]
    Slack(#[from] SlackError),
}

/// How the drill reads Slack.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The reaction that acknowledges an alert, as `serve` reads it.
    pub ack_reaction: String,
    /// The reaction that says it is resolved.
    pub resolve_reaction: String,
    /// How often the alert's reactions are read.
    pub poll: Duration,
}

/// Runs `drill` until it ends or `stop` completes (then it ends as
/// stopped), and returns its summary, posted in its threads. `progress`
/// hears each thing that happens, a line each.
pub async fn run(
    drill: &mut Drill,
    policies: &PolicySet,
    notifier: &SlackNotifier,
    api: &WebApi,
    settings: &Settings,
    stop: impl std::future::Future<Output = ()>,
    progress: &mut dyn FnMut(String),
) -> Result<Summary, RunError> {
    // The bot's own reactions (its ✅ on a resolved alert) are nobody's.
    let me = api.get_json("auth.test", &[]).await?["user_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut threads: BTreeMap<String, Thread> = BTreeMap::new();
    tokio::pin!(stop);
    let outcome = loop {
        let now = Utc::now();
        for notice in drill.due(now) {
            let channel = notice.slack.as_ref().map(|s| s.channel.clone());
            let thread = channel.as_ref().and_then(|c| threads.get(c));
            match notifier.send(&notice, thread).await {
                Ok(delivered) => {
                    if let (Some(channel), Some(thread)) = (&channel, delivered.thread) {
                        threads.entry(channel.clone()).or_insert(thread);
                    }
                    drill.record(&notice, Utc::now());
                    metrics::counter!("labelwarden_drill_steps_total", "policy" => drill.original.name.0.clone(), "step" => notice.firing.step.0.clone())
                        .increment(1);
                    progress(format!(
                        "said `{}` in `{}`",
                        notice.firing.step,
                        channel.as_deref().unwrap_or("-")
                    ));
                }
                // Slack is busy or away a moment: the next turn tries again.
                Err(NotifyError::Temporary { message, .. }) => {
                    progress(format!(
                        "could not say `{}` yet: {message}",
                        notice.firing.step
                    ));
                    break;
                }
                Err(e) if drill.said.is_empty() => return Err(RunError::Refused(e.to_string())),
                Err(e) => {
                    // A later step refused for good: recorded, so the drill
                    // goes on, and the summary lists what was said.
                    progress(format!("`{}` was refused: {e}", notice.firing.step));
                    drill.record(&notice, Utc::now());
                }
            }
        }
        if let Some(outcome) = drill.outcome(Utc::now()) {
            break outcome;
        }
        if drill.said.is_empty() && Utc::now() > drill.started_at + drill.policy.clock.target {
            return Err(RunError::Refused(
                "the alert could not be posted before the drill's deadline".to_owned(),
            ));
        }
        if read_reactions(drill, api, &threads, settings, &me, progress).await {
            // Acknowledged or resolved: what that changes is said at once.
            continue;
        }
        let now = Utc::now();
        let mut wait = settings.poll;
        if let Some(wake) = drill.next_wake(now) {
            let until = (wake - now).to_std().unwrap_or_default();
            wait = wait.min(until.max(Duration::from_millis(50)));
        }
        tokio::select! {
            () = &mut stop => break Outcome::Stopped,
            () = tokio::time::sleep(wait) => {}
        }
    };
    let mut replied = Vec::new();
    for thread in threads.values() {
        match api.replies(thread).await {
            Ok(replies) => {
                for reply in replies {
                    if !replied.contains(&reply.user) {
                        replied.push(reply.user);
                    }
                }
            }
            Err(e) => progress(format!("cannot read the thread's replies: {e}")),
        }
    }
    let summary = Summary::of(drill, &policies.people, outcome, replied, Utc::now());
    record_metrics(drill, &summary);
    let message = Message {
        text: format!("Drill summary: {}", summary.text()),
        blocks: summary.mrkdwn().iter().map(|line| section(line)).collect(),
    };
    let key = format!("drill:{}:summary", drill.reference());
    for thread in threads.values() {
        if let Err(e) = api
            .post_message(&thread.channel_id, &message, Some(thread), false, &key)
            .await
        {
            progress(format!("cannot post the summary in the thread: {e}"));
        }
    }
    Ok(summary)
}

/// Reads each alert's reactions: the first person's acknowledgement and
/// resolution count, as `serve` counts them. True when one was new.
async fn read_reactions(
    drill: &mut Drill,
    api: &WebApi,
    threads: &BTreeMap<String, Thread>,
    settings: &Settings,
    me: &str,
    progress: &mut dyn FnMut(String),
) -> bool {
    let mut changed = false;
    for thread in threads.values() {
        let reactions = match api.reactions(thread).await {
            Ok(reactions) => reactions,
            Err(e) => {
                progress(format!("cannot read the alert's reactions: {e}"));
                continue;
            }
        };
        let now = Utc::now();
        for (name, users) in reactions {
            let Some(user) = users.iter().find(|u| u.as_str() != me) else {
                continue;
            };
            if name == settings.ack_reaction && drill.acknowledged.is_none() {
                drill.acknowledge(user, now);
                progress(format!("acknowledged by {user}"));
                changed = true;
            } else if name == settings.resolve_reaction && drill.resolved.is_none() {
                drill.resolve(user, now);
                progress(format!("resolved by {user}"));
                changed = true;
            }
        }
    }
    changed
}

/// The drill's figures, for a metrics file: every series the process
/// writes carries `drill="true"` (see `labelwarden drill --metrics-file`).
fn record_metrics(drill: &Drill, summary: &Summary) {
    let policy = drill.original.name.0.clone();
    if let Some((_, _, after)) = &summary.acknowledged {
        metrics::counter!("labelwarden_acknowledgements_total", "policy" => policy.clone())
            .increment(1);
        // On the policy's clock, comparable with real incidents'.
        metrics::histogram!("labelwarden_time_to_acknowledge_seconds", "policy" => policy.clone())
            .record(drill.policy_time(*after).num_milliseconds() as f64 / 1000.0);
    }
    let reached = matches!(summary.secondary, super::Secondary::Tagged { .. });
    metrics::gauge!("labelwarden_drill_secondary_reached", "policy" => policy.clone())
        .set(if reached { 1.0 } else { 0.0 });
    metrics::gauge!("labelwarden_drill_acknowledged", "policy" => policy.clone())
        .set(if summary.acknowledged() { 1.0 } else { 0.0 });
    let outcome = match summary.outcome {
        Outcome::Resolved => "resolved",
        Outcome::Breached => "breached",
        Outcome::Stopped => "stopped",
    };
    metrics::gauge!("labelwarden_drill_outcome", "policy" => policy, "outcome" => outcome).set(1.0);
}
