//! A storm in an archived channel, on the in-process server and a fake
//! Slack: no issue goes unsaid, and the fallback channel is not flooded.
//! A test binary of its own: the process's metrics are shared by every
//! test in a binary, and `tests/operating.rs` counts its refusals exactly.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::slack_server::{Setup, UNLIMITED, channel, label, start};
use common::wait_until;
use labelwarden::jobs::retry::RetryPolicy;

/// A storm in an archived channel: the first alerts keep their own and
/// each takes the fallback; the group alert of the rest is refused too,
/// and one message in the fallback channel names its issues, so every
/// issue reaches somebody without flooding the fallback.
#[tokio::test]
async fn a_group_alert_the_channel_refuses_is_named_once_in_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { server, slack } = start(
        &dir.path().join("db.sqlite"),
        UNLIMITED,
        RetryPolicy::default(),
    )
    .await;
    slack.refuse("#triage", "is_archived");
    let labelled = Utc::now();
    for iid in 31..=38 {
        server
            .deliver(
                &format!("storm-{iid}"),
                &label(&["triage::storm"], iid, labelled),
            )
            .await;
    }
    let group_fallback = || {
        channel(&slack, "#oncall-backup")
            .into_iter()
            .filter(|m| m.shown().contains("A group message about"))
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(20), || !group_fallback().is_empty()).await,
        "{:#?}",
        channel(&slack, "#oncall-backup")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grouped = group_fallback();
    assert_eq!(grouped.len(), 1, "one message for the group: {grouped:#?}");
    let said = grouped[0].shown();
    assert!(
        said.contains("should have gone to `triage`")
            && said.contains("is_archived")
            && said.contains("labelwarden outbox resend --channel triage"),
        "{said}"
    );
    // Exactly what the fallback channel shows: the first five issues' own
    // alerts, each in a message of its own saying where it should have
    // gone, then one message naming the group's three; each issue once.
    let shown: Vec<(Vec<u64>, String)> = channel(&slack, "#oncall-backup")
        .iter()
        .map(|m| (common::issues_named(&m.shown(), "acme/backend"), m.shown()))
        .collect();
    assert_eq!(shown.len(), 6, "{shown:#?}");
    // The five alerts go out side by side, so in any order among them.
    let mut own: Vec<u64> = Vec::new();
    for (issues, text) in &shown[..5] {
        assert_eq!(issues.len(), 1, "{text}");
        own.push(issues[0]);
        assert!(
            text.contains("SLA clock started") && text.contains("`triage`"),
            "{text}"
        );
    }
    own.sort_unstable();
    assert_eq!(own, [31, 32, 33, 34, 35], "{shown:#?}");
    let (group, text) = &shown[5];
    assert_eq!(group, &[36, 37, 38], "{text}");
    assert!(text.contains("A group message about 3 issues"), "{text}");
    assert!(
        channel(&slack, "#oncall-backup")
            .iter()
            .all(|m| m.thread_ts.is_none()),
        "nothing else yet: no thread, no breach"
    );
    server.stop().await;
}
