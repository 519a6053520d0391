//! `labelwarden doctor`: checks a setup against the live services and says,
//! line by line, what is right and how to fix what is not. Each area has
//! its room: the policy folder and the secrets `serve` needs (here, pure),
//! the database ([`database`]), GitLab ([`gitlab`]) and Slack ([`slack`]).
//! Nothing is written anywhere, and no secret is ever printed: a line
//! names the variable, never its value.

pub mod database;
pub mod gitlab;
pub mod ids;
pub mod slack;

use std::fmt;

use crate::policy::PolicySet;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Problem,
    /// Not checked: what it needs is not configured (said why).
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub status: Status,
    /// `policies`, `secrets`, `database`, `gitlab`, `webhook`, `slack`…
    pub area: &'static str,
    pub text: String,
    /// What to do about a problem.
    pub fix: Option<String>,
}

impl Line {
    pub fn ok(area: &'static str, text: impl Into<String>) -> Self {
        Line {
            status: Status::Ok,
            area,
            text: text.into(),
            fix: None,
        }
    }

    pub fn problem(area: &'static str, text: impl Into<String>, fix: impl Into<String>) -> Self {
        Line {
            status: Status::Problem,
            area,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skipped(area: &'static str, text: impl Into<String>) -> Self {
        Line {
            status: Status::Skipped,
            area,
            text: text.into(),
            fix: None,
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.status {
            Status::Ok => "ok  ",
            Status::Problem => "FAIL",
            Status::Skipped => "skip",
        };
        write!(f, "{mark} {:<9} {}", self.area, self.text)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n               fix: {fix}")?;
        }
        Ok(())
    }
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub lines: Vec<Line>,
}

impl Report {
    pub fn problems(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.status == Status::Problem)
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        match self.problems() {
            0 => write!(f, "all checks passed"),
            1 => write!(f, "1 problem"),
            n => write!(f, "{n} problems"),
        }
    }
}

/// Which secrets are set (never their values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretsSet {
    pub webhook_secret: bool,
    pub signing_secret: bool,
}

/// The GitLab token scope the policies need: `api` when a step writes on
/// issues (labels, comments), `read_api` otherwise.
pub fn needed_scope(policies: &PolicySet) -> &'static str {
    let writes = policies
        .policies
        .iter()
        .any(|p| p.steps.iter().any(|s| s.gitlab.is_some()));
    if writes { "api" } else { "read_api" }
}

/// Slack events are expected when a step waits for an acknowledgement:
/// `unless: acknowledged` needs 👀 to reach `serve`.
fn waits_for_acknowledgement(policies: &PolicySet) -> bool {
    policies
        .policies
        .iter()
        .any(|p| p.steps.iter().any(|s| s.unless_acknowledged))
}

/// The secrets `serve` needs with these policies.
pub fn secrets(policies: &PolicySet, set: SecretsSet, slack_notifier: bool) -> Vec<Line> {
    let mut lines = Vec::new();
    lines.push(if set.webhook_secret {
        Line::ok("secrets", "LABELWARDEN_WEBHOOK_SECRET is set")
    } else {
        Line::problem(
            "secrets",
            "LABELWARDEN_WEBHOOK_SECRET is not set: serve refuses to start",
            "set it to a long random string, and the same as the secret token of the GitLab webhook",
        )
    });
    if slack_notifier && waits_for_acknowledgement(policies) {
        lines.push(if set.signing_secret {
            Line::ok(
                "secrets",
                "SLACK_SIGNING_SECRET is set (acknowledgements from Slack are heard)",
            )
        } else {
            Line::problem(
                "secrets",
                "SLACK_SIGNING_SECRET is not set, but a policy waits for an acknowledgement (`unless: acknowledged`): nobody's 👀 will reach serve, and the escalation always fires",
                "set it to the Slack app's signing secret (Basic Information → App Credentials) and subscribe the app's events to /webhooks/slack",
            )
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::policy_set;

    const WAITING: &str = concat!(
        "channels:\n  alerts: { slack_channel: \"#alerts\" }\n",
        "policies:\n",
        "  - name: critical\n    match: { labels_any: [\"p1\"] }\n    clock: { target: 24h }\n",
        "    escalation:\n",
        "      - on: start\n        slack: { channel: alerts }\n",
        "      - on: { after_start: 30m, unless: acknowledged }\n        slack: { channel: alerts }\n",
    );

    #[test]
    fn the_scope_needed_follows_what_steps_write() {
        assert_eq!(needed_scope(&policy_set(WAITING)), "read_api");
        let writing = WAITING.replace(
            "      - on: start\n        slack: { channel: alerts }\n",
            "      - on: start\n        slack: { channel: alerts }\n        gitlab: { comment: true }\n",
        );
        assert_eq!(needed_scope(&policy_set(&writing)), "api");
    }

    #[test]
    fn a_missing_secret_is_a_problem_with_its_fix_and_never_a_value() {
        let policies = policy_set(WAITING);
        let none = secrets(&policies, SecretsSet::default(), true);
        assert_eq!(none.len(), 2);
        assert!(none.iter().all(|l| l.status == Status::Problem));
        assert!(none[1].text.contains("unless: acknowledged"));
        let all = SecretsSet {
            webhook_secret: true,
            signing_secret: true,
        };
        assert!(
            secrets(&policies, all, true)
                .iter()
                .all(|l| l.status == Status::Ok)
        );
        // Logging only: Slack's events are not expected.
        assert_eq!(secrets(&policies, SecretsSet::default(), false).len(), 1);
    }

    #[test]
    fn the_report_counts_problems_and_shows_each_fix() {
        let report = Report {
            lines: vec![
                Line::ok("policies", "4 policies valid"),
                Line::problem("gitlab", "the token lacks `api`", "create one with `api`"),
                Line::skipped("slack", "SLACK_BOT_TOKEN is not set"),
            ],
        };
        assert_eq!(report.problems(), 1);
        let shown = report.to_string();
        assert!(shown.contains("FAIL gitlab"), "{shown}");
        assert!(shown.contains("fix: create one with `api`"), "{shown}");
        assert!(shown.ends_with("1 problem"), "{shown}");
    }
}
