//! Acknowledging an alert in Slack, end to end on the in-process server
//! and a fake Slack: 👀 on an alert thread acknowledges its clock cycle
//! once, and an unacknowledged alert escalates where an acknowledged one
//! does not.

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use common::fake_slack;
use common::slack_server::{Setup, UNLIMITED, label, of_issue, start, start_unlimited, transcript};
use common::{HIGHEST, Server, wait_until};
use labelwarden::jobs::retry::RetryPolicy;
use labelwarden::store::sql::SqlStore;
use serde_json::{Value, json};

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
    wait_until(Duration::from_secs(20), || {
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
    wait_until(Duration::from_secs(20), || {
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
    wait_until(Duration::from_secs(20), || {
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
    wait_until(Duration::from_secs(20), || {
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
