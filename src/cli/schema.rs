//! `labelwarden schema`: the JSON Schema of policy files (or, with
//! `--tests`, of policy test files), generated from the same types the
//! loaders parse, so it cannot drift from what is accepted.

use std::process::ExitCode;

use clap::Args;

use crate::policy::file::PolicyFile;
use crate::scenario::file::TestFile;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The schema of policy test files (`policies/tests/*.yml`).
    #[arg(long)]
    tests: bool,
}

/// The schema of policy files, or with `tests` of policy test files.
pub(super) fn policy_schema(tests: bool) -> schemars::Schema {
    if tests {
        schemars::schema_for!(TestFile)
    } else {
        schemars::schema_for!(PolicyFile)
    }
}

pub fn run(args: SchemaArgs) -> ExitCode {
    let schema = policy_schema(args.tests);
    match serde_json::to_string_pretty(&schema) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot render the schema: {e}");
            ExitCode::FAILURE
        }
    }
}
