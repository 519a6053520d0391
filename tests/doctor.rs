//! `labelwarden doctor` against the fake GitLab and the fake Slack: every
//! check passing, then every check failing with its fix, and never a
//! secret in what it prints.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use chrono::Utc;
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};
use common::fake_slack::{self, FakeSlack};
use common::{HIGHEST, fixtures};

const WEBHOOK_SECRET: &str = "doctor-webhook-secret-value";
const SIGNING_SECRET: &str = "doctor-signing-secret-value";
const STATUS_WEBHOOK: &str = "https://hooks.slack.example/services/T0/B0/doctorWebhookSecret";
const HOOK_URL: &str = "https://labelwarden.example.com/webhooks/gitlab";

struct Setting<'a> {
    gitlab: &'a str,
    slack: &'a str,
    database: String,
    secrets: bool,
    args: Vec<&'a str>,
}

fn doctor(setting: &Setting<'_>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_labelwarden"));
    command
        .args(["doctor", "--policies"])
        .arg(fixtures().join("policies-doctor"))
        .args(["--database", &setting.database])
        .args(&setting.args)
        .env("GITLAB_URL", setting.gitlab)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .env("SLACK_BOT_TOKEN", fake_slack::TOKEN)
        .env("SLACK_API_URL", setting.slack)
        .env_remove("LABELWARDEN_WEBHOOK_SECRET")
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("DOCTOR_TEST_STATUS_WEBHOOK")
        .env_remove("LABELWARDEN_DATABASE_URL")
        .env_remove("LABELWARDEN_POLICIES");
    if setting.secrets {
        command
            .env("LABELWARDEN_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .env("DOCTOR_TEST_STATUS_WEBHOOK", STATUS_WEBHOOK);
    }
    command.output().unwrap()
}

fn printed(output: &Output) -> String {
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in [
        WEBHOOK_SECRET,
        SIGNING_SECRET,
        "doctorWebhookSecret",
        fake_gitlab::TOKEN,
        fake_slack::TOKEN,
        "s3cretpw",
    ] {
        assert!(!shown.contains(secret), "`{secret}` was printed:\n{shown}");
    }
    shown
}

fn sqlite(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("labelwarden.db").display())
}

/// A GitLab with project acme/backend and labelwarden's webhook on it, in
/// this `alert_status`.
async fn gitlab_with_hook(alert_status: &str) -> common::fake_gitlab::Running {
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 1, now).add_label(now, HIGHEST));
    gitlab
        .gitlab
        .add_hook("acme/backend", HOOK_URL, alert_status, None);
    gitlab
}

/// A workspace and a GitLab where everything the fixture names exists.
async fn healthy() -> (common::fake_gitlab::Running, common::fake_slack::Running) {
    let gitlab = gitlab_with_hook("executable").await;
    gitlab.gitlab.add_user("jdoe", "active");
    let slack = FakeSlack::start().await;
    slack.slack.add_channel("alerts", false, true);
    slack.slack.add_channel("sec-private", true, true);
    // More channels than one page of conversations.list.
    slack.slack.add_channel("random", false, false);
    slack.slack.add_channel("general", false, true);
    slack.slack.add_user("U0AAA0001", false);
    slack.slack.add_user("U0CCC0001", false);
    slack.slack.add_usergroup("S0BBB0001");
    (gitlab, slack)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_setup_passes_every_check() {
    let (gitlab, slack) = healthy().await;
    let dir = tempfile::tempdir().unwrap();
    // A store serve already migrated.
    let database = sqlite(dir.path());
    drop(
        labelwarden::store::sql::SqlStore::connect(&database)
            .await
            .unwrap(),
    );
    let output = doctor(&Setting {
        gitlab: &gitlab.url,
        slack: &slack.api_url,
        database,
        secrets: true,
        args: vec!["--reconcile-project", "acme/backend"],
    });
    let shown = printed(&output);
    println!("{shown}");
    assert_eq!(output.status.code(), Some(0), "{shown}");
    for expected in [
        "ok   policies",
        "LABELWARDEN_WEBHOOK_SECRET is set",
        "SLACK_SIGNING_SECRET is set",
        "is reachable and migrated (version",
        "GITLAB_TOKEN works (`labelwarden`: `api`)",
        "acme/backend has labelwarden's webhook (https://labelwarden.example.com/webhooks/gitlab)",
        "all 1 GitLab users under people.gitlab_users exist",
        "SLACK_BOT_TOKEN works: bot labelwarden in workspace Acme",
        "channel `alerts`: #alerts (C0ALERTS), the bot is a member",
        "channel `security`: #sec-private (C0SECPRIVATE, private), the bot is a member",
        "DOCTOR_TEST_STATUS_WEBHOOK, which is set",
        "all 2 Slack users and 1 user groups mentioned exist",
        "all checks passed",
    ] {
        assert!(shown.contains(expected), "missing `{expected}`:\n{shown}");
    }
    assert!(!shown.contains("FAIL"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_part_is_named_with_its_fix() {
    let gitlab = gitlab_with_hook("disabled").await;
    gitlab.gitlab.edit_hooks(|hook| {
        hook["enable_ssl_verification"] = serde_json::json!(false);
    });
    gitlab.gitlab.forbid_hooks("acme");
    gitlab.gitlab.token(&["read_api"], None, true);
    let slack = FakeSlack::start().await;
    slack.slack.add_channel("alerts", false, false);
    slack.slack.add_channel("sec-private", true, false);
    slack.slack.add_user("U0CCC0001", true);
    let output = doctor(&Setting {
        gitlab: &gitlab.url,
        slack: &slack.api_url,
        database: "postgres://lw:s3cretpw@127.0.0.1:1/labelwarden".to_owned(),
        secrets: false,
        args: vec![
            "--reconcile-project",
            "acme/backend",
            "--reconcile-project",
            "acme/missing",
            "--reconcile-group",
            "acme",
        ],
    });
    let shown = printed(&output);
    println!("{shown}");
    assert_eq!(output.status.code(), Some(1), "{shown}");
    for (problem, fix) in [
        (
            "LABELWARDEN_WEBHOOK_SECRET is not set",
            "the secret token of the GitLab webhook",
        ),
        (
            "SLACK_SIGNING_SECRET is not set, but a policy waits for an acknowledgement",
            "signing secret",
        ),
        (
            "postgres://lw:***@127.0.0.1:1/labelwarden cannot be read",
            "check LABELWARDEN_DATABASE_URL",
        ),
        (
            "has `read_api` but the policies need `api` (a step adds labels or comments)",
            "with the `api` scope",
        ),
        (
            "was disabled by GitLab after repeated failed deliveries",
            "secret token = LABELWARDEN_WEBHOOK_SECRET",
        ),
        ("does not verify SSL", "Enable SSL verification"),
        ("acme/missing is not found", "check the path"),
        ("may not list the webhooks of group acme", "Owner role"),
        ("no GitLab user named @jdoe", "people.gitlab_users"),
        (
            "the bot is not a member of #alerts",
            "`/invite` the app in #alerts",
        ),
        (
            "channel `security` (#sec-private) is not in the workspace, or is private and the bot is not in it",
            "`/invite` the app in #sec-private",
        ),
        (
            "DOCTOR_TEST_STATUS_WEBHOOK, which is not set",
            "set DOCTOR_TEST_STATUS_WEBHOOK",
        ),
        (
            "not in the Slack workspace: U0AAA0001, U0CCC0001 (deactivated), user group S0BBB0001",
            "fix these ids",
        ),
    ] {
        let at = shown
            .find(problem)
            .unwrap_or_else(|| panic!("missing `{problem}`:\n{shown}"));
        let fix_line = shown[at..].lines().nth(1).unwrap_or_default();
        assert!(
            fix_line.contains("fix:") && fix_line.contains(fix),
            "`{problem}` comes with its fix `{fix}`:\n{shown}"
        );
    }
    assert!(shown.ends_with("13 problems\n"), "one line each: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_invalid_policies_and_an_unusable_setting() {
    let (gitlab, slack) = healthy().await;
    let dir = tempfile::tempdir().unwrap();
    // Tokens GitLab and Slack refuse.
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["doctor", "--no-slack", "--policies"])
        .arg(fixtures().join("policies-doctor"))
        .args(["--database", &sqlite(dir.path())])
        .env("GITLAB_URL", &gitlab.url)
        .env("GITLAB_TOKEN", "glpat-wrong")
        .env("LABELWARDEN_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .output()
        .unwrap();
    let shown = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("refuses GITLAB_TOKEN (401)"), "{shown}");
    assert!(
        shown.contains("does not exist yet: serve creates it"),
        "{shown}"
    );
    assert!(shown.contains("skip slack"), "{shown}");
    assert!(
        !shown.contains("SLACK_SIGNING_SECRET"),
        "not asked without Slack: {shown}"
    );

    let wrong_slack = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["doctor", "--policies"])
        .arg(fixtures().join("policies-doctor"))
        .args(["--database", &sqlite(dir.path())])
        .env_remove("GITLAB_TOKEN")
        .env("SLACK_BOT_TOKEN", "xoxb-wrong")
        .env("SLACK_API_URL", &slack.api_url)
        .output()
        .unwrap();
    let shown = printed(&wrong_slack);
    assert_eq!(wrong_slack.status.code(), Some(1), "{shown}");
    assert!(shown.contains("Slack refuses SLACK_BOT_TOKEN"), "{shown}");
    assert!(
        shown.contains("GITLAB_TOKEN is not set, but a step adds labels or comments"),
        "{shown}"
    );

    // Invalid policies: said, with the way to see every problem.
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("bad.yml"),
        "policies:\n  - name: x\n    clock: { target: 24 }\n",
    )
    .unwrap();
    let invalid = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["doctor", "--no-slack", "--policies"])
        .arg(folder.path())
        .args(["--database", &sqlite(dir.path())])
        .env_remove("GITLAB_TOKEN")
        .output()
        .unwrap();
    let shown = printed(&invalid);
    assert_eq!(invalid.status.code(), Some(1), "{shown}");
    assert!(shown.contains("FAIL policies"), "{shown}");
    assert!(shown.contains("labelwarden check --policies"), "{shown}");

    // A setting it cannot work with at all: exit 2.
    let unusable = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["doctor", "--no-slack", "--policies"])
        .arg(fixtures().join("policies-doctor"))
        .env("GITLAB_URL", "ftp://gitlab.example.com")
        .env("GITLAB_TOKEN", "glpat-anything")
        .output()
        .unwrap();
    assert_eq!(unusable.status.code(), Some(2), "{}", printed(&unusable));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_ids_prints_what_replaces_the_placeholders() {
    let slack = FakeSlack::start().await;
    slack.slack.add_channel("production-alerts", false, true);
    slack.slack.add_channel("troubleshooting", false, false);
    slack.slack.add_channel("bug-triage", false, true);
    slack.slack.add_channel("infra-alerts", true, true);
    slack
        .slack
        .add_person("U0JANE0001", "jane", "Jane Doe", "jane@example.com");
    slack
        .slack
        .add_person("U0OMAR0001", "omar", "Omar Farouk", "omar@example.com");
    slack.slack.add_usergroup_handle("S0SRE00001", "sre-oncall");
    // The shipped policies, with one GitLab username that is a Slack handle.
    let folder = common::shipped_policies_copy(|text| {
        text.replace("replace-me-responder-1:", "jane:")
            .replace("[replace-me-responder-1,", "[jane,")
    });
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["slack-ids", "--policies"])
        .arg(folder.path())
        .args(["--person", "omar@example.com", "--person", "nobody"])
        .args(["--group", "@sre-oncall"])
        .env("SLACK_BOT_TOKEN", fake_slack::TOKEN)
        .env("SLACK_API_URL", &slack.api_url)
        .output()
        .unwrap();
    let shown = printed(&output);
    println!("{shown}");
    assert_eq!(output.status.code(), Some(0), "{shown}");
    for expected in [
        "  alerts: { slack_channel: C0PRODUCTIONALERTS }   # #production-alerts\n",
        "  troubleshooting: { slack_channel: C0TROUBLESHOOTING }   # #troubleshooting; invite the bot",
        "  infra-alerts: { slack_channel: C0INFRAALERTS }   # #infra-alerts\n",
        "    jane: U0JANE0001   # Jane Doe (@jane)\n",
        "    # replace-me-responder-2: no Slack user by that name",
        "  #   omar@example.com: \"<@U0OMAR0001>\"   # Omar Farouk (@omar)\n",
        "  #   nobody: no such Slack user\n",
        "  #   @sre-oncall: \"<!subteam^S0SRE00001>\"\n",
    ] {
        assert!(shown.contains(expected), "missing `{expected}`:\n{shown}");
    }
    // And the ids it prints are what the policy format takes.
    let pasted = std::fs::read_to_string(folder.path().join("channels.yml"))
        .unwrap()
        .replace(
            "slack_channel: \"#production-alerts\"",
            "slack_channel: C0PRODUCTIONALERTS",
        )
        .replace(
            "replace-me-responder-2: U0REPLACEME05",
            "replace-me-responder-2: U0OMAR0001",
        );
    std::fs::write(folder.path().join("channels.yml"), pasted).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["check", "--policies"])
        .arg(folder.path())
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_or_revoked_token_a_blocked_user_placeholders_and_schema_versions() {
    let (gitlab, slack) = healthy().await;
    let soon = (Utc::now() + chrono::TimeDelta::days(3))
        .format("%Y-%m-%d")
        .to_string();
    gitlab.gitlab.token(&["api"], Some(&soon), true);
    gitlab.gitlab.add_user("jdoe", "blocked");
    let dir = tempfile::tempdir().unwrap();
    // A store serve migrated, then rolled back by hand to an older version.
    let database = sqlite(dir.path());
    drop(
        labelwarden::store::sql::SqlStore::connect(&database)
            .await
            .unwrap(),
    );
    let rewind = |sql: &'static str| {
        let database = database.clone();
        async move {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&database).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    };
    rewind("DELETE FROM labelwarden_migrations WHERE version > 10").await;
    let run = || {
        doctor(&Setting {
            gitlab: &gitlab.url,
            slack: &slack.api_url,
            database: database.clone(),
            secrets: true,
            args: vec![],
        })
    };
    let output = run();
    let shown = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!("expires {soon}, within two weeks")),
        "{shown}"
    );
    assert!(shown.contains("GitLab user @jdoe is blocked"), "{shown}");
    assert!(
        shown.contains("is reachable, at version 10: serve migrates it to"),
        "{shown}"
    );

    // Revoked; and a database a newer labelwarden migrated.
    gitlab.gitlab.token(&["api"], None, false);
    rewind(
        "INSERT INTO labelwarden_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
    )
    .await;
    let shown = printed(&run());
    assert!(shown.contains("is revoked or expired"), "{shown}");
    assert!(
        shown.contains("is at version 999, newer than this build knows"),
        "{shown}"
    );

    // The shipped policies still hold placeholders.
    let shipped = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args([
            "doctor",
            "--policies",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        ])
        .args(["--database", &sqlite(dir.path())])
        .env_remove("GITLAB_TOKEN")
        .env("SLACK_BOT_TOKEN", fake_slack::TOKEN)
        .env("SLACK_API_URL", &slack.api_url)
        .output()
        .unwrap();
    let shown = printed(&shipped);
    assert_eq!(shipped.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("Slack ids still say REPLACEME (U0REPLACEME01"),
        "{shown}"
    );
    assert!(
        shown.contains("fix: run `labelwarden slack-ids`"),
        "{shown}"
    );
}
