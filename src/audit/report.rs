//! The audit's reports, one function per format. Pure text out of rows.
//!
//! - `table`: one line per issue and policy, most urgent first, for a
//!   terminal (colour unless `NO_COLOR`) or a CI log;
//! - `json`: a stable document (`schema_version` 1, fields below) for
//!   other tools;
//! - `junit`: one test case per issue and policy, breached and missed
//!   ones failing with the story in the message, for GitLab's test report;
//! - `markdown`: a summary to paste into an issue or merge request.
//!
//! Titles of confidential issues never appear: reports land in CI logs
//! and artifacts that more people can read than the issue.

pub mod html;
pub mod summary;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;

use super::watchdog::Finding;
use super::{Level, PolicySummary, Row, Spread, summarise};
use crate::clock::SlaStatus;
use crate::policy::duration::human;

/// Shown instead of a confidential issue's title.
pub const CONFIDENTIAL: &str = "(confidential)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Junit,
    Markdown,
    /// One self-contained page with charts (`--output report.html`).
    Html,
}

impl Format {
    /// The format a file name suggests (`.xml` JUnit, `.json`, `.md`).
    pub fn from_file_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".xml") {
            Some(Format::Junit)
        } else if lower.ends_with(".json") {
            Some(Format::Json)
        } else if lower.ends_with(".md") || lower.ends_with(".markdown") {
            Some(Format::Markdown)
        } else if lower.ends_with(".html") || lower.ends_with(".htm") {
            Some(Format::Html)
        } else if lower.ends_with(".txt") {
            Some(Format::Table)
        } else {
            None
        }
    }
}

/// What every report says besides the rows.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The watchdog's findings; `None` when it did not run.
    pub watchdog: Option<&'a [Finding]>,
    /// `project acme/backend`, `group acme`.
    pub scope: &'a str,
    /// The instant the statuses are as of.
    pub now: DateTime<Utc>,
    /// Candidate issues read from GitLab.
    pub issues_read: usize,
}

pub fn render(format: Format, rows: &[Row], context: &Context<'_>, colour: bool) -> String {
    match format {
        Format::Table => table(rows, context, colour),
        Format::Json => json(rows, context),
        Format::Junit => junit(rows, context),
        Format::Markdown => markdown(rows, context),
        Format::Html => html::html(rows, context),
    }
}

fn title(row: &Row) -> &str {
    if row.confidential {
        CONFIDENTIAL
    } else {
        &row.title
    }
}

/// The assignees, comma-separated, or `nobody`.
pub(crate) fn assignees(row: &Row) -> String {
    if row.assignees.is_empty() {
        "nobody".to_owned()
    } else {
        row.assignees.join(", ")
    }
}

pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2h overdue`, `5h 12m left`, `met in 3h`, …; on a calendar, `5h 12m
/// left (working time)`.
pub(crate) fn when(row: &Row) -> String {
    let said = when_in_time(row);
    match &row.calendar {
        Some(_) if row.status != SlaStatus::NotMatching && said != "withdrawn" => {
            format!("{said} (working time)")
        }
        _ => said,
    }
}

/// A duration of `row`'s clock: `1d 2h`, or in hours (`26h`) when it is
/// working time, as working days vary in length.
fn span(row: &Row, counted: TimeDelta) -> String {
    match &row.calendar {
        Some(_) => crate::policy::calendar::hours(counted),
        None => human(counted),
    }
}

fn when_in_time(row: &Row) -> String {
    match &row.status {
        SlaStatus::Running { remaining, .. } => format!("{} left", span(row, *remaining)),
        SlaStatus::Paused { remaining, .. } if remaining.num_seconds() < 0 => {
            format!("paused, {} overdue", span(row, -*remaining))
        }
        SlaStatus::Paused { remaining, .. } => format!("paused, {} left", span(row, *remaining)),
        SlaStatus::Breached { overdue, .. } => format!("{} overdue", span(row, *overdue)),
        SlaStatus::Met { took, .. } => format!("met in {}", span(row, *took)),
        SlaStatus::Missed { late_by, .. } => format!("missed by {}", span(row, *late_by)),
        SlaStatus::Withdrawn {
            overdue: Some(o), ..
        } => format!("withdrawn {} overdue", span(row, *o)),
        SlaStatus::Withdrawn { .. } => "withdrawn".to_owned(),
        SlaStatus::NotMatching => "-".to_owned(),
    }
}

fn level_word(level: Level) -> &'static str {
    match level {
        Level::Breach => "BREACH",
        Level::Warning => "warning",
        Level::Ok => "ok",
    }
}

/// Counts of rows by level: breached, in the warning window, ok.
fn counts<'a>(rows: impl IntoIterator<Item = &'a Row>) -> (usize, usize, usize) {
    rows.into_iter()
        .fold((0, 0, 0), |(breach, warning, ok), row| match row.level {
            Level::Breach => (breach + 1, warning, ok),
            Level::Warning => (breach, warning + 1, ok),
            Level::Ok => (breach, warning, ok + 1),
        })
}

/// The header and cells laid out in columns two spaces apart, by the
/// width people see (a wide character takes two columns), each line
/// without trailing spaces; comfy-table does the measuring.
pub(crate) fn aligned<const N: usize>(header: &[&str; N], cells: &[[String; N]]) -> Vec<String> {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for line in cells {
        table.add_row(line.iter().cloned());
    }
    for (n, column) in table.column_iter_mut().enumerate() {
        let right = if n + 1 == N { 0 } else { 2 };
        column.set_padding((0, right));
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect()
}

fn table(rows: &[Row], context: &Context<'_>, colour: bool) -> String {
    let header = [
        "LEVEL",
        "ISSUE",
        "POLICY",
        "STATUS",
        "DEADLINE",
        "ASSIGNEES",
        "TITLE",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            [
                level_word(row.level).to_owned(),
                row.issue.clone(),
                row.policy.clone(),
                when(row),
                row.deadline.map(time).unwrap_or_else(|| "-".to_owned()),
                if row.assignees.is_empty() {
                    "nobody".to_owned()
                } else {
                    row.assignees.join(",")
                },
                title(row).chars().take(60).collect(),
            ]
        })
        .collect();
    let lines = aligned(&header, &cells);
    let mut out = String::new();
    for (n, text) in lines.iter().enumerate() {
        // The header bold; breaches red and warnings yellow.
        let paint = match n.checked_sub(1).map(|i| rows[i].level) {
            None => Some("1"),
            Some(Level::Breach) => Some("31"),
            Some(Level::Warning) => Some("33"),
            Some(Level::Ok) => None,
        };
        match paint {
            Some(code) if colour => out.push_str(&format!("\x1b[{code}m{text}\x1b[0m\n")),
            _ => out.push_str(&format!("{text}\n")),
        }
    }
    out.push_str(&policy_table(&summarise(rows)));
    if let Some(findings) = context.watchdog {
        out.push('\n');
        if findings.is_empty() {
            out.push_str("watchdog: webhook and escalation lag are fine\n");
        }
        for finding in findings {
            let line = format!(
                "WATCHDOG {} {}: {}",
                finding.check, finding.subject, finding.message
            );
            if colour {
                out.push_str(&format!("\x1b[31m{line}\x1b[0m\n"));
            } else {
                out.push_str(&format!("{line}\n"));
            }
        }
    }
    let (breach, warning, ok) = counts(rows);
    out.push_str(&format!(
        "\n{} clocks on {} issues read from {} as of {}: {breach} breached, {warning} in the warning window, {ok} ok\n",
        rows.len(),
        context.issues_read,
        context.scope,
        time(context.now)
    ));
    out
}

/// `67%`, or `-` before any clock stopped.
pub(crate) fn share(summary: &PolicySummary) -> String {
    summary
        .met_share
        .map_or_else(|| "-".to_owned(), |share| format!("{:.0}%", share * 100.0))
}

/// `3h / 20h / 25h` (median / p90 / longest), or `-`.
pub(crate) fn spread(spread: Option<Spread>) -> String {
    spread.map_or_else(
        || "-".to_owned(),
        |s| format!("{} / {} / {}", human(s.median), human(s.p90), human(s.max)),
    )
}

/// Each policy's record, under the clocks.
fn policy_table(summaries: &[PolicySummary]) -> String {
    if summaries.is_empty() {
        return String::new();
    }
    let width = summaries
        .iter()
        .map(|s| s.policy.chars().count())
        .chain([6])
        .max()
        .unwrap_or(6);
    let header = [
        "POLICY",
        "CLOCKS",
        "MET",
        "MISSED",
        "IN TIME",
        "TIME TO RESOLVE",
        "TIME TO ACKNOWLEDGE",
    ];
    let cells: Vec<[String; 7]> = summaries
        .iter()
        .map(|summary| {
            [
                summary.policy.clone(),
                summary.clocks.to_string(),
                summary.met.to_string(),
                summary.missed.to_string(),
                share(summary),
                spread(summary.time_to_resolve),
                spread(summary.time_to_acknowledge),
            ]
        })
        .collect();
    let mut out = String::from("\n");
    for line in aligned(&header, &cells) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!("{:<width$}  times: median / p90 / longest\n", ""));
    out
}

fn json(rows: &[Row], context: &Context<'_>) -> String {
    let (breach, warning, ok) = counts(rows);
    let clocks: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            json!({
                "issue": row.issue,
                "title": title(row),
                "url": row.url,
                "confidential": row.confidential,
                "policy": row.policy,
                "level": row.level,
                "status": row.status.kind(),
                "status_text": row.status.to_string(),
                "target_seconds": row.target.num_seconds(),
                "started_at": row.started_at.map(rfc3339),
                "deadline": row.deadline.map(rfc3339),
                "remaining_seconds": row.remaining().map(|d| d.num_seconds()),
                "calendar": row.calendar,
                "overdue_seconds": row.overdue().map(|d| d.num_seconds()),
                "assignees": row.assignees,
                "acknowledged_by": row.acknowledged.as_ref().map(|(by, _)| by),
                "acknowledged_at": row.acknowledged.as_ref().map(|(_, at)| rfc3339(*at)),
            })
        })
        .collect();
    let document = json!({
        "schema_version": 1,
        "scope": context.scope,
        "now": rfc3339(context.now),
        "summary": {
            "issues_read": context.issues_read,
            "clocks": rows.len(),
            "breach": breach,
            "warning": warning,
            "ok": ok,
            "watchdog_findings": context.watchdog.map(<[Finding]>::len),
        },
        "clocks": clocks,
        "policies": summarise(rows),
        "watchdog": context.watchdog,
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// The story of one clock, for a failing test case.
fn story(row: &Row) -> String {
    let mut lines = vec![format!("{}: {}", row.issue, row.status)];
    lines.push(match &row.calendar {
        Some(calendar) => format!(
            "policy {}: resolve within {} of working time (calendar {calendar})",
            row.policy,
            span(row, row.target)
        ),
        None => format!(
            "policy {}: resolve within {}",
            row.policy,
            human(row.target)
        ),
    });
    if let Some(started) = row.started_at {
        lines.push(format!("clock started {}", time(started)));
    }
    if let Some(deadline) = row.deadline {
        lines.push(format!("deadline {}", time(deadline)));
    }
    lines.push(format!(
        "assignees: {}",
        if row.assignees.is_empty() {
            "nobody".to_owned()
        } else {
            row.assignees.join(", ")
        }
    ));
    lines.push(row.url.clone());
    lines.join("\n")
}

fn junit(rows: &[Row], context: &Context<'_>) -> String {
    let mut report = JunitReport::new("labelwarden");
    let mut policies: Vec<&str> = rows.iter().map(|r| r.policy.as_str()).collect();
    policies.sort_unstable();
    policies.dedup();
    for policy in policies {
        let mut suite = TestSuite::new(policy);
        suite.set_timestamp(context.now.fixed_offset());
        for row in rows.iter().filter(|r| r.policy == policy) {
            let status = if row.level == Level::Breach {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(match &row.calendar {
                        Some(calendar) => {
                            format!("{}: {} (working time of {calendar})", row.issue, row.status)
                        }
                        None => format!("{}: {}", row.issue, row.status),
                    })
                    .set_type("sla_breach")
                    .set_description(story(row));
                status
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(format!("{} {}", row.issue, title(row)), status);
            case.set_classname(policy);
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    if let Some(findings) = context.watchdog {
        let mut suite = TestSuite::new("labelwarden-watchdog");
        suite.set_timestamp(context.now.fixed_offset());
        if findings.is_empty() {
            let mut case = TestCase::new("webhook and escalation lag", TestCaseStatus::success());
            case.set_classname("watchdog");
            suite.add_test_case(case);
        }
        for finding in findings {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_message(finding.message.clone())
                .set_type(format!("watchdog_{}", finding.check));
            let mut case = TestCase::new(format!("{} {}", finding.check, finding.subject), status);
            case.set_classname("watchdog");
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().unwrap_or_default()
}

/// The watchdog's findings as a Markdown list under a warning; nothing
/// when it did not run or found nothing.
fn watchdog_markdown(context: &Context<'_>) -> String {
    let Some(findings) = context.watchdog.filter(|f| !f.is_empty()) else {
        return String::new();
    };
    let mut out = String::from("\n**Watchdog**: labelwarden itself may not be working:\n\n");
    for finding in findings {
        out.push_str(&format!(
            "- :rotating_light: {}: {}\n",
            finding.subject, finding.message
        ));
    }
    out
}

fn markdown(rows: &[Row], context: &Context<'_>) -> String {
    let (breach, warning, ok) = counts(rows);
    let mut out = format!(
        "## labelwarden audit: {}\n\nAs of {}: **{breach} breached**, {warning} in the warning window, {ok} ok ({} clocks on {} issues).\n",
        context.scope,
        time(context.now),
        rows.len(),
        context.issues_read
    );
    out.push_str(&watchdog_markdown(context));
    let summaries = summarise(rows);
    if summaries.iter().any(|s| s.met_share.is_some()) {
        out.push_str("\n| Policy | Clocks | Met | Missed | In time | Time to resolve (median / p90 / max) | Time to acknowledge |\n|---|---|---|---|---|---|---|\n");
        for summary in &summaries {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} |\n",
                summary.policy,
                summary.clocks,
                summary.met,
                summary.missed,
                share(summary),
                spread(summary.time_to_resolve),
                spread(summary.time_to_acknowledge)
            ));
        }
    }
    let urgent: Vec<&Row> = rows.iter().filter(|r| r.level != Level::Ok).collect();
    if urgent.is_empty() {
        out.push_str("\nNothing breached or close to its deadline.\n");
        return out;
    }
    out.push_str(
        "\n| | Issue | Policy | Status | Deadline | Assignees |\n|---|---|---|---|---|---|\n",
    );
    for row in urgent {
        let mark = if row.level == Level::Breach {
            ":red_circle:"
        } else {
            ":warning:"
        };
        let name = title(row).replace('|', "\\|");
        out.push_str(&format!(
            "| {mark} | [{}]({}) {name} | `{}` | {} | {} | {} |\n",
            row.issue,
            row.url,
            row.policy,
            when(row),
            row.deadline.map(time).unwrap_or_else(|| "-".to_owned()),
            if row.assignees.is_empty() {
                "nobody".to_owned()
            } else {
                row.assignees
                    .iter()
                    .map(|a| format!("@{a}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests;
