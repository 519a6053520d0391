//! Rendering the status page for 10 000 open clocks (a tenth breached, a
//! tenth paused, a twentieth confidential, half acknowledged, each with a
//! Slack thread) and 2 000 clocks that ended in the last 30 days. Prints
//! the page's size, then criterion's time per render.
//!
//! Run: `cargo bench --bench status_page`. Target: under 100 ms a render.
//! Figures go in BENCHMARKS.md.

use std::hint::black_box;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use labelwarden::audit::{Level, Row};
use labelwarden::clock::{PauseReason, SlaStatus};
use labelwarden::issue::IssueRef;
use labelwarden::policy::PolicyName;
use labelwarden::status_page::Board;
use labelwarden::status_page::{PageSettings, render};
use labelwarden::store::{AlertThread, CycleThread};

const OPEN: u64 = 10_000;
const ENDED: u64 = 2_000;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn board() -> Board {
    let now = now();
    let minutes = TimeDelta::minutes;
    let mut rows = Vec::new();
    let mut threads = Vec::new();
    for n in 1..=OPEN + ENDED {
        let policy = ["critical", "security", "customer"][(n % 3) as usize];
        let started_at = now - minutes((n % 2_000) as i64);
        let deadline = started_at + TimeDelta::hours(24);
        let status = if n > OPEN {
            SlaStatus::Met {
                stopped_at: now - TimeDelta::hours((n % 700) as i64),
                took: minutes((n % 1_400) as i64),
            }
        } else if n % 10 == 0 {
            SlaStatus::Breached {
                deadline: now - minutes((n % 600) as i64),
                overdue: minutes((n % 600) as i64),
            }
        } else if n % 10 == 1 {
            SlaStatus::Paused {
                reason: PauseReason::Label(0),
                since: now - minutes(30),
                remaining: minutes((n % 900) as i64),
            }
        } else {
            SlaStatus::Running {
                deadline,
                remaining: deadline - now,
            }
        };
        let issue = format!("acme/service-{}#{n}", n % 40);
        if n <= OPEN {
            threads.push(CycleThread {
                cycle: AlertThread {
                    issue: IssueRef::parse(&issue).unwrap(),
                    policy: PolicyName(policy.into()),
                    cycle: 1,
                },
                channel: "incidents".into(),
                channel_id: "C0INCIDENTS".into(),
                ts: format!("17640{n:05}.000100"),
            });
        }
        rows.push(Row {
            url: format!(
                "https://gitlab.example.com/acme/service-{}/-/issues/{n}",
                n % 40
            ),
            issue,
            title: format!("Checkout fails for <some> customers in region {n}"),
            confidential: n % 20 == 7,
            assignees: vec![format!("dev{}", n % 50)],
            policy: policy.into(),
            level: if status.is_breach() {
                Level::Breach
            } else {
                Level::Ok
            },
            status,
            target: TimeDelta::hours(24),
            started_at: Some(started_at),
            deadline: Some(deadline),
            cycle: 1,
            acknowledged: (n % 2 == 0)
                .then(|| (format!("@dev{}", n % 50), started_at + minutes(7))),
            calendar: None,
        });
    }
    Board { now, rows, threads }
}

fn status_page(c: &mut Criterion) {
    let board = board();
    let settings = PageSettings {
        slack_workspace: Some("https://acme.slack.com/".into()),
        ..PageSettings::default()
    };
    let page = render(&board, &settings);
    println!(
        "status page for {OPEN} open and {ENDED} ended clocks: {:.1} MB",
        page.len() as f64 / 1_000_000.0
    );
    c.bench_function("status page, 10 000 open clocks", |b| {
        b.iter(|| render(black_box(&board), &settings))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = status_page
}
criterion_main!(benches);
