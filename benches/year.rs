//! A year of a busy instance on a compressed clock (issue 29): GitLab
//! issue events as `serve` stores them (parsed from GitLab's documented
//! payload, recorded through the store's intake), applied the way the
//! enforcer applies them (`jobs::prepare` with the shipped policies, one
//! commit per batch), with retention run every six simulated hours, all
//! at a simulated `now`; every notice is taken as sent when its quarter
//! of the day ends. Most issues are resolved within days; one in a
//! hundred stays open all year (its clock must survive). Run once with
//! retention (`--retain 90d`, a week of delivery keys) and once without,
//! and reports the store's size and the intake's p99 latency (recording
//! one delivery, the store's part of a webhook's acknowledgement) in the
//! first and the last simulated week.
//!
//!     cargo bench --bench year                 (365 days, 300 new issues a day)
//!     cargo bench --bench year -- 30 100       (days, new issues a day)
//!     cargo bench --bench year -- --without    (only the run without retention;
//!                                               `--with` for only the other)

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use labelwarden::gitlab::webhook::{IssueDelivery, parse_issue_hook};
use labelwarden::issue::IssueRef;
use labelwarden::jobs::adoption::Windows;
use labelwarden::policy::PolicySet;
use labelwarden::store::sql::SqlStore;
use labelwarden::store::{Delivery, Handled, OutboxOutcome, SendResult, Store};
use serde_json::{Value, json};

/// Deliveries applied per pass, as the enforcer's SQLite batch.
const PASS: u32 = 64;

/// One GitLab event of one issue, at a simulated instant.
struct Happening {
    at: DateTime<Utc>,
    iid: u64,
    created: DateTime<Utc>,
    before: Vec<&'static str>,
    after: Vec<&'static str>,
    closing: bool,
}

/// A small deterministic generator (xorshift), so every run is the same.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The events of the issues opened on `day`: opened as a bug, one in five
/// made critical within hours, a handful of other edits (each an issue
/// event, as GitLab sends one per update), closed after one to five days;
/// one in a hundred never closed.
fn day_of_issues(
    day: i64,
    per_day: u64,
    first_iid: u64,
    origin: DateTime<Utc>,
    dice: &mut Dice,
) -> Vec<Happening> {
    let mut out = Vec::new();
    for n in 0..per_day {
        let iid = first_iid + n;
        let created = origin + TimeDelta::days(day) + TimeDelta::seconds(dice.below(86_400) as i64);
        let critical = dice.below(5) == 0;
        let mut labels: Vec<&'static str> = vec!["type::bug"];
        let mut at = created;
        let mut push =
            |at: DateTime<Utc>, before: &[&'static str], after: &[&'static str], closing| {
                out.push(Happening {
                    at,
                    iid,
                    created,
                    before: before.to_vec(),
                    after: after.to_vec(),
                    closing,
                });
            };
        push(at, &[], &labels, false);
        if critical {
            at += TimeDelta::minutes(dice.below(240) as i64 + 1);
            let before = labels.clone();
            labels.push("priority::highest");
            push(at, &before, &labels, false);
        }
        // Comments, assignments, description edits: updates that change no label.
        for _ in 0..dice.below(25) + 3 {
            at += TimeDelta::minutes(dice.below(180) as i64 + 1);
            push(at, &labels, &labels, false);
        }
        if dice.below(100) != 0 {
            at += TimeDelta::hours(dice.below(96) as i64 + 24);
            push(at, &labels, &labels, true);
        }
    }
    out
}

/// GitLab's documented issue event, edited to this happening.
fn payload(template: &Value, happening: &Happening) -> Vec<u8> {
    let label = |title: &str| json!({ "id": 900, "title": title, "color": "#dc143c", "project_id": 7, "type": "GroupLabel", "group_id": 3 });
    let time = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut payload = template.clone();
    let labels: Vec<Value> = happening.after.iter().map(|l| label(l)).collect();
    payload["project"]["path_with_namespace"] = json!("acme/backend");
    let attributes = &mut payload["object_attributes"];
    attributes["iid"] = json!(happening.iid);
    attributes["title"] = json!(format!("Bug {}", happening.iid));
    attributes["created_at"] = json!(time(happening.created));
    attributes["updated_at"] = json!(time(happening.at));
    attributes["labels"] = json!(labels);
    attributes["state"] = json!(if happening.closing {
        "closed"
    } else {
        "opened"
    });
    attributes["action"] = json!(if happening.closing { "close" } else { "update" });
    if happening.closing {
        attributes["closed_at"] = json!(time(happening.at));
    }
    payload["labels"] = json!(labels);
    let mut changes = json!({ "updated_at": { "previous": null, "current": time(happening.at) } });
    if happening.before != happening.after {
        changes["labels"] = json!({
            "previous": happening.before.iter().map(|l| label(l)).collect::<Vec<_>>(),
            "current": labels,
        });
    }
    if happening.closing {
        changes["state_id"] = json!({ "previous": 1, "current": 2 });
    }
    payload["changes"] = changes;
    serde_json::to_vec(&payload).unwrap()
}

/// Applies every pending delivery and every due wake-up as of `now`, a
/// pass at a time, as the enforcer does.
async fn apply(store: &SqlStore, policies: &PolicySet, windows: &mut Windows, now: DateTime<Utc>) {
    loop {
        let deliveries = store.pending_deliveries(PASS).await.unwrap();
        let due = store.due_issues(now, PASS).await.unwrap();
        if deliveries.is_empty() && due.is_empty() {
            return;
        }
        let mut handled = Vec::with_capacity(deliveries.len());
        let mut work: Vec<(IssueRef, Vec<IssueDelivery>)> = Vec::new();
        for delivery in deliveries {
            let mut read: IssueDelivery = serde_json::from_str(&delivery.payload).unwrap();
            read.received_at = Some(delivery.received_at);
            let reference = read.facts.reference.clone();
            match work.iter_mut().find(|(issue, _)| *issue == reference) {
                Some((_, list)) => list.push(read),
                None => work.push((reference, vec![read])),
            }
            handled.push(Handled {
                key: delivery.key,
                seq: delivery.seq,
                rejected: None,
            });
        }
        for issue in due {
            if !work.iter().any(|(known, _)| *known == issue) {
                work.push((issue, Vec::new()));
            }
        }
        let issues: Vec<IssueRef> = work.iter().map(|(issue, _)| issue.clone()).collect();
        let loaded = store.load_issues(&issues).await.unwrap();
        let commits: Vec<_> = work
            .into_iter()
            .zip(loaded)
            .filter_map(|((_, deliveries), loaded)| {
                labelwarden::jobs::prepare(policies, loaded, deliveries, &[], windows, now)
                    .map(|(commit, _)| commit)
            })
            .collect();
        store.commit(&commits, &handled, None).await.unwrap();
    }
}

/// Sends every notice waiting, as if Slack and GitLab took each at once.
async fn send_all(store: &SqlStore, now: DateTime<Utc>) {
    loop {
        let claimed = store
            .claim_outbox(now, 500, TimeDelta::minutes(1))
            .await
            .unwrap();
        if claimed.is_empty() {
            return;
        }
        let outcomes: Vec<OutboxOutcome> = claimed
            .iter()
            .map(|entry| OutboxOutcome {
                key: entry.key.clone(),
                claim: entry.claim.clone(),
                result: SendResult::Sent {
                    at: now,
                    thread: None,
                },
            })
            .collect();
        store.record_outbox(&outcomes).await.unwrap();
    }
}

/// Retention as `serve` runs it, at `now`.
async fn retain(store: &SqlStore, now: DateTime<Utc>) {
    while store
        .forget_ended(now - TimeDelta::days(90), 200, None)
        .await
        .unwrap()
        == 200
    {}
    while store
        .prune_deliveries(now - TimeDelta::days(7), 200)
        .await
        .unwrap()
        > 0
    {}
    store.compact(2_000).await.unwrap();
}

fn p99(latencies: &mut [Duration]) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort_unstable();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

struct Outcome {
    deliveries: u64,
    bytes: u64,
    tables: Vec<(String, i64)>,
    first_week_p99: Duration,
    last_week_p99: Duration,
    running: i64,
    wall: Duration,
}

async fn simulate(dir: &Path, days: i64, per_day: u64, retention: bool) -> Outcome {
    let started = Instant::now();
    let policies = labelwarden::policy::load(Path::new("policies")).expect("the shipped policies");
    let template: Value = serde_json::from_slice(
        &std::fs::read("tests/fixtures/gitlab/issue_hook_documented.json").unwrap(),
    )
    .unwrap();
    let store = SqlStore::connect(&format!("sqlite://{}", dir.join("year.db").display()))
        .await
        .unwrap();
    let origin = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut dice = Dice(0x5eed_1234_abcd_9876);
    let mut windows = Windows::default();
    // What is still to happen, by instant.
    let mut ahead: BTreeMap<(DateTime<Utc>, u64, u64), Happening> = BTreeMap::new();
    let mut sequence = 0u64;
    let (mut first_week, mut last_week) = (Vec::new(), Vec::new());
    let mut deliveries = 0u64;
    for day in 0..days {
        for happening in day_of_issues(day, per_day, 1 + day as u64 * per_day, origin, &mut dice) {
            sequence += 1;
            ahead.insert((happening.at, happening.iid, sequence), happening);
        }
        // The day, a quarter at a time: deliveries as they come, applied
        // after every pass's worth, retention each quarter.
        for quarter in 1..=4 {
            let until = origin + TimeDelta::days(day) + TimeDelta::hours(6 * quarter);
            let mut since_pass = 0;
            while let Some(entry) = ahead.first_entry() {
                if entry.key().0 >= until {
                    break;
                }
                let happening = entry.remove();
                let parsed = parse_issue_hook(&payload(&template, &happening)).unwrap();
                deliveries += 1;
                let record = Delivery {
                    seq: 0,
                    key: format!("delivery-{deliveries}"),
                    kind: "Issue Hook".into(),
                    received_at: happening.at,
                    payload: serde_json::to_string(&parsed).unwrap(),
                };
                let timed = Instant::now();
                store.record_delivery(&record).await.unwrap();
                let took = timed.elapsed();
                if day < 7 {
                    first_week.push(took);
                } else if day >= days - 7 {
                    last_week.push(took);
                }
                since_pass += 1;
                if since_pass == PASS {
                    apply(&store, &policies, &mut windows, happening.at).await;
                    since_pass = 0;
                }
            }
            apply(&store, &policies, &mut windows, until).await;
            send_all(&store, until).await;
            if retention {
                retain(&store, until).await;
            }
        }
        if day % 30 == 29 {
            eprintln!(
                "  day {:>3}: {deliveries} deliveries, {:.1} MB",
                day + 1,
                store.size().await.unwrap().bytes as f64 / 1e6
            );
        }
    }
    let size = store.size().await.unwrap();
    let end = origin + TimeDelta::days(days);
    let running = store
        .stats(end)
        .await
        .unwrap()
        .clocks
        .iter()
        .filter(|(_, status, _)| matches!(status.as_str(), "running" | "paused" | "breached"))
        .map(|(_, _, n)| n)
        .sum();
    Outcome {
        deliveries,
        bytes: size.bytes,
        tables: size.tables,
        first_week_p99: p99(&mut first_week),
        last_week_p99: p99(&mut last_week),
        running,
        wall: started.elapsed(),
    }
}

fn report(label: &str, outcome: &Outcome) {
    println!("== {label}");
    println!(
        "deliveries {}, store {:.1} MB, live clocks {}, wall {:.0} s",
        outcome.deliveries,
        outcome.bytes as f64 / 1e6,
        outcome.running,
        outcome.wall.as_secs_f64()
    );
    println!(
        "intake p99: first week {:.0} µs, last week {:.0} µs",
        outcome.first_week_p99.as_secs_f64() * 1e6,
        outcome.last_week_p99.as_secs_f64() * 1e6
    );
    let rows: Vec<String> = outcome
        .tables
        .iter()
        .filter(|(_, rows)| *rows > 0)
        .map(|(table, rows)| format!("{table} {rows}"))
        .collect();
    println!("rows: {}", rows.join(", "));
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<i64> = arguments
        .iter()
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let only_with = arguments.iter().any(|arg| arg == "--with");
    let only_without = arguments.iter().any(|arg| arg == "--without");
    let runs: Vec<bool> = [true, false]
        .into_iter()
        .filter(|&retention| !(retention && only_without || !retention && only_with))
        .collect();
    let days = numbers.first().copied().unwrap_or(365);
    let per_day = numbers.get(1).copied().unwrap_or(300) as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for retention in runs {
            let dir = tempfile::tempdir().unwrap();
            eprintln!("{days} days, {per_day} new issues a day, retention {retention}");
            let outcome = simulate(dir.path(), days, per_day, retention).await;
            report(
                if retention {
                    "with retention (90 days, keys 7 days)"
                } else {
                    "without retention"
                },
                &outcome,
            );
        }
    });
}
