//! Carrying out a planned run: each step's Slack message, its GitLab
//! labels, comment and due date, then its marker in the ledger note; and the group
//! messages, sent one Slack message at a time at the channel's pace.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;

use super::plan::{IssuePlan, PlannedStep, RunDigest};
use crate::engine::Firing;
use crate::gitlab::actions::{IssueLedger, IssueWriter};
use crate::gitlab::markers::{Marker, ledger_note, thread_of};
use crate::issue::IssueRef;
use crate::notice::digest::DigestKey;
use crate::notice::{Notice, Thread};
use crate::notify::{Notifier, NotifyError};
use crate::policy::Policy;

/// How long one Slack send may wait for a rate limit or retry, at most,
/// before the step is left to the next run.
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// Tries per Slack send within one run.
const ATTEMPTS: u32 = 3;

/// What the group messages said, by group: its thread and the steps it
/// said, or why it could not be sent.
pub(super) type Said = HashMap<DigestKey, GroupSaid>;

#[derive(Debug, Default)]
pub(super) struct GroupSaid {
    pub thread: Option<Thread>,
    /// The steps whose members' lines or messages are out: (issue, firing).
    pub steps: Vec<(IssueRef, Firing)>,
    /// Why the rest is not out.
    pub error: Option<String>,
}

/// Carries every issue's steps on, `concurrency` issues at a time: without
/// `said`, up to each policy's first grouped step; with it, to the end.
pub(super) async fn advance_all<N: Notifier>(
    plans: &mut [IssuePlan<'_>],
    notifier: &N,
    writer: &IssueWriter,
    said: Option<&Said>,
    concurrency: usize,
) {
    let mut issues = futures_util::stream::iter(plans.iter_mut())
        .map(|plan| advance(plan, notifier, writer, said))
        .buffer_unordered(concurrency);
    while issues.next().await.is_some() {}
}

async fn advance<N: Notifier>(
    plan: &mut IssuePlan<'_>,
    notifier: &N,
    writer: &IssueWriter,
    said: Option<&Said>,
) {
    for policy in &mut plan.policies {
        while !policy.halted && policy.done < policy.steps.len() {
            let step = &mut policy.steps[policy.done];
            let result = match (&step.grouped, said) {
                (None, _) => {
                    carry_out_step(
                        &step.notice,
                        policy.policy,
                        notifier,
                        writer,
                        &mut plan.ledger,
                    )
                    .await
                }
                (Some(_), None) => break,
                (Some(key), Some(said)) => {
                    carry_out_grouped(step, key, said, policy.policy, writer, &mut plan.ledger)
                        .await
                }
            };
            if let Err(error) = result {
                step.report.error = Some(error);
                // The rest of this policy's steps wait for the next run, in order.
                policy.halted = true;
            }
            policy.done += 1;
        }
    }
}

/// A step a group message said: its GitLab part and its marker, with the
/// group's thread, if the group said it.
async fn carry_out_grouped(
    step: &PlannedStep,
    key: &DigestKey,
    said: &Said,
    policy: &Policy,
    writer: &IssueWriter,
    ledger: &mut IssueLedger,
) -> Result<(), String> {
    let notice = &step.notice;
    let group = said.get(key);
    let id = (notice.issue.clone(), notice.firing.clone());
    let Some(group) = group.filter(|g| g.steps.contains(&id)) else {
        let why = group
            .and_then(|g| g.error.clone())
            .unwrap_or_else(|| "the group message did not go out".to_owned());
        return Err(format!("the group message could not be sent: {why}"));
    };
    // A group alert's thread is its members' thread from now on; a
    // reminder digest only lists them, and their own threads stay theirs.
    let thread = if key.kind.carries_later_steps() {
        group.thread.clone()
    } else {
        cycle_thread(notice, policy, ledger)
    };
    record(notice, policy, thread, writer, ledger).await
}

/// The thread the notice's clock cycle has in its channel so far, from the
/// issue's ledger.
fn cycle_thread(notice: &Notice, policy: &Policy, ledger: &IssueLedger) -> Option<Thread> {
    let channel = &notice.slack.as_ref()?.channel;
    thread_of(&ledger.markers, &policy.name, notice.firing.cycle, channel).cloned()
}

async fn carry_out_step<N: Notifier>(
    notice: &Notice,
    policy: &Policy,
    notifier: &N,
    writer: &IssueWriter,
    ledger: &mut IssueLedger,
) -> Result<(), String> {
    let mut thread = cycle_thread(notice, policy, ledger);
    if notice.slack.is_some() {
        // The GitLab part is done here, not by the notifier.
        let slack_only = Notice {
            gitlab: None,
            ..notice.clone()
        };
        let delivered = with_retries(|| notifier.send(&slack_only, thread.as_ref())).await?;
        thread = delivered.thread.or(thread);
    }
    record(notice, policy, thread, writer, ledger).await
}

/// The GitLab part of a step whose Slack part is out, then its marker,
/// with the channel and `thread` it was said in.
async fn record(
    notice: &Notice,
    policy: &Policy,
    thread: Option<Thread>,
    writer: &IssueWriter,
    ledger: &mut IssueLedger,
) -> Result<(), String> {
    let marker = Marker {
        policy: policy.name.clone(),
        firing: notice.firing.clone(),
        channel: notice.slack.as_ref().map(|s| s.channel.clone()),
        thread,
    };
    let issue = &notice.issue;
    writer.edit_issue(notice).await.map_err(|e| e.to_string())?;
    writer
        .comment_step(notice, &marker)
        .await
        .map_err(|e| e.to_string())?;
    ledger.markers.push(marker);
    let body = ledger_note(&ledger.markers);
    match ledger.ledger_note {
        Some(note) => writer.edit_note(issue, note, &body).await,
        None => writer
            .create_note(issue, &body, true)
            .await
            .map(|id| ledger.ledger_note = Some(id)),
    }
    .map_err(|e| {
        format!(
            "the step was carried out but could not be recorded, so the next run repeats it: {e}"
        )
    })
}

/// Sends each group, one message at a time until it is all out, and says
/// what each said. A group that fails part-way keeps what went out; its
/// other steps are left to the next run.
pub(super) async fn send_digests<N: Notifier>(digests: Vec<RunDigest>, notifier: &N) -> Said {
    let mut said = Said::new();
    for RunDigest { mut digest, thread } in digests {
        let mut group = GroupSaid {
            thread,
            ..GroupSaid::default()
        };
        loop {
            let sent = match with_retries(|| {
                notifier.send_digest(&digest, group.thread.as_ref(), false)
            })
            .await
            {
                Ok(sent) => sent,
                Err(error) => {
                    tracing::warn!(channel = %digest.key.channel, error, "a group message could not be sent");
                    group.error = Some(error);
                    break;
                }
            };
            group.thread = sent.thread.or(group.thread);
            digest.progress = sent.progress;
            for pending in digest.notices.iter_mut() {
                let id = (&pending.notice.issue, &pending.notice.firing);
                if sent.posted.iter().any(|(i, f)| (i, f) == id) {
                    pending.posted = true;
                }
            }
            group.steps.extend(sent.posted);
            group.steps.extend(sent.listed);
            if sent.done {
                break;
            }
        }
        said.insert(digest.key.clone(), group);
    }
    said
}

/// Runs `send`, waiting out rate limits (ours, or Slack's 429 with its
/// `Retry-After`: the channel's pace, not a failure) for up to
/// [`LONGEST_WAIT`] in all, and retrying other temporary failures a few
/// times.
async fn with_retries<T, F, Fut>(mut send: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, NotifyError>>,
{
    let mut attempt = 0;
    let mut waited_for_limits = Duration::ZERO;
    loop {
        attempt += 1;
        let wait = match send().await {
            Ok(sent) => return Ok(sent),
            Err(NotifyError::Permanent(message) | NotifyError::Refused { message, .. }) => {
                return Err(message);
            }
            // audit sends under no outbox claim; should one be lost, it
            // is not this run's to send.
            Err(NotifyError::ClaimLost(lost)) => return Err(lost.to_string()),
            Err(NotifyError::Deferred { retry_after }) => {
                // Not an attempt: the limit said to wait.
                attempt -= 1;
                waited_for_limits += retry_after;
                retry_after
            }
            Err(NotifyError::Temporary {
                message,
                retry_after: Some(retry_after),
            }) => {
                // Rate limited by Slack: wait as it says, however often,
                // while the run's patience lasts.
                attempt -= 1;
                waited_for_limits += retry_after;
                if waited_for_limits > LONGEST_WAIT {
                    return Err(message);
                }
                retry_after
            }
            Err(NotifyError::Temporary {
                message,
                retry_after: None,
            }) => {
                if attempt >= ATTEMPTS {
                    return Err(message);
                }
                Duration::from_secs(1 << attempt)
            }
        };
        if wait > LONGEST_WAIT || waited_for_limits > LONGEST_WAIT {
            return Err(format!(
                "Slack asked to wait {wait:?}; left to the next run"
            ));
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slack_s_rate_limit_is_waited_out_and_other_failures_are_tried_three_times() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let rate_limited_five_times = with_retries(|| async {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < 5 {
                Err(NotifyError::Temporary {
                    message: "rate limited (HTTP 429)".into(),
                    retry_after: Some(Duration::from_millis(5)),
                })
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(
            rate_limited_five_times,
            Ok(5),
            "429s are the pace, not failures"
        );

        let calls = std::sync::atomic::AtomicU32::new(0);
        let failing: Result<(), String> = with_retries(|| async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(NotifyError::Permanent("channel_not_found".into()))
        })
        .await;
        assert_eq!(failing, Err("channel_not_found".into()));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        let limited_too_long: Result<(), String> = with_retries(|| async {
            Err(NotifyError::Temporary {
                message: "rate limited (HTTP 429)".into(),
                retry_after: Some(LONGEST_WAIT + Duration::from_secs(1)),
            })
        })
        .await;
        assert!(
            limited_too_long.is_err(),
            "a long wait is left to the next run"
        );
    }
}
