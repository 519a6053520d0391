//! A storm in an archived channel, on the in-process server and a fake
//! Slack: no issue goes unsaid, and the fallback channel is not flooded.
//! A test binary of its own: the process's metrics are shared by every
//! test in a binary, and `tests/operating.rs` counts its refusals exactly.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::slack_server::{Setup, UNLIMITED, channel, label, start};
use common::wait_until;
use labelwarden::jobs::outbox::RetryPolicy;

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
                &label(&["triage::urgent"], iid, labelled),
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
        wait_until(Duration::from_secs(4), || !group_fallback().is_empty()).await,
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
    // Every issue of the storm is named in the fallback channel: the
    // first ones in a fallback of their own, the rest in the group's.
    let named: std::collections::BTreeSet<u64> = channel(&slack, "#oncall-backup")
        .iter()
        .flat_map(|m| common::issues_named(&m.shown(), "acme/backend"))
        .collect();
    assert_eq!(
        named,
        (31..=38).collect(),
        "{:#?}",
        channel(&slack, "#oncall-backup")
    );
    server.stop().await;
}
