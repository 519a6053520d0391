//! `labelwarden audit` against a local fake GitLab that answers with the
//! documented shapes (`tests/common/fake_gitlab.rs`), with the shipped
//! policies and real-shaped histories, as of a fixed `--now`: the reports
//! ([`report`]), reading GitLab ([`reading`]), `--notify` ([`notifying`]),
//! moves, duplicates, acknowledgements, `explain` and the watchdog
//! ([`stories`]), instant rules ([`rules`]) and the summary issue
//! ([`summary`]).

#[path = "../common/mod.rs"]
mod common;
mod notifying;
mod reading;
mod report;
mod rules;
mod stories;
mod summary;

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
