//! The GitLab adapter: what GitLab sends us (webhook payloads, [`webhook`])
//! turned into the core's types, and the REST API: the client with its
//! limits and retries ([`client`]), issues with their histories read
//! into the core's [`crate::issue::Issue`] ([`history`]), the escalation
//! ledger kept in notes ([`markers`]), and what steps do on an issue:
//! labels and notes ([`actions`]); and what responders say in Slack,
//! written on the issue ([`from_slack`]); the policy files at a commit and
//! `diff`'s merge-request note ([`repository`]).

pub mod actions;
pub mod api_issue;
pub mod assign;
pub mod cache;
pub mod client;
pub mod due_date;
pub mod from_slack;
pub mod history;
pub mod hooks;
pub mod ledger_writer;
pub mod markers;
pub mod note_hook;
pub mod pace;
pub mod pages;
pub mod raised_issue;
pub mod repository;
pub mod slots;
pub mod summary_issue;
pub mod webhook;

use client::TransportError;

/// Why a GitLab API call failed. Each says what was asked and what to do.
#[derive(Debug, thiserror::Error)]
pub enum GitLabError {
    #[error(
        "GitLab refused the token (401) for {what}: check GITLAB_TOKEN, it may be expired or revoked"
    )]
    Unauthorized { what: String },
    #[error(
        "the token may not access {what} (403): reading needs the `read_api` scope, posting notes and labels `api`, and its user needs access"
    )]
    Forbidden { what: String },
    #[error("{what} not found (404): check the path, and that the token's user can see it")]
    NotFound { what: String },
    #[error("GitLab answered {status} reading {what}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}: {source}")]
    Transport {
        what: String,
        source: TransportError,
    },
    #[error("{what}: unexpected answer: {message}")]
    Unreadable { what: String, message: String },
}

impl GitLabError {
    /// A request that could not be built, or an answer that could not be
    /// read, about `what`.
    pub(crate) fn unreadable(what: &str, error: impl std::fmt::Display) -> Self {
        GitLabError::Unreadable {
            what: what.to_owned(),
            message: error.to_string(),
        }
    }

    /// The outbox claim the request was made under was lost before it
    /// could leave: nothing was sent.
    pub fn claim_lost(&self) -> Option<&crate::notify::claim::ClaimLost> {
        match self {
            GitLabError::Transport {
                source: TransportError::ClaimLost(lost),
                ..
            } => Some(lost),
            _ => None,
        }
    }

    /// Worth trying again later: GitLab or the network had a problem, not
    /// the request (the client already retried a few times).
    pub fn is_temporary(&self) -> bool {
        match self {
            GitLabError::Transport { .. } | GitLabError::Unreadable { .. } => true,
            GitLabError::Refused { status, .. } => *status >= 500 || *status == 429,
            GitLabError::Unauthorized { .. }
            | GitLabError::Forbidden { .. }
            | GitLabError::NotFound { .. } => false,
        }
    }

    pub(crate) fn from_api(what: String, error: gitlab::api::ApiError<TransportError>) -> Self {
        use gitlab::api::ApiError;
        let status_of = |status: http::StatusCode, message: String| match status.as_u16() {
            401 => GitLabError::Unauthorized { what: what.clone() },
            403 => GitLabError::Forbidden { what: what.clone() },
            404 => GitLabError::NotFound { what: what.clone() },
            code => GitLabError::Refused {
                what: what.clone(),
                status: code,
                message,
            },
        };
        match error {
            ApiError::Client { source } => GitLabError::Transport { what, source },
            ApiError::GitlabWithStatus { status, msg } => status_of(status, msg),
            ApiError::GitlabObjectWithStatus { status, obj }
            | ApiError::GitlabUnrecognizedWithStatus { status, obj } => {
                status_of(status, obj.to_string())
            }
            ApiError::GitlabService { status, data } => status_of(
                status,
                String::from_utf8_lossy(&data).chars().take(200).collect(),
            ),
            other => GitLabError::Unreadable {
                what,
                message: other.to_string(),
            },
        }
    }
}
