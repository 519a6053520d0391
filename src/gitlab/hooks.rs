//! The webhooks of a project or group, for the watchdog: is labelwarden's
//! hook there, enabled, and sending issue events? GitLab disables a hook
//! after 4 consecutive failures (for a while: `alert_status`
//! `temporarily_disabled`, `disabled_until`) and for good after 40
//! (`disabled`). Listing hooks needs the Maintainer role on a project, the
//! Owner role on a group.

use chrono::{DateTime, Utc};
use gitlab::api::{AsyncQuery, Pagination, paged};
use serde::Deserialize;

use super::GitLabError;
use super::client::GitLabClient;
use super::history::Scope;

/// A webhook as the hooks API lists it (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hook {
    pub id: u64,
    pub url: String,
    #[serde(default)]
    pub issues_events: bool,
    #[serde(default)]
    pub confidential_issues_events: bool,
    /// `executable`, `temporarily_disabled` or `disabled`.
    #[serde(default)]
    pub alert_status: Option<String>,
    #[serde(default)]
    pub disabled_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub enable_ssl_verification: Option<bool>,
}

/// Whether a hook is labelwarden's: its URL is `expected_url` if given,
/// else any URL whose path ends in `/webhooks/gitlab`.
pub fn is_labelwardens(hook: &Hook, expected_url: Option<&str>) -> bool {
    match expected_url {
        Some(url) => hook.url.trim_end_matches('/') == url.trim_end_matches('/'),
        None => hook
            .url
            .split(['?', '#'])
            .next()
            .is_some_and(|path| path.trim_end_matches('/').ends_with("/webhooks/gitlab")),
    }
}

/// Every webhook of the scope.
pub async fn list(client: &GitLabClient, scope: &Scope) -> Result<Vec<Hook>, GitLabError> {
    let what = format!("the webhooks of {scope}");
    let unreadable = |e: String| GitLabError::Unreadable {
        what: what.clone(),
        message: e,
    };
    let result = match scope {
        Scope::Project(path) => {
            let endpoint = gitlab::api::projects::hooks::Hooks::builder()
                .project(path.as_str())
                .build()
                .map_err(|e| unreadable(e.to_string()))?;
            paged(endpoint, Pagination::All).query_async(client).await
        }
        Scope::Group(path) => {
            let endpoint = gitlab::api::groups::hooks::Hooks::builder()
                .group(path.as_str())
                .build()
                .map_err(|e| unreadable(e.to_string()))?;
            paged(endpoint, Pagination::All).query_async(client).await
        }
    };
    result.map_err(|e| GitLabError::from_api(what.clone(), e))
}
