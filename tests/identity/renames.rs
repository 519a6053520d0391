//! A renamed project keeps one clock and one thread, told by a webhook or
//! found by reconcile; a deleted issue ends its clock once.

use super::*;

#[tokio::test]
async fn a_renamed_project_keeps_one_clock_and_one_thread() {
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
    assert_eq!(server.deliver("rename-1", &label).await, 200);
    assert!(wait_until(Duration::from_secs(20), || sent.sent().len() == 1).await);

    // The project is renamed; the next delivery (an edit) names the new path.
    let edited = at_path(
        issue_event(5, labelled, Utc::now(), &[HIGHEST], &[HIGHEST], false),
        "acme/checkout",
    );
    assert_eq!(server.deliver("rename-2", &edited).await, 200);
    assert!(
        wait_until(Duration::from_secs(12), || sent.sent().len() >= 3).await,
        "{:?}",
        sent.sent()
    );
    server.assert_outbox_empty().await;
    let first = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#5".into(), "start".into(), None),
            (
                "acme/checkout#5".into(),
                "before_deadline:4s".into(),
                first.clone()
            ),
            ("acme/checkout#5".into(), "breach".into(), first),
        ],
        "one clock, one thread; later messages show the new path"
    );
    // The clock is the one the first label started: 8 s from it.
    let deadline = labelled + chrono::TimeDelta::seconds(8);
    for step in ["before_deadline:4s", "breach"] {
        let carried = sent.deadline("acme/checkout#5", step);
        assert!(
            (carried - deadline).num_milliseconds().abs() <= 1,
            "{step}: {carried} for {deadline}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_rename_no_webhook_told_of_is_found_by_reconcile() {
    let gitlab = common::fake_gitlab::FakeGitLab::start().await;
    let (server, sent, _dir) = reconciling(&gitlab, 60).await;
    // As the API tells it, #60 last changed before labelwarden first saw
    // the project: what reconcile reads of it is older than what the store
    // knows of the project, yet the path it reads is news.
    gitlab.gitlab.update("acme/backend", 60, |mut issue| {
        issue.updated_at -= chrono::TimeDelta::hours(1);
        issue
    });

    // Renamed, then closed, and no webhook says either.
    gitlab
        .gitlab
        .rename_project("acme/backend", "acme/checkout");
    reconcile_passes(&server, 2.0).await;
    // The rename alone was followed: the clock is kept under the new path.
    {
        use labelwarden::store::Store;
        let store = labelwarden::store::sql::SqlStore::connect(&server.database_url)
            .await
            .unwrap();
        let paths: Vec<String> = store
            .known_projects()
            .await
            .unwrap()
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(paths, vec!["acme/checkout"]);
    }
    gitlab
        .gitlab
        .update("acme/checkout", 60, |issue| issue.close(Utc::now()));
    assert!(
        wait_until(Duration::from_secs(20), || sent.sent().len() >= 2).await,
        "{:?}",
        sent.sent()
    );
    server.assert_outbox_empty().await;
    let first = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#60".into(), "start".into(), None),
            ("acme/checkout#60".into(), "resolved".into(), first),
        ],
        "the close reconcile found resolves the one clock, in its thread"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_issue_ends_its_clock_once() {
    let gitlab = common::fake_gitlab::FakeGitLab::start().await;
    let (server, sent, _dir) = reconciling(&gitlab, 62).await;
    gitlab.gitlab.delete("acme/backend", 62);
    assert!(
        wait_until(Duration::from_secs(20), || sent.sent().len() >= 2).await,
        "{:?}",
        sent.sent()
    );
    // More passes read it again and get 404 again: nothing more is said.
    reconcile_passes(&server, 3.0).await;
    server.assert_outbox_empty().await;
    let first = thread("1800000000.000001");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#62".into(), "start".into(), None),
            ("acme/backend#62".into(), "gone:alerts".into(), first),
        ],
        "said once, in the thread"
    );
    assert_eq!(
        server.stats().await.clocks,
        vec![("critical-1h".to_owned(), "gone".to_owned(), 1)],
        "the clock ended"
    );
    server.stop().await;
}
