//! The fake GitLab's announced rate limit, as GitLab.com documents it:
//! every answer carries `RateLimit-Limit`, `RateLimit-Remaining`,
//! `RateLimit-Reset` (the window's end, in Unix seconds) and
//! `RateLimit-Observed`; a request over the window's budget is answered
//! `429 Too Many Requests` with `Retry-After`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::middleware::Next;

use super::*;

/// A budget of `limit` requests per `window_seconds`, windows aligned to
/// the Unix clock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Announced {
    limit: u64,
    window_seconds: u64,
    window: u64,
    used: u64,
    /// 429s answered.
    refused: u64,
}

impl FakeGitLab {
    /// From now on, `limit` requests per `window_seconds`, announced.
    pub fn announce_limit(&self, limit: u64, window_seconds: u64) {
        self.lock().announced = Some(Announced {
            limit,
            window_seconds,
            window: 0,
            used: 0,
            refused: 0,
        });
    }

    /// How many requests the announced limit refused with 429.
    pub fn refused_for_rate(&self) -> u64 {
        self.lock().announced.map_or(0, |a| a.refused)
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Counts the request against the announced budget, and says it on the
/// answer (or refuses it).
pub(super) async fn announce(
    State(gitlab): State<FakeGitLab>,
    request: Request,
    next: Next,
) -> Response {
    let verdict = {
        let mut inner = gitlab.lock();
        inner.announced.as_mut().map(|announced| {
            let now = unix_seconds();
            let window = now / announced.window_seconds;
            if window != announced.window {
                announced.window = window;
                announced.used = 0;
            }
            announced.used += 1;
            let reset = (window + 1) * announced.window_seconds;
            let over = announced.used > announced.limit;
            if over {
                announced.refused += 1;
            }
            (
                *announced,
                reset,
                announced.limit.saturating_sub(announced.used),
                over,
            )
        })
    };
    let Some((announced, reset, remaining, over)) = verdict else {
        return next.run(request).await;
    };
    let mut response = if over {
        let mut refused = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"message": "429 Too Many Requests"})),
        )
            .into_response();
        refused.headers_mut().insert(
            "retry-after",
            HeaderValue::from(reset.saturating_sub(unix_seconds()).max(1)),
        );
        refused
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(announced.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
    headers.insert("ratelimit-observed", HeaderValue::from(announced.used));
    response
}
