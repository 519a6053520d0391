//! The GitLab REST client: the `gitlab` crate's endpoint and pagination
//! types, sent through our own [`AsyncClient`] on reqwest.
//!
//! Our own client instead of `GitlabBuilder::build_async`, which calls
//! `GET /api/v4/user` before it returns (a service built that way cannot
//! start while GitLab is down). Here is the one place for what every call
//! needs:
//! - requests in flight adapted to GitLab's answers ([`super::pace`]):
//!   starting low, growing while latency stays flat and the announced
//!   budget is healthy, backing off on 429, rising latency or a shrinking
//!   budget; `concurrency` is the ceiling;
//! - an announced budget (`RateLimit-Remaining` until `RateLimit-Reset`)
//!   spread over the time left, so it is never run into;
//! - `RateLimit-Remaining: 0` holds every request until `RateLimit-Reset`;
//!   429 waits for `Retry-After`; 5xx and network errors retry with
//!   backoff; all of it a bounded number of times;
//! - the token in `PRIVATE-TOKEN`, never in a URL, a log line or an error;
//! - a count of requests made, for metrics and the benchmark.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use gitlab::api::{ApiError, AsyncClient, RestClient};
use http::request::Builder as RequestBuilder;
use http::{HeaderMap, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::pace::{Answer, Budget, Pace, request_kind};
use super::slots::{Slot, Slots};

/// GitLab.com.
pub const DEFAULT_URL: &str = "https://gitlab.com";
/// The environment variables with GitLab's address and the API token.
pub const URL_ENV: &str = "GITLAB_URL";
pub const TOKEN_ENV: &str = "GITLAB_TOKEN";
/// How often one request is tried before its failure is final.
const ATTEMPTS: u32 = 5;
/// How long to wait after a 429 that did not say.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The longest single wait a rate limit may impose before giving up.
const LONGEST_WAIT: Duration = Duration::from_secs(120);

/// Transport failures: what is left when retries ran out. GitLab's own
/// answers (401, 404, …) come back as responses for the `gitlab` crate to
/// read.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach GitLab at {base}: {message}")]
    Unreachable { base: String, message: String },
    #[error("the request could not be built: {0}")]
    Request(String),
    /// Not sent: the outbox claim the request was made under is lost.
    #[error(transparent)]
    ClaimLost(#[from] crate::notify::claim::ClaimLost),
}

/// How to reach GitLab.
#[derive(Debug, Clone)]
pub struct GitLabSettings {
    /// `https://gitlab.example.com`; plain `http://` is accepted for tests
    /// and on-premises instances.
    pub url: String,
    pub token: SecretString,
    /// The most requests in flight at once (the adaptive limit's ceiling).
    pub concurrency: usize,
    /// Delay before the first retry of a 5xx or network error; doubles.
    pub first_retry: Duration,
}

/// A GitLab API client. Cheap to clone; clones share the limits.
#[derive(Clone)]
pub struct GitLabClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api: Url,
    token: SecretString,
    /// Requests in flight now, the adaptive limit on them, and the places
    /// that keep to it.
    in_flight: AtomicUsize,
    pace: std::sync::Mutex<Pace>,
    slots: Slots,
    /// The highest limit reached (for the log and the benchmark).
    peak_limit: AtomicUsize,
    /// What GitLab last announced of its budget, and when.
    budget: std::sync::Mutex<Option<(Budget, Instant)>>,
    /// The earliest a request may start, to spread an announced budget.
    next_start: Mutex<Instant>,
    /// Set when GitLab says the rate limit is spent: nobody sends before.
    hold_until: Mutex<Option<Instant>>,
    requests: AtomicU64,
    first_retry: Duration,
}

/// A request's place in flight: gives it back when dropped.
struct InFlight<'a> {
    inner: &'a Inner,
    _slot: Slot<'a>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl GitLabClient {
    pub fn new(settings: GitLabSettings) -> Result<Self, String> {
        let mut base = Url::parse(settings.url.trim()).map_err(|e| {
            format!(
                "GITLAB_URL `{}` is not a URL like https://gitlab.example.com: {e}",
                settings.url
            )
        })?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(format!("GITLAB_URL `{}` must be http(s)", settings.url));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let api = base
            .join("api/v4/")
            .map_err(|e| format!("GITLAB_URL `{}`: {e}", settings.url))?;
        let pace = Pace::new(settings.concurrency);
        let pace_limit = pace.limit();
        let http = crate::http_client::builder()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(GitLabClient {
            inner: Arc::new(Inner {
                http,
                base,
                api,
                token: settings.token,
                in_flight: AtomicUsize::new(0),
                slots: Slots::new(pace.limit()),
                pace: std::sync::Mutex::new(pace),
                peak_limit: AtomicUsize::new(pace_limit),
                budget: std::sync::Mutex::new(None),
                next_start: Mutex::new(Instant::now()),
                hold_until: Mutex::new(None),
                requests: AtomicU64::new(0),
                first_retry: settings.first_retry,
            }),
        })
    }

    /// A client for `GITLAB_URL` (default GitLab.com) with `GITLAB_TOKEN`,
    /// `concurrency` requests in flight; `None` when no token is set.
    pub fn from_env(concurrency: usize) -> Result<Option<Self>, String> {
        let Some(token) = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
        else {
            return Ok(None);
        };
        GitLabClient::new(GitLabSettings {
            url: std::env::var(URL_ENV).unwrap_or_else(|_| DEFAULT_URL.to_owned()),
            token: SecretString::from(token),
            concurrency,
            first_retry: Duration::from_secs(1),
        })
        .map(Some)
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_made(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The adaptive limit on requests in flight now.
    pub fn concurrency_limit(&self) -> usize {
        self.inner
            .pace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .limit()
    }

    /// The highest limit on requests in flight reached so far.
    pub fn peak_concurrency(&self) -> usize {
        self.inner.peak_limit.load(Ordering::Relaxed)
    }

    /// Waits for room under the adaptive limit, then for the request's
    /// slot in an announced budget.
    async fn take_place(&self) -> InFlight<'_> {
        let inner = &self.inner;
        let slot = inner.slots.take().await;
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let place = InFlight { inner, _slot: slot };
        let spacing = {
            let budget = inner.budget.lock().unwrap_or_else(|e| e.into_inner());
            budget.and_then(|(budget, at)| {
                let resets_in = budget.resets_in.saturating_sub(at.elapsed());
                Budget {
                    resets_in,
                    ..budget
                }
                .spacing(inner.in_flight.load(Ordering::SeqCst))
            })
        };
        if let Some(spacing) = spacing {
            let start = {
                let mut next = inner.next_start.lock().await;
                let start = (*next).max(Instant::now());
                *next = start + spacing.min(LONGEST_WAIT);
                start
            };
            tokio::time::sleep_until(start).await;
        }
        place
    }

    /// Feeds one answer to the adaptive limit, with the budget it announced.
    fn observe(
        &self,
        path: &str,
        outcome: &Result<Response<Bytes>, TransportError>,
        latency: Duration,
    ) {
        let answer = match outcome {
            Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => Answer::RateLimited,
            Ok(r) if r.status().is_server_error() => Answer::Failed,
            Ok(_) => Answer::Ok(latency),
            Err(_) => Answer::Failed,
        };
        let budget = outcome
            .as_ref()
            .ok()
            .and_then(|r| announced_budget(r.headers()));
        if let Some(budget) = budget {
            *self.inner.budget.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((budget, Instant::now()));
        }
        let limit = {
            let mut pace = self.inner.pace.lock().unwrap_or_else(|e| e.into_inner());
            pace.observe(&request_kind(path), answer, budget);
            // Under the same lock, so the places follow the limits in
            // the order they were set.
            self.inner.slots.resize(pace.limit());
            pace.limit()
        };
        self.inner.peak_limit.fetch_max(limit, Ordering::Relaxed);
        metrics::gauge!("labelwarden_gitlab_concurrency").set(limit as f64);
    }

    /// The instance's address, for messages.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// Waits while GitLab's rate limit is spent.
    async fn wait_for_rate_limit(&self) {
        let until = *self.inner.hold_until.lock().await;
        if let Some(until) = until
            && until > Instant::now()
        {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Notes `RateLimit-Remaining: 0` and when it resets.
    async fn note_rate_limit(&self, headers: &HeaderMap) {
        let remaining = header_number(headers, "ratelimit-remaining");
        if remaining != Some(0) {
            return;
        }
        let wait = header_number(headers, "ratelimit-reset")
            .map(|reset| {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                Duration::from_secs(reset.saturating_sub(now))
            })
            .unwrap_or(Duration::from_secs(1))
            .min(LONGEST_WAIT);
        tracing::warn!(wait = ?wait, "GitLab rate limit spent; holding requests until it resets");
        *self.inner.hold_until.lock().await = Some(Instant::now() + wait);
    }

    /// Sends one request, retrying what is worth retrying.
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<Response<Bytes>, TransportError> {
        let (parts, body) = request.into_parts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.wait_for_rate_limit().await;
            let outcome = {
                let _place = self.take_place().await;
                self.inner.requests.fetch_add(1, Ordering::Relaxed);
                let sent_at = Instant::now();
                let outcome = self.send_once(&parts, body.clone()).await;
                self.observe(parts.uri.path(), &outcome, sent_at.elapsed());
                outcome
            };
            let retry_in = match &outcome {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    Some(retry_after(response.headers()).unwrap_or(DEFAULT_RETRY_AFTER))
                }
                Ok(response) if response.status().is_server_error() => Some(self.backoff(attempt)),
                Ok(_) => None,
                Err(TransportError::ClaimLost(_)) => return outcome,
                Err(_) => Some(self.backoff(attempt)),
            };
            let outcome_label = match (&outcome, retry_in) {
                (Ok(_), None) => "ok",
                (Ok(r), Some(_)) if r.status() == StatusCode::TOO_MANY_REQUESTS => "rate_limited",
                (Ok(_), Some(_)) => "server_error",
                (Err(_), _) => "network",
            };
            metrics::counter!("labelwarden_gitlab_requests_total", "outcome" => outcome_label)
                .increment(1);
            if let Ok(response) = &outcome {
                self.note_rate_limit(response.headers()).await;
            }
            match retry_in {
                Some(wait) if attempt < ATTEMPTS => {
                    tracing::warn!(
                        attempt,
                        retry_in = ?wait,
                        path = parts.uri.path(),
                        outcome = outcome_label,
                        "GitLab request failed; retrying"
                    );
                    tokio::time::sleep(wait.min(LONGEST_WAIT)).await;
                }
                _ => return outcome,
            }
        }
    }

    async fn send_once(
        &self,
        parts: &http::request::Parts,
        body: Vec<u8>,
    ) -> Result<Response<Bytes>, TransportError> {
        let unreachable = |e: reqwest::Error| TransportError::Unreachable {
            base: self.inner.base.to_string(),
            message: crate::http_client::describe(e),
        };
        let url = Url::parse(&parts.uri.to_string())
            .map_err(|e| TransportError::Request(e.to_string()))?;
        let mut request = self
            .inner
            .http
            .request(parts.method.clone(), url)
            .headers(parts.headers.clone())
            .header("PRIVATE-TOKEN", self.inner.token.expose_secret());
        if !body.is_empty() {
            request = request.body(body);
        }
        // Under an outbox claim (a step's labels or note): confirmed first,
        // and the request kept well inside it.
        if let Some(confirmed) = crate::notify::claim::before_request().await? {
            request = confirmed.apply(request);
        }
        let response = request.send().await.map_err(unreachable)?;
        let mut built = Response::builder().status(response.status());
        if let Some(headers) = built.headers_mut() {
            headers.extend(response.headers().clone());
        }
        let bytes = response.bytes().await.map_err(unreachable)?;
        built
            .body(bytes)
            .map_err(|e| TransportError::Request(e.to_string()))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.inner
            .first_retry
            .saturating_mul(1 << attempt.saturating_sub(1).min(10))
    }
}

/// The budget an answer announces (`RateLimit-Limit`, `-Remaining` and
/// `-Reset`), if it announces one.
fn announced_budget(headers: &HeaderMap) -> Option<Budget> {
    let limit = header_number(headers, "ratelimit-limit")?;
    let remaining = header_number(headers, "ratelimit-remaining")?;
    let reset = header_number(headers, "ratelimit-reset")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Some(Budget {
        limit,
        remaining,
        resets_in: Duration::from_secs(reset.saturating_sub(now)),
    })
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_number(headers, "retry-after").map(Duration::from_secs)
}

impl RestClient for GitLabClient {
    type Error = TransportError;

    fn rest_endpoint(&self, endpoint: &str) -> Result<Url, ApiError<Self::Error>> {
        Ok(self.inner.api.join(endpoint)?)
    }
}

#[async_trait]
impl AsyncClient for GitLabClient {
    async fn rest_async(
        &self,
        request: RequestBuilder,
        body: Vec<u8>,
    ) -> Result<Response<Bytes>, ApiError<Self::Error>> {
        let request = request
            .body(body)
            .map_err(|e| ApiError::client(TransportError::Request(e.to_string())))?;
        self.send(request).await.map_err(ApiError::client)
    }
}
