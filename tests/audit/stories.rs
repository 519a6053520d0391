//! An issue's story as the audit reads it: a move, a duplicate, an acknowledgement `serve` wrote, `explain`, and the watchdog.

use super::*;

/// `labelwarden explain ARGS` with the shipped policies, against the fake.
fn explain(fake: &Running, args: &[&str]) -> Output {
    let dir = env!("CARGO_MANIFEST_DIR");
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .arg("explain")
        .args(args)
        .args(["--policies", &format!("{dir}/policies")])
        .env("GITLAB_URL", &fake.url)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .output()
        .unwrap()
}

/// Each clock a JSON audit of `scope` as of `now()` reports: issue,
/// status, seconds overdue.
fn statuses(fake: &Running, scope: &[&str]) -> Vec<(String, String, Option<i64>)> {
    let now = now().to_rfc3339();
    let mut args = scope.to_vec();
    args.extend(["--now", &now, "--format", "json"]);
    let output = audit(fake, &args, fake_gitlab::TOKEN);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)));
    report["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["issue"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["overdue_seconds"].as_i64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_issue_is_one_clock_and_no_resolution() {
    let fake = FakeGitLab::start().await;
    // Labelled 30 hours ago, moved to acme/other 2 hours ago.
    fake.gitlab
        .add(FakeIssue::new(PROJECT, 5, hours_ago(31)).add_label(hours_ago(30), HIGHEST));
    fake.gitlab
        .move_issue(PROJECT, 5, "acme/other", 12, hours_ago(2));
    // Both projects: one clock, on the new issue, from the first label.
    assert_eq!(
        statuses(&fake, &["--group", "acme"]),
        vec![("acme/other#12".into(), "breached".into(), Some(6 * 3600))]
    );
    // The old project alone: the move is no resolution; it runs on.
    assert_eq!(
        statuses(&fake, &["--project", PROJECT]),
        vec![("acme/backend#5".into(), "breached".into(), Some(6 * 3600))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_withdrawn_and_its_canonical_counts_from_the_earlier_start() {
    let fake = FakeGitLab::start().await;
    // #31 labelled 10 hours ago; #30, the same bug, 30 hours ago, closed
    // as a duplicate of #31 9 hours ago.
    let canonical = FakeIssue::new(PROJECT, 31, hours_ago(11)).add_label(hours_ago(10), HIGHEST);
    fake.gitlab.add(
        FakeIssue::new(PROJECT, 30, hours_ago(31))
            .add_label(hours_ago(30), HIGHEST)
            .closed_as_duplicate_of(&canonical, hours_ago(9)),
    );
    fake.gitlab.add(canonical);
    assert_eq!(
        statuses(&fake, &["--project", PROJECT]),
        vec![
            ("acme/backend#31".into(), "breached".into(), Some(6 * 3600)),
            ("acme/backend#30".into(), "withdrawn".into(), None),
        ],
        "the duplicate is no resolution; the bug's clock runs from its first report"
    );
    // `explain` reads it the same way.
    let output = explain(&fake, &["acme/backend#30", "--now", &now().to_rfc3339()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("status: withdrawn"), "{text}");
    assert!(
        !text.contains("status: met") && !text.contains("status: missed"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_serve_wrote_holds_back_the_escalation_and_is_reported() {
    use labelwarden::gitlab::from_slack::{Said, SlackMarker};
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    // Both labelled two hours ago, so the shipped policy's
    // `after_start: 30m, unless: acknowledged` step is due on both; on #1
    // somebody put eyes on the alert ten minutes in, and serve noted it.
    let labelled = DateTime::from_timestamp(now.timestamp() - 2 * 3600, 0).unwrap();
    let acknowledged = SlackMarker {
        said: Said::Acknowledged,
        policy: labelwarden::policy::PolicyName("critical-bug-24h".into()),
        cycle: 1,
        thread: labelwarden::notice::Thread {
            channel_id: "C0PRODALERTS".into(),
            ts: "1764000000.000100".into(),
        },
        by: "U0REPLACEME04".into(),
        reply: None,
        at: Some(labelled + TimeDelta::minutes(10)),
    };
    for iid in [1, 2] {
        let mut issue = FakeIssue::new(PROJECT, iid, labelled).add_label(labelled, HIGHEST);
        if iid == 1 {
            issue = issue.note(
                labelled + TimeDelta::minutes(10),
                &format!(
                    "**Acknowledged in Slack** by @replace-me-responder-1.\n\n{}",
                    acknowledged.render()
                ),
            );
        }
        gitlab.gitlab.add(issue);
    }
    let slack = common::fake_slack::FakeSlack::start().await;
    let dry = notify(&gitlab, &slack.api_url, &["--dry-run"]);
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert_eq!(dry.status.code(), Some(0), "{stderr}");
    let escalations: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("after_start:30m:unless:acknowledged"))
        .collect();
    assert_eq!(
        escalations.len(),
        1,
        "only the unanswered one escalates: {stderr}"
    );
    assert!(escalations[0].contains("acme/backend#2"), "{stderr}");

    let report = audit(
        &gitlab,
        &[
            "--project",
            PROJECT,
            "--format",
            "json",
            "--acknowledgements",
            "--fail-on",
            "never",
        ],
        fake_gitlab::TOKEN,
    );
    assert_eq!(
        report.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let document: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let by_issue = |iid: &str| {
        document["clocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["issue"] == format!("acme/backend#{iid}"))
            .unwrap()
            .clone()
    };
    assert_eq!(by_issue("1")["acknowledged_by"], "U0REPLACEME04");
    assert_eq!(by_issue("2")["acknowledged_by"], serde_json::Value::Null);
    let policy = &document["policies"][0];
    assert_eq!(policy["policy"], "critical-bug-24h");
    assert_eq!(policy["time_to_acknowledge"]["median"], 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_tells_one_issue_s_story_under_every_policy() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab, now());
    let output = explain(&fake, &["acme/backend#5", "--now", &now().to_rfc3339()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    for expected in [
        "acme/backend#5: Bug 5",
        "labels: priority::highest, blocked::upstream",
        "critical-bug-24h (",
        "clock: cycle 1, started 2026-11-24 06:00 UTC, counted 2h of 1d, paused 1d 4h",
        "deadline: moves while the clock is paused",
        "status: paused, 22h left",
        "fired: nothing recorded on the issue",
        "due now, not yet carried out: start",
        "next: the pause runs out (max_pause) and the clock runs again at 2026-11-27 08:00 UTC",
        "bug-triage-48h (",
        "does not match now: needs the label type::bug",
        "outage (",
        "does not match now: type is issue, needs incident",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }

    let missing = explain(&fake, &["acme/backend#404"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("issue acme/backend#404 not found (404)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_reports_a_disabled_webhook_and_clocks_serve_never_noted() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab, now());
    // #8 was noted by serve at its start: not lagging.
    let marker = "<!-- labelwarden:fired policy=critical-bug-24h step=start cycle=1 occurrence=1 channel=alerts -->";
    fake.gitlab.add(
        FakeIssue::new(PROJECT, 8, hours_ago(3))
            .add_label(hours_ago(3), HIGHEST)
            .note(
                hours_ago(3),
                &format!("**labelwarden**: SLA clock started\n\n{marker}"),
            ),
    );
    fake.gitlab.add_hook(
        PROJECT,
        "https://labelwarden.example.com/webhooks/gitlab",
        "temporarily_disabled",
        Some(now() + TimeDelta::hours(1)),
    );
    let output = audit(
        &fake,
        &[
            "--project",
            PROJECT,
            "--now",
            &now().to_rfc3339(),
            "--format",
            "json",
            "--watchdog",
            "--fail-on",
            "warning",
        ],
        fake_gitlab::TOKEN,
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let findings: Vec<(String, String, String)> = report["watchdog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_owned(),
                f["subject"].as_str().unwrap().to_owned(),
                f["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(findings[0].0, "webhook");
    assert!(
        findings[0].2.contains(
            "temporarily disabled by GitLab after failed deliveries, until 2026-11-25 13:00 UTC"
        ),
        "{findings:#?}"
    );
    let lagging: Vec<&str> = findings
        .iter()
        .filter(|f| f.0 == "lag")
        .map(|f| f.1.as_str())
        .collect();
    assert_eq!(
        lagging,
        vec![
            "acme/backend#1",
            "acme/backend#2",
            "acme/backend#3",
            "acme/backend#4",
            "acme/backend#5",
            "acme/backend#6"
        ],
        "every live clock without a note, not #8 (noted) nor #7 (closed)"
    );
    assert!(findings.iter().any(|f| {
        f.2.contains("critical-bug-24h's clock started 2026-11-25 10:00 UTC (2h ago)")
    }));
}
