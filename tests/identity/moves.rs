//! An issue moved to another project carries its clock and thread, whichever of its two hooks comes first, or when reconcile finds the move.

use super::*;

/// The old issue's close when it was moved to `to#to_iid`.
fn moved_close(iid: u64, labelled: DateTime<Utc>, to: &str, to_iid: u64) -> Value {
    let mut close = issue_event(iid, labelled, Utc::now(), &[HIGHEST], &[HIGHEST], true);
    close["object_attributes"]["moved_to_id"] = json!(global_id(to, to_iid));
    close
}

/// The new issue of a move: created now in `project`, with the labels.
fn opened_by_move(project: &str, iid: u64) -> Value {
    let now = Utc::now();
    let mut open = at_path(
        issue_event(iid, now, now, &[HIGHEST], &[HIGHEST], false),
        project,
    );
    let project_id = common::fake_gitlab::project_id(project);
    open["project"]["id"] = json!(project_id);
    open["object_attributes"]["project_id"] = json!(project_id);
    open["object_attributes"]["id"] = json!(global_id(project, iid));
    open["object_attributes"]["action"] = json!("open");
    open
}

/// A move of #5 to acme/other#12, its two hooks in `order`: the clock and
/// the thread go with it, no resolution is said, and the warning and the
/// breach come when the first label said they would.
async fn a_move_carries_the_clock(new_issue_first: bool) {
    let dir = tempfile::tempdir().unwrap();
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-room"),
        &sqlite(&dir.path().join("db.sqlite")),
        sent.clone(),
        Options::default(),
    )
    .await;
    let labelled = Utc::now();
    let label = issue_event(5, labelled, labelled, &[], &[HIGHEST], false);
    assert_eq!(server.deliver("move-label", &label).await, 200);
    assert!(wait_until(Duration::from_secs(20), || sent.sent().len() == 1).await);

    let close = moved_close(5, labelled, "acme/other", 12);
    let open = opened_by_move("acme/other", 12);
    let (first, second) = if new_issue_first {
        (open, close)
    } else {
        (close, open)
    };
    assert_eq!(server.deliver("move-1", &first).await, 200);
    assert_eq!(server.deliver("move-2", &second).await, 200);
    assert!(
        wait_until(Duration::from_secs(12), || sent.sent().len() >= 4).await,
        "{:?}",
        sent.sent()
    );
    server.assert_outbox_empty().await;
    let thread = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#5".into(), "start".into(), None),
            (
                "acme/other#12".into(),
                "moved:alerts".into(),
                thread.clone()
            ),
            (
                "acme/other#12".into(),
                "before_deadline:4s".into(),
                thread.clone()
            ),
            ("acme/other#12".into(), "breach".into(), thread),
        ],
        "one clock from the first label, one thread, no resolution"
    );
    let deadline = labelled + chrono::TimeDelta::seconds(8);
    for step in ["before_deadline:4s", "breach"] {
        let carried = sent.deadline("acme/other#12", step);
        assert!(
            (carried - deadline).num_milliseconds().abs() <= 1,
            "{step}: {carried} for {deadline}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_moved_issue_keeps_its_clock_and_thread_when_the_close_comes_first() {
    a_move_carries_the_clock(false).await;
}

#[tokio::test]
async fn a_moved_issue_keeps_its_clock_and_thread_when_the_new_issue_comes_first() {
    a_move_carries_the_clock(true).await;
}

#[tokio::test]
async fn a_move_no_webhook_told_of_is_followed_by_reconcile() {
    use labelwarden::gitlab::history::Scope;
    let gitlab = common::fake_gitlab::FakeGitLab::start().await;
    let scopes = vec![Scope::Group("acme".into())];
    let (server, sent, _dir) = reconciling_in(&gitlab, 66, scopes).await;
    // Moved to acme/other; neither hook reaches labelwarden.
    gitlab
        .gitlab
        .move_issue("acme/backend", 66, "acme/other", 13, Utc::now());
    assert!(
        wait_until(Duration::from_secs(20), || sent.sent().len() >= 2).await,
        "{:?}",
        sent.sent()
    );
    reconcile_passes(&server, 2.0).await;
    server.assert_outbox_empty().await;
    let first = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#66".into(), "start".into(), None),
            ("acme/other#13".into(), "moved:alerts".into(), first),
        ],
        "no resolution, no second start: the clock moved"
    );
    assert_eq!(
        server.stats().await.clocks,
        vec![("critical-1h".to_owned(), "running".to_owned(), 1)]
    );
    server.stop().await;
}
