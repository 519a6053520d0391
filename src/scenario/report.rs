//! What `labelwarden test` prints: a line per case under its file, each
//! failure with expected and actual side by side, and a summary, like a
//! test runner; or JUnit XML for a merge request's test widget.
//!
//! Pure: it renders results it is given.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::CaseResult;
use super::verdict::{Failure, describe_sent};

/// One file's results.
pub struct FileResults<'a> {
    pub path: &'a std::path::Path,
    pub results: Vec<CaseResult>,
}

/// The widest column before the two sides wrap onto their own lines.
const SIDE_BY_SIDE_WIDTH: usize = 60;

/// The text report.
pub fn text(files: &[FileResults<'_>]) -> String {
    let mut out = String::new();
    for file in files {
        let _ = writeln!(out, "{}", file.path.display());
        for result in &file.results {
            if result.passed() {
                let _ = writeln!(out, "  ok    {}", result.case.name);
                continue;
            }
            let _ = writeln!(out, "  FAIL  {}  ({})", result.case.name, result.case.at);
            for failure in &result.failures {
                out.push_str(&failure_text(failure, "        "));
            }
        }
    }
    let (passed, failed) = counts(files);
    let cases = passed + failed;
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    let _ = writeln!(
        out,
        "\ntest result: {verdict}. {passed} passed; {failed} failed ({cases} {} in {} {})",
        if cases == 1 { "case" } else { "cases" },
        files.len(),
        if files.len() == 1 { "file" } else { "files" }
    );
    out
}

fn counts(files: &[FileResults<'_>]) -> (usize, usize) {
    let all = files.iter().flat_map(|f| &f.results);
    let passed = all.clone().filter(|r| r.passed()).count();
    (passed, all.count() - passed)
}

/// One failure: where, what, and both sides.
pub fn failure_text(failure: &Failure, indent: &str) -> String {
    let mut out = format!(
        "{indent}at {} (line {}): {}\n",
        failure.at, failure.line, failure.what
    );
    let widest = failure
        .expected
        .iter()
        .map(|line| line.chars().count())
        .max()
        .unwrap_or(0)
        .max("expected".len());
    if widest <= SIDE_BY_SIDE_WIDTH {
        let _ = writeln!(out, "{indent}  {:<widest$}  | actual", "expected");
        for row in 0..failure.expected.len().max(failure.actual.len()) {
            let expected = failure.expected.get(row).map_or("", String::as_str);
            let actual = failure.actual.get(row).map_or("", String::as_str);
            let _ = writeln!(out, "{indent}  {expected:<widest$}  | {actual}");
        }
    } else {
        let _ = writeln!(out, "{indent}  expected:");
        for line in &failure.expected {
            let _ = writeln!(out, "{indent}    {line}");
        }
        let _ = writeln!(out, "{indent}  actual:");
        for line in &failure.actual {
            let _ = writeln!(out, "{indent}    {line}");
        }
    }
    for note in &failure.notes {
        let _ = writeln!(out, "{indent}  - {note}");
    }
    out
}

/// JUnit XML: a suite per file, a case per test case, each failure with
/// its side-by-side text, and the steps the case sent as system output.
pub fn junit(files: &[FileResults<'_>]) -> String {
    let mut report = Report::new("labelwarden policy tests");
    for file in files {
        let name = file.path.display().to_string();
        let mut suite = TestSuite::new(name.clone());
        for result in &file.results {
            let status = if result.passed() {
                TestCaseStatus::success()
            } else {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let first = &result.failures[0];
                status
                    .set_message(format!(
                        "at {} (line {}): {} differs{}",
                        first.at,
                        first.line,
                        first.what,
                        match result.failures.len() {
                            1 => String::new(),
                            n => format!(", and {} more", n - 1),
                        }
                    ))
                    .set_type("policy_test_failure")
                    .set_description(
                        result
                            .failures
                            .iter()
                            .map(|f| failure_text(f, ""))
                            .collect::<String>(),
                    );
                status
            };
            let mut case = TestCase::new(result.case.name.clone(), status);
            case.set_classname(name.clone())
                .set_time(Duration::ZERO)
                .set_system_out(
                    result
                        .sent
                        .iter()
                        .map(|s| describe_sent(s, result.case.issue.created_at) + "\n")
                        .collect::<String>(),
                );
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().unwrap_or_default()
}
