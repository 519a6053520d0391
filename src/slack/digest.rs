//! Digests in Slack: a summary message in the channel, then the list in
//! its thread (standalone messages for an incoming webhook, which has no
//! threads), most urgent first, every issue linked. One message per call,
//! so the channel's pace applies to each; the summary is updated in place
//! (`chat.update`) when more issues join after it went out.
//!
//! The rendering is pure; [`SlackNotifier::digest_message`] sends.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::api::WebApi;
use super::group::{self, link};
use super::message::{
    CONFIDENTIAL_TITLE, Message, Rendering, assignee_names, escape, human, section, slack_date,
};
use super::{SlackError, SlackNotifier};
use crate::notice::digest::{Digest, DigestItem, DigestKind, DigestSent, ListPart, Standing};
use crate::notice::{Notice, Thread};
use crate::notify::NotifyError;
use crate::policy::{Channel, Destination, Mention, People};

/// Issues one list message holds at most.
pub const LIST_PER_MESSAGE: usize = crate::notice::digest::PER_MESSAGE;
/// A title in a list line is cut to this many characters.
const LIST_TITLE_CHARS: usize = 120;

/// The digest's parent message, by what it is about.
pub fn summary(digest: &Digest, channel: &Channel, people: &People, now: DateTime<Utc>) -> Message {
    match digest.key.kind {
        DigestKind::Adopted => adopted_summary(digest, channel, people, now),
        DigestKind::Alerts => group::summary(digest, channel, people, now),
        DigestKind::Reminders => group::reminders(digest, channel, people, now),
    }
}

/// An adoption digest's summary: what labelwarden started tracking, the
/// figures, what happens next, and who the policy tags (once).
fn adopted_summary(
    digest: &Digest,
    channel: &Channel,
    people: &People,
    now: DateTime<Utc>,
) -> Message {
    let tally = digest.tally(now);
    let policy = escape(&digest.key.policy.0);
    let issues = |n: usize| {
        if n == 1 {
            "1 issue".to_owned()
        } else {
            format!("{n} issues")
        }
    };
    let mut figures = Vec::new();
    if tally.overdue > 0 {
        let mut part = format!("*{} past their deadline*", tally.overdue);
        if let Some((by, notice)) = tally.oldest_overdue {
            part.push_str(&format!(
                ", the oldest {} over ({})",
                human(by),
                link(notice)
            ));
        }
        figures.push(part);
    }
    if tally.running > 0 {
        let mut part = format!("{} running", tally.running);
        if let Some((left, notice)) = tally.next_deadline {
            part.push_str(&format!(
                ", the next deadline in {} ({})",
                human(left),
                link(notice)
            ));
        }
        figures.push(part);
    }
    if tally.paused > 0 {
        figures.push(format!("{} paused", tally.paused));
    }
    let headline = format!(
        ":inbox_tray: labelwarden started tracking {} under `{policy}` that were already open: {}.",
        issues(tally.total),
        figures.join("; ")
    );
    let what_next = match channel.destination {
        Destination::SlackChannel(_) => {
            "Steps they missed before are recorded as done, not sent one by one; what falls due from now on is sent as usual. The list, most urgent first, is in this thread."
        }
        Destination::IncomingWebhook { .. } => {
            "Steps they missed before are recorded as done, not sent one by one; what falls due from now on is sent as usual. The list, most urgent first, follows."
        }
    };
    let mut blocks = vec![section(&headline), section(what_next)];
    let mut text = format!(
        "labelwarden started tracking {} under {} that were already open",
        issues(tally.total),
        digest.key.policy
    );
    if let Some(tags) = tags(digest, channel, people, now) {
        blocks.push(section(&format!("*Tagged:* {tags}")));
        text.push_str(&format!(" {tags}"));
    }
    Message { text, blocks }
}

/// The people the policy's step tags, once: its groups and who is on
/// call, as its alerts tag them. Assignees are named in the list instead,
/// not tagged by the hundred.
fn tags(digest: &Digest, channel: &Channel, people: &People, now: DateTime<Utc>) -> Option<String> {
    let mut notice = digest
        .items
        .iter()
        .find(|item| item.notice.slack.is_some())?
        .notice
        .clone();
    if let Some(step) = &mut notice.slack {
        step.mentions
            .retain(|mention| *mention != Mention::Assignees);
    }
    let rendering = Rendering {
        notice: &notice,
        channel,
        people,
        now,
    };
    rendering.tagged().0
}

/// One issue's line: where its clock stands, its title (unless the channel
/// may not see it) and its assignees.
fn line(item: &DigestItem, channel: &Channel, now: DateTime<Utc>) -> String {
    let notice = &item.notice;
    let (emoji, standing) = match Standing::of(notice, now) {
        Standing::Overdue(std::cmp::Reverse(by)) => {
            (":red_circle:", format!("{} past its deadline", human(by)))
        }
        Standing::Running(left) => (
            ":large_orange_circle:",
            match notice.deadline {
                Some(deadline) => {
                    format!("{} left, deadline {}", human(left), slack_date(deadline))
                }
                None => format!("{} left", human(left)),
            },
        ),
        Standing::Paused(left) => (
            ":double_vertical_bar:",
            format!("{} left, clock paused", human(left)),
        ),
    };
    let title = if notice.confidential && !channel.private {
        CONFIDENTIAL_TITLE.to_owned()
    } else {
        let mut title: String = notice.title.chars().take(LIST_TITLE_CHARS).collect();
        if title.len() < notice.title.len() {
            title.push('…');
        }
        escape(&title)
    };
    let assignees =
        assignee_names(&notice.assignees).unwrap_or_else(|| "nobody assigned".to_owned());
    format!("{emoji} {} {title}: {standing} ({assignees})", link(notice))
}

/// One part of the list: its lines in sections Slack accepts.
pub fn list(
    digest: &Digest,
    part: &ListPart<'_>,
    channel: &Channel,
    people: &People,
    now: DateTime<Utc>,
) -> Message {
    let first = part.offset + 1;
    let last = part.offset + part.items.len();
    let heading = format!(
        "*Issues {first}–{last} of {}* (most urgent first):",
        part.total
    );
    let lines: Vec<String> = part
        .items
        .iter()
        .map(|item| line(item, channel, now))
        .collect();
    let mut blocks: Vec<Value> = vec![section(&heading)];
    blocks.extend(group::sections(&lines, "\n"));
    let text = format!(
        "{} issues {first}–{last} of {}",
        digest.key.policy, part.total
    );
    // A group's members are new alerts: if they waited, say so. Adopted
    // issues were never due to be said one by one.
    if digest.key.kind == DigestKind::Alerts {
        let starts: Vec<&Notice> = part.items.iter().map(|item| &item.notice).collect();
        blocks.extend(group::late_note(&starts, channel, people, now));
    }
    Message { text, blocks }
}

impl SlackNotifier {
    /// Sends the next message of `digest`: the summary first; then, in its
    /// thread, an update of the summary if more joined and the next part
    /// of the list.
    pub(super) async fn digest_message(
        &self,
        digest: &Digest,
        thread: Option<&Thread>,
        retaken: bool,
    ) -> Result<DigestSent, NotifyError> {
        let name = &digest.key.channel;
        let Some(channel) = self.policies.channels.get(name) else {
            return Err(NotifyError::Permanent(format!(
                "channel `{name}` is no longer defined in the policy files"
            )));
        };
        self.wait_for_turn(name)?;
        let now = Utc::now();
        let version = digest.summary_version();
        let mut progress = digest.progress;
        let pending = digest.pending();
        // A summary said to be out with no thread known for it (recorded
        // before labelwarden kept the two together) is found by its key,
        // or posted again: the list never goes to the channel on its own.
        let summary_lost = progress.summarised > 0
            && thread.is_none()
            && matches!(channel.destination, Destination::SlackChannel(_));
        let sent = async {
            if progress.summarised == 0 || summary_lost {
                let message = summary(digest, channel, &self.policies.people, now);
                let key = message_key(digest, "summary");
                let thread = self
                    .post_once(
                        channel,
                        &message,
                        None,
                        false,
                        &key,
                        retaken || summary_lost,
                    )
                    .await?;
                progress.summarised = version;
                let done =
                    pending == 0 && digest.next_part(progress, now, LIST_PER_MESSAGE).is_none();
                return Ok(DigestSent {
                    thread,
                    progress,
                    done,
                    posted: Vec::new(),
                    listed: Vec::new(),
                });
            }
            if progress.summarised < version
                && let (Some(at), Some(api)) = (thread, &self.api)
            {
                // Safe to repeat; its own (more generous) Slack limit.
                let message = summary(digest, channel, &self.policies.people, now);
                match api.update(at, &message).await {
                    Err(e) if e.parent_gone() => {}
                    other => other?,
                }
                progress.summarised = version;
            }
            // The list first, then the members' later steps, a kind at a time.
            if let Some(part) = digest.next_part(progress, now, LIST_PER_MESSAGE) {
                let message = list(digest, &part, channel, &self.policies.people, now);
                let key = message_key(
                    digest,
                    &format!("list:{}:{}", part.after.batch_through, part.offset),
                );
                let posted = self
                    .post_once(channel, &message, thread, false, &key, retaken)
                    .await?;
                progress = part.after;
                let done =
                    pending == 0 && digest.next_part(progress, now, LIST_PER_MESSAGE).is_none();
                return Ok(DigestSent {
                    thread: thread.cloned().or(posted),
                    progress,
                    done,
                    posted: Vec::new(),
                    listed: part
                        .items
                        .iter()
                        .map(|item| (item.notice.issue.clone(), item.notice.firing.clone()))
                        .collect(),
                });
            }
            let Some(step) = digest.next_step(LIST_PER_MESSAGE) else {
                return Ok(DigestSent {
                    thread: thread.cloned(),
                    progress,
                    done: true,
                    posted: Vec::new(),
                    listed: Vec::new(),
                });
            };
            let notices = step.notices;
            let message =
                group::step_message(step.kind, &notices, channel, &self.policies.people, now);
            let key = message_key(digest, &step.key);
            let broadcast = notices
                .iter()
                .any(|n| n.slack.as_ref().is_some_and(|s| s.broadcast));
            let posted = self
                .post_once(channel, &message, thread, broadcast, &key, retaken)
                .await?;
            Ok(DigestSent {
                thread: thread.cloned().or(posted),
                progress,
                done: notices.len() == pending,
                posted: notices
                    .iter()
                    .map(|n| (n.issue.clone(), n.firing.clone()))
                    .collect(),
                listed: Vec::new(),
            })
        };
        match sent.await {
            Ok(sent) => {
                metrics::counter!("labelwarden_slack_messages_total", "channel" => name.clone())
                    .increment(1);
                self.health.succeeded(name);
                Ok(sent)
            }
            Err(error) => {
                let notice = digest.key.outbox_notice(1, now);
                Err(self.failed(&notice, name, error))
            }
        }
    }

    /// Posts one digest message unless a send another process claimed and
    /// never recorded (`retaken`) posted it already: found by its key in
    /// Slack's metadata, as retaken notices are.
    async fn post_once(
        &self,
        channel: &Channel,
        message: &Message,
        thread: Option<&Thread>,
        broadcast: bool,
        key: &str,
        retaken: bool,
    ) -> Result<Option<Thread>, SlackError> {
        if retaken && let Some(found) = self.find_digest_message(channel, thread, key).await {
            tracing::info!(channel = %channel.name, key, "the digest message was out already; not posting it twice");
            return Ok(Some(found));
        }
        self.post_digest(channel, message, thread, broadcast, key)
            .await
    }

    /// A digest message labelwarden posted with `key` in the last 10
    /// minutes, if Slack can tell (a bot token, a channel given by id or a
    /// thread to look in).
    async fn find_digest_message(
        &self,
        channel: &Channel,
        thread: Option<&Thread>,
        key: &str,
    ) -> Option<Thread> {
        let Destination::SlackChannel(target) = &channel.destination else {
            return None;
        };
        let api = self.api.as_ref()?;
        let channel_id = match thread {
            Some(thread) => thread.channel_id.clone(),
            None if crate::policy::is_slack_channel_id(target) => target.clone(),
            None => return None,
        };
        let oldest = Utc::now() - chrono::TimeDelta::minutes(10);
        match api.find_posted(&channel_id, thread, oldest, key).await {
            Ok(found) => found.map(|ts| Thread { channel_id, ts }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether a digest message went out; posting it");
                None
            }
        }
    }

    /// Posts one digest message, in `thread` if there is one.
    async fn post_digest(
        &self,
        channel: &Channel,
        message: &Message,
        thread: Option<&Thread>,
        broadcast: bool,
        key: &str,
    ) -> Result<Option<Thread>, SlackError> {
        match &channel.destination {
            Destination::SlackChannel(target) => {
                let api: &WebApi = self.api.as_ref().ok_or_else(|| {
                    SlackError::Config(format!(
                        "{} is not set and this channel posts with the bot token",
                        super::TOKEN_ENV
                    ))
                })?;
                let posted = api
                    .post_message(target, message, thread, broadcast, key)
                    .await?;
                Ok(Some(Thread {
                    channel_id: posted.channel_id,
                    ts: posted.ts,
                }))
            }
            Destination::IncomingWebhook { env_var } => {
                let webhook = self.webhooks.get(env_var).ok_or_else(|| {
                    SlackError::Config(format!("{env_var} was not set when labelwarden started"))
                })?;
                webhook.post(message).await?;
                Ok(None)
            }
        }
    }
}

/// What identifies a digest's message in Slack's metadata.
fn message_key(digest: &Digest, part: &str) -> String {
    let issue = digest.key.outbox_issue();
    format!("{issue}|{}|{part}", digest.key.policy)
}

#[cfg(test)]
mod tests;
