//! `labelwarden test`: runs the policy tests in the policy folder's
//! `tests/` (see [`crate::scenario`]). Exit 0 when every case passes, 1
//! when one fails, 2 when a policy or test file is invalid (each error
//! with file:line).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{fail, invalid, load_policies};
use crate::scenario::{self, report};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Folder of policy files; its `tests/` holds the policy tests.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// `text` (a line per case, a summary) or `junit` (XML for a merge
    /// request's test widget).
    #[arg(long, value_enum, default_value_t = TestFormat::Text)]
    format: TestFormat,
    /// Write the `--format` report here; the text report still goes to
    /// stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TestFormat {
    Text,
    Junit,
}

pub fn run(args: TestArgs) -> ExitCode {
    let set = match load_policies(&args.policies) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let files = match scenario::load(&args.policies, &set) {
        Ok(files) => files,
        Err(errors) => return invalid("policy tests", &errors),
    };
    if files.is_empty() {
        println!(
            "no policy tests: write them in {}",
            args.policies
                .join(crate::policy::folder::TESTS_FOLDER)
                .display()
        );
        return ExitCode::SUCCESS;
    }
    let results: Vec<report::FileResults<'_>> = files
        .iter()
        .map(|file| report::FileResults {
            path: &file.path,
            results: file
                .cases
                .iter()
                .map(|case| scenario::run_case(case, &set))
                .collect(),
        })
        .collect();
    let failed = results.iter().flat_map(|f| &f.results).any(|r| !r.passed());
    let chosen = match args.format {
        TestFormat::Text => report::text(&results),
        TestFormat::Junit => report::junit(&results),
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &chosen) {
                return fail(format!("cannot write {}: {e}", path.display()));
            }
            if args.format != TestFormat::Text {
                print!("{}", report::text(&results));
            }
        }
        None => print!("{chosen}"),
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
