//! The `audit` CI/CD component's job, run by gitlab-ci-local
//! (`scripts/component-local.sh` installs it and runs this ignored test):
//! `templates/audit.yml` included with inputs, its script run on this
//! machine against the fake GitLab, its JUnit and Markdown reports left as
//! artefacts. Without a container engine here the job's image is dropped,
//! so `labelwarden` comes from this build instead of the image.

mod common;

use std::path::Path;
use std::process::Command;

use chrono::{TimeDelta, Utc};
use common::HIGHEST;
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.email=ci@example.com", "-c", "user.name=ci"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs gitlab-ci-local: run scripts/component-local.sh"]
async fn the_audit_component_runs_its_script_and_keeps_its_reports() {
    let runner = std::env::var("GITLAB_CI_LOCAL")
        .expect("GITLAB_CI_LOCAL: the gitlab-ci-local binary (scripts/component-local.sh sets it)");
    let gitlab = FakeGitLab::start().await;
    let labelled = Utc::now() - TimeDelta::hours(30);
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 1, labelled).add_label(labelled, HIGHEST));

    // A project that includes the component with inputs.
    let project = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("templates/audit.yml"),
        project.path().join("audit.yml"),
    )
    .unwrap();
    let shipped = common::shipped_policies_copy(str::to_owned);
    std::fs::rename(shipped.path(), project.path().join("policies")).unwrap();
    std::fs::write(
        project.path().join(".gitlab-ci.yml"),
        concat!(
            "include:\n",
            "  - local: audit.yml\n",
            "    inputs:\n",
            "      project: acme/backend\n",
            "      fail_on: breach\n",
            "\n",
            "# No container engine here: the job's script runs on this machine.\n",
            "labelwarden-audit:\n",
            "  image: null\n",
        ),
    )
    .unwrap();
    git(project.path(), &["init", "-q", "-b", "main"]);
    git(project.path(), &["add", "-A"]);
    git(
        project.path(),
        &["commit", "-qm", "a project using the component"],
    );

    let binaries = Path::new(env!("CARGO_BIN_EXE_labelwarden"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        binaries.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new(&runner)
        .args(["--json-schema-validation=false", "labelwarden-audit"])
        .args(["--variable", "CI_PIPELINE_SOURCE=schedule"])
        .args(["--variable", &format!("CI_SERVER_URL={}", gitlab.url)])
        .args([
            "--variable",
            &format!("GITLAB_TOKEN={}", fake_gitlab::TOKEN),
        ])
        .current_dir(project.path())
        .env("PATH", path)
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{shown}");
    // The breach fails the job, as `fail_on: breach` asks.
    assert!(!output.status.success(), "{shown}");
    assert!(
        shown.contains("acme/backend#1"),
        "the table in the log: {shown}"
    );
    assert!(
        gitlab
            .gitlab
            .requests()
            .iter()
            .any(|r| r.contains("/projects/acme%2Fbackend/issues")),
        "the job read the fake GitLab"
    );
    // `artifacts: when: always` keeps both reports.
    let junit = std::fs::read_to_string(project.path().join("labelwarden.xml")).unwrap();
    assert!(junit.contains("<testsuites"), "{junit}");
    assert!(
        junit.contains("<failure"),
        "the breach is a failed test: {junit}"
    );
    let markdown = std::fs::read_to_string(project.path().join("labelwarden.md")).unwrap();
    assert!(markdown.contains("acme/backend#1"), "{markdown}");
}
