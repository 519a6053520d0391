//! The audit's reports of real-shaped histories: the table, `--now`, JUnit, and exit 2 on a bad token or an unknown project.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_reports_every_clock_of_real_shaped_histories() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab, now());
    let now = now().to_rfc3339();
    let output = audit(
        &fake,
        &["--project", PROJECT, "--now", &now, "--format", "json"],
        fake_gitlab::TOKEN,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a breach fails the audit: {stderr}"
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let clocks: Vec<Clock> = report["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["issue"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["level"].as_str().unwrap().to_owned(),
                c["remaining_seconds"].as_i64(),
                c["overdue_seconds"].as_i64(),
            )
        })
        .collect();
    let hours = |h: i64| Some(h * 3600);
    let expected = vec![
        ("acme/backend#3", "breached", "breach", None, hours(6)),
        ("acme/backend#7", "missed", "breach", None, hours(1)),
        ("acme/backend#2", "running", "warning", hours(4), None),
        ("acme/backend#6", "running", "ok", hours(12), None),
        ("acme/backend#4", "running", "ok", hours(14), None),
        ("acme/backend#1", "running", "ok", hours(22), None),
        ("acme/backend#5", "paused", "ok", hours(22), None),
    ];
    let expected: Vec<Clock> = expected
        .into_iter()
        .map(|(i, s, l, r, o)| (i.to_owned(), s.to_owned(), l.to_owned(), r, o))
        .collect();
    assert_eq!(clocks, expected, "{report:#}");
    // #9 (low priority, updated 5 hours ago) is read, as every issue
    // updated within the window is, and has no clock.
    assert_eq!(report["summary"]["issues_read"], 8);

    // Label filters did the finding; the one listing without them is of
    // the issues updated within the window.
    let listings: Vec<String> = fake
        .gitlab
        .requests()
        .into_iter()
        .filter(|r| r.contains("/issues?"))
        .collect();
    assert!(!listings.is_empty());
    for listing in &listings {
        assert!(
            listing.contains("labels=")
                || listing.contains("issue_type=incident")
                || listing.contains("updated_after="),
            "unfiltered listing: {listing}"
        );
    }
}

// The binary runs while the fake GitLab serves from another thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn now_makes_reports_reproducible_and_junit_is_valid() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab, now());
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("labelwarden.xml");
    let markdown = dir.path().join("summary.md");
    let now = now().to_rfc3339();
    let args = [
        "--project",
        PROJECT,
        "--now",
        &now,
        "--format",
        "junit",
        "--output",
        junit.to_str().unwrap(),
        "--output",
        markdown.to_str().unwrap(),
        "--format",
        "markdown",
        "--format",
        "table",
        "--fail-on",
        "never",
    ];
    let first = audit(&fake, &args, fake_gitlab::TOKEN);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first_files = (
        std::fs::read_to_string(&junit).unwrap(),
        std::fs::read_to_string(&markdown).unwrap(),
    );
    let second = audit(&fake, &args, fake_gitlab::TOKEN);
    assert_eq!(first.stdout, second.stdout, "the same table twice");
    assert_eq!(
        first_files,
        (
            std::fs::read_to_string(&junit).unwrap(),
            std::fs::read_to_string(&markdown).unwrap()
        ),
        "the same files twice"
    );

    let table = String::from_utf8(first.stdout).unwrap();
    // `-- --nocapture` shows it (the book's example).
    println!("{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("BREACH   acme/backend#3"),
        "{table}"
    );
    // Each policy's record: #7 closed an hour late, nothing else stopped.
    assert!(
        table
            .contains("critical-bug-24h  7       0    1       0%       1d 1h / 1d 1h / 1d 1h  -\n"),
        "{table}"
    );
    assert!(
        first_files
            .1
            .contains("| `critical-bug-24h` | 7 | 0 | 1 | 0% | 1d 1h / 1d 1h / 1d 1h | - |"),
        "{}",
        first_files.1
    );

    let report =
        quick_junit::Report::deserialize_from_str(&first_files.0).expect("valid JUnit XML");
    let suite = report
        .test_suites
        .iter()
        .find(|s| s.name.as_str() == "critical-bug-24h")
        .expect("a suite per policy");
    assert_eq!(suite.test_cases.len(), 7);
    let failing: Vec<&str> = suite
        .test_cases
        .iter()
        .filter(|c| !matches!(c.status, quick_junit::TestCaseStatus::Success { .. }))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failing,
        vec!["acme/backend#3 Bug 3", "acme/backend#7 Bug 7"]
    );
    assert!(
        first_files.1.contains("**2 breached**"),
        "{}",
        first_files.1
    );
}

// The binary runs while the fake GitLab serves from another thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_or_an_unknown_project_is_a_clear_error_with_exit_2() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab, now());
    let wrong = audit(&fake, &["--project", PROJECT], "glpat-wrong");
    assert_eq!(wrong.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("GitLab refused the token (401)") && stderr.contains("GITLAB_TOKEN"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("glpat-wrong"),
        "the token is never shown: {stderr}"
    );

    let missing = audit(&fake, &["--project", "acme/nope"], fake_gitlab::TOKEN);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("project acme/nope not found (404)"),
        "{stderr}"
    );
}
