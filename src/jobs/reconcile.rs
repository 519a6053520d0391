//! Reconcile: every so often, `serve` reads from the GitLab API what
//! webhooks should have told it, and repairs what they did not. Webhooks get
//! lost: the hook was disabled, `serve` was down longer than GitLab retries,
//! an issue was labelled before the hook existed.
//!
//! Each pass runs the audit's discovery ([`IssueReader::read_all`]) over the
//! configured scopes, or over every project the store has issues of, and
//! reads the issues the store has live clocks for that discovery did not
//! list (a label removed or an issue moved while a webhook was lost). An
//! issue the store does not know, or knows with another state, other
//! labels, assignees, milestone or weight, or without its author, is handed to the enforcer as a delivery of its own (kind
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
use crate::gitlab::cache::HistoryCache;
use crate::gitlab::history::{ApiIssue, ReadOptions};
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
    /// How often a pass reads every candidate of a scope again; the passes
    /// between read only the issues updated since the previous one. The
    /// first pass after a start is always full.
    pub full_every: Duration,
}

/// How far before the previous pass's start an incremental pass lists
/// from: a change GitLab stamped a little earlier than it became visible
/// (clock skew, a write in flight while the previous pass listed) is not
/// missed.
pub const INCREMENTAL_MARGIN: TimeDelta = TimeDelta::minutes(5);

/// What reconcile remembers of each scope between passes: when its last
/// full pass and its last pass started, and the histories it read, by
/// each issue's `updated_at` (an unchanged issue's history is not read
/// again).
#[derive(Default)]
pub struct Passes {
    scopes: BTreeMap<String, ScopeState>,
}

struct ScopeState {
    last_full: Option<chrono::DateTime<Utc>>,
    last_started: Option<chrono::DateTime<Utc>>,
    histories: HistoryCache,
}

/// Whether a pass over a scope starting at `started` is incremental, and
/// if so from when it lists.
fn incremental_since(
    last_full: Option<chrono::DateTime<Utc>>,
    last_started: Option<chrono::DateTime<Utc>>,
    started: chrono::DateTime<Utc>,
    full_every: Duration,
) -> Option<chrono::DateTime<Utc>> {
    let full_every = TimeDelta::from_std(full_every).unwrap_or(TimeDelta::days(1));
    let last_full = last_full?;
    (started - last_full < full_every).then_some(last_started? - INCREMENTAL_MARGIN)
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
    if api_labels != stored_labels {
        return Some("labels");
    }
    // What conditions beyond labels read: a hook names neither the author
    // (after `open`) nor a milestone's title, and a lost one changes them.
    let (api, known) = (&facts.details, &stored.facts.details);
    let api_assignees: BTreeSet<&String> = facts.assignees.iter().collect();
    let stored_assignees: BTreeSet<&String> = stored.facts.assignees.iter().collect();
    if api_assignees != stored_assignees {
        Some("assignees")
    } else if api.author.is_some() && api.author != known.author {
        Some("author")
    } else if api.milestone != known.milestone {
        Some("milestone")
    } else if api.weight != known.weight {
        Some("weight")
    } else {
        None
    }
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
    let mut passes = Passes::default();
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
            Ok(Some(_)) => {}
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot take the reconcile lease");
                continue;
            }
        }
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => break,
            outcome = pass_with(context, &config, &mut passes) => outcome,
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

/// One full pass; returns how many issues it handed to the enforcer.
pub async fn pass<S: Store>(
    context: &Context<S>,
    config: &ReconcileConfig,
) -> Result<usize, String> {
    pass_with(context, config, &mut Passes::default()).await
}

/// Every issue with a live clock in the store, by (project path, iid):
/// an incremental pass reads a changed one whatever its labels now.
async fn live_references<S: Store>(
    context: &Context<S>,
) -> Result<BTreeSet<(String, u64)>, String> {
    let mut live = BTreeSet::new();
    for (path, _) in context
        .store
        .known_projects()
        .await
        .map_err(|e| e.to_string())?
    {
        for reference in context
            .store
            .live_issues(&path)
            .await
            .map_err(|e| e.to_string())?
        {
            live.insert((reference.project.0, reference.iid.0));
        }
    }
    Ok(live)
}

/// One pass, full or incremental as `passes` says; returns how many
/// issues it handed to the enforcer.
pub async fn pass_with<S: Store>(
    context: &Context<S>,
    config: &ReconcileConfig,
    passes: &mut Passes,
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
    let mut live: Option<BTreeSet<(String, u64)>> = None;
    for (scope, stored_path) in &scopes {
        let key = scope.to_string();
        let state = passes
            .scopes
            .entry(key.clone())
            .or_insert_with(|| ScopeState {
                last_full: None,
                last_started: None,
                histories: HistoryCache::in_memory(&key),
            });
        let started = Utc::now();
        let since = incremental_since(
            state.last_full,
            state.last_started,
            started,
            config.full_every,
        );
        if since.is_some() && live.is_none() {
            live = Some(live_references(context).await?);
        }
        let policies = &context.policies;
        let live_now = live.as_ref();
        // Incremental: a changed issue is worth its history if a policy
        // matches it now or the store has a live clock on it.
        let wanted = |issue: &ApiIssue| {
            let matches = policies.policies.iter().any(|p| {
                p.selector
                    .matches_labels(issue.labels.iter().map(String::as_str))
            });
            let known = issue.project().is_some_and(|project| {
                live_now.is_some_and(|live| live.contains(&(project.to_owned(), issue.iid)))
            });
            matches || known
        };
        let requests_before = config.reader.client().requests_made();
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
                    cache: Some(&state.histories),
                    updated_after: since,
                    wanted: since
                        .is_some()
                        .then_some(&wanted as &(dyn Fn(&ApiIssue) -> bool + Sync)),
                },
                &|_, _| {},
            )
            .await
            .map_err(|e| e.to_string())?;
        let mode = if since.is_some() {
            "incremental"
        } else {
            "full"
        };
        let requests = config.reader.client().requests_made() - requests_before;
        metrics::counter!("labelwarden_reconcile_requests_total", "mode" => mode)
            .increment(requests);
        metrics::gauge!("labelwarden_reconcile_last_pass_requests", "mode" => mode)
            .set(requests as f64);
        tracing::info!(scope = %key, mode, requests, issues = fetched.len(), "reconcile pass read GitLab");
        // Unchanged issues are not listed by an incremental pass: only a
        // full one looks for live clocks the listing missed.
        if let (Some(project), Scope::Project(read_as), None) = (stored_path, scope, since) {
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
        // The scope is reconciled up to `started`: the next pass lists
        // from there.
        state.last_started = Some(started);
        if since.is_none() {
            state.last_full = Some(started);
            state.histories.forget_unseen();
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
    fn a_pass_is_full_first_and_after_full_every_and_else_lists_from_the_last_start() {
        let at = |minutes: i64| crate::test_support::t(minutes);
        let day = Duration::from_secs(86_400);
        assert_eq!(
            incremental_since(None, None, at(0), day),
            None,
            "first pass"
        );
        assert_eq!(
            incremental_since(Some(at(0)), Some(at(60)), at(75), day),
            Some(at(60) - INCREMENTAL_MARGIN),
            "from the previous pass's start, less the margin"
        );
        assert_eq!(
            incremental_since(Some(at(0)), Some(at(23 * 60)), at(24 * 60), day),
            None,
            "a day after the last full pass"
        );
        assert_eq!(
            incremental_since(Some(at(0)), Some(at(1)), at(2), Duration::ZERO),
            None,
            "full_every 0: every pass is full"
        );
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

    #[test]
    fn what_conditions_read_is_repaired_when_a_hook_did_not_say_it() {
        let base = || {
            issue(&["priority::highest"])
                .author("ada")
                .milestone("17.4")
        };
        let stored = base().build();
        let agreeing = fetched(base().build());
        assert_eq!(repair_kind(&agreeing, Some(&record(&stored))), None);

        // A hook names the author only on `open`, a milestone only by id.
        let mut from_hooks = record(&stored);
        from_hooks.facts.details.author = None;
        assert_eq!(repair_kind(&agreeing, Some(&from_hooks)), Some("author"));
        let mut from_hooks = record(&stored);
        from_hooks.facts.details.milestone.as_mut().unwrap().title = None;
        assert_eq!(repair_kind(&agreeing, Some(&from_hooks)), Some("milestone"));

        let reassigned = fetched(base().assigned(&["grace"]).build());
        assert_eq!(
            repair_kind(&reassigned, Some(&record(&stored))),
            Some("assignees")
        );
        let weighed = fetched(base().weight(3).build());
        assert_eq!(
            repair_kind(&weighed, Some(&record(&stored))),
            Some("weight")
        );
    }
}
