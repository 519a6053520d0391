//! `labelwarden mute`, `unmute` and `mutes`: silence a policy, a channel
//! or a project for a maintenance window, end a mute early, list them.
//! Mutes live in the database `serve` uses, so every replica keeps them;
//! clocks keep running, and what was held is summarised when a mute ends.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;

use super::{DatabaseArg, PolicyArgs, fail, on_store};
use crate::policy::maintenance::Maintenance;
use crate::store::Store;
use crate::store::mutes::{Mute, MuteScope};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(false))]
pub struct MuteArgs {
    /// Silence this policy's notices.
    #[arg(long, group = "what")]
    policy: Option<String>,
    /// Silence notices for this policy channel.
    #[arg(long, group = "what")]
    channel: Option<String>,
    /// Silence notices about this project's issues (`group/project`).
    #[arg(long, group = "what")]
    project: Option<String>,
    /// Until when: a time (RFC 3339, `2026-11-30T06:00:00Z`) or a
    /// duration from now (`2h`, `30m`).
    #[arg(long)]
    until: String,
    /// Why, for the log, `/readyz` and the summary.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    database: DatabaseArg,
}

#[derive(Debug, Args)]
pub struct UnmuteArgs {
    /// The mute's number, from `labelwarden mutes`.
    id: i64,
    #[command(flatten)]
    database: DatabaseArg,
}

#[derive(Debug, Args)]
pub struct MutesArgs {
    #[command(flatten)]
    database: DatabaseArg,
    #[command(flatten)]
    policies: PolicyArgs,
}

/// A time as `--until` takes it.
fn until(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    crate::policy::duration::parse(text)
        .map(|delta| now + delta)
        .map_err(|e| format!("--until `{text}` is neither a time (RFC 3339) nor a duration: {e}"))
}

fn line(mute: &Mute, now: DateTime<Utc>) -> String {
    let state = if mute.until > now { "until" } else { "ended" };
    format!(
        "{}  {}  {state} {}  {}",
        mute.id,
        mute.describe(),
        mute.until.format("%Y-%m-%d %H:%M UTC"),
        mute.reason
    )
}

pub fn run_mute(args: MuteArgs) -> ExitCode {
    let now = Utc::now();
    let (scope, target) = match (args.policy, args.channel, args.project) {
        (Some(policy), _, _) => (MuteScope::Policy, policy),
        (_, Some(channel), _) => (MuteScope::Channel, channel),
        (_, _, Some(project)) => (MuteScope::Project, project),
        _ => return fail("give --policy, --channel or --project"),
    };
    let until = match until(&args.until, now) {
        Ok(until) if until > now => until,
        Ok(_) => return fail("--until is in the past"),
        Err(e) => return fail(e),
    };
    on_store(&args.database, |store| async move {
        match store
            .add_mute(scope, &target, until, &args.reason, now)
            .await
        {
            Ok(mute) => {
                println!("muted: {}", line(&mute, now));
                println!(
                    "clocks keep running; what falls due is recorded and summarised when the mute ends"
                );
                tracing::warn!(mute = mute.id, what = %mute.describe(), until = %mute.until, reason = %mute.reason, "muted");
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("cannot add the mute: {e}")),
        }
    })
}

pub fn run_unmute(args: UnmuteArgs) -> ExitCode {
    on_store(&args.database, |store| async move {
        match store.end_mute(args.id, Utc::now()).await {
            Ok(true) => {
                println!("mute {} ended; `serve` says what was held", args.id);
                tracing::warn!(mute = args.id, "unmuted");
                ExitCode::SUCCESS
            }
            Ok(false) => {
                eprintln!("no mute {} is going on: see `labelwarden mutes`", args.id);
                ExitCode::from(1)
            }
            Err(e) => fail(format!("cannot end the mute: {e}")),
        }
    })
}

pub fn run_mutes(args: MutesArgs) -> ExitCode {
    let now = Utc::now();
    // The windows are shown beside the mutes; a policy folder that does
    // not load hides them, with the reason, not the mutes.
    let windows = match crate::policy::load(&args.policies.policies) {
        Ok(set) => set.maintenance,
        Err(errors) => {
            eprintln!(
                "maintenance windows not shown: {} does not load ({})",
                args.policies.policies.display(),
                errors.first().map(ToString::to_string).unwrap_or_default()
            );
            Vec::new()
        }
    };
    on_store(&args.database, |store| async move {
        match store.mutes(now).await {
            Ok(mutes) => {
                if mutes.is_empty() {
                    println!("no mutes");
                }
                for mute in &mutes {
                    println!("{}", line(mute, now));
                }
                if !windows.is_empty() {
                    println!("maintenance windows in the policy files:");
                }
                for window in &windows {
                    println!("  {}", window_line(window, now));
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("cannot read the mutes: {e}")),
        }
    })
}

/// A window of the policy files: what, when, and its current or next time.
fn window_line(window: &Maintenance, now: DateTime<Utc>) -> String {
    let state = match window.current_or_next(now) {
        Some(occurrence) if occurrence.start <= now => {
            format!(
                "going on until {}",
                occurrence.end.format("%Y-%m-%d %H:%M UTC")
            )
        }
        Some(occurrence) => format!(
            "next {} – {}",
            occurrence.start.format("%Y-%m-%d %H:%M UTC"),
            occurrence.end.format("%Y-%m-%d %H:%M UTC")
        ),
        None => "over".to_owned(),
    };
    format!(
        "{}  {}  {}  {state}  {}",
        window.name,
        window.schedule(),
        format_args!("{} `{}`", window.scope.as_str(), window.target),
        window.reason
    )
}
