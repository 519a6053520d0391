//! Reading GitLab: every page of a listing, a group with its subgroups, a 429's `Retry-After`, a 502 retried, an unknown group.

use super::*;

fn shipped_policies() -> labelwarden::policy::PolicySet {
    labelwarden::policy::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .unwrap()
}

#[tokio::test]
async fn listings_follow_every_page_and_a_group_includes_its_subgroups() {
    let fake = FakeGitLab::start().await;
    for iid in 1..=230 {
        let project = if iid % 2 == 0 {
            "acme/backend"
        } else {
            "acme/platform/api"
        };
        fake.gitlab
            .add(FakeIssue::new(project, iid, hours_ago(3)).add_label(hours_ago(2), HIGHEST));
    }
    fake.gitlab
        .add(FakeIssue::new("other/thing", 1, hours_ago(3)).add_label(hours_ago(2), HIGHEST));
    let reader = fake.reader();
    let found = reader
        .candidates(
            &Scope::Group("acme".into()),
            &shipped_policies(),
            now(),
            TimeDelta::zero(),
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 230);
    let pages: Vec<String> = fake
        .gitlab
        .requests()
        .into_iter()
        .filter(|r| {
            r.contains("labels=priority%3A%3Ahighest") || r.contains("labels=priority::highest")
        })
        .collect();
    assert_eq!(pages.len(), 3, "100 + 100 + 30: {pages:#?}");
}

#[tokio::test]
async fn a_429_waits_for_retry_after_and_a_502_is_retried() {
    let fake = FakeGitLab::start().await;
    fake.gitlab
        .add(FakeIssue::new(PROJECT, 1, hours_ago(3)).add_label(hours_ago(2), HIGHEST));
    let reader = fake.reader();
    fake.gitlab.rate_limit(1, 1);
    let started = Instant::now();
    let found = reader
        .candidates(
            &Scope::Project(PROJECT.into()),
            &shipped_policies(),
            now(),
            TimeDelta::zero(),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    assert_eq!(found.len(), 1);

    fake.gitlab.fail(2);
    let issue = found.into_iter().next().unwrap();
    let fetched = reader.history(issue).await.expect("retried past two 502s");
    assert_eq!(fetched.issue.timeline().events().len(), 1);
}

#[tokio::test]
async fn an_unknown_group_says_so() {
    let fake = FakeGitLab::start().await;
    let error = fake
        .reader()
        .candidates(
            &Scope::Group("nope".into()),
            &shipped_policies(),
            now(),
            TimeDelta::zero(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, GitLabError::NotFound { .. }), "{error}");
    assert!(error.to_string().contains("group nope"), "{error}");
}
