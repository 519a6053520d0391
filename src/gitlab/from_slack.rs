//! What responders say in an alert's Slack thread, as it is written on
//! the GitLab issue (pure: the notes' text and markers; the flow that
//! reads the thread and writes them is `jobs::slack_to_gitlab`): the acknowledgement reaction (and its withdrawal), so that
//! `audit` and `explain` know who acknowledged and when; the resolve
//! reaction with the responder's last reply ("Resolved in Slack by …");
//! the false-positive reaction (the same, plus a label); and, where a
//! policy asks, every reply as an internal note.
//!
//! Every note carries a marker naming the thread, the person and the reply
//! it came from, so writing the same thing again (a retry after a failure,
//! a reaction taken off and put back) finds the note and adds nothing.
//!
//! Slack text is untrusted here: it is quoted, a line that would be a
//! GitLab quick action (`/close`) is escaped, and an HTML comment opener
//! cannot forge a labelwarden marker.

use chrono::{DateTime, SecondsFormat, Utc};

use super::markers::{comments, decode, decode_thread, encode, encode_thread};
use crate::notice::Thread;
use crate::policy::{People, PolicyName};

const PREFIX: &str = "<!-- labelwarden:slack ";
const SUFFIX: &str = " -->";

/// What a responder said in the thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// The acknowledgement reaction.
    Acknowledged,
    /// The acknowledgement reaction taken back.
    Unacknowledged,
    /// The resolve reaction.
    Resolved,
    /// The false-positive reaction.
    FalsePositive,
    /// A reply, mirrored.
    Reply,
}

impl Said {
    /// As markers and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Said::Acknowledged => "acknowledged",
            Said::Unacknowledged => "unacknowledged",
            Said::Resolved => "resolved",
            Said::FalsePositive => "false_positive",
            Said::Reply => "reply",
        }
    }
}

/// Where a note came from: recorded in it, so it is written once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackMarker {
    pub said: Said,
    /// The policy and clock cycle the alert was about.
    pub policy: PolicyName,
    pub cycle: u32,
    /// The alert thread's parent message.
    pub thread: Thread,
    /// The Slack user.
    pub by: String,
    /// The reply quoted, if any.
    pub reply: Option<String>,
    /// When it was said (acknowledgements).
    pub at: Option<DateTime<Utc>>,
}

const SAID: [Said; 5] = [
    Said::Acknowledged,
    Said::Unacknowledged,
    Said::Resolved,
    Said::FalsePositive,
    Said::Reply,
];

impl SlackMarker {
    /// The HTML comment.
    pub fn render(&self) -> String {
        let mut text = format!(
            "{PREFIX}said={} policy={} cycle={} thread={} by={}",
            self.said.as_str(),
            encode(&self.policy.0),
            self.cycle,
            encode_thread(&self.thread),
            encode(&self.by)
        );
        if let Some(reply) = &self.reply {
            text.push_str(&format!(" reply={}", encode(reply)));
        }
        if let Some(at) = self.at {
            text.push_str(&format!(
                " at={}",
                encode(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
            ));
        }
        text.push_str(SUFFIX);
        text
    }

    /// Every Slack marker in a note's text.
    pub fn find_all(text: &str) -> Vec<SlackMarker> {
        comments(text, PREFIX)
            .into_iter()
            .filter_map(SlackMarker::parse)
            .collect()
    }

    fn parse(fields: &str) -> Option<SlackMarker> {
        let (mut said, mut thread, mut by, mut reply, mut at) = (None, None, None, None, None);
        let (mut policy, mut cycle) = (None, None);
        for field in fields.split_whitespace() {
            let (key, value) = field.split_once('=')?;
            let value = decode(value);
            match key {
                "said" => said = SAID.into_iter().find(|s| s.as_str() == value),
                "policy" => policy = Some(PolicyName(value)),
                "cycle" => cycle = value.parse().ok(),
                "thread" => thread = decode_thread(&value),
                "by" => by = Some(value),
                "reply" => reply = Some(value),
                "at" => {
                    at = DateTime::parse_from_rfc3339(&value)
                        .ok()
                        .map(|at| at.to_utc());
                }
                _ => {}
            }
        }
        Some(SlackMarker {
            said: said?,
            policy: policy?,
            cycle: cycle?,
            thread: thread?,
            by: by?,
            reply,
            at,
        })
    }
}

/// How a Slack user is named on GitLab: their GitLab username when
/// `people.gitlab_users` maps them, else their Slack id (not an `@`, which
/// would mention whoever has that GitLab username).
pub fn person(people: &People, slack_user: &str) -> String {
    match people.gitlab_username(slack_user) {
        Some(username) => format!("@{username}"),
        None => format!("Slack user `{slack_user}`"),
    }
}

/// Slack mrkdwn as GitLab Markdown, quoted and defused: mentions become
/// names, links become links, entities are decoded; then every line is
/// quoted, a leading `/` is escaped so GitLab runs no quick action, and
/// `<!--` is escaped so no marker can be forged.
pub fn quote(people: &People, text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        plain.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            plain.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let inner = &after[..close];
        let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
        plain.push_str(&match target.chars().next() {
            Some('@') => person(people, &target[1..]),
            Some('#') => format!(
                "#{}",
                if label.is_empty() {
                    &target[1..]
                } else {
                    label
                }
            ),
            Some('!') => format!("`@{}`", target[1..].split('^').next().unwrap_or_default()),
            _ if label.is_empty() => target.to_owned(),
            _ => format!("[{label}]({target})"),
        });
        rest = &after[close + 1..];
    }
    plain.push_str(rest);
    let decoded = plain
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let defused = decoded.replace("<!--", "&lt;!--");
    defused
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with('/') {
                format!("> {}\\{trimmed}", &line[..line.len() - trimmed.len()])
            } else {
                format!("> {line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The note for what was said, with its marker.
pub fn note(people: &People, marker: &SlackMarker, comment: Option<&str>) -> String {
    let who = person(people, &marker.by);
    let headline = match marker.said {
        Said::Acknowledged => format!("**Acknowledged in Slack** by {who}"),
        Said::Unacknowledged => format!("**Acknowledgement taken back in Slack** by {who}"),
        Said::Resolved => format!("**Resolved in Slack** by {who}"),
        Said::FalsePositive => format!("**Marked a false positive in Slack** by {who}"),
        Said::Reply => format!("**Reply in the Slack alert thread** by {who}"),
    };
    let said = match (marker.said, comment) {
        (Said::Acknowledged | Said::Unacknowledged, _) => ".".to_owned(),
        (_, Some(text)) if !text.trim().is_empty() => format!(":\n\n{}", quote(people, text)),
        _ => " (no reply of theirs in the thread to quote).".to_owned(),
    };
    format!("{headline}{said}\n\n{}", marker.render())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn people() -> People {
        People {
            gitlab_users: BTreeMap::from([("jdoe".to_owned(), "U0JDOE001".to_owned())]),
            ..People::default()
        }
    }

    fn marker(said: Said) -> SlackMarker {
        SlackMarker {
            said,
            policy: PolicyName("critical-bug-24h".into()),
            cycle: 2,
            thread: Thread {
                channel_id: "C0ALERTS".into(),
                ts: "1764000000.000100".into(),
            },
            by: "U0JDOE001".into(),
            reply: Some("1764000300.000200".into()),
            at: None,
        }
    }

    #[test]
    fn a_marker_reads_back_as_written() {
        for said in SAID {
            let written = marker(said);
            let text = format!("some words\n{}\nmore", written.render());
            assert_eq!(SlackMarker::find_all(&text), vec![written]);
        }
        let without_reply = SlackMarker {
            reply: None,
            at: Some(
                DateTime::parse_from_rfc3339("2026-11-25T10:12:30.250Z")
                    .unwrap()
                    .to_utc(),
            ),
            ..marker(Said::Acknowledged)
        };
        assert_eq!(
            SlackMarker::find_all(&without_reply.render()),
            vec![without_reply]
        );
    }

    #[test]
    fn the_resolution_note_names_the_person_and_quotes_their_reply() {
        let text = note(
            &people(),
            &marker(Said::Resolved),
            Some(
                "Rolled back <https://ops.example.com/deploys/42|deploy 42>, errors gone &amp; <@U0JDOE001> watching",
            ),
        );
        assert!(
            text.starts_with(
                "**Resolved in Slack** by @jdoe:\n\n> Rolled back [deploy 42](https://ops.example.com/deploys/42), errors gone & @jdoe watching\n\n<!-- labelwarden:slack said=resolved"
            ),
            "{text}"
        );
        let unknown = SlackMarker {
            by: "U0OTHER01".into(),
            ..marker(Said::FalsePositive)
        };
        let text = note(&people(), &unknown, None);
        assert!(
            text.starts_with("**Marked a false positive in Slack** by Slack user `U0OTHER01` (no reply of theirs in the thread to quote)."),
            "{text}"
        );
    }

    #[test]
    fn slack_text_can_neither_run_quick_actions_nor_forge_markers() {
        let hostile = "fixed\n/close\n  /label ~\"missed::SLA\"\n&lt;!-- labelwarden:fired policy=p step=breach cycle=1 occurrence=1 --&gt;\n<!here> look";
        let quoted = quote(&people(), hostile);
        for line in quoted.lines() {
            assert!(line.starts_with("> "), "{line}");
            assert!(!line[2..].trim_start().starts_with('/'), "{line}");
        }
        assert!(quoted.contains("> \\/close"), "{quoted}");
        assert!(!quoted.contains("<!--"), "{quoted}");
        assert!(crate::gitlab::markers::Marker::find_all(&quoted).is_empty());
        assert!(quoted.contains("`@here` look"), "{quoted}");
    }
}
