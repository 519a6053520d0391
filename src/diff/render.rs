//! `diff`'s reports: a table for the job log, JSON for tools, Markdown for
//! the merge request (the note `--mr-note` keeps). A confidential issue's
//! title is never shown: a merge request's readers may not see the issue.
//!
//! Pure.

use std::fmt::Write as _;

use serde_json::json;

use super::{ClockChange, ClockChangeKind, ClockSide, Diff, PolicyChange, WindowChange};
use crate::policy::duration::human;
use crate::slack::message::CONFIDENTIAL_TITLE;

/// The marker that finds `--mr-note`'s note again on later pushes.
pub const MR_NOTE_MARKER: &str = "<!-- labelwarden:policy-diff -->";

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Table,
    Json,
    Markdown,
}

pub fn render(format: DiffFormat, diff: &Diff, scope: &str) -> String {
    match format {
        DiffFormat::Table => table(diff, scope),
        DiffFormat::Json => json(diff, scope),
        DiffFormat::Markdown => markdown(diff, scope),
    }
}

fn title(change: &ClockChange) -> &str {
    if change.confidential {
        CONFIDENTIAL_TITLE
    } else {
        &change.title
    }
}

/// The headline: what deploying the change does at once.
pub fn headline(diff: &Diff) -> String {
    if diff.is_empty() {
        return "no change: the policies do the same to every open issue".to_owned();
    }
    let breaches = diff.breaches_appearing();
    let messages = diff.messages();
    let steps = diff.at_once.steps.len();
    format!(
        "this change would breach {breaches} issue{} at once and post {messages} Slack message{} ({steps} step{} due at once); {} clock{} change{}",
        plural(breaches),
        plural(messages),
        plural(steps),
        diff.clocks.len(),
        plural(diff.clocks.len()),
        if diff.clocks.len() == 1 { "s" } else { "" },
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn policy_line(change: &PolicyChange) -> String {
    let parts = |parts: &[&str]| {
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({} changed)", parts.join(", "))
        }
    };
    let kind = |rule: bool| if rule { "rule " } else { "" };
    match change {
        PolicyChange::Added { name, rule } => format!("added: {}{name}", kind(*rule)),
        PolicyChange::Removed { name, rule } => format!("removed: {}{name}", kind(*rule)),
        PolicyChange::Renamed {
            from,
            name,
            parts: p,
            rule,
        } => {
            format!("renamed: {}{from} -> {name}{}", kind(*rule), parts(p))
        }
        PolicyChange::Changed {
            name,
            parts: p,
            rule,
        } => format!("changed: {}{name}{}", kind(*rule), parts(p)),
    }
}

fn window_line(change: &WindowChange) -> String {
    match change {
        WindowChange::Added { name, window } => format!("added: {name}: {window}"),
        WindowChange::Removed { name, window } => format!("removed: {name}: {window}"),
        WindowChange::Changed {
            name,
            before,
            after,
        } => format!("changed: {name}: {before} -> {after}"),
    }
}

fn what(change: &ClockChange) -> String {
    let status =
        |side: &Option<ClockSide>| side.as_ref().map_or("-".to_owned(), |s| s.status.clone());
    match change.change {
        ClockChangeKind::Starts => format!("clock starts: {}", status(&change.after)),
        ClockChangeKind::Ends => format!("clock ends (was {})", status(&change.before)),
        ClockChangeKind::DeadlineMoves => match change.deadline_moves_by {
            Some(by) if by > chrono::TimeDelta::zero() => {
                format!("deadline {} later: {}", human(by), status(&change.after))
            }
            Some(by) => format!("deadline {} earlier: {}", human(-by), status(&change.after)),
            None => format!("deadline moves: {}", status(&change.after)),
        },
        ClockChangeKind::BreachAppears => {
            format!(
                "becomes breached: {} -> {}",
                status(&change.before),
                status(&change.after)
            )
        }
        ClockChangeKind::BreachDisappears => {
            format!(
                "no longer breached: {} -> {}",
                status(&change.before),
                status(&change.after)
            )
        }
        ClockChangeKind::StatusChanges => {
            format!("{} -> {}", status(&change.before), status(&change.after))
        }
    }
}

fn table(diff: &Diff, scope: &str) -> String {
    let mut out = format!(
        "labelwarden diff: {scope}, {} open or recent issues, as of {}\n{}\n",
        diff.issues_read,
        diff.now.format("%Y-%m-%d %H:%M UTC"),
        headline(diff)
    );
    if !diff.policies.is_empty() {
        out.push_str("\nPOLICIES\n");
        for change in &diff.policies {
            let _ = writeln!(out, "  {}", policy_line(change));
        }
    }
    if !diff.maintenance.is_empty() {
        out.push_str("\nMAINTENANCE WINDOWS\n");
        for change in &diff.maintenance {
            let _ = writeln!(out, "  {}", window_line(change));
        }
    }
    if !diff.clocks.is_empty() {
        let issue_width = diff
            .clocks
            .iter()
            .map(|c| c.issue.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let policy_width = diff
            .clocks
            .iter()
            .map(|c| c.policy.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            out,
            "\n{:<issue_width$}  {:<policy_width$}  CHANGE",
            "ISSUE", "POLICY"
        );
        for change in &diff.clocks {
            let _ = writeln!(
                out,
                "{:<issue_width$}  {:<policy_width$}  {}  ({})",
                change.issue,
                change.policy,
                what(change),
                title(change)
            );
        }
    }
    if !diff.at_once.steps.is_empty() {
        out.push_str("\nAT ONCE ON DEPLOY\n");
        for (channel, messages) in &diff.at_once.messages {
            let steps = diff
                .at_once
                .steps
                .iter()
                .filter(|s| s.channel.as_deref() == Some(channel.as_str()))
                .count();
            let _ = writeln!(
                out,
                "  {channel}: {messages} message{} for {steps} step{}",
                plural(*messages),
                plural(steps)
            );
        }
        for step in &diff.at_once.steps {
            let _ = writeln!(
                out,
                "  {} [{}] {}: {}",
                step.report.issue, step.report.policy, step.report.step, step.report.actions
            );
        }
    }
    out
}

fn json(diff: &Diff, scope: &str) -> String {
    let steps: Vec<_> = diff
        .at_once
        .steps
        .iter()
        .map(|step| {
            json!({
                "issue": step.report.issue,
                "policy": step.report.policy,
                "step": step.report.step,
                "actions": step.report.actions,
                "channel": step.channel,
                "grouped": step.grouped,
            })
        })
        .collect();
    let clocks: Vec<_> = diff
        .clocks
        .iter()
        .map(|change| {
            let mut value = serde_json::to_value(change).unwrap_or_default();
            value["title"] = json!(title(change));
            value
        })
        .collect();
    let value = json!({
        "schema_version": 1,
        "scope": scope,
        "now": diff.now,
        "summary": {
            "issues_read": diff.issues_read,
            "changed": !diff.is_empty(),
            "breaches_appearing": diff.breaches_appearing(),
            "clocks_changed": diff.clocks.len(),
            "steps_at_once": diff.at_once.steps.len(),
            "messages_at_once": diff.messages(),
            "messages_by_channel": diff.at_once.messages,
        },
        "policies": diff.policies,
        "maintenance": diff.maintenance,
        "clocks": clocks,
        "at_once": steps,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

/// Markdown cells cannot hold `|` or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn markdown(diff: &Diff, scope: &str) -> String {
    let mut out = format!(
        "{MR_NOTE_MARKER}\n## labelwarden diff: what this policy change does\n\n**{}**\n\n{} open or recent issues of `{scope}`, as of {}.\n",
        headline(diff),
        diff.issues_read,
        diff.now.format("%Y-%m-%d %H:%M UTC")
    );
    if !diff.policies.is_empty() {
        out.push_str("\n### Policies\n\n");
        for change in &diff.policies {
            let _ = writeln!(out, "- {}", policy_line(change));
        }
    }
    if !diff.maintenance.is_empty() {
        out.push_str("\n### Maintenance windows\n\n");
        for change in &diff.maintenance {
            let _ = writeln!(out, "- {}", cell(&window_line(change)));
        }
    }
    if !diff.clocks.is_empty() {
        out.push_str("\n### Clocks\n\n| Issue | Policy | Change |\n|---|---|---|\n");
        for change in &diff.clocks {
            let _ = writeln!(
                out,
                "| [{}]({}) {} | `{}` | {} |",
                cell(&change.issue),
                change.url,
                cell(title(change)),
                cell(&change.policy),
                cell(&what(change))
            );
        }
    }
    if !diff.at_once.steps.is_empty() {
        out.push_str("\n### At once on deploy\n\n");
        for (channel, messages) in &diff.at_once.messages {
            let _ = writeln!(
                out,
                "- `{channel}`: {messages} message{}",
                plural(*messages)
            );
        }
        out.push_str("\n<details><summary>Every step due at once</summary>\n\n");
        for step in &diff.at_once.steps {
            let _ = writeln!(
                out,
                "- {} `{}` {}: {}",
                cell(&step.report.issue),
                cell(&step.report.policy),
                cell(&step.report.step),
                cell(&step.report.actions)
            );
        }
        out.push_str("\n</details>\n");
    }
    out
}
