//! A manual alert becomes a tracked issue in one gesture: the raise
//! reaction (`serve --raise-reaction`, default `rotating_light`) on a
//! person's message in a channel with `opens_issues`, or the bot mentioned
//! in its thread with `issue LABEL…`, creates the GitLab
//! issue (or adopts the one the message links), replies in the message's
//! thread with its link, and makes that message the issue's alert thread
//! in that channel: the policy's steps go there, not to a second parent.
//!
//! Once: the message is claimed in the store before anything is created,
//! so a second reaction, a Slack retry or another replica finds it taken;
//! a claim whose process died is taken over after [`STALE_CLAIM`], and
//! the issue it may have created is found again by its marker.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::Context;
use super::slack_to_gitlab::{FromSlackError, SlackToGitLab};
use crate::gitlab::raised_issue::{self, RaisedIssue, RaisedMessage};
use crate::notice::Thread;
use crate::policy::{Channel, Destination, OpensIssues, is_slack_channel_id};
use crate::slack::message::Message;
use crate::store::{Raised, Store, StoreError};

/// How long a claim may stay pending before another takes it over.
pub const STALE_CLAIM: TimeDelta = TimeDelta::minutes(2);

/// What came of a raise reaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaiseOutcome {
    Created(RaisedIssue),
    /// The message linked an issue, or one made for it before was found.
    Adopted(RaisedIssue),
    /// It became an issue already.
    Already,
    /// Not a person's message in a channel that opens issues.
    NotHere,
}

#[derive(Debug, thiserror::Error)]
pub enum RaiseError {
    #[error(transparent)]
    Writing(#[from] FromSlackError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("another process is making the message an issue")]
    Pending,
}

impl RaiseError {
    pub fn is_temporary(&self) -> bool {
        match self {
            RaiseError::Writing(e) => e.is_temporary(),
            RaiseError::Store(_) | RaiseError::Pending => true,
        }
    }
}

/// The channel of the policy files that `channel_id` is, with where it
/// opens issues, if it does. Slack is asked the channel's name only when
/// such a channel is written as `#name`.
async fn channel_opening_issues<'p>(
    to_gitlab: &'p SlackToGitLab,
    channel_id: &str,
) -> Result<Option<(&'p Channel, &'p OpensIssues)>, FromSlackError> {
    let opening: Vec<(&Channel, &OpensIssues, &str)> = to_gitlab
        .policies
        .channels
        .values()
        .filter_map(
            |channel| match (&channel.opens_issues, &channel.destination) {
                (Some(opens), Destination::SlackChannel(given)) => {
                    Some((channel, opens, given.as_str()))
                }
                _ => None,
            },
        )
        .collect();
    if let Some((channel, opens, _)) = opening.iter().find(|(_, _, given)| *given == channel_id) {
        return Ok(Some((channel, opens)));
    }
    if opening
        .iter()
        .all(|(_, _, given)| is_slack_channel_id(given))
    {
        return Ok(None);
    }
    let Some(name) = to_gitlab.slack.channel_name(channel_id).await? else {
        return Ok(None);
    };
    Ok(opening
        .into_iter()
        .find(|(_, _, given)| given.strip_prefix('#') == Some(name.as_str()))
        .map(|(channel, opens, _)| (channel, opens)))
}

/// The labels of an `issue` command to the bot (`<@U0BOT> issue
/// priority::highest security`); `None` for anything else.
pub fn issue_command(text: &str) -> Option<Vec<String>> {
    let mut words = text
        .split_whitespace()
        .filter(|word| !(word.starts_with("<@") && word.ends_with('>')));
    let command = words.next()?;
    command
        .eq_ignore_ascii_case("issue")
        .then(|| words.map(str::to_owned).collect())
}

/// Acts on `user` raising `message`, with `labels` instead of the
/// channel's when given.
pub async fn raise<S: Store>(
    context: &Context<S>,
    to_gitlab: &SlackToGitLab,
    message: &Thread,
    user: &str,
    labels: Option<&[String]>,
    now: DateTime<Utc>,
) -> Result<RaiseOutcome, RaiseError> {
    let Some((channel, opens)) = channel_opening_issues(to_gitlab, &message.channel_id).await?
    else {
        return Ok(RaiseOutcome::NotHere);
    };
    if context
        .store
        .alert_thread(&message.channel_id, &message.ts)
        .await?
        .is_some()
    {
        return Ok(RaiseOutcome::NotHere);
    }
    let Some((author, text)) = to_gitlab
        .slack
        .persons_message(message)
        .await
        .map_err(FromSlackError::from)?
    else {
        return Ok(RaiseOutcome::NotHere);
    };
    match context
        .store
        .claim_raised(
            message,
            &channel.name,
            &opens.project,
            now,
            now - STALE_CLAIM,
        )
        .await?
    {
        Raised::Issue(_) => return Ok(RaiseOutcome::Already),
        Raised::Pending => return Err(RaiseError::Pending),
        Raised::Claimed => {}
    }
    let people = &to_gitlab.policies.people;
    let marker = raised_issue::marker(message);
    let outcome = if let Some(named) = raised_issue::named_issue(&text) {
        RaiseOutcome::Adopted(named)
    } else if let Some(found) = to_gitlab
        .gitlab
        .find_raised(&opens.project, &marker)
        .await
        .map_err(FromSlackError::from)?
    {
        RaiseOutcome::Adopted(found)
    } else {
        let raised = RaisedMessage {
            message: message.clone(),
            author,
            raised_by: user.to_owned(),
            permalink: to_gitlab
                .slack
                .permalink(message)
                .await
                .map_err(FromSlackError::from)?,
            text,
        };
        let created = to_gitlab
            .gitlab
            .create_raised(
                &opens.project,
                &raised_issue::title(people, &raised.text),
                &raised_issue::description(people, &raised),
                labels.unwrap_or(&opens.labels),
                channel.private,
            )
            .await
            .map_err(FromSlackError::from)?;
        RaiseOutcome::Created(created)
    };
    let (RaiseOutcome::Created(issue) | RaiseOutcome::Adopted(issue)) = &outcome else {
        return Ok(outcome);
    };
    context.store.record_raised(message, &issue.issue).await?;
    let said = format!(
        ":ticket: Tracking this as <{}|{}> (raised by <@{user}>). The issue's alerts and updates go in this thread.",
        issue.url, issue.issue
    );
    let reply = Message {
        text: said.clone(),
        blocks: vec![json!({ "type": "section", "text": { "type": "mrkdwn", "text": said } })],
    };
    to_gitlab
        .slack
        .post_message(
            &message.channel_id,
            &reply,
            Some(message),
            false,
            &format!("raised:{}", message.ts),
        )
        .await
        .map_err(FromSlackError::from)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::issue_command;

    #[test]
    fn an_issue_command_gives_its_labels_and_anything_else_is_no_command() {
        assert_eq!(
            issue_command("<@U0LABELWDN> issue priority::highest security"),
            Some(vec!["priority::highest".to_owned(), "security".to_owned()])
        );
        assert_eq!(issue_command("<@U0LABELWDN>  Issue"), Some(vec![]));
        assert_eq!(issue_command("<@U0LABELWDN> what is this?"), None);
        assert_eq!(issue_command("<@U0LABELWDN>"), None);
    }
}
