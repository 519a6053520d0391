//! The status page over HTTP (`serve --status-page`): `GET /` and
//! `GET /status` answer with [`crate::status_page`]'s HTML, read from the
//! store on each request. Access needs `LABELWARDEN_STATUS_TOKEN`, as
//! `Authorization: Bearer …` or as the password of basic auth (any user
//! name; a browser asks for it), compared in constant time, unless
//! `--status-public` opens it to whoever reaches the port. The token is
//! never in the page.
//!
//! The Slack workspace's URL, for thread links, is asked of `auth.test`
//! in the background once the server starts; until it is known, threads
//! are named by their channel only.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use super::App;
use crate::slack::api::WebApi;
use crate::status_page::board;
use crate::status_page::{self, PageSettings};
use crate::store::Store;

/// The environment variable holding the status page's token.
pub const TOKEN_ENV: &str = "LABELWARDEN_STATUS_TOKEN";

/// Who may read the page.
#[derive(Clone)]
pub enum StatusAccess {
    /// Whoever carries this token (bearer, or basic auth's password).
    Token(SecretString),
    /// Anybody who reaches the port (`--status-public`).
    Public,
}

/// The page's settings in `serve`.
#[derive(Clone)]
pub struct StatusPageConfig {
    pub access: StatusAccess,
    /// The workspace URL once `auth.test` told it.
    pub slack_workspace: Arc<OnceLock<String>>,
}

impl StatusPageConfig {
    pub fn new(access: StatusAccess) -> Self {
        StatusPageConfig {
            access,
            slack_workspace: Arc::new(OnceLock::new()),
        }
    }
}

/// Whether `headers` carry what `access` asks for.
pub fn authorized(access: &StatusAccess, headers: &HeaderMap) -> bool {
    let token = match access {
        StatusAccess::Public => return true,
        StatusAccess::Token(token) => token.expose_secret().as_bytes(),
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let offered = if let Some(bearer) = given.strip_prefix("Bearer ") {
        bearer.trim().as_bytes().to_vec()
    } else if let Some(basic) = given.strip_prefix("Basic ") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
            return false;
        };
        // `user:password`; the password is everything after the first colon.
        match decoded.iter().position(|b| *b == b':') {
            Some(colon) => decoded[colon + 1..].to_vec(),
            None => return false,
        }
    } else {
        return false;
    };
    offered.len() == token.len() && bool::from(offered.as_slice().ct_eq(token))
}

/// `GET /` and `GET /status`.
pub async fn page<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    let Some(config) = &app.status_page else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !authorized(&config.access, &headers) {
        let mut refused = (
            StatusCode::UNAUTHORIZED,
            format!(
                "the status page needs {TOKEN_ENV}, as a bearer token or basic auth's password\n"
            ),
        )
            .into_response();
        // Both challenges: a browser asks for basic auth, a script may bear.
        for challenge in [
            "Basic realm=\"labelwarden status\", charset=\"UTF-8\"",
            "Bearer",
        ] {
            refused.headers_mut().append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        return refused;
    }
    let settings = PageSettings {
        slack_workspace: config.slack_workspace.get().cloned(),
        ..PageSettings::default()
    };
    let read = board::board(
        &app.context.store,
        &app.context.policies,
        Utc::now(),
        settings.window,
    )
    .await;
    let board = match read {
        Ok(board) => board,
        Err(e) => {
            tracing::error!(error = %e, "status page: the store did not answer");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the status page could not read the store; see the log\n",
            )
                .into_response();
        }
    };
    let mut response = Html(status_page::render(&board, &settings)).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Asks Slack's `auth.test` for the workspace URL until it answers (or
/// `stop`), a minute apart, and keeps it in `workspace`.
pub async fn learn_workspace(
    api: WebApi,
    workspace: Arc<OnceLock<String>>,
    stop: CancellationToken,
) {
    loop {
        match api.get_json("auth.test", &[]).await {
            Ok(answer) => match answer["url"].as_str() {
                Some(url) if url.starts_with("https://") => {
                    let _ = workspace.set(url.to_owned());
                    tracing::info!(workspace = url, "status page links Slack threads");
                    return;
                }
                _ => {
                    tracing::warn!(
                        "Slack's auth.test gave no workspace URL; the status page names threads without links"
                    );
                    return;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "status page: Slack's auth.test failed; thread links wait for it");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    fn token() -> StatusAccess {
        StatusAccess::Token(SecretString::from("s3cret-token"))
    }

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    #[test]
    fn the_token_opens_the_page_as_a_bearer_token_or_basic_auth_s_password() {
        assert!(authorized(&token(), &headers("Bearer s3cret-token")));
        assert!(authorized(
            &token(),
            &headers(&basic("anyone:s3cret-token"))
        ));
        assert!(authorized(&token(), &headers(&basic(":s3cret-token"))));
    }

    #[test]
    fn no_token_a_wrong_one_or_a_user_name_alone_is_refused() {
        assert!(!authorized(&token(), &HeaderMap::new()));
        assert!(!authorized(&token(), &headers("Bearer s3cret-toke")));
        assert!(!authorized(
            &token(),
            &headers("Bearer s3cret-token-and-more")
        ));
        assert!(!authorized(&token(), &headers(&basic("s3cret-token:"))));
        assert!(!authorized(&token(), &headers(&basic("s3cret-token"))));
        assert!(!authorized(&token(), &headers("Basic not-base64!")));
        assert!(!authorized(&token(), &headers("Token s3cret-token")));
    }

    #[test]
    fn a_public_page_needs_nothing() {
        assert!(authorized(&StatusAccess::Public, &HeaderMap::new()));
    }
}
