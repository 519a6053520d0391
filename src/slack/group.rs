//! Group alerts in Slack: when more new alerts fall due in a channel
//! within its window than it takes one thread each for, the rest share one
//! parent message and one thread. The parent says how many, what they are
//! waiting for, and how they stand (updated in place as members join, are
//! resolved or withdrawn); the thread lists them, then carries their later
//! steps, one message per kind of step falling due together ("SLA
//! breached: #12, #15, #18"), each person tagged once. Pure.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::message::{Message, Rendering, escape, human, section, slack_date};
use crate::notice::Notice;
use crate::notice::digest::Digest;
use crate::policy::{Channel, People};

/// Slack cuts a section's text at 3 000 characters.
const SECTION_CHARS: usize = 2_900;

/// `<url|acme/app#12>`.
pub(super) fn link(notice: &Notice) -> String {
    format!("<{}|{}>", notice.url, escape(&notice.issue.to_string()))
}

/// Each person the notices' steps tag, once, in the order first met.
/// Users' channels tag nobody.
pub(super) fn tags(
    notices: &[&Notice],
    channel: &Channel,
    people: &People,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for notice in notices {
        let rendering = Rendering {
            notice,
            channel,
            people,
            now,
        };
        for tag in rendering.tag_list().0 {
            // The "nobody is assigned" note is per issue, not per message.
            if !tag.starts_with('(') && !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    tags
}

/// Text in sections Slack accepts: pieces joined by `separator`, cut
/// between pieces.
pub(super) fn sections(pieces: &[String], separator: &str) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for piece in pieces {
        if !current.is_empty() && current.len() + separator.len() + piece.len() > SECTION_CHARS {
            blocks.push(section(&current));
            current.clear();
        }
        if !current.is_empty() {
            current.push_str(separator);
        }
        current.push_str(piece);
    }
    if !current.is_empty() {
        blocks.push(section(&current));
    }
    blocks
}

/// The group's parent message.
pub fn summary(digest: &Digest, channel: &Channel, people: &People, now: DateTime<Utc>) -> Message {
    let members = digest.items.len();
    let policy = escape(&digest.key.policy.0);
    let first_deadline = digest
        .items
        .iter()
        .filter_map(|item| item.notice.deadline.map(|at| (at, &item.notice)))
        .min_by_key(|(at, _)| *at);
    let alerts = if members == 1 {
        "1 new alert".to_owned()
    } else {
        format!("{members} new alerts")
    };
    let mut headline = format!(
        ":rotating_light: *{alerts}* under `{policy}` at once: too many for a thread each, so they share this one."
    );
    if let Some((at, notice)) = first_deadline {
        headline.push_str(&format!(
            " The first deadline is {} ({}).",
            slack_date(at),
            link(notice)
        ));
    }
    let ended = digest.ended();
    let resolved = ended.iter().filter(|n| n.step_kind == "resolved").count();
    let withdrawn = ended.len() - resolved;
    let mut standing = Vec::new();
    if resolved > 0 {
        standing.push(format!("{resolved} resolved"));
    }
    if withdrawn > 0 {
        standing.push(format!("{withdrawn} no longer matching"));
    }
    let open = members.saturating_sub(ended.len());
    let standing = if standing.is_empty() {
        format!("All {open} open.")
    } else {
        format!("{open} still open; {}.", standing.join(", "))
    };
    let mut blocks = vec![
        section(&headline),
        section(&format!(
            "{standing} The list is in this thread, and so are their later steps, several issues to a message. React :eyes: here to acknowledge them all. :white_check_mark: here resolves nothing: resolve each issue in GitLab."
        )),
    ];
    let starts: Vec<&Notice> = digest.items.iter().map(|item| &item.notice).collect();
    let tags = tags(&starts, channel, people, now);
    let mut text = format!(
        "{alerts} under {} at once, in one thread",
        digest.key.policy
    );
    if !tags.is_empty() {
        let tagged = tags.join(" ");
        blocks.push(section(&format!("*Tagged:* {tagged}")));
        text.push_str(&format!(" {tagged}"));
    }
    Message { text, blocks }
}

/// A reminder digest's message: how many are still past their deadline,
/// the most overdue, and everyone to tag, once; the list in its thread.
pub fn reminders(
    digest: &Digest,
    channel: &Channel,
    people: &People,
    now: DateTime<Utc>,
) -> Message {
    let tally = digest.tally(now);
    let issues = if tally.total == 1 {
        "1 issue".to_owned()
    } else {
        format!("{} issues", tally.total)
    };
    let mut headline = format!(
        ":red_circle: *Still past their SLA: {issues}* under `{}`",
        escape(&digest.key.policy.0)
    );
    if let Some((by, notice)) = tally.oldest_overdue {
        headline.push_str(&format!(
            ", the most overdue {} ({})",
            human(by),
            link(notice)
        ));
    }
    headline.push_str(". The list, most overdue first with assignees, is in this thread; their own threads are not bumped one by one.");
    let mut blocks = vec![section(&headline)];
    let reminded: Vec<&Notice> = digest.items.iter().map(|item| &item.notice).collect();
    let tags = tags(&reminded, channel, people, now);
    let mut text = format!("Still past their SLA: {issues} under {}", digest.key.policy);
    if !tags.is_empty() {
        let tagged = tags.join(" ");
        blocks.push(section(&format!("*Tagged:* {tagged}")));
        text.push_str(&format!(" {tagged}"));
    }
    Message { text, blocks }
}

/// The note a message about several notices carries when they went out
/// late: the one for the notice due first, which is the latest.
pub(super) fn late_note(
    notices: &[&Notice],
    channel: &Channel,
    people: &People,
    now: DateTime<Utc>,
) -> Option<Value> {
    let first_due = notices.iter().min_by_key(|n| n.due_at)?;
    Rendering {
        notice: first_due,
        channel,
        people,
        now,
    }
    .late_note()
}

/// One message for notices of one kind of step falling due together in
/// the group's thread: what happened, to which issues, who is tagged.
pub fn step_message(
    kind: &str,
    notices: &[&Notice],
    channel: &Channel,
    people: &People,
    now: DateTime<Utc>,
) -> Message {
    let count = notices.len();
    let heading = match kind {
        "before_deadline" => {
            let first = notices.iter().filter_map(|n| n.deadline).min();
            match first {
                Some(at) => format!(
                    ":hourglass_flowing_sand: Deadline approaching for {count}, the first at {}:",
                    slack_date(at)
                ),
                None => format!(":hourglass_flowing_sand: Deadline approaching for {count}:"),
            }
        }
        "after_start" => format!(
            ":bell: Not acknowledged yet ({count}): react with :eyes: on the group message when you are on them."
        ),
        "breach" => format!(":red_circle: SLA breached ({count}):"),
        "every" => format!(":red_circle: Still open past the SLA deadline ({count}):"),
        "resolved" => format!(":white_check_mark: Resolved ({count}):"),
        "withdrawn" => format!(
            ":information_source: No longer match `{}`, escalation stopped ({count}):",
            escape(&notices[0].policy.0)
        ),
        other => format!("{other} ({count}):"),
    };
    let pieces: Vec<String> = notices
        .iter()
        .map(|notice| match (kind, notice.sla.took()) {
            ("resolved", Some(took)) => format!("{} (took {})", link(notice), human(took)),
            _ => link(notice),
        })
        .collect();
    let mut blocks = vec![section(&heading)];
    blocks.extend(sections(&pieces, ", "));
    let names: Vec<String> = notices.iter().map(|n| n.issue.to_string()).collect();
    let mut text = format!("{} {}", heading.trim_end_matches(':'), names.join(", "));
    let tags = tags(notices, channel, people, now);
    if !tags.is_empty() {
        let tagged = tags.join(" ");
        blocks.push(section(&format!("*Tagged:* {tagged}")));
        text.push_str(&format!(" {tagged}"));
    }
    blocks.extend(late_note(notices, channel, people, now));
    Message { text, blocks }
}
