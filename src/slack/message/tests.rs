use std::collections::BTreeMap;

use chrono::TimeZone;

use super::*;
use crate::engine::Firing;
use crate::issue::{IssueIid, IssueRef, ProjectPath};
use crate::notice::SlaFacts;
use crate::policy::{Destination, PolicyName, SlackStep, StepId};

const HOUR_MS: i64 = 3_600_000;

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

/// A notice of the 24-hour policy on a bug labelled at minute 0.
fn notice(step_kind: &str, decided_minute: i64) -> Notice {
    let mut sla = SlaFacts {
        kind: "running".into(),
        target_ms: 24 * HOUR_MS,
        started_at: Some(at(0)),
        ..SlaFacts::default()
    };
    match step_kind {
        "start" | "before_deadline" => {
            sla.remaining_ms = Some(24 * HOUR_MS - decided_minute * 60_000)
        }
        "breach" | "every" => {
            sla.kind = "breached".into();
            sla.overdue_ms = Some(decided_minute * 60_000 - 24 * HOUR_MS);
        }
        "resolved" => {
            sla.kind = "met".into();
            sla.took_ms = Some(decided_minute * 60_000);
            sla.stopped_at = Some(at(decided_minute));
        }
        _ => sla.kind = "withdrawn".into(),
    }
    Notice {
        issue: IssueRef {
            project: ProjectPath("acme/backend".into()),
            iid: IssueIid(12),
        },
        title: "Checkout fails for <EU> cards & wallets".into(),
        url: "https://gitlab.example.com/acme/backend/-/issues/12".into(),
        confidential: false,
        labels: vec!["priority::highest".into(), "type::bug".into()],
        assignees: vec!["jdoe".into(), "asmith".into()],
        policy: PolicyName("critical-bug-24h".into()),
        firing: Firing {
            step: StepId(step_kind.into()),
            cycle: 1,
            occurrence: 1,
        },
        step_kind: step_kind.into(),
        due_at: at(decided_minute),
        decided_at: at(decided_minute),
        late_by_ms: None,
        late_because: None,
        undelivered: None,
        status: String::new(),
        deadline: Some(at(24 * 60)),
        sla,
        slack: Some(SlackStep {
            channel: "alerts".into(),
            mentions: vec![Mention::Group("contacts".into()), Mention::Assignees],
            broadcast: false,
            post: true,
            react: None,
            text: None,
        }),
        gitlab: None,
        due_date: None,
        comment: None,
    }
}

fn channel(private: bool, audience: Audience) -> Channel {
    Channel {
        name: "alerts".into(),
        destination: Destination::SlackChannel("#alerts".into()),
        private,
        audience,
        group_after: Channel::GROUP_AFTER,
        group_window: Channel::GROUP_WINDOW,
        fallback: None,
        opens_issues: None,
    }
}

fn people() -> People {
    People {
        groups: BTreeMap::from([(
            "contacts".to_owned(),
            vec!["<@U0CONTACT1>".to_owned(), "<!subteam^S0ONCALL>".to_owned()],
        )]),
        gitlab_users: BTreeMap::from([
            ("jdoe".to_owned(), "U0JDOE".to_owned()),
            ("rkumar".to_owned(), "U0RKUMAR".to_owned()),
        ]),
        rotations: BTreeMap::from([("oncall".to_owned(), weekly_rotation())]),
    }
}

/// jdoe then rkumar, handing off on Wednesdays at 09:00 UTC (the notices'
/// deadline is Thursday 2026-11-26 09:00; minute 0 is Wednesday 09:00).
fn weekly_rotation() -> crate::policy::Rotation {
    use crate::policy::rotation::{HandOff, Rotation};
    Rotation {
        name: "oncall".into(),
        members: vec!["jdoe".into(), "rkumar".into()],
        hand_off: HandOff {
            weekday: chrono::Weekday::Wed,
            time: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            time_zone: chrono_tz::UTC,
        },
        since: chrono::NaiveDate::from_ymd_opt(2026, 11, 18).unwrap(),
        overrides: Vec::new(),
    }
}

/// Everything a reader could see: the fallback text and every block.
fn visible(message: &Message) -> String {
    format!(
        "{}\n{}",
        message.text,
        serde_json::to_string(&message.blocks).unwrap()
    )
}

fn render<'a>(
    notice: &'a Notice,
    channel: &'a Channel,
    people: &'a People,
    now: DateTime<Utc>,
) -> Rendering<'a> {
    Rendering {
        notice,
        channel,
        people,
        now,
    }
}

const STEP_KINDS: &[&str] = &[
    "start",
    "before_deadline",
    "breach",
    "every",
    "resolved",
    "withdrawn",
];

#[test]
fn dates_show_in_each_reader_s_time_zone_with_a_utc_fallback() {
    assert_eq!(
        slack_date(at(24 * 60)),
        "<!date^1795683600^{date_short_pretty} {time}|2026-11-26 09:00 UTC>"
    );
}

#[test]
fn the_parent_tells_what_where_when_and_who() {
    let notice = notice("start", 0);
    let (channel, people) = (channel(false, Audience::Team), people());
    // Sent ten minutes after it was decided: the time left says so.
    let rendered = render(&notice, &channel, &people, at(10)).parent();
    let shown = visible(&rendered.message);
    for expected in [
        "<https://gitlab.example.com/acme/backend/-/issues/12|acme/backend#12>",
        "Checkout fails for &lt;EU&gt; cards &amp; wallets",
        "SLA clock started: resolve within 1d",
        "23h 50m left",
        "<!date^1795683600^{date_short_pretty} {time}|2026-11-26 09:00 UTC>",
        "`critical-bug-24h`",
        "`priority::highest` `type::bug`",
        "@jdoe, @asmith",
        "<@U0CONTACT1> <!subteam^S0ONCALL> <@U0JDOE> @asmith",
    ] {
        assert!(shown.contains(expected), "missing {expected} in {shown}");
    }
    assert!(
        rendered.message.text.contains("<@U0CONTACT1>"),
        "notifications come from the fallback text: {}",
        rendered.message.text
    );
    assert_eq!(
        rendered.unmapped,
        vec!["asmith"],
        "unmapped users are reported, not dropped"
    );
}

#[test]
fn replies_link_the_issue_and_say_how_late_or_how_long_left() {
    let (channel, people) = (channel(false, Audience::Team), people());
    let warning = notice("before_deadline", 18 * 60);
    let shown = visible(
        &render(&warning, &channel, &people, at(18 * 60))
            .reply()
            .message,
    );
    assert!(shown.contains("6h left before the SLA deadline"), "{shown}");
    assert!(shown.contains("|acme/backend#12>"), "{shown}");

    // The same warning held up past the deadline says so.
    let shown = visible(
        &render(&warning, &channel, &people, at(24 * 60 + 3))
            .reply()
            .message,
    );
    assert!(
        shown.contains("Deadline warning, delayed: the SLA deadline (<!date^1795683600^"),
        "{shown}"
    );
    assert!(shown.contains("passed 3m ago"), "{shown}");

    let breach = notice("breach", 24 * 60 + 5);
    let shown = visible(
        &render(&breach, &channel, &people, at(24 * 60 + 7))
            .reply()
            .message,
    );
    assert!(shown.contains("SLA breached"), "{shown}");
    assert!(
        shown.contains("passed 7m ago"),
        "counted to the send time: {shown}"
    );

    let reminder = Notice {
        firing: Firing {
            occurrence: 2,
            ..breach.firing.clone()
        },
        step_kind: "every".into(),
        ..breach.clone()
    };
    let shown = visible(
        &render(&reminder, &channel, &people, at(24 * 60 + 5))
            .reply()
            .message,
    );
    assert!(
        shown.contains("Still open, 5m past the SLA deadline"),
        "{shown}"
    );
    assert!(shown.contains("Reminder 2."), "{shown}");
}

#[test]
fn the_resolved_parent_shows_met_or_missed_and_tags_nobody_again() {
    let (channel, people) = (channel(false, Audience::Team), people());
    let met = notice("resolved", 5 * 60 + 12);
    let shown = visible(&render(&met, &channel, &people, at(6 * 60)).resolved_parent());
    assert!(
        shown.contains("Resolved within the SLA: took 5h 12m of 1d"),
        "{shown}"
    );
    assert!(!shown.contains("<@U0CONTACT1>"), "{shown}");

    let mut missed = notice("resolved", 26 * 60);
    missed.sla.kind = "missed".into();
    missed.sla.overdue_ms = Some(2 * HOUR_MS);
    let shown = visible(&render(&missed, &channel, &people, at(27 * 60)).resolved_parent());
    assert!(
        shown.contains("Resolved 2h after the SLA deadline: took 1d 2h against a target of 1d"),
        "{shown}"
    );
}

#[test]
fn a_confidential_issue_shows_only_reference_link_and_sla_facts_outside_private_channels() {
    let people = people();
    let public = channel(false, Audience::Team);
    let users = channel(false, Audience::Users);
    let private = channel(true, Audience::Team);
    for kind in STEP_KINDS {
        let mut notice = notice(kind, 60);
        notice.confidential = true;
        for channel in [&public, &users] {
            let rendering = render(&notice, channel, &people, at(60));
            for message in [
                rendering.parent().message,
                rendering.reply().message,
                rendering.resolved_parent(),
            ] {
                let shown = visible(&message);
                for secret in [
                    "Checkout",
                    "EU",
                    "wallets",
                    "priority::highest",
                    "type::bug",
                ] {
                    assert!(
                        !shown.contains(secret),
                        "{kind}: `{secret}` leaked in {shown}"
                    );
                }
                assert!(shown.contains("acme/backend#12"), "{kind}: {shown}");
                assert!(shown.contains("/-/issues/12|"), "{kind}: {shown}");
            }
        }
        let shown = visible(&render(&notice, &private, &people, at(60)).parent().message);
        assert!(
            shown.contains("Checkout"),
            "a private channel sees the title: {shown}"
        );
        assert!(shown.contains("priority::highest"), "{shown}");
    }
}

#[test]
fn a_step_s_text_fills_its_variables_and_keeps_redaction() {
    let (channel, people) = (channel(false, Audience::Team), people());
    let mut notice = notice("breach", 25 * 60);
    notice.confidential = true;
    notice.slack.as_mut().unwrap().text =
        Some("{issue.ref} ({issue.title}) broke {policy}: {overdue} late, due {deadline}, see {issue.url}".into());
    let shown = visible(
        &render(&notice, &channel, &people, at(25 * 60))
            .reply()
            .message,
    );
    assert!(
        shown.contains(
            "acme/backend#12 ((confidential issue)) broke critical-bug-24h: 1h late, due <!date^1795683600^"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("see https://gitlab.example.com/acme/backend/-/issues/12"),
        "{shown}"
    );
}

#[test]
fn users_read_plain_words_without_labels_policy_or_people() {
    let (channel, people) = (channel(false, Audience::Users), people());
    for kind in STEP_KINDS {
        let notice = notice(kind, 60);
        let rendering = render(&notice, &channel, &people, at(60));
        for message in [rendering.parent().message, rendering.reply().message] {
            let shown = visible(&message);
            for internal in [
                "critical-bug-24h",
                "priority::highest",
                "<@U",
                "<!subteam",
                "@jdoe",
                "SLA",
            ] {
                assert!(!shown.contains(internal), "{kind}: `{internal}` in {shown}");
            }
            assert!(shown.contains("acme/backend#12"), "{shown}");
        }
    }
}

#[test]
fn on_call_mentions_tag_whoever_is_on_call_when_the_message_is_sent() {
    use crate::policy::Role;
    let (channel, people) = (channel(false, Audience::Team), people());
    let mut notice = notice("breach", 24 * 60);
    notice.slack.as_mut().unwrap().mentions = vec![Mention::OnCall {
        rotation: "oncall".into(),
        role: Role::Secondary,
    }];
    // Week 1 began at minute 0: rkumar is primary, jdoe secondary.
    let shown = visible(
        &render(&notice, &channel, &people, at(24 * 60))
            .reply()
            .message,
    );
    assert!(
        shown.contains("<@U0JDOE>") && !shown.contains("<@U0RKUMAR>"),
        "{shown}"
    );
    // The same notice sent a minute before the hand-off: last week's secondary.
    let shown = visible(&render(&notice, &channel, &people, at(-1)).reply().message);
    assert!(
        shown.contains("<@U0RKUMAR>") && !shown.contains("<@U0JDOE>"),
        "{shown}"
    );
}

#[test]
fn nobody_assigned_is_said_rather_than_tagging_nobody() {
    let (channel, people) = (channel(false, Audience::Team), people());
    let mut notice = notice("before_deadline", 18 * 60);
    notice.assignees.clear();
    let rendered = render(&notice, &channel, &people, at(18 * 60)).reply();
    let shown = visible(&rendered.message);
    assert!(shown.contains("nobody is assigned"), "{shown}");
    assert!(rendered.unmapped.is_empty());
}

#[test]
fn a_step_held_up_on_its_way_says_so() {
    let (channel, people) = (channel(false, Audience::Team), people());
    let notice = notice("breach", 24 * 60);
    let on_time = visible(
        &render(&notice, &channel, &people, at(24 * 60))
            .reply()
            .message,
    );
    assert!(!on_time.contains("late"), "{on_time}");
    let held = visible(
        &render(&notice, &channel, &people, at(24 * 60 + 12))
            .reply()
            .message,
    );
    assert!(
        held.contains("Sent 12m late: its delivery was held up"),
        "{held}"
    );
}

#[test]
fn a_late_step_says_it_is_late() {
    let (channel, people) = (channel(false, Audience::Team), people());
    let notice_of = notice;
    let mut notice = notice_of("breach", 24 * 60 + 30);
    notice.late_by_ms = Some(30 * 60_000);
    let shown = visible(
        &render(&notice, &channel, &people, at(24 * 60 + 30))
            .reply()
            .message,
    );
    assert!(
        shown.contains("Sent 30m late: labelwarden was not running"),
        "{shown}"
    );

    // Down by its own record: said as such. Learned late: said as what
    // happened, not as an outage.
    notice.late_because = Some(crate::notice::Lateness::Down);
    let down = visible(
        &render(&notice, &channel, &people, at(24 * 60 + 30))
            .reply()
            .message,
    );
    assert!(
        down.contains("Sent 30m late: labelwarden was not running"),
        "{down}"
    );
    notice.late_because = Some(crate::notice::Lateness::Behind);
    let behind = visible(
        &render(&notice, &channel, &people, at(24 * 60 + 30))
            .reply()
            .message,
    );
    assert!(
        behind.contains("Sent 30m late: labelwarden was behind"),
        "{behind}"
    );
    notice.late_because = Some(crate::notice::Lateness::Learned);
    let learned = visible(
        &render(&notice, &channel, &people, at(24 * 60 + 30))
            .reply()
            .message,
    );
    assert!(
        learned.contains("Sent 30m after it was due: labelwarden learned of it only now")
            && !learned.contains("not running"),
        "{learned}"
    );
    let mut start = notice_of("start", 26 * 24 * 60);
    start.late_by_ms = Some(26 * 24 * 3_600_000);
    start.late_because = Some(crate::notice::Lateness::Learned);
    let adopted = visible(
        &render(&start, &channel, &people, at(26 * 24 * 60))
            .parent()
            .message,
    );
    assert!(
        adopted.contains("labelwarden started tracking this issue now; its clock started 26d ago")
            && !adopted.contains(":warning:"),
        "{adopted}"
    );

    // Under a second late is on time: no "Sent 0s late".
    notice.late_by_ms = Some(400);
    let on_time = visible(
        &render(&notice, &channel, &people, at(24 * 60 + 30))
            .reply()
            .message,
    );
    assert!(!on_time.contains("late"), "{on_time}");
}

#[test]
fn a_clock_on_a_calendar_says_working_time_and_a_step_held_for_quiet_hours_says_so() {
    let (channel, people) = (channel(false, Audience::Team), people());
    let mut warning = notice("before_deadline", 18 * 60);
    warning.sla.calendar = Some("office-hours".into());
    // Sent two days later (a weekend): the working time left is as decided.
    let shown = visible(
        &render(&warning, &channel, &people, at(18 * 60 + 2 * 24 * 60))
            .reply()
            .message,
    );
    assert!(
        shown.contains("6h of working time left before the SLA deadline"),
        "{shown}"
    );

    let mut held = notice("before_deadline", 18 * 60);
    held.late_by_ms = Some(14 * 60 * 60_000);
    held.late_because = Some(crate::notice::Lateness::QuietHours);
    let shown = visible(
        &render(&held, &channel, &people, at(18 * 60))
            .reply()
            .message,
    );
    assert!(
        shown.contains(
            "Held 14h for quiet hours: it fell due outside the hours this step is sent in."
        ),
        "{shown}"
    );
    assert!(!shown.contains("labelwarden was not running"), "{shown}");
}

#[test]
fn a_rule_s_message_names_the_rule_and_no_deadline() {
    let mut notice = notice("rule", 15);
    notice.policy = PolicyName("highest-needs-an-owner".into());
    notice.assignees.clear();
    notice.slack = Some(SlackStep {
        mentions: vec![Mention::OnCall {
            rotation: "oncall".into(),
            role: crate::policy::rotation::Role::Primary,
        }],
        ..notice.slack.clone().unwrap()
    });
    let (channel, people) = (channel(false, Audience::Team), people());
    let shown = visible(&render(&notice, &channel, &people, at(15)).parent().message);
    for expected in [
        "This issue meets the rule `highest-needs-an-owner`.",
        "*Rule*",
        // Whoever is on call as it goes out (rkumar from Wednesday 09:00).
        "*Tagged:* <@U0RKUMAR>",
        "nobody",
    ] {
        assert!(shown.contains(expected), "missing {expected} in {shown}");
    }
    for absent in ["Deadline", "SLA", "*Policy*"] {
        assert!(!shown.contains(absent), "{absent} in {shown}");
    }
}

#[test]
fn a_mirrored_comment_is_quoted_in_the_thread_and_only_announced_where_the_issue_is_confidential() {
    let mut said = notice("start", 10);
    said.step_kind = crate::notice::COMMENT_KIND.into();
    said.comment = Some(crate::notice::CommentFacts::new(
        "ada",
        "Ada L.",
        "Rolled back <b>v2</b>\nerrors down & falling",
        "https://gitlab.example.com/acme/backend/-/issues/12#note_7",
    ));
    let people = people();
    let public = channel(false, Audience::Team);
    let reply = render(&said, &public, &people, at(11)).reply().message;
    let text = visible(&reply);
    assert!(text.contains("*Ada L.*"), "{text}");
    assert!(
        text.contains(">Rolled back &lt;b&gt;v2&lt;/b&gt;"),
        "{text}"
    );
    assert!(text.contains(">errors down &amp; falling"), "{text}");
    assert!(text.contains("issues/12#note_7|view"), "{text}");

    said.confidential = true;
    let redacted = visible(&render(&said, &public, &people, at(11)).reply().message);
    assert!(!redacted.contains("Rolled back"), "{redacted}");
    assert!(redacted.contains("the issue is confidential"), "{redacted}");
    let private = channel(true, Audience::Team);
    let shown = visible(&render(&said, &private, &people, at(11)).reply().message);
    assert!(shown.contains("Rolled back"), "{shown}");
}

#[test]
fn a_long_comment_is_cut_at_a_word_below_the_excerpt_length() {
    let body = "word ".repeat(300);
    let facts = crate::notice::CommentFacts::new("ada", "Ada", &body, "https://x/1#note_1");
    assert!(facts.excerpt.chars().count() <= crate::notice::COMMENT_EXCERPT + 1);
    assert!(facts.excerpt.ends_with("word…"), "{}", facts.excerpt);
}
