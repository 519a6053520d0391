//! The digest part of the `Store` contract: a storm window gathers its
//! members and one outbox row sends it.

use super::*;

/// Issue `iid`'s start, said in a digest instead of a thread of its own:
/// its notice has nothing left to send.
pub(super) fn grouped_start(iid: u64, now: DateTime<Utc>) -> IssueCommit {
    let mut commit = commit(iid, now, &["start"], None);
    commit.fired[0].notice.slack = None;
    commit
}

/// Sends the grouped starts' own rows due at `now` (nothing for Slack),
/// and says whose they were.
pub(super) async fn send_starts(store: &impl Store, now: DateTime<Utc>) -> Vec<u64> {
    let starts = store
        .claim_outbox(now, 10, TimeDelta::minutes(1))
        .await
        .unwrap();
    assert!(
        starts
            .iter()
            .all(|e| e.notice.slack.is_none() && e.key.firing.step.0 == "start")
    );
    let issues = starts.iter().map(|e| e.key.issue.iid.0).collect();
    let outcomes: Vec<OutboxOutcome> = starts
        .into_iter()
        .map(|e| OutboxOutcome {
            key: e.key,
            claim: e.claim,
            result: SendResult::Sent {
                at: now,
                thread: None,
            },
        })
        .collect();
    store.record_outbox(&outcomes).await.unwrap();
    issues
}

/// Admission `seq` of issue `iid` into `key`'s window: listed when `listed`.
pub(super) fn admitted(key: &DigestKey, iid: u64, seq: u32, listed: bool) -> DigestEntry {
    let mut listed_notice = notice(iid, "start");
    listed_notice.step_kind = "adopted".into();
    DigestEntry {
        key: key.clone(),
        closes_at: key.opened_at + TimeDelta::minutes(1),
        seq,
        issue: issue(iid),
        cycle: 1,
        notice: listed.then_some(listed_notice),
    }
}

pub(super) async fn a_digest_gathers_its_window_and_one_outbox_row_sends_it(store: impl Store) {
    let key = DigestKey {
        kind: DigestKind::Adopted,
        channel: "alerts".into(),
        policy: PolicyName("critical".into()),
        opened_at: at(10),
    };
    // A pass admits two issues alone and two listed, each with its start.
    let mut first = commit(31, at(10), &[], None);
    first.digests = vec![admitted(&key, 31, 1, false), admitted(&key, 32, 2, false)];
    let mut second = grouped_start(33, at(10));
    second.digests = vec![admitted(&key, 33, 3, true)];
    let mut also = grouped_start(34, at(10));
    also.digests = vec![admitted(&key, 34, 4, true)];
    store
        .commit(&[first, second, also], &[], None)
        .await
        .unwrap();
    // Another evaluation of #33's start (it lost the race for the firing)
    // lists it nowhere again.
    let mut again = grouped_start(33, at(10));
    again.digests = vec![admitted(&key, 33, 9, true)];
    store.commit(&[again], &[], None).await.unwrap();

    let open = store.open_digests(at(10)).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].key.clone(), open[0].members), (key.clone(), 4));
    assert!(
        store.open_digests(at(11)).await.unwrap().is_empty(),
        "the window closed after a minute"
    );
    let digest = store.digest(&key).await.unwrap().expect("kept");
    let listed: Vec<(u32, u64)> = digest
        .items
        .iter()
        .map(|i| (i.seq, i.notice.issue.iid.0))
        .collect();
    assert_eq!(listed, [(3, 33), (4, 34)], "only the listed, in order");
    assert_eq!(digest.progress, DigestProgress::default());

    // The listed starts have nothing left to send: no outbox row of their
    // own (the enforcer lists them on the issue's ledger note); the digest
    // has the only one.
    assert!(send_starts(&store, at(10)).await.is_empty());
    // One row sends it, once the window has been quiet for 3 seconds.
    let settled = at(10) + TimeDelta::seconds(3);
    assert_eq!(store.next_outbox_attempt().await.unwrap(), Some(settled));
    assert!(
        store
            .claim_outbox(at(10), 10, TimeDelta::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
    // A later pass adds one: the unclaimed row waits for it, no second row.
    let mut third = grouped_start(35, at(10) + TimeDelta::seconds(2));
    third.digests = vec![admitted(&key, 35, 5, true)];
    store.commit(&[third], &[], None).await.unwrap();
    assert!(
        send_starts(&store, at(10) + TimeDelta::seconds(2))
            .await
            .is_empty()
    );
    let later = at(10) + TimeDelta::seconds(5);
    assert_eq!(store.next_outbox_attempt().await.unwrap(), Some(later));
    let claimed = store
        .claim_outbox(later, 10, TimeDelta::minutes(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "one row for the whole digest");
    assert_eq!(
        DigestKey::from_outbox(&claimed[0].key.issue, &claimed[0].key.policy),
        Some(key.clone())
    );

    // Progress is kept; the summary's thread goes with the row.
    let progress = DigestProgress {
        summarised: 3,
        batch_from: 0,
        batch_through: 5,
        batch_posted: 3,
    };
    let thread = Thread {
        channel_id: "C0ALERTS".into(),
        ts: "1764000000.000100".into(),
    };
    store
        .record_digest(
            &key,
            &progress,
            &[],
            Some(&thread),
            Some((&claimed[0].key, &claimed[0].claim)),
        )
        .await
        .unwrap();
    // A claimant that lost the row (another took it over) writes nothing.
    let stale = labelwarden::store::ClaimToken("another-process#7".into());
    let refused = store
        .record_digest(
            &key,
            &DigestProgress::default(),
            &[],
            None,
            Some((&claimed[0].key, &stale)),
        )
        .await;
    assert!(
        matches!(refused, Err(labelwarden::store::StoreError::ClaimLost(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.digest(&key).await.unwrap().unwrap().progress,
        progress,
        "the progress stands"
    );
    // The thread was written with the progress: a claimant that stops
    // there (its outcome never recorded, the database gone a moment)
    // leaves the next one the summary's thread, so the list goes in it.
    let retaken = store
        .claim_outbox(later + TimeDelta::minutes(2), 10, TimeDelta::minutes(1))
        .await
        .unwrap();
    assert_eq!(retaken.len(), 1, "the unrecorded send is taken over");
    assert_eq!(
        retaken[0].thread.as_ref(),
        Some(&thread),
        "the summary's thread is known to the send taken over"
    );
    store
        .record_outbox(&[OutboxOutcome {
            key: retaken[0].key.clone(),
            claim: retaken[0].claim.clone(),
            result: SendResult::Progress {
                thread: Some(thread.clone()),
                retry_at: later,
            },
        }])
        .await
        .unwrap();
    let again = store
        .claim_outbox(later, 10, TimeDelta::minutes(1))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "more to send: the row stays");
    assert_eq!(again[0].attempts, 0, "progress is no failed attempt");
    assert_eq!(
        again[0].thread.as_ref(),
        Some(&thread),
        "the rest goes in the summary's thread"
    );
    assert_eq!(
        store.digest(&key).await.unwrap().map(|d| d.progress),
        Some(progress)
    );

    // A month later, a new storm lets the old digest go.
    let next = DigestKey {
        opened_at: at(10) + TimeDelta::days(31),
        ..key.clone()
    };
    let mut fourth = commit(36, next.opened_at, &[], None);
    fourth.digests = vec![admitted(&next, 36, 1, false)];
    store.commit(&[fourth], &[], None).await.unwrap();
    assert_eq!(store.digest(&key).await.unwrap(), None);
    assert!(store.digest(&next).await.unwrap().is_some());
}

/// Two enforcers for a moment (one stalled past its lease, one taking
/// over) can admit different issues at the same place of one window:
/// both are kept and listed, neither dropped for the other's place. The
/// same issue's cycle admitted twice is one member.
pub(super) async fn windows_that_disagree_on_a_place_keep_every_member(store: impl Store) {
    let key = DigestKey {
        kind: DigestKind::Adopted,
        channel: "alerts".into(),
        policy: PolicyName("critical".into()),
        opened_at: at(20),
    };
    let mut one = grouped_start(51, at(20));
    one.digests = vec![admitted(&key, 51, 6, true)];
    store.commit(&[one], &[], None).await.unwrap();
    // The other enforcer's window, read before the first one's pass.
    let mut other = grouped_start(52, at(20));
    other.digests = vec![admitted(&key, 52, 6, true)];
    store.commit(&[other], &[], None).await.unwrap();
    // A later pass admits #51's cycle again (no new firing, no notice).
    let mut again = commit(51, at(20), &[], None);
    again.digests = vec![admitted(&key, 51, 7, false)];
    store.commit(&[again], &[], None).await.unwrap();

    let digest = store.digest(&key).await.unwrap().expect("kept");
    let listed: Vec<(u32, u64)> = digest
        .items
        .iter()
        .map(|i| (i.seq, i.notice.issue.iid.0))
        .collect();
    assert_eq!(
        listed,
        [(6, 51), (6, 52)],
        "both listed, ties in issue order"
    );
    let open = store.open_digests(at(20)).await.unwrap();
    assert_eq!(open[0].members, 6, "the next place comes after both");
}
