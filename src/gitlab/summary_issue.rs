//! Keeping `audit --summary-issue`'s one GitLab issue: found again among
//! the project's open issues by its title and the marker its description
//! starts with ([`crate::audit::report::summary::marker`]), edited in
//! place, or created when there is none. A closed summary is retired: the
//! next run opens a new one.

use gitlab::api::issues::{IssueSearchScope, IssueState};
use gitlab::api::projects::issues::{CreateIssue, EditIssue, Issues};
use gitlab::api::{AsyncQuery, Pagination, ignore, paged};
use serde::Deserialize;

use super::GitLabError;
use super::actions::IssueWriter;

/// What became of the summary issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryOutcome {
    Created { iid: u64, url: String },
    Edited { iid: u64, url: String },
}

/// An open issue in the project that is labelwarden's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSummary {
    pub iid: u64,
    pub url: String,
}

#[derive(Deserialize)]
struct Listed {
    iid: u64,
    title: String,
    #[serde(default)]
    description: Option<String>,
    web_url: String,
}

impl IssueWriter {
    /// The open issue titled `title` whose description carries `marker`;
    /// the oldest if a person copied one.
    pub async fn find_summary(
        &self,
        project: &str,
        title: &str,
        marker: &str,
    ) -> Result<Option<FoundSummary>, GitLabError> {
        let what = format!("the summary issue `{title}` in {project}");
        let endpoint = Issues::builder()
            .project(project)
            .state(IssueState::Opened)
            .search(title)
            .search_in(IssueSearchScope::Title)
            .build()
            .map_err(|e| GitLabError::unreadable(&what, e))?;
        let listed: Vec<Listed> = paged(endpoint, Pagination::All)
            .query_async(self.client())
            .await
            .map_err(|e| GitLabError::from_api(what.clone(), e))?;
        Ok(listed
            .into_iter()
            .filter(|issue| {
                issue.title == title
                    && issue
                        .description
                        .as_deref()
                        .is_some_and(|d| d.contains(marker))
            })
            .min_by_key(|issue| issue.iid)
            .map(|issue| FoundSummary {
                iid: issue.iid,
                url: issue.web_url,
            }))
    }

    /// Edits the summary issue found by `title` and `marker` to say `body`
    /// (which carries the marker), or creates it.
    pub async fn write_summary(
        &self,
        project: &str,
        title: &str,
        marker: &str,
        body: &str,
    ) -> Result<SummaryOutcome, GitLabError> {
        let what = format!("the summary issue `{title}` in {project}");
        match self.find_summary(project, title, marker).await? {
            Some(found) => {
                let endpoint = EditIssue::builder()
                    .project(project)
                    .issue(found.iid)
                    .description(body)
                    .build()
                    .map_err(|e| GitLabError::unreadable(&what, e))?;
                ignore(endpoint)
                    .query_async(self.client())
                    .await
                    .map_err(|e| GitLabError::from_api(what, e))?;
                Ok(SummaryOutcome::Edited {
                    iid: found.iid,
                    url: found.url,
                })
            }
            None => {
                let endpoint = CreateIssue::builder()
                    .project(project)
                    .title(title)
                    .description(body)
                    .build()
                    .map_err(|e| GitLabError::unreadable(&what, e))?;
                let created: Listed = endpoint
                    .query_async(self.client())
                    .await
                    .map_err(|e| GitLabError::from_api(what, e))?;
                Ok(SummaryOutcome::Created {
                    iid: created.iid,
                    url: created.web_url,
                })
            }
        }
    }
}
