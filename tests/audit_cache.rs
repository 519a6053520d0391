//! `audit --cache` and downgrades, as a scheduled pipeline meets them: the
//! real binary against the fake GitLab. A run with nothing changed reads
//! only the listings; a changed issue is read again, an unchanged one is
//! not; a cached run's verdicts equal a cold run's; and an issue whose
//! label was removed after its deadline is still reported, as withdrawn
//! after breach.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::fake_gitlab::{self, FakeGitLab, FakeIssue, Running};
use serde_json::Value;

const PROJECT: &str = "acme/backend";
const HIGHEST: &str = "priority::highest";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn hours_ago(hours: i64) -> DateTime<Utc> {
    now() - TimeDelta::hours(hours)
}

/// Relabelled, paused, reopened and confidential critical bugs, and one
/// downgraded after its deadline.
fn seed(gitlab: &FakeGitLab) {
    let issue = |iid, created| FakeIssue::new(PROJECT, iid, hours_ago(created));
    gitlab.add(issue(1, 3).add_label(hours_ago(2), HIGHEST));
    // Relabelled: urgency first, priority later.
    gitlab.add(
        issue(2, 40)
            .add_label(hours_ago(30), "urgency::highest")
            .remove_label(hours_ago(29), "urgency::highest")
            .add_label(hours_ago(10), HIGHEST),
    );
    // Paused upstream.
    gitlab.add(
        issue(3, 30)
            .add_label(hours_ago(30), HIGHEST)
            .add_label(hours_ago(28), "blocked::upstream"),
    );
    // Closed and reopened.
    gitlab.add(
        issue(4, 20)
            .add_label(hours_ago(20), HIGHEST)
            .close(hours_ago(10))
            .reopen(hours_ago(2)),
    );
    // Confidential and breached.
    let mut secret = issue(5, 31).add_label(hours_ago(30), HIGHEST);
    secret.confidential = true;
    secret.title = "Card numbers in the logs".into();
    gitlab.add(secret);
    // Labelled 49 hours ago (deadline 25 hours ago), unlabelled 20 hours
    // ago: 5 hours late when the label went.
    gitlab.add(
        issue(6, 50)
            .add_label(hours_ago(49), HIGHEST)
            .remove_label(hours_ago(20), HIGHEST),
    );
}

fn audit(fake: &Running, args: &[&str]) -> Output {
    let dir = env!("CARGO_MANIFEST_DIR");
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .arg("audit")
        .args(["--project", PROJECT, "--now", &now().to_rfc3339()])
        .args(["--policies", &format!("{dir}/policies")])
        .args(args)
        .env("GITLAB_URL", &fake.url)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .env("NO_COLOR", "1")
        .env_remove("LABELWARDEN_CACHE")
        .output()
        .unwrap()
}

/// Every clock's (issue, policy, status, deadline) from a JSON report.
fn verdicts(output: &Output) -> Vec<(String, String, String, String)> {
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    report["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["issue"].as_str().unwrap().to_owned(),
                c["policy"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["deadline"].to_string(),
            )
        })
        .collect()
}

/// The issue numbers whose histories a run read, from request `from` on.
fn histories_read(fake: &Running, from: usize) -> Vec<u64> {
    common::histories_read(&fake.gitlab.requests()[from..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_run_reads_only_what_changed_and_agrees_with_a_cold_one() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab);
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let json = ["--format", "json", "--fail-on", "never"];

    let cold = audit(&fake, &json);
    let start = fake.gitlab.requests().len();
    let first = audit(&fake, &[&json[..], &["--cache", cache_arg]].concat());
    assert_eq!(
        histories_read(&fake, start),
        [1, 2, 3, 4, 5, 6],
        "an empty cache reads all"
    );
    assert_eq!(verdicts(&first), verdicts(&cold));

    let start = fake.gitlab.requests().len();
    let second = audit(&fake, &[&json[..], &["--cache", cache_arg]].concat());
    assert_eq!(
        histories_read(&fake, start),
        Vec::<u64>::new(),
        "nothing changed"
    );
    let requests = &fake.gitlab.requests()[start..];
    assert!(
        requests.iter().all(|r| r.contains("/issues?")),
        "only the listings: {requests:#?}"
    );
    assert_eq!(
        verdicts(&second),
        verdicts(&cold),
        "the cache changes no verdict"
    );

    // #3's pause ends: its history changes and its updated_at with it.
    fake.gitlab.update(PROJECT, 3, |issue| {
        issue.remove_label(hours_ago(1), "blocked::upstream")
    });
    let start = fake.gitlab.requests().len();
    let third = audit(&fake, &[&json[..], &["--cache", cache_arg]].concat());
    assert_eq!(histories_read(&fake, start), [3], "the changed issue alone");
    let cold_again = audit(&fake, &json);
    assert_eq!(verdicts(&third), verdicts(&cold_again));
    assert_ne!(verdicts(&third), verdicts(&cold), "#3 runs again");

    // And the steps `--notify` would carry out (as of the real now: a
    // dry run cannot take `--now`) are the same, cached or cold.
    let steps = |args: &[&str]| -> Vec<String> {
        let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
            .args(["audit", "--project", PROJECT, "--notify", "--dry-run"])
            .args([
                "--policies",
                concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
            ])
            .args(["--fail-on", "never", "--updated-within", "30d"])
            .args(args)
            .env("GITLAB_URL", &fake.url)
            .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
            .env_remove("SLACK_BOT_TOKEN")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        stderr
            .lines()
            .filter(|l| l.starts_with("would do: "))
            .map(str::to_owned)
            .collect()
    };
    let cold_steps = steps(&[]);
    assert!(!cold_steps.is_empty(), "steps are due");
    steps(&["--cache", cache_arg]);
    assert_eq!(
        steps(&["--cache", cache_arg]),
        cold_steps,
        "cached: the same steps"
    );

    // A cache of another project is not trusted.
    let other = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args([
            "audit",
            "--project",
            "acme/other",
            "--now",
            &now().to_rfc3339(),
        ])
        .args([
            "--policies",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        ])
        .args(["--cache", cache_arg, "--fail-on", "never"])
        .env("GITLAB_URL", &fake.url)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("ignoring the history cache")
            && stderr.contains("it is of project acme/backend"),
        "{stderr}"
    );
    // Deleting the cache changes nothing but the request count.
    std::fs::remove_dir_all(cache.path()).unwrap();
    let after_delete = audit(&fake, &[&json[..], &["--cache", cache_arg]].concat());
    assert_eq!(verdicts(&after_delete), verdicts(&cold_again));
    assert!(
        Path::new(cache_arg)
            .join("labelwarden-history.json")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_removed_after_the_deadline_is_reported_as_withdrawn_after_breach() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab);
    let json = audit(&fake, &["--format", "json"]);
    assert_eq!(json.status.code(), Some(1), "a breach fails the audit");
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let downgraded: Vec<&Value> = report["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["issue"] == "acme/backend#6")
        .collect();
    assert_eq!(downgraded.len(), 1, "{report:#}");
    assert_eq!(downgraded[0]["status"], "withdrawn_after_breach");
    assert_eq!(downgraded[0]["level"], "breach");
    assert_eq!(downgraded[0]["overdue_seconds"], 5 * 3600);
    let record = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == "critical-bug-24h")
        .unwrap();
    assert_eq!(record["missed"], 1, "counted as missed: {record:#}");

    for format in ["table", "markdown", "junit"] {
        let output = audit(&fake, &["--format", format]);
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(
            text.contains("acme/backend#6") && text.contains("withdrawn"),
            "{format}: {text}"
        );
    }
    // Outside the window it is old news: not read, not reported.
    let narrow = audit(&fake, &["--format", "json", "--updated-within", "12h"]);
    let report: Value = serde_json::from_slice(&narrow.stdout).unwrap();
    assert!(
        !report["clocks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["issue"] == "acme/backend#6"),
        "{report:#}"
    );
}
