//! `labelwarden test` as a user runs it: the real binary on the shipped
//! policies and their tests, on a copy with a wrong expectation, and on
//! invalid test files.

mod common;

use std::path::Path;
use std::process::Output;

fn labelwarden(args: &[&str]) -> Output {
    common::labelwarden_in_repo(args)
}

use common::text;

/// A copy of the shipped policies and their tests, to break.
fn shipped_copy() -> tempfile::TempDir {
    common::shipped_policies_copy(str::to_owned)
}

fn edit(path: &Path, old: &str, new: &str) {
    let content = std::fs::read_to_string(path).unwrap();
    assert!(content.contains(old), "{old} not in {}", path.display());
    std::fs::write(path, content.replacen(old, new, 1)).unwrap();
}

#[test]
fn the_shipped_policies_pass_their_tests_with_a_line_per_case() {
    let output = labelwarden(&["test"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    for rule in [
        "  ok    a critical bug is alerted at once and must be resolved within 24 hours",
        "  ok    nobody acknowledges within 30 minutes, so the on-call secondary is tagged",
        "  ok    a breach is labelled missed::SLA, broadcast, and reminded every 4 hours",
        "  ok    waiting on an upstream fix holds the clock, for at most 3 days",
        "  ok    a breach is not hidden by removing the priority label, and the thread hears of it",
        "  ok    a confidential critical bug's title stays out of a channel that is not private",
        "  ok    a critical bug users feel is announced to them, and so is its fix",
        "  ok    users never hear of a confidential critical bug",
        "  ok    a highest issue nobody owns after 15 minutes gets one comment",
        "  ok    a bug with a priority but no severity gets an internal reminder after an hour",
    ] {
        assert!(stdout.contains(rule), "{rule} missing from:\n{stdout}");
    }
    assert!(
        stdout.ends_with("\ntest result: ok. 26 passed; 0 failed (26 cases in 4 files)\n"),
        "{stdout}"
    );
}

#[test]
fn a_wrong_expectation_fails_with_expected_and_actual_side_by_side() {
    let dir = shipped_copy();
    let tests = dir.path().join("tests/critical-bugs.yml");
    // The breach adds missed::SLA and tags the assignee too.
    edit(
        &tests,
        "            mentions: [critical-bug-contacts, \"@alice\"]\n            labels_added: [\"missed::SLA\"]",
        "            mentions: [critical-bug-contacts]\n            labels_added: [\"SLA::missed\"]",
    );
    // The warning comes 6 hours before the deadline, not 5.
    edit(&tests, "        remaining: 6h\n", "        remaining: 5h\n");
    let output = labelwarden(&["test", "--policies", dir.path().to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "  FAIL  a breach is labelled missed::SLA, broadcast, and reminded every 4 hours  ("
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("        at 24h (line 77): sent\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "breach at +1d → alerts tags [critical-bug-contacts] +labels [SLA::missed] +comment"
        ),
        "the expectation as written: {stdout}"
    );
    assert!(
        stdout.contains("breach (critical-bug-24h) at +1d → alerts tags [critical-bug-contacts, @alice] +labels [missed::SLA] +comment"),
        "what was sent: {stdout}"
    );
    assert!(
        stdout.contains("- row 1: adds labels [missed::SLA], not [SLA::missed]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("        at 18h (line 58): remaining\n          expected  | actual\n          5h        | 6h\n"),
        "side by side: {stdout}"
    );
    assert!(
        stdout.ends_with("\ntest result: FAILED. 24 passed; 2 failed (26 cases in 4 files)\n"),
        "{stdout}"
    );
}

#[test]
fn junit_output_parses_and_carries_each_failure() {
    let dir = shipped_copy();
    edit(
        &dir.path().join("tests/incidents.yml"),
        "not_contains: [\"service::checkout\", \"incident-managers\"]",
        "not_contains: [\"Checkout is down\"]",
    );
    let junit = dir.path().join("policy-tests.xml");
    let output = labelwarden(&[
        "test",
        "--policies",
        dir.path().to_str().unwrap(),
        "--format",
        "junit",
        "--output",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("test result: FAILED. 25 passed; 1 failed"),
        "the text report still goes to stdout"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("valid JUnit XML");
    assert_eq!(report.tests, 26);
    assert_eq!(report.failures, 1);
    let failed: Vec<_> = report
        .test_suites
        .iter()
        .flat_map(|suite| suite.test_cases.iter().map(move |case| (suite, case)))
        .filter(|(_, case)| !matches!(case.status, quick_junit::TestCaseStatus::Success { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    let (suite, case) = failed[0];
    assert!(
        suite.name.as_str().ends_with("tests/incidents.yml"),
        "{:?}",
        suite.name
    );
    assert_eq!(
        case.name.as_str(),
        "an outage alerts the incident managers and tells users in plain words"
    );
    match &case.status {
        quick_junit::TestCaseStatus::NonSuccess { description, .. } => {
            let description = description.as_ref().expect("the failure's text").as_str();
            assert!(
                description.contains("the message contains \"Checkout is down\""),
                "{description}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_test_files_exit_2_with_every_error_at_its_line() {
    let dir = shipped_copy();
    std::fs::write(
        dir.path().join("tests/broken.yml"),
        concat!(
            "tests:\n",
            "  - name: names a policy that does not exist\n",
            "    policy: critical-bug-12h\n",
            "    issue: { labels: [\"priority::highest\"] }\n",
            "    history:\n",
            "      - { at: soon, close: true }\n",
            "    expect:\n",
            "      - at: 1h\n",
            "        status: late\n",
            "        sent:\n",
            "          - { step: breech, channel: alertz }\n",
            "        colour: red\n",
        ),
    )
    .unwrap();
    let output = labelwarden(&["test", "--policies", dir.path().to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let file = dir.path().join("tests/broken.yml");
    let file = file.display();
    for expected in [
        format!("error: {file}:3:13: `tests[0].policy`: no policy named `critical-bug-12h`"),
        format!(
            "error: {file}:6:15: `tests[0].history[0].at`: `soon` is neither a time after creation"
        ),
        format!("error: {file}:9:17: `tests[0].expect[0].status`: `late` is not a status"),
        format!(
            "error: {file}:11:21: `tests[0].expect[0].sent[0].step`: no step `breech` in any policy"
        ),
        format!(
            "error: {file}:11:38: `tests[0].expect[0].sent[0].channel`: no channel named `alertz`"
        ),
        format!("error: {file}:12:9: unknown field `colour`"),
    ] {
        assert!(stderr.contains(&expected), "{expected}\nnot in:\n{stderr}");
    }
    assert!(
        stderr.ends_with("policy tests invalid: 6 errors\n"),
        "{stderr}"
    );
}

#[test]
fn the_policy_loader_skips_the_tests_folder() {
    // `check` on the shipped folder reads policies only: the test files
    // beside them are no policy files with unknown keys.
    let output = labelwarden(&["check"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn a_rule_that_assigns_the_on_call_person_is_tested_like_any_step() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        concat!(
            "people:\n",
            "  gitlab_users: { ada: U0ADA00001, bo: U0BO000001 }\n",
            "  oncall:\n",
            "    rotation: [ada, bo]\n",
            "    hand_off: { day: monday, time: \"09:00\", time_zone: UTC }\n",
            "    since: 2026-01-05\n",
            "rules:\n",
            "  - name: needs-owner\n",
            "    match: { labels_any: [\"priority::highest\"], assignees: none }\n",
            "    after: 15m\n",
            "    actions: { assign: oncall.primary }\n",
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    // Created Monday 2026-01-05 09:00: ada's first week; bo's the next.
    let tests = dir.path().join("tests/rules.yml");
    std::fs::write(
        &tests,
        concat!(
            "tests:\n",
            "  - name: ada is on call and gets the issue\n",
            "    policy: needs-owner\n",
            "    issue: { labels: [\"priority::highest\"] }\n",
            "    expect:\n",
            "      - at: 15m\n",
            "        sent: [{ step: act, at: 15m, assigns: [\"@ada\"] }]\n",
            "      - at: 1d\n",
            "        status: not_matching\n",
            "        sent: []\n",
            "  - name: in bo's week, bo\n",
            "    policy: needs-owner\n",
            "    issue: { labels: [\"priority::highest\"], created_at: \"2026-01-12T10:00:00Z\" }\n",
            "    expect:\n",
            "      - at: 15m\n",
            "        sent: [{ step: act, assigns: [\"@bo\"] }]\n",
            "  - name: an owned issue is not assigned again\n",
            "    policy: needs-owner\n",
            "    issue: { labels: [\"priority::highest\"], assignees: [cy] }\n",
            "    expect:\n",
            "      - at: 1d\n",
            "        sent: []\n",
        ),
    )
    .unwrap();
    let policies = dir.path().to_str().unwrap();
    let output = labelwarden(&["test", "--policies", policies]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );

    // The wrong person is a failure that names both.
    edit(&tests, "assigns: [\"@bo\"]", "assigns: [\"@ada\"]");
    let output = labelwarden(&["test", "--policies", policies]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("assigns [@bo], not [@ada]"), "{stdout}");
}
