//! The claims the outbox worker sends under and the Slack events job acts
//! under, as the Slack and GitLab clients confirm them before each
//! request (see [`crate::notify::claim`]): still this process's, stretched
//! to a whole lease, and confirmed in time to cover the request.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};

use crate::notify::claim::{self, Claim, Confirming};
use crate::store::{ClaimToken, OutboxKey, Store};

/// What a claim is on.
enum Claimed {
    /// An outbox entry: a notice being sent.
    Notice(OutboxKey),
    /// A stored Slack event being acted on.
    SlackEvent(String),
}

/// A claim this process holds in the store.
pub(super) struct StoreClaim<S> {
    store: S,
    claimed: Claimed,
    token: ClaimToken,
    lease: TimeDelta,
}

impl<S: Store> StoreClaim<S> {
    /// The claim on the outbox entry `key`, made with `token`.
    pub(super) fn notice(
        store: S,
        key: OutboxKey,
        token: ClaimToken,
        lease: TimeDelta,
    ) -> Arc<Self> {
        Arc::new(StoreClaim {
            store,
            claimed: Claimed::Notice(key),
            token,
            lease,
        })
    }

    /// The claim on the Slack event `event_id`, made with `token`.
    pub(super) fn slack_event(
        store: S,
        event_id: String,
        token: ClaimToken,
        lease: TimeDelta,
    ) -> Arc<Self> {
        Arc::new(StoreClaim {
            store,
            claimed: Claimed::SlackEvent(event_id),
            token,
            lease,
        })
    }
}

impl<S: Store> Claim for StoreClaim<S> {
    fn confirm(&self) -> Confirming<'_> {
        Box::pin(async move {
            let asked_at = Utc::now();
            let confirmed = match &self.claimed {
                Claimed::Notice(key) => {
                    self.store
                        .confirm_claim(key, &self.token, asked_at, self.lease)
                        .await
                }
                Claimed::SlackEvent(event_id) => {
                    self.store
                        .confirm_slack_event_claim(event_id, &self.token, asked_at, self.lease)
                        .await
                }
            };
            match confirmed {
                Ok(true) => claim::still_covers(asked_at, self.lease),
                Ok(false) => Err("another process claimed it since".to_owned()),
                Err(e) => Err(format!("cannot confirm the claim: {e}")),
            }
        })
    }

    fn request_timeout(&self) -> Duration {
        claim::request_timeout_for(self.lease)
    }
}
