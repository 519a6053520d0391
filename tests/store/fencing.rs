//! The fencing part of the `Store` contract: a lease has one holder at a
//! time and an epoch that grows at each takeover; a pass written under a
//! lease that was lost (taken over, or run out while its writer stalled)
//! writes nothing; a claim that was lost confirms nothing and records
//! nothing, however late its owner wakes up.

use super::*;
use labelwarden::store::{LeaseFence, StoreError};

/// Work one process does at a time: a lease is held until it runs out or
/// is given up, renewing it in time keeps its epoch, and every other way
/// of taking it (another process, or the same one after it ran out) is a
/// new epoch.
pub(super) async fn a_lease_has_one_holder_at_a_time(store: impl Store, other: impl Store) {
    let lease = TimeDelta::seconds(10);
    let epoch = |fence: Option<LeaseFence>| fence.map(|f| f.epoch);
    let first = store.hold_lease("enforcer", at(0), lease).await.unwrap();
    assert_eq!(epoch(first), Some(1));
    assert_eq!(
        epoch(store.hold_lease("enforcer", at(0), lease).await.unwrap()),
        Some(1),
        "renewed in time: the same epoch"
    );
    assert_eq!(
        other.hold_lease("enforcer", at(0), lease).await.unwrap(),
        None
    );
    assert!(
        other
            .hold_lease("reconcile", at(0), lease)
            .await
            .unwrap()
            .is_some(),
        "another lease"
    );
    assert_eq!(
        epoch(other.hold_lease("enforcer", at(1), lease).await.unwrap()),
        Some(2),
        "the first holder stopped renewing: taken over"
    );
    assert_eq!(
        store.hold_lease("enforcer", at(1), lease).await.unwrap(),
        None
    );
    other.release_lease("enforcer").await.unwrap();
    assert_eq!(
        epoch(store.hold_lease("enforcer", at(1), lease).await.unwrap()),
        Some(3),
        "given up, then taken: a new epoch (it never goes back)"
    );
    assert_eq!(
        epoch(store.hold_lease("enforcer", at(3), lease).await.unwrap()),
        Some(4),
        "taken again by its holder after it ran out (a freeze): a new epoch"
    );
}

/// The enforcer froze past its lease: whatever it commits afterwards under
/// its old fence is refused whole, whether another replica took the lease
/// over or nobody did yet; under the new fence it is written.
pub(super) async fn a_pass_under_a_lost_lease_writes_nothing(store: impl Store, other: impl Store) {
    let lease = TimeDelta::seconds(2);
    let now = Utc::now();
    let fence = store
        .hold_lease("enforcer", now, lease)
        .await
        .unwrap()
        .unwrap();
    store
        .commit(&[commit(31, at(1), &["start"], None)], &[], Some(&fence))
        .await
        .expect("written while the lease holds");
    assert!(load(&store, 31).await.record.is_some());

    // Frozen past the lease; the other replica takes it over.
    let taken = other
        .hold_lease("enforcer", now + TimeDelta::seconds(3), lease)
        .await
        .unwrap()
        .expect("taken over once it ran out");
    assert_eq!(taken.epoch, fence.epoch + 1);
    let stale = store
        .commit(&[commit(32, at(1), &["start"], None)], &[], Some(&fence))
        .await;
    assert!(
        matches!(stale, Err(StoreError::LeaseLost(ref name)) if name == "enforcer"),
        "{stale:?}"
    );
    let moved = store.move_issue(&issue(31), &issue(33), Some(&fence)).await;
    assert!(matches!(moved, Err(StoreError::LeaseLost(_))), "{moved:?}");
    assert!(load(&store, 32).await.record.is_none(), "nothing written");
    assert!(load(&store, 31).await.record.is_some(), "nothing moved");
    let queued: Vec<u64> = store
        .claim_outbox(at(2), 10, TimeDelta::zero())
        .await
        .unwrap()
        .iter()
        .map(|e| e.key.issue.iid.0)
        .collect();
    assert_eq!(queued, [31], "no notice of the refused pass");
    other
        .commit(&[commit(32, at(1), &["start"], None)], &[], Some(&taken))
        .await
        .expect("the new holder writes");

    // Run out with nobody taking it over (taken 10 s ago for 2 s, then a
    // freeze): refused all the same.
    let ran_out = store
        .hold_lease("frozen", Utc::now() - TimeDelta::seconds(10), lease)
        .await
        .unwrap()
        .expect("nobody else holds it");
    let late = store
        .commit(&[commit(34, at(1), &["start"], None)], &[], Some(&ran_out))
        .await;
    assert!(matches!(late, Err(StoreError::LeaseLost(_))), "{late:?}");
    assert!(load(&store, 34).await.record.is_none());
}

/// A sender froze past its claim and another process claimed the notice
/// since: the first one's claim confirms nothing and its outcome records
/// nothing; the new claimant's do.
pub(super) async fn a_lost_claim_confirms_nothing_and_records_nothing(store: impl Store) {
    store
        .commit(&[commit(41, at(1), &["start"], None)], &[], None)
        .await
        .unwrap();
    let lease = TimeDelta::minutes(1);
    let first = store.claim_outbox(at(1), 10, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(!first[0].retaken, "claimed for the first time");
    let key = &first[0].key;
    assert!(
        store
            .confirm_claim(key, &first[0].claim, at(1) + TimeDelta::seconds(30), lease)
            .await
            .unwrap(),
        "still this claim's: confirmed and stretched"
    );
    assert!(
        store
            .claim_outbox(at(2), 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "the confirmation stretched the claim past at(2)"
    );

    // The first claimant stalls past its claim; another takes it over.
    let second = store.claim_outbox(at(3), 10, lease).await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(second[0].retaken, "claimed before and never recorded");
    assert_ne!(second[0].claim, first[0].claim);
    assert!(
        !store
            .confirm_claim(key, &first[0].claim, at(3), lease)
            .await
            .unwrap(),
        "the stalled claim is lost"
    );
    let sent = |claim: &labelwarden::store::ClaimToken| OutboxOutcome {
        key: key.clone(),
        claim: claim.clone(),
        result: SendResult::Sent {
            at: at(3),
            thread: Some(Thread {
                channel_id: "C0ALERTS".into(),
                ts: "1764000000.000100".into(),
            }),
        },
    };
    let lost = store.record_outbox(&[sent(&first[0].claim)]).await.unwrap();
    assert_eq!(
        lost,
        std::slice::from_ref(key),
        "the stalled outcome is not recorded"
    );
    assert!(
        store
            .sent_notices(&issue(41), &PolicyName("critical".into()), 1, "alerts")
            .await
            .unwrap()
            .is_empty(),
        "and not counted as sent"
    );
    assert!(
        store
            .confirm_claim(key, &second[0].claim, at(3), lease)
            .await
            .unwrap()
    );
    let lost = store
        .record_outbox(&[sent(&second[0].claim)])
        .await
        .unwrap();
    assert!(lost.is_empty());
    assert!(
        !store
            .confirm_claim(key, &second[0].claim, at(3), lease)
            .await
            .unwrap(),
        "a recorded notice confirms no claim"
    );
    assert!(
        store
            .claim_outbox(at(10), 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "sent once, recorded once"
    );
}

#[tokio::test]
async fn sqlite_lease_has_one_holder_at_a_time() {
    with_two_sqlite(a_lease_has_one_holder_at_a_time).await;
}

#[tokio::test]
async fn postgres_lease_has_one_holder_at_a_time() {
    with_two_postgres(a_lease_has_one_holder_at_a_time).await;
}

#[tokio::test]
async fn sqlite_pass_under_a_lost_lease_writes_nothing() {
    with_two_sqlite(a_pass_under_a_lost_lease_writes_nothing).await;
}

#[tokio::test]
async fn postgres_pass_under_a_lost_lease_writes_nothing() {
    with_two_postgres(a_pass_under_a_lost_lease_writes_nothing).await;
}

/// Two processes' stores on one SQLite file.
async fn with_two_sqlite<F, Fut>(check: F)
where
    F: FnOnce(SqlStore, SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lease.db").display());
    let first = SqlStore::connect(&url).await.unwrap();
    let second = SqlStore::connect(&url).await.unwrap();
    check(first, second).await;
}

/// Two processes' stores on one fresh PostgreSQL database.
async fn with_two_postgres<F, Fut>(check: F)
where
    F: FnOnce(SqlStore, SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let first = SqlStore::connect(&database.url).await.unwrap();
    let second = SqlStore::connect(&database.url).await.unwrap();
    check(first, second).await;
    database.drop().await;
}
