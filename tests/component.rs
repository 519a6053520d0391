//! The CI/CD components' jobs, run by gitlab-ci-local
//! (`scripts/component-local.sh` installs it and runs these ignored tests;
//! `.ci/run` runs that script): `templates/audit.yml` against the fake
//! GitLab and `templates/drill.yml` against the fake Slack, each included
//! with inputs, its script run on this machine. Without
//! a container engine here the job's image is dropped, so `labelwarden`
//! comes from this build instead of the image.
//!
//! The job runs with gitlab-ci-local's shell isolation: in a copy of the
//! project, from which only what the job's `artifacts:` keep comes back. A
//! report the script writes but `artifacts:` forgets is not found.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{TimeDelta, Utc};
use common::HIGHEST;
use common::fake_gitlab::{self, FakeGitLab, FakeIssue, Running};
use common::fake_slack::{self, FakeSlack};

/// The job's name in `templates/audit.yml`.
const JOB: &str = "labelwarden-audit";
/// The job's name in `templates/drill.yml`.
const DRILL_JOB: &str = "labelwarden-drill";

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.email=ci@example.com", "-c", "user.name=ci"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// A fake GitLab holding one breached issue (labelled 30 hours ago).
async fn gitlab_with_a_breach() -> Running {
    let gitlab = FakeGitLab::start().await;
    let labelled = Utc::now() - TimeDelta::hours(30);
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 1, labelled).add_label(labelled, HIGHEST));
    gitlab
}

/// What one run of the job left: its exit status and log, the project it
/// ran for, and the job's isolated build folder.
struct JobRun {
    job: &'static str,
    output: Output,
    project: tempfile::TempDir,
}

impl JobRun {
    fn log(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    /// A file the job's `artifacts:` brought back into the project.
    fn artefact(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.project.path().join(name)).ok()
    }

    /// A file in the job's own build folder, where GitLab's runner uploads
    /// `artifacts:reports:` from.
    fn in_build(&self, name: &str) -> Option<String> {
        let build: PathBuf = self
            .project
            .path()
            .join(".gitlab-ci-local/builds")
            .join(self.job)
            .join(name);
        std::fs::read_to_string(build).ok()
    }
}

/// Includes the component with `fail_on` in a fresh project and runs its
/// job in a scheduled pipeline against `gitlab`.
fn run_the_component(gitlab: &Running, fail_on: &str) -> JobRun {
    let shipped = common::shipped_policies_copy(str::to_owned);
    let inputs = format!("      project: acme/backend\n      fail_on: {fail_on}\n");
    let run = run_job(
        "audit.yml",
        JOB,
        &inputs,
        shipped.path(),
        &[
            &format!("CI_SERVER_URL={}", gitlab.url),
            &format!("GITLAB_TOKEN={}", fake_gitlab::TOKEN),
        ],
    );
    assert!(
        gitlab
            .gitlab
            .requests()
            .iter()
            .any(|r| r.contains("/projects/acme%2Fbackend/issues")),
        "the job read the fake GitLab: {}",
        run.log()
    );
    run
}

/// Includes `templates/TEMPLATE` with `inputs` (YAML lines under
/// `inputs:`) in a fresh project whose `policies/` is a copy of
/// `policies`, and runs its job `job` in a scheduled pipeline with these
/// CI/CD `variables` (`NAME=value`).
fn run_job(
    template: &str,
    job: &'static str,
    inputs: &str,
    policies: &Path,
    variables: &[&str],
) -> JobRun {
    let runner = std::env::var("GITLAB_CI_LOCAL")
        .expect("GITLAB_CI_LOCAL: the gitlab-ci-local binary (scripts/component-local.sh sets it)");
    let project = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("templates").join(template),
        project.path().join(template),
    )
    .unwrap();
    let copied = project.path().join("policies");
    std::fs::create_dir(&copied).unwrap();
    for entry in std::fs::read_dir(policies).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, copied.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        project.path().join(".gitlab-ci.yml"),
        format!(
            concat!(
                "include:\n",
                "  - local: {template}\n",
                "    inputs:\n",
                "{inputs}",
                "\n",
                "# No container engine here: the job's script runs on this machine.\n",
                "{job}:\n",
                "  image: null\n",
            ),
            template = template,
            inputs = inputs,
            job = job,
        ),
    )
    .unwrap();
    std::fs::write(project.path().join(".gitignore"), ".gitlab-ci-local/\n").unwrap();
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
    let mut command = Command::new(&runner);
    command
        .args([
            "--json-schema-validation=false",
            "--shell-isolation",
            "--no-color",
            job,
        ])
        .args(["--variable", "CI_PIPELINE_SOURCE=schedule"]);
    for variable in variables {
        command.args(["--variable", variable]);
    }
    let output = command
        .current_dir(project.path())
        .env("PATH", path)
        .output()
        .unwrap();
    let run = JobRun {
        job,
        output,
        project,
    };
    println!("{}", run.log());
    run
}

/// The reports a run keeps, whatever its outcome (`artifacts: when:
/// always`): the Markdown and HTML reports come back as artefacts (the
/// ones `expose_as` shows in the merge request), the JUnit
/// report is where `artifacts:reports:junit` names it.
fn assert_reports_kept(run: &JobRun) {
    let markdown = run
        .artefact("labelwarden.md")
        .unwrap_or_else(|| panic!("labelwarden.md kept by artifacts:paths: {}", run.log()));
    assert!(markdown.contains("acme/backend#1"), "{markdown}");
    let page = run
        .artefact("labelwarden.html")
        .unwrap_or_else(|| panic!("labelwarden.html kept by artifacts:paths: {}", run.log()));
    assert!(
        page.starts_with("<!doctype html>") && page.contains("acme/backend#1</a>"),
        "{page}"
    );
    let junit = run
        .in_build("labelwarden.xml")
        .unwrap_or_else(|| panic!("labelwarden.xml written for reports:junit: {}", run.log()));
    assert!(junit.contains("<testsuites"), "{junit}");
    assert!(
        junit.contains("<failure"),
        "the breach is a failed test: {junit}"
    );
    // Shell isolation: nothing the job wrote outside `artifacts:paths`
    // reaches the project (the audit cache stays in the build folder).
    assert!(
        run.artefact("labelwarden.xml").is_none(),
        "only artifacts:paths come back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs gitlab-ci-local: run scripts/component-local.sh"]
async fn with_fail_on_breach_a_breach_fails_the_job_and_its_reports_are_kept() {
    let gitlab = gitlab_with_a_breach().await;
    let run = run_the_component(&gitlab, "breach");
    assert!(!run.output.status.success(), "{}", run.log());
    assert!(
        run.log().contains("acme/backend#1"),
        "the table in the log: {}",
        run.log()
    );
    assert_reports_kept(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs gitlab-ci-local: run scripts/component-local.sh"]
async fn with_fail_on_never_the_job_succeeds_over_a_breach_and_still_reports_it() {
    let gitlab = gitlab_with_a_breach().await;
    let run = run_the_component(&gitlab, "never");
    assert!(run.output.status.success(), "{}", run.log());
    assert!(
        run.log().contains("acme/backend#1"),
        "the table in the log: {}",
        run.log()
    );
    assert_reports_kept(&run);
}

/// Runs the drill component's job at speed 600 against the fake Slack,
/// `responder` (if any) reacting on its alert as a person would.
async fn run_the_drill(
    slack: &fake_slack::Running,
    policy: &'static str,
    responder: Option<&'static str>,
) -> JobRun {
    let watcher = responder.map(|user| {
        let fake = slack.slack.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                let alert = fake.messages().into_iter().find(|m| m.thread_ts.is_none());
                if let Some(alert) = alert {
                    fake.person_reacts(&alert, "eyes", user);
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    fake.person_reacts(&alert, "white_check_mark", user);
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    });
    let inputs = format!("      policy: {policy}\n      speed: 600\n");
    let api_url = slack.api_url.clone();
    let run = tokio::task::spawn_blocking(move || {
        run_job(
            "drill.yml",
            DRILL_JOB,
            &inputs,
            &common::fixtures().join("policies-drill"),
            &[
                &format!("SLACK_BOT_TOKEN={}", fake_slack::TOKEN),
                &format!("SLACK_API_URL={api_url}"),
            ],
        )
    })
    .await
    .unwrap();
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    assert!(
        slack
            .slack
            .messages()
            .iter()
            .any(|m| m.thread_ts.is_none() && m.text.contains("DRILL")),
        "the job posted the drill's alert: {}",
        run.log()
    );
    let metrics = run
        .in_build("metrics.txt")
        .unwrap_or_else(|| panic!("metrics.txt written for reports:metrics: {}", run.log()));
    assert!(metrics.contains(r#"drill="true""#), "{metrics}");
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs gitlab-ci-local: run scripts/component-local.sh"]
async fn a_drill_nobody_acknowledges_fails_its_job_and_keeps_its_metrics() {
    let slack = FakeSlack::start().await;
    let run = run_the_drill(&slack, "outage-2h", None).await;
    assert!(!run.output.status.success(), "{}", run.log());
    assert!(
        run.log().contains("Nobody acknowledged the alert."),
        "{}",
        run.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs gitlab-ci-local: run scripts/component-local.sh"]
async fn an_acknowledged_and_resolved_drill_passes_its_job() {
    let slack = FakeSlack::start().await;
    let run = run_the_drill(&slack, "critical-bug-24h", Some("U0RESPONDR")).await;
    assert!(run.output.status.success(), "{}", run.log());
    assert!(
        run.log().contains("Acknowledged by U0RESPONDR"),
        "{}",
        run.log()
    );
}
