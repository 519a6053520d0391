//! `labelwarden explain group/project#123`: one live issue under every
//! policy, read from the GitLab API: whether each matches and why not, the
//! clock, the status, the steps fired (from the markers on the issue) and
//! what comes next.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;

use super::{fail, gitlab_client_or_exit, load_policies};
use crate::audit::explain::explain;
use crate::gitlab::actions::{IssueLedger, IssueWriter};
use crate::gitlab::history::IssueReader;
use crate::issue::IssueRef;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The issue: `group/project#123`.
    issue: String,
    /// Folder of policy files.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// Explain as of this instant (RFC 3339) instead of now.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
}

pub fn run(args: ExplainArgs) -> ExitCode {
    let reference = match IssueRef::parse(&args.issue) {
        Ok(reference) => reference,
        Err(message) => return fail(message),
    };
    let policies = match load_policies(&args.policies) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let client = match gitlab_client_or_exit(4, "`read_api`") {
        Ok(client) => client,
        Err(code) => return code,
    };
    let runtime = match super::small_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let read = runtime.block_on(async {
        let fetched = IssueReader::new(client.clone()).one(&reference).await?;
        let notes = IssueWriter::new(client).notes(&reference).await?;
        Ok::<_, crate::gitlab::GitLabError>((fetched, IssueLedger::from_notes(&notes)))
    });
    match read {
        Ok((fetched, ledger)) => {
            let now = args.now.unwrap_or_else(Utc::now);
            // Read as `serve` and `audit` read it: a close that moved it or
            // marked it a duplicate is no resolution.
            for fetched in crate::audit::identity::follow(vec![fetched], &policies, now) {
                print!("{}", explain(&fetched, &ledger, &policies, now));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
