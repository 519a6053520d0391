//! `serve`'s escalation with both parts of a step: GitLab labels and
//! comments through the API (a fake GitLab), then the Slack message (a
//! fake Slack), with failures on either side retried without doing
//! anything twice.

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};
use common::fake_slack::{self, FakeSlack};
use common::{HIGHEST, Options, fixture_policies, issue_event, sqlite, start_server, wait_until};
use labelwarden::jobs::escalation::Escalation;
use labelwarden::jobs::retry::RetryPolicy;
use labelwarden::slack::{SlackNotifier, SlackSettings};
use secrecy::SecretString;

#[tokio::test]
async fn gitlab_and_slack_parts_each_happen_once_through_failures_on_both_sides() {
    let gitlab = FakeGitLab::start().await;
    let slack = FakeSlack::start().await;

    let retry = RetryPolicy {
        first: Duration::from_millis(20),
        longest: Duration::from_millis(200),
    };
    let (_dir, server) = escalating(
        &gitlab,
        &slack,
        Options {
            retry,
            ..Options::default()
        },
    )
    .await;
    // Labelled once serve is up: on a slow machine its start-up alone can
    // take longer than the 2-second target, and the outage below must
    // begin before the breach.
    let labelled = Utc::now();
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 50, labelled).add_label(labelled, HIGHEST));

    server
        .deliver(
            "escalate-1",
            &issue_event(50, labelled, labelled, &[], &[HIGHEST], false),
        )
        .await;
    wait_until(Duration::from_secs(20), || {
        !slack.slack.messages().is_empty()
            && !gitlab.gitlab.issue("acme/backend", 50).notes.is_empty()
    })
    .await;
    assert_eq!(slack.slack.messages().len(), 1, "the start's Slack parent");

    // At the breach GitLab fails more often than one call retries (5
    // tries), then Slack is down for a moment after the comment went in.
    tokio::time::sleep_until(
        tokio::time::Instant::now()
            + (labelled + chrono::TimeDelta::milliseconds(1_800) - Utc::now())
                .to_std()
                .unwrap_or_default(),
    )
    .await;
    gitlab.gitlab.fail(7);
    // Counted, not timed: the breach's Slack part meets the outage
    // whenever GitLab's failures and retries let it go, on any machine.
    slack.slack.unavailable_for(2);
    wait_until(Duration::from_secs(10), || {
        slack.slack.messages().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let issue = gitlab.gitlab.issue("acme/backend", 50);
    // Visible comments; the internal ledger note is checked below.
    let comments: Vec<&String> = issue.notes.iter().filter(|n| !n.3).map(|n| &n.2).collect();
    assert_eq!(
        comments.len(),
        2,
        "start and breach, once each: {comments:#?}"
    );
    assert!(comments[0].contains("step=start") && comments[1].contains("step=breach"));
    assert!(
        comments[1].starts_with("**labelwarden**: acme/backend#50 [fast-critical] SLA breached")
    );
    assert!(
        issue.labels.contains(&"missed::SLA".to_owned()),
        "{:?}",
        issue.labels
    );
    let messages = slack.slack.messages();
    assert_eq!(messages.len(), 2, "parent and breach reply, once each");
    assert_eq!(messages[1].thread_ts.as_ref(), Some(&messages[0].ts));
    assert!(messages[1].broadcast);
    let failures = gitlab
        .gitlab
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT"))
        .count();
    // One call's five tries at least; GitLab's other failures may fall on
    // the notes it reads and writes, depending on the machine's pace.
    assert!(failures >= 5, "the label edit was retried: {failures} PUTs");
    assert!(
        slack.slack.requests().iter().any(|r| r.status == 503),
        "Slack's outage was met after the comment went in"
    );
    server.assert_outbox_empty().await;
    server.stop().await;
    // serve's ledger note lists every step once, Slack-only ones too, with
    // the thread, written through GitLab's failures.
    let ledger: Vec<String> = gitlab
        .gitlab
        .issue("acme/backend", 50)
        .notes
        .iter()
        .filter(|n| n.3)
        .map(|n| n.2.clone())
        .collect();
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    let steps: Vec<String> = labelwarden::gitlab::markers::Marker::find_all(&ledger[0])
        .into_iter()
        .map(|m| m.firing.step.0)
        .collect();
    assert_eq!(steps, ["start", "breach"], "{ledger:#?}");
}

#[tokio::test]
async fn an_alert_no_channel_takes_is_written_on_the_issue_as_the_last_resort() {
    let gitlab = FakeGitLab::start().await;
    let slack = FakeSlack::start().await;
    let labelled = Utc::now();
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 51, labelled).add_label(labelled, HIGHEST));
    // The bot was removed from #alerts, whose fallback is a comment.
    slack.slack.refuse("#alerts", "not_in_channel");
    let (_dir, server) = escalating(&gitlab, &slack, Options::default()).await;
    server
        .deliver(
            "fallback-1",
            &issue_event(51, labelled, labelled, &[], &[HIGHEST], false),
        )
        .await;
    let fell_back = |gitlab: &FakeGitLab| -> Vec<(String, bool)> {
        gitlab
            .issue("acme/backend", 51)
            .notes
            .iter()
            .filter(|n| n.2.contains("should have gone to `alerts`"))
            .map(|n| (n.2.clone(), n.3))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(20), || !fell_back(&gitlab.gitlab)
            .is_empty())
        .await,
        "the start alert is written on the issue"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notes = fell_back(&gitlab.gitlab);
    assert_eq!(notes.len(), 1, "once: {notes:#?}");
    let (body, internal) = &notes[0];
    assert!(
        *internal,
        "an internal note: responders see it, the public does not"
    );
    assert!(
        body.starts_with("**labelwarden**: acme/backend#51 [fast-critical] SLA clock started")
            && body.contains("not_in_channel")
            && body.contains("labelwarden outbox resend --channel alerts"),
        "{body}"
    );
    assert!(slack.slack.messages().is_empty(), "Slack took nothing");
    server.stop().await;
}

#[tokio::test]
async fn a_mute_holds_the_alerts_but_a_breach_is_still_labelled_and_recorded_on_the_issue() {
    let gitlab = FakeGitLab::start().await;
    let slack = FakeSlack::start().await;
    let (_dir, server) = escalating(&gitlab, &slack, Options::default()).await;
    let muted = server
        .http
        .post(format!("{}/admin/mutes", server.address))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&serde_json::json!({
            "policy": "fast-critical",
            "until": (Utc::now() + chrono::TimeDelta::seconds(5)).to_rfc3339(),
            "reason": "failover drill",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(muted.status(), 201);
    // `serve` reads the mutes again within a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let labelled = Utc::now();
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 52, labelled).add_label(labelled, HIGHEST));
    server
        .deliver(
            "muted-52",
            &issue_event(52, labelled, labelled, &[], &[HIGHEST], false),
        )
        .await;

    // The breach (2 s) falls due inside the mute: its label is the
    // issue's state and goes on; its comment and Slack message wait.
    let labelled_missed = || {
        gitlab
            .gitlab
            .issue("acme/backend", 52)
            .labels
            .contains(&"missed::SLA".to_owned())
    };
    assert!(
        wait_until(Duration::from_secs(20), labelled_missed).await,
        "the breach's label goes on while muted"
    );
    // Both steps are listed as done on the ledger note, so a scheduled
    // `audit --notify` does not send them either.
    let ledger_lists = |step: &str| {
        gitlab
            .gitlab
            .issue("acme/backend", 52)
            .notes
            .iter()
            .any(|n| {
                n.2.contains(&format!(
                    "labelwarden:fired policy=fast-critical step={step} "
                ))
            })
    };
    assert!(
        wait_until(Duration::from_secs(20), || ledger_lists("start")
            && ledger_lists("breach"))
        .await,
        "{:#?}",
        gitlab.gitlab.issue("acme/backend", 52).notes
    );
    let comments: Vec<String> = gitlab
        .gitlab
        .issue("acme/backend", 52)
        .notes
        .iter()
        .map(|n| n.2.clone())
        .filter(|body| {
            body.starts_with("**labelwarden**") && !body.contains("keeps the escalation ledger")
        })
        .collect();
    assert!(comments.is_empty(), "no comment while muted: {comments:#?}");
    assert!(
        slack.slack.messages().is_empty(),
        "nothing in Slack while muted"
    );

    // At its end, one summary in #alerts.
    assert!(
        wait_until(Duration::from_secs(20), || !slack
            .slack
            .messages()
            .is_empty())
        .await,
        "the summary comes when the mute ends"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let said = slack.slack.messages();
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(
        said[0].shown().contains("2 notices were held here"),
        "{}",
        said[0].shown()
    );
    server.stop().await;
}

/// `serve` with the escalation notifier (the GitLab part, then Slack) on
/// the fakes, over a fresh database kept while the folder is.
async fn escalating(
    gitlab: &fake_gitlab::Running,
    slack: &fake_slack::Running,
    options: Options,
) -> (tempfile::TempDir, common::Server) {
    let policies = fixture_policies("policies-escalation");
    let slack_notifier = SlackNotifier::new(
        Arc::clone(&policies),
        SlackSettings {
            api_url: slack.api_url.clone(),
            token: Some(SecretString::from(fake_slack::TOKEN.to_owned())),
            webhook_urls: BTreeMap::new(),
            per_channel_per_second: NonZeroU32::new(100).unwrap(),
            per_channel_burst: NonZeroU32::new(10).unwrap(),
        },
    )
    .unwrap();
    let writer = gitlab.writer();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        policies,
        &sqlite(&dir.path().join("db.sqlite")),
        Escalation::new(slack_notifier, writer),
        options,
    )
    .await;
    (dir, server)
}
