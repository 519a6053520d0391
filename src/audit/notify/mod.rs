//! `audit --notify`: carries out the steps due now, with no database. What
//! already fired is read from the issue's notes (see
//! [`crate::gitlab::markers`]) and every step carried out is recorded
//! there, so a pipeline scheduled every 15 minutes pings each step once.
//!
//! Per step, in this order: the Slack message (through the same
//! [`Notifier`] as `serve`), then the GitLab labels and comment, then the
//! marker in the ledger note. A step that fails part-way is not recorded
//! and is tried again by the next run: a duplicate message is better than
//! a lost one. Steps of one issue and policy go in order and stop at the
//! first failure.
//!
//! Many steps at once (the first run over a backlog, a bulk relabel) are
//! grouped the way `serve` groups them ([`plan`]): each issue's steps go
//! out up to its first grouped one, then the group messages, then the
//! rest, so every grouped step is recorded with the group's thread.

mod plan;
mod send;

use chrono::Utc;

use crate::gitlab::actions::{IssueLedger, IssueWriter};
use crate::gitlab::history::FetchedIssue;
use crate::notify::Notifier;
use crate::policy::PolicySet;

/// One step that was (or, with `--dry-run`, would be) carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub issue: String,
    pub policy: String,
    pub step: String,
    /// What it does: `slack #alerts (broadcast), labels +missed::SLA, comment`.
    pub actions: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What `--notify` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyReport {
    pub steps: Vec<StepReport>,
    /// Due steps a maintenance window of the policy files holds, with its
    /// name: left for the first run after the window.
    pub held: Vec<(StepReport, String)>,
}

impl NotifyReport {
    pub fn failures(&self) -> usize {
        self.steps.iter().filter(|s| s.error.is_some()).count()
    }
}

/// Carries out (or with `dry_run` lists) every step due now on these
/// issues, given what their notes say already fired (`ledgers`, in the
/// same order), `concurrency` issues at a time.
pub async fn carry_out<N: Notifier>(
    issues: &[FetchedIssue],
    ledgers: Vec<IssueLedger>,
    policies: &PolicySet,
    notifier: &N,
    writer: &IssueWriter,
    dry_run: bool,
    concurrency: usize,
) -> NotifyReport {
    let now = Utc::now();
    let mut plans: Vec<plan::IssuePlan<'_>> = issues
        .iter()
        .zip(ledgers)
        .map(|(fetched, ledger)| plan::plan_issue(fetched, ledger, policies, now))
        .collect();
    let digests = plan::group_run(&mut plans, policies, now);
    if !dry_run {
        let concurrency = concurrency.max(1);
        // Each issue's steps up to its first grouped one...
        send::advance_all(&mut plans, notifier, writer, None, concurrency).await;
        // ...the group messages...
        let said = send::send_digests(digests, notifier).await;
        // ...and the rest, the grouped steps recorded with their group's thread.
        send::advance_all(&mut plans, notifier, writer, Some(&said), concurrency).await;
    }
    let mut report = NotifyReport::default();
    for plan in &mut plans {
        report.held.append(&mut plan.held);
    }
    for plan in plans {
        for policy in plan.policies {
            let reached = if dry_run {
                policy.steps.len()
            } else {
                policy.done
            };
            report
                .steps
                .extend(policy.steps.into_iter().take(reached).map(|s| s.report));
        }
    }
    report
        .steps
        .sort_by(|a, b| (&a.issue, &a.policy).cmp(&(&b.issue, &b.policy)));
    report
}

/// What a run would send, without sending: every due step, and the
/// Slack messages they make per channel once grouped as a run groups
/// them (a step said in a group message is no message of its own; a
/// resolution that only reacts is none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPreview {
    pub steps: Vec<PreviewStep>,
    /// Channel name (as the policy files name it) -> messages.
    pub messages: std::collections::BTreeMap<String, usize>,
}

/// One due step of a preview.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewStep {
    pub report: StepReport,
    /// Its Slack channel, if it has a Slack part.
    pub channel: Option<String>,
    /// Said in a group message rather than on its own.
    pub grouped: bool,
}

/// The steps due at `now` on these issues given what already fired
/// (`ledgers`, in the same order), and the messages they would make.
pub fn preview(
    issues: &[FetchedIssue],
    ledgers: Vec<IssueLedger>,
    policies: &PolicySet,
    now: chrono::DateTime<Utc>,
) -> RunPreview {
    let mut plans: Vec<plan::IssuePlan<'_>> = issues
        .iter()
        .zip(ledgers)
        .map(|(fetched, ledger)| plan::plan_issue(fetched, ledger, policies, now))
        .collect();
    let digests = plan::group_run(&mut plans, policies, now);
    let mut preview = RunPreview::default();
    for digest in &digests {
        *preview
            .messages
            .entry(digest.digest.key.channel.clone())
            .or_default() += 1;
    }
    for step in plans
        .into_iter()
        .flat_map(|p| p.policies)
        .flat_map(|p| p.steps)
    {
        let slack = step.notice.slack.as_ref();
        let channel = slack.map(|s| s.channel.clone());
        let grouped = step.grouped.is_some();
        let posts = slack.is_some_and(|s| s.post);
        if let (Some(channel), false, true) = (&channel, grouped, posts) {
            *preview.messages.entry(channel.clone()).or_default() += 1;
        }
        preview.steps.push(PreviewStep {
            report: step.report,
            channel,
            grouped,
        });
    }
    preview
}

/// One line per step for the job log; a dry run says what it would do.
pub fn summary_line(step: &StepReport, dry_run: bool) -> String {
    let verb = match (&step.error, dry_run) {
        (Some(_), _) => "FAILED",
        (None, true) => "would do",
        (None, false) => "done",
    };
    let mut line = format!(
        "{verb}: {} [{}] {}: {}",
        step.issue, step.policy, step.step, step.actions
    );
    if let Some(error) = &step.error {
        line.push_str(&format!(" ({error})"));
    }
    line
}
