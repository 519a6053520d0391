//! `labelwarden doctor`: runs the checks of [`crate::doctor`] with the
//! same settings `serve` reads, and prints a line per check. Exit 0 when
//! all is well, 1 when something needs fixing, 2 when it cannot run.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::Args;
use secrecy::SecretString;

use super::EXIT_CONFIG;
use crate::doctor::{self, Line, Report, SecretsSet};
use crate::gitlab::client::GitLabClient;
use crate::gitlab::history::Scope;
use crate::policy;
use crate::slack::api::{DEFAULT_API_URL, WebApi};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Folder of policy files.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// Database URL, as `serve` takes it.
    #[arg(
        long,
        env = "LABELWARDEN_DATABASE_URL",
        default_value = "sqlite://labelwarden.db"
    )]
    database: String,
    /// A project whose webhook to check (repeatable), as given to `serve
    /// --reconcile-project`.
    #[arg(long)]
    reconcile_project: Vec<String>,
    /// A group whose webhook to check (repeatable).
    #[arg(long)]
    reconcile_group: Vec<String>,
    /// labelwarden's webhook URL (default: any hook whose URL ends in
    /// /webhooks/gitlab).
    #[arg(long)]
    webhook_url: Option<String>,
    /// Only `serve --notifier log` will run: Slack is not checked.
    #[arg(long)]
    no_slack: bool,
}

fn is_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.trim().is_empty())
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let runtime = match super::small_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let report = match runtime.block_on(check(&args)) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    println!("{report}");
    if report.problems() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn check(args: &DoctorArgs) -> Result<Report, String> {
    let now = Utc::now();
    let mut report = Report::default();
    let policies = match policy::load(&args.policies) {
        Ok(policies) => {
            report.lines.push(Line::ok(
                "policies",
                format!(
                    "{}: {} policies, {} channels: valid",
                    args.policies.display(),
                    policies.policies.len(),
                    policies.channels.len()
                ),
            ));
            Some(policies)
        }
        Err(errors) => {
            let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
            report.lines.push(Line::problem(
                "policies",
                format!(
                    "{} is not valid ({} problems), the first: {first}",
                    args.policies.display(),
                    errors.len()
                ),
                format!(
                    "run `labelwarden check --policies {}` for every problem, with file and line",
                    args.policies.display()
                ),
            ));
            None
        }
    };
    let set = SecretsSet {
        webhook_secret: is_set("LABELWARDEN_WEBHOOK_SECRET"),
        signing_secret: is_set("SLACK_SIGNING_SECRET"),
    };
    if let Some(policies) = &policies {
        report
            .lines
            .extend(doctor::secrets(policies, set, !args.no_slack));
    }
    report
        .lines
        .push(doctor::database::check(&args.database).await);

    let writes = policies
        .as_ref()
        .is_some_and(|p| doctor::needed_scope(p) == "api");
    match GitLabClient::from_env(4)? {
        None if writes && !args.no_slack => report.lines.push(Line::problem(
            "gitlab",
            "GITLAB_TOKEN is not set, but a step adds labels or comments: serve --notifier slack refuses to start",
            "set GITLAB_TOKEN (and GITLAB_URL) to a project or group access token with the `api` scope",
        )),
        None => report.lines.push(Line::skipped(
            "gitlab",
            "GITLAB_TOKEN is not set: no reconcile, no labels or comments, no ledger notes for a scheduled audit",
        )),
        Some(client) => {
            if let Some(policies) = &policies {
                report.lines.push(
                    doctor::gitlab::token(&client, doctor::needed_scope(policies), now).await,
                );
            }
            let scopes = (args.reconcile_project.iter().cloned().map(Scope::Project))
                .chain(args.reconcile_group.iter().cloned().map(Scope::Group));
            for scope in scopes {
                report.lines.extend(
                    doctor::gitlab::webhook(&client, &scope, args.webhook_url.as_deref(), now)
                        .await,
                );
            }
            if let Some(policies) = &policies {
                let usernames: Vec<&str> = policies
                    .people
                    .gitlab_users
                    .keys()
                    .map(String::as_str)
                    .collect();
                if !usernames.is_empty() {
                    report
                        .lines
                        .extend(doctor::gitlab::users(&client, &usernames).await);
                }
            }
        }
    }

    if args.no_slack {
        report
            .lines
            .push(Line::skipped("slack", "--no-slack: Slack is not checked"));
    } else if is_set(crate::slack::TOKEN_ENV) {
        let api = slack_api()?;
        let works = doctor::slack::token(&api).await;
        let usable = works.status == doctor::Status::Ok;
        report.lines.push(works);
        if usable && let Some(policies) = &policies {
            report
                .lines
                .extend(doctor::slack::channels(&api, policies).await);
            report
                .lines
                .extend(doctor::slack::people(&api, policies).await);
        }
    } else {
        report.lines.push(Line::problem(
            "slack",
            "SLACK_BOT_TOKEN is not set: serve --notifier slack refuses to start",
            "set it to the app's Bot User OAuth Token (xoxb-…), or pass --no-slack if only `serve --notifier log` runs",
        ));
    }
    Ok(report)
}

#[derive(Debug, Args)]
pub struct SlackIdsArgs {
    /// Folder of policy files.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// A person to look up by Slack handle, name or email (repeatable),
    /// for the mentions of people groups.
    #[arg(long)]
    person: Vec<String>,
    /// A user group to look up by handle (repeatable).
    #[arg(long)]
    group: Vec<String>,
}

/// The Slack API client `serve` would use, from its environment.
fn slack_api() -> Result<WebApi, String> {
    let token = std::env::var(crate::slack::TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or("set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-…)")?;
    let http = crate::http_client::builder()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let base = std::env::var(crate::slack::API_URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    Ok(WebApi::new(http, &base, SecretString::from(token)))
}

pub fn run_slack_ids(args: SlackIdsArgs) -> ExitCode {
    let policies = match policy::load(&args.policies) {
        Ok(policies) => policies,
        Err(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let api = match slack_api() {
        Ok(api) => api,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match super::small_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(doctor::ids::lookup(
        &api,
        &policies,
        &args.person,
        &args.group,
    )) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: {e} (the app needs channels:read, groups:read, users:read, users:read.email and usergroups:read)"
            );
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
