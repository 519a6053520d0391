//! Fallback routes of notices a channel refused for good (see
//! [`crate::policy::PolicySet::fallbacks`]): a single notice's fallback is
//! queued as a notice of its own, in the same write as the refusal; a
//! group message's is one summary posted at once to the route's first
//! channel, naming the issues it was about, so a storm in an archived
//! channel still reaches somebody without flooding the fallback.

use chrono::Utc;

use crate::notice::digest::Digest;
use crate::notice::{Notice, Undelivered, UndeliveredRoute};
use crate::notify::Notifier;
use crate::policy::{Fallback, PolicySet, SlackStep};
use crate::store::OutboxEntry;

/// Most issues a group message's fallback names; the rest are counted.
const LISTED: usize = 20;

/// The notice for the next fallback route of a notice `channel` refused
/// for good, with the step it is queued under and the policy channel it
/// goes to (none: a comment on the issue); none if no route is left. It
/// says where the notice should have gone and why: the first channel
/// that refused it, when it is itself a fallback refused in turn.
pub(super) fn fallback_for(
    policies: &PolicySet,
    entry: &OutboxEntry,
    notice: &Notice,
    channel: &str,
    error: &str,
) -> Option<(String, Option<String>, Notice)> {
    let step = notice.slack.as_ref()?;
    let route = policies.fallbacks(channel).into_iter().next()?;
    let undelivered = match &notice.undelivered {
        Some(first) if first.route == UndeliveredRoute::Fallback => first.clone(),
        _ => Undelivered {
            channel: channel.to_owned(),
            error: error.to_owned(),
            failed_at: Utc::now(),
            route: UndeliveredRoute::Fallback,
        },
    };
    let mut instead = notice.clone();
    instead.undelivered = Some(undelivered);
    // The GitLab part was carried out (or failed) with the original.
    instead.gitlab = None;
    let (name, route_channel) = match &route {
        Fallback::Channel(name) => {
            instead.slack = Some(SlackStep {
                channel: name.clone(),
                // Only a post tells people; a reaction would not.
                post: true,
                ..step.clone()
            });
            (name.as_str(), Some(name.clone()))
        }
        Fallback::GitLabComment => {
            instead.slack = None;
            (Fallback::GITLAB_COMMENT, None)
        }
    };
    tracing::warn!(
        channel,
        fallback = name,
        error,
        "the channel refused the notice for good; its fallback is queued"
    );
    let queued_step = super::thread_notices::fallback_step(&entry.key.firing.step, name);
    Some((queued_step.0, route_channel, instead))
}

/// Says at once, on the first channel of `channel`'s fallback route, that
/// a group message `channel` refused for good was about these issues.
/// The group message itself stays failed in the outbox, to be resent to
/// its channel once that is fixed. A route that is only a GitLab comment
/// cannot take one message about many issues: that is logged.
pub(super) async fn digest_fall_back<N: Notifier>(
    policies: &PolicySet,
    notifier: &N,
    digest: &Digest,
    channel: &str,
    error: &str,
) {
    let route = policies
        .fallbacks(channel)
        .into_iter()
        .find_map(|route| match route {
            Fallback::Channel(name) => Some(name),
            Fallback::GitLabComment => None,
        });
    let Some(route) = route else {
        tracing::error!(
            channel,
            "a group message was refused for good and no fallback channel can take it: nobody was told; resend it once the channel is fixed"
        );
        return;
    };
    let text = digest_fallback_text(digest, channel, error);
    let key = format!(
        "fallback|{}|{}|{}|{}",
        digest.key.kind.as_str(),
        digest.key.channel,
        digest.key.policy,
        digest.key.opened_at.timestamp_millis()
    );
    match notifier.send_summary(&route, &text, &key).await {
        Ok(()) => {
            tracing::warn!(channel, fallback = %route, "a group message was refused for good; its issues were named in the fallback channel");
            metrics::counter!("labelwarden_fallback_notices_total", "channel" => channel.to_owned(), "fallback" => route.clone())
                .increment(1);
        }
        Err(e) => {
            tracing::error!(channel, fallback = %route, error = %e, summary = %text, "a group message was refused for good and its fallback failed too")
        }
    }
}

/// The fallback's text: where the group message should have gone and
/// why, the command that resends it, and the issues (reference, link and
/// status, no titles: the fallback may be less private). Pure.
pub(super) fn digest_fallback_text(digest: &Digest, channel: &str, error: &str) -> String {
    let mut issues: Vec<&Notice> = digest.items.iter().map(|item| &item.notice).collect();
    for pending in digest.notices.iter().filter(|n| !n.posted) {
        if !issues.iter().any(|n| n.issue == pending.notice.issue) {
            issues.push(&pending.notice);
        }
    }
    let mut text = format!(
        ":rotating_light: A group message about {} issue{} ({}) should have gone to `{channel}`, \
         which refused it for good ({error}). Fix the channel or token, then \
         `labelwarden outbox resend --channel {channel}`. The issues:",
        issues.len(),
        if issues.len() == 1 { "" } else { "s" },
        digest.key.policy,
    );
    for notice in issues.iter().take(LISTED) {
        text.push_str(&format!(
            "\n• <{}|{}> {}",
            notice.url, notice.issue, notice.status
        ));
    }
    if issues.len() > LISTED {
        text.push_str(&format!("\n… and {} more", issues.len() - LISTED));
    }
    text
}
