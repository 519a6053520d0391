use std::path::Path;

use super::*;
use crate::policy::file;

/// Validates one file's text: the policy set, or the error messages.
fn validated(yaml: &str) -> Result<PolicySet, Vec<String>> {
    let path = Path::new("p.yml");
    let content = file::parse(path, yaml).map_err(|e| vec![e.to_string()])?;
    validate(vec![ParsedFile {
        path: Arc::new(path.to_owned()),
        content,
    }])
    .map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

const POLICY: &str = "policies:\n  - name: triage\n    match: { labels_any: [\"type::bug\"] }\n    clock: { target: 2h, calendar: office }\n";

#[test]
fn a_calendar_reads_into_windows_closures_and_its_zone() {
    let set = validated(&format!(
        "{}{POLICY}",
        concat!(
            "calendars:\n",
            "  office:\n",
            "    time_zone: Europe/Berlin\n",
            "    hours:\n",
            "      mon: [\"09:00-12:30\", \"13:30-18:00\"]\n",
            "      fri: [\"09:00-15:00\"]\n",
            "    holidays:\n",
            "      - { yearly: \"12-25\", name: Christmas Day }\n",
            "      - { date: \"2026-12-31\", closed: [\"13:00-24:00\"] }\n",
        )
    ))
    .unwrap();
    let calendar = &set.calendars["office"];
    assert_eq!(calendar.time_zone, chrono_tz::Europe::Berlin);
    assert_eq!(calendar.week[0].len(), 2);
    assert_eq!(calendar.week[4][0].to_string(), "09:00-15:00");
    assert!(calendar.week[1].is_empty());
    assert_eq!(calendar.closures.len(), 2);
    assert_eq!(calendar.closures[0].name, "Christmas Day");
    let clock = &set.policies[0].clock;
    assert_eq!(clock.calendar.as_deref(), Some(&**calendar));
    // Times are shown in the calendar's zone unless the clock says.
    assert_eq!(clock.time_zone, chrono_tz::Europe::Berlin);
}

#[test]
fn every_calendar_mistake_is_reported_at_its_line() {
    let found = validated(concat!(
        "calendars:\n",                                                      // 1
        "  office:\n",                                                       // 2
        "    time_zone: Mars/Olympus\n",                                     // 3
        "    hours:\n",                                                      // 4
        "      mon: [\"9-17\"]\n",                                           // 5
        "      tue: [\"09:00-13:00\", \"12:00-18:00\"]\n",                   // 6
        "      wed: [\"18:00-09:00\"]\n",                                    // 7
        "    holidays:\n",                                                   // 8
        "      - { date: \"2026-02-30\" }\n",                                // 9
        "      - { yearly: \"13-01\" }\n",                                   // 10
        "      - { name: both, date: \"2026-12-24\", yearly: \"12-24\" }\n", // 11
        "  never:\n",                                                        // 12
        "    time_zone: UTC\n",                                              // 13
        "    hours: {}\n",                                                   // 14
        "policies:\n",                                                       // 15
        "  - name: triage\n",                                                // 16
        "    match: { labels_any: [\"type::bug\"] }\n",                      // 17
        "    clock: { target: 2h, calendar: ofice }\n",                      // 18
    ))
    .unwrap_err();
    let expected = [
        (
            "p.yml:3:",
            "calendars.office.time_zone",
            "not an IANA time zone",
        ),
        (
            "p.yml:5:",
            "calendars.office.hours.mon",
            "not a window like `09:00-17:00`",
        ),
        ("p.yml:6:", "calendars.office.hours.tue", "overlap"),
        (
            "p.yml:7:",
            "calendars.office.hours.wed",
            "ends before it starts",
        ),
        (
            "p.yml:9:",
            "calendars.office.holidays[0].date",
            "not a date",
        ),
        (
            "p.yml:10:",
            "calendars.office.holidays[1].yearly",
            "not a yearly date",
        ),
        ("p.yml:11:", "calendars.office.holidays[2]", "give one of"),
        ("p.yml:14:", "calendars.never.hours", "opens on no day"),
        (
            "p.yml:18:",
            "policies[triage].clock.calendar",
            "no calendar named `ofice`",
        ),
    ];
    for (at, field, says) in expected {
        assert!(
            found
                .iter()
                .any(|e| e.starts_with(at) && e.contains(field) && e.contains(says)),
            "no {at} {field} {says}: {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn a_clock_naming_an_invalid_calendar_is_not_told_it_does_not_exist() {
    let found = validated(&format!(
        "calendars:\n  office:\n    time_zone: Nowhere/Else\n    hours: {{ mon: [\"09:00-17:00\"] }}\n{POLICY}"
    ))
    .unwrap_err();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("time_zone"), "{found:#?}");
}

#[test]
fn quiet_hours_name_a_calendar_and_a_gated_breach_of_a_wall_clock_is_warned_of() {
    let yaml = |during: &str| {
        format!(
            "channels:\n  alerts: {{ slack_channel: \"#alerts\" }}\ncalendars:\n  office:\n    time_zone: UTC\n    hours: {{ mon: [\"09:00-17:00\"] }}\npolicies:\n  - name: p\n    match: {{ labels_any: [x] }}\n    clock: {{ target: 24h }}\n    escalation:\n      - on: breach\n        during: {during}\n        slack: {{ channel: alerts }}\n"
        )
    };
    let set = validated(&yaml("office")).unwrap();
    assert!(set.policies[0].steps[0].during.is_some());
    assert_eq!(set.warnings.len(), 1);
    let warning = set.warnings[0].to_string();
    assert!(warning.starts_with("p.yml:12:"), "{warning}");
    assert!(
        warning.contains("a breach at night is said only in the morning"),
        "{warning}"
    );
    let found = validated(&yaml("ofice")).unwrap_err();
    assert!(
        found[0].contains("`policies[p].escalation[0].during`: no calendar named `ofice`"),
        "{found:?}"
    );
}
