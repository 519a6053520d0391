//! `labelwarden outbox list|resend`: the notices waiting to be sent or
//! refused for good, read from the database `serve` uses (while it runs),
//! and failed ones queued again once their channel is fixed. `serve`
//! sends what is queued, in each thread's order, once across replicas.

use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Subcommand};

use super::{DatabaseArg, fail, on_store};
use crate::store::Store;
use crate::store::queued::{QueueFilter, QueuedNotice, QueuedState, ResendSelection};

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    database: DatabaseArg,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// The notices not sent yet, oldest first: waiting (with their next
    /// attempt) and failed (with their number and error).
    List {
        /// Only notices refused for good.
        #[arg(long)]
        failed: bool,
        /// Only notices for this policy channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only notices of this policy.
        #[arg(long)]
        policy: Option<String>,
        /// `table` (default) or `json`.
        #[arg(long, default_value = "table")]
        format: Format,
    },
    /// Queue failed notices again: `serve` sends them in order, each
    /// once, saying they are late and why.
    Resend {
        /// Every failed notice for this policy channel.
        #[arg(long, conflicts_with_all = ["id", "all_failed"])]
        channel: Option<String>,
        /// The failed notice with this number (from `outbox list`).
        #[arg(long, conflicts_with = "all_failed")]
        id: Option<i64>,
        /// Every failed notice.
        #[arg(long)]
        all_failed: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

pub fn run(args: OutboxArgs) -> ExitCode {
    on_store(&args.database, |store| async move {
        match args.action {
            Action::List {
                failed,
                channel,
                policy,
                format,
            } => {
                let filter = QueueFilter {
                    failed_only: failed,
                    channel,
                    policy,
                };
                match store.queued_notices(&filter, Utc::now()).await {
                    Ok(notices) => {
                        print!("{}", listing(&notices, format));
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(format!("cannot read the outbox: {e}")),
                }
            }
            Action::Resend {
                channel,
                id,
                all_failed,
            } => {
                let selection = match (channel, id, all_failed) {
                    (Some(channel), None, false) => ResendSelection::Channel(channel),
                    (None, Some(id), false) => ResendSelection::Id(id),
                    (None, None, true) => ResendSelection::AllFailed,
                    _ => return fail("give one of --channel C, --id N or --all-failed"),
                };
                match store.resend(&selection, Utc::now()).await {
                    Ok(0) => {
                        eprintln!(
                            "no failed notice matches: see `labelwarden outbox list --failed`"
                        );
                        ExitCode::from(1)
                    }
                    Ok(queued) => {
                        println!(
                            "queued {queued} failed notice{} again; `serve` sends {} in order, each once",
                            if queued == 1 { "" } else { "s" },
                            if queued == 1 { "it" } else { "them" },
                        );
                        tracing::info!(queued, selection = ?selection, "failed notices queued again");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(format!("cannot queue the notices again: {e}")),
                }
            }
        }
    })
}

/// The title as a listing shows it: a confidential issue's is left out.
pub(crate) fn shown_title(notice: &QueuedNotice) -> &str {
    if notice.confidential {
        "(confidential)"
    } else {
        &notice.title
    }
}

fn listing(notices: &[QueuedNotice], format: Format) -> String {
    match format {
        Format::Json => {
            let shown: Vec<QueuedNotice> = notices
                .iter()
                .cloned()
                .map(QueuedNotice::redacted)
                .collect();
            let mut text = serde_json::to_string_pretty(&shown).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Table if notices.is_empty() => "no notices waiting or failed\n".to_owned(),
        Format::Table => {
            let cells: Vec<[String; 7]> = notices
                .iter()
                .map(|n| {
                    let (state, when) = match n.state {
                        QueuedState::Waiting { next_attempt_at } => {
                            ("waiting".to_owned(), next_attempt_at)
                        }
                        QueuedState::Failed { failed_at } => ("failed".to_owned(), failed_at),
                    };
                    [
                        n.id.map(|id| id.to_string())
                            .unwrap_or_else(|| "-".to_owned()),
                        n.issue.to_string(),
                        format!("{} {}", n.policy, n.step_kind),
                        n.channel.clone().unwrap_or_else(|| "-".to_owned()),
                        format!("{state} {}", when.format("%Y-%m-%d %H:%M UTC")),
                        n.error.clone().unwrap_or_default(),
                        shown_title(n).to_owned(),
                    ]
                })
                .collect();
            let header = ["id", "issue", "step", "channel", "state", "error", "title"];
            let mut text = crate::audit::report::aligned(&header, &cells).join("\n");
            text.push('\n');
            text
        }
    }
}
