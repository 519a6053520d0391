use super::*;
use crate::test_support::t;

fn key() -> DigestKey {
    DigestKey {
        kind: DigestKind::Adopted,
        channel: "alerts".into(),
        policy: PolicyName("critical".into()),
        opened_at: t(0),
    }
}

fn item(seq: u32, kind: &str, remaining_min: Option<i64>, overdue_min: Option<i64>) -> DigestItem {
    let mut notice = key().outbox_notice(1, t(0));
    notice.issue = IssueRef {
        project: ProjectPath("acme/app".into()),
        iid: IssueIid(u64::from(seq)),
    };
    notice.sla = SlaFacts {
        kind: kind.into(),
        target_ms: 24 * 3_600_000,
        remaining_ms: remaining_min.map(|m| m * 60_000),
        overdue_ms: overdue_min.map(|m| m * 60_000),
        ..SlaFacts::default()
    };
    DigestItem { seq, notice }
}

#[test]
fn the_list_runs_from_the_most_overdue_to_the_latest_deadline_then_paused() {
    let digest = Digest {
        key: key(),
        progress: DigestProgress::default(),
        notices: Vec::new(),
        items: vec![
            item(1, "running", Some(120), None),
            item(2, "breached", None, Some(60)),
            item(3, "paused", Some(30), None),
            item(4, "breached", None, Some(4_000)),
            item(5, "running", Some(10), None),
        ],
    };
    let order: Vec<u32> = digest.by_urgency(t(0)).iter().map(|i| i.seq).collect();
    assert_eq!(order, [4, 2, 5, 1, 3]);
    let tally = digest.tally(t(0));
    assert_eq!(
        (tally.total, tally.overdue, tally.running, tally.paused),
        (5, 2, 2, 1)
    );
    assert_eq!(
        tally.oldest_overdue.map(|(by, n)| (by, n.issue.iid.0)),
        Some((TimeDelta::minutes(4_000), 4))
    );
    assert_eq!(
        tally.next_deadline.map(|(left, n)| (left, n.issue.iid.0)),
        Some((TimeDelta::minutes(10), 5))
    );
}

#[test]
fn the_list_goes_out_in_parts_and_what_joins_later_makes_the_next_batch() {
    let mut digest = Digest {
        key: key(),
        progress: DigestProgress::default(),
        notices: Vec::new(),
        items: (1..=5)
            .map(|seq| item(seq, "running", Some(i64::from(10 - seq)), None))
            .collect(),
    };
    let first = digest.next_part(digest.progress, t(0), 2).map(|p| {
        (
            p.items.iter().map(|i| i.seq).collect::<Vec<_>>(),
            p.offset,
            p.total,
            p.after,
        )
    });
    let expected = DigestProgress {
        summarised: 0,
        batch_from: 0,
        batch_through: 5,
        batch_posted: 2,
    };
    assert_eq!(
        first,
        Some((vec![5, 4], 0, 5, expected)),
        "most urgent first"
    );
    digest.progress = expected;
    // One more joins while the batch is being listed: it waits for the next.
    digest.items.push(item(6, "breached", None, Some(60)));
    let mut parts = Vec::new();
    while let Some(part) = digest.next_part(digest.progress, t(0), 2) {
        parts.push((
            part.items.iter().map(|i| i.seq).collect::<Vec<_>>(),
            part.offset,
            part.total,
        ));
        digest.progress = part.after;
    }
    // Numbered across batches: "issues 3–4 of 6", …, "issues 6–6 of 6".
    assert_eq!(
        parts,
        [(vec![3, 2], 2, 6), (vec![1], 4, 6), (vec![6], 5, 6)]
    );
    assert_eq!(digest.progress.batch_from, 5);
    assert_eq!(digest.progress.batch_through, 6);
}

#[test]
fn a_planned_message_is_sent_as_planned_whatever_joined_since() {
    let pending = |iid: u64, kind: &str, planned: Option<&str>| {
        let mut notice = item(iid as u32, "breached", None, Some(60)).notice;
        notice.step_kind = kind.into();
        DigestNotice {
            notice,
            posted: false,
            planned: planned.map(str::to_owned),
        }
    };
    let mut digest = Digest {
        key: key(),
        progress: DigestProgress::default(),
        items: Vec::new(),
        notices: vec![
            pending(1, "breach", None),
            pending(2, "every", None),
            pending(3, "breach", None),
        ],
    };
    let next = digest.next_step(PER_MESSAGE).expect("a message");
    let issues: Vec<u64> = next.notices.iter().map(|n| n.issue.iid.0).collect();
    assert_eq!(
        (next.kind, issues, next.new),
        ("breach", vec![1, 3], true),
        "the kind due first, all of it"
    );
    assert_eq!(
        next.key, "breach:acme/app#1:1:1:2",
        "kind, first issue, cycle, occurrence, count"
    );
    // Planned with #1 alone (say #3 joined after): exactly that again.
    digest.notices[0].planned = Some("breach:acme/app#1:1:0:1".into());
    let again = digest.next_step(PER_MESSAGE).expect("a message");
    let issues: Vec<u64> = again.notices.iter().map(|n| n.issue.iid.0).collect();
    assert_eq!(
        (issues, again.key.as_str(), again.new),
        (vec![1], "breach:acme/app#1:1:0:1", false)
    );
}

#[test]
fn a_new_batch_is_begun_before_its_first_part() {
    let mut digest = Digest {
        key: key(),
        progress: DigestProgress::default(),
        items: (1..=3)
            .map(|seq| item(seq, "running", Some(10), None))
            .collect(),
        notices: Vec::new(),
    };
    let begun = digest
        .batch_begun(digest.progress, t(0))
        .expect("a batch begins");
    assert_eq!(
        (begun.batch_from, begun.batch_through, begun.batch_posted),
        (0, 3, 0)
    );
    digest.progress = begun;
    assert_eq!(
        digest.batch_begun(digest.progress, t(0)),
        None,
        "it has begun"
    );
    // One joins: the begun batch is still the three.
    digest.items.push(item(4, "running", Some(1), None));
    let part = digest.next_part(digest.progress, t(0), 10).expect("a part");
    assert_eq!(part.items.len(), 3);
}

#[test]
fn a_digest_s_outbox_name_reads_back_and_no_issue_reads_as_a_digest() {
    let key = DigestKey {
        kind: DigestKind::Adopted,
        channel: "alerts:eu".into(),
        policy: PolicyName("critical".into()),
        opened_at: t(90),
    };
    let issue = key.outbox_issue();
    assert_eq!(DigestKey::from_outbox(&issue, &key.policy), Some(key));
    let real = IssueRef {
        project: ProjectPath("labelwarden/digest".into()),
        iid: IssueIid(3),
    };
    assert_eq!(
        DigestKey::from_outbox(&real, &PolicyName("critical".into())),
        None
    );
}
