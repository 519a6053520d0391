//! `labelwarden serve`: the webhook receiver with its store and timers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::TimeDelta;
use clap::{Args, ValueEnum};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::{EXIT_CONFIG, load_policies};
use crate::gitlab::actions::IssueWriter;
use crate::gitlab::client::{GitLabClient, TOKEN_ENV as GITLAB_TOKEN_ENV};
use crate::gitlab::history::{IssueReader, Scope};
use crate::jobs::Context;
use crate::jobs::escalation::Escalation;
use crate::jobs::reconcile::ReconcileConfig;
use crate::jobs::slack_to_gitlab::SlackToGitLab;
use crate::notify::{LogNotifier, Notifier};
use crate::policy::{self, PolicySet};
use crate::server::slack_events::SlackEventsConfig;
use crate::server::status::{StatusAccess, StatusPageConfig};
use crate::server::{self, ServerConfig};
use crate::slack::api::WebApi;
use crate::slack::{SlackNotifier, SlackSettings};
use crate::store::retention::Retention;
use crate::store::sql::SqlStore;
use crate::store::sql::without_password;

/// The environment variable holding the webhook secret(s), comma-separated.
/// Read from the environment only: a flag would show in `ps`.
pub const SECRET_ENV: &str = "LABELWARDEN_WEBHOOK_SECRET";
/// The Slack app's signing secret, for its Events API.
pub const SIGNING_SECRET_ENV: &str = "SLACK_SIGNING_SECRET";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LABELWARDEN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder of policy files.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// Database URL; the default is a SQLite file in the working directory.
    #[arg(
        long,
        env = "LABELWARDEN_DATABASE_URL",
        default_value = "sqlite://labelwarden.db"
    )]
    database: String,
    /// How notices are sent: `slack` (needs SLACK_BOT_TOKEN, the URL of
    /// every `webhook_env` channel, and GITLAB_TOKEN with the `api` scope
    /// for steps that add labels or comment), or `log` to write them to the
    /// log.
    #[arg(long, env = "LABELWARDEN_NOTIFIER", value_enum)]
    notifier: NotifierKind,
    /// Accept webhooks without a secret. For local trials only.
    #[arg(long)]
    insecure_no_secret: bool,
    /// How often to read the GitLab API and repair what lost webhooks missed
    /// (needs GITLAB_TOKEN with `read_api`); `0s` turns it off.
    #[arg(long, env = "LABELWARDEN_RECONCILE_EVERY", default_value = "15m", value_parser = parse_interval)]
    reconcile_every: TimeDelta,
    /// How often a reconcile pass reads every candidate again; the passes
    /// between read only the issues updated since the previous one (and
    /// histories only of those whose `updated_at` changed). The first pass
    /// after a start is always full.
    #[arg(long, env = "LABELWARDEN_RECONCILE_FULL_EVERY", default_value = "24h", value_parser = parse_interval)]
    reconcile_full_every: TimeDelta,
    /// A project to reconcile (repeatable); default: every project the
    /// store has issues of.
    #[arg(long)]
    reconcile_project: Vec<String>,
    /// A group to reconcile, with its subgroups (repeatable).
    #[arg(long)]
    reconcile_group: Vec<String>,
    #[command(flatten)]
    reactions: super::AlertReactions,
    /// The reaction on an alert that says it was a false positive: written
    /// on the issue like a resolution, with the policy's
    /// `from_slack.false_positive_label`.
    #[arg(long, env = "LABELWARDEN_FALSE_POSITIVE_REACTION", default_value = "x")]
    false_positive_reaction: String,
    /// The reaction on a person's message, in a channel with
    /// `opens_issues`, that makes it a GitLab issue whose alert thread is
    /// that message (needs SLACK_BOT_TOKEN and GITLAB_TOKEN with `api`).
    #[arg(
        long,
        env = "LABELWARDEN_RAISE_REACTION",
        default_value = "rotating_light"
    )]
    raise_reaction: String,
    /// Once a channel that refused notices for good takes one again,
    /// queue its failed notices again by itself (each marked late, with
    /// the original time); without it, the log and `/readyz` say the
    /// `labelwarden outbox resend` command.
    #[arg(long, env = "LABELWARDEN_RESEND_WHEN_HEALTHY")]
    resend_when_healthy: bool,
    /// How long the enforcer lease and outbox claims last. With several
    /// replicas, a replica that dies is taken over after this long.
    #[arg(long, env = "LABELWARDEN_LEASE", default_value = "15s", value_parser = parse_duration)]
    lease: TimeDelta,
    /// Forget an issue this long after its clocks all ended (met, missed,
    /// withdrawn, gone) with nothing left to send: its timeline, ledger,
    /// sent notices and story. Running clocks are never forgotten, however
    /// old. `0` keeps everything.
    #[arg(long, env = "LABELWARDEN_RETAIN", default_value = "90d", value_parser = parse_interval)]
    retain: TimeDelta,
    /// Keep an applied delivery's key this long, so that GitLab's
    /// redelivery of it is recognised (its payload goes once applied).
    #[arg(long, env = "LABELWARDEN_KEEP_DELIVERY_KEYS", default_value = "7d", value_parser = parse_duration)]
    keep_delivery_keys: TimeDelta,
    /// Largest webhook body accepted, in bytes.
    #[arg(long, env = "LABELWARDEN_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Show the status page at `/` and `/status`: the open clocks by time
    /// left, the last week's breaches and resolutions, and each policy's
    /// last 30 days. Readers need LABELWARDEN_STATUS_TOKEN, as a bearer
    /// token or basic auth's password, unless --status-public.
    #[arg(long, env = "LABELWARDEN_STATUS_PAGE")]
    status_page: bool,
    /// Let anybody who reaches the port read the status page, no token.
    /// It shows what a Slack channel not marked `private` would:
    /// confidential issues without their titles.
    #[arg(long, env = "LABELWARDEN_STATUS_PUBLIC", requires = "status_page")]
    status_public: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NotifierKind {
    /// Post to Slack as the policies' channels say.
    Slack,
    /// Write each notice to the log.
    Log,
}

pub fn run(args: ServeArgs) -> ExitCode {
    let secrets: Vec<SecretString> = std::env::var(SECRET_ENV)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_owned()))
        .collect();
    if secrets.is_empty() && !args.insecure_no_secret {
        eprintln!(
            "error: set {SECRET_ENV} to the secret token configured on the GitLab webhook \
             (comma-separated to rotate), or pass --insecure-no-secret for a local trial"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let status_page = match status_page(&args) {
        Ok(page) => page,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let policies = match load_policies(&args.policies) {
        Ok(set) => Arc::new(set),
        Err(code) => return code,
    };
    for warning in &policies.warnings {
        tracing::warn!(%warning, "policy files");
    }
    // Everything Slack and GitLab need is checked before anything starts.
    let slack = match args.notifier {
        NotifierKind::Log => None,
        NotifierKind::Slack => match SlackSettings::from_env(&policies) {
            Ok(settings) => Some(settings),
            Err(e) => {
                eprintln!("error: --notifier slack: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let client = match GitLabClient::from_env(8) {
        Ok(client) => client,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let gitlab = match (&slack, needs_gitlab(&policies, client.as_ref())) {
        (None, _) => None,
        (Some(_), Ok(writer)) => writer,
        (Some(_), Err(message)) => {
            eprintln!("error: --notifier slack: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let reconcile = match (&client, args.reconcile_every.to_std()) {
        (Some(client), Ok(every)) if !every.is_zero() => Some(ReconcileConfig {
            reader: IssueReader::new(client.clone()),
            every,
            scopes: args
                .reconcile_project
                .iter()
                .cloned()
                .map(Scope::Project)
                .chain(args.reconcile_group.iter().cloned().map(Scope::Group))
                .collect(),
            closed_within: TimeDelta::hours(24),
            full_every: args
                .reconcile_full_every
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(86_400)),
        }),
        (None, Ok(every)) if !every.is_zero() => {
            eprintln!(
                "warning: reconcile is off: set {GITLAB_TOKEN_ENV} (read_api) so that serve can repair what lost webhooks miss"
            );
            None
        }
        _ => None,
    };
    if reconcile.is_none() {
        for warning in unseen_by_webhooks(&policies) {
            eprintln!("warning: {warning}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let store = match SqlStore::connect(&args.database).await {
            Ok(store) => store,
            Err(e) => {
                eprintln!("error: {}: {e}", without_password(&args.database));
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        if secrets.is_empty() {
            tracing::warn!("no webhook secret: anyone who can reach this port can send events");
        }
        tracing::info!(policies = policies.policies.len(), database = %without_password(&args.database), "starting");
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let mut context = Context::new(store, policies).with_lease(args.lease);
        context.resend_when_healthy = args.resend_when_healthy;
        context.retention = Retention {
            ended: (args.retain > TimeDelta::zero()).then_some(args.retain),
            delivery_keys: args.keep_delivery_keys,
            ..Retention::default()
        };
        let context = Arc::new(context);
        let slack_events = std::env::var(SIGNING_SECRET_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(|secret| {
                let (ack_reaction, resolve_reaction) = args.reactions.names();
                SlackEventsConfig {
                signing_secret: SecretString::from(secret),
                ack_reaction,
                resolve_reaction,
                false_positive_reaction: args.false_positive_reaction.trim_matches(':').to_owned(),
                raise_reaction: args.raise_reaction.trim_matches(':').to_owned(),
                to_gitlab: slack_to_gitlab(&context.policies, slack.as_ref(), client.as_ref()),
            }
            });
        if slack_events.is_none() {
            tracing::info!("Slack events off: set {SIGNING_SECRET_ENV} to receive acknowledgements on /webhooks/slack");
        }
        let admin_token = std::env::var(crate::server::admin::TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(SecretString::from);
        if admin_token.is_some() {
            tracing::info!("admin API on under /admin/ (bearer token from {})", crate::server::admin::TOKEN_ENV);
        }
        if let Some(page) = &status_page {
            learn_slack_workspace(page, slack.as_ref(), shutdown.clone());
        }
        let config = ServerConfig {
            secrets,
            max_body_bytes: args.max_body_bytes,
            reconcile,
            slack_events,
            admin_token,
            status_page,
        };
        let Some(settings) = slack else {
            return serve(listener, config, context, LogNotifier, shutdown).await;
        };
        let notifier = match SlackNotifier::new(Arc::clone(&context.policies), settings) {
            Ok(notifier) => notifier,
            Err(e) => {
                eprintln!("error: --notifier slack: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        match gitlab {
            Some(writer) => {
                let notifier = Escalation::new(notifier, writer);
                serve(listener, config, context, notifier, shutdown).await
            }
            None => serve(listener, config, context, notifier, shutdown).await,
        }
    })
}

/// The GitLab writer for steps that add labels or comment, and for the
/// issues' ledger notes a scheduled `audit --notify` reads: whenever there
/// is a token; an error if a policy needs one and there is none.
fn needs_gitlab(
    policies: &PolicySet,
    client: Option<&GitLabClient>,
) -> Result<Option<IssueWriter>, String> {
    let acting: Vec<&str> = policies
        .policies
        .iter()
        .filter(|p| p.steps.iter().any(|s| s.gitlab.is_some()))
        .map(|p| p.name.0.as_str())
        .collect();
    if acting.is_empty() {
        return Ok(client.map(|client| IssueWriter::new(client.clone())));
    }
    let client = client.ok_or_else(|| {
        format!(
            "set {GITLAB_TOKEN_ENV} to a GitLab token with the `api` scope: policies {} add labels or comments",
            acting.join(", ")
        )
    })?;
    Ok(Some(IssueWriter::new(client.clone())))
}

/// The status page's settings, if `--status-page`: its token from the
/// environment, or none with `--status-public`.
fn status_page(args: &ServeArgs) -> Result<Option<StatusPageConfig>, String> {
    use crate::server::status::TOKEN_ENV;
    if !args.status_page {
        return Ok(None);
    }
    let token = std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let access = match (token, args.status_public) {
        (_, true) => {
            tracing::warn!(
                "status page on at / and /status for anybody who reaches this port (--status-public)"
            );
            StatusAccess::Public
        }
        (Some(token), false) => {
            tracing::info!("status page on at / and /status (token from {TOKEN_ENV})");
            StatusAccess::Token(SecretString::from(token))
        }
        (None, false) => {
            return Err(format!(
                "--status-page needs {TOKEN_ENV} (readers give it as a bearer token or basic auth's password), \
                 or --status-public to let anybody who reaches the port read it"
            ));
        }
    };
    Ok(Some(StatusPageConfig::new(access)))
}

/// Asks Slack for the workspace URL the status page links threads with,
/// when there is a bot token to ask with.
fn learn_slack_workspace(
    page: &StatusPageConfig,
    slack: Option<&SlackSettings>,
    stop: CancellationToken,
) {
    let Some((settings, token)) = slack.and_then(|s| Some((s, s.token.clone()?))) else {
        return;
    };
    match crate::http_client::builder().build() {
        Ok(http) => {
            let api = WebApi::new(http, &settings.api_url, token);
            tokio::spawn(crate::server::status::learn_workspace(
                api,
                Arc::clone(&page.slack_workspace),
                stop,
            ));
        }
        Err(e) => tracing::error!(error = %e, "cannot build the HTTP client for Slack's auth.test"),
    }
}

/// What writes Slack resolutions and replies on GitLab: it reads threads
/// with the bot token and writes with the GitLab token; `None`, said at
/// start, without either.
fn slack_to_gitlab(
    policies: &Arc<PolicySet>,
    slack: Option<&SlackSettings>,
    client: Option<&GitLabClient>,
) -> Option<SlackToGitLab> {
    let token = slack.and_then(|settings| settings.token.clone());
    let (Some(token), Some(client), Some(settings)) = (token, client, slack) else {
        tracing::info!(
            "resolve and false-positive reactions are not written to GitLab: that needs --notifier slack with SLACK_BOT_TOKEN, and {GITLAB_TOKEN_ENV} (api)"
        );
        return None;
    };
    let http = match crate::http_client::builder().build() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client for Slack threads");
            return None;
        }
    };
    Some(SlackToGitLab {
        slack: WebApi::new(http, &settings.api_url, token),
        gitlab: IssueWriter::new(client.clone()),
        policies: Arc::clone(policies),
    })
}

async fn serve<N: Notifier>(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    context: Arc<Context<SqlStore>>,
    notifier: N,
    shutdown: CancellationToken,
) -> ExitCode {
    match server::run(listener, config, context, Arc::new(notifier), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    policy::duration::parse(text)
}

/// A duration, or `0s` / `off` for none.
fn parse_interval(text: &str) -> Result<TimeDelta, String> {
    match text.trim() {
        "0" | "0s" | "off" => Ok(TimeDelta::zero()),
        other => policy::duration::parse(other),
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub(super) async fn stop_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}

/// What policies ask that GitLab's issue hooks do not say, and only
/// reconcile's API reads fill in: for a `serve` without reconcile.
fn unseen_by_webhooks(policies: &crate::policy::PolicySet) -> Vec<String> {
    let mut warnings = Vec::new();
    for policy in &policies.policies {
        let selector = &policy.selector;
        if matches!(selector.milestone, crate::policy::Presence::OneOf(_)) {
            warnings.push(format!(
                "policy `{}` matches on milestone titles, which issue hooks do not carry \
                 (only the id): with reconcile off, it never matches",
                policy.name
            ));
        }
        if !selector.authors.is_empty() {
            warnings.push(format!(
                "policy `{}` matches on authors, which issue hooks name only when an issue \
                 is opened: with reconcile off, issues opened before serve saw them never match",
                policy.name
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_never_reach_the_log() {
        assert_eq!(
            without_password("postgres://lw:s3cret@db.example.com:5432/labelwarden"),
            "postgres://lw:***@db.example.com:5432/labelwarden"
        );
        assert_eq!(
            without_password("sqlite://labelwarden.db"),
            "sqlite://labelwarden.db"
        );
    }

    #[test]
    fn conditions_webhooks_cannot_see_are_named_when_reconcile_is_off() {
        let set = crate::test_support::policy_set(concat!(
            "policies:\n",
            "  - name: labels-only\n    match: { labels_any: [a], milestone: any, assignees: none }\n",
            "    clock: { target: 1h }\n",
            "  - name: by-title\n    match: { labels_any: [a], milestone: [\"17.*\"], authors: [ada] }\n",
            "    clock: { target: 1h }\n",
        ));
        let warnings = unseen_by_webhooks(&set);
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(warnings[0].starts_with("policy `by-title` matches on milestone titles"));
        assert!(warnings[1].starts_with("policy `by-title` matches on authors"));
    }

    #[test]
    fn reconcile_can_be_turned_off() {
        assert_eq!(parse_interval("0s"), Ok(TimeDelta::zero()));
        assert_eq!(parse_interval("off"), Ok(TimeDelta::zero()));
        assert_eq!(parse_interval("15m"), Ok(TimeDelta::minutes(15)));
    }
}
