//! The GitLab client's adaptive concurrency against the fake GitLab: it
//! never runs into a budget GitLab announces, reaches its ceiling where
//! nothing limits it, backs off on 429, and reads a listing's pages
//! together when GitLab says how many there are.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};
use labelwarden::gitlab::client::{GitLabClient, GitLabSettings};
use labelwarden::gitlab::history::{IssueReader, ReadOptions, Scope};
use secrecy::SecretString;

fn reader(url: &str, ceiling: usize) -> IssueReader {
    IssueReader::new(
        GitLabClient::new(GitLabSettings {
            url: url.to_owned(),
            token: SecretString::from(fake_gitlab::TOKEN.to_owned()),
            concurrency: ceiling,
            first_retry: Duration::from_millis(10),
        })
        .unwrap(),
    )
}

fn seed(gitlab: &FakeGitLab, issues: u64) {
    let at = Utc::now() - TimeDelta::hours(1);
    for iid in 1..=issues {
        gitlab.add(FakeIssue::new("acme/backend", iid, at).add_label(at, "priority::highest"));
    }
}

async fn read(reader: &IssueReader) -> usize {
    let policies = common::fixture_policies("policies-fast");
    reader
        .read_all(
            &Scope::Project("acme/backend".into()),
            &policies,
            Utc::now(),
            &ReadOptions::default(),
            &|_, _| {},
        )
        .await
        .expect("read")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_budget_is_never_run_into() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab, 30);
    fake.gitlab.delay(Duration::from_millis(5));
    // 40 requests per 2-second window; the read needs 61.
    fake.gitlab.announce_limit(40, 2);
    let reader = reader(&fake.url, 16);
    assert_eq!(read(&reader).await, 30);
    assert_eq!(fake.gitlab.refused_for_rate(), 0, "no 429");
    assert_eq!(reader.client().requests_made(), 61, "and so no retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_limits_it_grows_to_its_ceiling_and_a_429_halves_it() {
    let fake = FakeGitLab::start().await;
    seed(&fake.gitlab, 100);
    // Long enough that a busy test machine's few milliseconds of noise
    // do not read as GitLab slowing down.
    fake.gitlab.delay(Duration::from_millis(50));
    let reader = reader(&fake.url, 16);
    assert_eq!(reader.client().concurrency_limit(), 4, "it starts low");
    assert_eq!(read(&reader).await, 100);
    assert_eq!(
        reader.client().peak_concurrency(),
        16,
        "flat latency: the ceiling"
    );
    let before = reader.client().concurrency_limit();
    // Three 429s (Retry-After: 0) on the next request: each halves the
    // limit, and the answer after them adds a fraction.
    fake.gitlab.rate_limit(3, 0);
    reader
        .project("acme/backend")
        .await
        .expect("retried past the 429s");
    let after = reader.client().concurrency_limit();
    assert!(
        after <= before / 8 + 1 && after < 16,
        "halved three times: {before} then {after}"
    );
    // It grows back as answers come flat.
    assert_eq!(read(&reader).await, 100);
    assert!(reader.client().concurrency_limit() > after, "it grows back");
}

/// The issue numbers `candidates` finds in acme/backend, and the listing
/// requests it took.
async fn listed(fake: &common::fake_gitlab::Running) -> (Vec<u64>, usize) {
    let policies = common::fixture_policies("policies-fast");
    let found = reader(&fake.url, 16)
        .candidates(
            &Scope::Project("acme/backend".into()),
            &policies,
            Utc::now(),
            TimeDelta::zero(),
        )
        .await
        .expect("listed");
    let requests = fake
        .gitlab
        .requests()
        .iter()
        .filter(|r| r.contains("/issues?"))
        .count();
    (found.iter().map(|issue| issue.iid).collect(), requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listings_pages_are_read_together_when_counted_and_in_turn_when_not() {
    let every: Vec<u64> = (1..=450).collect();

    let counted = FakeGitLab::start().await;
    seed(&counted.gitlab, 450);
    counted.gitlab.delay(Duration::from_millis(50));
    assert_eq!(
        listed(&counted).await,
        (every.clone(), 5),
        "4 full pages and 50"
    );
    assert!(
        counted.gitlab.peak_in_flight() >= 2,
        "after the first page says there are 5, the others are asked for together"
    );

    // Over 10 000 results GitLab leaves the totals out: the pages are
    // followed by X-Next-Page, one after another, none missed.
    let uncounted = FakeGitLab::start().await;
    seed(&uncounted.gitlab, 450);
    uncounted.gitlab.delay(Duration::from_millis(50));
    uncounted.gitlab.count_totals_up_to(100);
    assert_eq!(listed(&uncounted).await, (every, 5));
    assert_eq!(uncounted.gitlab.peak_in_flight(), 1);
}
