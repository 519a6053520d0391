//! The notification port: the seam a fired step's [`Notice`] goes out
//! through. A [`Notifier`] sends one notice; the outbox worker retries it
//! until the notifier says it went out, under a [`claim`] it re-checks
//! before every request.
//!
//! What a notice says is the core's ([`crate::notice`]); the notifiers
//! that speak to the world are adapters (Slack in [`crate::slack`]; a
//! step's GitLab part then its Slack part in `jobs::escalation`).
//!
//! [`LogNotifier`] writes each notice to the log, for running `serve`
//! before Slack is configured: chosen explicitly, never a silent default.

pub mod claim;
mod health;
mod log;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::notice::{Delivered, Notice, Thread, digest};

/// Why a notice was not sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Not tried: the destination's rate limit says to wait. Does not count
    /// as an attempt.
    #[error("deferred for {retry_after:?} by the rate limit")]
    Deferred { retry_after: Duration },
    /// Worth trying again later (network, 5xx, rate limit).
    #[error("temporary failure: {message}")]
    Temporary {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will fail the same way every time (bad token, unknown channel).
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The notice's channel refused it for good (archived, bot removed,
    /// token revoked): permanent, and the channel's fallback routes apply.
    #[error("permanent failure: {message}")]
    Refused { channel: String, message: String },
    /// Not tried: the outbox claim under which it was being sent is lost
    /// (see [`claim`]); another process sends it.
    #[error(transparent)]
    ClaimLost(#[from] claim::ClaimLost),
}

/// Sends notices. Implementations must be safe to call concurrently; the
/// outbox never sends two notices of one issue and policy at once.
pub trait Notifier: Send + Sync + 'static {
    /// Sends `notice`, continuing `thread` if its cycle has one in the
    /// notice's channel.
    fn send(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> impl Future<Output = Result<Delivered, NotifyError>> + Send;

    /// Sends a notice another process claimed and never recorded (it died
    /// or stalled mid-send): it may be out already. Notifiers that can
    /// look (Slack keeps a key in each message's metadata) do, and report
    /// it sent instead of sending it twice.
    fn send_retaken(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> impl Future<Output = Result<Delivered, NotifyError>> + Send {
        self.send(notice, thread)
    }

    /// Edits what was posted in `thread` for the `earlier` notices of one
    /// clock cycle in one channel (oldest first) into the form a
    /// confidential issue has outside private channels: `notice` (step
    /// kind `redact`) says the issue became confidential. Notifiers that
    /// cannot edit what they sent (logs, incoming webhooks) do nothing.
    fn redact(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
        earlier: &[Notice],
    ) -> impl Future<Output = Result<Delivered, NotifyError>> + Send {
        let _ = (notice, earlier);
        let thread = thread.cloned();
        async move { Ok(Delivered { thread }) }
    }

    /// Sends the next message of `digest` (its summary, an update of it,
    /// or the next part of its list), continuing `thread` once the
    /// summary is out: one message a call, so that the channel's pace
    /// applies to each. Notifiers that cannot post (logs) say it all at
    /// once. `retaken`: another process claimed this send and never
    /// recorded it, so its next message may be out already; notifiers that
    /// can look (Slack, by the key in each message's metadata) do.
    fn send_digest(
        &self,
        digest: &digest::Digest,
        thread: Option<&Thread>,
        retaken: bool,
    ) -> impl Future<Output = Result<digest::DigestSent, NotifyError>> + Send {
        let _ = retaken;
        let sent = log_digest(digest, thread);
        async move { Ok(sent) }
    }

    /// Posts `text` (Slack mrkdwn) on its own to the policy channel
    /// `channel`: a mute's summary. `key` identifies it in the message's
    /// metadata. Notifiers that cannot post write it to the log.
    fn send_summary(
        &self,
        channel: &str,
        text: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send {
        tracing::info!(channel, key, summary = text, "summary");
        async { Ok(()) }
    }

    /// Says a notice on its issue in GitLab, as a comment: the last-resort
    /// fallback route. Notifiers without GitLab access cannot.
    fn comment_instead(
        &self,
        notice: &Notice,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send {
        let _ = notice;
        async {
            Err(NotifyError::Permanent(
                "this notifier has no GitLab access to comment with".to_owned(),
            ))
        }
    }

    /// Lists a step that is done without a message (nothing to send, or
    /// held by a mute) on its issue's ledger note, where this notifier
    /// keeps the issues' ledger notes (`serve` with a GitLab token, see
    /// `gitlab::markers`); others keep nothing.
    fn record_done(&self, notice: &Notice) {
        let _ = notice;
    }

    /// The destinations this notifier knows to be failing, for `/readyz`.
    fn health(&self) -> Option<Arc<DestinationHealth>> {
        None
    }

    /// Finishes what it keeps for later (the issues' ledger notes), at
    /// shutdown.
    fn flush(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

pub use health::{DestinationHealth, FailingDestination};
use log::log_digest;
pub use log::{LogNotifier, describe_gitlab};
