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

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;

use crate::clock::{self, SlaStatus};
use crate::engine::{self, Action, Ledger};
use crate::gitlab::GitLabError;
use crate::gitlab::actions::{IssueLedger, IssueWriter, comment};
use crate::gitlab::history::FetchedIssue;
use crate::gitlab::markers::{Marker, ledger_note, thread_of};
use crate::notify::{IssueView, Notice, Notifier, NotifyError, Thread};
use crate::policy::{Policy, PolicySet};

/// How long one Slack send may wait for a rate limit or retry, at most,
/// before the step is left to the next run.
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// Tries per Slack send within one run.
const ATTEMPTS: u32 = 3;

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
}

impl NotifyReport {
    pub fn failures(&self) -> usize {
        self.steps.iter().filter(|s| s.error.is_some()).count()
    }
}

/// The actions of a step, in words.
fn describe(action: &Action) -> String {
    let mut parts = Vec::new();
    if let Some(slack) = &action.slack {
        let mut text = format!("slack {}", slack.channel);
        if slack.broadcast {
            text.push_str(" (broadcast)");
        }
        if let Some(react) = &slack.react {
            text.push_str(&format!(" :{react}:"));
        }
        parts.push(text);
    }
    if let Some(gitlab) = &action.gitlab {
        let mut labels: Vec<String> = gitlab.add_labels.iter().map(|l| format!("+{l}")).collect();
        labels.extend(gitlab.remove_labels.iter().map(|l| format!("-{l}")));
        if !labels.is_empty() {
            parts.push(format!("labels {}", labels.join(" ")));
        }
        if gitlab.comment {
            parts.push("comment".to_owned());
        }
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
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
) -> Result<NotifyReport, GitLabError> {
    let mut report = NotifyReport::default();
    let mut per_issue = futures_util::stream::iter(issues.iter().zip(ledgers))
        .map(|(fetched, ledger)| one_issue(fetched, ledger, policies, notifier, writer, dry_run))
        .buffer_unordered(concurrency.max(1));
    while let Some(steps) = per_issue.next().await {
        report.steps.extend(steps?);
    }
    report
        .steps
        .sort_by(|a, b| (&a.issue, &a.policy).cmp(&(&b.issue, &b.policy)));
    Ok(report)
}

async fn one_issue<N: Notifier>(
    fetched: &FetchedIssue,
    mut ledger: IssueLedger,
    policies: &PolicySet,
    notifier: &N,
    writer: &IssueWriter,
    dry_run: bool,
) -> Result<Vec<StepReport>, GitLabError> {
    let issue = &fetched.issue;
    let reference = issue.reference();
    let now = Utc::now();
    let mut reports = Vec::new();
    for policy in &policies.policies {
        let reading = clock::read(issue, policy, now);
        let fired: Vec<_> = ledger
            .markers
            .iter()
            .filter(|m| m.policy == policy.name)
            .map(|m| m.firing.clone())
            .collect();
        if reading.status() == SlaStatus::NotMatching && fired.is_empty() {
            continue;
        }
        // Acknowledged in Slack, as `serve` wrote it on the issue.
        let acknowledged = ledger
            .acknowledgements(&policy.name)
            .into_iter()
            .map(|a| a.cycle)
            .collect();
        let decision = engine::decide(
            policy,
            &reading,
            &Ledger::new(fired).with_acknowledged(acknowledged),
        );
        for action in &decision.actions {
            let mut step = StepReport {
                issue: reference.to_string(),
                policy: policy.name.0.clone(),
                step: action.firing.step.0.clone(),
                actions: describe(action),
                error: None,
            };
            if !dry_run {
                let view = IssueView {
                    facts: issue.facts(),
                    title: &fetched.title,
                    url: &fetched.url,
                };
                let notice = Notice::new(view, &policy.name, action, &reading, now);
                if let Err(error) =
                    carry_out_step(&notice, policy, notifier, writer, &mut ledger).await
                {
                    step.error = Some(error);
                }
            }
            let failed = step.error.is_some();
            reports.push(step);
            if failed {
                // The rest of this policy's steps wait for the next run, in order.
                break;
            }
        }
    }
    Ok(reports)
}

async fn carry_out_step<N: Notifier>(
    notice: &Notice,
    policy: &Policy,
    notifier: &N,
    writer: &IssueWriter,
    ledger: &mut IssueLedger,
) -> Result<(), String> {
    let issue = &notice.issue;
    let channel = notice.slack.as_ref().map(|s| s.channel.clone());
    let mut thread = channel.as_deref().and_then(|channel| {
        thread_of(&ledger.markers, &policy.name, notice.firing.cycle, channel).cloned()
    });
    if notice.slack.is_some() {
        // The GitLab part is done here, not by the notifier.
        let slack_only = Notice {
            gitlab: None,
            ..notice.clone()
        };
        thread = send_with_retries(notifier, &slack_only, thread.as_ref()).await?;
    }
    let marker = Marker {
        policy: policy.name.clone(),
        firing: notice.firing.clone(),
        channel,
        thread,
    };
    if let Some(gitlab) = &notice.gitlab {
        writer
            .edit_labels(issue, &gitlab.add_labels, &gitlab.remove_labels)
            .await
            .map_err(|e| e.to_string())?;
        if gitlab.comment {
            writer
                .create_note(issue, &comment(notice, &marker), false)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
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

/// Sends through the notifier, waiting out short rate limits and retrying
/// temporary failures a few times; returns the cycle's thread.
async fn send_with_retries<N: Notifier>(
    notifier: &N,
    notice: &Notice,
    thread: Option<&Thread>,
) -> Result<Option<Thread>, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let wait = match notifier.send(notice, thread).await {
            Ok(delivered) => return Ok(delivered.thread.or_else(|| thread.cloned())),
            Err(NotifyError::Permanent(message)) => return Err(message),
            Err(NotifyError::Deferred { retry_after }) => {
                // Not an attempt: the limit said to wait.
                attempt -= 1;
                retry_after
            }
            Err(NotifyError::Temporary {
                message,
                retry_after,
            }) => {
                if attempt >= ATTEMPTS {
                    return Err(message);
                }
                retry_after.unwrap_or(Duration::from_secs(1 << attempt))
            }
        };
        if wait > LONGEST_WAIT {
            return Err(format!(
                "Slack asked to wait {wait:?}; left to the next run"
            ));
        }
        tokio::time::sleep(wait).await;
    }
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
