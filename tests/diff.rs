//! `labelwarden diff` as a merge-request job runs it: the real binary
//! against the fake GitLab, the shipped policies before, and a change
//! after.

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

/// Critical bugs labelled 2, 14, 18 and 30 hours before now (22, 10 and 6
/// hours left, and 6 hours overdue, under a 24-hour target), and one
/// without a priority.
fn seed(gitlab: &FakeGitLab) {
    for (iid, hours) in [(1, 2), (2, 14), (3, 18), (4, 30)] {
        let at = now() - TimeDelta::hours(hours);
        gitlab.add(FakeIssue::new(PROJECT, iid, at).add_label(at, HIGHEST));
    }
    let at = now() - TimeDelta::hours(5);
    gitlab.add(FakeIssue::new(PROJECT, 9, at).add_label(at, "priority::low"));
}

fn diff(fake: &Running, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .arg("diff")
        .args(["--project", PROJECT, "--now", &now().to_rfc3339()])
        .args(args)
        .current_dir(cwd)
        .env("GITLAB_URL", &fake.url)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .env_remove("CI_PROJECT_ID")
        .env_remove("CI_MERGE_REQUEST_IID")
        .env_remove("LABELWARDEN_POLICIES")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn json_of(output: &Output) -> Value {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The shipped policies with critical-bug-24h's target cut to 12 hours.
fn twelve_hours() -> tempfile::TempDir {
    common::shipped_policies_copy(|text| {
        text.replacen(
            "    clock:\n      target: 24h\n      starts: matched\n      stops: closed\n      # Waiting",
            "    clock:\n      target: 12h\n      starts: matched\n      stops: closed\n      # Waiting",
            1,
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_cut_to_12h_reports_the_issues_it_breaches_and_the_messages_at_once() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab);
    let after = twelve_hours();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let output = diff(
        &fake,
        after.path(),
        &[
            "--base",
            shipped.to_str().unwrap(),
            "--policies",
            after.path().to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    );
    let report = json_of(&output);
    assert_eq!(
        report["policies"],
        serde_json::json!([{"change": "changed", "name": "critical-bug-24h", "parts": ["clock"]}])
    );
    let clocks: Vec<(String, String, Option<i64>)> = report["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["issue"].as_str().unwrap().to_owned(),
                c["change"].as_str().unwrap().to_owned(),
                c["deadline_moves_by"].as_i64().map(|s| s / 3600),
            )
        })
        .collect();
    let expected = [
        ("acme/backend#2", "breach_appears", Some(-12)),
        ("acme/backend#3", "breach_appears", Some(-12)),
        ("acme/backend#1", "deadline_moves", Some(-12)),
        ("acme/backend#4", "deadline_moves", Some(-12)),
    ]
    .map(|(i, c, h)| (i.to_owned(), c.to_owned(), h));
    assert_eq!(clocks, expected, "{report:#}");
    assert_eq!(report["summary"]["breaches_appearing"], 2);
    // Due at once: #2's and #3's breaches, #3's first reminder (6 hours
    // past the new deadline) and #4's fourth (18 hours past it).
    let at_once: Vec<(String, String)> = report["at_once"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["issue"].as_str().unwrap().to_owned(),
                s["step"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("acme/backend#2", "breach"),
        ("acme/backend#3", "breach"),
        ("acme/backend#3", "every:4h:after:breach"),
        ("acme/backend#4", "every:4h:after:breach"),
    ]
    .map(|(i, s)| (i.to_owned(), s.to_owned()));
    assert_eq!(at_once, expected, "{report:#}");
    assert_eq!(report["summary"]["messages_by_channel"]["alerts"], 4);
    // The issues were read once: one listing per label, two histories each.
    let requests = fake.gitlab.requests();
    let histories = requests
        .iter()
        .filter(|r| r.contains("/issues/2/resource_label_events"))
        .count();
    assert_eq!(histories, 1, "{requests:#?}");

    // The table says it in one line.
    let table = diff(
        &fake,
        after.path(),
        &[
            "--base",
            shipped.to_str().unwrap(),
            "--policies",
            after.path().to_str().unwrap(),
        ],
        &[],
    );
    let table = String::from_utf8(table.stdout).unwrap();
    println!("{table}");
    assert!(
        table.contains("this change would breach 2 issues at once and post 4 Slack messages (4 steps due at once); 4 clocks change"),
        "{table}"
    );
    assert!(
        table.contains("  changed: critical-bug-24h (clock changed)"),
        "{table}"
    );
    assert!(
        table.contains("acme/backend#2  critical-bug-24h  becomes breached: running, 10h left -> breached, 2h overdue  (Bug 2)"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_policy_is_reported_as_such_and_fires_nothing_again() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab);
    let after = common::shipped_policies_copy(|text| {
        text.replace(
            "- name: critical-bug-24h",
            "- name: critical-bugs-within-a-day",
        )
    });
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let report = json_of(&diff(
        &fake,
        after.path(),
        &[
            "--base",
            shipped.to_str().unwrap(),
            "--policies",
            after.path().to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    ));
    assert_eq!(
        report["policies"],
        serde_json::json!([{
            "change": "renamed",
            "from": "critical-bug-24h",
            "name": "critical-bugs-within-a-day",
            "parts": [],
        }])
    );
    assert_eq!(report["clocks"], serde_json::json!([]));
    assert_eq!(report["at_once"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_policies_report_no_change_and_exit_0() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = diff(&fake, root, &["--base", "policies"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.contains("no change: the policies do the same to every open issue"),
        "{table}"
    );
    assert!(
        !table.contains("POLICIES") && !table.contains("AT ONCE"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_merge_request_the_base_commit_comes_from_gitlab_and_one_note_is_kept() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab);
    // The base commit's policy folder, as GitLab's repository API has it.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let name = path.file_name().unwrap().to_str().unwrap();
            files.push((
                format!("policies/{name}"),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    files.push((
        "policies/tests/broken.yml".into(),
        "not a policy file: the loader skips tests/\n".into(),
    ));
    files.push(("README.md".into(), "# acme/backend\n".into()));
    fake.gitlab.add_commit(PROJECT, "b4se5ha", files);
    fake.gitlab.add_merge_request(PROJECT, 7);
    let project_id = fake_gitlab::project_id(PROJECT).to_string();
    let env = [
        ("CI_PROJECT_ID", project_id.as_str()),
        ("CI_MERGE_REQUEST_IID", "7"),
    ];
    // The job's checkout: the changed policies, no git.
    let checkout = tempfile::tempdir().unwrap();
    let changed = twelve_hours();
    std::fs::rename(changed.path(), checkout.path().join("policies")).unwrap();
    let run = |env: &[(&str, &str)]| {
        diff(
            &fake,
            checkout.path(),
            &["--base", "b4se5ha", "--mr-note"],
            env,
        )
    };
    let first = run(&env);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{stderr}{:#?}",
        fake.gitlab.requests()
    );
    assert!(
        stderr.contains("diff posted on merge request !7"),
        "{stderr}"
    );
    let notes = fake.gitlab.merge_request_notes(PROJECT, 7);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].starts_with("<!-- labelwarden:policy-diff -->\n"),
        "{}",
        notes[0]
    );
    assert!(
        notes[0].contains("**this change would breach 2 issues at once and post 4 Slack messages"),
        "{}",
        notes[0]
    );
    assert!(
        notes[0].contains("| [acme/backend#2](https://gitlab.example.com/acme/backend/-/issues/2)"),
        "{}",
        notes[0]
    );

    // A later push that undoes the change: the same note, edited.
    std::fs::remove_dir_all(checkout.path().join("policies")).unwrap();
    std::fs::rename(
        common::shipped_policies_copy(str::to_owned).keep(),
        checkout.path().join("policies"),
    )
    .unwrap();
    let second = run(&env);
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let notes = fake.gitlab.merge_request_notes(PROJECT, 7);
    assert_eq!(notes.len(), 1, "edited in place: {notes:#?}");
    assert!(notes[0].contains("no change"), "{}", notes[0]);

    // Outside a merge-request pipeline, --mr-note says what is missing.
    let outside = run(&[("CI_PROJECT_ID", project_id.as_str())]);
    assert_eq!(outside.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&outside.stderr).contains("CI_MERGE_REQUEST_IID is not set"),
        "{}",
        String::from_utf8_lossy(&outside.stderr)
    );
    // An unknown base commit is a clear error.
    let unknown = diff(&fake, checkout.path(), &["--base", "n0such"], &env);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("reading the policies at `n0such` from GitLab")
            && stderr.contains("not found (404)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_commit_is_read_with_the_local_git_in_a_checkout() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab);
    let checkout = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(checkout.path())
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::rename(
        common::shipped_policies_copy(str::to_owned).keep(),
        checkout.path().join("policies"),
    )
    .unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "policies"]);
    // The change, not committed: the 24-hour target becomes 12 hours.
    std::fs::remove_dir_all(checkout.path().join("policies")).unwrap();
    std::fs::rename(twelve_hours().keep(), checkout.path().join("policies")).unwrap();
    let report = json_of(&diff(
        &fake,
        checkout.path(),
        &["--base", "main", "--format", "json"],
        &[],
    ));
    assert_eq!(report["summary"]["breaches_appearing"], 2, "{report:#}");
    let requests = fake.gitlab.requests();
    assert!(
        !requests.iter().any(|r| r.contains("/repository/")),
        "read from git, not GitLab: {requests:#?}"
    );
}
