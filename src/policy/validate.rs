//! Turns parsed policy files into a [`PolicySet`], reporting every problem
//! at once, each with its file, line, column and field.
//!
//! Files are merged first (channels, people and policies may live in
//! different files), then every reference is checked against the merged
//! whole, so a step may name a channel defined in another file.

mod clock;
mod definitions;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

use super::file::{
    ChannelEntry, ClockEntry, GitLabEntry, Located, MatchEntry, PeopleEntry, PolicyEntry,
    PolicyFile, RotationEntry, SlackEntry, StepEntry, StopEntry, TriggerEntry, TriggerKeyword,
};
use super::{
    AdoptMode, Adoption, Anchor, Audience, Channel, ClockRule, Confidentiality, Destination,
    DuplicateRule, FromSlack, GitLabStep, Mention, People, Policy, PolicyError, PolicyName,
    PolicySet, Role, Rotation, Selector, SlackStep, SourceLocation, StartRule, Step, StopRule,
    TEXT_VARIABLES, Trigger, duration,
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

    let mut policies = Vec::new();
    let mut policy_sites: BTreeMap<String, SourceLocation> = BTreeMap::new();
    for file in &files {
        for entry in &file.content.policies {
            let name = &entry.value.name;
            let at = checker.at(&file.path, name);
            if let Some(first) = policy_sites.get(&name.value) {
                checker.fail(
                    &at,
                    format!("policies[{}].name", name.value),
                    format!("a policy with this name is already defined at {first}"),
                );
                continue;
            }
            policy_sites.insert(name.value.clone(), at);
            let context = References {
                channels: &channels,
                channel_sites: &channel_sites,
                people: &people,
            };
            if let Some(policy) = checker.policy(&file.path, entry, &context) {
                policies.push(policy);
            }
        }
    }

    if checker.errors.is_empty() {
        Ok(PolicySet {
            channels,
            people,
            policies,
        })
    } else {
        let mut errors = checker.errors;
        super::sort_errors(&mut errors);
        Err(errors)
    }
}

/// What a policy's steps may refer to.
struct References<'a> {
    channels: &'a BTreeMap<String, Channel>,
    /// Channels that were defined but invalid still count as defined, so one
    /// mistake is not reported again at every step that uses the channel.
    channel_sites: &'a BTreeMap<String, SourceLocation>,
    people: &'a People,
}

#[derive(Default)]
struct Checker {
    errors: Vec<PolicyError>,
}

impl Checker {
    fn at<T>(&self, file: &Arc<PathBuf>, located: &Located<T>) -> SourceLocation {
        SourceLocation {
            file: Arc::clone(file),
            line: located.line,
            column: located.column,
        }
    }

    fn fail(&mut self, at: &SourceLocation, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(PolicyError::Invalid {
            at: at.clone(),
            field: field.into(),
            message: message.into(),
        });
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
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            let at = self.at(file, &raw.name);
            self.fail(
                &at,
                format!("{field}.name"),
                "use letters, digits, `-`, `_` and `.` only: the name appears in logs and markers",
            );
        }
        let selector = self.selector(file, &raw.selector, &field);
        let clock = self.clock(file, &raw.clock, &field);
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
        })
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

    fn step(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<StepEntry>,
        field: &str,
        target: Option<TimeDelta>,
        refs: &References,
    ) -> Option<Step> {
        let raw = &entry.value;
        let trigger = self.trigger(file, &raw.on, &format!("{field}.on"), target);
        if raw.slack.is_none() && raw.gitlab.is_none() {
            let at = self.at(file, entry);
            self.fail(
                &at,
                field,
                "does nothing: give it `slack:`, `gitlab:` or both",
            );
            return None;
        }
        let slack = match &raw.slack {
            None => Some(None),
            Some(slack) => self
                .slack(file, slack, &format!("{field}.slack"), refs)
                .map(Some),
        };
        let gitlab = match &raw.gitlab {
            None => Some(None),
            Some(gitlab) => self
                .gitlab(file, gitlab, &format!("{field}.gitlab"))
                .map(Some),
        };
        let (trigger, unless_acknowledged) = trigger?;
        let id = match &raw.id {
            None if unless_acknowledged => {
                super::StepId(format!("{}:unless:acknowledged", trigger.default_id()))
            }
            None => trigger.default_id(),
            Some(id) => {
                let valid = !id.value.is_empty()
                    && id
                        .value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
                self.check(
                    file,
                    id,
                    format!("{field}.id"),
                    if valid {
                        Ok(super::StepId(id.value.clone()))
                    } else {
                        Err("use letters, digits, `-`, `_`, `.` and `:` only".to_owned())
                    },
                )?
            }
        };
        Some(Step {
            id,
            trigger,
            unless_acknowledged,
            slack: slack?,
            gitlab: gitlab?,
        })
    }

    /// The trigger, and whether it holds only while nobody acknowledged.
    fn trigger(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<TriggerEntry>,
        field: &str,
        target: Option<TimeDelta>,
    ) -> Option<(Trigger, bool)> {
        let unless = match &entry.value {
            TriggerEntry::Keyword(_) => None,
            TriggerEntry::BeforeDeadline { unless, .. }
            | TriggerEntry::AfterStart { unless, .. }
            | TriggerEntry::Every { unless, .. } => unless.as_deref(),
        };
        let unless_acknowledged = self.check(
            file,
            entry,
            format!("{field}.unless"),
            match unless {
                None => Ok(false),
                Some("acknowledged") => Ok(true),
                Some(other) => Err(format!("`{other}`: `unless` takes `acknowledged`")),
            },
        );
        let trigger = match &entry.value {
            TriggerEntry::Keyword(keyword) => Some(match keyword {
                TriggerKeyword::Start => Trigger::Start,
                TriggerKeyword::Breach => Trigger::Breach,
                TriggerKeyword::Resolved => Trigger::Resolved,
                TriggerKeyword::Withdrawn => Trigger::Withdrawn,
            }),
            TriggerEntry::BeforeDeadline {
                before_deadline, ..
            } => {
                let field = format!("{field}.before_deadline");
                let lead = self.check(file, entry, &field, duration::parse(before_deadline))?;
                if let Some(target) = target
                    && lead >= target
                {
                    let at = self.at(file, entry);
                    self.fail(
                        &at,
                        field,
                        format!(
                            "{before_deadline} is not shorter than the target ({}): it would fire at once",
                            duration::compact(target)
                        ),
                    );
                    return None;
                }
                Some(Trigger::BeforeDeadline(lead))
            }
            TriggerEntry::AfterStart { after_start, .. } => self
                .check(
                    file,
                    entry,
                    format!("{field}.after_start"),
                    duration::parse(after_start),
                )
                .map(Trigger::AfterStart),
            TriggerEntry::Every { every, after, .. } => {
                let interval = self.check(
                    file,
                    entry,
                    format!("{field}.every"),
                    duration::parse(every),
                );
                let anchor = self.check(
                    file,
                    entry,
                    format!("{field}.after"),
                    match after.as_deref() {
                        None | Some("breach") => Ok(Anchor::Breach),
                        Some("start") => Ok(Anchor::Start),
                        Some(other) => Err(format!("`{other}` is not `breach` or `start`")),
                    },
                );
                Some(Trigger::Every {
                    interval: interval?,
                    after: anchor?,
                })
            }
        };
        Some((trigger?, unless_acknowledged?))
    }

    fn slack(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<SlackEntry>,
        field: &str,
        refs: &References,
    ) -> Option<SlackStep> {
        let raw = &entry.value;
        let mut ok = true;
        let channel = &raw.channel;
        if !refs.channel_sites.contains_key(&channel.value) {
            ok = false;
            let known: Vec<&str> = refs.channels.keys().map(String::as_str).collect();
            let at = self.at(file, channel);
            self.fail(
                &at,
                format!("{field}.channel"),
                format!(
                    "no channel named `{}` under `channels` (defined: {})",
                    channel.value,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        let mut mentions = Vec::with_capacity(raw.mention.len());
        for mention in &raw.mention {
            if mention.value == ASSIGNEES_MENTION {
                mentions.push(Mention::Assignees);
            } else if refs.people.groups.contains_key(&mention.value) {
                mentions.push(Mention::Group(mention.value.clone()));
            } else if let Some((rotation, role)) = mention.value.split_once('.') {
                match (
                    refs.people.rotations.contains_key(rotation),
                    Role::parse(role),
                ) {
                    (true, Some(role)) => mentions.push(Mention::OnCall {
                        rotation: rotation.to_owned(),
                        role,
                    }),
                    (known, _) => {
                        ok = false;
                        let at = self.at(file, mention);
                        self.fail(
                            &at,
                            format!("{field}.mention"),
                            if known {
                                format!(
                                    "`{}`: a rotation's roles are `primary` and `secondary`",
                                    mention.value
                                )
                            } else {
                                format!("no rotation named `{rotation}` under `people`")
                            },
                        );
                    }
                }
            } else {
                ok = false;
                let at = self.at(file, mention);
                self.fail(
                    &at,
                    format!("{field}.mention"),
                    if refs.people.rotations.contains_key(&mention.value) {
                        format!(
                            "`{0}` is a rotation: mention a role, `{0}.primary` or `{0}.secondary`",
                            mention.value
                        )
                    } else {
                        format!(
                            "no group named `{}` under `people` (use a group name, `assignees` or `ROTATION.primary`)",
                            mention.value
                        )
                    },
                );
            }
        }
        if let Some(react) = &raw.react {
            let name = &react.value;
            if name.is_empty()
                || !name.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '+')
                })
            {
                ok = false;
                let at = self.at(file, react);
                self.fail(
                    &at,
                    format!("{field}.react"),
                    format!("`{name}` is not an emoji name like `white_check_mark` (no colons)"),
                );
            }
        }
        if let Some(text) = &raw.text {
            for problem in variable_problems(&text.value) {
                ok = false;
                let at = self.at(file, text);
                self.fail(&at, format!("{field}.text"), problem);
            }
        }
        if let Some(target) = refs.channels.get(&channel.value) {
            if raw.react.is_some()
                && matches!(target.destination, Destination::IncomingWebhook { .. })
            {
                ok = false;
                let at = self.at(file, entry);
                self.fail(
                    &at,
                    format!("{field}.react"),
                    format!(
                        "channel `{}` posts through an incoming webhook, which cannot add \
                         reactions: give it a `slack_channel` (bot token) or drop `react`",
                        channel.value
                    ),
                );
            }
            if !mentions.is_empty() && target.audience == Audience::Users {
                ok = false;
                let at = self.at(file, entry);
                self.fail(
                    &at,
                    format!("{field}.mention"),
                    format!(
                        "channel `{}` is for users (`audience: users`), where nobody is \
                         tagged: mention people in a team channel",
                        channel.value
                    ),
                );
            }
        }
        let post = raw.reply.unwrap_or(true);
        if !post && raw.react.is_none() {
            ok = false;
            let at = self.at(file, entry);
            self.fail(&at, field, "`reply: false` without `react` sends nothing");
        }
        ok.then(|| SlackStep {
            channel: channel.value.clone(),
            mentions,
            broadcast: raw.broadcast,
            post,
            react: raw.react.as_ref().map(|r| r.value.clone()),
            text: raw.text.as_ref().map(|t| t.value.clone()),
        })
    }

    fn gitlab(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<GitLabEntry>,
        field: &str,
    ) -> Option<GitLabStep> {
        let raw = &entry.value;
        let mut ok = true;
        let mut labels = |list: &[Located<String>], name: &str, checker: &mut Checker| {
            let mut out = Vec::with_capacity(list.len());
            for label in list {
                let result = Pattern::parse(&label.value).and_then(|p| {
                    p.exact().map(str::to_owned).ok_or_else(|| {
                        format!("`{p}`: a label to add or remove cannot have wildcards")
                    })
                });
                match checker.check(file, label, format!("{field}.{name}"), result) {
                    Some(label) => out.push(label),
                    None => ok = false,
                }
            }
            out
        };
        let add_labels = labels(&raw.add_labels, "add_labels", self);
        let remove_labels = labels(&raw.remove_labels, "remove_labels", self);
        if add_labels.is_empty() && remove_labels.is_empty() && !raw.comment && ok {
            let at = self.at(file, entry);
            self.fail(
                &at,
                field,
                "does nothing: give `add_labels`, `remove_labels` or `comment: true`",
            );
            return None;
        }
        ok.then_some(GitLabStep {
            add_labels,
            remove_labels,
            comment: raw.comment,
        })
    }
}

/// Unknown or unclosed `{variables}` in a step's text.
fn variable_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            None => {
                problems.push(format!("`{{` at `{}` is never closed", &rest[open..]));
                break;
            }
            Some(close) => {
                let name = &after[..close];
                if !TEXT_VARIABLES.contains(&name) {
                    problems.push(format!(
                        "unknown variable `{{{name}}}`; known: {}",
                        TEXT_VARIABLES
                            .iter()
                            .map(|p| format!("{{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                rest = &after[close + 1..];
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
