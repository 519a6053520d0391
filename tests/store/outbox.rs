//! The outbox part of the `Store` contract: each thread in order, a
//! fallback queued with its failure, threads handed on, Slack events kept
//! until acted on, and claims that keep replicas apart.

use super::*;

pub(super) async fn a_failing_notice_holds_back_its_thread_until_it_is_sent(store: impl Store) {
    store
        .commit(&[commit(5, at(1), &["start", "breach"], None)], &[], None)
        .await
        .unwrap();
    store
        .commit(&[commit(6, at(1), &["start"], None)], &[], None)
        .await
        .unwrap();
    let first = store
        .claim_outbox(at(1), 10, TimeDelta::zero())
        .await
        .unwrap();
    let keys: Vec<OutboxKey> = first.iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys.len(), 2, "the breach of #5 waits behind its start");

    store
        .record_outbox(&[
            OutboxOutcome {
                key: keys[0].clone(),
                claim: first[0].claim.clone(),
                result: SendResult::Retry {
                    error: "503".into(),
                    retry_at: at(10),
                },
            },
            OutboxOutcome {
                key: keys[1].clone(),
                claim: first[1].claim.clone(),
                result: SendResult::Sent {
                    at: at(1),
                    thread: None,
                },
            },
        ])
        .await
        .unwrap();
    assert!(
        store
            .claim_outbox(at(5), 10, TimeDelta::zero())
            .await
            .unwrap()
            .is_empty(),
        "nothing overtakes the retry"
    );
    assert_eq!(store.next_outbox_attempt().await.unwrap(), Some(at(10)));

    let retried = store
        .claim_outbox(at(10), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(
        (retried[0].key.firing.step.0.as_str(), retried[0].attempts),
        ("start", 1)
    );
    store
        .record_outbox(&[OutboxOutcome {
            key: retried[0].key.clone(),
            claim: retried[0].claim.clone(),
            result: SendResult::Sent {
                at: at(10),
                thread: None,
            },
        }])
        .await
        .unwrap();
    let next = store
        .claim_outbox(at(10), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].key.firing.step.0, "breach");
    store
        .record_outbox(&[OutboxOutcome {
            key: next[0].key.clone(),
            claim: next[0].claim.clone(),
            result: SendResult::Failed {
                error: "channel_not_found".into(),
            },
        }])
        .await
        .unwrap();
    let stats = store.stats(at(10)).await.unwrap();
    assert_eq!(
        (stats.outbox_pending, stats.outbox_failed),
        (0, 1),
        "a hopeless notice stays visible"
    );
}

/// A notice refused for good with a fallback route is failed, and its
/// fallback queued in the same write as a notice of its own: claimed like
/// any other (by whichever process comes next), in its issue's order, and
/// retried if the route is busy, never dropped.
pub(super) async fn a_refused_notice_s_fallback_is_queued_with_its_failure(store: impl Store) {
    store
        .commit(&[commit(11, at(1), &["start"], None)], &[], None)
        .await
        .unwrap();
    let start = store
        .claim_outbox(at(1), 10, TimeDelta::zero())
        .await
        .unwrap();
    let mut instead = notice(11, "start");
    instead.slack.as_mut().unwrap().channel = "backup".into();
    store
        .record_outbox(&[OutboxOutcome {
            key: start[0].key.clone(),
            claim: start[0].claim.clone(),
            result: SendResult::FellBack {
                error: "is_archived".into(),
                instead: Box::new(instead),
                step: "start>backup".into(),
                channel: Some("backup".into()),
            },
        }])
        .await
        .unwrap();
    let now = Utc::now() + TimeDelta::seconds(1);
    let stats = store.stats(now).await.unwrap();
    assert_eq!(
        (stats.outbox_pending, stats.outbox_failed),
        (1, 1),
        "the original failed, its fallback waiting"
    );
    let fallback = store
        .claim_outbox(now, 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(fallback.len(), 1);
    assert_eq!(fallback[0].key.firing.step.0, "start>backup");
    assert_eq!(fallback[0].key.issue, issue(11));
    assert_eq!(fallback[0].notice.slack.as_ref().unwrap().channel, "backup");
    // The route is busy: retried, not lost.
    store
        .record_outbox(&[OutboxOutcome {
            key: fallback[0].key.clone(),
            claim: fallback[0].claim.clone(),
            result: SendResult::Retry {
                error: "ratelimited".into(),
                retry_at: now + TimeDelta::seconds(1),
            },
        }])
        .await
        .unwrap();
    let again = store
        .claim_outbox(now + TimeDelta::seconds(2), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the fallback is tried again");
    assert_eq!(again[0].attempts, 1);
}

/// A sent notice's thread is handed out with the later notices of its
/// clock cycle in the same channel, and only those; a rate-limit deferral
/// does not count as an attempt.
pub(super) async fn a_sent_notice_s_thread_goes_with_the_rest_of_its_cycle(store: impl Store) {
    let mut fired = commit(8, at(1), &["start", "warning", "breach"], None);
    fired.fired[2].notice.slack.as_mut().unwrap().channel = "managers".into();
    store.commit(&[fired], &[], None).await.unwrap();
    let start = store
        .claim_outbox(at(1), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].thread, None, "nothing started a thread yet");

    let parent = Thread {
        channel_id: "C0ALERTS".into(),
        ts: "1700000000.000100".into(),
    };
    store
        .record_outbox(&[OutboxOutcome {
            key: start[0].key.clone(),
            claim: start[0].claim.clone(),
            result: SendResult::Sent {
                at: at(1),
                thread: Some(parent.clone()),
            },
        }])
        .await
        .unwrap();
    let warning = store
        .claim_outbox(at(1), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(warning[0].key.firing.step.0, "warning");
    assert_eq!(warning[0].thread.as_ref(), Some(&parent));

    store
        .record_outbox(&[OutboxOutcome {
            key: warning[0].key.clone(),
            claim: warning[0].claim.clone(),
            result: SendResult::Deferred { retry_at: at(2) },
        }])
        .await
        .unwrap();
    assert!(
        store
            .claim_outbox(at(1), 10, TimeDelta::zero())
            .await
            .unwrap()
            .is_empty()
    );
    let deferred = store
        .claim_outbox(at(2), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(
        (deferred[0].key.firing.step.0.as_str(), deferred[0].attempts),
        ("warning", 0),
        "a deferral is not an attempt"
    );
    store
        .record_outbox(&[OutboxOutcome {
            key: deferred[0].key.clone(),
            claim: deferred[0].claim.clone(),
            result: SendResult::Sent {
                at: at(2),
                thread: Some(parent.clone()),
            },
        }])
        .await
        .unwrap();
    let breach = store
        .claim_outbox(at(2), 10, TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(breach[0].key.firing.step.0, "breach");
    assert_eq!(breach[0].thread, None, "another channel has its own thread");

    // Slack events on the parent find their way back to the issue's cycle.
    let found = store
        .alert_thread(&parent.channel_id, &parent.ts)
        .await
        .unwrap()
        .expect("labelwarden posted this parent");
    assert_eq!(
        (found.issue.iid.0, found.policy.0.as_str(), found.cycle),
        (8, breach[0].key.policy.0.as_str(), 1)
    );
    assert_eq!(
        store
            .alert_thread(&parent.channel_id, "1700000000.999999")
            .await
            .unwrap(),
        None,
        "not a message labelwarden posted"
    );
}

/// A Slack event is kept until it was acted on, retried when acting failed
/// for now, recognised when Slack retries it, and forgotten a day after it
/// was handled, so the table does not grow forever.
pub(super) async fn slack_events_are_kept_until_acted_on_and_remembered_for_a_day(
    store: impl Store,
) {
    use labelwarden::store::{Recorded, SlackEventOutcome};
    let lease = TimeDelta::minutes(1);
    let event = r#"{"kind":"other"}"#;
    assert_eq!(
        store.record_slack_event("Ev1", event, at(0)).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        store.record_slack_event("Ev1", event, at(5)).await.unwrap(),
        Recorded::Duplicate,
        "Slack's retry minutes later"
    );
    let claimed = store.claim_slack_events(at(0), 10, lease).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].event.as_str(), claimed[0].attempts), (event, 0));
    assert!(
        store
            .claim_slack_events(at(0), 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "claimed by this process"
    );
    let retry = SlackEventOutcome::Retry {
        error: "GitLab: 502".into(),
        retry_at: at(2),
    };
    assert!(
        store
            .finish_slack_event("Ev1", &claimed[0].claim, &retry, at(0))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_slack_events(at(1), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_slack_event().await.unwrap(), Some(at(2)));
    let again = store.claim_slack_events(at(2), 10, lease).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    assert_ne!(again[0].claim, claimed[0].claim, "a new claim");
    assert!(
        store
            .confirm_slack_event_claim("Ev1", &again[0].claim, at(2), lease)
            .await
            .unwrap()
    );
    assert!(
        !store
            .confirm_slack_event_claim("Ev1", &claimed[0].claim, at(2), lease)
            .await
            .unwrap(),
        "the first claim is spent"
    );
    assert!(
        !store
            .finish_slack_event("Ev1", &claimed[0].claim, &SlackEventOutcome::Done, at(2))
            .await
            .unwrap(),
        "nothing recorded under a claim that is not the event's"
    );
    assert!(
        store
            .finish_slack_event("Ev1", &again[0].claim, &SlackEventOutcome::Done, at(2))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_slack_events(at(3), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_slack_event().await.unwrap(), None);

    // Not yet acted on: kept however old.
    store
        .record_slack_event("Ev2", event, at(10))
        .await
        .unwrap();
    store
        .record_slack_event("Ev3", event, at(25 * 60))
        .await
        .unwrap();
    assert_eq!(
        store
            .record_slack_event("Ev1", event, at(25 * 60 + 1))
            .await
            .unwrap(),
        Recorded::New,
        "handled and a day old: forgotten"
    );
    assert_eq!(
        store
            .record_slack_event("Ev2", event, at(25 * 60 + 1))
            .await
            .unwrap(),
        Recorded::Duplicate,
        "never handled: still there"
    );
}

/// Two processes sharing the database never hold the same entry: a claim
/// hides it until it is recorded or the claim runs out.
pub(super) async fn a_claimed_notice_is_nobody_else_s_until_its_claim_runs_out(store: impl Store) {
    store
        .commit(
            &[
                commit(21, at(1), &["start"], None),
                commit(22, at(1), &["start"], None),
            ],
            &[],
            None,
        )
        .await
        .unwrap();
    let lease = TimeDelta::minutes(1);
    let first = store.claim_outbox(at(1), 1, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    let second = store.claim_outbox(at(1), 10, lease).await.unwrap();
    assert_eq!(second.len(), 1, "only the unclaimed one");
    assert_ne!(first[0].key, second[0].key);
    assert!(
        store
            .claim_outbox(at(1), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.next_outbox_attempt().await.unwrap(),
        Some(at(2)),
        "claimed entries are due again when their claim runs out"
    );

    store
        .record_outbox(&[OutboxOutcome {
            key: first[0].key.clone(),
            claim: first[0].claim.clone(),
            result: SendResult::Sent {
                at: at(1),
                thread: None,
            },
        }])
        .await
        .unwrap();
    // The claimant of the second died: its claim runs out, someone else takes it.
    let taken_over = store.claim_outbox(at(2), 10, lease).await.unwrap();
    assert_eq!(taken_over.len(), 1);
    assert_eq!(taken_over[0].key, second[0].key);
    assert!(!second[0].retaken, "claimed for the first time");
    assert!(
        taken_over[0].retaken,
        "claimed before and never recorded: it may be out already"
    );
}
