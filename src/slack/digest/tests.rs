use super::*;
use crate::issue::{IssueIid, IssueRef, ProjectPath};
use crate::notice::SlaFacts;
use crate::notice::digest::{DigestKey, DigestKind, DigestProgress};
use crate::policy::{Audience, PolicyName};
use crate::test_support::t;

fn channel(private: bool) -> Channel {
    Channel {
        name: "alerts".into(),
        destination: Destination::SlackChannel("C0ALERTS01".into()),
        private,
        audience: Audience::Team,
        group_after: 5,
        group_window: Channel::GROUP_WINDOW,
        fallback: None,
        opens_issues: None,
    }
}

fn digest(count: u32) -> Digest {
    let key = DigestKey {
        kind: DigestKind::Adopted,
        channel: "alerts".into(),
        policy: PolicyName("critical-bug-24h".into()),
        opened_at: t(0),
    };
    let items = (1..=count)
        .map(|seq| {
            let mut notice = key.outbox_notice(1, t(0));
            notice.issue = IssueRef {
                project: ProjectPath("acme/app".into()),
                iid: IssueIid(u64::from(seq)),
            };
            notice.url = format!("https://gitlab.example.com/acme/app/-/issues/{seq}");
            notice.title = format!("Checkout <broken> #{seq}");
            notice.confidential = seq == 2;
            notice.assignees = if seq == 1 {
                vec![]
            } else {
                vec!["jdoe".into()]
            };
            // Odd issues are past their deadline by `seq` hours; even
            // ones have `seq` hours left.
            let hours = i64::from(seq) * 3_600_000;
            notice.sla = SlaFacts {
                kind: if seq % 2 == 1 { "breached" } else { "running" }.into(),
                target_ms: 24 * 3_600_000,
                overdue_ms: (seq % 2 == 1).then_some(hours),
                remaining_ms: (seq % 2 == 0).then_some(hours),
                ..SlaFacts::default()
            };
            notice.deadline = Some(t(i64::from(seq) * 60));
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

fn text(message: &Message) -> String {
    message
        .blocks
        .iter()
        .filter_map(|block| block["text"]["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_summary_counts_what_was_adopted_and_points_at_the_most_urgent() {
    let digest = digest(5);
    let summary = summary(&digest, &channel(false), &People::default(), t(0));
    let text = text(&summary);
    assert!(
        text.contains("started tracking 5 issues under `critical-bug-24h` that were already open: *3 past their deadline*, the oldest 5h over (<https://gitlab.example.com/acme/app/-/issues/5|acme/app#5>); 2 running, the next deadline in 2h (<https://gitlab.example.com/acme/app/-/issues/2|acme/app#2>)"),
        "{text}"
    );
    assert!(
        text.contains("recorded as done, not sent one by one"),
        "{text}"
    );
    assert!(
        !text.contains("not running") && !text.contains("late"),
        "{text}"
    );
}

#[test]
fn the_summary_tags_the_step_s_groups_once_and_no_assignee() {
    let mut digest = digest(3);
    for item in &mut digest.items {
        if let Some(step) = &mut item.notice.slack {
            step.mentions = vec![
                Mention::Group("contacts".into()),
                Mention::Assignees,
                Mention::Group("contacts".into()),
            ];
        }
    }
    let people = People {
        groups: [("contacts".to_owned(), vec!["<@U0123ABCD>".to_owned()])].into(),
        gitlab_users: [("jdoe".to_owned(), "U0JDOE0001".to_owned())].into(),
        ..People::default()
    };
    let summary = summary(&digest, &channel(false), &people, t(0));
    let shown = text(&summary);
    assert!(
        shown.ends_with("*Tagged:* <@U0123ABCD>"),
        "the group once, last: {shown}"
    );
    assert!(
        !shown.contains("U0JDOE0001") && !shown.contains("nobody is assigned"),
        "{shown}"
    );
}

#[test]
fn the_list_is_most_urgent_first_redacts_confidential_titles_and_names_assignees() {
    let digest = digest(4);
    let part = digest
        .next_part(digest.progress, t(0), LIST_PER_MESSAGE)
        .expect("a part");
    let message = list(&digest, &part, &channel(false), &People::default(), t(0));
    let shown = text(&message);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "*Issues 1–4 of 4* (most urgent first):");
    assert!(lines[1].starts_with(":red_circle: <https://gitlab.example.com/acme/app/-/issues/3|acme/app#3> Checkout &lt;broken&gt; #3: 3h past its deadline (@jdoe)"), "{}", lines[1]);
    assert!(
        lines[2].contains(
            "acme/app#1> Checkout &lt;broken&gt; #1: 1h past its deadline (nobody assigned)"
        ),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("acme/app#2> (confidential issue): 2h left, deadline"),
        "{}",
        lines[3]
    );
    assert!(lines[4].contains("acme/app#4>"), "{}", lines[4]);
    let private = list(&digest, &part, &channel(true), &People::default(), t(0));
    assert!(
        text(&private).contains("Checkout &lt;broken&gt; #2"),
        "a private channel sees it"
    );
}

#[test]
fn a_long_list_stays_within_slack_s_section_limit() {
    let digest = digest(300);
    let part = digest
        .next_part(digest.progress, t(0), LIST_PER_MESSAGE)
        .expect("a part");
    assert_eq!(part.items.len(), LIST_PER_MESSAGE);
    let message = list(&digest, &part, &channel(false), &People::default(), t(0));
    assert!(message.blocks.len() <= 50, "Slack takes 50 blocks at most");
    for block in &message.blocks {
        let chars = block["text"]["text"]
            .as_str()
            .map_or(0, |s| s.chars().count());
        assert!(chars <= 3_000, "a section of {chars} characters");
    }
    assert_eq!(text(&message).lines().count(), 1 + LIST_PER_MESSAGE);
}

fn as_kind(mut digest: Digest, kind: DigestKind) -> Digest {
    digest.key.kind = kind;
    for item in &mut digest.items {
        if let Some(step) = &mut item.notice.slack {
            step.mentions = vec![Mention::Group("contacts".into()), Mention::Assignees];
        }
    }
    digest
}

fn people() -> People {
    People {
        groups: [("contacts".to_owned(), vec!["<@U0123ABCD>".to_owned()])].into(),
        gitlab_users: [("jdoe".to_owned(), "U0JDOE0001".to_owned())].into(),
        ..People::default()
    }
}

#[test]
fn a_group_s_parent_counts_its_members_and_how_they_stand() {
    let mut digest = as_kind(digest(4), DigestKind::Alerts);
    let mut resolved = digest.items[0].notice.clone();
    resolved.step_kind = "resolved".into();
    digest.notices.push(crate::notice::digest::DigestNotice {
        notice: resolved,
        posted: true,
        planned: None,
    });
    assert_eq!(digest.summary_version(), 5, "members and ended ones");
    let shown = text(&summary(&digest, &channel(false), &people(), t(0)));
    assert!(
        shown.contains("*4 new alerts* under `critical-bug-24h` at once"),
        "{shown}"
    );
    assert!(shown.contains("3 still open; 1 resolved."), "{shown}");
    assert!(
        shown.contains(":white_check_mark: here resolves nothing"),
        "{shown}"
    );
    assert!(
        shown.ends_with("*Tagged:* <@U0123ABCD> <@U0JDOE0001>"),
        "each once: {shown}"
    );
}

#[test]
fn notices_of_one_kind_are_one_message_naming_every_issue_tagging_each_person_once() {
    let digest = as_kind(digest(3), DigestKind::Alerts);
    let notices: Vec<&Notice> = digest.items.iter().map(|item| &item.notice).collect();
    let message = group::step_message("breach", &notices, &channel(false), &people(), t(0));
    let shown = text(&message);
    assert!(shown.starts_with(":red_circle: SLA breached (3):\n<https://gitlab.example.com/acme/app/-/issues/1|acme/app#1>, <https://gitlab.example.com/acme/app/-/issues/2|acme/app#2>, <https://gitlab.example.com/acme/app/-/issues/3|acme/app#3>"), "{shown}");
    assert_eq!(shown.matches("<@U0JDOE0001>").count(), 1, "{shown}");
    assert!(
        !shown.contains("nobody is assigned"),
        "that note is per issue: {shown}"
    );
    assert_eq!(
        message.text.matches("acme/app#").count(),
        3,
        "the fallback text names them too"
    );
}

#[test]
fn a_reminder_digest_says_how_many_are_still_past_their_sla() {
    let digest = as_kind(digest(5), DigestKind::Reminders);
    let shown = text(&summary(&digest, &channel(false), &people(), t(0)));
    assert!(shown.starts_with(":red_circle: *Still past their SLA: 5 issues* under `critical-bug-24h`, the most overdue 5h (<https://gitlab.example.com/acme/app/-/issues/5|acme/app#5>)"), "{shown}");
    assert!(
        shown.contains("their own threads are not bumped one by one"),
        "{shown}"
    );
}
