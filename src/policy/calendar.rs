//! Business-hours calendars: when working time counts. A calendar is a
//! time zone, working windows per weekday (`mon: ["09:00-12:30",
//! "13:30-18:00"]`) and closures (holidays on a date or every year, whole
//! days or part of one). A clock on a calendar counts only working time
//! towards its target, and its deadline is the instant the working time
//! runs out.
//!
//! Local time is what the windows mean: an instant is working time when
//! its local date and time in the calendar's zone fall in one of that
//! date's windows. So a window a spring daylight-saving change skips
//! counts nothing, one an autumn change doubles counts twice, and a
//! window keeps its local hours across the change.
//!
//! Pure: instants in, instants and durations out.

use std::fmt;

use chrono::{
    DateTime, Datelike, Days, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use smallvec::SmallVec;

/// How far ahead working time is looked for before giving up: a calendar
/// closed for longer than this (every day a holiday) has no deadline.
const HORIZON_DAYS: u64 = 3 * 366;
const DAY_SECONDS: u32 = 24 * 60 * 60;

/// A stretch of one local day: from `from` until `until`, seconds after
/// local midnight (`until` may be 86 400: the day's end, written `24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DayWindow {
    pub from: u32,
    pub until: u32,
}

impl DayWindow {
    /// The whole day.
    pub const ALL_DAY: DayWindow = DayWindow {
        from: 0,
        until: DAY_SECONDS,
    };

    /// `09:00-17:00`; `24:00` ends a window at midnight.
    pub fn parse(text: &str) -> Result<DayWindow, String> {
        let (from, until) = text
            .split_once('-')
            .ok_or_else(|| format!("`{text}` is not a window like `09:00-17:00`"))?;
        let not_a_window = |e: String| format!("`{text}` is not a window like `09:00-17:00`: {e}");
        let from = clock_time(from.trim()).map_err(not_a_window)?;
        let until = clock_time(until.trim()).map_err(not_a_window)?;
        if from == DAY_SECONDS {
            return Err(format!("`{text}` starts at 24:00: write `00:00`"));
        }
        if until <= from {
            return Err(format!(
                "`{text}` ends before it starts: a window ends on the day it starts (write `22:00-24:00` and `00:00-02:00` on the next day)"
            ));
        }
        Ok(DayWindow { from, until })
    }

    fn overlaps(&self, other: &DayWindow) -> bool {
        self.from < other.until && other.from < self.until
    }
}

/// `HH:MM` as seconds after midnight; `24:00` is the day's end.
fn clock_time(text: &str) -> Result<u32, String> {
    if text == "24:00" {
        return Ok(DAY_SECONDS);
    }
    NaiveTime::parse_from_str(text, "%H:%M")
        .map(|t| t.num_seconds_from_midnight())
        .map_err(|_| format!("`{text}` is not a time like `09:00` (00:00 to 24:00)"))
}

impl fmt::Display for DayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |s: u32| format!("{:02}:{:02}", s / 3600, s % 3600 / 60);
        write!(f, "{}-{}", hm(self.from), hm(self.until))
    }
}

/// The days a closure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosureDay {
    /// One date.
    Date(NaiveDate),
    /// The same date every year (`12-25`).
    Yearly { month: u32, day: u32 },
}

impl ClosureDay {
    fn applies(&self, date: NaiveDate) -> bool {
        match *self {
            ClosureDay::Date(on) => on == date,
            ClosureDay::Yearly { month, day } => date.month() == month && date.day() == day,
        }
    }
}

/// A holiday or another closure: the whole day, or only some windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub day: ClosureDay,
    /// Closed in these windows only; empty: the whole day.
    pub closed: Vec<DayWindow>,
    /// What people call it (`Christmas Day`).
    pub name: String,
}

/// A business-hours calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub name: String,
    pub time_zone: Tz,
    /// Working windows per weekday, Monday first: sorted, not overlapping.
    pub week: [Vec<DayWindow>; 7],
    pub closures: Vec<Closure>,
}

/// A working stretch in UTC, `from` until `until`.
pub type Stretch = (DateTime<Utc>, DateTime<Utc>);

/// What one local date of a calendar is: its working stretches and the
/// closures that apply to it.
#[derive(Debug, Clone, PartialEq)]
pub struct DayPlan<'a> {
    pub date: NaiveDate,
    pub stretches: SmallVec<[Stretch; 4]>,
    pub closures: Vec<&'a Closure>,
}

impl Calendar {
    /// Open around the clock, every day: counts exactly wall time.
    pub fn always_open(name: &str, time_zone: Tz) -> Calendar {
        Calendar {
            name: name.to_owned(),
            time_zone,
            week: std::array::from_fn(|_| vec![DayWindow::ALL_DAY]),
            closures: Vec::new(),
        }
    }

    /// The local windows `date` works in: its weekday's, less its closures.
    fn open_windows(&self, date: NaiveDate) -> SmallVec<[DayWindow; 4]> {
        let mut open: SmallVec<[DayWindow; 4]> = self.week
            [date.weekday().num_days_from_monday() as usize]
            .iter()
            .copied()
            .collect();
        for closure in self.closures.iter().filter(|c| c.day.applies(date)) {
            if closure.closed.is_empty() {
                return SmallVec::new();
            }
            for closed in &closure.closed {
                open = open
                    .into_iter()
                    .flat_map(|window| subtract(window, closed))
                    .collect();
            }
        }
        open
    }

    /// The local date of `at`.
    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.time_zone).date_naive()
    }

    /// The zone's offset from UTC at `at`, in seconds.
    fn offset_at(&self, at: DateTime<Utc>) -> i32 {
        self.time_zone
            .offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc()
    }

    /// The UTC stretches whose local date is `date` and local time within
    /// one of its windows, in order.
    fn stretches(&self, date: NaiveDate) -> SmallVec<[Stretch; 4]> {
        let windows = self.open_windows(date);
        let mut found: SmallVec<[Stretch; 4]> = SmallVec::new();
        if windows.is_empty() {
            return found;
        }
        let midnight = date.and_time(NaiveTime::MIN).and_utc();
        // The offsets in force on this local date: the one before it began
        // and the one after it ended (a day has at most one change).
        let before = self.offset_at(midnight - TimeDelta::hours(14));
        let after = self.offset_at(midnight + TimeDelta::hours(38));
        let offsets: SmallVec<[i32; 2]> = if before == after {
            SmallVec::from_slice(&[before])
        } else {
            SmallVec::from_slice(&[before, after])
        };
        for window in &windows {
            for &offset in &offsets {
                let shift = TimeDelta::seconds(i64::from(offset));
                let from = midnight + TimeDelta::seconds(i64::from(window.from)) - shift;
                let until = midnight + TimeDelta::seconds(i64::from(window.until)) - shift;
                if offsets.len() == 1 {
                    // No change this day: the window is where it says.
                    found.push((from, until));
                } else if let Some(part) = self.part_at_offset(from, until, offset) {
                    found.push(part);
                }
            }
        }
        found.sort();
        // Pieces that meet (a window across a change, cut where the
        // offset changed) are one stretch.
        let mut merged: SmallVec<[Stretch; 4]> = SmallVec::new();
        for (from, until) in found {
            match merged.last_mut() {
                Some(last) if last.1 >= from => last.1 = last.1.max(until),
                _ => merged.push((from, until)),
            }
        }
        merged
    }

    /// The part of `[from, until)` in which the zone's offset is `offset`
    /// (all of it on an ordinary day; none, the start or the end of it
    /// across a change).
    fn part_at_offset(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        offset: i32,
    ) -> Option<Stretch> {
        let at_start = self.offset_at(from) == offset;
        let at_end = self.offset_at(until - TimeDelta::seconds(1)) == offset;
        match (at_start, at_end) {
            (true, true) => Some((from, until)),
            (false, false) => None,
            (true, false) => Some((from, self.change_between(from, until))),
            (false, true) => Some((self.change_between(from, until), until)),
        }
    }

    /// The first instant in `(from, until]` whose offset differs from
    /// `from`'s: the change, to the second.
    fn change_between(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> DateTime<Utc> {
        let first = self.offset_at(from);
        let (mut low, mut high) = (from.timestamp(), until.timestamp());
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            let at = DateTime::from_timestamp(middle, 0).unwrap_or(until);
            if self.offset_at(at) == first {
                low = middle;
            } else {
                high = middle;
            }
        }
        DateTime::from_timestamp(high, 0).unwrap_or(until)
    }

    /// The working stretches that end after `from`, day by day, for at
    /// most the horizon.
    fn stretches_from(&self, from: DateTime<Utc>) -> impl Iterator<Item = Stretch> + '_ {
        let first = self.local_date(from);
        (0..HORIZON_DAYS)
            .filter_map(move |ahead| first.checked_add_days(Days::new(ahead)))
            .flat_map(move |date| self.stretches(date))
            .filter(move |(_, until)| *until > from)
            .map(move |(start, until)| (start.max(from), until))
    }

    /// Working time between `from` and `until` (none if `until` is not later).
    pub fn working_between(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> TimeDelta {
        if until <= from {
            return TimeDelta::zero();
        }
        let mut total = TimeDelta::zero();
        let last = self.local_date(until);
        let mut date = self.local_date(from);
        while date <= last {
            for (start, end) in self.stretches(date) {
                let (start, end) = (start.max(from), end.min(until));
                if end > start {
                    total += end - start;
                }
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        total
    }

    /// The instant `working` working time after `from`: the moment it runs
    /// out (the end of a window when it runs out exactly there). `None` if
    /// the calendar is closed for longer than the horizon.
    pub fn after_working(&self, from: DateTime<Utc>, working: TimeDelta) -> Option<DateTime<Utc>> {
        if working <= TimeDelta::zero() {
            return Some(from);
        }
        let mut left = working;
        for (start, until) in self.stretches_from(from) {
            let length = until - start;
            if left <= length {
                return Some(start + left);
            }
            left -= length;
        }
        None
    }

    /// `at` if it is working time, else the next instant that is.
    pub fn next_working(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.stretches_from(at).next().map(|(start, _)| start)
    }

    /// Whether `at` is working time.
    pub fn is_working(&self, at: DateTime<Utc>) -> bool {
        self.next_working(at) == Some(at)
    }

    /// Local date `date` as the calendar has it.
    pub fn day(&self, date: NaiveDate) -> DayPlan<'_> {
        DayPlan {
            date,
            stretches: self.stretches(date),
            closures: self
                .closures
                .iter()
                .filter(|c| c.day.applies(date))
                .collect(),
        }
    }

    /// The local time zone's view of `at` (`Mon 11:00`), for messages.
    pub fn local(&self, at: DateTime<Utc>) -> chrono::DateTime<Tz> {
        self.time_zone.from_utc_datetime(&at.naive_utc())
    }
}

/// Working time as hours and minutes (`40h`, `7h 30m`): working days
/// vary in length, so a count of days would mislead.
pub fn hours(working: TimeDelta) -> String {
    let minutes = working.num_minutes();
    match minutes % 60 {
        0 => format!("{}h", minutes / 60),
        rest => format!("{}h {rest}m", minutes / 60),
    }
}

/// `window` less `closed`: none, one or two windows.
fn subtract(window: DayWindow, closed: &DayWindow) -> SmallVec<[DayWindow; 2]> {
    let mut left = SmallVec::new();
    if !window.overlaps(closed) {
        left.push(window);
        return left;
    }
    if window.from < closed.from {
        left.push(DayWindow {
            from: window.from,
            until: closed.from,
        });
    }
    if closed.until < window.until {
        left.push(DayWindow {
            from: closed.until,
            until: window.until,
        });
    }
    left
}

/// Whether any two of `windows` overlap (they must not, within a day).
pub fn first_overlap(windows: &[DayWindow]) -> Option<(DayWindow, DayWindow)> {
    let mut sorted = windows.to_vec();
    sorted.sort();
    sorted
        .windows(2)
        .find(|pair| pair[0].overlaps(&pair[1]))
        .map(|pair| (pair[0], pair[1]))
}

pub mod ics;

#[cfg(test)]
mod tests;
