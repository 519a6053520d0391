//! labelwarden's Slack Web API client and incoming webhooks against the
//! fake Slack, call by call: listings followed by cursor however Slack
//! pages them, lookups that see a whole long thread, Slack's limits on a
//! message, and secrets kept out of errors.

mod common;

use chrono::Utc;
use common::fake_slack::{FakeSlack, Running, TOKEN};
use labelwarden::slack::message::Message as SlackMessage;
use labelwarden::slack::webhook::IncomingWebhook;
use secrecy::SecretString;

/// labelwarden's Web API client for the fake at `api_url`.
fn web_api(api_url: &str) -> labelwarden::slack::api::WebApi {
    labelwarden::slack::api::WebApi::new(
        labelwarden::http_client::builder().build().unwrap(),
        api_url,
        SecretString::from(TOKEN.to_owned()),
    )
}

/// A parent in `#alerts` with `replies` replies, keyed `key-1`, `key-2`, …
async fn thread_with_replies(
    api: &labelwarden::slack::api::WebApi,
    replies: u32,
) -> labelwarden::notice::Thread {
    let message = |text: &str| SlackMessage {
        text: text.to_owned(),
        blocks: Vec::new(),
    };
    let posted = api
        .post_message("#alerts", &message("parent"), None, false, "key-parent")
        .await
        .unwrap();
    let thread = labelwarden::notice::Thread {
        channel_id: posted.channel_id.clone(),
        ts: posted.ts.clone(),
    };
    for n in 1..=replies {
        api.post_message(
            "#alerts",
            &message("reply"),
            Some(&thread),
            false,
            &format!("key-{n}"),
        )
        .await
        .unwrap();
    }
    thread
}

#[tokio::test]
async fn looking_for_a_posted_message_follows_slack_s_cursor() {
    // Slack may answer a listing in pages smaller than asked; the fake is
    // told to answer two messages a page. A takeover must still find a
    // reply that went out, or it would post it twice.
    let Running { slack, api_url, .. } = FakeSlack::start().await;
    slack.page_cap(2);
    let api = web_api(&api_url);
    let thread = thread_with_replies(&api, 6).await;
    let last = slack.messages().last().unwrap().ts.clone();
    let found = api
        .find_posted(&thread.channel_id, Some(&thread), Utc::now(), "key-6")
        .await
        .unwrap();
    assert_eq!(found, Some(last));
    let listed = slack
        .requests()
        .iter()
        .filter(|r| r.method == "conversations.replies")
        .count();
    assert!(
        listed >= 4,
        "seven messages, two a page: {listed} pages read"
    );
    let none = api
        .find_posted(&thread.channel_id, Some(&thread), Utc::now(), "key-7")
        .await
        .unwrap();
    assert_eq!(none, None);
}

/// A takeover looks for what went out before it in the thread: in
/// a thread of 500 replies (a long storm's list, a month of reminders), it
/// finds the first reply and the last, and a key never posted is not found.
#[tokio::test]
async fn a_lookup_sees_a_whole_500_reply_thread() {
    let Running { slack, api_url, .. } = FakeSlack::start().await;
    let api = web_api(&api_url);
    let thread = thread_with_replies(&api, 500).await;
    let replies: Vec<String> = slack
        .messages()
        .iter()
        .filter(|m| m.thread_ts.is_some())
        .map(|m| m.ts.clone())
        .collect();
    for (key, expected) in [
        ("key-1", Some(replies[0].clone())),
        ("key-500", Some(replies[499].clone())),
        ("key-501", None),
    ] {
        let found = api
            .find_posted(&thread.channel_id, Some(&thread), Utc::now(), key)
            .await
            .unwrap();
        assert_eq!(found, expected, "{key}");
    }
    let posted_in_thread = api.posted_in_thread(&thread).await.unwrap();
    assert_eq!(posted_in_thread.len(), 501, "the parent and every reply");
}

/// Slack refuses a message over its documented limits (the fake as Slack
/// does): more than 50 blocks, or a section's text over 3 000 characters,
/// is `invalid_blocks`; text over 40 000 characters is `msg_too_long`.
/// labelwarden reads each as a refusal, not as a problem of Slack's.
#[tokio::test]
async fn a_message_over_slack_s_limits_is_refused_as_slack_refuses_it() {
    let Running { api_url, .. } = FakeSlack::start().await;
    let api = web_api(&api_url);
    let section = |text: String| serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": text}});
    let cases = [
        (
            "51 blocks",
            SlackMessage {
                text: "many".into(),
                blocks: (0..51).map(|n| section(format!("block {n}"))).collect(),
            },
            "invalid_blocks",
        ),
        (
            "a long section",
            SlackMessage {
                text: "long".into(),
                blocks: vec![section("x".repeat(3_001))],
            },
            "invalid_blocks",
        ),
        (
            "long text",
            SlackMessage {
                text: "y".repeat(40_001),
                blocks: vec![],
            },
            "msg_too_long",
        ),
    ];
    for (what, message, code) in cases {
        let error = api
            .post_message("#alerts", &message, None, false, what)
            .await
            .expect_err(what);
        assert_eq!(error.code(), code, "{what}");
        assert!(!error.is_temporary(), "{what}");
    }
    let within = SlackMessage {
        text: "z".repeat(40_000),
        blocks: (0..50).map(|_| section("w".repeat(3_000))).collect(),
    };
    api.post_message("#alerts", &within, None, false, "within")
        .await
        .expect("at the limits exactly");
}

#[tokio::test]
async fn an_incoming_webhook_s_url_stays_out_of_errors() {
    // Nothing listens on port 9: the connection is refused.
    let secret = "T0SECRET/B0SECRET/verysecretpart";
    let webhook = IncomingWebhook::new(
        labelwarden::http_client::builder().build().unwrap(),
        SecretString::from(format!("http://127.0.0.1:9/services/{secret}")),
    );
    let message = SlackMessage {
        text: "hello".into(),
        blocks: vec![],
    };
    let error = webhook.post(&message).await.expect_err("nothing listens");
    assert!(error.is_temporary());
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("verysecretpart"), "{shown}");
}
