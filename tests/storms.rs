//! Storms: the alert channel stays readable when many issues move at once.
//! Run against the fake GitLab and the fake Slack keeping Slack's pace
//! (about one post a second per channel, 429 beyond a short burst), with
//! the shipped policies.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::fake_gitlab::{FakeGitLab, FakeIssue};
use common::fake_slack::{FakeSlack, TOKEN, channel_id};
use common::{HIGHEST, Options, sqlite, start_server};
use labelwarden::gitlab::history::Scope;
use labelwarden::jobs::retry::RetryPolicy;
use labelwarden::slack::{SlackNotifier, SlackSettings};
use secrecy::SecretString;

/// The shipped `policies/`, as a new user runs them.
fn shipped_policies() -> Arc<labelwarden::policy::PolicySet> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    Arc::new(labelwarden::policy::load(&folder).expect("the shipped policies load"))
}

/// The Slack notifier at Slack's pace: one message a second per channel,
/// bursts of 3, as `serve` runs by default.
fn slack_at_real_pace(
    policies: &Arc<labelwarden::policy::PolicySet>,
    api_url: String,
) -> SlackNotifier {
    let settings = SlackSettings {
        api_url,
        token: Some(SecretString::from(TOKEN.to_owned())),
        webhook_urls: BTreeMap::new(),
        per_channel_per_second: NonZeroU32::MIN,
        per_channel_burst: NonZeroU32::new(3).unwrap(),
    };
    SlackNotifier::new(Arc::clone(policies), settings).expect("notifier")
}

#[tokio::test]
async fn a_first_start_over_a_backlog_of_300_critical_bugs_is_a_handful_of_messages() {
    let gitlab = FakeGitLab::start().await;
    let slack = FakeSlack::start().await;
    slack.slack.pace(3);
    let now = Utc::now();
    // 300 open critical bugs: 200 labelled 2 to 28 days ago (past their 24 h),
    // 100 labelled 1 to 20 hours ago (running).
    for iid in 1..=300u64 {
        let labelled = if iid <= 200 {
            now - TimeDelta::days(2) - TimeDelta::hours((iid as i64 * 3) % (26 * 24))
        } else {
            now - TimeDelta::hours(1 + (iid as i64 % 20))
        };
        let issue = FakeIssue::new("acme/app", iid, labelled - TimeDelta::hours(1))
            .add_label(labelled, HIGHEST)
            .assign("jdoe");
        gitlab.gitlab.add(issue);
    }
    let policies = shipped_policies();
    let notifier = slack_at_real_pace(&policies, slack.api_url.clone());
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let server = start_server(
        Arc::clone(&policies),
        &sqlite(&dir.path().join("db.sqlite")),
        notifier,
        Options {
            reconcile: Some(gitlab.reconcile(
                Duration::from_secs(3600),
                vec![Scope::Project("acme/app".into())],
            )),
            ..Options::default()
        },
    )
    .await;

    let alerts = channel_id("#production-alerts");
    let in_alerts = |slack: &FakeSlack| -> Vec<common::fake_slack::Message> {
        slack
            .messages()
            .into_iter()
            .filter(|m| m.channel == alerts)
            .collect()
    };
    // Every issue is said: in an alert of its own or in a digest's list.
    let said = |messages: &[common::fake_slack::Message]| -> HashMap<u64, usize> {
        let mut said: HashMap<u64, usize> = HashMap::new();
        for message in messages {
            let shown = message.shown();
            let mut rest = shown.as_str();
            // Each issue's link names it once per message as `|acme/app#N>`.
            let mut seen_here = std::collections::HashSet::new();
            while let Some(at) = rest.find("|acme/app#") {
                let digits: String = rest[at + 10..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(iid) = digits.parse() {
                    seen_here.insert(iid);
                }
                rest = &rest[at + 10..];
            }
            // A summary points at two issues as examples; the lists and
            // the alerts are what count.
            if !message.text.starts_with("labelwarden started tracking") {
                for iid in seen_here {
                    *said.entry(iid).or_default() += 1;
                }
            }
        }
        said
    };
    let everyone_said = common::wait_until(Duration::from_secs(50), || {
        said(&in_alerts(&slack.slack)).len() == 300
    })
    .await;
    let took = started.elapsed();
    let messages = in_alerts(&slack.slack);
    // For BENCHMARKS.md: how long the channel took to say it all.
    eprintln!(
        "storm figures: 300 adopted issues said in {} messages, the last {:.1} s after the start",
        messages.len(),
        took.as_secs_f64()
    );
    let said = said(&messages);
    assert!(
        everyone_said,
        "{} of 300 issues said; messages: {:#?}",
        said.len(),
        messages.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
    assert!(
        said.values().all(|times| *times == 1),
        "each issue is said once: {:?}",
        said.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert!(
        messages.len() <= 10,
        "{} messages in the first minute: {:#?}",
        messages.len(),
        messages.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
    for message in &messages {
        let shown = message.shown();
        assert!(
            !shown.contains("not running") && !shown.contains("Sent "),
            "nothing is called late: {shown}"
        );
    }
    // The first five keep an alert each, worded as what happened; the
    // rest are one summary with the list in its thread.
    let parents: Vec<&common::fake_slack::Message> =
        messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    assert_eq!(parents.len(), 6, "5 alerts and a summary");
    let alerts_alone: Vec<_> = parents
        .iter()
        .filter(|m| {
            m.shown()
                .contains("labelwarden started tracking this issue now")
        })
        .collect();
    assert_eq!(alerts_alone.len(), 5);
    let summary = parents
        .iter()
        .find(|m| {
            m.text
                .contains("started tracking 295 issues under critical-bug-24h")
        })
        .unwrap_or_else(|| panic!("a summary: {parents:#?}"));
    let list: Vec<_> = messages
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(summary.ts.as_str()))
        .collect();
    assert_eq!(list.len(), 3, "295 issues in 3 parts of at most 100");
    // Most urgent first: the first part starts with the most overdue.
    let first_part = list[0].shown();
    let first_line = first_part
        .split("(most urgent first):")
        .nth(1)
        .unwrap_or_default();
    assert!(first_line.contains(":red_circle:"), "{first_line}");
    // No thread reply went out for the adopted steps (breach, reminders).
    assert!(
        !messages.iter().any(|m| m.shown().contains("SLA breached")),
        "missed breaches are recorded, not posted one by one"
    );
    server.assert_outbox_empty().await;
    server.stop().await;
}

/// Each (issue, step) a message says: one for an alert of its own; every
/// issue listed for a group's list ("start") or a group's step message;
/// none for a group's parent or a digest's summary, which name issues as
/// examples.
fn said(message: &common::fake_slack::Message, project: &str) -> Vec<(u64, &'static str)> {
    if message.text.contains("at once, in one thread")
        || message.text.starts_with("labelwarden started tracking")
    {
        return Vec::new();
    }
    let shown = message.shown();
    let step =
        if shown.contains("(most urgent first):") || message.text.contains("SLA clock started") {
            "start"
        } else if message.text.contains(":hourglass_flowing_sand:") {
            "warning"
        } else if message.text.contains("SLA breached") {
            "breach"
        } else {
            "other"
        };
    common::issues_named(&shown, project)
        .into_iter()
        .map(|iid| (iid, step))
        .collect()
}

/// How many times Slack was told each (issue, step) of `acme/backend`.
fn steps_said(slack: &FakeSlack) -> HashMap<(u64, &'static str), usize> {
    let mut steps = HashMap::new();
    for message in slack.messages() {
        for pair in said(&message, "acme/backend") {
            *steps.entry(pair).or_default() += 1;
        }
    }
    steps
}

#[tokio::test]
async fn a_bulk_relabel_of_100_issues_is_said_in_a_few_messages_each_step_once() {
    let slack = FakeSlack::start().await;
    slack.slack.pace(3);
    let policies = common::fixture_policies("policies-storm");
    let notifier = slack_at_real_pace(&policies, slack.api_url.clone());
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        Arc::clone(&policies),
        &sqlite(&dir.path().join("db.sqlite")),
        notifier,
        Options::default(),
    )
    .await;
    // A triage session labels 100 new issues within 10 seconds.
    let started = Instant::now();
    for iid in 1..=100u64 {
        let now = Utc::now();
        let payload = common::issue_event(iid, now, now, &[], &[HIGHEST], false);
        assert_eq!(
            server.deliver(&format!("relabel-{iid}"), &payload).await,
            200
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let steps = steps_said;
    // Each issue's start, warning and breach: 300 steps, all in Slack
    // within a minute of the relabel at Slack's pace.
    let all_said = common::wait_until(Duration::from_secs(60), || {
        let steps = steps(&slack.slack);
        (1..=100u64).all(|iid| {
            ["start", "warning", "breach"]
                .iter()
                .all(|step| steps.contains_key(&(iid, *step)))
        })
    })
    .await;
    let took = started.elapsed();
    let messages = slack.slack.messages();
    let steps = steps(&slack.slack);
    eprintln!(
        "storm figures: a relabel of 100 issues said in {} messages, the last {:.1} s after the first label",
        messages.len(),
        took.as_secs_f64()
    );
    assert!(
        all_said,
        "missing: {:?}",
        (1..=100u64)
            .flat_map(|iid| ["start", "warning", "breach"].map(|step| (iid, step)))
            .filter(|key| !steps.contains_key(key))
            .take(10)
            .collect::<Vec<_>>()
    );
    let twice: Vec<_> = steps.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "said more than once: {twice:?}");
    assert!(!steps.keys().any(|(_, step)| *step == "other"), "{steps:?}");
    assert!(
        messages.len() <= 25,
        "{} messages: {:#?}",
        messages.len(),
        messages.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
    // The first five keep today's story: a thread each, with their warning
    // and breach in it.
    let parents: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    let alone: Vec<_> = parents
        .iter()
        .filter(|m| m.text.contains("SLA clock started"))
        .collect();
    assert_eq!(alone.len(), 5, "five alerts of their own");
    for parent in alone {
        let replies: Vec<&str> = messages
            .iter()
            .filter(|m| m.thread_ts.as_deref() == Some(parent.ts.as_str()))
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(
            replies.len(),
            2,
            "warning and breach in its thread: {replies:?}"
        );
    }
    let groups: Vec<_> = parents
        .iter()
        .filter(|m| m.text.contains("at once, in one thread"))
        .collect();
    assert_eq!(groups.len(), 1, "one group for the rest");
    assert!(
        groups[0].text.contains("95 new alerts"),
        "the group counts its 95 members, updated as they joined: {}",
        groups[0].text
    );
    // Due to accepted, as /metrics shows it (quantiles over this binary's
    // tests), for BENCHMARKS.md.
    let (_, metrics) = server.get("/metrics").await;
    let delay: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("labelwarden_notice_delay_seconds"))
        .collect();
    assert!(!delay.is_empty(), "the delay histogram is exported");
    for line in delay {
        eprintln!("storm figures: {line}");
    }
    server.assert_outbox_empty().await;
    server.stop().await;
}

#[tokio::test]
async fn eyes_on_a_group_alert_acknowledges_every_member_and_a_tick_resolves_none() {
    use labelwarden::gitlab::actions::IssueWriter;
    use labelwarden::gitlab::client::{GitLabClient, GitLabSettings};
    use labelwarden::jobs::slack_to_gitlab::SlackToGitLab;
    use labelwarden::slack::api::WebApi;

    let slack = FakeSlack::start().await;
    let gitlab = FakeGitLab::start().await;
    let labelled = Utc::now();
    for iid in 1..=8u64 {
        gitlab
            .gitlab
            .add(FakeIssue::new("acme/backend", iid, labelled).add_label(labelled, HIGHEST));
    }
    let policies = common::fixture_policies("policies-storm");
    let token = SecretString::from(TOKEN.to_owned());
    let settings = SlackSettings {
        api_url: slack.api_url.clone(),
        token: Some(token.clone()),
        webhook_urls: BTreeMap::new(),
        per_channel_per_second: NonZeroU32::new(100).unwrap(),
        per_channel_burst: NonZeroU32::new(10).unwrap(),
    };
    let notifier = SlackNotifier::new(Arc::clone(&policies), settings).expect("notifier");
    let client = GitLabClient::new(GitLabSettings {
        url: gitlab.url.clone(),
        token: SecretString::from(common::fake_gitlab::TOKEN.to_owned()),
        concurrency: 4,
        first_retry: Duration::from_millis(5),
    })
    .unwrap();
    let to_gitlab = SlackToGitLab {
        slack: WebApi::new(
            labelwarden::http_client::builder().build().unwrap(),
            &slack.api_url,
            token,
        ),
        gitlab: IssueWriter::new(client),
        policies: Arc::clone(&policies),
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        policies,
        &sqlite(&dir.path().join("db.sqlite")),
        notifier,
        Options {
            slack_events: common::slack_events(Some(to_gitlab)),
            ..Options::default()
        },
    )
    .await;
    // Eight at once: five threads of their own, three in a group.
    for iid in 1..=8u64 {
        let payload = common::issue_event(iid, labelled, labelled, &[], &[HIGHEST], false);
        assert_eq!(server.deliver(&format!("group-{iid}"), &payload).await, 200);
    }
    let group = || {
        slack
            .slack
            .messages()
            .into_iter()
            .find(|m| m.thread_ts.is_none() && m.text.contains("3 new alerts under"))
    };
    assert!(common::wait_until(Duration::from_secs(10), || group().is_some()).await);
    let parent = group().unwrap();
    assert!(
        parent
            .shown()
            .contains(":white_check_mark: here resolves nothing"),
        "the group says what a tick does: {}",
        parent.shown()
    );
    let now = Utc::now().timestamp();
    let secret = common::SLACK_SIGNING_SECRET;
    let alerts = channel_id("#alerts");
    let eyes = common::fake_slack::reaction_event(
        "EvG1",
        "reaction_added",
        "U0USER001",
        "eyes",
        &alerts,
        &parent.ts,
    );
    assert_eq!(server.slack_event(&eyes, now, secret).await.0, 200);
    let acknowledged = |iid: u64| {
        gitlab
            .gitlab
            .issue("acme/backend", iid)
            .notes
            .iter()
            .any(|(_, _, body, _)| body.contains("Acknowledged in Slack"))
    };
    assert!(
        common::wait_until(Duration::from_secs(20), || (6..=8).all(acknowledged)).await,
        "each member is acknowledged on its issue"
    );
    assert!(
        !(1..=5).any(acknowledged),
        "the five with their own thread are not"
    );
    // A tick on the group writes no resolution on any issue.
    let tick = common::fake_slack::reaction_event(
        "EvG2",
        "reaction_added",
        "U0USER001",
        "white_check_mark",
        &alerts,
        &parent.ts,
    );
    assert_eq!(server.slack_event(&tick, now, secret).await.0, 200);
    // Events are acted on in order: a control acknowledgement on #1's own
    // thread, sent after the tick, shows the tick was handled first.
    let own = slack
        .slack
        .messages()
        .into_iter()
        .find(|m| m.thread_ts.is_none() && m.text.contains("acme/backend#1 "))
        .expect("#1's own alert");
    let control = common::fake_slack::reaction_event(
        "EvG3",
        "reaction_added",
        "U0USER001",
        "eyes",
        &alerts,
        &own.ts,
    );
    assert_eq!(server.slack_event(&control, now, secret).await.0, 200);
    assert!(common::wait_until(Duration::from_secs(20), || acknowledged(1)).await);
    for iid in 1..=8u64 {
        let issue = gitlab.gitlab.issue("acme/backend", iid);
        assert!(
            !issue
                .notes
                .iter()
                .any(|(_, _, body, _)| body.contains("Resolved in Slack")),
            "#{iid}: {:?}",
            issue.notes
        );
        assert!(issue.is_open());
    }
    server.stop().await;
}

/// Production retries after 1 s, doubling to 5 min; here from 20 ms to
/// 500 ms, so that the test waits for Slack, not for the back-off.
#[tokio::test]
async fn a_group_formed_during_a_slack_outage_is_posted_once_when_slack_returns() {
    let slack = FakeSlack::start().await;
    slack.slack.pace(3);
    slack.slack.outage(Duration::from_secs(4));
    let policies = common::fixture_policies("policies-storm");
    let notifier = slack_at_real_pace(&policies, slack.api_url.clone());
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        retry: RetryPolicy {
            first: Duration::from_millis(20),
            longest: Duration::from_millis(500),
        },
        ..Options::default()
    };
    let server = start_server(
        Arc::clone(&policies),
        &sqlite(&dir.path().join("db.sqlite")),
        notifier,
        options,
    )
    .await;
    // 20 issues labelled while Slack is down: five alerts of their own
    // and a group of 15 form, and nothing can be posted yet.
    for iid in 1..=20u64 {
        let now = Utc::now();
        let payload = common::issue_event(iid, now, now, &[], &[HIGHEST], false);
        assert_eq!(server.deliver(&format!("down-{iid}"), &payload).await, 200);
    }
    let all_said = common::wait_until(Duration::from_secs(60), || {
        let steps = steps_said(&slack.slack);
        (1..=20u64).all(|iid| {
            ["start", "warning", "breach"]
                .iter()
                .all(|step| steps.contains_key(&(iid, *step)))
        })
    })
    .await;
    // Settled: nothing more is on its way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steps = steps_said(&slack.slack);
    assert!(all_said, "every step is said once Slack is back: {steps:?}");
    let refused = slack
        .slack
        .requests()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert!(refused > 0, "the outage was felt");
    let twice: Vec<_> = steps.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "said more than once: {twice:?}");
    let messages = slack.slack.messages();
    let parents: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    let groups: Vec<_> = parents
        .iter()
        .filter(|m| m.text.contains("at once, in one thread"))
        .collect();
    assert_eq!(groups.len(), 1, "one group parent, posted once");
    assert!(
        groups[0].text.contains("15 new alerts"),
        "{}",
        groups[0].text
    );
    assert_eq!(parents.len(), 6, "five alerts and the group");
    server.assert_outbox_empty().await;
    server.stop().await;
}
