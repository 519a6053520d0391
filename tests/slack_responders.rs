//! The handbook's protocol on an alert thread, end to end: signed Slack
//! events reach `serve`, which reads the thread from a fake Slack and
//! writes on a fake GitLab: the resolve reaction with the responder's last
//! reply (and the close the policy asks for), the false-positive reaction
//! with its label, and mirrored replies. Retries of an event, and a
//! reaction taken off and put back, write nothing twice.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::fake_gitlab::{FakeGitLab, FakeIssue};
use common::fake_slack::{BOT_USER, FakeSlack, Message, reaction_event, reply_event};
use common::slack_server::start_with_gitlab;
use common::{Options, Server, issue_event, wait_until};
use labelwarden::jobs::retry::RetryPolicy;
use serde_json::Value;

const LABEL: &str = "needs::resolution";
/// `user1` in the fixture's `gitlab_users`.
const RESPONDER: &str = "U0USER001";

struct Setup {
    server: Server,
    slack: FakeSlack,
    gitlab: FakeGitLab,
    /// The alert's parent message in Slack.
    parent: Message,
    /// Holds the database: bind it for as long as the server runs.
    _dir: tempfile::TempDir,
}

async fn start(iid: u64) -> Setup {
    let issues = [iid];
    let slack = FakeSlack::start().await;
    let gitlab = FakeGitLab::start().await;
    let labelled = Utc::now();
    for iid in issues {
        gitlab
            .gitlab
            .add(FakeIssue::new("acme/backend", iid, labelled).add_label(labelled, LABEL));
    }
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        // Short, so that a test can play a GitLab outage in a second.
        retry: RetryPolicy {
            first: Duration::from_millis(50),
            longest: Duration::from_millis(400),
        },
        ..Options::default()
    };
    let server = start_with_gitlab(
        &dir.path().join("db.sqlite"),
        &slack.api_url,
        &gitlab.url,
        options,
    )
    .await;
    for iid in issues {
        let status = server
            .deliver(
                &format!("label-{iid}"),
                &issue_event(iid, labelled, labelled, &[], &[LABEL], false),
            )
            .await;
        assert_eq!(status, 200, "the delivery is taken");
    }
    let parent = parent_of(&slack.slack, iid).await;
    Setup {
        server,
        slack: slack.slack,
        gitlab: gitlab.gitlab,
        parent,
        _dir: dir,
    }
}

/// The alert thread's parent for issue `iid`, once posted.
async fn parent_of(slack: &FakeSlack, iid: u64) -> Message {
    let of_issue = || {
        slack
            .messages()
            .into_iter()
            .find(|m| m.thread_ts.is_none() && m.text.contains(&format!("acme/backend#{iid}")))
    };
    wait_until(Duration::from_secs(15), || of_issue().is_some()).await;
    of_issue().unwrap_or_else(|| panic!("the alert was posted: {:?}", slack.requests()))
}

/// `user`'s `reaction` added or removed (`kind`) on the alert's parent.
fn on_alert(event_id: &str, kind: &str, user: &str, reaction: &str, parent: &Message) -> Value {
    reaction_event(event_id, kind, user, reaction, &parent.channel, &parent.ts)
}

/// Notes on the issue whose text contains `needle`: (body, internal).
fn notes_with(gitlab: &FakeGitLab, iid: u64, needle: &str) -> Vec<(String, bool)> {
    gitlab
        .issue("acme/backend", iid)
        .notes
        .into_iter()
        .filter(|note| note.2.contains(needle))
        .map(|note| (note.2, note.3))
        .collect()
}

#[tokio::test]
async fn a_resolve_reaction_writes_the_last_reply_on_the_issue_once_and_closes_it() {
    let Setup {
        server,
        slack,
        gitlab,
        parent,
        _dir,
    } = start(90).await;

    // The responder says what they did in the thread, twice; somebody else
    // chimes in after. Only the responder's last reply is the comment.
    let first = slack.reply(RESPONDER, &parent, "looking, rolling back");
    server
        .slack_event_now(&reply_event(
            "EvR1",
            RESPONDER,
            &parent,
            &first,
            "looking, rolling back",
        ))
        .await;
    let last = slack.reply(
        RESPONDER,
        &parent,
        "Rolled back <https://ops.example.com/deploys/42|deploy 42>; error rate is back to normal",
    );
    slack.reply("U0SOMEONE1", &parent, "thanks!");

    let resolve = on_alert(
        "EvResolve1",
        "reaction_added",
        RESPONDER,
        "white_check_mark",
        &parent,
    );
    server.slack_event_now(&resolve).await;
    wait_until(Duration::from_secs(15), || {
        !gitlab.issue("acme/backend", 90).is_open()
    })
    .await;

    let resolved = notes_with(&gitlab, 90, "Resolved in Slack");
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let (body, internal) = &resolved[0];
    assert!(
        body.starts_with(
            "**Resolved in Slack** by @user1:\n\n> Rolled back [deploy 42](https://ops.example.com/deploys/42); error rate is back to normal"
        ),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "<!-- labelwarden:slack said=resolved policy=answered-in-slack cycle=1 thread=C0ALERTS%3A{}",
            parent.ts
        )) && body.contains(&format!("reply={}", last)),
        "the marker names thread, person and reply: {body}"
    );
    assert!(*internal, "what responders say in Slack stays internal");
    assert!(
        !gitlab.issue("acme/backend", 90).is_open(),
        "close_on_resolve closed the issue"
    );

    // The reply event was mirrored as an internal note, once.
    let mirrored = notes_with(&gitlab, 90, "Reply in the Slack alert thread");
    assert_eq!(mirrored.len(), 1, "{mirrored:?}");
    assert!(mirrored[0].0.contains("> looking, rolling back") && mirrored[0].1);

    // Slack retrying the event, and the reaction taken off and put back:
    // nothing new is written.
    server.slack_event_now(&resolve).await;
    server
        .slack_event_now(&on_alert(
            "EvResolve2",
            "reaction_removed",
            RESPONDER,
            "white_check_mark",
            &parent,
        ))
        .await;
    server
        .slack_event_now(&on_alert(
            "EvResolve3",
            "reaction_added",
            RESPONDER,
            "white_check_mark",
            &parent,
        ))
        .await;
    // labelwarden's own reaction (its `resolved` step) is not a person's.
    server
        .slack_event_now(&on_alert(
            "EvBot",
            "reaction_added",
            BOT_USER,
            "white_check_mark",
            &parent,
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(notes_with(&gitlab, 90, "Resolved in Slack").len(), 1);
    assert_eq!(notes_with(&gitlab, 90, "labelwarden:slack").len(), 2);
    // Counted (other tests in this process count too: at least one).
    let series =
        "labelwarden_slack_resolutions_total{policy=\"answered-in-slack\",said=\"resolved\"}";
    assert!(server.metric(series).await.is_some_and(|n| n >= 1.0));
    server.stop().await;
}

#[tokio::test]
async fn a_resolution_gitlab_refuses_for_a_while_is_written_once_it_answers() {
    let Setup {
        server,
        slack,
        gitlab,
        parent,
        _dir,
    } = start(94).await;
    slack.reply(RESPONDER, &parent, "fixed by the config rollback");
    // More 502s than the GitLab client's own five tries: the event stays
    // in the store and is acted on again later.
    gitlab.fail(12);
    server
        .slack_event_now(&on_alert(
            "EvOutage",
            "reaction_added",
            RESPONDER,
            "white_check_mark",
            &parent,
        ))
        .await;
    wait_until(Duration::from_secs(15), || {
        !notes_with(&gitlab, 94, "Resolved in Slack").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let noted = notes_with(&gitlab, 94, "Resolved in Slack");
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert!(noted[0].0.contains("> fixed by the config rollback"));
    let failed_calls = gitlab
        .requests()
        .iter()
        .filter(|r| r.contains("/issues/94/notes"))
        .count();
    assert!(
        failed_calls > 5,
        "the job tried again after the client gave up: {failed_calls}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_false_positive_reaction_writes_its_note_and_adds_the_label() {
    let Setup {
        server,
        slack,
        gitlab,
        parent,
        _dir,
    } = start(91).await;
    slack.reply(
        RESPONDER,
        &parent,
        "not a bug: the customer's proxy strips the header",
    );
    server
        .slack_event_now(&on_alert(
            "EvFp1",
            "reaction_added",
            RESPONDER,
            "x",
            &parent,
        ))
        .await;
    wait_until(Duration::from_secs(15), || {
        gitlab
            .issue("acme/backend", 91)
            .labels
            .contains(&"false-positive".to_owned())
    })
    .await;
    let issue = gitlab.issue("acme/backend", 91);
    assert!(
        issue.labels.contains(&"false-positive".to_owned()),
        "{:?}",
        issue.labels
    );
    assert!(
        issue.is_open(),
        "a false positive is not closed by labelwarden"
    );
    let noted = notes_with(&gitlab, 91, "Marked a false positive in Slack");
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert!(
        noted[0]
            .0
            .contains("> not a bug: the customer's proxy strips the header")
    );
    server.stop().await;
}

#[tokio::test]
async fn an_acknowledgement_and_its_withdrawal_are_noted_on_the_issue_for_audit() {
    let Setup {
        server,
        gitlab,
        parent,
        _dir,
        ..
    } = start(93).await;
    let eyes = on_alert("EvAck1", "reaction_added", RESPONDER, "eyes", &parent);
    server.slack_event_now(&eyes).await;
    server.slack_event_now(&eyes).await;
    wait_until(Duration::from_secs(15), || {
        !notes_with(&gitlab, 93, "Acknowledged in Slack").is_empty()
    })
    .await;
    let noted = notes_with(&gitlab, 93, "Acknowledged in Slack");
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert!(
        noted[0]
            .0
            .starts_with("**Acknowledged in Slack** by @user1.")
            && noted[0]
                .0
                .contains("said=acknowledged policy=answered-in-slack cycle=1")
            && noted[0].1,
        "{noted:?}"
    );
    server
        .slack_event_now(&on_alert(
            "EvAck2",
            "reaction_removed",
            RESPONDER,
            "eyes",
            &parent,
        ))
        .await;
    wait_until(Duration::from_secs(15), || {
        !notes_with(&gitlab, 93, "Acknowledgement taken back").is_empty()
    })
    .await;
    // What audit reads back from those notes: nobody stands.
    let notes: Vec<labelwarden::gitlab::actions::Note> = gitlab
        .issue("acme/backend", 93)
        .notes
        .into_iter()
        .map(|(id, at, body, _)| labelwarden::gitlab::actions::Note {
            id,
            body,
            created_at: at,
            system: false,
        })
        .collect();
    let ledger = labelwarden::gitlab::actions::IssueLedger::from_notes(&notes);
    assert_eq!(ledger.from_slack.len(), 2);
    assert!(
        ledger
            .acknowledgements(&labelwarden::policy::PolicyName("answered-in-slack".into()))
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_reaction_on_a_message_labelwarden_did_not_post_writes_nothing() {
    let Setup {
        server,
        slack,
        gitlab,
        parent,
        _dir,
    } = start(92).await;
    const ELSEWHERE: &str = "1700000000.000001";
    server
        .slack_event_now(&reaction_event(
            "EvElsewhere",
            "reaction_added",
            RESPONDER,
            "white_check_mark",
            "C0ALERTS",
            ELSEWHERE,
        ))
        .await;
    // Events are acted on in the order received: once a reply sent after
    // it is mirrored on the issue, the reaction was handled too.
    let reply = slack.reply(RESPONDER, &parent, "control reply");
    server
        .slack_event_now(&reply_event(
            "EvControl",
            RESPONDER,
            &parent,
            &reply,
            "control reply",
        ))
        .await;
    wait_until(Duration::from_secs(15), || {
        !notes_with(&gitlab, 92, "control reply").is_empty()
    })
    .await;
    let notes: Vec<String> = gitlab
        .issue("acme/backend", 92)
        .notes
        .into_iter()
        .map(|note| note.2)
        .collect();
    assert_eq!(
        notes.len(),
        1,
        "only the control reply is noted: {notes:#?}"
    );
    assert!(
        notes[0].contains("Reply in the Slack alert thread"),
        "{notes:#?}"
    );
    assert!(gitlab.issue("acme/backend", 92).is_open());
    let closes = gitlab
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT"))
        .count();
    assert_eq!(closes, 0, "{:?}", gitlab.requests());
    assert!(
        slack
            .requests()
            .iter()
            .all(|r| r.body["ts"].as_str() != Some(ELSEWHERE)),
        "Slack was not even asked about the other message: {:?}",
        slack.requests()
    );
    server.stop().await;
}

/// With `mirror_replies` and `mirror_comments` both on, nothing goes round:
/// a reply mirrored to GitLab comes back as a `Note Hook` and is not posted
/// in the thread; a comment posted in the thread comes back as the bot's
/// message event and is not written on the issue.
#[tokio::test]
async fn replies_and_comments_each_cross_once_and_never_loop() {
    use common::notes::{comment, note_hook};
    let Setup {
        server,
        slack,
        gitlab,
        parent,
        _dir,
    } = start(95).await;
    let balloons = |slack: &FakeSlack| {
        slack
            .messages()
            .into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(parent.ts.as_str()))
            .filter(|m| m.text.contains(":speech_balloon:"))
            .collect::<Vec<_>>()
    };

    // Slack to GitLab, and GitLab's echo of it.
    let reply = slack.reply(RESPONDER, &parent, "rolling back the deploy");
    server
        .slack_event_now(&reply_event(
            "EvLoop1",
            RESPONDER,
            &parent,
            &reply,
            "rolling back the deploy",
        ))
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || {
            !notes_with(&gitlab, 95, "rolling back the deploy").is_empty()
        })
        .await
    );
    let (mirrored, _) = notes_with(&gitlab, 95, "rolling back the deploy").remove(0);
    let echo = note_hook(95, 9001, &mirrored, "labelwarden-bot");
    assert_eq!(comment(&server, "Note Hook", "echo-1", &echo).await.0, 200);

    // GitLab to Slack, and Slack's echo of it.
    let person = note_hook(95, 9002, "Rollback done, error rate normal", "user1");
    assert_eq!(
        comment(&server, "Note Hook", "note-1", &person).await.0,
        200
    );
    assert!(
        wait_until(Duration::from_secs(20), || !balloons(&slack).is_empty()).await,
        "{:#?}",
        slack.messages()
    );
    let posted = balloons(&slack).remove(0);
    let mut bot_echo = reply_event("EvLoop2", BOT_USER, &parent, &posted.ts, &posted.text);
    bot_echo["event"]["bot_id"] = serde_json::json!("B0LABELWDN");
    server.slack_event_now(&bot_echo).await;

    // A control reply after both echoes: once it is on the issue, the
    // echoes were handled.
    let control = slack.reply(RESPONDER, &parent, "control after the echoes");
    server
        .slack_event_now(&reply_event(
            "EvLoop3",
            RESPONDER,
            &parent,
            &control,
            "control after the echoes",
        ))
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || {
            !notes_with(&gitlab, 95, "control after the echoes").is_empty()
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let said = balloons(&slack);
    assert_eq!(said.len(), 1, "only the person's comment: {said:#?}");
    assert!(said[0].blocks.to_string().contains("Rollback done"));
    assert!(
        notes_with(&gitlab, 95, "Rollback done").is_empty(),
        "the bot's post is not written back on the issue"
    );
    assert_eq!(notes_with(&gitlab, 95, "rolling back the deploy").len(), 1);
    server.stop().await;
}
