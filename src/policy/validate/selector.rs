//! Checks of what a policy selects (`match`): labels and patterns, issue
//! types, confidentiality and projects, and the conditions beyond them
//! (assignees, authors, milestone, weight, state, age).

use super::*;
use crate::issue::IssueState;
use crate::policy::file::{AgeEntry, PresenceEntry, PresenceKeyword, WeightEntry};
use crate::policy::{AgeRange, Presence, WeightCondition};

impl Checker {
    pub(super) fn selector(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<MatchEntry>,
        policy_field: &str,
    ) -> Option<Selector> {
        let field = format!("{policy_field}.match");
        let raw = &entry.value;
        if raw.labels_any.is_empty()
            && raw.labels_all.is_empty()
            && raw.labels_several.is_empty()
            && raw.issue_types.is_empty()
        {
            let at = self.at(file, entry);
            self.fail(
                &at,
                &field,
                "matches every issue: give `labels_any`, `labels_all`, `labels_several` or `issue_types`",
            );
            return None;
        }
        self.conditions(file, entry, &field)
    }

    /// Every condition of a `match:` (or a rule's `unless:`), which may
    /// give any of them.
    pub(super) fn conditions(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<MatchEntry>,
        field: &str,
    ) -> Option<Selector> {
        let raw = &entry.value;
        let labels_any = self.patterns(file, &raw.labels_any, &format!("{field}.labels_any"));
        let labels_all = self.patterns(file, &raw.labels_all, &format!("{field}.labels_all"));
        let labels_none = self.patterns(file, &raw.labels_none, &format!("{field}.labels_none"));
        let labels_several = self.patterns(
            file,
            &raw.labels_several,
            &format!("{field}.labels_several"),
        );
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
        let assignees = self.presence(file, raw.assignees.as_ref(), &format!("{field}.assignees"));
        let authors = self.patterns(file, &raw.authors, &format!("{field}.authors"));
        let milestone = self.presence(file, raw.milestone.as_ref(), &format!("{field}.milestone"));
        let weight = self.weight(file, raw.weight.as_ref(), &format!("{field}.weight"));
        let state = match &raw.state {
            None => Some(None),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.state"),
                match value.value.as_str() {
                    "opened" => Ok(Some(IssueState::Opened)),
                    "closed" => Ok(Some(IssueState::Closed)),
                    other => Err(format!("`{other}` is not `opened` or `closed`")),
                },
            ),
        };
        let created = self.age(file, raw.created.as_ref(), &format!("{field}.created"));
        let updated = self.age(file, raw.updated.as_ref(), &format!("{field}.updated"));
        Some(Selector {
            labels_any: labels_any?,
            labels_all: labels_all?,
            labels_none: labels_none?,
            labels_several: labels_several?,
            confidential: confidential?,
            issue_types: types_ok.then_some(issue_types)?,
            projects: projects?,
            assignees: assignees?,
            authors: authors?,
            milestone: milestone?,
            weight: weight?,
            state: state?,
            created: created?,
            updated: updated?,
            unless: None,
        })
    }

    /// `any`, `none` or names (patterns).
    fn presence(
        &mut self,
        file: &Arc<PathBuf>,
        entry: Option<&Located<PresenceEntry>>,
        field: &str,
    ) -> Option<Presence> {
        let Some(entry) = entry else {
            return Some(Presence::Whatever);
        };
        match &entry.value {
            PresenceEntry::Keyword(PresenceKeyword::Any) => Some(Presence::Set),
            PresenceEntry::Keyword(PresenceKeyword::None) => Some(Presence::Unset),
            PresenceEntry::Names(names) if names.is_empty() => {
                let at = self.at(file, entry);
                self.fail(
                    &at,
                    field,
                    "an empty list matches nothing: write `none` for nobody",
                );
                None
            }
            PresenceEntry::Names(names) => {
                let located: Vec<Located<String>> = names
                    .iter()
                    .map(|name| Located {
                        value: name.clone(),
                        line: entry.line,
                        column: entry.column,
                    })
                    .collect();
                self.patterns(file, &located, field).map(Presence::OneOf)
            }
        }
    }

    fn weight(
        &mut self,
        file: &Arc<PathBuf>,
        entry: Option<&Located<WeightEntry>>,
        field: &str,
    ) -> Option<WeightCondition> {
        let Some(entry) = entry else {
            return Some(WeightCondition::Whatever);
        };
        match entry.value {
            WeightEntry::Keyword(PresenceKeyword::Any) => Some(WeightCondition::Set),
            WeightEntry::Keyword(PresenceKeyword::None) => Some(WeightCondition::Unset),
            WeightEntry::Range { at_least, at_most } => self.check(
                file,
                entry,
                field,
                match (at_least, at_most) {
                    (Some(low), Some(high)) if low > high => Err(format!(
                        "`at_least: {low}` is above `at_most: {high}`: no weight matches"
                    )),
                    _ => Ok(WeightCondition::Between { at_least, at_most }),
                },
            ),
        }
    }

    /// `older_than` and `newer_than`, each a duration; together, a window
    /// that must be able to open.
    fn age(
        &mut self,
        file: &Arc<PathBuf>,
        entry: Option<&Located<AgeEntry>>,
        field: &str,
    ) -> Option<AgeRange> {
        let Some(entry) = entry else {
            return Some(AgeRange::default());
        };
        let bound = |checker: &mut Self, value: &Option<Located<ScalarText>>, key: &str| match value
        {
            None => Some(None),
            Some(value) => checker
                .check(
                    file,
                    value,
                    format!("{field}.{key}"),
                    duration::parse(&value.value.0),
                )
                .map(Some),
        };
        let older_than = bound(self, &entry.value.older_than, "older_than");
        let newer_than = bound(self, &entry.value.newer_than, "newer_than");
        let (older_than, newer_than) = (older_than?, newer_than?);
        if older_than.is_none() && newer_than.is_none() {
            let at = self.at(file, entry);
            self.fail(&at, field, "needs `older_than` or `newer_than`");
            return None;
        }
        if let (Some(older), Some(newer)) = (older_than, newer_than)
            && newer <= older
        {
            let at = self.at(file, entry);
            self.fail(
                &at,
                field,
                format!(
                    "`older_than: {}` and `newer_than: {}` never hold together",
                    duration::compact(older),
                    duration::compact(newer)
                ),
            );
            return None;
        }
        Some(AgeRange {
            older_than,
            newer_than,
        })
    }
}

#[cfg(test)]
mod tests;
