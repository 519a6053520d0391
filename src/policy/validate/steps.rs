//! The escalation steps of a policy: each trigger, its Slack part
//! (channel, mentions, text variables) and its GitLab part, checked
//! against the merged channels and people.

use super::*;

impl Checker {
    pub(super) fn step(
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
        let during = match &raw.during {
            None => Some(None),
            Some(name) => self
                .calendar_named(file, name, format!("{field}.during"), refs.calendars)
                .map(Some),
        };
        let (trigger, unless_acknowledged) = trigger?;
        if let (Some(Some(step)), Some(entry)) = (&gitlab, &raw.gitlab)
            && step.set_due_date
            && matches!(trigger, Trigger::Resolved | Trigger::Withdrawn)
        {
            let at = self.at(file, entry);
            self.fail(
                &at,
                format!("{field}.gitlab.set_due_date"),
                format!(
                    "on `{}` the clock has ended and has no deadline to show: put `set_due_date: true` on the `start` step",
                    trigger.kind()
                ),
            );
            return None;
        }
        let id = match &raw.id {
            None if unless_acknowledged => {
                crate::policy::StepId(format!("{}:unless:acknowledged", trigger.default_id()))
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
                        Ok(crate::policy::StepId(id.value.clone()))
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
            during: during?,
            slack: slack?,
            gitlab: gitlab?,
            assign_on_call: None,
        })
    }

    /// The trigger, and whether it holds only while nobody acknowledged.
    pub(super) fn trigger(
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

    pub(super) fn slack(
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
            let at = self.at(file, channel);
            self.fail(
                &at,
                format!("{field}.channel"),
                format!(
                    "no channel named `{}` under `channels` (defined: {})",
                    channel.value,
                    crate::policy::defined_names(refs.channels.keys())
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

    pub(super) fn gitlab(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<GitLabEntry>,
        field: &str,
    ) -> Option<GitLabStep> {
        let raw = &entry.value;
        let add_labels = self.exact_labels(file, &raw.add_labels, &format!("{field}.add_labels"));
        let remove_labels =
            self.exact_labels(file, &raw.remove_labels, &format!("{field}.remove_labels"));
        let ok = add_labels.is_some() && remove_labels.is_some();
        let (add_labels, remove_labels) = (
            add_labels.unwrap_or_default(),
            remove_labels.unwrap_or_default(),
        );
        if add_labels.is_empty()
            && remove_labels.is_empty()
            && !raw.comment
            && !raw.set_due_date
            && ok
        {
            let at = self.at(file, entry);
            self.fail(
                &at,
                field,
                "does nothing: give `add_labels`, `remove_labels`, `comment: true` or `set_due_date: true`",
            );
            return None;
        }
        ok.then_some(GitLabStep {
            add_labels,
            remove_labels,
            comment: raw.comment,
            set_due_date: raw.set_due_date,
            ..GitLabStep::default()
        })
    }
}

impl Checker {
    /// Labels to add or remove: exact, no wildcards.
    pub(super) fn exact_labels(
        &mut self,
        file: &Arc<PathBuf>,
        list: &[Located<String>],
        field: &str,
    ) -> Option<Vec<String>> {
        let mut ok = true;
        let mut out = Vec::with_capacity(list.len());
        for label in list {
            let result = Pattern::parse(&label.value).and_then(|p| {
                p.exact()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("`{p}`: a label to add or remove cannot have wildcards"))
            });
            match self.check(file, label, field, result) {
                Some(label) => out.push(label),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// Unknown or unclosed `{variables}` in a step's text.
pub(super) fn variable_problems(text: &str) -> Vec<String> {
    variables_not_in(text, TEXT_VARIABLES)
}

/// Unknown or unclosed `{variables}` in a text that may use `known`.
pub(super) fn variables_not_in(text: &str, known: &[&str]) -> Vec<String> {
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
                if !known.contains(&name) {
                    problems.push(format!(
                        "unknown variable `{{{name}}}`; known: {}",
                        known
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
