//! Checks of instant rules (`rules:`): the conditions, the grace, the
//! actions and their comment's variables, and rules that would fight: one
//! adding a label another (or itself) removes would undo the other for
//! ever. A checked rule becomes a [`Policy`] of kind [`PolicyKind::Rule`]
//! whose clock counts the grace and whose one step acts.

use super::steps::variables_not_in;
use super::*;
use crate::policy::file::RuleEntry;
use crate::policy::{COMMENT_VARIABLES, StepId};

impl Checker {
    pub(super) fn rule(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<RuleEntry>,
        refs: &References,
    ) -> Option<Policy> {
        let raw = &entry.value;
        let name = raw.name.value.trim();
        let field = format!("rules[{name}]");
        self.name(file, &raw.name, &field);
        let selector = self.selector(file, &raw.selector, &field);
        let unless = match &raw.unless {
            None => Some(None),
            Some(unless) => self
                .conditions(file, unless, &format!("{field}.unless"))
                .map(|selector| Some(Box::new(selector))),
        };
        let after = match &raw.after {
            None => Some(TimeDelta::zero()),
            Some(after) => self.check(
                file,
                after,
                format!("{field}.after"),
                duration::parse(&after.value.0),
            ),
        };
        let actions = &raw.actions.value;
        let add_labels = self.exact_labels(
            file,
            &actions.add_labels,
            &format!("{field}.actions.add_labels"),
        );
        let remove_labels = self.exact_labels(
            file,
            &actions.remove_labels,
            &format!("{field}.actions.remove_labels"),
        );
        let comment = match &actions.comment {
            None => Some(None),
            Some(text) => {
                let problems = variables_not_in(&text.value, COMMENT_VARIABLES);
                let blank = text.value.trim().is_empty();
                let result = if blank {
                    Err("is empty: write what the comment says, or leave it out".to_owned())
                } else if problems.is_empty() {
                    Ok(Some(text.value.clone()))
                } else {
                    Err(problems.join("; "))
                };
                self.check(file, text, format!("{field}.actions.comment"), result)
            }
        };
        let assign = match &actions.assign {
            None => Some(None),
            Some(role) => self.on_call_role(file, role, &format!("{field}.actions.assign"), refs),
        };
        let slack = match &actions.slack {
            None => Some(None),
            Some(entry) => self.rule_slack(file, entry, &format!("{field}.actions.slack"), refs),
        };
        let (add_labels, remove_labels, comment, slack, assign) =
            (add_labels?, remove_labels?, comment?, slack?, assign?);
        if add_labels.is_empty()
            && remove_labels.is_empty()
            && comment.is_none()
            && slack.is_none()
            && assign.is_none()
        {
            let at = self.at(file, &raw.actions);
            self.fail(
                &at,
                format!("{field}.actions"),
                "does nothing: give `add_labels`, `remove_labels`, `comment`, `assign` or `slack`",
            );
            return None;
        }
        if actions.internal && comment.is_none() {
            let at = self.at(file, &raw.actions);
            self.fail(
                &at,
                format!("{field}.actions.internal"),
                "an internal note needs a `comment` to say",
            );
            return None;
        }
        let mut selector = selector?;
        selector.unless = unless?;
        Some(Policy {
            name: PolicyName(name.to_owned()),
            description: raw.description.clone(),
            source: self.at(file, entry),
            selector,
            clock: ClockRule {
                target: after?,
                starts: StartRule::Matched,
                stops: StopRule::Never,
                pauses_while_labeled: Vec::new(),
                max_pause: None,
                time_zone: Tz::UTC,
                calendar: None,
                duplicates: DuplicateRule::Follow,
            },
            steps: vec![Step {
                id: StepId(Trigger::Act.default_id().0),
                trigger: Trigger::Act,
                unless_acknowledged: false,
                during: None,
                slack,
                gitlab: Some(GitLabStep {
                    add_labels,
                    remove_labels,
                    comment: comment.is_some(),
                    comment_text: comment,
                    internal: actions.internal,
                    set_due_date: false,
                    assign: Vec::new(),
                }),
                assign_on_call: assign,
            }],
            from_slack: FromSlack::default(),
            mirror_comments: false,
            // A backlog is acted on: its labels and comments are the point.
            adoption: Adoption {
                mode: AdoptMode::Individual,
                ..Adoption::default()
            },
            reported: false,
            kind: PolicyKind::Rule,
        })
    }

    /// Refuses rules that undo each other's labels (or their own): each
    /// would act again as soon as the other did, for ever. Said at the
    /// rule that removes.
    pub(super) fn fights(&mut self, rules: &[Policy]) {
        for adder in rules {
            let Some(adds) = rule_actions(adder) else {
                continue;
            };
            for remover in rules {
                let Some(removes) = rule_actions(remover) else {
                    continue;
                };
                for label in adds
                    .add_labels
                    .iter()
                    .filter(|l| removes.remove_labels.contains(l))
                {
                    let message = if adder.name == remover.name {
                        format!("adds and removes `{label}`")
                    } else {
                        format!(
                            "removes `{label}`, which rule `{}` ({}) adds: the two would undo each other for ever",
                            adder.name, adder.source
                        )
                    };
                    self.fail(
                        &remover.source,
                        format!("rules[{}].actions", remover.name),
                        message,
                    );
                }
            }
        }
    }
}

impl Checker {
    /// `oncall.primary`: a rotation under `people` and a role.
    fn on_call_role(
        &mut self,
        file: &Arc<PathBuf>,
        written: &Located<String>,
        field: &str,
        refs: &References,
    ) -> Option<Option<(Arc<crate::policy::Rotation>, crate::policy::Role)>> {
        let text = written.value.trim();
        let found = text.split_once('.').and_then(|(name, role)| {
            Some((
                refs.people.rotations.get(name)?,
                crate::policy::Role::parse(role)?,
            ))
        });
        match found {
            Some((rotation, role)) => Some(Some((Arc::new(rotation.clone()), role))),
            None => {
                let rotations = crate::policy::defined_names(refs.people.rotations.keys());
                let at = self.at(file, written);
                self.fail(
                    &at,
                    field,
                    format!(
                        "`{text}` is not a rotation's role: write `ROTATION.primary` or `ROTATION.secondary` (rotations: {rotations})"
                    ),
                );
                None
            }
        }
    }

    /// A rule's Slack message: an escalation step's `slack:`, posted as
    /// the first message of its own thread. Reactions need a thread to
    /// react on, and a users' channel is told what happened in the rule's
    /// own words.
    fn rule_slack(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<crate::policy::file::SlackEntry>,
        field: &str,
        refs: &References,
    ) -> Option<Option<SlackStep>> {
        let step = self.slack(file, entry, field, refs)?;
        let at = self.at(file, entry);
        if step.react.is_some() || !step.post {
            self.fail(
                &at,
                field,
                "a rule's message starts its own thread: it has no earlier message to react on (drop `react` and `reply`)",
            );
            return None;
        }
        let for_users = refs
            .channels
            .get(&step.channel)
            .is_some_and(|channel| channel.audience == Audience::Users);
        if for_users && step.text.is_none() {
            self.fail(
                &at,
                format!("{field}.text"),
                format!(
                    "channel `{}` is for users: say in `text:` what they should read",
                    step.channel
                ),
            );
            return None;
        }
        Some(Some(step))
    }
}

/// A rule's GitLab actions: its one step's, if it has any.
fn rule_actions(rule: &Policy) -> Option<&GitLabStep> {
    rule.steps.first().and_then(|step| step.gitlab.as_ref())
}

#[cfg(test)]
mod tests;
