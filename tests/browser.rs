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

/// Saves `url` as `docs/src/images/{name}.png`, the picture the README shows.
fn screenshot(url: &str, name: &str, window: &str) {
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/src/images/{name}.png"));
    let (_, said) = chromium(&[
        &format!("--screenshot={}", shot.display()),
        &format!("--window-size={window}"),
        url,
    ]);
    assert!(said.contains("bytes written"), "{said}");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a real screenshot"
    );
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

    screenshot(&url, "audit-report", "1280,1100");
}

/// The status page in the browser: served by the in-process server over a
/// fake Slack (so threads have links and 👀 acknowledges), open to anybody
/// (`--status-public`) because a headless browser cannot type a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: run scripts/browser-check.sh"]
async fn the_status_page_shows_the_clocks_by_time_left_and_keeps_secrets_in_a_browser() {
    use std::time::Duration;

    use common::slack_server::{close, label, of_issue, start_with_status_page};
    use common::{HIGHEST, wait_until};
    use labelwarden::server::status::StatusAccess;
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let setup = start_with_status_page(
        &dir.path().join("db.sqlite"),
        "policies-status",
        StatusAccess::Public,
    )
    .await;
    let (server, slack) = (setup.server, setup.slack);

    let now = Utc::now();
    let ago = |hours| now - TimeDelta::hours(hours);
    let titled = |iid: u64, labels: &[&str], at, title: &str| {
        let mut event = label(labels, iid, at);
        event["object_attributes"]["title"] = json!(title);
        event
    };
    let deliveries = [
        titled(1, &[HIGHEST], ago(20), "Checkout fails for every customer"),
        titled(2, &[HIGHEST], ago(3), "Search is slow"),
        titled(
            3,
            &[HIGHEST, "blocked::upstream"],
            ago(10),
            "Payment provider outage",
        ),
        titled(4, &["triage::urgent"], ago(1), "Login times out"),
        {
            let mut secret = titled(5, &[HIGHEST], ago(22), "Signing key leaked in build logs");
            secret["object_attributes"]["confidential"] = json!(true);
            secret
        },
        titled(6, &[HIGHEST], ago(30), "Export broken"),
    ];
    for (n, delivery) in deliveries.iter().enumerate() {
        assert_eq!(server.deliver(&format!("browser-{n}"), delivery).await, 200);
    }
    assert_eq!(
        server
            .deliver("browser-close", &close(&[HIGHEST], 2, ago(3)))
            .await,
        200
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            !of_issue(&slack, "#alerts", 1).is_empty()
        })
        .await
    );
    let parent = of_issue(&slack, "#alerts", 1).remove(0);
    let eyes = common::fake_slack::reaction_event(
        "EvBrowser1",
        "reaction_added",
        "U0USER001",
        "eyes",
        "C0ALERTS",
        &parent.ts,
    );
    server.slack_event_now(&eyes).await;
    let url = format!("{}/status", server.address);
    let mut ready = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !ready && tokio::time::Instant::now() < deadline {
        let body = server.get("/status").await.1;
        ready = body.contains("@user1, <time") && body.contains("archives/C0ALERTS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "the acknowledgement and the thread link reach the page"
    );

    let (dom, _) = chromium(&["--dump-dom", &url]);
    let open = &dom[dom.find("<table id=\"open\">").expect("the open clocks")..];
    let open = &open[..open.find("</table>").unwrap()];
    let order: Vec<usize> = [6, 4, 5, 1, 3]
        .iter()
        .map(|iid| {
            open.find(&format!("{PROJECT}#{iid}</a>"))
                .unwrap_or_else(|| panic!("#{iid} open: {open}"))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "by time left: breached #6 and #4, then #5 (2h left), #1 (4h), paused #3: {open}"
    );
    assert!(
        !open.contains(&format!("{PROJECT}#2</a>")),
        "a met clock is not open"
    );
    assert!(dom.contains("Checkout fails for every customer"));
    assert!(
        !dom.contains("Signing key leaked") && dom.contains("(confidential issue)"),
        "a confidential title stays out"
    );
    let local_times = dom.matches("data-local=\"\">").count();
    assert!(local_times > 5, "{dom}");
    assert!(
        !dom.contains(" UTC</time>"),
        "the script wrote every time in the viewer's zone"
    );

    // Without script a browser shows the page as served (headless
    // Chromium cannot dump the DOM with script off): UTC times and the
    // time left as of the render.
    let plain = server.get("/status").await.1;
    assert!(
        plain.contains(" UTC</time>") && plain.contains(" left</span>"),
        "without script the page says the time left and UTC times: {plain}"
    );

    let (_, log) = chromium(&["--enable-logging=stderr", "--v=0", "--dump-dom", &url]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");

    screenshot(&url, "status-page", "1280,1000");
    server.stop().await;
}
