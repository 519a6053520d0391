//! `audit` against a fake GitLab with latency: a project of 1 000 and of
//! 10 000 open issues, 1% of them critical bugs with a label history, every
//! API reply delayed by 20 ms. Reports wall time, API requests made, and
//! the lower bound: the listing pages the candidates need, plus a label
//! history and a state history request per candidate.
//!
//!     cargo bench --bench audit
//!
//! Targets: requests within 10% of the bound, wall time within 1.5× of
//! requests × 20 ms ÷ concurrency.

#[path = "../tests/common/fake_gitlab.rs"]
#[allow(dead_code)]
mod fake_gitlab;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use fake_gitlab::{FakeGitLab, FakeIssue};
use labelwarden::gitlab::client::{GitLabClient, GitLabSettings};
use labelwarden::gitlab::history::ReadOptions;
use labelwarden::gitlab::history::{IssueReader, Scope, candidate_queries};
use secrecy::SecretString;

const DELAY: Duration = Duration::from_millis(20);
const CONCURRENCY: usize = 8;
const PER_PAGE: usize = 100;

#[tokio::main]
async fn main() {
    let policies =
        labelwarden::policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
            .expect("shipped policies");
    let listings = candidate_queries(&policies).len() * 2; // open, and recently closed
    println!(
        "| open issues | candidates | requests | lower bound | wall time | requests × {} ms ÷ {CONCURRENCY} | time ratio |",
        DELAY.as_millis()
    );
    println!("|---|---|---|---|---|---|---|");
    for issues in [1_000u64, 10_000] {
        let fake = FakeGitLab::start().await;
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let matching = issues / 100;
        for iid in 1..=issues {
            let created = now - TimeDelta::hours(48) + TimeDelta::seconds(iid as i64);
            let mut issue = FakeIssue::new("acme/backend", iid, created);
            if iid % 100 == 0 {
                // A critical bug: labelled a bug first, then raised.
                issue = issue
                    .add_label(created + TimeDelta::minutes(5), "type::bug")
                    .add_label(created + TimeDelta::hours(2), "priority::highest");
            } else {
                issue = issue.add_label(created, "type::feature");
            }
            fake.gitlab.add(issue);
        }
        fake.gitlab.delay(DELAY);
        let client = GitLabClient::new(GitLabSettings {
            url: fake.url.clone(),
            token: SecretString::from(fake_gitlab::TOKEN.to_owned()),
            concurrency: CONCURRENCY,
            first_retry: Duration::from_secs(1),
        })
        .expect("client");
        let reader = IssueReader::new(client.clone());

        let started = Instant::now();
        let fetched = reader
            .read_all(
                &Scope::Project("acme/backend".into()),
                &policies,
                now,
                &ReadOptions {
                    window: TimeDelta::hours(24),
                    // The candidates alone, as the figures in BENCHMARKS.md
                    // were measured.
                    ..ReadOptions::default()
                },
                &|_, _| {},
            )
            .await
            .expect("audit reads");
        let found = fetched.len() as u64;
        let rows = labelwarden::audit::evaluate(&fetched, &policies, now);
        let wall = started.elapsed();
        assert_eq!(found, matching, "every critical bug found, nothing else");
        assert_eq!(
            rows.len() as u64,
            matching * 2,
            "each is a critical bug and a bug in triage"
        );

        // Each candidate appears in two listings (type::bug and
        // priority::highest); every other listing is one empty page.
        let pages = |n: u64| (n as usize).div_ceil(PER_PAGE).max(1);
        let bound = pages(matching) * 2 + (listings - 2) + 2 * matching as usize;
        let requests = client.requests_made() as usize;
        let ideal = DELAY.mul_f64(requests as f64 / CONCURRENCY as f64);
        println!(
            "| {issues} | {found} | {requests} | {bound} ({:+.0}%) | {:.0} ms | {:.0} ms | {:.2}× |",
            (requests as f64 / bound as f64 - 1.0) * 100.0,
            wall.as_secs_f64() * 1000.0,
            ideal.as_secs_f64() * 1000.0,
            wall.as_secs_f64() / ideal.as_secs_f64()
        );
    }
}
