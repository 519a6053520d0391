//! The enforcer follows issues by GitLab's ids, before it applies a pass's
//! deliveries: a project renamed or transferred (the same `project.id`
//! under another path) takes its rows to the new path, and an issue moved
//! to another project (a close naming `moved_to_id`; the new issue has that
//! id) takes its clocks, ledger and threads to the new issue. A close that
//! moved an issue is not a resolution: the clock goes on, where the issue
//! went.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Context, thread_notices};

/// How long after its creation a new issue is first evaluated: GitLab
/// creates the new issue of a move before it closes the old one, and the
/// two hooks may arrive in that order. Within the tolerance after which a
/// message says it is late, for any policy of ten minutes or more.
pub const MOVE_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(3);
use crate::clock;
use crate::gitlab::webhook::IssueDelivery;
use crate::issue::{Event, GitLabIds, Issue, IssueIid, IssueRef, IssueState, ProjectPath};
use crate::notice::IssueView;
use crate::policy::{DuplicateRule, PolicySet};
use crate::store::{Canonical, Carried, ClockState, Fired, LeaseFence, Loaded, Store, StoreError};

/// Follows each project the deliveries name by id to the newest path they
/// name (see [`Store::follow_project`]): a renamed or transferred project's
/// stored rows move to the new path before anything is applied, and every
/// delivery is filed under the path the project is at now, so one sent
/// before the rename joins the same issue.
pub async fn follow_projects<S: Store>(
    context: &Context<S>,
    deliveries: &mut [IssueDelivery],
) -> Result<(), StoreError> {
    // Each project's paths in the order GitLab gave them, so that an old
    // path and the new one in the same pass are followed as a rename.
    let mut named: BTreeMap<(u64, ProjectPath), DateTime<Utc>> = BTreeMap::new();
    for delivery in deliveries.iter() {
        let Some(project_id) = delivery.ids.project_id else {
            continue;
        };
        let named_at = delivery.path_as_of.unwrap_or(delivery.updated_at);
        let seen = named
            .entry((project_id, delivery.facts.reference.project.clone()))
            .or_insert(named_at);
        *seen = (*seen).max(named_at);
    }
    let mut named: Vec<(u64, ProjectPath, DateTime<Utc>)> = named
        .into_iter()
        .map(|((id, path), seen)| (id, path, seen))
        .collect();
    named.sort_by_key(|(id, _, seen)| (*id, *seen));
    for (project_id, path, seen_at) in named {
        if context.project_path(project_id).as_ref() == Some(&path) {
            continue;
        }
        let followed = context
            .store
            .follow_project(project_id, &path, seen_at)
            .await?;
        if let Some(old) = &followed.renamed_from {
            tracing::info!(project_id, from = %old.0, to = %followed.path.0, "project renamed or transferred: its clocks and threads follow it");
            metrics::counter!("labelwarden_projects_followed_total").increment(1);
        }
        context.remember_project_path(project_id, followed.path);
    }
    for delivery in deliveries.iter_mut() {
        if let Some(path) = delivery
            .ids
            .project_id
            .and_then(|id| context.project_path(id))
        {
            delivery.facts.reference.project = path;
        }
    }
    Ok(())
}

/// Follows moves: an issue the store knows closed as moved to an issue a
/// delivery is about (or, when the new issue's hook came first or in the
/// same pass, a moved close naming it) has its rows moved there. A moved
/// close whose target is known is then spent and dropped.
/// Returns each move as (to, from).
pub async fn follow_moves<S: Store>(
    context: &Context<S>,
    deliveries: &mut Vec<IssueDelivery>,
    fence: &LeaseFence,
) -> Result<Vec<(IssueRef, IssueRef)>, StoreError> {
    // Only a new issue (its creation hook, or reconcile telling of it) can
    // be where one moved, and only a moved close names one: a pass of
    // relabels asks the store nothing.
    let ids: Vec<u64> = deliveries
        .iter()
        .flat_map(|d| {
            let new = matches!(d.action.as_deref(), None | Some("open"));
            [d.ids.issue_id.filter(|_| new), d.ids.moved_to_id]
        })
        .flatten()
        .collect();
    let links = if ids.is_empty() {
        Vec::new()
    } else {
        context.store.issue_links(&ids).await?
    };
    // The new issue's hook in this very pass: its id names it.
    let in_pass: Vec<(u64, IssueRef)> = deliveries
        .iter()
        .filter_map(|d| Some((d.ids.issue_id?, d.facts.reference.clone())))
        .collect();
    let mut moves: Vec<(IssueRef, IssueRef)> = Vec::new();
    let mut spent = Vec::new();
    for (index, delivery) in deliveries.iter().enumerate() {
        let reference = &delivery.facts.reference;
        // The new issue's hook, after the old one's moved close.
        if let Some(id) = delivery.ids.issue_id
            && let Some(from) = links
                .iter()
                .find(|l| l.moved_to_id == Some(id) && &l.issue != reference)
                .map(|l| l.issue.clone())
        {
            let found = (reference.clone(), from);
            if !moves.contains(&found) {
                moves.push(found);
            }
        }
        // The old one's moved close, after the new issue's hook.
        if let Some(id) = delivery.ids.moved_to_id
            && let Some(to) = in_pass
                .iter()
                .find(|(issue_id, issue)| *issue_id == id && issue != reference)
                .map(|(_, issue)| issue.clone())
                .or_else(|| {
                    links
                        .iter()
                        .find(|l| l.issue_id == Some(id) && &l.issue != reference)
                        .map(|l| l.issue.clone())
                })
        {
            let found = (to, reference.clone());
            if !moves.contains(&found) {
                moves.push(found);
            }
            spent.push(index);
        }
    }
    for (to, from) in &moves {
        context.store.move_issue(from, to, Some(fence)).await?;
        tracing::info!(from = %from, to = %to, "issue moved to another project: its clocks and threads follow it");
        metrics::counter!("labelwarden_issues_moved_total").increment(1);
    }
    for index in spent.into_iter().rev() {
        deliveries.remove(index);
    }
    Ok(moves)
}

/// A close that moved the issue to another project (`moved_to_id`) is not
/// a resolution: the issue goes on elsewhere. The delivery is read as if
/// the issue stayed open.
pub fn moved_is_not_closed(mut delivery: IssueDelivery) -> IssueDelivery {
    if delivery.ids.moved_to_id.is_some() {
        delivery.events.retain(|e| e.event != Event::Closed);
        delivery.facts.state = IssueState::Opened;
        delivery.facts.closed_at = None;
    }
    delivery
}

/// The canonical issue of each delivery that closes an issue as a
/// duplicate, where the store knows it (by its id), with the policies whose
/// clocks run on it now: (the duplicate, its canonical).
pub async fn canonicals<S: Store>(
    context: &Context<S>,
    deliveries: &[IssueDelivery],
    now: DateTime<Utc>,
) -> Result<Vec<(IssueRef, Canonical)>, StoreError> {
    let wanted: Vec<(IssueRef, GitLabIds)> = deliveries
        .iter()
        .filter(|d| d.ids.is_duplicate())
        .map(|d| (d.facts.reference.clone(), d.ids))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<u64> = wanted
        .iter()
        .filter_map(|(_, ids)| ids.duplicated_to_id)
        .collect();
    let links = context.store.issue_links(&ids).await?;
    let mut found = Vec::new();
    for (duplicate, ids) in wanted {
        // By its global id (webhooks), or by project id and iid (the API).
        let by_id = ids.duplicated_to_id.and_then(|id| {
            links
                .iter()
                .find(|l| l.issue_id == Some(id))
                .map(|l| l.issue.clone())
        });
        let canonical = match (by_id, ids.duplicate_of) {
            (Some(issue), _) => issue,
            (None, Some((project_id, iid))) => match context.store.project_at(project_id).await? {
                Some(project) => IssueRef {
                    project,
                    iid: IssueIid(iid),
                },
                None => continue,
            },
            (None, None) => continue,
        };
        let loaded = context
            .store
            .load_issues(std::slice::from_ref(&canonical))
            .await?
            .remove(0);
        let Some(record) = &loaded.record else {
            continue;
        };
        let issue = record.issue(&loaded.carried);
        let matching = context
            .policies
            .policies
            .iter()
            .filter(|policy| clock::read(&issue, policy, now).is_live())
            .map(|policy| policy.name.clone())
            .collect();
        found.push((
            duplicate,
            Canonical {
                issue: canonical,
                matching,
            },
        ));
    }
    Ok(found)
}

/// An issue closed as a duplicate, under the policies that follow
/// duplicates: each clock that was live and ends here is said to have
/// ended in its current threads, with where it goes on. Where the
/// canonical issue matches the policy, its clock counts from the earlier
/// start: the returned starts are carried to it.
pub fn duplicate_close(
    policies: &PolicySet,
    issue: &Issue,
    loaded: &Loaded,
    clocks: &[ClockState],
    view: IssueView<'_>,
    now: DateTime<Utc>,
) -> (Vec<Fired>, Vec<Carried>) {
    if issue.duplicate_closed_at().is_none() {
        return (Vec::new(), Vec::new());
    }
    let mut notices = Vec::new();
    let mut carried = Vec::new();
    for policy in &policies.policies {
        let was_live = loaded.was_live(&policy.name);
        let withdrawn = clocks
            .iter()
            .any(|c| c.policy == policy.name && c.status.starts_with("withdrawn"));
        if policy.clock.duplicates != DuplicateRule::Follow || !was_live || !withdrawn {
            continue;
        }
        let status = match &loaded.duplicate_of {
            Some(canonical) if canonical.matching.contains(&policy.name) => {
                carried.push(Carried {
                    to: canonical.issue.clone(),
                    policy: policy.name.clone(),
                    started_at: clock::read(issue, policy, now).started_at,
                });
                format!(
                    "closed as a duplicate of {}: the SLA clock goes on there, from this issue's start",
                    canonical.issue
                )
            }
            Some(canonical) => format!(
                "closed as a duplicate of {}, which this policy does not cover: escalation withdrawn",
                canonical.issue
            ),
            None => {
                "closed as a duplicate of an issue labelwarden does not track: escalation withdrawn"
                    .to_owned()
            }
        };
        notices.extend(thread_notices::closed_as_duplicate(
            policies,
            &loaded.ledger,
            &policy.name,
            view,
            now,
            &status,
        ));
    }
    (notices, carried)
}
