//! Reading GitLab at the cost of what changed, against the fake GitLab of
//! the tests with 20 ms per answer (issue #17):
//!
//! (a) 1 000 candidates, cold: wall time against requests × 20 ms ÷ the
//!     concurrency the adaptive client reached (target within 1.2×), and
//!     against 3.6 s (a 40-line python-gitlab script with 8 threads);
//! (b) 10 000 candidates, warm `--cache`, 1% changed: requests against
//!     the listing pages + 2 × changed + 5;
//! (c) a server announcing 2 000 requests a minute: 429s (target none)
//!     and throughput against the announced limit (target within 10%);
//! (d) a reconcile pass over 10 000 live clocks, 1% changed: requests
//!     against the same budget as (b).
//!
//!     cargo bench --bench gitlab_reads            # (a), (b), (d): about a minute
//!     cargo bench --bench gitlab_reads -- rate    # (c) as well: two more minutes

#[path = "../tests/common/fake_gitlab.rs"]
#[allow(dead_code)]
mod fake_gitlab;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use fake_gitlab::{FakeGitLab, FakeIssue, Running};
use labelwarden::gitlab::cache::HistoryCache;
use labelwarden::gitlab::client::{GitLabClient, GitLabSettings};
use labelwarden::gitlab::history::{IssueReader, ReadOptions, Scope};
use labelwarden::policy::PolicySet;
use secrecy::SecretString;

const DELAY: Duration = Duration::from_millis(20);
/// `audit`'s default ceiling.
const CEILING: usize = 32;
const PER_PAGE: u64 = 100;

const POLICY: &str = r#"
channels:
  alerts: { slack_channel: "C0ALERTS01" }
policies:
  - name: critical
    match: { labels_any: ["priority::highest"] }
    clock: { target: 24h }
    escalation:
      - on: breach
        slack: { channel: alerts }
"#;

fn new_reader(fake: &Running) -> IssueReader {
    IssueReader::new(
        GitLabClient::new(GitLabSettings {
            url: fake.url.clone(),
            token: SecretString::from(fake_gitlab::TOKEN.to_owned()),
            concurrency: CEILING,
            first_retry: Duration::from_secs(1),
        })
        .expect("client"),
    )
}

/// `issues` critical bugs created two days before `now`, labelled an
/// hour after; none updated within a day of `now`.
async fn seeded(issues: u64, now: DateTime<Utc>) -> Running {
    let fake = FakeGitLab::start().await;
    for iid in 1..=issues {
        let created = now - TimeDelta::hours(48) + TimeDelta::seconds(iid as i64);
        fake.gitlab.add(
            FakeIssue::new("acme/backend", iid, created)
                .add_label(created + TimeDelta::hours(1), "priority::highest"),
        );
    }
    fake.gitlab.delay(DELAY);
    fake
}

async fn read(
    reader: &IssueReader,
    policies: &PolicySet,
    now: DateTime<Utc>,
    options: &ReadOptions<'_>,
) -> usize {
    reader
        .read_all(
            &Scope::Project("acme/backend".into()),
            policies,
            now,
            options,
            &|_, _| {},
        )
        .await
        .expect("reads")
        .len()
}

/// Changes 1% of the issues now: a label added bumps `updated_at`.
fn change_one_percent(fake: &Running, issues: u64, now: DateTime<Utc>) -> u64 {
    let changed = issues / 100;
    for iid in (1..=issues).step_by(100) {
        fake.gitlab.update("acme/backend", iid, |issue| {
            issue.add_label(now - TimeDelta::minutes(1), "blocked::upstream")
        });
    }
    changed
}

#[tokio::main]
async fn main() {
    let with_rate = std::env::args().any(|a| a == "rate");
    // One policy, one listing: the figures are about histories, not
    // about how many listings a policy set makes.
    let policies = labelwarden::policy::folder::from_texts(vec![(
        PathBuf::from("bench.yml"),
        POLICY.to_owned(),
    )])
    .expect("the bench's policy is valid");
    let now = Utc::now();
    let cold_options = ReadOptions {
        window: TimeDelta::hours(24),
        every_updated: true,
        ..ReadOptions::default()
    };

    // (a) Cold.
    let fake = seeded(1_000, now).await;
    let reader = new_reader(&fake);
    let started = Instant::now();
    let found = read(&reader, &policies, now, &cold_options).await;
    let wall = started.elapsed();
    let requests = reader.client().requests_made();
    let peak = reader.client().peak_concurrency();
    let ideal = DELAY.mul_f64(requests as f64 / peak as f64);
    println!("(a) 1 000 candidates, cold, ceiling {CEILING}");
    println!(
        "| candidates | requests | peak concurrency | wall time | requests × 20 ms ÷ peak | ratio | vs 3.6 s |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {found} | {requests} | {peak} | {:.0} ms | {:.0} ms | {:.2}× | {:.2}× |\n",
        wall.as_secs_f64() * 1000.0,
        ideal.as_secs_f64() * 1000.0,
        wall.as_secs_f64() / ideal.as_secs_f64(),
        wall.as_secs_f64() / 3.6
    );

    // (b) Warm cache, 1% changed.
    let issues = 10_000;
    let fake = seeded(issues, now).await;
    let cache_dir = tempfile::tempdir().expect("a folder");
    let (cache, _) = HistoryCache::open(cache_dir.path(), &fake.url, "project acme/backend");
    let warm = ReadOptions {
        cache: Some(&cache),
        ..cold_options
    };
    let first = reader_requests(&fake, &policies, now, &warm).await;
    let changed = change_one_percent(&fake, issues, now);
    let started = Instant::now();
    let reader_b = new_reader(&fake);
    read(&reader_b, &policies, now, &warm).await;
    let wall = started.elapsed();
    let requests = reader_b.client().requests_made();
    // The candidates' listing, and the window's listing of the changed.
    let pages = issues.div_ceil(PER_PAGE) + 1 + changed.div_ceil(PER_PAGE) + 1;
    let budget = pages + 2 * changed + 5;
    println!("(b) 10 000 candidates, warm cache, {changed} changed");
    println!("| cold requests | warm requests | budget (pages + 2 × changed + 5) | wall time |");
    println!("|---|---|---|---|");
    println!(
        "| {first} | {requests} | {budget} | {:.0} ms |\n",
        wall.as_secs_f64() * 1000.0
    );

    // (d) A reconcile pass: the issues updated since the last pass, their
    // histories from the process's own cache unless changed.
    let fake = seeded(issues, now).await;
    let memory = HistoryCache::in_memory("project acme/backend");
    let full = ReadOptions {
        window: TimeDelta::hours(24),
        cache: Some(&memory),
        ..ReadOptions::default()
    };
    reader_requests(&fake, &policies, now, &full).await;
    let last_pass = Utc::now();
    let changed = change_one_percent(&fake, issues, Utc::now());
    let incremental = ReadOptions {
        window: TimeDelta::hours(24),
        cache: Some(&memory),
        updated_after: Some(last_pass - TimeDelta::minutes(5)),
        ..ReadOptions::default()
    };
    let started = Instant::now();
    let requests = reader_requests(&fake, &policies, Utc::now(), &incremental).await;
    let wall = started.elapsed();
    let budget = changed.div_ceil(PER_PAGE) + 1 + 2 * changed + 5;
    println!("(d) reconcile pass, 10 000 live clocks, {changed} changed");
    println!("| requests | budget (pages + 2 × changed + 5) | wall time |");
    println!("|---|---|---|");
    println!(
        "| {requests} | {budget} | {:.0} ms |\n",
        wall.as_secs_f64() * 1000.0
    );

    if with_rate {
        // (c) 2 000 requests a minute, announced; 2 500 issues need 5 001.
        let fake = seeded(2_500, now).await;
        fake.gitlab.announce_limit(2_000, 60);
        let reader = new_reader(&fake);
        let started = Instant::now();
        read(&reader, &policies, now, &ReadOptions::default()).await;
        let wall = started.elapsed();
        let requests = reader.client().requests_made();
        let per_minute = requests as f64 / wall.as_secs_f64() * 60.0;
        println!("(c) a server announcing 2 000 requests a minute");
        println!("| requests | 429s | wall time | requests per minute | of the limit |");
        println!("|---|---|---|---|---|");
        println!(
            "| {requests} | {} | {:.1} s | {per_minute:.0} | {:.0}% |",
            fake.gitlab.refused_for_rate(),
            wall.as_secs_f64(),
            per_minute / 2_000.0 * 100.0
        );
    }
}

/// Reads once with a fresh client; the requests it made.
async fn reader_requests(
    fake: &Running,
    policies: &PolicySet,
    now: DateTime<Utc>,
    options: &ReadOptions<'_>,
) -> u64 {
    let reader = new_reader(fake);
    read(&reader, policies, now, options).await;
    reader.client().requests_made()
}
