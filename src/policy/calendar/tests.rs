use chrono::{NaiveDate, TimeZone};
use proptest::prelude::*;

use super::*;

const BERLIN: Tz = chrono_tz::Europe::Berlin;

fn window(text: &str) -> DayWindow {
    DayWindow::parse(text).unwrap()
}

/// Mon-Fri 09:00-17:00 in Berlin.
fn office() -> Calendar {
    let weekday = vec![window("09:00-17:00")];
    Calendar {
        name: "office".into(),
        time_zone: BERLIN,
        week: [
            weekday.clone(),
            weekday.clone(),
            weekday.clone(),
            weekday.clone(),
            weekday,
            vec![],
            vec![],
        ],
        closures: vec![],
    }
}

/// A local Berlin wall-clock time as an instant.
fn berlin(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    BERLIN
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, mo, d).unwrap()
}

#[test]
fn windows_read_as_written_and_refuse_what_is_not_a_window() {
    assert_eq!(window("09:00-17:00").to_string(), "09:00-17:00");
    assert_eq!(window("22:00-24:00").until, 24 * 3600);
    for bad in [
        "9-17",
        "17:00-09:00",
        "09:00-09:00",
        "24:00-24:00",
        "09:00-25:00",
        "nine",
    ] {
        assert!(DayWindow::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        first_overlap(&[window("13:00-18:00"), window("09:00-13:30")]),
        Some((window("09:00-13:30"), window("13:00-18:00")))
    );
    assert_eq!(
        first_overlap(&[window("09:00-12:30"), window("12:30-18:00")]),
        None
    );
}

#[test]
fn a_friday_afternoon_label_breaches_on_monday_morning() {
    let calendar = office();
    let labelled = berlin(2026, 12, 4, 16, 0); // a Friday
    let deadline = calendar.after_working(labelled, TimeDelta::hours(2));
    assert_eq!(deadline, Some(berlin(2026, 12, 7, 10, 0)));
    assert_eq!(
        calendar.working_between(labelled, berlin(2026, 12, 7, 10, 0)),
        TimeDelta::hours(2)
    );
}

#[test]
fn a_holiday_on_that_monday_moves_it_to_tuesday() {
    let mut calendar = office();
    calendar.closures.push(Closure {
        day: ClosureDay::Date(date(2026, 12, 7)),
        closed: vec![],
        name: "a day off".into(),
    });
    let deadline = calendar.after_working(berlin(2026, 12, 4, 16, 0), TimeDelta::hours(2));
    assert_eq!(deadline, Some(berlin(2026, 12, 8, 10, 0)));
}

#[test]
fn a_part_day_closure_closes_only_its_hours() {
    let mut calendar = office();
    calendar.closures.push(Closure {
        day: ClosureDay::Yearly { month: 12, day: 31 },
        closed: vec![window("13:00-24:00")],
        name: "New Year's Eve".into(),
    });
    // Thursday 31 December 2026: open 09:00-13:00 only.
    let day = calendar.day(date(2026, 12, 31));
    assert_eq!(
        day.stretches.as_slice(),
        &[(berlin(2026, 12, 31, 9, 0), berlin(2026, 12, 31, 13, 0))]
    );
    assert_eq!(day.closures.len(), 1);
    // Noon on the 31st plus 2 working hours: 1 h that day, 1 h on Friday
    // 1 January (open: the yearly closure is the 31st only).
    assert_eq!(
        calendar.after_working(berlin(2026, 12, 31, 12, 0), TimeDelta::hours(2)),
        Some(berlin(2027, 1, 1, 10, 0))
    );
}

#[test]
fn the_years_turn_and_a_yearly_holiday_on_it() {
    let mut calendar = office();
    calendar.closures.push(Closure {
        day: ClosureDay::Yearly { month: 1, day: 1 },
        closed: vec![],
        name: "New Year's Day".into(),
    });
    // Thursday 31 Dec 16:00 + 2 h: 1 h that day; Friday 1 Jan is closed;
    // Monday 4 January 10:00.
    assert_eq!(
        calendar.after_working(berlin(2026, 12, 31, 16, 0), TimeDelta::hours(2)),
        Some(berlin(2027, 1, 4, 10, 0))
    );
}

#[test]
fn windows_keep_their_local_hours_across_daylight_saving_changes() {
    let calendar = office();
    // The week before and the week after the spring change (29 March
    // 2026): Friday 16:00 plus 2 h is Monday 10:00, local time, both ways.
    assert_eq!(
        calendar.after_working(berlin(2026, 3, 27, 16, 0), TimeDelta::hours(2)),
        Some(berlin(2026, 3, 30, 10, 0))
    );
    assert_eq!(
        calendar.after_working(berlin(2026, 10, 23, 16, 0), TimeDelta::hours(2)),
        Some(berlin(2026, 10, 26, 10, 0))
    );
    // A whole week of office hours is 40 h either side of a change.
    assert_eq!(
        calendar.working_between(berlin(2026, 3, 23, 0, 0), berlin(2026, 3, 30, 0, 0)),
        TimeDelta::hours(40)
    );
    assert_eq!(
        calendar.working_between(berlin(2026, 10, 19, 0, 0), berlin(2026, 10, 26, 0, 0)),
        TimeDelta::hours(40)
    );
}

#[test]
fn a_window_the_spring_change_skips_counts_nothing_and_one_the_autumn_change_doubles_counts_twice()
{
    let night = vec![window("02:00-02:30")];
    let calendar = Calendar {
        name: "night".into(),
        time_zone: BERLIN,
        week: std::array::from_fn(|_| night.clone()),
        closures: vec![],
    };
    // 29 March 2026: 02:00-03:00 does not happen in Berlin.
    assert!(calendar.day(date(2026, 3, 29)).stretches.is_empty());
    // 25 October 2026: 02:00-03:00 happens twice (CEST, then CET).
    let doubled = calendar.day(date(2026, 10, 25)).stretches;
    let utc = |h, mi| Utc.with_ymd_and_hms(2026, 10, 25, h, mi, 0).unwrap();
    assert_eq!(
        doubled.as_slice(),
        &[(utc(0, 0), utc(0, 30)), (utc(1, 0), utc(1, 30))]
    );
    // A day open around the clock has 23 h in spring and 25 h in autumn.
    let always = Calendar::always_open("always", BERLIN);
    let length = |d: NaiveDate| {
        always
            .day(d)
            .stretches
            .iter()
            .map(|(a, b)| *b - *a)
            .sum::<TimeDelta>()
    };
    assert_eq!(length(date(2026, 3, 29)), TimeDelta::hours(23));
    assert_eq!(length(date(2026, 10, 25)), TimeDelta::hours(25));
    assert_eq!(length(date(2026, 10, 26)), TimeDelta::hours(24));
}

#[test]
fn next_working_is_now_inside_hours_and_the_next_opening_outside() {
    let calendar = office();
    let inside = berlin(2026, 12, 7, 11, 0);
    assert_eq!(calendar.next_working(inside), Some(inside));
    assert!(calendar.is_working(inside));
    let saturday = berlin(2026, 12, 5, 11, 0);
    assert!(!calendar.is_working(saturday));
    assert_eq!(
        calendar.next_working(saturday),
        Some(berlin(2026, 12, 7, 9, 0))
    );
    // The end of a window is not working time: it is the next opening.
    assert_eq!(
        calendar.next_working(berlin(2026, 12, 7, 17, 0)),
        Some(berlin(2026, 12, 8, 9, 0))
    );
}

#[test]
fn a_calendar_closed_for_good_has_no_deadline() {
    let calendar = Calendar {
        name: "never".into(),
        time_zone: BERLIN,
        week: std::array::from_fn(|_| vec![]),
        closures: vec![],
    };
    let at = berlin(2026, 12, 7, 11, 0);
    assert_eq!(calendar.after_working(at, TimeDelta::hours(1)), None);
    assert_eq!(calendar.next_working(at), None);
    assert_eq!(
        calendar.working_between(at, at + TimeDelta::days(30)),
        TimeDelta::zero()
    );
}

/// An instant within a few years around now, to the second.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (1_735_689_600i64..1_830_000_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

/// A calendar with one to three windows on some weekdays, in a zone with
/// daylight saving.
fn calendar() -> impl Strategy<Value = Calendar> {
    let day = proptest::collection::vec((0u32..24, 1u32..6), 0..3).prop_map(|starts| {
        let mut windows: Vec<DayWindow> = Vec::new();
        for (hour, length) in starts {
            let candidate = DayWindow {
                from: hour * 3600,
                until: ((hour + length) * 3600).min(DAY_SECONDS),
            };
            if !windows.iter().any(|w| w.overlaps(&candidate)) {
                windows.push(candidate);
            }
        }
        windows.sort();
        windows
    });
    proptest::collection::vec(day, 7).prop_map(|days| {
        let mut week: [Vec<DayWindow>; 7] = Default::default();
        for (slot, windows) in week.iter_mut().zip(days) {
            *slot = windows;
        }
        if week.iter().all(Vec::is_empty) {
            week[0] = vec![window("09:00-17:00")];
        }
        Calendar {
            name: "generated".into(),
            time_zone: chrono_tz::America::New_York,
            week,
            closures: vec![],
        }
    })
}

proptest! {
    #[test]
    fn a_calendar_open_around_the_clock_gives_the_wall_clock_deadline(
        from in instant(),
        minutes in 0i64..(60 * 24 * 40),
    ) {
        let always = Calendar::always_open("always", BERLIN);
        let target = TimeDelta::minutes(minutes);
        prop_assert_eq!(always.after_working(from, target), Some(from + target));
        prop_assert_eq!(always.working_between(from, from + target), target);
    }

    #[test]
    fn working_time_is_additive_and_never_more_than_wall_time(
        calendar in calendar(),
        a in instant(),
        gaps in (0i64..(86_400 * 9), 0i64..(86_400 * 9)),
    ) {
        let b = a + TimeDelta::seconds(gaps.0);
        let c = b + TimeDelta::seconds(gaps.1);
        let whole = calendar.working_between(a, c);
        prop_assert_eq!(whole, calendar.working_between(a, b) + calendar.working_between(b, c));
        prop_assert!(whole <= c - a);
        prop_assert!(whole >= TimeDelta::zero());
    }

    #[test]
    fn the_deadline_is_where_the_working_time_runs_out(
        calendar in calendar(),
        from in instant(),
        minutes in 1i64..(60 * 60),
    ) {
        let target = TimeDelta::minutes(minutes);
        let deadline = calendar.after_working(from, target).unwrap();
        prop_assert_eq!(calendar.working_between(from, deadline), target);
        // Not a second later than needed.
        prop_assert!(calendar.working_between(from, deadline - TimeDelta::seconds(1)) < target);
    }

    #[test]
    fn a_holiday_never_brings_a_deadline_earlier(
        calendar in calendar(),
        from in instant(),
        minutes in 1i64..(60 * 40),
        holiday_in in 0u64..20,
        part in proptest::option::of((0u32..23, 1u32..4)),
    ) {
        let target = TimeDelta::minutes(minutes);
        let before = calendar.after_working(from, target);
        let mut closed = calendar.clone();
        let day = calendar.local_date(from).checked_add_days(Days::new(holiday_in)).unwrap();
        closed.closures.push(Closure {
            day: ClosureDay::Date(day),
            closed: part
                .map(|(hour, length)| vec![DayWindow {
                    from: hour * 3600,
                    until: ((hour + length) * 3600).min(DAY_SECONDS),
                }])
                .unwrap_or_default(),
            name: "holiday".into(),
        });
        let after = closed.after_working(from, target);
        match (before, after) {
            (Some(before), Some(after)) => prop_assert!(after >= before),
            (Some(_), None) => {}
            (None, _) => prop_assert!(false, "the generated calendar always opens"),
        }
    }
}
