//! Slack end to end: the real server and the real Slack notifier against a
//! local fake Slack that answers as Slack documents (`tests/common/fake_slack.rs`).
//! Policies run on a 2-second clock (`fixtures/policies-slack`). Failed
//! notices, fallbacks and mutes: `tests/operating.rs`; acknowledgements:
//! `tests/slack_acknowledgements.rs`.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::slack_server::{
    Setup, UNLIMITED, channel, close, label, of_issue, start, start_unlimited, start_with_webhooks,
    transcript,
};
use common::{HIGHEST, issue_event, sqlite, wait_until};
use labelwarden::jobs::retry::RetryPolicy;
use labelwarden::store::sql::SqlStore;
use serde_json::{Value, json};

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
    wait_until(Duration::from_secs(20), || {
        of_issue(&slack, "#alerts", 1)
            .first()
            .is_some_and(|parent| !parent.reactions.is_empty())
            && of_issue(&slack, "#alerts", 1).len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let thread = of_issue(&slack, "#alerts", 1);
    // `cargo test --test slack a_breach_story -- --nocapture` prints what
    // Slack received, call by call (the book's example).
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
    wait_until(Duration::from_secs(20), || {
        of_issue(&slack, "#alerts", 2).len() >= 3
    })
    .await;
    let mut closing = close(&labels, 2, labelled);
    closing["object_attributes"]["confidential"] = json!(true);
    server.deliver("secret-2", &closing).await;
    wait_until(Duration::from_secs(20), || {
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
        wait_until(Duration::from_secs(20), || {
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
        wait_until(Duration::from_secs(20), || {
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
    wait_until(Duration::from_secs(20), || {
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
    wait_until(Duration::from_secs(20), || {
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
    wait_until(Duration::from_secs(20), || {
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
async fn a_deleted_parent_makes_the_next_step_start_a_new_thread() {
    let (_dir, Setup { server, slack }) = start_unlimited().await;
    let labelled = Utc::now();
    server
        .deliver("deleted-1", &label(&[HIGHEST], 30, labelled))
        .await;
    wait_until(Duration::from_secs(20), || {
        !of_issue(&slack, "#alerts", 30).is_empty()
    })
    .await;
    let first = of_issue(&slack, "#alerts", 30).remove(0);
    slack.delete(&first.ts);
    // The warning finds no thread and becomes the parent; the breach replies to it.
    wait_until(Duration::from_secs(20), || {
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
        wait_until(Duration::from_secs(20), || {
            !channel(&slack, "#status").is_empty() && !channel(&slack, "#status-staff").is_empty()
        })
        .await,
        "{:?}",
        slack.requests()
    );
    server
        .deliver("hook-2", &close(&["status::public"], 40, labelled))
        .await;
    wait_until(Duration::from_secs(20), || {
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
    assert!(wait_until(Duration::from_secs(20), || refused() == 1).await);
    assert!(
        wait_until(Duration::from_secs(20), || channel(&slack, "#status").len()
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
