//! Operations routes: `/healthz` (the process answers), `/readyz` (the store
//! answers and policies are loaded; Slack destinations that refuse notices
//! are listed) and `/metrics` (Prometheus text).
//!
//! A failing Slack destination makes `/readyz` say `degraded` but keeps
//! HTTP 200: the receiver still takes webhooks and keeps every notice in
//! the outbox, and a 503 would make a load balancer turn GitLab's
//! deliveries away (GitLab disables hooks that keep failing). Alert on
//! `labelwarden_destination_failing` or on the `status` field.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use super::App;
use crate::store::Store;

/// Statuses a clock can report, so gauges for statuses no clock has any
/// more drop to zero instead of keeping their last value.
const STATUSES: &[&str] = &[
    "running",
    "paused",
    "breached",
    "met",
    "missed",
    "withdrawn",
    "withdrawn_after_breach",
    "not_matching",
    "gone",
];

/// Histogram buckets (seconds) for time to acknowledge and time to
/// resolve: from a minute to three days, around the handbook's 24 hours.
const RESPONSE_BUCKETS: &[f64] = &[
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
    129600.0, 172800.0, 259200.0,
];

/// Histogram buckets (seconds) for answering a webhook: GitLab waits 10 s
/// at most, and a healthy answer takes a few milliseconds.
const INTAKE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> PrometheusHandle {
    recorder(None)
}

/// The process-wide Prometheus recorder, every series labelled `key` =
/// `value` (`drill="true"` for a drill's figures), if it is the first
/// one asked for; else the one installed before.
pub fn prometheus_labelled(key: &str, value: &str) -> PrometheusHandle {
    recorder(Some((key, value)))
}

fn recorder(label: Option<(&str, &str)>) -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            if let Some((key, value)) = label {
                builder = builder.add_global_label(key, value);
            }
            let recorder = builder
                .set_buckets_for_metric(
                    Matcher::Prefix("labelwarden_time_to_".to_owned()),
                    RESPONSE_BUCKETS,
                )
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("labelwarden_webhook_intake_seconds".to_owned()),
                        INTAKE_BUCKETS,
                    )
                })
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours
            // renders nothing, which /metrics would show at once.
            let _ = metrics::set_global_recorder(recorder);
            super::metric_help::describe();
            handle
        })
        .clone()
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let policies = app.context.policies.policies.len();
    let failing = app
        .destinations
        .as_ref()
        .map(|health| health.failing())
        .unwrap_or_default();
    let slack = json!({
        "status": if failing.is_empty() { "ok" } else { "failing" },
        "failing": failing,
    });
    match app.context.store.ping().await {
        Ok(()) => {
            // Notices refused for good wait for someone to resend them;
            // where the channel works again, the command says how.
            let failed = app
                .context
                .store
                .failed_channels()
                .await
                .unwrap_or_default();
            let now = Utc::now();
            let mutes: Vec<_> = app
                .context
                .store
                .mutes(now)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.until > now)
                .map(|m| json!({ "id": m.id, "muted": m.describe(), "until": m.until, "reason": m.reason, "scheduled": m.origin.is_some() }))
                .collect();
            let status = if failing.is_empty() && failed.is_empty() {
                "ready"
            } else {
                "degraded"
            };
            let failed_notices: Vec<_> = failed
                .iter()
                .map(|f| {
                    json!({
                        "channel": f.channel,
                        "failed": f.failed,
                        "last_failed_at": f.last_failed_at,
                        "works_again": f.works_again,
                        "resend": f.resend_command(),
                    })
                })
                .collect();
            (
                StatusCode::OK,
                Json(json!({
                    "status": status,
                    "store": "ok",
                    "policies": policies,
                    "slack": slack,
                    "failed_notices": failed_notices,
                    "mutes": mutes,
                })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready: store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "not_ready",
                    "store": e.to_string(),
                    "policies": policies,
                    "slack": slack,
                })),
            )
                .into_response()
        }
    }
}

pub async fn metrics<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let now = Utc::now();
    match app.context.store.stats(now).await {
        Ok(stats) => {
            for policy in &app.context.policies.policies {
                let count = |status: &str| {
                    stats
                        .clocks
                        .iter()
                        .find(|(p, s, _)| p == &policy.name.0 && s == status)
                        .map_or(0, |(_, _, n)| *n)
                };
                for status in STATUSES {
                    metrics::gauge!("labelwarden_clocks", "policy" => policy.name.0.clone(), "status" => *status)
                        .set(count(status) as f64);
                }
                // Which policies count working time: their durations
                // (time to resolve among them) are working time.
                if let Some(calendar) = &policy.clock.calendar {
                    metrics::gauge!("labelwarden_policy_calendar_info", "policy" => policy.name.0.clone(), "calendar" => calendar.name.clone(), "time_zone" => calendar.time_zone.name())
                        .set(1.0);
                }
                // Of the clocks that stopped, the share that stopped in time.
                let (met, missed) = (count("met"), count("missed"));
                if met + missed > 0 {
                    metrics::gauge!("labelwarden_sla_met_ratio", "policy" => policy.name.0.clone())
                        .set(met as f64 / (met + missed) as f64);
                }
            }
            metrics::gauge!("labelwarden_outbox_pending").set(stats.outbox_pending as f64);
            metrics::gauge!("labelwarden_outbox_failed").set(stats.outbox_failed as f64);
            metrics::gauge!("labelwarden_deliveries_pending").set(stats.deliveries_pending as f64);
            let lag = stats.oldest_due_wake.map_or(0.0, |due| {
                (now - due).num_milliseconds().max(0) as f64 / 1000.0
            });
            metrics::gauge!("labelwarden_scheduler_lag_seconds").set(lag);
            if let Ok(mutes) = app.context.store.mutes(now).await {
                let active = mutes.iter().filter(|m| m.until > now).count();
                metrics::gauge!("labelwarden_mutes_active").set(active as f64);
            }
            metrics::gauge!("labelwarden_store_up").set(1.0);
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: store does not answer");
            metrics::gauge!("labelwarden_store_up").set(0.0);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
