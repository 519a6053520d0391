//! Which destinations are failing for good, as the notifier last saw them:
//! `/readyz` lists them and `/metrics` counts them, so a channel that was
//! archived or a revoked token shows up at once instead of in a log line
//! nobody reads. A destination is failing from its first permanent error
//! until a later send to it succeeds.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One destination that refused a notice for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingDestination {
    /// The channel's name in the policy files.
    pub channel: String,
    /// What the service said (`channel_not_found`, `invalid_auth`, …).
    pub error: String,
    /// The policy whose notice met the error.
    pub policy: String,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct DestinationHealth {
    failing: Mutex<BTreeMap<String, FailingDestination>>,
}

impl DestinationHealth {
    /// Records a permanent failure; the first one's time is kept.
    pub fn failed(&self, channel: &str, policy: &str, error: &str, at: DateTime<Utc>) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failing
            .entry(channel.to_owned())
            .or_insert_with(|| FailingDestination {
                channel: channel.to_owned(),
                error: error.to_owned(),
                policy: policy.to_owned(),
                since: at,
            });
        entry.error = error.to_owned();
        entry.policy = policy.to_owned();
        metrics::gauge!("labelwarden_destination_failing", "channel" => channel.to_owned())
            .set(1.0);
    }

    /// A send to `channel` worked: it is not failing any more.
    pub fn succeeded(&self, channel: &str) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing.remove(channel).is_some() {
            tracing::info!(channel, "destination works again");
            metrics::gauge!("labelwarden_destination_failing", "channel" => channel.to_owned())
                .set(0.0);
        }
    }

    /// Failing destinations, by channel name.
    pub fn failing(&self) -> Vec<FailingDestination> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        failing.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_fails_until_a_send_to_it_succeeds() {
        let health = DestinationHealth::default();
        let first = Utc::now();
        health.failed("alerts", "critical", "not_in_channel", first);
        health.failed(
            "alerts",
            "critical",
            "is_archived",
            first + chrono::TimeDelta::seconds(5),
        );
        health.failed("triage", "triage-72h", "channel_not_found", first);
        let failing = health.failing();
        assert_eq!(failing.len(), 2);
        assert_eq!(failing[0].channel, "alerts");
        assert_eq!(failing[0].error, "is_archived", "the latest error is shown");
        assert_eq!(failing[0].since, first, "since the first failure");

        health.succeeded("alerts");
        let failing = health.failing();
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].channel, "triage");
    }
}
