//! `labelwarden check`: validates the policy folder and prints one line per
//! policy, so a reviewer sees at a glance what a change to `policies/` does.

use std::path::Path;
use std::process::ExitCode;

use chrono::TimeDelta;

use super::invalid;
use crate::policy::{self, Policy, PolicySet, StartRule, StopRule, duration};

pub fn run(dir: &Path) -> ExitCode {
    match policy::load(dir) {
        Ok(set) => {
            for warning in &set.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", summary(&set));
            ExitCode::SUCCESS
        }
        Err(errors) => invalid(&dir.display().to_string(), &errors),
    }
}

/// One line per policy, then a total.
pub fn summary(set: &PolicySet) -> String {
    let width = set
        .policies
        .iter()
        .map(|p| p.name.0.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for policy in &set.policies {
        out.push_str(&format!(
            "{:<width$}  {}\n",
            policy.name.0,
            describe(policy)
        ));
    }
    for window in &set.maintenance {
        out.push_str(&format!(
            "maintenance {}  silences {} `{}`  {}\n",
            window.name,
            window.scope.as_str(),
            window.target,
            window.schedule()
        ));
    }
    for calendar in set.calendars.values() {
        let weekly: i64 = calendar
            .week
            .iter()
            .flatten()
            .map(|w| i64::from(w.until - w.from))
            .sum();
        out.push_str(&format!(
            "calendar {}  {}: {} working a week, {} holiday{} (`labelwarden calendar {}` shows them)\n",
            calendar.name,
            calendar.time_zone,
            policy::calendar::hours(TimeDelta::seconds(weekly)),
            calendar.closures.len(),
            plural(calendar.closures.len()),
            calendar.name,
        ));
    }
    let calendars = match set.calendars.len() {
        0 => String::new(),
        n => format!(", {n} calendar{}", plural(n)),
    };
    let rule_count = set
        .policies
        .iter()
        .filter(|p| p.kind == policy::PolicyKind::Rule)
        .count();
    let rules = match rule_count {
        0 => String::new(),
        n => format!(", {n} rule{}", plural(n)),
    };
    out.push_str(&format!(
        "{} policies{rules}, {} channels, {} people groups, {} on-call rotation{}{calendars}: valid\n",
        set.policies.len() - rule_count,
        set.channels.len(),
        set.people.groups.len(),
        set.people.rotations.len(),
        plural(set.people.rotations.len()),
    ));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn describe(policy: &Policy) -> String {
    let clock = &policy.clock;
    let selector = &policy.selector;
    let mut selects = Vec::new();
    if !selector.issue_types.is_empty() {
        selects.push(format!("type {}", selector.issue_types.join("|")));
    }
    if !selector.labels_any.is_empty() {
        selects.push(join(
            selector.labels_any.iter().map(|p| p.to_string()),
            " | ",
        ));
    }
    for pattern in &selector.labels_all {
        selects.push(pattern.to_string());
    }
    for pattern in &selector.labels_none {
        selects.push(format!("not {pattern}"));
    }
    for pattern in &selector.labels_several {
        selects.push(format!("several {pattern}"));
    }
    selects.extend(beyond_labels(selector));
    let from = match clock.starts {
        StartRule::Matched => "from match",
        StartRule::Created => "from creation",
    };
    let until = match &clock.stops {
        StopRule::Closed => "until closed".to_owned(),
        StopRule::Never => "until it no longer matches".to_owned(),
        StopRule::Labeled(labels) => format!(
            "until labelled {}",
            join(labels.iter().map(|p| p.to_string()), " | ")
        ),
    };
    let steps = join(policy.steps.iter().map(|s| s.id.0.clone()), ", ");
    let target = match &clock.calendar {
        Some(calendar) => format!(
            "{} of {} working time",
            duration::compact(clock.target),
            calendar.name
        ),
        None => duration::compact(clock.target),
    };
    if policy.kind == crate::policy::PolicyKind::Rule {
        return format!(
            "{} -> rule: {}{}  ({}:{})",
            join(selects.into_iter(), " & "),
            match clock.target {
                zero if zero.is_zero() => "at once".to_owned(),
                after => format!("after {}", duration::compact(after)),
            },
            rule_actions(policy),
            policy.source.file.display(),
            policy.source.line,
        );
    }
    format!(
        "{} -> {target} {from} {until}; steps: {}  ({}:{})",
        join(selects.into_iter(), " & "),
        if steps.is_empty() {
            "none".to_owned()
        } else {
            steps
        },
        policy.source.file.display(),
        policy.source.line,
    )
}

/// What a rule does, as `check` lists it.
fn rule_actions(rule: &Policy) -> String {
    let mut actions = Vec::new();
    if let Some(unless) = &rule.selector.unless {
        let mut waived: Vec<String> = unless.labels_any.iter().map(|p| p.to_string()).collect();
        waived.extend(beyond_labels(unless));
        actions.push(format!(" unless {}", join(waived.into_iter(), " & ")));
    }
    for step in &rule.steps {
        if let Some((rotation, role)) = &step.assign_on_call {
            actions.push(format!(" assign {}.{}", rotation.name, role.as_str()));
        }
        if let Some(slack) = &step.slack {
            actions.push(format!(" Slack {}", slack.channel));
        }
        let Some(gitlab) = &step.gitlab else { continue };
        for label in &gitlab.add_labels {
            actions.push(format!(" +{label}"));
        }
        for label in &gitlab.remove_labels {
            actions.push(format!(" -{label}"));
        }
        if gitlab.comment {
            actions.push(if gitlab.internal {
                " internal note".to_owned()
            } else {
                " comment".to_owned()
            });
        }
    }
    join(actions.into_iter(), ",")
}

/// The conditions beyond labels, as `check` lists them.
fn beyond_labels(selector: &crate::policy::Selector) -> Vec<String> {
    let mut selects = Vec::new();
    if let Some(assignees) = selector.assignees.describe() {
        selects.push(format!("assignees {assignees}"));
    }
    if !selector.authors.is_empty() {
        selects.push(format!(
            "author {}",
            join(selector.authors.iter().map(|p| p.to_string()), "|")
        ));
    }
    if let Some(milestone) = selector.milestone.describe() {
        selects.push(format!("milestone {milestone}"));
    }
    if let Some(weight) = selector.weight.describe() {
        selects.push(format!("weight {weight}"));
    }
    if let Some(state) = selector.state {
        selects.push(match state {
            crate::issue::IssueState::Opened => "open".to_owned(),
            crate::issue::IssueState::Closed => "closed".to_owned(),
        });
    }
    for (what, age) in [("created", selector.created), ("updated", selector.updated)] {
        if let Some(older) = age.older_than {
            selects.push(format!("{what} over {} ago", duration::compact(older)));
        }
        if let Some(newer) = age.newer_than {
            selects.push(format!("{what} under {} ago", duration::compact(newer)));
        }
    }
    selects
}

fn join(items: impl Iterator<Item = String>, separator: &str) -> String {
    items.collect::<Vec<_>>().join(separator)
}
