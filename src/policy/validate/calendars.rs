//! Checks of `calendars:`: a name used once, a known time zone, windows
//! that are times (`09:00-17:00`, ending by `24:00`) and do not overlap
//! within a day, a week that opens at least once, and holidays that are
//! dates (`2026-12-24`) or yearly dates (`12-25`).

use crate::policy::calendar::{Calendar, Closure, ClosureDay, DayWindow, first_overlap, ics};
use crate::policy::file::{CalendarEntry, HolidayEntry};

use super::*;

/// The calendars of every file, by name, and where each was defined.
pub(super) struct Calendars {
    pub by_name: BTreeMap<String, Arc<Calendar>>,
    /// Defined, valid or not: a clock naming an invalid calendar is not
    /// told again that it does not exist.
    pub sites: BTreeMap<String, SourceLocation>,
}

impl Checker {
    pub(super) fn calendars(&mut self, files: &[ParsedFile]) -> Calendars {
        let mut calendars = Calendars {
            by_name: BTreeMap::new(),
            sites: BTreeMap::new(),
        };
        for file in files {
            for (name, entry) in &file.content.calendars {
                let at = self.at(&file.path, entry);
                let field = format!("calendars.{name}");
                if let Some(first) = calendars.sites.get(name) {
                    self.fail(&at, field, format!("already defined at {first}"));
                    continue;
                }
                calendars.sites.insert(name.clone(), at);
                if let Some(calendar) = self.calendar(&file.path, name, entry) {
                    calendars.by_name.insert(name.clone(), Arc::new(calendar));
                }
            }
        }
        calendars
    }

    /// The calendar `name` refers to; `None` after reporting an unknown
    /// one. A calendar defined but invalid is not reported again.
    pub(super) fn calendar_named(
        &mut self,
        file: &Arc<PathBuf>,
        name: &Located<String>,
        field: String,
        calendars: &Calendars,
    ) -> Option<Arc<Calendar>> {
        let wanted = name.value.trim();
        if let Some(calendar) = calendars.by_name.get(wanted) {
            return Some(Arc::clone(calendar));
        }
        if calendars.sites.contains_key(wanted) {
            return None;
        }
        let at = self.at(file, name);
        self.fail(
            &at,
            field,
            format!(
                "no calendar named `{}` under `calendars` (defined: {})",
                name.value,
                crate::policy::defined_names(calendars.sites.keys())
            ),
        );
        None
    }

    fn calendar(
        &mut self,
        file: &Arc<PathBuf>,
        name: &str,
        entry: &Located<CalendarEntry>,
    ) -> Option<Calendar> {
        let field = format!("calendars.{name}");
        let raw = &entry.value;
        let time_zone = self.check(
            file,
            &raw.time_zone,
            format!("{field}.time_zone"),
            raw.time_zone.value.trim().parse::<Tz>().map_err(|_| {
                format!(
                    "`{}` is not an IANA time zone like `Europe/Berlin` or `UTC`",
                    raw.time_zone.value
                )
            }),
        );
        let mut week: [Vec<DayWindow>; 7] = Default::default();
        let mut valid = true;
        for (slot, (day, windows)) in week.iter_mut().zip(raw.hours.value.days()) {
            let day_field = format!("{field}.hours.{day}");
            for written in windows {
                match self.check(
                    file,
                    written,
                    day_field.clone(),
                    DayWindow::parse(written.value.trim()),
                ) {
                    Some(window) => slot.push(window),
                    None => valid = false,
                }
            }
            if let Some((first, second)) = first_overlap(slot) {
                let at = self.at(file, &windows[0]);
                self.fail(
                    &at,
                    day_field,
                    format!("`{first}` and `{second}` overlap: each minute of a day is in one window at most"),
                );
                valid = false;
            }
            slot.sort();
        }
        if valid && week.iter().all(Vec::is_empty) {
            let at = self.at(file, &raw.hours);
            self.fail(
                &at,
                format!("{field}.hours"),
                "opens on no day: give at least one window, like `mon: [\"09:00-17:00\"]`",
            );
            valid = false;
        }
        let mut closures = Vec::with_capacity(raw.holidays.len());
        for (index, holiday) in raw.holidays.iter().enumerate() {
            match self.holiday(file, &format!("{field}.holidays[{index}]"), holiday) {
                Some(closure) => closures.push(closure),
                None => valid = false,
            }
        }
        if let Some(named) = &raw.holidays_ics {
            let at = self.at(file, named);
            let ics_field = format!("{field}.holidays_ics");
            let read = match &raw.holidays_ics_text {
                Some(Ok(text)) => time_zone.map(|zone| ics::closures(text, zone)),
                Some(Err(why)) => Some(Err(format!("cannot be read: {why}"))),
                None => Some(Err(
                    "cannot be read: the policy files were given without their folder".to_owned(),
                )),
            };
            match read {
                Some(Ok(more)) => closures.extend(more),
                Some(Err(why)) => {
                    self.fail(&at, ics_field, format!("`{}` {why}", named.value.trim()));
                    valid = false;
                }
                // An unknown time zone is reported already.
                None => {}
            }
        }
        valid.then_some(Calendar {
            name: name.to_owned(),
            time_zone: time_zone?,
            week,
            closures,
        })
    }

    fn holiday(
        &mut self,
        file: &Arc<PathBuf>,
        field: &str,
        entry: &Located<HolidayEntry>,
    ) -> Option<Closure> {
        let raw = &entry.value;
        let day = match (&raw.date, &raw.yearly) {
            (Some(date), None) => self.check(
                file,
                date,
                format!("{field}.date"),
                NaiveDate::parse_from_str(date.value.trim(), "%Y-%m-%d")
                    .map(ClosureDay::Date)
                    .map_err(|_| format!("`{}` is not a date like `2026-12-24`", date.value)),
            ),
            (None, Some(yearly)) => self.check(
                file,
                yearly,
                format!("{field}.yearly"),
                yearly_date(yearly.value.trim()),
            ),
            _ => {
                let at = self.at(file, entry);
                self.fail(
                    &at,
                    field,
                    "give one of `date: 2026-12-24` (that day) or `yearly: 12-25` (every year)",
                );
                None
            }
        };
        let mut closed = Vec::with_capacity(raw.closed.len());
        let mut valid = true;
        for written in &raw.closed {
            match self.check(
                file,
                written,
                format!("{field}.closed"),
                DayWindow::parse(written.value.trim()),
            ) {
                Some(window) => closed.push(window),
                None => valid = false,
            }
        }
        let day = day?;
        valid.then(|| Closure {
            day,
            closed,
            name: raw.name.clone().unwrap_or_else(|| "closed".to_owned()),
        })
    }
}

/// `12-25` as a day every year (`02-29` is a leap day: only those years).
fn yearly_date(text: &str) -> Result<ClosureDay, String> {
    let refused = || format!("`{text}` is not a yearly date like `12-25` (month-day)");
    let (month, day) = text.split_once('-').ok_or_else(refused)?;
    let (month, day): (u32, u32) = (
        month.parse().map_err(|_| refused())?,
        day.parse().map_err(|_| refused())?,
    );
    // A leap year has every month-day there is.
    NaiveDate::from_ymd_opt(2028, month, day).ok_or_else(refused)?;
    Ok(ClosureDay::Yearly { month, day })
}

#[cfg(test)]
mod tests;
