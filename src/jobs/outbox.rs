//! The outbox worker: sends recorded notices through the [`Notifier`] and
//! marks each sent only after the notifier succeeded (a batch's outcomes in
//! one transaction, with the threads the sends started). Notices of
//! different issues go out concurrently; those of one issue and policy go
//! out one at a time, in the order they were recorded: the store hands out
//! only the head of each thread, so a failing notice holds back the rest of
//! its thread. Temporary failures are retried with capped exponential
//! backoff and jitter (or after the `Retry-After` the service asked for);
//! notices a rate limit deferred are tried again without counting an
//! attempt; permanent failures are kept, counted and logged, never dropped
//! silently.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Context;
use super::retry::{RetryPolicy, outcome, record_delay};
use crate::notice::digest::DigestKey;
use crate::notice::{Delivered, UndeliveredRoute};
use crate::notify::{Notifier, NotifyError, claim};
use crate::policy::Fallback;
use crate::store::queued::ResendSelection;
use crate::store::{
    ClaimToken, OutboxEntry, OutboxKey, OutboxOutcome, SendResult, Store, StoreError,
};

const BATCH: u32 = 50;
/// The longest the worker waits before looking at the outbox again.
const IDLE_LOOK: Duration = Duration::from_secs(2);
/// Notices sent at once: enough to keep many channels busy while one is slow.
const IN_FLIGHT: usize = 16;

pub async fn run<S: Store, N: Notifier>(
    context: &Context<S>,
    notifier: &N,
    shutdown: CancellationToken,
) {
    let mut recovery = Recovery::default();
    let mut mute_watch = super::mutes::MuteWatch::default();
    loop {
        recovery.look(context).await;
        if mute_watch.refresh(context).await {
            super::mutes::summarise_ended(context, notifier).await;
        }
        let waiting = context.notices_waiting.notified();
        let now = Utc::now();
        // The claim lasts the context's lease: if this process dies mid-batch,
        // another replica sends the batch once it runs out.
        let entries = match context.store.claim_outbox(now, BATCH, context.lease).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox; retrying in 1s");
                Vec::new()
            }
        };
        // At most one entry per thread: sending them all at once keeps each
        // thread in order.
        let fetched = entries.len();
        let retry = context.retry;
        let mutes = mute_watch.active(now);
        let mutes = &mutes;
        let outcomes: Vec<OutboxOutcome> = futures_util::stream::iter(entries)
            .map(|entry| {
                let span = tracing::info_span!("outbox", issue = %entry.key.issue, policy = %entry.key.policy, step = %entry.key.firing.step);
                // Every request while sending it confirms the claim first.
                let claim = super::claims::StoreClaim::notice(
                    context.store.clone(),
                    entry.key.clone(),
                    entry.claim.clone(),
                    context.lease,
                );
                let send = async move {
                    let silenced = super::mutes::silencing(mutes, &entry.notice, now);
                    let result = if entry.notice.step_kind == "redact" {
                        // Redactions protect confidentiality: never muted.
                        redact(context, notifier, &entry, retry).await
                    } else if let Some(key) = DigestKey::from_outbox(&entry.key.issue, &entry.key.policy) {
                        // A storm's digest is said whole (not muted).
                        send_digest(context, notifier, &entry, &key, retry).await
                    } else if let Some(mute) = silenced {
                        super::mutes::hold(notifier, &entry, mute, retry).await
                    } else {
                        send(context, notifier, &entry, retry).await
                    };
                    OutboxOutcome::of(&entry, result)
                };
                claim::under(claim, send).instrument(span)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        if !outcomes.is_empty() {
            match context.store.record_outbox(&outcomes).await {
                Ok(lost) => log_lost_claims(&outcomes, &lost),
                Err(e) => {
                    // Sent but not marked: they would be sent again. Say so
                    // loudly, and pause before the next pass.
                    tracing::error!(error = %e, count = outcomes.len(), "cannot record what became of sent notices");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            }
        }
        if fetched == BATCH as usize {
            continue;
        }
        // Notices another process queues (`outbox resend`, a replica)
        // ring no bell here: look again within IDLE_LOOK at the latest.
        let sleep = match context.store.next_outbox_attempt().await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(5), IDLE_LOOK),
            Ok(None) => IDLE_LOOK,
            Err(_) => Duration::from_secs(1),
        };
        tokio::select! {
            // Shutdown is looked at only between batches: a notice being sent is finished.
            _ = shutdown.cancelled() => return,
            _ = waiting => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Says which outcomes were not recorded because their claim was lost:
/// a send stopped before its request left, or an outcome that came back
/// after this process stalled past its claim.
fn log_lost_claims(outcomes: &[OutboxOutcome], lost: &[OutboxKey]) {
    for outcome in outcomes {
        if let SendResult::ClaimLost { reason } = &outcome.result {
            tracing::warn!(issue = %outcome.key.issue, policy = %outcome.key.policy, step = %outcome.key.firing.step, reason, "not sent: this process lost its claim on the notice (it stalled past it); the process that claimed it since sends it");
        } else if lost.contains(&outcome.key) {
            tracing::warn!(issue = %outcome.key.issue, policy = %outcome.key.policy, step = %outcome.key.firing.step, "not recorded: this process lost its claim on the notice while sending it; the process that claimed it since records it");
        }
    }
    if !lost.is_empty() {
        metrics::counter!("labelwarden_outbox_claims_lost_total").increment(lost.len() as u64);
    }
}

/// How often the worker looks for channels that work again after
/// refusing notices for good.
const RECOVERY_EVERY: Duration = Duration::from_secs(15);

/// Channels that took a notice again after refusing some for good: their
/// failed notices are queued again (`--resend-when-healthy`) or the
/// command that does is logged, once per failure.
#[derive(Default)]
struct Recovery {
    looked_at: Option<std::time::Instant>,
    offered: std::collections::HashSet<(String, chrono::DateTime<Utc>)>,
}

impl Recovery {
    async fn look<S: Store>(&mut self, context: &Context<S>) {
        if self
            .looked_at
            .is_some_and(|at| at.elapsed() < RECOVERY_EVERY)
        {
            return;
        }
        self.looked_at = Some(std::time::Instant::now());
        let Ok(failed) = context.store.failed_channels().await else {
            return;
        };
        for channel in failed.into_iter().filter(|f| f.works_again) {
            if context.resend_when_healthy {
                let selection = ResendSelection::Channel(channel.channel.clone());
                match context.store.resend(&selection, Utc::now()).await {
                    Ok(queued) => {
                        tracing::warn!(channel = %channel.channel, queued, "the channel works again; its failed notices are resent, marked late")
                    }
                    Err(e) => {
                        tracing::error!(channel = %channel.channel, error = %e, "cannot queue the channel's failed notices again")
                    }
                }
            } else if self
                .offered
                .insert((channel.channel.clone(), channel.last_failed_at))
            {
                tracing::warn!(
                    channel = %channel.channel,
                    failed = channel.failed,
                    resend = %channel.resend_command(),
                    "the channel works again; notices it refused are still unsent: resend them"
                );
            }
        }
    }
}

/// Carries out a redaction: the notices sent before to its cycle's thread
/// in its channel are handed to the notifier to edit. Safe to repeat.
async fn redact<S: Store, N: Notifier>(
    context: &Context<S>,
    notifier: &N,
    entry: &OutboxEntry,
    retry: RetryPolicy,
) -> SendResult {
    let channel = entry
        .notice
        .slack
        .as_ref()
        .map(|s| s.channel.as_str())
        .unwrap_or_default();
    let earlier = match context
        .store
        .sent_notices(
            &entry.key.issue,
            &entry.key.policy,
            entry.key.firing.cycle,
            channel,
        )
        .await
    {
        Ok(earlier) => earlier,
        Err(e) => {
            let unread = NotifyError::Temporary {
                message: format!("cannot read what was sent before: {e}"),
                retry_after: None,
            };
            return outcome(entry, retry, Err(unread));
        }
    };
    let redacted = notifier
        .redact(&entry.notice, entry.thread.as_ref(), &earlier)
        .await;
    outcome(entry, retry, redacted)
}

/// Sends the next message of a digest, and records how far it got; more
/// messages follow in the digest's thread at the channel's pace.
async fn send_digest<S: Store, N: Notifier>(
    context: &Context<S>,
    notifier: &N,
    entry: &OutboxEntry,
    key: &DigestKey,
    retry: RetryPolicy,
) -> SendResult {
    let temporary = |what: &str, e: StoreError| NotifyError::Temporary {
        message: format!("{what}: {e}"),
        retry_after: None,
    };
    let mut digest = match context.store.digest(key).await {
        Ok(Some(digest)) => digest,
        Ok(None) => {
            let missing = NotifyError::Permanent("the digest is not in the store".to_owned());
            return outcome(entry, retry, Err(missing));
        }
        Err(e) => return outcome(entry, retry, Err(temporary("cannot read the digest", e))),
    };
    // What the next message holds is written down before it is posted: a
    // send taken over from a process that died posts the same message (or
    // finds it in Slack), never a different cut of the same issues.
    let claim = Some((&entry.key, &entry.claim));
    match plan(context, &mut digest, entry.may_be_out(), claim).await {
        Ok(()) => {}
        Err(StoreError::ClaimLost(_)) => return claim_lost(),
        Err(e) => {
            return outcome(
                entry,
                retry,
                Err(temporary("cannot plan the digest's message", e)),
            );
        }
    }
    let sent = match notifier
        .send_digest(&digest, entry.thread.as_ref(), entry.may_be_out())
        .await
    {
        Ok(sent) => sent,
        Err(e) => {
            if let NotifyError::Refused { channel, message } = &e {
                super::fallback::digest_fall_back(
                    &context.policies,
                    notifier,
                    &digest,
                    channel,
                    message,
                )
                .await;
            }
            return outcome(entry, retry, Err(e));
        }
    };
    match context
        .store
        .record_digest(
            key,
            &sent.progress,
            &sent.posted,
            // A thread new with this send (the summary's) goes with the
            // progress; one the row had is already recorded.
            sent.thread.as_ref().filter(|_| entry.thread.is_none()),
            claim,
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::ClaimLost(_)) => return claim_lost(),
        Err(e) => {
            // Posted but not recorded: the next try may post it again.
            tracing::error!(error = %e, "cannot record how far a digest got");
            return outcome(entry, retry, Err(temporary("cannot record the digest", e)));
        }
    }
    record_digest_delays(&digest, &sent);
    if sent.done {
        return outcome(
            entry,
            retry,
            Ok(Delivered {
                thread: sent.thread,
            }),
        );
    }
    metrics::counter!("labelwarden_actions_sent_total", "policy" => entry.key.policy.0.clone())
        .increment(1);
    SendResult::Progress {
        thread: sent.thread,
        retry_at: Utc::now(),
    }
}

/// A digest's write found its claim lost: another process sends it now.
fn claim_lost() -> SendResult {
    SendResult::ClaimLost {
        reason: "another process claimed the digest since".to_owned(),
    }
}

/// Records a list batch about to begin, or the members' notices chosen
/// for the next message, in the store and in `digest`. A plan this process
/// made and did not carry out (the channel's pace deferred it) is made
/// anew with what joined since; only a send `retaken` from a process that
/// died keeps the plan it may have posted.
async fn plan<S: Store>(
    context: &Context<S>,
    digest: &mut crate::notice::digest::Digest,
    retaken: bool,
    claim: Option<(&OutboxKey, &ClaimToken)>,
) -> Result<(), StoreError> {
    let now = Utc::now();
    if !retaken {
        for pending in digest.notices.iter_mut().filter(|n| !n.posted) {
            pending.planned = None;
        }
    }
    if let Some(begun) = digest.batch_begun(digest.progress, now) {
        context
            .store
            .record_digest(&digest.key, &begun, &[], None, claim)
            .await?;
        digest.progress = begun;
    }
    if digest.next_part(digest.progress, now, usize::MAX).is_some() {
        return Ok(());
    }
    let Some(step) = digest.next_step(crate::notice::digest::PER_MESSAGE) else {
        return Ok(());
    };
    if !step.new {
        return Ok(());
    }
    let chosen: Vec<(crate::issue::IssueRef, crate::engine::Firing)> = step
        .notices
        .iter()
        .map(|n| (n.issue.clone(), n.firing.clone()))
        .collect();
    let message = step.key.clone();
    context
        .store
        .plan_digest_message(&digest.key, &message, &chosen, claim)
        .await?;
    for pending in digest.notices.iter_mut().filter(|n| !n.posted) {
        let id = (&pending.notice.issue, &pending.notice.firing);
        if chosen.iter().any(|(issue, firing)| (issue, firing) == id) {
            pending.planned = Some(message.clone());
        }
    }
    Ok(())
}

/// Sends one notice and says what became of it. A notice its channel
/// refuses for good is failed and its fallback route queued at once; a
/// fallback notice for a GitLab comment is written on the issue.
async fn send<S: Store, N: Notifier>(
    context: &Context<S>,
    notifier: &N,
    entry: &OutboxEntry,
    retry: RetryPolicy,
) -> SendResult {
    // A resent notice says it is late, and why.
    let mut notice = entry.notice.clone();
    if entry.resent.is_some() {
        notice.undelivered = entry.resent.clone();
    }
    let instead_of = notice
        .undelivered
        .as_ref()
        .filter(|u| u.route == UndeliveredRoute::Fallback)
        .map(|u| u.channel.clone());
    let sent = if instead_of.is_some() && notice.slack.is_none() {
        notifier
            .comment_instead(&notice)
            .await
            .map(|()| Delivered { thread: None })
    } else if entry.may_be_out() {
        if entry.retaken {
            tracing::warn!("taking over a notice another process claimed and never recorded");
        } else {
            tracing::debug!(
                attempts = entry.attempts,
                "retrying a notice an earlier attempt may have sent: looking for it first"
            );
        }
        notifier.send_retaken(&notice, entry.thread.as_ref()).await
    } else {
        notifier.send(&notice, entry.thread.as_ref()).await
    };
    if let (Some(refused), Ok(_)) = (&instead_of, &sent) {
        let route = notice
            .slack
            .as_ref()
            .map_or(Fallback::GITLAB_COMMENT, |s| s.channel.as_str());
        tracing::warn!(
            channel = %refused,
            fallback = route,
            "the channel refused the notice for good; sent to its fallback instead"
        );
        metrics::counter!("labelwarden_fallback_notices_total", "channel" => refused.clone(), "fallback" => route.to_owned())
            .increment(1);
    }
    let refused = match &sent {
        Err(NotifyError::Refused { channel, message }) => Some((channel.clone(), message.clone())),
        _ => None,
    };
    let result = outcome(entry, retry, sent);
    let Some((channel, message)) = refused else {
        return result;
    };
    match super::fallback::fallback_for(&context.policies, entry, &notice, &channel, &message) {
        Some((step, route_channel, instead)) => SendResult::FellBack {
            error: message,
            instead: Box::new(instead),
            step,
            channel: route_channel,
        },
        None => {
            tracing::error!(
                channel,
                "no fallback route is left for the notice: nobody was told; resend it once the channel is fixed"
            );
            result
        }
    }
}

/// The delays of the members' notices a digest message just said.
fn record_digest_delays(
    digest: &crate::notice::digest::Digest,
    sent: &crate::notice::digest::DigestSent,
) {
    let said = |issue: &crate::issue::IssueRef, firing: &crate::engine::Firing| {
        sent.listed
            .iter()
            .chain(&sent.posted)
            .any(|(i, f)| i == issue && f == firing)
    };
    let listed = digest.items.iter().map(|item| &item.notice);
    let posted = digest
        .notices
        .iter()
        .filter(|n| !n.posted)
        .map(|n| &n.notice);
    for notice in listed.chain(posted) {
        if said(&notice.issue, &notice.firing) {
            record_delay(notice);
        }
    }
}
