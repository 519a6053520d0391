//! What a message says of a notice its channel refused for good (an
//! archived channel, a removed bot, a revoked token): where it should
//! have gone and why, when it goes to a fallback route instead or is
//! resent once the channel is fixed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What became of a notice its channel refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undelivered {
    /// The policy channel that refused it, and what it said.
    pub channel: String,
    pub error: String,
    pub failed_at: DateTime<Utc>,
    pub route: UndeliveredRoute,
}

impl Undelivered {
    /// What a message says of it: where it should have gone and why, and
    /// what was done about it; `late` is how late it goes out, in words.
    pub fn describe(&self, late: String) -> String {
        let (channel, error) = (&self.channel, &self.error);
        match self.route {
            UndeliveredRoute::Fallback => format!(
                ":rotating_light: This should have gone to `{channel}`, which refused it for good ({error}). \
                 Fix the channel or token, then `labelwarden outbox resend --channel {channel}`."
            ),
            UndeliveredRoute::Resent => format!(
                ":warning: Sent {late} late: `{channel}` refused it when it was due ({error}); resent after it was fixed."
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndeliveredRoute {
    /// Queued again (by hand or on recovery) and going to its channel.
    Resent,
    /// Going to the channel's fallback instead, at once.
    Fallback,
}
