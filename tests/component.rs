//! The `audit` CI/CD component's job, run by gitlab-ci-local
//! (`scripts/component-local.sh` installs it and runs these ignored tests;
//! `.ci/run` runs that script): `templates/audit.yml` included with
//! inputs, its script run on this machine against the fake GitLab. Without
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

/// The job's name in `templates/audit.yml`.
const JOB: &str = "labelwarden-audit";

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
            .join(JOB)
            .join(name);
        std::fs::read_to_string(build).ok()
    }
}

/// Includes the component with `fail_on` in a fresh project and runs its
/// job in a scheduled pipeline against `gitlab`.
fn run_the_component(gitlab: &Running, fail_on: &str) -> JobRun {
    let runner = std::env::var("GITLAB_CI_LOCAL")
        .expect("GITLAB_CI_LOCAL: the gitlab-ci-local binary (scripts/component-local.sh sets it)");
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
        format!(
            concat!(
                "include:\n",
                "  - local: audit.yml\n",
                "    inputs:\n",
                "      project: acme/backend\n",
                "      fail_on: {fail_on}\n",
                "\n",
                "# No container engine here: the job's script runs on this machine.\n",
                "{job}:\n",
                "  image: null\n",
            ),
            fail_on = fail_on,
            job = JOB,
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
    let output = Command::new(&runner)
        .args([
            "--json-schema-validation=false",
            "--shell-isolation",
            "--no-color",
            JOB,
        ])
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
    let run = JobRun { output, project };
    println!("{}", run.log());
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
