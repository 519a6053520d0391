//! GitLab webhook payloads for issues and work items, as GitLab documents
//! them ("Work item events", `X-Gitlab-Event: Issue Hook` or
//! `Confidential Issue Hook`), turned into the core's types at this edge.
//!
//! One delivery says what the issue is now and what just changed: labels
//! (`changes.labels.previous/current`), state (`changes.state_id`, or the
//! `action`) and confidentiality. The changes become timeline events at the
//! instant of the update; labels present with no change are taken as they
//! are. Only what the policies need is read; every other field is ignored,
//! so new GitLab fields never break a delivery.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::issue::{
    Event, GitLabIds, IssueDetails, IssueFacts, IssueIid, IssueRef, IssueState, Milestone,
    ProjectPath, TimedEvent,
};

/// Why a delivery could not be read. Each becomes a 400 with this message,
/// which names the field and position (the JSON parser's own words) but
/// never repeats what the body said: the answer goes back to whoever sent
/// it, and GitLab shows it in the hook's recent events, where a
/// confidential issue's title must not appear.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("`object_kind` is `{0}`, not an issue or work item")]
    NotAnIssue(String),
}

/// What one issue delivery tells the enforcer. Stored as is (compact JSON)
/// until intake applies it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct IssueDelivery {
    pub facts: IssueFacts,
    /// What changed in this delivery, at the instant it changed.
    pub events: Vec<TimedEvent>,
    pub title: String,
    pub url: String,
    /// GitLab's `updated_at`: orders deliveries that arrive out of order.
    pub updated_at: DateTime<Utc>,
    /// `open`, `close`, `reopen`, `update` (absent on some older payloads).
    pub action: Option<String>,
    /// GitLab's ids, which follow the issue across renames and moves.
    #[serde(default)]
    pub ids: GitLabIds,
    /// When GitLab named the project by this path, if not at `updated_at`:
    /// reconcile reads the path as it is now, whenever the issue last
    /// changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_as_of: Option<DateTime<Utc>>,
    /// When labelwarden received it (set from the store, not stored in the
    /// payload): what it tells was known from then on.
    #[serde(skip)]
    pub received_at: Option<DateTime<Utc>>,
    /// Reconcile was told the issue does not exist (404): deleted, or no
    /// longer visible to labelwarden's token. The facts are the stored ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

/// Reads a webhook's JSON body as `T`; what is wrong with it is said with
/// its path but without the values (which may be confidential).
pub(super) fn read_hook<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, WebhookError> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let hook: T = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        let words = without_values(&e.into_inner().to_string());
        WebhookError::Malformed(if path == "." {
            words
        } else {
            format!("`{path}`: {words}")
        })
    })?;
    reader
        .end()
        .map_err(|e| WebhookError::Malformed(without_values(&e.to_string())))?;
    Ok(hook)
}

/// Reads an issue or work item delivery from its JSON body.
pub fn parse_issue_hook(body: &[u8]) -> Result<IssueDelivery, WebhookError> {
    let hook: IssueHook = read_hook(body)?;
    if hook.object_kind != "issue" && hook.object_kind != "work_item" {
        return Err(WebhookError::NotAnIssue(hook.object_kind));
    }
    Ok(hook.into_delivery())
}

#[derive(Debug, Deserialize)]
struct IssueHook {
    object_kind: String,
    project: Project,
    object_attributes: Attributes,
    /// Current labels; also under `object_attributes.labels` in newer payloads.
    #[serde(default)]
    labels: Option<Vec<Label>>,
    #[serde(default)]
    assignees: Vec<User>,
    /// Who did what the delivery tells: on `open`, the author.
    #[serde(default)]
    user: Option<Actor>,
    #[serde(default)]
    changes: Changes,
}

#[derive(Debug, Deserialize)]
struct Actor {
    #[serde(default)]
    id: Option<u64>,
    username: String,
}

/// The `project` of a hook's payload (issue and comment hooks alike).
#[derive(Debug, Deserialize)]
pub(super) struct Project {
    #[serde(default)]
    pub(super) id: Option<u64>,
    pub(super) path_with_namespace: String,
}

#[derive(Debug, Deserialize)]
struct Attributes {
    /// The global id.
    #[serde(default)]
    id: Option<u64>,
    iid: u64,
    #[serde(default)]
    project_id: Option<u64>,
    #[serde(default)]
    moved_to_id: Option<u64>,
    #[serde(default)]
    duplicated_to_id: Option<u64>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    url: String,
    #[serde(deserialize_with = "gitlab_time")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "gitlab_time")]
    updated_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "optional_gitlab_time")]
    closed_at: Option<DateTime<Utc>>,
    /// `YYYY-MM-DD`, or null.
    #[serde(default)]
    due_date: Option<String>,
    state: String,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    confidential: bool,
    /// `Issue`, `Incident`, `Task`, `Test Case`, ... (GitLab 17.2+).
    #[serde(default, rename = "type")]
    work_item_type: Option<String>,
    #[serde(default)]
    labels: Option<Vec<Label>>,
    #[serde(default)]
    author_id: Option<u64>,
    /// Only the id: hooks do not carry a milestone's title.
    #[serde(default)]
    milestone_id: Option<u64>,
    #[serde(default)]
    weight: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Label {
    title: String,
}

#[derive(Debug, Deserialize)]
struct User {
    username: String,
}

#[derive(Debug, Default, Deserialize)]
struct Changes {
    #[serde(default)]
    labels: Option<Change<Vec<Label>>>,
    #[serde(default)]
    state_id: Option<Change<Option<u8>>>,
    #[serde(default)]
    updated_at: Option<Change<Option<GitLabTime>>>,
}

#[derive(Debug, Deserialize)]
struct Change<T> {
    previous: T,
    current: T,
}

/// GitLab's `state_id`: 1 opened, 2 closed (3 merged and 4 locked are for
/// merge requests).
const STATE_OPENED: u8 = 1;
const STATE_CLOSED: u8 = 2;

impl IssueHook {
    fn into_delivery(self) -> IssueDelivery {
        let attributes = self.object_attributes;
        let changed_at = self
            .changes
            .updated_at
            .and_then(|c| c.current)
            .map_or(attributes.updated_at, |t| t.0);
        let state = if attributes.state == "closed" {
            IssueState::Closed
        } else {
            IssueState::Opened
        };

        let mut events = Vec::new();
        if let Some(labels) = self.changes.labels {
            let before: Vec<&str> = labels.previous.iter().map(|l| l.title.as_str()).collect();
            let after: Vec<&str> = labels.current.iter().map(|l| l.title.as_str()).collect();
            for removed in before.iter().filter(|l| !after.contains(l)) {
                events.push(TimedEvent {
                    at: changed_at,
                    event: Event::LabelRemoved((*removed).to_owned()),
                });
            }
            for added in after.iter().filter(|l| !before.contains(l)) {
                events.push(TimedEvent {
                    at: changed_at,
                    event: Event::LabelAdded((*added).to_owned()),
                });
            }
        }
        let state_change = match self.changes.state_id {
            Some(Change {
                previous: Some(STATE_OPENED),
                current: Some(STATE_CLOSED),
            }) => Some(Event::Closed),
            Some(Change {
                previous: Some(STATE_CLOSED),
                current: Some(STATE_OPENED),
            }) => Some(Event::Reopened),
            Some(_) => None,
            // Older payloads carry no `state_id` change: the action says it.
            None => match attributes.action.as_deref() {
                Some("close") => Some(Event::Closed),
                Some("reopen") => Some(Event::Reopened),
                _ => None,
            },
        };
        if let Some(event) = state_change {
            let at = match event {
                Event::Closed => attributes.closed_at.unwrap_or(changed_at),
                _ => changed_at,
            };
            events.push(TimedEvent { at, event });
        }

        let labels = attributes
            .labels
            .or(self.labels)
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.title)
            .collect();
        let issue_type = attributes
            .work_item_type
            .as_deref()
            .unwrap_or("Issue")
            .to_ascii_lowercase()
            .replace(' ', "_");

        // The one who opens an issue is its author; later hooks name only
        // the author's id (kept with the name from then on).
        let author = self
            .user
            .filter(|user| {
                attributes.action.as_deref() == Some("open")
                    && (user.id.is_none() || user.id == attributes.author_id)
            })
            .map(|user| user.username);
        IssueDelivery {
            facts: IssueFacts {
                reference: IssueRef {
                    project: ProjectPath(self.project.path_with_namespace),
                    iid: IssueIid(attributes.iid),
                },
                created_at: attributes.created_at,
                state,
                closed_at: attributes.closed_at,
                labels,
                confidential: attributes.confidential,
                issue_type,
                assignees: self.assignees.into_iter().map(|u| u.username).collect(),
                due_date: attributes.due_date.as_deref().and_then(calendar_date),
                details: IssueDetails {
                    author,
                    author_id: attributes.author_id,
                    milestone: attributes.milestone_id.map(|id| Milestone {
                        id: Some(id),
                        title: None,
                    }),
                    weight: attributes.weight,
                    updated_at: Some(changed_at.max(attributes.updated_at)),
                },
            },
            events,
            title: attributes.title,
            url: attributes.url,
            updated_at: changed_at.max(attributes.updated_at),
            action: attributes.action,
            ids: GitLabIds {
                project_id: self.project.id.or(attributes.project_id),
                issue_id: attributes.id,
                moved_to_id: attributes.moved_to_id,
                duplicated_to_id: attributes.duplicated_to_id,
                duplicate_of: None,
            },
            path_as_of: None,
            received_at: None,
            gone: false,
        }
    }
}

/// A timestamp in any of the forms GitLab puts in hook payloads:
/// RFC 3339 (`2013-12-03T17:15:43Z`, `2013-12-03T17:15:43.123+01:00`),
/// `2017-09-15 16:50:55 UTC`, and `2017-09-15 16:50:55 +0200`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GitLabTime(DateTime<Utc>);

fn parse_gitlab_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Some(naive) = text.strip_suffix(" UTC") {
        return NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc());
    }
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f %z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A due date as GitLab writes it (`2026-12-08`); anything else reads as
/// none, with a warning, rather than refusing the whole delivery.
fn calendar_date(text: &str) -> Option<chrono::NaiveDate> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    if date.is_none() {
        tracing::warn!(
            due_date = text,
            "a due date GitLab sent is not YYYY-MM-DD: read as none"
        );
    }
    date
}

/// The JSON parser's words with every quoted string left out: serde
/// names an unexpected string by its content (`invalid type: string
/// "Secret title", expected u64`).
fn without_values(message: &str) -> String {
    let mut kept = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            kept.push(c);
            continue;
        }
        // Skip to the closing quote; serde escapes quotes inside with `\`.
        while let Some(inner) = chars.next() {
            match inner {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
        if kept.ends_with(' ') {
            kept.pop();
        }
    }
    kept
}

impl<'de> Deserialize<'de> for GitLabTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_gitlab_time(&text).map(GitLabTime).ok_or_else(|| {
            serde::de::Error::custom(
                "not a GitLab timestamp (like `2017-09-15T16:50:55Z` or `2017-09-15 16:50:55 UTC`)",
            )
        })
    }
}

pub(super) fn gitlab_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    GitLabTime::deserialize(deserializer).map(|t| t.0)
}

fn optional_gitlab_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<GitLabTime>::deserialize(deserializer).map(|t| t.map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/gitlab/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn the_documented_issue_event_reads_as_a_label_swap() {
        let delivery = parse_issue_hook(&fixture("issue_hook_documented.json")).unwrap();
        assert_eq!(
            delivery.facts.reference.to_string(),
            "gitlabhq/gitlab-test#23"
        );
        assert_eq!(delivery.facts.issue_type, "issue");
        assert_eq!(delivery.facts.assignees, vec!["user1".to_owned()]);
        assert_eq!(delivery.facts.labels, vec!["API".to_owned()]);
        assert_eq!(
            delivery.facts.due_date, None,
            "the documented payload has none"
        );
        let at = utc(2017, 9, 15, 16, 52, 0);
        assert_eq!(
            delivery.events,
            vec![
                TimedEvent {
                    at,
                    event: Event::LabelRemoved("API".into())
                },
                TimedEvent {
                    at,
                    event: Event::LabelAdded("Platform".into())
                },
            ]
        );
    }

    #[test]
    fn a_priority_label_added_becomes_one_event_at_the_update() {
        let delivery =
            parse_issue_hook(&fixture("issue_hook_priority_highest_added.json")).unwrap();
        assert_eq!(delivery.facts.reference.to_string(), "acme/backend#101");
        assert_eq!(
            delivery.events,
            vec![TimedEvent {
                at: utc(2026, 11, 2, 9, 5, 0),
                event: Event::LabelAdded("priority::highest".into())
            }]
        );
        assert_eq!(
            delivery.facts.labels,
            vec!["type::bug".to_owned(), "priority::highest".to_owned()]
        );
        assert_eq!(delivery.facts.created_at, utc(2026, 11, 2, 9, 0, 0));
    }

    #[test]
    fn the_author_is_named_only_when_the_opener_is_the_author() {
        let documented = parse_issue_hook(&fixture("issue_hook_documented.json")).unwrap();
        let details = &documented.facts.details;
        assert_eq!(details.author_id, Some(51));
        assert_eq!(
            details.author, None,
            "opened by user 1 on behalf of author 51: the name is not the author's"
        );
        assert_eq!((details.milestone.clone(), details.weight), (None, None));

        let mut hook: serde_json::Value =
            serde_json::from_slice(&fixture("issue_hook_documented.json")).unwrap();
        hook["object_attributes"]["author_id"] = 1.into();
        hook["object_attributes"]["milestone_id"] = 9.into();
        hook["object_attributes"]["weight"] = 3.into();
        let own = parse_issue_hook(hook.to_string().as_bytes()).unwrap();
        let details = &own.facts.details;
        assert_eq!(
            details.author.as_deref(),
            Some(hook["user"]["username"].as_str().unwrap())
        );
        assert_eq!(
            details.milestone,
            Some(crate::issue::Milestone {
                id: Some(9),
                title: None
            }),
            "a hook names a milestone by id only"
        );
        assert_eq!(details.weight, Some(3));
        assert_eq!(details.updated_at, Some(own.updated_at));

        hook["object_attributes"]["action"] = "update".into();
        let update = parse_issue_hook(hook.to_string().as_bytes()).unwrap();
        assert_eq!(
            update.facts.details.author, None,
            "`user` is whoever updated it"
        );
    }

    #[test]
    fn the_due_date_is_read_and_a_malformed_one_is_none_not_a_refusal() {
        let with = |value: &str| {
            let text = String::from_utf8(fixture("issue_hook_priority_highest_added.json"))
                .unwrap()
                .replace("\"due_date\": null", &format!("\"due_date\": {value}"));
            parse_issue_hook(text.as_bytes()).unwrap().facts.due_date
        };
        assert_eq!(
            with("\"2026-11-03\""),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 3)
        );
        assert_eq!(with("null"), None);
        assert_eq!(with("\"next tuesday\""), None);
    }

    #[test]
    fn closing_is_read_from_the_state_change_at_closed_at() {
        let delivery = parse_issue_hook(&fixture("issue_hook_closed.json")).unwrap();
        assert_eq!(delivery.facts.state, IssueState::Closed);
        assert_eq!(
            delivery.events,
            vec![TimedEvent {
                at: utc(2026, 11, 2, 15, 30, 0),
                event: Event::Closed
            }]
        );
    }

    #[test]
    fn an_incident_arrives_as_a_work_item() {
        let delivery = parse_issue_hook(&fixture("work_item_hook_incident.json")).unwrap();
        assert_eq!(delivery.facts.issue_type, "incident");
        assert!(delivery.facts.confidential);
        assert_eq!(delivery.action.as_deref(), Some("open"));
        assert!(
            delivery.events.is_empty(),
            "labels at creation need no event"
        );
    }

    #[test]
    fn reads_every_timestamp_form_gitlab_sends() {
        let expected = utc(2017, 9, 15, 16, 50, 55);
        for text in [
            "2017-09-15T16:50:55Z",
            "2017-09-15T18:50:55+02:00",
            "2017-09-15T16:50:55.000Z",
            "2017-09-15 16:50:55 UTC",
            "2017-09-15 18:50:55 +0200",
        ] {
            assert_eq!(parse_gitlab_time(text), Some(expected), "{text}");
        }
        assert_eq!(parse_gitlab_time("yesterday"), None);
    }

    #[test]
    fn malformed_payloads_say_what_is_wrong_without_echoing_the_body() {
        let error = parse_issue_hook(b"{not json").unwrap_err();
        assert!(matches!(error, WebhookError::Malformed(_)));
        let missing = br#"{"object_kind":"issue","project":{"path_with_namespace":"a/b"},"object_attributes":{"iid":1}}"#;
        let message = parse_issue_hook(missing).unwrap_err().to_string();
        assert!(message.contains("missing field `created_at`"), "{message}");
        let bad_time = br#"{"object_kind":"issue","project":{"path_with_namespace":"a/b"},"object_attributes":{"iid":1,"created_at":"Secret plan","updated_at":"soon","state":"opened"}}"#;
        let message = parse_issue_hook(bad_time).unwrap_err().to_string();
        assert!(
            message.contains("`object_attributes.created_at`: not a GitLab timestamp"),
            "{message}"
        );
        // The body's own strings never come back, whatever the mistake: a
        // wrong type, a wrong timestamp, or text after the document.
        for body in [
            br#"{"object_kind":"issue","project":{"path_with_namespace":"a/b"},"object_attributes":{"iid":"Secret plan","created_at":"2017-09-15T16:50:55Z","updated_at":"2017-09-15T16:50:55Z","state":"opened"}}"#.as_slice(),
            br#"{"object_kind":"issue","project":{"path_with_namespace":["Secret plan"]}}"#,
            br#"{"object_kind":"issue","project":{"path_with_namespace":"a/b"},"object_attributes":{"iid":"Secret \" plan","created_at":"x","updated_at":"x","state":"opened"}}"#,
            br#"{"object_kind":"issue"} "Secret plan""#,
        ] {
            let message = parse_issue_hook(body).unwrap_err().to_string();
            assert!(message.starts_with("malformed payload: "), "{message}");
            assert!(!message.contains("Secret"), "echoed: {message}");
        }
        let wrong_type = br#"{"object_kind":"issue","project":{"path_with_namespace":"a/b"},"object_attributes":{"iid":"Secret plan"}}"#;
        let message = parse_issue_hook(wrong_type).unwrap_err().to_string();
        assert!(
            message.contains("`object_attributes.iid`: invalid type: string, expected u64"),
            "{message}"
        );
    }

    #[test]
    fn other_kinds_are_not_issues() {
        let push = br#"{"object_kind":"push","project":{"path_with_namespace":"a/b"},"object_attributes":{"iid":1,"created_at":"2017-09-15T16:50:55Z","updated_at":"2017-09-15T16:50:55Z","state":"opened"}}"#;
        assert!(
            matches!(parse_issue_hook(push), Err(WebhookError::NotAnIssue(kind)) if kind == "push")
        );
    }
}
