//! An issue closed as a duplicate hands its earlier start to the canonical issue, or is withdrawn saying so; reconcile finds a duplicate close no webhook told of.

use super::*;

/// The close of `iid` as a duplicate of `canonical` (same project).
fn duplicate_close(iid: u64, labelled: DateTime<Utc>, canonical: u64) -> Value {
    let mut close = issue_event(iid, labelled, Utc::now(), &[HIGHEST], &[HIGHEST], true);
    close["object_attributes"]["duplicated_to_id"] = json!(global_id("acme/backend", canonical));
    close
}

#[tokio::test]
async fn a_duplicate_close_hands_its_earlier_start_to_the_canonical_issue() {
    let dir = tempfile::tempdir().unwrap();
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-room"),
        &sqlite(&dir.path().join("db.sqlite")),
        sent.clone(),
        Options::default(),
    )
    .await;
    // #20 is labelled first; #21, the same bug, half a second later; then
    // #20 is closed as a duplicate of #21.
    let first = Utc::now();
    let label = issue_event(20, first, first, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("dup-label-20", &label).await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = Utc::now();
    let label = issue_event(21, second, second, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("dup-label-21", &label).await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let close = duplicate_close(20, first, 21);
    assert_eq!(server.deliver("dup-close-20", &close).await, 200);
    assert!(
        wait_until(Duration::from_secs(12), || {
            sent.sent()
                .iter()
                .any(|(issue, step, _)| issue == "acme/backend#21" && step == "breach")
        })
        .await,
        "{:?}",
        sent.sent()
    );
    server.assert_outbox_empty().await;
    let of = |iid: &str| -> Vec<String> {
        sent.sent()
            .into_iter()
            .filter(|(issue, _, _)| issue == iid)
            .map(|(_, step, _)| step)
            .collect()
    };
    assert_eq!(
        of("acme/backend#20"),
        vec!["start", "duplicate:alerts"],
        "no resolution, no warning after the close: the clock went on on #21"
    );
    assert_eq!(
        of("acme/backend#21"),
        vec!["start", "before_deadline:4s", "breach"]
    );
    // #21's deadline came from #20's start: 8 s after `first`, not after
    // `second` (at least half a second later).
    let carried = sent.deadline("acme/backend#21", "breach");
    let deadline = first + chrono::TimeDelta::seconds(8);
    assert!(
        (carried - deadline).num_milliseconds().abs() <= 1,
        "the breach's deadline {carried}, for {deadline} (#20's label); #21 was labelled at {second}"
    );
    let mut clocks = server.stats().await.clocks;
    clocks.sort();
    assert_eq!(
        clocks,
        vec![
            ("roomy-critical".to_owned(), "breached".to_owned(), 1),
            ("roomy-critical".to_owned(), "withdrawn".to_owned(), 1),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_duplicate_of_an_issue_the_policy_does_not_cover_is_withdrawn_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-identity"),
        &sqlite(&dir.path().join("db.sqlite")),
        sent.clone(),
        Options::default(),
    )
    .await;
    let now = Utc::now();
    let canonical = issue_event(23, now, now, &[], &["type::feature"], false);
    assert_eq!(server.deliver("dup-other-23", &canonical).await, 200);
    let label = issue_event(22, now, now, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("dup-label-22", &label).await, 200);
    assert!(wait_until(Duration::from_secs(20), || sent.sent().len() == 1).await);
    let close = duplicate_close(22, now, 23);
    assert_eq!(server.deliver("dup-close-22", &close).await, 200);
    assert!(wait_until(Duration::from_secs(20), || sent.sent().len() >= 2).await);
    server.assert_outbox_empty().await;
    let steps: Vec<(String, String)> = sent
        .sent()
        .into_iter()
        .map(|(issue, step, _)| (issue, step))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("acme/backend#22".into(), "start".into()),
            ("acme/backend#22".into(), "duplicate:alerts".into()),
        ],
        "said once, instead of the policy's withdrawn step; no resolution"
    );
    assert_eq!(
        sent.statuses()[1],
        "closed as a duplicate of acme/backend#23, which this policy does not cover: escalation withdrawn"
    );
    assert_eq!(
        server.stats().await.clocks,
        vec![("critical-1h".to_owned(), "withdrawn".to_owned(), 1)]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_duplicate_close_no_webhook_told_of_is_found_by_reconcile() {
    use common::fake_gitlab::FakeIssue;
    let gitlab = common::fake_gitlab::FakeGitLab::start().await;
    let (server, sent, _dir) = reconciling(&gitlab, 64).await;
    let now = Utc::now();
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 65, now).add_label(now, HIGHEST));
    let label = issue_event(65, now, now, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("label-65", &label).await, 200);
    assert!(wait_until(Duration::from_secs(20), || sent.sent().len() == 2).await);

    // Closed as a duplicate of #65 in GitLab; the webhook is lost.
    let canonical = gitlab.gitlab.issue("acme/backend", 65);
    gitlab.gitlab.update("acme/backend", 64, |issue| {
        issue.closed_as_duplicate_of(&canonical, Utc::now())
    });
    assert!(
        wait_until(Duration::from_secs(20), || sent.sent().len() >= 3).await,
        "{:?}",
        sent.sent()
    );
    reconcile_passes(&server, 2.0).await;
    server.assert_outbox_empty().await;
    let steps: Vec<(String, String)> = sent
        .sent()
        .into_iter()
        .map(|(issue, step, _)| (issue, step))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("acme/backend#64".into(), "start".into()),
            ("acme/backend#65".into(), "start".into()),
            ("acme/backend#64".into(), "duplicate:alerts".into()),
        ],
        "the close reconcile found is no resolution"
    );
    assert_eq!(
        sent.statuses()[2],
        "closed as a duplicate of acme/backend#65: the SLA clock goes on there, from this issue's start"
    );
    let mut clocks = server.stats().await.clocks;
    clocks.sort();
    assert_eq!(
        clocks,
        vec![
            ("critical-1h".to_owned(), "running".to_owned(), 1),
            ("critical-1h".to_owned(), "withdrawn".to_owned(), 1),
        ]
    );
    server.stop().await;
}
