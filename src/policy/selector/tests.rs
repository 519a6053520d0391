use chrono::TimeDelta;

use super::*;
use crate::test_support::{issue, t};

fn patterns(names: &[&str]) -> Vec<Pattern> {
    names.iter().map(|n| Pattern::parse(n).unwrap()).collect()
}

fn facts_of(builder: crate::test_support::IssueBuilder) -> IssueFacts {
    builder.build().facts().clone()
}

#[test]
fn assignees_any_none_and_named_read_who_is_assigned_now() {
    let assigned = facts_of(issue(&[]).assigned(&["ada", "bot-triage"]));
    let nobody = facts_of(issue(&[]).assigned(&[]));
    let with = |assignees| Selector {
        assignees,
        ..Selector::default()
    };
    assert!(with(Presence::Set).matches_facts(&assigned));
    assert!(!with(Presence::Set).matches_facts(&nobody));
    assert!(with(Presence::Unset).matches_facts(&nobody));
    assert!(!with(Presence::Unset).matches_facts(&assigned));
    assert!(with(Presence::OneOf(patterns(&["bot-*"]))).matches_facts(&assigned));
    assert!(!with(Presence::OneOf(patterns(&["grace"]))).matches_facts(&assigned));
    assert!(!with(Presence::OneOf(patterns(&["grace"]))).matches_facts(&nobody));
}

#[test]
fn an_unknown_author_matches_no_author_condition() {
    let selector = Selector {
        authors: patterns(&["ada"]),
        ..Selector::default()
    };
    assert!(selector.matches_facts(&facts_of(issue(&[]).author("ada"))));
    assert!(!selector.matches_facts(&facts_of(issue(&[]).author("grace"))));
    assert!(
        !selector.matches_facts(&facts_of(issue(&[]))),
        "a hook that never named the author cannot say it is ada"
    );
}

#[test]
fn a_milestone_known_only_by_id_is_set_but_has_no_name_to_match() {
    let mut by_id = facts_of(issue(&[]));
    by_id.details.milestone = Some(crate::issue::Milestone {
        id: Some(9),
        title: None,
    });
    let named = facts_of(issue(&[]).milestone("17.4"));
    let none = facts_of(issue(&[]));
    let with = |milestone| Selector {
        milestone,
        ..Selector::default()
    };
    assert!(with(Presence::Set).matches_facts(&by_id));
    assert!(!with(Presence::Unset).matches_facts(&by_id));
    assert!(with(Presence::Unset).matches_facts(&none));
    assert!(with(Presence::OneOf(patterns(&["17.*"]))).matches_facts(&named));
    assert!(!with(Presence::OneOf(patterns(&["17.*"]))).matches_facts(&by_id));
}

#[test]
fn weight_bounds_include_their_ends_and_an_unweighted_issue_meets_none() {
    let between = |at_least, at_most| Selector {
        weight: WeightCondition::Between { at_least, at_most },
        ..Selector::default()
    };
    let weighing = |w| facts_of(issue(&[]).weight(w));
    assert!(between(Some(3), Some(5)).matches_facts(&weighing(3)));
    assert!(between(Some(3), Some(5)).matches_facts(&weighing(5)));
    assert!(!between(Some(3), Some(5)).matches_facts(&weighing(6)));
    assert!(between(None, Some(1)).matches_facts(&weighing(0)));
    assert!(!between(None, Some(1)).matches_facts(&facts_of(issue(&[]))));
    let unset = Selector {
        weight: WeightCondition::Unset,
        ..Selector::default()
    };
    assert!(unset.matches_facts(&facts_of(issue(&[]))));
    assert!(
        !unset.matches_facts(&weighing(0)),
        "a weight of 0 is a weight"
    );
}

#[test]
fn the_state_condition_reads_the_instant_s_state() {
    let open_only = Selector {
        state: Some(IssueState::Opened),
        ..Selector::default()
    };
    assert!(open_only.matches_state(true));
    assert!(!open_only.matches_state(false));
    assert!(Selector::default().matches_state(false));
}

#[test]
fn age_conditions_make_a_window_from_creation_and_the_last_update() {
    let facts = facts_of(issue(&[]).updated(600));
    let days = TimeDelta::days;
    let selector = Selector {
        created: AgeRange {
            older_than: Some(days(2)),
            newer_than: Some(days(30)),
        },
        updated: AgeRange {
            older_than: Some(TimeDelta::hours(1)),
            newer_than: None,
        },
        ..Selector::default()
    };
    let window = selector.window(&facts);
    // Two days after creation is later than an hour after the update.
    assert_eq!(window.from, Some(t(0) + days(2)));
    assert_eq!(window.until, Some(t(0) + days(30)));
    assert!(!window.contains(t(0) + days(2) - TimeDelta::seconds(1)));
    assert!(window.contains(t(0) + days(2)));
    assert!(!window.contains(t(0) + days(30)), "the end is not in it");
    assert_eq!(window.next_edge_after(t(0)), Some(t(0) + days(2)));
    assert_eq!(
        window.next_edge_after(t(0) + days(3)),
        Some(t(0) + days(30))
    );
    assert_eq!(window.next_edge_after(t(0) + days(30)), None);

    let stale = Selector {
        updated: AgeRange {
            older_than: Some(days(14)),
            newer_than: None,
        },
        ..Selector::default()
    };
    assert_eq!(
        stale.window(&facts).from,
        Some(t(600) + days(14)),
        "stale counts from the last update"
    );
    assert_eq!(Selector::default().window(&facts), MatchWindow::default());
}

#[test]
fn several_labels_of_one_pattern_match_and_one_does_not() {
    let selector = Selector {
        labels_several: patterns(&["team::*"]),
        ..Selector::default()
    };
    assert!(selector.matches_labels(["team::api", "bug", "team::web"]));
    assert!(!selector.matches_labels(["team::api", "bug"]));
    assert!(!selector.matches_labels(["bug", "priority::high"]));
}
