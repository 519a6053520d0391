//! The command line: parses arguments and hands each command to its module.
//! Exit codes are part of the interface: 0 fine, 1 `audit` found what
//! `--fail-on` asks about, 2 bad configuration or no access.

mod audit;
mod calendar;
mod check;
mod clock;
mod clocks;
mod diff;
mod doctor;
mod drill;
mod explain;
mod mute;
mod oncall;
mod outbox;
mod probe;
mod progress;
mod reference;
mod schema;
mod serve;
mod store;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::gitlab::client::{GitLabClient, TOKEN_ENV};

#[derive(Debug, Parser)]
#[command(
    name = "labelwarden",
    version,
    about = "GitLab label policies with SLA clocks, escalated in Slack"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the policy files and summarise each policy (exit 2 if invalid).
    Check(PolicyArgs),
    /// Print the JSON Schema of the policy file format (or, with
    /// `--tests`, of the policy test format), for editors.
    Schema(schema::SchemaArgs),
    /// Run the policy tests in the policy folder's `tests/`: a line per
    /// case and a summary, or JUnit (exit 1 if one fails, 2 if invalid).
    Test(test::TestArgs),
    /// What a change to the policy files would do to the open issues of
    /// a project or group: clocks that start, end or breach, deadlines
    /// that move, steps that fire at once (`--mr-note`: on the MR).
    Diff(diff::DiffArgs),
    /// Receive GitLab webhooks, keep every SLA clock, and escalate on time.
    Serve(serve::ServeArgs),
    /// Report every SLA clock of a project or group from the GitLab API
    /// (exit 1 past `--fail-on`, 2 on configuration or access errors).
    Audit(audit::AuditArgs),
    /// Explain one issue under every policy: match, clock, status, steps
    /// fired, what comes next (from the GitLab API).
    Explain(explain::ExplainArgs),
    /// Rehearse a policy's escalation: a synthetic incident, marked as a
    /// drill, in its Slack channels on a compressed clock (`--speed`),
    /// acknowledged and resolved with the usual reactions; ends with a
    /// summary, printed and posted in the thread. Writes nothing to
    /// GitLab. Exit 1 if nobody acknowledged.
    Drill(drill::DrillArgs),
    /// Who each on-call rotation has on call now and in the coming weeks.
    Oncall(oncall::OnCallArgs),
    /// A business-hours calendar of the policy files, day by day in its
    /// time zone: working windows, holidays, working hours in all.
    Calendar(calendar::CalendarArgs),
    /// Ask a running `serve` whether it is alive (/healthz) or ready
    /// (/readyz): exit 0 on 200, 1 otherwise. For health checks in the
    /// container image, which has no curl or shell.
    Probe(probe::ProbeArgs),
    /// Check a setup against the live services (policies, secrets,
    /// database, GitLab token and webhooks, Slack token, channels and
    /// people): a line per check, with the fix. Exit 1 on problems.
    Doctor(doctor::DoctorArgs),
    /// Print the Slack ids the policy files need, from the Slack API:
    /// channels by name, GitLab usernames and people by name or email,
    /// user groups by handle; ready to replace `REPLACEME`.
    SlackIds(doctor::SlackIdsArgs),
    /// The notices waiting to be sent or refused for good (`list`), and
    /// failed ones queued again once their channel is fixed (`resend`).
    Outbox(outbox::OutboxArgs),
    /// The clocks the store holds, as of now: issue, policy, status,
    /// deadline, next step, who acknowledged (works while `serve` runs).
    Clocks(clocks::ClocksArgs),
    /// One issue's stored story: its clocks, then what was received,
    /// fired, sent, held, refused and resent (works while `serve` runs).
    Clock(clock::ClockArgs),
    /// Silence a policy, a channel or a project until a time: notices are
    /// recorded, not sent, and summarised when it ends; clocks keep running.
    Mute(mute::MuteArgs),
    /// End a mute now (its summary follows).
    Unmute(mute::UnmuteArgs),
    /// The mutes going on, and those ended but not yet summarised.
    Mutes(mute::MutesArgs),
    /// The store's rows per table and size on disk (`stats`).
    Store(store::StoreArgs),
    /// A consistent copy of a SQLite store, taken while `serve` runs
    /// (PostgreSQL: use pg_dump).
    Backup(store::BackupArgs),
    /// Print a page of the book's reference, generated from this binary:
    /// every command and flag, or every key of the policy or policy-test
    /// files (Markdown).
    Reference(reference::ReferenceArgs),
}

#[derive(Debug, Args)]
struct PolicyArgs {
    /// Folder of policy files (*.yml, *.yaml), read recursively.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
}

/// The reactions on an alert that acknowledge and resolve it: one
/// definition for `serve` and `drill`, so a drill reads the reactions
/// `serve` reads.
#[derive(Debug, Args)]
pub struct AlertReactions {
    /// The reaction on an alert that acknowledges it (`serve` receives
    /// Slack events on /webhooks/slack when SLACK_SIGNING_SECRET is set;
    /// `drill` reads the alert's reactions).
    #[arg(long, env = "LABELWARDEN_ACK_REACTION", default_value = "eyes")]
    ack_reaction: String,
    /// The reaction on an alert that says it is resolved. `serve` writes
    /// the person's last reply in the thread on the issue (needs
    /// SLACK_BOT_TOKEN and GITLAB_TOKEN with `api`); it ends a drill's
    /// incident.
    #[arg(
        long,
        env = "LABELWARDEN_RESOLVE_REACTION",
        default_value = "white_check_mark"
    )]
    resolve_reaction: String,
}

impl AlertReactions {
    /// The acknowledge and resolve reactions' names, without colons.
    fn names(&self) -> (String, String) {
        (
            self.ack_reaction.trim_matches(':').to_owned(),
            self.resolve_reaction.trim_matches(':').to_owned(),
        )
    }
}

/// Exit code for configuration and access errors.
const EXIT_CONFIG: u8 = 2;

/// The database `serve` uses, for the commands that look inside it.
#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// Database URL, as `serve` takes it.
    #[arg(
        long,
        global = true,
        env = "LABELWARDEN_DATABASE_URL",
        default_value = "sqlite://labelwarden.db"
    )]
    database: String,
}

/// Opens the database and does `work` on it in a small runtime; the exit
/// code is `work`'s, or 2 after saying why the database would not open.
fn on_store<F, Fut>(database: &DatabaseArg, work: F) -> ExitCode
where
    F: FnOnce(crate::store::sql::SqlStore) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    use crate::store::sql::{SqlStore, without_password};
    let runtime = match small_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        match SqlStore::connect(&database.database).await {
            Ok(store) => work(store).await,
            Err(e) => fail(format!("{}: {e}", without_password(&database.database))),
        }
    })
}

/// A single-threaded runtime for a command that makes a few requests, or
/// the exit code after saying why there is none.
fn small_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_CONFIG)
        })
}

pub fn run(cli: Cli) -> ExitCode {
    init_logging();
    match cli.command {
        Command::Check(args) => check::run(&args.policies),
        Command::Schema(args) => schema::run(args),
        Command::Reference(args) => reference::run(args),
        Command::Test(args) => test::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Drill(args) => drill::run(args),
        Command::Oncall(args) => oncall::run(args),
        Command::Calendar(args) => calendar::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::SlackIds(args) => doctor::run_slack_ids(args),
        Command::Outbox(args) => outbox::run(args),
        Command::Clocks(args) => clocks::run(args),
        Command::Clock(args) => clock::run(args),
        Command::Mute(args) => mute::run_mute(args),
        Command::Unmute(args) => mute::run_unmute(args),
        Command::Mutes(args) => mute::run_mutes(args),
        Command::Store(args) => store::run(args),
        Command::Backup(args) => store::run_backup(args),
    }
}

/// The policy folder, or every error in it printed and exit code 2.
fn load_policies(dir: &std::path::Path) -> Result<crate::policy::PolicySet, ExitCode> {
    crate::policy::load(dir).map_err(|errors| {
        for error in &errors {
            eprintln!("error: {error}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// The project or group a command reads, and a multi-threaded runtime to
/// read it with; or the exit code after saying why not.
fn scope_and_runtime(
    project: &Option<String>,
    group: &Option<String>,
) -> Result<(crate::gitlab::history::Scope, tokio::runtime::Runtime), ExitCode> {
    use crate::gitlab::history::Scope;
    let scope = match (project, group) {
        (Some(project), _) => Scope::Project(project.clone()),
        (None, Some(group)) => Scope::Group(group.clone()),
        (None, None) => return Err(fail("give --project or --group")),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the async runtime: {e}")))?;
    Ok((scope, runtime))
}

/// Prints every error in invalid policy or policy test files, then their
/// count under `what`; exit code 2.
fn invalid(what: &str, errors: &[crate::policy::PolicyError]) -> ExitCode {
    for error in errors {
        eprintln!("error: {error}");
    }
    let count = errors.len();
    eprintln!(
        "{what} invalid: {count} error{}",
        if count == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_CONFIG)
}

/// Says what is wrong with the configuration or access; exit code 2.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_CONFIG)
}

/// A GitLab client from the environment, or why not (exit code 2).
fn gitlab_client_or_exit(concurrency: usize, scope: &str) -> Result<GitLabClient, ExitCode> {
    match GitLabClient::from_env(concurrency) {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(fail(format!(
            "set {TOKEN_ENV} to a GitLab token with the {scope} scope"
        ))),
        Err(message) => Err(fail(message)),
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
