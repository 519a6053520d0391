//! `labelwarden audit`: reads a project's or group's candidate issues and
//! their histories from the GitLab API, computes every SLA clock with the
//! core as of now (or `--now`), and writes reports. Stateless: made for a
//! scheduled CI pipeline. Exit 0 fine, 1 the `--fail-on` threshold was
//! crossed, 2 configuration or access error.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;

use super::progress::Progress;
use super::{fail, gitlab_client_or_exit, load_policies, scope_and_runtime};
use std::sync::Arc;

use crate::audit::report::{self, Format, summary};

use crate::audit::watchdog::{self, Finding};
use crate::audit::{self, FailOn, notify};
use crate::gitlab::GitLabError;
use crate::gitlab::actions::{IssueLedger, IssueWriter};
use crate::gitlab::cache::HistoryCache;
use crate::gitlab::client::GitLabClient;
use crate::gitlab::history::FetchedIssue;
use crate::gitlab::history::{IssueReader, ReadOptions, Scope};
use crate::gitlab::hooks;
use crate::gitlab::summary_issue::SummaryOutcome;
use crate::notify::LogNotifier;
use crate::policy;
use crate::policy::PolicySet;
use crate::slack::{SlackNotifier, SlackSettings};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["project", "group"])))]
#[command(group(clap::ArgGroup::new("acting").multiple(true).args(["notify", "summary_issue"])))]
pub struct AuditArgs {
    /// Audit one project (`group/name`).
    #[arg(long)]
    project: Option<String>,
    /// Audit a group with all its subgroups (`group` or `group/sub`).
    #[arg(long)]
    group: Option<String>,
    /// Folder of policy files.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// Report format; repeat with `--output` for several reports in one run
    /// (the n-th format goes to the n-th output, the rest to stdout).
    #[arg(long, value_enum)]
    format: Vec<Format>,
    /// Write a report to this file instead of stdout. Without a matching
    /// `--format`, the extension decides (.xml JUnit, .json, .md).
    #[arg(long)]
    output: Vec<PathBuf>,
    /// Exit 1 when a clock is breached (`breach`), also when one is in its
    /// warning window (`warning`), or never.
    #[arg(long, value_enum, default_value = "breach")]
    fail_on: FailOn,
    /// Evaluate as of this instant (RFC 3339) instead of now.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
    /// The most GitLab API requests in flight at once: the ceiling of the
    /// adaptive limit, which starts low and grows while GitLab keeps up.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Also read every issue updated this long before now, open or
    /// closed, whatever its labels: recent resolutions are reported, and so
    /// is a clock whose labels were removed after its deadline (withdrawn
    /// after breach). `0s` for the open candidates only.
    #[arg(
        long,
        alias = "closed-within",
        default_value = "24h",
        value_parser = parse_duration
    )]
    updated_within: TimeDelta,
    /// Keep each issue's history in this folder between runs, keyed by its
    /// `updated_at`: a run reads again only what changed. A corrupt or
    /// foreign cache is ignored with a warning.
    #[arg(long, env = "LABELWARDEN_CACHE")]
    cache: Option<PathBuf>,
    /// Carry out the steps due now: Slack messages (SLACK_BOT_TOKEN, as for
    /// `serve --notifier slack`), GitLab labels and comments (a token with
    /// the `api` scope). What fired is recorded in a note on each issue, so
    /// each step happens once however often the audit runs.
    #[arg(long)]
    notify: bool,
    /// With --notify: list the steps that are due instead of carrying them
    /// out. With --summary-issue: print the summary instead of writing it.
    #[arg(long, requires = "acting")]
    dry_run: bool,
    /// Keep one GitLab issue with this title as the run's report: each
    /// policy's breaches and near misses, each rule's violations. Found
    /// again by its marker and edited in place; created when there is none
    /// open. Needs a token with the `api` scope.
    #[arg(long, value_name = "TITLE")]
    summary_issue: Option<String>,
    /// The project the summary issue lives in (default: --project; needed
    /// with --group).
    #[arg(long, requires = "summary_issue")]
    summary_project: Option<String>,
    /// Also check that labelwarden's webhook is there and enabled, and that
    /// `serve` left its start note on every clock older than
    /// --lag-tolerance; findings fail the audit like a breach.
    #[arg(long)]
    watchdog: bool,
    /// The URL of labelwarden's webhook, for --watchdog (default: any hook
    /// whose URL ends in /webhooks/gitlab).
    #[arg(long, requires = "watchdog")]
    webhook_url: Option<String>,
    /// How long after a clock starts its start note may be missing.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    lag_tolerance: TimeDelta,
    /// Also read each issue's notes for the acknowledgements `serve` wrote
    /// there from Slack: who acknowledged each clock, and each policy's
    /// time to acknowledge. Implied by --notify and --watchdog, which read
    /// the notes anyway.
    #[arg(long)]
    acknowledgements: bool,
}

/// The project and title of the summary issue, if one is asked for.
fn summary_place(args: &AuditArgs) -> Result<Option<(String, String)>, String> {
    let Some(title) = &args.summary_issue else {
        return Ok(None);
    };
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 255 {
        return Err(
            "--summary-issue needs a title of 1 to 255 characters, as GitLab takes".to_owned(),
        );
    }
    let project = args
        .summary_project
        .clone()
        .or_else(|| args.project.clone())
        .ok_or_else(|| {
            "--summary-issue with --group needs --summary-project: the project the summary issue lives in"
                .to_owned()
        })?;
    Ok(Some((project, title.to_owned())))
}

pub(super) fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    policy::duration::parse(text)
}

/// Where each report goes.
#[derive(Debug, PartialEq)]
struct Destination {
    format: Format,
    file: Option<PathBuf>,
}

/// Pairs formats with outputs: the n-th format with the n-th output, a
/// file without a format by its extension, formats left over to stdout.
fn destinations(formats: &[Format], outputs: &[PathBuf]) -> Result<Vec<Destination>, String> {
    let mut found = Vec::new();
    for (n, file) in outputs.iter().enumerate() {
        let format = match formats.get(n) {
            Some(format) => *format,
            None => Format::from_file_name(&file.to_string_lossy()).ok_or_else(|| {
                format!(
                    "cannot tell the report format of {} from its name: give a --format for it",
                    file.display()
                )
            })?,
        };
        found.push(Destination {
            format,
            file: Some(file.clone()),
        });
    }
    for format in formats.iter().skip(outputs.len()) {
        found.push(Destination {
            format: *format,
            file: None,
        });
    }
    if found.is_empty() {
        found.push(Destination {
            format: Format::Table,
            file: None,
        });
    }
    Ok(found)
}

pub fn run(args: AuditArgs) -> ExitCode {
    let policies = match load_policies(&args.policies) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let destinations = match destinations(&args.format, &args.output) {
        Ok(found) => found,
        Err(message) => return fail(message),
    };
    let summary_at = match summary_place(&args) {
        Ok(place) => place,
        Err(message) => return fail(message),
    };
    if args.notify && args.now.is_some() {
        return fail(
            "--now cannot be combined with --notify: steps are carried out now".to_owned(),
        );
    }
    // Slack settings are checked before anything is read.
    let slack = if args.notify && !args.dry_run {
        match SlackSettings::from_env(&policies)
            .and_then(|settings| SlackNotifier::new(Arc::new(policies.clone()), settings))
        {
            Ok(notifier) => Some(notifier),
            Err(e) => return fail(format!("--notify: {e}")),
        }
    } else {
        None
    };
    let client = match gitlab_client_or_exit(
        args.concurrency.max(1),
        "`read_api` (`api` for --notify and --summary-issue)",
    ) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let (scope, runtime) = match scope_and_runtime(&args.project, &args.group) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let now = args.now.unwrap_or_else(Utc::now);
    let reader = IssueReader::new(client.clone());
    let cache = args.cache.as_deref().map(|dir| {
        let (cache, warning) = HistoryCache::open(dir, client.base_url(), &scope.to_string());
        if let Some(warning) = warning {
            eprintln!("warning: {warning}");
        }
        cache
    });
    let progress = Progress::new();
    let fetched = runtime.block_on(reader.read_all(
        &scope,
        &policies,
        now,
        &ReadOptions {
            window: args.updated_within,
            every_updated: true,
            cache: cache.as_ref(),
            ..ReadOptions::default()
        },
        &|done, found| progress.show(done, found),
    ));
    progress.finish();
    if let Some(cache) = &cache
        && fetched.is_ok()
    {
        let stats = cache.stats();
        tracing::info!(
            from_cache = stats.hits,
            read = stats.misses,
            "issue histories"
        );
        if let Err(e) = cache.save() {
            eprintln!("warning: the history cache was not saved: {e}");
        }
    }
    let fetched = match fetched {
        // A moved issue and the issue it moved to are one.
        Ok(fetched) => audit::identity::follow(fetched, &policies, now),
        Err(e) => return fail(e),
    };
    tracing::info!(
        issues = fetched.len(),
        requests = reader.client().requests_made(),
        "read from GitLab"
    );
    let mut rows = audit::evaluate(&fetched, &policies, now);
    // Clocks that ran within the window: a clock that ended before it is
    // old news, whatever brought its issue into the listing.
    if args.updated_within > TimeDelta::zero() {
        let since = now - args.updated_within;
        rows.retain(|row| row.ended_at().is_none_or(|ended| ended >= since));
    }
    let scope_text = scope.to_string();
    // What fired and who acknowledged, from the issues' notes: read once
    // for the watchdog, --notify and --acknowledgements alike.
    let ledgers = (args.watchdog || args.notify || args.acknowledgements).then(|| {
        runtime.block_on(IssueWriter::new(client.clone()).ledgers(&fetched, args.concurrency))
    });
    if let Some(ledgers) = &ledgers {
        let unreadable = ledgers.iter().filter(|l| l.is_err()).count();
        if unreadable > 0 {
            eprintln!(
                "warning: the notes of {unreadable} issue(s) could not be read: who acknowledged them is not shown"
            );
        }
        let readable: Vec<(String, &IssueLedger)> = fetched
            .iter()
            .zip(ledgers)
            .filter_map(|(issue, ledger)| {
                Some((issue.issue.reference().to_string(), ledger.as_ref().ok()?))
            })
            .collect();
        audit::attach_acknowledgements(&mut rows, &readable);
    }
    let findings = args.watchdog.then(|| {
        runtime.block_on(run_watchdog(
            &client,
            &scope,
            &fetched,
            ledgers.as_deref().unwrap_or_default(),
            &policies,
            now,
            &args,
        ))
    });
    let context = report::Context {
        watchdog: findings.as_deref(),
        scope: &scope_text,
        now,
        issues_read: fetched.len(),
    };
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for destination in &destinations {
        match &destination.file {
            Some(file) => {
                let text = report::render(destination.format, &rows, &context, false);
                if let Err(e) = std::fs::write(file, text) {
                    return fail(format!("cannot write {}: {e}", file.display()));
                }
            }
            None => {
                let text = report::render(destination.format, &rows, &context, colour);
                let mut stdout = std::io::stdout().lock();
                if let Err(e) = stdout.write_all(text.as_bytes()) {
                    return fail(format!("cannot write the report: {e}"));
                }
            }
        }
    }
    let mut failed = None;
    if args.notify {
        let ledgers = match ledgers
            .unwrap_or_default()
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(ledgers) => ledgers,
            Err(e) => return fail(format!("--notify: {e}")),
        };
        let writer = IssueWriter::new(client.clone());
        let concurrency = args.concurrency.max(1);
        let carried = runtime.block_on(async {
            match &slack {
                Some(notifier) => {
                    notify::carry_out(
                        &fetched,
                        ledgers,
                        &policies,
                        notifier,
                        &writer,
                        false,
                        concurrency,
                    )
                    .await
                }
                None => {
                    notify::carry_out(
                        &fetched,
                        ledgers,
                        &policies,
                        &LogNotifier,
                        &writer,
                        true,
                        concurrency,
                    )
                    .await
                }
            }
        });
        for step in &carried.steps {
            eprintln!("{}", notify::summary_line(step, args.dry_run));
        }
        for (step, window) in &carried.held {
            eprintln!(
                "held by maintenance window {window}: {} [{}] {}; the first run after it sends it",
                step.issue, step.policy, step.step
            );
        }
        if carried.failures() > 0 {
            failed = Some(format!(
                "--notify: {} of {} due steps failed; the next run tries them again",
                carried.failures(),
                carried.steps.len()
            ));
        } else {
            eprintln!(
                "--notify: {} step{} {}",
                carried.steps.len(),
                if carried.steps.len() == 1 { "" } else { "s" },
                if args.dry_run { "due" } else { "carried out" }
            );
        }
    }
    // The summary is written even when a step failed: the report is still
    // the team's.
    if let Some((project, title)) = &summary_at {
        let text = summary::body(
            &rows,
            &summary::rule_matches(&fetched, &policies, now),
            &policies,
            &context,
        );
        if args.dry_run {
            eprintln!("--summary-issue (dry run): the issue `{title}` in {project} would say:");
            print!("{text}");
        } else {
            let marker = summary::marker(&scope_text);
            let writer = IssueWriter::new(client.clone());
            match runtime.block_on(writer.write_summary(project, title, &marker, &text)) {
                Ok(SummaryOutcome::Created { iid, url }) => {
                    eprintln!("--summary-issue: created {project}#{iid} {url}");
                }
                Ok(SummaryOutcome::Edited { iid, url }) => {
                    eprintln!("--summary-issue: edited {project}#{iid} {url}");
                }
                Err(e) => {
                    let message = format!("--summary-issue: {e}");
                    failed = Some(failed.map_or(message.clone(), |f| format!("{f}\n{message}")));
                }
            }
        }
    }
    if let Some(message) = failed {
        return fail(message);
    }
    if args
        .fail_on
        .crossed(&rows, findings.as_deref().unwrap_or_default())
    {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The watchdog's checks; what it cannot check is a finding too.
async fn run_watchdog(
    client: &GitLabClient,
    scope: &Scope,
    fetched: &[FetchedIssue],
    ledgers: &[Result<IssueLedger, GitLabError>],
    policies: &PolicySet,
    now: DateTime<Utc>,
    args: &AuditArgs,
) -> Vec<Finding> {
    let (webhook_url, lag_tolerance) = (args.webhook_url.as_deref(), args.lag_tolerance);
    let scope_text = scope.to_string();
    let mut findings = match hooks::list(client, scope).await {
        Ok(hooks) => watchdog::webhook_findings(&hooks, &scope_text, webhook_url, now),
        Err(e) => vec![Finding {
            check: "webhook",
            subject: scope_text.clone(),
            message: format!("cannot check labelwarden's webhook: {e}"),
        }],
    };
    let mut with_markers = Vec::with_capacity(fetched.len());
    for (issue, ledger) in fetched.iter().zip(ledgers) {
        match ledger {
            Ok(ledger) => with_markers.push((issue, &ledger.markers[..])),
            Err(e) => findings.push(Finding {
                check: "lag",
                subject: issue.issue.reference().to_string(),
                message: format!("cannot read labelwarden's notes: {e}"),
            }),
        }
    }
    findings.extend(watchdog::lag_findings(
        &with_markers,
        policies,
        now,
        lag_tolerance,
    ));
    findings
}

/// `reading histories 120/300` on stderr, when it is a terminal.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_pair_with_outputs_then_go_to_stdout() {
        let found = destinations(
            &[Format::Junit, Format::Table],
            &[PathBuf::from("labelwarden.xml")],
        )
        .unwrap();
        assert_eq!(
            found,
            vec![
                Destination {
                    format: Format::Junit,
                    file: Some("labelwarden.xml".into())
                },
                Destination {
                    format: Format::Table,
                    file: None
                },
            ]
        );
        let by_name = destinations(&[], &["a.json".into(), "b.md".into()]).unwrap();
        assert_eq!(by_name[0].format, Format::Json);
        assert_eq!(by_name[1].format, Format::Markdown);
        assert!(destinations(&[], &["report".into()]).is_err());
        assert_eq!(
            destinations(&[], &[]).unwrap(),
            vec![Destination {
                format: Format::Table,
                file: None
            }]
        );
    }
}
