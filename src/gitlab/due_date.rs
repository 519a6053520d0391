//! Writing an issue's due date for `set_due_date` (see
//! [`crate::engine::due_date`]): the date is read again just before the
//! write, so that a date a person set since labelwarden decided is left
//! alone, and a write already done (a retry, another replica) is not
//! repeated.

use chrono::NaiveDate;
use gitlab::api::endpoint_prelude::{BodyError, Cow, Endpoint, Method};
use gitlab::api::projects::issues::{EditIssue, Issue};
use gitlab::api::{AsyncQuery, ignore};
use serde::Deserialize;

use super::GitLabError;
use super::actions::IssueWriter;
use crate::engine::due_date::DueDateWrite;
use crate::issue::IssueRef;

/// What became of a due-date write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueDateOutcome {
    /// GitLab showed another of labelwarden's dates, or none: written.
    Written,
    /// GitLab already showed it.
    AlreadyShown,
    /// A person set a date of their own: left alone.
    LeftToAPerson,
}

#[derive(Deserialize)]
struct DueDateOnly {
    #[serde(default)]
    due_date: Option<NaiveDate>,
}

/// `PUT /projects/:id/issues/:iid` with `{"due_date": null}`: the `gitlab`
/// crate's edit sends a date or nothing, never the null that clears it.
struct ClearDueDate<'a> {
    issue: &'a IssueRef,
}

impl Endpoint for ClearDueDate<'_> {
    fn method(&self) -> Method {
        Method::PUT
    }

    fn endpoint(&self) -> Cow<'static, str> {
        let project: String =
            url::form_urlencoded::byte_serialize(self.issue.project.0.as_bytes()).collect();
        format!("projects/{project}/issues/{}", self.issue.iid.0).into()
    }

    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        Ok(Some(("application/json", br#"{"due_date":null}"#.to_vec())))
    }
}

impl IssueWriter {
    /// The due date GitLab shows on `issue` now.
    pub async fn due_date(&self, issue: &IssueRef) -> Result<Option<NaiveDate>, GitLabError> {
        let what = format!("the due date of {issue}");
        let endpoint = Issue::builder()
            .project(issue.project.0.as_str())
            .issue(issue.iid.0)
            .build()
            .map_err(|e| GitLabError::Unreadable {
                what: what.clone(),
                message: e.to_string(),
            })?;
        let shown: DueDateOnly = endpoint
            .query_async(self.client())
            .await
            .map_err(|e| GitLabError::from_api(what, e))?;
        Ok(shown.due_date)
    }

    /// Writes `write` on `issue` if GitLab still shows one of
    /// labelwarden's dates or none. Safe to repeat.
    pub async fn write_due_date(
        &self,
        issue: &IssueRef,
        write: &DueDateWrite,
    ) -> Result<DueDateOutcome, GitLabError> {
        let shown = self.due_date(issue).await?;
        if shown == write.to {
            return Ok(DueDateOutcome::AlreadyShown);
        }
        if !write.may_replace(shown) {
            tracing::info!(%issue, "the issue's due date was set by a person: left alone");
            return Ok(DueDateOutcome::LeftToAPerson);
        }
        let what = format!("the due date of {issue}");
        let result = match write.to {
            Some(date) => {
                let endpoint = EditIssue::builder()
                    .project(issue.project.0.as_str())
                    .issue(issue.iid.0)
                    .due_date(date)
                    .build()
                    .map_err(|e| GitLabError::Unreadable {
                        what: what.clone(),
                        message: e.to_string(),
                    })?;
                ignore(endpoint).query_async(self.client()).await
            }
            None => {
                ignore(ClearDueDate { issue })
                    .query_async(self.client())
                    .await
            }
        };
        result.map_err(|e| GitLabError::from_api(what, e))?;
        Ok(DueDateOutcome::Written)
    }
}
