//! Maintenance windows written in the policy files (`maintenance:`): a
//! policy, a channel or a project silenced at times known ahead, once (a
//! planned migration) or every week (a deploy freeze, a nightly backup).
//! `serve` opens a mute in the store for each window as it begins, so a
//! window behaves exactly as `labelwarden mute` does: notices that fall
//! due are recorded, not sent, clocks keep running, and what was held is
//! said once when the window ends. Pure: instants are passed in.
//!
//! A weekly window starts on each of its `days` at `from`, local time in
//! its time zone, and ends at the next `until` (the next day's when
//! `until` is not after `from`). Local times keep across daylight-saving
//! changes; a start or end that a spring change skips happens at the
//! first local time after the gap.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use super::SourceLocation;
use super::rotation::local_instant;

/// What a mute or a maintenance window silences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MuteScope {
    Policy,
    Channel,
    Project,
}

impl MuteScope {
    pub fn as_str(self) -> &'static str {
        match self {
            MuteScope::Policy => "policy",
            MuteScope::Channel => "channel",
            MuteScope::Project => "project",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "policy" => Some(MuteScope::Policy),
            "channel" => Some(MuteScope::Channel),
            "project" => Some(MuteScope::Project),
            _ => None,
        }
    }

    /// Whether silencing `target` of this scope silences a step of
    /// `policy` about an issue of `project`, posting to `channel` (none:
    /// a step with no Slack part, which no channel silences).
    pub fn covers(self, target: &str, policy: &str, channel: Option<&str>, project: &str) -> bool {
        match self {
            MuteScope::Policy => policy == target,
            MuteScope::Channel => channel == Some(target),
            MuteScope::Project => project == target,
        }
    }
}

/// One `maintenance:` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    /// Unique across the policy files; names the window's mutes.
    pub name: String,
    pub reason: String,
    pub scope: MuteScope,
    /// The policy's, channel's or project's name.
    pub target: String,
    pub when: WindowTime,
    pub source: SourceLocation,
}

/// When a window is.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowTime {
    /// Once, from one instant until another.
    Once {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// On each of `days`, from a local time until another.
    Weekly {
        /// The days a window starts on; never empty.
        days: Vec<Weekday>,
        from: NaiveTime,
        until: NaiveTime,
        time_zone: Tz,
    },
}

/// One stretch of time a window covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Occurrence {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Maintenance {
    /// The occurrence going on at `at`, if any.
    pub fn occurrence_at(&self, at: DateTime<Utc>) -> Option<Occurrence> {
        match &self.when {
            WindowTime::Once { from, until } => {
                (*from <= at && at < *until).then_some(Occurrence {
                    start: *from,
                    end: *until,
                })
            }
            WindowTime::Weekly { time_zone, .. } => {
                let today = at.with_timezone(time_zone).date_naive();
                // A window that began yesterday may still be going on.
                [today.pred_opt(), Some(today)]
                    .into_iter()
                    .flatten()
                    .filter_map(|day| self.weekly_starting(day))
                    .find(|occurrence| occurrence.start <= at && at < occurrence.end)
            }
        }
    }

    /// The occurrence going on at `at`, else the next one to begin; none
    /// once a one-off window is over.
    pub fn current_or_next(&self, at: DateTime<Utc>) -> Option<Occurrence> {
        if let Some(now) = self.occurrence_at(at) {
            return Some(now);
        }
        match &self.when {
            WindowTime::Once { from, until } => (at < *from).then_some(Occurrence {
                start: *from,
                end: *until,
            }),
            WindowTime::Weekly { time_zone, .. } => {
                let today = at.with_timezone(time_zone).date_naive();
                (0..=7u64)
                    .filter_map(|ahead| today.checked_add_days(Days::new(ahead)))
                    .filter_map(|day| self.weekly_starting(day))
                    .find(|occurrence| occurrence.start > at)
            }
        }
    }

    /// The weekly occurrence starting on local date `day`, if `day` is one
    /// of its days.
    fn weekly_starting(&self, day: NaiveDate) -> Option<Occurrence> {
        let WindowTime::Weekly {
            days,
            from,
            until,
            time_zone,
        } = &self.when
        else {
            return None;
        };
        if !days.contains(&day.weekday()) {
            return None;
        }
        let end_day = if until > from { day } else { day.succ_opt()? };
        Some(Occurrence {
            start: local_instant(*time_zone, day.and_time(*from)),
            end: local_instant(*time_zone, end_day.and_time(*until)),
        })
    }

    /// Whether it holds a step of `policy` about an issue of `project`,
    /// posting to `channel`, at `at`.
    pub fn holds(
        &self,
        policy: &str,
        channel: Option<&str>,
        project: &str,
        at: DateTime<Utc>,
    ) -> bool {
        self.scope.covers(&self.target, policy, channel, project)
            && self.occurrence_at(at).is_some()
    }

    /// The key of one occurrence's mute in the store: the same on every
    /// replica, so the window is muted once however many see it begin.
    pub fn origin(&self, occurrence: &Occurrence) -> String {
        format!(
            "maintenance|{}|{}",
            self.name,
            occurrence.start.timestamp_millis()
        )
    }

    /// `weekly-deploy (channel `alerts`)`, as people read it.
    pub fn describe(&self) -> String {
        format!("{} ({} `{}`)", self.name, self.scope.as_str(), self.target)
    }

    /// When it is, as people read it: `2026-12-05 22:00 UTC – 2026-12-06
    /// 02:00 UTC`, or `sat, sun 02:00–04:00 Europe/Berlin`.
    pub fn schedule(&self) -> String {
        match &self.when {
            WindowTime::Once { from, until } => format!(
                "{} – {}",
                from.format("%Y-%m-%d %H:%M UTC"),
                until.format("%Y-%m-%d %H:%M UTC")
            ),
            WindowTime::Weekly {
                days,
                from,
                until,
                time_zone,
            } => {
                let days = if days.len() == 7 {
                    "every day".to_owned()
                } else {
                    days.iter()
                        .map(|d| d.to_string().to_lowercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!(
                    "{days} {}–{} {time_zone}",
                    from.format("%H:%M"),
                    until.format("%H:%M")
                )
            }
        }
    }
}

/// The longest a window may last: a week-long silence is an outage of
/// the alerting, not maintenance.
pub const LONGEST: TimeDelta = TimeDelta::days(7);

/// Parses `monday` … `sunday` (or `mon` … `sun`).
pub fn weekday(text: &str) -> Result<Weekday, String> {
    text.trim()
        .parse::<Weekday>()
        .map_err(|_| format!("`{text}` is not a weekday like `saturday` or `sat`"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;

    fn window(when: WindowTime) -> Maintenance {
        Maintenance {
            name: "deploys".into(),
            reason: "weekly deploy".into(),
            scope: MuteScope::Channel,
            target: "alerts".into(),
            when,
            source: SourceLocation {
                file: Arc::new(PathBuf::from("policies/maintenance.yml")),
                line: 2,
                column: 5,
            },
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn a_one_off_window_covers_from_its_start_until_its_end() {
        let w = window(WindowTime::Once {
            from: utc(2026, 12, 5, 22, 0),
            until: utc(2026, 12, 6, 2, 0),
        });
        assert_eq!(w.occurrence_at(utc(2026, 12, 5, 21, 59)), None);
        let going = w.occurrence_at(utc(2026, 12, 5, 22, 0)).unwrap();
        assert_eq!(going.end, utc(2026, 12, 6, 2, 0));
        assert_eq!(
            w.occurrence_at(utc(2026, 12, 6, 2, 0)),
            None,
            "over at its end"
        );
        assert_eq!(
            w.current_or_next(utc(2026, 12, 1, 0, 0)).unwrap().start,
            utc(2026, 12, 5, 22, 0)
        );
        assert_eq!(w.current_or_next(utc(2026, 12, 7, 0, 0)), None);
    }

    #[test]
    fn a_weekly_window_keeps_its_local_time_in_its_zone() {
        // Saturdays 02:00–04:00 in Berlin: 01:00–03:00 UTC in winter.
        let w = window(WindowTime::Weekly {
            days: vec![Weekday::Sat],
            from: time(2, 0),
            until: time(4, 0),
            time_zone: chrono_tz::Europe::Berlin,
        });
        let saturday = utc(2026, 12, 5, 1, 30);
        assert_eq!(
            w.occurrence_at(saturday),
            Some(Occurrence {
                start: utc(2026, 12, 5, 1, 0),
                end: utc(2026, 12, 5, 3, 0)
            })
        );
        assert_eq!(w.occurrence_at(utc(2026, 12, 5, 3, 0)), None);
        assert_eq!(w.occurrence_at(utc(2026, 12, 6, 1, 30)), None, "not sunday");
        // In summer Berlin is UTC+2.
        assert_eq!(
            w.occurrence_at(utc(2027, 7, 3, 0, 30)).map(|o| o.start),
            Some(utc(2027, 7, 3, 0, 0))
        );
        // From a Sunday, the next begins on Saturday.
        assert_eq!(
            w.current_or_next(utc(2026, 12, 6, 12, 0)).map(|o| o.start),
            Some(utc(2026, 12, 12, 1, 0))
        );
    }

    #[test]
    fn a_window_ending_before_it_starts_runs_past_midnight() {
        // Fridays 22:00 until 02:00 UTC.
        let w = window(WindowTime::Weekly {
            days: vec![Weekday::Fri],
            from: time(22, 0),
            until: time(2, 0),
            time_zone: chrono_tz::UTC,
        });
        let saturday_night = utc(2026, 12, 5, 1, 0);
        let going = w.occurrence_at(saturday_night).unwrap();
        assert_eq!(going.start, utc(2026, 12, 4, 22, 0));
        assert_eq!(going.end, utc(2026, 12, 5, 2, 0));
        assert_eq!(
            w.occurrence_at(utc(2026, 12, 6, 1, 0)),
            None,
            "began on no friday"
        );
    }

    #[test]
    fn each_occurrence_has_its_own_origin() {
        let w = window(WindowTime::Weekly {
            days: vec![Weekday::Sat, Weekday::Sun],
            from: time(2, 0),
            until: time(4, 0),
            time_zone: chrono_tz::UTC,
        });
        let saturday = w.occurrence_at(utc(2026, 12, 5, 3, 0)).unwrap();
        let sunday = w.occurrence_at(utc(2026, 12, 6, 3, 0)).unwrap();
        assert_ne!(w.origin(&saturday), w.origin(&sunday));
        assert_eq!(
            w.origin(&saturday),
            w.origin(&w.occurrence_at(utc(2026, 12, 5, 2, 0)).unwrap())
        );
        assert_eq!(w.schedule(), "sat, sun 02:00–04:00 UTC");
    }
}
