//! Turns parsed policy files into a [`PolicySet`], reporting every problem
//! at once, each with its file, line, column and field.
//!
//! Files are merged first (channels, people and policies may live in
//! different files), then every reference is checked against the merged
//! whole, so a step may name a channel defined in another file.

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
    Anchor, Audience, Channel, ClockRule, Confidentiality, Destination, DuplicateRule, FromSlack,
    GitLabStep, Mention, People, Policy, PolicyError, PolicyName, PolicySet, Role, Rotation,
    Selector, SlackStep, SourceLocation, StartRule, Step, StopRule, TEXT_VARIABLES, Trigger,
    duration,
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

    fn channel(
        &mut self,
        file: &Arc<PathBuf>,
        name: &str,
        entry: &Located<ChannelEntry>,
    ) -> Option<Channel> {
        let field = format!("channels.{name}");
        let at = self.at(file, entry);
        let channel = &entry.value;
        let destination = match (&channel.slack_channel, &channel.webhook_env) {
            (Some(id), None) => self
                .check(
                    file,
                    id,
                    format!("{field}.slack_channel"),
                    slack_channel(&id.value),
                )
                .map(Destination::SlackChannel),
            (None, Some(env)) => self
                .check(
                    file,
                    env,
                    format!("{field}.webhook_env"),
                    env_var_name(&env.value),
                )
                .map(|env_var| Destination::IncomingWebhook { env_var }),
            (Some(_), Some(_)) => {
                self.fail(
                    &at,
                    &field,
                    "give either `slack_channel` or `webhook_env`, not both",
                );
                None
            }
            (None, None) => {
                self.fail(
                    &at,
                    &field,
                    "needs `slack_channel` (an id like C0123ABCD or #name) or `webhook_env`",
                );
                None
            }
        };
        let audience = match &channel.audience {
            None => Some(Audience::Team),
            Some(audience) => self.check(
                file,
                audience,
                format!("{field}.audience"),
                match audience.value.as_str() {
                    "team" => Ok(Audience::Team),
                    "users" => Ok(Audience::Users),
                    other => Err(format!("`{other}` is not `team` or `users`")),
                },
            ),
        };
        Some(Channel {
            name: name.to_owned(),
            destination: destination?,
            private: channel.private,
            audience: audience?,
        })
    }

    fn people_entry(
        &mut self,
        file: &Arc<PathBuf>,
        name: &str,
        entry: &Located<PeopleEntry>,
        people: &mut People,
        sites: &mut BTreeMap<String, SourceLocation>,
    ) {
        let at = self.at(file, entry);
        let field = format!("people.{name}");
        match (&entry.value, name) {
            (PeopleEntry::UserMap(map), GITLAB_USERS_KEY) => {
                for (username, slack_id) in map {
                    let user_field = format!("{field}.{username}");
                    if !is_slack_user_id(slack_id) {
                        self.fail(
                            &at,
                            user_field,
                            format!("`{slack_id}` is not a Slack user id like U0123ABCD"),
                        );
                        continue;
                    }
                    let site_key = format!("{GITLAB_USERS_KEY}.{username}");
                    match people.gitlab_users.get(username) {
                        Some(existing) if existing != slack_id => {
                            let first = &sites[&site_key];
                            self.fail(
                                &at,
                                user_field,
                                format!("maps to {slack_id} here but to {existing} at {first}"),
                            );
                        }
                        Some(_) => {}
                        None => {
                            sites.insert(site_key, at.clone());
                            people
                                .gitlab_users
                                .insert(username.clone(), slack_id.clone());
                        }
                    }
                }
            }
            (PeopleEntry::UserMap(_), _) => self.fail(
                &at,
                field,
                format!("a group is a list of mentions; only `{GITLAB_USERS_KEY}` is a map"),
            ),
            (PeopleEntry::Mentions(_) | PeopleEntry::Rotation(_), GITLAB_USERS_KEY) => self.fail(
                &at,
                field,
                "must map GitLab usernames to Slack user ids, e.g. `jdoe: U0123ABCD`",
            ),
            (PeopleEntry::Mentions(_) | PeopleEntry::Rotation(_), ASSIGNEES_MENTION) => self.fail(
                &at,
                field,
                "`assignees` is reserved: it means the issue's assignees",
            ),
            (PeopleEntry::Rotation(_), _) => {
                if let Some(first) = sites.get(name) {
                    let message = format!("already defined at {first}");
                    self.fail(&at, field, message);
                } else if name.contains('.') {
                    self.fail(
                        &at,
                        field,
                        "a rotation's name cannot contain `.`: mentions write `NAME.primary`",
                    );
                } else {
                    // Checked once every file's `gitlab_users` is known.
                    sites.insert(name.to_owned(), at.clone());
                }
            }
            (PeopleEntry::Mentions(mentions), _) => {
                if let Some(first) = sites.get(name) {
                    let message = format!("already defined at {first}");
                    self.fail(&at, field, message);
                    return;
                }
                sites.insert(name.to_owned(), at.clone());
                let mut valid = true;
                for mention in mentions {
                    if !is_slack_mention(mention) {
                        valid = false;
                        self.fail(
                            &at,
                            &field,
                            format!(
                                "`{mention}` is not a Slack mention: write `<@U0123ABCD>`, \
                                 `<!subteam^S0123ABCD>` or `<!here>`"
                            ),
                        );
                    }
                }
                if mentions.is_empty() {
                    valid = false;
                    self.fail(&at, &field, "is empty: a group must tag someone");
                }
                if valid {
                    people.groups.insert(name.to_owned(), mentions.clone());
                }
            }
        }
    }

    /// A rotation, its members checked against the merged `gitlab_users`.
    fn rotation(
        &mut self,
        at: &SourceLocation,
        name: &str,
        raw: &RotationEntry,
        people: &People,
    ) -> Option<Rotation> {
        let field = format!("people.{name}");
        let errors_before = self.errors.len();
        let known = |checker: &mut Checker, who: &str, place: String| {
            if !people.gitlab_users.contains_key(who) {
                checker.fail(
                    at,
                    place,
                    format!(
                        "`{who}` is not under `people.gitlab_users`: map their GitLab username \
                         to their Slack user id so they can be tagged"
                    ),
                );
            }
        };
        if raw.rotation.is_empty() {
            self.fail(
                at,
                format!("{field}.rotation"),
                "is empty: a rotation needs at least one person",
            );
        }
        for member in &raw.rotation {
            known(self, member, format!("{field}.rotation"));
        }
        let hand_off = &raw.hand_off;
        let weekday = hand_off.day.trim().parse::<Weekday>().ok();
        if weekday.is_none() {
            self.fail(
                at,
                format!("{field}.hand_off.day"),
                format!("`{}` is not a weekday like `monday`", hand_off.day),
            );
        }
        let time = NaiveTime::parse_from_str(hand_off.time.trim(), "%H:%M").ok();
        if time.is_none() {
            self.fail(
                at,
                format!("{field}.hand_off.time"),
                format!("`{}` is not a time of day like `09:00`", hand_off.time),
            );
        }
        let time_zone = hand_off.time_zone.trim().parse::<Tz>().ok();
        if time_zone.is_none() {
            self.fail(
                at,
                format!("{field}.hand_off.time_zone"),
                format!(
                    "`{}` is not an IANA time zone like `Europe/Berlin` or `UTC`",
                    hand_off.time_zone
                ),
            );
        }
        let since = NaiveDate::parse_from_str(raw.since.trim(), "%Y-%m-%d").ok();
        if since.is_none() {
            self.fail(
                at,
                format!("{field}.since"),
                format!("`{}` is not a date like `2026-11-02`", raw.since),
            );
        }
        let mut overrides = Vec::new();
        for (index, stand_in) in raw.overrides.iter().enumerate() {
            let place = format!("{field}.overrides[{index}]");
            let instant = |checker: &mut Checker, text: &str, key: &str| {
                let parsed = time_zone.and_then(|zone| instant_in(zone, text));
                if parsed.is_none() && time_zone.is_some() {
                    checker.fail(
                        at,
                        format!("{place}.{key}"),
                        format!("`{text}` is not a time like `2026-11-24 09:00` or RFC 3339"),
                    );
                }
                parsed
            };
            let from = stand_in
                .from
                .as_deref()
                .map(|text| instant(self, text, "from"));
            let until = instant(self, &stand_in.until, "until");
            if let (Some(Some(from)), Some(until)) = (from, until)
                && from >= until
            {
                self.fail(at, place.clone(), "`from` must come before `until`");
            }
            let roles = [
                (Role::Primary, &stand_in.primary),
                (Role::Secondary, &stand_in.secondary),
            ];
            if roles.iter().all(|(_, who)| who.is_none()) {
                self.fail(
                    at,
                    place.clone(),
                    "names nobody: give `primary`, `secondary` or both",
                );
            }
            for (role, who) in roles {
                let Some(who) = who else { continue };
                known(self, who, format!("{place}.{}", role.as_str()));
                if let Some(until) = until {
                    overrides.push(Override {
                        role,
                        person: who.clone(),
                        from: from.flatten(),
                        until,
                    });
                }
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Rotation {
            name: name.to_owned(),
            members: raw.rotation.clone(),
            hand_off: HandOff {
                weekday: weekday?,
                time: time?,
                time_zone: time_zone?,
            },
            since: since?,
            overrides,
        })
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
        Some(Policy {
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

    fn selector(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<MatchEntry>,
        policy_field: &str,
    ) -> Option<Selector> {
        let field = format!("{policy_field}.match");
        let raw = &entry.value;
        if raw.labels_any.is_empty() && raw.labels_all.is_empty() && raw.issue_types.is_empty() {
            let at = self.at(file, entry);
            self.fail(
                &at,
                &field,
                "matches every issue: give `labels_any`, `labels_all` or `issue_types`",
            );
            return None;
        }
        let labels_any = self.patterns(file, &raw.labels_any, &format!("{field}.labels_any"));
        let labels_all = self.patterns(file, &raw.labels_all, &format!("{field}.labels_all"));
        let labels_none = self.patterns(file, &raw.labels_none, &format!("{field}.labels_none"));
        let projects = self.patterns(file, &raw.projects, &format!("{field}.projects"));
        let confidential = match &raw.confidential {
            None => Some(Confidentiality::Any),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.confidential"),
                match value.value.as_str() {
                    "any" => Ok(Confidentiality::Any),
                    "only" => Ok(Confidentiality::Only),
                    "never" => Ok(Confidentiality::Never),
                    other => Err(format!("`{other}` is not `any`, `only` or `never`")),
                },
            ),
        };
        let mut issue_types = Vec::new();
        let mut types_ok = true;
        for item in &raw.issue_types {
            let lower = item.value.to_ascii_lowercase().replace(' ', "_");
            if ISSUE_TYPES.contains(&lower.as_str()) {
                issue_types.push(lower);
            } else {
                types_ok = false;
                let at = self.at(file, item);
                self.fail(
                    &at,
                    format!("{field}.issue_types"),
                    format!(
                        "`{}` is not a GitLab type: one of {}",
                        item.value,
                        ISSUE_TYPES.join(", ")
                    ),
                );
            }
        }
        Some(Selector {
            labels_any: labels_any?,
            labels_all: labels_all?,
            labels_none: labels_none?,
            confidential: confidential?,
            issue_types: types_ok.then_some(issue_types)?,
            projects: projects?,
        })
    }

    fn clock(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<ClockEntry>,
        policy_field: &str,
    ) -> Option<ClockRule> {
        let field = format!("{policy_field}.clock");
        let raw = &entry.value;
        let target = self.check(
            file,
            &raw.target,
            format!("{field}.target"),
            duration::parse(&raw.target.value.0),
        );
        let starts = match &raw.starts {
            None => Some(StartRule::Matched),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.starts"),
                match value.value.as_str() {
                    "matched" => Ok(StartRule::Matched),
                    "created" => Ok(StartRule::Created),
                    other => Err(format!("`{other}` is not `matched` or `created`")),
                },
            ),
        };
        let stops = match &raw.stops {
            None
            | Some(Located {
                value: StopEntry::Closed,
                ..
            }) => Some(StopRule::Closed),
            Some(
                located @ Located {
                    value: StopEntry::Labeled(labels),
                    ..
                },
            ) => {
                let field = format!("{field}.stops.labeled");
                if labels.is_empty() {
                    let at = self.at(file, located);
                    self.fail(&at, field, "needs at least one label");
                    None
                } else {
                    let parsed: Result<Vec<_>, String> =
                        labels.iter().map(|l| Pattern::parse(l)).collect();
                    self.check(file, located, field, parsed)
                        .map(StopRule::Labeled)
                }
            }
        };
        let pauses = self.patterns(
            file,
            &raw.pauses_while_labeled,
            &format!("{field}.pauses_while_labeled"),
        );
        let max_pause = match &raw.max_pause {
            None => Some(None),
            Some(value) => self
                .check(
                    file,
                    value,
                    format!("{field}.max_pause"),
                    duration::parse(&value.value.0),
                )
                .map(Some),
        };
        let time_zone = match &raw.time_zone {
            None => Some(Tz::UTC),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.time_zone"),
                value.value.parse::<Tz>().map_err(|_| {
                    format!(
                        "`{}` is not an IANA time zone like `Europe/Berlin` or `UTC`",
                        value.value
                    )
                }),
            ),
        };
        let duplicates = match &raw.duplicates {
            None => Some(DuplicateRule::Follow),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.duplicates"),
                match value.value.as_str() {
                    "follow" => Ok(DuplicateRule::Follow),
                    "resolve" => Ok(DuplicateRule::Resolve),
                    other => Err(format!("`{other}` is not `follow` or `resolve`")),
                },
            ),
        };
        Some(ClockRule {
            duplicates: duplicates?,
            target: target?,
            starts: starts?,
            stops: stops?,
            pauses_while_labeled: pauses?,
            max_pause: max_pause?,
            time_zone: time_zone?,
        })
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

fn slack_channel(text: &str) -> Result<String, String> {
    let valid_name = text.strip_prefix('#').is_some_and(|name| {
        !name.is_empty()
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            })
    });
    if valid_name || super::is_slack_channel_id(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a Slack channel id like C0123ABCD or a name like #alerts"
        ))
    }
}

fn env_var_name(text: &str) -> Result<String, String> {
    let mut chars = text.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not an environment variable name like SLACK_ALERTS_WEBHOOK_URL \
             (the URL itself is a secret and stays out of policy files)"
        ))
    }
}

/// `2026-11-24 09:00` in `zone`, or an RFC 3339 instant.
fn instant_in(zone: Tz, text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.to_utc());
    }
    ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|local| local_instant(zone, local))
}

fn is_slack_user_id(text: &str) -> bool {
    text.len() >= 9
        && matches!(text.as_bytes()[0], b'U' | b'W')
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn is_slack_mention(text: &str) -> bool {
    if matches!(text, "<!here>" | "<!channel>" | "<!everyone>") {
        return true;
    }
    if let Some(id) = text.strip_prefix("<@").and_then(|t| t.strip_suffix('>')) {
        return is_slack_user_id(id);
    }
    if let Some(id) = text
        .strip_prefix("<!subteam^")
        .and_then(|t| t.strip_suffix('>'))
    {
        return id.len() >= 9
            && id.starts_with('S')
            && id
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    }
    false
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
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::file;

    /// Validates one file's text and returns the error messages.
    fn errors(yaml: &str) -> Vec<String> {
        let path = Path::new("p.yml");
        match file::parse(path, yaml) {
            Err(e) => vec![e.to_string()],
            Ok(content) => match validate(vec![ParsedFile {
                path: Arc::new(path.to_owned()),
                content,
            }]) {
                Ok(_) => vec![],
                Err(errors) => errors.iter().map(ToString::to_string).collect(),
            },
        }
    }

    const HEADER: &str = "channels:\n  alerts: { slack_channel: \"#alerts\" }\npeople:\n  leads: [\"<@U0LEAD0001>\"]\npolicies:\n";

    fn with_policy(item: &str) -> Vec<String> {
        errors(&format!("{HEADER}{item}"))
    }

    #[test]
    fn a_valid_policy_has_no_errors() {
        let found = with_policy(
            "  - name: ok\n    match: { labels_any: [\"priority::*\"] }\n    clock: { target: 24h }\n    escalation:\n      - on: breach\n        slack: { channel: alerts, mention: [leads, assignees] }\n",
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn unknown_keys_name_the_key_and_its_place() {
        let found = with_policy(
            "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h, stop: closed }\n",
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("p.yml:8:"), "{found:?}");
        assert!(found[0].contains("unknown field `stop`"), "{found:?}");
    }

    #[test]
    fn every_semantic_error_is_reported_at_once_with_line_and_field() {
        let found = with_policy(concat!(
            "  - name: p\n",                                           // line 6
            "    match: { labels_any: [x] }\n",                        // 7
            "    clock: { target: 2h, time_zone: Mars/Olympus }\n",    // 8
            "    escalation:\n",                                       // 9
            "      - on: { before_deadline: 3h }\n",                   // 10
            "        slack: { channel: alertz, mention: [nobody] }\n", // 11
        ));
        let expected = [
            (
                "p.yml:8:",
                "`policies[p].clock.time_zone`",
                "not an IANA time zone",
            ),
            (
                "p.yml:10:",
                "`policies[p].escalation[0].on.before_deadline`",
                "not shorter than the target",
            ),
            (
                "p.yml:11:",
                "`policies[p].escalation[0].slack.channel`",
                "no channel named `alertz`",
            ),
            (
                "p.yml:11:",
                "`policies[p].escalation[0].slack.mention`",
                "no group named `nobody`",
            ),
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (message, (place, field, text)) in found.iter().zip(expected) {
            assert!(message.starts_with(place), "{message}");
            assert!(message.contains(field), "{message}");
            assert!(message.contains(text), "{message}");
        }
    }

    #[test]
    fn bad_durations_are_refused_with_the_expected_form() {
        let found = with_policy(
            "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: soon, max_pause: 30 }\n",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("`policies[p].clock.target`") && found[0].contains("not a duration")
        );
        assert!(found[1].contains("`policies[p].clock.max_pause`") && found[1].contains("no unit"));
    }

    #[test]
    fn an_empty_match_is_refused() {
        let found = with_policy(
            "  - name: p\n    match: { labels_none: [x] }\n    clock: { target: 1h }\n",
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("`policies[p].match`: matches every issue"),
            "{found:?}"
        );
    }

    #[test]
    fn duplicate_policy_names_point_at_the_first() {
        let policy = "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n";
        let found = with_policy(&format!("{policy}{policy}"));
        assert_eq!(
            found,
            vec![
                "p.yml:9:11: `policies[p].name`: a policy with this name is already defined at p.yml:6:11"
            ]
        );
    }

    #[test]
    fn two_steps_with_the_same_trigger_need_an_id() {
        let found = with_policy(concat!(
            "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n",
            "      - on: start\n        slack: { channel: alerts }\n",
            "      - on: start\n        slack: { channel: alerts }\n",
        ));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("step `start` is already defined") && found[0].contains("`id:`"),
            "{found:?}"
        );
    }

    const ROTATION: &str = concat!(
        "channels:\n  alerts: { slack_channel: \"#alerts\" }\n",
        "people:\n",
        "  gitlab_users: { alice: U0ALICE01, bob: U0BOB0001 }\n",
        "  oncall:\n",
        "    rotation: [alice, bob]\n",
        "    hand_off: { day: monday, time: \"09:00\", time_zone: Europe/Berlin }\n",
        "    since: 2026-11-02\n",
        "    overrides:\n",
        "      - { primary: bob, from: \"2026-11-24 09:00\", until: \"2026-11-26 18:00\" }\n",
    );

    fn rotation_policy(mention: &str) -> String {
        format!(
            "{ROTATION}policies:\n  - name: p\n    match: {{ labels_any: [x] }}\n    clock: {{ target: 1h }}\n    escalation:\n      - on: breach\n        slack: {{ channel: alerts, mention: [{mention}] }}\n"
        )
    }

    #[test]
    fn a_rotation_is_read_and_mentioned_by_role() {
        let path = Path::new("p.yml");
        let content = file::parse(path, &rotation_policy("oncall.secondary")).unwrap();
        let set = validate(vec![ParsedFile {
            path: Arc::new(path.to_owned()),
            content,
        }])
        .unwrap();
        let rotation = &set.people.rotations["oncall"];
        assert_eq!(rotation.members, ["alice", "bob"]);
        assert_eq!(rotation.hand_off.weekday, Weekday::Mon);
        // The override's times are Berlin times: 08:00 and 17:00 UTC.
        assert_eq!(
            rotation.overrides[0].from.unwrap().to_rfc3339(),
            "2026-11-24T08:00:00+00:00"
        );
        assert_eq!(
            rotation.overrides[0].until.to_rfc3339(),
            "2026-11-26T17:00:00+00:00"
        );
        assert_eq!(
            set.policies[0].steps[0].slack.as_ref().unwrap().mentions,
            vec![Mention::OnCall {
                rotation: "oncall".into(),
                role: Role::Secondary
            }]
        );
    }

    #[test]
    fn rotation_mistakes_are_each_named() {
        let found = errors(&rotation_policy("oncall.tertiary, rota.primary"));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("roles are `primary` and `secondary`"),
            "{found:?}"
        );
        assert!(found[1].contains("no rotation named `rota`"), "{found:?}");

        let broken = ROTATION
            .replace("[alice, bob]", "[alice, zoe]")
            .replace("monday", "moonday")
            .replace("Europe/Berlin", "Europe/Atlantis")
            .replace("\"2026-11-26 18:00\"", "soon");
        let found = errors(&format!("{broken}policies: []\n"));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found
                .iter()
                .any(|e| e.contains("`zoe` is not under `people.gitlab_users`")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains("`moonday` is not a weekday")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains("`Europe/Atlantis` is not an IANA time zone")),
            "{found:?}"
        );

        let typo = ROTATION.replace("since:", "sinse:");
        let found = errors(&format!("{typo}policies: []\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("unknown field `sinse`"), "{found:?}");
    }

    #[test]
    fn unless_takes_only_acknowledged() {
        let found = with_policy(concat!(
            "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n",
            "      - on: { after_start: 10m, unless: answered }\n        slack: { channel: alerts }\n",
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("`unless` takes `acknowledged`"),
            "{found:?}"
        );
    }

    #[test]
    fn webhook_channels_cannot_react_and_user_channels_tag_nobody() {
        let found = errors(concat!(
            "channels:\n",
            "  hook: { webhook_env: SLACK_HOOK_URL }\n",
            "  public: { slack_channel: \"#help\", audience: users }\n",
            "people:\n  leads: [\"<@U0LEAD0001>\"]\n",
            "policies:\n",
            "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n",
            "      - on: resolved\n        slack: { channel: hook, react: white_check_mark }\n",
            "      - on: breach\n        slack: { channel: public, mention: [leads] }\n",
            "      - on: start\n        slack: { channel: public }\n",
        ));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("react") && found[0].contains("cannot add reactions"),
            "{found:?}"
        );
        assert!(
            found[1].contains("mention") && found[1].contains("audience: users"),
            "{found:?}"
        );
    }

    #[test]
    fn steps_that_do_nothing_or_use_unknown_variables_are_refused() {
        let found = with_policy(concat!(
            "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n",
            "      - on: start\n",
            "      - on: breach\n        slack: { channel: alerts, text: \"{issue.ref} late by {overdu}\" }\n",
            "      - on: resolved\n        gitlab: { add_labels: [\"missed::*\"] }\n",
        ));
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("does nothing"));
        assert!(found[1].contains("unknown variable `{overdu}`"));
        assert!(found[2].contains("cannot have wildcards"));
    }

    #[test]
    fn channels_and_people_are_checked_for_slack_forms() {
        let found = errors(concat!(
            "channels:\n",
            "  a: { slack_channel: \"alerts channel\" }\n",
            "  b: { slack_channel: \"#b\", webhook_env: B_URL }\n",
            "  c: { webhook_env: \"https://hooks.slack.com/services/secret\" }\n",
            "people:\n",
            "  team: [\"@jdoe\"]\n",
            "  gitlab_users: { jdoe: jdoe }\n",
        ));
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].contains("`channels.a.slack_channel`"));
        assert!(found[1].contains("either `slack_channel` or `webhook_env`"));
        assert!(
            found[2].contains("`channels.c.webhook_env`")
                && found[2].contains("stays out of policy files")
        );
        assert!(found[3].contains("`people.team`"));
        assert!(found[4].contains("`people.gitlab_users.jdoe`"));
        assert!(
            found[4].starts_with("p.yml:7:"),
            "listed in file order: {found:#?}"
        );
    }

    #[test]
    fn definitions_may_come_from_other_files() {
        // The policy comes first and names a channel that a later file
        // defines; that file's destination is the one the step posts to.
        let policies = file::parse(
            Path::new("a.yml"),
            "channels:\n  triage: { slack_channel: \"#triage\" }\npolicies:\n  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n      - on: start\n        slack: { channel: alerts }\n",
        )
        .unwrap();
        let channels = file::parse(
            Path::new("b.yml"),
            "channels:\n  alerts: { slack_channel: \"#prod-alerts\", private: true }\n",
        )
        .unwrap();
        let set = validate(vec![
            ParsedFile {
                path: Arc::new("a.yml".into()),
                content: policies,
            },
            ParsedFile {
                path: Arc::new("b.yml".into()),
                content: channels,
            },
        ])
        .unwrap();
        let step = set.policies[0].steps[0].slack.as_ref().unwrap();
        let channel = &set.channels[&step.channel];
        assert_eq!(
            channel.destination,
            Destination::SlackChannel("#prod-alerts".into())
        );
        assert!(channel.private, "b.yml's channel, with its settings");
    }

    #[test]
    fn a_channel_defined_twice_across_files_is_refused() {
        let one = || {
            file::parse(
                Path::new("x.yml"),
                "channels:\n  alerts: { slack_channel: \"#alerts\" }\n",
            )
            .unwrap()
        };
        let result = validate(vec![
            ParsedFile {
                path: Arc::new("a.yml".into()),
                content: one(),
            },
            ParsedFile {
                path: Arc::new("b.yml".into()),
                content: one(),
            },
        ]);
        let errors = result.unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().starts_with("b.yml:2:"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0]
                .to_string()
                .contains("already defined at a.yml:2:"),
            "{}",
            errors[0]
        );
    }
}
