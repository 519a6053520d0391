//! A group alert's list goes in its summary's thread even when the send
//! that posted the summary could not write down where it is (the database
//! went away between the post and the record): the next send finds the
//! summary in Slack by its key instead of posting the list on its own,
//! where a later update of the summary would write over it.

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use chrono::{TimeDelta, Utc};
use common::fake_slack::{FakeSlack, TOKEN};
use labelwarden::issue::{IssueIid, IssueRef, ProjectPath};
use labelwarden::notice::SlaFacts;
use labelwarden::notice::digest::{Digest, DigestItem, DigestKey, DigestKind, DigestProgress};
use labelwarden::notify::Notifier;
use labelwarden::policy::PolicyName;
use labelwarden::slack::{SlackNotifier, SlackSettings};
use secrecy::SecretString;

/// A group alert of `count` running clocks in the channel `alerts`
/// (`C0ALERTS1`, given by id so that Slack can be searched).
fn group_alert(count: u32) -> Digest {
    let now = Utc::now();
    let key = DigestKey {
        kind: DigestKind::Alerts,
        channel: "alerts".into(),
        policy: PolicyName("replicated".into()),
        opened_at: now,
    };
    let items = (1..=count)
        .map(|seq| {
            let mut notice = key.outbox_notice(1, now);
            notice.issue = IssueRef {
                project: ProjectPath("acme/backend".into()),
                iid: IssueIid(u64::from(seq)),
            };
            notice.url = format!("https://gitlab.example.com/acme/backend/-/issues/{seq}");
            notice.title = format!("Checkout broken #{seq}");
            notice.step_kind = "start".into();
            notice.sla = SlaFacts {
                kind: "running".into(),
                target_ms: 3_000,
                remaining_ms: Some(2_000),
                ..SlaFacts::default()
            };
            notice.deadline = Some(now + TimeDelta::seconds(2));
            DigestItem { seq, notice }
        })
        .collect();
    Digest {
        key,
        items,
        progress: DigestProgress::default(),
        notices: Vec::new(),
    }
}

#[tokio::test]
async fn a_summary_whose_thread_was_not_recorded_is_found_and_the_list_goes_in_its_thread() {
    let slack = FakeSlack::start().await;
    let policies = common::fixture_policies("policies-replicas");
    let settings = SlackSettings {
        api_url: slack.api_url.clone(),
        token: Some(SecretString::from(TOKEN.to_owned())),
        webhook_urls: BTreeMap::new(),
        per_channel_per_second: NonZeroU32::new(100).unwrap(),
        per_channel_burst: NonZeroU32::new(100).unwrap(),
    };
    let notifier = SlackNotifier::new(policies, settings).expect("notifier");
    let mut digest = group_alert(3);

    let first = notifier.send_digest(&digest, None, false).await.unwrap();
    let summary = first.thread.clone().expect("the summary starts a thread");
    assert!(first.progress.summarised > 0, "the summary is out");
    assert!(!first.done, "the list is still to come");

    // Its progress was recorded, its thread was not: the next send knows
    // the summary is out but not where.
    digest.progress = first.progress;
    let second = notifier.send_digest(&digest, None, false).await.unwrap();
    assert_eq!(
        second.thread.as_ref(),
        Some(&summary),
        "the summary is found by its key, not posted again"
    );
    digest.progress = second.progress;
    let third = notifier
        .send_digest(&digest, second.thread.as_ref(), false)
        .await
        .unwrap();
    assert!(third.done, "{third:?}");

    let messages = slack.slack.messages();
    let parents: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    assert_eq!(
        parents.len(),
        1,
        "one message in the channel: {messages:#?}"
    );
    assert!(
        parents[0].text.contains("at once, in one thread"),
        "the channel shows the summary: {}",
        parents[0].text
    );
    let list: Vec<_> = messages
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(summary.ts.as_str()))
        .collect();
    assert_eq!(list.len(), 1, "the list, in the summary's thread");
    for iid in 1..=3 {
        assert!(
            list[0]
                .shown()
                .contains(&format!("acme/backend/-/issues/{iid}")),
            "#{iid} is listed: {}",
            list[0].shown()
        );
    }
}
