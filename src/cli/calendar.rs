//! `labelwarden calendar NAME`: what a calendar of the policy files means,
//! day by day in its own time zone: the working windows, the holidays
//! that close a day or part of one, and the working hours in all, so a
//! user can see what the file says before a clock counts by it.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{Days, NaiveDate, TimeDelta, Utc};
use clap::Args;

use super::{fail, load_policies};
use crate::policy::calendar::{Calendar, hours};

#[derive(Debug, Args)]
pub struct CalendarArgs {
    /// The calendar's name, under `calendars:` in the policy files.
    name: String,
    /// Folder of policy files.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// The first day shown (`YYYY-MM-DD`, in the calendar's zone); default today.
    #[arg(long)]
    from: Option<NaiveDate>,
    /// The last day shown; default two weeks after `--from`.
    #[arg(long)]
    to: Option<NaiveDate>,
}

pub fn run(args: CalendarArgs) -> ExitCode {
    let set = match load_policies(&args.policies) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let Some(calendar) = set.calendars.get(&args.name) else {
        return fail(format!(
            "no calendar named `{}` under `calendars` in {} (defined: {})",
            args.name,
            args.policies.display(),
            crate::policy::defined_names(set.calendars.keys())
        ));
    };
    let from = args
        .from
        .unwrap_or_else(|| calendar.local(Utc::now()).date_naive());
    let to = args
        .to
        .unwrap_or_else(|| from + Days::new(13))
        .min(from + Days::new(366));
    if to < from {
        return fail(format!("--to {to} is before --from {from}"));
    }
    print!("{}", render(calendar, from, to));
    ExitCode::SUCCESS
}

/// The days from `from` to `to`, one line each, and the total.
fn render(calendar: &Calendar, from: NaiveDate, to: NaiveDate) -> String {
    let mut text = format!(
        "{} ({}), {from} to {to}:\n",
        calendar.name, calendar.time_zone
    );
    let mut total = TimeDelta::zero();
    let mut date = from;
    while date <= to {
        let day = calendar.day(date);
        let hm = |at| calendar.local(at).format("%H:%M").to_string();
        let windows: Vec<String> = day
            .stretches
            .iter()
            .map(|(start, end)| {
                total += *end - *start;
                // A window that ends at midnight ends the day: 24:00.
                let until = if calendar.local(*end).date_naive() > date {
                    "24:00".to_owned()
                } else {
                    hm(*end)
                };
                format!("{}-{until}", hm(*start))
            })
            .collect();
        let open = if windows.is_empty() {
            "closed".to_owned()
        } else {
            windows.join(", ")
        };
        let _ = write!(text, "  {}  {open}", date.format("%a %Y-%m-%d"));
        for closure in &day.closures {
            if closure.closed.is_empty() {
                let _ = write!(text, "  [holiday: {}]", closure.name);
            } else {
                let hours: Vec<String> = closure.closed.iter().map(ToString::to_string).collect();
                let _ = write!(text, "  [{}: closed {}]", closure.name, hours.join(", "));
            }
        }
        text.push('\n');
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    let _ = writeln!(text, "working time in all: {}", hours(total));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::policy_set;

    #[test]
    fn each_day_shows_its_windows_and_holidays_in_local_time() {
        let set = policy_set(concat!(
            "calendars:\n",
            "  office:\n",
            "    time_zone: Europe/Berlin\n",
            "    hours:\n",
            "      mon: [\"09:00-12:30\", \"13:30-17:00\"]\n",
            "      tue: [\"09:00-17:00\"]\n",
            "      sun: [\"00:00-24:00\"]\n",
            "    holidays:\n",
            "      - { date: \"2026-10-27\", closed: [\"12:00-24:00\"], name: Offsite }\n",
            "      - { yearly: \"10-26\", name: Founders' Day }\n",
        ));
        let date = |d| NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
        let text = render(&set.calendars["office"], date(25), date(28));
        assert_eq!(
            text,
            concat!(
                "office (Europe/Berlin), 2026-10-25 to 2026-10-28:\n",
                // The autumn change: a day open around the clock has 25 h.
                "  Sun 2026-10-25  00:00-24:00\n",
                "  Mon 2026-10-26  closed  [holiday: Founders' Day]\n",
                "  Tue 2026-10-27  09:00-12:00  [Offsite: closed 12:00-24:00]\n",
                "  Wed 2026-10-28  closed\n",
                "working time in all: 28h\n",
            )
        );
    }
}
