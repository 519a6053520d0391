//! The in-process server with the real Slack notifier on a fresh fake
//! Slack, as the Slack stories start it (`fixtures/policies-slack`, a
//! 2-second clock), and what they read back from the fake.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use labelwarden::jobs::retry::RetryPolicy;
use labelwarden::slack::{SlackNotifier, SlackSettings};
use secrecy::SecretString;
use serde_json::Value;

use super::fake_slack::{self, FakeSlack, Message, Running, TOKEN};
use super::{Options, Server, fixture_policies, issue_event, sqlite, start_server};

pub const WEBHOOK_ENV: &str = "LABELWARDEN_TEST_STATUS_WEBHOOK";
pub const STAFF_WEBHOOK_ENV: &str = "LABELWARDEN_TEST_STAFF_WEBHOOK";

pub struct Setup {
    pub server: Server,
    pub slack: FakeSlack,
}

/// The server with a Slack notifier pointed at a fresh fake Slack.
pub async fn start(database: &Path, per_channel_per_second: u32, retry: RetryPolicy) -> Setup {
    start_with_webhooks(database, per_channel_per_second, retry, |running| {
        let staff = running
            .slack
            .incoming_webhook("#status-staff", "staffWebhookPart");
        (running.webhook_url.clone(), staff)
    })
    .await
}

/// The same, with the incoming webhook URLs of `#status` and
/// `#status-staff` that `webhooks` gives (made on the fake, or not).
pub async fn start_with_webhooks(
    database: &Path,
    per_channel_per_second: u32,
    retry: RetryPolicy,
    webhooks: impl FnOnce(&Running) -> (String, String),
) -> Setup {
    let options = Options {
        retry,
        ..Options::default()
    };
    start_with(
        database,
        "policies-slack",
        per_channel_per_second,
        options,
        webhooks,
    )
    .await
    .0
}

/// The same with the policies of `fixtures/{policies}` and the server's
/// `options`; also the fake's Web API URL.
pub async fn start_with(
    database: &Path,
    policies: &str,
    per_channel_per_second: u32,
    options: Options,
    webhooks: impl FnOnce(&Running) -> (String, String),
) -> (Setup, String) {
    let running = FakeSlack::start().await;
    let (status, staff) = webhooks(&running);
    let Running { slack, api_url, .. } = running;
    let policies = fixture_policies(policies);
    let settings = SlackSettings {
        api_url: api_url.clone(),
        token: Some(SecretString::from(TOKEN.to_owned())),
        webhook_urls: BTreeMap::from([
            (WEBHOOK_ENV.to_owned(), SecretString::from(status)),
            (STAFF_WEBHOOK_ENV.to_owned(), SecretString::from(staff)),
        ]),
        per_channel_per_second: NonZeroU32::new(per_channel_per_second).unwrap(),
        per_channel_burst: NonZeroU32::MIN,
    };
    let notifier = SlackNotifier::new(Arc::clone(&policies), settings).expect("notifier");
    let server = start_server(policies, &sqlite(database), notifier, options).await;
    (Setup { server, slack }, api_url)
}

/// The server with its status page open to `access`, over
/// `fixtures/{policies}`, learning the Slack workspace's URL from the
/// fake's `auth.test` as `serve` does.
pub async fn start_with_status_page(
    database: &Path,
    policies: &str,
    access: labelwarden::server::status::StatusAccess,
) -> Setup {
    use labelwarden::server::status::{StatusPageConfig, learn_workspace};
    let page = StatusPageConfig::new(access);
    let options = Options {
        status_page: Some(page.clone()),
        ..Options::default()
    };
    let (setup, api_url) = start_with(database, policies, UNLIMITED, options, |r| {
        (r.webhook_url.clone(), r.webhook_url.clone())
    })
    .await;
    let api = labelwarden::slack::api::WebApi::new(
        labelwarden::http_client::builder().build().unwrap(),
        &api_url,
        SecretString::from(TOKEN.to_owned()),
    );
    tokio::spawn(learn_workspace(
        api,
        Arc::clone(&page.slack_workspace),
        tokio_util::sync::CancellationToken::new(),
    ));
    setup
}

/// The server over `fixtures/policies-slack` with the real Slack notifier
/// on the fake Slack at `slack_api_url` and, for what is said in Slack,
/// the flow that reads it there and writes on the fake GitLab at
/// `gitlab_url`; `options` give the rest.
pub async fn start_with_gitlab(
    database: &Path,
    slack_api_url: &str,
    gitlab_url: &str,
    options: Options,
) -> Server {
    use labelwarden::gitlab::actions::IssueWriter;
    use labelwarden::gitlab::client::{GitLabClient, GitLabSettings};
    use labelwarden::jobs::slack_to_gitlab::SlackToGitLab;
    let policies = fixture_policies("policies-slack");
    let token = SecretString::from(TOKEN.to_owned());
    let notifier = SlackNotifier::new(
        Arc::clone(&policies),
        SlackSettings {
            api_url: slack_api_url.to_owned(),
            token: Some(token.clone()),
            webhook_urls: BTreeMap::new(),
            per_channel_per_second: NonZeroU32::new(100).unwrap(),
            per_channel_burst: NonZeroU32::new(10).unwrap(),
        },
    )
    .unwrap();
    let client = GitLabClient::new(GitLabSettings {
        url: gitlab_url.to_owned(),
        token: SecretString::from(super::fake_gitlab::TOKEN.to_owned()),
        concurrency: 4,
        first_retry: std::time::Duration::from_millis(5),
    })
    .unwrap();
    let to_gitlab = SlackToGitLab {
        slack: labelwarden::slack::api::WebApi::new(
            labelwarden::http_client::builder().build().unwrap(),
            slack_api_url,
            token,
        ),
        gitlab: IssueWriter::new(client),
        policies: Arc::clone(&policies),
    };
    let options = Options {
        slack_events: super::slack_events(Some(to_gitlab)),
        ..options
    };
    start_server(policies, &sqlite(database), notifier, options).await
}

/// Generous enough never to slow a test down.
pub const UNLIMITED: u32 = 1_000;

/// The server over a fresh database (kept while the folder is), with no
/// Slack rate limit and the default retries.
pub async fn start_unlimited() -> (tempfile::TempDir, Setup) {
    let dir = tempfile::tempdir().unwrap();
    let setup = start(
        &dir.path().join("db.sqlite"),
        UNLIMITED,
        RetryPolicy::default(),
    )
    .await;
    (dir, setup)
}

/// Messages of one channel.
pub fn channel(slack: &FakeSlack, name: &str) -> Vec<Message> {
    let id = fake_slack::channel_id(name);
    slack
        .messages()
        .into_iter()
        .filter(|m| m.channel == id)
        .collect()
}

/// Messages of one issue (by its reference) in one channel.
pub fn of_issue(slack: &FakeSlack, name: &str, iid: u64) -> Vec<Message> {
    let reference = format!("acme/backend#{iid}");
    channel(slack, name)
        .into_iter()
        .filter(|m| m.text.contains(&reference))
        .collect()
}

pub fn label(server_labels: &[&str], iid: u64, at: DateTime<Utc>) -> Value {
    issue_event(iid, at, at, &[], server_labels, false)
}

pub fn close(labels: &[&str], iid: u64, labelled: DateTime<Utc>) -> Value {
    issue_event(iid, labelled, Utc::now(), labels, labels, true)
}

/// What the fake received, one line per message, for the book's example.
pub fn transcript(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| {
            format!(
                "{} {}{}{}: {}",
                m.ts,
                m.thread_ts
                    .as_ref()
                    .map_or_else(|| "parent".to_owned(), |t| format!("reply in {t}")),
                if m.broadcast {
                    " (also sent to channel)"
                } else {
                    ""
                },
                if m.reactions.is_empty() {
                    String::new()
                } else {
                    format!(" [:{}:]", m.reactions.join(": :"))
                },
                m.text
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
