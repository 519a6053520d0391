//! A notice another process claimed and never recorded, or one whose
//! earlier attempt failed in a way that can hide a success (a timeout
//! after Slack posted it), may be out already: before sending it again,
//! look for it in Slack by the key in its message metadata. A look Slack
//! cannot answer for now is tried again later, not answered by posting.

use super::{SlackNotifier, message_key};
use crate::notice::{Delivered, Notice, Thread};
use crate::policy::{Destination, is_slack_channel_id};

/// What a look for a notice that may be out already found.
pub(super) enum Looked {
    /// It is out: its thread.
    Found(Delivered),
    /// It is not out, or whether it is cannot be told for good (an
    /// incoming webhook, a channel given by name, no history scope): it
    /// is sent, at worst twice.
    Send,
    /// Slack could not answer for now (a timeout, a 5xx, a rate limit):
    /// sending could post it twice, so it is tried again later.
    TryLater(super::SlackError),
}

impl SlackNotifier {
    /// Whether a notice that may be out already (another process was
    /// sending it, or an earlier attempt failed in a way that can hide a
    /// success) is in Slack, by the key in its metadata.
    pub(super) async fn already_posted(&self, notice: &Notice, thread: Option<&Thread>) -> Looked {
        let Some(step) = notice.slack.as_ref() else {
            return Looked::Send;
        };
        let Some(channel) = self.policies.channels.get(&step.channel) else {
            return Looked::Send;
        };
        let Destination::SlackChannel(target) = &channel.destination else {
            return Looked::Send;
        };
        let Some(api) = self.api.as_ref() else {
            return Looked::Send;
        };
        let channel_id = match thread {
            Some(thread) => thread.channel_id.clone(),
            None if is_slack_channel_id(target) => target.clone(),
            None => {
                tracing::warn!(channel = %step.channel, "cannot check whether a retaken notice went out: give the channel by id (C0123ABCD), not by name");
                return Looked::Send;
            }
        };
        let oldest = notice.decided_at - chrono::TimeDelta::minutes(10);
        match api
            .find_posted(&channel_id, thread, oldest, &message_key(notice))
            .await
        {
            Ok(Some(ts)) => Looked::Found(Delivered {
                thread: Some(thread.cloned().unwrap_or(Thread { channel_id, ts })),
            }),
            Ok(None) => Looked::Send,
            Err(e) if e.is_temporary() || matches!(e, super::SlackError::ClaimLost { .. }) => {
                tracing::warn!(error = %e, "cannot check now whether the notice went out; trying again later rather than posting it twice");
                Looked::TryLater(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether the notice went out (give labelwarden the channels:history scope); sending it");
                Looked::Send
            }
        }
    }
}
