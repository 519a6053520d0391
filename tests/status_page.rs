//! The status page end to end: the in-process server with the real Slack
//! notifier on a fake Slack, an alert acknowledged with 👀, and the page
//! read over HTTP as a browser or a script would, with and without the
//! token.

mod common;

use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use common::fake_slack;
use common::slack_server::{label, of_issue, start_with_status_page};
use common::{HIGHEST, Options, Server, wait_until};
use labelwarden::server::status::StatusAccess;
use secrecy::SecretString;
use serde_json::json;

const STATUS_TOKEN: &str = "status-page-token-5f1e";

async fn get(server: &Server, path: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut request = server.http.get(format!("{}{path}", server.address));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.unwrap()
}

fn basic(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

#[tokio::test]
async fn the_page_needs_its_token_and_shows_the_clock_its_slack_thread_and_who_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let setup = start_with_status_page(
        &dir.path().join("db.sqlite"),
        "policies-slack",
        StatusAccess::Token(SecretString::from(STATUS_TOKEN)),
    )
    .await;
    let (server, slack) = (setup.server, setup.slack);

    let now = Utc::now();
    server
        .deliver("status-70", &label(&[HIGHEST], 70, now))
        .await;
    let mut secret = label(&[HIGHEST], 71, now);
    secret["object_attributes"]["confidential"] = json!(true);
    secret["object_attributes"]["title"] = json!("Payroll export leaks salaries");
    server.deliver("status-71", &secret).await;
    assert!(
        wait_until(Duration::from_secs(20), || {
            !of_issue(&slack, "#alerts", 70).is_empty()
        })
        .await
    );
    let parent = of_issue(&slack, "#alerts", 70).remove(0);
    let eyes = fake_slack::reaction_event(
        "EvStatus1",
        "reaction_added",
        "U0USER001",
        "eyes",
        "C0ALERTS",
        &parent.ts,
    );
    server.slack_event_now(&eyes).await;

    // Nobody reads it without the token.
    let refused = get(&server, "/status", None).await;
    assert_eq!(refused.status(), 401);
    let challenges: Vec<&str> = refused
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic ")),
        "a browser asks for it: {challenges:?}"
    );
    let body = refused.text().await.unwrap();
    assert!(!body.contains("acme/backend"), "{body}");
    for wrong in [
        "Bearer not-the-token".to_owned(),
        basic(&format!("{STATUS_TOKEN}:")),
        basic("admin:not-the-token"),
        format!("Bearer {}", common::ADMIN_TOKEN),
    ] {
        assert_eq!(
            get(&server, "/status", Some(&wrong)).await.status(),
            401,
            "{wrong}"
        );
    }

    // With it: the clock, the thread linked once the workspace is known,
    // and who acknowledged it.
    let thread_link = format!(
        "https://acme.slack.com/archives/C0ALERTS/p{}",
        parent.ts.replace('.', "")
    );
    let bearer = format!("Bearer {STATUS_TOKEN}");
    let mut page = String::new();
    let mut shown = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !shown && tokio::time::Instant::now() < deadline {
        page = get(&server, "/status", Some(&bearer))
            .await
            .text()
            .await
            .unwrap();
        shown = page.contains(&thread_link)
            && page.contains("@user1, <time")
            && page.contains(">acme/backend#71<");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shown, "{page}");
    assert!(page.contains(">acme/backend#70<"));
    assert!(
        page.contains(">acme/backend#71<"),
        "the confidential issue's clock is there"
    );
    assert!(!page.contains("Payroll"), "but not its title:\n{page}");
    assert!(
        !page.contains(STATUS_TOKEN),
        "the token is never in the page"
    );

    let answer = get(
        &server,
        "/",
        Some(&basic(&format!("anyone:{STATUS_TOKEN}"))),
    )
    .await;
    assert_eq!(answer.status(), 200);
    let headers = answer.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(answer.text().await.unwrap().contains(">acme/backend#70<"));
    server.stop().await;
}

#[tokio::test]
async fn without_the_flag_there_is_no_status_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server(
        common::fixture_policies("policies-slack"),
        &common::sqlite(&dir.path().join("db.sqlite")),
        labelwarden::notify::LogNotifier,
        Options::default(),
    )
    .await;
    let answer = get(&server, "/status", Some(&format!("Bearer {STATUS_TOKEN}"))).await;
    assert_eq!(answer.status(), 404);
    assert_eq!(get(&server, "/", None).await.status(), 404);
    server.stop().await;
}
