//! `labelwarden clocks`: the clocks the store holds, as of now (issue,
//! policy, status, deadline, next step, acknowledged by), read from the
//! database `serve` uses while it runs.

use std::process::ExitCode;

use chrono::Utc;
use clap::Args;

use super::{DatabaseArg, PolicyArgs, fail, load_policies, on_store};
use crate::inspect::{ClockFilter, ClockView};

#[derive(Debug, Args)]
pub struct ClocksArgs {
    /// Only this policy's clocks.
    #[arg(long)]
    policy: Option<String>,
    /// Only clocks in this status as of now: running, paused, breached,
    /// met, missed, withdrawn, withdrawn_after_breach.
    #[arg(long)]
    status: Option<String>,
    /// `table` (default) or `json`.
    #[arg(long, default_value = "table")]
    format: Format,
    #[command(flatten)]
    policies: PolicyArgs,
    #[command(flatten)]
    database: DatabaseArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

pub fn run(args: ClocksArgs) -> ExitCode {
    let policies = match load_policies(&args.policies.policies) {
        Ok(policies) => policies,
        Err(code) => return code,
    };
    on_store(&args.database, |store| async move {
        let filter = ClockFilter {
            policy: args.policy,
            status: args.status,
            issues: None,
        };
        match crate::inspect::clocks(&store, &policies, &filter, Utc::now()).await {
            Ok(clocks) => {
                print!("{}", shown(&clocks, args.format));
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("cannot read the clocks: {e}")),
        }
    })
}

fn shown(clocks: &[ClockView], format: Format) -> String {
    let time = |at: chrono::DateTime<Utc>| at.format("%Y-%m-%d %H:%M UTC").to_string();
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(clocks).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Table if clocks.is_empty() => "no clocks in the store\n".to_owned(),
        Format::Table => {
            let cells: Vec<[String; 7]> = clocks
                .iter()
                .map(|c| {
                    [
                        c.issue.to_string(),
                        c.policy.0.clone(),
                        c.status_text.clone(),
                        c.deadline.map(time).unwrap_or_else(|| "-".to_owned()),
                        c.next_step
                            .as_ref()
                            .map(|n| format!("{} at {}", n.step, time(n.at)))
                            .unwrap_or_else(|| "-".to_owned()),
                        c.acknowledged_by.clone().unwrap_or_else(|| "-".to_owned()),
                        if c.confidential {
                            "(confidential)".to_owned()
                        } else {
                            c.title.clone()
                        },
                    ]
                })
                .collect();
            let header = [
                "issue",
                "policy",
                "status",
                "deadline",
                "next step",
                "acknowledged by",
                "title",
            ];
            let mut text = crate::audit::report::aligned(&header, &cells).join("\n");
            text.push('\n');
            text
        }
    }
}
