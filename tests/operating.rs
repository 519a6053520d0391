//! Operating labelwarden, end to end on the in-process server and a fake
//! Slack: a channel that refuses notices for good (fallback at once,
//! resend once fixed, each issue's stored story), and a mute over a
//! breach (nothing sent while it lasts, one summary at its end). The same
//! with two replicas on PostgreSQL: `tests/resend.rs`, `tests/maintenance.rs`.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::slack_server::{Setup, UNLIMITED, channel, label, start};
use common::{fixtures, sqlite, wait_until};
use labelwarden::jobs::retry::RetryPolicy;
use serde_json::{Value, json};

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
        .deliver("gone-1", &label(&["triage::roomy"], 20, labelled))
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || !channel(
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
            &json!("roomy-triage")
        ),
        "{ready}"
    );
    assert_eq!(ready["failed_notices"][0]["works_again"], false, "{ready}");
    let expected_metrics = [
        "labelwarden_slack_permanent_errors_total{channel=\"triage\",error=\"is_archived\"} 1",
        "labelwarden_destination_failing{channel=\"triage\"} 1",
        "labelwarden_fallback_notices_total{channel=\"triage\",fallback=\"oncall-backup\"} 1",
        "labelwarden_outbox_failed 1",
    ];
    // The fallback is counted once its send returns, just after Slack has
    // the message: look again for a moment on a busy machine.
    let mut metrics = String::new();
    for _ in 0..30 {
        metrics = server.get("/metrics").await.1;
        if expected_metrics.iter().all(|line| metrics.contains(line)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for line in expected_metrics {
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
        row.starts_with("1 ") && row.contains("roomy-triage start") && row.contains("is_archived"),
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
    // What an authorised request answers, as JSON.
    let admin_json = |path: &str| {
        let answer = admin(path, Some(common::ADMIN_TOKEN));
        async move { answer.await.unwrap().json::<Value>().await.unwrap() }
    };
    for token in [None, Some("wrong-token")] {
        let refused = admin("/admin/outbox?failed=true", token).await.unwrap();
        assert_eq!(refused.status(), 401, "token {token:?}");
        assert!(!refused.text().await.unwrap().contains("Checkout broken"));
    }
    let failed = admin_json("/admin/outbox?failed=true").await;
    assert_eq!(
        (
            &failed[0]["id"],
            &failed[0]["channel"],
            &failed[0]["state"]["state"]
        ),
        (&json!(1), &json!("triage"), &json!("failed")),
        "{failed}"
    );
    let clocks = admin_json("/admin/clocks?policy=roomy-triage").await;
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
            .any(|l| l.starts_with("acme/backend#20") && l.contains("roomy-triage")),
        "{listed_text}"
    );

    // Unarchived before the breach (8 s after the label, long after all
    // of the above): it goes out as the thread's first message, and
    // /readyz offers the command that resends what #triage refused.
    slack.stop_refusing("#triage");
    assert!(
        Utc::now() < labelled + chrono::TimeDelta::seconds(8),
        "the story reached the unarchiving before the breach"
    );
    wait_until(Duration::from_secs(12), || {
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
        wait_until(Duration::from_secs(20), || channel(&slack, "#triage").len()
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
        line_of("received", "labelled triage::roomy"),
        line_of("fired", "roomy-triage: start (cycle 1)"),
        line_of("failed", "start to `triage`"),
        line_of(
            "sent",
            "roomy-triage: start to `oncall-backup`, instead of `triage`",
        ),
        line_of("fired", "roomy-triage: breach (cycle 1)"),
        line_of("sent", "roomy-triage: breach to `triage`"),
        line_of("resent", "roomy-triage: start to `triage`, queued again"),
        line_of("sent", "roomy-triage: start to `triage`"),
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
    let story = admin_json("/admin/clock?issue=acme/backend%2320").await;
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
            "received", "fired", "failed", "sent", "fired", "sent", "resent", "sent"
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

    // Made confidential later: what the fallback channel took is redacted
    // in place too, as the issue's own channels are.
    let labels = ["triage::roomy"];
    let mut secret = common::issue_event(20, labelled, Utc::now(), &labels, &labels, false);
    secret["object_attributes"]["confidential"] = json!(true);
    secret["changes"]["confidential"] = json!({ "previous": false, "current": true });
    server.deliver("secret-20", &secret).await;
    assert!(
        wait_until(Duration::from_secs(20), || channel(
            &slack,
            "#oncall-backup"
        )
        .iter()
        .all(|m| m.edits >= 1))
        .await,
        "{:#?}",
        channel(&slack, "#oncall-backup")
    );
    for message in channel(&slack, "#oncall-backup") {
        let shown = message.shown();
        assert!(!shown.contains("Checkout broken"), "{shown}");
        assert!(shown.contains("acme/backend#20"), "{shown}");
    }
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
        wait_until(Duration::from_secs(20), || !channel(&slack, "#triage")
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
