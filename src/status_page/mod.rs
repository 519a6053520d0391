//! The status page `serve --status-page` shows at `/status`: the open
//! clocks sorted by time left, the breaches and resolutions of the last
//! days, and each policy's record over the window with the audit report's
//! charts. [`board`] reads what it shows from the store; [`render`] is
//! pure: HTML out of a [`Board`], rendered by
//! askama from `page.html` beside this file, which escapes every value.
//!
//! It works without script: times are written in UTC, the time left as
//! of the render, and the page reloads itself (`<meta http-equiv=refresh>`).
//! A few lines of script, where allowed, show times in the viewer's zone
//! and count down every second.
//!
//! It shows what a Slack channel not marked `private` shows: a
//! confidential issue keeps its reference, link and SLA facts, never its
//! title (nor labels, which the page never shows).

use std::collections::HashMap;

use askama::Template;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use crate::audit::report::html::{Chart, charts};
use crate::audit::report::{assignees, share, spread, time, when};
use crate::audit::{Level, Row, summarise};
use crate::clock::SlaStatus;
pub mod board;

use crate::slack::message::CONFIDENTIAL_TITLE;
use crate::store::CycleThread;
pub use board::Board;

/// What the page shows besides the board.
#[derive(Debug, Clone)]
pub struct PageSettings {
    /// The Slack workspace's URL (`https://acme.slack.com/`, from
    /// `auth.test`), for links to threads; without it a thread is named
    /// by its channel only.
    pub slack_workspace: Option<String>,
    /// Seconds between reloads.
    pub refresh_seconds: u32,
    /// How far back breaches and resolutions are listed.
    pub recent: TimeDelta,
    /// How far back each policy's record reaches (the board was read
    /// with the same window).
    pub window: TimeDelta,
}

impl Default for PageSettings {
    fn default() -> Self {
        PageSettings {
            slack_workspace: None,
            refresh_seconds: 60,
            recent: TimeDelta::days(7),
            window: TimeDelta::days(30),
        }
    }
}

/// Most breaches and resolutions listed.
const RECENT_LIMIT: usize = 100;

/// One open clock.
pub struct OpenView {
    /// `breached`, `paused`, `warning` or `running`: the row's class.
    pub class: &'static str,
    /// A word beside the status for what is not simply running.
    pub mark: &'static str,
    pub issue: String,
    pub url: String,
    pub title: String,
    pub policy: String,
    /// `5h 12m left`, `2h overdue`, `paused, 3h left`, as of the render.
    pub status: String,
    pub deadline: Option<Moment>,
    /// Counts down in the browser: running or breached, in wall-clock
    /// time (a clock on a business-hours calendar does not).
    pub countdown: bool,
    pub assignees: String,
    pub acknowledged: Option<(String, Moment)>,
    pub threads: Vec<ThreadView>,
}

/// An instant, machine-readable and in UTC words.
pub struct Moment {
    pub iso: String,
    pub text: String,
}

impl Moment {
    fn of(at: DateTime<Utc>) -> Moment {
        Moment {
            iso: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            text: time(at),
        }
    }
}

/// A Slack thread an open clock's notices went to.
pub struct ThreadView {
    pub channel: String,
    pub link: Option<String>,
}

/// One breach or resolution.
pub struct EventView {
    pub at: Moment,
    /// `breach`, `met`, `missed` or `withdrawn`: the row's class.
    pub kind: &'static str,
    pub what: String,
    pub issue: String,
    pub url: String,
    pub title: String,
    pub policy: String,
}

/// One policy's record over the window.
pub struct PolicyView {
    pub name: String,
    pub open: usize,
    pub met: usize,
    pub missed: usize,
    pub share: String,
    /// The share met in whole percent, for its bar; `None` before any
    /// clock stopped.
    pub percent: Option<u32>,
    pub resolve_spread: String,
    pub acknowledge_spread: String,
    pub charts: Vec<Chart>,
}

#[derive(Template)]
#[template(path = "status_page/page.html")]
struct Page {
    as_of: Moment,
    refresh_seconds: u32,
    breached: usize,
    paused: usize,
    running: usize,
    open: Vec<OpenView>,
    recent_days: i64,
    recent: Vec<EventView>,
    recent_more: usize,
    window_days: i64,
    policies: Vec<PolicyView>,
}

/// The page for `board`.
pub fn render(board: &Board, settings: &PageSettings) -> String {
    let threads = threads_by_cycle(&board.threads, settings.slack_workspace.as_deref());
    let mut open: Vec<&Row> = board.rows.iter().filter(|r| r.is_live()).collect();
    open.sort_by(|a, b| {
        time_left(a)
            .cmp(&time_left(b))
            .then_with(|| a.issue.cmp(&b.issue))
            .then_with(|| a.policy.cmp(&b.policy))
    });
    let count = |kind: &str| open.iter().filter(|r| r.status.kind() == kind).count();
    let (breached, paused, running) = (count("breached"), count("paused"), count("running"));
    let open = open
        .into_iter()
        .map(|row| open_view(row, &threads))
        .collect();
    let mut recent = recent(&board.rows, board.now, settings.recent);
    let recent_more = recent.len().saturating_sub(RECENT_LIMIT);
    recent.truncate(RECENT_LIMIT);
    let in_window: Vec<Row> = board
        .rows
        .iter()
        .filter(|r| {
            r.is_live()
                || r.ended_at()
                    .is_some_and(|at| at >= board.now - settings.window)
        })
        .cloned()
        .collect();
    let page = Page {
        as_of: Moment::of(board.now),
        refresh_seconds: settings.refresh_seconds,
        breached,
        paused,
        running,
        open,
        recent_days: settings.recent.num_days(),
        recent,
        recent_more,
        window_days: settings.window.num_days(),
        policies: policies(&in_window),
    };
    page.render().unwrap_or_else(|e| {
        format!("<!doctype html><p>the status page could not be rendered: {e}</p>\n")
    })
}

/// Counted time left; negative once overdue.
fn time_left(row: &Row) -> TimeDelta {
    match row.status {
        SlaStatus::Running { remaining, .. } | SlaStatus::Paused { remaining, .. } => remaining,
        SlaStatus::Breached { overdue, .. } => -overdue,
        _ => TimeDelta::MAX,
    }
}

type CycleKey = (String, String, u32);

/// Each cycle's threads, by (issue reference, policy, cycle).
fn threads_by_cycle(
    threads: &[CycleThread],
    workspace: Option<&str>,
) -> HashMap<CycleKey, Vec<(String, Option<String>)>> {
    let mut by_cycle: HashMap<CycleKey, Vec<(String, Option<String>)>> = HashMap::new();
    for thread in threads {
        let key = (
            thread.cycle.issue.to_string(),
            thread.cycle.policy.0.clone(),
            thread.cycle.cycle,
        );
        let link = workspace.map(|url| permalink(url, &thread.channel_id, &thread.ts));
        by_cycle
            .entry(key)
            .or_default()
            .push((thread.channel.clone(), link));
    }
    by_cycle
}

/// A message's link as Slack's `chat.getPermalink` gives it: the
/// workspace URL, `archives/`, the channel id, and `p` with the
/// message's `ts` without its dot.
pub fn permalink(workspace: &str, channel_id: &str, ts: &str) -> String {
    format!(
        "{}/archives/{channel_id}/p{}",
        workspace.trim_end_matches('/'),
        ts.replace('.', "")
    )
}

fn title(row: &Row) -> String {
    if row.confidential {
        CONFIDENTIAL_TITLE.to_owned()
    } else {
        row.title.clone()
    }
}

fn open_view(row: &Row, threads: &HashMap<CycleKey, Vec<(String, Option<String>)>>) -> OpenView {
    let (class, mark) = match row.status {
        SlaStatus::Breached { .. } => ("breached", "Breached"),
        SlaStatus::Paused { .. } => ("paused", "Paused"),
        _ if row.level == Level::Warning => ("warning", ""),
        _ => ("running", ""),
    };
    OpenView {
        class,
        mark,
        issue: row.issue.clone(),
        url: row.url.clone(),
        title: title(row),
        policy: row.policy.clone(),
        status: when(row),
        deadline: row.deadline.map(Moment::of),
        countdown: row.calendar.is_none()
            && matches!(
                row.status,
                SlaStatus::Running { .. } | SlaStatus::Breached { .. }
            ),
        assignees: assignees(row),
        acknowledged: row
            .acknowledged
            .as_ref()
            .map(|(by, at)| (by.clone(), Moment::of(*at))),
        threads: threads
            .get(&(row.issue.clone(), row.policy.clone(), row.cycle))
            .map(|found| {
                found
                    .iter()
                    .map(|(channel, link)| ThreadView {
                        channel: channel.clone(),
                        link: link.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Breaches (deadlines passed) and resolutions (clocks ended) since `now
/// - recent`, newest first.
fn recent(rows: &[Row], now: DateTime<Utc>, recent: TimeDelta) -> Vec<EventView> {
    let since = now - recent;
    let inside = |at: DateTime<Utc>| at >= since && at <= now;
    let mut events = Vec::new();
    for row in rows {
        let event = |at: DateTime<Utc>, kind: &'static str, what: String| EventView {
            at: Moment::of(at),
            kind,
            what,
            issue: row.issue.clone(),
            url: row.url.clone(),
            title: title(row),
            policy: row.policy.clone(),
        };
        if let Some(deadline) = row.deadline.filter(|at| inside(*at))
            && row.overdue().is_some()
        {
            events.push((
                deadline,
                event(deadline, "breach", "deadline passed".into()),
            ));
        }
        if let Some(ended) = row.ended_at().filter(|at| inside(*at)) {
            let kind = match row.status {
                SlaStatus::Met { .. } => "met",
                SlaStatus::Missed { .. } => "missed",
                _ => "withdrawn",
            };
            events.push((ended, event(ended, kind, when(row))));
        }
    }
    events.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.issue.cmp(&y.issue)));
    events.into_iter().map(|(_, event)| event).collect()
}

fn policies(rows: &[Row]) -> Vec<PolicyView> {
    summarise(rows)
        .into_iter()
        .map(|summary| {
            let of_policy: Vec<&Row> = rows.iter().filter(|r| r.policy == summary.policy).collect();
            PolicyView {
                open: of_policy.iter().filter(|r| r.is_live()).count(),
                met: summary.met,
                missed: summary.missed,
                share: share(&summary),
                percent: summary
                    .met_share
                    .map(|share| (share * 100.0).round() as u32),
                resolve_spread: spread(summary.time_to_resolve),
                acknowledge_spread: spread(summary.time_to_acknowledge),
                charts: charts(&of_policy),
                name: summary.policy,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
