//! GitLab's comment events (`X-Gitlab-Event: Note Hook`, and `Confidential
//! Note Hook` for internal notes and comments on confidential issues) on
//! issues, read into what a policy's `from_gitlab.mirror_comments` posts
//! in the issue's alert threads. Comments on merge requests, commits and
//! snippets are not issues' and are left alone, as are system notes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::webhook::{Project, WebhookError, gitlab_time, read_hook};
use crate::issue::{IssueIid, IssueRef, ProjectPath};

/// The marker every note labelwarden writes carries (ledger notes, step
/// comments, and what it mirrored from Slack): such a note is never sent
/// back to Slack.
pub const OWN_NOTE_MARKER: &str = "<!-- labelwarden";

/// One new comment on an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueComment {
    pub issue: IssueRef,
    /// The project's id, which survives a rename or transfer.
    pub project_id: Option<u64>,
    pub note_id: u64,
    /// The author's GitLab username and name.
    pub username: String,
    pub name: String,
    pub body: String,
    /// The comment's own link (`…/issues/17#note_1241`).
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// An internal note, or a comment on a confidential issue: only a
    /// `private` channel may show it.
    pub restricted: bool,
}

/// What became of a comment delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentEvent {
    /// A new comment by a person.
    New(IssueComment),
    /// Not to mirror: an edit, a system note, or not on an issue. Says which.
    Skipped(&'static str),
}

#[derive(Debug, Deserialize)]
struct NoteHook {
    object_kind: String,
    user: User,
    #[serde(default)]
    project_id: Option<u64>,
    project: Project,
    object_attributes: NoteAttributes,
    #[serde(default)]
    issue: Option<NotedIssue>,
}

#[derive(Debug, Deserialize)]
struct User {
    username: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NoteAttributes {
    id: u64,
    note: String,
    noteable_type: String,
    #[serde(deserialize_with = "gitlab_time")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "gitlab_time")]
    updated_at: DateTime<Utc>,
    #[serde(default)]
    system: bool,
    url: String,
    /// `create` or `update` (GitLab 16.11 on); older versions send edits
    /// too, told apart by `updated_at`.
    #[serde(default)]
    action: Option<String>,
    /// An internal note (older GitLab: `confidential`).
    #[serde(default)]
    internal: Option<bool>,
    #[serde(default)]
    confidential: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct NotedIssue {
    iid: u64,
    #[serde(default)]
    confidential: bool,
}

/// Reads a comment delivery; `confidential_hook` when GitLab sent it as
/// `Confidential Note Hook`.
pub fn parse_note_hook(body: &[u8], confidential_hook: bool) -> Result<CommentEvent, WebhookError> {
    let hook: NoteHook = read_hook(body)?;
    if hook.object_kind != "note" {
        return Err(WebhookError::NotAnIssue(hook.object_kind));
    }
    let attributes = hook.object_attributes;
    let Some(issue) = hook.issue.filter(|_| attributes.noteable_type == "Issue") else {
        return Ok(CommentEvent::Skipped("not a comment on an issue"));
    };
    if attributes.system {
        return Ok(CommentEvent::Skipped("a system note"));
    }
    let edited = match attributes.action.as_deref() {
        Some(action) => action != "create",
        None => attributes.updated_at > attributes.created_at,
    };
    if edited {
        return Ok(CommentEvent::Skipped(
            "an edit: only new comments are mirrored",
        ));
    }
    Ok(CommentEvent::New(IssueComment {
        issue: IssueRef {
            project: ProjectPath(hook.project.path_with_namespace),
            iid: IssueIid(issue.iid),
        },
        project_id: hook.project_id.or(hook.project.id),
        note_id: attributes.id,
        name: hook.user.name.unwrap_or_else(|| hook.user.username.clone()),
        username: hook.user.username,
        body: attributes.note,
        url: attributes.url,
        created_at: attributes.created_at,
        restricted: confidential_hook
            || issue.confidential
            || attributes.internal.unwrap_or(false)
            || attributes.confidential.unwrap_or(false),
    }))
}

impl IssueComment {
    /// Written by labelwarden (it carries labelwarden's marker).
    pub fn is_labelwardens(&self) -> bool {
        self.body.contains(OWN_NOTE_MARKER)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{Value, json};

    use super::*;

    fn documented() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gitlab/note_hook_issue_documented.json"
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn parse(hook: &Value, confidential_hook: bool) -> CommentEvent {
        parse_note_hook(hook.to_string().as_bytes(), confidential_hook).unwrap()
    }

    #[test]
    fn the_documented_comment_on_an_issue_is_read_with_its_author_and_link() {
        let CommentEvent::New(comment) = parse(&documented(), false) else {
            panic!("a new comment");
        };
        assert_eq!(comment.issue.to_string(), "gitlab-org/gitlab-test#17");
        assert_eq!(comment.project_id, Some(5), "the id a rename keeps");
        assert_eq!(comment.note_id, 1241);
        assert_eq!(
            (comment.username.as_str(), comment.name.as_str()),
            ("root", "Administrator")
        );
        assert_eq!(comment.body, "Hello world");
        assert_eq!(
            comment.url,
            "http://example.com/gitlab-org/gitlab-test/issues/17#note_1241"
        );
        assert_eq!(
            comment.created_at,
            Utc.with_ymd_and_hms(2015, 5, 17, 17, 6, 40).unwrap()
        );
        assert!(!comment.restricted);
        assert!(!comment.is_labelwardens());
    }

    #[test]
    fn internal_notes_and_comments_on_confidential_issues_are_restricted() {
        let restricted = |hook: &Value, header: bool| match parse(hook, header) {
            CommentEvent::New(comment) => comment.restricted,
            other => panic!("{other:?}"),
        };
        let mut internal = documented();
        internal["object_attributes"]["internal"] = json!(true);
        assert!(restricted(&internal, false));
        let mut older = documented();
        older["object_attributes"]["confidential"] = json!(true);
        assert!(restricted(&older, false));
        let mut on_confidential = documented();
        on_confidential["issue"]["confidential"] = json!(true);
        assert!(restricted(&on_confidential, false));
        assert!(restricted(&documented(), true), "the hook's name says so");
    }

    #[test]
    fn edits_system_notes_and_other_noteables_are_skipped() {
        let mut edited = documented();
        edited["object_attributes"]["action"] = json!("update");
        assert!(matches!(parse(&edited, false), CommentEvent::Skipped(_)));
        let mut older_edit = documented();
        older_edit["object_attributes"]
            .as_object_mut()
            .unwrap()
            .remove("action");
        older_edit["object_attributes"]["updated_at"] = json!("2015-05-17 17:09:00 UTC");
        assert!(matches!(
            parse(&older_edit, false),
            CommentEvent::Skipped(_)
        ));
        let mut system = documented();
        system["object_attributes"]["system"] = json!(true);
        assert!(matches!(parse(&system, false), CommentEvent::Skipped(_)));
        let mut on_merge_request = documented();
        on_merge_request["object_attributes"]["noteable_type"] = json!("MergeRequest");
        assert!(matches!(
            parse(&on_merge_request, false),
            CommentEvent::Skipped(_)
        ));
    }

    #[test]
    fn a_note_with_labelwardens_marker_is_its_own() {
        let mut own = documented();
        own["object_attributes"]["note"] = json!(
            "Resolved in Slack by @ada\n\n<!-- labelwarden:slack {\"said\":\"resolved\"} -->"
        );
        let CommentEvent::New(comment) = parse(&own, false) else {
            panic!()
        };
        assert!(comment.is_labelwardens());
    }

    #[test]
    fn a_body_that_is_not_a_note_hook_is_malformed_without_its_values() {
        let error = parse_note_hook(br#"{"object_kind":"note","user":{}}"#, false).unwrap_err();
        assert!(matches!(error, WebhookError::Malformed(_)), "{error}");
    }
}
