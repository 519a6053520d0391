use chrono::{TimeDelta, TimeZone};

use super::*;

fn row(issue: &str, level: Level, status: SlaStatus, confidential: bool) -> Row {
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    Row {
        issue: issue.to_owned(),
        title: "Checkout | broken".to_owned(),
        url: format!("https://gitlab.example.com/{issue}"),
        confidential,
        assignees: vec!["jdoe".into()],
        policy: "critical".to_owned(),
        status,
        level,
        target: TimeDelta::hours(24),
        started_at: Some(now - TimeDelta::hours(26)),
        deadline: Some(now - TimeDelta::hours(2)),
        cycle: 1,
        acknowledged: None,
        calendar: None,
    }
}

fn rows() -> Vec<Row> {
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    vec![
        row(
            "g/p#1",
            Level::Breach,
            SlaStatus::Breached {
                deadline: now - TimeDelta::hours(2),
                overdue: TimeDelta::hours(2),
            },
            false,
        ),
        row(
            "g/p#2",
            Level::Ok,
            SlaStatus::Running {
                deadline: now + TimeDelta::hours(20),
                remaining: TimeDelta::hours(20),
            },
            true,
        ),
    ]
}

fn context() -> Context<'static> {
    Context {
        watchdog: None,
        scope: "project g/p",
        now: Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap(),
        issues_read: 5,
    }
}

#[test]
fn the_table_lines_up_and_colours_only_on_request() {
    let plain = render(Format::Table, &rows(), &context(), false);
    assert!(!plain.contains('\x1b'));
    let lines: Vec<&str> = plain.lines().collect();
    assert!(
        lines[0].starts_with("LEVEL   ISSUE  POLICY    STATUS"),
        "{plain}"
    );
    assert!(
        lines[1].starts_with("BREACH  g/p#1  critical  2h overdue"),
        "{plain}"
    );
    assert!(lines[2].ends_with(CONFIDENTIAL), "{plain}");
    assert!(plain.contains(
        "2 clocks on 5 issues read from project g/p as of 2026-11-25 12:00 UTC: 1 breached"
    ));
    let coloured = render(Format::Table, &rows(), &context(), true);
    assert!(coloured.contains("\x1b[31mBREACH"));
}

#[test]
fn json_is_stable_and_hides_confidential_titles() {
    let text = render(Format::Json, &rows(), &context(), false);
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["schema_version"], 1);
    assert_eq!(document["summary"]["breach"], 1);
    let first = &document["clocks"][0];
    assert_eq!(first["status"], "breached");
    assert_eq!(first["level"], "breach");
    assert_eq!(first["overdue_seconds"], 7200);
    assert_eq!(first["deadline"], "2026-11-25T10:00:00Z");
    assert_eq!(document["clocks"][1]["title"], CONFIDENTIAL);
}

#[test]
fn columns_line_up_by_the_width_people_see() {
    let lines = aligned(
        &["ASSIGNEES", "TITLE"],
        &[
            ["山田太郎".to_owned(), "Login fails".to_owned()],
            ["jdoe".to_owned(), "Checkout is down".to_owned()],
        ],
    );
    assert_eq!(
        lines,
        [
            "ASSIGNEES  TITLE",
            "山田太郎   Login fails",
            "jdoe       Checkout is down",
        ],
        "a wide character takes two columns"
    );
}

#[test]
fn junit_fails_breaches_with_their_story() {
    let text = render(Format::Junit, &rows(), &context(), false);
    assert!(text.starts_with("<?xml"), "{text}");
    assert!(
        text.contains("<testsuite name=\"critical\" tests=\"2\""),
        "{text}"
    );
    assert!(text.contains("failures=\"1\""), "{text}");
    assert!(
        text.contains("<failure message=\"g/p#1: breached, 2h overdue\" type=\"sla_breach\">"),
        "{text}"
    );
    assert!(text.contains("deadline 2026-11-25 10:00 UTC"), "{text}");
    assert!(
        !text.contains("g/p#2 Checkout"),
        "confidential title: {text}"
    );
}

#[test]
fn watchdog_findings_show_in_every_format() {
    let findings = vec![Finding {
        check: "webhook",
        subject: "project g/p".into(),
        message: "webhook 7 was disabled by GitLab".into(),
    }];
    let context = Context {
        watchdog: Some(&findings),
        ..context()
    };
    for format in [Format::Table, Format::Json, Format::Junit, Format::Markdown] {
        let text = render(format, &rows(), &context, false);
        assert!(
            text.contains("webhook 7 was disabled by GitLab"),
            "{format:?}: {text}"
        );
    }
    let junit = render(Format::Junit, &[], &context, false);
    assert!(
        junit.contains("<testsuite name=\"labelwarden-watchdog\" tests=\"1\""),
        "{junit}"
    );
}

#[test]
fn markdown_lists_what_needs_attention() {
    let text = render(Format::Markdown, &rows(), &context(), false);
    assert!(text.contains("**1 breached**"));
    assert!(text.contains("| :red_circle: | [g/p#1](https://gitlab.example.com/g/p#1) Checkout \\| broken | `critical` | 2h overdue |"), "{text}");
    assert!(!text.contains("g/p#2"), "only what needs attention: {text}");
}

#[test]
fn a_clock_on_a_calendar_says_its_durations_are_working_time() {
    let mut on_calendar = row(
        "acme/app#9",
        Level::Ok,
        SlaStatus::Running {
            deadline: Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
            remaining: TimeDelta::hours(5),
        },
        false,
    );
    on_calendar.calendar = Some("office-hours".into());
    assert_eq!(when(&on_calendar), "5h left (working time)");
    assert!(
        story(&on_calendar).contains("resolve within 24h of working time (calendar office-hours)"),
        "{}",
        story(&on_calendar)
    );
    let json = json(&[on_calendar], &context());
    assert!(json.contains("\"calendar\": \"office-hours\""), "{json}");
}
