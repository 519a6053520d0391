//! The policy test file format as written on disk (`policies/tests/*.yml`):
//! what `schema --tests` documents and what the YAML parser fills in, with
//! the line and column of every value an error or a failure points at.
//! Nothing is interpreted here: [`super::compile`] turns it into cases.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::policy::file::Located;

/// One policy test file: cases that run an issue's story through the
/// policies beside it and say what must happen.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "labelwarden policy test file")]
pub struct TestFile {
    /// The cases, run in order, each on its own issue.
    #[serde(default)]
    pub tests: Vec<Located<CaseEntry>>,
}

/// One case: an issue, what happens to it, and what to expect.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseEntry {
    /// What the case shows, as the test runner prints it.
    pub name: Located<String>,
    /// The policy whose clock `status`, `deadline`, `remaining` and
    /// `overdue` read. May be left out when one policy alone ever matches
    /// the issue. `sent` always covers every policy.
    #[serde(default)]
    pub policy: Option<Located<String>>,
    /// The issue as it is created.
    pub issue: Located<IssueEntry>,
    /// What happens to it afterwards, at times after its creation.
    #[serde(default)]
    pub history: Vec<Located<HistoryEntry>>,
    /// What must hold at given times.
    pub expect: Vec<Located<ExpectEntry>>,
}

/// The issue when it is created.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueEntry {
    /// Its labels at creation.
    #[serde(default)]
    pub labels: Vec<String>,
    /// GitLab's work item type: `issue` (default), `incident`, `task`, ...
    #[serde(default, rename = "type")]
    pub issue_type: Option<String>,
    /// A confidential issue (default false).
    #[serde(default)]
    pub confidential: bool,
    /// GitLab usernames.
    #[serde(default)]
    pub assignees: Vec<String>,
    /// When it was created (RFC 3339). Default 2026-01-05T09:00:00Z, a
    /// Monday morning. Relative times (`at: 2h`) count from here.
    #[serde(default)]
    pub created_at: Option<Located<String>>,
    /// Its title (default "A test issue"), for `contains:`.
    #[serde(default)]
    pub title: Option<String>,
    /// Its author's GitLab username, for `match: { authors: [...] }`.
    #[serde(default)]
    pub author: Option<String>,
    /// Its milestone's title.
    #[serde(default)]
    pub milestone: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
}

/// Something that happens to the issue. Several changes in one entry
/// happen at the same instant (a relabel removes and adds at once).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// When: a duration after creation (`30m`, `1d 2h`, `0s`) or an
    /// instant (RFC 3339).
    pub at: Located<String>,
    /// Labels added.
    #[serde(default)]
    pub add: Vec<String>,
    /// Labels removed.
    #[serde(default)]
    pub remove: Vec<String>,
    /// The issue is closed.
    #[serde(default)]
    pub close: bool,
    /// The issue is reopened.
    #[serde(default)]
    pub reopen: bool,
    /// Somebody acknowledges the alert (the :eyes: reaction in Slack) of
    /// every clock running now.
    #[serde(default)]
    pub acknowledge: bool,
    /// GitLab usernames assigned.
    #[serde(default)]
    pub assign: Vec<String>,
    /// GitLab usernames unassigned.
    #[serde(default)]
    pub unassign: Vec<String>,
}

/// What must hold at one instant. Only what is written is checked.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectEntry {
    /// When: a duration after creation or an instant (RFC 3339).
    pub at: Located<String>,
    /// The clock's status: `not_matching`, `running`, `paused`,
    /// `breached`, `met`, `missed`, `withdrawn` or `withdrawn_after_breach`.
    #[serde(default)]
    pub status: Option<Located<String>>,
    /// The deadline: a duration after creation, an instant, or `none`
    /// (while the clock is held, or when it never started).
    #[serde(default)]
    pub deadline: Option<Located<String>>,
    /// Counted time left (running or paused), like `5h 30m`.
    #[serde(default)]
    pub remaining: Option<Located<String>>,
    /// Time past the deadline (breached, missed, withdrawn late).
    #[serde(default)]
    pub overdue: Option<Located<String>>,
    /// Exactly the steps sent since the previous `sent:` of this case (or
    /// since the issue was created), in the order they were sent. `[]`:
    /// nothing was sent.
    #[serde(default)]
    pub sent: Option<Located<Vec<Located<SentEntry>>>>,
}

/// One step expected to have been sent. Only what is written is compared.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentEntry {
    /// The step's id: its `id:`, or its trigger as the policy writes it
    /// (`start`, `before_deadline:6h`, `breach`, `every:4h:after:breach`).
    pub step: Located<String>,
    /// The policy it belongs to (any, if left out).
    #[serde(default)]
    pub policy: Option<Located<String>>,
    /// When it was sent: a duration after creation or an instant.
    #[serde(default)]
    pub at: Option<Located<String>>,
    /// The channel it was sent to, or `none` for a step with no Slack part.
    #[serde(default)]
    pub channel: Option<Located<String>>,
    /// Who it tags: people groups by name, GitLab users as `@username`
    /// (assignees and whoever is on call), in order. `[]`: nobody.
    #[serde(default)]
    pub mentions: Option<Vec<String>>,
    /// Labels it adds in GitLab. `[]`: none.
    #[serde(default)]
    pub labels_added: Option<Vec<String>>,
    /// GitLab users it assigns (a rule's `assign:`, to an issue nobody
    /// owns), as `@username`. `[]`: nobody.
    #[serde(default)]
    pub assigns: Option<Vec<String>>,
    /// Whether it comments on the issue.
    #[serde(default)]
    pub comment: Option<bool>,
    /// The emoji it reacts with on the thread's first message.
    #[serde(default)]
    pub react: Option<String>,
    /// Text the Slack message must contain; for a rule without one, its
    /// comment.
    #[serde(default)]
    pub contains: Vec<String>,
    /// Text the Slack message (or a rule's comment) must not contain (a
    /// confidential title, a label a users' channel must not see).
    #[serde(default)]
    pub not_contains: Vec<String>,
}
