//! An instant rule as written under `rules:` (see [`RuleEntry`]).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Located, MatchEntry, ScalarText, SlackEntry};

/// An instant rule: when an issue comes to match (and still matches
/// `after` the grace, if given), its actions are carried out once. They
/// are carried out again only after the issue stopped matching and came
/// to match anew.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// Unique among rules and policies: used in logs and the ledger.
    pub name: Located<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Which issues the rule applies to, with the same conditions as a
    /// policy's `match`.
    #[serde(rename = "match")]
    pub selector: Located<MatchEntry>,
    /// While these conditions all hold, the rule does not apply (any of
    /// the `match` conditions, none required).
    #[serde(default)]
    pub unless: Option<Located<MatchEntry>>,
    /// How long the issue must keep matching before the rule acts
    /// (`15m`, `2d`; default: at once). A change that makes it stop
    /// matching meanwhile ends the wait.
    #[serde(default)]
    pub after: Option<Located<ScalarText>>,
    pub actions: Located<RuleActions>,
}

/// What a rule does on the issue.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleActions {
    #[serde(default)]
    pub add_labels: Vec<Located<String>>,
    #[serde(default)]
    pub remove_labels: Vec<Located<String>>,
    /// A comment on the issue; `@username` mentions people. Template
    /// variables: `{issue.ref}`, `{issue.title}`, `{issue.url}`, `{policy}`
    /// (the rule's name).
    #[serde(default)]
    pub comment: Option<Located<String>>,
    /// The comment is an internal note (project members only).
    #[serde(default)]
    pub internal: bool,
    /// Assign whoever a rotation has in a role as the rule acts
    /// (`oncall.primary`), if nobody is assigned by then.
    #[serde(default)]
    pub assign: Option<Located<String>>,
    /// A Slack message, as an escalation step's `slack:` (a channel,
    /// `mention`, `text` with the template variables): the first message
    /// of a thread of its own.
    #[serde(default)]
    pub slack: Option<Located<SlackEntry>>,
}
