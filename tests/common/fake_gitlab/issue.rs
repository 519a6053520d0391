//! An issue as the fake GitLab holds it ([`FakeIssue`]), with the builder
//! steps tests give it a history with, and its JSON as the API shows it.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct FakeIssue {
    pub project: String,
    pub iid: u64,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub confidential: bool,
    /// `issue`, `incident`, …
    pub issue_type: String,
    /// (when, label, "add" | "remove")
    pub label_events: Vec<(DateTime<Utc>, String, &'static str)>,
    /// (when, "closed" | "reopened")
    pub state_events: Vec<(DateTime<Utc>, &'static str)>,
    /// (id, when, body, internal)
    pub notes: Vec<(u64, DateTime<Utc>, String, bool)>,
    /// Notes edited, counted.
    pub note_edits: u32,
    /// The project's id: it stays when the project is renamed.
    pub project_id: u64,
    /// The global id of the issue this one was moved to.
    pub moved_to: Option<u64>,
    /// The issue this one was closed as a duplicate of: (project id, iid).
    pub duplicate_of: Option<(u64, u64)>,
    pub due_date: Option<chrono::NaiveDate>,
    /// Edits that changed the due date, counted.
    pub due_date_writes: u32,
    /// The author's username (user id 1).
    pub author: String,
    /// The milestone's title (milestone id 40).
    pub milestone: Option<String>,
    pub weight: Option<u32>,
    pub description: String,
}

/// A project id for a path, stable across runs: what GitLab gave the
/// project when it was created there.
pub fn project_id(path: &str) -> u64 {
    path.bytes()
        .fold(7u64, |id, byte| (id * 31 + u64::from(byte)) % 9_973)
        + 1
}

impl FakeIssue {
    /// An open issue created at `created_at` with no labels yet.
    pub fn new(project: &str, iid: u64, created_at: DateTime<Utc>) -> Self {
        FakeIssue {
            project: project.to_owned(),
            iid,
            title: format!("Bug {iid}"),
            created_at,
            closed_at: None,
            updated_at: created_at,
            labels: vec![],
            assignees: vec![],
            confidential: false,
            issue_type: "issue".to_owned(),
            label_events: vec![],
            state_events: vec![],
            notes: vec![],
            note_edits: 0,
            project_id: project_id(project),
            moved_to: None,
            duplicate_of: None,
            due_date: None,
            due_date_writes: 0,
            author: "reporter".to_owned(),
            milestone: None,
            weight: None,
            description: "Steps to reproduce …".to_owned(),
        }
    }

    pub fn authored_by(mut self, username: &str) -> Self {
        self.author = username.to_owned();
        self
    }

    pub fn in_milestone(mut self, title: &str) -> Self {
        self.milestone = Some(title.to_owned());
        self
    }

    pub fn weighing(mut self, weight: u32) -> Self {
        self.weight = Some(weight);
        self
    }

    /// Last changed at `at` (a title edit, a comment: nothing the clock reads).
    pub fn touched(mut self, at: DateTime<Utc>) -> Self {
        self.updated_at = at;
        self
    }

    /// A due date, as a person sets it.
    pub fn due(mut self, date: Option<chrono::NaiveDate>) -> Self {
        self.due_date = date;
        self
    }

    /// Closed `at` as a duplicate of `canonical`, as `/duplicate` does.
    pub fn closed_as_duplicate_of(self, canonical: &FakeIssue, at: DateTime<Utc>) -> Self {
        let mut closed = self.close(at);
        closed.duplicate_of = Some((canonical.project_id, canonical.iid));
        closed
    }

    /// GitLab's global id of this issue.
    pub fn id(&self) -> u64 {
        self.project_id * 100_000 + self.iid
    }

    pub fn add_label(mut self, at: DateTime<Utc>, label: &str) -> Self {
        self.labels.push(label.to_owned());
        self.label_events.push((at, label.to_owned(), "add"));
        self.updated_at = self.updated_at.max(at);
        self
    }

    pub fn remove_label(mut self, at: DateTime<Utc>, label: &str) -> Self {
        self.labels.retain(|l| l != label);
        self.label_events.push((at, label.to_owned(), "remove"));
        self.updated_at = self.updated_at.max(at);
        self
    }

    pub fn close(mut self, at: DateTime<Utc>) -> Self {
        self.closed_at = Some(at);
        self.state_events.push((at, "closed"));
        self.updated_at = self.updated_at.max(at);
        self
    }

    pub fn reopen(mut self, at: DateTime<Utc>) -> Self {
        self.closed_at = None;
        self.state_events.push((at, "reopened"));
        self.updated_at = self.updated_at.max(at);
        self
    }

    /// A note written at `at`, as someone (or labelwarden) left it.
    pub fn note(mut self, at: DateTime<Utc>, body: &str) -> Self {
        let id = 500 + self.notes.len() as u64;
        self.notes.push((id, at, body.to_owned(), false));
        self
    }

    pub fn incident(mut self) -> Self {
        self.issue_type = "incident".to_owned();
        self
    }

    pub fn assign(mut self, username: &str) -> Self {
        self.assignees.push(username.to_owned());
        self
    }

    /// In the project named by `id_or_path`, as the API names it: its
    /// numeric id or its full path.
    pub(super) fn is_in(&self, id_or_path: &str) -> bool {
        self.project == id_or_path || self.project_id.to_string() == id_or_path
    }

    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    pub(super) fn json(&self) -> Value {
        json!({
            "id": self.id(),
            "iid": self.iid,
            "project_id": self.project_id,
            "moved_to_id": self.moved_to,
            "title": self.title,
            "description": self.description,
            "state": if self.is_open() { "opened" } else { "closed" },
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "closed_at": self.closed_at,
            "labels": self.labels,
            "assignees": self.assignees.iter().map(|u| json!({"id": 1, "username": u, "name": u})).collect::<Vec<_>>(),
            "author": { "id": 1, "username": self.author, "name": self.author },
            "milestone": self.milestone.as_ref().map(|title| json!({
                "id": 40, "iid": 4, "project_id": self.project_id, "title": title,
                "state": "active", "web_url": format!("https://gitlab.example.com/{}/-/milestones/4", self.project),
            })),
            "weight": self.weight,
            "confidential": self.confidential,
            "due_date": self.due_date,
            "issue_type": self.issue_type,
            "type": self.issue_type.to_uppercase(),
            "web_url": format!("https://gitlab.example.com/{}/-/issues/{}", self.project, self.iid),
            "_links": {
                "self": format!("https://gitlab.example.com/api/v4/projects/{}/issues/{}", self.project_id, self.iid),
                "closed_as_duplicate_of": self.duplicate_of.map(|(project, iid)| {
                    format!("https://gitlab.example.com/api/v4/projects/{project}/issues/{iid}")
                }),
            },
            "references": {
                "short": format!("#{}", self.iid),
                "relative": format!("#{}", self.iid),
                "full": format!("{}#{}", self.project, self.iid),
            },
        })
    }
}
