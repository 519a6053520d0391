//! `audit --format html`: one self-contained page (inline CSS and SVG, no
//! script, no request to anywhere) with the audited scope's record: the
//! breaches now, then per policy its counts, share met, the time to resolve
//! and to acknowledge as bar charts, and every clock. Rendered by askama
//! from `report.html` beside this file, which escapes every value.
//!
//! Like the other reports it lands in CI artifacts more people can read
//! than the issues, so confidential titles are left out.

use askama::Template;
use chrono::TimeDelta;

use super::{Context, assignees, counts, share, spread, time, title, when};
use crate::audit::{Level, Row, summarise};

/// One bar chart of durations: the clocks per range.
pub struct Chart {
    pub caption: &'static str,
    pub bars: Vec<Bar>,
    /// How many durations it counts; no chart without any.
    pub total: usize,
}

/// One bar, with its place in the SVG worked out here.
pub struct Bar {
    pub label: &'static str,
    pub count: usize,
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
    /// Where its labels are centred.
    pub middle: usize,
}

/// A chart's size in the SVG's units.
const CHART_HEIGHT: usize = 90;
const BAR_WIDTH: usize = 46;
const BAR_STEP: usize = 54;

impl Chart {
    /// `values` counted into `ranges`, each below its bound (the last open).
    fn of(
        caption: &'static str,
        values: &[TimeDelta],
        ranges: &[(&'static str, TimeDelta)],
    ) -> Chart {
        let mut counted = vec![0usize; ranges.len()];
        for value in values {
            let slot = ranges
                .iter()
                .position(|(_, below)| value < below)
                .unwrap_or(ranges.len() - 1);
            counted[slot] += 1;
        }
        let most = counted.iter().copied().max().unwrap_or(0).max(1);
        let bars = ranges
            .iter()
            .zip(&counted)
            .enumerate()
            .map(|(n, ((label, _), count))| {
                let height = count * CHART_HEIGHT / most;
                Bar {
                    label,
                    count: *count,
                    x: n * BAR_STEP,
                    y: CHART_HEIGHT - height,
                    width: BAR_WIDTH,
                    height,
                    middle: n * BAR_STEP + BAR_WIDTH / 2,
                }
            })
            .collect();
        Chart {
            caption,
            bars,
            total: values.len(),
        }
    }

    pub fn width(&self) -> usize {
        self.bars.len() * BAR_STEP
    }
}

fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

/// One clock as a table row.
pub struct RowView {
    pub level: &'static str,
    pub issue: String,
    pub url: String,
    pub title: String,
    pub status: String,
    pub deadline: String,
    pub assignees: String,
    pub acknowledged: String,
}

impl RowView {
    fn of(row: &Row) -> RowView {
        RowView {
            level: match row.level {
                Level::Breach => "breach",
                Level::Warning => "warning",
                Level::Ok => "ok",
            },
            issue: row.issue.clone(),
            url: row.url.clone(),
            title: title(row).to_owned(),
            status: when(row),
            deadline: row.deadline.map(time).unwrap_or_else(|| "-".to_owned()),
            assignees: assignees(row),
            acknowledged: row
                .acknowledged
                .as_ref()
                .map(|(by, at)| format!("{by} at {}", time(*at)))
                .unwrap_or_else(|| "-".to_owned()),
        }
    }
}

/// One policy's section.
pub struct PolicyView {
    pub name: String,
    pub clocks: usize,
    pub breached: usize,
    pub warning: usize,
    pub met: usize,
    pub missed: usize,
    pub share: String,
    pub resolve_spread: String,
    pub acknowledge_spread: String,
    /// Time to resolve, then time to acknowledge.
    pub charts: Vec<Chart>,
    pub rows: Vec<RowView>,
}

#[derive(Template)]
#[template(path = "audit/report/report.html")]
struct Page {
    scope: String,
    as_of: String,
    breach: usize,
    warning: usize,
    ok: usize,
    clocks: usize,
    issues_read: usize,
    watchdog: Vec<String>,
    urgent: Vec<RowView>,
    policies: Vec<PolicyView>,
}

/// Time to resolve, then time to acknowledge, of `rows`' clocks, as
/// bar charts (`chart.html` draws one).
pub(crate) fn charts(rows: &[&Row]) -> Vec<Chart> {
    let resolve_ranges = [
        ("< 1h", hours(1)),
        ("1-4h", hours(4)),
        ("4-8h", hours(8)),
        ("8-16h", hours(16)),
        ("16-24h", hours(24)),
        ("1-2d", hours(48)),
        ("> 2d", TimeDelta::MAX),
    ];
    let acknowledge_ranges = [
        ("< 5m", minutes(5)),
        ("5-15m", minutes(15)),
        ("15-30m", minutes(30)),
        ("30m-1h", hours(1)),
        ("1-4h", hours(4)),
        ("> 4h", TimeDelta::MAX),
    ];
    let resolved: Vec<TimeDelta> = rows
        .iter()
        .filter_map(|row| row.resolution().map(|(_, took)| took))
        .collect();
    let acknowledged: Vec<TimeDelta> = rows
        .iter()
        .filter_map(|row| Some(row.acknowledged.as_ref()?.1 - row.started_at?))
        .collect();
    vec![
        Chart::of("Time to resolve", &resolved, &resolve_ranges),
        Chart::of("Time to acknowledge", &acknowledged, &acknowledge_ranges),
    ]
}

pub fn html(rows: &[Row], context: &Context<'_>) -> String {
    let (breach, warning, ok) = counts(rows);
    let policies = summarise(rows)
        .into_iter()
        .map(|summary| {
            let of_policy: Vec<&Row> = rows.iter().filter(|r| r.policy == summary.policy).collect();
            let (breached, warning, _) = counts(of_policy.iter().copied());
            PolicyView {
                name: summary.policy.clone(),
                clocks: summary.clocks,
                breached,
                warning,
                met: summary.met,
                missed: summary.missed,
                share: share(&summary),
                resolve_spread: spread(summary.time_to_resolve),
                acknowledge_spread: spread(summary.time_to_acknowledge),
                charts: charts(&of_policy),
                rows: of_policy.into_iter().map(RowView::of).collect(),
            }
        })
        .collect();
    let page = Page {
        scope: context.scope.to_owned(),
        as_of: time(context.now),
        breach,
        warning,
        ok,
        clocks: rows.len(),
        issues_read: context.issues_read,
        watchdog: context
            .watchdog
            .unwrap_or_default()
            .iter()
            .map(|f| format!("{}: {}", f.subject, f.message))
            .collect(),
        urgent: rows
            .iter()
            .filter(|r| r.level != Level::Ok)
            .map(RowView::of)
            .collect(),
        policies,
    };
    page.render().unwrap_or_else(|e| {
        format!("<!doctype html><p>the report could not be rendered: {e}</p>\n")
    })
}

#[cfg(test)]
mod tests;
