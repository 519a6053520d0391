//! GitLab comments reaching the alert thread, end to end: the in-process
//! server with the real Slack notifier on a fake Slack, GitLab's documented
//! `Note Hook` payload (moved onto the test's issue), and what the fake
//! Slack received. Policies: `fixtures/policies-slack`, whose
//! `fast-critical` posts in `#alerts` and `fast-security` in a private
//! channel, both with `from_gitlab.mirror_comments`.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::fake_slack::{self, Message};
use common::notes::{comment, note_hook};
use common::slack_server::{channel, label, of_issue, start_unlimited};
use common::{HIGHEST, wait_until};
use serde_json::json;

/// The replies in the thread of `parent` that carry a comment.
fn comments_in(
    slack: &common::fake_slack::FakeSlack,
    name: &str,
    parent: &Message,
) -> Vec<Message> {
    channel(slack, name)
        .into_iter()
        .filter(|m| m.thread_ts.as_deref() == Some(parent.ts.as_str()))
        .filter(|m| m.text.contains(":speech_balloon:"))
        .collect()
}

#[tokio::test]
async fn a_comment_reaches_the_alert_thread_once_with_its_author_excerpt_and_link() {
    let (_dir, setup) = start_unlimited().await;
    let (server, slack) = (setup.server, setup.slack);
    server
        .deliver("c-1", &label(&[HIGHEST], 80, Utc::now()))
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || {
            !of_issue(&slack, "#alerts", 80).is_empty()
        })
        .await
    );
    let parent = of_issue(&slack, "#alerts", 80).remove(0);

    let hook = note_hook(
        80,
        5001,
        "Rolled back the deploy; <b>errors</b> are down & recovering.",
        "ada",
    );
    assert_eq!(comment(&server, "Note Hook", "n-1", &hook).await.0, 200);
    // GitLab delivering it again (a retry, or the same note under a new
    // delivery id) says nothing more.
    assert_eq!(comment(&server, "Note Hook", "n-1", &hook).await.0, 200);
    assert_eq!(comment(&server, "Note Hook", "n-1b", &hook).await.0, 200);
    assert!(
        wait_until(Duration::from_secs(20), || {
            !comments_in(&slack, "#alerts", &parent).is_empty()
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let said = comments_in(&slack, "#alerts", &parent);
    assert_eq!(said.len(), 1, "{said:#?}");
    let text = said[0].blocks.to_string();
    assert!(text.contains("*ada (name)*"), "{text}");
    assert!(
        text.contains("&lt;b&gt;errors&lt;/b&gt; are down &amp; recovering"),
        "escaped for Slack: {text}"
    );
    assert!(
        text.contains("https://gitlab.example.com/acme/backend/-/issues/80#note_5001"),
        "{text}"
    );
    assert!(!said[0].broadcast);
    server.stop().await;
}

#[tokio::test]
async fn an_internal_note_goes_only_to_private_channels_and_labelwarden_s_own_notes_and_edits_nowhere()
 {
    let (_dir, setup) = start_unlimited().await;
    let (server, slack) = (setup.server, setup.slack);
    server
        .deliver("c-2", &label(&[HIGHEST, "security"], 81, Utc::now()))
        .await;
    let security = fake_slack::channel_id("C0SECURITY");
    let first_in = |name: &str| {
        channel(&slack, name)
            .into_iter()
            .find(|m| m.thread_ts.is_none() && m.text.contains("acme/backend#81"))
    };
    assert!(
        wait_until(Duration::from_secs(20), || {
            first_in("#alerts").is_some() && first_in(&security).is_some()
        })
        .await
    );
    let (alerts, private) = (first_in("#alerts").unwrap(), first_in(&security).unwrap());

    let mut internal = note_hook(81, 6001, "Customer data involved: ticket 4411", "grace");
    internal["object_attributes"]["internal"] = json!(true);
    assert_eq!(
        comment(&server, "Confidential Note Hook", "n-2", &internal)
            .await
            .0,
        200
    );
    // labelwarden's own note (here one it mirrored from Slack) and an edit
    // of a comment are not posted anywhere.
    let own = note_hook(
        81,
        6002,
        "> looking into it\n\n<!-- labelwarden:slack {\"said\":\"reply\"} -->",
        "labelwarden-bot",
    );
    assert_eq!(comment(&server, "Note Hook", "n-3", &own).await.0, 200);
    let mut edited = note_hook(81, 6003, "Typo fixed", "grace");
    edited["object_attributes"]["action"] = json!("update");
    assert_eq!(comment(&server, "Note Hook", "n-4", &edited).await.0, 200);
    // A public comment after them, so that once it is in, they had their turn.
    let public = note_hook(81, 6004, "Fix deployed", "grace");
    assert_eq!(comment(&server, "Note Hook", "n-5", &public).await.0, 200);

    assert!(
        wait_until(Duration::from_secs(20), || {
            comments_in(&slack, "#alerts", &alerts).len() == 1
                && comments_in(&slack, &security, &private).len() == 2
        })
        .await,
        "alerts: {:#?}\nprivate: {:#?}",
        comments_in(&slack, "#alerts", &alerts),
        comments_in(&slack, &security, &private)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let public_said = comments_in(&slack, "#alerts", &alerts);
    assert_eq!(public_said.len(), 1);
    assert!(
        public_said[0].text.contains("Fix deployed")
            || public_said[0].blocks.to_string().contains("Fix deployed")
    );
    let everything = format!("{:?}", channel(&slack, "#alerts"));
    assert!(!everything.contains("ticket 4411"), "{everything}");
    let private_said: Vec<String> = comments_in(&slack, &security, &private)
        .iter()
        .map(|m| m.blocks.to_string())
        .collect();
    assert!(private_said[0].contains("ticket 4411"), "{private_said:?}");
    assert!(private_said[1].contains("Fix deployed"));
    let all = format!("{:?}", slack.messages());
    assert!(
        !all.contains("looking into it") && !all.contains("Typo fixed"),
        "{all}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_comment_on_an_issue_without_a_live_clock_or_on_a_merge_request_is_acknowledged_and_dropped()
 {
    let (_dir, setup) = start_unlimited().await;
    let (server, slack) = (setup.server, setup.slack);
    let unknown = note_hook(82, 7001, "Anyone?", "ada");
    let (status, body) = comment(&server, "Note Hook", "n-6", &unknown).await;
    assert_eq!(status, 200);
    assert!(body.contains("ignored"), "{body}");
    let mut on_merge_request = note_hook(82, 7002, "LGTM", "ada");
    on_merge_request["object_attributes"]["noteable_type"] = json!("MergeRequest");
    let (status, body) = comment(&server, "Note Hook", "n-7", &on_merge_request).await;
    assert_eq!(status, 200);
    assert!(body.contains("not a comment on an issue"), "{body}");
    let (status, _) = comment(&server, "Note Hook", "n-8", &json!({"object_kind": "note"})).await;
    assert_eq!(status, 400, "a malformed delivery");
    assert!(slack.messages().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_comment_from_a_project_renamed_since_the_alert_reaches_the_thread() {
    let (_dir, setup) = start_unlimited().await;
    let (server, slack) = (setup.server, setup.slack);
    server
        .deliver("c-r", &label(&[HIGHEST], 83, Utc::now()))
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || {
            !of_issue(&slack, "#alerts", 83).is_empty()
        })
        .await
    );
    let parent = of_issue(&slack, "#alerts", 83).remove(0);
    // The project was renamed; the comment names the new path, and the
    // same project id. No issue delivery has told labelwarden yet.
    let mut hook = note_hook(83, 8001, "Renamed the repo, still on it.", "ada");
    hook["project"]["path_with_namespace"] = json!("acme/backend-services");
    let (status, body) = comment(&server, "Note Hook", "n-r", &hook).await;
    assert_eq!((status, body.contains("accepted")), (200, true), "{body}");
    assert!(
        wait_until(Duration::from_secs(20), || {
            !comments_in(&slack, "#alerts", &parent).is_empty()
        })
        .await,
        "the comment reaches the thread the issue's alert started"
    );
    server.stop().await;
}
