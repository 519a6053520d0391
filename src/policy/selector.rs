//! Which issues a policy applies to ([`Selector`]).
//!
//! Three kinds of condition, by how they change over an issue's life:
//! - Labels and the issue's state change with events: the clock checks
//!   them at each instant of the timeline ([`Selector::matches_labels`],
//!   [`Selector::matches_state`]).
//! - Age (since creation, since the last update) changes with time alone:
//!   it becomes a window of instants in which the issue can match
//!   ([`Selector::window`]), and the clock wakes at its edges.
//! - Everything else (confidentiality, type, project, assignees, author,
//!   milestone, weight) is taken as the issue is now
//!   ([`Selector::matches_facts`]).
//!
//! Pure.

use chrono::{DateTime, TimeDelta, Utc};

use super::Pattern;
use crate::issue::{IssueFacts, IssueState};

/// Which issues a policy applies to. Every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub labels_any: Vec<Pattern>,
    pub labels_all: Vec<Pattern>,
    pub labels_none: Vec<Pattern>,
    /// Two or more labels match the same pattern (`team::*`: more than
    /// one team).
    pub labels_several: Vec<Pattern>,
    pub confidential: Confidentiality,
    pub issue_types: Vec<String>,
    pub projects: Vec<Pattern>,
    /// GitLab usernames.
    pub assignees: Presence,
    /// The author is one of these usernames (empty: anyone).
    pub authors: Vec<Pattern>,
    /// Milestone titles.
    pub milestone: Presence,
    pub weight: WeightCondition,
    /// Only while open, or only while closed.
    pub state: Option<IssueState>,
    pub created: AgeRange,
    pub updated: AgeRange,
    /// A rule's `unless:`: while these conditions all hold, it does not match.
    pub unless: Option<Box<Selector>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Confidentiality {
    #[default]
    Any,
    Only,
    Never,
}

/// A condition on something an issue may have none, one or several of
/// (assignees, a milestone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Presence {
    /// No condition.
    #[default]
    Whatever,
    /// At least one (`any`).
    Set,
    /// None at all (`none`).
    Unset,
    /// At least one of these names.
    OneOf(Vec<Pattern>),
}

impl Presence {
    /// Whether `names` (and `set`: whether there is one at all, for a
    /// milestone known only by id) meet the condition.
    fn holds<'a>(&self, set: bool, names: impl IntoIterator<Item = &'a str>) -> bool {
        match self {
            Presence::Whatever => true,
            Presence::Set => set,
            Presence::Unset => !set,
            Presence::OneOf(patterns) => {
                let names: Vec<&str> = names.into_iter().collect();
                patterns
                    .iter()
                    .any(|p| p.matches_any(names.iter().copied()))
            }
        }
    }

    /// As a policy file writes it.
    pub fn describe(&self) -> Option<String> {
        match self {
            Presence::Whatever => None,
            Presence::Set => Some("any".to_owned()),
            Presence::Unset => Some("none".to_owned()),
            Presence::OneOf(patterns) => Some(
                patterns
                    .iter()
                    .map(Pattern::as_str)
                    .collect::<Vec<_>>()
                    .join(" or "),
            ),
        }
    }
}

/// A condition on the issue's weight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WeightCondition {
    #[default]
    Whatever,
    /// A weight is set (`any`).
    Set,
    /// No weight is set (`none`).
    Unset,
    /// A weight within these bounds, both included.
    Between {
        at_least: Option<u32>,
        at_most: Option<u32>,
    },
}

impl WeightCondition {
    fn holds(&self, weight: Option<u32>) -> bool {
        match (self, weight) {
            (WeightCondition::Whatever, _) => true,
            (WeightCondition::Set, set) => set.is_some(),
            (WeightCondition::Unset, set) => set.is_none(),
            (WeightCondition::Between { .. }, None) => false,
            (WeightCondition::Between { at_least, at_most }, Some(weight)) => {
                at_least.is_none_or(|low| weight >= low)
                    && at_most.is_none_or(|high| weight <= high)
            }
        }
    }

    /// As a policy file writes it.
    pub fn describe(&self) -> Option<String> {
        match self {
            WeightCondition::Whatever => None,
            WeightCondition::Set => Some("any".to_owned()),
            WeightCondition::Unset => Some("none".to_owned()),
            WeightCondition::Between { at_least, at_most } => Some(match (at_least, at_most) {
                (Some(low), Some(high)) => format!("{low} to {high}"),
                (Some(low), None) => format!("at least {low}"),
                (None, Some(high)) => format!("at most {high}"),
                (None, None) => "any".to_owned(),
            }),
        }
    }
}

/// How old something must be: older than one duration, newer than another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgeRange {
    pub older_than: Option<TimeDelta>,
    pub newer_than: Option<TimeDelta>,
}

impl AgeRange {
    pub fn is_set(&self) -> bool {
        self.older_than.is_some() || self.newer_than.is_some()
    }
}

/// The instants at which the age conditions hold: from `from` (if set)
/// until just before `until` (if set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchWindow {
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl MatchWindow {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| at >= from) && self.until.is_none_or(|until| at < until)
    }

    /// The window never opens: it would close before it opens.
    pub fn is_empty(&self) -> bool {
        matches!((self.from, self.until), (Some(from), Some(until)) if until <= from)
    }

    /// The window's edges, in order.
    pub fn edges(&self) -> impl Iterator<Item = DateTime<Utc>> {
        let mut edges = [self.from, self.until];
        edges.sort();
        edges.into_iter().flatten()
    }

    /// The first edge after `now`: when whether the issue matches may
    /// change with nothing happening to it.
    pub fn next_edge_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.edges().find(|edge| *edge > now)
    }
}

impl Selector {
    /// The conditions taken as the issue is now: confidentiality, type,
    /// project, assignees, author, milestone and weight.
    pub fn matches_facts(&self, facts: &IssueFacts) -> bool {
        let confidential_ok = match self.confidential {
            Confidentiality::Any => true,
            Confidentiality::Only => facts.confidential,
            Confidentiality::Never => !facts.confidential,
        };
        confidential_ok
            && (self.issue_types.is_empty() || self.issue_types.contains(&facts.issue_type))
            && (self.projects.is_empty()
                || self
                    .projects
                    .iter()
                    .any(|p| p.matches(&facts.reference.project.0)))
            && self.assignees_hold(facts)
            && self.author_holds(facts)
            && self.milestone_holds(facts)
            && self.weight_holds(facts)
    }

    pub fn assignees_hold(&self, facts: &IssueFacts) -> bool {
        self.assignees.holds(
            !facts.assignees.is_empty(),
            facts.assignees.iter().map(String::as_str),
        )
    }

    /// An author not known (yet) meets no `authors` condition.
    pub fn author_holds(&self, facts: &IssueFacts) -> bool {
        self.authors.is_empty()
            || facts
                .details
                .author
                .as_deref()
                .is_some_and(|author| self.authors.iter().any(|p| p.matches(author)))
    }

    /// A milestone known only by id is set, but meets no named condition.
    pub fn milestone_holds(&self, facts: &IssueFacts) -> bool {
        let milestone = facts.details.milestone.as_ref();
        self.milestone.holds(
            milestone.is_some(),
            milestone.and_then(|m| m.title.as_deref()),
        )
    }

    pub fn weight_holds(&self, facts: &IssueFacts) -> bool {
        self.weight.holds(facts.details.weight)
    }

    /// The label conditions, against one set of labels.
    pub fn matches_labels<'a, I>(&self, labels: I) -> bool
    where
        I: IntoIterator<Item = &'a str> + Clone,
    {
        (self.labels_any.is_empty()
            || self
                .labels_any
                .iter()
                .any(|p| p.matches_any(labels.clone())))
            && self
                .labels_all
                .iter()
                .all(|p| p.matches_any(labels.clone()))
            && !self
                .labels_none
                .iter()
                .any(|p| p.matches_any(labels.clone()))
            && self
                .labels_several
                .iter()
                .all(|p| labels.clone().into_iter().filter(|l| p.matches(l)).count() >= 2)
    }

    /// The state condition, at an instant the issue is open or not.
    pub fn matches_state(&self, open: bool) -> bool {
        match self.state {
            None => true,
            Some(IssueState::Opened) => open,
            Some(IssueState::Closed) => !open,
        }
    }

    /// When the age conditions hold, from the issue's creation and its
    /// last update as known now (its creation, if that is unknown).
    pub fn window(&self, facts: &IssueFacts) -> MatchWindow {
        if !self.created.is_set() && !self.updated.is_set() {
            return MatchWindow::default();
        }
        let created = facts.created_at;
        let updated = facts.details.updated_at.unwrap_or(created).max(created);
        let after = |at: DateTime<Utc>, age: Option<TimeDelta>| age.map(|age| at + age);
        MatchWindow {
            from: [
                after(created, self.created.older_than),
                after(updated, self.updated.older_than),
            ]
            .into_iter()
            .flatten()
            .max(),
            until: [
                after(created, self.created.newer_than),
                after(updated, self.updated.newer_than),
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }
}

#[cfg(test)]
mod tests;
