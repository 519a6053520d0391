//! The claim a notice is being sent under (an outbox row), or a Slack
//! event acted on under (a stored event), confirmed right before every
//! request that leaves for Slack or GitLab meanwhile.
//!
//! A process can freeze mid-send (a GC pause, a stopped VM, a stalled
//! host) for longer than its claim. Another replica then takes the notice
//! over, looks for it in Slack, does not find it, and sends it. Without a
//! check, the thawed process would send it again from its stale claim. So
//! the outbox worker sends each notice inside [`under`], and the Slack
//! and GitLab clients call [`before_request`] before each request: it
//! confirms the claim is still this process's and stretches it to a whole
//! lease, and bounds the request's timeout well inside that lease. A lost
//! claim stops the send before anything leaves.
//!
//! A confirmation's answer can itself wait out a freeze (the database
//! answered at once; the process read the answer seconds later), so it
//! counts only if what is left of the stretched claim, measured after the
//! answer was read, still covers the request twice over.
//!
//! What no check can close: a freeze after that last look at the clock
//! and before the request's bytes leave, lasting longer than what was left
//! of the claim (at least two request timeouts). The book (`docs/src/ha.md`) says how
//! small that is.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What confirming a claim comes to: `Err` with why it is not this
/// process's any more (or cannot be shown to be).
pub type Confirming<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// A claim that can be confirmed and stretched.
pub trait Claim: Send + Sync {
    /// Confirms the claim is still this process's and makes it last a
    /// whole lease from when it was asked; refuses when the answer came
    /// back too late for what is left of it to cover a request (the
    /// process stalled while it waited).
    fn confirm(&self) -> Confirming<'_>;

    /// The longest a request under this claim may take: a third of the
    /// lease at most, so a confirmed claim outlasts the request that
    /// follows it with room to spare.
    fn request_timeout(&self) -> Duration;
}

/// The longest a request under a claim may take for a claim of `lease`:
/// a third of it, never more than the clients' own timeout
/// ([`crate::http_client::REQUEST_TIMEOUT`]) and never less than 100 ms.
pub fn request_timeout_for(lease: chrono::TimeDelta) -> Duration {
    let third = (lease / 3).to_std().unwrap_or(Duration::ZERO);
    third.clamp(
        Duration::from_millis(100),
        crate::http_client::REQUEST_TIMEOUT,
    )
}

/// Whether a claim stretched to `lease` from `asked_at` still covers a
/// request, twice over, now that the confirmation's answer has been read:
/// that answer may have waited out a freeze of this process.
pub fn still_covers(
    asked_at: chrono::DateTime<chrono::Utc>,
    lease: chrono::TimeDelta,
) -> Result<(), String> {
    let now = chrono::Utc::now();
    let needed = chrono::TimeDelta::from_std(request_timeout_for(lease) * 2).unwrap_or(lease);
    if asked_at + lease - now < needed {
        return Err(format!(
            "the confirmation came back {} ms late (this process stalled); the claim may be another's by now",
            (now - asked_at).num_milliseconds()
        ));
    }
    Ok(())
}

tokio::task_local! {
    static CLAIM: Arc<dyn Claim>;
}

/// Runs `send` with `claim` as the claim its requests confirm.
pub async fn under<F: Future>(claim: Arc<dyn Claim>, send: F) -> F::Output {
    CLAIM.scope(claim, send).await
}

/// The claim was lost before a request could leave: another process owns
/// the notice now, or this one cannot show it still does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the claim on this notice is lost ({0}); nothing was sent")]
pub struct ClaimLost(pub String);

/// A claim confirmed for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    /// The longest the request may take.
    pub timeout: Duration,
    /// When the confirmation was read: the sender's last look at the
    /// clock before the request leaves.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The header a request under a claim carries: when its claim was last
/// confirmed (milliseconds since the epoch). Services ignore it; it
/// tells a request that left in the window no check can close (a freeze
/// between the confirmation and the bytes leaving) from one that was
/// never checked.
pub const CONFIRMED_HEADER: &str = "x-labelwarden-claim-confirmed";

/// To call right before a request leaves. Outside a send (no claim in
/// scope) it allows the request as it is (`None`); under a claim it
/// confirms the claim and gives the timeout the request must keep to, or
/// says the claim is lost.
pub async fn before_request() -> Result<Option<Confirmed>, ClaimLost> {
    let Ok(claim) = CLAIM.try_with(Arc::clone) else {
        return Ok(None);
    };
    claim.confirm().await.map_err(ClaimLost)?;
    Ok(Some(Confirmed {
        timeout: claim.request_timeout(),
        at: chrono::Utc::now(),
    }))
}

impl Confirmed {
    /// `request` bounded by the claim's timeout and carrying
    /// [`CONFIRMED_HEADER`].
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .timeout(self.timeout)
            .header(CONFIRMED_HEADER, self.at.timestamp_millis().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A claim whose confirmations are counted and answered from a list.
    struct Scripted {
        answers: Mutex<Vec<Result<(), String>>>,
    }

    impl Claim for Scripted {
        fn confirm(&self) -> Confirming<'_> {
            let answer = self.answers.lock().unwrap().remove(0);
            Box::pin(async move { answer })
        }

        fn request_timeout(&self) -> Duration {
            Duration::from_millis(700)
        }
    }

    #[tokio::test]
    async fn a_request_under_a_claim_confirms_it_each_time_and_stops_once_it_is_lost() {
        let claim = Arc::new(Scripted {
            answers: Mutex::new(vec![Ok(()), Err("claimed by another".to_owned())]),
        });
        let outcomes = under(claim.clone(), async {
            let first = before_request().await;
            let second = before_request().await;
            (first, second)
        })
        .await;
        assert_eq!(
            outcomes.0.map(|c| c.map(|c| c.timeout)),
            Ok(Some(Duration::from_millis(700)))
        );
        assert_eq!(outcomes.1, Err(ClaimLost("claimed by another".to_owned())));
        assert!(claim.answers.lock().unwrap().is_empty());
        // Outside a send, nothing is asked.
        assert_eq!(before_request().await, Ok(None));
    }

    #[test]
    fn a_confirmation_read_late_does_not_count() {
        use chrono::{TimeDelta, Utc};
        let lease = TimeDelta::seconds(3);
        assert!(still_covers(Utc::now(), lease).is_ok(), "read at once");
        // Asked 1.5 s ago: 1.5 s left, less than two 1 s requests.
        let late = still_covers(Utc::now() - TimeDelta::milliseconds(1_500), lease);
        assert!(late.is_err_and(|why| why.contains("late")));
    }

    #[test]
    fn a_request_takes_a_third_of_the_lease_at_most() {
        use chrono::TimeDelta;
        assert_eq!(
            request_timeout_for(TimeDelta::seconds(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            request_timeout_for(TimeDelta::seconds(300)),
            crate::http_client::REQUEST_TIMEOUT
        );
        assert_eq!(
            request_timeout_for(TimeDelta::milliseconds(30)),
            Duration::from_millis(100)
        );
    }
}
