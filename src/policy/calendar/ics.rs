//! Holidays from an iCalendar file (`holidays_ics:`), as published by
//! governments, HR tools and shared calendars: each event closes the
//! calendar. An all-day event closes its days (`DTEND` is exclusive, as
//! RFC 5545 says); a yearly one (`RRULE:FREQ=YEARLY`) closes that date
//! every year; a timed event closes its hours, in the calendar's zone.
//! Other recurrences are refused rather than half understood. Pure: the
//! loader reads the file, this reads its text.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use icalendar::{CalendarComponent, CalendarDateTime, Component, DatePerhapsTime};

use super::{Closure, ClosureDay, DAY_SECONDS, DayWindow};

/// The longest event read: a holiday season, not a standing closure.
const LONGEST_DAYS: u64 = 62;

/// The closures `text` (an `.ics` file) describes, in `zone`.
pub fn closures(text: &str, zone: Tz) -> Result<Vec<Closure>, String> {
    let calendar: icalendar::Calendar = text
        .parse()
        .map_err(|e| format!("is not an iCalendar file: {e}"))?;
    let mut closures = Vec::new();
    for component in &calendar.components {
        let CalendarComponent::Event(event) = component else {
            continue;
        };
        let name = event.get_summary().unwrap_or("holiday").trim().to_owned();
        let start = event
            .get_start()
            .ok_or_else(|| format!("event `{name}` has no DTSTART"))?;
        let yearly = match event.property_value("RRULE") {
            None => false,
            Some(rule) if is_yearly(rule) => true,
            Some(rule) => {
                return Err(format!(
                    "event `{name}` repeats as `{rule}`: only yearly repeats are read; list the other dates as events of their own"
                ));
            }
        };
        match start {
            DatePerhapsTime::Date(first) => {
                let end = match event.get_end() {
                    Some(DatePerhapsTime::Date(end)) if end > first => end,
                    _ => first + Days::new(1),
                };
                let days = end.signed_duration_since(first).num_days().max(1) as u64;
                if days > LONGEST_DAYS {
                    return Err(format!(
                        "event `{name}` lasts {days} days: at most {LONGEST_DAYS} are read as holidays"
                    ));
                }
                for offset in 0..days {
                    let date = first + Days::new(offset);
                    closures.push(Closure {
                        day: if yearly {
                            ClosureDay::Yearly {
                                month: date.month(),
                                day: date.day(),
                            }
                        } else {
                            ClosureDay::Date(date)
                        },
                        closed: Vec::new(),
                        name: name.clone(),
                    });
                }
            }
            DatePerhapsTime::DateTime(from) => {
                if yearly {
                    return Err(format!(
                        "event `{name}` repeats yearly with times: give it as an all-day event"
                    ));
                }
                let from = instant(&from, zone)
                    .ok_or_else(|| format!("event `{name}`: its start is in an unknown zone"))?;
                let until = match event.get_end() {
                    Some(DatePerhapsTime::DateTime(until)) => instant(&until, zone)
                        .ok_or_else(|| format!("event `{name}`: its end is in an unknown zone"))?,
                    _ => return Err(format!("event `{name}` has a start time but no DTEND")),
                };
                closures.extend(timed(&name, from, until, zone)?);
            }
        }
    }
    Ok(closures)
}

/// `FREQ=YEARLY` with nothing that picks other days.
fn is_yearly(rule: &str) -> bool {
    let parts: Vec<&str> = rule.split(';').map(str::trim).collect();
    parts.contains(&"FREQ=YEARLY")
        && parts.iter().all(|part| {
            part.starts_with("FREQ=")
                || part.starts_with("INTERVAL=1")
                || part.starts_with("UNTIL=")
                || part.starts_with("COUNT=")
                || part.starts_with("WKST=")
        })
}

/// An event's time as an instant: UTC, a named zone, or floating (the
/// calendar's own zone).
fn instant(at: &CalendarDateTime, zone: Tz) -> Option<DateTime<Utc>> {
    let (naive, zone): (NaiveDateTime, Tz) = match at {
        CalendarDateTime::Utc(at) => return Some(*at),
        CalendarDateTime::Floating(naive) => (*naive, zone),
        CalendarDateTime::WithTimezone { date_time, tzid } => (*date_time, tzid.parse().ok()?),
    };
    Some(crate::policy::rotation::local_instant(zone, naive))
}

/// A timed event as part-day closures of the local dates it covers.
fn timed(
    name: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    zone: Tz,
) -> Result<Vec<Closure>, String> {
    if until <= from {
        return Err(format!("event `{name}` ends before it starts"));
    }
    if until - from > chrono::TimeDelta::days(LONGEST_DAYS as i64) {
        return Err(format!(
            "event `{name}` lasts more than {LONGEST_DAYS} days"
        ));
    }
    let seconds = |at: DateTime<Utc>| {
        use chrono::Timelike;
        at.with_timezone(&zone).time().num_seconds_from_midnight()
    };
    let first: NaiveDate = from.with_timezone(&zone).date_naive();
    let last: NaiveDate = until.with_timezone(&zone).date_naive();
    let mut closures = Vec::new();
    let mut date = first;
    while date <= last {
        let start = if date == first { seconds(from) } else { 0 };
        let end = if date == last {
            seconds(until)
        } else {
            DAY_SECONDS
        };
        if end > start {
            closures.push(Closure {
                day: ClosureDay::Date(date),
                closed: vec![DayWindow {
                    from: start,
                    until: end,
                }],
                name: name.to_owned(),
            });
        }
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    Ok(closures)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    fn ics(events: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//labelwarden//tests//EN\r\n{events}END:VCALENDAR\r\n"
        )
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn all_day_events_close_their_days_and_dtend_is_exclusive() {
        let text = ics(concat!(
            "BEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Christmas\r\n",
            "DTSTART;VALUE=DATE:20261225\r\nDTEND;VALUE=DATE:20261227\r\nEND:VEVENT\r\n",
            "BEGIN:VEVENT\r\nUID:2\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Labour Day\r\n",
            "DTSTART;VALUE=DATE:20260501\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n",
        ));
        let closures = closures(&text, BERLIN).unwrap();
        let days: Vec<(ClosureDay, &str)> =
            closures.iter().map(|c| (c.day, c.name.as_str())).collect();
        assert_eq!(
            days,
            vec![
                (ClosureDay::Date(date(2026, 12, 25)), "Christmas"),
                (ClosureDay::Date(date(2026, 12, 26)), "Christmas"),
                (ClosureDay::Yearly { month: 5, day: 1 }, "Labour Day"),
            ]
        );
        assert!(closures.iter().all(|c| c.closed.is_empty()));
    }

    #[test]
    fn a_timed_event_closes_its_hours_in_the_calendar_s_zone() {
        let text = ics(concat!(
            "BEGIN:VEVENT\r\nUID:3\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Offsite\r\n",
            "DTSTART:20261127T120000Z\r\nDTEND:20261127T160000Z\r\nEND:VEVENT\r\n",
        ));
        let closures = closures(&text, BERLIN).unwrap();
        assert_eq!(closures.len(), 1);
        assert_eq!(closures[0].day, ClosureDay::Date(date(2026, 11, 27)));
        // 12:00-16:00 UTC is 13:00-17:00 in Berlin in November.
        assert_eq!(closures[0].closed[0].to_string(), "13:00-17:00");
    }

    #[test]
    fn what_cannot_be_read_faithfully_is_refused_with_the_reason() {
        assert!(closures("not a calendar", BERLIN).is_err());
        let weekly = ics(concat!(
            "BEGIN:VEVENT\r\nUID:4\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Fridays off\r\n",
            "DTSTART;VALUE=DATE:20260102\r\nRRULE:FREQ=WEEKLY;BYDAY=FR\r\nEND:VEVENT\r\n",
        ));
        let refused = closures(&weekly, BERLIN).unwrap_err();
        assert!(
            refused.contains("only yearly repeats are read"),
            "{refused}"
        );
    }
}
