//! Comments on GitLab issues carried to their live alert threads in Slack,
//! for policies with `from_gitlab.mirror_comments`: a new comment (GitLab's
//! `Note Hook`) on an issue whose clock under such a policy runs, is
//! paused or breached becomes a reply in each Slack thread that cycle has
//! or is about to have, through the outbox (so it is paced, retried, and said once however
//! often GitLab delivers it). Internal notes and comments on confidential
//! issues go only to `private` channels. labelwarden's own notes (its
//! ledger, step comments, and what it mirrored from Slack) are never
//! posted: a reply mirrored to GitLab does not come back, and the bot's
//! own Slack messages are not mirrored to GitLab, so nothing loops.

use chrono::{DateTime, Utc};

use super::Context;
use crate::clock;
use crate::gitlab::note_hook::IssueComment;
use crate::notice::{CommentFacts, IssueView, Notice};
use crate::policy::Destination;
use crate::store::{AlertThread, Store, StoreError};

/// What became of one comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirrored {
    /// Queued for this many threads.
    Queued(u64),
    /// Not posted anywhere, and why.
    Not(&'static str),
}

/// Queues `comment` for its issue's live alert threads.
pub async fn mirror<S: Store>(
    context: &Context<S>,
    comment: &IssueComment,
    now: DateTime<Utc>,
) -> Result<Mirrored, StoreError> {
    if comment.is_labelwardens() {
        return Ok(Mirrored::Not("labelwarden's own note"));
    }
    let policies = &context.policies;
    if !policies.policies.iter().any(|p| p.mirror_comments) {
        return Ok(Mirrored::Not("no policy mirrors comments"));
    }
    // A comment names its project as it is now; the store may still keep
    // the issue under the path it had before a rename or transfer (the
    // enforcer moves the rows on the project's next issue delivery, and
    // this comment's notice moves with them). Found by the project's id.
    let mut issue_ref = comment.issue.clone();
    if let Some(project_id) = comment.project_id
        && let Some(kept_at) = context.store.project_at(project_id).await?
    {
        issue_ref.project = kept_at;
    }
    let loaded = context
        .store
        .load_issues(std::slice::from_ref(&issue_ref))
        .await?;
    let Some((found, record)) = loaded
        .first()
        .and_then(|found| Some((found, found.record.as_ref()?)))
    else {
        return Ok(Mirrored::Not("no clock of the issue"));
    };
    let issue = record.issue(&found.carried);
    let cycles: Vec<AlertThread> = policies
        .policies
        .iter()
        .filter(|policy| policy.mirror_comments)
        .filter_map(|policy| {
            let reading = clock::read(&issue, policy, now);
            reading.is_live().then(|| AlertThread {
                issue: issue_ref.clone(),
                policy: policy.name.clone(),
                cycle: reading.cycle,
            })
        })
        .collect();
    if cycles.is_empty() {
        return Ok(Mirrored::Not(
            "no live clock of a policy that mirrors comments",
        ));
    }
    let view = IssueView {
        facts: &record.facts,
        title: &record.title,
        url: &record.url,
    };
    let restricted = comment.restricted || record.facts.confidential;
    // Where the cycle posted, or is about to (its first alert may still
    // wait in the outbox): the comment queues behind it, so it is said in
    // the thread that alert starts. Incoming webhooks have no threads.
    let notices: Vec<Notice> = context
        .store
        .cycle_channels(&cycles)
        .await?
        .into_iter()
        .filter(|(_, name)| {
            let Some(channel) = policies.channels.get(name) else {
                return false;
            };
            let threaded = matches!(channel.destination, Destination::SlackChannel(_));
            if threaded && restricted && !channel.private {
                tracing::info!(issue = %issue_ref, channel = %name, "an internal note or a confidential issue's comment is not posted in a channel not marked private");
            }
            threaded && (channel.private || !restricted)
        })
        .map(|(cycle, channel)| {
            Notice::comment(
                view,
                cycle.policy,
                cycle.cycle,
                &channel,
                CommentFacts::new(&comment.username, &comment.name, &comment.body, &comment.url),
                comment.note_id,
                now,
            )
        })
        .collect();
    if notices.is_empty() {
        return Ok(Mirrored::Not("no alert thread may show it"));
    }
    let queued = context.store.queue_notices(&notices, now).await?;
    if queued > 0 {
        context.notices_waiting.notify_one();
    }
    Ok(Mirrored::Queued(queued))
}
