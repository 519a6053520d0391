//! `labelwarden clock ISSUE`: one issue's stored story, read from the
//! database `serve` uses while it runs: where its clocks stand, then what
//! was received, fired, sent, held, refused and resent, oldest first.

use std::process::ExitCode;

use chrono::Utc;
use clap::Args;

use super::{DatabaseArg, PolicyArgs, fail, load_policies, on_store};
use crate::issue::IssueRef;

#[derive(Debug, Args)]
pub struct ClockArgs {
    /// The issue: `group/project#123`.
    issue: String,
    /// `text` (default) or `json`.
    #[arg(long, default_value = "text")]
    format: Format,
    #[command(flatten)]
    policies: PolicyArgs,
    #[command(flatten)]
    database: DatabaseArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: ClockArgs) -> ExitCode {
    let issue = match IssueRef::parse(&args.issue) {
        Ok(issue) => issue,
        Err(message) => return fail(message),
    };
    let policies = match load_policies(&args.policies.policies) {
        Ok(policies) => policies,
        Err(code) => return code,
    };
    on_store(&args.database, |store| async move {
        let now = Utc::now();
        match crate::inspect::issue_story(&store, &policies, &issue, now).await {
            Ok(Some(story)) => {
                match args.format {
                    Format::Text => print!("{}", crate::inspect::story::render(&story, now)),
                    Format::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&story).unwrap_or_default()
                    ),
                }
                ExitCode::SUCCESS
            }
            Ok(None) => {
                eprintln!(
                    "{issue} is not in the store: no webhook or reconcile has brought it yet \
                     (`labelwarden explain {issue}` reads it from GitLab)"
                );
                ExitCode::from(1)
            }
            Err(e) => fail(format!("cannot read the issue's story: {e}")),
        }
    })
}
