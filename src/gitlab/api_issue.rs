//! GitLab's issues as its API answers: the listing's fields we read, the
//! label and state events of an issue's history, and how they become the
//! core's [`Issue`](crate::issue::Issue) ([`assemble`]).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use gitlab::api::Pageable;
use gitlab::api::endpoint_prelude::{Endpoint, Method};
use serde::Deserialize;

use crate::issue::{
    Event, GitLabIds, Issue, IssueDetails, IssueFacts, IssueIid, IssueRef, IssueState, Milestone,
    ProjectPath, TimedEvent,
};

/// One issue read from GitLab: the core's view, plus what messages show.
#[derive(Debug, Clone)]
pub struct FetchedIssue {
    pub issue: Issue,
    pub title: String,
    pub url: String,
    /// GitLab's `updated_at`.
    pub updated_at: DateTime<Utc>,
    /// GitLab's ids, which follow the issue across renames and moves.
    pub ids: GitLabIds,
}

/// An issue as GitLab's issues API lists it (the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiIssue {
    /// The global id.
    #[serde(default)]
    pub id: Option<u64>,
    pub iid: u64,
    #[serde(default)]
    pub project_id: Option<u64>,
    #[serde(default)]
    pub moved_to_id: Option<u64>,
    pub title: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub assignees: Vec<ApiUser>,
    #[serde(default)]
    pub confidential: bool,
    #[serde(default)]
    pub issue_type: Option<String>,
    /// `YYYY-MM-DD`, or null.
    #[serde(default)]
    pub due_date: Option<chrono::NaiveDate>,
    #[serde(default)]
    pub author: Option<ApiAuthor>,
    #[serde(default)]
    pub milestone: Option<ApiMilestone>,
    #[serde(default)]
    pub weight: Option<u32>,
    pub web_url: String,
    pub references: ApiReferences,
    #[serde(default, rename = "_links")]
    pub links: Option<ApiLinks>,
}

/// The links GitLab gives with an issue (the ones we read).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiLinks {
    /// `…/api/v4/projects/:id/issues/:iid` of the issue this one was closed
    /// as a duplicate of.
    #[serde(default)]
    pub closed_as_duplicate_of: Option<String>,
}

/// (project id, issue iid) from an API link `…/projects/:id/issues/:iid`.
fn project_and_iid(link: &str) -> Option<(u64, u64)> {
    let (before, iid) = link.trim_end_matches('/').rsplit_once("/issues/")?;
    let (_, project) = before.rsplit_once("/projects/")?;
    Some((project.parse().ok()?, iid.parse().ok()?))
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiUser {
    pub username: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiAuthor {
    #[serde(default)]
    pub id: Option<u64>,
    pub username: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiMilestone {
    #[serde(default)]
    pub id: Option<u64>,
    pub title: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiReferences {
    /// `group/project#12`.
    pub full: String,
}

impl ApiIssue {
    /// `group/sub/project` from `references.full`.
    pub fn project(&self) -> Option<&str> {
        self.references.full.rsplit_once('#').map(|(path, _)| path)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LabelEvent {
    created_at: DateTime<Utc>,
    /// `null` when the label was deleted since.
    label: Option<LabelName>,
    action: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct LabelName {
    name: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct StateEvent {
    created_at: DateTime<Utc>,
    state: String,
}

/// `GET /projects/:id/issues/:iid/resource_state_events`, which the
/// `gitlab` crate does not have.
pub(super) struct IssueResourceStateEvents<'a> {
    pub project: &'a str,
    pub issue: u64,
}

impl Endpoint for IssueResourceStateEvents<'_> {
    fn method(&self) -> Method {
        Method::GET
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!(
            "projects/{}/issues/{}/resource_state_events",
            encode_path(self.project),
            self.issue
        )
        .into()
    }
}

impl Pageable for IssueResourceStateEvents<'_> {}

/// A project path as one URL path segment (`group%2Fproject`).
fn encode_path(path: &str) -> String {
    url::form_urlencoded::byte_serialize(path.as_bytes()).collect()
}

/// The core's timeline events from GitLab's label and state events.
pub(super) fn events_of(
    label_events: Vec<LabelEvent>,
    state_events: Vec<StateEvent>,
) -> Vec<TimedEvent> {
    let mut events = Vec::with_capacity(label_events.len() + state_events.len());
    for event in label_events {
        let Some(label) = event.label else { continue };
        let event_kind = match event.action.as_str() {
            "add" => Event::LabelAdded(label.name),
            "remove" => Event::LabelRemoved(label.name),
            _ => continue,
        };
        events.push(TimedEvent {
            at: event.created_at,
            event: event_kind,
        });
    }
    for event in state_events {
        let event_kind = match event.state.as_str() {
            "closed" => Event::Closed,
            "reopened" => Event::Reopened,
            _ => continue,
        };
        events.push(TimedEvent {
            at: event.created_at,
            event: event_kind,
        });
    }
    events
}

/// The core's issue from GitLab's listing of it and its history.
pub(super) fn assemble(project: String, issue: ApiIssue, events: Vec<TimedEvent>) -> FetchedIssue {
    let facts = IssueFacts {
        reference: IssueRef {
            project: ProjectPath(project),
            iid: IssueIid(issue.iid),
        },
        created_at: issue.created_at,
        state: if issue.state == "closed" {
            IssueState::Closed
        } else {
            IssueState::Opened
        },
        closed_at: issue.closed_at,
        labels: issue.labels,
        confidential: issue.confidential,
        issue_type: issue
            .issue_type
            .map(|t| t.to_lowercase())
            .unwrap_or_else(|| "issue".to_owned()),
        assignees: issue.assignees.into_iter().map(|u| u.username).collect(),
        due_date: issue.due_date,
        details: IssueDetails {
            author_id: issue.author.as_ref().and_then(|a| a.id),
            author: issue.author.map(|a| a.username),
            milestone: issue.milestone.map(|m| Milestone {
                id: m.id,
                title: Some(m.title),
            }),
            weight: issue.weight,
            updated_at: Some(issue.updated_at),
        },
    };
    FetchedIssue {
        issue: Issue::new(facts, events),
        title: issue.title,
        url: issue.web_url,
        updated_at: issue.updated_at,
        ids: GitLabIds {
            project_id: issue.project_id,
            issue_id: issue.id,
            moved_to_id: issue.moved_to_id,
            duplicated_to_id: None,
            duplicate_of: issue
                .links
                .as_ref()
                .and_then(|links| links.closed_as_duplicate_of.as_deref())
                .and_then(project_and_iid),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_become_the_core_s_timeline() {
        let json = r#"{"iid": 7, "title": "t", "state": "opened", "created_at": "2026-11-02T09:00:00Z",
            "updated_at": "2026-11-02T11:30:00Z",
            "labels": ["priority::highest"], "assignees": [{"username": "jdoe"}], "confidential": false,
            "issue_type": "incident", "due_date": "2026-11-05", "web_url": "https://gitlab.example.com/g/p/-/issues/7",
            "references": {"full": "g/sub/p#7"}}"#;
        let issue: ApiIssue = serde_json::from_str(json).unwrap();
        let labels: Vec<LabelEvent> = serde_json::from_str(
            r#"[{"created_at": "2026-11-02T10:00:00Z", "label": {"name": "priority::highest"}, "action": "add"},
                {"created_at": "2026-11-02T10:30:00Z", "label": null, "action": "add"}]"#,
        )
        .unwrap();
        let states: Vec<StateEvent> = serde_json::from_str(
            r#"[{"created_at": "2026-11-02T11:00:00Z", "state": "closed"},
                {"created_at": "2026-11-02T11:30:00Z", "state": "reopened"}]"#,
        )
        .unwrap();
        let project = issue.project().unwrap().to_owned();
        let fetched = assemble(project, issue, events_of(labels, states));
        assert_eq!(fetched.issue.reference().to_string(), "g/sub/p#7");
        assert_eq!(fetched.issue.facts().issue_type, "incident");
        assert_eq!(fetched.issue.facts().assignees, vec!["jdoe"]);
        assert_eq!(
            fetched.issue.facts().due_date,
            chrono::NaiveDate::from_ymd_opt(2026, 11, 5)
        );
        assert_eq!(
            fetched.issue.timeline().events().len(),
            3,
            "the deleted label is skipped"
        );
        assert!(fetched.issue.initial_labels().is_empty());
    }
}
