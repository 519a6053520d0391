//! Policies: which issues are held to which SLA, and who hears about it.
//!
//! Files under `policies/` are parsed ([`file`]), merged and checked
//! ([`validate`]) into a [`PolicySet`], the validated model the clock and
//! the engine use. Everything here is pure except [`folder`], the one place
//! that reads the disk.

pub mod calendar;
pub mod duration;
pub mod file;
pub mod folder;
pub mod maintenance;
pub mod pattern;
pub mod rotation;
pub mod selector;
pub mod shape;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::TimeDelta;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use folder::load;
pub use pattern::Pattern;
pub use rotation::{Role, Rotation};
pub use selector::{AgeRange, Confidentiality, MatchWindow, Presence, Selector, WeightCondition};
pub use validate::validate;

/// Why policies could not be loaded. Each names the file, and where it can,
/// the line, column and field, so the message alone says what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: cannot read the policy folder: {message}", dir.display())]
    ReadFolder { dir: PathBuf, message: String },
    #[error("{}: cannot read: {message}", file.display())]
    ReadFile { file: PathBuf, message: String },
    #[error("{}: no policy files (*.yml, *.yaml) in this folder", dir.display())]
    NoFiles { dir: PathBuf },
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{at}: `{field}`: {message}")]
    Invalid {
        at: SourceLocation,
        field: String,
        message: String,
    },
}

impl PolicyError {
    /// File, line and column: errors are listed in the order a reader meets them.
    fn position(&self) -> (&Path, u32, u32) {
        match self {
            PolicyError::ReadFolder { dir: path, .. } | PolicyError::NoFiles { dir: path } => {
                (path, 0, 0)
            }
            PolicyError::ReadFile { file, .. } => (file, 0, 0),
            PolicyError::Syntax {
                file, line, column, ..
            } => (file, *line, *column),
            PolicyError::Invalid { at, .. } => (&at.file, at.line, at.column),
        }
    }
}

/// The names a reference could have named, for an error about one that
/// names nothing (`alerts, bug-triage`, or `none`).
pub fn defined_names<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Puts errors in reading order: by file, then line, then column.
fn sort_errors(errors: &mut [PolicyError]) {
    errors.sort_by(|a, b| a.position().cmp(&b.position()));
}

/// Everything the policy files say, checked and merged.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub channels: BTreeMap<String, Channel>,
    pub people: People,
    pub policies: Vec<Policy>,
    /// Maintenance windows, in file order.
    pub maintenance: Vec<maintenance::Maintenance>,
    /// Business-hours calendars, by name.
    pub calendars: BTreeMap<String, Arc<calendar::Calendar>>,
    /// What is valid but likely a mistake (a breach held by quiet hours on
    /// a clock that runs around the clock), with where it is written.
    pub warnings: Vec<PolicyError>,
}

impl PolicySet {
    /// The policy of that name.
    pub fn get(&self, name: &PolicyName) -> Option<&Policy> {
        self.policies.iter().find(|p| &p.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    /// A person's message here becomes an issue when raised (a reaction).
    pub opens_issues: Option<OpensIssues>,
    pub destination: Destination,
    /// A private channel may see confidential issues' titles and labels.
    pub private: bool,
    pub audience: Audience,
    /// How many new threads (alerts, adoptions) the channel takes within
    /// `group_window` before the rest are said together; 0 never groups.
    pub group_after: u32,
    pub group_window: TimeDelta,
    /// Where a notice this channel refuses for good goes instead.
    pub fallback: Option<Fallback>,
}

/// Where a message raised in a channel becomes a GitLab issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpensIssues {
    pub project: String,
    pub labels: Vec<String>,
}

/// A channel's fallback route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// Another channel of the policy files (which may have its own).
    Channel(String),
    /// A comment on the issue in GitLab: the last resort.
    GitLabComment,
}

impl Fallback {
    /// How policy files write the GitLab comment route.
    pub const GITLAB_COMMENT: &'static str = "gitlab_comment";
}

impl PolicySet {
    /// The routes a notice refused by `channel` takes, in order: its
    /// fallback, that one's fallback, and so on (`check` refuses cycles).
    pub fn fallbacks(&self, channel: &str) -> Vec<Fallback> {
        let mut routes = Vec::new();
        let mut at = channel;
        while let Some(next) = self.channels.get(at).and_then(|c| c.fallback.as_ref()) {
            if routes.contains(next) || routes.len() > self.channels.len() {
                break;
            }
            routes.push(next.clone());
            match next {
                Fallback::Channel(name) => at = name,
                Fallback::GitLabComment => break,
            }
        }
        routes
    }
}

impl Channel {
    /// New threads a channel takes per window unless it says otherwise.
    pub const GROUP_AFTER: u32 = 5;
    pub const GROUP_WINDOW: TimeDelta = TimeDelta::minutes(1);
}

#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    /// A channel id (`C0123ABCD`) or name (`#alerts`), posted to with the bot token.
    SlackChannel(String),
    /// An incoming webhook whose URL is in this environment variable.
    IncomingWebhook { env_var: String },
}

/// A Slack conversation id (`C0123ABCD`, `G…` private, `D…` direct), as
/// opposed to a `#name`.
pub fn is_slack_channel_id(text: &str) -> bool {
    text.len() >= 9
        && matches!(text.as_bytes()[0], b'C' | b'G' | b'D')
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Responders: full detail, internal labels, people tagged.
    Team,
    /// Users: plain wording, nothing internal.
    Users,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct People {
    /// Group name -> Slack mentions (`<@U…>`, `<!subteam^S…>`, `<!here>`).
    pub groups: BTreeMap<String, Vec<String>>,
    /// GitLab username -> Slack user id, to tag assignees.
    pub gitlab_users: BTreeMap<String, String>,
    /// On-call rotations by name, for `NAME.primary` / `NAME.secondary`.
    pub rotations: BTreeMap<String, Rotation>,
}

impl People {
    /// The GitLab username a Slack user id is mapped from, if any.
    pub fn gitlab_username(&self, slack_user: &str) -> Option<&str> {
        self.gitlab_users
            .iter()
            .find(|(_, id)| id.as_str() == slack_user)
            .map(|(username, _)| username.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PolicyName(pub String);

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where something was written: for messages that send people to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: Arc<PathBuf>,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: PolicyName,
    pub description: Option<String>,
    pub source: SourceLocation,
    pub selector: Selector,
    pub clock: ClockRule,
    pub steps: Vec<Step>,
    pub from_slack: FromSlack,
    /// Comments on the issue posted in its alert threads.
    pub mirror_comments: bool,
    pub adoption: Adoption,
    /// `audit` reports its clocks (`report: false` leaves them out).
    pub reported: bool,
    /// An SLA clock with its escalation, or an instant rule.
    pub kind: PolicyKind,
}

/// What a [`Policy`] was written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Under `policies:`: an SLA clock and its escalation.
    Clock,
    /// Under `rules:`: actions carried out once each time an issue comes
    /// to match (after a grace period, if any). Its "clock" counts the
    /// grace; it never stops but by the issue no longer matching, and its
    /// one step, [`Trigger::Act`], fires when the grace has passed.
    Rule,
}

/// What happens to a clock labelwarden learns of only well after it
/// started: its steps that came due before are adopted (recorded as done)
/// instead of sent one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adoption {
    pub mode: AdoptMode,
    /// A clock learned of within this of its start is not adopted: its
    /// steps are sent as usual, saying they are late.
    pub grace: TimeDelta,
}

impl Default for Adoption {
    fn default() -> Self {
        Adoption {
            mode: AdoptMode::Digest,
            grace: TimeDelta::minutes(15),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdoptMode {
    /// Said in one digest per channel and policy, unless only a few are
    /// adopted at once (the channel's `group_after`): those get an alert each.
    Digest,
    /// An alert each, saying labelwarden started tracking it.
    Individual,
    /// Recorded only.
    Silent,
}

/// What the alert thread's reactions and replies do on the issue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FromSlack {
    /// The resolve reaction also closes the issue.
    pub close_on_resolve: bool,
    /// Added with the false-positive reaction's note.
    pub false_positive_label: Option<String>,
    /// Replies in the alert thread become internal notes.
    pub mirror_replies: bool,
}

#[derive(Debug, Clone)]
pub struct ClockRule {
    pub target: TimeDelta,
    pub starts: StartRule,
    pub stops: StopRule,
    pub pauses_while_labeled: Vec<Pattern>,
    /// The most paused time one cycle may bank; after it the clock runs.
    pub max_pause: Option<TimeDelta>,
    /// For showing times to people; the clock itself is UTC.
    pub time_zone: Tz,
    /// Only this calendar's working time counts, if set; else wall time.
    pub calendar: Option<Arc<calendar::Calendar>>,
    /// What a close as a duplicate of another issue does to the clock.
    pub duplicates: DuplicateRule,
}

/// What closing an issue as a duplicate (`duplicated_to_id`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateRule {
    /// Not a resolution: the canonical issue's clock goes on from the
    /// earlier start if it matches the policy; otherwise the clock is
    /// withdrawn, saying so.
    Follow,
    /// The close counts as a resolution, as any other close.
    Resolve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartRule {
    /// When the issue began to match.
    Matched,
    /// When the issue was created, if it matched from then on; otherwise as `Matched`.
    Created,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StopRule {
    /// A resolution SLA: closing the issue stops the clock.
    Closed,
    /// A triage SLA: one of these labels stops the clock.
    Labeled(Vec<Pattern>),
    /// A rule's grace: only the issue ceasing to match ends it; closing
    /// neither stops nor pauses it.
    Never,
}

/// The stable name of a step in the escalation ledger. Defaults to the
/// trigger written out (`breach`, `before_deadline:6h`), so reordering steps
/// in a file does not make them fire again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(pub String);

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: StepId,
    pub trigger: Trigger,
    /// Fires only while nobody acknowledged the cycle's alert in Slack.
    pub unless_acknowledged: bool,
    /// Quiet hours: carried out only in this calendar's working hours.
    pub during: Option<Arc<calendar::Calendar>>,
    pub slack: Option<SlackStep>,
    pub gitlab: Option<GitLabStep>,
    /// A rule's `assign:`: the rotation and role whose person is assigned.
    pub assign_on_call: Option<(Arc<Rotation>, Role)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The clock started (a new cycle).
    Start,
    /// This much counted time is left.
    BeforeDeadline(TimeDelta),
    /// This much time was counted since the clock started.
    AfterStart(TimeDelta),
    /// The deadline passed with the clock still running.
    Breach,
    /// Repeatedly, each `interval` of counted time after the anchor.
    Every { interval: TimeDelta, after: Anchor },
    /// The stop condition was reached (closed, or the target label added).
    Resolved,
    /// The issue stopped matching while its clock ran.
    Withdrawn,
    /// A rule's actions: once its grace has passed with the issue still
    /// matching (decided as a breach of the grace, never sent late for a
    /// cycle that ended before).
    Act,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Breach,
}

impl Trigger {
    /// The kind of trigger, stable for storage, metrics and message wording.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::BeforeDeadline(_) => "before_deadline",
            Trigger::AfterStart(_) => "after_start",
            Trigger::Breach => "breach",
            Trigger::Every { .. } => "every",
            Trigger::Resolved => "resolved",
            Trigger::Withdrawn => "withdrawn",
            Trigger::Act => "rule",
        }
    }

    /// The default step id: the trigger as a policy file writes it.
    pub fn default_id(&self) -> StepId {
        StepId(match self {
            Trigger::Start => "start".to_owned(),
            Trigger::BeforeDeadline(d) => format!("before_deadline:{}", duration::compact(*d)),
            Trigger::AfterStart(d) => format!("after_start:{}", duration::compact(*d)),
            Trigger::Breach => "breach".to_owned(),
            Trigger::Every { interval, after } => format!(
                "every:{}:after:{}",
                duration::compact(*interval),
                match after {
                    Anchor::Start => "start",
                    Anchor::Breach => "breach",
                }
            ),
            Trigger::Resolved => "resolved".to_owned(),
            Trigger::Withdrawn => "withdrawn".to_owned(),
            Trigger::Act => "act".to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlackStep {
    pub channel: String,
    pub mentions: Vec<Mention>,
    pub broadcast: bool,
    /// Post a message (false: only react).
    pub post: bool,
    pub react: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mention {
    /// A group from `people`.
    Group(String),
    /// The issue's assignees, through `people.gitlab_users`.
    Assignees,
    /// Whoever a rotation has in a role when the message is sent.
    OnCall { rotation: String, role: Role },
}

/// As a policy file writes it: `contacts`, `assignees`, `oncall.primary`.
impl fmt::Display for Mention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mention::Group(group) => f.write_str(group),
            Mention::Assignees => f.write_str("assignees"),
            Mention::OnCall { rotation, role } => write!(f, "{rotation}.{}", role.as_str()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitLabStep {
    pub add_labels: Vec<String>,
    pub remove_labels: Vec<String>,
    pub comment: bool,
    /// From this step on, the issue's due date follows the deadline
    /// (see [`crate::engine::due_date`]).
    #[serde(default)]
    pub set_due_date: bool,
    /// A rule's own comment, template variables unfilled (see
    /// [`COMMENT_VARIABLES`]); `None`: the step's summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_text: Option<String>,
    /// The comment is an internal note, for project members only.
    #[serde(default)]
    pub internal: bool,
    /// GitLab usernames to assign if nobody is assigned when it is carried
    /// out: whoever the step's rotation had on call when it was decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assign: Vec<String>,
}

/// Template variables a rule's `comment:` may use.
pub const COMMENT_VARIABLES: &[&str] = &["issue.ref", "issue.title", "issue.url", "policy"];

/// Template variables a step's `text:` may use; the Slack renderer fills them in.
pub const TEXT_VARIABLES: &[&str] = &[
    "issue.ref",
    "issue.title",
    "issue.url",
    "policy",
    "deadline",
    "remaining",
    "overdue",
    "took",
];
