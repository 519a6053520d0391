//! `labelwarden check` and `schema` as a user runs them: the real binary on
//! the shipped policies and on a folder of broken ones.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn labelwarden(args: &[&str]) -> Output {
    common::labelwarden_in_repo(args)
}

use common::text;

#[test]
fn shipped_policies_are_valid_and_each_is_summarised() {
    let output = labelwarden(&["check"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    for name in [
        "critical-bug-24h",
        "outage",
        "security-incident",
        "bug-triage-48h",
        "critical-bug-user-notice",
        "high-bug-pickup-1bd",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{stdout}"
        );
    }
    assert!(stdout.contains(
        "critical-bug-24h          priority::highest | urgency::highest -> 1d from match until closed"
    ));
    assert!(
        stdout.contains("high-bug-pickup-1bd       type::bug & priority::high -> 8h of office-hours working time from match until labelled workflow::*;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("calendar office-hours  Europe/Berlin: 40h working a week, 5 holidays"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(
            "6 policies, 2 rules, 4 channels, 3 people groups, 1 on-call rotation, 1 calendar: valid\n"
        ),
        "{stdout}"
    );
}

#[test]
fn broken_policies_get_every_error_with_file_line_and_field_and_exit_2() {
    let output = labelwarden(&["check", "--policies", "tests/fixtures/broken-policies"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty());
    let dir = Path::new("tests/fixtures/broken-policies");
    let expected = [
        (dir.join("a.yml"), 3, "`channels.bad.slack_channel`"),
        (dir.join("a.yml"), 5, "`people.oncall`"),
        (dir.join("a.yml"), 9, "`policies[p1].clock.target`"),
        (dir.join("a.yml"), 9, "`policies[p1].clock.time_zone`"),
        (
            dir.join("a.yml"),
            12,
            "`policies[p1].escalation[0].slack.channel`",
        ),
        (
            dir.join("a.yml"),
            12,
            "`policies[p1].escalation[0].slack.mention`",
        ),
        (
            dir.join("a.yml"),
            14,
            "`policies[p1].escalation[1].slack.text`",
        ),
        (dir.join("a.yml"), 15, "`policies[p1].name`"),
        // The duplicate is checked in full: its own mistake shows at once.
        (
            dir.join("a.yml"),
            16,
            "`policies[p1].match`: matches every issue",
        ),
        (dir.join("b.yml"), 4, "unknown field `stop`"),
        (dir.join("c.yml"), 6, "unknown trigger `sometime`"),
        (
            dir.join("d.yml"),
            6,
            "`policies[p4].escalation[0].on.before_deadline`: 2h is not shorter than the target (1h)",
        ),
    ];
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), expected.len(), "{stderr}");
    for (line, (file, number, what)) in errors.iter().zip(&expected) {
        let place = format!("error: {}:{number}:", file.display());
        assert!(line.starts_with(&place), "expected {place} in {line}");
        assert!(line.contains(what), "expected {what} in {line}");
    }
    assert!(
        stderr.ends_with("tests/fixtures/broken-policies invalid: 12 errors\n"),
        "{stderr}"
    );
}

#[test]
fn a_missing_folder_is_a_clear_error() {
    let output = labelwarden(&["check", "--policies", "no/such/folder"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no/such/folder: cannot read the policy folder"),
        "{stderr}"
    );
}

#[test]
fn the_policies_folder_can_come_from_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .arg("check")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("LABELWARDEN_POLICIES", "tests/fixtures/broken-policies")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn schema_describes_the_file_format() {
    let output = labelwarden(&["schema"]);
    assert_eq!(output.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("schema is JSON");
    assert_eq!(schema["title"], "labelwarden policy file");
    for key in ["channels", "people", "policies"] {
        assert!(
            schema["properties"][key].is_object(),
            "no `{key}` in schema"
        );
    }
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys are refused"
    );
    let defs = schema["$defs"].as_object().expect("definitions");
    let clock = &defs["ClockEntry"]["properties"];
    assert!(clock["target"].is_object() && clock["pauses_while_labeled"].is_object());
}

#[test]
fn the_committed_schema_matches_the_format() {
    let output = labelwarden(&["schema"]);
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("labelwarden.schema.json"),
    )
    .expect("labelwarden.schema.json is committed for editors");
    assert_eq!(
        text(&output.stdout),
        committed,
        "labelwarden.schema.json is stale: run `cargo run -- schema > labelwarden.schema.json`"
    );
}

#[test]
fn six_mistakes_are_all_reported_at_their_lines_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policies.yml"),
        concat!(
            "channels:\n",
            "  alerts: { slack_channel: \"#alerts\" }\n",
            "policies:\n",
            "  - name: critical\n",
            "    match: { labels_any: [\"p1\"] }\n",
            "    clock: { target: 24h }\n",
            "    colour: red\n",
            "    escalation:\n",
            "      - on: { before_deadline: 48h }\n",
            "        slack: { channel: alerts, mention: [nobody-group] }\n",
            "  - name: critical\n",
            "    match: { labels_any: [\"p2\"] }\n",
            "    clock: { target: 24 hours please }\n",
            "    escalation:\n",
            "      - on: start\n",
            "        slack: { channel: alertz }\n",
        ),
    )
    .unwrap();
    let output = labelwarden(&["check", "--policies", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    let at = |line: u32| format!("policies.yml:{line}:");
    for (line, says) in [
        (7, "unknown field `colour`"),
        (9, "is not shorter than the target"),
        (10, "no group named `nobody-group`"),
        (11, "a policy with this name is already defined"),
        (13, "`24 hours please` is not a duration"),
        (16, "no channel named `alertz`"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&at(line)) && l.contains(says)),
            "line {line}: {says}\n{stderr}"
        );
    }
    assert!(stderr.contains("invalid: 6 errors"), "{stderr}");
}

#[test]
fn the_committed_test_schema_matches_the_test_format() {
    let output = labelwarden(&["schema", "--tests"]);
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("labelwarden-tests.schema.json"),
    )
    .expect("labelwarden-tests.schema.json is committed for editors");
    assert_eq!(
        text(&output.stdout),
        committed,
        "labelwarden-tests.schema.json is stale: run `cargo run -- schema --tests > labelwarden-tests.schema.json`"
    );
}

/// A calendar reading its holidays from an iCalendar file beside it.
const ICS_POLICY: &str = r##"
channels:
  alerts: { slack_channel: "#alerts" }
calendars:
  office:
    time_zone: Europe/Berlin
    hours: { mon: ["09:00-17:00"], tue: ["09:00-17:00"] }
    holidays_ics: holidays/berlin.ics
policies:
  - name: triage
    match: { labels_any: ["type::bug"] }
    clock: { target: 8h, calendar: office }
"##;

#[test]
fn a_calendar_reads_its_holidays_from_an_ics_file_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("calendar.yml"), ICS_POLICY).unwrap();
    std::fs::create_dir(dir.path().join("holidays")).unwrap();
    std::fs::write(
        dir.path().join("holidays/berlin.ics"),
        concat!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//example//holidays//EN\r\n",
            "BEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Christmas\r\n",
            "DTSTART;VALUE=DATE:20261225\r\nDTEND;VALUE=DATE:20261227\r\nEND:VEVENT\r\n",
            "END:VCALENDAR\r\n",
        ),
    )
    .unwrap();
    let policies = dir.path().to_str().unwrap();
    let output = labelwarden(&["check", "--policies", policies]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout.contains("calendar office  Europe/Berlin: 16h working a week, 2 holidays"),
        "{stdout}"
    );
    let shown = labelwarden(&[
        "calendar",
        "office",
        "--policies",
        policies,
        "--from",
        "2026-12-21",
        "--to",
        "2026-12-29",
    ]);
    let shown = text(&shown.stdout);
    assert!(shown.contains("  Mon 2026-12-28  09:00-17:00\n"), "{shown}");
    assert!(
        shown.contains("  Fri 2026-12-25  closed  [holiday: Christmas]\n"),
        "{shown}"
    );
    assert!(shown.contains("working time in all: 32h\n"), "{shown}");

    // The file gone: the error names the key's line, and `check` fails.
    std::fs::remove_file(dir.path().join("holidays/berlin.ics")).unwrap();
    let output = labelwarden(&["check", "--policies", policies]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("calendar.yml:8:19: `calendars.office.holidays_ics`: `holidays/berlin.ics` cannot be read: no file"),
        "{stderr}"
    );
}

#[test]
fn check_warns_of_a_breach_held_for_quiet_hours_on_a_clock_that_never_stops() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("quiet.yml"),
        concat!(
            "channels:\n  alerts: { slack_channel: \"#alerts\" }\n",
            "calendars:\n  office:\n    time_zone: UTC\n    hours: { mon: [\"09:00-17:00\"] }\n",
            "policies:\n  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n",
            "    clock: { target: 24h }\n    escalation:\n      - on: breach\n",
            "        during: office\n        slack: { channel: alerts }\n",
        ),
    )
    .unwrap();
    let output = labelwarden(&["check", "--policies", dir.path().to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a warning, not an error: {stderr}"
    );
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("quiet.yml:12:")
            && stderr.contains("`policies[critical].escalation[0].during`")
            && stderr.contains("a breach at night is said only in the morning"),
        "{stderr}"
    );
}
