//! `audit --summary-issue`: one GitLab issue keeps the run's report,
//! found again by its marker and edited in place, a person's issue of the
//! same title left alone, a closed summary retired.

use super::*;

const TITLE: &str = "Weekly SLA report";

const POLICIES: &str = r#"
policies:
  - name: critical
    match: { labels_any: ["priority::highest"] }
    clock: { target: 24h }
    escalation:
      - on: { before_deadline: 6h }
        gitlab: { comment: true }
rules:
  - name: needs-owner
    match: { labels_any: ["priority::highest"], assignees: none }
    after: 15m
    actions: { add_labels: ["needs-owner"] }
"#;

fn policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.yml"), POLICIES).unwrap();
    dir
}

/// #1 breached and unowned, #2 near its deadline and owned, #3 a
/// confidential breach nobody owns, #4 a person's issue that happens to
/// carry the summary's title.
fn seed_summary(gitlab: &FakeGitLab) {
    let issue = |iid| FakeIssue::new(PROJECT, iid, hours_ago(40));
    gitlab.add(issue(1).add_label(hours_ago(30), HIGHEST));
    gitlab.add(issue(2).add_label(hours_ago(20), HIGHEST).assign("ada"));
    let mut secret = issue(3).add_label(hours_ago(26), HIGHEST);
    secret.confidential = true;
    secret.title = "Leaked signing key".into();
    gitlab.add(secret);
    let mut decoy = issue(4);
    decoy.title = TITLE.into();
    decoy.description = "Our own notes from the weekly meeting".into();
    gitlab.add(decoy);
}

fn summarise(fake: &Running, policies: &std::path::Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["audit", "--project", PROJECT, "--fail-on", "never"])
        .args(["--summary-issue", TITLE, "--now", "2026-11-25T12:00:00Z"])
        .args(["--format", "json"])
        .arg("--policies")
        .arg(policies)
        .args(extra)
        .env("GITLAB_URL", &fake.url)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .output()
        .unwrap()
}

/// The issues titled like the summary, as (iid, open, description).
fn titled(gitlab: &FakeGitLab) -> Vec<(u64, bool, String)> {
    gitlab
        .issues_of(PROJECT)
        .into_iter()
        .filter(|issue| issue.title == TITLE)
        .map(|issue| (issue.iid, issue.is_open(), issue.description))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_summary_issue_is_kept_edited_in_place_and_retired_when_closed() {
    let fake = FakeGitLab::start().await;
    seed_summary(&fake.gitlab);
    let dir = policies();

    let first = summarise(&fake, dir.path(), &[]);
    let stderr = common::text(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("--summary-issue: created {PROJECT}#5 ")),
        "{stderr}"
    );
    let kept = titled(&fake.gitlab);
    assert_eq!(
        kept.len(),
        2,
        "the person's issue and the summary: {kept:#?}"
    );
    assert_eq!(
        kept[0].2, "Our own notes from the weekly meeting",
        "a person's issue of the same title is left alone"
    );
    let summary = &kept[1].2;
    assert!(summary.starts_with("<!-- labelwarden:summary scope=\"project acme/backend\" -->"));
    let policy = &summary[summary.find("### Policy `critical`").unwrap()..];
    let policy = &policy[..policy.find("### Rule").unwrap()];
    assert!(
        policy.contains("2 breached, 1 near the deadline, 0 ok"),
        "{policy}"
    );
    for iid in [1, 2, 3] {
        assert!(policy.contains(&format!("[{PROJECT}#{iid}](")), "{policy}");
    }
    let rule = &summary[summary.find("### Rule `needs-owner`").unwrap()..];
    assert!(rule.contains("2 issues break it now."), "{rule}");
    assert!(rule.contains(&format!("[{PROJECT}#1](")) && !rule.contains(&format!("{PROJECT}#2]")));
    assert!(
        !summary.contains("Leaked signing key") && summary.contains("(confidential)"),
        "{summary}"
    );
    // The other reports are written as ever.
    let report: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(report["summary"]["breach"], 2);

    // #1 gets an owner: the next run edits the same issue.
    fake.gitlab.update(PROJECT, 1, |issue| issue.assign("bo"));
    let second = summarise(&fake, dir.path(), &[]);
    let stderr = common::text(&second.stderr);
    assert!(
        stderr.contains(&format!("--summary-issue: edited {PROJECT}#5 ")),
        "{stderr}"
    );
    let kept = titled(&fake.gitlab);
    assert_eq!(kept.len(), 2, "no second summary: {kept:#?}");
    let rule = &kept[1].2[kept[1].2.find("### Rule").unwrap()..];
    assert!(rule.contains("1 issue breaks it now."), "{rule}");
    assert!(!rule.contains(&format!("{PROJECT}#1]")), "{rule}");

    // A dry run prints the summary and writes nothing.
    let writes_before = writes(&fake.gitlab).len();
    let dry = summarise(&fake, dir.path(), &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", common::text(&dry.stderr));
    assert!(common::text(&dry.stdout).contains("### Rule `needs-owner`"));
    assert_eq!(
        writes(&fake.gitlab).len(),
        writes_before,
        "a dry run writes nothing"
    );

    // Closing the summary retires it: the next run opens a new one.
    fake.gitlab
        .update(PROJECT, 5, |issue| issue.close(Utc::now()));
    let third = summarise(&fake, dir.path(), &[]);
    let stderr = common::text(&third.stderr);
    assert!(
        stderr.contains(&format!("--summary-issue: created {PROJECT}#6 ")),
        "{stderr}"
    );
    assert_eq!(
        titled(&fake.gitlab)
            .iter()
            .map(|(iid, open, _)| (*iid, *open))
            .collect::<Vec<_>>(),
        [(4, true), (5, false), (6, true)]
    );
}

#[test]
fn a_group_audit_is_told_where_its_summary_lives() {
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["audit", "--group", "acme", "--summary-issue", TITLE])
        .env("GITLAB_URL", "http://127.0.0.1:9")
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        common::text(&output.stderr)
            .contains("--summary-issue with --group needs --summary-project"),
        "{}",
        common::text(&output.stderr)
    );
}
