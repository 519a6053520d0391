//! `serve` and a scheduled `audit --notify` side by side share one ledger
//! on each issue: `serve` lists every step it carries out (Slack-only ones
//! too, with their thread) on the issue's ledger note, so the audit sends
//! nothing `serve` sent and takes over, in `serve`'s threads, only what
//! `serve` missed while it was down.

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};
use common::fake_slack::{FakeSlack, TOKEN};
use common::{HIGHEST, Options, fixtures, sqlite, start_server};
use labelwarden::gitlab::actions::IssueWriter;
use labelwarden::gitlab::client::{GitLabClient, GitLabSettings};
use labelwarden::gitlab::markers::Marker;
use labelwarden::jobs::escalation::Escalation;
use labelwarden::slack::{SlackNotifier, SlackSettings};
use secrecy::SecretString;

fn audit_notify(gitlab: &str, slack_api: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args([
            "audit",
            "--project",
            "acme/backend",
            "--notify",
            "--fail-on",
            "never",
        ])
        .args(["--format", "json", "--policies"])
        .arg(fixtures().join("policies-shared"))
        .env("GITLAB_URL", gitlab)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .env("SLACK_BOT_TOKEN", TOKEN)
        .env("SLACK_API_URL", slack_api)
        .output()
        .unwrap()
}

/// `serve`'s notifier as `serve --notifier slack` builds it with a GitLab
/// token: GitLab parts and the ledger notes, then Slack.
fn escalation(
    policies: &Arc<labelwarden::policy::PolicySet>,
    gitlab: &str,
    slack_api: &str,
) -> Escalation<SlackNotifier> {
    let slack_notifier = SlackNotifier::new(
        Arc::clone(policies),
        SlackSettings {
            api_url: slack_api.to_owned(),
            token: Some(SecretString::from(TOKEN.to_owned())),
            webhook_urls: BTreeMap::new(),
            per_channel_per_second: NonZeroU32::new(100).unwrap(),
            per_channel_burst: NonZeroU32::new(10).unwrap(),
        },
    )
    .unwrap();
    let client = GitLabClient::new(GitLabSettings {
        url: gitlab.to_owned(),
        token: SecretString::from(fake_gitlab::TOKEN.to_owned()),
        concurrency: 4,
        first_retry: Duration::from_millis(5),
    })
    .unwrap();
    Escalation::new(slack_notifier, IssueWriter::new(client))
}

/// `issues` of acme/backend labelled at `labelled`, in the fake GitLab and
/// delivered to a `serve` that keeps their ledger notes; the server, and
/// the folder its store lives in.
async fn serve_labelled(
    gitlab: &common::fake_gitlab::Running,
    slack: &common::fake_slack::Running,
    labelled: chrono::DateTime<Utc>,
    issues: std::ops::RangeInclusive<u64>,
) -> (common::Server, tempfile::TempDir) {
    for iid in issues.clone() {
        gitlab
            .gitlab
            .add(FakeIssue::new("acme/backend", iid, labelled).add_label(labelled, HIGHEST));
    }
    let policies = common::fixture_policies("policies-shared");
    let notifier = escalation(&policies, &gitlab.url, &slack.api_url);
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        policies,
        &sqlite(&dir.path().join("db.sqlite")),
        notifier,
        Options::default(),
    )
    .await;
    for iid in issues {
        let payload = common::issue_event(iid, labelled, labelled, &[], &[HIGHEST], false);
        assert_eq!(
            server.deliver(&format!("labelled-{iid}"), &payload).await,
            200
        );
    }
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_after_serve_sends_only_what_serve_missed_in_serve_s_threads() {
    let gitlab = FakeGitLab::start().await;
    let slack = FakeSlack::start().await;
    let labelled = Utc::now();
    let (server, _dir) = serve_labelled(&gitlab, &slack, labelled, 1..=3).await;
    // serve posts the starts and, 3 seconds in, the warnings; then it stops
    // before the breaches are due.
    let warned = common::wait_until(Duration::from_secs(6), || {
        slack
            .slack
            .messages()
            .iter()
            .filter(|m| m.text.contains(":hourglass_flowing_sand:"))
            .count()
            == 3
    })
    .await;
    assert!(warned, "{:#?}", slack.slack.messages());
    server.stop().await;
    let by_serve = slack.slack.messages();
    assert_eq!(by_serve.len(), 6, "3 starts, 3 warnings");

    // Its ledger notes list both steps with their thread.
    for iid in 1..=3u64 {
        let issue = gitlab.gitlab.issue("acme/backend", iid);
        let markers: Vec<Marker> = issue
            .notes
            .iter()
            .flat_map(|(_, _, body, _)| Marker::find_all(body))
            .collect();
        let steps: Vec<&str> = markers.iter().map(|m| m.firing.step.0.as_str()).collect();
        assert_eq!(
            steps,
            ["start", "before_deadline:3s"],
            "#{iid}: {markers:?}"
        );
        let parent = by_serve
            .iter()
            .find(|m| m.thread_ts.is_none() && m.text.contains(&format!("acme/backend#{iid} ")))
            .expect("serve's alert");
        assert!(
            markers
                .iter()
                .all(|m| m.thread.as_ref().is_some_and(|t| t.ts == parent.ts))
        );
        assert_eq!(
            issue
                .notes
                .iter()
                .filter(|(_, _, _, internal)| *internal)
                .count(),
            1,
            "one ledger note, edited"
        );
    }

    // The breaches fall due while serve is down; the scheduled audit sends
    // them once, in serve's threads, and nothing serve sent.
    tokio::time::sleep(
        (labelled + chrono::TimeDelta::milliseconds(6_500) - Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
    .await;
    let audit = audit_notify(&gitlab.url, &slack.api_url);
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let after = slack.slack.messages();
    let new: Vec<_> = after.iter().skip(by_serve.len()).collect();
    assert_eq!(new.len(), 3, "{new:#?}");
    for message in new {
        assert!(message.text.contains("SLA breached"), "{}", message.text);
        let parent = by_serve
            .iter()
            .find(|m| Some(&m.ts) == message.thread_ts.as_ref())
            .unwrap_or_else(|| panic!("not in serve's thread: {message:?}"));
        let iid = message
            .text
            .split("acme/backend#")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap();
        assert!(
            parent.text.contains(&format!("acme/backend#{iid} ")),
            "{} in {}",
            message.text,
            parent.text
        );
    }
    // And again: nothing left to do.
    let again = audit_notify(&gitlab.url, &slack.api_url);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(slack.slack.messages().len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_serve_adopted_or_grouped_are_on_the_ledger_and_an_audit_repeats_none() {
    let gitlab = FakeGitLab::start().await;
    let slack = FakeSlack::start().await;
    // Eight issues labelled an hour ago, long past their 6-second target,
    // that serve hears of only now: adopted, five with an alert each and
    // three in a digest.
    let labelled = Utc::now() - chrono::TimeDelta::hours(1);
    let (server, _dir) = serve_labelled(&gitlab, &slack, labelled, 1..=8).await;
    let told = common::wait_until(Duration::from_secs(15), || {
        let messages = slack.slack.messages();
        let alerts = messages
            .iter()
            .filter(|m| m.text.contains("SLA clock started"))
            .count();
        let listed = messages.iter().any(|m| m.text.contains("issues 1–3 of 3"));
        alerts == 5 && listed
    })
    .await;
    // Settled, then stopped: the ledger writer flushes at shutdown.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop().await;
    let by_serve = slack.slack.messages();
    assert!(
        told,
        "{:#?}",
        by_serve.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
    // Every adopted step is listed on its issue, though serve posted none
    // of them one by one.
    for iid in 1..=8u64 {
        let issue = gitlab.gitlab.issue("acme/backend", iid);
        let mut steps: Vec<String> = issue
            .notes
            .iter()
            .filter(|(_, _, _, internal)| *internal)
            .flat_map(|(_, _, body, _)| Marker::find_all(body))
            .map(|m| m.firing.step.0)
            .collect();
        steps.sort();
        assert_eq!(
            steps,
            ["breach", "start"],
            "#{iid}: every adopted step, once (the warning is not due past the deadline)"
        );
    }
    let audit = audit_notify(&gitlab.url, &slack.api_url);
    let stderr = String::from_utf8_lossy(&audit.stderr);
    assert_eq!(audit.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(
        slack.slack.messages().len(),
        by_serve.len(),
        "nothing twice"
    );
}
