use chrono::TimeDelta;
use proptest::prelude::*;

use super::*;
use crate::policy::Policy;
use crate::test_support::histories::{
    Applied, Change, MATCHING, PAUSING, apply, change, history, initial_labels,
};
use crate::test_support::{IssueBuilder, issue, policy, t};

fn critical() -> Policy {
    policy(
        r#"
  - name: critical
    match: { labels_any: ["priority::highest", "urgency::highest"] }
    clock: { target: 60m, pauses_while_labeled: ["blocked::*"] }
"#,
    )
}

fn capped() -> Policy {
    policy(
        r#"
  - name: capped
    match: { labels_any: ["priority::highest"] }
    clock: { target: 60m, pauses_while_labeled: ["blocked::upstream"], max_pause: 10m }
"#,
    )
}

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

fn status_at(builder: IssueBuilder, policy: &Policy, now: i64) -> SlaStatus {
    read(&builder.build(), policy, t(now)).status()
}

#[test]
fn an_issue_without_the_labels_does_not_match() {
    assert_eq!(
        status_at(issue(&["bug"]), &critical(), 30),
        SlaStatus::NotMatching
    );
}

#[test]
fn label_added_starts_the_clock_then() {
    let status = status_at(issue(&[]).added(10, "priority::highest"), &critical(), 30);
    assert_eq!(
        status,
        SlaStatus::Running {
            deadline: t(70),
            remaining: minutes(40)
        }
    );
}

#[test]
fn labelled_from_creation_counts_from_creation() {
    let status = status_at(issue(&["urgency::highest"]), &critical(), 30);
    assert_eq!(
        status,
        SlaStatus::Running {
            deadline: t(60),
            remaining: minutes(30)
        }
    );
}

#[test]
fn past_the_deadline_and_still_open_is_breached() {
    let status = status_at(issue(&[]).added(10, "priority::highest"), &critical(), 100);
    assert_eq!(
        status,
        SlaStatus::Breached {
            deadline: t(70),
            overdue: minutes(30)
        }
    );
    assert!(status.is_breach());
}

#[test]
fn closed_before_the_deadline_is_met() {
    let builder = issue(&[]).added(10, "priority::highest").closed(50);
    assert_eq!(
        status_at(builder, &critical(), 200),
        SlaStatus::Met {
            stopped_at: t(50),
            took: minutes(40)
        }
    );
}

#[test]
fn closed_exactly_at_the_deadline_is_met() {
    let builder = issue(&[]).added(10, "priority::highest").closed(70);
    assert!(matches!(
        status_at(builder, &critical(), 200),
        SlaStatus::Met { .. }
    ));
}

#[test]
fn closed_after_the_deadline_is_missed() {
    let builder = issue(&[]).added(10, "priority::highest").closed(100);
    assert_eq!(
        status_at(builder, &critical(), 200),
        SlaStatus::Missed {
            deadline: t(70),
            stopped_at: t(100),
            late_by: minutes(30)
        }
    );
}

#[test]
fn a_pause_label_holds_the_clock_and_moves_the_deadline() {
    let paused = issue(&[])
        .added(10, "priority::highest")
        .added(20, "blocked::upstream");
    assert_eq!(
        status_at(paused, &critical(), 30),
        SlaStatus::Paused {
            reason: PauseReason::Label(0),
            since: t(20),
            remaining: minutes(50)
        }
    );
    let resumed = issue(&[])
        .added(10, "priority::highest")
        .added(20, "blocked::upstream")
        .removed(40, "blocked::upstream");
    let reading = read(&resumed.build(), &critical(), t(50));
    assert_eq!(reading.deadline(), Some(t(90)));
    assert_eq!(reading.paused, minutes(20));
}

#[test]
fn max_pause_caps_how_long_a_pause_holds() {
    let capped = capped();
    let builder = issue(&[])
        .added(0, "priority::highest")
        .added(20, "blocked::upstream");
    let reading = read(&builder.build(), &capped, t(40));
    assert_eq!(
        reading.phase,
        Phase::Running,
        "the allowance is spent at t(30)"
    );
    assert_eq!(reading.phase_since, t(30));
    assert_eq!(reading.deadline(), Some(t(70)));
}

#[test]
fn a_pause_with_allowance_left_says_when_it_runs_out() {
    let capped = capped();
    let builder = issue(&["priority::highest"]).added(20, "blocked::upstream");
    let reading = read(&builder.build(), &capped, t(25));
    assert_eq!(reading.pause_runs_out_at(), Some(t(30)));
}

#[test]
fn reopening_resumes_and_closed_time_never_counts() {
    let builder = issue(&["priority::highest"]).closed(30).reopened(50);
    let reading = read(&builder.build(), &critical(), t(60));
    assert_eq!(reading.cycle, 1);
    assert_eq!(reading.active, minutes(40));
    assert_eq!(reading.deadline(), Some(t(80)));
}

#[test]
fn closing_again_after_reopening_counts_a_second_resolution() {
    let builder = issue(&["priority::highest"])
        .closed(30)
        .reopened(50)
        .closed(70);
    let reading = read(&builder.build(), &critical(), t(80));
    assert_eq!(reading.resolutions, 2);
    assert_eq!(
        reading.status(),
        SlaStatus::Met {
            stopped_at: t(70),
            took: minutes(50)
        }
    );
}

#[test]
fn removing_the_label_withdraws() {
    let builder = issue(&[])
        .added(10, "priority::highest")
        .removed(40, "priority::highest");
    assert_eq!(
        status_at(builder, &critical(), 100),
        SlaStatus::Withdrawn {
            at: t(40),
            overdue: None
        }
    );
}

#[test]
fn a_downgrade_after_the_deadline_stays_visible_as_a_breach() {
    let builder = issue(&[])
        .added(10, "priority::highest")
        .removed(100, "priority::highest");
    let status = status_at(builder, &critical(), 200);
    assert_eq!(
        status,
        SlaStatus::Withdrawn {
            at: t(100),
            overdue: Some(minutes(30))
        }
    );
    assert_eq!(status.kind(), "withdrawn_after_breach");
    assert!(status.is_breach());
}

#[test]
fn matching_again_after_a_withdrawal_starts_a_new_cycle() {
    let builder = issue(&[])
        .added(10, "priority::highest")
        .removed(40, "priority::highest")
        .added(50, "priority::highest");
    let reading = read(&builder.build(), &critical(), t(60));
    assert_eq!(reading.cycle, 2);
    assert_eq!(reading.started_at, t(50));
    assert_eq!(reading.deadline(), Some(t(110)));
}

#[test]
fn swapping_one_matching_label_for_another_at_once_keeps_the_cycle() {
    let builder = issue(&["priority::highest"])
        .removed(30, "priority::highest")
        .added(30, "urgency::highest");
    let reading = read(&builder.build(), &critical(), t(40));
    assert_eq!(reading.cycle, 1);
    assert_eq!(reading.deadline(), Some(t(60)));
}

#[test]
fn a_resolved_clock_keeps_its_outcome_when_the_label_goes_later() {
    let builder = issue(&["priority::highest"])
        .closed(90)
        .removed(120, "priority::highest");
    assert_eq!(
        status_at(builder, &critical(), 200),
        SlaStatus::Missed {
            deadline: t(60),
            stopped_at: t(90),
            late_by: minutes(30)
        }
    );
}

#[test]
fn events_after_now_are_not_seen() {
    let builder = issue(&[]).added(10, "priority::highest").closed(50);
    assert!(matches!(
        status_at(builder, &critical(), 30),
        SlaStatus::Running { .. }
    ));
}

fn triage() -> Policy {
    policy(
        r#"
  - name: triage
    match: { labels_all: ["type::bug"] }
    clock: { target: 60m, starts: created, stops: { labeled: ["priority::*"] } }
"#,
    )
}

#[test]
fn a_triage_clock_stops_when_the_label_arrives() {
    let builder = issue(&["type::bug"]).added(20, "priority::high");
    assert_eq!(
        status_at(builder, &triage(), 90),
        SlaStatus::Met {
            stopped_at: t(20),
            took: minutes(20)
        }
    );
}

#[test]
fn starts_created_counts_from_creation_even_when_matched_later() {
    let builder = issue(&[]).added(30, "type::bug");
    let reading = read(&builder.build(), &triage(), t(40));
    assert_eq!(reading.started_at, t(0));
    assert_eq!(reading.deadline(), Some(t(60)));
}

#[test]
fn a_closed_issue_holds_a_triage_clock() {
    let builder = issue(&["type::bug"]).closed(20);
    assert_eq!(
        status_at(builder, &triage(), 90),
        SlaStatus::Paused {
            reason: PauseReason::Closed,
            since: t(20),
            remaining: minutes(40)
        }
    );
}

#[test]
fn confidentiality_rules_select_on_the_issue_as_it_is() {
    let public_only = policy(
        r#"
  - name: public-only
    match: { labels_any: ["priority::highest"], confidential: never }
    clock: { target: 60m }
"#,
    );
    let builder = issue(&["priority::highest"]).confidential();
    assert_eq!(status_at(builder, &public_only, 10), SlaStatus::NotMatching);
}

// --- Properties --------------------------------------------------------

fn build(initial: &[&'static str], history: &[(i64, Change)]) -> IssueBuilder {
    apply(initial, history).builder
}

/// The history, then whatever makes the clock run at `minute`: the issue
/// open, matching and not paused.
fn running_after(initial: &[&'static str], history: &[(i64, Change)], minute: i64) -> IssueBuilder {
    let Applied {
        mut builder,
        labels,
        open,
    } = apply(initial, history);
    if !open {
        builder = builder.reopened(minute);
    }
    if !labels.contains(&MATCHING) {
        builder = builder.added(minute, MATCHING);
    }
    if labels.contains(&PAUSING) {
        builder = builder.removed(minute, PAUSING);
    }
    builder
}

proptest! {
    #[test]
    fn deadline_is_start_plus_target_plus_held_time(
        initial in initial_labels(), history in history(), now in 0i64..2000,
    ) {
        let reading = read(&build(&initial, &history).build(), &critical(), t(now));
        if reading.phase == Phase::Running && reading.active < reading.target {
            prop_assert_eq!(
                reading.deadline(),
                Some(reading.started_at + reading.target + reading.held)
            );
        }
    }

    #[test]
    fn closing_before_the_projected_deadline_meets_it_and_after_misses_it(
        initial in initial_labels(), history in history(), close_gap in 1i64..200,
    ) {
        // The fix-up comes a minute after the history, never at one of its instants.
        let last = history.last().map_or(0, |(m, _)| *m) + 1;
        let close_at = last + close_gap;
        let before = read(&running_after(&initial, &history, last).build(), &critical(), t(close_at));
        prop_assert_eq!(before.phase, Phase::Running);
        let projected = before.deadline().unwrap();
        let closed = running_after(&initial, &history, last).closed(close_at).build();
        let status = read(&closed, &critical(), t(close_at + 500)).status();
        if t(close_at) <= projected {
            prop_assert!(matches!(status, SlaStatus::Met { .. }), "{status:?}");
        } else {
            prop_assert!(matches!(status, SlaStatus::Missed { .. }), "{status:?}");
        }
    }

    #[test]
    fn adding_a_pause_never_brings_a_deadline_earlier(
        history in history(), pause_from in 0i64..600, pause_len in 1i64..300, now in 0i64..2000,
    ) {
        // A history without the pause label, then the same with one pause.
        let history: Vec<_> = history
            .into_iter()
            .filter(|(_, c)| !matches!(c, Change::Add(PAUSING) | Change::Remove(PAUSING)))
            .collect();
        let mut paused = history.clone();
        paused.push((pause_from, Change::Add(PAUSING)));
        paused.push((pause_from + pause_len, Change::Remove(PAUSING)));
        paused.sort_by_key(|(m, _)| *m);

        let without = read(&build(&[MATCHING], &history).build(), &critical(), t(now));
        let with = read(&build(&[MATCHING], &paused).build(), &critical(), t(now));
        prop_assert!(with.active <= without.active);
        if let (Some(a), Some(b)) = (without.deadline(), with.deadline()) {
            prop_assert!(b >= a, "deadline moved from {a} to {b}");
        }
    }

    #[test]
    fn order_of_events_within_one_instant_does_not_matter(
        initial in initial_labels(),
        history in prop::collection::vec((0i64..4, change()), 0..10),
        seed in any::<u64>(),
        now in 0i64..400,
    ) {
        // Few distinct minutes, so many events share an instant.
        let spread: Vec<(i64, Change)> = history.into_iter().map(|(m, c)| (m * 60, c)).collect();
        let issue_a = build(&initial, &spread).build();
        let mut events = issue_a.timeline().events().to_vec();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..events.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            events.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let issue_b = crate::issue::Issue::new(issue_a.facts().clone(), events);
        prop_assert_eq!(
            read(&issue_a, &critical(), t(now)),
            read(&issue_b, &critical(), t(now))
        );
    }
}

#[test]
fn a_start_carried_from_a_duplicate_counts_when_it_is_earlier() {
    // The canonical issue matched at minute 50; a duplicate of it started
    // its clock at minute 0.
    let canonical = issue(&[]).added(50, "priority::highest").build();
    let plain = read(&canonical, &critical(), t(70));
    assert_eq!(plain.started_at, t(50));
    assert_eq!(plain.active, minutes(20));

    let carried = canonical.clone().with_carried_start("critical", t(0));
    let reading = read(&carried, &critical(), t(70));
    assert_eq!(reading.started_at, t(0), "the earlier start wins");
    assert_eq!(reading.active, minutes(70));
    assert_eq!(reading.deadline(), Some(t(60)));
    assert!(matches!(reading.status(), SlaStatus::Breached { .. }));

    // A later one changes nothing; nor does one for another policy.
    let later = canonical.clone().with_carried_start("critical", t(60));
    assert_eq!(read(&later, &critical(), t(70)).started_at, t(50));
    let other = canonical.with_carried_start("capped", t(0));
    assert_eq!(read(&other, &critical(), t(70)).started_at, t(50));
}

#[test]
fn a_close_as_a_duplicate_withdraws_unless_the_policy_counts_it_resolved() {
    let duplicate = || {
        issue(&[])
            .added(0, "priority::highest")
            .closed(30)
            .build()
            .closed_as_duplicate()
    };
    let follows = read(&duplicate(), &critical(), t(90));
    assert_eq!(follows.phase, Phase::Withdrawn);
    assert_eq!(follows.phase_since, t(30));
    assert_eq!(follows.active, minutes(30));
    assert_eq!(follows.resolutions, 0, "not a resolution");
    // Past its deadline when closed: withdrawn after breach.
    let late = issue(&[])
        .added(0, "priority::highest")
        .closed(75)
        .build()
        .closed_as_duplicate();
    assert_eq!(
        read(&late, &critical(), t(90)).status().kind(),
        "withdrawn_after_breach"
    );

    let resolving = policy(
        r#"
  - name: critical
    match: { labels_any: ["priority::highest"] }
    clock: { target: 60m, duplicates: resolve }
"#,
    );
    let counted = read(&duplicate(), &resolving, t(90));
    assert_eq!(counted.phase, Phase::Stopped);
    assert!(matches!(counted.status(), SlaStatus::Met { .. }));
}

/// A triage rule on office hours, Monday to Friday 09:00-17:00 in Berlin
/// (`t(0)` is Monday 2 November 2026, 10:00 there), with `holidays`
/// (YAML list items) on its calendar.
fn triage_on_office_hours(holidays: &str) -> Policy {
    let yaml = format!(
        r#"
calendars:
  office:
    time_zone: Europe/Berlin
    hours:
      mon: ["09:00-17:00"]
      tue: ["09:00-17:00"]
      wed: ["09:00-17:00"]
      thu: ["09:00-17:00"]
      fri: ["09:00-17:00"]
    holidays: [{holidays}]
policies:
  - name: triage
    match: {{ labels_any: ["type::bug"] }}
    clock: {{ target: 2h, calendar: office, stops: {{ labeled: ["triaged"] }} }}
"#
    );
    crate::test_support::policy_set(&yaml).policies.remove(0)
}

/// Friday 6 November 2026, 16:00 in Berlin.
const FRIDAY_4PM: i64 = 4 * 1440 + 360;
/// Monday 9 November 2026, 10:00 in Berlin.
const MONDAY_10AM: i64 = 7 * 1440;

#[test]
fn on_a_calendar_a_friday_afternoon_label_breaches_on_monday_morning() {
    let triage = triage_on_office_hours("");
    let labelled = issue(&[]).added(FRIDAY_4PM, "type::bug");
    // Friday 16:30: half an hour counted, the deadline Monday 10:00.
    assert_eq!(
        status_at(labelled.clone(), &triage, FRIDAY_4PM + 30),
        SlaStatus::Running {
            deadline: t(MONDAY_10AM),
            remaining: minutes(90)
        }
    );
    // All weekend: the hour of Friday counted, nothing more.
    let saturday = read(&labelled.clone().build(), &triage, t(FRIDAY_4PM + 1440));
    assert_eq!(saturday.active, minutes(60));
    assert_eq!(saturday.deadline(), Some(t(MONDAY_10AM)));
    assert!(matches!(
        status_at(labelled.clone(), &triage, MONDAY_10AM - 1),
        SlaStatus::Running { .. }
    ));
    assert!(matches!(
        status_at(labelled, &triage, MONDAY_10AM),
        SlaStatus::Breached { .. }
    ));
}

#[test]
fn a_holiday_on_that_monday_moves_the_breach_to_tuesday() {
    let triage = triage_on_office_hours(r#"{ date: "2026-11-09", name: "a day off" }"#);
    let labelled = issue(&[]).added(FRIDAY_4PM, "type::bug");
    let reading = read(&labelled.clone().build(), &triage, t(FRIDAY_4PM + 30));
    assert_eq!(reading.deadline(), Some(t(MONDAY_10AM + 1440)));
    assert!(matches!(
        status_at(labelled, &triage, MONDAY_10AM + 60),
        SlaStatus::Running { .. }
    ));
}

#[test]
fn time_before_the_stop_label_counts_only_in_working_hours() {
    let triage = triage_on_office_hours("");
    // Labelled Friday 16:00, triaged Monday 09:30: 1 h 30 min counted.
    let triaged = issue(&[])
        .added(FRIDAY_4PM, "type::bug")
        .added(MONDAY_10AM - 30, "triaged");
    let reading = read(&triaged.build(), &triage, t(MONDAY_10AM + 600));
    assert_eq!(reading.phase, Phase::Stopped);
    assert_eq!(reading.active, minutes(90));
    // Where the 60th working minute was: Friday 17:00, just before closing.
    assert_eq!(reading.instant_at(minutes(59)), Some(t(FRIDAY_4PM + 59)));
    assert_eq!(
        reading.instant_at(minutes(61)),
        Some(t(MONDAY_10AM - 60 + 1))
    );
}
