//! Reconcile: every so often, `serve` reads from the GitLab API what
//! webhooks should have told it, and repairs what they did not. Webhooks get
//! lost: the hook was disabled, `serve` was down longer than GitLab retries,
//! an issue was labelled before the hook existed.
//!
//! Each pass runs the audit's discovery ([`IssueReader::read_all`]) over the
//! configured scopes, or over every project the store has issues of, and
//! reads the issues the store has live clocks for that discovery did not
//! list (a label removed or an issue moved while a webhook was lost). An
//! issue the store does not know, or knows with another state or other
//! labels, is handed to the enforcer as a delivery of its own (kind
//! `Reconcile`), built from the API's facts and full history. So the
//! enforcer, the one writer of evaluations, applies it in order with the
//! webhooks. A clock that should have started starts from its label
//! history; a close that was missed resolves the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::gitlab::GitLabError;
use crate::gitlab::history::ReadOptions;
use crate::gitlab::history::{FetchedIssue, IssueReader, Scope};
use crate::gitlab::webhook::IssueDelivery;
use crate::issue::{IssueRef, ProjectPath};
use crate::store::{Delivery, IssueRecord, Recorded, Store};

/// The `X-Gitlab-Event` reconcile's deliveries carry.
pub const DELIVERY_KIND: &str = "Reconcile";

/// How `serve` reconciles.
#[derive(Clone)]
pub struct ReconcileConfig {
    pub reader: IssueReader,
    pub every: Duration,
    /// What to read; empty: every project the store knows.
    pub scopes: Vec<Scope>,
    /// Closed issues updated this long ago are read too.
    pub closed_within: TimeDelta,
}

/// Why an issue needs repair, if it does.
pub fn repair_kind(api: &FetchedIssue, stored: Option<&IssueRecord>) -> Option<&'static str> {
    let Some(stored) = stored else {
        return Some("unknown_issue");
    };
    let facts = api.issue.facts();
    if facts.state != stored.facts.state {
        return Some("state");
    }
    let api_labels: BTreeSet<&String> = facts.labels.iter().collect();
    let stored_labels: BTreeSet<&String> = stored.facts.labels.iter().collect();
    (api_labels != stored_labels).then_some("labels")
}

/// Projects the store knows only by path (rows from before it kept ids):
/// asks GitLab for each one's id, which GitLab answers even for a path a
/// rename left behind, and records it for that path. The pass then reads
/// the project by id, and its issues' deliveries take the rows to the
/// path GitLab gives now. A project GitLab does not find is left as it
/// is, and said.
async fn identify_projects<S: Store>(
    context: &Context<S>,
    config: &ReconcileConfig,
) -> Result<(), String> {
    let known = context
        .store
        .known_projects()
        .await
        .map_err(|e| e.to_string())?;
    for (path, _) in known.into_iter().filter(|(_, id)| id.is_none()) {
        let (id, now_at) = match config.reader.project(&path).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(project = %path, error = %e, "reconcile cannot identify a project the store knows only by path");
                continue;
            }
        };
        // Known by the stored path since before any delivery named it. The
        // enforcer moves the rows when the listing (read by id) names the
        // path GitLab gives now: it alone moves rows, between evaluations.
        context
            .store
            .follow_project(
                id,
                &ProjectPath(path.clone()),
                chrono::DateTime::<Utc>::UNIX_EPOCH,
            )
            .await
            .map_err(|e| e.to_string())?;
        if now_at != path {
            tracing::info!(project_id = id, from = %path, to = %now_at, "project renamed before labelwarden knew its id: its clocks follow it");
        }
    }
    Ok(())
}

/// Tells the enforcer that `reference` is gone (the API answered 404 for
/// it while its clock was live); false if that was said already.
async fn gone<S: Store>(context: &Context<S>, reference: &IssueRef) -> Result<bool, String> {
    let loaded = context
        .store
        .load_issues(std::slice::from_ref(reference))
        .await
        .map_err(|e| e.to_string())?;
    let Some(record) = loaded.into_iter().next().and_then(|l| l.record) else {
        return Ok(false);
    };
    let told = IssueDelivery {
        facts: record.facts,
        events: Vec::new(),
        title: record.title,
        url: record.url,
        updated_at: record.updated_at,
        action: None,
        ids: Default::default(),
        path_as_of: None,
        received_at: None,
        gone: true,
    };
    let delivery = Delivery {
        seq: 0,
        // Said once for what the store last knew of the issue.
        key: format!(
            "reconcile:gone:{reference}:{}",
            record.updated_at.timestamp_millis()
        ),
        kind: DELIVERY_KIND.to_owned(),
        received_at: Utc::now(),
        payload: serde_json::to_string(&told).map_err(|e| e.to_string())?,
    };
    match context.store.record_delivery(&delivery).await {
        Ok(Recorded::New) => {
            tracing::warn!(issue = %reference, "reconcile: the issue of a live clock is deleted or no longer visible (404); its clock ends");
            Ok(true)
        }
        Ok(Recorded::Duplicate) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// The delivery that tells the enforcer what the API says.
fn delivery(api: &FetchedIssue) -> Result<Delivery, serde_json::Error> {
    let facts = api.issue.facts();
    let told = IssueDelivery {
        facts: facts.clone(),
        events: api.issue.timeline().events().to_vec(),
        title: api.title.clone(),
        url: api.url.clone(),
        updated_at: api.updated_at,
        action: None,
        ids: api.ids,
        // The API names the project as it is now.
        path_as_of: Some(Utc::now()),
        received_at: None,
        gone: false,
    };
    Ok(Delivery {
        seq: 0,
        // The same disagreement seen again is the same delivery.
        key: format!(
            "reconcile:{}:{}:{:?}:{}",
            facts.reference,
            api.updated_at.timestamp_millis(),
            facts.state,
            facts.labels.join(",")
        ),
        kind: DELIVERY_KIND.to_owned(),
        received_at: Utc::now(),
        payload: serde_json::to_string(&told)?,
    })
}

pub async fn run<S: Store>(
    context: &Context<S>,
    config: ReconcileConfig,
    shutdown: CancellationToken,
) {
    tracing::info!(every = ?config.every, scopes = config.scopes.len(), "reconcile with the GitLab API enabled");
    // The first pass runs at once: what webhooks missed while `serve` was
    // down is repaired now, not an interval later.
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(config.every) => {}
            }
        }
        first = false;
        // One replica reconciles per interval.
        let lease = chrono::TimeDelta::from_std(config.every).unwrap_or(TimeDelta::minutes(15));
        match context
            .store
            .hold_lease("reconcile", Utc::now(), lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot take the reconcile lease");
                continue;
            }
        }
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => break,
            outcome = pass(context, &config) => outcome,
        };
        match outcome {
            Ok(repaired) => {
                metrics::counter!("labelwarden_reconcile_runs_total", "outcome" => "ok")
                    .increment(1);
                metrics::gauge!("labelwarden_reconcile_last_success_timestamp_seconds")
                    .set(Utc::now().timestamp() as f64);
                if repaired > 0 {
                    tracing::warn!(repaired, "reconcile repaired issues that webhooks missed");
                    context.deliveries_waiting.notify_one();
                }
            }
            Err(message) => {
                metrics::counter!("labelwarden_reconcile_runs_total", "outcome" => "failed")
                    .increment(1);
                tracing::error!(error = %message, "reconcile failed; trying again next time");
            }
        }
    }
    // Stopping cleanly: the next start (or another replica) reconciles at
    // once instead of waiting out this interval.
    if let Err(e) = context.store.release_lease("reconcile").await {
        tracing::warn!(error = %e, "cannot give up the reconcile lease; it runs out by itself");
    }
}

/// One pass; returns how many issues it handed to the enforcer.
pub async fn pass<S: Store>(
    context: &Context<S>,
    config: &ReconcileConfig,
) -> Result<usize, String> {
    // Each scope, with the store's path for a project scope: a project the
    // store knows by id is read by id, which GitLab answers under whatever
    // path the project has now, so a rename no webhook told of is found.
    let scopes: Vec<(Scope, Option<String>)> = if config.scopes.is_empty() {
        identify_projects(context, config).await?;
        context
            .store
            .known_projects()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(path, id)| {
                let read_as = id.map_or_else(|| path.clone(), |id| id.to_string());
                (Scope::Project(read_as), Some(path))
            })
            .collect()
    } else {
        config
            .scopes
            .iter()
            .map(|scope| match scope {
                Scope::Project(path) => (scope.clone(), Some(path.clone())),
                Scope::Group(_) => (scope.clone(), None),
            })
            .collect()
    };
    let now = Utc::now();
    let mut repaired = 0;
    let mut gone_count = 0u64;
    for (scope, stored_path) in &scopes {
        let mut fetched = config
            .reader
            .read_all(
                scope,
                &context.policies,
                now,
                &ReadOptions {
                    window: config.closed_within,
                    // Webhooks told `serve` of downgrades: only candidates.
                    every_updated: false,
                    cache: None,
                },
                &|_, _| {},
            )
            .await
            .map_err(|e| e.to_string())?;
        if let (Some(project), Scope::Project(read_as)) = (stored_path, scope) {
            // By number: after a rename the listing names the new path.
            let listed: BTreeSet<u64> = fetched.iter().map(|f| f.issue.reference().iid.0).collect();
            let live = context
                .store
                .live_issues(project)
                .await
                .map_err(|e| e.to_string())?;
            for reference in live.into_iter().filter(|r| !listed.contains(&r.iid.0)) {
                match config.reader.one_in(read_as, reference.iid.0).await {
                    Ok(issue) => fetched.push(issue),
                    // The project answered its listing: the issue itself is
                    // deleted or hidden from the token. Its clocks end, once.
                    Err(GitLabError::NotFound { .. }) => {
                        if gone(context, &reference).await? {
                            gone_count += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(issue = %reference, error = %e, "reconcile cannot read an issue with a live clock")
                    }
                }
            }
        }
        let references: Vec<IssueRef> = fetched
            .iter()
            .map(|f| f.issue.reference().clone())
            .collect();
        let loaded = context
            .store
            .load_issues(&references)
            .await
            .map_err(|e| e.to_string())?;
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        for (api, stored) in fetched.iter().zip(&loaded) {
            let Some(kind) = repair_kind(api, stored.record.as_ref()) else {
                continue;
            };
            let delivery = delivery(api).map_err(|e| e.to_string())?;
            match context.store.record_delivery(&delivery).await {
                Ok(Recorded::New) => {
                    tracing::info!(issue = %api.issue.reference(), kind, "reconcile: the store missed this issue's change");
                    *kinds.entry(kind).or_default() += 1;
                    repaired += 1;
                }
                Ok(Recorded::Duplicate) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        for (kind, count) in kinds {
            metrics::counter!("labelwarden_reconcile_repairs_total", "kind" => kind)
                .increment(count);
        }
    }
    if gone_count > 0 {
        metrics::counter!("labelwarden_reconcile_repairs_total", "kind" => "gone")
            .increment(gone_count);
    }
    Ok(repaired + gone_count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fetched, issue};

    fn record(issue: &crate::issue::Issue) -> IssueRecord {
        IssueRecord {
            facts: issue.facts().clone(),
            title: String::new(),
            url: String::new(),
            updated_at: Utc::now(),
            events: issue.timeline().events().to_vec(),
            ids: Default::default(),
        }
    }

    #[test]
    fn unknown_issues_missed_closes_and_missed_labels_need_repair() {
        let labelled = issue(&[]).added(0, "priority::highest").build();
        let api = fetched(labelled.clone());
        assert_eq!(repair_kind(&api, None), Some("unknown_issue"));
        assert_eq!(
            repair_kind(&api, Some(&record(&labelled))),
            None,
            "in agreement"
        );

        let closed = fetched(issue(&[]).added(0, "priority::highest").closed(30).build());
        assert_eq!(
            repair_kind(&closed, Some(&record(&labelled))),
            Some("state")
        );

        let relabelled = fetched(
            issue(&[])
                .added(0, "priority::highest")
                .added(10, "blocked::upstream")
                .build(),
        );
        assert_eq!(
            repair_kind(&relabelled, Some(&record(&labelled))),
            Some("labels")
        );
    }
}
