//! Weekly on-call rotations: who is primary and who is secondary at an
//! instant, and the shifts over a stretch of time. Pure: the instant is
//! passed in.
//!
//! A rotation is an ordered list of people and a weekly hand-off (a weekday
//! and a time of day in a time zone). From the first hand-off on or after
//! `since`, the first person is primary and the next one secondary; at each
//! hand-off everyone moves one place on. The hand-off is kept at the same
//! local time across daylight-saving changes, so the week that contains a
//! change is an hour shorter or longer. A hand-off time that a spring
//! change skips happens at the first local time after the gap.
//!
//! Temporary overrides put someone else in a role from one instant until
//! another; past their `until` they are ignored.

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use chrono::{Datelike, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "primary" => Some(Role::Primary),
            "secondary" => Some(Role::Secondary),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }
}

/// The weekly moment the rotation moves on.
#[derive(Debug, Clone, PartialEq)]
pub struct HandOff {
    pub weekday: Weekday,
    pub time: NaiveTime,
    pub time_zone: Tz,
}

/// Someone standing in for a role for a while.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub role: Role,
    /// A GitLab username from `people.gitlab_users`.
    pub person: String,
    /// From when; `None`: already in force.
    pub from: Option<DateTime<Utc>>,
    /// Until when (exclusive): the override's expiry.
    pub until: DateTime<Utc>,
}

impl Override {
    fn covers(&self, at: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| from <= at) && at < self.until
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub name: String,
    /// GitLab usernames, in rotation order; never empty.
    pub members: Vec<String>,
    pub hand_off: HandOff,
    /// The week of the first hand-off on or after this date is week 0.
    pub since: NaiveDate,
    /// Checked in order: the first that covers an instant wins.
    pub overrides: Vec<Override>,
}

/// Who holds both roles from `start` until `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub primary: String,
    pub secondary: String,
    /// Someone stands in for the rotation's own primary or secondary.
    pub overridden: bool,
}

impl Rotation {
    /// The instant of hand-off number `week` (0 is the first on or after `since`).
    pub fn hand_off_at(&self, week: i64) -> DateTime<Utc> {
        let first = first_weekday_on_or_after(self.since, self.hand_off.weekday);
        let date = if week >= 0 {
            first.checked_add_days(Days::new(7 * week as u64))
        } else {
            first.checked_sub_days(Days::new(7 * week.unsigned_abs()))
        }
        .unwrap_or(first);
        local_instant(self.hand_off.time_zone, date.and_time(self.hand_off.time))
    }

    /// The number of the hand-off in force at `at`.
    pub fn week_at(&self, at: DateTime<Utc>) -> i64 {
        let origin = self.hand_off_at(0);
        // Within an hour of right; corrected against the real hand-offs.
        let mut week = (at - origin).num_seconds().div_euclid(7 * 24 * 3600);
        while self.hand_off_at(week + 1) <= at {
            week += 1;
        }
        while self.hand_off_at(week) > at {
            week -= 1;
        }
        week
    }

    /// Who the rotation itself puts in `role` in hand-off week `week`.
    fn scheduled(&self, role: Role, week: i64) -> &str {
        let count = self.members.len() as i64;
        let offset = match role {
            Role::Primary => 0,
            Role::Secondary => 1,
        };
        &self.members[(week + offset).rem_euclid(count) as usize]
    }

    /// Who is in `role` at `at`, overrides included.
    pub fn on_call(&self, role: Role, at: DateTime<Utc>) -> &str {
        self.overrides
            .iter()
            .find(|o| o.role == role && o.covers(at))
            .map(|o| o.person.as_str())
            .unwrap_or_else(|| self.scheduled(role, self.week_at(at)))
    }

    /// The shifts from `start` until `end`: a new one at every hand-off and
    /// wherever an override begins or ends.
    pub fn shifts(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Shift> {
        let mut cuts = vec![start, end];
        let mut week = self.week_at(start) + 1;
        loop {
            let hand_off = self.hand_off_at(week);
            if hand_off >= end {
                break;
            }
            cuts.push(hand_off);
            week += 1;
        }
        for stand_in in &self.overrides {
            cuts.extend(stand_in.from);
            cuts.push(stand_in.until);
        }
        cuts.retain(|cut| (start..=end).contains(cut));
        cuts.sort();
        cuts.dedup();
        let mut shifts: Vec<Shift> = Vec::new();
        for pair in cuts.windows(2) {
            let (from, until) = (pair[0], pair[1]);
            let week = self.week_at(from);
            let primary = self.on_call(Role::Primary, from).to_owned();
            let secondary = self.on_call(Role::Secondary, from).to_owned();
            let overridden = primary != self.scheduled(Role::Primary, week)
                || secondary != self.scheduled(Role::Secondary, week);
            match shifts.last_mut() {
                Some(last)
                    if last.primary == primary
                        && last.secondary == secondary
                        && last.overridden == overridden =>
                {
                    last.end = until;
                }
                _ => shifts.push(Shift {
                    start: from,
                    end: until,
                    primary,
                    secondary,
                    overridden,
                }),
            }
        }
        shifts
    }
}

fn first_weekday_on_or_after(date: NaiveDate, weekday: Weekday) -> NaiveDate {
    let ahead = (7 + weekday.num_days_from_monday() - date.weekday().num_days_from_monday()) % 7;
    date + Days::new(u64::from(ahead))
}

/// A local wall-clock time in `zone` as an instant: the earlier of two when
/// an autumn change repeats it, the first time after the gap when a spring
/// change skips it.
pub fn local_instant(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.with_timezone(&Utc),
        LocalResult::None => {
            // Gaps are at most a few hours; step forward to the first valid minute.
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += TimeDelta::minutes(1);
                if let Some(at) = zone.from_local_datetime(&probe).earliest() {
                    return at.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin_rotation() -> Rotation {
        Rotation {
            name: "oncall".into(),
            members: vec!["alice".into(), "bob".into(), "carol".into()],
            hand_off: HandOff {
                weekday: Weekday::Mon,
                time: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                time_zone: chrono_tz::Europe::Berlin,
            },
            // A Wednesday: the first hand-off is Monday 2026-03-02.
            since: NaiveDate::from_ymd_opt(2026, 2, 25).unwrap(),
            overrides: Vec::new(),
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn who(rotation: &Rotation, at: &str) -> (String, String) {
        let at = utc(at);
        (
            rotation.on_call(Role::Primary, at).to_owned(),
            rotation.on_call(Role::Secondary, at).to_owned(),
        )
    }

    fn pair(primary: &str, secondary: &str) -> (String, String) {
        (primary.to_owned(), secondary.to_owned())
    }

    #[test]
    fn the_hand_off_instant_moves_everyone_one_place_on() {
        let rotation = berlin_rotation();
        // 09:00 in Berlin in winter is 08:00 UTC.
        assert_eq!(rotation.hand_off_at(0), utc("2026-03-02T08:00:00Z"));
        assert_eq!(who(&rotation, "2026-03-09T07:59:59Z"), pair("alice", "bob"));
        assert_eq!(who(&rotation, "2026-03-09T08:00:00Z"), pair("bob", "carol"));
        // The third week wraps around: carol, then alice again.
        assert_eq!(
            who(&rotation, "2026-03-16T08:00:00Z"),
            pair("carol", "alice")
        );
        // Before the first hand-off the rotation runs backwards.
        assert_eq!(
            who(&rotation, "2026-03-02T07:59:59Z"),
            pair("carol", "alice")
        );
    }

    #[test]
    fn the_hand_off_keeps_its_local_time_across_daylight_saving() {
        let rotation = berlin_rotation();
        // Berlin moves to summer time on Sunday 2026-03-29: the Monday
        // after, 09:00 local is 07:00 UTC, and the week before it was an
        // hour short.
        assert_eq!(rotation.hand_off_at(4), utc("2026-03-30T07:00:00Z"));
        assert_eq!(
            rotation.hand_off_at(4) - rotation.hand_off_at(3),
            TimeDelta::hours(7 * 24 - 1)
        );
        assert_eq!(
            who(&rotation, "2026-03-30T06:59:59Z"),
            pair("alice", "bob"),
            "still week 3 at 08:59 local"
        );
        assert_eq!(who(&rotation, "2026-03-30T07:00:00Z"), pair("bob", "carol"));
        // And back to winter time on Sunday 2026-10-25.
        let autumn = rotation.week_at(utc("2026-10-26T08:00:00Z"));
        assert_eq!(rotation.hand_off_at(autumn), utc("2026-10-26T08:00:00Z"));
        assert_eq!(
            rotation.hand_off_at(autumn) - rotation.hand_off_at(autumn - 1),
            TimeDelta::hours(7 * 24 + 1)
        );
    }

    #[test]
    fn a_hand_off_in_the_spring_gap_happens_right_after_it() {
        let mut rotation = berlin_rotation();
        rotation.hand_off.weekday = Weekday::Sun;
        rotation.hand_off.time = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        // 02:30 does not exist on 2026-03-29 in Berlin: 03:00 CEST, 01:00 UTC.
        let week = rotation.week_at(utc("2026-03-29T12:00:00Z"));
        assert_eq!(rotation.hand_off_at(week), utc("2026-03-29T01:00:00Z"));
    }

    #[test]
    fn an_override_stands_in_until_it_expires() {
        let mut rotation = berlin_rotation();
        rotation.overrides.push(Override {
            role: Role::Primary,
            person: "dave".into(),
            from: Some(utc("2026-03-10T12:00:00Z")),
            until: utc("2026-03-12T17:00:00Z"),
        });
        assert_eq!(who(&rotation, "2026-03-10T11:59:59Z"), pair("bob", "carol"));
        assert_eq!(
            who(&rotation, "2026-03-10T12:00:00Z"),
            pair("dave", "carol")
        );
        assert_eq!(
            who(&rotation, "2026-03-12T16:59:59Z"),
            pair("dave", "carol")
        );
        assert_eq!(
            who(&rotation, "2026-03-12T17:00:00Z"),
            pair("bob", "carol"),
            "expired"
        );

        let shifts = rotation.shifts(utc("2026-03-09T08:00:00Z"), utc("2026-03-23T08:00:00Z"));
        let summary: Vec<(DateTime<Utc>, &str, &str, bool)> = shifts
            .iter()
            .map(|s| {
                (
                    s.start,
                    s.primary.as_str(),
                    s.secondary.as_str(),
                    s.overridden,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (utc("2026-03-09T08:00:00Z"), "bob", "carol", false),
                (utc("2026-03-10T12:00:00Z"), "dave", "carol", true),
                (utc("2026-03-12T17:00:00Z"), "bob", "carol", false),
                (utc("2026-03-16T08:00:00Z"), "carol", "alice", false),
            ]
        );
        assert_eq!(shifts.last().unwrap().end, utc("2026-03-23T08:00:00Z"));
    }

    #[test]
    fn one_person_is_both_primary_and_secondary() {
        let mut rotation = berlin_rotation();
        rotation.members.truncate(1);
        assert_eq!(
            who(&rotation, "2026-05-05T10:00:00Z"),
            pair("alice", "alice")
        );
    }
}
