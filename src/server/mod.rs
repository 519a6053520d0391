//! `serve`: the HTTP server and the background jobs around one store.
//!
//! Routes: `POST /webhooks/gitlab` ([`webhook`]), `POST /webhooks/slack`
//! ([`slack_events`]), `GET /healthz`,
//! `/readyz` and `/metrics` ([`ops`]), the admin API under `/admin/`
//! when a token is set ([`admin`]), and the status page at `/` and
//! `/status` when switched on ([`status`]). On shutdown the server stops taking
//! requests, finishes those in flight, lets the jobs finish what they are
//! doing, and returns.

pub mod admin;
pub mod metric_help;
mod ops;
pub mod slack_events;
pub mod status;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::jobs::{self, Context};
use crate::notify::{DestinationHealth, Notifier};
use crate::store::Store;

pub use ops::{prometheus, prometheus_labelled};

/// Settings of the HTTP side.
pub struct ServerConfig {
    /// Accepted `X-Gitlab-Token` values (several, to rotate); empty only
    /// with `--insecure-no-secret`.
    pub secrets: Vec<SecretString>,
    /// Largest webhook body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Reconcile with the GitLab API, if configured.
    pub reconcile: Option<jobs::reconcile::ReconcileConfig>,
    /// Slack's Events API on `/webhooks/slack`, if configured.
    pub slack_events: Option<slack_events::SlackEventsConfig>,
    /// The admin API's bearer token; the API is off without one.
    pub admin_token: Option<SecretString>,
    /// The status page, if switched on.
    pub status_page: Option<status::StatusPageConfig>,
}

/// What the routes share.
pub struct App<S> {
    context: Arc<Context<S>>,
    secrets: Vec<SecretString>,
    metrics: PrometheusHandle,
    /// The notifier's view of its destinations, if it keeps one.
    destinations: Option<Arc<DestinationHealth>>,
    slack_events: Option<slack_events::SlackEventsConfig>,
    admin_token: Option<SecretString>,
    status_page: Option<status::StatusPageConfig>,
}

/// How long the jobs get to finish after the server stopped.
const JOBS_GRACE: Duration = Duration::from_secs(10);

/// Serves on `listener` until `shutdown` is cancelled.
pub async fn run<S: Store, N: Notifier>(
    listener: TcpListener,
    config: ServerConfig,
    context: Arc<Context<S>>,
    notifier: Arc<N>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slack_events = config.slack_events.clone();
    let app = Arc::new(App {
        context: Arc::clone(&context),
        secrets: config.secrets,
        metrics: prometheus(),
        destinations: notifier.health(),
        slack_events: config.slack_events,
        admin_token: config.admin_token.clone(),
        status_page: config.status_page.clone(),
    });
    let mut router = Router::new()
        .route("/webhooks/gitlab", post(webhook::receive::<S>))
        .route("/webhooks/slack", post(slack_events::receive::<S>))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz::<S>))
        .route("/metrics", get(ops::metrics::<S>));
    if config.admin_token.is_some() {
        router = router
            .route("/admin/clocks", get(admin::clocks::<S>))
            .route("/admin/clock", get(admin::clock::<S>))
            .route("/admin/outbox", get(admin::outbox::<S>))
            .route("/admin/outbox/resend", post(admin::resend::<S>))
            .route(
                "/admin/mutes",
                get(admin::mutes::<S>).post(admin::mute::<S>),
            )
            .route("/admin/mutes/{id}", delete(admin::unmute::<S>));
    }
    if config.status_page.is_some() {
        router = router
            .route("/", get(status::page::<S>))
            .route("/status", get(status::page::<S>));
    }
    let router = router
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(app);

    let jobs_stop = CancellationToken::new();
    let mut jobs = tokio::task::JoinSet::new();
    {
        let (context, stop) = (Arc::clone(&context), jobs_stop.clone());
        let notifier = Arc::clone(&notifier);
        jobs.spawn(async move { jobs::enforcer::run(&context, notifier.as_ref(), stop).await });
    }
    {
        let (context, stop) = (Arc::clone(&context), jobs_stop.clone());
        jobs.spawn(async move {
            jobs::outbox::run(&context, notifier.as_ref(), stop).await;
            notifier.flush().await;
        });
    }
    if let Some(slack_events) = slack_events {
        let (context, stop) = (Arc::clone(&context), jobs_stop.clone());
        jobs.spawn(async move { jobs::slack_events::run(&context, &slack_events, stop).await });
    }
    if let Some(reconcile) = config.reconcile {
        let (context, stop) = (Arc::clone(&context), jobs_stop.clone());
        jobs.spawn(async move { jobs::reconcile::run(&context, reconcile, stop).await });
    }

    tracing::info!(address = %listener.local_addr()?, "serving");
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    tracing::info!("server stopped; finishing background work");
    jobs_stop.cancel();
    let finished = tokio::time::timeout(JOBS_GRACE, async {
        while jobs.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!("background work did not finish within {JOBS_GRACE:?}; stopping anyway");
    }
    served
}
