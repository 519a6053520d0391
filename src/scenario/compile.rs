//! Turns a parsed test file into [`Case`]s: times resolved against the
//! issue's creation, durations parsed, and every name checked against the
//! policy set (a test naming a policy, step or channel that does not
//! exist is invalid, not failing). Every error is collected, each with
//! file, line, column and field.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::file::{CaseEntry, ExpectEntry, HistoryEntry, SentEntry, TestFile};
use crate::policy::file::Located;
use crate::policy::{PolicyError, PolicyName, PolicySet, SourceLocation, duration};

/// When a test issue is created unless it says otherwise: a Monday
/// morning, so business hours and weekly rotations read plainly.
pub fn default_created_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// One case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub at: SourceLocation,
    /// The policy `status`, `deadline`, `remaining` and `overdue` read.
    pub policy: Option<PolicyName>,
    pub issue: TestIssue,
    pub history: Vec<Happening>,
    pub checkpoints: Vec<Checkpoint>,
}

/// The issue when it is created.
#[derive(Debug, Clone)]
pub struct TestIssue {
    pub labels: Vec<String>,
    pub issue_type: String,
    pub confidential: bool,
    pub assignees: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub title: String,
    pub author: Option<String>,
    pub milestone: Option<String>,
    pub weight: Option<u32>,
}

/// What happens to the issue at one instant.
#[derive(Debug, Clone, Default)]
pub struct Happening {
    pub at: DateTime<Utc>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub close: bool,
    pub reopen: bool,
    pub acknowledge: bool,
    pub assign: Vec<String>,
    pub unassign: Vec<String>,
}

/// What must hold at one instant.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub at: DateTime<Utc>,
    /// How the file wrote `at`, for messages.
    pub written: String,
    pub line: u32,
    pub status: Option<String>,
    /// `Some(None)`: no deadline.
    pub deadline: Option<Option<DateTime<Utc>>>,
    pub remaining: Option<TimeDelta>,
    pub overdue: Option<TimeDelta>,
    pub sent: Option<Vec<ExpectedSend>>,
}

/// One step expected among those sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpectedSend {
    pub step: String,
    pub policy: Option<String>,
    pub at: Option<DateTime<Utc>>,
    /// `Some(None)`: no Slack part.
    pub channel: Option<Option<String>>,
    pub mentions: Option<Vec<String>>,
    pub labels_added: Option<Vec<String>>,
    pub assigns: Option<Vec<String>>,
    pub comment: Option<bool>,
    pub react: Option<String>,
    pub contains: Vec<String>,
    pub not_contains: Vec<String>,
}

/// Statuses a clock can have, as `SlaStatus::kind` names them.
const STATUSES: &[&str] = &[
    "not_matching",
    "running",
    "paused",
    "breached",
    "met",
    "missed",
    "withdrawn",
    "withdrawn_after_breach",
];

/// Collects the errors of one file while it is compiled.
struct Compiler<'a> {
    file: Arc<std::path::PathBuf>,
    set: &'a PolicySet,
    errors: Vec<PolicyError>,
}

/// The cases of one parsed file, or every error in it.
pub fn compile(
    path: &Path,
    file: TestFile,
    set: &PolicySet,
) -> Result<Vec<Case>, Vec<PolicyError>> {
    let mut compiler = Compiler {
        file: Arc::new(path.to_owned()),
        set,
        errors: Vec::new(),
    };
    let mut cases = Vec::new();
    for (index, entry) in file.tests.into_iter().enumerate() {
        let at = compiler.location(&entry);
        if let Some(case) = compiler.case(index, at, entry.value) {
            cases.push(case);
        }
    }
    if compiler.errors.is_empty() {
        Ok(cases)
    } else {
        Err(compiler.errors)
    }
}

impl Compiler<'_> {
    fn location<T>(&self, located: &Located<T>) -> SourceLocation {
        SourceLocation {
            file: Arc::clone(&self.file),
            line: located.line,
            column: located.column,
        }
    }

    fn error<T>(&mut self, at: &Located<T>, field: String, message: String) {
        self.errors.push(PolicyError::Invalid {
            at: self.location(at),
            field,
            message,
        });
    }

    fn case(&mut self, index: usize, at: SourceLocation, entry: CaseEntry) -> Option<Case> {
        let field = format!("tests[{index}]");
        let errors_before = self.errors.len();
        let policy = entry
            .policy
            .as_ref()
            .and_then(|name| self.policy_name(name, format!("{field}.policy")));
        let issue = &entry.issue.value;
        let created_at = match &issue.created_at {
            None => default_created_at(),
            Some(written) => match DateTime::parse_from_rfc3339(written.value.trim()) {
                Ok(at) => at.with_timezone(&Utc),
                Err(_) => {
                    self.error(
                        written,
                        format!("{field}.issue.created_at"),
                        format!(
                            "`{}` is not an instant like 2026-01-05T09:00:00Z",
                            written.value
                        ),
                    );
                    default_created_at()
                }
            },
        };
        let test_issue = TestIssue {
            labels: issue.labels.clone(),
            issue_type: issue
                .issue_type
                .clone()
                .unwrap_or_else(|| "issue".to_owned())
                .to_lowercase(),
            confidential: issue.confidential,
            assignees: issue.assignees.clone(),
            created_at,
            title: issue
                .title
                .clone()
                .unwrap_or_else(|| "A test issue".to_owned()),
            author: issue.author.clone(),
            milestone: issue.milestone.clone(),
            weight: issue.weight,
        };
        let history = entry
            .history
            .iter()
            .enumerate()
            .filter_map(|(n, happening)| {
                self.happening(happening, created_at, format!("{field}.history[{n}]"))
            })
            .collect::<Vec<_>>();
        if entry.expect.is_empty() {
            self.error(
                &entry.name,
                format!("{field}.expect"),
                "a case needs at least one expectation".to_owned(),
            );
        }
        let mut checkpoints: Vec<Checkpoint> = entry
            .expect
            .iter()
            .enumerate()
            .filter_map(|(n, expect)| {
                self.checkpoint(expect, created_at, format!("{field}.expect[{n}]"))
            })
            .collect();
        checkpoints.sort_by_key(|c| c.at);
        let needs_policy = checkpoints.iter().any(|c| {
            c.status.is_some()
                || c.deadline.is_some()
                || c.remaining.is_some()
                || c.overdue.is_some()
        });
        if needs_policy
            && policy.is_none()
            && entry.policy.is_none()
            && self.set.policies.len() != 1
        {
            self.error(
                &entry.name,
                format!("{field}.policy"),
                "say which policy's clock `status`, `deadline`, `remaining` and `overdue` read"
                    .to_owned(),
            );
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Case {
            name: entry.name.value,
            at,
            policy: policy.or_else(|| {
                (self.set.policies.len() == 1).then(|| self.set.policies[0].name.clone())
            }),
            issue: test_issue,
            history,
            checkpoints,
        })
    }

    fn policy_name(&mut self, name: &Located<String>, field: String) -> Option<PolicyName> {
        let wanted = PolicyName(name.value.trim().to_owned());
        if self.set.get(&wanted).is_some() {
            return Some(wanted);
        }
        let known: Vec<&str> = self
            .set
            .policies
            .iter()
            .map(|p| p.name.0.as_str())
            .collect();
        self.error(
            name,
            field,
            format!(
                "no policy named `{}` (defined: {})",
                name.value,
                known.join(", ")
            ),
        );
        None
    }

    /// A time as a test writes it: a duration after creation or an instant.
    fn instant(
        &mut self,
        written: &Located<String>,
        created_at: DateTime<Utc>,
        field: String,
    ) -> Option<DateTime<Utc>> {
        match instant(&written.value, created_at) {
            Ok(at) => Some(at),
            Err(message) => {
                self.error(written, field, message);
                None
            }
        }
    }

    fn happening(
        &mut self,
        entry: &Located<HistoryEntry>,
        created_at: DateTime<Utc>,
        field: String,
    ) -> Option<Happening> {
        let value = &entry.value;
        let at = self.instant(&value.at, created_at, format!("{field}.at"))?;
        if value.close && value.reopen {
            self.error(
                entry,
                field.clone(),
                "`close` and `reopen` at the same instant: write them at two times".to_owned(),
            );
        }
        let happening = Happening {
            at,
            add: value.add.clone(),
            remove: value.remove.clone(),
            close: value.close,
            reopen: value.reopen,
            acknowledge: value.acknowledge,
            assign: value.assign.clone(),
            unassign: value.unassign.clone(),
        };
        let nothing = happening.add.is_empty()
            && happening.remove.is_empty()
            && !happening.close
            && !happening.reopen
            && !happening.acknowledge
            && happening.assign.is_empty()
            && happening.unassign.is_empty();
        if nothing {
            self.error(
                entry,
                field,
                "nothing happens: say `add`, `remove`, `close`, `reopen`, `acknowledge`, `assign` or `unassign`".to_owned(),
            );
            return None;
        }
        Some(happening)
    }

    fn checkpoint(
        &mut self,
        entry: &Located<ExpectEntry>,
        created_at: DateTime<Utc>,
        field: String,
    ) -> Option<Checkpoint> {
        let value = &entry.value;
        let at = self.instant(&value.at, created_at, format!("{field}.at"))?;
        let status = value.status.as_ref().and_then(|status| {
            let kind = status.value.trim().to_lowercase().replace([' ', '-'], "_");
            if STATUSES.contains(&kind.as_str()) {
                Some(kind)
            } else {
                self.error(
                    status,
                    format!("{field}.status"),
                    format!(
                        "`{}` is not a status ({})",
                        status.value,
                        STATUSES.join(", ")
                    ),
                );
                None
            }
        });
        let deadline = value.deadline.as_ref().and_then(|deadline| {
            if deadline.value.trim() == "none" {
                return Some(None);
            }
            self.instant(deadline, created_at, format!("{field}.deadline"))
                .map(Some)
        });
        let remaining = value
            .remaining
            .as_ref()
            .and_then(|d| self.duration(d, format!("{field}.remaining")));
        let overdue = value
            .overdue
            .as_ref()
            .and_then(|d| self.duration(d, format!("{field}.overdue")));
        let sent = value.sent.as_ref().map(|list| {
            list.value
                .iter()
                .enumerate()
                .filter_map(|(n, sent)| self.sent(sent, created_at, format!("{field}.sent[{n}]")))
                .collect()
        });
        Some(Checkpoint {
            at,
            written: value.at.value.trim().to_owned(),
            line: entry.line,
            status,
            deadline,
            remaining,
            overdue,
            sent,
        })
    }

    /// A duration that may be zero (`0s`): time left or overdue.
    fn duration(&mut self, written: &Located<String>, field: String) -> Option<TimeDelta> {
        match zero_or_duration(&written.value) {
            Ok(delta) => Some(delta),
            Err(message) => {
                self.error(written, field, message);
                None
            }
        }
    }

    fn sent(
        &mut self,
        entry: &Located<SentEntry>,
        created_at: DateTime<Utc>,
        field: String,
    ) -> Option<ExpectedSend> {
        let value = &entry.value;
        let policy = match &value.policy {
            Some(name) => Some(self.policy_name(name, format!("{field}.policy"))?.0),
            None => None,
        };
        let step = value.step.value.trim().to_owned();
        let known_step = self
            .set
            .policies
            .iter()
            .filter(|p| policy.as_ref().is_none_or(|name| &p.name.0 == name))
            .any(|p| p.steps.iter().any(|s| s.id.0 == step));
        if !known_step {
            self.error(
                &value.step,
                format!("{field}.step"),
                format!(
                    "no step `{step}` in {}",
                    policy
                        .as_ref()
                        .map_or("any policy".to_owned(), |p| format!("policy `{p}`"))
                ),
            );
        }
        let channel = match &value.channel {
            None => None,
            Some(name) if name.value.trim() == "none" => Some(None),
            Some(name) if self.set.channels.contains_key(name.value.trim()) => {
                Some(Some(name.value.trim().to_owned()))
            }
            Some(name) => {
                let known: Vec<&str> = self.set.channels.keys().map(String::as_str).collect();
                self.error(
                    name,
                    format!("{field}.channel"),
                    format!(
                        "no channel named `{}` (defined: {})",
                        name.value,
                        known.join(", ")
                    ),
                );
                None
            }
        };
        let at = match &value.at {
            Some(at) => Some(self.instant(at, created_at, format!("{field}.at"))?),
            None => None,
        };
        known_step.then(|| ExpectedSend {
            step,
            policy,
            at,
            channel,
            mentions: value.mentions.clone(),
            labels_added: value.labels_added.clone(),
            assigns: value.assigns.clone(),
            comment: value.comment,
            react: value.react.clone(),
            contains: value.contains.clone(),
            not_contains: value.not_contains.clone(),
        })
    }
}

/// `0s`, or a duration as policies write them.
fn zero_or_duration(text: &str) -> Result<TimeDelta, String> {
    let trimmed = text.trim();
    if trimmed.trim_end_matches(['s', 'm', 'h', 'd']) == "0" {
        return Ok(TimeDelta::zero());
    }
    duration::parse(trimmed)
}

/// A time as a test writes it: a duration after `created_at` (`0s`,
/// `30m`, `1d 2h`) or an RFC 3339 instant, never before creation.
pub fn instant(text: &str, created_at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let trimmed = text.trim();
    let at = match DateTime::parse_from_rfc3339(trimmed) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let after = zero_or_duration(trimmed).map_err(|_| {
                format!(
                    "`{trimmed}` is neither a time after creation like `30m` or `1d 2h` nor an instant like 2026-01-05T09:00:00Z"
                )
            })?;
            created_at + after
        }
    };
    if at < created_at {
        return Err(format!(
            "`{trimmed}` is before the issue was created ({})",
            created_at.to_rfc3339()
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_after_creation_or_instants() {
        let created = default_created_at();
        assert_eq!(instant("0s", created), Ok(created));
        assert_eq!(
            instant("1d 2h", created),
            Ok(created + TimeDelta::hours(26))
        );
        assert_eq!(
            instant("2026-01-06T09:00:00Z", created),
            Ok(created + TimeDelta::days(1))
        );
        let before = instant("2026-01-04T09:00:00Z", created).unwrap_err();
        assert!(before.contains("before the issue was created"), "{before}");
        let nonsense = instant("tomorrow", created).unwrap_err();
        assert!(
            nonsense.contains("neither a time after creation"),
            "{nonsense}"
        );
    }
}
