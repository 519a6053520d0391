//! The summary issue's text (`audit --summary-issue`): one GitLab issue,
//! found again by its marker and edited in place each run, that lists per
//! policy the breaches and near misses and per rule the issues that break
//! it now, like gitlab-triage's `summarize`, so a scheduled audit leaves a
//! report the team can comment on.
//!
//! Pure text out of the audit's rows and rule matches. It lands in a
//! project more people may read than the issues it lists, so confidential
//! titles are left out, and it names assignees without `@`: an edit that
//! mentions people notifies them, and a weekly report should not ping.

use chrono::{DateTime, Utc};

use super::{CONFIDENTIAL, Context, counts, share, spread, time, watchdog_markdown, when};
use crate::audit::{Level, Row, summarise};
use crate::clock;
use crate::gitlab::history::FetchedIssue;
use crate::policy::{PolicyKind, PolicySet};

/// Rows listed per policy or rule at most; the rest are counted. GitLab
/// takes descriptions up to 1 048 576 characters, and a list longer than
/// this is read in the pipeline's own report anyway.
pub const LISTED_AT_MOST: usize = 50;

/// An issue that meets a rule's conditions now: the rule's actions are
/// due after its grace, or were carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleMatch {
    pub rule: String,
    pub issue: String,
    pub title: String,
    pub url: String,
    pub confidential: bool,
    /// When the issue came to match, this time.
    pub since: DateTime<Utc>,
    /// When the grace ends (or ended): the actions are due then.
    pub acts_at: DateTime<Utc>,
}

/// Every issue that meets a rule now, by rule name, then issue.
pub fn rule_matches(
    issues: &[FetchedIssue],
    policies: &PolicySet,
    now: DateTime<Utc>,
) -> Vec<RuleMatch> {
    let rules: Vec<_> = policies
        .policies
        .iter()
        .filter(|p| p.kind == PolicyKind::Rule)
        .collect();
    let mut found = Vec::new();
    for fetched in issues {
        for rule in &rules {
            let reading = clock::read(&fetched.issue, rule, now);
            if reading.cycle == 0 || !reading.is_live() {
                continue;
            }
            found.push(RuleMatch {
                rule: rule.name.0.clone(),
                issue: fetched.issue.facts().reference.to_string(),
                title: fetched.title.clone(),
                url: fetched.url.clone(),
                confidential: fetched.issue.facts().confidential,
                since: reading.started_at,
                acts_at: now + reading.remaining(),
            });
        }
    }
    found.sort_by(|a, b| (&a.rule, &a.issue).cmp(&(&b.rule, &b.issue)));
    found
}

/// The line that makes an issue labelwarden's summary for `scope`: an
/// HTML comment, invisible in GitLab, searched for in the description.
pub fn marker(scope: &str) -> String {
    format!("<!-- labelwarden:summary scope=\"{scope}\" -->")
}

/// What the summary issue's description says. `policies` lists every
/// policy and rule, so one with nothing to report says so.
pub fn body(
    rows: &[Row],
    rules: &[RuleMatch],
    policies: &PolicySet,
    context: &Context<'_>,
) -> String {
    let (breach, warning, ok) = counts(rows);
    let mut out = format!(
        "{}\n## labelwarden audit: {}\n\nAs of {}: **{breach} breached**, {warning} near the deadline, {ok} ok ({} clocks on {} issues); {} rule violation{}.\n\n_labelwarden edits this description on every scheduled audit; comments are yours. Close the issue to retire it: the next run opens a new one._\n",
        marker(context.scope),
        context.scope,
        time(context.now),
        rows.len(),
        context.issues_read,
        rules.len(),
        if rules.len() == 1 { "" } else { "s" },
    );
    out.push_str(&watchdog_markdown(context));
    let summaries = summarise(rows);
    for policy in policies.policies.iter().filter(|p| p.reported) {
        let name = &policy.name.0;
        let of_policy: Vec<&Row> = rows.iter().filter(|r| &r.policy == name).collect();
        out.push_str(&format!("\n### Policy `{name}`\n\n"));
        if of_policy.is_empty() {
            out.push_str("No clocks in this run.\n");
            continue;
        }
        let (breached, near, fine) = counts(of_policy.iter().copied());
        out.push_str(&format!(
            "{breached} breached, {near} near the deadline, {fine} ok"
        ));
        if let Some(summary) = summaries.iter().find(|s| &s.policy == name)
            && summary.met_share.is_some()
        {
            out.push_str(&format!(
                " · {} in time ({} of {}) · time to resolve {} (median / p90 / longest)",
                share(summary),
                summary.met,
                summary.met + summary.missed,
                spread(summary.time_to_resolve)
            ));
        }
        out.push('\n');
        let urgent: Vec<&Row> = of_policy
            .into_iter()
            .filter(|r| r.level != Level::Ok)
            .collect();
        if urgent.is_empty() {
            out.push_str("\nNothing breached or near its deadline.\n");
            continue;
        }
        out.push_str("\n| | Issue | Status | Deadline | Assignees |\n|---|---|---|---|---|\n");
        for row in urgent.iter().take(LISTED_AT_MOST) {
            let mark = if row.level == Level::Breach {
                ":red_circle:"
            } else {
                ":warning:"
            };
            out.push_str(&format!(
                "| {mark} | {} | {} | {} | {} |\n",
                link(&row.issue, &row.url, &row.title, row.confidential),
                when(row),
                row.deadline.map(time).unwrap_or_else(|| "-".to_owned()),
                if row.assignees.is_empty() {
                    "nobody".to_owned()
                } else {
                    row.assignees.join(", ")
                }
            ));
        }
        more(&mut out, urgent.len());
    }
    for rule in policies
        .policies
        .iter()
        .filter(|p| p.kind == PolicyKind::Rule)
    {
        let name = &rule.name.0;
        let breaking: Vec<&RuleMatch> = rules.iter().filter(|m| &m.rule == name).collect();
        out.push_str(&format!("\n### Rule `{name}`\n\n"));
        if breaking.is_empty() {
            out.push_str("No issue breaks it now.\n");
            continue;
        }
        out.push_str(&format!(
            "{} issue{} break{} it now.\n\n| Issue | Since | Actions |\n|---|---|---|\n",
            breaking.len(),
            if breaking.len() == 1 { "" } else { "s" },
            if breaking.len() == 1 { "s" } else { "" },
        ));
        for found in breaking.iter().take(LISTED_AT_MOST) {
            let actions = if found.acts_at <= context.now {
                format!("due since {}", time(found.acts_at))
            } else {
                format!(
                    "due {} (in {})",
                    time(found.acts_at),
                    crate::policy::duration::human(found.acts_at - context.now)
                )
            };
            out.push_str(&format!(
                "| {} | {} | {actions} |\n",
                link(&found.issue, &found.url, &found.title, found.confidential),
                time(found.since),
            ));
        }
        more(&mut out, breaking.len());
    }
    out
}

/// `[g/p#1](url) title`, the title left out when confidential and kept
/// from breaking the table.
fn link(issue: &str, url: &str, title: &str, confidential: bool) -> String {
    let title = if confidential { CONFIDENTIAL } else { title };
    format!("[{issue}]({url}) {}", title.replace('|', "\\|"))
}

/// `… and 12 more` under a list cut at [`LISTED_AT_MOST`].
fn more(out: &mut String, listed: usize) {
    if listed > LISTED_AT_MOST {
        out.push_str(&format!(
            "\n… and {} more: the pipeline's own report lists them all.\n",
            listed - LISTED_AT_MOST
        ));
    }
}

#[cfg(test)]
mod tests;
