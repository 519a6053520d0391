//! Mutes in the outbox worker: a notice a mute covers is recorded, not
//! sent; a maintenance window of the policy files opens its mute as it
//! begins; when a mute ends, one replica claims it and says once per
//! channel what was held meanwhile and which of those clocks are still
//! breached.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::Context;
use super::retry::RetryPolicy;
use crate::inspect::{ClockFilter, ClockView};
use crate::notice::Notice;
use crate::notify::Notifier;
use crate::policy::GitLabStep;
use crate::store::Store;
use crate::store::mutes::{Mute, WindowMute};
use crate::store::{OutboxEntry, SendResult};

/// Most issues a summary names; the rest are counted.
const LISTED: usize = 20;

/// How often the worker reads the mutes again: a mute added or ended
/// from another process takes effect within this.
const READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The mutes as the worker last read them, read again at most every
/// [`READ_EVERY`], so that a busy outbox does not ask the store each batch.
#[derive(Default)]
pub(super) struct MuteWatch {
    read_at: Option<std::time::Instant>,
    mutes: Vec<Mute>,
    /// Maintenance window occurrences whose mute exists (opened here or
    /// by another replica): asked of the store once each.
    windows_opened: HashSet<String>,
}

impl MuteWatch {
    /// Reads the mutes again if it is time; says whether one ended and
    /// awaits its summary. An unreadable store reads as no mutes: a mute
    /// must never make a notice disappear.
    pub(super) async fn refresh<S: Store>(&mut self, context: &Context<S>) -> bool {
        if self.read_at.is_some_and(|at| at.elapsed() < READ_EVERY) {
            return false;
        }
        self.read_at = Some(std::time::Instant::now());
        let now = Utc::now();
        self.open_windows(context, now).await;
        self.mutes = match context.store.mutes(now).await {
            Ok(mutes) => mutes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the mutes; sending as if none");
                Vec::new()
            }
        };
        self.mutes
            .iter()
            .any(|m| m.until <= now && m.summarised_at.is_none())
    }

    /// Opens the mute of each maintenance window of the policy files
    /// going on at `now`, once per occurrence across replicas. A window
    /// ended early with `unmute` stays ended until its next occurrence.
    async fn open_windows<S: Store>(&mut self, context: &Context<S>, now: DateTime<Utc>) {
        for window in &context.policies.maintenance {
            let Some(occurrence) = window.occurrence_at(now) else {
                continue;
            };
            let origin = window.origin(&occurrence);
            if self.windows_opened.contains(&origin) {
                continue;
            }
            let reason = format!("maintenance window {}: {}", window.name, window.reason);
            let opening = WindowMute {
                scope: window.scope,
                target: &window.target,
                from: occurrence.start,
                until: occurrence.end,
                reason: &reason,
                origin: &origin,
            };
            match context.store.open_window_mute(&opening).await {
                Ok(opened) => {
                    if let Some(mute) = opened {
                        tracing::warn!(
                            mute = mute.id,
                            window = %window.name,
                            what = %mute.describe(),
                            until = %mute.until,
                            "maintenance window began: muted until it ends"
                        );
                    }
                    self.windows_opened.insert(origin);
                }
                Err(e) => tracing::warn!(
                    window = %window.name,
                    error = %e,
                    "cannot open the maintenance window's mute; sending as if none"
                ),
            }
        }
    }

    /// The mutes going on at `now`.
    pub(super) fn active(&self, now: DateTime<Utc>) -> Vec<Mute> {
        self.mutes
            .iter()
            .filter(|m| m.until > now)
            .cloned()
            .collect()
    }
}

/// The mute that silences `notice` at `now`, if any.
pub(super) fn silencing<'a>(
    mutes: &'a [Mute],
    notice: &Notice,
    now: DateTime<Utc>,
) -> Option<&'a Mute> {
    mutes.iter().find(|mute| mute.covers(notice, now))
}

/// Holds a notice `mute` silences: its Slack message and comment wait
/// for the mute's summary, but its label changes (and a due date) are carried out now,
/// because they are the issue's state (a breach's `missed::SLA`), not an
/// alert. The step is listed as done on the issue's ledger note, so a
/// scheduled `audit --notify` does not send it either. A label change
/// GitLab refuses for now is retried like any send.
pub(super) async fn hold<N: Notifier>(
    notifier: &N,
    entry: &OutboxEntry,
    mute: &Mute,
    retry: RetryPolicy,
) -> SendResult {
    let notice = &entry.notice;
    let relabels = notice
        .gitlab
        .as_ref()
        .filter(|g| !g.add_labels.is_empty() || !g.remove_labels.is_empty());
    // Labels and the due date are the issue's state: carried out.
    if relabels.is_some() || notice.due_date.is_some() {
        let state_only = Notice {
            slack: None,
            gitlab: relabels.map(|gitlab| GitLabStep {
                comment: false,
                ..gitlab.clone()
            }),
            ..notice.clone()
        };
        // The notifier lists the step on the ledger note once it is done.
        if let Err(e) = notifier.send(&state_only, None).await {
            return super::retry::outcome(entry, retry, Err(e));
        }
    } else {
        notifier.record_done(notice);
    }
    tracing::info!(mute = mute.id, what = %mute.describe(), labels = relabels.is_some(), "muted: recorded, not sent");
    metrics::counter!("labelwarden_muted_notices_total", "policy" => entry.key.policy.0.clone())
        .increment(1);
    SendResult::Muted {
        at: Utc::now(),
        mute: mute.id,
    }
}

/// Says every mute that ended and nobody has summarised yet.
pub(super) async fn summarise_ended<S: Store, N: Notifier>(context: &Context<S>, notifier: &N) {
    loop {
        let now = Utc::now();
        let (mute, held) = match context.store.claim_ended_mute(now).await {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for mutes that ended");
                return;
            }
        };
        let breached: Vec<ClockView> = crate::inspect::clocks(
            &context.store,
            &context.policies,
            // Only the held notices' issues: a mute's end need not load
            // every breached clock in the store.
            &ClockFilter {
                policy: None,
                status: Some("breached".to_owned()),
                issues: Some(held.iter().map(|n| n.issue.clone()).collect()),
            },
            now,
        )
        .await
        .unwrap_or_default();
        let by_channel = summaries(&mute, &held, &breached);
        if by_channel.is_empty() {
            tracing::info!(mute = mute.id, what = %mute.describe(), "mute ended; nothing was held");
        }
        for (channel, text) in by_channel {
            let key = format!("mute|{}|{channel}", mute.id);
            match notifier.send_summary(&channel, &text, &key).await {
                Ok(()) => tracing::info!(
                    mute = mute.id,
                    channel,
                    held = held.len(),
                    "mute ended; summary sent"
                ),
                Err(e) => {
                    tracing::error!(mute = mute.id, channel, error = %e, summary = %text, "mute ended; its summary could not be sent")
                }
            }
        }
    }
}

/// Each channel's summary of what `mute` held there, with the clocks
/// among them still breached. Pure.
pub(super) fn summaries(
    mute: &Mute,
    held: &[Notice],
    breached: &[ClockView],
) -> BTreeMap<String, String> {
    let mut by_channel: BTreeMap<String, Vec<&Notice>> = BTreeMap::new();
    for notice in held {
        if let Some(slack) = &notice.slack {
            by_channel
                .entry(slack.channel.clone())
                .or_default()
                .push(notice);
        }
    }
    by_channel
        .into_iter()
        .map(|(channel, notices)| {
            let mut text = format!(
                ":bell: The mute of {} has ended (until {}; {}). While it lasted, {} notice{} {} held here:",
                mute.describe(),
                mute.until.format("%Y-%m-%d %H:%M UTC"),
                mute.reason,
                notices.len(),
                if notices.len() == 1 { "" } else { "s" },
                if notices.len() == 1 { "was" } else { "were" },
            );
            for notice in notices.iter().take(LISTED) {
                text.push_str(&format!(
                    "\n• <{}|{}> {} ({}), {}",
                    notice.url,
                    notice.issue,
                    notice.step_kind,
                    notice.policy,
                    notice.status
                ));
            }
            if notices.len() > LISTED {
                text.push_str(&format!("\n… and {} more", notices.len() - LISTED));
            }
            let still: Vec<String> = breached
                .iter()
                .filter(|clock| {
                    notices
                        .iter()
                        .any(|n| n.issue == clock.issue && n.policy == clock.policy)
                })
                .map(|clock| format!("{} ({})", clock.issue, clock.status_text))
                .collect();
            if still.is_empty() {
                text.push_str("\nNone of them is breached now.");
            } else {
                text.push_str(&format!(
                    "\n:rotating_light: Still breached now: {}.",
                    still.join(", ")
                ));
            }
            (channel, text)
        })
        .collect()
}
