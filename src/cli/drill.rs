//! `labelwarden drill`: rehearses a policy's escalation with a synthetic
//! incident in its Slack channels on a compressed clock, then prints and
//! posts the summary. Exit 0 when somebody acknowledged the alert, 1 when
//! nobody did (a scheduled drill's pipeline goes red), 2 on configuration
//! or Slack errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use clap::Args;

use super::{fail, load_policies, small_runtime};
use crate::drill::run::{self, Settings};
use crate::drill::{self, Drill};
use crate::slack::api::WebApi;
use crate::slack::{SlackNotifier, SlackSettings, TOKEN_ENV};

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Folder of policy files.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// The policy to rehearse.
    #[arg(long)]
    policy: String,
    /// How much faster than real time the drill's clock runs: at 60, a
    /// 24h target lasts 24 minutes and a 30m escalation comes after 30 s.
    #[arg(long, default_value_t = 60)]
    speed: u32,
    #[command(flatten)]
    reactions: super::AlertReactions,
    /// How often the alert's reactions are read (`reactions.get`).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    poll: std::time::Duration,
    /// Write the drill's metrics here at the end, in Prometheus' text
    /// format, every series labelled `drill="true"` (for a textfile
    /// collector, or a CI job's `artifacts:reports:metrics`).
    #[arg(long)]
    metrics_file: Option<PathBuf>,
}

pub fn run(args: DrillArgs) -> ExitCode {
    let policies = match load_policies(&args.policies) {
        Ok(set) => Arc::new(set),
        Err(code) => return code,
    };
    let now = Utc::now();
    let number = now.timestamp().unsigned_abs();
    let mut drill = match drill::find(&policies, &args.policy)
        .and_then(|policy| Drill::new(policy, &policies, args.speed, number, now))
    {
        Ok(drill) => drill,
        Err(e) => return fail(e.to_string()),
    };
    // Only the drill's own channels need their secrets.
    let drill_set = Arc::new(drill.policy_set(&policies));
    let settings = match SlackSettings::from_env(&drill_set) {
        Ok(settings) => settings,
        Err(e) => return fail(e.to_string()),
    };
    let Some(token) = settings.token.clone() else {
        return fail(format!(
            "set {TOKEN_ENV}: a drill reads the alert's reactions with the bot token"
        ));
    };
    let http = match crate::http_client::builder().build() {
        Ok(http) => http,
        Err(e) => return fail(format!("cannot build the HTTP client: {e}")),
    };
    let api = WebApi::new(http, &settings.api_url, token);
    let notifier = match SlackNotifier::new(drill_set, settings) {
        Ok(notifier) => notifier,
        Err(e) => return fail(e.to_string()),
    };
    let metrics = args
        .metrics_file
        .as_ref()
        .map(|_| crate::server::prometheus_labelled("drill", "true"));
    let (ack_reaction, resolve_reaction) = args.reactions.names();
    let run_settings = Settings {
        ack_reaction,
        resolve_reaction,
        poll: args.poll,
    };
    println!(
        "drill {}: `{}` at {}× speed; {} becomes {}. React :{}: on the alert to acknowledge it, :{}: to resolve it.",
        drill.reference(),
        args.policy,
        args.speed,
        crate::policy::duration::human(drill.original.clock.target),
        crate::policy::duration::human(drill.policy.clock.target),
        run_settings.ack_reaction,
        run_settings.resolve_reaction,
    );
    let runtime = match small_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let started = drill.started_at;
    let result = runtime.block_on(async {
        // Ctrl-C or SIGTERM (a cancelled CI job), listened for before
        // anything is posted: the drill ends as stopped and still posts
        // its summary.
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(super::serve::stop_on_signal(stop.clone()));
        tokio::task::yield_now().await;
        run::run(
            &mut drill,
            &policies,
            &notifier,
            &api,
            &run_settings,
            stop.cancelled_owned(),
            &mut |line| {
                let after = crate::policy::duration::human(TimeDelta::seconds(
                    (Utc::now() - started).num_seconds(),
                ));
                println!("+{after} {line}");
            },
        )
        .await
    });
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => return fail(e.to_string()),
    };
    print!("{}", summary.text());
    if let (Some(path), Some(handle)) = (&args.metrics_file, metrics)
        && let Err(e) = std::fs::write(path, handle.render())
    {
        return fail(format!("cannot write {}: {e}", path.display()));
    }
    if summary.acknowledged() {
        ExitCode::SUCCESS
    } else {
        eprintln!("nobody acknowledged the drill's alert");
        ExitCode::from(1)
    }
}
