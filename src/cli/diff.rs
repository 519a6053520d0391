//! `labelwarden diff`: what a change to the policy files would do to the
//! open issues of a project or group (see [`crate::diff`]). Reads the
//! issues once, with the same client and request budget as `audit`.
//! Exit 0 whatever the change does (it is a report), 2 on configuration,
//! access or invalid policies.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;

use super::audit::parse_duration;
use super::progress::Progress;
use super::{fail, gitlab_client_or_exit, load_policies, scope_and_runtime};
use crate::diff::base::{self, FromGitLab};
use crate::diff::render::{self, DiffFormat, MR_NOTE_MARKER};
use crate::gitlab::history::{IssueReader, ReadOptions};
use crate::gitlab::repository;
use crate::policy::PolicySet;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["project", "group"])))]
pub struct DiffArgs {
    /// The policies before the change: a folder, or a git commit, branch
    /// or tag (the policy folder at that commit; in a merge request,
    /// `$CI_MERGE_REQUEST_DIFF_BASE_SHA`).
    #[arg(long)]
    base: String,
    /// The policies after the change.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// The issues of one project (`group/name`).
    #[arg(long)]
    project: Option<String>,
    /// The issues of a group with all its subgroups.
    #[arg(long)]
    group: Option<String>,
    /// `table`, `json` or `markdown`.
    #[arg(long, value_enum, default_value = "table")]
    format: DiffFormat,
    /// Write the report here instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Compare as of this instant (RFC 3339) instead of now.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
    /// The most GitLab API requests in flight at once: the ceiling of the
    /// adaptive limit, which starts low and grows while GitLab keeps up.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Also read issues closed this long before now.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    closed_within: TimeDelta,
    /// Where to read a `--base` commit from when there is no local git
    /// checkout: a project id or path (default `$CI_PROJECT_ID`).
    #[arg(long, env = "CI_PROJECT_ID")]
    base_project: Option<String>,
    /// Post the Markdown report on the pipeline's merge request
    /// (`CI_MERGE_REQUEST_IID` of `CI_MERGE_REQUEST_PROJECT_ID`), as one
    /// note updated in place on later pushes. Needs a token with `api`.
    #[arg(long)]
    mr_note: bool,
}

/// The merge request a pipeline runs for, from GitLab's predefined variables.
fn merge_request() -> Result<(String, u64), String> {
    let project = std::env::var("CI_MERGE_REQUEST_PROJECT_ID")
        .or_else(|_| std::env::var("CI_PROJECT_ID"))
        .map_err(|_| "--mr-note: CI_PROJECT_ID is not set (not in a merge-request pipeline?)")?;
    let iid = std::env::var("CI_MERGE_REQUEST_IID").map_err(
        |_| "--mr-note: CI_MERGE_REQUEST_IID is not set: run it in a merge-request pipeline",
    )?;
    let iid = iid
        .trim()
        .parse()
        .map_err(|_| format!("--mr-note: CI_MERGE_REQUEST_IID `{iid}` is not a number"))?;
    Ok((project, iid))
}

pub fn run(args: DiffArgs) -> ExitCode {
    let after = match load_policies(&args.policies) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let note_target = match args.mr_note.then(merge_request).transpose() {
        Ok(target) => target,
        Err(message) => return fail(message),
    };
    let client = match gitlab_client_or_exit(
        args.concurrency.max(1),
        if args.mr_note { "`api`" } else { "`read_api`" },
    ) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let (scope, runtime) = match scope_and_runtime(&args.project, &args.group) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let gitlab = args.base_project.as_deref().map(|project| FromGitLab {
        client: &client,
        project,
    });
    let before = match runtime.block_on(base::load(&args.base, &args.policies, gitlab)) {
        Ok(set) => set,
        Err(e) => return fail(e),
    };
    let now = args.now.unwrap_or_else(Utc::now);
    // One read finds every issue either policy set can match.
    let both = PolicySet {
        channels: after.channels.clone(),
        people: after.people.clone(),
        policies: before
            .policies
            .iter()
            .chain(&after.policies)
            .cloned()
            .collect(),
        maintenance: Vec::new(),
        calendars: after.calendars.clone(),
        warnings: Vec::new(),
    };
    let reader = IssueReader::new(client.clone());
    let progress = Progress::new();
    let fetched = runtime.block_on(reader.read_all(
        &scope,
        &both,
        now,
        &ReadOptions {
            window: args.closed_within,
            ..ReadOptions::default()
        },
        &|done, found| progress.show(done, found),
    ));
    progress.finish();
    let fetched = match fetched {
        Ok(fetched) => crate::audit::identity::follow(fetched, &after, now),
        Err(e) => return fail(e),
    };
    tracing::info!(
        issues = fetched.len(),
        requests = reader.client().requests_made(),
        "read from GitLab"
    );
    let diff = crate::diff::compare(&fetched, &before, &after, now);
    let scope_text = scope.to_string();
    let report = render::render(args.format, &diff, &scope_text);
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &report) {
                return fail(format!("cannot write {}: {e}", path.display()));
            }
        }
        None => {
            if let Err(e) = std::io::stdout().lock().write_all(report.as_bytes()) {
                return fail(format!("cannot write the report: {e}"));
            }
        }
    }
    if let Some((project, iid)) = note_target {
        let body = render::render(DiffFormat::Markdown, &diff, &scope_text);
        debug_assert!(body.contains(MR_NOTE_MARKER));
        match runtime.block_on(repository::upsert_merge_request_note(
            &client,
            &project,
            iid,
            MR_NOTE_MARKER,
            &body,
        )) {
            Ok(note) => eprintln!("diff posted on merge request !{iid} (note {note})"),
            Err(e) => return fail(format!("--mr-note: {e}")),
        }
    }
    ExitCode::SUCCESS
}
