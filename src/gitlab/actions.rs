//! What a step does on the issue itself, through the GitLab API: read its
//! notes (for the markers of what already fired), post a comment, keep the
//! ledger note, add and remove labels. Label edits are safe to repeat;
//! notes are not, so callers post them once and record that they did.

use chrono::{DateTime, Utc};
use gitlab::api::projects::issues::notes::{CreateIssueNote, EditIssueNote, IssueNotes};
use gitlab::api::projects::issues::{EditIssue, IssueStateEvent};
use gitlab::api::{AsyncQuery, Pagination, ignore, paged};
use serde::Deserialize;

use futures_util::StreamExt;

use super::GitLabError;
use super::client::GitLabClient;
use super::from_slack::{Said, SlackMarker};
use super::history::FetchedIssue;
use super::markers::{LEDGER_HEADING, Marker};
use crate::issue::IssueRef;
use crate::notice::Notice;
use crate::policy::PolicyName;

/// The comment of a step with `comment: true`, with its marker: a rule's
/// own text with its variables filled in, or else the step's summary.
pub fn comment(notice: &Notice, marker: &Marker) -> String {
    match notice
        .gitlab
        .as_ref()
        .and_then(|g| g.comment_text.as_deref())
    {
        Some(text) => format!("{}\n\n{}", fill_comment(text, notice), marker.render()),
        None => format!(
            "**labelwarden**: {}\n\n{}",
            notice.summary(),
            marker.render()
        ),
    }
}

/// A rule's comment with its variables
/// ([`COMMENT_VARIABLES`](crate::policy::COMMENT_VARIABLES)) filled in: on
/// the issue itself, whoever reads it may see the title.
pub(crate) fn fill_comment(text: &str, notice: &Notice) -> String {
    crate::notice::fill_template(text, |name| match name {
        "issue.ref" => Some(notice.issue.to_string()),
        "issue.title" => Some(notice.title.clone()),
        "issue.url" => Some(notice.url.clone()),
        "policy" => Some(notice.policy.0.clone()),
        _ => None,
    })
}

/// A note as the notes API lists it (the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct Note {
    pub id: u64,
    pub body: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub system: bool,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: u64,
}

/// What labelwarden left on an issue: the markers of every fired step,
/// and the ledger note that lists them, if there is one yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IssueLedger {
    pub markers: Vec<Marker>,
    pub ledger_note: Option<u64>,
    /// When labelwarden first wrote on the issue (for the watchdog).
    pub first_marker_at: Option<DateTime<Utc>>,
    /// What responders said in Slack, as written on the issue, in order.
    pub from_slack: Vec<SlackMarker>,
}

/// Somebody's acknowledgement of a clock cycle's alert, standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub cycle: u32,
    /// The Slack user.
    pub by: String,
    pub at: DateTime<Utc>,
}

impl IssueLedger {
    /// Reads the markers out of an issue's notes. A step marked in both its
    /// comment and the ledger note counts once.
    pub fn from_notes(notes: &[Note]) -> Self {
        let mut ledger = IssueLedger::default();
        for note in notes.iter().filter(|n| !n.system) {
            ledger.from_slack.extend(SlackMarker::find_all(&note.body));
            let found = Marker::find_all(&note.body);
            if found.is_empty() {
                continue;
            }
            if note.body.starts_with(LEDGER_HEADING) && ledger.ledger_note.is_none() {
                ledger.ledger_note = Some(note.id);
            }
            ledger.first_marker_at = Some(
                ledger
                    .first_marker_at
                    .map_or(note.created_at, |at| at.min(note.created_at)),
            );
            for marker in found {
                match ledger
                    .markers
                    .iter_mut()
                    .find(|m| m.policy == marker.policy && m.firing == marker.firing)
                {
                    // Keep whichever copy knows the Slack thread.
                    Some(known) if known.thread.is_none() => *known = marker,
                    Some(_) => {}
                    None => ledger.markers.push(marker),
                }
            }
        }
        ledger
    }

    /// The acknowledgements standing on each cycle of `policy`, oldest
    /// cycle first: for each, the earliest not taken back.
    pub fn acknowledgements(&self, policy: &PolicyName) -> Vec<Acknowledgement> {
        let mut cycles: Vec<u32> = self
            .from_slack
            .iter()
            .filter(|s| &s.policy == policy)
            .map(|s| s.cycle)
            .collect();
        cycles.sort_unstable();
        cycles.dedup();
        cycles
            .into_iter()
            .filter_map(|cycle| {
                // In the order they were said, whatever order the notes
                // were written in (a retried write can come late).
                let mut said_in_cycle: Vec<&SlackMarker> = self
                    .from_slack
                    .iter()
                    .filter(|s| &s.policy == policy && s.cycle == cycle)
                    .collect();
                said_in_cycle.sort_by_key(|s| s.at);
                let mut standing: Vec<(&str, DateTime<Utc>)> = Vec::new();
                for said in said_in_cycle {
                    match (said.said, said.at) {
                        (Said::Acknowledged, Some(at))
                            if !standing.iter().any(|(by, _)| *by == said.by) =>
                        {
                            standing.push((&said.by, at));
                        }
                        (Said::Unacknowledged, _) => standing.retain(|(by, _)| *by != said.by),
                        _ => {}
                    }
                }
                let (by, at) = standing.into_iter().min_by_key(|(_, at)| *at)?;
                Some(Acknowledgement {
                    cycle,
                    by: by.to_owned(),
                    at,
                })
            })
            .collect()
    }
}

/// Issue notes and labels through the API.
#[derive(Clone)]
pub struct IssueWriter {
    client: GitLabClient,
}

fn what(issue: &IssueRef) -> String {
    format!("issue {issue}")
}

impl IssueWriter {
    pub fn new(client: GitLabClient) -> Self {
        IssueWriter { client }
    }

    pub(super) fn client(&self) -> &GitLabClient {
        &self.client
    }

    /// Every note of an issue, oldest first.
    pub async fn notes(&self, issue: &IssueRef) -> Result<Vec<Note>, GitLabError> {
        let endpoint = IssueNotes::builder()
            .project(issue.project.0.as_str())
            .issue(issue.iid.0)
            .sort(gitlab::api::common::SortOrder::Ascending)
            .build()
            .map_err(|e| unreadable(issue, e))?;
        paged(endpoint, Pagination::All)
            .query_async(&self.client)
            .await
            .map_err(|e| GitLabError::from_api(format!("the notes of {issue}"), e))
    }

    /// The ledger of each issue, in the same order, `concurrency` issues
    /// at a time.
    pub async fn ledgers(
        &self,
        issues: &[FetchedIssue],
        concurrency: usize,
    ) -> Vec<Result<IssueLedger, GitLabError>> {
        futures_util::stream::iter(issues)
            .map(|fetched| async move {
                let notes = self.notes(fetched.issue.reference()).await?;
                Ok(IssueLedger::from_notes(&notes))
            })
            .buffered(concurrency.max(1))
            .collect()
            .await
    }

    /// Posts a note; `internal` ones are seen by project members only.
    pub async fn create_note(
        &self,
        issue: &IssueRef,
        body: &str,
        internal: bool,
    ) -> Result<u64, GitLabError> {
        let endpoint = CreateIssueNote::builder()
            .project(issue.project.0.as_str())
            .issue(issue.iid.0)
            .body(body)
            .internal(internal)
            .build()
            .map_err(|e| unreadable(issue, e))?;
        let created: Created = endpoint
            .query_async(&self.client)
            .await
            .map_err(|e| GitLabError::from_api(format!("a note on {issue}"), e))?;
        Ok(created.id)
    }

    pub async fn edit_note(
        &self,
        issue: &IssueRef,
        note: u64,
        body: &str,
    ) -> Result<(), GitLabError> {
        let endpoint = EditIssueNote::builder()
            .project(issue.project.0.as_str())
            .issue(issue.iid.0)
            .note(note)
            .body(body)
            .build()
            .map_err(|e| unreadable(issue, e))?;
        ignore(endpoint)
            .query_async(&self.client)
            .await
            .map_err(|e| GitLabError::from_api(format!("note {note} of {issue}"), e))
    }

    /// Carries out a notice's GitLab part, safe to repeat: the labels, the
    /// on-call assignee (see [`super::assign`]), then the comment unless a
    /// note already carries this step's marker (a retry after a later
    /// failure does not comment twice).
    pub async fn apply(&self, notice: &Notice) -> Result<(), GitLabError> {
        self.edit_issue(notice).await?;
        if !notice.gitlab.as_ref().is_some_and(|step| step.comment) {
            return Ok(());
        }
        let marker = Marker {
            policy: notice.policy.clone(),
            firing: notice.firing.clone(),
            channel: notice.slack.as_ref().map(|s| s.channel.clone()),
            thread: None,
        };
        let notes = self.notes(&notice.issue).await?;
        let already = IssueLedger::from_notes(&notes)
            .markers
            .iter()
            .any(|m| m.policy == marker.policy && m.firing == marker.firing);
        if !already {
            self.comment_step(notice, &marker).await?;
        }
        Ok(())
    }

    /// A notice's edits of the issue, each safe to repeat: its due date,
    /// labels and on-call assignee.
    pub async fn edit_issue(&self, notice: &Notice) -> Result<(), GitLabError> {
        if let Some(write) = &notice.due_date {
            self.write_due_date(&notice.issue, write).await?;
        }
        let Some(step) = &notice.gitlab else {
            return Ok(());
        };
        self.edit_labels(&notice.issue, &step.add_labels, &step.remove_labels)
            .await?;
        if !step.assign.is_empty() {
            self.assign_if_unowned(&notice.issue, &step.assign).await?;
        }
        Ok(())
    }

    /// The step's comment carrying `marker`, if it asks for one (a rule's
    /// internal note stays internal).
    pub async fn comment_step(&self, notice: &Notice, marker: &Marker) -> Result<(), GitLabError> {
        if let Some(step) = notice.gitlab.as_ref().filter(|step| step.comment) {
            self.create_note(&notice.issue, &comment(notice, marker), step.internal)
                .await?;
        }
        Ok(())
    }

    /// Adds and removes labels in one edit. Safe to repeat.
    pub async fn edit_labels(
        &self,
        issue: &IssueRef,
        add: &[String],
        remove: &[String],
    ) -> Result<(), GitLabError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let mut builder = EditIssue::builder();
        builder.project(issue.project.0.as_str()).issue(issue.iid.0);
        for label in add {
            builder.add_label(label.as_str());
        }
        for label in remove {
            builder.remove_label(label.as_str());
        }
        let endpoint = builder.build().map_err(|e| unreadable(issue, e))?;
        ignore(endpoint)
            .query_async(&self.client)
            .await
            .map_err(|e| GitLabError::from_api(format!("the labels of {issue}"), e))
    }
}

impl IssueWriter {
    /// Closes the issue. Safe to repeat: closing a closed issue changes nothing.
    pub async fn close(&self, issue: &IssueRef) -> Result<(), GitLabError> {
        let endpoint = EditIssue::builder()
            .project(issue.project.0.as_str())
            .issue(issue.iid.0)
            .state_event(IssueStateEvent::Close)
            .build()
            .map_err(|e| unreadable(issue, e))?;
        ignore(endpoint)
            .query_async(&self.client)
            .await
            .map_err(|e| GitLabError::from_api(format!("closing {issue}"), e))
    }
}

fn unreadable(issue: &IssueRef, error: impl std::fmt::Display) -> GitLabError {
    GitLabError::Unreadable {
        what: what(issue),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::Thread;

    fn note(id: u64, body: String) -> Note {
        Note {
            id,
            body,
            created_at: DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
                .unwrap()
                .to_utc()
                + chrono::TimeDelta::minutes(id as i64),
            system: false,
        }
    }

    #[test]
    fn the_ledger_is_read_from_comments_and_the_ledger_note_once_each() {
        let start = Marker {
            channel: Some("alerts".into()),
            ..crate::test_support::start_marker()
        };
        let with_thread = Marker {
            thread: Some(Thread {
                channel_id: "C0ALERTS".into(),
                ts: "1.1".into(),
            }),
            ..start.clone()
        };
        let notes = vec![
            note(1, "A person's comment".into()),
            note(
                2,
                format!("**labelwarden** SLA clock started\n\n{}", start.render()),
            ),
            note(
                3,
                super::super::markers::ledger_note(std::slice::from_ref(&with_thread)),
            ),
        ];
        let ledger = IssueLedger::from_notes(&notes);
        assert_eq!(ledger.markers, vec![with_thread]);
        assert_eq!(ledger.ledger_note, Some(3));
        assert_eq!(ledger.first_marker_at, Some(notes[1].created_at));
    }

    #[test]
    fn acknowledgements_standing_are_read_per_cycle_from_slack_notes() {
        let at = |minute: i64| {
            DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
                .unwrap()
                .to_utc()
                + chrono::TimeDelta::minutes(minute)
        };
        let said = |said: Said, policy: &str, cycle: u32, by: &str, minute: i64| {
            SlackMarker {
                said,
                policy: PolicyName(policy.into()),
                cycle,
                thread: Thread {
                    channel_id: "C0ALERTS".into(),
                    ts: format!("{cycle}.1"),
                },
                by: by.into(),
                reply: None,
                at: Some(at(minute)),
            }
            .render()
        };
        let notes = vec![
            // Cycle 1: U1 acknowledges, then U2; U1 takes theirs back.
            note(1, said(Said::Acknowledged, "critical", 1, "U1", 5)),
            note(2, said(Said::Acknowledged, "critical", 1, "U2", 7)),
            note(3, said(Said::Unacknowledged, "critical", 1, "U1", 9)),
            // Cycle 2: acknowledged and taken back: nobody stands.
            note(4, said(Said::Acknowledged, "critical", 2, "U1", 60)),
            note(5, said(Said::Unacknowledged, "critical", 2, "U1", 61)),
            // Another policy's alert.
            note(6, said(Said::Acknowledged, "outage", 1, "U3", 1)),
            // Cycle 3: the take-back's note was written first, its
            // acknowledgement's note late (a retried write): nobody stands.
            note(7, said(Said::Unacknowledged, "critical", 3, "U4", 121)),
            note(8, said(Said::Acknowledged, "critical", 3, "U4", 120)),
        ];
        let ledger = IssueLedger::from_notes(&notes);
        assert_eq!(
            ledger.acknowledgements(&PolicyName("critical".into())),
            vec![Acknowledgement {
                cycle: 1,
                by: "U2".into(),
                at: at(7),
            }]
        );
    }
}
