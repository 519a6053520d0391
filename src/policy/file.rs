//! The policy file format as written on disk: what `schema` documents and what
//! the YAML parser fills in, with the line and column of every value that a
//! validation error may need to point at.
//!
//! Nothing here is interpreted: durations, label patterns and names stay
//! strings so that `validate` can report every bad one at once instead of
//! stopping at the first. Only `load` and `validate` use these types.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::PolicyError;

mod calendar;
mod conditions;
mod rule;
pub use calendar::{CalendarEntry, HolidayEntry, WeekHours};
pub use conditions::{AgeEntry, MatchEntry, PresenceEntry, PresenceKeyword, WeightEntry};
pub use rule::{RuleActions, RuleEntry};

/// A value with the place in its file where it was written (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub line: u32,
    pub column: u32,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Located {
            line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
            column: u32::try_from(spanned.referenced.column()).unwrap_or(u32::MAX),
            value: spanned.value,
        })
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// Parses one file's text, or says its first shape error (see
/// [`super::shape::parse`] for reading on past unknown keys).
pub fn parse(path: &Path, text: &str) -> Result<PolicyFile, PolicyError> {
    match super::shape::parse(path, text) {
        (Some(file), errors) if errors.is_empty() => Ok(file),
        (_, mut errors) => Err(errors.remove(0)),
    }
}

/// One policy file. Every key is optional; files are merged, so channels,
/// people and policies may each live in a file of their own.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "labelwarden policy file")]
pub struct PolicyFile {
    /// Slack destinations, by the name that steps use in `channel:`.
    #[serde(default)]
    pub channels: BTreeMap<String, Located<ChannelEntry>>,
    /// Groups of Slack mentions, by the name that steps use in `mention:`;
    /// the key `gitlab_users` instead maps GitLab usernames to Slack user ids.
    #[serde(default)]
    pub people: BTreeMap<String, Located<PeopleEntry>>,
    /// The policies themselves.
    #[serde(default)]
    pub policies: Vec<Located<PolicyEntry>>,
    /// Instant rules: actions carried out once when an issue comes to match.
    #[serde(default)]
    pub rules: Vec<Located<RuleEntry>>,
    /// Where a notice goes at once when its channel refuses it for good
    /// and the channel names no `fallback` of its own: a channel's name,
    /// or `gitlab_comment` (a comment on the issue).
    #[serde(default)]
    pub default_fallback: Option<Located<String>>,
    /// Maintenance windows: times known ahead when a policy, a channel or
    /// a project is silenced. Notices that fall due meanwhile are
    /// recorded, not sent, and said once when the window ends; clocks
    /// keep running.
    #[serde(default)]
    pub maintenance: Vec<Located<MaintenanceEntry>>,
    /// Business-hours calendars, by the name a clock uses in `calendar:`.
    #[serde(default)]
    pub calendars: BTreeMap<String, Located<CalendarEntry>>,
}

/// One maintenance window: what it silences (exactly one of `policy`,
/// `channel`, `project`) and when (`once` or `weekly`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceEntry {
    /// Unique across the policy files (`weekly-deploy`); names the
    /// window in logs, `/readyz` and `labelwarden mutes`.
    pub name: Located<String>,
    /// Why, said in the summary when the window ends.
    pub reason: Located<String>,
    /// Silence this policy's notices.
    #[serde(default)]
    pub policy: Option<Located<String>>,
    /// Silence notices for this channel (a name under `channels:`).
    #[serde(default)]
    pub channel: Option<Located<String>>,
    /// Silence notices about this project's issues (`group/project`).
    #[serde(default)]
    pub project: Option<Located<String>>,
    /// Once, from one time until another.
    #[serde(default)]
    pub once: Option<Located<OnceEntry>>,
    /// On some days of every week, from a local time until another.
    #[serde(default)]
    pub weekly: Option<Located<WeeklyEntry>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnceEntry {
    /// From when: RFC 3339 (`2026-12-05T22:00:00Z`) or `2026-12-05 22:00`
    /// in `time_zone`.
    pub from: String,
    /// Until when, written as `from`; at most 7 days after it.
    pub until: String,
    /// IANA time zone of times written without an offset (default `UTC`).
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyEntry {
    /// The days a window starts on (`saturday` or `sat`); default: every day.
    #[serde(default)]
    pub days: Option<Vec<String>>,
    /// Local time it starts, `02:00`.
    pub from: String,
    /// Local time it ends, `04:00`; a time not after `from` is the next day's.
    pub until: String,
    /// IANA time zone of the times (default `UTC`); they keep across
    /// daylight-saving changes.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// Where a channel's messages go: a Slack channel through the bot token, or
/// an incoming webhook whose URL is read from an environment variable.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelEntry {
    /// Slack channel id (`C0123ABCD`) or name (`#alerts`).
    pub slack_channel: Option<Located<String>>,
    /// Name of the environment variable holding an incoming-webhook URL.
    pub webhook_env: Option<Located<String>>,
    /// Private channels may show confidential issues' titles and labels.
    #[serde(default)]
    pub private: bool,
    /// `team` (responders) or `users` (user-facing wording, no internals).
    #[serde(default)]
    pub audience: Option<Located<String>>,
    /// New threads this channel takes within `group_window` before the
    /// rest are said together (default 5; 0: never group).
    #[serde(default)]
    pub group_after: Option<Located<u32>>,
    /// How long a storm window lasts (default `1m`).
    #[serde(default)]
    pub group_window: Option<Located<ScalarText>>,
    /// Where a notice this channel refuses for good (archived, bot
    /// removed, token revoked) goes at once: another channel's name, or
    /// `gitlab_comment` (a comment on the issue, the last resort).
    #[serde(default)]
    pub fallback: Option<Located<String>>,
    /// A person's message here becomes a GitLab issue when somebody puts
    /// the raise reaction on it (`serve --raise-reaction`, default
    /// `rotating_light`): the project it is created in, and its labels.
    #[serde(default)]
    pub opens_issues: Option<Located<OpensIssuesEntry>>,
}

/// Where a message raised in a channel becomes an issue.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpensIssuesEntry {
    /// The project's path (`group/project`).
    pub project: String,
    /// Labels the new issue gets (`priority::highest`, `type::bug`).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A `people` entry: a list of mentions, an on-call rotation, or (under
/// `gitlab_users`) a map. Read by hand so that a mistake in a rotation gets
/// the rotation's own message, not "matches no form".
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub enum PeopleEntry {
    /// Slack mentions: `<@U0ABC>`, `<!subteam^S0ABC>`, `<!here>`, `<!channel>`.
    Mentions(Vec<String>),
    /// A weekly on-call rotation, mentioned as `NAME.primary` / `NAME.secondary`.
    Rotation(RotationEntry),
    /// GitLab username -> Slack user id (`U0ABC`), used for `assignees`.
    UserMap(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for PeopleEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let shaped = match &value {
            serde_json::Value::Array(_) => serde_json::from_value(value).map(PeopleEntry::Mentions),
            serde_json::Value::Object(map) if map.contains_key("rotation") => {
                serde_json::from_value(value).map(PeopleEntry::Rotation)
            }
            serde_json::Value::Object(_) => serde_json::from_value(value).map(PeopleEntry::UserMap),
            _ => {
                return Err(de::Error::custom(
                    "expected a list of Slack mentions, a rotation (`rotation: [...]`) or, \
                     under `gitlab_users`, a map of GitLab usernames to Slack user ids",
                ));
            }
        };
        shaped.map_err(de::Error::custom)
    }
}

/// A weekly on-call rotation.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationEntry {
    /// GitLab usernames (each mapped in `gitlab_users`), in the order they
    /// take turns: the first is primary in the first week, the next one
    /// secondary.
    pub rotation: Vec<String>,
    /// When the rotation moves on each week.
    pub hand_off: HandOffEntry,
    /// A date (`2026-11-02`): the first hand-off on or after it begins the
    /// first person's week.
    pub since: String,
    /// Someone standing in for a role for a while.
    #[serde(default)]
    pub overrides: Vec<OverrideEntry>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandOffEntry {
    /// `monday` ... `sunday`.
    pub day: String,
    /// Local time of day, `09:00`.
    pub time: String,
    /// IANA time zone of `time` (`Europe/Berlin`): the hand-off keeps its
    /// local time across daylight-saving changes.
    pub time_zone: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideEntry {
    /// Who is primary instead (a GitLab username from `gitlab_users`).
    #[serde(default)]
    pub primary: Option<String>,
    /// Who is secondary instead.
    #[serde(default)]
    pub secondary: Option<String>,
    /// From when (`2026-11-24 09:00` in the rotation's time zone, or RFC 3339); default: already.
    #[serde(default)]
    pub from: Option<String>,
    /// Until when: the override's expiry, written as `from`.
    pub until: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// Unique name, used in logs, reports and the escalation ledger.
    pub name: Located<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "match")]
    pub selector: Located<MatchEntry>,
    pub clock: Located<ClockEntry>,
    #[serde(default)]
    pub escalation: Vec<Located<StepEntry>>,
    /// What responders do in an alert's Slack thread does on the issue.
    #[serde(default)]
    pub from_slack: Option<Located<FromSlackEntry>>,
    /// What is said on the issue in GitLab that reaches its alert thread.
    #[serde(default)]
    pub from_gitlab: Option<FromGitLabEntry>,
    /// A clock labelwarden learns of only well after it started (switched
    /// on over a backlog, a new policy, a lost webhook): `digest` (default:
    /// its missed steps are recorded as done and said in one digest per
    /// channel), `individual` (one alert for it, saying so) or `silent`
    /// (recorded only).
    #[serde(default)]
    pub adopt: Option<Located<String>>,
    /// How long after its start a clock may be learned of and still be
    /// announced step by step (default `15m`).
    #[serde(default)]
    pub adopt_grace: Option<Located<ScalarText>>,
    /// Whether `audit` reports this policy's clocks (default true). A
    /// policy that only tells people something (a notice to users) makes
    /// no promise: its clocks would only repeat another policy's breaches.
    #[serde(default)]
    pub report: Option<bool>,
}

/// The handbook's resolve and false-positive reactions, and thread replies,
/// carried to the GitLab issue. Each is off unless set.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FromSlackEntry {
    /// The resolve reaction also closes the issue (default false: only the note).
    #[serde(default)]
    pub close_on_resolve: bool,
    /// Label added with the false-positive reaction's note.
    #[serde(default)]
    pub false_positive_label: Option<String>,
    /// Copy every reply in the alert thread to the issue as an internal note.
    #[serde(default)]
    pub mirror_replies: bool,
}

/// Comments on the GitLab issue carried to its live alert threads in
/// Slack. Off unless set.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FromGitLabEntry {
    /// Post each new comment on the issue (GitLab's `Note Hook`) in the
    /// alert thread: its author, a short excerpt and a link. Internal notes
    /// and comments on confidential issues go only to `private` channels;
    /// labelwarden's own notes are never posted; edits and deletions are
    /// not mirrored.
    #[serde(default)]
    pub mirror_comments: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockEntry {
    /// How long the issue has: `90s`, `45m`, `24h`, `5d`.
    pub target: Located<ScalarText>,
    /// `matched` (when the issue began to match, default) or `created`.
    #[serde(default)]
    pub starts: Option<Located<String>>,
    /// What stops the clock: `closed` (default) or `{ labeled: [...] }`.
    #[serde(default)]
    pub stops: Option<Located<StopEntry>>,
    /// While any of these labels is on the issue, the clock does not run.
    #[serde(default)]
    pub pauses_while_labeled: Vec<Located<String>>,
    /// The most paused time a cycle may accumulate before the clock runs anyway.
    #[serde(default)]
    pub max_pause: Option<Located<ScalarText>>,
    /// IANA time zone used when showing times (`Europe/Berlin`); default UTC.
    #[serde(default)]
    pub time_zone: Option<Located<String>>,
    /// A calendar's name (under `calendars:`): only its working time counts
    /// towards the target, and steps' times are working time. Default:
    /// wall-clock time, around the clock.
    #[serde(default)]
    pub calendar: Option<Located<String>>,
    /// An issue closed as a duplicate: `follow` (default: the clock goes on
    /// on the canonical issue if it matches, else it is withdrawn) or
    /// `resolve` (the close counts as a resolution).
    #[serde(default)]
    pub duplicates: Option<Located<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StopEntry {
    /// The issue is closed (a resolution SLA).
    Closed,
    /// One of these labels is added (a triage SLA).
    Labeled(Vec<String>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepEntry {
    /// Optional stable id; defaults to the trigger (`breach`, `before_deadline:6h`).
    #[serde(default)]
    pub id: Option<Located<String>>,
    /// When the step fires.
    pub on: Located<TriggerEntry>,
    /// A calendar's name (under `calendars:`): quiet hours. The step is
    /// carried out only in the calendar's working hours; due outside them,
    /// it waits for the next working minute and says it waited.
    #[serde(default)]
    pub during: Option<Located<String>>,
    #[serde(default)]
    pub slack: Option<Located<SlackEntry>>,
    #[serde(default)]
    pub gitlab: Option<Located<GitLabEntry>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackEntry {
    /// A name from `channels`.
    pub channel: Located<String>,
    /// Names from `people`, or `assignees`.
    #[serde(default)]
    pub mention: Vec<Located<String>>,
    /// Also show this thread reply in the channel.
    #[serde(default)]
    pub broadcast: bool,
    /// Post a message (the thread parent for the first, replies after). Default true.
    #[serde(default)]
    pub reply: Option<bool>,
    /// Emoji name to add to the thread's parent message, e.g. `white_check_mark`.
    #[serde(default)]
    pub react: Option<Located<String>>,
    /// Message text replacing the default wording; template variables such as `{issue.ref}`.
    #[serde(default)]
    pub text: Option<Located<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitLabEntry {
    #[serde(default)]
    pub add_labels: Vec<Located<String>>,
    #[serde(default)]
    pub remove_labels: Vec<Located<String>>,
    /// Post a note on the issue saying what happened.
    #[serde(default)]
    pub comment: bool,
    /// From this step on, keep the issue's GitLab due date at the
    /// deadline's date (in the clock's time zone), moving it when a pause
    /// or the calendar moves the deadline; a due date a person set is
    /// never overwritten.
    #[serde(default)]
    pub set_due_date: bool,
}

/// `on:` is a keyword (`start`, `breach`, `resolved`, `withdrawn`) or a
/// mapping (`{ before_deadline: 6h }`, `{ after_start: 30m }`,
/// `{ every: 4h, after: breach }`); a mapping may add `unless:
/// acknowledged`. Read by hand so that a mistake gets a message naming the
/// allowed forms.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum TriggerEntry {
    Keyword(TriggerKeyword),
    BeforeDeadline {
        before_deadline: String,
        /// `acknowledged`: only if nobody acknowledged the alert in Slack.
        #[schemars(default)]
        unless: Option<String>,
    },
    AfterStart {
        after_start: String,
        /// `acknowledged`: only if nobody acknowledged the alert in Slack.
        #[schemars(default)]
        unless: Option<String>,
    },
    Every {
        every: String,
        /// `breach` (default) or `start`.
        #[schemars(default)]
        after: Option<String>,
        /// `acknowledged`: only if nobody acknowledged the alert in Slack.
        #[schemars(default)]
        unless: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKeyword {
    Start,
    Breach,
    Resolved,
    Withdrawn,
}

const TRIGGER_FORMS: &str = "`start`, `breach`, `resolved`, `withdrawn`, `{ before_deadline: 6h }`, `{ after_start: 30m }` or `{ every: 4h, after: breach }` (a mapping may add `unless: acknowledged`)";

impl<'de> Deserialize<'de> for TriggerEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TriggerVisitor;

        impl<'de> Visitor<'de> for TriggerVisitor {
            type Value = TriggerEntry;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "one of {TRIGGER_FORMS}")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TriggerEntry, E> {
                let keyword = match v {
                    "start" => TriggerKeyword::Start,
                    "breach" => TriggerKeyword::Breach,
                    "resolved" => TriggerKeyword::Resolved,
                    "withdrawn" => TriggerKeyword::Withdrawn,
                    other => {
                        return Err(E::custom(format!(
                            "unknown trigger `{other}`, expected one of {TRIGGER_FORMS}"
                        )));
                    }
                };
                Ok(TriggerEntry::Keyword(keyword))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TriggerEntry, A::Error> {
                let mut before_deadline = None;
                let mut after_start = None;
                let mut every = None;
                let mut after = None;
                let mut unless = None;
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "before_deadline" => &mut before_deadline,
                        "after_start" => &mut after_start,
                        "every" => &mut every,
                        "after" => &mut after,
                        "unless" => &mut unless,
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key `{other}` in `on`, expected one of {TRIGGER_FORMS}"
                            )));
                        }
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom(format!("`{key}` is given twice in `on`")));
                    }
                    *slot = Some(map.next_value::<ScalarText>()?.0);
                }
                match (before_deadline, after_start, every, after) {
                    (Some(before_deadline), None, None, None) => Ok(TriggerEntry::BeforeDeadline {
                        before_deadline,
                        unless,
                    }),
                    (None, Some(after_start), None, None) => Ok(TriggerEntry::AfterStart {
                        after_start,
                        unless,
                    }),
                    (None, None, Some(every), after) => Ok(TriggerEntry::Every {
                        every,
                        after,
                        unless,
                    }),
                    _ => Err(de::Error::custom(format!(
                        "`on` must be exactly one of {TRIGGER_FORMS}"
                    ))),
                }
            }
        }

        deserializer.deserialize_any(TriggerVisitor)
    }
}

/// A scalar read as text whether YAML typed it as a string or a number, so
/// that `every: 30` reaches validation and gets a message about units.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarText(pub String);

impl JsonSchema for ScalarText {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A whole number of seconds, minutes, hours, days or weeks.",
            "examples": ["90s", "45m", "24h", "5d", "1h 30m"]
        })
    }
}

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = ScalarText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `6h` or a keyword")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}
