//! The fake GitLab's accounts: the token's own description
//! (`GET /personal_access_tokens/self`), users by username
//! (`GET /users?username=`), and who may list a scope's webhooks, as GitLab
//! documents them.

use super::*;

/// What the fake knows of accounts; the token has `api` unless told.
pub(super) struct Accounts {
    pub token: Value,
    /// (username, state): `active` or `blocked`.
    pub users: Vec<(String, String)>,
    /// Paths whose webhooks the token's user may not list (403).
    pub hooks_forbidden: Vec<String>,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            token: json!({
                "id": 7, "name": "labelwarden", "revoked": false, "active": true,
                "scopes": ["api"], "user_id": 42, "expires_at": null,
                "created_at": "2026-01-01T00:00:00Z",
            }),
            users: Vec::new(),
            hooks_forbidden: Vec::new(),
        }
    }
}

impl FakeGitLab {
    /// The token's scopes and expiry, as `/personal_access_tokens/self` shows them.
    pub fn token(&self, scopes: &[&str], expires_at: Option<&str>, active: bool) {
        let mut inner = self.lock();
        inner.accounts.token["scopes"] = json!(scopes);
        inner.accounts.token["expires_at"] = json!(expires_at);
        inner.accounts.token["active"] = json!(active);
    }

    /// A user that exists (`active`, or `blocked`); a user already there
    /// takes the new state.
    pub fn add_user(&self, username: &str, state: &str) {
        let mut inner = self.lock();
        let users = &mut inner.accounts.users;
        users.retain(|(name, _)| name != username);
        users.push((username.to_owned(), state.to_owned()));
    }

    /// Listing the webhooks of `path` answers 403 (the token's user lacks
    /// the Maintainer or Owner role there).
    pub fn forbid_hooks(&self, path: &str) {
        self.lock().accounts.hooks_forbidden.push(path.to_owned());
    }

    /// Changes every webhook's JSON, as edited in GitLab's settings.
    pub fn edit_hooks(&self, change: impl Fn(&mut Value)) {
        for (_, hook) in self.lock().hooks.iter_mut() {
            change(hook);
        }
    }
}

pub(super) async fn token_self(
    State(gitlab): State<FakeGitLab>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = gitlab.front_door("GET", &uri, &headers).await {
        return answer;
    }
    let token = gitlab.lock().accounts.token.clone();
    axum::Json(token).into_response()
}

pub(super) async fn users(
    State(gitlab): State<FakeGitLab>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = gitlab.front_door("GET", &uri, &headers).await {
        return answer;
    }
    let inner = gitlab.lock();
    let wanted = query.get("username").cloned().unwrap_or_default();
    let found: Vec<Value> = inner
        .accounts
        .users
        .iter()
        .enumerate()
        .filter(|(_, (username, _))| username.eq_ignore_ascii_case(&wanted))
        .map(|(i, (username, state))| {
            json!({ "id": 100 + i, "username": username, "name": username, "state": state })
        })
        .collect();
    page(&uri, &query, found)
}

/// The answer for a scope's hooks before listing them, if not a list: 404
/// for a project that does not exist, 403 when the role is missing.
pub(super) fn hooks_refused(inner: &Inner, uri: &Uri, path: &str) -> Option<Response> {
    if inner.accounts.hooks_forbidden.iter().any(|p| p == path) {
        return Some(
            (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"message": "403 Forbidden"})),
            )
                .into_response(),
        );
    }
    let project = uri.path().contains("/projects/");
    let known = inner
        .projects
        .iter()
        .any(|(p, id)| p == path || id.to_string() == path)
        || inner.hooks.iter().any(|(owner, _)| owner == path);
    (project && !known).then(|| {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "404 Project Not Found"})),
        )
            .into_response()
    })
}
