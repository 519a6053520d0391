//! The HTML audit report in a real browser (Debian's Chromium, headless):
//! the page a CI artifact opens shows the breach rows, keeps a
//! confidential issue's title out, logs nothing to the console, and its
//! screenshot is the one the README shows. Slow and needing Chromium, so
//! it runs from `scripts/browser-check.sh`, not from `.ci/run`.

mod common;

use std::path::Path;
use std::process::Command;

use chrono::{TimeDelta, Utc};
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};

const PROJECT: &str = "acme/backend";

/// `chromium --headless` with `args`, returning (stdout, stderr).
fn chromium(args: &[&str]) -> (String, String) {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(args)
        .output()
        .expect("chromium (scripts/browser-check.sh installs it)");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: run scripts/browser-check.sh"]
async fn the_html_report_shows_its_rows_and_keeps_secrets_in_a_browser() {
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    let ago = |hours| now - TimeDelta::hours(hours);
    let issue = |iid, title: &str| {
        let mut made = FakeIssue::new(PROJECT, iid, ago(60));
        made.title = title.to_owned();
        made
    };
    gitlab.gitlab.add(
        issue(1, "Checkout fails for every customer")
            .add_label(ago(30), "priority::highest")
            .assign("ada"),
    );
    gitlab
        .gitlab
        .add(issue(2, "Search is slow").add_label(ago(20), "priority::highest"));
    let mut secret =
        issue(3, "Signing key leaked in build logs").add_label(ago(27), "urgency::highest");
    secret.confidential = true;
    gitlab.gitlab.add(secret);
    gitlab.gitlab.add(
        issue(4, "Login times out")
            .add_label(ago(40), "priority::highest")
            .close(ago(30)),
    );
    gitlab.gitlab.add(
        issue(5, "Export broken")
            .add_label(ago(50), "priority::highest")
            .close(ago(20)),
    );

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let audit = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args([
            "audit",
            "--project",
            PROJECT,
            "--fail-on",
            "never",
            "--updated-within",
            "3d",
        ])
        .args(["--format", "html", "--output"])
        .arg(&report)
        .args([
            "--policies",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        ])
        .env("GITLAB_URL", &gitlab.url)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let url = format!("file://{}", report.display());

    let (dom, _) = chromium(&["--dump-dom", &url]);
    let urgent = &dom[dom.find("<table id=\"urgent\">").expect("the urgent table")..];
    let urgent = &urgent[..urgent.find("</table>").unwrap()];
    for iid in [1, 2, 3] {
        assert!(
            urgent.contains(&format!("{PROJECT}#{iid}</a>")),
            "#{iid}: {urgent}"
        );
    }
    assert!(
        !urgent.contains(&format!("{PROJECT}#4</a>")),
        "a met clock needs nothing"
    );
    assert!(dom.contains("Checkout fails for every customer"), "{dom}");
    assert!(
        !dom.contains("Signing key leaked") && dom.contains("(confidential)"),
        "a confidential title stays out"
    );
    assert!(
        dom.contains("Time to resolve (2 clocks)"),
        "two clocks stopped"
    );

    let (_, log) = chromium(&["--enable-logging=stderr", "--v=0", "--dump-dom", &url]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/images/audit-report.png");
    let (_, said) = chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,1100",
        &url,
    ]);
    assert!(said.contains("bytes written"), "{said}");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a real screenshot"
    );
}
