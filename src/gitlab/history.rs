//! Reading issues and their histories from the GitLab API into the core's
//! [`Issue`]: which issues can match a policy (found with GitLab's own
//! label filters, not by listing everything), and for each, its label
//! events (`resource_label_events`) and close/reopen events
//! (`resource_state_events`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use gitlab::api::endpoint_prelude::{Endpoint, Method};
use gitlab::api::issues::{GroupIssues, IssueState as ApiIssueState, IssueType, ProjectIssues};
use gitlab::api::projects::issues::IssueResourceLabelEvents;
use gitlab::api::{AsyncQuery, Pageable, Pagination, paged};
use serde::Deserialize;

use super::GitLabError;
use super::client::GitLabClient;
use crate::issue::{
    Event, GitLabIds, Issue, IssueFacts, IssueIid, IssueRef, IssueState, ProjectPath, TimedEvent,
};
use crate::policy::PolicySet;

/// What to audit: one project, or a group with its subgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Project(String),
    Group(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Project(path) => write!(f, "project {path}"),
            Scope::Group(path) => write!(f, "group {path}"),
        }
    }
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
pub struct ApiReferences {
    /// `group/project#12`.
    pub full: String,
}

impl ApiIssue {
    /// `group/sub/project` from `references.full`.
    fn project(&self) -> Option<&str> {
        self.references.full.rsplit_once('#').map(|(path, _)| path)
    }
}

#[derive(Debug, Deserialize)]
struct LabelEvent {
    created_at: DateTime<Utc>,
    /// `null` when the label was deleted since.
    label: Option<LabelName>,
    action: String,
}

#[derive(Debug, Deserialize)]
struct LabelName {
    name: String,
}

#[derive(Debug, Deserialize)]
struct StateEvent {
    created_at: DateTime<Utc>,
    state: String,
}

/// `GET /projects/:id/issues/:iid/resource_state_events`, which the
/// `gitlab` crate does not have.
struct IssueResourceStateEvents<'a> {
    project: &'a str,
    issue: u64,
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

/// One listing of issues GitLab can filter for us: all these labels, and
/// this work item type if set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CandidateQuery {
    pub labels: Vec<String>,
    /// A type the issues API filters on (`issue`, `incident`, …).
    pub issue_type: Option<String>,
}

/// The work item types the issues API filters on.
fn api_issue_type(name: &str) -> Option<IssueType> {
    match name {
        "issue" => Some(IssueType::Issue),
        "incident" => Some(IssueType::Incident),
        "test_case" => Some(IssueType::TestCase),
        "task" => Some(IssueType::Task),
        _ => None,
    }
}

/// The listings that find every issue a policy can match. GitLab ANDs the
/// labels of one listing, so a policy matching any of several labels needs
/// a listing per label; a wildcard pattern (`severity::*`) cannot be
/// filtered on and falls back to the policy's exact labels; a policy on
/// work item types gets a listing per type. A listing that filters on
/// nothing finds every issue, and makes the others needless.
pub fn candidate_queries(policies: &PolicySet) -> BTreeSet<CandidateQuery> {
    let mut queries = BTreeSet::new();
    for policy in &policies.policies {
        let selector = &policy.selector;
        let all: Vec<String> = selector
            .labels_all
            .iter()
            .filter_map(|p| p.exact().map(str::to_owned))
            .collect();
        let exact_any: Option<Vec<&str>> = selector.labels_any.iter().map(|p| p.exact()).collect();
        let label_sets: Vec<Vec<String>> = match exact_any {
            Some(any) if !any.is_empty() => any
                .into_iter()
                .map(|label| {
                    let mut labels = all.clone();
                    labels.push(label.to_owned());
                    labels.sort();
                    labels.dedup();
                    labels
                })
                .collect(),
            _ => vec![all],
        };
        let types: Vec<Option<String>> = if selector.issue_types.is_empty()
            // A type the API cannot filter on: every type.
            || selector.issue_types.iter().any(|t| api_issue_type(t).is_none())
        {
            vec![None]
        } else {
            selector.issue_types.iter().cloned().map(Some).collect()
        };
        for labels in &label_sets {
            for issue_type in &types {
                queries.insert(CandidateQuery {
                    labels: labels.clone(),
                    issue_type: issue_type.clone(),
                });
            }
        }
    }
    let everything = CandidateQuery {
        labels: Vec::new(),
        issue_type: None,
    };
    if queries.contains(&everything) {
        return BTreeSet::from([everything]);
    }
    queries
}

/// Reads issues and their histories.
#[derive(Clone)]
pub struct IssueReader {
    client: GitLabClient,
}

impl IssueReader {
    pub fn new(client: GitLabClient) -> Self {
        IssueReader { client }
    }

    pub fn client(&self) -> &GitLabClient {
        &self.client
    }

    /// Issues in `scope` that can match a policy: open ones, and those
    /// closed within `closed_within` of `now` (so recent resolutions are
    /// reported), each once, by reference.
    pub async fn candidates(
        &self,
        scope: &Scope,
        policies: &PolicySet,
        now: DateTime<Utc>,
        closed_within: TimeDelta,
    ) -> Result<Vec<ApiIssue>, GitLabError> {
        let mut found: BTreeMap<(String, u64), ApiIssue> = BTreeMap::new();
        let mut listings = Vec::new();
        for query in candidate_queries(policies) {
            listings.push((query.clone(), None));
            if closed_within > TimeDelta::zero() {
                listings.push((query, Some(now - closed_within)));
            }
        }
        let mut pages = futures_util::stream::iter(listings)
            .map(|(query, closed_since)| self.list(scope, query, closed_since))
            // The client bounds requests in flight; all listings may wait on it.
            .buffer_unordered(64);
        while let Some(listed) = pages.next().await {
            for issue in listed? {
                let Some(project) = issue.project().map(str::to_owned) else {
                    continue;
                };
                found.insert((project, issue.iid), issue);
            }
        }
        Ok(found.into_values().collect())
    }

    /// Candidates and their histories in one go: each candidate's history
    /// is read as soon as a listing names it, while other listings are
    /// still on their way, so a small audit is not two round trips of
    /// waiting. `progress` gets (histories read, candidates found so far).
    pub async fn read_all(
        &self,
        scope: &Scope,
        policies: &PolicySet,
        now: DateTime<Utc>,
        closed_within: TimeDelta,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<FetchedIssue>, GitLabError> {
        enum Done {
            Listed(Result<Vec<ApiIssue>, GitLabError>),
            Read(Box<Result<FetchedIssue, GitLabError>>),
        }
        type Pending<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Done> + Send + 'a>>;
        let mut pending: futures_util::stream::FuturesUnordered<Pending<'_>> =
            futures_util::stream::FuturesUnordered::new();
        for query in candidate_queries(policies) {
            if closed_within > TimeDelta::zero() {
                let query = query.clone();
                pending.push(Box::pin(async move {
                    Done::Listed(self.list(scope, query, Some(now - closed_within)).await)
                }));
            }
            pending.push(Box::pin(async move {
                Done::Listed(self.list(scope, query, None).await)
            }));
        }
        let mut seen = BTreeSet::new();
        let mut fetched = Vec::new();
        while let Some(done) = pending.next().await {
            match done {
                Done::Listed(listed) => {
                    for issue in listed? {
                        if seen.insert(issue.references.full.clone()) {
                            pending.push(Box::pin(async move {
                                Done::Read(Box::new(self.history(issue).await))
                            }));
                        }
                    }
                }
                Done::Read(read) => {
                    fetched.push((*read)?);
                    progress(fetched.len(), seen.len());
                }
            }
        }
        fetched.sort_by(|a, b| a.issue.reference().cmp(b.issue.reference()));
        Ok(fetched)
    }

    async fn list(
        &self,
        scope: &Scope,
        query: CandidateQuery,
        closed_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ApiIssue>, GitLabError> {
        let what = format!("the issues of {scope}");
        let state = if closed_since.is_some() {
            ApiIssueState::Closed
        } else {
            ApiIssueState::Opened
        };
        // The project and group listings take the same filters; their
        // builders are different types.
        macro_rules! listing {
            ($builder:expr, $owner:ident, $path:expr) => {{
                let mut builder = $builder;
                builder.$owner($path.as_str()).state(state);
                if !query.labels.is_empty() {
                    builder.labels(query.labels.iter());
                }
                if let Some(since) = closed_since {
                    builder.updated_after(since);
                }
                if let Some(issue_type) = query.issue_type.as_deref().and_then(api_issue_type) {
                    builder.issue_type(issue_type);
                }
                let endpoint = builder.build().map_err(|e| GitLabError::Unreadable {
                    what: what.clone(),
                    message: e.to_string(),
                })?;
                paged(endpoint, Pagination::All)
                    .query_async(&self.client)
                    .await
            }};
        }
        let result = match scope {
            Scope::Project(path) => listing!(ProjectIssues::builder(), project, path),
            Scope::Group(path) => listing!(GroupIssues::builder(), group, path),
        };
        result.map_err(|e| GitLabError::from_api(what, e))
    }

    /// A project's id and its path now, by id or path (GitLab follows the
    /// redirect a rename leaves behind).
    pub async fn project(&self, project: &str) -> Result<(u64, String), GitLabError> {
        #[derive(Deserialize)]
        struct ApiProject {
            id: u64,
            path_with_namespace: String,
        }
        let what = format!("project {project}");
        let endpoint = gitlab::api::projects::Project::builder()
            .project(project)
            .build()
            .map_err(|e| GitLabError::Unreadable {
                what: what.clone(),
                message: e.to_string(),
            })?;
        let found: ApiProject = endpoint
            .query_async(&self.client)
            .await
            .map_err(|e| GitLabError::from_api(what, e))?;
        Ok((found.id, found.path_with_namespace))
    }

    /// One issue, by reference, with its history.
    pub async fn one(&self, reference: &IssueRef) -> Result<FetchedIssue, GitLabError> {
        self.one_in(&reference.project.0, reference.iid.0).await
    }

    /// Issue `iid` of the project GitLab knows by `project` (its numeric
    /// id, which survives renames, or its path), with its history.
    pub async fn one_in(&self, project: &str, iid: u64) -> Result<FetchedIssue, GitLabError> {
        let what = format!("issue {project}#{iid}");
        let endpoint = gitlab::api::projects::issues::Issue::builder()
            .project(project)
            .issue(iid)
            .build()
            .map_err(|e| GitLabError::Unreadable {
                what: what.clone(),
                message: e.to_string(),
            })?;
        let issue: ApiIssue = endpoint
            .query_async(&self.client)
            .await
            .map_err(|e| GitLabError::from_api(what, e))?;
        self.history(issue).await
    }

    /// One issue with its history.
    pub async fn history(&self, issue: ApiIssue) -> Result<FetchedIssue, GitLabError> {
        let project = issue
            .project()
            .ok_or_else(|| GitLabError::Unreadable {
                what: format!("issue {}", issue.references.full),
                message: "`references.full` has no `#`".to_owned(),
            })?
            .to_owned();
        let what = format!("the history of {project}#{}", issue.iid);
        let labels_endpoint = IssueResourceLabelEvents::builder()
            .project(project.as_str())
            .issue(issue.iid)
            .build()
            .map_err(|e| GitLabError::Unreadable {
                what: what.clone(),
                message: e.to_string(),
            })?;
        let states_endpoint = IssueResourceStateEvents {
            project: &project,
            issue: issue.iid,
        };
        let labels_paged = paged(labels_endpoint, Pagination::All);
        let states_paged = paged(states_endpoint, Pagination::All);
        let (label_events, state_events) = tokio::join!(
            labels_paged.query_async(&self.client),
            states_paged.query_async(&self.client),
        );
        let label_events: Vec<LabelEvent> =
            label_events.map_err(|e| GitLabError::from_api(what.clone(), e))?;
        let state_events: Vec<StateEvent> =
            state_events.map_err(|e| GitLabError::from_api(what.clone(), e))?;
        Ok(assemble(project, issue, label_events, state_events))
    }
}

/// The core's issue from GitLab's answers.
fn assemble(
    project: String,
    issue: ApiIssue,
    label_events: Vec<LabelEvent>,
    state_events: Vec<StateEvent>,
) -> FetchedIssue {
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
    use crate::test_support::policy_set;

    fn listings(yaml: &str) -> Vec<(Vec<String>, Option<String>)> {
        candidate_queries(&policy_set(&format!("policies:\n{yaml}")))
            .into_iter()
            .map(|q| (q.labels, q.issue_type))
            .collect()
    }

    #[test]
    fn any_of_several_labels_takes_a_listing_each_and_types_filter_too() {
        let found = listings(concat!(
            "  - name: a\n    match: { labels_any: [\"priority::highest\", \"urgency::highest\"], labels_all: [\"type::bug\"] }\n    clock: { target: 1h }\n",
            "  - name: b\n    match: { labels_any: [\"priority::highest\"], labels_all: [\"type::bug\"] }\n    clock: { target: 1h }\n",
            "  - name: c\n    match: { issue_types: [incident], labels_none: [security] }\n    clock: { target: 1h }\n",
        ));
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            found,
            vec![
                (labels(&[]), Some("incident".to_owned())),
                (labels(&["priority::highest", "type::bug"]), None),
                (labels(&["type::bug", "urgency::highest"]), None),
            ]
        );
    }

    #[test]
    fn a_wildcard_cannot_be_filtered_on_so_every_issue_is_a_candidate() {
        let found = listings(
            "  - name: c\n    match: { labels_any: [\"severity::*\"] }\n    clock: { target: 1h }\n",
        );
        assert_eq!(found, vec![(Vec::<String>::new(), None)]);
    }

    #[test]
    fn histories_become_the_core_s_timeline() {
        let json = r#"{"iid": 7, "title": "t", "state": "opened", "created_at": "2026-11-02T09:00:00Z",
            "updated_at": "2026-11-02T11:30:00Z",
            "labels": ["priority::highest"], "assignees": [{"username": "jdoe"}], "confidential": false,
            "issue_type": "incident", "web_url": "https://gitlab.example.com/g/p/-/issues/7",
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
        let fetched = assemble(project, issue, labels, states);
        assert_eq!(fetched.issue.reference().to_string(), "g/sub/p#7");
        assert_eq!(fetched.issue.facts().issue_type, "incident");
        assert_eq!(fetched.issue.facts().assignees, vec!["jdoe"]);
        assert_eq!(
            fetched.issue.timeline().events().len(),
            3,
            "the deleted label is skipped"
        );
        assert!(fetched.issue.initial_labels().is_empty());
    }
}
