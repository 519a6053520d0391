//! `labelwarden audit` against a local fake GitLab that answers with the
//! documented shapes (`tests/common/fake_gitlab.rs`), with the shipped
//! policies and real-shaped histories, as of a fixed `--now`.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::fake_gitlab::{self, FakeGitLab, FakeIssue, Running};
use labelwarden::gitlab::GitLabError;
use labelwarden::gitlab::history::Scope;
use serde_json::Value;

const PROJECT: &str = "acme/backend";
const HIGHEST: &str = "priority::highest";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn hours_ago(hours: i64) -> DateTime<Utc> {
    now() - TimeDelta::hours(hours)
}

/// Issues with the histories the handbook's rules meet in practice, as of `now`.
fn seed(gitlab: &FakeGitLab, now: DateTime<Utc>) {
    let hours_ago = |hours: i64| now - TimeDelta::hours(hours);
    let issue = |iid, created_hours_ago| FakeIssue::new(PROJECT, iid, hours_ago(created_hours_ago));
    // Labelled 2 hours ago: 22 hours left.
    gitlab.add(issue(1, 2).add_label(hours_ago(2), HIGHEST).assign("jdoe"));
    // Created 3 days ago, labelled late (20 hours ago): 4 hours left, warned.
    gitlab.add(issue(2, 72).add_label(hours_ago(20), HIGHEST));
    // Labelled 30 hours ago and still open: 6 hours overdue.
    gitlab.add(
        issue(3, 31)
            .add_label(hours_ago(30), "urgency::highest")
            .assign("asmith"),
    );
    // Labelled, removed after 4 hours, labelled again 10 hours ago: a new
    // cycle with 14 hours left.
    gitlab.add(
        issue(4, 41)
            .add_label(hours_ago(40), HIGHEST)
            .remove_label(hours_ago(36), HIGHEST)
            .add_label(hours_ago(10), HIGHEST),
    );
    // Labelled 30 hours ago, waiting upstream since 2 hours later: paused.
    gitlab.add(
        issue(5, 30)
            .add_label(hours_ago(30), HIGHEST)
            .add_label(hours_ago(28), "blocked::upstream"),
    );
    // Labelled 20 hours ago, closed after 10, reopened 2 hours ago: 12 hours counted.
    gitlab.add(
        issue(6, 20)
            .add_label(hours_ago(20), HIGHEST)
            .close(hours_ago(10))
            .reopen(hours_ago(2)),
    );
    // Labelled 30 hours ago, closed 5 hours ago: missed by an hour.
    gitlab.add(
        issue(7, 30)
            .add_label(hours_ago(30), HIGHEST)
            .close(hours_ago(5)),
    );
    // Low priority: no policy, never even listed.
    gitlab.add(issue(9, 5).add_label(hours_ago(5), "priority::low"));
}

/// Issue, status, level, seconds left, seconds overdue.
type Clock = (String, String, String, Option<i64>, Option<i64>);

fn audit(fake: &Running, args: &[&str], token: &str) -> Output {
    let dir = env!("CARGO_MANIFEST_DIR");
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .arg("audit")
        .args(args)
        .args(["--policies", &format!("{dir}/policies")])
        .env("GITLAB_URL", &fake.url)
        .env("GITLAB_TOKEN", token)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

// The binary runs while the fake GitLab serves from another thread.
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
    // `-- --nocapture` shows it (the README's example).
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

fn shipped_policies() -> labelwarden::policy::PolicySet {
    labelwarden::policy::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .unwrap()
}

#[tokio::test]
async fn listings_follow_every_page_and_a_group_includes_its_subgroups() {
    let fake = FakeGitLab::start().await;
    for iid in 1..=230 {
        let project = if iid % 2 == 0 {
            "acme/backend"
        } else {
            "acme/platform/api"
        };
        fake.gitlab
            .add(FakeIssue::new(project, iid, hours_ago(3)).add_label(hours_ago(2), HIGHEST));
    }
    fake.gitlab
        .add(FakeIssue::new("other/thing", 1, hours_ago(3)).add_label(hours_ago(2), HIGHEST));
    let reader = fake.reader();
    let found = reader
        .candidates(
            &Scope::Group("acme".into()),
            &shipped_policies(),
            now(),
            TimeDelta::zero(),
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 230);
    let pages: Vec<String> = fake
        .gitlab
        .requests()
        .into_iter()
        .filter(|r| {
            r.contains("labels=priority%3A%3Ahighest") || r.contains("labels=priority::highest")
        })
        .collect();
    assert_eq!(pages.len(), 3, "100 + 100 + 30: {pages:#?}");
}

#[tokio::test]
async fn a_429_waits_for_retry_after_and_a_502_is_retried() {
    let fake = FakeGitLab::start().await;
    fake.gitlab
        .add(FakeIssue::new(PROJECT, 1, hours_ago(3)).add_label(hours_ago(2), HIGHEST));
    let reader = fake.reader();
    fake.gitlab.rate_limit(1, 1);
    let started = Instant::now();
    let found = reader
        .candidates(
            &Scope::Project(PROJECT.into()),
            &shipped_policies(),
            now(),
            TimeDelta::zero(),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    assert_eq!(found.len(), 1);

    fake.gitlab.fail(2);
    let issue = found.into_iter().next().unwrap();
    let fetched = reader.history(issue).await.expect("retried past two 502s");
    assert_eq!(fetched.issue.timeline().events().len(), 1);
}

#[tokio::test]
async fn an_unknown_group_says_so() {
    let fake = FakeGitLab::start().await;
    let error = fake
        .reader()
        .candidates(
            &Scope::Group("nope".into()),
            &shipped_policies(),
            now(),
            TimeDelta::zero(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, GitLabError::NotFound { .. }), "{error}");
    assert!(error.to_string().contains("group nope"), "{error}");
}

fn notify(gitlab: &Running, slack_api: &str, extra: &[&str]) -> Output {
    notify_project(gitlab, PROJECT, slack_api, extra)
}

/// The shipped policies, except that `alerts` takes up to 10 new alerts
/// at once before it groups them: the seeded issues keep a thread each.
fn policies_one_thread_each() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        common::shipped_policies_copy(|text| {
            let alerts = "slack_channel: \"#production-alerts\"\n";
            text.replace(alerts, &format!("{alerts}    group_after: 10\n"))
        })
    })
    .path()
}

fn notify_project(gitlab: &Running, project: &str, slack_api: &str, extra: &[&str]) -> Output {
    notify_with(
        gitlab,
        project,
        slack_api,
        policies_one_thread_each(),
        extra,
    )
}

fn notify_with(
    gitlab: &Running,
    project: &str,
    slack_api: &str,
    policies: &std::path::Path,
    extra: &[&str],
) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args([
            "audit",
            "--project",
            project,
            "--notify",
            "--fail-on",
            "never",
        ])
        .args(["--format", "json", "--policies"])
        .arg(policies)
        .args(extra)
        .env("GITLAB_URL", &gitlab.url)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .env("SLACK_BOT_TOKEN", common::fake_slack::TOKEN)
        .env("SLACK_API_URL", slack_api)
        .output()
        .unwrap()
}

fn writes(gitlab: &FakeGitLab) -> Vec<String> {
    gitlab
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST") || r.starts_with("PUT"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_run_twice_carries_out_each_step_once() {
    let gitlab = FakeGitLab::start().await;
    seed(&gitlab.gitlab, Utc::now());
    let slack = common::fake_slack::FakeSlack::start().await;

    let dry = notify(&gitlab, &slack.api_url, &["--dry-run"]);
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert_eq!(dry.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("would do: acme/backend#3 [critical-bug-24h]"),
        "{stderr}"
    );
    assert!(
        writes(&gitlab.gitlab).is_empty(),
        "a dry run writes nothing"
    );
    assert!(slack.slack.messages().is_empty());

    let first = notify(&gitlab, &slack.api_url, &[]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    // `-- --nocapture` shows what was done, step by step.
    println!("{stderr}");
    assert_eq!(first.status.code(), Some(0), "{stderr}");

    // Exactly the steps due on the seeded issues, each once: every live
    // clock's start and (nobody acknowledged within 30 minutes) its
    // on-call nudge; #2's 6-hour warning; #3's breach and its first
    // reminder; and for #3 (urgency::highest: users feel it) the notice
    // to users. Nothing for the closed #7 or the low-priority #9.
    const NUDGE: &str = "after_start:30m:unless:acknowledged";
    let mut expected: Vec<(u64, &str)> = Vec::new();
    for iid in 1..=6 {
        expected.extend([(iid, "start"), (iid, NUDGE)]);
    }
    expected.extend([
        (2, "before_deadline:6h"),
        (3, "breach"),
        (3, "every:4h:after:breach"),
        (3, "notify-users"),
    ]);
    expected.sort();
    let posted = slack.slack.messages();
    let mut in_slack: Vec<(u64, String)> = posted
        .iter()
        .map(|m| {
            // labelwarden's key: issue|policy|step|cycle|occurrence.
            let key = m.metadata["event_payload"]["key"]
                .as_str()
                .unwrap_or_default();
            let parts: Vec<&str> = key.split('|').collect();
            let iid: u64 = parts[0]
                .strip_prefix("acme/backend#")
                .unwrap()
                .parse()
                .unwrap();
            // #4 was unlabelled and labelled again: its second cycle.
            let cycle = if iid == 4 { "2" } else { "1" };
            let policy = if parts[2] == "notify-users" {
                "critical-bug-user-notice"
            } else {
                "critical-bug-24h"
            };
            assert_eq!((parts[1], parts[3]), (policy, cycle), "{key}");
            (iid, parts[2].to_owned())
        })
        .collect();
    in_slack.sort();
    let as_owned = |steps: &[(u64, &str)]| -> Vec<(u64, String)> {
        steps.iter().map(|(i, s)| (*i, (*s).to_owned())).collect()
    };
    assert_eq!(in_slack, as_owned(&expected), "one Slack message per step");

    // On GitLab: a comment for each start and for the breach, the breach
    // label on #3 alone, and one ledger note per issue naming every step
    // it carried out, created with the first step and edited with each
    // later one.
    use labelwarden::gitlab::markers::Marker;
    let written = writes(&gitlab.gitlab);
    for iid in 1..=6u64 {
        let issue = gitlab.gitlab.issue(PROJECT, iid);
        let steps_of = |internal: bool| -> Vec<String> {
            let mut steps: Vec<String> = issue
                .notes
                .iter()
                .filter(|n| n.3 == internal)
                .flat_map(|n| Marker::find_all(&n.2))
                .map(|m| m.firing.step.0)
                .collect();
            steps.sort();
            steps
        };
        let mut own: Vec<String> = expected
            .iter()
            .filter(|(i, _)| *i == iid)
            .map(|(_, s)| (*s).to_owned())
            .collect();
        own.sort();
        let ledgers = issue.notes.iter().filter(|n| n.3).count();
        assert_eq!(ledgers, 1, "#{iid}: one internal ledger note");
        assert_eq!(
            steps_of(true),
            own,
            "#{iid}: the ledger lists every step once"
        );
        assert_eq!(
            issue.note_edits as usize,
            own.len() - 1,
            "#{iid}: the ledger note is edited once per later step"
        );
        let mut commented = vec!["start".to_owned()];
        if iid == 3 {
            commented.insert(0, "breach".to_owned());
        }
        assert_eq!(steps_of(false), commented, "#{iid}: comments");
        assert_eq!(
            issue.labels.contains(&"missed::SLA".to_owned()),
            iid == 3,
            "#{iid}: {:?}",
            issue.labels
        );
    }
    for iid in [7, 9] {
        assert!(
            written
                .iter()
                .all(|w| !w.contains(&format!("/issues/{iid}"))),
            "#{iid} is left alone: {written:#?}"
        );
    }
    let paths: Vec<&str> = written
        .iter()
        .map(|w| w.split('?').next().unwrap_or_default())
        .collect();
    let (notes_created, notes_edited, issues_edited) = (
        paths
            .iter()
            .filter(|w| w.starts_with("POST") && w.ends_with("/notes"))
            .count(),
        paths
            .iter()
            .filter(|w| w.starts_with("PUT") && w.contains("/notes/"))
            .count(),
        paths
            .iter()
            .filter(|w| w.starts_with("PUT") && !w.contains("/notes"))
            .count(),
    );
    assert_eq!(
        (notes_created, notes_edited, issues_edited, written.len()),
        (7 + 6, expected.len() - 6, 1, 7 + 6 + expected.len() - 6 + 1),
        "7 comments and 6 ledger notes, 9 ledger edits, 1 label edit: {written:#?}"
    );

    // A second run finds every step in the notes and does nothing.
    let second = notify(&gitlab, &slack.api_url, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(
        slack.slack.messages().len(),
        posted.len(),
        "no Slack message twice"
    );
    assert_eq!(writes(&gitlab.gitlab), written, "no GitLab write twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rename_notify_finds_its_ledger_and_repeats_nothing() {
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    gitlab.gitlab.add(
        FakeIssue::new(PROJECT, 3, now - TimeDelta::hours(31))
            .add_label(now - TimeDelta::hours(30), "urgency::highest"),
    );
    let slack = common::fake_slack::FakeSlack::start().await;
    let first = notify(&gitlab, &slack.api_url, &[]);
    assert_eq!(first.status.code(), Some(0));
    let posted = slack.slack.messages().len();
    assert!(posted > 0);
    let written = writes(&gitlab.gitlab);

    gitlab.gitlab.rename_project(PROJECT, "acme/checkout");
    let second = notify_project(&gitlab, "acme/checkout", &slack.api_url, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(
        slack.slack.messages().len(),
        posted,
        "no Slack message twice"
    );
    assert_eq!(writes(&gitlab.gitlab), written, "no GitLab write twice");
}

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
        thread: labelwarden::notify::Thread {
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
