//! Slack end to end: the real server and the real Slack notifier against a
//! local fake Slack that answers as Slack documents (`tests/common/fake_slack.rs`).
//! Policies run on a 2-second clock (`fixtures/policies-slack`).

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::fake_slack::{self, FakeSlack, Message, Running, TOKEN};
use common::{
    HIGHEST, Options, Server, fixture_policies, fixtures, issue_event, sqlite, start_server,
    wait_until,
};
use labelwarden::jobs::outbox::RetryPolicy;
use labelwarden::slack::message::Message as SlackMessage;
use labelwarden::slack::webhook::IncomingWebhook;
use labelwarden::slack::{SlackNotifier, SlackSettings};
use labelwarden::store::sql::SqlStore;
use secrecy::SecretString;
use serde_json::{Value, json};

const WEBHOOK_ENV: &str = "LABELWARDEN_TEST_STATUS_WEBHOOK";
const STAFF_WEBHOOK_ENV: &str = "LABELWARDEN_TEST_STAFF_WEBHOOK";

struct Setup {
    server: Server,
    slack: FakeSlack,
}

/// The server with a Slack notifier pointed at a fresh fake Slack.
async fn start(database: &Path, per_channel_per_second: u32, retry: RetryPolicy) -> Setup {
    start_with_webhooks(database, per_channel_per_second, retry, |running| {
        let staff = running
            .slack
            .incoming_webhook("#status-staff", "staffWebhookPart");
        (running.webhook_url.clone(), staff)
    })
    .await
}

/// The same, with the incoming webhook URLs of `#status` and
/// `#status-staff` that `webhooks` gives (made on the fake, or not).
async fn start_with_webhooks(
    database: &Path,
    per_channel_per_second: u32,
    retry: RetryPolicy,
    webhooks: impl FnOnce(&Running) -> (String, String),
) -> Setup {
    let running = FakeSlack::start().await;
    let (status, staff) = webhooks(&running);
    let Running { slack, api_url, .. } = running;
    let policies = fixture_policies("policies-slack");
    let settings = SlackSettings {
        api_url,
        token: Some(SecretString::from(TOKEN.to_owned())),
        webhook_urls: BTreeMap::from([
            (WEBHOOK_ENV.to_owned(), SecretString::from(status)),
            (STAFF_WEBHOOK_ENV.to_owned(), SecretString::from(staff)),
        ]),
        per_channel_per_second: NonZeroU32::new(per_channel_per_second).unwrap(),
        per_channel_burst: NonZeroU32::MIN,
    };
    let notifier = SlackNotifier::new(Arc::clone(&policies), settings).expect("notifier");
    let options = Options {
        retry,
        ..Options::default()
    };
    let server = start_server(policies, &sqlite(database), notifier, options).await;
    Setup { server, slack }
}

/// Generous enough never to slow a test down.
const UNLIMITED: u32 = 1_000;

/// The server over a fresh database (kept while the folder is), with no
/// Slack rate limit and the default retries.
async fn start_unlimited() -> (tempfile::TempDir, Setup) {
    let dir = tempfile::tempdir().unwrap();
    let setup = start(
        &dir.path().join("db.sqlite"),
        UNLIMITED,
        RetryPolicy::default(),
    )
    .await;
    (dir, setup)
}

/// Messages of one channel.
fn channel(slack: &FakeSlack, name: &str) -> Vec<Message> {
    let id = fake_slack::channel_id(name);
    slack
        .messages()
        .into_iter()
        .filter(|m| m.channel == id)
        .collect()
}

/// Messages of one issue (by its reference) in one channel.
fn of_issue(slack: &FakeSlack, name: &str, iid: u64) -> Vec<Message> {
    let reference = format!("acme/backend#{iid}");
    channel(slack, name)
        .into_iter()
        .filter(|m| m.text.contains(&reference))
        .collect()
}

fn label(server_labels: &[&str], iid: u64, at: DateTime<Utc>) -> Value {
    issue_event(iid, at, at, &[], server_labels, false)
}

fn close(labels: &[&str], iid: u64, labelled: DateTime<Utc>) -> Value {
    issue_event(iid, labelled, Utc::now(), labels, labels, true)
}

/// What the fake received, one line per message, for the README's example.
fn transcript(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| {
            format!(
                "{} {}{}{}: {}",
                m.ts,
                m.thread_ts
                    .as_ref()
                    .map_or_else(|| "parent".to_owned(), |t| format!("reply in {t}")),
                if m.broadcast {
                    " (also sent to channel)"
                } else {
                    ""
                },
                if m.reactions.is_empty() {
                    String::new()
                } else {
                    format!(" [:{}:]", m.reactions.join(": :"))
                },
                m.text
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_breach_story_is_one_thread_told_in_order() {
    let (_dir, Setup { server, slack }) = start_unlimited().await;
    let labelled = Utc::now();
    assert_eq!(
        server
            .deliver("story-1", &label(&[HIGHEST], 1, labelled))
            .await,
        200
    );
    // start, warning at 1s, breach at 2s, first reminder at 3s.
    wait_until(Duration::from_secs(6), || {
        of_issue(&slack, "#alerts", 1).len() >= 4
    })
    .await;
    assert_eq!(
        server
            .deliver("story-2", &close(&[HIGHEST], 1, labelled))
            .await,
        200
    );
    wait_until(Duration::from_secs(3), || {
        of_issue(&slack, "#alerts", 1)
            .first()
            .is_some_and(|parent| !parent.reactions.is_empty())
            && of_issue(&slack, "#alerts", 1).len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let thread = of_issue(&slack, "#alerts", 1);
    // `cargo test --test slack a_breach_story -- --nocapture` prints what
    // Slack received, call by call (the README's example).
    for request in slack.requests() {
        let body = &request.body;
        println!(
            "{} thread_ts={} reply_broadcast={} name={} text={}",
            request.method, body["thread_ts"], body["reply_broadcast"], body["name"], body["text"]
        );
    }
    assert_eq!(thread.len(), 5, "{}", transcript(&thread));
    let parent = &thread[0];
    assert_eq!(parent.thread_ts, None);
    for reply in &thread[1..] {
        assert_eq!(reply.thread_ts.as_ref(), Some(&parent.ts), "{}", reply.text);
    }
    // The parent: the issue, updated to show the outcome, with the reaction.
    let shown = parent.shown();
    assert!(shown.contains("Checkout broken #1"), "{shown}");
    assert!(
        shown.contains("Resolved") && shown.contains("after the SLA deadline"),
        "{shown}"
    );
    assert_eq!(parent.edits, 1);
    assert_eq!(parent.reactions, vec!["white_check_mark"]);

    let (warning, breach, reminder, resolved) = (&thread[1], &thread[2], &thread[3], &thread[4]);
    assert!(
        warning.text.contains("before the SLA deadline"),
        "{}",
        warning.text
    );
    assert!(
        warning.text.contains("<@U0USER001>"),
        "the assignee is tagged: {}",
        warning.text
    );
    assert!(breach.text.contains("SLA breached"), "{}", breach.text);
    assert!(
        breach
            .text
            .contains("<@U0CONTACT1> <!subteam^S0ONCALL1> <@U0USER001>")
    );
    assert!(breach.broadcast, "the breach is also shown in the channel");
    assert!(!warning.broadcast);
    assert!(
        reminder.text.contains("Still open") && reminder.text.contains("Reminder 1"),
        "{}",
        reminder.text
    );
    assert!(resolved.text.contains("Resolved"), "{}", resolved.text);

    // Safe calls first, the post last.
    let methods: Vec<String> = slack.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage",
            "chat.postMessage",
            "chat.postMessage",
            "chat.postMessage",
            "chat.update",
            "reactions.add",
            "chat.postMessage"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_confidential_issue_shows_only_reference_link_and_sla_outside_private_channels() {
    let (_dir, Setup { server, slack }) = start_unlimited().await;
    let labels = [HIGHEST, "security"];
    let labelled = Utc::now();
    let mut payload = label(&labels, 2, labelled);
    payload["object_attributes"]["confidential"] = json!(true);
    server.deliver("secret-1", &payload).await;
    // start, warning and breach in #alerts; the start in the private channel.
    wait_until(Duration::from_secs(5), || {
        of_issue(&slack, "#alerts", 2).len() >= 3
    })
    .await;
    let mut closing = close(&labels, 2, labelled);
    closing["object_attributes"]["confidential"] = json!(true);
    server.deliver("secret-2", &closing).await;
    wait_until(Duration::from_secs(3), || {
        of_issue(&slack, "#alerts", 2).len() >= 4
    })
    .await;

    let public: Vec<String> = slack
        .requests()
        .iter()
        .filter(|r| r.body["channel"] != json!("C0SECURITY"))
        .map(|r| r.body.to_string())
        .collect();
    assert!(
        public.len() >= 5,
        "start, warning, breach, update, reaction, reply: {public:?}"
    );
    for body in &public {
        for secret in ["Checkout broken", "security", "priority::highest"] {
            assert!(!body.contains(secret), "`{secret}` leaked: {body}");
        }
    }
    let alerts = of_issue(&slack, "#alerts", 2);
    for message in &alerts {
        let shown = message.shown();
        assert!(
            shown.contains("https://gitlab.example.com") || shown.contains("http://example.com"),
            "the link is there: {shown}"
        );
    }
    assert!(alerts[0].shown().contains("(confidential issue)"));
    assert!(
        alerts[2].text.contains("SLA breached"),
        "SLA facts stay: {}",
        alerts[2].text
    );

    let private = channel(&slack, "C0SECURITY");
    assert_eq!(private.len(), 1);
    assert!(
        private[0].shown().contains("Checkout broken #2"),
        "a private channel sees the title"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_issue_made_confidential_later_has_its_earlier_messages_redacted_in_place() {
    let (_dir, Setup { server, slack }) = start_unlimited().await;
    let labels = [HIGHEST, "security"];
    let labelled = Utc::now();
    server
        .deliver("public-76", &label(&labels, 76, labelled))
        .await;
    // The start (parent, in #alerts and in the private channel) and the
    // warning reply go out while the issue is public.
    assert!(
        wait_until(Duration::from_secs(3), || {
            of_issue(&slack, "#alerts", 76).len() >= 2
        })
        .await
    );
    let before = of_issue(&slack, "#alerts", 76);
    assert!(before[0].shown().contains("Checkout broken #76"));
    assert!(before[1].shown().contains("acme/backend#76"));

    let mut secret = issue_event(76, labelled, Utc::now(), &labels, &labels, false);
    secret["object_attributes"]["confidential"] = json!(true);
    secret["changes"]["confidential"] = json!({ "previous": false, "current": true });
    server.deliver("secret-76", &secret).await;
    // The parent and the reply are edited; the breach after it is redacted
    // from the start.
    assert!(
        wait_until(Duration::from_secs(4), || {
            let alerts = of_issue(&slack, "#alerts", 76);
            alerts.len() >= 3 && alerts[0].edits >= 1 && alerts[1].edits >= 1
        })
        .await,
        "{}",
        transcript(&of_issue(&slack, "#alerts", 76))
    );
    let alerts = of_issue(&slack, "#alerts", 76);
    for message in &alerts {
        let shown = message.shown();
        for hidden in ["Checkout broken", "security", "priority::highest"] {
            assert!(!shown.contains(hidden), "`{hidden}` still shown: {shown}");
        }
        assert!(shown.contains("acme/backend#76"), "{shown}");
    }
    assert!(alerts[0].shown().contains("(confidential issue)"));
    assert!(alerts[1].text.contains("deadline"), "{}", alerts[1].text);
    assert_eq!(
        alerts[1].thread_ts.as_ref(),
        Some(&alerts[0].ts),
        "still one thread"
    );
    // The private channel may see the title: not edited.
    let private = channel(&slack, "C0SECURITY");
    assert!(
        private.iter().all(|m| m.edits == 0) && private[0].shown().contains("Checkout broken #76")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_429_is_retried_after_the_time_slack_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    // Backoff alone would retry after 10 ms.
    let retry = RetryPolicy {
        first: Duration::from_millis(10),
        longest: Duration::from_millis(100),
    };
    let Setup { server, slack } = start(&dir.path().join("db.sqlite"), UNLIMITED, retry).await;
    slack.rate_limit(1, 1);
    server
        .deliver("limited-1", &label(&["triage::urgent"], 3, Utc::now()))
        .await;
    wait_until(Duration::from_secs(4), || {
        !channel(&slack, "#triage").is_empty()
    })
    .await;

    let posts: Vec<_> = slack
        .requests()
        .into_iter()
        .filter(|r| r.method == "chat.postMessage")
        .collect();
    assert_eq!(posts[0].status, 429);
    assert_eq!(posts[1].status, 200);
    let waited = posts[1].at - posts[0].at;
    assert!(
        waited >= Duration::from_millis(1_000) && waited < Duration::from_millis(1_800),
        "Retry-After: 1 honoured: {waited:?}"
    );
    assert_eq!(channel(&slack, "#triage").len(), 1, "sent once");
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(
            "labelwarden_slack_requests_total{method=\"chat.postMessage\",outcome=\"rate_limited\"}"
        ),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn each_channel_gets_about_one_message_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { server, slack } =
        start(&dir.path().join("db.sqlite"), 1, RetryPolicy::default()).await;
    let now = Utc::now();
    for iid in [4, 5, 6] {
        server
            .deliver(
                &format!("paced-{iid}"),
                &label(&["triage::urgent"], iid, now),
            )
            .await;
    }
    wait_until(Duration::from_secs(5), || {
        channel(&slack, "#triage").len() >= 3
    })
    .await;
    let times: Vec<_> = slack
        .requests()
        .into_iter()
        .filter(|r| r.method == "chat.postMessage" && r.status == 200)
        .map(|r| r.at)
        .collect();
    assert!(times.len() >= 3, "{times:?}");
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(900),
            "{:?} between posts",
            pair[1] - pair[0]
        );
    }
    server.stop().await;
}

/// Production retries after 1 s, doubling to 5 min. Here both and the
/// outage are 250 times shorter: a 10-minute outage lasts 2.4 s, retries
/// start at 4 ms and are capped at 1.2 s.
#[tokio::test]
async fn a_ten_minute_outage_ends_with_every_message_delivered_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let retry = RetryPolicy {
        first: Duration::from_millis(4),
        longest: Duration::from_millis(1_200),
    };
    let Setup { server, slack } = start(&dir.path().join("db.sqlite"), UNLIMITED, retry).await;
    slack.outage(Duration::from_millis(2_400));
    let labelled = Utc::now();
    let issues = [10, 11, 12, 13, 14];
    for iid in issues {
        server
            .deliver(&format!("outage-{iid}"), &label(&[HIGHEST], iid, labelled))
            .await;
    }
    // start, warning and breach all fall due during the outage.
    wait_until(Duration::from_secs(8), || {
        issues
            .iter()
            .all(|iid| of_issue(&slack, "#alerts", *iid).len() >= 3)
    })
    .await;
    for iid in issues {
        server
            .deliver(
                &format!("outage-close-{iid}"),
                &close(&[HIGHEST], iid, labelled),
            )
            .await;
    }
    wait_until(Duration::from_secs(5), || {
        issues.iter().all(|iid| {
            of_issue(&slack, "#alerts", *iid)
                .first()
                .is_some_and(|parent| !parent.reactions.is_empty())
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused = slack.requests().iter().filter(|r| r.status == 503).count();
    assert!(
        refused >= issues.len(),
        "the outage was felt: {refused} calls refused"
    );
    for iid in issues {
        let thread = of_issue(&slack, "#alerts", iid);
        let story = transcript(&thread);
        let parent = &thread[0];
        // The parent (the start step's message) now shows the outcome.
        assert!(
            parent.thread_ts.is_none() && parent.text.contains("Resolved"),
            "{story}"
        );
        assert!(
            thread[1..]
                .iter()
                .all(|m| m.thread_ts.as_ref() == Some(&parent.ts)),
            "{story}"
        );
        // The warning, sent after the outage: it says it is delayed if the
        // deadline passed meanwhile.
        assert!(
            thread[1].text.contains(":hourglass_flowing_sand:"),
            "{story}"
        );
        assert!(thread[2].text.contains("SLA breached"), "{story}");
        let last = thread.last().unwrap();
        assert!(last.text.contains("Resolved"), "{story}");
        let reminders: Vec<u32> = thread[3..thread.len() - 1]
            .iter()
            .map(|m| {
                assert!(m.text.contains("Still open"), "{story}");
                m.text
                    .split("Reminder ")
                    .nth(1)
                    .and_then(|n| {
                        n.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                            .parse()
                            .ok()
                    })
                    .unwrap_or_else(|| panic!("reminder number in {}", m.text))
            })
            .collect();
        assert!(
            reminders.windows(2).all(|w| w[0] < w[1]),
            "once each, in order: {story}"
        );
        assert_eq!(
            thread
                .iter()
                .filter(|m| m.text.contains("SLA breached"))
                .count(),
            1,
            "{story}"
        );
        assert_eq!(parent.edits, 1, "{story}");
    }
    server.assert_outbox_empty().await;
    server.stop().await;
}

#[tokio::test]
async fn a_refused_notice_goes_to_the_fallback_at_once_and_is_resent_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("db.sqlite");
    let retry = RetryPolicy {
        first: Duration::from_millis(10),
        longest: Duration::from_millis(100),
    };
    let Setup { server, slack } = start(&database, UNLIMITED, retry).await;
    slack.refuse("#triage", "is_archived");
    let labelled = Utc::now();
    server
        .deliver("gone-1", &label(&["triage::urgent"], 20, labelled))
        .await;
    assert!(
        wait_until(Duration::from_secs(2), || !channel(
            &slack,
            "#oncall-backup"
        )
        .is_empty())
        .await,
        "the fallback is told at once"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fallback = channel(&slack, "#oncall-backup");
    assert_eq!(fallback.len(), 1, "once, not retried");
    let said = fallback[0].shown();
    assert!(
        said.contains("Checkout broken #20")
            && said.contains("should have gone to `triage`")
            && said.contains("is_archived")
            && said.contains("labelwarden outbox resend --channel triage"),
        "{said}"
    );
    let posts = slack
        .requests()
        .iter()
        .filter(|r| r.method == "chat.postMessage")
        .count();
    assert_eq!(
        posts, 2,
        "one refused by #triage, one to the fallback; no retry"
    );

    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 200, "webhooks are still taken");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["slack"]["status"], "failing", "{ready}");
    let failing = &ready["slack"]["failing"][0];
    assert_eq!(
        (&failing["channel"], &failing["error"], &failing["policy"]),
        (
            &json!("triage"),
            &json!("is_archived"),
            &json!("fast-triage")
        ),
        "{ready}"
    );
    assert_eq!(ready["failed_notices"][0]["works_again"], false, "{ready}");
    let (_, metrics) = server.get("/metrics").await;
    for line in [
        "labelwarden_slack_permanent_errors_total{channel=\"triage\",error=\"is_archived\"} 1",
        "labelwarden_destination_failing{channel=\"triage\"} 1",
        "labelwarden_fallback_notices_total{channel=\"triage\",fallback=\"oncall-backup\"} 1",
        "labelwarden_outbox_failed 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    // The CLI lists the failed start alert by number, from the database
    // serve is using.
    let url = sqlite(&database);
    let listed = common::labelwarden_in_repo(&["outbox", "list", "--failed", "--database", &url]);
    let listed_text = common::text(&listed.stdout);
    assert!(listed.status.success(), "{}", common::text(&listed.stderr));
    let row = listed_text
        .lines()
        .find(|l| l.contains("acme/backend#20"))
        .unwrap_or_else(|| panic!("{listed_text}"));
    assert!(
        row.starts_with("1 ") && row.contains("fast-triage start") && row.contains("is_archived"),
        "{listed_text}"
    );

    // The admin API: refused without the token or with a wrong one; with
    // it, the failed notice and the clock.
    let admin = |path: &str, token: Option<&str>| {
        let mut request = server.http.get(format!("{}{path}", server.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for token in [None, Some("wrong-token")] {
        let refused = admin("/admin/outbox?failed=true", token).await.unwrap();
        assert_eq!(refused.status(), 401, "token {token:?}");
        assert!(!refused.text().await.unwrap().contains("Checkout broken"));
    }
    let failed: Value = admin("/admin/outbox?failed=true", Some(common::ADMIN_TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &failed[0]["id"],
            &failed[0]["channel"],
            &failed[0]["state"]["state"]
        ),
        (&json!(1), &json!("triage"), &json!("failed")),
        "{failed}"
    );
    let clocks: Value = admin(
        "/admin/clocks?policy=fast-triage",
        Some(common::ADMIN_TOKEN),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(clocks[0]["issue"], "acme/backend#20", "{clocks}");
    // And from the CLI, on the database serve is using.
    let listed = common::labelwarden_in_repo(&[
        "clocks",
        "--policies",
        fixtures().join("policies-slack").to_str().unwrap(),
        "--database",
        &url,
    ]);
    let listed_text = common::text(&listed.stdout);
    assert!(listed.status.success(), "{}", common::text(&listed.stderr));
    assert!(
        listed_text
            .lines()
            .any(|l| l.starts_with("acme/backend#20") && l.contains("fast-triage")),
        "{listed_text}"
    );

    // Unarchived: the breach goes out as the thread's first message, and
    // /readyz offers the command that resends what #triage refused.
    slack.stop_refusing("#triage");
    wait_until(Duration::from_secs(3), || {
        !channel(&slack, "#triage").is_empty()
    })
    .await;
    let sent = channel(&slack, "#triage");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].thread_ts.is_none());
    assert!(
        sent[0].shown().contains("SLA breached") && sent[0].shown().contains("Checkout broken #20")
    );
    // The breach is recorded sent just after Slack has it.
    let mut ready = Value::Null;
    for _ in 0..30 {
        let (_, text) = server.get("/readyz").await;
        ready = serde_json::from_str(&text).unwrap();
        if ready["failed_notices"][0]["works_again"] == json!(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready["status"], "degraded",
        "a notice is still unsent: {ready}"
    );
    assert_eq!(
        (
            &ready["failed_notices"][0]["works_again"],
            &ready["failed_notices"][0]["resend"]
        ),
        (
            &json!(true),
            &json!("labelwarden outbox resend --channel triage")
        ),
        "{ready}"
    );

    // Resent by number: the start alert goes out once, in the thread,
    // saying it is late and why; twice resending queues nothing more.
    let resent =
        common::labelwarden_in_repo(&["outbox", "resend", "--id", "1", "--database", &url]);
    assert!(resent.status.success(), "{}", common::text(&resent.stderr));
    let again = common::labelwarden_in_repo(&["outbox", "resend", "--id", "1", "--database", &url]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "nothing failed is left to resend"
    );
    assert!(
        wait_until(Duration::from_secs(3), || channel(&slack, "#triage").len()
            == 2)
        .await,
        "the original is delivered"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = channel(&slack, "#triage");
    assert_eq!(sent.len(), 2, "once");
    assert_eq!(sent[1].thread_ts.as_deref(), Some(sent[0].ts.as_str()));
    assert!(
        sent[1]
            .shown()
            .contains("`triage` refused it when it was due")
            && sent[1].shown().contains("is_archived")
            && sent[1].shown().contains("SLA clock started"),
        "{}",
        sent[1].shown()
    );
    let (_, ready) = server.get("/readyz").await;
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    server.assert_outbox_empty().await;

    // The issue's stored story, while serve runs: what came in, what
    // fired, the start refused for good, resent and sent, in that order.
    let told = common::labelwarden_in_repo(&[
        "clock",
        "acme/backend#20",
        "--policies",
        fixtures().join("policies-slack").to_str().unwrap(),
        "--database",
        &url,
    ]);
    assert!(told.status.success(), "{}", common::text(&told.stderr));
    let told = common::text(&told.stdout);
    assert!(
        told.starts_with("acme/backend#20: Checkout broken #20\n"),
        "{told}"
    );
    let line_of = |kind: &str, what: &str| {
        told.lines()
            .position(|l| l.contains(&format!(" {kind} ")) && l.contains(what))
            .unwrap_or_else(|| panic!("no {kind} line with {what:?} in\n{told}"))
    };
    let order = [
        line_of("received", "labelled triage::urgent"),
        line_of("fired", "fast-triage: start (cycle 1)"),
        line_of("failed", "start to `triage`"),
        line_of("fired", "fast-triage: breach (cycle 1)"),
        line_of("sent", "fast-triage: breach to `triage`"),
        line_of("resent", "fast-triage: start to `triage`, queued again"),
        line_of("sent", "fast-triage: start to `triage`"),
    ];
    assert!(order.is_sorted(), "out of order {order:?}:\n{told}");
    assert!(
        told.lines().any(|l| l.contains(" failed ")
            && l.contains("is_archived")
            && l.ends_with("(notice 1)")),
        "{told}"
    );
    // The same from the admin API, behind the token.
    let refused = admin("/admin/clock?issue=acme/backend%2320", None)
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let story: Value = admin(
        "/admin/clock?issue=acme/backend%2320",
        Some(common::ADMIN_TOKEN),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(story["clocks"][0]["status"], "breached", "{story}");
    let kinds: Vec<&str> = story["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "received", "fired", "failed", "fired", "sent", "resent", "sent"
        ],
        "{story}"
    );
    let unknown = admin(
        "/admin/clock?issue=acme/backend%23999",
        Some(common::ADMIN_TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);
    let malformed = admin("/admin/clock?issue=backend", Some(common::ADMIN_TOKEN))
        .await
        .unwrap();
    assert_eq!(malformed.status(), 422);
    server.stop().await;
}

#[tokio::test]
async fn a_mute_over_a_breach_holds_its_notices_and_says_them_once_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("db.sqlite");
    let Setup { server, slack } = start(&database, UNLIMITED, RetryPolicy::default()).await;
    let url = sqlite(&database);
    let muted = common::labelwarden_in_repo(&[
        "mute",
        "--policy",
        "fast-triage",
        "--until",
        "4s",
        "--reason",
        "deploy window",
        "--database",
        &url,
    ]);
    assert!(muted.status.success(), "{}", common::text(&muted.stderr));
    let (_, ready) = server.get("/readyz").await;
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(
        ready["mutes"][0]["muted"], "policy `fast-triage`",
        "{ready}"
    );
    // `serve` reads the mutes again within a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    server
        .deliver("muted-1", &label(&["triage::urgent"], 21, Utc::now()))
        .await;
    // Start at once and breach after 2 s both fall due inside the window.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert!(
        channel(&slack, "#triage").is_empty(),
        "nothing sent while muted"
    );

    assert!(
        wait_until(Duration::from_secs(5), || !channel(&slack, "#triage")
            .is_empty())
        .await,
        "the summary comes when the mute ends"
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let said = channel(&slack, "#triage");
    assert_eq!(said.len(), 1, "one summary, nothing else: {said:#?}");
    let summary = said[0].shown();
    for part in [
        "The mute of policy `fast-triage` has ended",
        "deploy window",
        "2 notices were held here",
        "acme/backend#21",
        "start (fast-triage)",
        "breach (fast-triage)",
        "Still breached now: acme/backend#21",
    ] {
        assert!(summary.contains(part), "missing {part:?} in {summary}");
    }

    // The mute silenced; it did not pause: the clock breached on time.
    let clocks: Value = server
        .http
        .get(format!(
            "{}/admin/clocks?policy=fast-triage",
            server.address
        ))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clocks[0]["status"], "breached", "{clocks}");
    let mutes = common::labelwarden_in_repo(&["mutes", "--database", &url]);
    assert_eq!(common::text(&mutes.stdout).trim(), "no mutes");

    // The same through the admin API: refused without the token; with it,
    // a mute is added, listed and ended, once.
    let admin = |method: reqwest::Method, path: &str| {
        server
            .http
            .request(method, format!("{}{path}", server.address))
    };
    let body = json!({
        "channel": "triage",
        "until": (Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339(),
        "reason": "Slack migration",
    });
    let refused = admin(reqwest::Method::POST, "/admin/mutes")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let added = admin(reqwest::Method::POST, "/admin/mutes")
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let added: Value = added.json().await.unwrap();
    assert_eq!(
        (&added["id"], &added["scope"]),
        (&json!(2), &json!("channel"))
    );
    let listed: Value = admin(reqwest::Method::GET, "/admin/mutes")
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["target"], "triage", "{listed}");
    for expected in [200, 404] {
        let ended = admin(reqwest::Method::DELETE, "/admin/mutes/2")
            .bearer_auth(common::ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(ended.status(), expected);
    }
    server.assert_outbox_empty().await;
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_parent_makes_the_next_step_start_a_new_thread() {
    let (_dir, Setup { server, slack }) = start_unlimited().await;
    let labelled = Utc::now();
    server
        .deliver("deleted-1", &label(&[HIGHEST], 30, labelled))
        .await;
    wait_until(Duration::from_secs(2), || {
        !of_issue(&slack, "#alerts", 30).is_empty()
    })
    .await;
    let first = of_issue(&slack, "#alerts", 30).remove(0);
    slack.delete(&first.ts);
    // The warning finds no thread and becomes the parent; the breach replies to it.
    wait_until(Duration::from_secs(4), || {
        of_issue(&slack, "#alerts", 30).len() >= 2
    })
    .await;
    let thread = of_issue(&slack, "#alerts", 30);
    let story = transcript(&thread);
    assert!(thread[0].thread_ts.is_none(), "{story}");
    assert!(
        thread[0].text.contains("before the SLA deadline"),
        "{story}"
    );
    assert!(
        thread[0].shown().contains("Checkout broken #30"),
        "a parent carries the whole issue: {story}"
    );
    assert_eq!(thread[1].thread_ts.as_ref(), Some(&thread[0].ts), "{story}");
    assert!(thread[1].text.contains("SLA breached"), "{story}");
    let refused: Vec<_> = slack
        .requests()
        .into_iter()
        .filter_map(|r| r.error)
        .collect();
    assert_eq!(refused, vec!["thread_not_found"]);
    server.stop().await;
}

#[tokio::test]
async fn an_incoming_webhook_channel_gets_one_message_per_step_with_the_link() {
    let (_dir, Setup { server, slack }) = start_unlimited().await;
    let labelled = Utc::now();
    server
        .deliver("hook-1", &label(&["status::public"], 40, labelled))
        .await;
    assert!(
        wait_until(Duration::from_secs(2), || {
            !channel(&slack, "#status").is_empty() && !channel(&slack, "#status-staff").is_empty()
        })
        .await,
        "{:?}",
        slack.requests()
    );
    server
        .deliver("hook-2", &close(&["status::public"], 40, labelled))
        .await;
    wait_until(Duration::from_secs(2), || {
        channel(&slack, "#status").len() >= 2
    })
    .await;
    server.assert_outbox_empty().await;
    // Each webhook posted where it was made for: #status has fast-status's
    // start and resolution, #status-staff only fast-status-staff's start.
    let messages = channel(&slack, "#status");
    assert_eq!(messages.len(), 2, "{}", transcript(&messages));
    assert!(messages[0].text.contains("SLA clock started"));
    assert!(messages[1].text.contains("Resolved within the SLA"));
    let staff = channel(&slack, "#status-staff");
    assert_eq!(staff.len(), 1, "{}", transcript(&staff));
    assert!(
        staff[0].shown().contains("fast-status-staff"),
        "{}",
        staff[0].shown()
    );
    for message in messages.iter().chain(&staff) {
        assert!(
            message.shown().contains("|acme/backend#40>"),
            "{}",
            message.shown()
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_removed_incoming_webhook_is_refused_for_good_and_shown_in_readyz() {
    let dir = tempfile::tempdir().unwrap();
    // The staff webhook's URL was removed in Slack (the fake never made it).
    let Setup { server, slack } = start_with_webhooks(
        &dir.path().join("db.sqlite"),
        UNLIMITED,
        RetryPolicy::default(),
        |running| {
            let removed = running
                .webhook_url
                .replace("s3cr3tWebhookPart", "removedHookPart");
            (running.webhook_url.clone(), removed)
        },
    )
    .await;
    server
        .deliver("gone-1", &label(&["status::public"], 41, Utc::now()))
        .await;
    let refused = || {
        slack
            .requests()
            .into_iter()
            .filter(|r| r.method == "webhook" && r.status == 404)
            .count()
    };
    assert!(wait_until(Duration::from_secs(2), || refused() == 1).await);
    assert!(
        wait_until(Duration::from_secs(2), || channel(&slack, "#status").len()
            == 1)
        .await,
        "the other webhook still posts"
    );
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(
        ready["slack"]["failing"][0]["channel"], "status-staff",
        "{ready}"
    );
    assert!(
        ready.to_string().contains("no_service") && !ready.to_string().contains("HookPart"),
        "says why, without the URL: {ready}"
    );
    // Refused for good: kept as failed, not retried.
    use labelwarden::store::Store;
    let store = SqlStore::connect(&sqlite(&dir.path().join("db.sqlite")))
        .await
        .unwrap();
    let stats = store.stats(Utc::now()).await.unwrap();
    assert_eq!((stats.outbox_failed, stats.outbox_pending), (1, 0));
    assert_eq!(refused(), 1);
    assert!(channel(&slack, "#status-staff").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn looking_for_a_posted_message_follows_slack_s_cursor() {
    // Slack may answer a listing in pages smaller than asked; the fake
    // answers two messages a page. A takeover must still find a reply that
    // went out, or it would post it twice.
    let Running { slack, api_url, .. } = FakeSlack::start().await;
    let api = labelwarden::slack::api::WebApi::new(
        labelwarden::http_client::builder().build().unwrap(),
        &api_url,
        SecretString::from(TOKEN.to_owned()),
    );
    let message = |text: &str| SlackMessage {
        text: text.to_owned(),
        blocks: Vec::new(),
    };
    let posted = api
        .post_message("#alerts", &message("parent"), None, false, "key-parent")
        .await
        .unwrap();
    let thread = labelwarden::notify::Thread {
        channel_id: posted.channel_id.clone(),
        ts: posted.ts.clone(),
    };
    for n in 1..=6 {
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

async fn slack_event(server: &Server, body: &Value, signed_at: i64, secret: &str) -> (u16, String) {
    server.slack_event(body, signed_at, secret).await
}

fn reaction(event_id: &str, kind: &str, user: &str, ts: &str) -> Value {
    fake_slack::reaction_event(event_id, kind, user, "eyes", "C0ALERTS", ts)
}

#[tokio::test]
async fn eyes_on_an_alert_thread_acknowledges_its_clock_once() {
    use labelwarden::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("db.sqlite");
    let Setup { server, slack } = start(&database, UNLIMITED, RetryPolicy::default()).await;
    let labelled = Utc::now();
    server
        .deliver("ack-1", &label(&[HIGHEST], 70, labelled))
        .await;
    wait_until(Duration::from_secs(2), || {
        !of_issue(&slack, "#alerts", 70).is_empty()
    })
    .await;
    let parent = of_issue(&slack, "#alerts", 70).remove(0);
    let now = Utc::now().timestamp();
    let secret = common::SLACK_SIGNING_SECRET;

    let challenge = json!({"token": "x", "challenge": "c0ffee", "type": "url_verification"});
    assert_eq!(
        slack_event(&server, &challenge, now, secret).await,
        (200, "{\"challenge\":\"c0ffee\"}".into())
    );

    let eyes = reaction("Ev0001", "reaction_added", "U0USER001", &parent.ts);
    assert_eq!(
        slack_event(&server, &eyes, now, "not the secret").await.0,
        401
    );
    assert_eq!(
        slack_event(&server, &eyes, now - 600, secret).await.0,
        401,
        "stale"
    );
    assert_eq!(slack_event(&server, &eyes, now, secret).await.0, 200);

    let store = SqlStore::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    let issue = labelwarden::issue::IssueRef {
        project: labelwarden::issue::ProjectPath("acme/backend".into()),
        iid: labelwarden::issue::IssueIid(70),
    };
    let policy = labelwarden::policy::PolicyName("fast-critical".into());
    let mut acknowledged = None;
    for _ in 0..50 {
        acknowledged = store.acknowledgement(&issue, &policy, 1).await.unwrap();
        if acknowledged.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(acknowledged.map(|(by, _)| by), Some("U0USER001".to_owned()));

    // Slack retrying the same event id (here with other content, to tell)
    // changes nothing.
    let retried = reaction("Ev0001", "reaction_removed", "U0USER001", &parent.ts);
    assert_eq!(slack_event(&server, &retried, now, secret).await.0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store
            .acknowledgement(&issue, &policy, 1)
            .await
            .unwrap()
            .map(|(by, _)| by),
        Some("U0USER001".to_owned())
    );

    // Somebody else puts eyes on it too; the first takes theirs back: the
    // second still stands. Once they take theirs back, nobody does.
    let acknowledged_by = || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store
            .acknowledgement(&issue, &policy, 1)
            .await
            .unwrap()
            .map(|(by, _)| by)
    };
    let mut second = reaction("Ev0004", "reaction_added", "U0OTHER02", &parent.ts);
    second["event"]["event_ts"] = json!(format!("{}.000100", now + 1));
    assert_eq!(slack_event(&server, &second, now, secret).await.0, 200);
    assert_eq!(acknowledged_by().await, Some("U0USER001".to_owned()));
    let removed = reaction("Ev0003", "reaction_removed", "U0USER001", &parent.ts);
    assert_eq!(slack_event(&server, &removed, now, secret).await.0, 200);
    assert_eq!(acknowledged_by().await, Some("U0OTHER02".to_owned()));
    let removed = reaction("Ev0005", "reaction_removed", "U0OTHER02", &parent.ts);
    assert_eq!(slack_event(&server, &removed, now, secret).await.0, 200);
    assert_eq!(acknowledged_by().await, None);

    // A reaction on a message labelwarden did not post is not its
    // business: sent while nobody acknowledges #70, so that one recorded
    // against it would stand. Events are acted on in order, so once the
    // control reaction after it is recorded, it was handled too.
    let mut elsewhere = reaction("Ev0006", "reaction_added", "U0OTHER01", "1700000000.000001");
    elsewhere["event"]["event_ts"] = json!(format!("{}.000100", now + 2));
    assert_eq!(slack_event(&server, &elsewhere, now, secret).await.0, 200);
    let mut control = reaction("Ev0007", "reaction_added", "U0OTHER03", &parent.ts);
    control["event"]["event_ts"] = json!(format!("{}.000100", now + 3));
    assert_eq!(slack_event(&server, &control, now, secret).await.0, 200);
    let mut standing = None;
    for _ in 0..100 {
        standing = store.acknowledgement(&issue, &policy, 1).await.unwrap();
        if standing.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        standing.map(|(by, _)| by),
        Some("U0OTHER03".to_owned()),
        "the control reaction stands, not the one on another message"
    );

    assert_eq!(
        server
            .metric("labelwarden_acknowledgements_total{policy=\"fast-critical\"} ")
            .await,
        Some(2.0),
        "the first eyes, and the control's after everyone took theirs back"
    );
    let (_, metrics) = server.get("/metrics").await;
    for line in [
        "labelwarden_slack_events_total{result=\"duplicate\"} 1",
        "labelwarden_slack_events_total{result=\"refused\"}",
        "labelwarden_time_to_acknowledge_seconds",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unacknowledged_alert_escalates_and_an_acknowledged_one_does_not() {
    let (_dir, Setup { server, slack }) = start_unlimited().await;
    let labelled = Utc::now();
    server
        .deliver("answer-80", &label(&["needs::answer"], 80, labelled))
        .await;
    server
        .deliver("answer-81", &label(&["needs::answer"], 81, labelled))
        .await;
    wait_until(Duration::from_secs(2), || {
        !of_issue(&slack, "#alerts", 80).is_empty() && !of_issue(&slack, "#alerts", 81).is_empty()
    })
    .await;
    // Somebody is on #80 within the second.
    let parent = of_issue(&slack, "#alerts", 80).remove(0);
    let eyes = reaction("Ev0080", "reaction_added", "U0USER001", &parent.ts);
    let signed_at = Utc::now().timestamp();
    assert_eq!(
        slack_event(&server, &eyes, signed_at, common::SLACK_SIGNING_SECRET)
            .await
            .0,
        200
    );
    wait_until(Duration::from_secs(3), || {
        of_issue(&slack, "#alerts", 81).len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let answered = of_issue(&slack, "#alerts", 80);
    assert_eq!(
        answered.len(),
        1,
        "acknowledged: no escalation: {}",
        transcript(&answered)
    );
    let unanswered = of_issue(&slack, "#alerts", 81);
    assert_eq!(unanswered.len(), 2, "{}", transcript(&unanswered));
    let escalation = &unanswered[1];
    assert!(
        escalation
            .text
            .contains("Nobody has acknowledged this alert"),
        "{}",
        escalation.text
    );
    // Tagged: whoever the rotation has as secondary now, not the primary.
    let policies = labelwarden::policy::load(Path::new("tests/fixtures/policies-slack")).unwrap();
    let rotation = &policies.people.rotations["oncall"];
    let slack_id = |role| &policies.people.gitlab_users[rotation.on_call(role, Utc::now())];
    let secondary = slack_id(labelwarden::policy::Role::Secondary);
    let primary = slack_id(labelwarden::policy::Role::Primary);
    assert!(
        escalation.text.contains(&format!("<@{secondary}>"))
            && !escalation.text.contains(&format!("<@{primary}>")),
        "secondary {secondary}: {}",
        escalation.text
    );
    assert_eq!(escalation.thread_ts.as_ref(), Some(&unanswered[0].ts));

    // The eyes on #80 are taken back after the step's time: it fires now,
    // not at some later wake-up.
    let removed = reaction("Ev0081", "reaction_removed", "U0USER001", &parent.ts);
    assert_eq!(
        slack_event(
            &server,
            &removed,
            Utc::now().timestamp(),
            common::SLACK_SIGNING_SECRET
        )
        .await
        .0,
        200
    );
    wait_until(Duration::from_secs(2), || {
        of_issue(&slack, "#alerts", 80).len() >= 2
    })
    .await;
    let withdrawn = of_issue(&slack, "#alerts", 80);
    assert_eq!(withdrawn.len(), 2, "{}", transcript(&withdrawn));
    assert!(
        withdrawn[1]
            .text
            .contains("Nobody has acknowledged this alert")
    );
    server.stop().await;
}
