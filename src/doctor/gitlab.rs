//! GitLab: the token works and has the scope the policies need; each
//! reconciled project or group is reachable and has labelwarden's webhook,
//! sending issue events, verifying SSL, and not disabled; every GitLab
//! username the policy files map to Slack exists.

use chrono::{DateTime, NaiveDate, Utc};
use gitlab::api::{AsyncQuery, Pagination, paged};
use serde::Deserialize;

use super::Line;
use crate::audit::watchdog::webhook_findings;
use crate::gitlab::GitLabError;
use crate::gitlab::client::GitLabClient;
use crate::gitlab::history::Scope;
use crate::gitlab::hooks;

/// The token as `GET /personal_access_tokens/self` describes it (project,
/// group and personal access tokens alike).
#[derive(Debug, Deserialize)]
struct TokenSelf {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default = "active_by_default")]
    active: bool,
    #[serde(default)]
    expires_at: Option<NaiveDate>,
}

fn active_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct User {
    username: String,
    #[serde(default)]
    state: Option<String>,
}

/// The token's scopes against `needed` (`api` or `read_api`).
pub async fn token(client: &GitLabClient, needed: &str, now: DateTime<Utc>) -> Line {
    let endpoint =
        match gitlab::api::personal_access_tokens::PersonalAccessTokenSelf::builder().build() {
            Ok(endpoint) => endpoint,
            Err(e) => return Line::problem("gitlab", e.to_string(), "report this as a bug"),
        };
    let read: Result<TokenSelf, _> = endpoint.query_async(client).await;
    let token = match read.map_err(|e| GitLabError::from_api("the token".to_owned(), e)) {
        Ok(token) => token,
        Err(GitLabError::Unauthorized { .. }) => {
            return Line::problem(
                "gitlab",
                format!("GitLab at {} refuses GITLAB_TOKEN (401)", client.base_url()),
                format!(
                    "create a project or group access token with the `{needed}` scope and set GITLAB_TOKEN to it"
                ),
            );
        }
        Err(e) => {
            return Line::problem(
                "gitlab",
                format!("cannot read the token's scopes: {e}"),
                "check GITLAB_URL and that GitLab answers",
            );
        }
    };
    let has = |scope: &str| token.scopes.iter().any(|s| s == scope);
    let enough = has("api") || (needed == "read_api" && has("read_api"));
    let expiry = token
        .expires_at
        .map(|date| format!(", expires {date}"))
        .unwrap_or_default();
    if !token.active {
        return Line::problem(
            "gitlab",
            format!("the token `{}` is revoked or expired", token.name),
            format!("create a new one with the `{needed}` scope"),
        );
    }
    if !enough {
        return Line::problem(
            "gitlab",
            format!(
                "the token `{}` has {} but the policies need `{needed}`{}",
                token.name,
                if token.scopes.is_empty() {
                    "no scopes".to_owned()
                } else {
                    format!("`{}`", token.scopes.join("`, `"))
                },
                if needed == "api" {
                    " (a step adds labels or comments)"
                } else {
                    ""
                }
            ),
            format!("create a token with the `{needed}` scope and set GITLAB_TOKEN to it"),
        );
    }
    if let Some(date) = token.expires_at
        && date <= (now + chrono::TimeDelta::days(14)).date_naive()
    {
        return Line::problem(
            "gitlab",
            format!(
                "the token `{}` expires {date}, within two weeks",
                token.name
            ),
            "rotate it now (Settings → Access tokens) and update GITLAB_TOKEN",
        );
    }
    Line::ok(
        "gitlab",
        format!(
            "GITLAB_TOKEN works (`{}`: `{}`{expiry})",
            token.name,
            token.scopes.join("`, `")
        ),
    )
}

/// Whether `scope` is reachable and has labelwarden's webhook, well set.
pub async fn webhook(
    client: &GitLabClient,
    scope: &Scope,
    expected_url: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<Line> {
    let listed = match hooks::list(client, scope).await {
        Ok(listed) => listed,
        Err(GitLabError::NotFound { .. }) => {
            return vec![Line::problem(
                "webhook",
                format!("{scope} is not found, or the token's user cannot see it"),
                "check the path, and give the token's user access to it",
            )];
        }
        Err(GitLabError::Forbidden { .. }) => {
            let role = match scope {
                Scope::Project(_) => "Maintainer",
                Scope::Group(_) => "Owner",
            };
            return vec![Line::problem(
                "webhook",
                format!("the token may not list the webhooks of {scope}"),
                format!("give the token's user the {role} role there (reading webhooks needs it)"),
            )];
        }
        Err(e) => {
            return vec![Line::problem(
                "webhook",
                format!("cannot list the webhooks of {scope}: {e}"),
                "check GITLAB_URL and that GitLab answers",
            )];
        }
    };
    let mut lines: Vec<Line> = webhook_findings(&listed, &scope.to_string(), expected_url, now)
        .into_iter()
        .map(|finding| {
            Line::problem(
                "webhook",
                finding.message,
                "under Settings → Webhooks: URL https://<labelwarden>/webhooks/gitlab, secret token = LABELWARDEN_WEBHOOK_SECRET, trigger: issue events (and confidential issue events)",
            )
        })
        .collect();
    let ours: Vec<&hooks::Hook> = listed
        .iter()
        .filter(|hook| hooks::is_labelwardens(hook, expected_url))
        .collect();
    for hook in &ours {
        if hook.enable_ssl_verification == Some(false) {
            lines.push(Line::problem(
                "webhook",
                format!(
                    "webhook {} on {scope} does not verify SSL: anyone in the path can read the events",
                    hook.id
                ),
                "tick \"Enable SSL verification\" on the webhook (with a valid certificate on labelwarden's side)",
            ));
        }
    }
    if lines.is_empty() {
        lines.push(Line::ok(
            "webhook",
            format!(
                "{scope} has labelwarden's webhook ({}), sending issue events; GitLab does not show its secret token, so make sure it is LABELWARDEN_WEBHOOK_SECRET",
                ours.iter()
                    .map(|h| h.url.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    lines
}

/// Every GitLab username the policy files map to Slack exists.
pub async fn users(client: &GitLabClient, usernames: &[&str]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut missing = Vec::new();
    for username in usernames {
        let endpoint = match gitlab::api::users::Users::builder()
            .username(*username)
            .build()
        {
            Ok(endpoint) => endpoint,
            Err(e) => {
                return vec![Line::problem(
                    "gitlab",
                    e.to_string(),
                    "report this as a bug",
                )];
            }
        };
        let found: Result<Vec<User>, _> = paged(endpoint, Pagination::Limit(1))
            .query_async(client)
            .await;
        match found {
            Ok(found) => match found.iter().find(|u| u.username == *username) {
                Some(user) if user.state.as_deref() == Some("blocked") => {
                    lines.push(Line::problem(
                        "people",
                        format!("GitLab user @{username} is blocked"),
                        "remove them from people.gitlab_users, or unblock them",
                    ))
                }
                Some(_) => {}
                None => missing.push(*username),
            },
            Err(e) => {
                return vec![Line::problem(
                    "people",
                    format!(
                        "cannot look up GitLab users: {}",
                        GitLabError::from_api("users".to_owned(), e)
                    ),
                    "check GITLAB_URL and GITLAB_TOKEN",
                )];
            }
        }
    }
    if !missing.is_empty() {
        lines.push(Line::problem(
            "people",
            format!(
                "no GitLab user named {}",
                missing
                    .iter()
                    .map(|u| format!("@{u}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "fix the usernames under people.gitlab_users (assignees are tagged by them)",
        ));
    }
    if lines.is_empty() {
        lines.push(Line::ok(
            "people",
            format!(
                "all {} GitLab users under people.gitlab_users exist",
                usernames.len()
            ),
        ));
    }
    lines
}
