//! Editing in place what labelwarden already posted about an issue that
//! has since become confidential: every message of the cycle's thread in a
//! channel not marked `private` is rewritten (`chat.update`) into the form
//! a confidential issue has there from the start: reference, link and SLA
//! facts, no title, no labels. Each message is found by the key in its
//! metadata and rendered again from the notice it was posted for, as of
//! when that notice was decided, so only what it may not show changes.
//!
//! Incoming webhooks cannot edit what they posted: their channels keep the
//! earlier messages (the book says so, `docs/src/slack.md`). Nothing is un-redacted when an
//! issue stops being confidential.

use super::message::Rendering;
use super::{SlackError, SlackNotifier, message_key};
use crate::notice::{Notice, Thread};
use crate::policy::Destination;

impl SlackNotifier {
    /// Redacts the messages posted in `thread` for `earlier` (the notices
    /// of one cycle in one channel, oldest first).
    pub(super) async fn redact_thread(
        &self,
        thread: Option<&Thread>,
        earlier: &[Notice],
    ) -> Result<(), SlackError> {
        let (Some(thread), Some(first)) = (thread, earlier.first()) else {
            return Ok(());
        };
        let Some(step) = &first.slack else {
            return Ok(());
        };
        let Some(channel) = self.policies.channels.get(&step.channel) else {
            return Ok(());
        };
        if channel.private || !matches!(channel.destination, Destination::SlackChannel(_)) {
            return Ok(());
        }
        let Some(api) = &self.api else {
            return Ok(());
        };
        let posted = api.posted_in_thread(thread).await?;
        // The parent shows the resolution once the cycle is resolved.
        let resolution = earlier.iter().rev().find(|n| n.step_kind == "resolved");
        let mut redacted = 0;
        for notice in earlier {
            let key = message_key(notice);
            let Some((ts, _)) = posted.iter().find(|(_, posted_key)| *posted_key == key) else {
                continue;
            };
            let confidential = Notice {
                confidential: true,
                ..notice.clone()
            };
            let rendering = Rendering {
                notice: &confidential,
                channel,
                people: &self.policies.people,
                now: notice.decided_at,
            };
            let message = if *ts == thread.ts {
                match resolution {
                    Some(resolved) => Rendering {
                        notice: &Notice {
                            confidential: true,
                            ..resolved.clone()
                        },
                        ..rendering
                    }
                    .resolved_parent(),
                    None => rendering.parent().message,
                }
            } else {
                rendering.reply().message
            };
            let at = Thread {
                channel_id: thread.channel_id.clone(),
                ts: ts.clone(),
            };
            api.update(&at, &message).await?;
            redacted += 1;
        }
        tracing::info!(
            issue = %first.issue,
            policy = %first.policy,
            channel = %step.channel,
            redacted,
            "the issue became confidential: its earlier messages were redacted"
        );
        Ok(())
    }
}
