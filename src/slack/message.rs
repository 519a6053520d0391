//! What a notice looks like in Slack: Block Kit blocks with a plain-text
//! fallback (the `text` Slack uses for notifications and screen readers).
//! Pure: no I/O, the send time is passed in.
//!
//! Written for whoever reads it at 3 a.m.: each message says what happened,
//! how long is left (or how late it is), who is tagged, and links the issue.
//! Times use Slack's date formatting, so every reader sees their own time
//! zone, with UTC as the fallback.
//!
//! Two rules the renderer enforces whatever the policy says:
//! - a confidential issue in a channel not marked `private` shows only its
//!   reference, link and SLA facts: no title, no labels (and so no
//!   description, which is never shown anyway);
//! - a channel with `audience: users` gets plain wording: no policy names,
//!   labels or people.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::notice::{CommentFacts, Lateness, Notice, late_tolerance};
use crate::policy::duration;
use crate::policy::{Audience, Channel, Mention, People};

/// A Slack message body: `text` and `blocks` as `chat.postMessage`,
/// `chat.update` and incoming webhooks take them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub text: String,
    pub blocks: Vec<Value>,
}

/// A message and the GitLab users it could not tag (no Slack id in
/// `people.gitlab_users`): they appear as plain `@username`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub message: Message,
    pub unmapped: Vec<String>,
}

/// Shown instead of a confidential issue's title where it may not appear.
pub const CONFIDENTIAL_TITLE: &str = "(confidential issue)";

/// `text` with its first letter upper case.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Slack cuts section text at 3 000 characters; titles and label lists are
/// kept well below.
const LONGEST_FIELD: usize = 1_000;

/// One notice about to be sent to one channel.
#[derive(Debug, Clone, Copy)]
pub struct Rendering<'a> {
    pub notice: &'a Notice,
    pub channel: &'a Channel,
    pub people: &'a People,
    /// When it is sent: time left and time overdue are as of then.
    pub now: DateTime<Utc>,
}

impl Rendering<'_> {
    /// The first message of a thread, or a standalone message (incoming
    /// webhooks): the issue, its SLA facts, the step's words and who is
    /// tagged.
    pub fn parent(&self) -> Rendered {
        self.issue_message(true)
    }

    /// The parent as it should read once the cycle is resolved: the same
    /// layout with the outcome as its words, nobody tagged again.
    pub fn resolved_parent(&self) -> Message {
        self.issue_message(false).message
    }

    /// A reply in the thread: the step's words with the issue's link (a
    /// broadcast reply is read in the channel, away from its parent) and
    /// who is tagged.
    pub fn reply(&self) -> Rendered {
        let headline = self.headline();
        let blocks = vec![section(&format!("{} {headline}", self.link()))];
        let text = format!("{} {headline}", self.notice.issue);
        self.finish(blocks, text, true)
    }

    /// Adds who is tagged (if `with_mentions`) and the lateness note.
    fn finish(&self, mut blocks: Vec<Value>, mut text: String, with_mentions: bool) -> Rendered {
        let mut unmapped = Vec::new();
        if with_mentions {
            let (tagged, missing) = self.tagged();
            unmapped = missing;
            if let Some(tagged) = tagged {
                blocks.push(section(&format!("*Tagged:* {tagged}")));
                text.push_str(&format!(" {tagged}"));
            }
        }
        blocks.extend(self.late_note());
        Rendered {
            message: Message { text, blocks },
            unmapped,
        }
    }

    fn issue_message(&self, with_mentions: bool) -> Rendered {
        let notice = self.notice;
        let headline = self.headline();
        let mut blocks = vec![section(&format!("*{}* {}", self.link(), self.title()))];
        blocks.push(section(&headline));
        let text = format!("{} {}: {headline}", notice.issue, self.title());
        if self.audience() == Audience::Team {
            let named = format!("`{}`", escape(&notice.policy.0));
            // A rule has no deadline: it acted.
            let mut fields = if notice.step_kind == "rule" {
                vec![field("Rule", &named)]
            } else {
                vec![field("Policy", &named), field("Deadline", &self.deadline())]
            };
            if !self.redacted() && !notice.labels.is_empty() {
                let labels: Vec<String> = notice
                    .labels
                    .iter()
                    .map(|label| format!("`{}`", escape(label)))
                    .collect();
                fields.push(field("Labels", &shorten(&labels.join(" "))));
            }
            let assignees =
                assignee_names(&notice.assignees).unwrap_or_else(|| "nobody".to_owned());
            fields.push(field("Assignees", &assignees));
            blocks.push(json!({ "type": "section", "fields": fields }));
        }
        self.finish(blocks, text, with_mentions)
    }

    fn audience(&self) -> Audience {
        self.channel.audience
    }

    /// The title, unless this channel may not see it.
    fn title(&self) -> String {
        if self.redacted() {
            CONFIDENTIAL_TITLE.to_owned()
        } else {
            shorten(&escape(&self.notice.title))
        }
    }

    fn redacted(&self) -> bool {
        self.notice.confidential && !self.channel.private
    }

    /// `<url|group/project#12>`: the reference, linked.
    fn link(&self) -> String {
        format!(
            "<{}|{}>",
            self.notice.url,
            escape(&self.notice.issue.to_string())
        )
    }

    /// What happened, in one line: the step's own `text:` if it has one.
    fn headline(&self) -> String {
        if let Some(comment) = &self.notice.comment {
            return self.comment_line(comment);
        }
        match self.notice.slack.as_ref().and_then(|s| s.text.as_deref()) {
            Some(template) => self.fill(template),
            None if self.audience() == Audience::Users => self.users_headline(),
            None => self.team_headline(),
        }
    }

    /// A comment on the issue, quoted; where the issue's words may not be
    /// shown, only that there is one.
    fn comment_line(&self, comment: &CommentFacts) -> String {
        if self.redacted() {
            return format!(
                ":speech_balloon: New comment on the issue, not shown here: the issue is confidential. <{}|Read it in GitLab>",
                comment.url
            );
        }
        let quoted: Vec<String> = escape(&comment.excerpt)
            .lines()
            .map(|line| format!(">{line}"))
            .collect();
        format!(
            ":speech_balloon: *{}* (`{}`) commented in GitLab (<{}|view>):\n{}",
            escape(&comment.name),
            escape(&comment.username),
            comment.url,
            quoted.join("\n")
        )
    }

    fn team_headline(&self) -> String {
        let notice = self.notice;
        let target = self.notice.sla.span(notice.sla.target());
        let deadline = self.deadline();
        match notice.step_kind.as_str() {
            "start" => format!(
                ":rotating_light: SLA clock started: resolve within {target}, by {deadline} ({}).",
                self.time_left()
            ),
            "before_deadline" => match (self.overdue(), self.remaining()) {
                (Some(overdue), _) => format!(
                    ":hourglass_flowing_sand: Deadline warning, delayed: the SLA deadline ({deadline}) passed {} ago.",
                    self.notice.sla.span(overdue)
                ),
                (None, Some(left)) if self.notice.sla.kind == "paused" => format!(
                    ":hourglass_flowing_sand: {} left before the SLA deadline, clock paused.",
                    self.notice.sla.span(left)
                ),
                _ => format!(
                    ":hourglass_flowing_sand: {} left before the SLA deadline, {deadline}. Resolve the issue or say in it what blocks it.",
                    self.notice.sla.span(self.remaining().unwrap_or_default())
                ),
            },
            "after_start" => format!(
                ":bell: Nobody has acknowledged this alert in {}: {}. React with :eyes: on it when you are on it.",
                self.notice.sla.span(notice.sla.target() - self.remaining().unwrap_or_default()),
                self.time_left()
            ),
            "breach" => match self.overdue() {
                Some(overdue) if overdue >= TimeDelta::seconds(1) => format!(
                    ":red_circle: SLA breached: the {target} deadline ({deadline}) passed {} ago.",
                    self.notice.sla.span(overdue)
                ),
                _ => format!(
                    ":red_circle: SLA breached: the {target} deadline ({deadline}) has just passed."
                ),
            },
            "every" => format!(
                ":red_circle: Still open, {} past the SLA deadline ({deadline}). Reminder {}.",
                self.overdue_text(),
                notice.firing.occurrence
            ),
            "resolved" => match (self.overdue(), notice.sla.took()) {
                (Some(late), Some(took)) => format!(
                    ":warning: Resolved {} after the SLA deadline: took {} against a target of {target}.",
                    self.notice.sla.span(late),
                    self.notice.sla.span(took)
                ),
                (None, Some(took)) => format!(
                    ":white_check_mark: Resolved within the SLA: took {} of {target}.",
                    self.notice.sla.span(took)
                ),
                _ => ":white_check_mark: Resolved.".to_owned(),
            },
            "withdrawn" => {
                let mut line = format!(
                    ":information_source: No longer matches `{}` (its labels changed): escalation stopped.",
                    escape(&notice.policy.0)
                );
                if let Some(overdue) = self.overdue() {
                    line.push_str(&format!(
                        " It was {} past its deadline by then.",
                        self.notice.sla.span(overdue)
                    ));
                }
                line
            }
            "moved" => format!(
                ":arrow_right: Issue {}: the SLA clock goes on there, and in this thread.",
                escape(&notice.status)
            ),
            "duplicate" => format!(":twisted_rightwards_arrows: {}.", capitalized(&escape(&notice.status))),
            "gone" => ":grey_question: This issue was deleted, or labelwarden can no longer see it: its SLA clock ends here.".to_owned(),
            "rule" => format!(
                ":triangular_flag_on_post: This issue meets the rule `{}`.",
                escape(&notice.policy.0)
            ),
            other => format!("{other}: {}", escape(&notice.status)),
        }
    }

    fn users_headline(&self) -> String {
        let deadline = self.deadline();
        match self.notice.step_kind.as_str() {
            "start" => format!(
                ":mag: This bug is being treated as urgent. Target for a fix: {deadline}."
            ),
            "before_deadline" | "every" | "after_start" => format!(
                ":hourglass_flowing_sand: Still being worked on. Target for a fix: {deadline}."
            ),
            "breach" => format!(
                ":hourglass_flowing_sand: This is taking longer than our target ({deadline}). It is still a top priority; follow the issue for updates."
            ),
            "resolved" => ":white_check_mark: Resolved. Thank you for your patience.".to_owned(),
            _ => ":information_source: This issue is no longer tracked as urgent; follow the issue for updates.".to_owned(),
        }
    }

    /// A step's `text:` with its template variables filled in.
    fn fill(&self, template: &str) -> String {
        crate::notice::fill_template(template, |name| self.variable(name))
    }

    fn variable(&self, name: &str) -> Option<String> {
        let notice = self.notice;
        Some(match name {
            "issue.ref" => escape(&notice.issue.to_string()),
            "issue.title" => self.title(),
            "issue.url" => notice.url.clone(),
            "policy" => escape(&notice.policy.0),
            "deadline" => self.deadline(),
            "remaining" => human(
                self.remaining()
                    .unwrap_or(TimeDelta::zero())
                    .max(TimeDelta::zero()),
            ),
            "overdue" => human(self.overdue().unwrap_or(TimeDelta::zero())),
            "took" => notice.sla.took().map_or_else(|| "-".to_owned(), human),
            _ => return None,
        })
    }

    fn remaining(&self) -> Option<TimeDelta> {
        self.notice
            .sla
            .remaining_at(self.notice.decided_at, self.now)
    }

    fn overdue(&self) -> Option<TimeDelta> {
        self.notice.sla.overdue_at(self.notice.decided_at, self.now)
    }

    fn overdue_text(&self) -> String {
        self.notice
            .sla
            .span(self.overdue().unwrap_or(TimeDelta::zero()))
    }

    /// `6h left`, `5m past the deadline`, or why there is no count.
    fn time_left(&self) -> String {
        match (self.overdue(), self.remaining()) {
            (Some(overdue), _) => format!("already {} past it", self.notice.sla.span(overdue)),
            (None, Some(left)) if self.notice.sla.kind == "paused" => {
                format!("{} left, clock paused", self.notice.sla.span(left))
            }
            (None, Some(left)) => format!("{} left", self.notice.sla.span(left)),
            (None, None) => "clock paused".to_owned(),
        }
    }

    /// The deadline in each reader's time zone, UTC as fallback.
    fn deadline(&self) -> String {
        match self.notice.deadline {
            Some(deadline) => slack_date(deadline),
            None => "none while the clock is held".to_owned(),
        }
    }

    /// The mentions for this step, and the assignees who could not be
    /// mapped to a Slack user. Users' channels tag nobody.
    pub(crate) fn tagged(&self) -> (Option<String>, Vec<String>) {
        let (tags, unmapped) = self.tag_list();
        ((!tags.is_empty()).then(|| tags.join(" ")), unmapped)
    }

    /// [`Rendering::tagged`] as a list, each tag once; a note in
    /// parentheses when the step tags assignees and nobody is assigned.
    pub(crate) fn tag_list(&self) -> (Vec<String>, Vec<String>) {
        let Some(step) = &self.notice.slack else {
            return (Vec::new(), Vec::new());
        };
        if self.audience() == Audience::Users {
            return (Vec::new(), Vec::new());
        }
        let mut tags: Vec<String> = Vec::new();
        let mut unmapped = Vec::new();
        let mut nobody_assigned = false;
        for mention in &step.mentions {
            match mention {
                Mention::Group(group) => {
                    for member in self.people.groups.get(group).into_iter().flatten() {
                        tags.push(member.clone());
                    }
                }
                Mention::Assignees if self.notice.assignees.is_empty() => nobody_assigned = true,
                Mention::Assignees => {
                    for username in &self.notice.assignees {
                        tags.push(self.user_tag(username, &mut unmapped));
                    }
                }
                Mention::OnCall { rotation, role } => {
                    // Whoever is on call as the message goes out.
                    if let Some(rotation) = self.people.rotations.get(rotation) {
                        let username = rotation.on_call(*role, self.now);
                        tags.push(self.user_tag(username, &mut unmapped));
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        tags.retain(|tag| seen.insert(tag.clone()));
        if nobody_assigned {
            tags.push("(nobody is assigned: assign someone in GitLab)".to_owned());
        }
        (tags, unmapped)
    }

    /// A GitLab user's Slack tag, or a plain `@username` (noted in
    /// `unmapped`) when `people.gitlab_users` does not know them.
    fn user_tag(&self, username: &str, unmapped: &mut Vec<String>) -> String {
        match self.people.gitlab_users.get(username) {
            Some(user_id) => format!("<@{user_id}>"),
            None => {
                unmapped.push(username.to_owned());
                format!("@{}", escape(username))
            }
        }
    }

    /// A note when the step went out late because labelwarden was not
    /// running: readers must not take the times for current.
    pub(crate) fn late_note(&self) -> Option<Value> {
        let notice = self.notice;
        let target = notice.sla.target();
        let tolerance = if target > TimeDelta::zero() {
            late_tolerance(target)
        } else {
            crate::notice::LATE_TOLERANCE
        };
        let held_up = self.now - notice.due_at;
        let late = notice.late_by().unwrap_or(held_up).max(held_up);
        if let Some(undelivered) = &notice.undelivered {
            return Some(context_line(escape(&undelivered.describe(human(late)))));
        }
        let text = match notice.lateness() {
            Some(Lateness::Down) => format!(
                ":warning: Sent {} late: labelwarden was not running when this was due.",
                human(late)
            ),
            Some(Lateness::Behind) => format!(
                ":warning: Sent {} late: labelwarden was behind with its work when this was due.",
                human(late)
            ),
            Some(Lateness::Adopted) => format!(
                ":information_source: labelwarden started tracking this issue now; its clock started {} ago. What it missed before is recorded, not sent.",
                human(notice.clock_age())
            ),
            Some(Lateness::Learned) if notice.step_kind == "start" => format!(
                ":information_source: labelwarden started tracking this issue now; its clock started {} ago.",
                human(late)
            ),
            Some(Lateness::Learned) => format!(
                ":information_source: Sent {} after it was due: labelwarden learned of it only now.",
                human(late)
            ),
            Some(Lateness::QuietHours) => format!(
                ":zzz: Held {} for quiet hours: it fell due outside the hours this step is sent in.",
                human(late)
            ),
            None if held_up > tolerance && held_up >= TimeDelta::seconds(1) => format!(
                ":warning: Sent {} late: its delivery was held up (Slack unavailable, or a replica failed over).",
                human(late)
            ),
            None => return None,
        };
        Some(context_line(text))
    }
}

/// A duration as people read it (`6h`, `5h 12m`), to the nearest second:
/// a warning decided a few milliseconds after `6h` was left says `6h`.
pub(crate) fn human(delta: TimeDelta) -> String {
    let rounded = (delta.num_milliseconds() + 500).div_euclid(1_000);
    duration::human(TimeDelta::seconds(rounded))
}

/// GitLab usernames as plain `@names`, not tagged; `None` for nobody.
pub(crate) fn assignee_names(assignees: &[String]) -> Option<String> {
    (!assignees.is_empty()).then(|| {
        assignees
            .iter()
            .map(|username| format!("@{}", escape(username)))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// `<!date^1764079200^{date_short_pretty} {time}|2025-11-25 14:00 UTC>`.
pub fn slack_date(at: DateTime<Utc>) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        at.timestamp(),
        at.format("%Y-%m-%d %H:%M UTC")
    )
}

/// Escapes the three characters Slack's mrkdwn reserves.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= LONGEST_FIELD {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(LONGEST_FIELD - 1).collect();
    cut.push('…');
    cut
}

pub(crate) fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

fn field(name: &str, value: &str) -> Value {
    json!({ "type": "mrkdwn", "text": format!("*{name}*\n{value}") })
}

#[cfg(test)]
mod tests;

/// A context block of one line.
fn context_line(text: String) -> Value {
    json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": text }],
    })
}
