//! A rule's `assign:`: the person on call becomes the issue's assignee,
//! if nobody is assigned when the step is carried out. Safe to repeat: a
//! retry, a second replica or an `audit --notify` after `serve` finds the
//! issue assigned and leaves it, and so does a person's own assignment
//! made meanwhile. Only an unassigned issue is written, which also keeps
//! to GitLab Free's one assignee per issue.

use gitlab::api::projects::issues::{EditIssue, Issue};
use gitlab::api::users::Users;
use gitlab::api::{AsyncQuery, Pagination, ignore, paged};
use serde::Deserialize;

use super::GitLabError;
use super::actions::IssueWriter;
use crate::issue::IssueRef;

/// What became of an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignOutcome {
    Assigned(Vec<String>),
    /// Somebody is assigned already: left alone.
    AlreadyOwned,
    /// No GitLab user has these usernames (a rotation naming somebody who
    /// left): nothing to assign. `labelwarden doctor` names them too.
    UnknownUsers(Vec<String>),
}

#[derive(Deserialize)]
struct Assignees {
    #[serde(default)]
    assignees: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    username: String,
}

impl IssueWriter {
    /// Assigns `usernames` to `issue` if nobody is assigned now.
    pub async fn assign_if_unowned(
        &self,
        issue: &IssueRef,
        usernames: &[String],
    ) -> Result<AssignOutcome, GitLabError> {
        let what = format!("the assignees of {issue}");
        let endpoint = Issue::builder()
            .project(issue.project.0.as_str())
            .issue(issue.iid.0)
            .build()
            .map_err(|e| GitLabError::unreadable(&what, e))?;
        let now: Assignees = endpoint
            .query_async(self.client())
            .await
            .map_err(|e| GitLabError::from_api(what.clone(), e))?;
        if !now.assignees.is_empty() {
            return Ok(AssignOutcome::AlreadyOwned);
        }
        let mut ids = Vec::new();
        let mut unknown = Vec::new();
        for username in usernames {
            match self.user_id(username).await? {
                Some(id) => ids.push(id),
                None => unknown.push(username.clone()),
            }
        }
        if ids.is_empty() {
            tracing::warn!(%issue, users = ?unknown, "no GitLab user to assign");
            return Ok(AssignOutcome::UnknownUsers(unknown));
        }
        let endpoint = EditIssue::builder()
            .project(issue.project.0.as_str())
            .issue(issue.iid.0)
            .assignee_ids(ids.into_iter())
            .build()
            .map_err(|e| GitLabError::unreadable(&what, e))?;
        ignore(endpoint)
            .query_async(self.client())
            .await
            .map_err(|e| GitLabError::from_api(what, e))?;
        let assigned: Vec<String> = usernames
            .iter()
            .filter(|u| !unknown.contains(u))
            .cloned()
            .collect();
        Ok(AssignOutcome::Assigned(assigned))
    }

    /// The id of the GitLab user with exactly this username.
    async fn user_id(&self, username: &str) -> Result<Option<u64>, GitLabError> {
        let what = format!("GitLab user @{username}");
        let endpoint = Users::builder()
            .username(username)
            .build()
            .map_err(|e| GitLabError::unreadable(&what, e))?;
        let found: Vec<User> = paged(endpoint, Pagination::Limit(1))
            .query_async(self.client())
            .await
            .map_err(|e| GitLabError::from_api(what, e))?;
        Ok(found
            .into_iter()
            .find(|user| user.username.eq_ignore_ascii_case(username))
            .map(|user| user.id))
    }
}
