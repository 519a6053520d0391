//! Slack as the front door, end to end: a person's message in `#alerts`
//! (a channel with `opens_issues` in `fixtures/policies-slack`), the raise
//! reaction on it as a signed Slack event, the issue created on a fake
//! GitLab, the link replied in the message's thread, and the issue's clock
//! (GitLab's webhook for it) escalating in that same thread.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::fake_gitlab::{FakeGitLab, FakeIssue};
use common::fake_slack::{self, FakeSlack, Message, reaction_event};
use common::slack_server::start_with_gitlab;
use common::{Options, Server, issue_event, wait_until};
use serde_json::Value;

const PERSON: &str = "U0USER001";
const RESPONDER: &str = "U0RESPOND1";

struct Setup {
    server: Server,
    slack: FakeSlack,
    gitlab: FakeGitLab,
    _dir: tempfile::TempDir,
}

async fn start() -> Setup {
    let slack = FakeSlack::start().await;
    slack.slack.add_channel("alerts", false, true);
    slack.slack.add_channel("triage", false, true);
    let gitlab = FakeGitLab::start().await;
    // The project exists, with an issue of its own.
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 1, Utc::now()));
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_gitlab(
        &dir.path().join("db.sqlite"),
        &slack.api_url,
        &gitlab.url,
        Options::default(),
    )
    .await;
    Setup {
        server,
        slack: slack.slack,
        gitlab: gitlab.gitlab,
        _dir: dir,
    }
}

fn raise(event_id: &str, user: &str, message: &Message) -> Value {
    reaction_event(
        event_id,
        "reaction_added",
        user,
        "rotating_light",
        &message.channel,
        &message.ts,
    )
}

/// Messages in the thread of `parent`.
fn thread(slack: &FakeSlack, parent: &Message) -> Vec<Message> {
    slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.as_deref() == Some(parent.ts.as_str()))
        .collect()
}

#[tokio::test]
async fn a_raised_message_becomes_one_issue_and_its_thread_is_the_issue_s_alert_thread() {
    let Setup {
        server,
        slack,
        gitlab,
        _dir,
    } = start().await;
    let said = slack.say(
        PERSON,
        "#alerts",
        "Checkout is down for EU customers\nErrors since 14:00 <!here>",
    );
    server
        .slack_event_now(&raise("EvRaise1", RESPONDER, &said))
        .await;
    let created = || {
        gitlab
            .issues_of("acme/backend")
            .into_iter()
            .filter(|i| i.iid != 1)
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(20), || !created().is_empty()).await,
        "{:?}",
        gitlab.requests()
    );
    let issue = created().remove(0);
    assert_eq!(issue.title, "Checkout is down for EU customers");
    assert_eq!(issue.labels, ["priority::highest", "type::bug"]);
    assert!(!issue.confidential, "#alerts is not private");
    let permalink = format!(
        "https://acme.slack.com/archives/C0ALERTS/p{}",
        said.ts.replace('.', "")
    );
    assert!(
        issue.description.contains(&permalink),
        "{}",
        issue.description
    );
    assert!(issue.description.contains("> Errors since 14:00"));
    assert!(
        issue
            .description
            .contains("labelwarden:raised channel=C0ALERTS")
    );

    // The link is replied in the message's thread.
    let link = format!("/acme/backend/-/issues/{}", issue.iid);
    assert!(
        wait_until(Duration::from_secs(20), || {
            thread(&slack, &said).iter().any(|m| m.text.contains(&link))
        })
        .await
    );

    // Slack retrying the event, and a second person raising it, make
    // nothing more.
    server
        .slack_event_now(&raise("EvRaise1", RESPONDER, &said))
        .await;
    server
        .slack_event_now(&raise("EvRaise2", PERSON, &said))
        .await;

    // GitLab's webhook for the new issue starts its clock (2 s): its
    // alerts go into the person's thread, not to a new parent.
    let now = Utc::now();
    let labels = ["priority::highest", "type::bug"];
    assert_eq!(
        server
            .deliver(
                "raised-issue",
                &issue_event(issue.iid, now, now, &[], &labels, false)
            )
            .await,
        200
    );
    let reference = format!("acme/backend#{}", issue.iid);
    let breach_in_thread = || {
        thread(&slack, &said)
            .iter()
            .any(|m| m.text.contains(&reference) && m.text.to_lowercase().contains("breach"))
    };
    assert!(
        wait_until(Duration::from_secs(20), breach_in_thread).await,
        "{:#?}",
        slack.messages()
    );
    let parents: Vec<Message> = slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.is_none() && m.text.contains(&reference))
        .collect();
    assert!(parents.is_empty(), "no second parent: {parents:#?}");
    assert_eq!(created().len(), 1, "one issue");
    let replies_with_link = thread(&slack, &said)
        .iter()
        .filter(|m| m.text.contains(":ticket:"))
        .count();
    assert_eq!(replies_with_link, 1, "the link is replied once");
    server.stop().await;
}

#[tokio::test]
async fn a_message_that_links_an_issue_adopts_it_and_labelwarden_s_own_posts_raise_nothing() {
    let Setup {
        server,
        slack,
        gitlab,
        _dir,
    } = start().await;
    let said = slack.say(
        PERSON,
        "#alerts",
        "Payments failing, see <https://gitlab.example.com/acme/backend/-/issues/1|acme/backend#1>",
    );
    server
        .slack_event_now(&raise("EvAdopt1", RESPONDER, &said))
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || {
            thread(&slack, &said)
                .iter()
                .any(|m| m.text.contains("/acme/backend/-/issues/1|acme/backend#1"))
        })
        .await,
        "{:#?}",
        slack.messages()
    );
    // A message in a channel that opens no issues raises nothing.
    let elsewhere = slack.say(PERSON, "#triage", "Search is slow");
    server
        .slack_event_now(&raise("EvElsewhere", RESPONDER, &elsewhere))
        .await;
    // Nor does a reply in a thread (the adoption's own reply, here).
    let ticket = thread(&slack, &said).remove(0);
    server
        .slack_event_now(&raise("EvOwn", RESPONDER, &ticket))
        .await;
    // A control raise after them: once it is done, they had their turn.
    let control = slack.say(PERSON, "#alerts", "Control: login broken");
    server
        .slack_event_now(&raise("EvControl", RESPONDER, &control))
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || {
            gitlab
                .issues_of("acme/backend")
                .iter()
                .any(|i| i.title == "Control: login broken")
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let titles: Vec<String> = gitlab
        .issues_of("acme/backend")
        .into_iter()
        .map(|i| i.title)
        .collect();
    assert_eq!(
        titles.len(),
        2,
        "the adopted #1 and the control: {titles:?}"
    );
    assert!(thread(&slack, &elsewhere).is_empty());
    server.stop().await;
}

/// `app_mention` as Slack sends it for `@labelwarden issue …` replied in
/// the thread of `parent`.
fn mention(event_id: &str, user: &str, parent: &Message, ts: &str, text: &str) -> Value {
    let now = Utc::now().timestamp();
    serde_json::json!({
        "token": "unused", "team_id": "T0TEST", "api_app_id": "A0TEST",
        "type": "event_callback", "event_id": event_id, "event_time": now,
        "authorizations": [{ "team_id": "T0TEST", "user_id": fake_slack::BOT_USER, "is_bot": true }],
        "event": {
            "type": "app_mention", "user": user, "text": text, "ts": ts,
            "channel": parent.channel, "thread_ts": parent.ts, "event_ts": ts,
        },
    })
}

#[tokio::test]
async fn the_bot_mentioned_with_an_issue_command_raises_the_thread_s_message_with_its_labels() {
    let Setup {
        server,
        slack,
        gitlab,
        _dir,
    } = start().await;
    let said = slack.say(PERSON, "#alerts", "Login page returns 500 for SSO users");
    let text = format!(
        "<@{}> issue urgency::highest security",
        fake_slack::BOT_USER
    );
    let asked = slack.reply(RESPONDER, &said, &text);
    server
        .slack_event_now(&mention("EvMention1", RESPONDER, &said, &asked, &text))
        .await;
    // A mention that is no command does nothing.
    let chat = format!("<@{}> thanks!", fake_slack::BOT_USER);
    let thanked = slack.reply(RESPONDER, &said, &chat);
    server
        .slack_event_now(&mention("EvMention2", RESPONDER, &said, &thanked, &chat))
        .await;
    let raised = || {
        gitlab
            .issues_of("acme/backend")
            .into_iter()
            .find(|i| i.title == "Login page returns 500 for SSO users")
    };
    assert!(wait_until(Duration::from_secs(20), || raised().is_some()).await);
    assert_eq!(
        raised().unwrap().labels,
        ["urgency::highest", "security"],
        "the command's labels, not the channel's"
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            thread(&slack, &said)
                .iter()
                .any(|m| m.text.contains(":ticket:"))
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gitlab.issues_of("acme/backend").len(),
        2,
        "#1 and the raised one"
    );
    server.stop().await;
}
