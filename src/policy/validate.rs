//! Turns parsed policy files into a [`PolicySet`], reporting every problem
//! at once, each with its file, line, column and field.
//!
//! Files are merged first (channels, people and policies may live in
//! different files), then every reference is checked against the merged
//! whole, so a step may name a channel defined in another file.

mod calendars;
mod clock;
mod definitions;
mod maintenance;
mod rules;
mod selector;
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

use super::file::{
    ChannelEntry, ClockEntry, GitLabEntry, Located, MatchEntry, PeopleEntry, PolicyEntry,
    PolicyFile, RotationEntry, ScalarText, SlackEntry, StepEntry, StopEntry, TriggerEntry,
    TriggerKeyword,
};
use super::{
    AdoptMode, Adoption, Anchor, Audience, Channel, ClockRule, Confidentiality, Destination,
    DuplicateRule, FromSlack, GitLabStep, Mention, People, Policy, PolicyError, PolicyKind,
    PolicyName, PolicySet, Role, Rotation, Selector, SlackStep, SourceLocation, StartRule, Step,
    StopRule, TEXT_VARIABLES, Trigger, duration,
    pattern::Pattern,
    rotation::{HandOff, Override, local_instant},
};

/// Work item types GitLab sends in `object_attributes.type` / `work_item_type`,
/// lower-cased. A typo here would silently match nothing, so it is checked.
const ISSUE_TYPES: &[&str] = &[
    "issue",
    "incident",
    "task",
    "test_case",
    "requirement",
    "objective",
    "key_result",
    "epic",
    "ticket",
];

/// The `people` key that holds the GitLab -> Slack user map, not a group.
const GITLAB_USERS_KEY: &str = "gitlab_users";
/// The mention that means "the issue's assignees".
const ASSIGNEES_MENTION: &str = "assignees";

/// A parsed file and the path it came from.
pub struct ParsedFile {
    pub path: Arc<PathBuf>,
    pub content: PolicyFile,
}

/// Merges and checks parsed files.
pub fn validate(files: Vec<ParsedFile>) -> Result<PolicySet, Vec<PolicyError>> {
    let mut checker = Checker::default();

    let mut channels = BTreeMap::new();
    let mut channel_sites: BTreeMap<String, SourceLocation> = BTreeMap::new();
    let mut people = People::default();
    let mut people_sites: BTreeMap<String, SourceLocation> = BTreeMap::new();
    for file in &files {
        for (name, entry) in &file.content.channels {
            let at = checker.at(&file.path, entry);
            if let Some(first) = channel_sites.get(name) {
                checker.fail(
                    &at,
                    format!("channels.{name}"),
                    format!("already defined at {first}"),
                );
                continue;
            }
            channel_sites.insert(name.clone(), at.clone());
            if let Some(channel) = checker.channel(&file.path, name, entry) {
                channels.insert(name.clone(), channel);
            }
        }
        for (name, entry) in &file.content.people {
            checker.people_entry(&file.path, name, entry, &mut people, &mut people_sites);
        }
    }
    checker.fallbacks(&files, &mut channels);
    // Rotations name GitLab users, who may be mapped in any file.
    for file in &files {
        for (name, entry) in &file.content.people {
            if let PeopleEntry::Rotation(rotation) = &entry.value {
                let at = checker.at(&file.path, entry);
                if let Some(rotation) = checker.rotation(&at, name, rotation, &people) {
                    people.rotations.insert(name.clone(), rotation);
                }
            }
        }
    }

    let calendars = checker.calendars(&files);

    let mut policies = Vec::new();
    let mut policy_sites: BTreeMap<String, SourceLocation> = BTreeMap::new();
    for file in &files {
        for entry in &file.content.policies {
            let duplicate = !checker.claim_name(
                &mut policy_sites,
                &file.path,
                &entry.value.name,
                "policies",
                "a policy",
            );
            let context = References {
                channels: &channels,
                channel_sites: &channel_sites,
                people: &people,
                calendars: &calendars,
            };
            // A duplicate is still checked in full: its own mistakes show
            // now, not after it is renamed.
            if let Some(policy) = checker.policy(&file.path, entry, &context)
                && !duplicate
            {
                policies.push(policy);
            }
        }
    }
    // Rules share the policies' names: both name ledger entries.
    let mut rules = Vec::new();
    for file in &files {
        for entry in &file.content.rules {
            let duplicate = !checker.claim_name(
                &mut policy_sites,
                &file.path,
                &entry.value.name,
                "rules",
                "a policy or rule",
            );
            let context = References {
                channels: &channels,
                channel_sites: &channel_sites,
                people: &people,
                calendars: &calendars,
            };
            if let Some(rule) = checker.rule(&file.path, entry, &context)
                && !duplicate
            {
                rules.push(rule);
            }
        }
    }
    checker.fights(&rules);
    policies.extend(rules);

    let maintenance = checker.maintenance(&files, &policies, &channels);

    if checker.errors.is_empty() {
        let mut warnings = checker.warnings;
        super::sort_errors(&mut warnings);
        Ok(PolicySet {
            channels,
            people,
            policies,
            maintenance,
            calendars: calendars.by_name,
            warnings,
        })
    } else {
        let mut errors = checker.errors;
        super::sort_errors(&mut errors);
        Err(errors)
    }
}

/// A problem with a field, where it is written.
fn invalid(
    at: &SourceLocation,
    field: impl Into<String>,
    message: impl Into<String>,
) -> PolicyError {
    PolicyError::Invalid {
        at: at.clone(),
        field: field.into(),
        message: message.into(),
    }
}

/// What a policy's steps may refer to.
struct References<'a> {
    channels: &'a BTreeMap<String, Channel>,
    /// Channels that were defined but invalid still count as defined, so one
    /// mistake is not reported again at every step that uses the channel.
    channel_sites: &'a BTreeMap<String, SourceLocation>,
    people: &'a People,
    calendars: &'a calendars::Calendars,
}

#[derive(Default)]
struct Checker {
    errors: Vec<PolicyError>,
    /// What is valid but likely a mistake: said by `check` and at start.
    warnings: Vec<PolicyError>,
}

impl Checker {
    fn at<T>(&self, file: &Arc<PathBuf>, located: &Located<T>) -> SourceLocation {
        SourceLocation {
            file: Arc::clone(file),
            line: located.line,
            column: located.column,
        }
    }

    fn warn(&mut self, at: &SourceLocation, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(invalid(at, field, message));
    }

    fn fail(&mut self, at: &SourceLocation, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(invalid(at, field, message));
    }

    /// Reports and drops an error from a parse step, keeping the value if any.
    fn check<T>(
        &mut self,
        file: &Arc<PathBuf>,
        located: &Located<impl Sized>,
        field: impl Into<String>,
        result: Result<T, String>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                let at = self.at(file, located);
                self.fail(&at, field, message);
                None
            }
        }
    }

    fn policy(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<PolicyEntry>,
        refs: &References,
    ) -> Option<Policy> {
        let raw = &entry.value;
        let name = raw.name.value.trim();
        let field = format!("policies[{name}]");
        self.name(file, &raw.name, &field);
        let selector = self.selector(file, &raw.selector, &field);
        let clock = self.clock(file, &raw.clock, &field, refs.calendars);
        if let (
            Some(state),
            Some(ClockRule {
                stops: StopRule::Closed,
                ..
            }),
        ) = (&raw.selector.value.state, &clock)
        {
            let at = self.at(file, state);
            self.fail(
                &at,
                format!("{field}.match.state"),
                "this clock stops when the issue is closed: a `state` condition would \
                 withdraw it instead of resolving it (use it with `stops: { labeled: [...] }`)",
            );
        }
        // Steps are checked against the target even when another clock field
        // is wrong, so that one mistake does not hide another.
        let target = duration::parse(&raw.clock.value.target.value.0).ok();
        let mut steps = Vec::with_capacity(raw.escalation.len());
        let mut step_ids: BTreeMap<String, SourceLocation> = BTreeMap::new();
        for (index, step) in raw.escalation.iter().enumerate() {
            let step_field = format!("{field}.escalation[{index}]");
            if let Some(step) = self.step(file, step, &step_field, target, refs) {
                let at = self.at(file, &raw.escalation[index]);
                if let Some(first) = step_ids.get(&step.id.0) {
                    self.fail(
                        &at,
                        format!("{step_field}.id"),
                        format!(
                            "step `{}` is already defined at {first}; give one of them an `id:`",
                            step.id
                        ),
                    );
                    continue;
                }
                // Quiet hours on a breach of a clock that runs around the
                // clock: a critical breach would wait for office hours.
                let around_the_clock = raw.clock.value.calendar.is_none();
                if around_the_clock
                    && step.trigger == Trigger::Breach
                    && let Some(quiet) = &step.during
                {
                    self.warn(
                        &at,
                        format!("{step_field}.during"),
                        format!(
                            "the breach of a clock that runs around the clock waits for `{}`'s working hours: a breach at night is said only in the morning",
                            quiet.name
                        ),
                    );
                }
                step_ids.insert(step.id.0.clone(), at);
                steps.push(step);
            }
        }
        let from_slack = match &raw.from_slack {
            None => Some(FromSlack::default()),
            Some(located) => {
                let wanted = &located.value;
                let label = wanted.false_positive_label.as_deref().map(str::trim);
                self.check(
                    file,
                    located,
                    format!("{field}.from_slack.false_positive_label"),
                    match label {
                        Some("") => {
                            Err("is empty: name the label to add, or leave it out".to_owned())
                        }
                        _ => Ok(FromSlack {
                            close_on_resolve: wanted.close_on_resolve,
                            false_positive_label: label.map(str::to_owned),
                            mirror_replies: wanted.mirror_replies,
                        }),
                    },
                )
            }
        };
        let adoption = self.adoption(file, raw, &field);
        Some(Policy {
            adoption: adoption?,
            name: PolicyName(name.to_owned()),
            description: raw.description.clone(),
            source: self.at(file, entry),
            selector: selector?,
            clock: clock?,
            steps,
            from_slack: from_slack?,
            mirror_comments: raw.from_gitlab.as_ref().is_some_and(|f| f.mirror_comments),
            reported: raw.report.unwrap_or(true),
            kind: PolicyKind::Clock,
        })
    }

    /// Records where `name` is first defined, or says where it already
    /// was (under `section`, as `what`); true for a first definition.
    fn claim_name(
        &mut self,
        sites: &mut BTreeMap<String, SourceLocation>,
        file: &Arc<PathBuf>,
        name: &Located<String>,
        section: &str,
        what: &str,
    ) -> bool {
        let at = self.at(file, name);
        match sites.get(&name.value) {
            Some(first) => {
                let message = format!("{what} with this name is already defined at {first}");
                self.fail(&at, format!("{section}[{}].name", name.value), message);
                false
            }
            None => {
                sites.insert(name.value.clone(), at);
                true
            }
        }
    }

    /// A policy's or rule's name: it appears in logs and markers.
    fn name(&mut self, file: &Arc<PathBuf>, name: &Located<String>, field: &str) {
        let trimmed = name.value.trim();
        if trimmed.is_empty()
            || !trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            let at = self.at(file, name);
            self.fail(
                &at,
                format!("{field}.name"),
                "use letters, digits, `-`, `_` and `.` only: the name appears in logs and markers",
            );
        }
    }

    fn patterns(
        &mut self,
        file: &Arc<PathBuf>,
        list: &[Located<String>],
        field: &str,
    ) -> Option<Vec<Pattern>> {
        let mut ok = true;
        let mut patterns = Vec::with_capacity(list.len());
        for item in list {
            match self.check(file, item, field, Pattern::parse(&item.value)) {
                Some(pattern) => patterns.push(pattern),
                None => ok = false,
            }
        }
        ok.then_some(patterns)
    }
}

#[cfg(test)]
mod tests;
