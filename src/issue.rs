//! The core's view of a GitLab issue: the facts a policy selects on and the
//! timeline the SLA clock replays. Adapters (webhook payloads, the REST API,
//! the store) build these; the core never sees JSON.
//!
//! A [`Timeline`] is kept in canonical order (by instant, then by a fixed
//! order of event kinds and labels), so whatever order events arrived in,
//! events at the same instant always replay the same way.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// `group/subgroup/project#123`: how people and logs name an issue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IssueRef {
    pub project: ProjectPath,
    pub iid: IssueIid,
}

impl IssueRef {
    /// `group/sub/project#123`, as people write it.
    pub fn parse(text: &str) -> Result<IssueRef, String> {
        let (project, iid) = text
            .trim()
            .rsplit_once('#')
            .filter(|(project, _)| project.contains('/'))
            .ok_or_else(|| format!("`{text}` is not an issue reference like group/project#123"))?;
        let iid = iid
            .parse()
            .map_err(|_| format!("`{text}`: `{iid}` is not an issue number"))?;
        Ok(IssueRef {
            project: ProjectPath(project.to_owned()),
            iid: IssueIid(iid),
        })
    }
}

impl fmt::Display for IssueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.project.0, self.iid.0)
    }
}

/// Full path of a project, `group/subgroup/project`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectPath(pub String);

/// An issue's number inside its project (the `#123`), not its global id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IssueIid(pub u64);

/// GitLab's numeric ids for an issue. Unlike the path, they survive a
/// project's rename or transfer, so they are how labelwarden recognises an
/// issue it knew under another path. A close may say where the issue went:
/// moved to another project (a new issue), or marked a duplicate of another
/// one. All absent in what was stored before labelwarden read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitLabIds {
    /// The project's id (`project.id`, `project_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<u64>,
    /// The issue's global id (`object_attributes.id`, `id`), not its iid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_id: Option<u64>,
    /// The global id of the issue this one was moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to_id: Option<u64>,
    /// The global id of the issue this one was closed as a duplicate of
    /// (webhooks say this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicated_to_id: Option<u64>,
    /// The same issue as the API names it: (project id, iid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<(u64, u64)>,
}

impl GitLabIds {
    /// Closed as a duplicate of another issue, as either form says.
    pub fn is_duplicate(&self) -> bool {
        self.duplicated_to_id.is_some() || self.duplicate_of.is_some()
    }

    /// These ids, with what `newer` says where it says something.
    pub fn updated(self, newer: GitLabIds) -> GitLabIds {
        GitLabIds {
            project_id: newer.project_id.or(self.project_id),
            issue_id: newer.issue_id.or(self.issue_id),
            moved_to_id: newer.moved_to_id.or(self.moved_to_id),
            duplicated_to_id: newer.duplicated_to_id.or(self.duplicated_to_id),
            duplicate_of: newer.duplicate_of.or(self.duplicate_of),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueState {
    Opened,
    Closed,
}

/// Something that happened to an issue, as far as a policy clock cares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    // The variant order is the canonical order within one instant: removals
    // before additions, so "relabelled at once" never shows a gap in matching
    // and never an instant with both labels; state changes last.
    LabelRemoved(String),
    LabelAdded(String),
    Reopened,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimedEvent {
    pub at: DateTime<Utc>,
    pub event: Event,
}

/// Events in canonical order. Build with [`Timeline::new`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline(Vec<TimedEvent>);

impl Timeline {
    pub fn new(mut events: Vec<TimedEvent>) -> Self {
        events.sort_unstable();
        events.dedup();
        Timeline(events)
    }

    pub fn events(&self) -> &[TimedEvent] {
        &self.0
    }
}

/// An issue's current facts, as GitLab reports them now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueFacts {
    pub reference: IssueRef,
    pub created_at: DateTime<Utc>,
    pub state: IssueState,
    /// When it was last closed, used when the timeline has no state events.
    pub closed_at: Option<DateTime<Utc>>,
    /// Labels now.
    pub labels: Vec<String>,
    pub confidential: bool,
    /// GitLab's work item type in lower case: `issue`, `incident`, `task`, ...
    pub issue_type: String,
    /// GitLab usernames.
    pub assignees: Vec<String>,
    /// The issue's due date as GitLab shows it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<NaiveDate>,
    /// Author, milestone, weight and last update: what conditions beyond
    /// labels read (absent from facts stored before they were kept).
    #[serde(default, flatten)]
    pub details: IssueDetails,
}

/// The facts a policy's conditions may read besides labels, state,
/// confidentiality, type and assignees. Each may be unknown: a webhook
/// names the author only when the issue is opened and a milestone only
/// by id, so what is unknown is kept from what was known before
/// ([`IssueDetails::keep_known`]) and filled in by the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueDetails {
    /// The author's GitLab username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The author's GitLab user id (webhooks name the author only by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone: Option<Milestone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// GitLab's `updated_at`: when anything on the issue last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The issue's milestone: its id always, its title when the source says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl IssueDetails {
    /// Fills what this newer reading does not say from an older one of the
    /// same issue: the author (who never changes), and the milestone's
    /// title while the milestone is the same one.
    pub fn keep_known(&mut self, older: &IssueDetails) {
        if self.author.is_none() && (self.author_id.is_none() || self.author_id == older.author_id)
        {
            self.author = older.author.clone();
        }
        if self.author_id.is_none() {
            self.author_id = older.author_id;
        }
        if let (Some(new), Some(old)) = (&mut self.milestone, &older.milestone)
            && new.title.is_none()
            && new.id.is_some()
            && new.id == old.id
        {
            new.title = old.title.clone();
        }
    }
}

/// What the clock needs to know about one issue: its facts and its history.
#[derive(Debug, Clone)]
pub struct Issue {
    facts: IssueFacts,
    timeline: Timeline,
    initial_labels: Vec<String>,
    initially_open: bool,
    /// Clock starts carried over from issues closed as duplicates of this
    /// one, by policy name: the earlier start wins.
    carried_starts: Vec<(String, DateTime<Utc>)>,
    /// Closed as a duplicate of another issue (`duplicated_to_id`).
    duplicate: bool,
}

impl Issue {
    /// Builds an issue from its current facts and its history. The state at
    /// creation is derived by undoing the timeline from the current facts, so
    /// a label with no recorded event counts as present since creation.
    pub fn new(facts: IssueFacts, mut events: Vec<TimedEvent>) -> Self {
        let has_state_events = events
            .iter()
            .any(|e| matches!(e.event, Event::Closed | Event::Reopened));
        if facts.state == IssueState::Closed && !has_state_events {
            // GitLab's older issues have no state events; closed_at is the fact.
            let at = facts
                .closed_at
                .unwrap_or(facts.created_at)
                .max(facts.created_at);
            events.push(TimedEvent {
                at,
                event: Event::Closed,
            });
        }
        let timeline = Timeline::new(events);

        let mut initial_labels = facts.labels.clone();
        let mut open = facts.state == IssueState::Opened;
        for timed in timeline.events().iter().rev() {
            match &timed.event {
                Event::LabelAdded(label) => initial_labels.retain(|l| l != label),
                Event::LabelRemoved(label) => {
                    if !initial_labels.contains(label) {
                        initial_labels.push(label.clone());
                    }
                }
                Event::Closed => open = true,
                Event::Reopened => open = false,
            }
        }

        Issue {
            facts,
            timeline,
            initial_labels,
            initially_open: open,
            carried_starts: Vec::new(),
            duplicate: false,
        }
    }

    /// The same issue, known to be closed as a duplicate of another.
    pub fn closed_as_duplicate(mut self) -> Self {
        self.duplicate = true;
        self
    }

    /// When it was closed as a duplicate, if it is closed as one now: its
    /// latest close.
    pub fn duplicate_closed_at(&self) -> Option<DateTime<Utc>> {
        if !self.duplicate || self.facts.state != IssueState::Closed {
            return None;
        }
        self.timeline
            .events()
            .iter()
            .rev()
            .find(|e| e.event == Event::Closed)
            .map(|e| e.at)
    }

    /// The same issue, with the first clock cycle of `policy` counted from
    /// `started_at` if that is earlier than its own start: the start of an
    /// issue closed as a duplicate of this one.
    pub fn with_carried_start(mut self, policy: &str, started_at: DateTime<Utc>) -> Self {
        match self.carried_starts.iter_mut().find(|(p, _)| p == policy) {
            Some((_, at)) => *at = (*at).min(started_at),
            None => self.carried_starts.push((policy.to_owned(), started_at)),
        }
        self
    }

    /// The start carried over to `policy`'s first cycle, if any.
    pub fn carried_start(&self, policy: &str) -> Option<DateTime<Utc>> {
        self.carried_starts
            .iter()
            .find(|(p, _)| p == policy)
            .map(|(_, at)| *at)
    }

    pub fn facts(&self) -> &IssueFacts {
        &self.facts
    }

    pub fn reference(&self) -> &IssueRef {
        &self.facts.reference
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Labels the issue had when it was created, as far as the timeline tells.
    pub fn initial_labels(&self) -> &[String] {
        &self.initial_labels
    }

    pub fn initially_open(&self) -> bool {
        self.initially_open
    }
}

/// Serializes an issue reference as people write it (`group/project#12`),
/// for JSON that operators read.
pub fn as_reference<S: serde::Serializer>(
    issue: &IssueRef,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(issue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn what_a_newer_reading_does_not_say_is_kept_from_an_older_one() {
        let milestone = |id, title: Option<&str>| Milestone {
            id: Some(id),
            title: title.map(str::to_owned),
        };
        let older = IssueDetails {
            author: Some("ada".into()),
            author_id: Some(51),
            milestone: Some(milestone(9, Some("17.4"))),
            weight: Some(2),
            updated_at: None,
        };
        let mut same_milestone = IssueDetails {
            author_id: Some(51),
            milestone: Some(milestone(9, None)),
            ..IssueDetails::default()
        };
        same_milestone.keep_known(&older);
        assert_eq!(same_milestone.author.as_deref(), Some("ada"));
        assert_eq!(same_milestone.milestone, Some(milestone(9, Some("17.4"))));
        assert_eq!(
            same_milestone.weight, None,
            "a weight removed stays removed"
        );

        let mut other_milestone = IssueDetails {
            milestone: Some(milestone(10, None)),
            ..IssueDetails::default()
        };
        other_milestone.keep_known(&older);
        assert_eq!(other_milestone.milestone, Some(milestone(10, None)));
        let mut other_author = IssueDetails {
            author_id: Some(52),
            ..IssueDetails::default()
        };
        other_author.keep_known(&older);
        assert_eq!(other_author.author, None, "another author's id: not ada");
    }

    #[test]
    fn references_name_a_project_path_and_a_number() {
        let found = IssueRef::parse("acme/platform/api#12").unwrap();
        assert_eq!(found.to_string(), "acme/platform/api#12");
        assert!(IssueRef::parse("12").is_err());
        assert!(IssueRef::parse("acme#12").is_err());
        assert!(IssueRef::parse("acme/api#twelve").is_err());
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, hour, 0, 0).unwrap()
    }

    fn facts(state: IssueState, labels: &[&str]) -> IssueFacts {
        IssueFacts {
            reference: IssueRef {
                project: ProjectPath("acme/app".into()),
                iid: IssueIid(7),
            },
            created_at: at(0),
            state,
            closed_at: None,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            confidential: false,
            issue_type: "issue".into(),
            assignees: vec![],
            due_date: None,
            details: IssueDetails::default(),
        }
    }

    fn issue(state: IssueState, labels: &[&str], events: Vec<TimedEvent>) -> Issue {
        Issue::new(facts(state, labels), events)
    }

    #[test]
    fn reference_reads_like_gitlab() {
        let issue = issue(IssueState::Opened, &[], vec![]);
        assert_eq!(issue.reference().to_string(), "acme/app#7");
    }

    #[test]
    fn labels_without_events_were_there_from_creation() {
        let issue = issue(
            IssueState::Opened,
            &["bug", "priority::highest"],
            vec![TimedEvent {
                at: at(3),
                event: Event::LabelAdded("priority::highest".into()),
            }],
        );
        assert_eq!(issue.initial_labels(), ["bug"]);
    }

    #[test]
    fn removed_labels_were_there_before() {
        let issue = issue(
            IssueState::Opened,
            &[],
            vec![TimedEvent {
                at: at(3),
                event: Event::LabelRemoved("priority::high".into()),
            }],
        );
        assert_eq!(issue.initial_labels(), ["priority::high"]);
    }

    #[test]
    fn closed_issue_without_state_events_closes_at_closed_at() {
        let without_date = issue(IssueState::Closed, &[], vec![]);
        assert!(without_date.initially_open());
        assert_eq!(without_date.timeline().events()[0].event, Event::Closed);
        let with_date = Issue::new(
            IssueFacts {
                closed_at: Some(at(5)),
                ..facts(IssueState::Closed, &[])
            },
            vec![],
        );
        assert_eq!(with_date.timeline().events()[0].at, at(5));
    }

    #[test]
    fn same_instant_events_sort_the_same_whatever_their_arrival() {
        let a = TimedEvent {
            at: at(1),
            event: Event::LabelAdded("x".into()),
        };
        let b = TimedEvent {
            at: at(1),
            event: Event::LabelRemoved("y".into()),
        };
        assert_eq!(
            Timeline::new(vec![a.clone(), b.clone()]),
            Timeline::new(vec![b, a])
        );
    }
}
