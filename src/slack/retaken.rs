//! A notice another process claimed and never recorded may be out
//! already: before sending it again, look for it in Slack by the key in
//! its message metadata.

use super::{SlackNotifier, message_key};
use crate::notify::{Delivered, Notice, Thread};
use crate::policy::{Destination, is_slack_channel_id};

impl SlackNotifier {
    /// Whether a notice another process was sending is in Slack already,
    /// by the key in its metadata. `None` when it is not, or cannot be told
    /// (an incoming webhook, a channel given by name, no history scope):
    /// then it is sent, at worst twice.
    pub(super) async fn already_posted(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> Option<Delivered> {
        let step = notice.slack.as_ref()?;
        let channel = self.policies.channels.get(&step.channel)?;
        let Destination::SlackChannel(target) = &channel.destination else {
            return None;
        };
        let api = self.api.as_ref()?;
        let channel_id = match thread {
            Some(thread) => thread.channel_id.clone(),
            None if is_slack_channel_id(target) => target.clone(),
            None => {
                tracing::warn!(channel = %step.channel, "cannot check whether a retaken notice went out: give the channel by id (C0123ABCD), not by name");
                return None;
            }
        };
        let oldest = notice.decided_at - chrono::TimeDelta::minutes(10);
        match api
            .find_posted(&channel_id, thread, oldest, &message_key(notice))
            .await
        {
            Ok(Some(ts)) => Some(Delivered {
                thread: Some(thread.cloned().unwrap_or(Thread { channel_id, ts })),
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether a retaken notice went out; sending it");
                None
            }
        }
    }
}
