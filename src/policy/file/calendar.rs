//! The `calendars` key of a policy file as written: per calendar a time
//! zone, working hours per weekday and holidays. Checked into
//! [`crate::policy::calendar::Calendar`] by the validator.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Located;

/// A business-hours calendar: a clock with `calendar:` counts only the
/// working time it gives.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarEntry {
    /// IANA time zone the hours and holidays are in (`Europe/Berlin`).
    pub time_zone: Located<String>,
    /// Working hours per weekday: `mon: ["09:00-12:30", "13:30-18:00"]`. A
    /// day left out is closed.
    pub hours: Located<WeekHours>,
    /// Days (or parts of days) the calendar is closed.
    #[serde(default)]
    pub holidays: Vec<Located<HolidayEntry>>,
    /// More holidays, from an iCalendar file (`.ics`) beside this policy
    /// file: each all-day event closes its days, a yearly one that date
    /// every year, a timed one its hours.
    #[serde(default)]
    pub holidays_ics: Option<Located<String>>,
    /// The `.ics` file's text as the loader found it, or why it did not.
    #[serde(skip)]
    #[schemars(skip)]
    pub holidays_ics_text: Option<Result<String, String>>,
}

/// Windows `HH:MM-HH:MM` (ending by `24:00`) per weekday.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeekHours {
    #[serde(default)]
    pub mon: Vec<Located<String>>,
    #[serde(default)]
    pub tue: Vec<Located<String>>,
    #[serde(default)]
    pub wed: Vec<Located<String>>,
    #[serde(default)]
    pub thu: Vec<Located<String>>,
    #[serde(default)]
    pub fri: Vec<Located<String>>,
    #[serde(default)]
    pub sat: Vec<Located<String>>,
    #[serde(default)]
    pub sun: Vec<Located<String>>,
}

impl WeekHours {
    /// The days, Monday first, with their keys.
    pub fn days(&self) -> [(&'static str, &Vec<Located<String>>); 7] {
        [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ]
    }
}

/// A closure: one of `date` (`2026-12-24`) or `yearly` (`12-25`, every
/// year), all day unless `closed` names windows.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidayEntry {
    /// What it is called, for `labelwarden calendar` (`Christmas Day`).
    #[serde(default)]
    pub name: Option<String>,
    /// One date, `YYYY-MM-DD`.
    #[serde(default)]
    pub date: Option<Located<String>>,
    /// The same date every year, `MM-DD`.
    #[serde(default)]
    pub yearly: Option<Located<String>>,
    /// Closed only in these windows (`["13:00-24:00"]`); default: all day.
    #[serde(default)]
    pub closed: Vec<Located<String>>,
}
