//! Evaluation throughput of the pure core: the shipped policies over 100 000
//! synthetic issues with realistic timelines. One evaluation is one issue
//! under one policy: the clock's replay plus the engine's decision. The
//! shipped policies include one on a business-hours calendar; the third
//! case makes every issue one of its clocks. The fourth adds four policies
//! with conditions beyond labels (assignees, milestone, weight, state,
//! age) and two instant rules over the project mix, with those facts
//! filled in.
//!
//! Run: `cargo bench --bench evaluate`. Figures go in BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use labelwarden::clock;
use labelwarden::engine::{self, Ledger};
use labelwarden::issue::{
    Event, Issue, IssueFacts, IssueIid, IssueRef, IssueState, Milestone, ProjectPath, TimedEvent,
};

const ISSUES: usize = 100_000;

/// A small deterministic generator, so every run measures the same issues.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One synthetic issue of project `acme/app`, assigned to `jdoe`.
fn issue(
    n: usize,
    created_at: DateTime<Utc>,
    state: IssueState,
    labels: Vec<String>,
    confidential: bool,
    issue_type: &str,
    events: Vec<TimedEvent>,
) -> Issue {
    let facts = IssueFacts {
        reference: IssueRef {
            project: ProjectPath("acme/app".into()),
            iid: IssueIid(n as u64 + 1),
        },
        created_at,
        state,
        closed_at: None,
        labels,
        confidential,
        issue_type: issue_type.into(),
        assignees: vec!["jdoe".into()],
        due_date: None,
        details: Default::default(),
    };
    Issue::new(facts, events)
}

/// Issues shaped like a busy project's: most are ordinary, some are bugs
/// that get triaged, a few are critical, paused, closed and reopened,
/// downgraded, or incidents; histories span the last 30 days.
fn synthetic_issues(now: DateTime<Utc>) -> Vec<Issue> {
    let mut dice = Dice(0x5eed_1abe_1ded);
    (0..ISSUES)
        .map(|n| {
            let created = now - TimeDelta::minutes(dice.below(30 * 24 * 60) as i64 + 60);
            let mut at = created;
            let mut step = |dice: &mut Dice| {
                at += TimeDelta::minutes(dice.below(12 * 60) as i64 + 1);
                at.min(now)
            };
            let mut labels: Vec<String> =
                vec![["frontend", "backend", "database", "ci"][n % 4].to_owned()];
            let mut events = Vec::new();
            let mut state = IssueState::Opened;
            let incident = dice.chance(2);
            if dice.chance(40) {
                labels.push("type::bug".into());
                if dice.chance(70) {
                    let priority = ["priority::low", "priority::high", "priority::highest"]
                        [dice.below(3) as usize];
                    events.push(TimedEvent {
                        at: step(&mut dice),
                        event: Event::LabelAdded(priority.into()),
                    });
                    labels.push(priority.into());
                }
            }
            if dice.chance(5) {
                events.push(TimedEvent {
                    at: step(&mut dice),
                    event: Event::LabelAdded("urgency::highest".into()),
                });
                labels.push("urgency::highest".into());
                if dice.chance(20) {
                    let from = step(&mut dice);
                    events.push(TimedEvent {
                        at: from,
                        event: Event::LabelAdded("blocked::upstream".into()),
                    });
                    events.push(TimedEvent {
                        at: step(&mut dice),
                        event: Event::LabelRemoved("blocked::upstream".into()),
                    });
                }
                if dice.chance(10) {
                    events.push(TimedEvent {
                        at: step(&mut dice),
                        event: Event::LabelRemoved("urgency::highest".into()),
                    });
                    labels.retain(|l| l != "urgency::highest");
                }
            }
            if incident && dice.chance(10) {
                labels.push("security".into());
            }
            if dice.chance(30) {
                events.push(TimedEvent {
                    at: step(&mut dice),
                    event: Event::Closed,
                });
                state = IssueState::Closed;
                if dice.chance(15) {
                    events.push(TimedEvent {
                        at: step(&mut dice),
                        event: Event::Reopened,
                    });
                    state = IssueState::Opened;
                }
            }
            issue(
                n,
                created,
                state,
                labels,
                dice.chance(5),
                if incident { "incident" } else { "issue" },
                events,
            )
        })
        .collect()
}

/// Issues that all match the critical-bug policy, with busy histories:
/// relabelled, paused and resumed, closed and reopened. What `audit` sees
/// after GitLab's label filter, and the worst case for the clock.
fn candidate_issues(now: DateTime<Utc>) -> Vec<Issue> {
    let mut dice = Dice(0xc0ff_ee00_d00d);
    (0..ISSUES)
        .map(|n| {
            let created = now - TimeDelta::minutes(dice.below(10 * 24 * 60) as i64 + 60);
            let mut at = created;
            let mut step = |dice: &mut Dice| {
                at += TimeDelta::minutes(dice.below(6 * 60) as i64 + 1);
                at.min(now)
            };
            let mut events = vec![TimedEvent {
                at: step(&mut dice),
                event: Event::LabelAdded("priority::high".into()),
            }];
            events.push(TimedEvent {
                at: step(&mut dice),
                event: Event::LabelRemoved("priority::high".into()),
            });
            events.push(TimedEvent {
                at: step(&mut dice),
                event: Event::LabelAdded("priority::highest".into()),
            });
            for _ in 0..dice.below(3) {
                events.push(TimedEvent {
                    at: step(&mut dice),
                    event: Event::LabelAdded("blocked::upstream".into()),
                });
                events.push(TimedEvent {
                    at: step(&mut dice),
                    event: Event::LabelRemoved("blocked::upstream".into()),
                });
            }
            let mut state = IssueState::Opened;
            if dice.chance(50) {
                events.push(TimedEvent {
                    at: step(&mut dice),
                    event: Event::Closed,
                });
                state = IssueState::Closed;
                if dice.chance(30) {
                    events.push(TimedEvent {
                        at: step(&mut dice),
                        event: Event::Reopened,
                    });
                    state = IssueState::Opened;
                }
            }
            let labels = vec![
                "type::bug".into(),
                "priority::highest".into(),
                "backend".into(),
            ];
            issue(n, created, state, labels, false, "issue", events)
        })
        .collect()
}

/// Issues that all match the shipped office-hours rule (`priority::high`
/// bugs, counted in working time on a calendar), labelled over the last
/// 30 days, a third of them picked up: the calendar's worst case, a clock
/// whose working time is counted over weeks of days and holidays.
fn office_hours_issues(now: DateTime<Utc>) -> Vec<Issue> {
    let mut dice = Dice(0x0ff1_ce00_4a11);
    (0..ISSUES)
        .map(|n| {
            let created = now - TimeDelta::minutes(dice.below(30 * 24 * 60) as i64 + 60);
            let labelled = created + TimeDelta::minutes(dice.below(120) as i64);
            let mut events = vec![TimedEvent {
                at: labelled.min(now),
                event: Event::LabelAdded("priority::high".into()),
            }];
            let mut labels = vec!["type::bug".into(), "priority::high".into()];
            if dice.chance(33) {
                let picked_up = labelled + TimeDelta::minutes(dice.below(3 * 24 * 60) as i64);
                events.push(TimedEvent {
                    at: picked_up.min(now),
                    event: Event::LabelAdded("workflow::in dev".into()),
                });
                labels.push("workflow::in dev".into());
            }
            issue(
                n,
                created,
                IssueState::Opened,
                labels,
                false,
                "issue",
                events,
            )
        })
        .collect()
}

/// Policies whose conditions go beyond labels (issue 30): an owner within
/// 15 minutes, stale bugs by their last update, fresh weighed work in a
/// milestone, old bugs without a priority; and two instant rules.
const CONDITIONS: &str = r#"
policies:
  - name: needs-owner
    match: { labels_any: ["priority::highest", "urgency::highest"], assignees: none }
    clock: { target: 15m }
    escalation:
      - on: breach
        gitlab: { comment: true }
  - name: stale-bugs
    match: { labels_all: ["type::bug"], milestone: none, updated: { older_than: 7d } }
    clock: { target: 1h, stops: { labeled: ["stale"] } }
    escalation:
      - on: breach
        gitlab: { add_labels: ["stale"] }
  - name: heavy-in-milestone
    match: { labels_any: ["backend", "database"], milestone: ["17.*"], weight: { at_least: 5 }, created: { newer_than: 14d } }
    clock: { target: 3d }
  - name: untriaged
    match: { labels_all: ["type::bug"], labels_none: ["priority::*"], created: { older_than: 2d }, state: opened }
    clock: { target: 1d, stops: { labeled: ["priority::*"] } }
rules:
  - name: owner-within-15m
    match: { labels_any: ["priority::highest", "urgency::highest"], assignees: none }
    unless: { labels_any: ["blocked::upstream"] }
    after: 15m
    actions: { add_labels: ["needs-owner"], comment: "{issue.ref} needs an owner" }
  - name: incident-label
    match: { issue_types: [incident], labels_none: ["incident::*"] }
    actions: { add_labels: ["incident::active"] }
"#;

/// The shipped policies and [`CONDITIONS`], loaded as `serve` loads a folder.
fn shipped_with_conditions() -> labelwarden::policy::PolicySet {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("policies").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.path().join("conditions.yml"), CONDITIONS).unwrap();
    labelwarden::policy::load(dir.path()).expect("the conditions are valid")
}

/// The project mix, with what conditions read: half unassigned, a third
/// in a milestone, weights on half, and a last update within 30 days.
fn with_details(issues: Vec<Issue>, now: DateTime<Utc>) -> Vec<Issue> {
    let mut dice = Dice(0xde7a_11ed_0001);
    issues
        .into_iter()
        .map(|issue| {
            let mut facts = issue.facts().clone();
            if dice.chance(50) {
                facts.assignees.clear();
            }
            let details = &mut facts.details;
            details.author = Some("reporter".into());
            if dice.chance(33) {
                details.milestone = Some(Milestone {
                    id: Some(40),
                    title: Some(["17.4", "17.5", "18.0"][dice.below(3) as usize].into()),
                });
            }
            if dice.chance(50) {
                details.weight = Some(dice.below(9) as u32);
            }
            let age = (now - facts.created_at).num_minutes().max(1) as u64;
            details.updated_at =
                Some(facts.created_at + TimeDelta::minutes(dice.below(age) as i64));
            Issue::new(facts, issue.timeline().events().to_vec())
        })
        .collect()
}

fn evaluate(c: &mut Criterion) {
    let set = labelwarden::policy::load(Path::new("policies")).expect("shipped policies are valid");
    let with_conditions = shipped_with_conditions();
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    let ledger = Ledger::default();
    let mut group = c.benchmark_group("evaluate");
    group.sample_size(10);
    for (name, issues, set) in [
        ("project_mix_100k_issues", synthetic_issues(now), &set),
        (
            "matching_candidates_100k_issues",
            candidate_issues(now),
            &set,
        ),
        ("office_hours_100k_issues", office_hours_issues(now), &set),
        (
            "conditions_100k_issues",
            with_details(synthetic_issues(now), now),
            &with_conditions,
        ),
    ] {
        print_status_mix(name, &issues, &set.policies, now);
        group.throughput(Throughput::Elements(
            (issues.len() * set.policies.len()) as u64,
        ));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut actions = 0usize;
                for issue in &issues {
                    for policy in &set.policies {
                        let reading = clock::read(issue, policy, now);
                        actions += engine::decide(policy, &reading, &ledger).actions.len();
                    }
                }
                black_box(actions)
            })
        });
    }
    group.finish();
}

/// What the measured evaluations are made of, so the figure can be judged.
fn print_status_mix(
    name: &str,
    issues: &[Issue],
    policies: &[labelwarden::policy::Policy],
    now: DateTime<Utc>,
) {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let mut events = 0;
    for issue in issues {
        events += issue.timeline().events().len();
        for policy in policies {
            *counts
                .entry(clock::read(issue, policy, now).status().kind())
                .or_default() += 1;
        }
    }
    eprintln!(
        "{name}: {} issues x {} policies, {:.1} events per issue on average; statuses: {counts:?}",
        issues.len(),
        policies.len(),
        events as f64 / issues.len() as f64
    );
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
