//! Reading issues and their histories from the GitLab API into the core's
//! [`Issue`]: which issues can match a policy (found with GitLab's own
//! label filters, not by listing everything), and for each, its label
//! events (`resource_label_events`) and close/reopen events
//! (`resource_state_events`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use gitlab::api::issues::{GroupIssues, IssueState as ApiIssueState, IssueType, ProjectIssues};
use gitlab::api::projects::issues::IssueResourceLabelEvents;
use gitlab::api::{AsyncQuery, Pagination, paged};
use serde::Deserialize;

use super::GitLabError;
pub use super::api_issue::{ApiIssue, ApiLinks, ApiReferences, ApiUser, FetchedIssue};
use super::api_issue::{IssueResourceStateEvents, LabelEvent, StateEvent, assemble, events_of};
use super::cache::HistoryCache;
use super::client::GitLabClient;
use crate::issue::IssueRef;
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

/// How [`IssueReader::read_all`] reads.
#[derive(Clone, Copy, Default)]
pub struct ReadOptions<'a> {
    /// Also read issues closed (with `every_updated`: updated) this long
    /// before now, so recent resolutions are reported.
    pub window: TimeDelta,
    /// List every issue updated within the window, whatever its labels
    /// now, instead of the closed candidates: a clock whose labels were
    /// removed after its deadline is still read (`audit`).
    pub every_updated: bool,
    /// Histories kept between runs (`audit --cache`, `serve`'s passes).
    pub cache: Option<&'a HistoryCache>,
    /// Incremental: list only the issues updated after this instant, open
    /// or closed, whatever their labels (one listing), instead of the
    /// candidates and the window.
    pub updated_after: Option<DateTime<Utc>>,
    /// Which listed issues are worth their history; all if `None`.
    pub wanted: Option<&'a (dyn Fn(&ApiIssue) -> bool + Sync)>,
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
            .map(|(query, closed_since)| {
                let state = if closed_since.is_some() {
                    ApiIssueState::Closed
                } else {
                    ApiIssueState::Opened
                };
                self.list(scope, query, Some(state), closed_since)
            })
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
        options: &ReadOptions<'_>,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<FetchedIssue>, GitLabError> {
        let window = options.window;
        let since = now - window;
        let everything = CandidateQuery {
            labels: Vec::new(),
            issue_type: None,
        };
        let mut listings = Vec::new();
        if let Some(after) = options.updated_after {
            listings.push(self.list_pages(scope, everything, None, Some(after)));
        } else if options.every_updated && window > TimeDelta::zero() {
            // Every issue updated within the window, open or closed,
            // whatever its labels now: one whose labels were removed
            // after its deadline is read too.
            listings.push(self.list_pages(scope, everything, None, Some(since)));
        }
        let candidates = if options.updated_after.is_some() {
            BTreeSet::new()
        } else {
            candidate_queries(policies)
        };
        for query in candidates {
            if window > TimeDelta::zero() && !options.every_updated {
                let closed = Some(ApiIssueState::Closed);
                listings.push(self.list_pages(scope, query.clone(), closed, Some(since)));
            }
            listings.push(self.list_pages(scope, query, Some(ApiIssueState::Opened), None));
        }
        // Every listing's pages as they come, and the histories of the
        // issues they name, read while later pages are on their way.
        let mut pages = futures_util::stream::select_all(listings);
        let mut listing = true;
        let mut reads = futures_util::stream::FuturesUnordered::new();
        let cache = options.cache;
        let mut seen = BTreeSet::new();
        let mut fetched = Vec::new();
        loop {
            tokio::select! {
                page = pages.next(), if listing => match page {
                    None => listing = false,
                    Some(page) => {
                        for issue in page? {
                            if options.wanted.is_some_and(|wanted| !wanted(&issue)) {
                                continue;
                            }
                            if seen.insert(issue.references.full.clone()) {
                                reads.push(self.history_cached(issue, cache));
                            }
                        }
                    }
                },
                Some(read) = reads.next(), if !reads.is_empty() => {
                    fetched.push(read?);
                    progress(fetched.len(), seen.len());
                }
                else => break,
            }
        }
        fetched.sort_by(|a, b| a.issue.reference().cmp(b.issue.reference()));
        Ok(fetched)
    }

    /// One listing: the issues of `scope` that `query` filters for, in
    /// `state` (any if `None`), updated after `updated_after` if set.
    async fn list(
        &self,
        scope: &Scope,
        query: CandidateQuery,
        state: Option<ApiIssueState>,
        updated_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<ApiIssue>, GitLabError> {
        let mut pages = self.list_pages(scope, query, state, updated_after);
        let mut issues = Vec::new();
        while let Some(page) = pages.next().await {
            issues.extend(page?);
        }
        Ok(issues)
    }

    /// The pages of one listing (see [`IssueReader::list`]) as they come.
    fn list_pages<'a>(
        &'a self,
        scope: &Scope,
        query: CandidateQuery,
        state: Option<ApiIssueState>,
        updated_after: Option<DateTime<Utc>>,
    ) -> BoxStream<'a, Result<Vec<ApiIssue>, GitLabError>> {
        let what = format!("the issues of {scope}");
        // The project and group listings take the same filters; their
        // builders are different types.
        macro_rules! listing {
            ($builder:expr, $owner:ident, $path:expr) => {{
                let mut builder = $builder;
                builder.$owner($path);
                if let Some(state) = state {
                    builder.state(state);
                }
                if !query.labels.is_empty() {
                    builder.labels(query.labels.iter().cloned());
                }
                if let Some(since) = updated_after {
                    builder.updated_after(since);
                }
                if let Some(issue_type) = query.issue_type.as_deref().and_then(api_issue_type) {
                    builder.issue_type(issue_type);
                }
                match builder.build() {
                    Ok(endpoint) => super::pages::stream(&self.client, endpoint),
                    Err(e) => {
                        let message = e.to_string();
                        return futures_util::stream::iter([Err(GitLabError::Unreadable {
                            what,
                            message,
                        })])
                        .boxed();
                    }
                }
            }};
        }
        let pages = match scope {
            Scope::Project(path) => listing!(ProjectIssues::builder(), project, path.clone()),
            Scope::Group(path) => listing!(GroupIssues::builder(), group, path.clone()),
        };
        pages
            .map(move |page| page.map_err(|e| GitLabError::from_api(what.clone(), e)))
            .boxed()
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
        Ok(assemble(
            project,
            issue,
            events_of(label_events, state_events),
        ))
    }

    /// One issue with its history, taken from `cache` when it holds the
    /// history as of the issue's `updated_at`, else read and kept there.
    pub async fn history_cached(
        &self,
        issue: ApiIssue,
        cache: Option<&HistoryCache>,
    ) -> Result<FetchedIssue, GitLabError> {
        let (Some(cache), Some(id)) = (cache, issue.id) else {
            return self.history(issue).await;
        };
        if let Some(events) = cache.get(id, issue.updated_at)
            && let Some(project) = issue.project().map(str::to_owned)
        {
            return Ok(assemble(project, issue, events));
        }
        let updated_at = issue.updated_at;
        let fetched = self.history(issue).await?;
        let reference = fetched.issue.reference();
        cache.put(
            id,
            updated_at,
            &reference.project.0,
            reference.iid.0,
            fetched.issue.timeline().events(),
        );
        Ok(fetched)
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
}
