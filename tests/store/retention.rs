//! Retention in the store contract: ended issues forgotten with every row
//! after the retention, running clocks never, whatever their age; applied
//! deliveries lose their payload, and their key after its window.

use super::*;

/// A commit of issue `iid` at `now` whose critical clock stands `status`.
fn standing(iid: u64, now: DateTime<Utc>, status: &'static str, steps: &[&str]) -> IssueCommit {
    let mut commit = commit(iid, now, steps, None);
    commit.clocks[0].status = status;
    commit
}

/// Marks every claimable notice sent.
async fn send_all(store: &impl Store, now: DateTime<Utc>) {
    let claimed = store
        .claim_outbox(now, 100, TimeDelta::minutes(1))
        .await
        .unwrap();
    let outcomes: Vec<OutboxOutcome> = claimed
        .iter()
        .map(|entry| OutboxOutcome {
            key: entry.key.clone(),
            claim: entry.claim.clone(),
            result: SendResult::Sent {
                at: now,
                thread: None,
            },
        })
        .collect();
    store.record_outbox(&outcomes).await.unwrap();
}

pub(super) async fn ended_issues_are_forgotten_after_the_retention_and_running_ones_never(
    store: impl Store,
) {
    let day = |d: i64| at(d * 24 * 60);
    // Each started on day 0 and was announced.
    let started: Vec<IssueCommit> = (1..=4)
        .map(|iid| standing(iid, at(1), "running", &["start"]))
        .collect();
    store.commit(&started, &[], None).await.unwrap();
    send_all(&store, at(2)).await;
    // #1 still runs (breached for months); #2 was met on day 1; #3 on
    // day 100; #4 was met on day 1 but its resolution is not sent yet.
    store
        .commit(
            &[
                standing(1, day(1), "breached", &[]),
                standing(2, day(1), "met", &[]),
                standing(3, day(100), "met", &[]),
                standing(4, day(1), "met", &["resolved"]),
            ],
            &[],
            None,
        )
        .await
        .unwrap();

    // Kept for 90 days: on day 120, forget what ended before day 30.
    let forgotten = store.forget_ended(day(30), 10, None).await.unwrap();
    assert_eq!(forgotten, 1, "only #2");
    let gone = load(&store, 2).await;
    assert!(gone.record.is_none() && gone.ledger.is_empty() && gone.statuses.is_empty());
    for kept in [1, 3, 4] {
        let loaded = load(&store, kept).await;
        assert!(loaded.record.is_some(), "#{kept} is kept");
        assert!(!loaded.ledger.is_empty(), "#{kept} keeps its ledger");
    }
    assert_eq!(
        store.forget_ended(day(30), 10, None).await.unwrap(),
        0,
        "a second pass finds nothing more"
    );
    // A clock that only holds because its issue is closed (a policy that
    // stops on a label) ends with the issue for retention; held open by a
    // pause label, it is kept.
    let mut closed = standing(5, day(1), "paused", &[]);
    closed.facts.state = IssueState::Closed;
    let open = standing(6, day(1), "paused", &[]);
    store.commit(&[closed, open], &[], None).await.unwrap();
    assert_eq!(
        store.forget_ended(day(30), 10, None).await.unwrap(),
        1,
        "#5"
    );
    assert!(load(&store, 5).await.record.is_none());
    assert!(
        load(&store, 6).await.record.is_some(),
        "#6 is paused while open: kept"
    );

    // Whatever the age, a running clock is never forgotten; a notice still
    // to send holds its issue until it is out.
    assert_eq!(
        store.forget_ended(day(10_000), 10, None).await.unwrap(),
        1,
        "#3"
    );
    assert!(
        load(&store, 4).await.record.is_some(),
        "#4 waits for its notice"
    );
    send_all(&store, day(10_000)).await;
    assert_eq!(
        store.forget_ended(day(10_000), 10, None).await.unwrap(),
        1,
        "#4"
    );
    assert!(load(&store, 1).await.record.is_some(), "#1 runs: kept");
}

pub(super) async fn applied_deliveries_lose_their_payload_then_their_key(store: impl Store) {
    for (key, minute) in [("a", 1), ("b", 2), ("c", 3)] {
        store.record_delivery(&delivery(key, minute)).await.unwrap();
    }
    let pending = store.pending_deliveries(10).await.unwrap();
    let handled: Vec<Handled> = pending[..2]
        .iter()
        .map(|d| Handled {
            key: d.key.clone(),
            seq: d.seq,
            rejected: None,
        })
        .collect();
    store.commit(&[], &handled, None).await.unwrap();

    // Keys kept from minute 2 on: "a" goes, "b" loses its payload only.
    store.prune_deliveries(at(2), 10).await.unwrap();
    assert_eq!(
        store.record_delivery(&delivery("b", 9)).await.unwrap(),
        Recorded::Duplicate,
        "GitLab's redelivery of b within the window is recognised"
    );
    let waiting = store.pending_deliveries(10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (waiting[0].key.as_str(), waiting[0].payload.as_str()),
        ("c", "{\"key\":\"c\"}"),
        "a delivery not applied yet keeps everything"
    );
    let rows = |size: labelwarden::store::retention::StoreSize| {
        size.tables
            .into_iter()
            .find(|(table, _)| table == "deliveries")
            .map(|(_, rows)| rows)
    };
    assert_eq!(rows(store.size().await.unwrap()), Some(2), "b and c");
    store.prune_deliveries(at(60), 10).await.unwrap();
    assert_eq!(
        rows(store.size().await.unwrap()),
        Some(1),
        "only c, not applied yet"
    );
    assert!(store.size().await.unwrap().bytes > 0);
}
