//! Policy tests: `labelwarden test`. Files in the policy folder's `tests/`
//! (`policies/tests/*.yml`, which the policy loader skips) tell an issue's
//! story (its labels, type, confidentiality and assignees when created;
//! labels added and removed, closes, reopens and acknowledgements after)
//! and say what must hold at given times: the clock's status, deadline,
//! time left, and exactly which steps were sent, where, tagging whom,
//! with what text. Each case runs through the same clock and engine as
//! `serve` and `audit` ([`simulate`]); [`verdict`] compares; [`report`]
//! prints a line per case, a summary, and JUnit for merge requests.
//!
//! [`load`] is the one part that reads files.

pub mod compile;
pub mod file;
pub mod report;
pub mod simulate;
pub mod verdict;

use std::path::{Path, PathBuf};

use crate::policy::folder::{TESTS_FOLDER, yaml_files};
use crate::policy::{PolicyError, PolicySet, shape};
pub use compile::Case;
pub use verdict::Failure;

/// The cases of one test file.
#[derive(Debug, Clone)]
pub struct TestFileCases {
    pub path: PathBuf,
    pub cases: Vec<Case>,
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
    pub failures: Vec<Failure>,
    /// Every step the run sent, for the JUnit system output.
    pub sent: Vec<simulate::Sent>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Every test file under `policies`' tests folder, parsed and checked
/// against `set`: the cases by file, or every error in every file.
pub fn load(policies: &Path, set: &PolicySet) -> Result<Vec<TestFileCases>, Vec<PolicyError>> {
    let folder = policies.join(TESTS_FOLDER);
    let paths = if folder.is_dir() {
        yaml_files(&folder, None).map_err(|e| {
            vec![PolicyError::ReadFolder {
                dir: folder.clone(),
                message: e.to_string(),
            }]
        })?
    } else {
        Vec::new()
    };
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                errors.push(PolicyError::ReadFile {
                    file: path,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let (parsed, shape_errors) = shape::parse::<file::TestFile>(&path, &text);
        errors.extend(shape_errors);
        let Some(parsed) = parsed else { continue };
        match compile::compile(&path, parsed, set) {
            Ok(cases) => files.push(TestFileCases { path, cases }),
            Err(more) => errors.extend(more),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// Runs one case and judges it.
pub fn run_case(case: &Case, set: &PolicySet) -> CaseResult {
    let outcome = simulate::run(case, set);
    CaseResult {
        case: case.clone(),
        failures: verdict::judge(case, &outcome),
        sent: outcome.sent,
    }
}
